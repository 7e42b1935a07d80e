"""Conv unit (hw/conv_unit.py) cosimulated with cocotb on Verilator against sim.isa_sim.IsaSim."""

import json

import pytest

from hw.config import preset
from hw.conv_unit import ConvUnit
from sim.cocotb_run import run_cocotb

CASES = [
    pytest.param(preset("tiny"), {"count": 32}, id="tiny"),
    pytest.param(preset("ecp5"), {"count": 60, "big": True}, id="ecp5", marks=pytest.mark.full),
    pytest.param(preset("tiny").replace(array_rows=3, array_cols=2), {"count": 60, "big": True},
                 id="3x2", marks=pytest.mark.full),
    pytest.param(preset("tiny").replace(array_rows=2, array_cols=5), {"count": 60, "big": True},
                 id="2x5", marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg, extra", CASES)
def test_conv_unit(cfg, extra):
    params = {"config": cfg.to_dict(), "seed": cfg.pes + 11, **extra}
    rundir = run_cocotb(ConvUnit(cfg), "conv_unit", "tests.hw.tb_conv_unit", params)
    perf = json.loads((rundir / "conv_perf.json").read_text())
    for r in perf:
        print(r)
