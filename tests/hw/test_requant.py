"""Requant pipeline (hw/requant.py) cosimulated with cocotb on Verilator against
models/requant.py."""

import pytest

from hw.config import preset
from hw.requant import Requant, RequantCore, SerialRequant
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


@pytest.mark.parametrize("lanes, core_lanes, beats", [
    pytest.param(8, 1, 300, id="8on1"),       # one lane for eight columns
    pytest.param(4, 2, 300, id="4on2", marks=pytest.mark.full),
    pytest.param(preset("ecp5").array_cols, 1, 300, id="ecp5", marks=pytest.mark.full),
])
def test_serial_requant(lanes, core_lanes, beats):
    """hw.requant.SerialRequant: the same streams as Requant, bit-exact with models/requant.py,
    one beat per lanes / core_lanes cycles at full rate."""
    dut = SerialRequant(lanes, core_lanes, stages=RequantCore.FULL)
    run_cocotb(dut, "serial_requant", "tests.hw.tb_requant",
               {"lanes": lanes, "seed": 3 + lanes, "beats": beats, "latency": dut.latency,
                "phases": dut.phases})
