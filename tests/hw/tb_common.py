"""Machinery every cocotb bench shares: clock start and synchronous reset."""

from __future__ import annotations

from cocotb.clock import Clock
from cocotb.triggers import RisingEdge


def start_clock(dut, period_ns: int = 10) -> None:
    """Start ``dut.clk`` (once per cocotb test)."""
    Clock(dut.clk, period_ns, unit="ns").start()


async def reset(dut, zero=(), cycles: int = 3, settle: bool = False) -> None:
    """Drive every signal in ``zero`` (handles or attribute names of ``dut``) to 0, hold ``rst``
    high for ``cycles`` rising edges, release it; ``settle``: wait one more edge."""
    for sig in zero:
        (getattr(dut, sig) if isinstance(sig, str) else sig).value = 0
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    if settle:
        await RisingEdge(dut.clk)
