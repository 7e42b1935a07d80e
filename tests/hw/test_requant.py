"""Requant pipeline (hw/requant.py) cosimulated with cocotb on Verilator against
models/requant.py."""

import pytest

from hw.config import preset
from hw.requant import Requant, RequantCore
from sim.cocotb_run import run_cocotb


@pytest.mark.parametrize("lanes, stages, beats", [
    # CI: the light pipeline here; the full one is covered by the tiny GEMM bench.
    pytest.param(preset("tiny").array_cols, RequantCore.FULL, 400, id="tiny-full",
                 marks=pytest.mark.full),
    pytest.param(preset("ice40").array_cols, RequantCore.LIGHT, 400, id="ice40-light"),
    pytest.param(preset("ecp5").array_cols, RequantCore.FULL, 1500, id="ecp5",
                 marks=pytest.mark.full),
    pytest.param(preset("tiny").array_cols, RequantCore.LIGHT, 1500, id="tiny-light",
                 marks=pytest.mark.full),
])
def test_requant(lanes, stages, beats):
    dut = Requant(lanes, stages=stages)
    run_cocotb(dut, "requant", "tests.hw.tb_requant",
               {"lanes": lanes, "seed": 7 + lanes, "beats": beats, "latency": dut.latency})
