"""GEMM engine (hw/gemm.py) cosimulated with cocotb on Verilator against models/gemm.py."""

import pytest

from hw.config import preset
from hw.gemm import top
from sim.cocotb_run import run_cocotb

CASES = [
    pytest.param(preset("tiny"), 2, id="tiny"),
    pytest.param(preset("tiny").replace(array_rows=3, array_cols=2), 2, id="3x2"),
    pytest.param(preset("ecp5"), 3, id="ecp5", marks=pytest.mark.full),
    pytest.param(preset("ice40"), 3, id="ice40", marks=pytest.mark.full),
    pytest.param(preset("tiny").replace(array_rows=2, array_cols=5), 3, id="2x5",
                 marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg, rounds", CASES)
def test_gemm(cfg, rounds):
    run_cocotb(top(cfg), "gemm", "tests.hw.tb_gemm",
               {"config": cfg.to_dict(), "seed": cfg.pes + 3, "rounds": rounds})
