"""Synthesis flow (sw/synth.py, `logicdie synth`): per-block area from yosys's hierarchy statistics,
the analytical estimate, the CLI; a small yosys smoke test in CI, full PnR in full."""

import json
import re
import sys
from pathlib import Path

import pytest

from hw.config import preset
from hw.errors import UserError
from sw import synth as sy
from sw.cli import main
from sw.synth import estimate, parse_stat, synth
from tests.sw.cli_util import logicdie

KEYS = {"target", "device", "fmax_mhz", "luts", "ffs", "dsps", "brams", "meets_timing", "top",
        "config"}
RES = ("luts", "ffs", "dsps", "brams")
DATA = Path(__file__).parent / "data"


def _sum_blocks(blocks):
    return {k: sum(b[k] for b in blocks.values()) for k in RES}


def test_parse_stat_of_a_real_yosys_run_into_blocks():
    """Fixture: yosys 0.70 `stat -json` of the tiny GEMM top for ECP5 (the command that produced
    it is stored with it). Each kept module lands in its block, the blocks add up to yosys's own
    hierarchy totals, and the counts are the fixture's raw cells."""
    fx = json.loads((DATA / "synth_stat_gemm_tiny_ecp5.json").read_text())
    stat = fx["stat"]
    blocks, totals = parse_stat(stat, "gemm", "ecp5")
    assert set(blocks) == {"shell", "gemm_ctrl", "systolic", "requant"}
    assert _sum_blocks(blocks) == {k: totals[k] for k in RES}
    raw = stat["modules"]["\\top.dut.engine.array"]["num_cells_by_type"]
    cfg = preset("tiny")
    # one MULT18X18D per PE (docs/array.md); LUT4 sites = LUT4 + 2 per CCU2C (+4 per LUT-RAM)
    assert blocks["systolic"]["dsps"] == raw["MULT18X18D"] == cfg.array_rows * cfg.array_cols
    assert blocks["systolic"]["luts"] == raw["LUT4"] + 2 * raw.get("CCU2C", 0) \
        + 4 * raw.get("TRELLIS_DPR16X4", 0)
    assert blocks["systolic"]["ffs"] == raw["TRELLIS_FF"]
    design = stat["design"]["num_cells_by_type"]
    assert totals["ffs"] == design["TRELLIS_FF"] and totals["dsps"] == design["MULT18X18D"]
    with pytest.raises(UserError):
        parse_stat({"modules": {}}, "gemm", "ecp5")


def test_block_mapping_is_the_same_block_in_every_top():
    assert sy.block_of("top.dut.npu.conv.engine.array", "soc") == "systolic"
    assert sy.block_of("top.dut.conv.engine.array", "npu") == "systolic"
    assert sy.block_of("top.dut.engine.array", "gemm") == "systolic"
    assert sy.block_of("top.dut.npu.sram", "soc") == sy.block_of("top.dut.sram", "npu") == "sram"
    assert sy.block_of("top.dut.load.mv.dfifo", "npu") == "dma"
    assert sy.block_of("top.dut.isp.fifo", "pixel") == sy.block_of("top.dut.isp", "soc") == "isp"
    assert sy.block_of("top", "soc") == "shell"
    assert sy.block_of("top.dut", "soc") == "csr" and sy.block_of("top.dut", "npu") == "npu_ctrl"
    # one unit alone (tops conv and vector): its modules map to the SoC's blocks
    assert sy.block_of("top.dut", "conv") == "conv"
    assert sy.block_of("top.dut.engine.array", "conv") == "systolic"
    assert sy.block_of("top.dut.rq", "conv") == "requant"
    assert sy.block_of("top.dut.engine.rq", "conv") == "requant"
    assert sy.block_of("top.dut", "vector") == sy.block_of("top.dut.respq", "vector") == "vector"
    mods = ["top", "top.dut", "top.dut.q0", "top.dut.sram", "top.dut.conv", "top.dut.conv.afifo"]
    assert sy.block_roots(mods, "npu") == ["top.dut", "top.dut.sram", "top.dut.conv"]


def test_estimate_shape_and_monotonicity():
    soc = estimate("ecp5", "ecp5", "soc")
    assert {"csr", "csi2_rx", "isp", "tensor_writer", "metadata_tx", "npu_ctrl", "sram", "dma",
            "vector", "conv", "systolic", "requant"} == set(soc["blocks"])
    assert set(estimate("ecp5", "tiny", "npu")["blocks"]) == {
        "npu_ctrl", "sram", "dma", "vector", "conv", "systolic", "requant"}
    assert set(estimate("ecp5", "tiny", "pixel")["blocks"]) == {"pixel_ctrl", "csi2_rx", "isp"}
    assert set(estimate("ecp5", "tiny", "conv")["blocks"]) == {"conv", "systolic", "requant"}
    assert set(estimate("ecp5", "tiny", "vector")["blocks"]) == {"vector"}
    assert set(estimate("ecp5", "tiny", "gemm")["blocks"]) == {"gemm_ctrl", "systolic",
                                                               "requant"}
    for r in (soc, estimate("ice40", "ice40", "gemm")):
        for b in r["blocks"].values():
            assert set(b) == set(RES) and all(isinstance(v, int) and v >= 0 for v in b.values())
        assert {k: r[k] for k in RES} == _sum_blocks(r["blocks"])
        assert set(r["capacity"]) == set(RES) and isinstance(r["fits"], bool)
    # the ECP5 preset's SRAM: 4 banks of 22528 x 32 bit; a DP16KD holds 1024 x 18 or 512 x 36
    # -> 44 per bank (22 x 2 or 44 x 1), 176 of the LFE5U-85F's 208
    assert soc["blocks"]["sram"]["brams"] == 4 * 44
    # every PE product of the ecp5 preset's array on a MULT18X18D; with Config.array_logic_rows
    # the last rows' products go to logic
    ecp5 = preset("ecp5")
    assert soc["blocks"]["systolic"]["dsps"] == ecp5.array_rows * ecp5.array_cols
    two = estimate("ecp5", ecp5.replace(array_logic_rows=2), "soc")["blocks"]["systolic"]
    assert two["dsps"] == (ecp5.array_rows - 2) * ecp5.array_cols
    base = preset("tiny")
    prev = None
    for n in (2, 4, 8, 16):
        r = estimate("ecp5", base.replace(array_rows=n, array_cols=n), "gemm")["blocks"]
        if prev:
            for b in ("systolic", "requant"):
                assert all(r[b][k] >= prev[b][k] for k in RES), (n, b)
            assert r["systolic"]["luts"] + r["systolic"]["ffs"] > \
                prev["systolic"]["luts"] + prev["systolic"]["ffs"]
        prev = r
    small = estimate("ecp5", base.replace(sram_bytes=256 * 1024), "npu")["blocks"]["sram"]
    big = estimate("ecp5", base.replace(sram_bytes=2 * 1024 * 1024), "npu")["blocks"]["sram"]
    assert big["brams"] == 8 * small["brams"] > 0


def test_estimate_reports_its_error_against_yosys():
    ce = estimate("ecp5", "tiny", "gemm")["calibration_error"]
    assert set(ce) == {"fit", "loo", "loo_max", "points"} and ce["points"] > 0
    assert set(ce["loo"]) == set(ce["loo_max"]) == set(RES)
    r = estimate("ecp5", "tiny", "gemm")      # a calibrated (target, top, config)
    assert set(r["estimate_error"]) == {"gemm_ctrl", "systolic", "requant"}
    assert r["estimate_error"]["systolic"]["dsps"] == 0.0  # one multiplier per PE: exact


def test_cli_estimate_json_and_plot(tmp_path):
    png = tmp_path / "area.png"
    p = logicdie("synth", "--target", "ecp5", "--config", "ecp5", "--top", "soc", "--estimate",
                 "--plot", str(png), "--json", timeout=120)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert {"target", "device", "top", "config", "blocks", "luts", "ffs", "dsps", "brams",
            "capacity", "fits", "calibration_error"} <= set(r) and r["estimate"] is True
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    p = logicdie("synth", "--target", "ice40", "--top", "gemm", "--estimate", timeout=120)
    assert p.returncode == 0 and "systolic" in p.stdout and "error vs yosys" in p.stdout


@pytest.mark.parametrize("argv", [
    ["--estimate", "--flat"],
    ["--estimate", "--no-pnr"],
    ["--estimate", "--top", "nope"],
    ["--flat", "--plot", "x.png"],
    ["--estimate", "--plot", "/nonexistent-dir/x.png"],
    ["--freq", "fast"],
    ["--freq", "0"],
    ["--estimate", "--freq", "150"],
    ["--router", "router3"],
    ["--estimate", "--router", "router2"],
    ["--placer", "annealing"],
    ["--estimate", "--placer", "static"],
    ["--placements", "0"],
    ["--placements", "two"],
    ["--estimate", "--placements", "2"],
    ["--estimate", "--endpoints"],
    ["--no-pnr", "--endpoints"],
    ["--speed", "9"],
    ["--estimate", "--speed", "8"],
    ["--no-pnr", "--speed", "8"],
])
def test_cli_synth_errors_are_one_line(argv, capsys, tmp_path):
    assert main(["synth", "--target", "ecp5", "--config", "tiny", *argv, "--json"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1


def _r2(it: int, over: int) -> str:
    return f"Info:     iter={it} wires=1328827 overused={over} overuse={over} archfail=NA"


def test_pnr_defaults_by_design_size():
    """Big ecp5 designs (the die: ~62k yosys LUTs) get the static placer (and router1), small
    ones (the GEMM tops, single units) HeAP and router1; ice40 always HeAP and router1."""
    from sw.synth import TARGETS, pnr_defaults

    big = TARGETS["ecp5"]["big"]["luts"]
    assert pnr_defaults("ecp5", 62_000) == ("static", "router1") == pnr_defaults("ecp5", big)
    assert pnr_defaults("ecp5", big - 1) == ("heap", "router1") == pnr_defaults("ecp5", 6_000)
    assert pnr_defaults("ice40", 62_000) == ("heap", "router1")


def _fake_nextpnr(work, fewest, fail=()):
    """A stand-in for synth's nextpnr call: placing writes a placement whose settings name
    router2; router2 on seed s feeds the watch a curve bottoming at fewest[s] and then diverging
    (the watch's verdict stops it), or fails outright for seeds in ``fail``, or routes when
    fewest[s] is 0; router1 checks the placement now names router1 and writes the report."""
    from hw.errors import UserError
    from sw.synth import _Stalled

    calls = []

    def nextpnr(*args, log="nextpnr.log", label="", stall=None, s=1):
        router = args[args.index("--router") + 1]
        calls.append((s, "place" if "--no-route" in args else router))
        if "--no-route" in args:
            (work / args[args.index("--write") + 1]).write_text(
                json.dumps({"settings": {"router": "router2", "seed": str(s)}}))
            return
        placed = work / args[args.index("--json") + 1]
        (work / log).write_text(f"{router} seed {s}\n")
        if router == "router2":
            if s in fail:
                raise UserError("nextpnr failed (exit 1): cannot route clock")
            tail = [fewest[s] * 2 + 60] * 20 if fewest[s] else []
            for it, over in enumerate([900, fewest[s]] + tail):
                reason = stall.see(_r2(it, over))
                if reason:
                    raise _Stalled(reason)
            assert fewest[s] == 0
        else:
            assert '"router": "router1"' in placed.read_text()
        (work / args[args.index("--report") + 1]).write_text(f"{{\"seed\": {s}}}")

    return nextpnr, calls


def test_router2_flow_tries_placements_then_router1_on_the_closest(tmp_path):
    """All placements stall: router1 routes the one router2 came closest on (seed 2 here), and
    the report lists each attempt; no saved placement is left behind."""
    from sw.synth import _place_and_route2

    nextpnr, calls = _fake_nextpnr(tmp_path, {1: 900, 2: 300, 3: 700})
    info = {"router": "router2"}
    _place_and_route2(tmp_path, nextpnr, "static", 1, 3, "rep.json", info, None)
    assert calls == [(1, "place"), (1, "router2"), (2, "place"), (2, "router2"), (3, "place"),
                     (3, "router2"), (2, "router1")]
    assert info["router"] == "router1" and info["seed"] == 2 and "router2_failed" in info
    assert [a["fewest_overused"] for a in info["attempts"]] == [900, 300, 700]
    assert json.loads((tmp_path / "rep.json").read_text()) == {"seed": 2}
    assert not list(tmp_path.glob("placed-*"))
    assert all((tmp_path / f"nextpnr-router2-s{s}.log").exists() for s in (1, 2, 3))


def test_router2_flow_stops_at_the_first_routed_placement(tmp_path):
    from sw.synth import _place_and_route2

    nextpnr, calls = _fake_nextpnr(tmp_path, {5: 400, 6: 0})
    info = {"router": "router2"}
    _place_and_route2(tmp_path, nextpnr, "static", 5, 3, "rep.json", info, None)
    assert calls == [(5, "place"), (5, "router2"), (6, "place"), (6, "router2")]
    assert info["router"] == "router2" and info["seed"] == 6 and "router2_failed" not in info
    assert [a["router2"] for a in info["attempts"]][1] == "routed"
    assert not list(tmp_path.glob("placed-*"))


def test_router2_flow_failure_goes_straight_to_router1(tmp_path):
    """router2 failing outright (not a stall) would fail on any placement: router1 at once."""
    from sw.synth import _place_and_route2

    nextpnr, calls = _fake_nextpnr(tmp_path, {1: 0, 2: 0}, fail={1})
    info = {"router": "router2"}
    _place_and_route2(tmp_path, nextpnr, "static", 1, 2, "rep.json", info, None)
    assert calls == [(1, "place"), (1, "router2"), (1, "router1")]
    assert info["router"] == "router1" and "cannot route clock" in info["router2_failed"]


def test_router2_watch_stall_rules():
    """router2 counts as stalled after ROUTER2_STALL_ITERS iterations, or ROUTER2_STALL_S
    seconds, without a new minimum of overused wires, or once it diverges; a converging run (the
    routed die's tail) never does."""
    from sw.synth import ROUTER2_STALL_ITERS, ROUTER2_STALL_S, Router2Watch

    now = [0.0]
    w = Router2Watch(clock=lambda: now[0])
    # the routed die's tail (docs/fpga.md, session 16): new minima every few iterations
    tail = [(45, 25), (46, 22), (47, 26), (48, 23), (49, 21), (68, 6), (69, 3), (70, 3),
            (71, 3), (72, 2), (73, 2), (74, 3), (75, 1), (76, 1), (77, 1), (78, 1), (79, 0)]
    for it, over in tail:
        now[0] += 9.0
        assert w.see(_r2(it, over)) is None
    assert w.see("Info: Running router2...") is None
    w = Router2Watch(clock=lambda: now[0])
    assert w.see(_r2(20, 4300)) is None
    for k in range(1, ROUTER2_STALL_ITERS):
        assert w.see(_r2(20 + k, 4300 + k % 3)) is None
    reason = w.see(_r2(20 + ROUTER2_STALL_ITERS, 4301))
    assert reason and "4300" in reason and "iteration 20" in reason
    # diverging (a session-16 placement of the die): stopped before the iteration rule
    w = Router2Watch(clock=lambda: now[0])
    seen = [w.see(_r2(it, over)) for it, over in ((13, 11457), (14, 11218), (15, 11463),
                                                  (16, 11734), (17, 12238), (18, 13283),
                                                  (19, 14417), (20, 15990))]
    assert seen[:6] == [None] * 6 and seen[6] and "best 11218 at iteration 14" in seen[6]
    w = Router2Watch(clock=lambda: now[0])
    assert w.see(_r2(3, 500)) is None
    now[0] += ROUTER2_STALL_S - 1
    assert w.see(_r2(4, 600)) is None
    now[0] += 1
    assert w.see(_r2(5, 600))


def test_run_stops_a_stalled_router2(tmp_path):
    """_run kills the tool once the watch reports a stall, and raises with the reason."""
    import time

    from sw.synth import Router2Watch, _run, _Stalled

    script = tmp_path / "fake_nextpnr.py"
    script.write_text("import time\nfor k in range(1000):\n"
                      "    print(f'Info:     iter={k} wires=9 overused={500 + k} overuse=1', "
                      "flush=True)\n    time.sleep(0.05)\n")
    lines = []
    t0 = time.monotonic()
    with pytest.raises(_Stalled, match="best 500 at iteration 0"):
        _run([sys.executable, str(script)], tmp_path / "log", tmp_path, lines.append, "nextpnr",
             stall=Router2Watch(iters=5))
    assert time.monotonic() - t0 < 20      # stopped, not run to its end (50 s)
    assert "iter=5 " in (tmp_path / "log").read_text()


def test_cli_plot_to_a_directory_is_refused_before_synthesis(capsys, tmp_path):
    assert main(["synth", "--target", "ecp5", "--plot", str(tmp_path), "--json"]) == 2
    assert capsys.readouterr().out == ""


def test_synth_ice40_yosys_smoke(tmp_path):
    """ice40 preset GEMM through yosys synth_ice40 with the blocks kept: the report has the
    contract keys, the blocks add up to the totals, the DSPs are the requant's (docs/array.md: on
    iCE40 the array's products are logic so the UP5K's 8 DSPs serve the requant's 32x32 products),
    and the design is within the UP5K's DSP/LUT budget (place-and-route is in the full tier)."""
    r = synth("ice40", "ice40", "gemm", pnr=False, outdir=tmp_path)
    assert KEYS <= set(r)
    assert json.loads((tmp_path / "report.json").read_text())["luts"] == r["luts"]
    assert 0 < r["luts"] <= 5280 and r["dsps"] <= 8 and r["ffs"] > 0
    assert set(r["blocks"]) == {"shell", "gemm_ctrl", "systolic", "requant"}
    assert _sum_blocks(r["blocks"]) == {k: r[k] for k in RES}
    assert r["blocks"]["systolic"]["dsps"] == 0 and r["blocks"]["requant"]["dsps"] == 8
    assert set(r["estimate_error"]) == {"gemm_ctrl", "systolic", "requant"}


def test_synth_bad_input_is_a_user_error(capsys):
    with pytest.raises(UserError):
        synth("xc7", "tiny")
    with pytest.raises(UserError, match="speed grade"):
        synth("ice40", "tiny", speed=8)          # (before any Verilog or yosys)
    with pytest.raises(UserError, match="speed grade 5"):
        synth("ecp5", "tiny", speed=5)
    with pytest.raises(UserError):
        synth("ecp5", "tiny", top="nope")
    with pytest.raises(UserError):
        estimate("xc7", "tiny")
    assert main(["synth", "--target", "ecp5", "--config", "nope", "--json"]) == 2
    assert capsys.readouterr().out == ""


@pytest.mark.full
def test_synth_tiny_gemm_blocks_pnr_and_progress(tmp_path):
    """A real ECP5 run with place-and-route through the CLI: JSON alone on stdout, progress
    (elapsed time, yosys pass, nextpnr phase) on stderr, blocks summing to yosys's totals; the
    electrostatic placer (the 150 MHz test below keeps the default HeAP)."""
    p = logicdie("synth", "--target", "ecp5", "--config", "tiny", "--top", "gemm", "--json",
                 "--placer", "static", "--plot", str(tmp_path / "g.svg"), timeout=3600)
    r = json.loads(p.stdout)
    assert p.returncode in (0, 1) and r["fmax_mhz"] > 0
    assert r["pnr"] == {"placer": "static", "router": "router1", "seed": 1}   # small: router1
    cp = r["critical_path"]
    assert cp["ns"] == pytest.approx(1000 / r["fmax_mhz"], abs=0.01)    # (Fmax's 2 decimals)
    assert cp["from_block"] in r["blocks"] and cp["to_block"] in r["blocks"]
    hist = r["slack_histogram"]
    assert hist and hist[0]["slack_ns"][0] == pytest.approx(1000 / r["constraint_mhz"] - cp["ns"],
                                                             abs=0.01)
    assert "synth: yosys" in p.stderr and "synth: nextpnr" in p.stderr
    assert set(r["blocks"]) == {"shell", "gemm_ctrl", "systolic", "requant"}
    assert r["blocks"]["systolic"]["dsps"] == 16 == r["dsps"] - r["blocks"]["requant"]["dsps"]
    assert (tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.full
def test_synth_speed_grade_reaches_nextpnr(tmp_path):
    """The same top, seed and flow timed for speed grades 6 and 8: the fastest part's Fmax is
    higher (nextpnr's delay models differ; with the grade not passed on, the two deterministic
    runs would be equal), and the report and summary name the grade."""
    r6 = synth("ecp5", "tiny", "gemm", outdir=tmp_path / "s6")
    r8 = synth("ecp5", "tiny", "gemm", outdir=tmp_path / "s8", speed=8)
    assert r6["speed_grade"] == 6 and r8["speed_grade"] == 8
    assert r8["fmax_mhz"] > r6["fmax_mhz"] * 1.05
    assert "speed grade 8" in sy.summary(r8)


@pytest.mark.full
def test_synth_failing_endpoints_per_block(tmp_path):
    """--endpoints at a clock the tiny GEMM top cannot meet: every failing endpoint counted in
    one block of the report, the worst beyond the period, and the routed netlist removed."""
    r = synth("ecp5", "tiny", "gemm", freq_mhz=400, endpoints=True, outdir=tmp_path)
    fe = r["failing_endpoints"]
    assert not r["meets_timing"]
    assert fe["period_ns"] == 2.5 and 0 < fe["failing"] <= fe["endpoints"]
    assert sum(fe["by_block"].values()) == fe["failing"]
    assert set(fe["by_block"]) <= set(r["blocks"])
    assert fe["worst_ns"] > 2.5 and all(2.5 < w <= fe["worst_ns"] for *_, w in fe["registers"])
    assert {b for _, b, _, _ in fe["registers"]} <= set(fe["by_block"])
    assert "endpoints" in sy.summary(r)
    assert sum(n for _, _, n in fe["block_pairs"]) <= fe["failing"]
    assert fe["pairs"] and sum(n for _, _, n in fe["pairs"]) <= fe["failing"]
    assert not (Path(r["workdir"]) / "routed.json").exists()
    assert "detailed_net_timings" in json.loads((Path(r["workdir"]) / "nextpnr.json").read_text())


@pytest.mark.full
def test_synth_ecp5_meets_150mhz(capsys):
    """SPEC section 9: the ecp5 preset's GEMM top at 150 MHz (the die itself runs at 100 MHz)."""
    code = main(["synth", "--target", "ecp5", "--config", "ecp5", "--freq", "150", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert KEYS <= set(r) and r["constraint_mhz"] == 150
    assert r["meets_timing"] and r["fmax_mhz"] >= 150, r
    assert code == 0


@pytest.mark.full
def test_synth_router2_failure_falls_back_to_router1(tmp_path):
    """The ecp5 GEMM with the static placer and router2: router2 cannot route the clock from the
    general-purpose pin it lands on (docs/fpga.md); router1 routes the saved placement again and
    the report says so; the saved placement is deleted afterwards."""
    r = synth("ecp5", "ecp5", "gemm", outdir=tmp_path, placer="static", router="router2")
    assert r["pnr"]["router"] == "router1" and "router2_failed" in r["pnr"], r["pnr"]
    assert r["fmax_mhz"] > 0
    work = tmp_path / "gemm-ecp5"
    assert (work / "nextpnr-router2-s1.log").exists()
    assert (work / "nextpnr-place-s1.log").exists()
    assert not list(work.glob("placed-*.json"))


@pytest.mark.full
def test_synth_ecp5_soc_fits_with_room_to_route(tmp_path):
    """The whole ecp5 die under yosys (~4 min): within the LFE5U-85F, and at most 80 % of its
    LUTs -- the session-6 die packed to 92 % and did not route (docs/fpga.md)."""
    r = synth("ecp5", "ecp5", "soc", pnr=False, outdir=tmp_path)
    cap = r["capacity"]
    assert all(r[k] <= cap[k] for k in RES), {k: (r[k], cap[k]) for k in RES}
    assert r["luts"] <= 0.8 * cap["luts"], r["luts"]
    assert r["luts"] == sum(b["luts"] for b in r["blocks"].values())


@pytest.mark.full
@pytest.mark.timeout(5400)   # yosys + nextpnr of the whole die: the longest test of the tier
def test_synth_ecp5_soc_fits_lfe5u85f_at_100mhz(tmp_path):
    """Issue #13 / SPEC section 9: the whole ecp5 logic die (top soc) fits an LFE5U-85F and
    routes at >= 100 MHz, with per-block numbers that add up to yosys's totals. ecp5's default
    static placer (by its size) and router1: the die places in ~10 min and routes in ~28
    (docs/fpga.md, session 17)."""
    r = synth("ecp5", "ecp5", "soc", outdir=tmp_path)
    assert KEYS <= set(r) and r["constraint_mhz"] == 100
    assert r["meets_timing"] and r["fmax_mhz"] >= 100, r
    cap = r["capacity"]
    assert all(r[k] <= cap[k] for k in RES), {k: (r[k], cap[k]) for k in RES}
    assert {"vector", "conv", "systolic", "requant", "sram", "isp", "csi2_rx",
            "metadata_tx"} <= set(r["blocks"])


@pytest.mark.full
def test_synth_ice40_fits_up5k(tmp_path):
    r = synth("ice40", "ice40", "gemm", outdir=tmp_path)
    assert r["luts"] <= 5280 and r["dsps"] <= 8 and r["brams"] <= 30 + 4
    assert r["meets_timing"], r


def test_sweep_area_column_is_the_npu_estimate():
    from models.zoo.generate import float_io_model
    from sw import sweep

    model = sweep.ModelSource("float_io_16.tflite", float_io_model((16, 16), 3, 4, seed=3))
    cells = sweep.expand_grid(["tiny"], [sweep.parse_set("array_rows=2,8")], [model], ["isa"])
    rows = [sweep.run_cell(c.to_task(), model.data) for c in cells]
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    for c, r in zip(cells, rows, strict=True):
        est = estimate("ecp5", preset("tiny").replace(**c.overrides), "npu")
        assert r["area"] == est["luts"] > 0
    assert rows[1]["area"] > rows[0]["area"]


def test_summary_names_the_pnr_run():
    """The readable summary says which placer, router and seed routed the design, and what
    router2 reached on the placements it did not route."""
    from sw.synth import summary

    r = {"top": "soc", "config": "ecp5", "device": "LFE5U-85F", "target": "ecp5",
         "fmax_mhz": 61.5, "meets_timing": False, "constraint_mhz": 100, "pnr_s": 2700.0,
         "pnr": {"placer": "static", "router": "router1", "seed": 2,
                 "attempts": [{"seed": 1, "router2": "stalled", "fewest_overused": 1727},
                              {"seed": 2, "router2": "stalled", "fewest_overused": 420},
                              {"seed": 3, "router2": "failed (exit 1)", "fewest_overused": None}]}}
    line = next(x for x in summary(r).splitlines() if x.strip().startswith("PnR"))
    assert "static placer, router1, seed 2" in line and "seed 1: 1727" in line
    assert "seed 2: 420" in line and "seed 3: failed" in line and "45m" in line


def test_critical_path_and_slack_histogram_of_a_real_die_run():
    """Fixture: nextpnr's report and log of whole-die runs (stored with their provenance). The
    path's delays add up to the period of nextpnr's own Fmax, its ends are the vector unit's
    registers the report names, and the histogram starts at the worst path's slack."""
    from sw.synth import critical_path, slack_histogram

    fx = json.loads((DATA / "nextpnr_soc_ecp5.json").read_text())
    rep = fx["report"]
    cp = critical_path(rep, "soc")
    (fmax,) = (v["achieved"] for v in rep["fmax"].values())
    assert cp["ns"] == pytest.approx(1000 / fmax, abs=0.01)      # (2-decimal rounding only)
    assert cp["logic_ns"] + cp["routing_ns"] == pytest.approx(cp["ns"], abs=0.02)
    steps = max(rep["critical_paths"], key=lambda c: len(c["path"]))["path"]
    assert cp["from"] == "dut.npu." + steps[0]["from"]["cell"].split("dut.npu.", 1)[1].replace(
        "_TRELLIS_FF_Q", "")
    assert cp["from_block"] == cp["to_block"] == "vector" and cp["to"].startswith("dut.npu.vec.")
    assert critical_path({"critical_paths": []}, "soc") is None

    hist = slack_histogram("Info: noise\n" + fx["log_tail"])
    fmax2 = float(re.search(r"Max frequency for clock '[^']+': ([\d.]+) MHz", fx["log_tail"])[1])
    worst = 10.0 - 1000 / fmax2          # the slack of the 100 MHz constraint's worst path
    # the first bin starts at the worst slack (to the printed Fmax's 2 decimals: +-3 ps here)
    assert hist[0]["slack_ns"][0] == pytest.approx(worst, abs=0.005)
    assert hist[0]["endpoints"][0] >= 1
    assert all(a["slack_ns"][1] == b["slack_ns"][0] for a, b in zip(hist, hist[1:], strict=False))
    assert all(lo <= hi for lo, hi in (b["endpoints"] for b in hist))
    assert slack_histogram("no histogram here") == []


def test_slack_histogram_counts_stars_and_plus():
    """Each '*' is the legend's number of endpoints, a '+' between 1 and that number less one."""
    from sw.synth import slack_histogram

    text = ("Info: Slack histogram:\nInfo:  legend: * represents 10 endpoint(s)\n"
            "Info:          + represents [1,10) endpoint(s)\n"
            "Info: [ -2000,  -1000) |+\nInfo: [ -1000,      0) |***+\n"
            "Info: [     0,   1000) |****** \n\nInfo: Program finished normally.\n")
    assert slack_histogram(text) == [
        {"slack_ns": [-2.0, -1.0], "endpoints": [1, 9]},
        {"slack_ns": [-1.0, 0.0], "endpoints": [31, 39]},
        {"slack_ns": [0.0, 1.0], "endpoints": [60, 60]}]


def test_io_shell_reset_reaches_the_design():
    """The shell's pin reset (its `sync` domain's) resets the wrapped design, a cycle later, and
    the inputs shift in through the chain. Fails on a shell whose reset register is itself held
    by the reset it samples (what the shell had until session 18: the design was never reset)."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from amaranth.sim import Simulator

    class Counter(wiring.Component):
        en: In(1)
        count: Out(8)

        def elaborate(self, platform):
            m = Module()
            with m.If(self.en):
                m.d.sync += self.count.eq(self.count + 1)
            return m

    inner = Counter()
    shell = sy.IOShell(inner)
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.shell = shell
    seen = {}

    async def bench(ctx):
        ctx.set(shell.sin, 1)                   # en = 1 once it has shifted through the chain
        await ctx.tick().repeat(40)
        seen["before"] = ctx.get(inner.count)
        ctx.set(cd.rst, 1)
        for _ in range(3):                      # (single ticks: `repeat` raises on a reset)
            await ctx.tick()
        ctx.set(cd.rst, 0)
        await ctx.tick()                        # the shell's reset register lets go
        seen["after"] = ctx.get(inner.count)
        await ctx.tick().repeat(5)
        seen["later"] = ctx.get(inner.count)

    sim = Simulator(top)
    sim.add_clock(1e-8, domain="sync")
    sim.add_testbench(bench)
    sim.run()
    assert seen["before"] >= 30                 # counting: the input reached `en`
    assert seen["after"] <= 1                   # the reset reached the design
    assert seen["later"] == seen["after"] + 5   # and counting again (the chain holds 1s)
