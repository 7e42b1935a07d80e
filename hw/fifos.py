"""FIFOs for FPGA timing beside ``amaranth.lib.fifo``'s (same ports, so :mod:`hw.props`'s FIFO
bounds find them)."""

from __future__ import annotations

from amaranth import Elaboratable, Module, Signal
from amaranth.lib import fifo

__all__ = ["SlowHeadFIFO"]


class SlowHeadFIFO(fifo.FIFOInterface, Elaboratable):
    """A FIFO with ``SyncFIFOBuffered``'s ports and write-to-read latency whose head register
    ``hd`` (in front of a ``SyncFIFO(depth - 1)``, LUT-RAM) loads only while the head is empty.
    So the head's enables are a register, not the consumer's decision that reads the head: for
    wide entries read by a late decision (on the routed ECP5 die the NPU's issue decision's net
    to its queue's 277 head enables was a 15.6 ns path, issue #13). The price: after a read the
    next entry is at the head one cycle later (one read every other cycle)."""

    def __init__(self, *, width: int, depth: int):
        if depth < 2:
            raise ValueError("SlowHeadFIFO needs depth >= 2")
        super().__init__(width=width, depth=depth)
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform):
        m = Module()
        m.submodules.body = body = fifo.SyncFIFO(width=self.width, depth=self.depth - 1)
        hv = Signal()
        hd = Signal(self.width, reset_less=True)
        m.d.comb += [
            body.w_en.eq(self.w_en), body.w_data.eq(self.w_data), self.w_rdy.eq(body.w_rdy),
            body.r_en.eq(~hv), self.r_rdy.eq(hv), self.r_data.eq(hd),
            self.level.eq(body.level + hv), self.w_level.eq(self.level),
            self.r_level.eq(self.level),
        ]
        with m.If(~hv):
            # (junk from an empty body, with hv staying low)
            m.d.sync += [hd.eq(body.r_data), hv.eq(body.r_rdy)]
        with m.Elif(self.r_en):
            m.d.sync += hv.eq(0)
        return m
