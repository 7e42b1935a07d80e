"""``logicdie run``: the functional frame -> metadata pipeline (SPEC section 8).

Per frame: sensor model -> CSI-2 -> golden RX -> golden ISP -> backend (isa or golden) -> metadata
packets -> parser -> host tail -> decoded result. Prints per frame the frame counter, valid flag,
decoded result and KPI; ``--plot`` writes the per-layer cycles/utilization chart.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hw.config import preset
from hw.errors import UserError
from sw.cli import add_common

SYNTHETIC = ("gradient", "checker", "black")


def _photos() -> tuple[str, ...]:
    from sim.sensor import PHOTOS

    return tuple(PHOTOS)


def register(sub):
    p = sub.add_parser(
        "run",
        help="frame -> metadata pipeline on images or scenes",
        description="Run frames through sensor model, CSI-2, ISP, NPU and metadata "
        "TX/parse; print per frame: frame counter, valid, result, KPI.",
    )
    p.add_argument(
        "--model",
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
        type=int,
        default=None,
        metavar="N",
        help="frames to run (default: one per image, 1 for a scene)",
    )
    p.add_argument("--backend", choices=("golden", "isa", "rtl"), default="isa",
                   help="golden (NumPy graph), isa (ISA simulator, default), rtl (Verilator)")
    p.add_argument("--output-mode", choices=("metadata", "image+metadata"), default="metadata")
    p.add_argument(
        "--config",
        default="default",
        metavar="PRESET",
        help="hardware preset (default, ecp5, ice40, tiny)",
    )
    p.add_argument("--fps", type=float, default=30.0, help="frame rate bounding inference time")
    p.add_argument(
        "--plot",
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
    return load_image_file(path)


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
        atomic_write(path, lambda f: fig.savefig(f, dpi=120, format=fmt), "plot")
    finally:
        plt.close(fig)


def run(args):
    from sw.runtime import Device, progress

    config = preset(args.config)
    dev = Device(
        args.model,
        backend=args.backend,
        config=config,
        sensor_mode=args.sensor_mode,
        output_mode=args.output_mode,
        fps=args.fps,
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
    if args.frames is not None and args.frames < 1:
        raise UserError("--frames must be at least 1")
    n = args.frames if args.frames is not None else len(sources)
    frames = []
    for k in progress(range(n), total=n):
        label, img = sources[k % len(sources)]
        if args.tensor:
            r = dev.infer_tensor(np.ascontiguousarray(img).view(np.int8))
        else:
            r = dev.capture(img)
        rec = {
            "frame_counter": r.frame_counter,
            "source": label,
            "valid": r.valid,
            "errors": r.errors,
            "result": r.result,
            "kpi": r.kpi,
            "metadata_bytes": r.metadata_bytes,
            "packets": r.packets,
        }
        frames.append(rec)
        if not args.json:
            res = r.result
            what = (
                f"{res['label']} (score {res['score']:.3f})"
                if res and "label" in res
                else ("invalid" if not r.valid else str(res))
            )
            kp = r.kpi
            print(
                f"frame {r.frame_counter:4d}  {'valid  ' if r.valid else 'INVALID'}  "
                f"{Path(label).name:16s} {what:28s} NPU {kp['cycles_npu']:>9,} cycles "
                f"{kp['ms_npu']:.3f} ms | ISP {kp['ms_isp']:.3f} ms | total "
                f"{kp['ms_total']:.3f} ms @ {kp['clock_mhz']:g} MHz"
                + (f"  errors: {','.join(r.errors)}" if r.errors else "")
            )
    stats = getattr(dev.backend, "last_stats", None)
    if stats is None:
        from sw.compiler import estimate

        stats = estimate(dev.compiled)
    if args.plot:
        plot_layers(stats, args.plot, dev.compiled.host_graph.name)
        if not args.json:
            print(f"wrote {args.plot}", file=sys.stderr)
    out = {
        "model": dev.compiled.host_graph.name,
        "backend": args.backend,
        "config": config.name,
        "sensor_mode": args.sensor_mode,
        "output_mode": args.output_mode,
        "frames": frames,
        "macs": dev.compiled.macs,
        "cycles": stats["cycles"],
        "utilization": stats["utilization"],
        "layers": stats["layers"],
    }
    if args.plot:
        out["plot"] = args.plot
    return 0, out
