"""LOAD / STORE units (hw/dma.py) cosimulated with cocotb on Verilator against IsaSim; the
bench's bounded waits against a deliberately stuck unit."""

import random

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring

from hw.config import preset
from hw.dma import LoadUnit, StoreUnit
from sim.cocotb_run import run_cocotb
from tests.hw.tb_dma import gen_store

SMALL = preset("tiny").replace(sram_bytes=64 * 1024)

CASES = [
    pytest.param(SMALL, "load", 40, 0.7, id="tiny-load"),
    pytest.param(SMALL, "store", 60, 0.7, id="tiny-store"),
    pytest.param(preset("ecp5"), "load", 80, 0.8, id="ecp5-load", marks=pytest.mark.full),
    # issue 18: this seed drew a COPY whose spans left no room for a non-overlapping source,
    # and the bench's old draw-until-it-fits loop spun forever (the unit was never stuck)
    pytest.param(preset("ecp5"), "store", 150, 0.8, id="ecp5-store", marks=pytest.mark.full),
    pytest.param(preset("ice40"), "store", 100, 0.5, id="ice40-store", marks=pytest.mark.full),
    pytest.param(SMALL, "store", 100, 1.0, id="tiny-store-fullrate", marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg, unit, n, ready", CASES)
def test_dma(cfg, unit, n, ready):
    cls = LoadUnit if unit == "load" else StoreUnit
    run_cocotb(cls(cfg), unit, "tests.hw.tb_dma",
               {"config": cfg.to_dict(), "unit": unit, "seed": n + len(unit), "n": n,
                "ready": ready}, testcase="dma_random")


def test_gen_store_terminates():
    """The COPY/FILL generator always returns (no unbounded retry), with spans in the region and
    a source never overlapping its destination, for every seed and span size it draws."""
    region = 8192
    for seed in range(300):
        rng = random.Random(seed)
        for _ in range(100):
            ins = gen_store(rng, region)
            rows, rb = ins["rows"], ins["row_bytes"]
            dspan = (ins.get("planes", 1) - 1) * ins.get("dst_plane_stride", 0) \
                + (rows - 1) * ins["dst_row_stride"] + rb
            assert 0 <= ins["dst_addr"] and ins["dst_addr"] + dspan <= region
            if "src_addr" in ins:
                sspan = (ins["planes"] - 1) * ins["src_plane_stride"] \
                    + (rows - 1) * ins["src_row_stride"] + rb
                s, d = ins["src_addr"], ins["dst_addr"]
                assert 0 <= s and s + sspan <= region
                assert s + sspan <= d or d + dspan <= s, ins


class StuckUnit(wiring.Component):
    """``unit`` (same ports) made to hang: ``mode="idle"``: from its first command handshake on,
    ``idle`` and ``cmd.ready`` stay low (an instruction that never completes); ``mode="ready"``:
    ``cmd.ready`` stays low (a unit that never takes a command)."""

    def __init__(self, unit, mode: str):
        assert mode in ("idle", "ready")
        self.unit, self.mode = unit, mode
        super().__init__(dict(unit.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        for name in ("rd", "wr", "buf"):
            if hasattr(u, name):
                wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(u, name))
        hold = Signal()
        if self.mode == "idle":
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += hold.eq(1)
        else:
            m.d.comb += hold.eq(1)
        m.d.comb += [
            u.cmd.payload.eq(self.cmd.payload),
            u.cmd.valid.eq(self.cmd.valid & ~(hold if self.mode == "ready" else 0)),
            self.cmd.ready.eq(u.cmd.ready & ~hold),
            self.idle.eq(u.idle & ~(hold if self.mode == "idle" else 0)),
            self.stall.eq(u.stall), self.macs.eq(u.macs), self.error.eq(u.error),
        ]
        return m


@pytest.mark.parametrize("mode, wait", [("idle", "STORE idle after"),
                                        ("ready", "STORE cmd.ready for")])
def test_stuck_unit_fails_bench(mode, wait):
    """A STORE unit that never returns idle / never takes its command fails the DMA bench with a
    StuckError naming the wait, the instruction and the unit's state, within the cycle bound
    (tb_dma.dma_stuck checks the cycles) instead of hanging."""
    rundir = run_cocotb(StuckUnit(StoreUnit(SMALL), mode), "store", "tests.hw.tb_dma",
                        {"config": SMALL.to_dict(), "unit": "store", "seed": 3, "stuck": mode},
                        testcase="dma_stuck")
    waited, msg = (rundir / "stuck.txt").read_text().splitlines()[:2]
    assert msg.startswith(wait) and "{'opcode': <Opcode." in msg, msg
    assert "not within" in msg and "saw cycle" in msg and "cmd.ready=0" in msg, msg
    print(f"{mode}: failed after {waited} cycles: {msg}")
