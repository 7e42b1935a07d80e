"""Systolic array (hw/systolic.py) cosimulated with cocotb on Verilator against
models/systolic.py."""

import random

import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.config import preset
from hw.systolic import SystolicArray, registered_mul
from sim.cocotb_run import run_cocotb


@pytest.mark.parametrize("rows, cols", [
    pytest.param(4, 4, id="tiny"),
    pytest.param(3, 5, id="3x5", marks=pytest.mark.full),
    pytest.param(8, 8, id="ecp5", marks=pytest.mark.full),
    pytest.param(5, 2, id="5x2", marks=pytest.mark.full),
])
def test_systolic(rows, cols):
    cfg = preset("tiny").replace(array_rows=rows, array_cols=cols)
    run_cocotb(SystolicArray(cfg), "systolic", "tests.hw.tb_systolic",
               {"rows": rows, "cols": cols, "seed": 11 * rows + cols, "tiles": 30})


class _Mul(wiring.Component):
    """registered_mul under a given (fake) platform, for the Amaranth simulator."""

    a: In(signed(8))
    b: In(signed(8))
    p: Out(signed(16))

    def __init__(self, family):
        self.family = family
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        fake = type("P", (), {"dsp_family": self.family})()
        m.d.comb += self.p.eq(registered_mul(m, fake, self.a, self.b, "mul"))
        return m


@pytest.mark.parametrize("family", [None, "ice40"])
def test_registered_mul(family):
    """The fabric (and iCE40 shift-and-add) multiplier: a*b two cycles later, corners included."""
    rng = random.Random(5)
    pairs = [(a, b) for a in (-128, -1, 0, 1, 127) for b in (-128, -1, 0, 1, 127)]
    pairs += [(rng.randint(-128, 127), rng.randint(-128, 127)) for _ in range(1500)]
    dut = _Mul(family)
    got = []

    async def bench(ctx):
        for i in range(len(pairs) + 2):
            if i < len(pairs):
                ctx.set(dut.a, pairs[i][0])
                ctx.set(dut.b, pairs[i][1])
            await ctx.tick()
            if i >= 1:
                got.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got[:len(pairs)] == [a * b for a, b in pairs]
