"""``logicdie run``: frame -> metadata through the logic die (SPEC section 8).

Per frame: sensor model -> CSI-2 RAW10 bursts -> the die (``--backend rtl``: the SoC top of
hw/soc.py in Verilator; ``golden``/``isa``: the golden die of sw/soc.py) -> CSI-2 metadata packets
-> host parser -> host tail -> decoded result. ``--compare`` checks the RTL's output bytes against
the golden die's. Prints per frame the frame counter, valid flag, decoded result and KPI;
``--plot`` writes the per-layer cycles/utilization chart (ISA cycle model).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from hw.config import preset
from hw.errors import UserError
from sw.cli import add_common, input_file, plot_file, positive_float, positive_int

SYNTHETIC = ("gradient", "checker", "black")


def _photos() -> tuple[str, ...]:
    from sim.sensor import PHOTOS

    return tuple(PHOTOS)


def register(sub):
    p = sub.add_parser(
        "run",
        help="frame -> metadata pipeline on images or scenes",
        description="Run frames through the logic die: sensor model -> CSI-2 RAW10 -> RX -> ISP "
        "-> NPU -> metadata TX -> CSI-2 packets -> host parser and decode. --backend rtl runs the "
        "whole die (top soc) in Verilator; golden and isa run the golden die. Prints per frame: "
        "frame counter, valid, result, KPI.",
    )
    p.add_argument(
        "--model",
        type=input_file,
        default=None,
        metavar="M",
        help="TFLite model or bundle (default: the shipped person_detect.tflite)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", nargs="+", metavar="P", help="image file(s) (PNG, JPEG, BMP, ...)")
    src.add_argument(
        "--scene", metavar="NAME", help=f"built-in scene: {', '.join(_photos() + SYNTHETIC)}"
    )
    p.add_argument(
        "--tensor",
        action="store_true",
        help="feed the images' bytes straight as int8 input tensors (raw-bytes "
        "convention of the shipped BMPs), skipping sensor and ISP",
    )
    p.add_argument(
        "--sensor-mode",
        default="640x480",
        metavar="MODE",
        help="full, binned or WxH (default 640x480)",
    )
    p.add_argument(
        "--roi",
        default=None,
        metavar="X,Y,W,H",
        help="inference ROI in sensor pixels (default: centred, tensor aspect)",
    )
    p.add_argument(
        "--frames",
        type=positive_int,
        default=None,
        metavar="N",
        help="frames to run (default: one per image, 1 for a scene)",
    )
    p.add_argument("--backend", choices=("golden", "isa", "rtl"), default="isa",
                   help="golden (NumPy graph), isa (ISA simulator, default), rtl (Verilator)")
    p.add_argument("--output-mode", choices=("metadata", "image+metadata", "raw+metadata"),
                   default="metadata",
                   help="what the die's CSI-2 output carries: metadata only; the input tensor as "
                   "RAW8 lines plus the metadata; or the sensor's RAW10 frame forwarded (VC 1) "
                   "plus the metadata (VC 0)")
    p.add_argument("--compare", action="store_true",
                   help="with --backend rtl: also run the golden die and check that every output "
                   "byte is equal (KPI fields taken from the RTL)")
    p.add_argument("--corrupt", type=int, action="append", default=[], metavar="K",
                   help="flip one payload bit of input frame K's CSI-2 stream (repeatable)")
    p.add_argument("--waves", default=None, metavar="FILE.fst",
                   help="with --backend rtl: write FST waveforms of the whole die")
    p.add_argument(
        "--config",
        default="default",
        metavar="PRESET",
        help="hardware preset (default, ecp5, ice40, tiny)",
    )
    p.add_argument("--fps", type=positive_float, default=30.0,
                   help="frame rate bounding inference time")
    p.add_argument(
        "--plot",
        type=plot_file,
        default=None,
        metavar="FILE",
        help="write a per-layer cycles/utilization chart (PNG)",
    )
    add_common(p)
    p.set_defaults(func=run)


def scene_image(name: str) -> np.ndarray:
    if name in _photos():
        from sim.sensor import load_image as photo

        return photo(name)
    if name == "gradient":
        return np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    if name == "checker":
        y, x = np.mgrid[:240, :320]
        return (((y // 20 + x // 20) % 2) * 255).astype(np.uint8)
    if name == "black":
        return np.zeros((240, 320), np.uint8)
    raise UserError(f"unknown scene {name!r}; choose one of {', '.join(_photos() + SYNTHETIC)}")


def load_image(path: str) -> np.ndarray:
    """An image file (decoded by :func:`sw.images.load_image_file`), or a scikit-image photo name
    (e.g. astronaut) when no such file exists."""
    from sw.images import load_image_file

    if not Path(path).exists() and path in _photos():
        return scene_image(path)
    return load_image_file(path, hint=f"give an image file or one of {', '.join(_photos())}")


def plot_layers(stats: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = stats["layers"]
    names = [r["layer"] for r in layers]
    cyc = [r["cycles"] for r in layers]
    util = [100 * r["utilization"] for r in layers]
    fig, ax = plt.subplots(figsize=(max(8, 0.28 * len(names)), 5))
    x = np.arange(len(names))
    colors = {
        "array": "tab:blue",
        "vector": "tab:orange",
        "store": "tab:green",
        "host": "tab:red",
        "alias": "tab:gray",
    }
    ax.bar(x, cyc, color=[colors.get(r["engine"], "tab:gray") for r in layers])
    ax.set_ylabel("cycles")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color=c, label=e)
            for e, c in colors.items()
            if any(r["engine"] == e for r in layers)
        ],
        loc="upper left",
        fontsize=7,
    )
    ax.set_xticks(x, names, rotation=90, fontsize=6)
    ax2 = ax.twinx()
    ax2.plot(x, util, "k.-", label="utilization")
    ax2.set_ylabel("MAC utilization of the array (%)")
    ax2.set_ylim(0, max(105, max(util, default=0) * 1.05))
    ax.set_title(f"{title}: {stats['cycles']:,} cycles, {stats['utilization']:.1%} utilization")
    fig.tight_layout()
    try:
        from sw.fileio import atomic_write

        fmt = Path(path).suffix.lower().lstrip(".")
        from sw.cli import is_plot

        atomic_write(path, lambda f: fig.savefig(f, dpi=120, format=fmt), "plot",
                     replaces=is_plot(path))
    finally:
        plt.close(fig)


def corrupt_frame(bursts: list[bytes]) -> list[bytes]:
    """Flip one payload bit of the middle long packet (a CRC error the RX flags)."""
    longs = [i for i, b in enumerate(bursts) if len(b) > 6 and (b[0] & 0x3F) >= 0x10]
    if not longs:
        return bursts
    i = longs[len(longs) // 2]
    b = bytearray(bursts[i])
    b[4 + (len(b) - 6) // 2] ^= 0x10
    return bursts[:i] + [bytes(b)] + bursts[i + 1:]


def _describe(r) -> str:
    res = r.result
    if res and "label" in res:
        return f"{res['label']} (score {res['score']:.3f})"
    return "invalid" if not r.valid else str(res)


def run(args):
    from sw.runtime import Device, progress

    config = preset(args.config)
    if args.waves and args.backend != "rtl":
        raise UserError("--waves records the RTL: use it with --backend rtl")
    dev = Device(
        args.model,
        backend=args.backend,
        config=config,
        sensor_mode=args.sensor_mode,
        output_mode=args.output_mode,
        fps=args.fps,
        compare=args.compare,
        progress=not args.json,
        waves=args.waves,
    )
    if args.roi:
        try:
            roi = tuple(int(v) for v in args.roi.split(","))
            if len(roi) != 4:
                raise ValueError
        except ValueError:
            raise UserError(f"bad --roi {args.roi!r}: give X,Y,W,H in sensor pixels") from None
        dev.set_inference_roi_abs(roi)
    if args.image:
        sources = [(p, load_image(p)) for p in args.image]
    else:
        name = args.scene or "astronaut"
        sources = [(f"scene:{name}", scene_image(name))]
    n = args.frames if args.frames is not None else len(sources)
    for k in args.corrupt:
        if not 0 <= k < n:
            raise UserError(f"--corrupt {k}: frames are numbered 0..{n - 1}")
    if args.tensor and args.backend == "rtl":
        raise UserError("--tensor skips the sensor and the ISP; the RTL die takes sensor frames")
    frames = []
    labels = [sources[k % len(sources)][0] for k in range(n)]

    def inputs():
        for k in range(n):
            b = dev.sensor_frame(sources[k % len(sources)][1])
            yield corrupt_frame(b) if k in args.corrupt else b

    if args.tensor:
        results = (dev.infer_tensor(np.ascontiguousarray(sources[k % len(sources)][1])
                                    .view(np.int8)) for k in range(n))
    else:
        results = dev.stream(inputs())
    t0 = time.perf_counter()
    try:
        for k, r in enumerate(progress(results, total=n)):
            label = labels[k] if k < len(labels) else "-"
            kp = r.kpi or {}
            rec = {
                "frame_counter": r.frame_counter,
                "source": label,
                "valid": r.valid,
                "errors": r.errors,
                "result": r.result,
                "kpi": kp,
                "metadata_bytes": r.metadata_bytes,
                "output_bytes": r.output_bytes,
                "packets": r.packets,
            }
            if r.bit_exact is not None:
                rec["bit_exact"] = r.bit_exact
            frames.append(rec)
            if not args.json:
                cmp_ = "" if r.bit_exact is None else (" | RTL == golden" if r.bit_exact
                                                       else " | RTL != GOLDEN")
                print(
                    f"frame {r.frame_counter:4d}  {'valid  ' if r.valid else 'INVALID'}  "
                    f"{Path(label).name:16s} {_describe(r):28s} "
                    + (f"NPU {kp['cycles_npu']:>9,} cyc | ISP {kp['cycles_isp']:>9,} | TX "
                       f"{kp['cycles_tx']:>7,} | total {kp['ms_total']:.3f} ms @ "
                       f"{kp['clock_mhz']:g} MHz | {r.output_bytes:,} B out" if kp else "")
                    + cmp_ + (f"  errors: {','.join(r.errors)}" if r.errors else "")
                )
        forwarded_ok = dev.forwarded_exact()
    finally:
        dev.close()
    wall = time.perf_counter() - t0
    stats = getattr(dev.backend, "last_stats", None)
    if stats is None or args.backend == "rtl":
        from sw.compiler import estimate

        stats = estimate(dev.compiled)
    if args.plot:
        plot_layers(stats, args.plot, dev.compiled.host_graph.name)
        if not args.json:
            print(f"wrote {args.plot}", file=sys.stderr)
    exact = [f["bit_exact"] for f in frames if "bit_exact" in f]
    out = {
        "model": dev.compiled.host_graph.name,
        "backend": args.backend,
        "engine": "soc" if args.backend == "rtl" else f"golden-soc ({args.backend} NPU)",
        "config": config.name,
        "sensor_mode": args.sensor_mode,
        "output_mode": args.output_mode,
        "frames": frames,
        "stream_bit_exact": (all(exact) and len(exact) == len(frames)
                             and forwarded_ok is not False) if args.compare else None,
        "output_bytes": dev.output_bytes,
        "raw_bytes": dev.raw_bytes,
        "wall_s": wall,
        "macs": dev.compiled.macs,
        "cycles": stats["cycles"],
        "utilization": stats["utilization"],
        "layers": stats["layers"],
    }
    if args.plot:
        out["plot"] = args.plot
    if not args.json and args.compare:
        print(f"stream bit-exact: {out['stream_bit_exact']} ({sum(exact)}/{len(frames)} frames)")
    return (1 if args.compare and not out["stream_bit_exact"] else 0), out
