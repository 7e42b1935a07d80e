"""FIFOs for FPGA timing beside ``amaranth.lib.fifo``'s (same ports, so :mod:`hw.props`'s FIFO
bounds find them). Each keeps a late consumer's or producer's decision off the enables of its
wide registers (issue #13, docs/fpga.md):

* :class:`SlowHeadFIFO`: a register head that reloads only while empty (one read every other
  cycle); the NPU's issue queues, the SoC's frame records.
* :class:`HeadFIFO`: a register head in front of a LUT-RAM ``SyncFIFO``, optionally with a write
  stage (the write decision enables nothing wide); the vector unit's command metadata.
* :class:`RingFIFO2`: two entries in a ring, a read flips a pointer; the vector unit's command
  input and line requests."""

from __future__ import annotations

from amaranth import Elaboratable, Module, Mux, Signal
from amaranth.lib import fifo

from hw.sram import copies

__all__ = ["SlowHeadFIFO", "HeadFIFO", "RingFIFO2"]


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


class RingFIFO2(fifo.FIFOInterface, Elaboratable):
    """A 2-entry FIFO in flip-flops with ``SyncFIFO``'s ports and cycle behaviour (no write
    while full, read data valid while ``r_rdy``): two entries in a ring, written at ``wp`` and
    read at ``rp``, so a read only flips ``rp`` and ``r_data`` is a 2:1 multiplexer of
    registers by a register. The read decision (the vector unit's REQ ``complete``, from its
    line lookup) enables no data register: as the enable of the head of an
    earlier version (the head in ``ent0``, refilled on a read), that net reached the ~110
    flip-flops of the command spread over 40 columns of the die (15.1 ns, issue #13). Also the
    FIFO of REQ's line requests (its ``w_rdy`` a register, not the SRAM port's ready).

    ``rp_copies`` > 1: the read pointer in that many copies (:func:`hw.sram.copies`), each
    selecting a slice of ``r_data``, so no one net reaches the whole entry's multiplexers (die
    run AC's path started at REQ's input ring's ``rp``: 2.3 ns to its first LUT, issue #13).

    ``nxt_keep`` / ``nxt_pop``: the head after this cycle if this cycle reads nothing / reads
    (each meaningful when the FIFO then has an entry). A consumer can register what it derives
    from the head a cycle early from both and select by whether it read (the vector unit's REQ
    registers its line lookup's compares so; issue #13)."""

    def __init__(self, *, width: int, rp_copies: int = 1):
        super().__init__(width=width, depth=2)
        self.rp_copies = rp_copies
        self.nxt_keep = Signal(width)
        self.nxt_pop = Signal(width)

    def elaborate(self, platform):
        m = Module()
        ent = [Signal(self.width, reset_less=True, name=f"ent{i}") for i in range(2)]
        rp = Signal()
        wp = Signal()
        level = Signal(range(3))
        do_w = self.w_en & self.w_rdy
        do_r = self.r_en & self.r_rdy
        m.d.comb += [self.w_rdy.eq(level != 2), self.r_rdy.eq(level != 0),
                     self.w_level.eq(level), self.r_level.eq(level)]
        k = max(1, min(self.rp_copies, self.width))
        other = Signal(self.width)          # the entry behind the head
        if k == 1:
            m.d.comb += [self.r_data.eq(Mux(rp, ent[1], ent[0])),
                         other.eq(Mux(rp, ent[0], ent[1]))]
        else:
            rpc = copies(m, platform, rp ^ do_r, k, "rp_c")
            cuts = [self.width * c // k for c in range(k + 1)]
            for c in range(k):
                lo, hi = cuts[c], cuts[c + 1]
                m.d.comb += [self.r_data[lo:hi].eq(Mux(rpc[c], ent[1][lo:hi], ent[0][lo:hi])),
                             other[lo:hi].eq(Mux(rpc[c], ent[0][lo:hi], ent[1][lo:hi]))]
        # the entry at wp is free whenever the FIFO is not full, so it loads w_data in every
        # such cycle, written or not: the write decision (``w_en``) enables no data register
        for i in range(2):
            with m.If(self.w_rdy & (wp == i)):
                m.d.sync += ent[i].eq(self.w_data)
        # the head after the cycle: without a read the head stays, or (empty) the entry at wp
        # (= rp) takes w_data; with one the entry behind it, held (full) or (one entry) taking
        # w_data now. One select of w_data by the level after the head's 2:1 multiplexers.
        m.d.comb += [self.nxt_keep.eq(Mux(level == 0, self.w_data, self.r_data)),
                     self.nxt_pop.eq(Mux(level == 2, other, self.w_data))]
        m.d.sync += [level.eq(level + do_w - do_r), wp.eq(wp ^ do_w), rp.eq(rp ^ do_r)]
        return m


class HeadFIFO(fifo.FIFOInterface, Elaboratable):
    """A FIFO with ``SyncFIFO``'s ports whose head is a register: the head register ``hd`` in
    front of a ``SyncFIFO``. A write goes into ``hd`` when it is empty or read in the cycle and
    the FIFO behind it is empty, else into that FIFO; a read refills ``hd`` from that FIFO's
    head. So ``r_data`` is a register, not a LUT-RAM read behind a read pointer (on ECP5 ASM's
    command-metadata FIFO head started the line cache's read address and the byte shifter:
    issue #13). ``hd`` empty implies the FIFO behind is empty. ``r_data_n`` is the head's value
    after this cycle (for flags the consumer registers beside it).

    Without ``write_stage`` the cycles are ``SyncFIFO(depth)``'s. With it a write first goes
    into a stage register that loads in every cycle (no enable) and reaches the head structure
    a cycle later, so the write decision (REQ's ``complete``) enables no data register and no
    LUT-RAM write (on the die ``complete`` reached ~140 LUT-RAM write enables and the head's
    enable: 14.8-15.1 ns, issue #13): a write is readable two cycles later, ``w_rdy`` is a
    register (fewer than ``depth`` entries after this cycle), ``w_level`` counts the staged
    entry and ``r_level`` does not; ``nonempty`` is an entry anywhere (staged or held)."""

    def __init__(self, *, width: int, depth: int, write_stage: bool = False):
        if depth < 2:
            raise ValueError("HeadFIFO needs depth >= 2")
        super().__init__(width=width, depth=depth)
        self.write_stage = write_stage
        self.r_data_n = Signal(width)
        self.nonempty = Signal()

    def elaborate(self, platform):
        m = Module()
        ws = self.write_stage
        m.submodules.body = body = fifo.SyncFIFO(width=self.width, depth=self.depth - 1)
        hd = Signal(self.width, reset_less=True)
        hd_v = Signal()
        do_r = self.r_en & self.r_rdy
        if ws:
            sd = Signal(self.width, reset_less=True)
            sv = Signal()
            held = Signal(range(self.depth + 1))       # entries, the staged one included
            w_ok = Signal(init=1)                      # held < depth
            do_wo = self.w_en & self.w_rdy
            held_n = held + do_wo - do_r
            m.d.sync += [sd.eq(self.w_data), sv.eq(do_wo), held.eq(held_n),
                         w_ok.eq(held_n < self.depth)]
            m.d.comb += [self.w_rdy.eq(w_ok), self.w_level.eq(held),
                         self.nonempty.eq(sv | hd_v)]      # (hd empty: the body is too)
            do_w, w_data = sv, sd
        else:
            do_w = self.w_en & self.w_rdy
            w_data = self.w_data
            m.d.comb += [self.w_rdy.eq(body.w_rdy), self.w_level.eq(hd_v + body.r_level),
                         self.nonempty.eq(hd_v)]
        refill = ~hd_v | do_r
        to_hd = refill & ~body.r_rdy
        m.d.comb += [self.r_rdy.eq(hd_v), self.r_data.eq(hd),
                     self.r_level.eq(hd_v + body.r_level),
                     body.w_data.eq(w_data), body.w_en.eq(do_w & ~to_hd),
                     body.r_en.eq(refill & body.r_rdy),
                     self.r_data_n.eq(Mux(refill & (body.r_rdy | do_w),
                                          Mux(body.r_rdy, body.r_data, w_data), hd))]
        with m.If(refill):
            with m.If(body.r_rdy):
                m.d.sync += [hd.eq(body.r_data), hd_v.eq(1)]
            with m.Elif(do_w):
                m.d.sync += [hd.eq(w_data), hd_v.eq(1)]
            with m.Else():
                m.d.sync += hd_v.eq(0)
        return m
