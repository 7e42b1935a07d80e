"""``logicdie app {count,heatmap,track,shelf}``: the seed's use cases from metadata alone (SPEC
section 8; sw/apps.py). Frames of a generated scene (sim/scene.py) run through the functional
pipeline; the app reads only each frame's decoded detections; the scene's ground truth is reported
beside the result (counts, precision / recall, KPI, frames per second, bytes per frame)."""

from __future__ import annotations

import sys

from hw.config import preset
from hw.errors import UserError
from sw.cli import add_common, positive_int, seed_int


def register(sub):
    from sim.scene import SCENES
    from sw.apps import APPS, DEFAULT_SCENE

    p = sub.add_parser(
        "app",
        help="use cases from metadata alone: count, heatmap, track, shelf",
        description="Run a generated scene through the pipeline and an app that reads only the "
        "metadata (detections): visitor counting, occupancy heat map, tracking, shelf "
        "shortages; reports the scene's ground truth beside the result.",
    )
    p.add_argument("app", choices=APPS, help="the use case")
    p.add_argument("--model", required=True, metavar="M",
                   help="detector model (TFLite or bundle), e.g. retinaface.tflite")
    p.add_argument("--scene", choices=SCENES, default=None,
                   help="generated scene (default: " + ", ".join(
                       f"{a} -> {s}" for a, s in DEFAULT_SCENE.items()) + ")")
    p.add_argument("--frames", type=positive_int, default=30, metavar="N",
                   help="frames (default 30)")
    p.add_argument("--backend", choices=("golden", "isa", "rtl"), default="isa",
                   help="golden (NumPy graph), isa (ISA simulator, default), rtl (Verilator)")
    p.add_argument("--config", default="default", metavar="PRESET",
                   help="hardware preset (default, ecp5, ice40, tiny)")
    p.add_argument("--sensor-mode", default="320x240", metavar="MODE",
                   help="sensor mode (default 320x240; the scenes are 320x240)")
    p.add_argument("--seed", type=seed_int, default=0, help="scene seed (motion, noise)")
    p.add_argument("--no-noise", action="store_true", help="noiseless scene frames")
    p.add_argument("--output-mode", choices=("metadata", "image+metadata"), default="metadata")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="picture (PNG; track: .gif for an animation) and FILE_bandwidth.png")
    p.add_argument("--per-frame", action="store_true",
                   help="include per-frame records in the JSON")
    add_common(p)
    p.set_defaults(func=run)


def run(args):
    from sim.scene import make_scene
    from sw.apps import DEFAULT_SCENE, run_app
    from sw.runtime import Device, progress

    if args.frames < 1:
        raise UserError("--frames must be at least 1")
    config = preset(args.config)
    scene = make_scene(args.scene or DEFAULT_SCENE[args.app], args.frames, seed=args.seed,
                       noise=not args.no_noise)
    dev = Device(args.model, backend=args.backend, config=config, sensor_mode=args.sensor_mode,
                 output_mode=args.output_mode)
    out = run_app(args.app, dev, scene, plot=args.plot, progress=progress)
    out = {"model": dev.compiled.host_graph.name, "backend": args.backend,
           "config": config.name, "sensor_mode": args.sensor_mode, **out}
    per_frame = out.pop("per_frame")
    if args.per_frame:
        out["per_frame"] = per_frame
    if not args.json:
        _print(out)
    return 0, out


def _print(o):
    print(f"{o['app']} on scene {o['scene']} ({o['frames']} frames, {o['valid_frames']} valid), "
          f"backend {o['backend']}, model {o['model']}")
    print(f"  detection precision {o['precision']:.3f}  recall {o['recall']:.3f}  "
          f"(tp {o['tp']}, fp {o['fp']}, fn {o['fn']})")
    if "count_in" in o:
        print(f"  in {o['count_in']} (truth {o['truth_in']})  out {o['count_out']} "
              f"(truth {o['truth_out']})  count error {o['count_error']}")
    print(f"  tracks {o['tracks']}  identities {o['identities']}  ID switches {o['id_switches']}")
    if "heatmap_correlation" in o:
        print(f"  heat map correlation with truth {o['heatmap_correlation']:.3f}")
    if "slot_accuracy" in o:
        print(f"  shelf slots {o['slots']}  accuracy {o['slot_accuracy']:.3f}  empty now "
              f"{o['shortages']} (truth {o['truth_shortages']})")
        print(f"  model needed: {o['model_needed']}")
    k, b = o["kpi"], o["bytes_per_frame"]
    print(f"  NPU {k['cycles_npu']:,.0f} cycles {k['ms_npu']:.3f} ms, total {k['ms_total']:.3f} ms"
          f" @ {k['clock_mhz']:g} MHz; simulated {o['fps']:.2f} frames/s")
    print(f"  bytes/frame: metadata {b['metadata']:,}  image+metadata {b['image+metadata']:,}  "
          f"RAW10 {b['raw10']:,} (full sensor {b['raw10_full']:,})")
    for f in o.get("plots", []):
        print(f"  wrote {f}", file=sys.stderr)
