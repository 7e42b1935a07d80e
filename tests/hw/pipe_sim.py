"""Amaranth's own simulator for small pipelined functions (no cocotb, no Verilator): one input
row per cycle, each result ``latency`` cycles later."""

from __future__ import annotations

from amaranth.sim import Simulator


def run_pipeline(m, inputs, rows, out, latency: int) -> list[int]:
    """Drive ``inputs`` (Signals of ``m``) with one of ``rows`` (tuples of values) per cycle and
    return ``out`` for each row, read ``latency`` cycles after the row was applied."""
    got = []

    async def bench(ctx):
        for k in range(len(rows) + latency):
            if k < len(rows):
                for sig, v in zip(inputs, rows[k], strict=True):
                    ctx.set(sig, v)
            await ctx.tick()
            if k + 1 >= latency:
                got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got[:len(rows)]
