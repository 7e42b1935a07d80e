"""``logicdie sweep``: a design-space grid (Config fields / presets x models x backends), in process
or on Dask distributed (SPEC section 8, docs/sweep.md).

Exit 0 unless a cell crashed (``status == "error"``) or a ``--check`` found a mismatch; invalid
cells (fields that do not fit together, a model too large for the SRAM) are rows with their reason
and do not fail the sweep. ``--json``: one object whose ``rows`` holds one object per cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hw.errors import UserError
from sw.cli import add_common, plot_file, seed_int


def register(sub):
    p = sub.add_parser(
        "sweep",
        help="design-space sweep: config fields x presets x models x backends (Dask)",
        description="Run every cell of a grid (presets x --set field values x models x backends) "
        "and report cycles, utilization, latency at the clock, SRAM use and PEs per cell; in "
        "process (--workers 0), on a LocalCluster (default) or on a Dask scheduler.",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="sweep a Config field over values (repeat for a product grid), e.g. "
        "array_rows=4,8,16; sizes take K/M suffixes (sram_bytes=512K,1M)",
    )
    p.add_argument(
        "--configs",
        metavar="P1,P2",
        help="presets to sweep (comma-separated, or 'all'; --set applies on each; "
        "default: default)",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="PATH",
        help="TFLite int8 model (repeat for several; default: the shipped models)",
    )
    p.add_argument(
        "--backend",
        action="append",
        metavar="isa|rtl",
        help="isa: the ISA cycle model (default); rtl: the RTL NPU in Verilator (spot checks); "
        "repeat or comma-separate for both",
    )
    p.add_argument(
        "--check",
        type=int,
        default=0,
        metavar="N",
        help="also run N random inputs per cell through the backend and TFLM, bit-exactly",
    )
    p.add_argument("--seed", type=seed_int, default=0, metavar="S", help="input seed (default 0)")
    p.add_argument("--csv", metavar="FILE", help="write every row to FILE as CSV")
    p.add_argument(
        "--plot", type=plot_file, metavar="FILE",
        help="plot latency vs PEs with the Pareto front (.png/.svg/.pdf)",
    )
    add_executor_options(p)
    add_common(p)
    p.set_defaults(func=run)


def add_executor_options(p) -> None:
    """--workers / --scheduler / --retries (shared with ``regress``)."""
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="LocalCluster worker processes (default: one per core); 0 runs in this process "
        "without Dask",
    )
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on an existing Dask scheduler instead of a LocalCluster",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help="times a cell whose worker died is retried on another (default 2)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tqdm progress bar on stderr (default: when stderr is a terminal)",
    )


def check_executor_args(args) -> None:
    if args.workers is not None and args.workers < 0:
        raise UserError("--workers must be 0 (in process) or a positive number of processes")
    if args.retries < 0:
        raise UserError("--retries must be 0 or more")
    if args.scheduler and args.workers:
        raise UserError("give --scheduler or --workers, not both")
    if args.scheduler and "://" not in args.scheduler:
        raise UserError(
            f"--scheduler {args.scheduler!r}: give the scheduler address as tcp://HOST:PORT"
        )


def run(args):
    from sw import sweep

    check_executor_args(args)
    if args.check < 0:
        raise UserError("--check must be 0 or more")
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"--plot {args.plot}: give a .png, .svg or .pdf file name")
    sets = [sweep.parse_set(s) for s in args.set]
    presets = sweep.presets_arg(args.configs, ["default"])
    backends = sweep.backends_arg(args.backend)
    models = sweep.load_models(args.model or sweep.shipped_models())
    cells = sweep.expand_grid(presets, sets, models, backends)
    rows, info = sweep.run_cells(
        cells,
        models,
        workers=args.workers,
        scheduler=args.scheduler,
        check=args.check,
        seed=args.seed,
        retries=args.retries,
        progress=args.progress,
    )
    if args.csv:
        sweep.write_csv(rows, args.csv)
    if args.plot:
        sweep.write_plot(rows, args.plot)
    counts = status_counts(rows)
    out = {
        "command": "sweep",
        "grid": {
            "presets": presets,
            "set": {f: v for f, v in sets},
            "models": [m.name for m in models],
            "backends": backends,
        },
        "check_inputs": args.check,
        "seed": args.seed,
        **info,
        "counts": counts,
        "rows": rows,
    }
    if args.csv:
        out["csv"] = str(args.csv)
    if args.plot:
        out["plot"] = str(args.plot)
    failed = counts["error"] + counts["mismatch"]
    if not args.json:
        print_table(rows, [f for f, _ in sets])
        print_footer(info, counts)
    return (1 if failed else 0), out


def status_counts(rows) -> dict:
    c = {"ok": 0, "invalid": 0, "error": 0, "bit_exact": 0, "mismatch": 0}
    for r in rows:
        c[r["status"]] += 1
        if r["bit_exact"] is True:
            c["bit_exact"] += 1
        elif r["bit_exact"] is False:
            c["mismatch"] += 1
    return c


def _cell(v, kind):
    if v is None:
        return "-"
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "ms":
        return f"{v:.3f}"
    if kind == "int":
        return f"{v:,}"
    if kind == "bool":
        return "yes" if v else "NO"
    return str(v)


def print_table(rows, swept=(), file=None) -> None:
    """One line per row: config, model, backend, PEs, status, cycles, utilization, latency, SRAM,
    bit-exactness, Pareto mark or the reason."""
    file = file or sys.stdout
    cols = [
        ("config", "config", None),
        ("model", "model", None),
        ("backend", "backend", None),
        ("PEs", "pes", "int"),
        ("status", "status", None),
        ("cycles", "cycles", "int"),
        ("util", "utilization", "pct"),
        ("ms", "latency_ms", "ms"),
        ("SRAM used", "sram_used_bytes", "int"),
        ("SRAM", "sram_use", "pct"),
        ("bit-exact", "bit_exact", "bool"),
    ]
    table = [[h for h, _, _ in cols] + [""]]
    for r in rows:
        note = r["reason"] or ("pareto" if r["pareto"] else "")
        table.append([_cell(r.get(k), kind) for _, k, kind in cols] + [note])
    widths = [max(len(t[i]) for t in table) for i in range(len(cols))]
    for t in table:
        print("  ".join(s.ljust(w) for s, w in zip(t, widths, strict=False)) + "  " + t[-1],
              file=file)


def print_footer(info, counts, file=None) -> None:
    file = file or sys.stdout
    print(
        f"{info['cells']} cells: {counts['ok']} ok, {counts['invalid']} invalid, "
        f"{counts['error']} error"
        + (f", {counts['bit_exact']} bit-exact, {counts['mismatch']} mismatched"
           if counts["bit_exact"] or counts["mismatch"] else "")
        + f"; {info['executor']} ({info['workers']} workers), {info['wall_s']:.2f} s, "
        f"{info['cells_per_s']:.2f} cells/s",
        file=file,
    )
