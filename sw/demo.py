"""``make demo`` (``python -m sw.demo``): frame -> metadata on the shipped images and on photos.

The shipped BMPs are 96x96 gray tensors in TFLM's raw-bytes convention (models/zoo/README.md): their
bytes go straight into the NPU's input buffer. The scikit-image photos (astronaut, camera, coffee,
chelsea) go the whole way: sensor model (RAW10 Bayer, CSI-2) -> golden CSI-2 RX -> golden ISP (luma,
centred ROI, box resize, v - 128) -> ISA simulator -> metadata packets -> parser -> host softmax.
Per frame it prints the frame counter, the class and score, and the KPI (estimated NPU cycles and ms
at the preset's clock), and checks every result against the golden model run on the same input
tensor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

#: Expected classes (models/zoo/README.md, from the TFLM reference).
EXPECTED = {
    "person.bmp": "person",
    "no_person.bmp": "no person",
    "astronaut": "person",
    "camera": "person",
    "coffee": "no person",
    "chelsea": "no person",
}


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    from hw.errors import UserError
    from models.golden import GoldenModel
    from sw.runtime import Device

    ap = argparse.ArgumentParser(prog="python -m sw.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default", help="hardware preset (default: default)")
    ap.add_argument("--sensor-mode", default="640x480")
    ap.add_argument("--output-mode", default="metadata", choices=("metadata", "image+metadata"))
    args = ap.parse_args(argv)
    try:
        import skimage.data
    except ImportError:
        skimage = None
    zoo = Path(__file__).resolve().parent.parent / "models" / "zoo"
    t0 = time.perf_counter()
    try:
        dev = Device(
            zoo / "person_detect.tflite",
            backend="isa",
            config=args.config,
            sensor_mode=args.sensor_mode,
            output_mode=args.output_mode,
        )
    except UserError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    from sw.tflite_import import load_tflite

    golden = GoldenModel(load_tflite(zoo / "person_detect.tflite"))
    c = dev.compiled
    print(
        f"logicdie demo: person_detect on the '{dev.config.name}' preset "
        f"({dev.config.array_rows}x{dev.config.array_cols} array, {dev.config.clock_mhz:g} MHz), "
        f"{len(c.program)} instructions, {c.memory['total_bytes']:,} B of SRAM; sensor mode "
        f"{args.sensor_mode}, output {args.output_mode}"
    )
    frames = [
        (name, "tensor", np.asarray(Image.open(zoo / name)).view(np.int8))
        for name in ("person.bmp", "no_person.bmp")
    ]
    if skimage is not None:
        frames += [
            (n, "photo", getattr(skimage.data, n)())
            for n in ("astronaut", "camera", "coffee", "chelsea")
        ]
    else:
        print("(scikit-image not installed: photos skipped)")
    ok = True
    for name, kind, img in frames:
        r = dev.infer_tensor(img) if kind == "tensor" else dev.capture(img)
        want = golden.run([dev._last_tensor.reshape(c.inputs[0].shape)])
        exact = r.valid and all(np.array_equal(a, b) for a, b in zip(r.outputs, want, strict=True))
        res = r.result or {}
        expect = EXPECTED.get(name)
        good = exact and res.get("label") == expect
        ok &= good
        k = r.kpi
        print(
            f"frame {r.frame_counter}: {name:14s} ({kind:6s}) {'valid' if r.valid else 'INVALID'}"
            f"  {res.get('label', '-'):9s} score {res.get('score', float('nan')):.3f}"
            f"  | NPU {k['cycles_npu']:,} cycles = {k['ms_npu']:.3f} ms, ISP {k['ms_isp']:.3f} ms,"
            f" total {k['ms_total']:.3f} ms | metadata {r.metadata_bytes} B in {r.packets} packets"
            f" | golden {'==' if exact else '!='} ISA, expected {expect}"
        )
    st = dev.backend.last_stats
    print(
        f"NPU: {st['cycles']:,} cycles per inference, {c.macs:,} MACs, utilization "
        f"{st['utilization']:.1%} of {st['pes']} PEs; wall {time.perf_counter() - t0:.1f} s"
    )
    print("demo OK" if ok else "demo FAILED: see lines above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
