"""GEMM engine: systolic array + K-tile accumulation + per-channel requant (the block the NPU
drives).

Computes ``Y[M, N] = requant(A[M, K] @ W[K, N])`` (int8 in, int32 accumulation with wrap, int8 out),
bit-exact with :func:`models.gemm.gemm`; K and N larger than the R x C array by tiling.

Streams (all ``stream.Signature``; the order of beats is exactly :func:`models.gemm.streams`):

- ``cmd`` {m, k_tiles, n_tiles, zp, qmin, qmax, raw}: one GEMM. Accepted only while idle (``busy``
  low). ``k_tiles = ceil(K / R)``, ``n_tiles = ceil(N / C)``; zp/qmin/qmax: output zero point and
  fused-activation clamp range (models.requant.activation_range). ``raw`` = 1: requant bypassed,
  the outputs are the int32 ``acc`` lanes (see ``out``); everything else (beat order, ``last``,
  flow control) is the same.
- ``params`` {bias[C], mult[C], shift[C]}: one beat per N tile (channels nt*C .. nt*C+C-1; padded
  channels zero). The engine buffers up to two tiles ahead.
- ``wgt`` int8[C]: weight rows W[k, nt*C:(nt+1)*C], for nt, for M block, for k tile: R rows (zero
  padded).
- ``act`` int8[R]: activation slices A[m, kt*R:(kt+1)*R], for nt, for M block, for k tile: for each
  row m of the block (zero padded along K).
- ``out`` {data int8[C], acc int32[C], last}: Y[m, nt*C:(nt+1)*C] for nt, for M block, for m;
  ``last`` on the final beat. Normal mode: ``data`` is the requantized int8 output (``acc`` is
  don't-care). Raw mode: ``acc[j] = wrap32(sum_k A[m, k] W[k, j] + bias[j])`` (mult and shift
  ignored; ``data`` is don't-care).

Loop nest: N tiles (outer) > M blocks of :func:`m_block` rows > K tiles > rows. Each (M block, K
tile) loads one weight tile into the array's free bank while the previous tile computes, so a long
GEMM streams at R*C MACs/cycle. Partial sums of K tiles accumulate in a block-sized int32 buffer
(read, add, write; no forwarding: admission keeps a row's K tiles >= 3 cycles apart); the last K
tile's sums go through the requant pipeline into an output FIFO. Activations of the last K tile
are admitted only with a free output slot reserved (credits), so back-pressure on ``out`` never
loses data and the array itself never stalls.

The input zero point is not an engine parameter: fold it into the bias
(:func:`models.gemm.fold_input_zero_point`) and feed padding taps as the zero point.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config
from hw.requant import SHIFT_BITS, RequantCore
from hw.sram import copies
from hw.systolic import SystolicArray

__all__ = ["m_block", "cmd_layout", "params_layout", "out_layout", "GemmEngine", "GemmTop", "top"]

#: Width of the cmd size fields (M up to 65535 rows, K/N up to 65535 tiles).
DIM_BITS = 16


def m_block(config: Config) -> int:
    """Rows per M block: >= 2 (R + C) so weight loads always hide behind compute; a power of two."""
    need = 2 * (config.array_rows + config.array_cols) + 4
    return 1 << (need - 1).bit_length()


def cmd_layout() -> data.StructLayout:
    return data.StructLayout({"m": DIM_BITS, "k_tiles": DIM_BITS, "n_tiles": DIM_BITS,
                              "zp": signed(8), "qmin": signed(8), "qmax": signed(8), "raw": 1})


def params_layout(config: Config) -> data.StructLayout:
    C = config.array_cols
    return data.StructLayout({"bias": data.ArrayLayout(signed(32), C),
                              "mult": data.ArrayLayout(signed(32), C),
                              "shift": data.ArrayLayout(signed(SHIFT_BITS), C)})


def out_layout(config: Config) -> data.StructLayout:
    C = config.array_cols
    return data.StructLayout({"data": data.ArrayLayout(signed(8), C),
                              "acc": data.ArrayLayout(signed(32), C), "last": 1})


class GemmEngine(wiring.Component):
    """Tiled int8 GEMM with requant (see module docstring for the stream contract)."""

    def __init__(self, config: Config):
        self.config = config
        R, C = config.array_rows, config.array_cols
        self.mb = m_block(config)
        self.mi_bits = (self.mb - 1).bit_length() or 1
        self.tag = data.StructLayout({"mi": self.mi_bits, "first": 1, "lastk": 1, "nt_end": 1,
                                      "final": 1})
        self.fast = config.fast_clock
        self._array = SystolicArray(config, tag_bits=self.tag.size)
        self.array_latency = self._array.latency
        self._rq = RequantCore.for_config(C, config)
        #: Cycles from a psum beat to the requant input (read, register, add; fast: + the
        #: per-lane address registers).
        self.acc_latency = 3 if self.fast else 2
        #: Output FIFO entries = credits: covers array + accumulate + requant latency (full rate).
        self.out_depth = self.array_latency + self.acc_latency + self._rq.latency + 4
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout())),
            "params": In(stream.Signature(params_layout(config))),
            "wgt": In(stream.Signature(data.ArrayLayout(signed(8), C))),
            "act": In(stream.Signature(data.ArrayLayout(signed(8), R))),
            "out": Out(stream.Signature(out_layout(config))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C, MB = self.config.array_cols, self.mb
        m.submodules.array = array = self._array
        m.submodules.rq = rq = self._rq
        play = params_layout(self.config)
        fast = self.fast
        wiring.connect(m, wiring.flipped(self.wgt), array.w_in)

        # ---- command registers
        cmd = Signal(cmd_layout())
        busy = Signal()
        m.d.comb += [self.busy.eq(busy), self.cmd.ready.eq(~busy)]
        out_take = self.out.valid & self.out.ready
        with m.If(self.cmd.valid & ~busy):
            m.d.sync += [cmd.eq(self.cmd.p), busy.eq(1)]
        with m.Elif(out_take & self.out.p.last):
            m.d.sync += busy.eq(0)

        start = Signal(2)                # 1: compute m1/k1/n1, 2: load the loop state

        # ---- params: push up to two N tiles ahead
        # ``params.ready`` is a register (the push enables every bit of the FIFO: a wide net).
        p_left = Signal(DIM_BITS)        # params beats still to accept for this GEMM
        # pushed beats whose N tile admission has not passed, one-hot (0, 1, 2)
        p_avail = Signal(3, init=1)
        p_ready = Signal()
        p_push = self.params.valid & p_ready
        p_pop = Signal()
        m.d.comb += self.params.ready.eq(p_ready)
        cmd_take = self.cmd.valid & ~busy
        # Two-entry parameter FIFO as a shift register: the head is always slot 0 (a register,
        # no read mux). A push goes into slot 1, which moves into slot 0 when slot 0 is empty or
        # pops, so slot 0 has one source and slot 1 can sit between the control and the lanes:
        # slot 0's 70 C flip-flops sit next to the requant lanes all over the die (die run AA:
        # ``p_slot1`` -> ``p_slot0``, 132 endpoints at 12.1 ns with slot 0 also loading the
        # pushed beat, issue #13). A beat pushed into the empty FIFO reaches the head a cycle
        # later, long before the requant of its N tile reads it. Each lane has its own copy
        # (:func:`hw.sram.copies`) of the move register (``p_mv``), loaded from its next value.
        # The copies are reset-less: in the cycle after a reset they may be stale, when a junk
        # load of the empty slot 0 is harmless (p_v0 is 0 and slot 1 holds nothing).
        p_slot = [Signal(play, name=f"p_slot{i}", reset_less=True) for i in range(2)]
        v0, v1 = Signal(name="p_v0"), Signal(name="p_v1")
        pop_next = Signal()
        mv = v1 & (~v0 | p_pop)
        v0_next, v1_next = (v0 & ~p_pop) | mv, (v1 & ~mv) | p_push
        m.d.sync += [v0.eq(v0_next), v1.eq(v1_next)]
        mv_c = copies(m, platform, v1_next & (~v0_next | pop_next), C, "p_mv_c")
        for n in range(C):
            with m.If(mv_c[n]):
                m.d.sync += [p_slot[0].bias[n].eq(p_slot[1].bias[n]),
                             p_slot[0].mult[n].eq(p_slot[1].mult[n]),
                             p_slot[0].shift[n].eq(p_slot[1].shift[n])]
        with m.If(self.params.valid & (~v1 | mv)):    # (not p_push: a different net from the
            m.d.sync += p_slot[1].eq(self.params.payload)   # control's; slot 1 is free here)
        # p_left != 0 and p_left == 1 as registered flags: the push selects, the wide compares
        # work on registers and cmd inputs only.
        p_nz, p_one = Signal(), Signal()
        # (p_nz is 0 when a command is taken; it rises one cycle later, from a register.)
        nt_nz = Signal()
        with m.If(cmd_take):
            m.d.sync += nt_nz.eq(self.cmd.p.n_tiles != 0)
        p_nz_next = Mux(start == 1, nt_nz, p_nz & ~(p_one & p_push))
        with m.If(cmd_take):
            m.d.sync += [p_left.eq(self.cmd.p.n_tiles), p_one.eq(self.cmd.p.n_tiles == 1)]
        with m.Elif(p_push):
            m.d.sync += [p_left.eq(p_left - 1), p_one.eq(p_left == 2)]
        # (At a new command the FIFO is empty: the previous GEMM popped all its beats.)
        # (ready: a beat is still to come and the FIFO is not full after this cycle)
        m.d.sync += [p_nz.eq(p_nz_next), p_ready.eq(p_nz_next & ~(v0_next & v1_next))]

        # ---- admission of activations ---------------------------------------------------------
        # Loop state is kept as down-counters plus registered flags, so that the admission
        # decision (and the array's tile switch) depends only on flip-flops. M blocks are a power
        # of two rows: block index and last-block size are bit slices of M - 1.
        lg = (MB - 1).bit_length()
        m1, k1, n1 = Signal(DIM_BITS), Signal(DIM_BITS), Signal(DIM_BITS)   # M-1, KT-1, NT-1
        last_idx = m1[lg:] if lg else m1           # index of the last M block
        tail_last = m1[:lg] if lg else 0           # last row index of the last M block
        single_blk = last_idx == 0
        mi = Signal(range(MB))           # row within the block (accumulator address)
        mi_left = Signal(range(MB))      # rows left in the block after this one
        blk_last = Signal(range(MB))     # last row index of the current block
        kt_left = Signal(DIM_BITS)
        nt_left = Signal(DIM_BITS)
        blocks_left = Signal(DIM_BITS)
        last_row, kt_first, kt_last, nt_last, last_blk = (Signal(name=n) for n in (
            "last_row", "kt_first", "kt_last", "nt_last", "last_blk"))
        adm_done = Signal(init=1)        # every activation of this GEMM admitted (or not started)
        free = Signal(range(self.out_depth + 1), init=self.out_depth)  # output slots not reserved
        credit_ok = Signal(init=1)       # == (free != 0), registered

        # Accumulator hazard gap: a row is admitted again (next K tile) >= 3 cycles after its
        # previous admission; only blocks of one or two rows need idle cycles for that.
        gap = Signal(2)                  # thermometer code: 0b00, 0b01 (1), 0b11 (2)
        # (``adm_done`` is high whenever ``busy`` is low.)
        # The admission condition is one register, ``ok`` (issue #13: as logic over the five
        # registers below it was the start of the die's worst path, credit_ok -> ready -> the
        # loop counters' enables). Each of the five gets its next value as a comb signal
        # (``*_n``, the register loads it every cycle) and ``ok`` is the condition over those.
        nxt = {}
        for r in (adm_done, p_avail, kt_last, credit_ok, gap):
            nxt[r.name] = Signal.like(r, name=f"{r.name}_n")
            m.d.comb += nxt[r.name].eq(r)
            m.d.sync += r.eq(nxt[r.name])
        adm_done_n, p_avail_n, kt_last_n, credit_ok_n, gap_n = nxt.values()
        ok = Signal()        # ~adm_done & ~p_avail[0] & (~kt_last | credit_ok) & ~gap[0]
        m.d.sync += ok.eq(~adm_done_n & ~p_avail_n[0] & (~kt_last_n | credit_ok_n) & ~gap_n[0])
        m.d.comb += [
            array.a_in.valid.eq(self.act.valid & ok),
            self.act.ready.eq(array.a_in.ready & ok),
            array.a_in.p.data.eq(self.act.payload),
            array.a_in.p.last.eq(last_row),
        ]
        tag = data.View(self.tag, array.a_in.p.tag)
        nt_end = kt_last & last_blk & last_row
        m.d.comb += [tag.mi.eq(mi), tag.first.eq(kt_first), tag.lastk.eq(kt_last),
                     tag.nt_end.eq(nt_end), tag.final.eq(nt_end & nt_last)]
        admit = self.act.valid & self.act.ready
        nt_advance = admit & nt_end

        def load_block(is_last):
            """Enter the first row of a block (the last block of the GEMM if ``is_last``)."""
            blk = Mux(is_last, tail_last, MB - 1)
            return [mi.eq(0), mi_left.eq(blk), blk_last.eq(blk), last_row.eq(blk == 0)]

        def restart_k():
            m.d.comb += kt_last_n.eq(k1 == 0)
            return [kt_left.eq(k1), kt_first.eq(1)]

        def restart_blocks():
            return [blocks_left.eq(last_idx), last_blk.eq(single_blk), *load_block(single_blk)]

        # A command, the two start cycles and admissions are exclusive (admission needs
        # ``adm_done`` low: from the second start cycle to the last admission), so they are
        # separate statements: the admission's enables do not decode ``start``.
        with m.If(self.cmd.valid & ~busy):
            m.d.sync += start.eq(1)
            m.d.comb += adm_done_n.eq(1)
        with m.If(start == 1):
            m.d.sync += [start.eq(2), m1.eq(cmd.m - 1), k1.eq(cmd.k_tiles - 1),
                         n1.eq(cmd.n_tiles - 1)]
        with m.If(start == 2):
            m.d.sync += [start.eq(0), nt_left.eq(n1), nt_last.eq(n1 == 0),
                         *restart_k(), *restart_blocks()]
            m.d.comb += adm_done_n.eq(0)
        with m.If(admit):
            with m.If(~last_row):
                m.d.sync += [mi.eq(mi + 1), mi_left.eq(mi_left - 1), last_row.eq(mi_left == 1)]
            with m.Elif(~kt_last):
                m.d.comb += kt_last_n.eq(kt_left == 1)
                m.d.sync += [kt_left.eq(kt_left - 1), kt_first.eq(0),
                             mi.eq(0), mi_left.eq(blk_last), last_row.eq(blk_last == 0)]
            with m.Elif(~last_blk):
                m.d.sync += [*restart_k(), blocks_left.eq(blocks_left - 1),
                             last_blk.eq(blocks_left == 1), *load_block(blocks_left == 1)]
            with m.Else():
                m.d.sync += [*restart_k(), *restart_blocks(), nt_left.eq(nt_left - 1),
                             nt_last.eq(nt_left == 1)]
                with m.If(nt_last):
                    m.d.comb += adm_done_n.eq(1)
        with m.If(admit & last_row & ~kt_last & (blk_last < 2)):
            m.d.comb += gap_n.eq(Mux(blk_last == 0, 0b11, 0b01))
        with m.Else():
            m.d.comb += gap_n.eq(gap >> 1)
        with m.If(self.cmd.valid & ~busy):
            m.d.comb += p_avail_n.eq(1)
        with m.Elif(p_push & ~nt_advance):
            m.d.comb += p_avail_n.eq(p_avail.rotate_left(1))
        with m.Elif(nt_advance & ~p_push):
            m.d.comb += p_avail_n.eq(p_avail.rotate_right(1))

        # ---- accumulate K tiles. A row's next K-tile read comes >= 3 cycles after its
        # previous one (admission enforces the gap for blocks of one or two rows), so every
        # read sees the previous write and nothing needs forwarding: the adder sits between
        # two registers.
        acc_shape = data.ArrayLayout(signed(32), C)
        po = array.psum_out
        potag = data.View(self.tag, po.p.tag)
        m.d.comb += po.ready.eq(1)
        # Stage k: valid v[k], tag t[k], psum ps[k] (k = 0: the array's output registers).
        v = [po.valid]
        t = [potag]
        ps = [po.p.data]
        for k in range(1, self.acc_latency + 1):
            v.append(Signal(name=f"acc_v{k}"))
            t.append(Signal(self.tag, name=f"acc_t{k}", reset_less=True))
            ps.append(Signal(acc_shape, name=f"acc_ps{k}", reset_less=True))
            m.d.sync += [v[k].eq(v[k - 1]), t[k].eq(t[k - 1]), ps[k].eq(ps[k - 1])]
        total = Signal(acc_shape, reset_less=True)
        if fast:
            # One LUT-RAM memory per lane (asynchronous read, ``ram_style``: otherwise yosys
            # absorbs the read register into a block RAM, whose clock-to-out then starts the
            # adder path), each with its own read and write address registers: an address bit
            # drives 32 RAM cells, not 32 C. (Distinct reset values keep yosys from merging
            # the copies.) Stage 1: read at the lane's address register; stage 2: read data
            # registered (zero for the first K tile: the flip-flops' synchronous reset);
            # stage 3: sum registered and written back.
            rd2 = Signal(acc_shape, reset_less=True)
            for n in range(C):
                mem = memory.Memory(shape=signed(32), depth=MB, init=[],
                                    attrs={"ram_style": "distributed"})
                m.submodules[f"accmem{n}"] = mem
                rd, wr = mem.read_port(domain="comb"), mem.write_port()
                # Yosys merges equal flip-flops bit by bit: lane n's copies differ in having a
                # clock enable (bit 0 of n), their reset value (bit 1) and having a reset at
                # all (bit 2), so each address bit has up to eight drivers.
                init = (MB - 1) if (n >> 1) & 1 else 0
                rl = bool((n >> 2) & 1)
                ra = Signal(range(MB), init=init, reset_less=rl, name=f"acc_ra{n}")
                wa = Signal(range(MB), init=init, reset_less=rl, name=f"acc_wa{n}")
                if n & 1:
                    with m.If(v[0]):
                        m.d.sync += ra.eq(potag.mi)
                    with m.If(v[2]):
                        m.d.sync += wa.eq(t[2].mi)
                else:
                    m.d.sync += [ra.eq(potag.mi), wa.eq(t[2].mi)]
                m.d.sync += rd2[n].eq(Mux(t[1].first, 0, rd.data))
                m.d.comb += [rd.addr.eq(ra), wr.addr.eq(wa), wr.data.eq(total[n]),
                             wr.en.eq(v[3] & ~t[3].lastk)]
            m.d.sync += [total[n].eq(rd2[n] + ps[2][n]) for n in range(C)]
        else:
            # Slow clocks (iCE40, no LUT RAM): one block RAM, read at stage 0, the read data
            # (zero for the first K tile) added at stage 1, written back at stage 2.
            m.submodules.accmem = accmem = memory.Memory(shape=acc_shape, depth=MB, init=[])
            rd = accmem.read_port(domain="sync")
            wr = accmem.write_port()
            rd1 = Signal(acc_shape, reset_less=True)
            m.d.comb += [rd.addr.eq(potag.mi), rd1.eq(Mux(t[1].first, 0, rd.data)),
                         wr.en.eq(v[2] & ~t[2].lastk), wr.addr.eq(t[2].mi), wr.data.eq(total)]
            m.d.sync += [total[n].eq(rd1[n] + ps[1][n]) for n in range(C)]
        va, ta = v[-1], t[-1]      # the sum's stage

        # ---- requant of the final K tile (``p_pop`` registered one stage ahead: it is the
        # parameter FIFO's shift enable)
        head = p_slot[0]
        pre = self.acc_latency - 1
        m.d.comb += pop_next.eq(v[pre] & t[pre].lastk & t[pre].nt_end)
        m.d.sync += p_pop.eq(pop_next)
        m.d.comb += [
            rq.i.valid.eq(va & ta.lastk),
            rq.bypass.eq(cmd.raw),
            rq.i.p.acc.eq(total),
            rq.i.p.bias.eq(head.bias), rq.i.p.mult.eq(head.mult), rq.i.p.shift.eq(head.shift),
            rq.i.p.zp.eq(cmd.zp), rq.i.p.qmin.eq(cmd.qmin), rq.i.p.qmax.eq(cmd.qmax),
            rq.i.p.last.eq(ta.final),
        ]

        # ---- output FIFO and credits
        # Word: 32 C acc bits (normal mode: the int8 lanes in the low 8 C bits), last.
        owidth = 32 * C + 1
        w_en = rq.o.valid | rq.x.valid
        w_data = Mux(cmd.raw, Cat(rq.x.p.acc, rq.x.p.last),
                     Cat(rq.o.p.data, Const(0, 24 * C), rq.o.p.last))
        if fast:
            # LUT-RAM FIFO written from registers (the bank write enables start at flip-flops),
            # with a registered head (``out`` comes from flip-flops, not from the RAM's read
            # path). The RAM is split into slices of <= 64 bits, each with its own pointer
            # copies (distinct reset values keep yosys from merging them): a pointer bit
            # drives <= 16 RAM cells.
            depth = 1 << (self.out_depth - 1).bit_length()
            wen_r = Signal()
            wdat_r = Signal(owidth, reset_less=True)
            cnt = Signal(range(depth + 1))       # words in the RAM
            nonempty = Signal()                  # == (cnt != 0), registered
            head_v = Signal()
            head_d = Signal(owidth, reset_less=True)
            load = nonempty & (~head_v | self.out.ready)
            m.d.sync += [wen_r.eq(w_en), wdat_r.eq(w_data),
                         nonempty.eq(wen_r | (cnt[1:] != 0) | (nonempty & ~load))]
            with m.If(wen_r & ~load):
                m.d.sync += cnt.eq(cnt + 1)
            with m.Elif(load & ~wen_r):
                m.d.sync += cnt.eq(cnt - 1)
            # The head registers load whenever the head is free (also junk from an empty
            # RAM, with ``head_v`` low): their enable is not the ``load`` net.
            head_ce = ~head_v | self.out.ready
            with m.If(load):
                m.d.sync += head_v.eq(1)
            with m.Elif(self.out.ready):
                m.d.sync += head_v.eq(0)
            for k, lo in enumerate(range(0, owidth, 64)):
                hi = min(lo + 64, owidth)
                omem = memory.Memory(shape=hi - lo, depth=depth, init=[],
                                     attrs={"ram_style": "distributed"})
                m.submodules[f"ofifo{k}"] = omem
                ord_, owr = omem.read_port(domain="comb"), omem.write_port()
                wptr = Signal(range(depth), init=k % depth, name=f"ofifo_wptr{k}")
                rptr = Signal(range(depth), init=k % depth, name=f"ofifo_rptr{k}")
                m.d.comb += [owr.en.eq(wen_r), owr.addr.eq(wptr), owr.data.eq(wdat_r[lo:hi]),
                             ord_.addr.eq(rptr)]
                with m.If(wen_r):
                    m.d.sync += wptr.eq(wptr + 1)
                with m.If(head_ce):
                    m.d.sync += head_d[lo:hi].eq(ord_.data)
                with m.If(load):
                    m.d.sync += rptr.eq(rptr + 1)
            o_valid, o_data = head_v, head_d
        else:
            # Slow clocks (iCE40: no LUT RAM, flip-flops are scarce): block RAM.
            m.submodules.ofifo = ofifo = fifo.SyncFIFOBuffered(width=owidth,
                                                               depth=self.out_depth)
            m.d.comb += [ofifo.w_en.eq(w_en), ofifo.w_data.eq(w_data),
                         ofifo.r_en.eq(self.out.ready)]
            o_valid, o_data = ofifo.r_rdy, ofifo.r_data
        m.d.comb += [
            self.out.valid.eq(o_valid),
            self.out.p.data.eq(o_data[:8 * C]),
            self.out.p.acc.eq(o_data[:32 * C]),
            self.out.p.last.eq(o_data[32 * C]),
        ]
        inc = admit & kt_last
        m.d.sync += free.eq(free - inc + out_take)
        with m.If(inc & ~out_take):
            m.d.comb += credit_ok_n.eq((free != 0) & (free != 1))
        with m.Elif(out_take & ~inc):
            m.d.comb += credit_ok_n.eq(1)
        return m


class GemmTop(wiring.Component):
    """:class:`GemmEngine` with flat, plainly named ports (for harnesses, lint and synthesis).

    Vector ports pack lane i at bits [i*w, (i+1)*w): ``act_data`` (R x 8), ``wgt_data``/``out_data``
    (C x 8), ``params_bias``/``params_mult``/``out_acc`` (C x 32), ``params_shift`` (C x 6);
    ``cmd_raw`` selects raw mode (``out_acc`` valid instead of ``out_data``). Each stream X has
    ``X_valid``/``X_ready``; ``out_last`` marks the final beat; ``busy`` is high from cmd to final
    beat.
    """

    def __init__(self, config: Config):
        self.config = config
        R, C = config.array_rows, config.array_cols
        super().__init__({
            "cmd_valid": In(1), "cmd_ready": Out(1), "cmd_m": In(DIM_BITS),
            "cmd_k_tiles": In(DIM_BITS), "cmd_n_tiles": In(DIM_BITS),
            "cmd_zp": In(8), "cmd_qmin": In(8), "cmd_qmax": In(8), "cmd_raw": In(1),
            "params_valid": In(1), "params_ready": Out(1), "params_bias": In(32 * C),
            "params_mult": In(32 * C), "params_shift": In(SHIFT_BITS * C),
            "wgt_valid": In(1), "wgt_ready": Out(1), "wgt_data": In(8 * C),
            "act_valid": In(1), "act_ready": Out(1), "act_data": In(8 * R),
            "out_valid": Out(1), "out_ready": In(1), "out_data": Out(8 * C),
            "out_acc": Out(32 * C), "out_last": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = e = GemmEngine(self.config)
        m.d.comb += [
            e.cmd.valid.eq(self.cmd_valid), self.cmd_ready.eq(e.cmd.ready),
            e.cmd.p.m.eq(self.cmd_m), e.cmd.p.k_tiles.eq(self.cmd_k_tiles),
            e.cmd.p.n_tiles.eq(self.cmd_n_tiles), e.cmd.p.zp.eq(self.cmd_zp),
            e.cmd.p.qmin.eq(self.cmd_qmin), e.cmd.p.qmax.eq(self.cmd_qmax),
            e.cmd.p.raw.eq(self.cmd_raw),
            e.params.valid.eq(self.params_valid), self.params_ready.eq(e.params.ready),
            e.params.p.bias.eq(self.params_bias), e.params.p.mult.eq(self.params_mult),
            e.params.p.shift.eq(self.params_shift),
            e.wgt.valid.eq(self.wgt_valid), self.wgt_ready.eq(e.wgt.ready),
            e.wgt.payload.eq(self.wgt_data),
            e.act.valid.eq(self.act_valid), self.act_ready.eq(e.act.ready),
            e.act.payload.eq(self.act_data),
            self.out_valid.eq(e.out.valid), e.out.ready.eq(self.out_ready),
            self.out_data.eq(e.out.p.data), self.out_acc.eq(e.out.p.acc),
            self.out_last.eq(e.out.p.last),
            self.busy.eq(e.busy),
        ]
        return m


def top(config: Config) -> GemmTop:
    """Factory registered as ``"gemm"`` in :data:`hw.tops.TOPS`."""
    return GemmTop(config)

