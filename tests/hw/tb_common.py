"""Machinery every cocotb bench shares: clock start, synchronous reset and bounded waits.

Every wait of a bench on the design goes through :func:`wait_until`, which is bounded in clock
cycles and fails with a message naming what it waited for and the state it saw, so a stuck unit
fails its bench instead of hanging the test run. Every ``@cocotb.test`` also carries a
``timeout_time`` (simulated time, :data:`TEST_TIMEOUT_MS` unless the bench needs more) as a
backstop for waits outside the helper.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np
from amaranth.hdl import Shape
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["TEST_TIMEOUT_MS", "StuckError", "start_clock", "reset", "wait_until", "SramModel"]

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


class SramModel:
    """The on-die SRAM as a unit's master ports see it (``hw.npu_if.sram_read_signature`` /
    ``sram_write_signature``): one model for every unit bench.

    ``mem`` (a uint8 array of ``config.sram_bytes``, shared with the bench by reference) holds the
    bytes. Reads: a request accepted in cycle t is answered on ``rdata`` with ``rvalid`` exactly
    ``hw.npu_if.sram_read_latency(config)`` cycles later, in order (line addresses wrap at the
    SRAM's end). Writes: a masked line write is applied when accepted. ``rd_ready_p`` /
    ``wr_ready_p``: probability that ``ready`` is high in a cycle (random back-pressure from
    ``rng``). Call :meth:`drive` after the rising edge (with the bench's cycle number) and
    :meth:`sample` in the read-only phase."""

    def __init__(self, dut, config, rng: random.Random, mem: np.ndarray, rd: str = "rd",
                 wr: str | None = "wr"):
        from hw.npu_if import line_bytes, sram_read_latency, sram_write_signature

        self.dut, self.rng, self.mem = dut, rng, mem
        self.W = line_bytes(config)
        self.lines = config.sram_bytes // self.W
        self.latency = sram_read_latency(config)
        self.rd = {k: getattr(dut, f"{rd}__{k}") for k in
                   ("req__valid", "req__ready", "req__payload", "rvalid", "rdata")}
        self.wr = None
        if wr is not None:
            self.wr = {k: getattr(dut, f"{wr}__req__{k}") for k in ("valid", "ready", "payload")}
            lay = sram_write_signature(config).members["req"].signature.members["payload"].shape
            self._wf = {n: (fl.offset, Shape.cast(fl.shape).width) for n, fl in lay}
        self.rd_ready_p = self.wr_ready_p = 1.0
        self.resp: deque[tuple[int, int]] = deque()   # (due cycle, line value)
        self.reads = self.writes = 0

    def line(self, a: int) -> int:
        a %= self.lines
        return int.from_bytes(self.mem[a * self.W:(a + 1) * self.W].tobytes(), "little")

    @property
    def in_flight(self) -> int:
        """Read responses not yet delivered."""
        return len(self.resp)

    def drive(self, cycle: int) -> None:
        """Drive ``ready`` (random) and the read response due in ``cycle``."""
        self.rd["req__ready"].value = int(self.rng.random() < self.rd_ready_p)
        if self.wr is not None:
            self.wr["ready"].value = int(self.rng.random() < self.wr_ready_p)
        if self.resp and self.resp[0][0] == cycle:
            self.rd["rvalid"].value = 1
            self.rd["rdata"].value = self.resp.popleft()[1]
        else:
            self.rd["rvalid"].value = 0

    def sample(self, cycle: int) -> None:
        """Accept this cycle's read request and write (sampled in the read-only phase)."""
        rd = self.rd
        if int(rd["req__valid"].value) and int(rd["req__ready"].value):
            self.resp.append((cycle + self.latency, self.line(int(rd["req__payload"].value))))
            self.reads += 1
        wr = self.wr
        if wr is not None and int(wr["valid"].value) and int(wr["ready"].value):
            self.write(int(wr["payload"].value))

    def write(self, payload: int) -> None:
        """Apply one write request payload {addr, data, mask}."""
        W, f = self.W, self._wf
        a = (payload >> f["addr"][0]) & ((1 << f["addr"][1]) - 1)
        d = (payload >> f["data"][0]) & ((1 << (8 * W)) - 1)
        mask = (payload >> f["mask"][0]) & ((1 << W) - 1)
        sel = np.unpackbits(np.frombuffer(mask.to_bytes(-(-W // 8), "little"), np.uint8),
                            bitorder="little")[:W].astype(bool)
        base = a * W
        assert base + W <= self.mem.size, f"write past the SRAM at line {a}"
        row = np.frombuffer(d.to_bytes(W, "little"), np.uint8)
        self.mem[base:base + W][sel] = row[sel]
        self.writes += 1

