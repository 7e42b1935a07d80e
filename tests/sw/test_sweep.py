"""``logicdie sweep`` / ``regress`` and sw.sweep: grid expansion, the per-cell task, invalid and
failed cells, and identical rows in process, on a LocalCluster and on a separate Dask scheduler
with two worker processes (docs/sweep.md).

Expectations come from the compiler's cycle model (sw.compiler.estimate), Config itself and the
TFLM reference, never from sw.sweep's own arithmetic.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from hw.config import Config, preset
from hw.errors import UserError
from models.zoo import PERSON_DETECT
from sw import sweep
from tests.sw.cli_util import ROOT, logicdie

PD = sweep.ModelSource("person_detect.tflite", PERSON_DETECT.read_bytes())


def _small_model() -> sweep.ModelSource:
    from models.zoo.generate import float_io_model

    return sweep.ModelSource("float_io_16.tflite", float_io_model((16, 16), 3, 4, seed=3))


def _grid(sets, models=(PD,), presets=("default",), backends=("isa",)):
    return sweep.expand_grid(list(presets), [sweep.parse_set(s) for s in sets], list(models),
                             list(backends))


def test_parse_set_values_and_errors():
    assert sweep.parse_set("array_rows=4,8,16") == ("array_rows", [4, 8, 16])
    assert sweep.parse_set("sram_bytes=512K,1M") == ("sram_bytes", [512 * 1024, 1024 * 1024])
    assert sweep.parse_set("clock_mhz=100,250.5") == ("clock_mhz", [100.0, 250.5])
    for bad in ("array_rows", "nope=1", "array_rows=4x", "array_rows=", "clock_mhz=fast"):
        with pytest.raises(UserError):
            sweep.parse_set(bad)


def test_grid_is_the_product_and_invalid_combos_carry_configs_reason():
    cells = _grid(["array_rows=4,8", "sram_banks=4,3"], models=(PD, _small_model()),
                  presets=("default", "tiny"))
    assert len(cells) == 2 * 2 * 2 * 2
    assert [c.index for c in cells] == list(range(len(cells)))
    for c in cells:
        base = preset(c.preset)
        attempted = {**base.to_dict(), **c.overrides, "name": c.name}
        try:
            want = Config(**attempted).to_dict()
            assert c.config == want and c.invalid is None
        except ValueError as e:
            assert c.config is None and c.invalid == str(e)
    assert sum(c.invalid is not None for c in cells) == 8  # every sram_banks=3 cell


def test_rows_follow_the_cycle_model_and_sram_plan():
    from sw.compiler import compile_graph, estimate
    from sw.tflite_import import load_tflite

    cells = _grid(["array_rows=4,8", "array_cols=8"])
    rows, info = sweep.run_cells(cells, [PD], workers=0)
    assert info["executor"] == "in-process" and info["cells"] == len(rows) == 2
    for c, r in zip(cells, rows, strict=True):
        assert set(sweep.ROW_KEYS) <= set(r)
        cfg = Config(**c.config)
        comp = compile_graph(load_tflite(PD.data), cfg)
        want = estimate(comp)["cycles"]
        assert r["status"] == "ok" and r["reason"] is None
        assert r["cycles"] == want
        assert r["pes"] == cfg.array_rows * cfg.array_cols
        assert r["utilization"] == pytest.approx(comp.macs / (want * r["pes"]), rel=1e-5)
        assert r["latency_ms"] == pytest.approx(want / (cfg.clock_mhz * 1e3), rel=1e-5)
        assert r["sram_used_bytes"] == comp.memory["total_bytes"]
        assert r["bit_exact"] is None and r["inputs_checked"] == 0
    json.dumps(rows)  # plain JSON values only


def test_model_too_big_is_a_row_with_the_compilers_reason():
    from sw.compiler import compile_graph
    from sw.tflite_import import load_tflite

    cells = _grid(["sram_bytes=64K,1M"], presets=("tiny",))
    rows, _ = sweep.run_cells(cells, [PD], workers=0)
    with pytest.raises(UserError) as e:
        compile_graph(load_tflite(PD.data, name=PD.name), Config(**cells[0].config))
    assert rows[0]["status"] == "invalid" and rows[0]["reason"] == str(e.value)
    assert rows[0]["cycles"] is None and rows[0]["pareto"] is False
    assert rows[1]["status"] == "ok"


def test_crashing_cell_is_an_error_row(monkeypatch):
    import sw.compiler

    def boom(_):
        raise RuntimeError("cycle model exploded")

    monkeypatch.setattr(sw.compiler, "estimate", boom)
    (row,) = sweep.run_cells(_grid(["array_rows=4"]), [PD], workers=0)[0]
    assert row["status"] == "error"
    assert row["reason"].startswith("RuntimeError: cycle model exploded")


def test_check_is_bit_exact_against_tflm():
    m = _small_model()
    rows, _ = sweep.run_cells(_grid(["array_cols=4,8"], models=(m,), presets=("tiny",)), [m],
                              workers=0, check=2, seed=1)
    for r in rows:
        assert r["status"] == "ok", r["reason"]
        assert r["bit_exact"] is True and r["mismatched_elements"] == 0
        assert r["inputs_checked"] == 2 and r["cycles"] > 0


def test_local_cluster_rows_identical_to_in_process():
    m = _small_model()
    cells = _grid(["array_rows=2,4", "sram_banks=4,3"], models=(PD, m), presets=("tiny",))
    local, _ = sweep.run_cells(cells, [PD, m], workers=0, check=1)
    dist, info = sweep.run_cells(cells, [PD, m], workers=2, check=1)
    assert info["executor"] == "local-cluster" and info["workers"] == 2
    assert dist == local
    assert {r["status"] for r in local} == {"ok", "invalid"}


@pytest.mark.full
def test_rtl_spot_check_on_a_local_cluster():
    """isa and rtl cells of the tiny preset on 2 workers (each loads the cached Verilator build):
    both bit-exact with TFLM; the rtl row's cycles are the RTL backend's own count on the same
    seeded input."""
    import numpy as np

    from sw.cli.check import random_inputs
    from sw.compiler import compile_graph
    from sw.runtime import RtlBackend
    from sw.tflite_import import load_tflite

    m = _small_model()
    rows, info = sweep.run_cells(_grid([], models=(m,), presets=("tiny",),
                                       backends=("isa", "rtl")), [m], workers=2, check=1, seed=5)
    assert info["workers"] == 2
    assert [r["backend"] for r in rows] == ["isa", "rtl"]
    for r in rows:
        assert r["status"] == "ok", r["reason"]
        assert r["bit_exact"] is True and r["inputs_checked"] == 1
    g = load_tflite(m.data)
    rtl = RtlBackend(compile_graph(g, "tiny"))
    rtl.run(random_inputs(g, np.random.default_rng(5)))
    assert rows[1]["cycles"] == rtl.last_cycles


def _die_once(cell, model, check, seed, marker):
    """Kills its worker process the first time any cell runs, then behaves as run_cell."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return sweep.run_cell(cell, model, check, seed)
    os.close(fd)
    os._exit(1)


def _always_die(cell, model, check, seed):
    os._exit(1)


def test_dead_worker_cell_is_retried(tmp_path):
    cells = _grid(["array_rows=4,8"])
    want, _ = sweep.run_cells(cells, [PD], workers=0)
    task = functools.partial(_die_once, marker=str(tmp_path / "died"))
    got, _ = sweep.run_cells(cells, [PD], workers=2, retries=2, task=task)
    assert (tmp_path / "died").exists()  # a worker really died
    assert got == want


@pytest.mark.full
def test_cell_killing_every_worker_is_an_error_row():
    cells = _grid(["array_rows=4"])
    (row,) = sweep.run_cells(cells, [PD], workers=2, retries=1, task=_always_die)[0]
    assert row["status"] == "error" and "KilledWorker" in row["reason"]


def test_workers_running_other_code_are_refused():
    class FakeClient:
        def __init__(self, digests):
            self.digests = digests

        def run(self, fn):
            assert fn is sweep.code_digest
            return self.digests

    mine = sweep.code_digest()
    sweep._same_code(FakeClient({"tcp://a:1": mine, "tcp://b:2": mine}))
    with pytest.raises(UserError, match="tcp://b:2"):
        sweep._same_code(FakeClient({"tcp://a:1": mine, "tcp://b:2": "0" * 16}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cli() -> list[str]:
    return [sys.executable, "-m", "dask"]  # the `dask` command of this interpreter


def test_scheduler_and_two_workers_give_the_in_process_rows(tmp_path):
    """`dask scheduler` + two `dask worker` processes on 127.0.0.1 run the CLI's sweep; its rows
    equal the in-process run's."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    dask = _dask_cli()
    procs = []
    logs = []

    def start(args, name):
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([*dask, *args], stdout=log, stderr=subprocess.STDOUT,
                                      cwd=tmp_path, env=env))

    try:
        http = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]  # loopback, any port
        start(["scheduler", "--host", "127.0.0.1", "--port", str(port), *http], "scheduler")
        for i in range(2):
            start(["worker", addr, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                   *http, "--local-directory", str(tmp_path / f"w{i}")], f"worker{i}")
        from distributed import Client

        deadline = time.monotonic() + 90
        with Client(addr, timeout="60s") as c:
            while len(c.scheduler_info(n_workers=-1)["workers"]) < 2:
                assert time.monotonic() < deadline, "dask workers did not register"
                time.sleep(0.2)
        args = ["sweep", "--set", "array_rows=4,8", "--set", "array_cols=4,8", "--configs",
                "tiny", "--model", str(PERSON_DETECT), "--json"]
        remote = logicdie(*args, "--scheduler", addr, timeout=300)
        assert remote.returncode == 0, remote.stderr
        r = json.loads(remote.stdout)
        local, _ = sweep.run_cells(_grid(["array_rows=4,8", "array_cols=4,8"], presets=("tiny",)),
                                   [PD], workers=0)
        assert r["executor"] == addr and r["workers"] == 2
        assert len(r["rows"]) == 4 and r["rows"] == local
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def test_cli_sweep_json_csv_plot(tmp_path):
    csv_path, png = tmp_path / "s.csv", tmp_path / "s.png"
    p = logicdie("sweep", "--set", "array_rows=4,8", "--set", "array_cols=8,16", "--set",
                 "sram_banks=4,3", "--model", str(PERSON_DETECT), "--workers", "0", "--json",
                 "--csv", str(csv_path), "--plot", str(png))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("\n") == 1
    out = json.loads(p.stdout)
    rows = out["rows"]
    assert len(rows) == 8 and [r["cell"] for r in rows] == list(range(8))
    assert out["counts"]["ok"] == 4 and out["counts"]["invalid"] == 4
    for r in rows:
        assert r["array_rows"] in (4, 8) and r["array_cols"] in (8, 16)
        if r["sram_banks"] == 3:
            assert r["status"] == "invalid" and "sram_bytes" in r["reason"]
        else:
            assert r["status"] == "ok" and r["cycles"] > 0 and 0 < r["utilization"] <= 1
    # Pareto: an ok row is on the front iff no other ok row has <= PEs and < latency
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        beaten = any(o["pes"] <= r["pes"] and o["latency_ms"] < r["latency_ms"] for o in ok)
        assert r["pareto"] is (not beaten)
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 8 and [int(t["cycles"] or 0) for t in table] == [
        r["cycles"] or 0 for r in rows]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _regress_rows_ok(out, models, presets):
    rows = out["rows"]
    assert out["models"] == models and out["passed"] is True
    assert len(rows) == len(models) * len(presets)
    for r in rows:
        assert r["config"] in presets
        if r["status"] == "ok":
            assert r["bit_exact"] is True and r["mismatched_elements"] == 0
        else:  # only "does not fit the preset's SRAM" may skip a cell
            assert r["status"] == "invalid" and "SRAM" in r["reason"], r["reason"]
    return rows


def test_cli_regress_given_models_on_presets(tmp_path):
    small = _small_model()
    path = tmp_path / small.name
    path.write_bytes(small.data)
    p = logicdie("regress", "--no-shipped", str(PERSON_DETECT), str(path), "--backend", "isa",
                 "--configs", "tiny,ice40", "--inputs", "2", "--workers", "0", "--json")
    assert p.returncode == 0, p.stderr
    rows = _regress_rows_ok(json.loads(p.stdout), [PD.name, small.name], ["tiny", "ice40"])
    by = {(r["model"], r["config"]): r for r in rows}
    assert by[(PD.name, "ice40")]["status"] == "invalid"  # 128 KiB < person_detect's ~300 KB
    assert by[(small.name, "ice40")]["status"] == "ok"
    assert all(r["inputs_checked"] == 2 for r in rows if r["status"] == "ok")


@pytest.mark.full
def test_cli_regress_every_shipped_model_on_every_preset():
    p = logicdie("regress", "--backend", "isa", "--json", timeout=3000)
    assert p.returncode == 0, p.stderr
    from hw.config import PRESETS

    _regress_rows_ok(json.loads(p.stdout), [m.name for m in sweep.shipped_models()],
                     list(PRESETS))


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--set", "bogus=1", "--workers", "0"],
        ["sweep", "--set", "array_rows=4", "--scheduler", "127.0.0.1:8786"],
        ["sweep", "--configs", "huge", "--workers", "0"],
        ["sweep", "--model", "/nonexistent.tflite", "--workers", "0"],
        ["sweep", "--plot", "x.txt", "--workers", "0"],
        ["regress", "--no-shipped", "--workers", "0"],
        ["regress", "--backend", "golden", "--workers", "0"],
    ],
)
def test_cli_bad_input_one_line_exit_2(args):
    p = logicdie(*args)
    assert p.returncode == 2
    assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, p.stderr
