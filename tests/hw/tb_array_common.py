"""Shared cocotb machinery of the array/requant/GEMM benches: payload packing and stream drivers.

One coroutine steps every stream each cycle (drive after the rising edge, sample in the read-only
phase), which is both correct for valid/ready handshakes and fast. Sources obey the stream rules
(valid and payload held until accepted; idle gaps inserted only between beats); sinks apply random
back-pressure.
"""

from __future__ import annotations

import random

from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.triggers import ReadOnly, RisingEdge

from tests.hw.tb_common import reset, start_clock, wait_until


def pack(layout, value) -> int:
    """Bits (as an unsigned int) of ``value`` (dict / list / int) laid out as ``layout``."""
    if isinstance(layout, data.StructLayout):
        out = 0
        for name, field in layout:
            out |= pack(field.shape, value[name]) << field.offset
        return out
    if isinstance(layout, data.ArrayLayout):
        w = Shape.cast(layout.elem_shape).width
        out = 0
        for i, v in enumerate(value):
            out |= pack(layout.elem_shape, v) << (i * w)
        return out
    width = Shape.cast(layout).width
    return int(value) & ((1 << width) - 1)


def unpack(layout, bits: int):
    """Inverse of :func:`pack` (signed fields come back negative where they are)."""
    if isinstance(layout, data.StructLayout):
        return {name: unpack(f.shape, bits >> f.offset) for name, f in layout}
    if isinstance(layout, data.ArrayLayout):
        w = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, bits >> (i * w)) for i in range(layout.length)]
    shape = Shape.cast(layout)
    v = bits & ((1 << shape.width) - 1)
    if shape.signed and v >> (shape.width - 1):
        v -= 1 << shape.width
    return v


class Source:
    """Drives ``valid``/``payload`` from a list of packed beats; ``idle`` is the gap probability."""

    def __init__(self, valid, ready, payload, beats, rng: random.Random, idle: float = 0.0,
                 delay: int = 0):
        self.valid, self.ready, self.payload = valid, ready, payload
        self.delay = delay
        self.beats, self.rng, self.idle = list(beats), rng, idle
        self.idx, self.showing = 0, False
        self.first_cycle = self.last_cycle = None
        self.taken: list[int] = []     # cycles in which a beat was accepted

    def drive(self, cycle: int) -> None:
        if (not self.showing and self.idx < len(self.beats) and cycle >= self.delay
                and self.rng.random() >= self.idle):
            self.showing = True
            self.payload.value = self.beats[self.idx]
        self.valid.value = int(self.showing)

    def sample(self, cycle: int) -> None:
        if self.showing and int(self.ready.value):
            if self.first_cycle is None:
                self.first_cycle = cycle
            self.last_cycle = cycle
            self.taken.append(cycle)
            self.idx += 1
            self.showing = False

    @property
    def done(self) -> bool:
        return self.idx == len(self.beats)


class Sink:
    """Collects packed beats from ``valid``/``payload``; ``stall`` is the back-pressure probability.

    ``ready`` may be None for a stream without back-pressure."""

    def __init__(self, valid, ready, payload, rng: random.Random, stall: float = 0.0):
        self.valid, self.ready, self.payload = valid, ready, payload
        self.rng, self.stall = rng, stall
        self.beats, self.cycles, self.rdy = [], [], 1

    def drive(self, cycle: int) -> None:
        if self.ready is not None:
            self.rdy = int(self.rng.random() >= self.stall)
            self.ready.value = self.rdy

    def sample(self, cycle: int) -> None:
        if self.rdy and int(self.valid.value):
            self.beats.append(int(self.payload.value))
            self.cycles.append(cycle)


async def start(dut, sources=(), sinks=(), reset_cycles: int = 3, clock: bool = True) -> None:
    """Start the clock (``clock``: once per cocotb test), zero every source/sink control, reset."""
    if clock:
        start_clock(dut)
    zero = [h for s in sources for h in (s.valid, s.payload)]
    zero += [s.ready for s in sinks if s.ready is not None]
    await reset(dut, zero, reset_cycles)


def streams_state(sources, sinks) -> str:
    """Progress of every source and sink, for failure messages."""
    out = [f"source {i}: {s.idx}/{len(s.beats)} beats taken, valid={int(s.showing)}"
           for i, s in enumerate(sources)]
    out += [f"sink {i}: {len(s.beats)} beats, ready={s.rdy}" for i, s in enumerate(sinks)]
    return "; ".join(out)


async def run(dut, sources, sinks, until, max_cycles: int, tick=None,
              what: str = "the expected output beats", state=None) -> int:
    """Step all streams cycle by cycle until ``until()`` is true (checked after each cycle);
    returns the cycles spent. Bounded: :class:`~tests.hw.tb_common.StuckError` naming ``what``
    and the streams' progress (plus ``state()``) after ``max_cycles`` cycles."""
    n = 0

    async def step():
        nonlocal n
        await RisingEdge(dut.clk)
        for s in sources:
            s.drive(n)
        for s in sinks:
            s.drive(n)
        await ReadOnly()
        for s in sources:
            s.sample(n)
        for s in sinks:
            s.sample(n)
        if tick is not None:
            tick(n)
        n += 1

    def seen():
        extra = f"; {state()}" if state is not None else ""
        return f"cycle {n}: {streams_state(sources, sinks)}{extra}"

    await wait_until(dut, lambda: n > 0 and until(), max_cycles, what, seen, step)
    await RisingEdge(dut.clk)
    for s in sources:
        s.valid.value = 0
    return n


async def idle_check(dut, sinks, cycles: int) -> None:
    """Nothing left in flight: no sink sees another beat for ``cycles`` cycles."""
    for s in sinks:
        if s.ready is not None:
            s.ready.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
        await ReadOnly()
        for s in sinks:
            assert not int(s.valid.value), "a beat appeared after the last expected one"
    await RisingEdge(dut.clk)  # leave the read-only phase: the caller may drive signals again
