"""hw/csr.py: ``grouped_read`` returns, a cycle after a word is presented, the value that CSR
held when it was presented; words no CSR holds read 0. Values change every cycle (random), and
the expectation is a Python table of them, not the RTL's registers."""

from __future__ import annotations

import random
from dataclasses import dataclass

from amaranth import Module, Signal
from amaranth.sim import Simulator

from hw.csr import grouped_read


@dataclass(frozen=True)
class _Csr:
    name: str
    offset: int


def test_grouped_read_two_levels():
    # sparse offsets over three groups of 4 words, a gap (words 5, 6, 9, 10) reads 0
    csrs = [_Csr(f"R{o}", o) for o in (0, 1, 2, 3, 4, 7, 8, 11)]
    m = Module()
    vals = {c.name: Signal(32, name=c.name.lower()) for c in csrs}
    word = Signal(4)
    group = Signal(4)
    out = grouped_read(m, csrs, vals, word, group, 4, "t")
    rng = random.Random(5)
    checked = {"hit": 0, "zero": 0}

    async def bench(ctx):
        prev = None                              # (word, the values when it was presented)
        for _ in range(400):
            now = {n: rng.randrange(1 << 32) for n in vals}
            for n, v in now.items():
                ctx.set(vals[n], v)
            w = rng.randrange(12)
            ctx.set(word, w)
            if prev is not None:
                pw, pvals = prev
                ctx.set(group, pw // 4)          # the caller's registered group index
                want = next((pvals[c.name] for c in csrs if c.offset == pw), 0)
                assert ctx.get(out) == want, f"word {pw}: {ctx.get(out):#x} != {want:#x}"
                checked["hit" if want or any(c.offset == pw for c in csrs) else "zero"] += 1
            prev = (w, now)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert checked["hit"] > 200 and checked["zero"] > 50
