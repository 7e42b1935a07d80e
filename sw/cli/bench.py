"""``logicdie bench``: the performance figures of SPEC section 9 as one JSON object."""

from __future__ import annotations

import importlib
import json
import sys

from sw.benchmarks import BENCHMARKS
from sw.cli import add_common


def register(sub):
    p = sub.add_parser(
        "bench",
        help="performance figures (golden vs TFLM, array, pixel path, ISA)",
        description="Run the benchmarks and print their figures. Benchmarks measure; "
        "tests assert correctness.",
    )
    p.add_argument(
        "--only", action="append", choices=BENCHMARKS, help="run only this benchmark (repeatable)"
    )
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    add_common(p)
    p.set_defaults(func=run)


def run(args):
    out = {}
    for name in args.only or BENCHMARKS:
        try:
            mod = importlib.import_module(f"sw.benchmarks.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"sw.benchmarks.{name}":
                continue
            raise
        print(f"bench: {name} ...", file=sys.stderr)
        out[name] = mod.run(args.quick)
    if not args.json:
        print(json.dumps(out, indent=2))
    return 0, out
