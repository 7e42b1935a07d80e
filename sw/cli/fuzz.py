"""``logicdie fuzz csi2``: corrupted CSI-2 streams into the receiver (SPEC section 8).

Each case is a frame with 1-3 random corruptions (header bit flips, payload/CRC flips, truncated and
overlong lines, missing FE/FS, garbage bursts, wrong WC, dropped packets) followed by a clean frame.
The RTL's counters and per-frame statuses must equal the golden parser's, every clean frame's tensor
must equal the golden ISP's, and nothing may hang. Exit 0 iff all hold.
"""

from __future__ import annotations

import sys

from hw.errors import UserError
from sw.cli import add_common, positive_int, seed_int

__all__ = ["register", "run"]


def register(sub):
    p = sub.add_parser("fuzz", help="fuzz a block with corrupted input (csi2)",
                       description="Corrupted CSI-2 streams into the RX (+ISP); checks no hang, "
                       "counters equal to the golden parser, next clean frame bit-exact.")
    p.add_argument("target", choices=("csi2",), help="what to fuzz")
    p.add_argument("--cases", type=positive_int, default=300, metavar="N")
    p.add_argument("--seed", type=seed_int, default=0, metavar="S")
    p.add_argument("--backend", choices=("rtl", "golden"), default="rtl")
    p.add_argument("--config", default="default", metavar="PRESET")
    p.add_argument("--engine", choices=("harness", "cocotb"), default="harness",
                   help="RTL simulation driver: C++ Verilator harness (fast) or cocotb")
    add_common(p)
    p.set_defaults(func=run)


def run(args):
    from tqdm import tqdm

    from sw.pixel import run_fuzz

    if args.cases < 1:
        raise UserError("--cases must be at least 1")
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
