"""The NPU's data-movement units: LOAD (SRAM -> the conv unit's WBUF/PBUF) and STORE (COPY, FILL:
SRAM -> SRAM), both with :func:`hw.npu_if.unit_signature` command ports (docs/npu.md).

Both are built on :class:`Mover`, which executes byte *rows* ``{src, dst, n, fill}`` (``n >= 1``:
the units never send an empty row): copy ``n``
bytes from SRAM byte address ``src`` to destination byte address ``dst`` (or write ``n`` copies of
the fill value). A row becomes a descriptor (destination line ``dst // W``, ``nw`` destination
lines, the realignment shift ``(src - dst % W) mod W`` and the first/last byte masks); the read
side streams the ``nl`` source lines starting at line ``floor((src - dst % W) / W)`` (``nl = nw``
when the shift is 0, else ``nw + 1``; a line outside the row's bytes may be read and is masked
out), and the write side emits destination line ``i`` as ``({line i+1, line i} >> 8*shift)``
with byte enables, so unaligned sources and destinations cost nothing extra. Rows pipeline: the
read side starts the next row while the write side finishes the previous one.

- :class:`LoadUnit`: one row with ``dst = 0`` into the selected buffer slot (``out.addr`` is the
  word index in the slot), through a ``buf_write_signature`` master.
- :class:`StoreUnit`: COPY walks planes x rows (running sums, no multipliers), FILL walks rows;
  masked line writes through an SRAM write master. A COPY whose destination overlaps its own source
  is undefined (the compiler never emits one).

Errors (sticky ``error``): a wrong opcode, a LOAD larger than its slot, an access past the SRAM.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config
from hw.fifos import RingFIFO2
from hw.isa import INSTR_LAYOUT, BufSel, Opcode, buffer_sizes
from hw.npu_if import (
    line_addr_bits,
    line_bytes,
    sram_read_signature,
    unit_members,
)
from hw.sram import data_reg
from hw.systolic import csa_sum

__all__ = ["Mover", "LoadUnit", "StoreUnit", "ROW_ADDR_BITS"]

#: Width of the row address arithmetic (SRAM addresses are 24 bits; strides accumulate).
ROW_ADDR_BITS = 27
#: Read responses in flight or buffered per mover (covers the SRAM latency + FIFO at full rate).
RESP_DEPTH = 6


def row_layout() -> data.StructLayout:
    return data.StructLayout({
        "src": ROW_ADDR_BITS, "dst": ROW_ADDR_BITS, "n": 24, "fill": 1,
    })


class Mover(wiring.Component):
    """Row mover (see the module docstring). ``out`` words carry a destination line address
    (``dst // W``), a line of data and its byte enables."""

    def __init__(self, config: Config, out_addr_bits: int | None = None):
        self.config = config
        self.W = W = line_bytes(config)
        if W & (W - 1):
            raise ValueError(f"SRAM line of {W} bytes: must be a power of two")
        self.lw = (W - 1).bit_length()
        self.ab = line_addr_bits(config)
        self.oab = out_addr_bits or ROW_ADDR_BITS - self.lw
        super().__init__({
            "row": In(stream.Signature(row_layout())),
            "value": In(8),
            "rd": Out(sram_read_signature(config)),
            "out": Out(stream.Signature(data.StructLayout(
                {"addr": self.oab, "data": 8 * W, "mask": W}))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, lw = self.W, self.lw
        cnt_bits = 25
        desc_lay = data.StructLayout({
            # nw1: the row's last destination word index (nw - 1; a row has n >= 1)
            "dline": ROW_ADDR_BITS - lw, "sh": max(1, lw), "nw1": cnt_bits, "nl": cnt_bits,
            "lo": max(1, lw), "hi_last": lw + 1, "fill": 1,
        })
        m.submodules.dfifo = dfifo = fifo.SyncFIFOBuffered(width=desc_lay.size, depth=4)
        m.submodules.rfifo = rfifo = fifo.SyncFIFOBuffered(width=8 * W, depth=RESP_DEPTH)

        # ---- row -> descriptor (combinational) and read issue
        r = self.row.payload
        dl = Signal(max(1, lw))
        m.d.comb += dl.eq(r.dst[:lw] if lw else 0)
        start = Signal(ROW_ADDR_BITS + 1)  # src - dl, two's complement (may be -1 .. -(W-1))
        m.d.comb += start.eq(r.src - dl)
        # the row's end within its first line, hi = dl + n, taken apart: the destination words
        # ceil(hi / W) = (n >> lw) + cw, cw = (n mod W + dl + W - 1) >> lw (0..2) from the low
        # bits alone, so nw1 and nl are each one adder of n >> lw and a small term (three
        # carry chains in a row, n -> hi -> + W - 1 -> + (sh != 0) -> i_left, ran 12.2 ns on
        # die run T, issue #13)
        n_lo = r.n[:lw] if lw else Const(0, 1)
        cw = Signal(2)
        m.d.comb += cw.eq((n_lo + dl + (W - 1)) >> lw)
        n_hi = r.n >> lw
        cwm1 = Signal(signed(3))       # cw - 1 (-1 .. 1): nw1 = n_hi + cwm1, one adder
        m.d.comb += cwm1.eq(cw - 1)
        desc = Signal(desc_lay)
        sh = start[:lw] if lw else Const(0, 1)
        m.d.comb += [
            desc.dline.eq(r.dst[lw:]),
            desc.sh.eq(sh),
            desc.nw1.eq(n_hi + cwm1),
            desc.nl.eq(Mux(r.fill, 0, n_hi + (cw + (sh != 0)))),
            desc.lo.eq(dl),
            desc.hi_last.eq(((n_lo + dl - 1) & (W - 1)) + 1),
            desc.fill.eq(r.fill),
        ]
        i_left = Signal(cnt_bits)     # lines still to request for the current row
        # i_left == 0 as a register set with it (a row is taken only at zero, a line issued only
        # above it): the row port's ready starts from a flip-flop, not a 25-bit compare (the
        # NPU's routed ECP5 critical path ran i_left -> ready -> the walk's next row ends)
        # (a row has n >= 1 -- the units never send an empty one, so the take is not gated by a
        # 24-bit ``n != 0`` in front of the row registers' enables (ECP5 timing, issue #13: the
        # STORE mover's i_left, 11.6 ns on die run U) -- so its nl is 0 exactly for a FILL:
        # nl = ceil((dl + n) / W) + (sh != 0) >= 1 otherwise)
        i_zero = Signal(init=1)
        i_line = data_reg(self.ab)    # next line address to request
        credits = Signal(range(RESP_DEPTH + 1))  # reads issued and not yet popped from rfifo
        take_row = self.row.valid & self.row.ready
        m.d.comb += [
            self.row.ready.eq(i_zero & dfifo.w_rdy),
            dfifo.w_en.eq(take_row),
            dfifo.w_data.eq(desc),
        ]
        with m.If(take_row):
            m.d.sync += [i_left.eq(desc.nl), i_line.eq(start[lw:]), i_zero.eq(r.fill)]
        issue = Signal()
        m.d.comb += [
            self.rd.req.valid.eq(~i_zero & (credits < RESP_DEPTH)),
            self.rd.req.payload.addr.eq(i_line),
            issue.eq(self.rd.req.valid & self.rd.req.ready),
            rfifo.w_en.eq(self.rd.rvalid),
            rfifo.w_data.eq(self.rd.rdata),
        ]
        with m.If(issue):
            m.d.sync += [i_left.eq(i_left - 1), i_line.eq(i_line + 1), i_zero.eq(i_left == 1)]

        # ---- write side: realign and emit destination lines
        # the row's counters count down beside registered tests of them (``last``, ``more``,
        # ``first``) and the output address counts up: the per-cycle decisions start from
        # registers, no 25-bit compare or adder before them (ECP5 timing)
        # data registers (no reset: read only while ``active`` / ``i_left != 0`` / ``have_prev``,
        # which are reset, and written before; see hw.sram.data_reg)
        cur = data_reg(desc_lay)
        active = Signal()
        wl = Signal(cnt_bits)         # words of the row after the next one
        last = Signal()               # the next word is the row's last (wl == 0)
        first = Signal()              # the next word is the row's first
        oaddr = data_reg(len(self.out.payload.addr))  # the next word's line address
        pl = Signal(cnt_bits)         # lines of the row still to pop
        more = Signal()               # pl != 0
        have_prev = Signal()
        prev = data_reg(8 * W)
        # the output words go through a 2-entry ring (``RingFIFO2``): the ring's free entry
        # loads the word in every cycle, and whether one more word fits is its ``w_rdy`` (a
        # register), not the consumer's ready, so the write port's ready (from the SRAM
        # arbiter, across the die) reaches neither the pops of ``rfifo`` and their ~8W-bit
        # head register nor the word's registers (ECP5 timing, issue #13: the STORE unit's
        # read FIFO, 128 endpoints at 11 ns). The same latency as one output register, and
        # never a cycle later.
        m.submodules.oq = oq = RingFIFO2(width=len(self.out.payload.as_value()))
        m.d.comb += [self.out.valid.eq(oq.r_rdy), self.out.payload.eq(oq.r_data),
                     oq.r_en.eq(self.out.ready)]
        o_next = data.View(self.out.payload.shape(), oq.w_data)
        out_free = oq.w_rdy
        pop = Signal()
        m.d.comb += [rfifo.r_en.eq(pop)]
        m.d.sync += credits.eq(credits + issue - pop)

        with m.If(~active):
            m.d.comb += dfifo.r_en.eq(1)
            with m.If(dfifo.r_rdy):
                d = data.View(desc_lay, dfifo.r_data)
                m.d.sync += [cur.eq(dfifo.r_data), active.eq(1), have_prev.eq(0),
                             wl.eq(d.nw1), last.eq(d.nw1 == 0), first.eq(1), oaddr.eq(d.dline),
                             pl.eq(d.nl), more.eq(d.nl != 0)]
        with m.Else():
            emit = Signal()
            with m.If(cur.fill):
                m.d.comb += emit.eq(out_free)
            with m.Elif(~have_prev):
                with m.If(rfifo.r_rdy):
                    m.d.comb += pop.eq(1)
                    m.d.sync += [prev.eq(rfifo.r_data), have_prev.eq(1), pl.eq(pl - 1),
                                 more.eq(pl != 1)]
            with m.Else():
                with m.If(out_free & (~more | rfifo.r_rdy)):
                    m.d.comb += [emit.eq(1), pop.eq(more)]
                    with m.If(more):
                        m.d.sync += [prev.eq(rfifo.r_data), pl.eq(pl - 1), more.eq(pl != 1)]
            both = Cat(prev, rfifo.r_data)
            word = Signal(8 * W)
            m.d.comb += word.eq(both >> (cur.sh * 8) if lw else prev)
            mask = Signal(W)
            for b in range(W):
                lo_ok = ~first | (cur.lo <= b) if b < W - 1 else Const(1)
                hi_ok = ~last | (b < cur.hi_last)
                m.d.comb += mask[b].eq(lo_ok & hi_ok)
            m.d.comb += [oq.w_en.eq(emit), o_next.addr.eq(oaddr),
                         o_next.data.eq(Mux(cur.fill, self.value.replicate(W), word)),
                         o_next.mask.eq(mask)]
            with m.If(emit):
                m.d.sync += [oaddr.eq(oaddr + 1), first.eq(0), wl.eq(wl - 1),
                             last.eq(wl == 1)]
                with m.If(last):
                    m.d.sync += [active.eq(0), have_prev.eq(0)]

        m.d.comb += self.busy.eq(
            ~i_zero | (dfifo.level != 0) | active | oq.r_rdy | (credits != 0))
        return m


class LoadUnit(wiring.Component):
    """LOAD: ``nbytes`` from SRAM ``sram_addr`` into WBUF/PBUF slot bytes [0, nbytes)."""

    def __init__(self, config: Config):
        self.config = config
        super().__init__(unit_members(config, wr=False, buf="out"))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        sizes = buffer_sizes(cfg)
        m.submodules.mv = mv = Mover(cfg, out_addr_bits=len(self.buf.req.payload.addr))
        wiring.connect(m, mv.rd, wiring.flipped(self.rd))
        ins = data.View(INSTR_LAYOUT, self.cmd.payload)
        ld = ins.load
        active = Signal()
        row_valid = Signal()
        row = data_reg(row_layout())  # (data: read under row_valid / active, see hw.sram.data_reg)
        buf = data_reg(1)
        slot = data_reg(1)
        err = Signal()
        m.d.comb += [self.cmd.ready.eq(~active & ~err), self.idle.eq(~active),
                     self.error.eq(err), self.macs.eq(0)]
        # the row and the slot load in every cycle the unit is ready (read only while active),
        # so their enables are registers, not the NPU's issue decision behind ``cmd.valid``
        # (ECP5 timing, issue #13); the handshake's cycle loads the command taken
        with m.If(self.cmd.ready):
            m.d.sync += [
                row.src.eq(ld.sram_addr), row.dst.eq(0), row.n.eq(ld.nbytes), row.fill.eq(0),
                buf.eq(ld.buf == BufSel.PBUF), slot.eq(ld.slot),
            ]
        with m.If(self.cmd.valid & self.cmd.ready):
            cap = Mux(ld.buf == BufSel.PBUF, sizes["pbuf_slot"], sizes["wbuf_slot"])
            bad = ((ins.header.opcode != Opcode.LOAD) | (ld.nbytes > cap)
                   | (ld.sram_addr + ld.nbytes > cfg.sram_bytes))
            with m.If(bad):
                m.d.sync += err.eq(1)
            with m.Else():
                # (an empty LOAD sends no row: the mover takes rows of n >= 1 only)
                m.d.sync += [active.eq(1), row_valid.eq(ld.nbytes != 0)]
        m.d.comb += [mv.row.valid.eq(row_valid), mv.row.payload.eq(row), mv.value.eq(0)]
        with m.If(mv.row.valid & mv.row.ready):
            m.d.sync += row_valid.eq(0)
        with m.If(active & ~row_valid & ~mv.busy):
            m.d.sync += active.eq(0)
        req = self.buf.req
        m.d.comb += [
            req.valid.eq(mv.out.valid), mv.out.ready.eq(req.ready),
            req.payload.buf.eq(buf), req.payload.slot.eq(slot),
            req.payload.addr.eq(mv.out.payload.addr), req.payload.data.eq(mv.out.payload.data),
            req.payload.mask.eq(mv.out.payload.mask),
            self.stall.eq(active & ((self.rd.req.valid & ~self.rd.req.ready)
                                    | (req.valid & ~req.ready))),
        ]
        return m


class StoreUnit(wiring.Component):
    """COPY (planes x rows of ``row_bytes``, strided source and destination) and FILL."""

    def __init__(self, config: Config):
        self.config = config
        super().__init__(unit_members(config))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        A = ROW_ADDR_BITS
        m.submodules.mv = mv = Mover(cfg, out_addr_bits=len(self.wr.req.payload.addr))
        wiring.connect(m, mv.rd, wiring.flipped(self.rd))
        ins = data.View(INSTR_LAYOUT, self.cmd.payload)
        cp, fl = ins.copy, ins.fill
        active = Signal()
        gen = Signal()              # rows still to generate
        err = Signal()
        # the command's fields and the walk's position: data registers, written as a command is
        # taken and read only under ``gen`` / ``active`` (hw.sram.data_reg)
        fill = data_reg(1)
        value = data_reg(8)
        n = data_reg(16)
        rows = data_reg(16)
        planes = data_reg(16)
        srs, sps, drs, dps = (data_reg(24, name=x) for x in ("srs", "sps", "drs", "dps"))
        r = data_reg(16)
        p = data_reg(16)
        r_more = data_reg(name="r_more")   # r + 1 < rows, set with r (a register before the walk)
        cur_s, cur_d, pl_s, pl_d = (data_reg(A, name=x) for x in ("cur_s", "cur_d", "pl_s", "pl_d"))
        # the bounds check that gates the row is a flag (``oob``) set with the row's start: the
        # row handshake, which enables the walk's ~200 registers, starts from flip-flops, not from
        # a compare. A row ends past the SRAM when start + n > sram_bytes, and each step's next
        # start is a sum of two registers, so the test is the sign of one sum of four terms
        # (start, step, n, -(sram_bytes + 1)): carry-save steps and one carry chain, not an
        # adder and then a compare (die runs T, U: store.end_d, end_s 11.6 ns, issue #13). No
        # address wraps: the ISA's addresses and strides have 24 bits and a row starts in
        # bounds, so A + 2 bits hold every sum.
        oob = data_reg(name="oob")
        lim = Const(-(cfg.sram_bytes + 1))

        def past(*terms):
            return ~csa_sum([*terms, lim], A + 2)[-1]

        def set_cur(s_terms, d_terms, fill_v, nb):
            """the row starting at the sum of s_terms / d_terms (one or two each), of nb bytes"""
            def total(t):
                return (t[0] if len(t) == 1 else t[0] + t[1])[:A]
            return [cur_s.eq(total(s_terms)), cur_d.eq(total(d_terms)),
                    oob.eq((~Value.cast(fill_v) & past(*s_terms, nb)) | past(*d_terms, nb))]
        m.d.comb += [self.cmd.ready.eq(~active & ~err), self.idle.eq(~active),
                     self.error.eq(err), self.macs.eq(0), mv.value.eq(value)]
        op = ins.header.opcode
        # the command's fields load in every cycle the unit is ready (they are read only under
        # ``gen`` / ``active``), so their enables are registers, not the NPU's issue decision
        # behind ``cmd.valid`` (ECP5 timing, issue #13); the handshake's cycle loads the
        # command taken. Only ``active``, ``gen`` and ``err`` wait for the handshake.
        with m.If(self.cmd.ready):
            with m.If(op == Opcode.FILL):
                m.d.sync += [
                    fill.eq(1), n.eq(fl.row_bytes), rows.eq(fl.rows),
                    planes.eq(1), srs.eq(0), sps.eq(0), drs.eq(fl.dst_row_stride), dps.eq(0),
                    *set_cur([Const(0, 1)], [fl.dst_addr], Const(1, 1), fl.row_bytes),
                    pl_s.eq(0), pl_d.eq(fl.dst_addr),
                    r.eq(0), p.eq(0), value.eq(fl.value), r_more.eq(fl.rows > 1),
                ]
            with m.Else():
                m.d.sync += [
                    fill.eq(0), n.eq(cp.row_bytes), rows.eq(cp.rows),
                    planes.eq(cp.planes), srs.eq(cp.src_row_stride), sps.eq(cp.src_plane_stride),
                    drs.eq(cp.dst_row_stride), dps.eq(cp.dst_plane_stride),
                    *set_cur([cp.src_addr], [cp.dst_addr], Const(0, 1), cp.row_bytes),
                    pl_s.eq(cp.src_addr), pl_d.eq(cp.dst_addr),
                    r.eq(0), p.eq(0),
                    r_more.eq(cp.rows > 1),
                ]
        with m.If(self.cmd.valid & self.cmd.ready):
            with m.If(op == Opcode.COPY):
                m.d.sync += [active.eq(1),
                             gen.eq((cp.row_bytes != 0) & (cp.rows != 0) & (cp.planes != 0))]
            with m.Elif(op == Opcode.FILL):
                m.d.sync += [active.eq(1), gen.eq((fl.row_bytes != 0) & (fl.rows != 0))]
            with m.Else():
                m.d.sync += err.eq(1)
        m.d.comb += [
            mv.row.valid.eq(gen & ~oob),
            mv.row.payload.src.eq(cur_s), mv.row.payload.dst.eq(cur_d),
            mv.row.payload.n.eq(n), mv.row.payload.fill.eq(fill),
        ]
        with m.If(gen & oob):
            m.d.sync += [err.eq(1), gen.eq(0)]
        with m.If(mv.row.valid & mv.row.ready):
            with m.If(r_more):
                m.d.sync += [r.eq(r + 1), r_more.eq(r + 2 < rows),
                             *set_cur([cur_s, srs], [cur_d, drs], fill, n)]
            with m.Else():
                m.d.sync += [r.eq(0), r_more.eq(rows > 1), p.eq(p + 1), pl_s.eq(pl_s + sps),
                             pl_d.eq(pl_d + dps), *set_cur([pl_s, sps], [pl_d, dps], fill, n)]
                with m.If(p + 1 >= planes):
                    m.d.sync += gen.eq(0)
        with m.If(active & ~gen & ~mv.busy & ~(self.cmd.valid & self.cmd.ready)):
            m.d.sync += active.eq(0)
        req = self.wr.req
        m.d.comb += [
            req.valid.eq(mv.out.valid), mv.out.ready.eq(req.ready),
            req.payload.addr.eq(mv.out.payload.addr), req.payload.data.eq(mv.out.payload.data),
            req.payload.mask.eq(mv.out.payload.mask),
            self.stall.eq(active & ((self.rd.req.valid & ~self.rd.req.ready)
                                    | (req.valid & ~req.ready))),
        ]
        return m
