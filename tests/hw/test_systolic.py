"""Systolic array (hw/systolic.py) cosimulated with cocotb on Verilator against
models/systolic.py."""

import random

import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.config import preset
from hw.systolic import SystolicArray, product_shape, registered_mul
from sim.cocotb_run import run_cocotb
from sim.toolchain import project_root
from tests.hw.pipe_sim import run_pipeline

TINY = preset("tiny")


@pytest.mark.parametrize("cfg", [
    pytest.param(TINY, id="tiny"),
    pytest.param(TINY.replace(array_rows=3, array_cols=5), id="3x5", marks=pytest.mark.full),
    pytest.param(preset("ecp5"), id="ecp5", marks=pytest.mark.full),
    # the last two rows' PE products in logic (Config.array_logic_rows, hw.systolic.logic_mul)
    pytest.param(preset("ecp5").replace(array_rows=8, array_cols=8, array_logic_rows=2),
                 id="8x8-logic2", marks=pytest.mark.full),
    pytest.param(TINY.replace(array_rows=5, array_cols=2), id="5x2", marks=pytest.mark.full),
])
def test_systolic(cfg):
    rows, cols = cfg.array_rows, cfg.array_cols
    run_cocotb(SystolicArray(cfg), "systolic", "tests.hw.tb_systolic",
               {"config": cfg.to_dict(), "rows": rows, "cols": cols, "seed": 11 * rows + cols,
                "tiles": 30})


class _Mul(wiring.Component):
    """registered_mul under a given (fake) platform, for the Amaranth simulator (or Verilator
    with the ECP5 primitive's model)."""

    def __init__(self, family, a=None, b=None):
        self.family = family
        a, b = a or signed(8), b or signed(8)
        super().__init__({"a": In(a), "b": In(b), "p": Out(product_shape(a, b))})

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


@pytest.mark.parametrize(("a", "b"), [
    (unsigned(16), signed(16)), (signed(16), unsigned(16)), (unsigned(16), unsigned(16)),
    (signed(16), signed(16)), (signed(18), signed(18)), (unsigned(17), unsigned(17)),
    (signed(8), signed(8))], ids=str)
def test_registered_mul_ecp5_dsp(a, b):
    """The ECP5 lowering (one MULT18X18D with its own input and output registers: what synthesis
    builds, while every other bench simulates the fabric version) on the primitive's simulation
    model: a * b two cycles later for every operand kind the gateware uses (the requant's and the
    vector unit's 16-bit partial products, its 18 x 18 ELTWISE product, the array's int8)."""
    run_cocotb(_Mul("ecp5", a, b), "dsp_mul", "tests.hw.tb_dsp",
               {"wa": a.width, "sa": a.signed, "wb": b.width, "sb": b.signed, "n": 2000,
                "seed": a.width * 3 + b.width},
               sources=(project_root() / "sim" / "verilog" / "MULT18X18D.v",))


@pytest.mark.parametrize("sa, sb, stages", [(True, True, 2), (False, True, 1), (True, False, 2),
                                            (False, False, 1)])
def test_logic_mul_pipelined(sa, sb, stages):
    """The PE product in logic (Config.array_logic_rows, hw.systolic.logic_mul): a new operand
    pair every cycle, the product ``stages`` cycles later, for every sign combination."""
    from amaranth.hdl import Signal, unsigned

    from hw.systolic import logic_mul

    rng = random.Random(7 + stages)
    lo_a, hi_a = (-128, 127) if sa else (0, 255)
    lo_b, hi_b = (-128, 127) if sb else (0, 255)
    pairs = [(a, b) for a in (lo_a, -1 if sa else 1, 0, hi_a) for b in (lo_b, 0, 1, hi_b)]
    pairs += [(rng.randint(lo_a, hi_a), rng.randint(lo_b, hi_b)) for _ in range(800)]
    m = Module()
    a = Signal(signed(8) if sa else unsigned(8))
    b = Signal(signed(8) if sb else unsigned(8))
    p = logic_mul(m, a, b, "t", stages=stages)
    got = run_pipeline(m, (a, b), pairs, p, stages)
    assert got[:len(pairs)] == [x * y for x, y in pairs]


@pytest.mark.parametrize("sub_b, cin", [(False, 0), (False, "sig"), (True, 0)])
def test_add3(sub_b, cin):
    """hw.systolic.add3 (a carry-save step before one adder) equals a + b + c + cin, or
    a - b + c, modulo 2**width, for signed and unsigned operands of other widths (corners
    and random), against Python's integers."""
    from amaranth.hdl import Signal

    from hw.systolic import add3

    W = 19
    m = Module()
    a, b, c = Signal(signed(34)), Signal(unsigned(28)), Signal(unsigned(13))
    ci = Signal()
    out = Signal(W)
    m.d.comb += out.eq(add3(a, b, c, W, cin=ci if cin == "sig" else cin, sub_b=sub_b))
    rng = random.Random(3 + sub_b)
    cases = [(x, y, z, k) for x in (-(1 << 33), -1, 0, 1, (1 << 33) - 1)
             for y in (0, 1, (1 << 28) - 1) for z in (0, (1 << 13) - 1) for k in (0, 1)]
    cases += [(rng.randint(-(1 << 33), (1 << 33) - 1), rng.randint(0, (1 << 28) - 1),
               rng.randint(0, (1 << 13) - 1), rng.randint(0, 1)) for _ in range(2000)]
    got, want = [], []

    async def bench(ctx):
        for x, y, z, k in cases:
            ctx.set(a, x)
            ctx.set(b, y)
            ctx.set(c, z)
            ctx.set(ci, k)
            got.append(ctx.get(out))
            want.append((x + (-y if sub_b else y) + z + (k if cin == "sig" else 0)) % (1 << W))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == want


@pytest.mark.parametrize("n, cin", [(1, 1), (2, 0), (2, 1), (4, 0), (5, 1), (7, 0)])
def test_csa_sum(n, cin):
    """hw.systolic.csa_sum (3:2 compressors, then one adder) equals the operands' sum plus the
    carry-in modulo 2**width, for signed 16-bit operands (the vector unit's products), corners
    and random, against Python's integers."""
    from amaranth.hdl import Signal

    from hw.systolic import csa_sum

    W = 21
    m = Module()
    vs = [Signal(signed(16), name=f"v{i}") for i in range(n)]
    out = Signal(W)
    m.d.comb += out.eq(csa_sum(vs, W, cin))
    rng = random.Random(n)
    corners = (-(1 << 15), -1, 0, 1, (1 << 15) - 1)
    cases = [[x] * n for x in corners] + [[corners[(i + j) % 5] for j in range(n)]
                                          for i in range(5)]
    cases += [[rng.randint(-(1 << 15), (1 << 15) - 1) for _ in range(n)] for _ in range(2000)]
    got = []

    async def bench(ctx):
        for xs in cases:
            for v, x in zip(vs, xs, strict=True):
                ctx.set(v, x)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == [(sum(xs) + cin) % (1 << W) for xs in cases]
