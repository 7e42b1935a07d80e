"""``make demo`` (``python -m sw.demo``): frame -> metadata on the RTL logic die.

The scikit-image photos (astronaut, camera, coffee, chelsea) go the whole way through the die of
hw/soc.py in Verilator: sensor model (RAW10 Bayer, CSI-2 bursts) -> CSI-2 RX -> ISP (luma, centred
ROI, box resize, v - 128) -> tensor writer -> NPU (person_detect) -> metadata TX -> CSI-2 packets,
which the host parses and decodes (softmax tail). Per frame it prints the decoded class and score,
the KPI the die measured (ISP, NPU, TX cycles) and whether the RTL's output bytes equal the golden
die's (sw/soc.py, KPI fields taken from the RTL).

Preset: ``tiny`` by default (4x4 array, 1 MiB SRAM): the smallest die builds fastest in Verilator
(about 2-4 minutes on 2 cores), which keeps a cold ``make demo`` near the 6-minute goal;
``--config default`` runs the 16x16, 8 MiB die (a longer build). ``--backend isa`` runs the golden
die with the ISA simulator instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

#: Expected classes of the photos (models/zoo/README.md, from the TFLM reference).
EXPECTED = {
    "astronaut": "person",
    "camera": "person",
    "coffee": "no person",
    "chelsea": "no person",
}
PRESET = "tiny"


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    from hw.errors import UserError
    from sw.runtime import Device

    ap = argparse.ArgumentParser(prog="python -m sw.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=PRESET, help=f"hardware preset (default: {PRESET})")
    ap.add_argument("--backend", default="rtl", choices=("rtl", "isa", "golden"))
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
            backend=args.backend,
            config=args.config,
            sensor_mode=args.sensor_mode,
            output_mode=args.output_mode,
            compare=args.backend == "rtl",
            progress=True,
        )
    except UserError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    print(
        f"logicdie demo: person_detect on the '{dev.config.name}' logic die "
        f"({dev.config.array_rows}x{dev.config.array_cols} array, {dev.config.clock_mhz:g} MHz), "
        f"{'RTL SoC in Verilator' if args.backend == 'rtl' else 'golden die, ' + args.backend}"
        f"; sensor {args.sensor_mode} RAW10 over CSI-2, output {args.output_mode}",
        flush=True,
    )
    if skimage is not None:
        frames = [(n, getattr(skimage.data, n)()) for n in EXPECTED]
    else:  # the shipped BMPs as scenes (their TFLM raw-bytes convention is not a camera's)
        print("(scikit-image not installed: the shipped BMPs stand in for the photos)")
        frames = [(n, np.asarray(Image.open(zoo / n))) for n in ("person.bmp", "no_person.bmp")]
    ok = True
    t_frames = time.perf_counter()
    try:
        results = dev.stream(dev.sensor_frame(img) for _, img in frames)
        for (name, _), r in zip(frames, results, strict=True):
            if t_frames is not None:
                print(f"(die ready after {time.perf_counter() - t0:.1f} s)", flush=True)
                t_frames = None
            res = r.result or {}
            expect = EXPECTED.get(name)
            good = r.valid and (expect is None or res.get("label") == expect)
            good &= r.bit_exact is not False
            ok &= good
            k = r.kpi or {}
            cmp_ = {None: "", True: " | RTL == golden", False: " | RTL != GOLDEN"}[r.bit_exact]
            print(
                f"frame {r.frame_counter}: {name:14s} {'valid' if r.valid else 'INVALID'}"
                f"  {res.get('label', '-'):9s} score {res.get('score', float('nan')):.3f}"
                f"  | ISP {k.get('cycles_isp', 0):,} NPU {k.get('cycles_npu', 0):,} TX "
                f"{k.get('cycles_tx', 0):,} cycles, total {k.get('ms_total', 0):.3f} ms"
                f" | {r.output_bytes} B out{cmp_}"
                + (f" | expected {expect}" if expect else ""),
                flush=True,
            )
    except UserError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    finally:
        dev.close()
    print(f"{len(frames)} frames, {dev.raw_bytes:,} RAW10 bytes in, {dev.output_bytes:,} metadata "
          f"bytes out; wall {time.perf_counter() - t0:.1f} s")
    print("demo OK" if ok else "demo FAILED: see lines above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
