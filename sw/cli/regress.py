"""``logicdie regress``: every shipped model (models/zoo/*.tflite) and any given ones x presets x
backends, each checked bit-exactly against the TFLM reference on seeded random inputs (what
``logicdie check`` does per cell), as one summary table; in process or on Dask (docs/sweep.md).

Exit 0 iff every cell that can run is bit-exact and none crashed. A model that does not fit a
preset's SRAM is an ``invalid`` row with the reason (skipped, not failed). RTL builds are cached
per preset on disk (sim/harness/build.py), so every model of a preset reuses one build.
"""

from __future__ import annotations

from hw.config import PRESETS
from hw.errors import UserError
from sw.cli import add_common, positive_int, seed_int
from sw.cli.sweep import add_executor_options, check_executor_args, print_table, status_counts


def register(sub):
    p = sub.add_parser(
        "regress",
        help="every shipped/given model x presets x backends, bit-exact against TFLM (Dask)",
        description="Check every shipped model (and the given ones) on every preset and backend "
        "bit-exactly against the TFLite Micro reference interpreter, in process "
        "(--workers 0), on a LocalCluster (default) or on a Dask scheduler.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help="more TFLite int8 models to run")
    p.add_argument(
        "--no-shipped", action="store_true", help="run only the given models, not models/zoo/"
    )
    p.add_argument(
        "--configs",
        metavar="P1,P2",
        help=f"presets (comma-separated; default: all = {','.join(PRESETS)})",
    )
    p.add_argument(
        "--backend",
        action="append",
        metavar="isa|rtl",
        help="isa (default) and/or rtl; repeat or comma-separate for both",
    )
    p.add_argument(
        "--inputs", type=positive_int, default=3, metavar="N",
        help="random inputs per cell (default 3)",
    )
    p.add_argument("--seed", type=seed_int, default=0, metavar="S", help="input seed (default 0)")
    add_executor_options(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args):
    from sw import sweep

    check_executor_args(args)
    if args.inputs < 1:
        raise UserError("--inputs must be at least 1")
    paths = ([] if args.no_shipped else sweep.shipped_models()) + list(args.models)
    if not paths:
        raise UserError("no models: give MODEL paths or drop --no-shipped")
    presets = sweep.presets_arg(args.configs, list(PRESETS))
    backends = sweep.backends_arg(args.backend)
    models = sweep.load_models(paths)
    cells = sweep.expand_grid(presets, [], models, backends)
    rows, info = sweep.run_cells(
        cells,
        models,
        workers=args.workers,
        scheduler=args.scheduler,
        check=args.inputs,
        seed=args.seed,
        retries=args.retries,
        progress=args.progress,
    )
    counts = status_counts(rows)
    failed = counts["error"] + counts["mismatch"]
    out = {
        "command": "regress",
        "models": [m.name for m in models],
        "presets": presets,
        "backends": backends,
        "inputs": args.inputs,
        "seed": args.seed,
        **info,
        "counts": counts,
        "passed": failed == 0,
        "rows": rows,
    }
    if not args.json:
        print_table(rows)
        verdict = "PASS" if failed == 0 else "FAIL"
        print(
            f"{verdict}: {len(rows)} cells ({len(models)} models x {len(presets)} presets x "
            f"{len(backends)} backends), {counts['bit_exact']} bit-exact, "
            f"{counts['mismatch']} mismatched, {counts['error']} error, "
            f"{counts['invalid']} skipped (invalid); {args.inputs} inputs each; "
            f"{info['executor']} ({info['workers']} workers), {info['wall_s']:.2f} s"
        )
    return (0 if failed == 0 else 1), out
