"""Machinery every cocotb bench shares: clock start, synchronous reset and bounded waits.

Every wait of a bench on the design goes through :func:`wait_until`, which is bounded in clock
cycles and fails with a message naming what it waited for and the state it saw, so a stuck unit
fails its bench instead of hanging the test run. Every ``@cocotb.test`` also carries a
``timeout_time`` (simulated time, :data:`TEST_TIMEOUT_MS` unless the bench needs more) as a
backstop for waits outside the helper.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["TEST_TIMEOUT_MS", "StuckError", "start_clock", "reset", "wait_until"]

#: Default ``timeout_time`` of a cocotb test in simulated milliseconds: 10 ms = 1 M cycles of the
#: 10 ns bench clock, far above any bench's own cycle bounds (the backstop, never the check).
TEST_TIMEOUT_MS = 10


class StuckError(AssertionError):
    """A bounded wait ran out of cycles: the design never reached the awaited condition."""


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


async def _edge_then_sample(dut) -> None:
    await RisingEdge(dut.clk)
    await ReadOnly()


async def wait_until(
    dut,
    cond: Callable[[], object],
    max_cycles: int,
    what: str,
    state: Callable[[], object] | None = None,
    step: Callable[[], Awaitable[object]] | None = None,
) -> int:
    """Wait until ``cond()`` is true, at most ``max_cycles`` clock cycles; return the cycles
    waited (0 if ``cond()`` already holds).

    ``step`` advances the bench by one cycle (the bench's own drive/sample coroutine, so its
    models and protocol checks keep running while it waits); by default one rising edge of
    ``dut.clk`` followed by the read-only phase (signals can then only be driven again after
    the next edge). ``cond`` is evaluated before the first step and after every step.

    Raises :class:`StuckError` after ``max_cycles`` steps without ``cond()``; its message reads
    ``"<what>: not within <max_cycles> cycles; saw <state()>"`` so the log names the wait and
    the design/bench state (instruction, counters, handshakes) it was stuck in.
    """
    if max_cycles < 0:
        raise ValueError(f"max_cycles must be >= 0, got {max_cycles}")
    if cond():
        return 0
    for n in range(1, max_cycles + 1):
        await (step() if step is not None else _edge_then_sample(dut))
        if cond():
            return n
    seen = state() if state is not None else "(no state given)"
    raise StuckError(f"{what}: not within {max_cycles} cycles; saw {seen}")
