"""cocotb bench of hw.systolic.registered_mul lowered to the ECP5 MULT18X18D (on its simulation
model, sim/verilog/MULT18X18D.v): p == a * b two cycles after a and b (run by
tests/hw/test_systolic.py)."""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, Timer

from sim.cocotb_run import tb_params


def _range(width: int, signed: bool) -> tuple[int, int]:
    return (-(1 << width - 1), (1 << width - 1) - 1) if signed else (0, (1 << width) - 1)


@cocotb.test()
async def products(dut):
    p = tb_params()
    rng = random.Random(p["seed"])
    (alo, ahi), (blo, bhi) = _range(p["wa"], p["sa"]), _range(p["wb"], p["sb"])
    corners = [(a, b) for a in (alo, -1 if p["sa"] else 1, 0, ahi)
               for b in (blo, -1 if p["sb"] else 1, 0, bhi)]
    pairs = corners + [(rng.randint(alo, ahi), rng.randint(blo, bhi)) for _ in range(p["n"])]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 0
    got = []
    for i in range(len(pairs) + 2):
        if i < len(pairs):
            dut.a.value = pairs[i][0]
            dut.b.value = pairs[i][1]
        await RisingEdge(dut.clk)
        await Timer(1, unit="ns")
        if i >= 1:
            got.append(dut.p.value.to_signed() if p["sa"] or p["sb"] else int(dut.p.value))
    want = [a * b for a, b in pairs]
    # the product of the pair set before edge i is read after edge i + 1
    bad = [(pairs[i], want[i], got[i]) for i in range(len(pairs)) if got[i] != want[i]]
    assert not bad, f"{len(bad)} of {len(pairs)} products differ, first {bad[:3]}"
