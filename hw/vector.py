"""The NPU's depthwise / vector unit (docs/npu.md): DWCONV, POOL, ELTWISE, LUT and VMATMUL.

Executes one instruction at a time (``unit_signature()``), bit-exact with
:class:`sim.isa_sim.IsaSim`, reading and writing whole SRAM lines through one read and one write
master port (``hw.npu_if``). Tensors are NHWC at arbitrary byte alignment.

Structure (one pipeline shared by every opcode)::

    SEQ -> REQ -> (SRAM read, response FIFO) -> ASM -> EXEC -> POST -> out FIFO -> WR

- **SEQ** (address generator, one command per cycle): a command asks for up to ``TT`` x vectors
  (``TT`` = ``Timing.dw_taps``) and one w vector of ``L`` = ``vector_lanes`` bytes, each at an
  arbitrary byte address, and tells EXEC what to do with them. DWCONV / POOL loop *super-groups*
  of up to ``SG`` = ``Timing.dw_groups`` channel groups of L output channels (outer: one SRAM
  line of channels, so every line fetched for a pixel serves SG commands instead of one), output
  pixels, the groups of the super-group, then the window taps in raster order, TT taps per
  command (the cycle model's ``ceil(k_h*k_w / dw_taps)`` commands per pixel and group); padded
  taps are flagged (DWCONV reads ``in_zp``, POOL skips them). Before its pixels a DWCONV
  super-group loads each group's 12-byte-per-channel parameter record (``ceil(12 / TT)`` commands
  of TT vectors) into row g of the parameter memory and its weights (TT taps per command) into
  consecutive rows of the weight memory (``D`` = ``Timing.dw_weight_rows`` rows of TT taps: a 3x3
  kernel for each of SG groups; a larger kernel gets ``SG >> k`` groups per super-group, k the
  least with the rows fitting). A kernel of more than D*TT taps (e.g. MEAN over a big map) runs
  one group per super-group, one tap per command with its weight vector fetched alongside.
  ELTWISE / VMATMUL load their parameters the same way into row 0, LUT its table (TT vectors
  per command) into registers. ELTWISE / LUT stream L elements per command (ELTWISE never lets a
  b vector cross a ``b_period`` boundary; period 1 broadcasts one byte). VMATMUL loops rows,
  output channel groups (lanes = output channels), the channels of a group, K chunks of L: a
  dot product of L products per command.
- **SEQ -> REQ** through a skid register: SEQ advances while the skid register is empty, so its
  loop registers do not wait on REQ's lookup.
- **REQ** looks the lines of a command's vectors (one, or two when a vector crosses a line end) up
  in a line cache of NE entries (tags here, data in ASM) and requests the misses, one per cycle,
  into round-robin victims that the command itself does not use. ASM fills entries in command
  order, so a victim is never overwritten before the queued commands that still read it. A credit
  counter backs every read in flight with room in the response FIFO.
- **ASM** pops each command's lines into the cache and extracts the vectors (byte shifters).
- **EXEC** (in ``Config.vector_exec_stages`` stages: with 2, E1 selects the operands, reads
  the weight memory and registers the tap products, E2 does the rest; with 3 the result beat
  enters POST's P0 a cycle after E2, from registers; with 4 also E1 registers the multipliers'
  operands, E1b forms the products and E1c the accumulate's addends, each behind registers)
  multiplies / accumulates in int32 (wrapping), takes the max and the valid-tap count for
  POOL, writes parameter / weight memory rows and table vectors, reads the command's weight row
  and its group's parameters (asynchronous read ports), and emits one result beat per output
  vector.
- **POST** (fixed latency): MultiplyByQuantizedMultiplier pipelines (two for ELTWISE ADD's inputs,
  one for the output), the ELTWISE MUL product, the rounded AVG division (restoring, 9 quotient
  bits: |avg| <= 128), output offset and clamp. It is ``PL`` = ``Config.post_lanes`` lanes wide
  and time-shared: EXEC's result beat waits in the L-lane P0 registers while its ``H`` = L / PL
  phases (lanes [h*PL, (h+1)*PL)) enter POST one per cycle (``Timing.post_cycles``); the last
  phase's result completes the output vector. An emitting command waits until P0 is free (one
  beat per H cycles); the other commands do not (they change nothing POST reads: P0 is written
  only by emitting commands, ELTWISE's parameters in row 0 only before its first beat). With
  PL = L (H = 1) there is no waiting.
- **WR** writes each output vector with byte masks (one or two lines).

Assumptions (the compiler's instructions meet them; outside them the result may differ from
IsaSim but the unit never hangs): outputs do not overlap inputs (ELTWISE / LUT may run exactly in
place); per-channel shifts in [-31, 31]; ELTWISE offsets in [-2**16, 2**16), left_shift in
[0, 31], intermediate sums in int32 (TFLite's own ranges); POOL windows hold >= 1 valid tap.
"""

from __future__ import annotations

from amaranth.hdl import (
    Array,
    Cat,
    Const,
    Module,
    Mux,
    Signal,
    Value,
    signed,
    unsigned,
)
from amaranth.lib import data, fifo, wiring
from amaranth.lib.memory import Memory

from hw.config import Config
from hw.fifos import HeadFIFO, RingFIFO2
from hw.isa import INSTR_LAYOUT, EltMode, Opcode, PoolMode, Timing
from hw.npu_if import (
    line_addr_bits,
    line_bytes,
    unit_members,
)
from hw.sram import copies, data_reg
from hw.systolic import add3, csa_sum, in_logic, registered_mul, small_mul

__all__ = ["VectorUnit", "POST_LATENCY", "top"]

# EXEC command kinds
K_MAC, K_PARAM, K_TABLE, K_WLOAD = 0, 1, 2, 3
#: Cycles from an EXEC result beat's last POST phase to its out-FIFO entry (an output vector
#: enters POST in Timing.post_cycles phases, one per cycle: its entry is written
#: POST_LATENCY + post_cycles - 1 cycles after the beat).
POST_LATENCY = 12
META_DEPTH = 8
OUT_DEPTH = 16


def _cmd_layout(L: int, TT: int, SG: int) -> data.StructLayout:
    nb = (L).bit_length()
    return data.StructLayout({
        "xa": data.ArrayLayout(unsigned(24), TT),   # x vector (tap) addresses
        "xe": TT,                                    # x vector fetched
        "tpad": TT,                                  # tap in the padding (DWCONV / POOL)
        "wa": unsigned(24),
        "wen": 1,
        "kind": 2,
        "idx": 8,       # K_PARAM / K_TABLE: chunk; K_WLOAD / K_MAC: weight memory row
        "grp": max(1, (SG - 1).bit_length()),  # DWCONV: group of the super-group
        "first": 1,
        "last": 1,
        "emit": 1,
        "zero": 1,
        "bc": 1,
        "n": nb,        # output lanes (valid bytes of the output vector)
        "kn": nb,       # VMATMUL: valid K lanes of the dot product
        "jj": max(1, (L - 1).bit_length()),  # VMATMUL: output lane
        "r": 4,         # DWCONV: co0 % depth_mult
        "nt": (TT).bit_length(),  # DWCONV / POOL: taps of this command (raster order)
        "oa": unsigned(24),
    })


def _meta_layout(L: int, LB: int, TT: int, NE: int, SG: int) -> data.StructLayout:
    """A command as ASM sees it: per vector the cache entries of its two lines and its byte
    offset, and the entries the command's requested lines fill, in request order."""
    EB = max(1, (NE - 1).bit_length())
    V = TT + 1
    f = {n: fl.shape for n, fl in _cmd_layout(L, TT, SG) if n not in ("xa", "wa")}
    f.update({
        "lo": data.ArrayLayout(EB, V),
        "hi": data.ArrayLayout(EB, V),
        "off": data.ArrayLayout(max(1, LB), V),
        "npop": (2 * V).bit_length(),
        "pe": data.ArrayLayout(EB, 2 * V),
        # per slot (vector v's line: bit 2v, its next line: 2v + 1): its entry is the last one
        # the command's lines fill (pe[npop - 1]), for ASM's bypass of the line popped as the
        # command completes
        "lm": 2 * V,
        "sel": data.ArrayLayout(max(1, (L - 1).bit_length()), L),  # DWCONV lane -> channel
    })
    return data.StructLayout(f)


def _comb(m, src, name, shape=None):
    """``src`` as a combinational Signal. Amaranth's DomainLowerer copies an expression into
    every place that uses it (it turns the expression DAG into a tree), so a value used more
    than once -- and above all a chain in which each step reuses the previous one -- must be a
    Signal or the netlist grows with the number of uses (exponentially along a chain)."""
    s = Signal(src.shape() if shape is None else shape, name=name)
    m.d.comb += s.eq(src)
    return s


def _reg(m, shape, src, name, en=None):
    """``src`` in a data register named ``name``, loaded in every cycle or where ``en``"""
    s = Signal(shape, name=name, reset_less=True)
    if en is None:
        m.d.sync += s.eq(src)
    else:
        with m.If(en):
            m.d.sync += s.eq(src)
    return s


def _onehot_index(oh, bits: int) -> Value:
    """The index of the set bit of ``oh`` (one-hot or zero; zero gives 0) by OR trees, one per
    index bit: no priority chain."""
    return Cat(*[Cat(*[oh[e] for e in range(len(oh)) if e >> b & 1]).any()
                 for b in range(bits)])


def _delay(m, sig, n, name):
    for k in range(n):
        sig = _reg(m, sig.shape(), sig, f"{name}_d{k}")
    return sig


#: Registered stages of :func:`_mbqm` (its result is valid this many cycles after its inputs).
MBQM_LATENCY = 5


def _shift_lr(shift):
    """MultiplyByQuantizedMultiplier's shift as (left, right) amounts, clamped to [0, 31]."""
    sh = shift.as_signed()
    return (Mux(sh > 31, 31, Mux(sh > 0, sh, 0))[:5],
            Mux(sh < -31, 31, Mux(sh < 0, -sh, 0))[:5])


def _mbqm(m, x, mult, shift, name, lr=None, platform=None):
    """TFLite MultiplyByQuantizedMultiplier(int32 x, int32 mult, int32 shift) in
    ``MBQM_LATENCY`` registered stages; shift is clamped to [-31, 31]. Returns the int32 result.

    The 32 x 32 product is four 16 x 16 partial products with registered operands and products
    (:func:`hw.systolic.registered_mul`: on ECP5 one MULT18X18D each, its own input and output
    registers, so no fabric path runs through a multiplier; the low halves unsigned, the high
    halves signed), summed with TFLite's rounding constant in the next stage (ECP5 timing, issue
    #13). The sum is exact: x * mult = (xh * 2^16 + xl) * (mh * 2^16 + ml) with xh, mh the signed
    high halves and xl, ml the unsigned low halves. ``lr``: the shift as (left, right) amounts
    already (``_shift_lr``), instead of ``shift``; its left amount may be wider (x is then taken
    as (x << left)[:32]). ``platform``: the one ``elaborate`` received."""
    left, right = lr if lr is not None else _shift_lr(_comb(m, shift.as_signed(), name + "_sh"))
    xs0 = _comb(m, (x.as_signed() << left)[:32], name + "_xs0", signed(32))
    mult = Value.cast(mult)
    rt1 = _reg(m, 5, right, name + "_rt1")
    # TFLite's one overflow case, INT32_MIN * INT32_MIN (the rest: exact in 64 bits), tested
    # at stage 2 on registered copies of the shifted x and of the multiplier's test: a 32-bit
    # compare after the shifter was the vector unit's ECP5 critical path (POST's phase -> the
    # operand select -> the shift -> the compare -> ovf1, 12.7 ns, issue #13)
    xs1 = _reg(m, signed(32), xs0, name + "_xs1")
    mmin1 = _reg(m, 1, mult.as_signed() == -(1 << 31), name + "_mmin1")
    xl, xh, ml, mh = xs0[:16], xs0[16:].as_signed(), mult[:16], mult[16:].as_signed()
    ll2, lh2, hl2, hh2 = (registered_mul(m, platform, a, b, f"{name}_{k}2")
                          for a, b, k in ((xl, ml, "ll"), (xl, mh, "lh"), (xh, ml, "hl"),
                                          (xh, mh, "hh")))
    ovf2 = _reg(m, 1, (xs1 == -(1 << 31)) & mmin1, name + "_ovf2")
    rt2 = _reg(m, 5, rt1, name + "_rt2")
    # the product + 2^30 (TFLite's rounding before >> 31)
    p3 = _reg(m, signed(64), ((hh2 << 32) + ((lh2 + hl2) << 16) + ll2 + (1 << 30))[:64],
              name + "_p3")
    ovf3 = _reg(m, 1, ovf2, name + "_ovf3")
    rt3 = _reg(m, 5, rt2, name + "_rt3")
    # RoundingDivideByPOT(q, rt) = (q + 2^(rt - 1) - (q < 0)) >> rt (nothing added for rt = 0)
    # with q = the product >> 31 (INT32_MAX on overflow): the sum at stage 4 as q + hm1 + cin,
    # hm1 = 2^(rt - 1) - 1 (0 for rt = 0) a register beside p3 and the carry-in cin = (rt != 0)
    # & (q >= 0) from p3's sign bit (62): one carry chain from registers; stage 5 is the
    # shift alone (die run U: POST's ``l0*_r5``, the rounding add then the 32-bit shift,
    # 11.9-12.3 ns, issue #13)
    hm1 = _reg(m, 31, (((Const(1, 32) << rt2) - 1) >> 1)[:31], name + "_hm1")
    q3 = _comb(m, Mux(ovf3, (1 << 31) - 1, (p3 >> 31)[:32]), name + "_q3", signed(32))
    cin = (rt3 != 0) & (ovf3 | ~p3[62])
    rnd4 = _reg(m, signed(34), csa_sum([q3, hm1], 34, cin), name + "_rnd4")
    rt4 = _reg(m, 5, rt3, name + "_rt4")
    r5 = _reg(m, signed(32), (rnd4 >> rt4)[:32], name + "_r5")
    return r5


def exec_stage_names(config: Config) -> list[str]:
    """The register stages of the vector unit's EXEC after E1 (``Config.vector_exec_stages``)"""
    n = config.vector_exec_stages
    return ((["e1b", "e1c"] if n >= 4 else []) + (["e1d"] if n >= 5 else [])
            + (["e2"] if n >= 2 else []))


def exec_latency(config: Config) -> int:
    """Cycles from a command entering EXEC (E1) to its result beat in P0: E1, the stages after
    it, and P0's load a cycle after E2 with 3 or more stages (``Timing.vector_latency``)"""
    return 1 + len(exec_stage_names(config)) + (config.vector_exec_stages >= 3)


def req_latency(config: Config) -> int:
    """Cycles of the vector unit's command input and line lookup (``Timing.vector_latency``):
    REQ's register, and with ``Config.vector_req_stages`` = 2 one each for SEQ's command
    register (``ncr``), the command FIFO (``inq``), the command metadata FIFO's write stage
    (``HeadFIFO(write_stage=True)``), the line requests' FIFO (``reqq``), ASM's output stage
    (``h_*``, before the skid) and ``idle``'s register (the unit reports idle a cycle after it
    drains)"""
    return 1 + (6 if config.vector_req_stages == 2 else 0)


class _ExecStage:
    """A register stage of the vector unit's EXEC after E1: ``v`` (holds a command), ``take``
    (hands it to the next stage this cycle), the command's metadata ``meta`` and its x vectors
    ``xs`` and w vector ``w`` (data registers)."""

    def __init__(self, name: str, meta_layout, TT: int, L: int):
        self.v = Signal(name=f"{name}_v")
        self.take = Signal(name=f"{name}_take")
        self.meta = Signal(meta_layout, name=f"{name}_meta", reset_less=True)
        self.xs = [Signal(8 * L, name=f"{name}_x{k}", reset_less=True) for k in range(TT)]
        self.w = Signal(8 * L, name=f"{name}_w", reset_less=True)


class VectorUnit(wiring.Component):
    """The depthwise / vector unit (see the module docstring). Ports: ``unit_signature()``'s
    members at top level, ``rd`` (SRAM read master) and ``wr`` (SRAM write master)."""

    def __init__(self, config: Config):
        self.config = config
        self.L = config.vector_lanes
        self.W = line_bytes(config)
        if self.W & (self.W - 1) or self.L & (self.L - 1) or self.L > self.W or self.L > 256:
            raise ValueError("VectorUnit needs power-of-two lanes <= line bytes")
        if self.L < 4:  # the 12 parameter beats of L bytes must hold the 48-byte ELTWISE record
            raise ValueError(f"VectorUnit needs vector_lanes >= 4 (preset {config.name!r} has "
                             f"{self.L})")
        tm = Timing(config)
        #: window taps per command (raster order): the cycle model's dw_taps
        self.TT = tm.dw_taps
        #: channel groups per DWCONV / POOL super-group; weight memory rows
        self.SG, self.D = tm.dw_groups, tm.dw_weight_rows
        #: POST lanes (Config.post_lanes) and phases per output vector (Timing.post_cycles)
        self.PL, self.H = config.post_lanes, tm.post_cycles
        super().__init__(unit_members(config))

    def elaborate(self, platform):  # noqa: C901 (one pipeline, written out)
        m = Module()
        L, W, TT, SG, D = self.L, self.W, self.TT, self.SG, self.D
        PL, H = self.PL, self.H
        LSG = SG.bit_length() - 1
        C9 = -(-9 // TT)          # weight rows of a 3x3 kernel (D = SG * C9)
        PC = -(-12 // TT)         # commands per 12-vector parameter record
        NT = 256 // L             # LUT table vectors
        TC = -(-NT // TT)         # commands per LUT table
        RESP_DEPTH = 2 * (TT + 1) + 2
        LB = (W - 1).bit_length()
        LA = line_addr_bits(self.config)
        LL = (L).bit_length() - 1  # log2 L
        CMD = _cmd_layout(L, TT, SG)
        NE = 2 * (TT + 1) + 4     # line cache entries
        META = _meta_layout(L, LB, TT, NE, SG)
        NB = (L).bit_length()

        # ------------------------------------------------------------------ instruction
        ins = data_reg(INSTR_LAYOUT)
        busy_seq = Signal()
        supported = Signal()
        m.d.comb += supported.eq(
            (self.cmd.payload[:5] == Opcode.DWCONV.value)
            | (self.cmd.payload[:5] == Opcode.POOL.value)
            | (self.cmd.payload[:5] == Opcode.ELTWISE.value)
            | (self.cmd.payload[:5] == Opcode.LUT.value)
            | (self.cmd.payload[:5] == Opcode.VMATMUL.value))
        # The instruction SEQ accepts (IDLE) is decoded into registers as it is loaded into
        # ``ins``: the opcode flags and (below) the DWCONV / POOL field views, so the decisions
        # of every stage start from registers, not from an opcode compare and a field select.
        pin = INSTR_LAYOUT(self.cmd.payload)
        accept = _comb(m, self.cmd.valid & self.cmd.ready & supported, "accept")
        idle = Signal()                  # (set under "status" below; it is ``cmd.ready``)
        load_ins = [ins.eq(self.cmd.payload)]

        def decoded(value, name, shape=1):
            s = Signal(shape, name=name)
            load_ins.append(s.eq(value))
            return s

        is_dw = decoded(pin.header.opcode == Opcode.DWCONV, "is_dw")
        is_pool = decoded(pin.header.opcode == Opcode.POOL, "is_pool")
        is_elt = decoded(pin.header.opcode == Opcode.ELTWISE, "is_elt")
        is_lut = decoded(pin.header.opcode == Opcode.LUT, "is_lut")
        is_vm = decoded(pin.header.opcode == Opcode.VMATMUL, "is_vm")
        dw, pl_, el, lu, vm = ins.dwconv, ins.pool, ins.eltwise, ins.lut, ins.vmatmul

        # ------------------------------------------------------------------ REQ input
        # SEQ hands its commands to REQ without waiting on REQ's decisions (SEQ's advance,
        # ``take``, depends on registers only). Config.vector_req_stages = 1: through a skid
        # register: a command goes straight to REQ when REQ is free or completes this cycle,
        # else it waits in the skid register (and SEQ waits); REQ takes the skid register first.
        # 2: through a 2-entry FIFO, so the command REQ takes is always a register and its line
        # lookup starts from registers (one more cycle of latency per instruction, the same
        # throughput; for FPGA clocks).
        rq = data_reg(CMD)
        rq_v = Signal()
        nc = Signal(CMD)                 # the command SEQ emits this cycle
        nc_v = Signal()
        complete = Signal()
        take = Signal()
        rq_free = ~rq_v | complete
        inc = Signal(CMD)                # the command REQ takes when it is free
        inc_v = Signal()
        if self.config.vector_req_stages == 1:
            sq = Signal(CMD)
            sq_v = Signal()
            m.d.comb += [take.eq(~sq_v), inc.eq(Mux(sq_v, sq, nc)), inc_v.eq(sq_v | nc_v)]
            with m.If(nc_v & ~rq_free):
                m.d.sync += [sq.eq(nc), sq_v.eq(1)]
            with m.Elif(sq_v & rq_free):
                m.d.sync += sq_v.eq(0)
            queued = sq_v
        else:
            # (and SEQ's command is registered first, ``ncr``: the ring's entries load from
            # a register, not from SEQ's address adders, window compares and state muxes, which
            # reached them across the die: run U's ``vec.inq``, 12.95 ns, issue #13; one more
            # cycle of latency, the same throughput)
            ncr = data_reg(CMD, name="ncr")
            ncr_v = Signal()
            m.submodules.inq = inq = RingFIFO2(width=CMD.size, rp_copies=4)
            m.d.comb += [take.eq(~ncr_v | inq.w_rdy), inq.w_en.eq(ncr_v), inq.w_data.eq(ncr),
                         inc.eq(inq.r_data), inc_v.eq(inq.r_rdy), inq.r_en.eq(rq_free)]
            with m.If(take):
                m.d.sync += [ncr.eq(nc), ncr_v.eq(nc_v)]
            queued = ncr_v | inq.r_rdy
        load = _comb(m, inc_v & rq_free, "load")
        with m.If(load):
            m.d.sync += [rq.eq(inc), rq_v.eq(1)]
        with m.Elif(complete):
            m.d.sync += rq_v.eq(0)

        def emit(**f):
            stmts = [nc.eq(0), nc_v.eq(1)]
            for k, v in f.items():
                if k == "xa":
                    v = Cat(*[a[:24] for a in (v if isinstance(v, list) else [v])])
                stmts.append(getattr(nc, k).eq(v))
            m.d.comb += stmts

        # ------------------------------------------------------------------ SEQ
        # shared loop registers: data registers (no reset, hw.sram.data_reg), each written in
        # SETUP1 / SETUP2 (every instruction) or in the state that starts its loop (GINIT,
        # VPARAM, ...) before any state reads it; the FSM's state keeps its reset
        SA = signed(34)
        c_ = data_reg(12)
        tco = data_reg(20)            # TT * co
        ntap = data_reg(16)
        wc = data_reg()
        co = data_reg(16)
        dm = data_reg(4)
        # t * dm for t = 1 .. L - 1 (REQ's lane-to-channel selects compare with them)
        dmk = [None] + [data_reg(4 + t.bit_length(), name=f"dm{t}") for t in range(1, L)]
        rowb = data_reg(24)
        stepx = data_reg(28)
        stepy = data_reg(32)
        plc = data_reg(28)
        # the window's origin in_addr - p_t * rowb - plc, as two registers set in SETUP2 (the
        # product and the difference; GINIT adds them with ci0): in one cycle it was the unit's
        # routed ECP5 critical path (f_pad_top -> the product's adders -> two subtracts, 14.7 ns)
        xa0p = data_reg(SA)           # in_addr - plc
        ptr = data_reg(28)            # p_t * rowb
        co0 = data_reg(17)            # first output channel of the super-group
        ci0 = data_reg(13)            # its input channel
        rres = data_reg(5)            # co0 % depth_mult
        sg = data_reg(range(SG + 1))  # channel groups per super-group (this instruction)
        gi = data_reg(range(SG))      # group within the super-group
        gco = data_reg(17)            # the group's first output channel
        goff = data_reg(13)           # its input channel - ci0
        gr = data_reg(5)              # gco % depth_mult
        widx = data_reg(8)            # weight memory row
        t = data_reg(16)              # tap counter: up to k_h * k_w = 255 * 255 taps
        tl = data_reg(17)             # DLOAD / DPIX: taps of the window left (teff - t)
        # tl <= 1, tl <= TT and tl >= TT as flags set with tl (set_tl): the last-tap and
        # taps-per-command decisions, which enable the pixel walk's registers, start from
        # flip-flops, not compares of tl (die run T: vec.ox, xa_pix, xa_row, issue #13)
        tl_le1, tl_leT, tl_geT = (data_reg(name=x) for x in ("tl_le1", "tl_leT", "tl_geT"))

        def set_tl(v):
            v = Value.cast(v)[:17]
            return [tl.eq(v), tl_le1.eq(v <= 1), tl_leT.eq(v <= TT), tl_geT.eq(v >= TT)]
        pa = data_reg(24)
        wa = data_reg(24)
        oa = data_reg(24)
        oa_pix = data_reg(24)
        oy, ox = data_reg(12, name="oy"), data_reg(12, name="ox")
        # ox >= out_w - 1 and oy >= out_h - 1 as flags, set with ox / oy: DPIX's pixel step
        # (the enables of the address registers) starts from them, not from 12-bit compares
        # (ECP5 timing, issue #13)
        lox, loy = data_reg(name="lox"), data_reg(name="loy")
        ky, kx = data_reg(8, name="ky"), data_reg(8, name="kx")
        iy0, ix0, iy, ix = (data_reg(signed(18), name=n) for n in ("iy0", "ix0", "iy", "ix"))
        xa_rp, xa_pix, xa_row, xa = (data_reg(SA, name=n) for n in ("xa_rp", "xa_pix", "xa_row",
                                                                    "xa"))
        # elementwise / vmatmul
        ei = data_reg(25)
        erem = data_reg(25)           # ELTWISE / LUT: count - ei
        elim = data_reg(17)           # ELTWISE: b_period - er (L when b_period <= 1)
        per = el.b_period
        per1 = _comb(m, per <= 1, "per1")
        er = data_reg(17)
        # their compares as flags set with them (``set_e``): erem >= L, elim >= L, erem < elim,
        # erem <= elim, erem <= L, elim <= L. The element count, the period wrap and the last
        # command, which go into the command SEQ emits (the command ring's entries) and enable
        # SEQ's registers, then start from flip-flops, not 25-bit compares (issue #13)
        e_rge, e_lge, e_lt, e_le, e_rle, e_lle = (data_reg(name=f"e_{n}") for n in (
            "rge", "lge", "lt", "le", "rle", "lle"))

        e_sets = []

        def set_e(rv, lv=None):
            """erem := rv (and elim := lv) with the flags, from the values as stored."""
            k = len(e_sets)
            rv = _comb(m, rv, f"erem_n{k}", len(erem))
            stmts = [erem.eq(rv), e_rge.eq(rv >= L), e_rle.eq(rv <= L)]
            if lv is not None:
                lv = _comb(m, lv, f"elim_n{k}", len(elim))
                stmts += [elim.eq(lv), e_lge.eq(lv >= L), e_lle.eq(lv <= L)]
            else:
                lv = elim
            e_sets.append(rv)
            return stmts + [e_lt.eq(rv < lv), e_le.eq(rv <= lv)]
        vi, vj0 = data_reg(16, name="vi"), data_reg(17, name="vj0")
        vjj, vk0 = data_reg(8, name="vjj"), data_reg(17, name="vk0")
        # VMATMUL loop state kept as registers, so SEQ's decisions start from registers: the
        # group's output lanes min(n - vj0, L) (set in VPARAM), its channels left (vnj - vjj)
        # and K left (k - vk0)
        vnj, vl = data_reg(range(L + 1), name="vnj"), data_reg(9, name="vl")
        vkr = data_reg(18, name="vkr")
        # VRUN's loop-end tests as flags set where their operands move (vkr <= L, vj0 + L >= n,
        # vi + 1 >= m): the weight rows' and the output row's selects and enables start from
        # flip-flops, not an adder and a compare of SEQ's counters (die run AA: ``wrow0``,
        # ``wrow``, ``wv`` 12.2-13.0 ns, issue #13)
        v_lk, v_lj0, v_li = Signal(name="v_lk"), Signal(name="v_lj0"), Signal(name="v_li")
        xrow, wrow, wrow0, orow = (data_reg(24, name=n) for n in ("xrow", "wrow", "wrow0", "orow"))
        wv = data_reg(24, name="wv")      # wrow + vk0 (the command's first weight chunk)
        # j * k for j = 1 .. TT (set up with the instruction; VRUN's weight rows)
        vkj = [None, vm.k] + [data_reg(24, name=f"vk{j}") for j in range(2, TT + 1)]
        vkL = data_reg(24)

        # DWCONV / POOL field views (same names, different offsets), registers loaded with ins
        def view(name):     # the field of the instruction being accepted
            return Mux(pin.header.opcode == Opcode.DWCONV, getattr(pin.dwconv, name),
                       getattr(pin.pool, name))

        def f(name):
            v = view(name)
            return decoded(v, "f_" + name, v.shape())

        in_h, in_w, in_c = f("in_h"), f("in_w"), f("in_c")
        out_h, out_w = f("out_h"), f("out_w")
        k_h, k_w = f("k_h"), f("k_w")
        s_h, s_w = f("stride_h"), f("stride_w")
        p_t, p_l = f("pad_top"), f("pad_left")
        in_addr = f("in_addr")
        out_addr = f("out_addr")
        kw_p, kh_p = view("k_w"), view("k_h")
        # the last kernel column: k_w - 1 (a zero k_w is one column)
        kwm1 = decoded(Mux(kw_p == 0, 0, kw_p - 1), "kwm1", k_w.shape())
        kzero = decoded((kh_p == 0) | (kw_p == 0), "kzero")
        # the last output column / row: out_w - 1, out_h - 1 (DPIX runs only when both are
        # nonzero)
        owm1 = decoded(view("out_w") - 1, "owm1", out_w.shape())
        ohm1 = decoded(view("out_h") - 1, "ohm1", out_h.shape())
        teff = _comb(m, Mux(kzero, 1, ntap), "teff", 17)   # taps of a window (ntap from INIT)
        # the depth multiplier (1 unless DWCONV's is set), decoded as the instruction loads: it
        # enters SETUP1's products (``co`` = in_c * dm_e on a MULT18X18D) from a register (the
        # opcode flag's select in front of the DSP was the unit's path, 12.8 ns, issue #13)
        dmul = pin.dwconv.depth_mult
        dm_e = decoded(Mux((pin.header.opcode == Opcode.DWCONV) & (dmul != 0), dmul, 1), "dm_e",
                       dmul.shape())

        nout = Signal(NB)
        rem_c = Signal(18)
        m.d.comb += rem_c.eq(co - gco)
        m.d.comb += nout.eq(Mux(rem_c > L, L, rem_c))
        # the next channel group of a super-group (one step per group, no divider by in_c)
        # (gr + L) // dm and % dm without a divider: L = lq * dm + lr (lq, lr set up per
        # instruction from a table), and gr + lr < 2 * dm (both < dm), so one compare decides
        lq = data_reg(range(L + 1))
        lr = data_reg(4)
        # the wrap test gr + lr >= dm as a register set with gr (g_wrap) and with rres
        # (rres_w): from the sum's compare it was the start of the unit's routed ECP5 critical
        # path (gr + lr -> >= dm -> goff_n -> xa_pix + goff_n -> xa_row)
        g_wrap = data_reg(name="g_wrap")
        rres_w = data_reg(name="rres_w")
        g_s = _comb(m, gr + lr, "g_s", 6)
        gco_n = _comb(m, gco + L, "gco_n", 18)
        goff_n = _comb(m, csa_sum([goff, lq], 13, cin=g_wrap), "goff_n", 13)   # (one chain)
        gr_n = _comb(m, Mux(g_wrap, g_s - dm, g_s), "gr_n", 5)
        gr_n_w = _comb(m, gr_n + lr >= dm, "gr_n_w")
        # the last group of a super-group: compares of registers with bounds set up in GINIT
        # (gi + 1 >= sg, gco + L >= co)
        sgm1 = data_reg(range(SG + 1))
        co_l = data_reg(signed(18))
        # as a flag set with gi and gco (group_step, group_reset), from the values they take
        g_last = data_reg(name="g_last")
        # the next group's weights, dw.w_addr + gco + L, a register set with gco (+ L per
        # step; from dw.w_addr + L, ``w_l``, set up in SETUP2, at a reset): DLOAD's and DPIX's
        # weight address ``wa`` takes it without gco's + L and w_addr's adders in series, and
        # the group's end decision is a flip-flop (die run U: ``vec.wa`` 13.8 ns, issue #13)
        w_grp_n = data_reg(24, name="w_grp_n")
        w_l = data_reg(24, name="w_l")
        w_grp0 = _comb(m, dw.w_addr + co0, "w_grp0", 24)

        def group_step():
            gi_n, gco_s = (gi + 1)[:len(gi)], gco_n[:len(gco)]
            m.d.sync += [gi.eq(gi_n), gco.eq(gco_s), goff.eq(goff_n), gr.eq(gr_n),
                         g_wrap.eq(gr_n_w), g_last.eq((gi_n >= sgm1) | (gco_s >= co_l)),
                         w_grp_n.eq(w_grp_n + L)]

        def group_reset(sgm1_v=sgm1, co_l_v=co_l):
            """(``sgm1_v``, ``co_l_v``: their values as GINIT sets them with the reset)"""
            m.d.sync += [gi.eq(0), gco.eq(co0), goff.eq(0), gr.eq(rres), g_wrap.eq(rres_w),
                         g_last.eq((sgm1_v == 0) | (co0 >= co_l_v)), w_grp_n.eq(w_l + co0)]

        # parameter / weight loads: up to TT x vectors, vector k at lbase + loff[k], each an
        # adder of its own (a chain lbase + stride + stride ... put TT - 1 adders in series
        # between SEQ's registers and the command FIFO's entries: ECP5 timing, issue #13).
        # A parameter record's or the LUT table's chunk t: loff[k] = (t * TT + k) * L (t is a
        # chunk index, a few bits); DLOAD's weight rows: loff[k] = k * co (``cok``, set up with
        # co)
        lbase = Signal(24)
        loff = [Signal(24, name=f"loff{k}") for k in range(TT)]
        lin = [_comb(m, (lbase + loff[k])[:24], f"lin{k}", 24) for k in range(TT)]
        tb = max(PC, TC).bit_length()
        chunk_off = [(t[:tb] * TT + k) * L for k in range(TT)]
        cok = ([Const(0, 1), co] + [data_reg(20, name=f"co{k}") for k in range(2, TT)])[:TT]
        pxe = _comb(m, Cat(*[t * TT + k < 12 for k in range(TT)]), "pxe", TT)

        def param_cmd():
            """One of the PC commands loading a 12-vector parameter record (t: chunk)."""
            m.d.comb += [lbase.eq(pa), *[a.eq(b) for a, b in zip(loff, chunk_off, strict=True)]]
            emit(xa=lin, xe=pxe, kind=K_PARAM, idx=t, grp=gi)
            m.d.sync += t.eq(t + 1)

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += busy_seq.eq(0)
                # ``ins`` and its decoded registers load in every idle cycle (nothing reads
                # them while the unit is idle), so their 450 enables are ``idle`` (registers),
                # not the NPU's issue decision behind ``cmd.valid`` (ECP5 timing, issue #13);
                # the cycle SEQ accepts loads the instruction it accepts
                with m.If(idle):
                    m.d.sync += load_ins
                with m.If(accept):
                    m.next = "SETUP1"
            with m.State("SETUP1"):
                m.d.comb += busy_seq.eq(1)
                # (the products by a stride, a pad or the depth multiplier stay ``*``, on
                # MULT18X18Ds: in logic (small_mul) they cost the unit alone 874 LUTs and
                # 81.2 -> 72.7 MHz, issue #13 session 23)
                m.d.sync += [
                    c_.eq(in_c),
                    ntap.eq(k_h * k_w),
                    co.eq(in_c * dm_e),
                    dm.eq(dm_e),
                    *[dmk[t].eq(dm_e * t) for t in range(1, L)],
                    lq.eq(Array([Const(L // d if d else 0, range(L + 1))
                                 for d in range(16)])[dm_e[:4]]),
                    lr.eq(Array([Const(L % d if d else 0, 4) for d in range(16)])[dm_e[:4]]),
                    rowb.eq(in_w * in_c),
                    stepx.eq(s_w * in_c),
                    plc.eq(p_l * in_c),
                    co0.eq(0), ci0.eq(0), rres.eq(0), gi.eq(0), widx.eq(0),
                    pa.eq(Mux(is_dw, dw.p_addr, Mux(is_elt, el.p_addr, vm.p_addr))),
                    ei.eq(0), er.eq(0), *set_e(Mux(is_lut, lu.count, el.count),
                                               Mux(per1, L, per)),
                    vi.eq(0), vj0.eq(0), vjj.eq(0), vk0.eq(0), vkr.eq(vm.k), t.eq(0),
                    v_lk.eq(vm.k <= L), v_lj0.eq(vm.n <= L), v_li.eq(vm.m <= 1),
                    xrow.eq(vm.in_addr), wrow.eq(vm.w_addr), wrow0.eq(vm.w_addr),
                    wv.eq(vm.w_addr), *[vkj[j].eq(vm.k * j) for j in range(2, TT + 1)],
                    orow.eq(vm.out_addr),
                    vkL.eq(vm.k << LL),
                ]
                m.next = "SETUP2"
            with m.State("SETUP2"):
                m.d.comb += busy_seq.eq(1)
                wc_n = _comb(m, is_dw & (ntap != 0) & (ntap <= D * TT), "wc_n")
                m.d.sync += [
                    stepy.eq(s_h * rowb),
                    wc.eq(wc_n),
                    xa0p.eq(in_addr - plc),
                    rres_w.eq(lr >= dm),         # rres = 0 (SETUP1 set lr and dm)
                    ptr.eq(p_t * rowb),
                    tco.eq(co * TT),
                    w_l.eq(dw.w_addr + L),
                    *[cok[k].eq(co * k) for k in range(2, TT)],
                    sg.eq(1),
                ]
                # super-group: POOL SG groups; DWCONV with register weights as many as the
                # weight memory holds (SG >> k groups of ceil(ntap / TT) rows each)
                with m.If(is_pool):
                    m.d.sync += sg.eq(SG)
                with m.Elif(wc_n):
                    for k in reversed(range(LSG + 1)):
                        with m.If(ntap <= C9 * TT * (1 << k)):
                            m.d.sync += sg.eq(SG >> k)
                with m.If(is_dw | is_pool):
                    with m.If((out_h == 0) | (out_w == 0) | (co == 0)):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "GINIT"
                with m.Elif(is_elt):
                    m.next = "EPARAM"
                    with m.If(el.count == 0):
                        m.next = "DONE"
                with m.Elif(is_lut):
                    m.next = "LTABLE"
                    with m.If(lu.count == 0):
                        m.next = "DONE"
                with m.Else():
                    m.next = "VPARAM"
                    with m.If((vm.m == 0) | (vm.n == 0)):
                        m.next = "DONE"

            # ---------------- DWCONV / POOL: super-groups > pixels > groups > taps
            with m.State("GINIT"):
                m.d.comb += busy_seq.eq(1)
                # (one carry chain: hw.systolic.add3; two in a row into xa_rp, xa_pix, xa_row
                # and xa were 12.3 ns on die run U, issue #13)
                base = add3(xa0p, ptr, ci0, len(xa0p), sub_b=True)
                sgm1_n = _comb(m, sg - 1, "sgm1_n", sgm1.shape())
                co_l_n = _comb(m, co - L, "co_l_n", co_l.shape())
                m.d.sync += [
                    xa_rp.eq(base), xa_pix.eq(base), xa_row.eq(base), xa.eq(base),
                    iy0.eq(-p_t), ix0.eq(-p_l), iy.eq(-p_t), ix.eq(-p_l),
                    oy.eq(0), ox.eq(0), ky.eq(0), kx.eq(0),
                    lox.eq(owm1 == 0), loy.eq(ohm1 == 0),
                    oa.eq(out_addr + co0), oa_pix.eq(out_addr + co0),
                    wa.eq(w_grp0), t.eq(0), *set_tl(teff), widx.eq(0),
                    sgm1.eq(sgm1_n), co_l.eq(co_l_n),
                ]
                group_reset(sgm1_n, co_l_n)
                m.next = "DPARAM"
                with m.If(~is_dw):
                    m.next = "DPIX"
            with m.State("DPARAM"):
                # each group's 12-vector record into parameter memory row gi
                m.d.comb += busy_seq.eq(1)
                with m.If(take):
                    param_cmd()
                    with m.If(t == PC - 1):
                        m.d.sync += [t.eq(0), *set_tl(teff), pa.eq(pa + 12 * L)]
                        with m.If(g_last):
                            group_reset()
                            m.next = "DPIX"
                            with m.If(wc):
                                m.next = "DLOAD"
                        with m.Else():
                            group_step()
            with m.State("DLOAD"):
                # each group's weights, TT taps per weight memory row (rows in command order)
                m.d.comb += busy_seq.eq(1)
                m.d.comb += [lbase.eq(wa), *[a.eq(b) for a, b in zip(loff, cok, strict=True)]]
                # the window's taps left: tl = ntap - t, a register (teff = ntap here: DLOAD
                # runs only with wc, so ntap != 0), not a subtract before the compares that
                # enable SEQ's registers (ECP5 timing, issue #13)
                wleft = tl
                with m.If(take):
                    emit(xa=lin, xe=Cat(*[wleft > k for k in range(TT)]), kind=K_WLOAD,
                         idx=widx)
                    # (t stays 0 here: DLOAD counts in tl and leaves with t = 0)
                    m.d.sync += [*set_tl(tl - TT), wa.eq(wa + tco), widx.eq(widx + 1)]
                    with m.If(tl_leT):              # wleft <= TT
                        m.d.sync += [t.eq(0), *set_tl(teff), wa.eq(w_grp_n)]
                        with m.If(g_last):
                            group_reset()
                            m.d.sync += [wa.eq(w_grp0), widx.eq(0)]
                            m.next = "DPIX"
                        with m.Else():
                            group_step()
            with m.State("DPIX"):
                m.d.comb += busy_seq.eq(1)
                # up to TT taps of the window in raster order (weights from the weight memory,
                # or POOL); one tap per command when DWCONV fetches weights per tap
                # taps left of the window (tl = teff - t, a register: SEQ's decisions start
                # from registers)
                one = _comb(m, ~(wc | is_pool), "one_tap")
                nt_ = Signal(range(TT + 1))
                m.d.comb += nt_.eq(Mux(one, 1, Mux(tl_geT, TT, tl)))
                cur = (ky, kx, iy, ix, xa, xa_row)
                chain, taddr, tpad = [], [], []
                for j in range(TT):
                    cky, ckx, ciy, cix, ca, carow = cur
                    tpad.append((ciy < 0) | (ciy >= in_h) | (cix < 0) | (cix >= in_w))
                    taddr.append(ca)
                    endrow = _comb(m, ckx >= kwm1, f"ch{j}_endrow")    # ckx + 1 >= kwe
                    nxt = (Signal(8, name=f"ch{j}_ky"), Signal(8, name=f"ch{j}_kx"),
                           Signal(signed(18), name=f"ch{j}_iy"),
                           Signal(signed(18), name=f"ch{j}_ix"),
                           Signal(SA, name=f"ch{j}_a"), Signal(SA, name=f"ch{j}_arow"))
                    m.d.comb += [
                        nxt[0].eq(Mux(endrow, cky + 1, cky)),
                        nxt[1].eq(Mux(endrow, 0, ckx + 1)),
                        nxt[2].eq(Mux(endrow, ciy + 1, ciy)),
                        nxt[3].eq(Mux(endrow, ix0, cix + 1)),
                        nxt[4].eq(Mux(endrow, carow + rowb, ca + c_)),
                        nxt[5].eq(Mux(endrow, carow + rowb, carow)),
                    ]
                    chain.append(nxt)
                    cur = nxt
                last_ox, last_oy = lox, loy
                last_tap = _comb(m, Mux(one, tl_le1, tl_leT), "last_tap")
                with m.If(take):
                    emit(xa=[a_[:24] for a_ in taddr],
                         xe=Cat(*[~tpad[j] & (nt_ > j) & ~kzero for j in range(TT)]),
                         tpad=Cat(*tpad), wa=wa, wen=is_dw & ~kzero & ~wc,
                         kind=K_MAC, idx=widx, nt=nt_, grp=gi,
                         first=t == 0, last=last_tap, emit=last_tap,
                         zero=kzero, n=nout, r=gr, oa=oa)
                    m.d.sync += [t.eq(t + nt_), *set_tl(tl - nt_), wa.eq(wa + co),
                                 widx.eq(widx + 1)]
                    with m.If(~last_tap):
                        for j in range(TT):
                            with m.If(nt_ == j + 1):
                                m.d.sync += [r_.eq(v_) for r_, v_ in
                                             zip((ky, kx, iy, ix, xa, xa_row), chain[j],
                                                 strict=True)]
                    with m.Elif(~g_last):
                        # the next channel group of the same pixel
                        group_step()
                        # xa_pix + goff_n = xa_pix + goff + lq + g_wrap, one carry chain
                        # (goff_n, the next group's input channel offset in the super-group,
                        # is below 2**13, its width, so its sum is the same untruncated)
                        gx = add3(xa_pix, goff, lq, len(xa_pix), cin=g_wrap)
                        m.d.sync += [kx.eq(0), ky.eq(0), t.eq(0), *set_tl(teff), iy.eq(iy0),
                                     ix.eq(ix0), xa.eq(gx), xa_row.eq(gx), oa.eq(oa + L),
                                     wa.eq(w_grp_n)]
                    with m.Else():
                        group_reset()
                        m.d.sync += [kx.eq(0), ky.eq(0), t.eq(0), *set_tl(teff), widx.eq(0),
                                     wa.eq(w_grp0), iy.eq(iy0), ix.eq(ix0), xa.eq(xa_pix),
                                     xa_row.eq(xa_pix), oa_pix.eq(oa_pix + co),
                                     oa.eq(oa_pix + co)]
                        with m.If(~last_ox):
                            nx = xa_pix + stepx
                            m.d.sync += [ox.eq(ox + 1), lox.eq((ox + 1)[:12] >= owm1),
                                         ix0.eq(ix0 + s_w), iy.eq(iy0),
                                         ix.eq(ix0 + s_w), xa_pix.eq(nx), xa_row.eq(nx),
                                         xa.eq(nx)]
                        with m.Elif(~last_oy):
                            ny = xa_rp + stepy
                            m.d.sync += [ox.eq(0), oy.eq(oy + 1), lox.eq(owm1 == 0),
                                         loy.eq((oy + 1)[:12] >= ohm1), iy0.eq(iy0 + s_h),
                                         ix0.eq(-p_l), iy.eq(iy0 + s_h), ix.eq(-p_l),
                                         xa_rp.eq(ny), xa_pix.eq(ny), xa_row.eq(ny), xa.eq(ny)]
                        with m.Else():
                            # the next super-group
                            m.d.sync += [co0.eq(gco_n), ci0.eq(ci0 + goff_n), rres.eq(gr_n),
                                         rres_w.eq(gr_n_w)]
                            m.next = "GINIT"
                            with m.If(gco_n >= co):
                                m.next = "DONE"

            # ---------------- ELTWISE
            # elements left (count - ei) and to the end of b's period (per - er; L when b is
            # broadcast or not periodic, per <= 1) are registers kept beside ei / er, so the
            # element count, the period wrap and the last command come from registers
            en_ = Signal(NB)
            m.d.comb += en_.eq(Mux(e_rge & e_lge, L, Mux(e_lt, erem, elim)))
            # en_ = min(L, erem, elim), so the compares with en_ are parallel ones
            e_wrap = per1 | (e_lle & ~e_lt)        # er + en_ >= per (elim <= L, elim <= erem)
            # erem - en_ and elim - en_ as the case's subtract (en_ is L, erem or elim), each
            # from registers and selected after, not a subtract after en_'s select (die run U:
            # ``vec.erem`` 12.2 ns, issue #13)
            e_all = e_rge & e_lge
            e_next = set_e(Mux(e_all, erem - L, Mux(e_lt, 0, erem - elim)),
                           Mux(per1, L, Mux(e_wrap, per,
                                            Mux(e_all, elim - L, Mux(e_lt, elim - erem, 0)))))
            with m.State("EPARAM"):
                m.d.comb += busy_seq.eq(1)
                with m.If(take):
                    param_cmd()
                    with m.If(t == PC - 1):
                        m.next = "ERUN"
            with m.State("ERUN"):
                m.d.comb += busy_seq.eq(1)
                with m.If(take):
                    emit(xa=el.a_addr + ei, xe=1, wa=el.b_addr + Mux(per != 0, er, ei), wen=1,
                         kind=K_MAC, first=1, last=1, emit=1, bc=per == 1, n=en_,
                         oa=el.out_addr + ei)
                    m.d.sync += [ei.eq(ei + en_), er.eq(Mux(e_wrap, 0, er + en_)), *e_next]
                    with m.If(e_rle & e_le):    # ei + en_ >= count (erem <= L, erem <= elim)
                        m.next = "DONE"

            # ---------------- LUT
            ln_ = _comb(m, Mux(e_rge, L, erem), "ln", NB)
            l_next = set_e(erem - ln_)
            with m.State("LTABLE"):
                m.d.comb += busy_seq.eq(1)
                # the 256-byte table, TT vectors per command (t: chunk)
                m.d.comb += [lbase.eq(lu.lut_addr),
                             *[a.eq(b) for a, b in zip(loff, chunk_off, strict=True)]]
                with m.If(take):
                    emit(xa=lin, xe=Cat(*[t * TT + k < NT for k in range(TT)]), kind=K_TABLE,
                         idx=t)
                    m.d.sync += t.eq(t + 1)
                    with m.If(t == TC - 1):
                        m.next = "LRUN"
            with m.State("LRUN"):
                m.d.comb += busy_seq.eq(1)
                with m.If(take):
                    emit(xa=lu.in_addr + ei, xe=1, kind=K_MAC, first=1, last=1, emit=1,
                         n=ln_, oa=lu.out_addr + ei)
                    m.d.sync += [ei.eq(ei + ln_), *l_next]
                    with m.If(e_rle):                       # ei + ln_ >= count
                        m.next = "DONE"

            # ---------------- VMATMUL
            vrem_n = Signal(18)
            m.d.comb += vrem_n.eq(vm.n - vj0)
            vkn = Mux(v_lk, vkr, L)
            with m.State("VPARAM"):
                m.d.comb += busy_seq.eq(1)
                # vj0 is the group's for the whole of VPARAM (>= 1 cycle before VRUN)
                vg = Mux(vrem_n > L, L, vrem_n)
                m.d.sync += [vnj.eq(vg), vl.eq(vg)]
                with m.If(take):
                    param_cmd()
                    with m.If(t == PC - 1):
                        m.d.sync += t.eq(0)
                        m.next = "VRUN"
            with m.State("VRUN"):
                # TT output channels per command: their weight rows are the x vectors, the
                # input chunk is the w vector
                m.d.comb += busy_seq.eq(1)
                last_k = v_lk                   # vkr <= L
                vnt = Signal(range(TT + 1))
                m.d.comb += vnt.eq(Mux(vl >= TT, TT, vl))
                last_jj = _comb(m, vl <= TT, "last_jj")
                last_j0 = v_lj0                 # vj0 + L >= n
                last_i = v_li                   # vi + 1 >= m
                # weight row j of the command: wrow + j * k, each an adder from registers
                # (``vkj``: j * k), and its chunk at wv + j * k (wv = wrow + vk0, a register
                # kept beside them): no chain of TT adders in series between SEQ's registers
                # and the command FIFO's entries (ECP5 timing, issue #13)
                rows = [wrow] + [_comb(m, (wrow + vkj[j])[:24], f"vrow{j}", 24)
                                 for j in range(1, TT + 1)]
                with m.If(take):
                    emit(xa=[wv] + [(wv + vkj[j])[:24] for j in range(1, TT)],
                         xe=Cat(*[(vnt > j) & (vm.k != 0) for j in range(TT)]),
                         wa=xrow + vk0, wen=vm.k != 0,
                         kind=K_MAC, first=vk0 == 0, last=last_k, emit=last_k & last_jj,
                         zero=vm.k == 0, n=vnj, kn=vkn, jj=vjj, nt=vnt, oa=orow + vj0)
                    m.d.sync += [vk0.eq(vk0 + L), vkr.eq(vkr - L), wv.eq(wv + L),
                                 v_lk.eq(vkr <= 2 * L)]
                    with m.If(last_k):
                        m.d.sync += [vk0.eq(0), vkr.eq(vm.k), vjj.eq(vjj + vnt), vl.eq(vl - vnt),
                                     wv.eq(wrow), v_lk.eq(vm.k <= L)]
                        for j in range(TT):
                            with m.If(vnt == j + 1):
                                m.d.sync += [wrow.eq(rows[j + 1]), wv.eq(rows[j + 1])]
                        with m.If(last_jj):
                            nw = wrow0 + vkL
                            m.d.sync += [vjj.eq(0), vj0.eq(vj0 + L), wrow0.eq(nw),
                                         wrow.eq(nw), wv.eq(nw), pa.eq(pa + 12 * L),
                                         v_lj0.eq(vj0 + 2 * L >= vm.n)]
                            m.next = "VPARAM"
                            with m.If(last_j0):
                                m.d.sync += [vj0.eq(0), vi.eq(vi + 1), xrow.eq(xrow + vm.k),
                                             v_lj0.eq(vm.n <= L), v_li.eq(vi + 2 >= vm.m),
                                             orow.eq(orow + vm.n), wrow0.eq(vm.w_addr),
                                             wrow.eq(vm.w_addr), wv.eq(vm.w_addr),
                                             pa.eq(vm.p_addr)]
                                with m.If(last_i):
                                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += busy_seq.eq(1)
                m.next = "IDLE"

        # ------------------------------------------------------------------ REQ
        # Vectors of a command: x taps 0..TT-1, then w. Each needs its line and,
        # when it crosses a line end, the next one: 2*V line slots, looked up in a line cache of
        # NE entries (tags here, data in ASM). Misses are requested one per cycle, each into a
        # victim entry (round robin, skipping entries this command uses); ASM fills entries in
        # command order, so a later command's victim never overwrites a line an earlier queued
        # command still reads. The lookup happens as REQ takes a command (``load``): its slots'
        # hits against the tags as they are after this cycle (the entry this cycle's request
        # writes is forwarded) go into registers (``hv``, ``hidx``, ``inuse``) that each request
        # then updates, so REQ's per-cycle decisions start from registers.
        V = TT + 1
        NS = 2 * V
        EB = max(1, (NE - 1).bit_length())
        # (vector_req_stages = 2, FPGA clocks: the head a register, and the write staged a
        # cycle, so one more cycle of latency and the same throughput)
        # ``mq_any``: a command between REQ and ASM (in the write stage, too)
        if self.config.vector_req_stages == 2:
            metaq = HeadFIFO(width=META.size, depth=META_DEPTH, write_stage=True)
            mq_any = metaq.nonempty
        else:
            metaq = fifo.SyncFIFO(width=META.size, depth=META_DEPTH)
            mq_any = metaq.r_rdy
        respq = fifo.SyncFIFO(width=8 * W, depth=RESP_DEPTH)
        m.submodules.metaq = metaq
        m.submodules.respq = respq
        tags = [Signal(LA, name=f"tag{e}") for e in range(NE)]
        tv = Signal(NE)
        # round-robin pointer as a thermometer: the entries at or after it
        therm = Signal(NE, init=(1 << NE) - 1)
        outstanding = Signal(range(RESP_DEPTH + 1))
        out_zero = Signal(init=1)        # outstanding == 0, set with it (``idle`` reads flags)
        npop = Signal(range(NS + 1))
        popents = [Signal(EB, name=f"pe{i}") for i in range(NS)]
        voff = [a[:LB] if LB else Const(0, 1) for a in [rq.xa[k] for k in range(TT)] + [rq.wa]]
        # the slots of the command REQ takes
        # The lookup compares each slot's line with the tags; a vector's second slot (its line
        # + 1) is compared as its line against registers holding each tag - 1 (``tm1``, and
        # ``sl_m1`` beside ``sl_line`` for the line requested now), so no incrementer stands
        # between the command's registers and the compares (ECP5 timing, issue #13).
        def slots_of(x):
            """The slots of command ``x``: the line a slot's key compares (``keys``: its vector's
            line, for both of the vector's slots) and whether the command needs the slot"""
            needs, keys = [], []
            for v in range(V):
                a_ = x.xa[v] if v < TT else x.wa
                lo_l = a_[LB:LB + LA]
                off = a_[:LB] if LB else Const(0, 1)
                en = x.xe[v] if v < TT else x.wen
                needs += [en, en & (off > W - L)]          # off + L > W
                keys += [lo_l, lo_l]
            return keys, needs

        in_key, in_need = slots_of(inc)
        # each slot's line: a vector's line, then the next one
        in_line = [in_key[s_] if s_ % 2 == 0
                   else _comb(m, (in_key[s_] + 1)[:LA], f"in_next{s_ // 2}") for s_ in range(NS)]
        # each slot's line - 1 (a vector's first slot: its line - 1; its second: its line)
        in_m1 = [in_key[s_] if s_ % 2 else (in_line[s_] - 1)[:LA] for s_ in range(NS)]
        # REQ's registers of the command it holds: its slots' lines and needs, which slots share
        # a line, the slots whose line is in the cache (or requested) and its entry, the entries
        # its needed slots use
        sl_line = [Signal(LA, name=f"sl_line{s_}") for s_ in range(NS)]
        sl_m1 = [Signal(LA, name=f"sl_m1_{s_}") for s_ in range(NS)]   # sl_line - 1
        tm1 = [Signal(LA, name=f"tm1_{e}") for e in range(NE)]        # tags - 1
        sl_need = Signal(NS)
        same = [Signal(NS, name=f"same{s_}") for s_ in range(NS)]
        hv = Signal(NS)
        hidx = [Signal(EB, name=f"hidx{s_}") for s_ in range(NS)]
        inuse = Signal(NE)
        miss = Signal(NS)
        m.d.comb += miss.eq(sl_need & ~hv)
        fm = Signal(range(NS))
        for s_ in reversed(range(NS)):
            with m.If(miss[s_]):
                m.d.comb += fm.eq(s_)
        fm_line = _comb(m, Array(sl_line)[fm], "fm_line", LA)
        fm_m1 = _comb(m, Array(sl_m1)[fm], "fm_m1", LA)
        # the victim: the first entry not in use from the pointer on, wrapping (NE > NS, so
        # one is always free): the lowest set bit of (free entries at or after the pointer,
        # then all free entries), one-hot (``voh``) by a carry chain, and binary by OR trees
        free = ~inuse
        y = Cat(free & therm, free)
        first = _comb(m, (y & (~y + 1))[:2 * NE], "vfirst", 2 * NE)
        voh = _comb(m, first[:NE] | first[NE:], "voh", NE)
        victim = _comb(m, _onehot_index(voh, EB), "victim", EB)
        # outstanding < RESP_DEPTH as a flag set with the count (a request fires on flip-flops,
        # not a compare: run S's die path ran outstanding -> the compare -> rfire -> complete ->
        # the lookup registers, 15.9 ns, issue #13)
        credit = Signal(init=1)
        rfire = Signal()
        req_v = rq_v & miss.any() & credit
        if self.config.vector_req_stages == 2:
            # (FPGA clocks) the line requests go to the SRAM port through a 2-entry FIFO whose
            # ``w_rdy`` is a register, so a request fires on REQ's registers alone: the SRAM
            # arbiter's ready (from another block) no longer enters ``rfire``, which updates the
            # tags, ``inuse``, ``hv`` and REQ's other registers (issue #13). One cycle more of
            # read latency; ``outstanding`` counts the requests in the FIFO too.
            m.submodules.reqq = reqq = RingFIFO2(width=LA)
            m.d.comb += [
                reqq.w_en.eq(req_v), reqq.w_data.eq(fm_line),
                rfire.eq(req_v & reqq.w_rdy),
                self.rd.req.valid.eq(reqq.r_rdy), self.rd.req.payload.addr.eq(reqq.r_data),
                reqq.r_en.eq(self.rd.req.ready),
            ]
        else:
            m.d.comb += [
                self.rd.req.valid.eq(req_v),
                self.rd.req.payload.addr.eq(fm_line),
                rfire.eq(self.rd.req.valid & self.rd.req.ready),
            ]
        # the slots whose line is the one requested now
        fm_same = [_comb(m, rfire & same[s_].bit_select(fm, 1), f"fm_same{s_}") for s_ in range(NS)]
        ent = [Mux(hv[s_], hidx[s_], victim) for s_ in range(NS)]
        # complete: every needed slot hits, or its line is the one requested now. With a miss
        # that is: a request fires and the misses are one line, which is every two missing
        # slots sharing a line (``same`` is line equality): no priority encoder (``fm``) and
        # line select in front of ``complete``, which loads REQ's registers (ECP5 timing)
        one_line = _comb(m, Cat(*[~miss[s_] | ~miss[t_] | same[s_][t_] for s_ in range(NS)
                                  for t_ in range(s_ + 1, NS)]).all(), "one_line")
        m.d.comb += complete.eq(rq_v & metaq.w_rdy & (~miss.any() | (rfire & one_line)))
        # the entry the command's latest request fills (pe[npop - 1] while npop > 0)
        lastpe = data_reg(EB, name="lastpe")
        with m.If(rfire):
            m.d.sync += [tv.eq(tv | voh), npop.eq(npop + 1), Array(popents)[npop].eq(victim),
                         lastpe.eq(victim)]
            for e in range(NE):
                with m.If(voh[e]):
                    m.d.sync += [tags[e].eq(fm_line), tm1[e].eq(fm_m1)]
            # the pointer moves past the victim (to entry 0 after the last)
            m.d.sync += therm.eq(Mux(voh[NE - 1], (1 << NE) - 1,
                                     Cat(*[voh[:e].any() if e else Const(0, 1)
                                           for e in range(NE)])))
        # the lookup of the command taken: the tags after this cycle (entry ``victim`` holds
        # fm_line if a request goes out now). A line is in at most one valid entry (a line is
        # requested only when no valid entry holds it), so a slot hits the tags in one entry
        # (``plain``), or the line requested now (``fwd``, which no valid entry holds), and the
        # victim enters only the last level: it kills a plain hit on its entry, and names the
        # entry of a forwarded one.
        hv_n = Signal(NS)
        hidx_n = [Signal(EB, name=f"hidx_n{s_}") for s_ in range(NS)]
        inuse_n = Signal(NE)
        need_plain = [[] for _ in range(NE)]
        need_fwd = []
        if self.config.vector_req_stages == 2:
            # (FPGA clocks) the compares a cycle early. A command waits in the input ring at
            # least a cycle before REQ takes it, and the head after this cycle is the ring's
            # ``nxt_keep`` or, if REQ takes the head now, its ``nxt_pop``. For both, registered
            # now: each slot's line against the tags (``pc_*``), against the line this cycle's
            # request writes (``eq_*``: after this cycle the tags differ from those compared in
            # the victim's entry alone, when a request fires), and against the lines REQ holds
            # after this cycle (``xc_*``: its own if it keeps its command, the head's if it
            # takes it), for the forward of the next cycle's request; and the slots' needs.
            # Next cycle ``lsel`` (REQ took the head) selects, and the lookup is the same
            # function of the same tags as the one-cycle lookup below: run AC's path was the
            # ring's read pointer -> the head select -> the compares -> ``inuse``, 13.84 ns,
            # issue #13. As there, a slot compares its key (its vector's line) with a line
            # (first slot) or a line - 1 (second slot: ``tm1``, ``fm_m1``, ``sl_m1``,
            # ``in_m1``), so no adder stands between the ring and the compares.
            lsel, rfd = Signal(), Signal()
            vohd = Signal(NE)
            m.d.sync += [lsel.eq(load), rfd.eq(rfire), vohd.eq(voh)]
            fm_oh = _comb(m, miss & (~miss + 1), "fm_oh", NS)     # the first miss, one-hot
            cand = []
            for nm, val, held, held_m1 in (("k", inq.nxt_keep, sl_line, sl_m1),
                                           ("p", inq.nxt_pop, in_line, in_m1)):
                nx = Signal(CMD, name=f"nxt_{nm}")
                m.d.comb += nx.eq(val)
                keys, needs = slots_of(nx)
                pc = [Signal(NE, name=f"pc_{nm}{s_}") for s_ in range(NS)]
                xc = [Signal(NS, name=f"xc_{nm}{s_}") for s_ in range(NS)]
                eq, nd = Signal(NS, name=f"eq_{nm}"), Signal(NS, name=f"nd_{nm}")
                m.d.sync += [eq.eq(Cat(*[keys[s_] == (fm_m1 if s_ % 2 else fm_line)
                                         for s_ in range(NS)])),
                             nd.eq(Cat(*needs))]
                for s_ in range(NS):
                    tg, hl = (tm1, held_m1) if s_ % 2 else (tags, held)
                    m.d.sync += [pc[s_].eq(Cat(*[tg[e] == keys[s_] for e in range(NE)])),
                                 xc[s_].eq(Cat(*[keys[s_] == hl[t_] for t_ in range(NS)]))]
                cand.append((pc, xc, eq, nd))
            (pck, xck, eqk, ndk), (pcp, xcp, eqp, ndp) = cand
            l_need = _comb(m, Mux(lsel, ndp, ndk), "l_need", NS)
            l_eq = _comb(m, Mux(lsel, eqp, eqk), "l_eq", NS)
            plains, fwds = [], []
            for s_ in range(NS):
                pcs = Mux(lsel, pcp[s_], pck[s_])
                plains.append(_comb(m, tv & Cat(*[Mux(rfd & vohd[e], l_eq[s_], pcs[e])
                                                  for e in range(NE)]), f"plain{s_}", NE))
                fwds.append(_comb(m, rfire & (Mux(lsel, xcp[s_], xck[s_]) & fm_oh).any(),
                                  f"fwd{s_}"))
            l_needs = [l_need[s_] for s_ in range(NS)]
        else:
            plains = [_comb(m, Cat(*[tv[e] & ((tm1 if s_ % 2 else tags)[e] == in_key[s_])
                                     for e in range(NE)]), f"plain{s_}", NE)
                      for s_ in range(NS)]
            fwds = [_comb(m, rfire & Cat(*[in_key[s_] == (sl_m1 if s_ % 2 else sl_line)[t_]
                                           for t_ in range(NS)]).bit_select(fm, 1), f"fwd{s_}")
                    for s_ in range(NS)]
            l_needs = in_need
        for s_ in range(NS):
            plain, fwd = plains[s_], fwds[s_]
            # (plain is one-hot or zero: its entry number by OR trees, as the victim's, not a
            # priority chain over NE entries -- REQ's lookup was the unit's ECP5 path)
            pidx = _comb(m, _onehot_index(plain, EB), f"pidx{s_}", EB)
            killed = rfire & (plain & voh).any()
            m.d.comb += [hv_n[s_].eq(fwd | (plain.any() & ~killed)),
                         hidx_n[s_].eq(Mux(fwd, victim, pidx))]
            for e in range(NE):
                need_plain[e].append(l_needs[s_] & plain[e])
            need_fwd.append(l_needs[s_] & fwd)
        for e in range(NE):
            m.d.comb += inuse_n[e].eq(Mux(rfire & voh[e], Cat(*need_fwd).any(),
                                          Cat(*need_plain[e]).any()))
        with m.If(load):
            m.d.sync += [sl_need.eq(Cat(*l_needs)), hv.eq(hv_n), inuse.eq(inuse_n)]
            for s_ in range(NS):
                m.d.sync += [sl_line[s_].eq(in_line[s_]),
                             sl_m1[s_].eq(in_m1[s_]),
                             hidx[s_].eq(hidx_n[s_]),
                             same[s_].eq(Cat(*[in_line[s_] == in_line[t_] for t_ in range(NS)]))]
        with m.Elif(rfire):
            m.d.sync += inuse.eq(inuse | voh)
            for s_ in range(NS):
                with m.If(fm_same[s_]):
                    m.d.sync += [hv[s_].eq(1), hidx[s_].eq(victim)]
        meta_in = Signal(META)
        for name, _ in CMD:
            if name not in ("xa", "wa"):
                m.d.comb += getattr(meta_in, name).eq(getattr(rq, name))
        for v in range(V):
            m.d.comb += [meta_in.lo[v].eq(ent[2 * v]), meta_in.hi[v].eq(ent[2 * v + 1]),
                         meta_in.off[v].eq(voff[v])]
        for i in range(NS):
            m.d.comb += meta_in.pe[i].eq(Mux(rfire & (npop == i), victim, popents[i]))
        # lm: ent[s] == the last entry filled (victim if a request goes out now, else lastpe),
        # case by case so that the compares start from registers (voh is one-hot: an entry
        # equals the victim iff its bit in voh is set)
        for s_ in range(NS):
            m.d.comb += meta_in.lm[s_].eq(
                Mux(rfire, ~hv[s_] | voh.bit_select(hidx[s_], 1),
                    Mux(hv[s_], hidx[s_] == lastpe, voh.bit_select(lastpe, 1))))
        # DWCONV lane j reads input channel (r + j) // depth_mult of the group (r < dm: SEQ
        # keeps r = gco % dm), no divider: the count of the multiples t * dm (t = 1 .. j, set
        # up per instruction) that r + j reaches, each compare on REQ's register in parallel
        # (dm is constant while commands are in flight: a new instruction waits for idle); the
        # selects travel in the meta FIFO. Only DWCONV reads them.
        for j in range(L):
            m.d.comb += meta_in.sel[j].eq(sum(rq.r + j >= dmk[t] for t in range(1, j + 1))
                                          if j else 0)
        m.d.comb += [
            meta_in.npop.eq(npop + rfire),
            metaq.w_data.eq(meta_in),
            metaq.w_en.eq(complete),
        ]
        with m.If(complete):
            m.d.sync += npop.eq(0)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += tv.eq(0)
        m.d.comb += [respq.w_en.eq(self.rd.rvalid), respq.w_data.eq(self.rd.rdata)]

        # ------------------------------------------------------------------ ASM
        mh = data.View(META, metaq.r_data)
        mv = metaq.r_rdy
        pc = Signal(range(NS + 1))
        av = Signal()
        av_meta = data_reg(META)
        av_xs = [data_reg(8 * L, name=f"av_x{k}") for k in range(TT)]
        av_w = data_reg(8 * L)
        exec_take = Signal()
        # Config.vector_req_stages = 2 (FPGA clocks): ASM hands its commands to EXEC through
        # a register stage (``h_*``: the command as ASM completes it, its vectors' line halves
        # read from the cache but not yet shifted) and a 2-entry skid ring (``skq``), so ASM's
        # ``out_ready`` is a test of registers and its pops, cache reads and bypass do not wait
        # on EXEC's and POST's back-pressure in the cycle (on the die that chain ran from POST's
        # phase through EXEC's take into ASM's registers), and the byte shifter starts from
        # registers, not from the cache's LUT-RAM reads (die run U: ``sk_x*`` / ``av_x*``, the
        # read -> the bypass -> the shifter, 12.0 ns, issue #13). From the stage a command goes
        # straight into ``av`` when the skid is empty and ``av`` is free or taken this cycle,
        # else into the skid; one cycle more latency than without the stage, the same
        # throughput.
        skid = self.config.vector_req_stages == 2
        if skid:
            out_ready = Signal()
        else:
            out_ready = ~av | exec_take
        pop = Signal()
        done_cmd = Signal()
        pend = Signal()
        # respq.r_rdy (level != 0) as a flag of its own, set by a write and cleared by the read
        # of the last entry: ASM's pop / done decisions start from a flip-flop, not from the
        # FIFO's level (the unit's ECP5 path ran respq.level -> pop -> metaq's level)
        resp_nz = Signal()
        m.d.sync += resp_nz.eq(Mux(respq.w_en & respq.w_rdy, 1,
                                   Mux(pop & (respq.r_level == 1), 0, resp_nz)))
        lastp = Signal()        # pc + 1 == mh.npop (with pend: the command's last pop)
        if skid:
            # (vector_req_stages = 2) pend and lastp as registers, set from the next values
            # of pc and of the head's npop: the pop and completion decisions start from
            # flip-flops, not from compares of the head (ECP5 timing, issue #13: the head's
            # enable, which done_cmd drives, was the unit's path)
            pc_n = Mux(done_cmd, 0, Mux(pop, pc + 1, pc))
            npop_n = data.View(META, metaq.r_data_n).npop
            m.d.sync += [pend.eq(pc_n < npop_n), lastp.eq(pc_n + 1 == npop_n)]
        else:
            m.d.comb += [pend.eq(pc < mh.npop), lastp.eq(pc + 1 == mh.npop)]
        m.d.comb += [
            pop.eq(mv & pend & resp_nz & (~lastp | out_ready)),
            done_cmd.eq(mv & out_ready & (~pend | (lastp & resp_nz))),
            respq.r_en.eq(pop),
            metaq.r_en.eq(done_cmd),
        ]
        with m.If(rfire):
            m.d.sync += [outstanding.eq(outstanding + 1 - pop),
                         out_zero.eq(pop & (outstanding == 0)),
                         credit.eq(pop | (outstanding + 1 < RESP_DEPTH))]
        with m.Elif(pop):
            m.d.sync += [outstanding.eq(outstanding - 1), out_zero.eq(outstanding == 1),
                         credit.eq(1)]
        line = respq.r_data
        pe = _comb(m, Array(list(mh.pe))[pc[:max(1, (NS - 1).bit_length())]], "pe", EB)
        with m.If(pop):
            m.d.sync += pc.eq(pc + 1)
        # The line cache's data: NE lines in a memory with one asynchronous read port per vector
        # and line (its first L bytes, for the line a vector runs into, in a narrower copy).
        # Each read port maps to LUT-RAM on ECP5: a crossbar of NE x 8W flip-flops into 2V
        # line multiplexers did not route (issue #13). The line popped this cycle bypasses it.
        m.submodules.cache_lo = cache_lo = Memory(shape=unsigned(8 * W), depth=NE, init=[])
        m.submodules.cache_hi = cache_hi = Memory(shape=unsigned(8 * L), depth=NE, init=[])
        for mem, data_ in ((cache_lo, line), (cache_hi, line[:8 * L])):
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(pe), wp.data.eq(data_), wp.en.eq(pop)]
        # a vector: L bytes from byte off (< W) of its line and the next one (a byte shifter of
        # W + L bytes: a shift of both whole lines would be 4x wider and slow down elaboration)
        def vec_at(pair, off):
            return pair.bit_select(Cat(Const(0, 3), off), 8 * L)

        line_pairs = []         # per vector: its line and the next one's first L bytes
        for v in range(V):
            halves = []
            for mem, e, data_, nm in ((cache_lo, mh.lo[v], line, "lo"),
                                      (cache_hi, mh.hi[v], line[:8 * L], "hi")):
                rp = mem.read_port(domain="comb")
                m.d.comb += rp.addr.eq(e)
                # the line popped this cycle bypasses the cache. A pair is taken only as the
                # command completes (done_cmd), when a pop, if any, is the last one (pc = npop -
                # 1, pop = pend): so the bypass is pend and the slot's lm bit, both from
                # registers, not the entry select pe and a compare (ECP5 timing, issue #13)
                lm = mh.lm[2 * v + (nm == "hi")]
                halves.append(_comb(m, Mux(pend & lm, data_, rp.data), f"v{v}_{nm}"))
            line_pairs.append(Cat(*halves))
        with m.If(done_cmd):
            m.d.sync += pc.eq(0)
        if skid:
            # the stage: loads in every cycle (data; h_v says it holds a command)
            h_v = Signal()
            h_meta = data_reg(META)
            h_pairs = [data_reg(len(p_), name=f"h_pair{v}") for v, p_ in enumerate(line_pairs)]
            m.d.sync += [h_v.eq(done_cmd), h_meta.eq(mh),
                         *[a.eq(b) for a, b in zip(h_pairs, line_pairs, strict=True)]]
            h_vec = [_comb(m, vec_at(p_, h_meta.off[v]), f"h_vec{v}", 8 * L)
                     for v, p_ in enumerate(h_pairs)]
            # the skid: the entry free loads the stage's command in every cycle (RingFIFO2),
            # written when the stage holds one that does not go straight into av
            m.submodules.skq = skq = RingFIFO2(width=META.size + 8 * L * V)
            load_av = exec_take | ~av
            m.d.comb += [skq.w_data.eq(Cat(h_meta, h_vec[TT], *h_vec[:TT])),
                         skq.w_en.eq(h_v & ~(load_av & ~skq.r_rdy)),
                         skq.r_en.eq(load_av)]
            sk_meta = data.View(META, skq.r_data[:META.size])
            sk_w = skq.r_data[META.size:META.size + 8 * L]
            sk_xs = [skq.r_data[META.size + 8 * L * (k + 1):META.size + 8 * L * (k + 2)]
                     for k in range(TT)]
            sk_v = skq.r_rdy
            handoff_any = h_v | sk_v        # a command between ASM and av
            # ASM completes a command only if the skid can take it the next cycle whatever
            # EXEC does: at most one command in the skid and the stage after this cycle
            m.d.comb += out_ready.eq(Mux(h_v, skq.r_level == 0, skq.w_rdy))
            # av loads when it is free or taken: from the skid if that holds a command, else
            # the stage's (if any)
            n_meta = data.View(META, Mux(sk_v, sk_meta.as_value(), h_meta.as_value()))
            with m.If(load_av):
                m.d.sync += [av.eq(sk_v | h_v), av_meta.eq(n_meta),
                             av_w.eq(Mux(sk_v, sk_w, h_vec[TT])),
                             *[a.eq(Mux(sk_v, b, c))
                               for a, b, c in zip(av_xs, sk_xs, h_vec[:TT], strict=True)]]
        else:
            handoff_any = Const(0, 1)
            vec_n = [vec_at(p_, mh.off[v]) for v, p_ in enumerate(line_pairs)]
            with m.If(exec_take):
                m.d.sync += av.eq(0)
            with m.If(done_cmd):
                m.d.sync += [av.eq(1), av_meta.eq(mh), av_w.eq(vec_n[TT])]
                m.d.sync += [a.eq(b) for a, b in zip(av_xs, vec_n[:TT], strict=True)]
        remaining = pend

        # ------------------------------------------------------------------ EXEC
        post_cnt = Signal(range(OUT_DEPTH + 1))
        post_zero = Signal(init=1)       # post_cnt == 0, set with it
        post_room = Signal(init=1)       # post_cnt < OUT_DEPTH, set with it (EXEC's advance
        #                                  starts from a flip-flop, not a compare)
        emit_b = Signal()
        # EXEC runs in Config.vector_exec_stages stages. E1 is the command in av: the operand
        # selects, the weight memory (read; K_WLOAD writes it) and the tap products. E2
        # accumulates, writes the parameter memory and the LUT table and fills P0. With one
        # stage E2 is E1; with two, E2 is a register stage after E1 (the products registered):
        # one cycle more latency, the same throughput (E1 moves on whenever E2 does).
        two = self.config.vector_exec_stages >= 2
        # 3: P0 loads a cycle after E2 emits, from registers (the accumulators, which then hold
        # the emitted sums, and registered copies of E2's other operands), so neither E2's
        # accumulate adders nor its emit decision (the enable of P0's 16 L-lane registers) is
        # in front of P0 (ECP5 timing, issue #13); one cycle more per instruction
        late0 = self.config.vector_exec_stages >= 3
        # 4: E1 registers the multipliers' operands (each lane's selected x and w byte per tap);
        # the products are formed from those registers in a stage of their own (E1b) and
        # registered, and the accumulate's addends (VMATMUL's dot products across the lanes,
        # DWCONV's tap sums, POOL's sums) are formed from those in another (E1c) and
        # registered, so a multiplier placed far from the unit costs latency, not the clock
        # (ECP5: the tap DSPs sit in the die's DSP rows), and E2's accumulate is one adder
        # behind registers (issue #13); two more cycles per instruction, the same throughput
        ops = self.config.vector_exec_stages >= 4
        am = av_meta                 # E1's command (rebound to the later stages' below)
        # the register stages after E1, in order (with E1 they advance together, below)
        stages = [_ExecStage(n, META, TT, L) for n in exec_stage_names(self.config)]
        if two:
            e2 = stages[-1]
            e_take, em, e_xs, e_w = e2.take, e2.meta, e2.xs, e2.w
        else:
            e_take, em, e_xs, e_w = exec_take, av_meta, av_xs, av_w
        # P0 takes a beat this cycle: free, or its last phase moves into POST now (H > 1: an
        # emitting command waits for it; the others go on, they change nothing POST reads)
        p0free = Signal()
        e_ok = post_room & ((~em.emit | p0free) if H > 1 else 1)
        if two:
            # The stages move together: all of them unless E2 holds a beat it cannot hand on
            # (a bubble in a later stage is not filled while E2 waits). Each stage's take is
            # then its valid and one shared ``adv``, not a ready chain back from E2 through
            # every stage into E1's and av's enables (ECP5 timing, issue #13: with four stages
            # that chain ran from POST's room through E2, E1c, E1b into the skid -> av moves).
            # (E2's take, e_take, is then e2.v & e_ok.)
            adv = _comb(m, ~e2.v | e_ok, "e_adv")
            m.d.comb += exec_take.eq(av & adv)
            src = (exec_take, av_meta, av_xs, av_w)
            for st in stages:
                m.d.comb += st.take.eq(st.v & adv)
                in_take, meta, xs, w = src
                with m.If(in_take):
                    m.d.sync += [st.v.eq(1), st.meta.eq(meta), st.w.eq(w),
                                 *[a.eq(b) for a, b in zip(st.xs, xs, strict=True)]]
                with m.Elif(st.take):
                    m.d.sync += st.v.eq(0)
                src = (st.take, st.meta, st.xs, st.w)
        else:
            m.d.comb += exec_take.eq(av & e_ok)
        # the products' stage hands them on (E1 with 2 or 3 stages, E1b with 4)
        o_take = stages[0].take if ops else exec_take
        # parameter memory: one 12-vector record per group of a super-group (row 0 for
        # ELTWISE / VMATMUL); a K_PARAM command (chunk idx) writes vectors idx*TT .. from its x
        # vectors. Read combinationally by the command in EXEC (and by POST for ELTWISE).
        pmem = Memory(shape=unsigned(12 * 8 * L), depth=SG, init=[])
        m.submodules.pmem = pmem
        pmw = pmem.write_port(granularity=8 * L)
        pmr = pmem.read_port(domain="comb")
        prow = _comb(m, Mux(is_dw, em.grp, 0), "prow", max(1, LSG))
        m.d.comb += [
            pmw.addr.eq(prow), pmr.addr.eq(prow),
            pmw.data.eq(Cat(*[e_xs[i % TT] for i in range(12)])),
            pmw.en.eq(Cat(*[e_take & (em.kind == K_PARAM) & (em.idx == i // TT)
                            for i in range(12)])),
        ]
        P = pmr.data
        # LUT table: a K_TABLE command (chunk idx) writes its TT x vectors as row idx (table
        # bytes idx*TT*L ..; the last row's vectors past byte 255 are never read). A memory,
        # not 256 byte registers behind a 256:1 select per POST lane (ECP5 area, issue #13).
        tmem = Memory(shape=unsigned(TT * 8 * L), depth=TC, init=[])
        m.submodules.tmem = tmem
        tmw = tmem.write_port(granularity=8 * L)
        m.d.comb += [tmw.addr.eq(em.idx), tmw.data.eq(Cat(*e_xs)),
                     tmw.en.eq((e_take & (em.kind == K_TABLE)).replicate(TT))]
        # weight memory: TT taps of one group per row, rows in command order (K_WLOAD)
        wmem = Memory(shape=unsigned(TT * 8 * L), depth=D, init=[])
        m.submodules.wmem = wmem
        wmw = wmem.write_port()
        m.d.comb += [wmw.addr.eq(am.idx), wmw.data.eq(Cat(*av_xs)),
                     wmw.en.eq(exec_take & (am.kind == K_WLOAD))]
        if skid:
            # (vector_req_stages = 2, FPGA clocks) read as av loads, at the row of the command
            # it loads, into a register: the row select, the LUT-RAM and its address fanout are
            # off E1's path into the multipliers (on ECP5 av_meta.idx -> the read -> a product
            # was the unit's path). A WLOAD leaving av writes at that same edge: the read is
            # transparent to it, so a MAC right behind reads the row it writes.
            wmr = wmem.read_port(domain="sync", transparent_for=(wmw,))
            m.d.comb += [wmr.addr.eq(n_meta.idx), wmr.en.eq(load_av)]
        else:
            wmr = wmem.read_port(domain="comb")
            m.d.comb += wmr.addr.eq(am.idx)
        wtap = [_comb(m, Mux(wc, wmr.data[8 * L * k:8 * L * (k + 1)], av_w), f"wtap{k}",
                      8 * L) for k in range(TT)]

        acc = [Signal(signed(32), name=f"acc{j}") for j in range(L)]
        mx = [Signal(signed(8), name=f"mx{j}") for j in range(L)]
        cnt = Signal(17)
        in_zp = dw.in_zp
        # DWCONV lane j reads input channel (r + j) // depth_mult of the group: counted in REQ
        # (meta ``sel``), EXEC reads it from registers.
        if L > 1 and skid:
            sel = [av_meta.sel[j] for j in range(L)]
        elif L > 1:
            sel = [Signal(LL, name=f"av_sel{j}", reset_less=True) for j in range(L)]
            with m.If(done_cmd):
                m.d.sync += [sel[j].eq(mh.sel[j]) for j in range(L)]
        else:
            sel = [Const(0, 1)]
        # Lane j's x byte of tap k: a DWCONV padding tap is in_zp; VMATMUL's lanes beyond the
        # chunk's K multiply a zero x here, so the dot products add the products without a mask
        # (only VMATMUL reads them); else byte sel[j] (DWCONV) or j of the tap's vector.
        def x_src(meta, sels):
            """(byte index per lane, forced per tap and lane, forced value per tap) of a
            command's metadata and DWCONV lane selects"""
            tpad_dw = [is_dw & meta.tpad[k] for k in range(TT)]
            vm_off = [is_vm & (meta.kn <= j) for j in range(L)]
            idx = [Mux(is_dw, sels[j], j) if L > 1 else Const(0, 1) for j in range(L)]
            frc = [[tpad_dw[k] | vm_off[j] for j in range(L)] for k in range(TT)]
            fv = [Mux(tpad_dw[k], in_zp, 0) for k in range(TT)]
            return idx, frc, fv

        if skid:
            # vector_req_stages = 2 (FPGA clocks): taken as av loads, in registers, so the
            # multipliers' operands are a byte select and a force behind registers, not the
            # opcode's selects (the instruction's fields are constant while commands flow: a
            # new instruction waits for idle)
            nidx, nfrc, nfv = x_src(n_meta, n_meta.sel)
            x_idx = [Signal(max(1, LL), name=f"av_idx{j}", reset_less=True) for j in range(L)]
            x_frc = [[Signal(name=f"av_frc{k}_{j}", reset_less=True) for j in range(L)]
                     for k in range(TT)]
            x_fv = [Signal(signed(8), name=f"av_fv{k}", reset_less=True) for k in range(TT)]
            with m.If(exec_take | ~av):
                m.d.sync += [*[a.eq(b) for a, b in zip(x_idx, nidx, strict=True)],
                             *[a.eq(b) for a, b in zip(x_fv, nfv, strict=True)],
                             *[a.eq(b) for ra, rb in zip(x_frc, nfrc, strict=True)
                               for a, b in zip(ra, rb, strict=True)]]
        else:
            x_idx, x_frc, x_fv = x_src(am, sel)
        ws = []                        # tap 0's w byte per lane (every opcode)
        xk, pk = [], []                # per lane: every tap (DWCONV / POOL)

        def e1b(v, name):
            """(vector_exec_stages = 4) v registered as E1 hands its command to E1b"""
            return _reg(m, v.shape(), v, name, exec_take) if ops else v
        # (4 stages, a DSP or simulation product: the operand and product registers are the
        # multiplier's own, hw.systolic.registered_mul with the stages' enables; on ECP5 the
        # MULT18X18D's input and output registers, so no fabric route is in front of or
        # behind its multiply)
        dsp_regs = ops and not in_logic(platform, Const(0, signed(8)), Const(0, signed(8)))
        for j in range(L):
            xl_, pl_k = [], []
            for k in range(TT):
                xr = av_xs[k].word_select(x_idx[j], 8).as_signed()
                x1 = _comb(m, Mux(x_frc[k][j], x_fv[k], xr), f"x{j}_{k}", signed(8))
                w1 = wtap[k][8 * j:8 * j + 8].as_signed()
                xj = e1b(x1, f"e1b_x{j}_{k}")      # (POOL's operand)
                xl_.append(xj)
                if dsp_regs:
                    pl_k.append(registered_mul(m, platform, x1, w1, f"e1c_p{j}_{k}",
                                               en_in=exec_take, en_out=o_take))
                else:
                    pl_k.append(_comb(m, xj * e1b(w1, f"e1b_w{j}_{k}"), f"p{j}_{k}",
                                      signed(16)))
            wj = Mux(am.bc, av_w[:8], av_w[8 * j:8 * j + 8]).as_signed()
            ws.append(wj)
            xk.append(xl_)
            pk.append(pl_k)
        if ops:                        # from here on: E1b's command
            am = stages[0].meta
        # POOL: each lane's unmasked taps (tok), their max (a masked tap is -128, the max's
        # identity) and their sum, reduced here, so the accumulate compares / adds one value
        tok = [_comb(m, ~am.tpad[k] & ~am.zero & (am.nt > k), f"tok{k}") for k in range(TT)]
        pmax, psum = [], []
        for j in range(L):
            cur = None
            for k in range(TT):
                xm = _comb(m, Mux(tok[k], xk[j][k], -128), f"pm{j}_x{k}", signed(8))
                cur = xm if cur is None else _comb(m, Mux(xm > cur, xm, cur), f"pm{j}_{k}",
                                                   signed(8))
            pmax.append(cur)
            psum.append(_comb(m, sum(Mux(tok[k], xk[j][k], 0) for k in range(TT)), f"ps{j}",
                              signed(8 + TT.bit_length())))
        if two:                        # E1 -> E2: the products, POOL's max and sum, registered
            def e2reg(v, name):
                return _reg(m, v.shape(), v, name, o_take)
            rn = "e1c" if ops else "e2"    # (the stage the registers belong to)
            pmax = [e2reg(v, f"{rn}_pmax{j}") for j, v in enumerate(pmax)]
            psum = [e2reg(v, f"{rn}_psum{j}") for j, v in enumerate(psum)]
            if not dsp_regs:
                pk = [[e2reg(pk[j][k], f"{rn}_p{j}_{k}") for k in range(TT)] for j in range(L)]
            ws = [Mux(em.bc, e_w[:8], e_w[8 * j:8 * j + 8]).as_signed() for j in range(L)]

        def addends(am, sfx):
            """Per lane the value the accumulate adds (VMATMUL: the dot product of the lane's
            weight row, DWCONV: the tap products' sum, POOL: the taps' sum) and whether the
            accumulator changes (a VMATMUL lane outside the chunk's rows does not), from the
            products and sums of ``am``'s stage"""
            # VMATMUL: dot product k = weight row k (x vector k) . input chunk (w vector)
            # (one carry chain after carry-save steps, hw.systolic.csa_sum, wide enough for L
            # int16 products: ``sum`` made L - 1 adders in a row, die run U's ``e2_add``,
            # 12.8 ns, issue #13)
            dw_ = 17 + (L - 1).bit_length()
            dots = [_comb(m, csa_sum([pk[j][k] for j in range(L)], dw_).as_signed(),
                          f"dot{k}{sfx}", signed(32)) for k in range(TT)]
            pon = [_comb(m, ~am.zero & (am.nt > k), f"pon{k}{sfx}") for k in range(TT)]
            add, upd = [], []
            for j in range(L):
                vmk = [_comb(m, (am.jj + k == j) & (am.nt > k), f"vm{j}_{k}{sfx}")
                       for k in range(min(TT, j + 1))]
                vm_add = Const(0, signed(32))
                for k in range(min(TT, j + 1)):          # (the last matching row wins)
                    vm_add = Mux(vmk[k], Mux(am.zero, 0, dots[k]), vm_add)
                add.append(_comb(m, Mux(is_vm, vm_add, Mux(is_pool, psum[j], sum(
                    Mux(pon[k], pk[j][k], 0) for k in range(TT)))), f"add{j}{sfx}", signed(32)))
                upd.append(_comb(m, ~is_vm | Cat(*vmk).any(), f"upd{j}{sfx}"))
            return add, upd

        if ops:
            # E1c: the addends from the registered products, registered into E2 (with POOL's
            # max); no sum is wider than 16 + log2(max(L, TT)) + 1 bits. With 5 stages E1c
            # only registers the products (and POOL's max and sum) in the fabric as they come
            # out of the multipliers' own registers, and E1d forms the addends from those:
            # the route from a DSP site and the addends' carry-save sum and select are in
            # different cycles (die run AA: the DSPs -> ``e2_add*``, 14.3 ns, issue #13)
            ast, aw = stages[1], 17 + max(L, TT).bit_length()
            if self.config.vector_exec_stages >= 5:
                def e1d(v, name):
                    return _reg(m, v.shape(), v, name, ast.take)
                pk = [[e1d(pk[j][k], f"e1d_p{j}_{k}") for k in range(TT)] for j in range(L)]
                psum = [e1d(v, f"e1d_psum{j}") for j, v in enumerate(psum)]
                pmax = [e1d(v, f"e1d_pmax{j}") for j, v in enumerate(pmax)]
                ast = stages[2]
            add, upd = addends(ast.meta, "_c")
            add = [_reg(m, signed(aw), v, f"e2_add{j}", ast.take) for j, v in enumerate(add)]
            upd = [_reg(m, 1, v, f"e2_upd{j}", ast.take) for j, v in enumerate(upd)]
            pmax = [_reg(m, signed(8), v, f"e2_pmax{j}", ast.take) for j, v in enumerate(pmax)]
        am = em                        # from here on: E2's command
        if not ops:
            add, upd = addends(am, "")
        mac = _comb(m, e_take & (am.kind == K_MAC), "mac")
        acc_n = [Signal(signed(32), name=f"accn{j}") for j in range(L)]
        mx_n = [Signal(signed(8), name=f"mxn{j}") for j in range(L)]
        cnt_n = Signal(17)
        if two:
            tok = [_comb(m, ~am.tpad[k] & ~am.zero & (am.nt > k), f"e2_tok{k}")
                   for k in range(TT)]
        m.d.comb += cnt_n.eq(Mux(am.first, 0, cnt) + sum(tok))
        for j in range(L):
            base = _comb(m, Mux(am.first, 0, acc[j]), f"base{j}", signed(32))
            m.d.comb += acc_n[j].eq(Mux(upd[j], base + add[j], acc[j]))
            mcur = _comb(m, Mux(am.first, -128, mx[j]), f"mx{j}_i", signed(8))
            m.d.comb += mx_n[j].eq(Mux(pmax[j] > mcur, pmax[j], mcur))
        with m.If(mac):
            m.d.sync += [a.eq(b) for a, b in zip(acc, acc_n, strict=True)]
            m.d.sync += [a.eq(b) for a, b in zip(mx, mx_n, strict=True)]
            m.d.sync += cnt.eq(cnt_n)
        m.d.comb += emit_b.eq(mac & am.emit)
        with m.If(is_dw | is_vm):
            # (taps x lanes in logic: a ``*`` put this 2 x 3-bit product on a DSP, issue #13)
            m.d.comb += self.macs.eq(Mux(mac & ~am.zero,
                                         small_mul(am.nt, Mux(is_vm, am.kn, am.n)), 0))

        # P0 beat
        # ELTWISE's parameter record (row 0): E2 reads the offsets and the left shift from
        # copies of row 0's words 0, 3 and 6 taken as they are written (the memory's contents,
        # without its read -- and the row select before it -- in front of E2's adders: ECP5
        # timing, issue #13); POST reads its multipliers, shifts, offset and clamp from a
        # registered copy of the read (row 0 is written only before the instruction's first
        # beat, which reaches POST cycles later, so the copy holds the same record)
        Pq = Signal(P.shape(), reset_less=True)
        m.d.sync += Pq.eq(P)

        def ew(i, src=P):
            return src[32 * i:32 * i + 32].as_signed()

        # The copies load while the K_PARAM command writing the word is in E2, taken or not
        # (a stalled one writes the same word again a cycle later; no beat that reads row 0 is
        # in flight then: an instruction's parameter commands precede its beats, and a new
        # instruction waits for idle), so their enables are E2's registers, not E2's take and
        # POST's room behind it (ECP5 timing, issue #13: e2_meta -> row0_w*, 12.3 ns on the
        # unit alone)
        e_v = e2.v if two else av
        row0_at = [_comb(m, e_v & (em.kind == K_PARAM) & (em.idx == i) & (prow == 0),
                         f"row0_at{i}") for i in range(PC)]

        def row0_word(i):
            w = Signal(signed(32), name=f"row0_w{i}", reset_less=True)
            with m.If(row0_at[32 * i // (8 * L) // TT]):
                m.d.sync += w.eq(ew(i, pmw.data))
            return w

        a_off, b_off, left = row0_word(0), row0_word(3), row0_word(6)
        # ELTWISE ADD's inputs: MultiplyByQuantizedMultiplier((x << left)[:32], mult, shift)
        # is _mbqm(x) with (left + shift's left amount) as one left amount:
        # ((x << a)[:32] << b)[:32] == (x << (a + b))[:32]. So POST's PL lanes shift, not EXEC's
        # L (ECP5 area, issue #13). Registered from row 0's words 2, 5 and 6 as they are written
        # (valid when Pq is, the cycle the first beat can enter POST).
        elt_lr = [[_reg(m, 6, left[:5] + l_, f"{n}_lsum"), _reg(m, 5, r_, f"{n}_rt")]
                  for n, (l_, r_) in (("a", _shift_lr(row0_word(2))),
                                      ("b", _shift_lr(row0_word(5))))]
        a_mult, b_mult = ew(1, Pq), ew(4, Pq)
        o_mult, o_shift, o_off, o_lo, o_hi = (ew(i, Pq) for i in range(7, 12))
        p0v = Signal()
        u1 = [data_reg(signed(32), name=f"u1_{j}") for j in range(L)]
        u2 = [data_reg(signed(32), name=f"u2_{j}") for j in range(L)]
        m3 = [data_reg(signed(32), name=f"m3_{j}") for j in range(L)]
        s3 = [data_reg(signed(32), name=f"s3_{j}") for j in range(L)]
        p0cnt = data_reg(17)
        p0a = data_reg(24)
        p0n = data_reg(NB)
        if late0:
            # the cycle after the emit: the accumulators, max and count hold its sums, Pq its
            # parameter row; E2's x vector 0, w bytes, address and lanes in copies of the cycle
            p0_load = Signal(name="emit_d")     # (reset: no beat after a reset)
            m.d.sync += p0_load.eq(emit_b)
            p0_acc, p0_mx, p0_cnt, p0_P = acc, mx, cnt, Pq
            p0_x0 = _reg(m, 8 * L, e_xs[0], "e2_x0_d")
            p0_ws = [_reg(m, signed(8), w, f"e2_ws{j}_d") for j, w in enumerate(ws)]
            p0_oa, p0_n = _reg(m, 24, am.oa, "e2_oa_d"), _reg(m, NB, am.n, "e2_n_d")
        else:
            p0_load = emit_b
            p0_acc, p0_mx, p0_cnt, p0_P, p0_x0, p0_ws, p0_oa, p0_n = (
                acc_n, mx_n, cnt_n, P, e_xs[0], ws, am.oa, am.n)
        m.d.sync += p0v.eq(p0_load)
        # (late0) each lane's load enable and the opcode's selects are its own copies
        # (:func:`hw.sram.copies`, from the next value: the same value in every cycle; the
        # opcode's a cycle old, which is the same while a beat is in flight: a new instruction
        # waits for idle), so no one net enables and selects P0's 128 L flip-flops (die run
        # AA: ``u1_*`` / ``u2_*`` / ``m3_*`` / ``s3_*``, 32 endpoints each at 10.4-12.3 ns)
        op_now = Cat(is_dw | is_vm, is_pool, is_elt, pl_.mode == PoolMode.MAX)
        if late0:
            ld_c = copies(m, platform, emit_b, L, "p0_ld_c")
            op_c = copies(m, platform, op_now, L, "p0_op_c")
        else:
            ld_c, op_c = [p0_load] * L, [op_now] * L
        with m.If(p0_load):
            m.d.sync += [p0cnt.eq(p0_cnt), p0a.eq(p0_oa), p0n.eq(p0_n)]
        for j in range(L):
            with m.If(ld_c[j]):
                bias = p0_P[96 * j:96 * j + 32].as_signed()
                mult = p0_P[96 * j + 32:96 * j + 64].as_signed()
                shift = p0_P[96 * j + 64:96 * j + 96].as_signed()
                a8 = p0_x0[8 * j:8 * j + 8].as_signed()
                ea = (a8 + a_off)[:18].as_signed()
                eb = (p0_ws[j] + b_off)[:18].as_signed()
                j_dwvm, j_pool, j_elt, j_max = op_c[j]
                with m.If(j_dwvm):   # + bias in POST (u2 is free for DWCONV / VMATMUL)
                    m.d.sync += [u1[j].eq(p0_acc[j]), u2[j].eq(bias), m3[j].eq(mult),
                                 s3[j].eq(shift)]
                with m.Elif(j_pool):
                    m.d.sync += u1[j].eq(Mux(j_max, p0_mx[j], p0_acc[j]))
                with m.Elif(j_elt):   # ADD: the left shift in POST's r1 / r2; MUL: the
                    m.d.sync += [u1[j].eq(ea), u2[j].eq(eb)]    # product in POST (PL lanes)
                with m.Else():   # LUT: the table is read in POST (PL lanes)
                    m.d.sync += u1[j].eq(p0_x0[8 * j:8 * j + 8] ^ 0x80)

        # ------------------------------------------------------------------ POST
        # The beat in P0 enters POST in H phases of PL lanes, one per cycle (lanes
        # [h*PL, (h+1)*PL) in phase h); P0 holds it until its last phase has left.
        if H > 1:
            ph = Signal(range(H))       # phase of the beat in P0
            pact = Signal()             # P0 holds a beat (phase ph enters POST this cycle)
            plast = _comb(m, pact & (ph == H - 1), "plast")
            if late0:
                # E2 emits into P0 as it will be a cycle later: free unless a beat loads
                # now, or holds phases after the next cycle's
                m.d.comb += p0free.eq(~p0_load & (~pact | (ph >= H - 2)))
            else:
                m.d.comb += p0free.eq(~pact | (ph == H - 1))
            # (a load starts a beat; the last phase ends it)
            pact_n = _comb(m, p0_load | (pact & ~plast), "pact_n")
            m.d.sync += pact.eq(pact_n)
            with m.If(p0_load | plast):
                m.d.sync += ph.eq(0)
            with m.Elif(pact):
                m.d.sync += ph.eq(ph + 1)

            # P0's lanes shift down by PL in each phase after the first, so phase h's lanes
            # are always lanes [0, PL): POST's operands are flip-flops, not an H-input select
            # by ``ph`` in front of the left shifters, the multipliers' input registers and
            # AVG's sums (die run U: ``l0a_hh2_dsp`` 13.9 ns, ``l0a_r5``, ``l0abs1``, issue
            # #13). A load takes priority (the beat's last phase leaves in that cycle).
            if late0:   # (the shift's enable per lane, from its next value as above)
                sh_c = copies(m, platform, ~emit_b & pact_n, L - PL, "p0_sh_c")
            else:
                sh_c = [~p0_load & pact] * (L - PL)
            for i in range(L - PL):
                with m.If(sh_c[i]):
                    m.d.sync += [r[i].eq(r[i + PL]) for r in (u1, u2, m3, s3)]
            u1s, u2s, m3s, s3s = (r[:PL] for r in (u1, u2, m3, s3))
        else:
            pact, ph, plast = p0v, Const(0, 1), p0v
            u1s, u2s, m3s, s3s = u1, u2, m3, s3
        elt_add = _comb(m, is_elt & (el.mode == EltMode.ADD), "elt_add")
        dw_vm = _comb(m, is_dw | is_vm, "dw_vm")
        elt_mul = _comb(m, is_elt & (el.mode != EltMode.ADD), "elt_mul")
        avg = _comb(m, is_pool & (pl_.mode == PoolMode.AVG), "avg")
        pass_ = _comb(m, (is_pool & (pl_.mode == PoolMode.MAX)) | is_lut, "pass")
        off = _comb(m, Mux(is_elt, o_off, Mux(is_dw, dw.out_zp, Mux(is_vm, vm.out_zp, 0))),
                    "off")
        lo = _comb(m, Mux(is_elt, o_lo, Mux(is_dw, dw.act_min, Mux(is_vm, vm.act_min,
                                                                     Mux(is_pool, pl_.act_min,
                                                                         -128)))), "lo")
        hi = _comb(m, Mux(is_elt, o_hi, Mux(is_dw, dw.act_max, Mux(is_vm, vm.act_max,
                                                                    Mux(is_pool, pl_.act_max,
                                                                        127)))), "hi")
        # the output stage's selects and operands as registered copies: they hold the
        # instruction's fields (constant while POST holds a beat: a new instruction waits for
        # idle, and ELTWISE's Pq is written before its first beat, which reaches this stage
        # 11 cycles later), so a copy a cycle old is the same value, and the stage's adder and
        # clamp start from registers beside them, not from the instruction registers' muxes
        # across the unit (ECP5 timing, issue #13)
        avg_y, lut_y, alt_y = (_reg(m, 1, v, n) for v, n in ((avg, "avg_y"), (is_lut, "lut_y"),
                                                              (avg | is_lut | pass_, "alt_y")))
        off_y, lo_y, hi_y = (_reg(m, v.shape(), v, n + "_y") for v, n in ((off, "off"),
                                                                        (lo, "lo"), (hi, "hi")))
        # r3's shift: ELTWISE's as registered amounts, and is_elt, local copies like the above
        # (Pq is written before ELTWISE's first beat, which reaches r3's input MB + 1 cycles on)
        elt_y = _reg(m, 1, is_elt, "elt_y")
        lr_o = [_reg(m, 5, v, f"o_{d}_y") for d, v in zip("lr", _shift_lr(o_shift), strict=True)]
        ydata = []
        cntd = p0cnt
        # stages: r1, r2 at MB; v5 at MB + 1; r3 at 2 MB + 1, delayed to 11; y at 12
        MB = MBQM_LATENCY
        assert 2 * MB + 1 <= POST_LATENCY - 1
        for j in range(PL):
            nm = f"l{j}"
            r1 = _mbqm(m, u1s[j], a_mult, None, nm + "a", lr=elt_lr[0], platform=platform)
            r2 = _mbqm(m, u2s[j], b_mult, None, nm + "b", lr=elt_lr[1], platform=platform)
            # DWCONV / VMATMUL: the accumulator + bias, in POST's first cycle (off EXEC's path)
            u1b = _reg(m, signed(32), Mux(dw_vm, (u1s[j] + u2s[j])[:32], u1s[j]), nm + "u1b")
            u1dm = _delay(m, u1b, MB - 1, nm + "u1")
            # ELTWISE MUL: (a + a_off) * (b + b_off), 18 x 18 bits, taken at stage 1, the
            # product two cycles later (registered operands and product: one MULT18X18D)
            pm2 = registered_mul(m, platform, u1s[j][:18].as_signed(), u2s[j][:18].as_signed(),
                                 nm + "pm2")
            pmdm = _delay(m, pm2[:32].as_signed(), MB - 2, nm + "pm")
            m3dv = _delay(m, m3s[j], MB + 1, nm + "m3")
            v5 = _reg(m, signed(32), Mux(elt_add, (r1 + r2)[:32], Mux(elt_mul, pmdm, u1dm)),
                      nm + "v5")
            # its shift as amounts: a lane's decoded as it enters POST and delayed, ELTWISE's
            # from a registered copy (lr_o), selected by a local copy of is_elt: no compares
            # and no is_elt from across the unit in front of the left shifter (ECP5 timing)
            s3lr = [_delay(m, v, MB + 1, f"{nm}s3{d}")
                    for d, v in zip("lr", _shift_lr(s3s[j]), strict=True)]
            lr3 = [Mux(elt_y, o, c) for o, c in zip(lr_o, s3lr, strict=True)]
            # (the multiplier selected by the local copy too: is_elt itself started the
            # unit's ECP5 critical path, is_elt -> the multiplier's INT32_MIN compare -> ovf1)
            r3 = _mbqm(m, v5, Mux(elt_y, o_mult, m3dv), None, nm + "c", lr=lr3,
                       platform=platform)
            r3d = _delay(m, r3, POST_LATENCY - 1 - (2 * MB + 1), nm + "r3")  # stage 11
            # AVG: num = sum +- cnt // 2, |num| // cnt (9 quotient bits), sign
            # (|num| = s + half for s > 0, else half - s: both sums from s in parallel, not
            # a negation after the rounding sum -- two carry chains in a row, ECP5 timing)
            half = cntd >> 1
            s = u1s[j]
            pos = _comb(m, s > 0, nm + "pos")
            neg1 = _reg(m, 1, ~pos & (s - half < 0), nm + "neg1")
            a = _reg(m, unsigned(27), Mux(pos, s + half, half - s)[:27], nm + "abs1")
            d = _reg(m, unsigned(17), cntd, nm + "d1")
            q = Const(0, 9)
            neg = neg1
            for b in range(8, -1, -1):
                tr = a - (d << b)
                ok = a >= (d << b)
                q_new = q | Mux(ok, 1 << b, 0)
                a = _reg(m, unsigned(27), Mux(ok, tr, a)[:27], f"{nm}da{b}")
                q = _reg(m, unsigned(9), q_new, f"{nm}dq{b}")
                d = _reg(m, unsigned(17), d, f"{nm}dd{b}")
                neg = _reg(m, 1, neg, f"{nm}dn{b}")
            # a, q at stage 10
            u1d10 = _delay(m, u1s[j], 10, nm + "u1p")
            # LUT: the lane's byte registered at stage 1, its table entry read at stage 2 (the
            # table's read address starts from a register, not from POST's phase select: ECP5
            # timing, issue #13)
            li1 = _reg(m, unsigned(8), u1s[j][:8], nm + "li1")
            tmr = tmem.read_port(domain="comb")
            if (TT * L) & (TT * L - 1):     # table row, and the byte in it
                row, col = li1 // (TT * L), li1 % (TT * L)
            else:
                row, col = li1 >> (TT * L).bit_length() - 1, li1[:(TT * L).bit_length() - 1]
            m.d.comb += tmr.addr.eq(row)
            lt2 = _reg(m, signed(8), tmr.data.word_select(col, 8), nm + "lt2")
            ltd10 = _delay(m, lt2, 8, nm + "lt")
            # the results other than r3 (AVG's quotient, the LUT entry, the pass-through)
            # selected at stage 10 into one register, so the output stage's adder sees a 2:1
            # select (ECP5 timing)
            alt11 = _reg(m, signed(32), Mux(avg_y, Mux(neg, -q, q), Mux(lut_y, ltd10, u1d10)),
                         nm + "alt11")
            val = Mux(alt_y, alt11, r3d)
            y = _comb(m, (val + off_y)[:32].as_signed(), nm + "y")  # int32 add, as TFLM
            yc = Mux(y < lo_y, lo_y, Mux(y > hi_y, hi_y, y))
            ydata.append(_reg(m, signed(8), yc[:8], nm + "y12"))
        # delays of the beat's address / lanes / valid (12 stages): the last phase's result
        # completes the output vector (the earlier phases' wait in ybuf)
        oav = _delay(m, plast, POST_LATENCY, "pv")
        oaa = _delay(m, p0a, POST_LATENCY, "pa")
        oan = _delay(m, p0n, POST_LATENCY, "pn")
        yout = []
        if H > 1:
            opv = _delay(m, pact, POST_LATENCY, "pav")
            oph = _delay(m, ph, POST_LATENCY, "pph")
            for h in range(H - 1):
                yb = [Signal(signed(8), name=f"ybuf{h}_{i}") for i in range(PL)]
                with m.If(opv & (oph == h)):
                    m.d.sync += [a.eq(b) for a, b in zip(yb, ydata, strict=True)]
                yout += yb
        yout += ydata

        # ------------------------------------------------------------------ out FIFO + WR
        outq = fifo.SyncFIFO(width=24 + NB + 8 * L, depth=OUT_DEPTH)
        m.submodules.outq = outq
        m.d.comb += [outq.w_en.eq(oav), outq.w_data.eq(Cat(oaa, oan, *yout))]
        wpop = Signal()
        with m.If(emit_b & ~wpop):
            m.d.sync += [post_cnt.eq(post_cnt + 1), post_zero.eq(0),
                         post_room.eq(post_cnt + 1 < OUT_DEPTH)]
        with m.Elif(~emit_b & wpop):
            m.d.sync += [post_cnt.eq(post_cnt - 1), post_zero.eq(post_cnt == 1),
                         post_room.eq(1)]
        h_addr = outq.r_data[:24]
        h_n = outq.r_data[24:24 + NB]
        h_data = outq.r_data[24 + NB:]
        woffs = h_addr[:LB] if LB else Const(0, 1)
        wline = h_addr[LB:LB + LA]
        lane_mask = Cat(*[h_n > j for j in range(L)])
        # byte i of the beat goes to byte woffs + i of the two lines: with L dividing W (lines
        # of whole vectors), line byte p of either line is byte (p - woffs) mod L, so both
        # lines' data is the beat rotated by woffs mod L bytes and repeated (the mask picks
        # the bytes written): a rotate of L bytes, not a shift into 2W (ECP5 area, issue #13)
        if LB and W % L == 0:
            rot = woffs[:LL] if LL else Const(0, 1)
            rdata = _comb(m, (Cat(h_data, h_data) << Cat(Const(0, 3), rot))[8 * L:16 * L],
                          "rdata", 8 * L)
            ldata = [rdata.replicate(W // L)] * 2
        else:
            sdata = _comb(m, h_data << Cat(Const(0, 3), woffs), "sdata", 16 * W)
            ldata = [sdata[:8 * W], sdata[8 * W:]]
        smask = _comb(m, lane_mask << woffs, "smask", 2 * W)
        second = Signal()
        hi_need = smask[W:].any()
        m.d.comb += [
            self.wr.req.valid.eq(outq.r_rdy & (h_n != 0)),
            self.wr.req.payload.addr.eq(Mux(second, wline + 1, wline)),
            self.wr.req.payload.data.eq(Mux(second, ldata[1], ldata[0])),
            self.wr.req.payload.mask.eq(Mux(second, smask[W:], smask[:W])),
        ]
        wfire = self.wr.req.valid & self.wr.req.ready
        with m.If(outq.r_rdy & (h_n == 0)):
            m.d.comb += wpop.eq(1)
        with m.Elif(wfire):
            with m.If(~second & hi_need):
                m.d.sync += second.eq(1)
            with m.Else():
                m.d.sync += second.eq(0)
                m.d.comb += wpop.eq(1)
        m.d.comb += outq.r_en.eq(wpop)

        # ------------------------------------------------------------------ status
        # (registers and SEQ's state decode, no compare of a count: ``cmd.ready`` is ``idle``,
        # and the NPU's issue decision, which enables its queue's head register and ``ins``,
        # starts from it; issue #13)
        drained = _comb(m, ~queued & ~rq_v & ~mq_any & ~av & ~handoff_any
                        & ~Cat(*[st.v for st in stages]).any() & post_zero & out_zero,
                        "drained")
        if self.config.vector_req_stages == 2:
            # (FPGA clocks) ``idle`` from two flip-flops: SEQ was idle last cycle and accepted
            # nothing (so it emitted nothing and is idle now), and everything after it was
            # empty (only SEQ feeds it, so it still is). ``ins``'s 450 enables, the NPU's
            # issue and retire decisions start from it, not from a 15-input AND of the stages'
            # flags (die run T: vec.ins from cmd.ready, issue #13). The unit reports idle a
            # cycle after it drains: one more cycle per instruction (``req_latency``).
            seq_idle_q = Signal(init=1)
            drained_q = Signal(init=1)
            m.d.sync += [seq_idle_q.eq(~busy_seq & ~accept), drained_q.eq(drained)]
            m.d.comb += idle.eq(seq_idle_q & drained_q)
        else:
            m.d.comb += idle.eq(~busy_seq & drained)
        m.d.comb += [
            self.idle.eq(idle),
            self.cmd.ready.eq(idle),
            self.stall.eq((self.rd.req.valid & ~self.rd.req.ready)
                          | (self.wr.req.valid & ~self.wr.req.ready)
                          | (mv & remaining & ~respq.r_rdy)),
        ]
        with m.If(self.cmd.valid & self.cmd.ready & ~supported):
            m.d.sync += self.error.eq(1)
        return m


def top(config: Config) -> VectorUnit:
    """Factory (a standalone VectorUnit for synthesis and lint)."""
    return VectorUnit(config)
