"""``logicdie isp``: sensor model + pixel path (CSI-2 RX + ISP) on one image (SPEC section 8).

Exit 0 when a tensor comes out (with ``--compare``: iff the golden and RTL tensors are equal).
JSON keys: bit_exact (null without --compare), shape (N, H, W, C), errors (RX counters and the
frame's flags), backend, sensor_mode, roi, size, channels, tensor_sha256, cycles / pixels_per_cycle
(rtl; sensor pixels per busy cycle), tensor_pixels_per_cycle (rtl).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

import numpy as np

from hw.config import preset
from hw.errors import UserError
from sw.cli import add_common, plot_file, seed_int

__all__ = ["register", "run", "parse_ints"]


def register(sub):
    p = sub.add_parser("isp", help="sensor model + CSI-2 RX + ISP on an image (golden or RTL)",
                       description="Image -> sensor RAW10 -> CSI-2 bursts -> RX -> ISP -> int8 "
                       "tensor. --compare runs golden and RTL and exits 0 iff they are equal.")
    p.add_argument("image", help="image file, or a scikit-image photo name (astronaut, camera, "
                   "coffee, chelsea)")
    p.add_argument("--sensor-mode", default="640x480", metavar="MODE",
                   help="full, binned or WxH (default 640x480)")
    p.add_argument("--roi", metavar="X,Y,W,H", help="ROI in sensor pixels, even values "
                   "(default: whole frame)")
    p.add_argument("--size", metavar="W,H", help="tensor size (default 96,96 or the binned ROI "
                   "if smaller)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3)
    p.add_argument("--pattern", default="RGGB", help="Bayer pattern RGGB, GRBG, GBRG, BGGR")
    p.add_argument("--backend", choices=("golden", "rtl"), default="golden")
    p.add_argument("--compare", action="store_true", help="run golden and rtl; exit 0 iff equal")
    p.add_argument("--engine", choices=("harness", "cocotb"), default="harness",
                   help="RTL simulation driver: C++ Verilator harness (fast) or cocotb")
    p.add_argument("--noise", action="store_true", help="sensor shot and read noise (seeded)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--config", default="default", metavar="PRESET")
    p.add_argument("--plot", type=plot_file, metavar="FILE.png",
                   help="draw RAW, binned, ROI and tensor")
    add_common(p)
    p.set_defaults(func=run)


def parse_ints(text: str | None, n: int, what: str):
    if text is None:
        return None
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise UserError(f"bad {what} {text!r}: expected {n} comma-separated integers")
    return vals


def run(args):
    from models.isp import IspParams, isp_stages
    from sim.sensor import PHOTOS, Sensor
    from sw.pixel import PixelInterface, make_transport

    config = preset(args.config)
    sensor = Sensor(args.sensor_mode, pattern=args.pattern, seed=args.seed,
                    shot_noise=0.5 if args.noise else 0.0, read_noise=2.0 if args.noise else 0.0)
    roi = parse_ints(args.roi, 4, "--roi") or (0, 0, sensor.width, sensor.height)
    size = parse_ints(args.size, 2, "--size")
    if size is None:
        size = (min(96, roi[2] // 2), min(96, roi[3] // 2))
    p = IspParams.make(sensor.width, sensor.height, roi=roi, size=size, channels=args.channels,
                       pattern=args.pattern, max_line_pixels=config.max_line_pixels)
    image = args.image
    if not (image in PHOTOS and not os.path.exists(image)):
        from sw.images import load_image_file

        image = load_image_file(image, hint=f"give an image file or one of {', '.join(PHOTOS)}")
    raw, bursts = sensor.stream(image, frame_number=1)
    backends = ("golden", "rtl") if args.compare else (args.backend,)
    tensors, results, times = {}, {}, {}
    for b in backends:
        t0 = time.perf_counter()
        t, r = PixelInterface(make_transport(b, config, args.engine)).tensor(bursts, p)
        times[b] = time.perf_counter() - t0
        if t is None:
            raise UserError(f"{b} backend produced no complete tensor (RX counters {r.counters})")
        tensors[b], results[b] = t, r
    main = tensors["rtl" if "rtl" in tensors else args.backend]
    res = results["rtl" if "rtl" in results else args.backend]
    bit_exact = bool(np.array_equal(tensors["golden"], tensors["rtl"])) if args.compare else None
    out = {
        "image": str(args.image), "backend": "golden+rtl" if args.compare else args.backend,
        "config": config.name, "sensor_mode": sensor.mode, "pattern": args.pattern,
        "roi": list(roi), "size": list(size), "channels": args.channels,
        "shape": [1, *p.shape], "bit_exact": bit_exact,
        "mismatched_elements": int(np.count_nonzero(tensors["golden"] != tensors["rtl"]))
        if args.compare else None,
        "errors": {**{k: v for k, v in res.counters.items() if k not in ("frames",)},
                   "frame_flags": res.statuses[-1][1] if res.statuses else None},
        "tensor_sha256": hashlib.sha256(main.tobytes()).hexdigest()[:16],
        "tensor_mean": float(main.mean()),
        "wall_s": {k: round(v, 3) for k, v in times.items()},
    }
    if "rtl" in results:
        cyc = results["rtl"].cycles
        out["cycles"] = cyc
        out["pixels_per_cycle"] = round(sensor.width * sensor.height / cyc, 4) if cyc else None
        out["tensor_pixels_per_cycle"] = round(p.size[0] * p.size[1] / cyc, 4) if cyc else None
    if args.plot:
        plot(isp_stages(raw, p), p, main, args.plot)
        out["plot"] = args.plot
    if not args.json:
        for k, v in out.items():
            print(f"{k}: {v}")
    code = 0 if (bit_exact is None or bit_exact) else 1
    if code:
        print(f"logicdie isp: golden and rtl differ in {out['mismatched_elements']} elements",
              file=sys.stderr)
    return code, out


def plot(stages: dict, p, tensor: np.ndarray, path: str) -> None:
    """RAW mosaic, binned RGB/luma, ROI, final tensor side by side (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def img(a):
        a = np.asarray(a)
        return a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a

    fig, ax = plt.subplots(1, 4, figsize=(16, 4.2))
    ax[0].imshow(stages["raw"], cmap="gray", vmin=0, vmax=1023, interpolation="nearest")
    ax[0].set_title(f"RAW10 mosaic {p.sensor_w}x{p.sensor_h} ({p.pattern})")
    b = img(stages["binned"]).astype(np.uint8)
    ax[1].imshow(b, cmap="gray" if b.ndim == 2 else None, vmin=0, vmax=255)
    rx, ry, rw, rh = p.binned_roi
    ax[1].add_patch(plt.Rectangle((rx - 0.5, ry - 0.5), rw, rh, fill=False, color="yellow"))
    ax[1].set_title("binned " + ("RGB" if p.channels == 3 else "luma") + " + ROI")
    r = img(stages["roi"]).astype(np.uint8)
    ax[2].imshow(r, cmap="gray" if r.ndim == 2 else None, vmin=0, vmax=255)
    ax[2].set_title(f"ROI {rw}x{rh} (binned)")
    t = img((tensor.astype(np.int16) + 128).astype(np.uint8))
    ax[3].imshow(t, cmap="gray" if t.ndim == 2 else None, vmin=0, vmax=255,
                 interpolation="nearest")
    ax[3].set_title(f"int8 tensor {p.size[0]}x{p.size[1]}x{p.channels} (+128)")
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    try:
        from sw.fileio import atomic_write

        fmt = os.path.splitext(path)[1].lower().lstrip(".")
        from sw.cli import is_plot

        atomic_write(path, lambda f: fig.savefig(f, dpi=90, format=fmt), "plot",
                     replaces=is_plot(path))
    finally:
        plt.close(fig)
