"""Requant pipeline (hw/requant.py) cosimulated with cocotb on Verilator against
models/requant.py."""

import pytest

from hw.config import preset
from hw.requant import Requant
from sim.cocotb_run import run_cocotb


@pytest.mark.parametrize("lanes, beats", [
    pytest.param(preset("tiny").array_cols, 400, id="tiny"),
    pytest.param(preset("ecp5").array_cols, 1500, id="ecp5", marks=pytest.mark.full),
])
def test_requant(lanes, beats):
    run_cocotb(Requant(lanes), "requant", "tests.hw.tb_requant",
               {"lanes": lanes, "seed": 7 + lanes, "beats": beats})
