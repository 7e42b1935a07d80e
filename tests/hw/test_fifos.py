"""hw/fifos.py: ``SlowHeadFIFO`` against its contract, under random writes and reads.

The contract (its docstring): a FIFO (every accepted write read once, in order; ``level`` the
entries held); an entry written into an empty FIFO is at the head two cycles later, as with
``SyncFIFOBuffered``; after a read the next entry is at the head one cycle later (never in the
cycle right after a read); otherwise an entry that has been in the FIFO for two cycles is at
the head. Checked against a plain Python queue of (value, cycle written), not the RTL's state."""

from __future__ import annotations

import random
from collections import deque

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from hw.fifos import SlowHeadFIFO


@pytest.mark.parametrize("depth", [2, 3, 8])
def test_slow_head_fifo_contract(depth):
    m = Module()
    m.submodules.dut = dut = SlowHeadFIFO(width=8, depth=depth)
    rng = random.Random(29 + depth)
    stats = {"reads": 0, "full": 0, "two_cycle": 0}

    async def bench(ctx):
        q = deque()                     # (value, cycle accepted)
        read_prev = False
        for cyc in range(4000):
            pw = 0.8 if (cyc // 150) % 2 == 0 else 0.3
            w, r, d = rng.random() < pw, rng.random() < 0.6, rng.randrange(256)
            ctx.set(dut.w_en, w)
            ctx.set(dut.w_data, d)
            ctx.set(dut.r_en, r)
            w_rdy, r_rdy, level = ctx.get(dut.w_rdy), ctx.get(dut.r_rdy), ctx.get(dut.level)
            assert level == len(q), f"cycle {cyc}: level {level}, held {len(q)}"
            assert not w_rdy or level < depth, f"cycle {cyc}: w_rdy while full"
            # the head: the oldest entry once it is two cycles old, except right after a read
            want = bool(q) and cyc - q[0][1] >= 2 and not read_prev
            assert r_rdy == want, f"cycle {cyc}: r_rdy {r_rdy}, expected {want} ({list(q)[:2]})"
            if r_rdy:
                assert ctx.get(dut.r_data) == q[0][0], f"cycle {cyc}: head out of order"
            stats["full"] += level == depth
            if r and r_rdy:
                q.popleft()
                stats["reads"] += 1
            if w and w_rdy:
                q.append((d, cyc))
            stats["two_cycle"] += bool(read_prev and q)
            read_prev = bool(r and r_rdy)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # the walk filled the FIFO, read a lot, and met the read-rate rule with entries waiting
    assert stats["reads"] > 500 and stats["full"] > 20 and stats["two_cycle"] > 100, stats
