"""sw.pnr_endpoints: the approximate per-endpoint timing of a routed netlist, on a hand-made one."""

import json

import pytest

from sw import pnr_endpoints as pe


def _design():
    """ff_a -> lut1 -> lut2 -> ff_b (D); ff_a -> carry c1 -(FCI)-> c2 -> ff_b (CE);
    ff_b -> lutram write (WD) and read (RAD: not an endpoint); a multiplier -> ff_c."""
    cells = {
        "ff_a[0]_TRELLIS_FF_Q": {"type": "TRELLIS_FF"},
        "lut1": {"type": "TRELLIS_COMB", "parameters": {"MODE": "LOGIC"}},
        "lut2": {"type": "TRELLIS_COMB", "parameters": {"MODE": "LOGIC"}},
        "c1": {"type": "TRELLIS_COMB", "parameters": {"MODE": "CCU2"}},
        "c2": {"type": "TRELLIS_COMB", "parameters": {"MODE": "CCU2"}},
        "ff_b[3]_TRELLIS_FF_Q": {"type": "TRELLIS_FF"},
        "ram$DPRAM_COMB0": {"type": "TRELLIS_COMB", "parameters": {"MODE": "DPRAM"}},
        "\\$mul7_MULT18X18D_P0": {"type": "MULT18X18D"},
        "ff_c[1]_TRELLIS_FF_Q": {"type": "TRELLIS_FF"},
    }

    def net(driver, *sinks):
        return {"driver": driver, "port": "Q", "net": driver + "_o",
                "endpoints": [{"cell": c, "port": p, "delay": [d, d]} for c, p, d in sinks]}

    nets = [
        net("ff_a[0]_TRELLIS_FF_Q", ("lut1", "A", 1.0), ("c1", "A0", 0.5)),
        net("lut1", ("lut2", "B", 2.0)),
        net("lut2", ("ff_b[3]_TRELLIS_FF_Q", "DI", 0.5)),
        net("c1", ("c2", "FCI", 0.0)),
        net("c2", ("ff_b[3]_TRELLIS_FF_Q", "CE", 0.25)),
        net("ff_b[3]_TRELLIS_FF_Q", ("ram$DPRAM_COMB0", "WD0", 1.5),
            ("ram$DPRAM_COMB0", "RAD0", 7.0)),
        net("\\$mul7_MULT18X18D_P0", ("ff_c[1]_TRELLIS_FF_Q", "DI", 5.0)),
    ]
    return {"modules": {"top": {"cells": cells}}}, {"detailed_net_timings": nets}


def test_arrivals_follow_the_routed_paths():
    eps = {(e.cell, e.port): e for e in pe.endpoints(*_design())}
    # clock-to-out 0.52, LUTs 0.25 each, routed delays, setup 0.1
    assert eps[("ff_b[3]_TRELLIS_FF_Q", "DI")].arrival_ns == pytest.approx(
        0.52 + 1.0 + 0.25 + 2.0 + 0.25 + 0.5 + 0.1)
    # a carry cell 0.3, its carry input 0.05 more
    assert eps[("ff_b[3]_TRELLIS_FF_Q", "CE")].arrival_ns == pytest.approx(
        0.52 + 0.5 + 0.3 + 0.0 + 0.05 + 0.3 + 0.25 + 0.1)
    assert eps[("ff_b[3]_TRELLIS_FF_Q", "DI")].start == "ff_a[0]_TRELLIS_FF_Q"
    # a LUT-RAM write is an endpoint, its read address is not
    assert eps[("ram$DPRAM_COMB0", "WD0")].arrival_ns == pytest.approx(0.52 + 1.5 + 0.1)
    assert ("ram$DPRAM_COMB0", "RAD0") not in eps
    # a multiplier (no reported inputs) starts its path: its net's delay is the sink's arrival
    assert eps[("ff_c[1]_TRELLIS_FF_Q", "DI")].arrival_ns == pytest.approx(5.0 + 0.1)


def test_registered_multiplier_ends_and_starts_paths():
    """A MULT18X18D with input and output registers: its inputs are endpoints (the path into
    it is not added to the path out of it), its output starts a path with the net's arrival."""
    cells = {
        "ff_a[0]_TRELLIS_FF_Q": {"type": "TRELLIS_FF"},
        "lut1": {"type": "TRELLIS_COMB", "parameters": {"MODE": "LOGIC"}},
        "m_dsp": {"type": "MULT18X18D", "parameters": {"REG_INPUTA_CLK": "CLK0",
                                                      "REG_OUTPUT_CLK": "CLK0"}},
        "ff_c[1]_TRELLIS_FF_Q": {"type": "TRELLIS_FF"},
    }
    nets = [
        {"driver": "ff_a[0]_TRELLIS_FF_Q", "endpoints": [
            {"cell": "lut1", "port": "A", "delay": [1.0, 1.0]}]},
        {"driver": "lut1", "endpoints": [
            {"cell": "m_dsp", "port": "A0", "delay": [4.0, 4.0]},
            {"cell": "m_dsp", "port": "CE1", "delay": [2.0, 2.0]}]},
        {"driver": "m_dsp", "endpoints": [
            {"cell": "ff_c[1]_TRELLIS_FF_Q", "port": "M", "delay": [6.0, 6.0]}]},
    ]
    eps = {(e.cell, e.port): e for e in pe.endpoints({"modules": {"top": {"cells": cells}}},
                                                     {"detailed_net_timings": nets})}
    assert eps[("m_dsp", "A0")].arrival_ns == pytest.approx(0.52 + 1.0 + 0.25 + 4.0 + 0.1)
    assert eps[("m_dsp", "CE1")].start == "ff_a[0]_TRELLIS_FF_Q"
    assert eps[("ff_c[1]_TRELLIS_FF_Q", "M")].arrival_ns == pytest.approx(6.0 + 0.1)
    assert eps[("ff_c[1]_TRELLIS_FF_Q", "M")].start == "m_dsp"


def test_group_by_register_and_pair():
    eps = pe.endpoints(*_design())
    g = pe.group(eps, period_ns=4.5)
    assert g["endpoints"] == 4 and g["failing"] == 2
    assert g["registers"][0][:2] == ("ff_b", 1) or g["registers"][0][:2] == ("ff_c", 1)
    names = {r[0] for r in g["registers"]}
    assert names == {"ff_b", "ff_c"}
    assert dict(g["pairs"]) == {("ff_a", "ff_b"): 1, ("\\$mul7_MULT18X18D_P0", "ff_c"): 1}


def test_cli(tmp_path, capsys):
    routed, det = _design()
    (tmp_path / "routed.json").write_text(json.dumps(routed))
    (tmp_path / "det.json").write_text(json.dumps(det))
    assert pe.main([str(tmp_path), "--period", "4.5"]) == 0
    out = capsys.readouterr().out
    assert "4 endpoints, 2 over 4.5 ns" in out and "ff_a -> ff_b" in out
    (tmp_path / "det.json").write_text(json.dumps({"critical_paths": []}))
    assert pe.main([str(tmp_path)]) == 2
    assert "detailed-timing-report" in capsys.readouterr().err


def test_group_by_block_on_soc_names():
    """With the design named, failing endpoints count per block by their hierarchical names."""
    from sw.synth import block_of_cell
    a, b = "dut.npu.vec.x[0]_TRELLIS_FF_Q", "dut.npu.conv.y[2]_TRELLIS_FF_Q"
    c = "dut.isp.z[1]_TRELLIS_FF_Q"
    eps = [pe.Endpoint(12.0, b, "DI", a), pe.Endpoint(11.0, c, "DI", c),
           pe.Endpoint(10.5, b, "CE", b), pe.Endpoint(9.0, a, "DI", a)]
    g = pe.group(eps, period_ns=10.0, design="soc")
    vb, cb, ib = (block_of_cell(x, "soc") for x in (a, b, c))
    assert len({vb, cb, ib}) == 3                  # three different blocks
    assert dict(g["blocks"]) == {cb: 2, ib: 1}
    assert dict(g["block_pairs"]) == {(vb, cb): 1, (ib, ib): 1, (cb, cb): 1}
    assert "blocks" not in pe.group(eps, period_ns=10.0)
