"""Conv unit (hw/conv_unit.py) cosimulated with cocotb on Verilator against sim.isa_sim.IsaSim."""

import json

import pytest

from hw.config import preset
from hw.conv_unit import ConvUnit
from sim.cocotb_run import run_cocotb

TINY = preset("tiny")
CASES = [
    pytest.param(TINY, {"count": 40}, None, id="tiny"),
    # the LAST requant time-shared over one lane (Config.last_requant_lanes, the ecp5 preset's)
    pytest.param(TINY.replace(last_requant_lanes=1), {"count": 24}, None, id="tiny-lastrq1"),
    # the weight buffer's read data registered before the shifter (Config.sram_read_latency = 4)
    pytest.param(TINY.replace(sram_read_latency=4), {"count": 24}, None, id="tiny-lat4"),
    # the walk's K tile / M block turn in a cycle of its own (Config.conv_walk_stages = 2) and
    # the output scatter's input register (Config.conv_out_stages = 2)
    pytest.param(TINY.replace(conv_walk_stages=2, conv_out_stages=2, sram_read_latency=4),
                 {"count": 24}, None, id="tiny-walk2"),
    pytest.param(preset("ecp5"), {"count": 80, "big": True}, None, id="ecp5",
                 marks=pytest.mark.full),
    pytest.param(TINY.replace(array_rows=3, array_cols=2), {"count": 80, "big": True}, None,
                 id="3x2", marks=pytest.mark.full),
    pytest.param(TINY.replace(array_rows=2, array_cols=5), {"count": 80, "big": True}, None,
                 id="2x5", marks=pytest.mark.full),
    # engine commands of two M blocks: every instruction with M > 64 is split
    pytest.param(TINY, {"count": 60, "big": True}, 64, id="tiny-split", marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg, extra, m_chunk", CASES)
def test_conv_unit(cfg, extra, m_chunk):
    params = {"config": cfg.to_dict(), "seed": cfg.pes + 11 + (m_chunk or 0), **extra}
    rundir = run_cocotb(ConvUnit(cfg, m_chunk=m_chunk), "conv_unit", "tests.hw.tb_conv_unit",
                        params)
    stats = json.loads((rundir / "conv_stats.json").read_text())
    assert len(stats) == extra["count"]
    perf = json.loads((rundir / "conv_perf.json").read_text())
    for r in perf:
        print(r)
