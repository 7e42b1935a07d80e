"""hw/fifos.py: ``SlowHeadFIFO`` against its contract, ``HeadFIFO`` / ``RingFIFO2`` against
Amaranth's ``SyncFIFO``, under random writes and reads.

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
from amaranth.lib.fifo import SyncFIFO
from amaranth.sim import Simulator

from hw.fifos import HeadFIFO, RingFIFO2, SlowHeadFIFO


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


@pytest.mark.parametrize(("kind", "depth"), [("reg2", 2), ("reg2c", 2), ("head", 2), ("head", 3),
                                             ("head", 8), ("staged", 2), ("staged", 8)])
def test_head_and_ring_fifos_match_sync_fifo(kind, depth):
    """``RingFIFO2`` and ``HeadFIFO`` behave cycle for cycle as Amaranth's ``SyncFIFO`` of their
    depth: the same ``w_rdy``, ``r_rdy``, levels and (while ``r_rdy``) head, under random writes and
    reads (``RingFIFO2``'s ``nxt_keep`` / ``nxt_pop`` are the reference's next head, by whether the
    cycle read). ``RingFIFO2``: the vector unit's command input and line requests; ``HeadFIFO``: its
    command-metadata FIFO (with ``vector_req_stages`` = 2). ``reg2c``: ``RingFIFO2`` with its read
    pointer in 3 copies, each selecting a slice of the head. ``staged`` (``HeadFIFO`` with
    ``write_stage``, what ``vector_req_stages`` = 2 uses): the reference ``SyncFIFO`` takes each
    write a cycle after the FIFO accepts it; the FIFO accepts a write while fewer than ``depth``
    entries are in it or staged, and its read side equals the reference's."""
    m = Module()
    m.submodules.ref = ref = SyncFIFO(width=8, depth=depth)
    m.submodules.dut = dut = (RingFIFO2(width=8, rp_copies=3 if kind == "reg2c" else 1)
                              if kind.startswith("reg2") else HeadFIFO(width=8, depth=depth,
                                             write_stage=kind == "staged"))
    rng = random.Random(13 + depth)
    seen = []
    stats = {"nxt": 0}

    async def bench(ctx):
        staged = None          # (staged only) the write the FIFO accepted in the previous cycle
        nxt = None             # (ring only) the head predicted by the previous cycle
        for k in range(3000):
            # phases that favour writes, then reads, so deep FIFOs fill and drain
            pw = 0.75 if (k // 200) % 2 == 0 else 0.35
            w, r, d = rng.random() < pw, rng.random() < 0.5, rng.randrange(256)
            ctx.set(dut.w_en, w)
            ctx.set(dut.w_data, d)
            for f in (ref, dut):
                ctx.set(f.r_en, r)
            if kind == "staged":
                ctx.set(ref.w_en, staged is not None)
                ctx.set(ref.w_data, staged or 0)
                held = ctx.get(ref.r_level) + (staged is not None)
                assert ctx.get(dut.w_rdy) == (held < depth), f"cycle {k}: w_rdy, {held} held"
                assert ctx.get(dut.w_level) == held, f"cycle {k}: w_level"
                assert ctx.get(dut.nonempty) == (held != 0), f"cycle {k}: nonempty"
                assert staged is None or ctx.get(ref.w_rdy), f"cycle {k}: reference overflow"
                staged = d if w and ctx.get(dut.w_rdy) else None
                got = [(ctx.get(f.r_rdy), ctx.get(f.r_level),
                        ctx.get(f.r_data) if ctx.get(f.r_rdy) else None) for f in (ref, dut)]
                seen.append((None, None, held))
            else:
                ctx.set(ref.w_en, w)
                ctx.set(ref.w_data, d)
                got = [(ctx.get(f.w_rdy), ctx.get(f.r_rdy), ctx.get(f.r_level),
                        ctx.get(f.r_data) if ctx.get(f.r_rdy) else None) for f in (ref, dut)]
                seen.append(got[0])
            assert got[1] == got[0], f"cycle {k}: ref {got[0]}, {kind} {got[1]}"
            if kind.startswith("reg2"):
                if nxt is not None and ctx.get(ref.r_rdy):
                    assert ctx.get(ref.r_data) == nxt, f"cycle {k}: nxt_keep / nxt_pop"
                    stats["nxt"] += 1
                popped = r and ctx.get(ref.r_rdy)
                nxt = ctx.get(dut.nxt_pop if popped else dut.nxt_keep)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # the walk reached every level, with reads of a full FIFO
    assert {g[2] for g in seen} == set(range(depth + 1))
    assert stats["nxt"] > 1000 or not kind.startswith("reg2"), stats
