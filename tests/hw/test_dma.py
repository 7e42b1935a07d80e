"""LOAD / STORE units (hw/dma.py) cosimulated with cocotb on Verilator against IsaSim."""

import pytest

from hw.config import preset
from hw.dma import LoadUnit, StoreUnit
from sim.cocotb_run import run_cocotb

SMALL = preset("tiny").replace(sram_bytes=64 * 1024)

CASES = [
    pytest.param(SMALL, "load", 40, 0.7, id="tiny-load"),
    pytest.param(SMALL, "store", 60, 0.7, id="tiny-store"),
    pytest.param(preset("ecp5"), "load", 80, 0.8, id="ecp5-load", marks=pytest.mark.full),
    pytest.param(preset("ecp5"), "store", 150, 0.8, id="ecp5-store", marks=pytest.mark.full),
    pytest.param(preset("ice40"), "store", 100, 0.5, id="ice40-store", marks=pytest.mark.full),
    pytest.param(SMALL, "store", 100, 1.0, id="tiny-store-fullrate", marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg, unit, n, ready", CASES)
def test_dma(cfg, unit, n, ready):
    cls = LoadUnit if unit == "load" else StoreUnit
    run_cocotb(cls(cfg), unit, "tests.hw.tb_dma",
               {"config": cfg.to_dict(), "unit": unit, "seed": n + len(unit), "n": n,
                "ready": ready})
