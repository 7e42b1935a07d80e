"""Systolic array (hw/systolic.py) cosimulated with cocotb on Verilator against
models/systolic.py."""

import pytest

from hw.config import preset
from hw.systolic import SystolicArray
from sim.cocotb_run import run_cocotb


@pytest.mark.parametrize("rows, cols", [
    pytest.param(4, 4, id="tiny"),
    pytest.param(3, 5, id="3x5"),
    pytest.param(8, 8, id="ecp5", marks=pytest.mark.full),
    pytest.param(5, 2, id="5x2", marks=pytest.mark.full),
])
def test_systolic(rows, cols):
    cfg = preset("tiny").replace(array_rows=rows, array_cols=cols)
    run_cocotb(SystolicArray(cfg), "systolic", "tests.hw.tb_systolic",
               {"rows": rows, "cols": cols, "seed": 11 * rows + cols, "tiles": 30})
