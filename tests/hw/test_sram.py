"""Banked SRAM and arbiters (hw/sram.py) cosimulated with cocotb on Verilator against a model."""

import pytest

from hw.config import preset
from hw.sram import Sram
from sim.cocotb_run import run_cocotb

SMALL = preset("tiny").replace(sram_bytes=16 * 1024)

CASES = [
    pytest.param(SMALL, 3, 2, False, 3000, None, id="tiny-rr"),
    pytest.param(SMALL, 4, 3, True, 3000, None, id="tiny-prio"),
    # two read ports (Config.sram_read_ports = 2: the NPU's vector unit reads alone on port 1)
    pytest.param(SMALL, 4, 2, True, 3000, (0, 0, 1, 1), id="tiny-2ports"),
    # the requests registered before the banks (Config.sram_read_latency = 3), and the banks
    # split into registered sub-banks (4, the ecp5 preset: 3 sub-banks of 2048 lines, the last
    # one short)
    pytest.param(SMALL.replace(sram_read_latency=3), 4, 3, True, 3000, (0, 0, 0, 1),
                 id="tiny-lat3"),
    pytest.param(SMALL.replace(sram_bytes=5 * 2048 * 16 // 2, sram_read_latency=4), 3, 2, False,
                 3000, (0, 1, 1), id="tiny-lat4"),
    # registered grants (Config.sram_arbiter_stages = 1, the ecp5 preset), with and without the
    # backdoor's priority
    pytest.param(SMALL.replace(sram_read_latency=4, sram_arbiter_stages=1), 4, 3, False, 3000,
                 (0, 0, 0, 1), id="tiny-grant1"),
    pytest.param(SMALL.replace(sram_arbiter_stages=1), 4, 3, True, 3000, None,
                 id="tiny-grant1-prio"),
    # and each master's accepted request registered at its port, the grant moving on the
    # previous cycle's requests (2, the ecp5 preset)
    pytest.param(SMALL.replace(sram_read_latency=4, sram_arbiter_stages=2), 4, 3, False, 3000,
                 (0, 0, 0, 1), id="tiny-grant2"),
    pytest.param(SMALL.replace(sram_arbiter_stages=2), 4, 3, True, 3000, None,
                 id="tiny-grant2-prio"),
    pytest.param(preset("ice40").replace(sram_bytes=8 * 1024), 6, 4, True, 4000, None, id="ice40",
                 marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg, nr, nw, prio, cycles, groups", CASES)
def test_sram(cfg, nr, nw, prio, cycles, groups):
    run_cocotb(Sram(cfg, nr, nw, priority0=prio, read_groups=groups), "sram", "tests.hw.tb_sram",
               {"config": cfg.to_dict(), "n_read": nr, "n_write": nw, "priority0": prio,
                "seed": nr * 10 + nw, "cycles": cycles, "read_groups": groups})
