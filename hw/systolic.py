"""Weight-stationary R x C int8 systolic array with double-buffered weights (SPEC section 6).

Dataflow. PE(r, c) holds the weight W[r, c] of the current tile (r along the reduction dimension K,
c along the output channels N). An activation vector ``a[R]`` enters skewed: element ``a[r]``
reaches row r ``r`` cycles after row 0 and then moves one PE to the right per cycle; partial sums
move one PE down per cycle, so column c's bottom PE emits ``sum_r a[r] * W[r, c]``; the outputs are
de-skewed into one C-wide beat.

Double buffering. Every PE has two weight registers (banks). ``w_in`` fills the bank not in use, one
row (C weights) per beat, rows 0..R-1 in order; meanwhile activations stream through the other bank.
A bank bit travels with each activation, so the switch to the next tile happens exactly on the first
activation after a beat with ``last`` set, without draining the array. A released bank becomes
writable about C cycles after its last activation entered (it has then left every PE of row r by
the time row r is rewritten; ``w_in.ready`` is a register and rows are written one cycle after they
are taken). A long GEMM therefore streams R*C MACs/cycle as long as each tile is used for
>= R + C + 1 activations.

Interfaces (all ``stream.Signature``):

- ``w_in``: payload ``ArrayLayout(signed(8), C)``, one weight row per beat. Ready when a bank is
  free.
- ``a_in``: payload ``{data: ArrayLayout(signed(8), R), last, tag}``. Ready while a loaded tile is
  current; ``last`` marks the tile's final activation. ``tag`` (``tag_bits`` wide, optional) is
  carried unchanged to the output.
- ``psum_out``: payload ``{data: ArrayLayout(signed(32), C), last, tag}``: ``a @ W`` for each
  accepted activation, in order, exactly :data:`SystolicArray.latency` cycles after it was accepted.
  **No back-pressure**: ``psum_out.ready`` is ignored; the consumer must take every beat (the GEMM
  engine reserves room by credits before it admits an activation).
"""

from __future__ import annotations

from amaranth.hdl import (
    Cat,
    ClockSignal,
    Const,
    Instance,
    Module,
    Mux,
    Shape,
    Signal,
    Value,
    signed,
    unsigned,
)
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config


def array_latency(config: Config) -> int:
    """Cycles from the array accepting an activation to its psum_out beat: R + C + 1, plus the
    input register and the registered products of a fast clock (``Config.fast_clock``)."""
    return config.array_rows + config.array_cols + 1 + (2 if config.fast_clock else 0)

__all__ = ["SystolicArray", "act_layout", "add3", "csa_sum", "in_logic", "logic_mul",
           "product_shape", "psum_layout", "psum_bits", "registered_mul", "small_mul"]


def _dsp_family(platform) -> str | None:
    return getattr(platform, "dsp_family", None)


def in_logic(platform, a, b, dsp: bool = True) -> bool:
    """Whether :func:`registered_mul` builds ``a * b`` in logic (:func:`logic_mul`): for synthesis
    (a platform with a ``dsp_family``), operands of at most 8 bits, with ``dsp`` False or on the
    iCE40 (whose few DSPs the requant needs)."""
    fam = _dsp_family(platform)
    small = max(len(Value.cast(a)), len(Value.cast(b))) <= 8
    return fam is not None and small and (not dsp or fam == "ice40")


def product_shape(a, b) -> Shape:
    """The exact shape of the product of operands of shapes ``a`` and ``b``: signed when either
    is, one bit wider for unsigned x signed (the unsigned operand gains a sign bit)."""
    a, b = Shape.cast(a), Shape.cast(b)
    width = a.width + b.width + (a.signed != b.signed)
    return signed(width) if (a.signed or b.signed) else unsigned(width)


def registered_mul(m: Module, platform, a, b, name: str, *, dsp: bool = True,
                   en_in=None, en_out=None) -> Signal:
    """``a * b`` with registered operands and product: valid two cycles after ``a``/``b``.
    ``en_in`` / ``en_out``: the enables of the operand and of the product registers (default:
    they load every cycle), for a multiplier inside a pipeline that stalls (on ECP5 the
    MULT18X18D's CE0 and CE1, both registers on CLK0, their setup timed by nextpnr); not with
    a product in logic (:func:`in_logic`).

    Operands are signed or unsigned values that fit an 18x18 signed multiplier. With a platform
    whose ``dsp_family`` is ``"ecp5"`` this is one MULT18X18D using its own input and output
    registers (no fabric routing between a flip-flop and the multiplier); otherwise fabric
    registers around ``*`` (Verilator, lint, yosys's own DSP inference). For synthesis (a platform
    with a ``dsp_family``), products of operands of at most 8 bits are logic (:func:`logic_mul`)
    when ``dsp`` is False (``Config.array_logic_rows``) and always on the iCE40, whose few DSPs
    the requant needs; simulation keeps ``*``.
    """
    a, b = Value.cast(a), Value.cast(b)
    shape = product_shape(a.shape(), b.shape())
    width = shape.width
    out = Signal(shape, name=name, reset_less=True)
    logic = in_logic(platform, a, b, dsp)
    if logic and (en_in is not None or en_out is not None):
        raise ValueError("registered_mul: enables need a DSP or a simulation product")
    en_in = Const(1, 1) if en_in is None else en_in
    en_out = Const(1, 1) if en_out is None else en_out
    if _dsp_family(platform) == "ecp5" and not logic:
        def to18(v):
            s = Signal(signed(18), name=f"{name}_{'ab'[len(ops)]}18")
            m.d.comb += s.eq(v if v.shape().signed else Cat(v, Const(0, 1)).as_signed())
            ops.append(s)
            return s
        ops: list = []
        a18, b18 = to18(a), to18(b)
        p = Signal(36, name=f"{name}_p")
        ports = {f"i_A{i}": a18[i] for i in range(18)}
        ports.update({f"i_B{i}": b18[i] for i in range(18)})
        ports.update({f"i_C{i}": Const(0, 1) for i in range(18)})
        ports.update({f"o_P{i}": p[i] for i in range(36)})
        for k in range(4):
            ports[f"i_CLK{k}"] = ClockSignal("sync") if k == 0 else Const(0, 1)
            ports[f"i_CE{k}"] = (en_in, en_out)[k] if k < 2 else Const(1, 1)
            ports[f"i_RST{k}"] = Const(0, 1)
        m.submodules[name + "_dsp"] = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE1",
            p_REG_PIPELINE_CLK="NONE", p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1),
            i_SOURCEB=Const(0, 1), **ports)
        m.d.comb += out.eq(p[:width])
    else:
        ra = Signal(a.shape(), name=f"{name}_a", reset_less=True)
        rb = Signal(b.shape(), name=f"{name}_b", reset_less=True)
        if logic:
            m.d.sync += [ra.eq(a), rb.eq(b)]
            m.d.comb += out.eq(logic_mul(m, ra, rb, name, stages=1))
        else:
            with m.If(en_in):
                m.d.sync += [ra.eq(a), rb.eq(b)]
            with m.If(en_out):
                m.d.sync += out.eq(ra * rb)
    return out


def small_mul(a, b):
    """a * b for a narrow unsigned ``a``: a shift-add tree in logic, combinational. yosys maps
    every ``*`` whose operands are both 2 bits or wider to a MULT18X18D on the ECP5 (the vector
    unit's 3 x 2-bit MAC count landed on a DSP across the die: the routed die's critical path,
    issue #13), so narrow products that need no DSP use this."""
    terms = [Mux(a[i], b << i, 0) for i in range(len(a))]
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _extend(v, width: int) -> Value:
    """``v`` as ``width`` bits: truncated, or extended by its sign (signed shapes) or zeros."""
    v = Value.cast(v)
    if len(v) >= width:
        return v[:width]
    fill = v[-1] if v.shape().signed else Const(0, 1)
    return Cat(v, fill.replicate(width - len(v)))


def csa_sum(values, width: int, cin=0) -> Value:
    """``(sum(values) + cin) mod 2**width`` with one carry chain: carry-save steps (3:2
    compressors, each bit's sum and carry of three operands: one LUT level each) reduce the
    operands to two, then one adder. A chain of ``+`` is one carry chain per operand in a row
    on the ECP5 (the vector unit's dot products and window addresses, issue #13). Operands
    are taken modulo 2**width (signed ones sign-extended); ``cin`` (one bit) rides in the
    first carry vector's free bit 0."""
    vs = [_extend(v, width) for v in values]
    has_cin = not (isinstance(cin, int) and cin == 0)
    low = Const(cin, 1) if isinstance(cin, int) else Value.cast(cin)[:1]
    if has_cin and len(vs) < 3:
        vs += [Const(0, width)] * (3 - len(vs))
    while len(vs) > 2:
        a, b, c = vs[:3]
        cy = (a & b) | (a & c) | (b & c)
        vs = vs[3:] + [a ^ b ^ c, Cat(low, cy[:width - 1])]
        low = Const(0, 1)
    return vs[0] if len(vs) == 1 else (vs[0] + vs[1])[:width]


def add3(a, b, c, width: int, cin=0, sub_b: bool = False) -> Value:
    """``(a + b + c + cin) mod 2**width`` (``sub_b``: ``a - b + c``) with one carry chain
    (:func:`csa_sum`: ``a + b + c`` is otherwise two adders in a row)."""
    if sub_b:                   # - b = ~b + 1
        assert isinstance(cin, int) and cin == 0, "add3: sub_b takes no carry-in"
        return csa_sum([a, ~_extend(b, width), c], width, 1)
    return csa_sum([a, b, c], width, cin)


def logic_mul(m: Module, a, b, name: str, stages: int = 1) -> Value:
    """``a * b`` (operands of at most 8 bits, signed or unsigned) in logic, for FPGAs whose DSP
    blocks are needed elsewhere. Partial product row i is b[i] * a (negated for a signed b's
    MSB). ``stages`` = 1: the rows are added one after another into a running sum only as wide
    as a plus two bits (after row i, bit i of the product is final and leaves the adder), so
    every adder is ~10 bits wide (a shift-and-add over full-width terms maps to about twice the
    LUTs); the product is registered once, valid one cycle after ``a``/``b``. ``stages`` = 2 (fast
    clocks): an adder tree, registered after its first level (pairs of rows) and at the end --
    two carry chains deep per stage instead of four (measured on ECP5: the 4-row ripple stage
    limited the GEMM to 98.6 MHz); valid two cycles after ``a``/``b``. Returns the product."""
    a, b = Value.cast(a), Value.cast(b)
    n, na = len(b), len(a)
    sa, sb = a.shape().signed, b.shape().signed
    width = product_shape(a.shape(), b.shape()).width
    ax = a.as_signed() if sa else Cat(a, Const(0, 1)).as_signed()

    def row(i):
        r = Mux(b[i], ax, 0)
        return -r if (sb and i == n - 1) else r

    if stages >= 2:
        pairs = []
        for k in range(0, n, 2):
            v = row(k)
            if k + 1 < n:
                v = v + (row(k + 1) << 1)
            r = Signal(signed(na + 4), name=f"{name}_q{k}", reset_less=True)
            m.d.sync += r.eq(v)
            pairs.append((k, r))
        while len(pairs) > 1:       # (shift, value) pairs summed as a balanced tree
            nxt = []
            for j in range(0, len(pairs), 2):
                if j + 1 < len(pairs):
                    (k0, v0), (k1, v1) = pairs[j], pairs[j + 1]
                    nxt.append((k0, v0 + (v1 << (k1 - k0))))
                else:
                    nxt.append(pairs[j])
            pairs = nxt
        out = Signal(signed(width + 1), name=f"{name}_p", reset_less=True)
        m.d.sync += out.eq(pairs[0][1] << pairs[0][0])
        prod = out[:width]
        return prod.as_signed() if (sa or sb) else prod
    aw = signed(na + 2)
    low = []
    acc = None
    for i in range(n):
        r = row(i)
        if acc is None:
            acc = Signal(aw, name=f"{name}_s0")
            m.d.comb += acc.eq(r)
        else:
            low.append(acc[0])
            nxt = Signal(aw, name=f"{name}_s{i}")
            m.d.comb += nxt.eq((acc >> 1) + r)
            acc = nxt
    out = Signal(n - 1 + na + 2, name=f"{name}_p", reset_less=True)
    m.d.sync += out.eq(Cat(*low, acc))
    prod = out[:width]
    return prod.as_signed() if (sa or sb) else prod


def psum_bits(rows: int) -> int:
    """Width of the in-array partial sums: |sum of R int8*int8 products| <= R * 2**14."""
    return 16 + (rows - 1).bit_length()


def act_layout(config: Config, tag_bits: int = 0) -> data.StructLayout:
    fields = {"data": data.ArrayLayout(signed(8), config.array_rows), "last": 1}
    if tag_bits:
        fields["tag"] = tag_bits
    return data.StructLayout(fields)


def psum_layout(config: Config, tag_bits: int = 0) -> data.StructLayout:
    fields = {"data": data.ArrayLayout(signed(32), config.array_cols), "last": 1}
    if tag_bits:
        fields["tag"] = tag_bits
    return data.StructLayout(fields)


class SystolicArray(wiring.Component):
    """R x C weight-stationary int8 MAC array (see module docstring for the contract)."""

    def __init__(self, config: Config, tag_bits: int = 0):
        self.config = config
        self.rows, self.cols = config.array_rows, config.array_cols
        self.tag_bits = tag_bits
        #: Fast clocks (>= 60 MHz): an input register in front of the skew, each PE's weight
        #: selected into a register one cycle ahead of its DSP, and each product registered
        #: in fabric (the DSP's clock-to-out would otherwise start the partial-sum adder).
        self.fast = config.fast_clock
        #: Cycles from accepting an activation to its psum_out beat.
        self.latency = array_latency(config)
        super().__init__({
            "w_in": In(stream.Signature(data.ArrayLayout(signed(8), self.cols))),
            "a_in": In(stream.Signature(act_layout(config, tag_bits))),
            "psum_out": Out(stream.Signature(psum_layout(config, tag_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        PW = psum_bits(R)

        # ---- bank control ------------------------------------------------------------------------
        # ``w_in.ready`` is a register (conservative: it rises one cycle after the bank becomes
        # free and drops for one cycle after each tile's last row), and a taken weight row is
        # written one cycle later from registers (one-hot row enables): the wide clock-enable
        # nets start at flip-flops. ``loaded`` is set when the last row is written.
        loaded = Signal(2)
        holdoff = [Signal(range(max(C, 2)), name=f"holdoff{b}") for b in range(2)]
        wb = Signal()           # bank being written by w_in
        rb = Signal()           # bank read by incoming activations
        wrow = Signal(range(max(R, 2)))
        w_ready = Signal()
        w_take = self.w_in.valid & w_ready
        a_take = self.a_in.valid & self.a_in.ready
        wlast = w_take & (wrow == R - 1)
        m.d.comb += [
            self.w_in.ready.eq(w_ready),
            self.a_in.ready.eq(loaded.bit_select(rb, 1)),
        ]
        m.d.sync += w_ready.eq(~wlast & ~loaded.bit_select(wb, 1)
                               & (Mux(wb, holdoff[1], holdoff[0]) == 0))
        wen = [[Signal(name=f"wen{b}_r{r}") for r in range(R)] for b in range(2)]
        wdata = Signal(data.ArrayLayout(signed(8), C), reset_less=True)
        m.d.sync += wdata.eq(self.w_in.p)
        for b in range(2):
            for r in range(R):
                m.d.sync += wen[b][r].eq(w_take & (wb == b) & (wrow == r))
        for b in range(2):
            release = a_take & self.a_in.p.last & (rb == b)
            with m.If(release):
                m.d.sync += holdoff[b].eq(C - 1)
            with m.Elif(holdoff[b] != 0):
                m.d.sync += holdoff[b].eq(holdoff[b] - 1)
            with m.If(release):
                m.d.sync += loaded[b].eq(0)
            with m.Elif(wen[b][R - 1]):
                m.d.sync += loaded[b].eq(1)
        with m.If(w_take):
            with m.If(wrow == R - 1):
                m.d.sync += [wrow.eq(0), wb.eq(~wb)]
            with m.Else():
                m.d.sync += wrow.eq(wrow + 1)
        with m.If(a_take & self.a_in.p.last):
            m.d.sync += rb.eq(~rb)

        # ---- weight banks
        wreg = [[[Signal(signed(8), name=f"w{b}_r{r}_c{c}", reset_less=True) for c in range(C)]
                 for r in range(R)]
                for b in range(2)]
        for b in range(2):
            for r in range(R):
                with m.If(wen[b][r]):
                    m.d.sync += [wreg[b][r][c].eq(wdata[c]) for c in range(C)]

        # ---- input skew: row r delayed r cycles (fast: r + 1). ``bk[k]`` is the bank bit
        # delayed k cycles.
        entry = 1 if self.fast else 0
        bk = [rb]
        for k in range(R - 1 + entry):
            b2 = Signal(name=f"skew_b{k}", reset_less=True)
            m.d.sync += b2.eq(bk[-1])
            bk.append(b2)
        row_a = []
        for r in range(R):
            a = self.a_in.p.data[r]
            for k in range(r + entry):
                a2 = Signal(signed(8), name=f"skew_a_r{r}_{k}", reset_less=True)
                m.d.sync += a2.eq(a)
                a = a2
            row_a.append(a)

        # ---- PE grid -----------------------------------------------------------------------------
        s_prev = [None] * C
        for r in range(R):
            a_left, b_left, b_early = row_a[r], bk[r + entry], bk[r]
            for c in range(C):
                a_pe = Signal(signed(8), name=f"a_r{r}_c{c}", reset_less=True)
                b_pe = Signal(name=f"b_r{r}_c{c}", reset_less=True)
                if self.fast:
                    # The weight for the activation arriving next cycle, selected with the
                    # bank bit one cycle early (b_early): the DSP's B input comes straight
                    # from a flip-flop. (Weights of a new tile are written >= 1 cycle before
                    # they are selected, see the bank control.)
                    w_sel = Signal(signed(8), name=f"ws_r{r}_c{c}", reset_less=True)
                    m.d.sync += w_sel.eq(Mux(b_early, wreg[1][r][c], wreg[0][r][c]))
                else:
                    w_sel = Mux(b_left, wreg[1][r][c], wreg[0][r][c])
                # Operands registered in cycle +1 (with a_pe), product in cycle +2 (fast: and
                # in a fabric register in cycle +3).
                dsp = r < R - self.config.array_logic_rows
                if self.fast and in_logic(platform, a_left, w_sel, dsp):
                    # the product in logic, registered halfway and at the end: the same three
                    # cycles as the DSP's two registers and the fabric register below
                    pa = Signal(signed(8), name=f"pa_r{r}_c{c}", reset_less=True)
                    pb = Signal(signed(8), name=f"pb_r{r}_c{c}", reset_less=True)
                    m.d.sync += [pa.eq(a_left), pb.eq(w_sel)]
                    prod = logic_mul(m, pa, pb, f"p_r{r}_c{c}", stages=2)
                elif self.fast:
                    prod = registered_mul(m, platform, a_left, w_sel, f"p_r{r}_c{c}")
                    prod_f = Signal(prod.shape(), name=f"pf_r{r}_c{c}", reset_less=True)
                    m.d.sync += prod_f.eq(prod)
                    prod = prod_f
                else:
                    prod = registered_mul(m, platform, a_left, w_sel, f"p_r{r}_c{c}",
                                          dsp=dsp)
                s = Signal(signed(PW), name=f"s_r{r}_c{c}", reset_less=True)
                m.d.sync += [
                    a_pe.eq(a_left),
                    b_pe.eq(b_left),
                    s.eq(prod if r == 0 else s_prev[c] + prod),
                ]
                s_prev[c] = s
                a_left, b_early, b_left = a_pe, b_left, b_pe

        # ---- output de-skew: column c delayed C-1-c cycles
        for c in range(C):
            s = s_prev[c]
            for k in range(C - 1 - c):
                s2 = Signal(signed(PW), name=f"deskew_c{c}_{k}", reset_less=True)
                m.d.sync += s2.eq(s)
                s = s2
            m.d.comb += self.psum_out.p.data[c].eq(s)

        # ---- valid / last / tag delay line
        v, l = a_take, self.a_in.p.last
        t = self.a_in.p.tag if self.tag_bits else None
        for k in range(self.latency):
            v2, l2 = Signal(name=f"dv{k}"), Signal(name=f"dl{k}", reset_less=True)
            m.d.sync += [v2.eq(v), l2.eq(l)]
            v, l = v2, l2
            if t is not None:
                t2 = Signal(self.tag_bits, name=f"dt{k}", reset_less=True)
                m.d.sync += t2.eq(t)
                t = t2
        m.d.comb += [self.psum_out.valid.eq(v), self.psum_out.p.last.eq(l)]
        if t is not None:
            m.d.comb += self.psum_out.p.tag.eq(t)
        return m
