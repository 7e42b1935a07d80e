"""ISP gateware: RAW10 pixel stream (from the CSI-2 RX) -> int8 NHWC input tensor stream.

Stages (bit-exact with models/isp.py, whose docstring and docs/pixel_path.md give the arithmetic):
black level and gain per Bayer tile position, 2x2 binning to RGB or luma, ROI crop, box-filter
resize (downscale or 1:1 per axis), per-channel normalization to int8.

Contract:

* ``i`` carries one sensor pixel per beat (:data:`hw.csi2.PIXEL_LAYOUT`): ``sof`` on the frame's
  first pixel, ``sol`` on each line's first pixel. Positions are counted from these markers only, so
  short, long, missing or extra lines never hang the block: the next ``sof`` restarts every counter.
* ``i.ready`` is high whenever the output FIFO has room for everything in flight, so with the output
  not back-pressured the ISP takes one pixel every clock. Each input pixel yields at most one
  output.
* ``o`` carries one output pixel (all channels, NHWC order) per beat: ``data[0..2]`` int8 (RGB, or
  ``data[0]`` = luma and the others 0), ``first`` on the frame's first tensor pixel, ``last`` on its
  last.
* ``params`` (layout :func:`params_layout`) must be stable while a frame streams; the host builds it
  with ``models.isp.IspParams.hw_fields``.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from hw.config import Config
from hw.csi2 import PIXEL_LAYOUT

__all__ = ["PATTERNS", "pattern_positions", "RECIP_BITS", "MAX_BOX", "TENSOR_LAYOUT",
           "params_layout", "coord_bits", "Isp"]

#: Bayer patterns, in the order of the ``pattern`` parameter field.
PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")

#: Fractional bits of the box-filter reciprocal.
RECIP_BITS = 24
#: Largest box (binned pixels per output pixel) the resize accepts (sums fit 20 bits).
MAX_BOX = 4096
SUM_BITS = 20
FIFO_DEPTH = 32

#: One output beat: one tensor pixel, all channels.
TENSOR_LAYOUT = data.StructLayout({
    "data": data.ArrayLayout(signed(8), 3),
    "first": 1,
    "last": 1,
})


def pattern_positions(pattern: str) -> tuple[int, int, int, int]:
    """Tile positions (0 = even row/even col, 1 = even/odd, 2 = odd/even, 3 = odd/odd) of
    R, G1, G2, B."""
    return {"RGGB": (0, 1, 2, 3), "GRBG": (1, 0, 3, 2), "GBRG": (2, 0, 3, 1),
            "BGGR": (3, 1, 2, 0)}[pattern]


def coord_bits(config: Config) -> int:
    """Width of pixel coordinates: sensor positions up to max_line_pixels (saturating above)."""
    return max(12, bits_for(config.max_line_pixels))


def params_layout(config: Config) -> data.StructLayout:
    """Runtime parameters (see models.isp.IspParams); ROI, sizes and kx/ky in binned pixels."""
    cb = coord_bits(config)
    return data.StructLayout({
        "pattern": 2,
        "channels3": 1,
        "black": data.ArrayLayout(10, 4),
        "gain": data.ArrayLayout(16, 4),
        "roi_x": cb, "roi_y": cb, "roi_w": cb, "roi_h": cb,
        "out_w": cb, "out_h": cb,
        "kx": cb, "ky": cb,
        "recip": data.ArrayLayout(RECIP_BITS + 1, 4),
        "norm_mul": data.ArrayLayout(16, 3),
        "norm_shift": data.ArrayLayout(5, 3),
        "norm_off": data.ArrayLayout(signed(16), 3),
    })


class Isp(wiring.Component):
    """The ISP pipeline (module docstring). One sensor pixel per clock in, tensor pixels out."""

    def __init__(self, config: Config):
        self.config = config
        if config.isp_pixels_per_clock != 1:
            raise ValueError("hw.isp.Isp implements isp_pixels_per_clock == 1")
        super().__init__({
            "i": In(stream.Signature(PIXEL_LAYOUT)),
            "o": Out(stream.Signature(TENSOR_LAYOUT)),
            "params": In(params_layout(config)),
        })

    def elaborate(self, platform):  # noqa: C901  (one pipeline, stage by stage)
        m = Module()
        cfg = self.config
        p = self.params
        cb = coord_bits(cfg)
        cmax = (1 << cb) - 1
        half = cfg.max_line_pixels // 2

        m.submodules.fifo = ofifo = fifo.SyncFIFOBuffered(width=TENSOR_LAYOUT.size,
                                                          depth=FIFO_DEPTH)
        # Stages after the input: at most one output per pixel in flight; 16 free slots cover them.
        m.d.comb += self.i.ready.eq(ofifo.level <= FIFO_DEPTH - 16)
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)

        # ---- S1: position counters from the markers -------------------------------------------
        x_prev = Signal(cb, init=cmax)
        y_prev = Signal(cb, init=cmax)
        x = Signal(cb)
        y = Signal(cb)
        pin = self.i.payload
        with m.If(pin.sof):
            m.d.comb += [x.eq(0), y.eq(0)]
        with m.Elif(pin.sol):
            m.d.comb += [x.eq(0), y.eq(Mux(y_prev == cmax, cmax, y_prev + 1))]
        with m.Else():
            m.d.comb += [x.eq(Mux(x_prev == cmax, cmax, x_prev + 1)), y.eq(y_prev)]
        with m.If(take):
            m.d.sync += [x_prev.eq(x), y_prev.eq(y)]

        s1_v, s1_sof = Signal(), Signal()
        s1_pix, s1_x, s1_y = Signal(10), Signal(cb), Signal(cb)
        m.d.sync += [s1_v.eq(take), s1_sof.eq(take & pin.sof), s1_pix.eq(pin.pix),
                     s1_x.eq(x), s1_y.eq(y)]

        # ---- S2: black level ------------------------------------------------------------------
        k1 = Cat(s1_x[0], s1_y[0])
        bl = Signal(10)
        m.d.comb += bl.eq(p.black[k1])
        s2_v, s2_sof = Signal(), Signal()
        s2_val, s2_x, s2_y = Signal(10), Signal(cb), Signal(cb)
        m.d.sync += [s2_v.eq(s1_v), s2_sof.eq(s1_sof), s2_x.eq(s1_x), s2_y.eq(s1_y),
                     s2_val.eq(Mux(s1_pix > bl, s1_pix - bl, 0))]

        # ---- S3: gain (Q8.8, saturating at 1023) ----------------------------------------------
        k2 = Cat(s2_x[0], s2_y[0])
        prod = Signal(26)
        m.d.comb += prod.eq(s2_val * p.gain[k2])
        s3_v, s3_sof = Signal(), Signal()
        s3_val, s3_x, s3_y = Signal(10), Signal(cb), Signal(cb)
        m.d.sync += [s3_v.eq(s2_v), s3_sof.eq(s2_sof), s3_x.eq(s2_x), s3_y.eq(s2_y),
                     s3_val.eq(Mux(prod[8:] > 1023, 1023, prod[8:]))]

        # ---- S4: 2x2 binning with a line buffer of (even col, odd col) pairs of even rows -------
        m.submodules.linebuf = linebuf = Memory(shape=unsigned(20), depth=half, init=[])
        lb_w = linebuf.write_port()
        lb_r = linebuf.read_port()
        hold = Signal(10)
        in_line = Signal()
        m.d.comb += in_line.eq(s3_x < 2 * half)
        with m.If(s3_v & ~s3_x[0]):
            m.d.sync += hold.eq(s3_val)
        m.d.comb += [
            lb_w.addr.eq(s3_x[1:]), lb_w.data.eq(Cat(hold, s3_val)),
            lb_w.en.eq(s3_v & s3_x[0] & ~s3_y[0] & in_line),
            lb_r.addr.eq(s3_x[1:]),
        ]
        s4_v, s4_sof = Signal(), Signal()
        s4_p2, s4_p3, s4_bx, s4_by = Signal(10), Signal(10), Signal(cb), Signal(cb)
        m.d.sync += [s4_v.eq(s3_v & s3_x[0] & s3_y[0] & in_line), s4_sof.eq(s3_sof),
                     s4_p2.eq(hold), s4_p3.eq(s3_val), s4_bx.eq(s3_x[1:]), s4_by.eq(s3_y[1:])]
        pos = [lb_r.data[:10], lb_r.data[10:], s4_p2, s4_p3]

        def pick(idx):
            sel = Signal(10)
            with m.Switch(p.pattern):
                for n, pat in enumerate(PATTERNS):
                    with m.Case(n):
                        m.d.comb += sel.eq(pos[pattern_positions(pat)[idx]])
            return sel

        r10, g1, g2, b10 = pick(0), pick(1), pick(2), pick(3)
        s5_v, s5_sof = Signal(), Signal()
        s5_r, s5_g, s5_b, s5_bx, s5_by = Signal(8), Signal(8), Signal(8), Signal(cb), Signal(cb)
        gsum = Signal(11)
        m.d.comb += gsum.eq(g1 + g2)
        m.d.sync += [s5_v.eq(s4_v), s5_sof.eq(s4_sof), s5_bx.eq(s4_bx), s5_by.eq(s4_by),
                     s5_r.eq(r10[2:]), s5_g.eq(gsum[3:]), s5_b.eq(b10[2:])]

        # ---- S6: luma or RGB --------------------------------------------------------------------
        luma = Signal(16)
        m.d.comb += luma.eq(77 * s5_r + 150 * s5_g + 29 * s5_b + 128)
        s6_v, s6_sof = Signal(), Signal()
        s6_c = [Signal(8, name=f"s6_c{i}") for i in range(3)]
        s6_bx, s6_by = Signal(cb), Signal(cb)
        m.d.sync += [s6_v.eq(s5_v), s6_sof.eq(s5_sof), s6_bx.eq(s5_bx), s6_by.eq(s5_by)]
        with m.If(p.channels3):
            m.d.sync += [s6_c[0].eq(s5_r), s6_c[1].eq(s5_g), s6_c[2].eq(s5_b)]
        with m.Else():
            m.d.sync += [s6_c[0].eq(luma[8:]), s6_c[1].eq(0), s6_c[2].eq(0)]

        # ---- S7: ROI crop -> local coordinates ------------------------------------------------
        s7_v, s7_sof = Signal(), Signal()
        s7_c = [Signal(8, name=f"s7_c{i}") for i in range(3)]
        s7_lx, s7_ly = Signal(cb), Signal(cb)
        lx = Signal(cb + 1)
        ly = Signal(cb + 1)
        m.d.comb += [lx.eq(s6_bx - p.roi_x), ly.eq(s6_by - p.roi_y)]
        inside = Signal()
        m.d.comb += inside.eq((s6_bx >= p.roi_x) & (s6_by >= p.roi_y)
                              & (lx < p.roi_w) & (ly < p.roi_h))
        m.d.sync += [s7_v.eq(s6_v & inside), s7_sof.eq(s6_sof), s7_lx.eq(lx), s7_ly.eq(ly),
                     *[a.eq(b) for a, b in zip(s7_c, s6_c, strict=True)]]

        # ---- S8: horizontal box sums and row bookkeeping (Bresenham on both axes) --------------
        ow, oh, rw, rh = p.out_w, p.out_h, p.roi_w, p.roi_h
        # row state of the current ROI row
        ey_r, cy_r = Signal(cb + 1), Signal(cb + 1)
        rfirst_r, rlast_r = Signal(), Signal()
        ey, cy, rfirst, rlast = Signal(cb + 1), Signal(cb + 1), Signal(), Signal()
        row_start = s7_lx == 0
        with m.If(row_start & (s7_ly == 0)):
            m.d.comb += [ey.eq(0), cy.eq(1), rfirst.eq(1)]
        with m.Elif(row_start):
            m.d.comb += [ey.eq(ey_r + oh - Mux(rlast_r, rh, 0)),
                         cy.eq(Mux(rlast_r, 1, cy_r + 1)), rfirst.eq(rlast_r)]
        with m.Else():
            m.d.comb += [ey.eq(ey_r), cy.eq(cy_r), rfirst.eq(rfirst_r)]
        m.d.comb += rlast.eq(ey + oh >= rh)
        # column state
        ex_r, cx_r, j_r = Signal(cb + 1), Signal(cb + 1), Signal(cb)
        xlast_r = Signal()
        hs_r = [Signal(SUM_BITS, name=f"hs_r{i}") for i in range(3)]
        ex, cx, j, xlast = Signal(cb + 1), Signal(cb + 1), Signal(cb), Signal()
        hs = [Signal(SUM_BITS, name=f"hs{i}") for i in range(3)]
        with m.If(row_start):
            m.d.comb += [ex.eq(0), cx.eq(1), j.eq(0), *[h.eq(c) for h, c in zip(hs, s7_c,
                                                                                 strict=True)]]
        with m.Elif(xlast_r):
            m.d.comb += [ex.eq(ex_r + ow - rw), cx.eq(1), j.eq(j_r + 1),
                         *[h.eq(c) for h, c in zip(hs, s7_c, strict=True)]]
        with m.Else():
            m.d.comb += [ex.eq(ex_r + ow), cx.eq(cx_r + 1), j.eq(j_r),
                         *[h.eq(hr + c) for h, hr, c in zip(hs, hs_r, s7_c, strict=True)]]
        m.d.comb += xlast.eq(ex + ow >= rw)
        with m.If(s7_v):
            m.d.sync += [ey_r.eq(ey), cy_r.eq(cy), rfirst_r.eq(rfirst), rlast_r.eq(rlast),
                         ex_r.eq(ex), cx_r.eq(cx), j_r.eq(j), xlast_r.eq(xlast),
                         *[a.eq(b) for a, b in zip(hs_r, hs, strict=True)]]
        s8_v, s8_sof = Signal(), Signal()
        s8_j = Signal(cb)
        s8_hs = [Signal(SUM_BITS, name=f"s8_hs{i}") for i in range(3)]
        s8_cx, s8_cy = Signal(cb + 1), Signal(cb + 1)
        s8_rfirst, s8_rlast, s8_last = Signal(), Signal(), Signal()
        m.d.sync += [s8_v.eq(s7_v & xlast), s8_sof.eq(s7_sof), s8_j.eq(j), s8_cx.eq(cx),
                     s8_cy.eq(cy), s8_rfirst.eq(rfirst), s8_rlast.eq(rlast),
                     s8_last.eq((s7_lx == rw - 1) & (s7_ly == rh - 1)),
                     *[a.eq(b) for a, b in zip(s8_hs, hs, strict=True)]]

        # ---- S9: vertical accumulation in a memory of out_w column sums --------------------------
        m.submodules.accmem = accmem = Memory(shape=unsigned(3 * SUM_BITS), depth=half, init=[])
        acc_w = accmem.write_port()
        acc_r = accmem.read_port()
        m.d.comb += acc_r.addr.eq(s8_j)
        s9_v, s9_sof, s9_last = Signal(), Signal(), Signal()
        s9_j = Signal(cb)
        s9_hs = [Signal(SUM_BITS, name=f"s9_hs{i}") for i in range(3)]
        s9_cx, s9_cy = Signal(cb + 1), Signal(cb + 1)
        s9_rfirst, s9_rlast = Signal(), Signal()
        m.d.sync += [s9_v.eq(s8_v), s9_sof.eq(s8_sof), s9_last.eq(s8_last), s9_j.eq(s8_j),
                     s9_cx.eq(s8_cx), s9_cy.eq(s8_cy), s9_rfirst.eq(s8_rfirst),
                     s9_rlast.eq(s8_rlast), *[a.eq(b) for a, b in zip(s9_hs, s8_hs, strict=True)]]
        vs = [Signal(SUM_BITS, name=f"vs{i}") for i in range(3)]
        for i in range(3):
            prev = acc_r.data[i * SUM_BITS:(i + 1) * SUM_BITS]
            m.d.comb += vs[i].eq(Mux(s9_rfirst, 0, prev) + s9_hs[i])
        m.d.comb += [acc_w.addr.eq(s9_j), acc_w.data.eq(Cat(*vs)),
                     acc_w.en.eq(s9_v & (s9_j < half))]
        s10_v, s10_sof, s10_last = Signal(), Signal(), Signal()
        s10_vs = [Signal(SUM_BITS, name=f"s10_vs{i}") for i in range(3)]
        s10_r = Signal(RECIP_BITS + 1)
        ridx = Cat(s9_cx != p.kx, s9_cy != p.ky)
        m.d.sync += [s10_v.eq(s9_v & s9_rlast), s10_sof.eq(s9_sof), s10_last.eq(s9_last),
                     s10_r.eq(p.recip[ridx]), *[a.eq(b) for a, b in zip(s10_vs, vs, strict=True)]]

        # ---- S11: divide by the box size (fixed-point reciprocal) -------------------------------
        s11_v, s11_sof, s11_last = Signal(), Signal(), Signal()
        s11_p = [Signal(SUM_BITS + RECIP_BITS + 1, name=f"s11_p{i}") for i in range(3)]
        m.d.sync += [s11_v.eq(s10_v), s11_sof.eq(s10_sof), s11_last.eq(s10_last),
                     *[a.eq(b * s10_r) for a, b in zip(s11_p, s10_vs, strict=True)]]
        s12_v, s12_sof, s12_last = Signal(), Signal(), Signal()
        s12_u = [Signal(8, name=f"s12_u{i}") for i in range(3)]
        m.d.sync += [s12_v.eq(s11_v), s12_sof.eq(s11_sof), s12_last.eq(s11_last)]
        for i in range(3):
            q = (s11_p[i] + (1 << (RECIP_BITS - 1)))[RECIP_BITS:]
            m.d.sync += s12_u[i].eq(Mux(q > 255, 255, q))

        # ---- S13-14: normalization -------------------------------------------------------------
        s13_v, s13_sof, s13_last = Signal(), Signal(), Signal()
        s13_t = [Signal(24, name=f"s13_t{i}") for i in range(3)]
        m.d.sync += [s13_v.eq(s12_v), s13_sof.eq(s12_sof), s13_last.eq(s12_last),
                     *[s13_t[i].eq(s12_u[i] * p.norm_mul[i]) for i in range(3)]]
        s14_v, s14_last, s14_first = Signal(), Signal(), Signal()
        s14_q = [Signal(signed(8), name=f"s14_q{i}") for i in range(3)]
        first_pending = Signal()
        with m.If(s13_sof):
            m.d.sync += first_pending.eq(1)
        with m.Elif(s13_v):
            m.d.sync += first_pending.eq(0)
        m.d.sync += [s14_v.eq(s13_v), s14_last.eq(s13_last),
                     s14_first.eq(first_pending | s13_sof)]
        for i in range(3):
            sh = p.norm_shift[i]
            rnd = Signal(24, name=f"rnd{i}")
            m.d.comb += rnd.eq((Const(1, 25) << sh)[1:])
            t = Signal(signed(26), name=f"nt{i}")
            m.d.comb += t.eq(((s13_t[i] + rnd) >> sh) + p.norm_off[i])
            m.d.sync += s14_q[i].eq(Mux(t > 127, 127, Mux(t < -128, -128, t)))

        # ---- output FIFO ---------------------------------------------------------------------
        beat = Signal(TENSOR_LAYOUT)
        m.d.comb += [beat.first.eq(s14_first), beat.last.eq(s14_last),
                     *[beat.data[i].eq(s14_q[i]) for i in range(3)]]
        # channels3 == 0: lanes 1, 2 are zero by construction of s6.
        m.d.comb += [ofifo.w_data.eq(beat), ofifo.w_en.eq(s14_v),
                     self.o.payload.eq(ofifo.r_data), self.o.valid.eq(ofifo.r_rdy),
                     ofifo.r_en.eq(self.o.ready)]
        return m
