"""Per-channel TFLite requantization pipeline at array width (SPEC sections 4 and 6).

Per lane ``n`` of a beat (bit-exact with :func:`models.requant.requant`)::

    x   = wrap32(acc[n] + bias[n])
    xs  = wrap32(x << max(shift[n], 0))                          # left shift, int32 wrap
    q   = SaturatingRoundingDoublingHighMul(xs, mult[n])         # = (xs*mult + 2**30) >> 31,
    saturated r   = RoundingDivideByPOT(q, max(-shift[n], 0))              # round half away from
    zero out = clamp(wrap32(r + zp), qmin, qmax)                      # int8

``shift`` is in [-31, 31] (signed 6 bits). The 32x32 product is built from four 16x16 partial
products (one 18x18 DSP each, registered inputs and outputs); every stage is registered for Fmax.
Parameters travel with the data, so consecutive beats may use different parameters (no drain between
channel tiles).

Two components:

- :class:`RequantCore` -- fixed latency :data:`RequantCore.latency`, no back-pressure: every valid
  input beat leaves ``latency`` cycles later on ``o`` (``o.ready`` is ignored; the owner guarantees
  room). A beat entered with ``bypass`` high instead leaves :data:`RequantCore.x_latency` cycles
  later on ``x`` as the raw ``wrap32(acc + bias)`` (and never on ``o``): the GEMM engine's raw
  mode.
- :class:`Requant` -- the same core behind a credit counter and an output FIFO: a regular stream
  block (``i`` may be back-pressured, ``o`` obeys ``o.ready``) that sustains one beat per cycle when
  ``o`` is always ready.
"""

from __future__ import annotations

import re

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.sram import data_reg
from hw.systolic import registered_mul

__all__ = ["SHIFT_BITS", "requant_in_layout", "requant_out_layout", "raw_out_layout", "RequantCore",
           "Requant", "SerialRequant"]

#: Width of the signed per-channel shift field: TFLite shifts in [-31, 31].
SHIFT_BITS = 6


def requant_in_layout(lanes: int) -> data.StructLayout:
    """Input beat: per-lane accumulator and parameters, per-beat zero point and clamp range."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(32), lanes),
        "bias": data.ArrayLayout(signed(32), lanes),
        "mult": data.ArrayLayout(signed(32), lanes),
        "shift": data.ArrayLayout(signed(SHIFT_BITS), lanes),
        "zp": signed(8),
        "qmin": signed(8),
        "qmax": signed(8),
        "last": 1,
    })


def requant_out_layout(lanes: int) -> data.StructLayout:
    return data.StructLayout({"data": data.ArrayLayout(signed(8), lanes), "last": 1})


def raw_out_layout(lanes: int) -> data.StructLayout:
    """Bypass output beat: ``wrap32(acc + bias)`` per lane."""
    return data.StructLayout({"acc": data.ArrayLayout(signed(32), lanes), "last": 1})


def _decoder_parts(e):
    """First level of the decoders of a 5-bit amount ``e`` (no comparators, hence no carry
    chains): (hi == k) for k < 4, (lo == k) and (lo >= k) for k < 8, (hi > k) for k < 4 (24 bits,
    hi = e[3:5], lo = e[0:3])."""
    hi, lo = e[3:5], e[0:3]
    hi_eq = [hi == k for k in range(4)]
    lo_eq = [lo == k for k in range(8)]
    lo_ge = [Cat(*lo_eq[k:]).any() for k in range(8)]
    hi_gt = [Cat(*hi_eq[k + 1:]).any() if k < 3 else Const(0, 1) for k in range(4)]
    return Cat(*hi_eq, *lo_eq, *lo_ge, *hi_gt)


def _decoders(parts):
    """Second level, from :func:`_decoder_parts`: ``onehot(v)`` = (e == v), ``atleast(t)`` =
    (e >= t)."""
    hi_eq, lo_eq, lo_ge, hi_gt = parts[0:4], parts[4:12], parts[12:20], parts[20:24]

    def onehot(v):
        return hi_eq[v >> 3] & lo_eq[v & 7]

    def atleast(t):
        return hi_gt[t >> 3] | (hi_eq[t >> 3] & lo_ge[t & 7])

    return onehot, atleast


class RequantCore(wiring.Component):
    """Fixed-latency requant pipeline without back-pressure (see module docstring)."""

    #: Pipeline registers of the full-speed pipeline (stages S0..S17, see docs/array.md).
    FULL = tuple(range(18))
    #: Registers kept for slow clocks (< 60 MHz, e.g. the iCE40 preset): input, DSP operands and
    #: products (S4, S5, inherent to :func:`hw.systolic.registered_mul`), one register after the
    #: product sum (S9) and the rounding add (S10), after the right shift (S12) and the output
    #: (S17).
    LIGHT = (0, 4, 5, 9, 10, 12, 17)

    def __init__(self, lanes: int, stages: tuple[int, ...] = FULL):
        self.lanes = lanes
        self.stages = tuple(sorted(set(stages) | {4, 5}))
        #: Cycles from an input beat (``i.valid``) to its output beat (``o.valid``).
        self.latency = len(self.stages)
        #: Cycles from a ``bypass`` input beat to its ``x`` beat (the stages up to the bias add).
        self.x_latency = len([k for k in self.stages if k <= 1])
        super().__init__({
            "i": In(stream.Signature(requant_in_layout(lanes))),
            "bypass": In(1),
            "o": Out(stream.Signature(requant_out_layout(lanes))),
            "x": Out(stream.Signature(raw_out_layout(lanes))),
        })

    @classmethod
    def stages_for(cls, config) -> tuple[int, ...]:
        """The full pipeline for a fast target clock, else the light one (``Config.fast_clock``
        decides)."""
        return cls.FULL if config.fast_clock else cls.LIGHT

    @classmethod
    def for_config(cls, lanes: int, config) -> RequantCore:
        """A core of ``lanes`` lanes with the pipeline depth the config's clock asks for."""
        return cls(lanes, cls.stages_for(config))

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        keep = set(self.stages)

        def reg(shape, name, src):
            """Stage-k value (k = the name's trailing number): a register if stage k is kept,
            else a wire. Data registers have no reset (only valid does)."""
            stage = int(re.search(r"(\d+)$", name).group(1))
            s = Signal(shape, name=name, reset_less=True)
            if stage in keep:
                m.d.sync += s.eq(src)
            else:
                m.d.comb += s.eq(src)
            return s

        # Valid/bypass/last delay line: one register per kept stage. Bypass beats leave on ``x``
        # after the bias add (S1) and are dropped from ``o``.
        valid, byp, last = self.i.valid, self.bypass, self.i.p.last
        x_valid, x_last = valid & byp, last
        for k in self.stages:
            v2, l2 = Signal(name=f"v{k}"), Signal(name=f"l{k}", reset_less=True)
            b2 = Signal(name=f"b{k}")
            m.d.sync += [v2.eq(valid), l2.eq(last), b2.eq(byp)]
            valid, last, byp = v2, l2, b2
            if k <= 1:
                x_valid, x_last = valid & byp, last
        m.d.comb += [self.o.valid.eq(valid & ~byp), self.o.p.last.eq(last),
                     self.x.valid.eq(x_valid), self.x.p.last.eq(x_last)]

        # Per-beat params: stage-0 values carried to where they are used.
        zp = [reg(signed(8), "zp0", self.i.p.zp)]
        qmin = [reg(signed(8), "qmin0", self.i.p.qmin)]
        qmax = [reg(signed(8), "qmax0", self.i.p.qmax)]
        for k in range(1, 17):
            zp.append(reg(signed(8), f"zp{k}", zp[-1]))
            qmin.append(reg(signed(8), f"qmin{k}", qmin[-1]))
            qmax.append(reg(signed(8), f"qmax{k}", qmax[-1]))
        # Offset-binary clamp bounds for the unsigned compares of S16.
        qminu = {15: reg(8, "qminu15", qmin[14] ^ 0x80)}
        qmaxu = {15: reg(8, "qmaxu15", qmax[14] ^ 0x80)}

        for n in range(L):
            p = f"n{n}_"
            # S0: input register.
            acc0 = reg(signed(32), p + "acc0", self.i.p.acc[n])
            bias0 = reg(signed(32), p + "bias0", self.i.p.bias[n])
            mult0 = reg(signed(32), p + "mult0", self.i.p.mult[n])
            shift0 = reg(signed(SHIFT_BITS), p + "shift0", self.i.p.shift[n])
            # S1: bias add, split shift into left/right amounts, rounding constants of the right
            # shift.
            x1 = reg(signed(32), p + "x1", (acc0 + bias0)[:32])
            m.d.comb += self.x.p.acc[n].eq(x1)
            left1 = reg(5, p + "left1", Mux(shift0 > 0, shift0, 0)[:5])
            right1 = reg(5, p + "right1", Mux(shift0 < 0, -shift0, 0)[:5])
            mult1 = reg(signed(32), p + "mult1", mult0)
            # S2, S3: x << left (wrap), in two steps of a 3-bit and a 2-bit (x8) amount.
            x2 = reg(signed(32), p + "x2", (x1 << left1[:3])[:32])
            left2 = reg(2, p + "left2", left1[3:])
            mult2 = reg(signed(32), p + "mult2", mult1)
            right2 = reg(5, p + "right2", right1)
            # S3: the shifted value in fabric flip-flops next to the DSPs (the route into the
            # DSP row takes most of a cycle).
            xs3 = reg(signed(32), p + "xs3", (x2 << Cat(Const(0, 3), left2))[:32])
            mult3 = reg(signed(32), p + "mult3", mult2)
            right3 = reg(5, p + "right3", right2)
            # S4, S5: four partial products of xs * mult (16x16 pieces, low halves unsigned),
            # each an 18x18 DSP with registered operands (S4) and product (S5).
            aL, aH = xs3[:16], xs3[16:].as_signed()
            bL, bH = mult3[:16], mult3[16:].as_signed()
            pLL = registered_mul(m, platform, aL, bL, p + "pLL")
            pLH = registered_mul(m, platform, aL, bH, p + "pLH")
            pHL = registered_mul(m, platform, aH, bL, p + "pHL")
            pHH = registered_mul(m, platform, aH, bH, p + "pHH")
            ovf4 = reg(1, p + "ovf4", (xs3 == -(1 << 31)) & (mult3 == -(1 << 31)))
            right4 = reg(5, p + "right4", right3)
            ovf5 = reg(1, p + "ovf5", ovf4)
            right5 = reg(5, p + "right5", right4)
            # S6: the products in fabric flip-flops (the DSP's clock-to-out and the route out
            # of the DSP row take a whole stage).
            pLL6 = reg(pLL.shape(), p + "pLL6", pLL)
            pLH6 = reg(pLH.shape(), p + "pLH6", pLH)
            pHL6 = reg(pHL.shape(), p + "pHL6", pHL)
            pHH6 = reg(pHH.shape(), p + "pHH6", pHH)
            ovf6 = reg(1, p + "ovf6", ovf5)
            right6 = reg(5, p + "right6", right5)
            # S7: middle terms; outer terms plus the SRDHM nudge 2**30 (an increment of bits
            # 30..63 only).
            mid7 = reg(signed(35), p + "mid7", pHL6 + pLH6)
            hi7 = reg(64, p + "hi7", Cat(pLL6[:30], (Cat(pLL6[30:32], pHH6) + 1)[:34]))
            ovf7 = reg(1, p + "ovf7", ovf6)
            right7 = reg(5, p + "right7", right6)
            dec7 = reg(24, p + "dec7", _decoder_parts(right6))
            # S8, S9: v = hi + (mid << 16) (mod 2**64), bits 16..39 then 40..63 (the carry
            # between them registered, added as a carry-in: (c:a) + (c:b) = 2 (a + b + c) + ..).
            lo8 = reg(25, p + "lo8", hi7[16:40] + mid7[:24])
            hia8 = reg(24, p + "hia8", hi7[40:])
            midh8 = reg(signed(24), p + "midh8", mid7 >> 24)
            ovf8 = reg(1, p + "ovf8", ovf7)
            right8 = reg(5, p + "right8", right7)
            # RoundingDivideByPOT constants, decoded from e in two levels (S7, S8):
            # half = 2**(e-1), half - 1 = e-1 ones (both 0 for e = 0).
            onehot, atleast = _decoders(dec7)
            half8 = reg(32, p + "half8", Cat(*[onehot(i + 1) for i in range(31)]))
            halfm8 = reg(32, p + "halfm8", Cat(*[atleast(i + 2) for i in range(30)]))
            hs = (Cat(lo8[24], hia8) + Cat(lo8[24], midh8[:24]))[1:25]
            # S9: q = (xs*mult + 2**30) >> 31 = v[31:63]; saturates only for INT32_MIN**2.
            q9 = reg(signed(32), p + "q9", Mux(ovf8, (1 << 31) - 1, Cat(lo8[15:24], hs[:23])))
            neg9 = reg(1, p + "neg9", ~ovf8 & hs[22])
            half9 = reg(32, p + "half9", half8)
            halfm9 = reg(32, p + "halfm9", halfm8)
            right9 = reg(5, p + "right9", right8)
            # S10: q + half (q >= 0) or q + half - 1 (q < 0): one adder behind a mux.
            qr10 = reg(signed(34), p + "qr10", q9 + Mux(neg9, halfm9, half9))
            right10 = reg(5, p + "right10", right9)
            # S11, S12: arithmetic right shift by 3-bit then 2-bit (x8) amount.
            r11 = reg(signed(34), p + "r11", qr10 >> right10[:3])
            right11 = reg(2, p + "right11", right10[3:])
            r12 = reg(signed(32), p + "r12", (r11 >> Cat(Const(0, 3), right11))[:32])
            # S13: output zero point (int32 wrap).
            y13 = reg(signed(32), p + "y13", (r12 + zp[12])[:32])
            # S14: in int8 range (bits 7..31 all equal); S15: saturate to int8, kept with the
            # sign bit flipped (offset binary: signed order = unsigned order).
            in14 = reg(1, p + "in14", (y13[7:] == 0) | (y13[7:] == (1 << 25) - 1))
            lo14 = reg(8, p + "lo14", y13[:8] ^ 0x80)
            neg14 = reg(1, p + "neg14", y13[31])
            u15 = reg(8, p + "u15", Mux(in14, lo14, Mux(neg14, 0x00, 0xFF)))
            # S16: clamp compares (unsigned 8-bit, one carry chain each); S17: clamp.
            lt16 = reg(1, p + "lt16", u15 < qminu[15])
            gt16 = reg(1, p + "gt16", u15 > qmaxu[15])
            u16 = reg(8, p + "u16", u15)
            y17 = reg(signed(8), p + "y17",
                      Mux(lt16, qmin[16], Mux(gt16, qmax[16], (u16 ^ 0x80).as_signed())))
            m.d.comb += self.o.p.data[n].eq(y17)
        return m


class Requant(wiring.Component):
    """Requant pipeline with stream flow control on both sides (see module docstring).

    ``depth`` output FIFO entries; ``i.ready`` is high while fewer than ``depth`` beats are in the
    core or the FIFO, so nothing is ever dropped. ``depth >= latency + 3`` gives full
    rate.
    """

    def __init__(self, lanes: int, depth: int | None = None,
                 stages: tuple[int, ...] = RequantCore.FULL):
        self.lanes = lanes
        self.stages = stages
        self._core = RequantCore(lanes, stages)
        self.latency = self._core.latency
        self.depth = depth or self.latency + 4
        super().__init__({
            "i": In(stream.Signature(requant_in_layout(lanes))),
            "o": Out(stream.Signature(requant_out_layout(lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        width = requant_out_layout(self.lanes).size
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=width, depth=self.depth)
        count = Signal(range(self.depth + 1))
        take = self.i.valid & self.i.ready
        give = self.o.valid & self.o.ready
        m.d.sync += count.eq(count + take - give)
        m.d.comb += [
            self.i.ready.eq(count < self.depth),
            core.i.valid.eq(take),
            core.i.payload.eq(self.i.payload),
            q.w_en.eq(core.o.valid),
            q.w_data.eq(core.o.payload),
            self.o.valid.eq(q.r_rdy),
            self.o.payload.eq(q.r_data),
            q.r_en.eq(self.o.ready),
        ]
        return m


class SerialRequant(wiring.Component):
    """:class:`Requant`'s streams over ``lanes`` lanes, computed by a core of ``core_lanes``
    lanes: each input beat enters the core in ``lanes / core_lanes`` phases, one per cycle
    (lanes [h * core_lanes, (h + 1) * core_lanes) in phase h), so a beat is accepted every
    ``lanes / core_lanes`` cycles. For paths that need array-width requant rarely (the conv
    unit's LAST mode): a 1-lane core has 4 multipliers instead of 4 per lane. ``i.ready`` is high
    while the held beat's last phase is entering the core (or none is held) and fewer than
    ``depth`` beats are in flight, so nothing is ever dropped."""

    def __init__(self, lanes: int, core_lanes: int, depth: int | None = None,
                 stages: tuple[int, ...] = RequantCore.FULL):
        if core_lanes < 1 or lanes % core_lanes:
            raise ValueError("SerialRequant: core_lanes must divide lanes")
        self.lanes, self.core_lanes = lanes, core_lanes
        self.phases = lanes // core_lanes
        self._core = RequantCore(core_lanes, stages)
        self.latency = self._core.latency + self.phases
        # enough beats in flight for one beat every ``phases`` cycles
        self.depth = depth or -(-self.latency // self.phases) + 3
        super().__init__({
            "i": In(stream.Signature(requant_in_layout(lanes))),
            "o": Out(stream.Signature(requant_out_layout(lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        L, PL, H = self.lanes, self.core_lanes, self.phases
        m.submodules.core = core = self._core
        q = fifo.SyncFIFOBuffered(width=requant_out_layout(L).size, depth=self.depth)
        m.submodules.fifo = q
        # the beat being fed (held until its last phase has entered the core)
        beat = data_reg(requant_in_layout(L))  # (data: read under busy; hw.sram.data_reg)
        busy = Signal()
        ph = Signal(range(H))
        count = Signal(range(self.depth + 1))      # beats accepted and not yet popped
        take = self.i.valid & self.i.ready
        give = self.o.valid & self.o.ready
        last_ph = ph == H - 1
        # i.ready = (~busy | last_ph) & (count < depth), kept in a register computed from the
        # next state (the same value every cycle): the producer's handshake then starts from a
        # flip-flop, not from the phase counter and the count compare (ECP5 timing, issue #13)
        count_n, busy_n, ph_n = Signal.like(count), Signal(), Signal.like(ph)
        m.d.comb += [count_n.eq(count + take - give), busy_n.eq(busy), ph_n.eq(ph)]
        with m.If(take):
            m.d.comb += [busy_n.eq(1), ph_n.eq(0)]
            m.d.sync += beat.eq(self.i.payload)
        with m.Elif(busy):
            m.d.comb += ph_n.eq(ph + 1)
            with m.If(last_ph):
                m.d.comb += [busy_n.eq(0), ph_n.eq(0)]
        ready = Signal(init=1)
        m.d.sync += [count.eq(count_n), busy.eq(busy_n), ph.eq(ph_n),
                     ready.eq((~busy_n | (ph_n == H - 1)) & (count_n < self.depth))]
        m.d.comb += self.i.ready.eq(ready)
        m.d.comb += [core.i.valid.eq(busy), core.bypass.eq(0),
                     core.i.p.zp.eq(beat.zp), core.i.p.qmin.eq(beat.qmin),
                     core.i.p.qmax.eq(beat.qmax), core.i.p.last.eq(beat.last)]
        for f in ("acc", "bias", "mult", "shift"):
            for k in range(PL):
                lanes_k = [getattr(beat, f)[h * PL + k] for h in range(H)]
                sel = lanes_k[0]
                for h in range(1, H):
                    sel = Mux(ph == h, lanes_k[h], sel)
                m.d.comb += getattr(core.i.p, f)[k].eq(sel)
        # the core's phases come out in order, one per cycle: the last completes the beat
        oph = Signal(range(H))
        parts = [data_reg(8 * PL, name=f"part{h}") for h in range(H - 1)]
        with m.If(core.o.valid):
            m.d.sync += oph.eq(Mux(oph == H - 1, 0, oph + 1))
            for h in range(H - 1):
                with m.If(oph == h):
                    m.d.sync += parts[h].eq(core.o.p.data.as_value())
        m.d.comb += [
            q.w_en.eq(core.o.valid & (oph == H - 1)),
            q.w_data.eq(Cat(*parts, core.o.p.data.as_value(), core.o.p.last)),
            self.o.valid.eq(q.r_rdy),
            self.o.payload.eq(q.r_data),
            q.r_en.eq(self.o.ready),
        ]
        return m
