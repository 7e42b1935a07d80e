"""The NPU's conv unit: CONV instructions on the GEMM engine with on-the-fly im2col (docs/npu.md).

``ConvUnit(config)`` executes one ``CONV`` instruction (hw/isa.py, semantics: ``IsaSim._conv``) at a
time: ``cmd`` takes the raw 256-bit instruction while ``idle``; ``idle`` goes low until every SRAM
write of the instruction has been accepted. It owns the local buffers WBUF (weights, K x n_cols
int8 row-major) and PBUF (n_cols 12-byte records bias, mult, shift), two slots each, written by the
LOAD unit through ``buf`` (always ready) while CONV reads the other slot.

Datapath (all blocks are valid/ready or credit-based; nothing can be dropped or deadlock):

- **setup**: a few cycles computing the instruction's derived constants (K, M, K tiles, row and
  tap address steps) with registered products.
- **act gather** (on-the-fly im2col): walks the engine's beat order (M blocks > K tiles > rows >
  the R lanes of a K slice, K in (ky, kx, ci) order) as *pieces*, one per cycle: a run of lanes
  contiguous in SRAM (``DATA``: the rest of a tap; with dense input pixels, ``in_pitch`` = in_c,
  also the rest of a tap plus the start of the next one, or the whole rest of a kernel row when it
  fits -- first layers with few channels), a padding tap (``PAD``: lanes read ``in_zp``) or the K
  padding of the last K tile (zero lanes). Row and K-tile starts are saved and restored (the same K
  range for every row of a block, the same rows for every K tile), so addresses need no
  multiplier. The walk feeds a window stage through a short FIFO: the assembler holds two
  consecutive SRAM lines, so a piece inside them needs no read and a piece crossing into the next
  line needs one; reads go out in order, their responses come back into a credit-guarded FIFO,
  and the assembler rotates the window to the piece's lanes and pushes finished R-lane beats to
  the engine's ``act`` stream. With in_c >= R a beat is one piece: R*C MACs per cycle.
- **weights**: WBUF is one memory of line-wide words (slot = top address bit) with two read ports;
  row k (byte ``k*n_cols``, unaligned) is cut from two consecutive words, zero beyond n_cols and K.
  R rows per (M block, K tile), as the engine's ``wgt`` stream wants.
- **params**: PBUF is registers; one ``params`` beat per engine command (n_cols <= C: one N tile).
- **outputs**: engine ``out`` beats (row order) are scattered to SRAM lines with byte masks;
  consecutive pixels landing in the same line are merged into one line write.
- **acc modes** (``AccMode`` FIRST/MID/LAST): the engine runs in raw mode (int32 ``acc`` lanes =
  sum + bias); MID/LAST read the int32 partials back (a second gather over the dense acc region,
  sharing the SRAM read port by a tag in the response pipe), add them; FIRST/MID scatter the int32
  sums to ``acc_addr``; LAST requantizes them with :class:`hw.requant.Requant` and scatters int8.

Unsupported instructions (not a CONV, n_cols > C, K*n_cols beyond a WBUF slot, K = 0 or a zero
stride with outputs to produce) raise the sticky ``error`` and complete without touching the SRAM.
An instruction with no outputs (M = 0 or n_cols = 0) is a no-op, as in ``IsaSim``. M beyond the
engine's 16-bit ``m`` is split into several engine commands of whole M blocks. The SRAM line
must be a power of two of at least max(R, C) bytes (every preset; checked at construction).

Counters: ``macs`` = useful MACs of each act beat the engine takes (valid K lanes x n_cols, so a
CONV adds up to M*K*n_cols); ``stall`` = an SRAM request waits for ``ready``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config
from hw.fifos import HeadFIFO, RingFIFO2
from hw.gemm import DIM_BITS, GemmEngine, cmd_layout, m_block
from hw.isa import (
    INSTR_LAYOUT,
    LAYOUTS,
    PARAM_RECORD_BYTES,
    AccMode,
    Opcode,
    buffer_sizes,
)
from hw.npu_if import (
    buf_words,
    line_addr_bits,
    line_bytes,
    sram_read_latency,
    sram_write_signature,
    unit_members,
)
from hw.requant import SHIFT_BITS, Requant, RequantCore, SerialRequant
from hw.sram import NOINIT_ATTR, data_reg, delayed, global_net
from hw.systolic import add3, small_mul

__all__ = ["ConvUnit", "top"]

# piece kinds of the act gather
_DATA, _PAD, _ZERO = 0, 1, 2
# read tags (the response pipe routes lines back to their requester)
_TAG_ACT, _TAG_ACC = 0, 1


def _sat5(v):
    """v clamped to [0, 31] (5 bits)."""
    return Mux(v < 0, 0, Mux(v > 31, 31, v[:5]))


class _Small:
    """Compares of a signed register ``x`` with a value ``y`` in [0, 2**k) (the walk's lanes
    left), exact for every x: x's sign bit and whether its bits above k are non-zero (OR trees
    of registers), then a k-bit compare. yosys otherwise makes each a carry chain as wide as x
    and shares it with a subtractor of the same operands (``r1c - lanes_left``): two chains in
    a row at the head of the walk's recurrence (ECP5 timing, issue #13)."""

    def __init__(self, x, k: int):
        self.neg = x[-1]
        self.big = ~x[-1] & (x[k:-1] != 0)
        self.lo = x[:k]

    def lt(self, y):                     # x < y
        return self.neg | (~self.big & (self.lo < y))

    def le(self, y):                     # x <= y
        return self.neg | (~self.big & (self.lo <= y))

    def eq(self, y):                     # x == y
        return ~self.neg & ~self.big & (self.lo == y)

    def gt(self, y):                     # x > y
        return self.big | (~self.neg & (self.lo > y))


def _raw_mode_available() -> bool:
    return "raw" in dict(cmd_layout().members)


class _Scatter(wiring.Component):
    """Byte-run writer: input beats {addr, data (B bytes), n (bytes used), mask (the first n of
    the B bytes, ``i < n`` per byte: the caller's registers, not compares here)} go to SRAM as
    masked line writes, consecutive runs in the same line merged into one write. ``empty`` is
    high when every accepted beat has been written (the pending line included) -- only if
    ``flush`` is high; while ``flush`` is low a partial line waits for more bytes."""

    def __init__(self, config: Config, nbytes: int):
        self.W = line_bytes(config)
        self.B = nbytes
        # Config.conv_out_stages = 2: the input beat through a 2-entry FIFO before the shift
        # (the beat's byte mask applied on the way in)
        self.in_reg = config.conv_out_stages == 2
        self.lab = line_addr_bits(config)
        self.lgw = (self.W - 1).bit_length()
        # lines a run of B bytes at any offset can touch
        self.S = (self.W - 1 + self.B + self.W - 1) // self.W
        super().__init__({
            "i_valid": In(1), "i_ready": Out(1), "i_addr": In(24), "i_data": In(8 * nbytes),
            "i_n": In(range(nbytes + 1)), "i_mask": In(nbytes),
            "flush": In(1), "empty": Out(1),
            "wr": Out(sram_write_signature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        W, B, S, lgw = self.W, self.B, self.S, self.lgw
        # input register
        have = Signal()
        vec = data_reg(8 * W * S)       # the run shifted to its offset in S lines
        vmask = data_reg(W * S)
        step = Signal(range(S + 1))
        nsteps = Signal(range(S + 1))
        # pending (merged) line write
        pv = Signal()
        pline = data_reg(self.lab)
        pdata = data_reg(8 * W)
        pmask = data_reg(W)

        # the run's first line + step, a register beside step (an adder fed the merge compare)
        cur_line = data_reg(self.lab)
        # (named signals: the per-byte slices below then refer to one wire each)
        cur_data = Signal(8 * W)
        cur_mask = Signal(W)
        m.d.comb += [cur_data.eq(vec.word_select(step, 8 * W) if S > 1 else vec),
                     cur_mask.eq(vmask.word_select(step, W) if S > 1 else vmask)]
        piece = have
        # step + 1 == nsteps and pline == cur_line as flags, set where their operands move
        # (issue #13: the compares were in front of ``consume``, hence of ``i_ready`` and the
        # conv unit's output address enable)
        last_step = Signal()
        same_line = Signal()
        # merge or write the pending line: a write is a handshake (w_valid, w_ready) with the
        # SRAM port, or with conv_out_stages = 2 with a 2-entry ring (hw.fifos.RingFIFO2) in
        # front of it, whose ready is its level register: the consume decision, which enables
        # ``vec`` and the step registers, then does not wait on the SRAM arbiter's grant from
        # across the die (die run U: ``scat.vec`` / ``cur_line``, 11.0-11.5 ns, issue #13); one
        # cycle more per write, the same throughput
        wr = self.wr.req
        w_valid, w_ready = Signal(), Signal()
        if self.in_reg:
            out_lay = data.StructLayout({"addr": self.lab, "data": 8 * W, "mask": W})
            m.submodules.outq = outq = RingFIFO2(width=out_lay.size)
            ow, orr = data.View(out_lay, outq.w_data), data.View(out_lay, outq.r_data)
            m.d.comb += [ow.addr.eq(pline), ow.data.eq(pdata), ow.mask.eq(pmask),
                         outq.w_en.eq(w_valid), w_ready.eq(outq.w_rdy),
                         wr.valid.eq(outq.r_rdy), wr.p.addr.eq(orr.addr),
                         wr.p.data.eq(orr.data), wr.p.mask.eq(orr.mask),
                         outq.r_en.eq(wr.ready)]
            out_idle = ~outq.r_rdy
        else:
            m.d.comb += [wr.p.addr.eq(pline), wr.p.data.eq(pdata), wr.p.mask.eq(pmask),
                         wr.valid.eq(w_valid), w_ready.eq(wr.ready)]
            out_idle = 1
        consume = Signal()
        in_idle = Signal()      # no beat waits in the input register (conv_out_stages = 2)
        merged_data = Cat(*[Mux(cur_mask[i], cur_data[8 * i:8 * i + 8], pdata[8 * i:8 * i + 8])
                            for i in range(W)])
        with m.If(piece):
            with m.If(~pv):
                m.d.comb += consume.eq(1)
                m.d.sync += [pv.eq(1), pline.eq(cur_line), pdata.eq(cur_data),
                             pmask.eq(cur_mask)]
            with m.Elif(same_line):
                m.d.comb += consume.eq(1)
                m.d.sync += [pdata.eq(merged_data), pmask.eq(pmask | cur_mask)]
            with m.Else():
                m.d.comb += w_valid.eq(1)
                with m.If(w_ready):
                    m.d.comb += consume.eq(1)
                    m.d.sync += [pline.eq(cur_line), pdata.eq(cur_data), pmask.eq(cur_mask)]
        with m.Elif(self.flush & pv & in_idle):
            m.d.comb += w_valid.eq(1)
            with m.If(w_ready):
                m.d.sync += pv.eq(0)
        with m.If(consume):
            # (every consume leaves pline at the old cur_line and moves cur_line past it)
            m.d.sync += [step.eq(step + 1), cur_line.eq(cur_line + 1),
                         last_step.eq(step + 2 == nsteps), same_line.eq(0)]
            with m.If(last_step):
                m.d.sync += have.eq(0)
        # load a new run when the register is free (or frees this cycle)
        free = ~have | (consume & last_step)
        nmask = self.i_mask
        data_m = Signal(8 * B)
        m.d.comb += data_m.eq(Cat(*[Mux(nmask[i], self.i_data[8 * i:8 * i + 8], 0)
                                    for i in range(B)]))
        if self.in_reg:
            # the input register as a 2-entry ring (hw.fifos.RingFIFO2): its ready is its level
            # register, not the shift stage's ``free`` (which waits on the SRAM port's ready,
            # across the die: on the routed ECP5 die that reached the conv unit's output count
            # and address enables, issue #13); its entries load whenever free, so the engine's
            # output valid is in no data register's enable; the same latency and throughput
            in_lay = data.StructLayout({"addr": len(self.i_addr), "data": len(data_m),
                                        "n": len(self.i_n), "mask": len(nmask)})
            m.submodules.inq = inq = RingFIFO2(width=in_lay.size)
            iw, ir = data.View(in_lay, inq.w_data), data.View(in_lay, inq.r_data)
            load = inq.r_rdy & free
            m.d.comb += [self.i_ready.eq(inq.w_rdy), inq.w_en.eq(self.i_valid),
                         iw.addr.eq(self.i_addr), iw.data.eq(data_m), iw.n.eq(self.i_n),
                         iw.mask.eq(nmask), inq.r_en.eq(free)]
            s_addr, s_data, s_n, s_mask = ir.addr, ir.data, ir.n, ir.mask
            idle = ~inq.r_rdy
        else:
            load = self.i_valid & free
            m.d.comb += self.i_ready.eq(free)
            s_addr, s_data, s_n, s_mask = self.i_addr, data_m, self.i_n, nmask
            idle = 1
        off = s_addr[:lgw] if lgw else Const(0, 1)
        s_line = s_addr[lgw:lgw + self.lab]
        n_steps = (off + s_n + W - 1) >> lgw
        with m.If(load):
            m.d.sync += [
                have.eq(s_n != 0),
                step.eq(0),
                cur_line.eq(s_line),
                vec.eq(s_data << (off * 8)),
                vmask.eq(s_mask << off),
                nsteps.eq(n_steps),
                last_step.eq(n_steps == 1),
                # pline after this cycle: the old cur_line if a piece is consumed now
                same_line.eq(Mux(consume, cur_line == s_line, pline == s_line)),
            ]
        m.d.comb += [in_idle.eq(idle), self.empty.eq(~have & ~pv & idle & out_idle)]
        return m


class ConvUnit(wiring.Component):
    """CONV execution unit (see the module docstring)."""

    def __init__(self, config: Config, m_chunk: int | None = None):
        """``m_chunk``: rows per engine command (default: the most the engine's 16-bit ``m``
        holds, a whole number of M blocks); smaller values only to test the command split."""
        self.config = config
        self.R, self.C = config.array_rows, config.array_cols
        self.W = line_bytes(config)
        if self.W & (self.W - 1) or self.W < max(self.R, self.C):
            raise ValueError(f"ConvUnit needs a power-of-two SRAM line of at least max(R, C) "
                             f"bytes, got {self.W}")
        self.lgw = (self.W - 1).bit_length()
        self.lab = line_addr_bits(config)
        self.MB = m_block(config)
        sizes = buffer_sizes(config)
        self.wbuf_slot = sizes["wbuf_slot"]
        self.pbuf_slot = sizes["pbuf_slot"]
        self.bw = buf_words(config)
        self.wbits = max(1, (self.bw - 1).bit_length())
        self.pwords = -(-self.pbuf_slot // self.W)
        #: largest engine command (a whole number of M blocks)
        self.m_chunk = m_chunk or ((1 << DIM_BITS) - 1) // self.MB * self.MB
        if self.m_chunk % self.MB or not 0 < self.m_chunk < (1 << DIM_BITS):
            raise ValueError(f"m_chunk must be a multiple of {self.MB} below {1 << DIM_BITS}")
        self.raw_ok = _raw_mode_available()
        super().__init__(unit_members(config, buf="in"))

    # ------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C, W, lgw, MB = self.R, self.C, self.W, self.lgw, self.MB
        LAB = self.lab

        m.submodules.engine = eng = GemmEngine(cfg)

        # ---------------------------------------------------------------- instruction register
        conv_lay = LAYOUTS[Opcode.CONV]
        ins = data_reg(conv_lay)
        cmd_view = data.View(INSTR_LAYOUT, self.cmd.payload)

        IDLE, S1, S2, S3, S4, RUN, FIN = range(7)
        state = Signal(range(7))
        err = Signal()
        m.d.comb += [self.cmd.ready.eq(state == IDLE), self.idle.eq(state == IDLE),
                     self.error.eq(err)]
        # ``ins`` loads in every IDLE cycle (nothing reads it there), so its enables are the
        # state register's decode, not the NPU's issue decision behind ``cmd.valid`` (ECP5
        # timing, issue #13); the cycle the command is taken loads that command
        with m.If(state == IDLE):
            m.d.sync += ins.eq(cmd_view.conv)
        with m.If(self.cmd.valid & (state == IDLE)):
            m.d.sync += state.eq(S1)
            with m.If(cmd_view.header.opcode != Opcode.CONV):
                m.d.sync += [err.eq(1), state.eq(IDLE)]

        # ---------------------------------------------------------------- derived constants
        # The walk's byte addresses (the setup's products and sums, the row's base, the k
        # state's offsets) are kept modulo 2**AB, the SRAM's byte address width: the walk
        # only adds, subtracts and multiplies them, and reads the sum's low AB bits (the
        # piece's line and offset), which depend on the operands' low AB bits alone. Exact,
        # and their adders, muxes and enables are AB bits wide, not 32 (ECP5: 19 of 32;
        # run U's toff / base / trow, 12.3-13.5 ns, issue #13). The instruction's in_addr
        # and in_pitch stay as the ISA has them.
        AB = lgw + LAB
        ADDR = unsigned(AB)
        pitch = data_reg(16)
        wp = data_reg(ADDR)                # in_w * pitch (one input row)
        K = data_reg(24)
        K1 = data_reg(8)
        M = data_reg(24)
        KT = data_reg(DIM_BITS + 8)
        step_x = data_reg(ADDR)            # sw * pitch
        step_y = data_reg(ADDR)            # sh * wp - (out_w - 1) * sw * pitch (mod 2**AB)
        rowbytes = data_reg(20)            # k_w * in_c (bytes of a kernel row when dense)
        contig = data_reg()                # pitch == in_c: a kernel row is contiguous in SRAM
        # base0 = in_addr - pt * wp - pl * pitch (the first row's pixel 0) = a0 - ptw, step_y =
        # shw - oxp, from products registered in the setup cycles before: every setup register
        # is one DSP product (of at most 16 x 16 bits: one MULT18X18D), one shift-add of a
        # narrow factor (_small_mul, logic) or one adder of registers (ECP5 timing: a MULT18X18D
        # and its routes take most of a 10 ns cycle)
        shi = data_reg(15)                 # sh * in_w
        pti = data_reg(16)                 # pt * in_w
        ows = data_reg(16)                 # (out_w - 1) * sw
        shw = data_reg(ADDR)               # sh * wp = shi * pitch
        ptw = data_reg(ADDR)               # pt * wp = pti * pitch
        oxp = data_reg(ADDR)               # (out_w - 1) * sw * pitch = ows * pitch
        plp = data_reg(20)                 # pl * pitch
        a0 = data_reg(ADDR)                # in_addr - plp
        base0 = Signal(ADDR)
        in_c_r = data_reg(range(R + 1))    # min(in_c, R)
        ic2 = data_reg(18)                 # in_c + in_c_r (r1c's value at a tap's start)
        kw1 = data_reg(4)                  # k_w - 1, k_h - 1: the walk's end tests compare
        kh1 = data_reg(4)                  # registers (no subtractor before them)
        xlo0 = data_reg(5)                 # the window bounds xlo, xhi of a row's first pixel
        xhi0 = data_reg(5)
        acc_mode = Signal(AccMode)
        mode_raw = Signal()
        mode_rd_acc = Signal()
        mode_wr_acc = Signal()
        m.d.comb += [
            mode_raw.eq(acc_mode != AccMode.NONE),
            mode_rd_acc.eq((acc_mode == AccMode.MID) | (acc_mode == AccMode.LAST)),
            mode_wr_acc.eq((acc_mode == AccMode.FIRST) | (acc_mode == AccMode.MID)),
        ]
        bad = Signal()
        noop = Signal()
        start_run = Signal()
        with m.If(state == S1):
            m.d.sync += [
                pitch.eq(Mux(ins.in_pitch != 0, ins.in_pitch, ins.in_c)),
                K1.eq(small_mul(ins.k_h, ins.k_w)),
                M.eq(ins.out_h * ins.out_w),
                acc_mode.eq(ins.acc),
                ows.eq(small_mul(ins.stride_w, (ins.out_w - 1)[:len(ins.out_w)])),
                shi.eq(small_mul(ins.stride_h, ins.in_w)),
                pti.eq(small_mul(ins.pad_top, ins.in_w)),
                in_c_r.eq(Mux(ins.in_c > R, R, ins.in_c)),
                kw1.eq(ins.k_w - 1), kh1.eq(ins.k_h - 1),
                xlo0.eq(_sat5(ins.pad_left)),
                xhi0.eq(_sat5(ins.in_w + ins.pad_left)),
                state.eq(S2),
            ]
        with m.If(state == S2):
            m.d.sync += [
                wp.eq(ins.in_w * pitch),
                K.eq(K1 * ins.in_c),
                step_x.eq(small_mul(ins.stride_w, pitch)),
                rowbytes.eq(small_mul(ins.k_w, ins.in_c)),
                contig.eq(pitch == ins.in_c),
                ic2.eq(ins.in_c + in_c_r),
                shw.eq(shi * pitch),
                ptw.eq(pti * pitch),
                oxp.eq(ows * pitch),
                plp.eq(small_mul(ins.pad_left, pitch)),
                state.eq(S3),
            ]
        if R & (R - 1):
            kt_val = (K + R - 1) // R
        else:
            kt_val = (K + R - 1) >> ((R - 1).bit_length())
        # K * n_cols > wbuf_slot without a multiplier: K > wbuf_slot // n_cols (n_cols <= C;
        # the largest K of each column count from a table; n_cols 0 or > C fits or is bad anyway)
        k_fit = Array([Const(self.wbuf_slot // c if c else (1 << 24) - 1, 24)
                       for c in range(C + 1)])[Mux(ins.n_cols > C, 0, ins.n_cols)]
        # start_run (S4, neither a no-op nor bad) is a register set in S3, and on ECP5 it runs
        # on a global network (hw.sram.global_net): it loads the walk's, the counters' and the
        # engine's registers, ~700 pins (CE, LSR, D) that were one routed net from a LUT
        start_q = Signal(name="start_q")
        noop_v = (M == 0) | (ins.n_cols == 0)
        bad_v = ((ins.n_cols > C) | (K > k_fit) | (K == 0)
                 | (ins.stride_h == 0) | (ins.stride_w == 0)
                 | ((ins.acc != AccMode.NONE) if not self.raw_ok else 0))
        m.d.sync += start_q.eq(0)
        with m.If(state == S3):
            m.d.sync += [
                KT.eq(kt_val),
                a0.eq(ins.in_addr - plp),
                step_y.eq(shw - oxp),
                state.eq(S4),
            ]
            m.d.sync += [noop.eq(noop_v), bad.eq(bad_v), start_q.eq(~noop_v & ~bad_v)]
        m.d.comb += [base0.eq(a0 - ptw),
                     start_run.eq(global_net(m, platform, start_q, "conv_start_g"))]
        with m.If(state == S4):
            with m.If(noop):
                m.d.sync += state.eq(IDLE)
            with m.Elif(bad):
                m.d.sync += [state.eq(IDLE), err.eq(1)]
            with m.Else():
                m.d.sync += state.eq(RUN)

        # ---------------------------------------------------------------- buffers
        W8 = 8 * W
        # no init data in the Verilog (2 x 128 KiB on default would stall the emitter)
        m.submodules.wbuf = wbuf = memory.Memory(shape=unsigned(W8), depth=2 << self.wbits,
                                                 init=[], attrs={NOINIT_ATTR: 1})
        wbw = wbuf.write_port(granularity=8)
        wrp0 = wbuf.read_port()
        wrp1 = wbuf.read_port()
        bq = self.buf.req
        m.d.comb += bq.ready.eq(1)
        m.d.comb += [
            wbw.addr.eq(Cat(bq.p.addr[:self.wbits], bq.p.slot)),
            wbw.data.eq(bq.p.data),
            wbw.en.eq(Mux(bq.valid & (bq.p.buf == 0), bq.p.mask, 0)),
        ]
        # PBUF: registers, pwords words per slot
        pbuf = [[data_reg(8, name=f"pbuf{s}_{i}") for i in range(self.pwords * W)]
                for s in range(2)]
        for s in range(2):
            for i in range(self.pwords * W):
                wi, bi = divmod(i, W)
                with m.If(bq.valid & (bq.p.buf == 1) & (bq.p.slot == s) & (bq.p.addr == wi)
                          & bq.p.mask[bi]):
                    m.d.sync += pbuf[s][i].eq(bq.p.data[8 * bi:8 * bi + 8])

        # ---------------------------------------------------------------- engine command + params
        ecmd = eng.cmd
        m_left = Signal(24)              # rows not yet commanded
        # The command's valid, (state == RUN) & (m_left != 0), and m_left > m_chunk (the min's
        # select) as flag registers, set from the next values: the engine's command decision
        # (its ``cmd`` register's enable and its admission flags, across the die) starts from
        # a flip-flop, not from a 24-bit compare (ECP5 timing, issue #13). State leaves RUN
        # only with m_left == 0, and a run starts with M != 0 (else it is a no-op).
        ecmd_v = Signal()
        m_gt = Signal()
        par_pend = Signal()
        with m.If(start_run):
            m.d.sync += [m_left.eq(M), ecmd_v.eq(1), m_gt.eq(M > self.m_chunk)]
        m_this = Mux(m_gt, self.m_chunk, m_left)
        m.d.comb += [
            ecmd.valid.eq(ecmd_v),
            ecmd.p.m.eq(m_this),
            ecmd.p.k_tiles.eq(KT),
            ecmd.p.n_tiles.eq(1),
            ecmd.p.zp.eq(ins.out_zp),
            ecmd.p.qmin.eq(ins.act_min),
            ecmd.p.qmax.eq(ins.act_max),
        ]
        if self.raw_ok:
            m.d.comb += ecmd.p.raw.eq(mode_raw)
        with m.If(ecmd.valid & ecmd.ready):
            m.d.sync += [m_left.eq(m_left - m_this), par_pend.eq(1), ecmd_v.eq(m_gt),
                         m_gt.eq(m_left > 2 * self.m_chunk)]
        ep = eng.params
        m.d.comb += ep.valid.eq(par_pend)
        with m.If(ep.valid & ep.ready):
            m.d.sync += par_pend.eq(0)
        # the params beat of slot pslot (channels >= n_cols zero)
        for j in range(C):
            def rec(off, n, j=j):
                b = PARAM_RECORD_BYTES * j + off
                return [Mux(ins.pslot, pbuf[1][b + i], pbuf[0][b + i]) for i in range(n)]
            use = j < ins.n_cols
            m.d.comb += [
                ep.p.bias[j].eq(Mux(use, Cat(*rec(0, 4)), 0)),
                ep.p.mult[j].eq(Mux(use, Cat(*rec(4, 4)), 0)),
                ep.p.shift[j].eq(Mux(use, Cat(*rec(8, 1))[:SHIFT_BITS], 0)),
            ]
        # bias/mult/shift again for the unit's own requant (LAST); registered at start
        rq_mult = data_reg(data.ArrayLayout(signed(32), C))
        rq_shift = data_reg(data.ArrayLayout(signed(SHIFT_BITS), C))
        with m.If(start_run):
            m.d.sync += [rq_mult.eq(ep.p.mult), rq_shift.eq(ep.p.shift)]

        # ---------------------------------------------------------------- SRAM read port
        # Requests of the act gather (priority) and the partials gather; tags through a delay
        # line of the fixed read latency route the responses back.
        rq_port = self.rd.req
        act_req_v, act_req_line, act_req_rdy = Signal(), Signal(LAB), Signal()
        acc_req_v, acc_req_line, acc_req_rdy = Signal(), Signal(LAB), Signal()
        if cfg.conv_walk_stages == 2:
            # (FPGA clocks) stage B's emit, which pops the piece FIFO's head (``paq``'s output
            # register) and writes the window, sees the ready of a 2-entry FIFO in front of the
            # port, not the port's ready from the SRAM arbiter across the die (die run U: paq's
            # head, 14.25 ns, issue #13). A request goes to the port directly when the FIFO is
            # empty (the FIFO takes it if the port does not), so the latency is unchanged: all
            # requests through the FIFO cost person_detect ``ecp5`` 2.7 % more cycles. The
            # credit counts a request as B issues it.
            m.submodules.areq = areq = RingFIFO2(width=LAB)
            direct = ~areq.r_rdy
            m.d.comb += [areq.w_en.eq(act_req_v & ~(direct & rq_port.ready)),
                         areq.w_data.eq(act_req_line), act_req_rdy.eq(areq.w_rdy),
                         areq.r_en.eq(rq_port.ready)]
            port_act_v = areq.r_rdy | act_req_v
            port_act_line = Mux(areq.r_rdy, areq.r_data, act_req_line)
        else:
            m.d.comb += act_req_rdy.eq(rq_port.ready)
            port_act_v, port_act_line = act_req_v, act_req_line
        sel_act = port_act_v
        m.d.comb += [
            rq_port.valid.eq(port_act_v | acc_req_v),
            rq_port.p.addr.eq(Mux(sel_act, port_act_line, acc_req_line)),
            acc_req_rdy.eq(rq_port.ready & ~port_act_v),
        ]
        lat = sram_read_latency(self.config)
        tag_pipe = [Signal(2, name=f"tag{i}") for i in range(lat)]
        fire = rq_port.valid & rq_port.ready
        m.d.sync += tag_pipe[0].eq(Cat(fire, Mux(sel_act, _TAG_ACT, _TAG_ACC)))
        for i in range(1, lat):
            m.d.sync += tag_pipe[i].eq(tag_pipe[i - 1])
        resp_tag = tag_pipe[-1]
        # (the response is on rdata in the cycle the tag reaches the end of the pipe)

        RESP_DEPTH = lat + 3
        # act responses
        m.submodules.afresp = afresp = fifo.SyncFIFO(width=W8, depth=RESP_DEPTH)
        m.d.comb += [afresp.w_en.eq(self.rd.rvalid & resp_tag[0] & (resp_tag[1] == _TAG_ACT)),
                     afresp.w_data.eq(self.rd.rdata)]

        # ---------------------------------------------------------------- act gather: generator
        ph = Signal()                    # generator active
        # Config.conv_walk_stages = 2: the K tile / M block / end updates of the walk's block
        # registers (kt_left, blk_rows_after, the saved k and row state: ~330 flip-flops) happen
        # in a turn cycle after the beat that ends a K tile's pass over the block's rows, from
        # registers, not on the beat's end decision (whose enables spread across the unit were
        # the unit's ECP5 critical path); one cycle more per K tile and M block, no piece moves.
        # With 1 the turn is a constant 0.
        two_stage = cfg.conv_walk_stages == 2
        turn = Signal()
        # loop counters
        blk_rows_after = Signal(24)      # rows after the current block
        mi_left = Signal(range(MB))      # rows left in the block after this one
        blk_len1 = Signal(range(MB))     # rows in the current block - 1
        kt_left = Signal(DIM_BITS + 8)   # K tiles left after this one
        # kt_left != 0 and blk_rows_after != 0 as registers, set with them (the turn's case
        # selects start from flip-flops, not from 24-bit OR trees: ECP5 timing, issue #13)
        kt_nz, bra_nz = Signal(name="kt_nz"), Signal(name="bra_nz")
        # row state (current and saved at the block start)
        SA = ADDR                        # byte addresses modulo 2**AB (see the setup's)
        ox_left, ox_left_s = data_reg(12, name="ox_left"), data_reg(12, name="ox_left_s")
        # ox_left == 0 (the row is the output row's last pixel: the next one wraps) beside it
        ox_z, ox_z_s = data_reg(name="ox_z"), data_reg(name="ox_z_s")
        iy0, iy0_s = data_reg(signed(16), name="iy0"), data_reg(signed(16), name="iy0_s")
        ix0, ix0_s = data_reg(signed(16), name="ix0"), data_reg(signed(16), name="ix0_s")
        # iy0 + stride_h and ix0 + stride_w (the next row's, when it wraps / does not) beside
        # iy0 and ix0: the row advance and its window flags start from registers, not adders
        iy0n, iy0n_s = data_reg(signed(16), name="iy0n"), data_reg(signed(16), name="iy0n_s")
        ix0n, ix0n_s = data_reg(signed(16), name="ix0n"), data_reg(signed(16), name="ix0n_s")
        base, base_s = data_reg(SA, name="base"), data_reg(SA, name="base_s")
        # the row's window bounds in kernel coordinates, beside iy0 / ix0 (updated with them):
        # tap (ky, kx) is inside the input iff ylo <= ky < yhi and xlo <= kx < xhi, i.e. ylo =
        # -iy0, yhi = in_h - iy0, xlo = -ix0, xhi = in_w - ix0, saturated to [0, 31] (ky, kx,
        # kx + 1 and k_w are in [0, 16], so the tests stay exact). The walk's per-piece tests are
        # then 5-bit compares of registers, not an adder into a 16-bit compare (ECP5 timing).
        BND = unsigned(5)
        ylo, ylo_s = data_reg(BND, name="ylo"), data_reg(BND, name="ylo_s")
        yhi, yhi_s = data_reg(BND, name="yhi"), data_reg(BND, name="yhi_s")
        xlo, xlo_s = data_reg(BND, name="xlo"), data_reg(BND, name="xlo_s")
        xhi, xhi_s = data_reg(BND, name="xhi"), data_reg(BND, name="xhi_s")
        # k state (current and saved at the K tile start)
        ky, ky_s = data_reg(4, name="ky"), data_reg(4, name="ky_s")
        kx, kx_s = data_reg(4, name="kx"), data_reg(4, name="kx_s")
        ci, ci_s = data_reg(16, name="ci"), data_reg(16, name="ci_s")
        # ky * wp + kx * pitch
        toff, toff_s = data_reg(SA, name="toff"), data_reg(SA, name="toff_s")
        trow, trow_s = data_reg(SA, name="trow"), data_reg(SA, name="trow_s")     # ky * wp
        # kx * in_c + ci (bytes into the kernel row)
        rpos, rpos_s = data_reg(20, name="rpos"), data_reg(20, name="rpos_s")
        kdone, kdone_s = Signal(name="kdone"), Signal(name="kdone_s")
        # rowbytes - rpos and in_c - ci in registers beside rpos and ci (updated by - n as those
        # are by + n), and R - lane beside lane: the walk's one-cycle recurrence then starts with
        # compares, not subtractors (ECP5 timing, issue #13)
        row_left = data_reg(signed(21), name="row_left")
        row_left_s = data_reg(signed(21), name="row_left_s")
        r1, r1_s = data_reg(signed(17), name="r1"), data_reg(signed(17), name="r1_s")
        # and r1 + min(in_c, R) beside r1: span2's test lanes_left - r1 < in_c (see there) is
        # then one compare, lanes_left < r1c, not a subtractor into a compare
        r1c, r1c_s = data_reg(signed(18), name="r1c"), data_reg(signed(18), name="r1c_s")
        # ky == k_h - 1 and kx == k_w - 1 as flags beside ky and kx, set with them from each
        # candidate next value (ky + 1, kx + 1, 0, the saved state's): the walk's decisions start
        # from flip-flops, not from compares (the unit's ECP5 critical path began with them)
        kye, kye_s = data_reg(name="ky_end"), data_reg(name="ky_end_s")
        kxe, kxe_s = data_reg(name="kx_end"), data_reg(name="kx_end_s")
        kcur = [ky, kx, ci, toff, trow, rpos, kdone, row_left, r1, r1c, kye, kxe]
        ksav = [ky_s, kx_s, ci_s, toff_s, trow_s, rpos_s, kdone_s, row_left_s, r1_s, r1c_s,
                kye_s, kxe_s]
        # The window tests of the k state against the row's bounds, as flags set with either
        # (a tap's pixel row and column inside the input, the next column inside it, the whole
        # kernel row inside it): when only the k state moves, from each candidate next value's
        # compares; when the row moves, from the new row's bounds (docs/fpga.md, session 19).
        w_iy, w_ixg = data_reg(name="w_iy"), data_reg(name="w_ixg")
        w_ixl, w_ix1 = data_reg(name="w_ixl"), data_reg(name="w_ix1")
        w_kw = data_reg(name="w_kw")
        wflags = [w_iy, w_ixg, w_ixl, w_ix1, w_kw]

        def window_y(kyv, lo, hi):
            return (kyv >= lo) & (kyv < hi)

        def window_x(kxv, lo, hi):
            return [kxv >= lo, kxv < hi, kxv + 1 < hi]

        def window_flags(kyv, kxv, bounds):
            """The window flags' values for k state (kyv, kxv) in a row of bounds (ylo, yhi,
            xlo, xhi)."""
            lo_y, hi_y, lo_x, hi_x = bounds
            return [window_y(kyv, lo_y, hi_y), *window_x(kxv, lo_x, hi_x), ins.k_w <= hi_x]
        lane = Signal(range(R + 1))
        lanes_left = Signal((R - lane).shape())
        # mirror of the assembler's two-line window: lines X (slot A) and X + 1 (slot B) hold
        # data (win_a, win_b). X is the line of the last DATA piece B emitted (a hit keeps it,
        # a slide or a jump sets it), so stage A, which writes the pieces in the order B takes
        # them, compares each DATA piece's line with the last one's (``a_last``) and sends the
        # results with the piece: B's window tests are then flags of the FIFO's head, not line
        # compares in front of its request, emit and take (die run AA's path: paq's head ->
        # the compares -> emit -> the window registers' enables, 14.0 ns, issue #13)
        win_a = Signal()
        win_b = Signal()
        a_last = data_reg(LAB, name="a_last")
        outstanding = Signal(range(RESP_DEPTH + 1))

        # the piece's lanes as masks made at stage B from its registers (lane0 <= r < lane0 + n:
        # the piece's segment; r >= lane0 + n with zrest: zeroed) and the beat's valid K lanes
        # (kv): the assembler's lane selects are then flip-flops of the FIFO's head, not an
        # adder and compares behind it (the conv unit's ECP5 critical path ran lane0 -> the
        # segment compares -> the lane muxes -> the act FIFO)
        piece_lay = data.StructLayout({
            "fill": 2, "shift": 1, "kind": 2, "rsh": range(W + R), "seg": R, "zero": R,
            "kv": range(R + 1), "last": 1,
        })
        # buffered: the assembler's piece (shift amount, sources, lanes) comes from registers,
        # not through the FIFO's LUT-RAM read (ECP5 timing); 6 entries as before, plus the output
        m.submodules.pfifo = pfifo = fifo.SyncFIFOBuffered(width=piece_lay.size, depth=7)
        pw = data.View(piece_lay, pfifo.w_data)

        # stage A: the k walk, one piece per cycle (into the pa_* register)
        # A piece is the rest of the current tap (at most the lanes left), or -- when input
        # pixels are dense (pitch = in_c) and every tap to the end of the kernel row is inside
        # the input -- the whole rest of the kernel row if it fits the lanes left (first layers
        # with few channels: one piece per kernel row instead of one per tap), or the lanes
        # left when they end inside the next tap (K slices across tap boundaries, in_c % R != 0).
        LK = R.bit_length()              # lanes_left < 2**LK
        r1_x, rl_x, r1c_x = _Small(r1, LK), _Small(row_left, LK), _Small(r1c, LK)
        r1_le = r1_x.le(lanes_left)      # the tap ends within the beat
        r1_lt = r1_x.lt(lanes_left)
        seg = Mux(r1_le, r1, lanes_left)
        iy_ok = w_iy                     # ylo <= ky < yhi
        ix_ge0 = w_ixg                   # kx >= xlo
        tap_in = iy_ok & ix_ge0 & w_ixl  # & kx < xhi
        kx_end = kxe                     # kx == kw1
        # (row_left >= r1 always; where equal, a merge is the tap's rest: the same piece, n,
        # ends and next state, so merge does not test row_left > r1)
        merge = (contig & ~kdone & iy_ok & ix_ge0 & w_kw            # w_kw: k_w <= xhi
                 & rl_x.le(lanes_left))
        # or the rest of this tap and the start of the next one (dense, both inside the input,
        # lanes_left - r1 < in_c: lanes_left - r1 is in [1, R - 1] there, so with in_c
        # saturated to R that is lanes_left < r1c = r1 + min(in_c, R))
        span2 = (contig & ~kdone & iy_ok & ix_ge0 & w_ix1 & ~kx_end     # w_ix1: kx + 1 < xhi
                 & r1_lt & r1c_x.gt(lanes_left))
        addr = Signal(ADDR)
        m.d.comb += addr.eq(add3(base, toff, ci, AB))    # (one carry chain, not two)
        n = Signal(range(R + 1))
        m.d.comb += n.eq(Mux(kdone, 0, Mux(merge, row_left, Mux(span2, lanes_left, seg))))
        # within a beat (not its end) n is row_left (merge) or r1 (the rest of the tap): the
        # lane counters' both sums, selected after (an adder after n was the walk's longest path)
        lane_n = Mux(merge, lane + row_left, lane + r1)
        lanes_left_n = Mux(merge, lanes_left - row_left, lanes_left - r1)
        # tap_end (n == r1: ci + n == in_c) and the beat's end (n == lanes_left: lane + n == R)
        # from the compares n is selected by, in parallel with n rather than after it (timing):
        # a merge ends the row (n = row_left > r1), a span2 the beat (n = lanes_left > r1), a
        # rest of a tap (n = min(lanes_left, r1)) the tap if r1 <= lanes_left, the beat if >=
        tap_end = ~merge & ~span2 & r1_le
        ky_end = kye                     # ky == kh1
        row_end = merge | (tap_end & kx_end)
        kdone_n = kdone | (row_end & ky_end)
        beat_end = kdone | kdone_n | Mux(merge, rl_x.eq(lanes_left), span2 | ~r1_lt)
        # the k state after this piece (each case with its own n, not the selected one: the
        # sums start from registers, in parallel with the compares that select them)
        knext = [Signal(v.shape(), name=f"{v.name}_nx") for v in kcur]
        (ky_nx, kx_nx, ci_nx, toff_nx, trow_nx, rpos_nx, kdone_nx, rl_nx, r1_nx, r1c_nx,
         kye_nx, kxe_nx) = knext
        m.d.comb += [x.eq(v) for x, v in zip(knext, kcur, strict=True)]
        # and the window flags after this piece, while the row stays
        wnext = [Signal(name=f"{v.name}_nx") for v in wflags]
        wy_nx, wxg_nx, wxl_nx, wx1_nx, _ = wnext
        m.d.comb += [x.eq(v) for x, v in zip(wnext, wflags, strict=True)]
        ky_inc, kx_inc = (ky + 1)[:len(ky)], (kx + 1)[:len(kx)]
        kx_inc_end = kx_inc == kw1
        tap_next = [kx_nx.eq(kx + 1), kxe_nx.eq(kx_inc_end),
                    *[f.eq(v) for f, v in zip((wxg_nx, wxl_nx, wx1_nx),
                                              window_x(kx_inc, xlo, xhi), strict=True)]]
        # (no hold under kdone: the walk never advances with kdone set -- the piece that sets
        # it ends the beat, after which the saved state, k_reset or the end (ph = 0) replaces
        # the k state, and a K tile's walked state is saved only before the last tile, which
        # alone reaches the kernel's end. So r1, r1c, row_left, ci and rpos change with every
        # piece, and yosys makes their enables ``go`` and the turn's, not a hold condition
        # through the piece's compares: die run U, 12.4-13.2 ns, issue #13)
        with m.If(row_end):
            m.d.comb += [ky_nx.eq(ky + 1), kx_nx.eq(0), ci_nx.eq(0), trow_nx.eq(trow + wp),
                         toff_nx.eq(trow + wp), rpos_nx.eq(0), kdone_nx.eq(ky_end),
                         rl_nx.eq(rowbytes), r1_nx.eq(ins.in_c), r1c_nx.eq(ic2),
                         kye_nx.eq(ky_inc == kh1), kxe_nx.eq(kw1 == 0),
                         wy_nx.eq(window_y(ky_inc, ylo, yhi)),
                         *[f.eq(v) for f, v in zip((wxg_nx, wxl_nx, wx1_nx),
                                                   window_x(0, xlo, xhi), strict=True)]]
        with m.Elif(span2):          # n = lanes_left
            m.d.comb += [*tap_next, ci_nx.eq(lanes_left - r1),
                         toff_nx.eq(toff + pitch), rpos_nx.eq(rpos + lanes_left),
                         rl_nx.eq(row_left - lanes_left),
                         r1_nx.eq(ins.in_c - (lanes_left - r1)),
                         r1c_nx.eq(ic2 - (lanes_left - r1))]
        with m.Elif(tap_end):        # n = r1
            m.d.comb += [*tap_next, ci_nx.eq(0), toff_nx.eq(toff + pitch),
                         rpos_nx.eq(rpos + r1), rl_nx.eq(row_left - r1), r1_nx.eq(ins.in_c),
                         r1c_nx.eq(ic2)]
        with m.Else():               # n = lanes_left < r1
            m.d.comb += [ci_nx.eq(ci + lanes_left), rpos_nx.eq(rpos + lanes_left),
                         rl_nx.eq(row_left - lanes_left), r1_nx.eq(r1 - lanes_left),
                         r1c_nx.eq(r1c - lanes_left)]
        # the piece crosses into the next line (off + n > W), for stage B: one compare per
        # candidate n from registers (the low bits of addr are a narrow sum), selected as n is
        # (an adder after the FIFO's head had started stage B's request and window path). Each
        # candidate is exact when selected: n <= lanes_left <= R < 2**LK then.
        addr_lo = Signal(max(1, lgw))
        if lgw:
            m.d.comb += addr_lo.eq(base[:lgw] + toff[:lgw] + ci[:lgw])

        def crosses(v):
            return (addr_lo + v.as_unsigned()[:LK]) > W
        cross_n = Mux(kdone, 0, Mux(merge, crosses(row_left),
                                    Mux(span2 | ~r1_le, crosses(lanes_left), crosses(r1))))
        # A -> B through a short FIFO: the walk's enable depends on registers only, and B's
        # window compares and request start from the FIFO's output register (buffered: not
        # through a LUT-RAM read; one cycle more per instruction, the same throughput)
        pa_lay = data.StructLayout({
            "data": 1, "kind": 2, "line": LAB, "off": max(1, lgw), "lane": range(R + 1),
            "n": range(R + 1), "zrest": 1, "last": 1, "cross": 1, "eq_x": 1, "eq_x1": 1})
        m.submodules.paq = paq = fifo.SyncFIFOBuffered(width=pa_lay.size, depth=4)
        paw = data.View(pa_lay, paq.w_data)
        par = data.View(pa_lay, paq.r_data)
        b_take = Signal()
        go = Signal()
        m.d.comb += [
            go.eq(ph & paq.w_rdy & ~turn),
            paq.w_en.eq(go),
            paw.data.eq(~kdone & (tap_in | merge | span2)),
            paw.kind.eq(Mux(kdone, _ZERO, Mux(tap_in | merge | span2, _DATA, _PAD))),
            paw.line.eq(addr[lgw:lgw + LAB]), paw.off.eq(addr[:lgw] if lgw else 0),
            paw.lane.eq(lane), paw.n.eq(n), paw.zrest.eq(kdone_n), paw.last.eq(beat_end),
            paw.cross.eq(cross_n),
            paw.eq_x.eq(paw.line == a_last), paw.eq_x1.eq(paw.line == (a_last + 1)[:LAB]),
            paq.r_en.eq(b_take),
        ]
        with m.If(go & paw.data):
            m.d.sync += a_last.eq(paw.line)
        pa_v, pa_data, pa_kind, pa_line = paq.r_rdy, par.data, par.kind, par.line
        pa_off, pa_lane, pa_n, pa_zrest, pa_last = par.off, par.lane, par.n, par.zrest, par.last

        # stage B: the window. A DATA piece spans line L (and L + 1 when it crosses). Cases:
        # hit in A (B fetched if crossing and missing); slide (L = X + 1 is in B: A := B, fetch
        # L + 1 into B if crossing); jump (fetch L into A; a crossing piece then takes a second
        # cycle for B).
        line = pa_line
        cross = par.cross
        # (a jump with a crossing piece is taken in two cycles, the first fetching A only,
        # ``fetch_only``; ``fo_held`` marks the second: its line is X by then)
        fo_held = Signal()
        hit_a = win_a & (par.eq_x | fo_held)
        slide = ~hit_a & win_b & par.eq_x1
        fetch_only = Signal()            # a jump with a crossing piece: fetch A only
        fill = Signal(2)                 # 0 none, 1 A, 2 B
        shift = Signal()
        with m.If(pa_data):
            with m.If(hit_a):
                m.d.comb += fill.eq(Mux(cross & ~win_b, 2, 0))
            with m.Elif(slide):
                m.d.comb += [shift.eq(1), fill.eq(Mux(cross, 2, 0))]
            with m.Else():
                m.d.comb += [fill.eq(1), fetch_only.eq(cross)]
        fetch_line = Mux(fill == 1, line, (line + 1)[:LAB])
        need = fill != 0
        # a register: outstanding's next value compared as it is registered (the compare is
        # then off stage B's request -> emit path)
        credit = Signal(init=1)
        emit = Signal()
        m.d.comb += [
            act_req_v.eq(pa_v & need & pfifo.w_rdy & credit),
            act_req_line.eq(fetch_line),
            emit.eq(pa_v & pfifo.w_rdy & (~need | (credit & act_req_rdy))),
            b_take.eq(emit & ~fetch_only),
            pfifo.w_en.eq(emit),
            pw.fill.eq(fill), pw.shift.eq(shift), pw.kind.eq(pa_kind),
            pw.rsh.eq(pa_off + R - pa_lane),
            pw.last.eq(pa_last & ~fetch_only),
        ]
        seg_end = pa_lane + pa_n
        for r in range(R):
            m.d.comb += [pw.seg[r].eq(~fetch_only & (r >= pa_lane) & (r < seg_end)),
                         pw.zero[r].eq(~fetch_only & pa_zrest & (r >= seg_end))]
        m.d.comb += pw.kv.eq(Mux(pa_zrest & ~fetch_only, seg_end, R))
        resp_pop = Signal()
        out_n = Signal.like(outstanding, name="outstanding_n")
        m.d.comb += out_n.eq(outstanding + (act_req_v & act_req_rdy) - resp_pop)
        m.d.sync += [outstanding.eq(out_n), credit.eq(out_n < RESP_DEPTH)]
        with m.If(emit & pa_data):
            with m.If(hit_a):
                with m.If(fill == 2):
                    m.d.sync += win_b.eq(1)
            with m.Elif(slide):
                m.d.sync += [win_a.eq(1), win_b.eq(fill == 2)]
            with m.Else():
                m.d.sync += [win_a.eq(1), win_b.eq(0)]
        with m.If(emit & fetch_only):
            m.d.sync += fo_held.eq(1)
        with m.Elif(b_take):
            m.d.sync += fo_held.eq(0)

        # the row after the current one (and its window bounds)
        wrap = ox_z                      # ox_left == 0
        ox_w1 = (ins.out_w - 1)[:len(ox_left)]   # ox_left of a row's first pixel
        iy0_nx, ix0_nx = iy0n, ix0n      # iy0 + stride_h, ix0 + stride_w
        ix0n_0 = Signal.like(ix0n)       # ix0n of a row's first pixel
        m.d.comb += ix0n_0.eq(ins.stride_w - ins.pad_left)
        row_nx = [
            Mux(wrap, ox_w1, ox_left - 1),
            Mux(wrap, iy0_nx, iy0),
            Mux(wrap, -ins.pad_left, ix0_nx),
            Mux(wrap, base + step_y, base + step_x),
            Mux(wrap, _sat5(-iy0_nx), ylo),
            Mux(wrap, _sat5(ins.in_h - iy0_nx), yhi),
            Mux(wrap, xlo0, _sat5(-ix0_nx)),
            Mux(wrap, xhi0, _sat5(ins.in_w - ix0_nx)),
            Mux(wrap, iy0n + ins.stride_h, iy0n),
            Mux(wrap, ix0n_0, ix0n + ins.stride_w),
            Mux(wrap, ox_w1 == 0, ox_left == 1),
        ]
        rcur = [ox_left, iy0, ix0, base, ylo, yhi, xlo, xhi, iy0n, ix0n, ox_z]
        rsav = [ox_left_s, iy0_s, ix0_s, base_s, ylo_s, yhi_s, xlo_s, xhi_s, iy0n_s, ix0n_s,
                ox_z_s]
        # the first row of the instruction
        row0 = [ox_w1, -ins.pad_top, -ins.pad_left, base0, _sat5(ins.pad_top),
                _sat5(ins.in_h + ins.pad_top), xlo0, xhi0, ins.stride_h - ins.pad_top, ix0n_0,
                ox_w1 == 0]

        def next_row_window(kyv, kxv):
            """The window flags of k state (kyv, kxv) in the row after the current one. The
            bounds are 5-bit saturations of the row's iy0 / ix0 offsets, and kyv, kxv, kxv + 1
            and k_w (>= 1 in a run) lie in [0, 16], so kyv >= sat5(-iy0) <=> iy0 + kyv >= 0 and
            kyv < sat5(in_h - iy0) <=> iy0 + kyv < in_h (alike in x): the moving bound's tests
            are an adder and a compare of registers (iy0n, ix0n), not the bounds' saturations
            followed by compares."""
            iy, ix = iy0n + kyv, ix0n + kxv
            return [Mux(wrap, window_y(iy, 0, ins.in_h), window_y(kyv, ylo, yhi)),
                    *[Mux(wrap, a, b) for a, b in zip(
                        [*window_x(kxv, xlo0, xhi0), ins.k_w <= xhi0],
                        [ix >= 0, ix < ins.in_w, ix + 1 < ins.in_w, ix0n + ins.k_w <= ins.in_w],
                        strict=True)]]

        def row_advance():
            return [v.eq(x) for v, x in zip(rcur, row_nx, strict=True)]

        def k_reset():
            k0 = [0, 0, 0, 0, 0, 0, 0, rowbytes, ins.in_c, ic2, kh1 == 0, kw1 == 0]
            return [v.eq(x) for regs in (kcur, ksav) for v, x in zip(regs, k0, strict=True)]

        def set_window(kyv, kxv, row=None):
            """The window flags for k state (kyv, kxv) in ``row`` (a row state list), or in
            the row after the current one."""
            v = next_row_window(kyv, kxv) if row is None else window_flags(kyv, kxv, row[4:8])
            m.d.sync += [f.eq(x) for f, x in zip(wflags, v, strict=True)]

        def tile_end(walked):
            # the last row of the K tile's pass over the block is done: the next K tile (its
            # start is the walked k state), else the next M block, else the end
            with m.If(kt_nz):
                # rows from the block start
                m.d.sync += [kt_left.eq(kt_left - 1), kt_nz.eq(kt_left != 1), mi_left.eq(blk_len1),
                             *[v.eq(x) for v, x in zip(rcur, rsav, strict=True)]]
                m.d.sync += [v.eq(x) for v, x in zip(ksav, walked, strict=True)]
                set_window(walked[0], walked[1], rsav)
            with m.Elif(bra_nz):
                # next M block
                nb1 = Mux(blk_rows_after > MB, MB - 1, blk_rows_after - 1)
                m.d.sync += [
                    *k_reset(), kt_left.eq(KT - 1), kt_nz.eq(KT != 1), mi_left.eq(nb1),
                    blk_len1.eq(nb1),
                    blk_rows_after.eq(Mux(blk_rows_after > MB, blk_rows_after - MB, 0)),
                    bra_nz.eq(blk_rows_after > MB),
                    *row_advance(),
                ]
                # saved block start = the advanced row state
                m.d.sync += [v.eq(x) for v, x in zip(rsav, row_nx, strict=True)]
                set_window(0, 0)
            with m.Else():
                m.d.sync += ph.eq(0)

        with m.If(start_run):
            m.d.sync += [
                ph.eq(1), win_a.eq(0), win_b.eq(0), lane.eq(0), lanes_left.eq(R), *k_reset(),
                *[v.eq(x) for v, x in zip(rcur, row0, strict=True)],
                *[v.eq(x) for v, x in zip(rsav, row0, strict=True)],
                kt_left.eq(KT - 1), kt_nz.eq(KT != 1),
                blk_len1.eq(Mux(M > MB, MB - 1, M - 1)),
                mi_left.eq(Mux(M > MB, MB - 1, M - 1)),
                blk_rows_after.eq(Mux(M > MB, M - MB, 0)), bra_nz.eq(M > MB),
            ]
            set_window(0, 0, row0)
            if two_stage:
                m.d.sync += turn.eq(0)
        with m.Elif(turn):
            # conv_walk_stages = 2: the turn cycle after a K tile's last row. The beat's last
            # piece already moved kcur to the walked state, and rcur is still the last row's.
            m.d.sync += turn.eq(0)
            tile_end(kcur)
        with m.Elif(go):
            # advance the k walk within the beat
            m.d.sync += [v.eq(x) for v, x in zip(kcur, knext, strict=True)]
            m.d.sync += [v.eq(x) for v, x in zip(wflags, wnext, strict=True)]
            m.d.sync += [lane.eq(lane_n), lanes_left.eq(lanes_left_n)]
            with m.If(beat_end):
                m.d.sync += [lane.eq(0), lanes_left.eq(R)]
                with m.If(mi_left != 0):
                    # next row of the same K tile: same k range
                    m.d.sync += [mi_left.eq(mi_left - 1), *row_advance(),
                                 *[v.eq(x) for v, x in zip(kcur, ksav, strict=True)]]
                    set_window(ky_s, kx_s)
                with m.Else():
                    if two_stage:
                        m.d.sync += turn.eq(1)
                    else:
                        tile_end(knext)

        # ---------------------------------------------------------------- act gather: assembler
        pr = data.View(piece_lay, pfifo.r_data)
        slot_a = data_reg(W8)
        slot_b = data_reg(W8)
        beat = Signal(8 * R)
        macs = Signal(16)
        m.submodules.afifo = afifo = fifo.SyncFIFO(width=8 * R + len(macs), depth=4)
        new = pr.fill != 0
        a_next = Mux(pr.fill == 1, afresp.r_data, Mux(pr.shift, slot_b, slot_a))
        b_next = Mux(pr.fill == 2, afresp.r_data, slot_b)
        if two_stage:
            # conv_walk_stages = 2: the assembler in two stages. The first takes the piece and
            # its line into the window's slots and the piece's fields into registers (``q``);
            # the next cycle the second shifts the window, which is then registers, into the
            # beat. Each stage's enable is a few registers (the piece FIFO's head, the line
            # FIFO's and the act FIFO's flags), and the shifter's amount is a register (on the
            # routed ECP5 die one ``can`` enabled the slots, the beat and the piece FIFO's head,
            # and the shifter ran from the head's reload: 15.0 ns, issue #13). One cycle more
            # of latency, the same throughput.
            q = data_reg(piece_lay, name="asm_q")
            q_v = Signal()
            go2 = q_v & (~q.last | afifo.w_rdy)
            can = pfifo.r_rdy & (~new | afresp.r_rdy) & (~q_v | go2)
            with m.If(can):
                m.d.sync += [slot_a.eq(a_next), slot_b.eq(b_next), q.eq(pr)]
            with m.If(can | go2):
                m.d.sync += q_v.eq(can)
            wa, wb, sp = slot_a, slot_b, q
        else:
            can = pfifo.r_rdy & (~new | afresp.r_rdy) & (~pr.last | afifo.w_rdy)
            go2 = can
            with m.If(can):
                m.d.sync += [slot_a.eq(a_next), slot_b.eq(b_next)]
            wa, wb, sp = a_next, b_next, pr
        m.d.comb += [pfifo.r_en.eq(can), resp_pop.eq(can & new), afresp.r_en.eq(can & new)]
        # lane r (lane0 <= r < lane0 + n) takes byte off + r - lane0 of the two-line window: one
        # shift by rsh = off - lane0 + R of the window behind R zero bytes (stage B computed rsh;
        # one shifter instead of a rotate by off and a shift by lane0, ECP5 timing)
        window = Cat(Const(0, 8 * R), wa, wb)
        sh = Signal(8 * R)
        m.d.comb += sh.eq((window >> (sp.rsh * 8))[:8 * R])
        newbeat = Signal(8 * R)
        lanes = []
        for r in range(R):
            v = Mux(sp.seg[r], Mux(sp.kind == _PAD, ins.in_zp.as_unsigned(), sh[8 * r:8 * r + 8]),
                    Mux(sp.zero[r], 0, beat[8 * r:8 * r + 8]))
            lanes.append(v)
        m.d.comb += newbeat.eq(Cat(*lanes))
        # the beat's MACs (valid K lanes x n_cols) go with it through the FIFO: a shift-add from
        # registers here, not a MULT18X18D between the FIFO's read and the macs port (timing)
        beat_macs = small_mul(sp.kv, ins.n_cols)
        with m.If(go2):
            m.d.sync += beat.eq(Mux(sp.last, 0, newbeat))
        m.d.comb += [afifo.w_en.eq(go2 & sp.last), afifo.w_data.eq(Cat(newbeat, beat_macs))]
        ea = eng.act
        m.d.comb += [ea.valid.eq(afifo.r_rdy), ea.payload.eq(afifo.r_data[:8 * R]),
                     afifo.r_en.eq(ea.ready)]
        m.d.comb += macs.eq(Mux(ea.valid & ea.ready, afifo.r_data[8 * R:], 0))
        m.d.comb += self.macs.eq(macs)

        # ---------------------------------------------------------------- weights
        wph = Signal()
        w_blocks = Signal(24)            # M blocks after this one
        w_k = Signal(DIM_BITS + 8 + 4)   # row within the block's K tiles
        w_kend = Signal(DIM_BITS + 8 + 4)
        w_byte = Signal(24)
        # Config.sram_read_latency = 4 (FPGA block RAMs: their read data registered before any
        # logic, as in the SRAM's sub-banks): the buffer's two lines are registered before the
        # shifter, one more stage (and FIFO entry) in flight
        wreg = self.config.sram_read_latency == 4
        WDEPTH = 6 + wreg
        m.submodules.wfifo = wfifo = fifo.SyncFIFO(width=8 * C, depth=WDEPTH)
        w_inflight = Signal()
        w_mid_v = Signal()               # the registered lines (wreg)
        w_cut_v = Signal()
        # rows requested and not yet taken from the FIFO (its level plus the rows in flight to
        # it) as one register, counted up by w_go and down by the engine's take: the request's
        # test is then a 3-bit compare of a register, not an adder of the FIFO's level (the
        # unit's ECP5 critical path went w_inflight -> that sum -> the walk's enables)
        w_used = Signal(range(WDEPTH + 1))
        # w_k == w_kend and w_blocks == 0 as registers beside them (set where they are)
        w_last, w_bz = Signal(), Signal()
        w_go = wph & (w_used < WDEPTH)
        m.d.sync += w_used.eq(w_used + w_go - (wfifo.r_rdy & wfifo.r_en))
        q = w_byte[lgw:] if lgw else w_byte
        m.d.comb += [
            wrp0.addr.eq(Cat(q[:self.wbits], ins.wslot)),
            wrp1.addr.eq(Cat((q + 1)[:self.wbits], ins.wslot)),
            wrp0.en.eq(w_go), wrp1.en.eq(w_go),
        ]
        w_off_r = Signal(max(1, lgw))
        w_valid_r = Signal()
        m.d.sync += [w_inflight.eq(w_go), w_off_r.eq(w_byte[:lgw] if lgw else 0),
                     w_valid_r.eq(w_k < K)]
        with m.If(start_run):
            blocks0 = ((M - 1) >> ((MB - 1).bit_length()))[:len(w_blocks)]
            kend0 = (KT * R - 1)[:len(w_kend)]
            m.d.sync += [wph.eq(1), w_k.eq(0), w_byte.eq(0), w_kend.eq(kend0),
                         w_last.eq(kend0 == 0), w_blocks.eq(blocks0), w_bz.eq(blocks0 == 0)]
        with m.Elif(w_go):
            with m.If(w_last):
                m.d.sync += [w_k.eq(0), w_byte.eq(0), w_last.eq(w_kend == 0)]
                with m.If(w_bz):
                    m.d.sync += wph.eq(0)
                with m.Else():
                    m.d.sync += [w_blocks.eq(w_blocks - 1), w_bz.eq(w_blocks == 1)]
            with m.Else():
                m.d.sync += [w_k.eq(w_k + 1), w_byte.eq(w_byte + ins.n_cols),
                             w_last.eq(w_k + 1 == w_kend)]
        two = Cat(wrp0.data, wrp1.data)
        w_src_v = w_inflight
        if wreg:
            two = delayed(m, two, "w_two", reset_less=True)
            w_off_r = delayed(m, w_off_r, "w_off_rr")
            w_valid_r = delayed(m, w_valid_r, "w_valid_rr")
            m.d.sync += w_mid_v.eq(w_inflight)
            w_src_v = w_mid_v
        wrow = Signal(8 * C)
        m.d.comb += wrow.eq((two >> (w_off_r * 8))[:8 * C] if lgw else two[:8 * C])
        wbeat = Cat(*[Mux(w_valid_r & (j < ins.n_cols), wrow[8 * j:8 * j + 8], 0)
                      for j in range(C)])
        w_cut = Signal(8 * C)           # registered: block-RAM clock-to-out, then the shifter
        m.d.sync += [w_cut_v.eq(w_src_v), w_cut.eq(wbeat)]
        m.d.comb += [wfifo.w_en.eq(w_cut_v), wfifo.w_data.eq(w_cut)]
        ew = eng.wgt
        m.d.comb += [ew.valid.eq(wfifo.r_rdy), ew.payload.eq(wfifo.r_data),
                     wfifo.r_en.eq(ew.ready)]

        # ------------------------------------------------------------ partials gather (MID/LAST)
        B4 = 4 * C
        part_valid = Signal()
        part_ready = Signal()
        part_data = Signal(8 * B4)
        self._partials(m, ins, M, start_run, mode_rd_acc, acc_req_v, acc_req_line, acc_req_rdy,
                       resp_tag, part_valid, part_ready, part_data)

        # ---------------------------------------------------------------- outputs
        m.submodules.scat = scat = _Scatter(cfg, B4)
        wiring.connect(m, wiring.flipped(self.wr), scat.wr)
        eo = eng.out
        o_left = Signal(24)              # output beats still to write
        o_addr = data_reg(24)
        o_step = data_reg(24)
        with m.If(start_run):
            m.d.sync += [o_left.eq(M),
                         o_addr.eq(Mux(mode_wr_acc, ins.acc_addr, ins.out_addr)),
                         o_step.eq(Mux(mode_wr_acc, ins.n_cols * 4, ins.out_pitch))]
        # int32 sums = raw acc (+ partials)
        acc_sum = Signal(data.ArrayLayout(signed(32), C))
        pview = data.View(data.ArrayLayout(signed(32), C), part_data)
        for j in range(C):
            m.d.comb += acc_sum[j].eq(eo.p.acc[j] + Mux(mode_rd_acc, pview[j], 0)
                                      if self.raw_ok else 0)
        # LAST: own requant stage
        if cfg.last_requant_lanes and cfg.last_requant_lanes < C:
            rq = SerialRequant(C, cfg.last_requant_lanes, stages=RequantCore.stages_for(cfg))
        else:
            rq = Requant(C, stages=RequantCore.stages_for(cfg))
        m.submodules.rq = rq
        is_last = acc_mode == AccMode.LAST
        need_part = mode_rd_acc
        src_ok = eo.valid & (~need_part | part_valid)
        # route: NONE -> scatter int8; FIRST/MID -> scatter int32; LAST -> requant -> scatter
        to_rq = is_last
        sink_ready = Mux(to_rq, rq.i.ready, scat.i_ready & ~rq.o.valid)
        take = src_ok & sink_ready
        m.d.comb += [
            eo.ready.eq(take),
            part_ready.eq(take & need_part),
            rq.i.valid.eq(src_ok & to_rq),
            rq.i.p.acc.eq(acc_sum),
            rq.i.p.mult.eq(rq_mult),
            rq.i.p.shift.eq(rq_shift),
            rq.i.p.zp.eq(ins.out_zp), rq.i.p.qmin.eq(ins.act_min), rq.i.p.qmax.eq(ins.act_max),
        ]
        for j in range(C):
            m.d.comb += rq.i.p.bias[j].eq(0)
        # scatter input: requant output has priority (only in LAST, where eo goes to rq). The
        # masks of the bytes used (n_cols int8 or n_cols int32) are registers set at the run's
        # start: the masks were compares of the selected count in front of every byte of the
        # scatter's input ring (die run U: 12.2 ns into ``scat.inq``, issue #13)
        n_bits = len(scat.i_n)
        int8_n, int32_n = ins.n_cols[:n_bits], (ins.n_cols * 4)[:n_bits]
        int8_m, int32_m = data_reg(B4, name="int8_m"), data_reg(B4, name="int32_m")
        with m.If(start_run):
            m.d.sync += [int8_m.eq(Cat(*[i < int8_n for i in range(B4)])),
                         int32_m.eq(Cat(*[i < int32_n for i in range(B4)]))]
        with m.If(rq.o.valid):
            m.d.comb += [scat.i_valid.eq(1), scat.i_data.eq(rq.o.p.data), scat.i_n.eq(int8_n),
                         scat.i_mask.eq(int8_m), rq.o.ready.eq(scat.i_ready)]
        with m.Else():
            m.d.comb += [
                scat.i_valid.eq(src_ok & ~to_rq),
                scat.i_data.eq(Mux(mode_wr_acc, acc_sum.as_value(), eo.p.data.as_value())),
                scat.i_n.eq(Mux(mode_wr_acc, int32_n, int8_n)),
                scat.i_mask.eq(Mux(mode_wr_acc, int32_m, int8_m)),
            ]
        m.d.comb += scat.i_addr.eq(o_addr)
        with m.If(scat.i_valid & scat.i_ready):
            m.d.sync += [o_left.eq(o_left - 1), o_addr.eq(o_addr + o_step)]
        m.d.comb += scat.flush.eq(o_left == 0)

        # signals of interest to debug benches (not ports)
        self._dbg = {"go": go, "need": need, "pw_rdy": pfifo.w_rdy, "cred": credit,
                     "rrdy": act_req_rdy, "can": can, "av": ea.valid, "ar": ea.ready,
                     "wv": ew.valid, "wr": ew.ready, "ov": eo.valid, "or": eo.ready,
                     "st": state}

        # ---------------------------------------------------------------- completion
        with m.If((state == RUN) & (o_left == 0) & scat.empty & ~eng.busy & (m_left == 0)
                  & ~start_run):
            m.d.sync += state.eq(FIN)
        with m.If(state == FIN):
            m.d.sync += state.eq(IDLE)
        m.d.comb += self.stall.eq((self.rd.req.valid & ~self.rd.req.ready)
                                  | (self.wr.req.valid & ~self.wr.req.ready))
        return m

    # ------------------------------------------------------------------------------------------
    def _partials(self, m, ins, M, start_run, enable, req_v, req_line, req_rdy, resp_tag,
                  o_valid, o_ready, o_data):
        """Gather of the int32 partials (MID/LAST): pixel p's 4*n_cols bytes at acc_addr +
        4*p*n_cols, one beat of 4*C bytes per pixel, in pixel order."""
        W, lgw, LAB = self.W, self.lgw, self.lab
        B = 4 * self.C
        S = (W - 1 + B + W - 1) // W      # lines one pixel's partials can touch
        RD = sram_read_latency(self.config) + 3
        m.submodules.presp = presp = fifo.SyncFIFO(width=8 * W, depth=RD)
        m.d.comb += [presp.w_en.eq(self.rd.rvalid & resp_tag[0] & (resp_tag[1] == _TAG_ACC)),
                     presp.w_data.eq(self.rd.rdata)]
        # generator: per pixel, the lines [first, last]; a line equal to the previous request is
        # not read again
        g_on = Signal()
        g_left = Signal(24)
        g_addr = Signal(24)
        g_step = Signal(range(S))
        # the step's line differs from the last one requested (it is read), a flag: the
        # generator's step ``go`` (g_left's, g_addr's, g_step's enables and the entry FIFO's
        # write) starts from flip-flops, not from the line's adder and compare (die run U:
        # ``g_left`` 12.57 ns, issue #13). Within a pixel the next line is this one + 1, so
        # always read; a pixel's first line is compared with the previous pixel's last as
        # g_addr steps; a run's first line is always read.
        need = Signal(name="g_need")
        outst = Signal(range(RD + 1))
        ent_lay = data.StructLayout({"new": 1, "slot": range(S), "off": max(1, lgw), "last": 1})
        # (the entries' head is a register, hw.fifos.HeadFIFO, SyncFIFO's cycles: the
        # assembler's take ``can``, which enables ``cur`` and the window's 8 * W flip-flops and
        # pops the responses, starts from it, not from a LUT-RAM read behind a read pointer:
        # die run U's path, pq's read address -> the LUT-RAM -> can -> cur -> outst, 14.4 ns)
        m.submodules.pq = pq = HeadFIFO(width=ent_lay.size, depth=4)
        nbytes = ins.n_cols * 4
        g_off = g_addr[:lgw] if lgw else Const(0, 1)
        g_line0 = g_addr[lgw:lgw + LAB]
        g_nl = Signal(range(S + 1))
        m.d.comb += g_nl.eq((g_off + nbytes + W - 1) >> lgw)
        ln = (g_line0 + g_step)[:LAB]
        lastl = g_step + 1 == g_nl
        credit = outst < RD
        go = Signal()
        pw = data.View(ent_lay, pq.w_data)
        g_req = Signal()                 # the generator requests a line this cycle
        if self.config.conv_walk_stages == 2:
            # (FPGA clocks) the line requests go through a 2-entry FIFO to the read port, so
            # the generator's step (``go``: g_left's, g_addr's and g_step's enables) sees the
            # FIFO's ready, not the port's ready behind the act gather's request decision (on
            # the routed ECP5 die that ran from the act walk's address adders to g_left:
            # 14.6 ns, issue #13). The credit counts a request as it enters the FIFO.
            m.submodules.preq = preq = RingFIFO2(width=len(req_line))
            m.d.comb += [preq.w_en.eq(g_req), preq.w_data.eq(ln), req_v.eq(preq.r_rdy),
                         req_line.eq(preq.r_data), preq.r_en.eq(req_rdy)]
            g_rdy = preq.w_rdy
        else:
            m.d.comb += [req_v.eq(g_req), req_line.eq(ln)]
            g_rdy = req_rdy
        m.d.comb += [
            g_req.eq(g_on & need & pq.w_rdy & credit),
            go.eq(g_on & pq.w_rdy & (~need | (credit & g_rdy))),
            pq.w_en.eq(go),
            pw.new.eq(need), pw.slot.eq(g_step), pw.off.eq(g_off), pw.last.eq(lastl),
        ]
        pop = Signal()
        m.d.sync += outst.eq(outst + (g_req & g_rdy) - pop)
        g_addr_n = Signal.like(g_addr, name="g_addr_n")    # the next pixel's
        m.d.comb += g_addr_n.eq(g_addr + nbytes)
        with m.If(start_run):
            m.d.sync += [g_on.eq(enable & (M != 0)), g_left.eq(M), g_addr.eq(ins.acc_addr),
                         g_step.eq(0), need.eq(1)]
        with m.Elif(go):
            m.d.sync += [g_step.eq(g_step + 1), need.eq(1)]
            with m.If(lastl):
                m.d.sync += [g_step.eq(0), g_addr.eq(g_addr_n), g_left.eq(g_left - 1),
                             need.eq(ln != g_addr_n[lgw:lgw + LAB])]
                with m.If(g_left == 1):
                    m.d.sync += g_on.eq(0)
        # assembler: window of S lines, then the beat at the pixel's offset
        pr = data.View(ent_lay, pq.r_data)
        cur = data_reg(8 * W)
        win = [data_reg(8 * W, name=f"pwin{i}") for i in range(S)]
        line_in = Mux(pr.new, presp.r_data, cur)
        m.submodules.pout = pout = fifo.SyncFIFO(width=8 * B, depth=2)
        can = pq.r_rdy & (~pr.new | presp.r_rdy) & (~pr.last | pout.w_rdy)
        m.d.comb += [pq.r_en.eq(can), presp.r_en.eq(can & pr.new), pop.eq(can & pr.new)]
        # ``cur`` and the window's slot load while an entry is at the head, taken or not: an
        # entry not taken this cycle is still at the head the next (the head, presp's head and
        # ``cur`` behind a repeated line only change as it is taken), so it loads the same
        # line again, and the cycle it is taken loads the right one; nothing reads ``cur``
        # before the next entry, nor the head's own slot before the next one. So their ~500
        # enables are the head's registers, not the take ``can`` behind the FIFOs' levels
        # (ECP5 timing, issue #13: ``cur``/``pwin`` 124 endpoints at 10.9 ns on die run U)
        with m.If(pq.r_rdy & pr.new):
            m.d.sync += cur.eq(presp.r_data)
        with m.If(pq.r_rdy):
            for i in range(S):
                with m.If(pr.slot == i):
                    m.d.sync += win[i].eq(line_in)
        full = Cat(*[Mux(pr.slot == i, line_in, win[i]) for i in range(S)])
        beat = (full >> (pr.off * 8))[:8 * B] if lgw else full[:8 * B]
        m.d.comb += [pout.w_en.eq(can & pr.last), pout.w_data.eq(beat),
                     o_valid.eq(pout.r_rdy), o_data.eq(pout.r_data), pout.r_en.eq(o_ready)]


def top(config: Config) -> ConvUnit:
    """Factory (a standalone ConvUnit for benches, lint and synthesis)."""
    return ConvUnit(config)
