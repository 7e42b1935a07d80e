"""Depthwise / vector unit (hw/vector.py) cosimulated with cocotb on Verilator against IsaSim."""

import pytest

from hw.config import preset
from hw.vector import VectorUnit
from sim.cocotb_run import run_cocotb

CASES = [
    pytest.param(preset("tiny"), 30, False, 0.7, id="tiny"),
    pytest.param(preset("tiny"), 150, True, 0.8, id="tiny-more", marks=pytest.mark.full),
    pytest.param(preset("ecp5"), 60, True, 0.8, id="ecp5", marks=pytest.mark.full),
    # 16 lanes, 256-byte lines, 9 taps per command (Verilog ~1.2 MB, build ~2 min)
    pytest.param(preset("default"), 40, True, 0.8, id="default", marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg, n, big, ready", CASES)
def test_vector(cfg, n, big, ready):
    run_cocotb(VectorUnit(cfg), "vector", "tests.hw.tb_vector",
               {"config": cfg.to_dict(), "seed": n + cfg.vector_lanes, "n": n, "big": big,
                "edge": 0.3, "ready": ready, "wready": ready})
