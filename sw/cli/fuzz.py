"""``logicdie fuzz {csi2,model,bundle}``: corrupted input at each boundary (SPEC section 8).

``model`` / ``bundle``: N mutated models or tampered (re-sealed) bundles through the command line's
contract (:mod:`sw.frontdoor`); JSON keys ``cases``, ``clean_errors``, ``accepted``,
``tracebacks``, ``hangs``, ``partial_files`` (plus ``wrong_results``, ``bad_messages``,
``wall_s``, ``failures``). Exit 0 iff every case is a clean error or an accepted, correct result.

``csi2``: each case is a frame with 1-3 random corruptions (header bit flips, payload/CRC flips,
truncated and overlong lines, missing FE/FS, garbage bursts, wrong WC, dropped packets) followed by
a clean frame. The RTL's counters and per-frame statuses must equal the golden parser's, every
clean frame's tensor must equal the golden ISP's, and nothing may hang. Exit 0 iff all hold.
"""

from __future__ import annotations

import sys

from sw.cli import add_common, positive_float, positive_int, seed_int

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("fuzz", help="fuzz a boundary with corrupted input (csi2, model, bundle)",
                       description="csi2: corrupted CSI-2 streams into the RX (+ISP); checks no "
                       "hang, counters equal to the golden parser, next clean frame bit-exact. "
                       "model/bundle: mutated models / tampered bundles through the CLI; each "
                       "must give a correct result or one clean error line.")
    p.add_argument("target", choices=("csi2", "model", "bundle"), help="what to fuzz")
    p.add_argument("--cases", type=positive_int, default=300, metavar="N")
    p.add_argument("--seed", type=seed_int, default=0, metavar="S")
    p.add_argument("--backend", choices=("rtl", "golden"), default="rtl")
    p.add_argument("--config", default="default", metavar="PRESET")
    p.add_argument("--engine", choices=("harness", "cocotb"), default="harness",
                   help="RTL simulation driver: C++ Verilator harness (fast) or cocotb")
    p.add_argument("--timeout", type=positive_float, default=60.0, metavar="S",
                   help="model/bundle: seconds one case may take before it counts as a hang")
    p.add_argument("--keep", metavar="DIR", default=None,
                   help="model/bundle: write every failing case into DIR (to reproduce it)")
    add_common(p)
    p.set_defaults(func=run)


def run(args):
    from tqdm import tqdm

    if args.target in ("model", "bundle"):
        from sw.frontdoor import run_cases

        with tqdm(total=args.cases, desc=f"fuzz {args.target}", unit="case", file=sys.stderr,
                  disable=None) as bar:
            out = run_cases(args.target, args.cases, seed=args.seed, timeout=args.timeout,
                            progress=bar.update, keep=args.keep)
        ok = all(out[k] == 0 for k in ("tracebacks", "hangs", "partial_files", "wrong_results",
                                       "bad_messages"))
        if not args.json:
            for k, v in out.items():
                if k != "failures":
                    print(f"{k}: {v}")
            for f in out["failures"]:
                print(f"  case {f['case']} ({f['seed_model']}, {f['mutation']}): "
                      f"{f['outcome']}: {f['detail']}")
        return (0 if ok else 1), out

    from sw.pixel import run_fuzz

    with tqdm(total=args.cases, desc="fuzz csi2", unit="case", file=sys.stderr,
              disable=None) as bar:
        out = run_fuzz(args.cases, seed=args.seed, backend=args.backend, config=args.config,
                       progress=bar.update, engine=args.engine)
    ok = (out["hangs"] == 0 and out["clean_frames_bit_exact"] and out["counters_match_golden"]
          and out["statuses_match_golden"])
    if not args.json:
        for k, v in out.items():
            print(f"{k}: {v}")
    return (0 if ok else 1), out
