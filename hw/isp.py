"""ISP gateware: RAW10 pixel stream (from the CSI-2 RX) -> int8 NHWC input tensor stream.

Stages (bit-exact with models/isp.py, whose docstring and docs/pixel_path.md give the arithmetic):
black level and gain per Bayer tile position, 2x2 binning to RGB or luma, ROI crop, resize to any
size (box filter down to min(ROI, tensor) per axis, then nearest-neighbour up to the tensor size),
per-channel normalization to int8.

Structure: a no-stall pipeline (stage A: sensor pixel -> box-filtered pixel) writes into a FIFO; the
upscaler (stage B) loads box-filtered rows into a ring memory (two tensor rows wide) and generates
the tensor rows from it at one pixel per clock (each row replayed as often as the vertical ratio
asks), then the normalization and an output FIFO. When the tensor has more pixels than the input,
the output is the rate limit and ``i.ready`` drops whenever the ring and the FIFO in front of stage
B are full.

Contract:

* ``i`` carries one sensor pixel per beat (:data:`hw.csi2.PIXEL_LAYOUT`): ``sof`` on the frame's
  first pixel, ``sol`` on each line's first pixel. Positions are counted from these markers only, so
  short, long, missing or extra lines never hang the block: the next ``sof`` restarts every counter.
* ``i.ready`` is high whenever the FIFO in front of the upscaler has room for everything in flight,
  so with the output not back-pressured and no upscaling the ISP takes one pixel every clock; when
  upscaling it produces one tensor pixel every clock while rows are available.
* ``o`` carries one output pixel (all channels, NHWC order) per beat: ``data[0..2]`` int8 (RGB, or
  ``data[0]`` = luma and the others 0), ``first`` on the frame's first tensor pixel, ``last`` on its
  last.
* ``params`` (layout :func:`params_layout`) must be stable while a frame streams; the host builds it
  with ``models.isp.IspParams.hw_fields``.
"""

from __future__ import annotations

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from hw.config import Config
from hw.csi2 import PIXEL_LAYOUT
from hw.sram import data_reg
from hw.systolic import _dsp_family, registered_mul

__all__ = ["PATTERNS", "pattern_positions", "RECIP_BITS", "MAX_BOX", "TENSOR_LAYOUT",
           "params_layout", "coord_bits", "max_tensor_width", "reg_ram", "Isp"]

#: Bayer patterns, in the order of the ``pattern`` parameter field.
PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")

#: Fractional bits of the box-filter reciprocal.
RECIP_BITS = 24
#: Largest box (binned pixels per output pixel) the resize accepts (sums fit 20 bits).
MAX_BOX = 4096
SUM_BITS = 20
FIFO_DEPTH = 32
#: free slots of the FIFO in front of the upscaler required to take a pixel. Stage A holds about 25
#: pixels, and its outputs come only from odd columns of odd rows, so at most 13 are in flight
#: (+1 for the registered ready). Depth 32 keeps the FIFOs in LUT RAM.
READY_MARGIN = 16
#: free output FIFO slots required to issue a tensor pixel: issue -> row memory (2) -> normalization
#: (6) -> FIFO write, +1 for the registered credit, +2 spare.
OUT_MARGIN = 12

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


def max_tensor_width(config: Config) -> int:
    """Widest output tensor: the column-sum memory holds max_line_pixels / 4 entries (one block RAM
    deep on ECP5 for 4096-pixel lines, so its read data needs no bank multiplexer)."""
    return config.max_line_pixels // 4


def coord_bits(config: Config) -> int:
    """Width of pixel coordinates: sensor positions up to max_line_pixels (saturating above)."""
    return max(12, bits_for(config.max_line_pixels))


def reg_ram(m: Module, platform, name: str, depth: int, width: int):
    """A simple dual-port RAM (one write, one read port) whose read data is registered twice:
    ``rdata`` is valid two cycles after ``raddr`` (block RAM read, then its output register).

    With a platform whose ``dsp_family`` is ``"ecp5"`` these are DP16KD primitives with
    ``REGMODE_B = "OUTREG"``: the block RAM's own output register, so no fabric path starts at
    the slow RAM clock-to-out (yosys's inference leaves it unused). Otherwise an
    ``amaranth.lib.memory.Memory`` with a synchronous read port and a register after it, which
    behaves the same. Returns ``(waddr, wdata, wen, raddr, rdata)``.
    """
    waddr = Signal(range(depth), name=f"{name}_waddr")
    wdata = Signal(width, name=f"{name}_wdata")
    wen = Signal(name=f"{name}_wen")
    raddr = Signal(range(depth), name=f"{name}_raddr")
    rdata = Signal(width, name=f"{name}_rdata", reset_less=True)
    if _dsp_family(platform) == "ecp5":
        fits = [(w, a) for w, a in ((18, 10), (9, 11), (4, 12), (2, 13), (1, 14))
                if depth <= 1 << a]
        if not fits:
            raise ValueError(f"reg_ram: depth {depth} exceeds one DP16KD")
        mode, abits = fits[0]
        lo = 14 - abits
        nblk = -(-width // mode)
        din = Signal(nblk * mode, name=f"{name}_din")
        dout = Signal(nblk * mode, name=f"{name}_dout")
        m.d.comb += [din.eq(wdata), rdata.eq(dout[:width])]
        # x18: address bits 13:4, bits 1:0 are the write byte enables; narrower: bits 13:lo
        # (addresses zero-extended to the mode's abits: a small depth has a short address)
        wa = Cat(Const(0b11 if mode == 18 else 0, lo), waddr, Const(0, abits - len(waddr)))
        ra = Cat(Const(0, lo), raddr, Const(0, abits - len(raddr)))
        for k in range(nblk):
            ports = {"i_CLKA": ClockSignal("sync"), "i_CLKB": ClockSignal("sync"),
                     "i_WEA": wen, "i_WEB": Const(0, 1)}
            for pn in "AB":
                ports.update({f"i_CE{pn}": Const(1, 1), f"i_OCE{pn}": Const(1, 1),
                              f"i_RST{pn}": Const(0, 1)})
                ports.update({f"i_CS{pn}{i}": Const(0, 1) for i in range(3)})
            ports.update({f"i_ADA{i}": wa[i] for i in range(14)})
            ports.update({f"i_ADB{i}": ra[i] for i in range(14)})
            ports.update({f"i_DIA{i}": din[k * mode + i] if i < mode else Const(0, 1)
                          for i in range(18)})
            ports.update({f"i_DIB{i}": Const(0, 1) for i in range(18)})
            ports.update({f"o_DOB{i}": dout[k * mode + i] for i in range(mode)})
            m.submodules[f"{name}_bram{k}"] = Instance(
                "DP16KD", p_DATA_WIDTH_A=mode, p_DATA_WIDTH_B=mode, p_REGMODE_A="NOREG",
                p_REGMODE_B="OUTREG", p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL",
                p_WRITEMODE_B="NORMAL", p_GSR="DISABLED", **ports)
    else:
        mem = Memory(shape=unsigned(width), depth=depth, init=[])
        m.submodules[name] = mem
        w, r = mem.write_port(), mem.read_port()
        m.d.comb += [w.addr.eq(waddr), w.data.eq(wdata), w.en.eq(wen), r.addr.eq(raddr)]
        m.d.sync += rdata.eq(r.data)
    return waddr, wdata, wen, raddr, rdata


def params_layout(config: Config) -> data.StructLayout:
    """Runtime parameters (see models.isp.IspParams); ROI, sizes and kx/ky in binned pixels."""
    cb = coord_bits(config)
    return data.StructLayout({
        "pattern": 2,
        "channels3": 1,
        "black": data.ArrayLayout(10, 4),
        "gain": data.ArrayLayout(16, 4),
        "roi_x": cb, "roi_y": cb, "roi_w": cb, "roi_h": cb,
        "mid_w": cb, "mid_h": cb,
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

        # reg / regs: registers without reset (hw.sram.data_reg): the static parameters below
        # (loaded every cycle) and pipeline data loaded every cycle beside its stage's valid
        # bit (which is reset), or combinational values; state that carries from pixel to
        # pixel is declared with Signal (it resets)
        def reg(name, shape=1):
            return data_reg(shape, name=name)

        def regs(prefix, n, shape):
            return [data_reg(shape, name=f"{prefix}{i}") for i in range(n)]

        m.submodules.fifo = ofifo = fifo.SyncFIFOBuffered(width=TENSOR_LAYOUT.size,
                                                          depth=FIFO_DEPTH)
        # box-filtered pixels (3 x 8 bits, first-of-frame flag) in front of the upscaler
        m.submodules.mfifo = mfifo = fifo.SyncFIFOBuffered(width=25, depth=FIFO_DEPTH)
        # Each pixel in flight yields at most one FIFO entry; READY_MARGIN free slots cover them.
        # registered (so it is a flip-flop for the RX), one slot stricter for the cycle of delay
        ready_r = Signal()
        m.d.sync += ready_r.eq(mfifo.level < FIFO_DEPTH - READY_MARGIN)
        m.d.comb += self.i.ready.eq(ready_r)
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)

        # ---- static parameters, registered (they only change between frames) -------------------
        roi_x, roi_y = reg("roi_x_r", cb), reg("roi_y_r", cb)
        x_end, y_end = reg("x_end", cb + 1), reg("y_end", cb + 1)
        ow, oh, rw, rh = p.mid_w, p.mid_h, p.roi_w, p.roi_h
        stepx_l, stepy_l = reg("stepx_l", signed(cb + 2)), reg("stepy_l", signed(cb + 2))
        thrx_l, thry_l = reg("thrx_l", signed(cb + 3)), reg("thry_l", signed(cb + 3))
        thrx_n, thry_n = reg("thrx_n", signed(cb + 3)), reg("thry_n", signed(cb + 3))
        ow_r, oh_r = reg("ow_r", cb), reg("oh_r", cb)
        lastx0, lasty0 = reg("lastx0"), reg("lasty0")
        kx_r, ky_r = reg("kx_r", cb), reg("ky_r", cb)
        rnd = regs("rnd", 3, 24)
        m.d.sync += [
            roi_x.eq(p.roi_x), roi_y.eq(p.roi_y),
            x_end.eq(p.roi_x + rw - 1), y_end.eq(p.roi_y + rh - 1),
            stepx_l.eq(ow - rw), stepy_l.eq(oh - rh),
            thrx_l.eq(2 * rw - ow), thry_l.eq(2 * rh - oh),
            thrx_n.eq(rw - ow), thry_n.eq(rh - oh),
            ow_r.eq(ow), oh_r.eq(oh), lastx0.eq(ow >= rw), lasty0.eq(oh >= rh),
            kx_r.eq(p.kx), ky_r.eq(p.ky),
            *[rnd[i].eq((Const(1, 25) << p.norm_shift[i])[1:]) for i in range(3)],
        ]

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
        s2_val, s2_x, s2_y, s2_gain = Signal(10), Signal(cb), Signal(cb), Signal(16)
        m.d.sync += [s2_v.eq(s1_v), s2_sof.eq(s1_sof), s2_x.eq(s1_x), s2_y.eq(s1_y),
                     s2_val.eq(Mux(s1_pix > bl, s1_pix - bl, 0)), s2_gain.eq(p.gain[k1])]

        # ---- S2b/S2c/S3: gain (Q8.8, a registered multiplier: 2 cycles), saturation at 1023 ----
        s2b_v, s2b_sof, s2b_x, s2b_y = Signal(), Signal(), Signal(cb), Signal(cb)
        s2c_v, s2c_sof, s2c_x, s2c_y = Signal(), Signal(), Signal(cb), Signal(cb)
        s2c_prod = registered_mul(m, platform, s2_val, s2_gain, "gain_mul")
        m.d.sync += [s2b_v.eq(s2_v), s2b_sof.eq(s2_sof), s2b_x.eq(s2_x), s2b_y.eq(s2_y),
                     s2c_v.eq(s2b_v), s2c_sof.eq(s2b_sof), s2c_x.eq(s2b_x), s2c_y.eq(s2b_y)]
        s3_v, s3_sof = Signal(), Signal()
        s3_val, s3_x, s3_y = Signal(10), Signal(cb), Signal(cb)
        m.d.sync += [s3_v.eq(s2c_v), s3_sof.eq(s2c_sof), s3_x.eq(s2c_x), s3_y.eq(s2c_y),
                     s3_val.eq(Mux(s2c_prod[18:26] != 0, 1023, s2c_prod[8:18]))]

        # ---- S4: 2x2 binning with a line buffer of (even col, odd col) pairs of even rows -------
        lb_waddr, lb_wdata, lb_wen, lb_raddr, lb_rdata = reg_ram(m, platform, "linebuf", half, 20)
        hold = Signal(10)
        in_line = Signal()
        m.d.comb += in_line.eq(s3_x < 2 * half)
        with m.If(s3_v & ~s3_x[0]):
            m.d.sync += hold.eq(s3_val)
        m.d.comb += [
            lb_waddr.eq(s3_x[1:]), lb_wdata.eq(Cat(hold, s3_val)),
            lb_wen.eq(s3_v & s3_x[0] & ~s3_y[0] & in_line),
            lb_raddr.eq(s3_x[1:]),
        ]
        s4_v, s4_sof = Signal(), Signal()
        s4_p2, s4_p3, s4_bx, s4_by = Signal(10), Signal(10), Signal(cb), Signal(cb)
        m.d.sync += [s4_v.eq(s3_v & s3_x[0] & s3_y[0] & in_line), s4_sof.eq(s3_sof),
                     s4_p2.eq(hold), s4_p3.eq(s3_val), s4_bx.eq(s3_x[1:]), s4_by.eq(s3_y[1:])]
        # S4b: the line buffer's registered read data (reg_ram) next to the current row's pair
        s4b_v, s4b_sof = Signal(), Signal()
        s4b_p23 = [Signal(10, name=f"s4b_p{i}") for i in (2, 3)]
        s4b_bx, s4b_by = Signal(cb), Signal(cb)
        m.d.sync += [s4b_v.eq(s4_v), s4b_sof.eq(s4_sof), s4b_bx.eq(s4_bx), s4b_by.eq(s4_by),
                     s4b_p23[0].eq(s4_p2), s4b_p23[1].eq(s4_p3)]
        pos = [lb_rdata[:10], lb_rdata[10:], *s4b_p23]

        def pick(idx):
            sel = Signal(10, name=f"pick{idx}")
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
        m.d.sync += [s5_v.eq(s4b_v), s5_sof.eq(s4b_sof), s5_bx.eq(s4b_bx), s5_by.eq(s4b_by),
                     s5_r.eq(r10[2:]), s5_g.eq(gsum[3:]), s5_b.eq(b10[2:])]

        # ---- S5b/S6: luma (constant products, then their sum) or RGB ----------------------------
        s5b_v, s5b_sof, s5b_bx, s5b_by = Signal(), Signal(), Signal(cb), Signal(cb)
        s5b_c = regs("s5b_c", 3, 8)
        s5b_l = regs("s5b_l", 3, 16)
        m.d.sync += [s5b_v.eq(s5_v), s5b_sof.eq(s5_sof), s5b_bx.eq(s5_bx), s5b_by.eq(s5_by),
                     s5b_c[0].eq(s5_r), s5b_c[1].eq(s5_g), s5b_c[2].eq(s5_b),
                     # 77 r, 150 g, 29 b + 128 as shift-and-add (no DSP)
                     s5b_l[0].eq((s5_r << 6) + (s5_r << 3) + (s5_r << 2) + s5_r),
                     s5b_l[1].eq((s5_g << 7) + (s5_g << 4) + (s5_g << 2) + (s5_g << 1)),
                     s5b_l[2].eq((s5_b << 4) + (s5_b << 3) + (s5_b << 2) + s5_b + 128)]
        luma = Signal(16)
        m.d.comb += luma.eq(s5b_l[0] + s5b_l[1] + s5b_l[2])
        s6_v, s6_sof = Signal(), Signal()
        s6_c = regs("s6_c", 3, 8)
        s6_bx, s6_by = Signal(cb), Signal(cb)
        m.d.sync += [s6_v.eq(s5b_v), s6_sof.eq(s5b_sof), s6_bx.eq(s5b_bx), s6_by.eq(s5b_by)]
        with m.If(p.channels3):
            m.d.sync += [a.eq(b) for a, b in zip(s6_c, s5b_c, strict=True)]
        with m.Else():
            m.d.sync += [s6_c[0].eq(luma[8:]), s6_c[1].eq(0), s6_c[2].eq(0)]

        # ---- S7: ROI crop (compares against registered bounds only) -----------------------------
        s7_v, s7_sof = Signal(), Signal()
        s7_c = regs("s7_c", 3, 8)
        s7_x0, s7_y0, s7_xe, s7_ye = Signal(), Signal(), Signal(), Signal()
        inside = Signal()
        m.d.comb += inside.eq((s6_bx >= roi_x) & (s6_by >= roi_y)
                              & (s6_bx <= x_end) & (s6_by <= y_end))
        m.d.sync += [s7_v.eq(s6_v & inside), s7_sof.eq(s6_sof),
                     s7_x0.eq(s6_bx == roi_x), s7_y0.eq(s6_by == roi_y),
                     s7_xe.eq(s6_bx == x_end), s7_ye.eq(s6_by == y_end),
                     *[a.eq(b) for a, b in zip(s7_c, s6_c, strict=True)]]

        # ---- S8: box sums along x, row bookkeeping along y (Bresenham, see models/isp.py) --------
        # Per axis a = e + Lo, where e = (i * Lo) mod Li; the box ends at i when a >= Li.
        # Next: a' = a + (last ? Lo - Li : Lo); last' = a >= (last ? 2 Li - Lo : Li - Lo).
        ay_r = Signal(signed(cb + 3))
        cy_r = Signal(cb + 1)
        ax_r = Signal(signed(cb + 3))
        # The box-end compares of a, registered: valid binned pixels are never on consecutive
        # cycles (odd sensor columns only), so a_r has been stable a cycle when the next comes.
        gex_l, gex_n, gey_l, gey_n = Signal(), Signal(), Signal(), Signal()
        rfirst_r, rlast_r = Signal(), Signal()
        ay, cy, rfirst, rlast = Signal(signed(cb + 3)), Signal(cb + 1), Signal(), Signal()
        row_start = s7_x0
        with m.If(row_start & s7_y0):
            m.d.comb += [ay.eq(oh_r), cy.eq(1), rfirst.eq(1), rlast.eq(lasty0)]
        with m.Elif(row_start):
            m.d.comb += [ay.eq(ay_r + Mux(rlast_r, stepy_l, oh_r)),
                         cy.eq(Mux(rlast_r, 1, cy_r + 1)), rfirst.eq(rlast_r),
                         rlast.eq(Mux(rlast_r, gey_l, gey_n))]
        with m.Else():
            m.d.comb += [ay.eq(ay_r), cy.eq(cy_r), rfirst.eq(rfirst_r), rlast.eq(rlast_r)]
        m.d.sync += [gex_l.eq(ax_r >= thrx_l), gex_n.eq(ax_r >= thrx_n),
                     gey_l.eq(ay_r >= thry_l), gey_n.eq(ay_r >= thry_n)]
        cx_r, j_r = Signal(cb + 1), Signal(cb)
        xlast_r = Signal()
        hs_r = [Signal(SUM_BITS, name=f"hs_r{i}") for i in range(3)]   # (state: resets)
        ax, cx, j, xlast = Signal(signed(cb + 3)), Signal(cb + 1), Signal(cb), Signal()
        hs = regs("hs", 3, SUM_BITS)
        with m.If(row_start):
            m.d.comb += [ax.eq(ow_r), cx.eq(1), j.eq(0), xlast.eq(lastx0),
                         *[h.eq(c) for h, c in zip(hs, s7_c, strict=True)]]
        with m.Else():
            m.d.comb += [ax.eq(ax_r + Mux(xlast_r, stepx_l, ow_r)),
                         xlast.eq(Mux(xlast_r, gex_l, gex_n))]
            with m.If(xlast_r):
                m.d.comb += [cx.eq(1), j.eq(j_r + 1),
                             *[h.eq(c) for h, c in zip(hs, s7_c, strict=True)]]
            with m.Else():
                m.d.comb += [cx.eq(cx_r + 1), j.eq(j_r),
                             *[h.eq(hr + c) for h, hr, c in zip(hs, hs_r, s7_c, strict=True)]]
        with m.If(s7_v):
            m.d.sync += [ay_r.eq(ay), cy_r.eq(cy), rfirst_r.eq(rfirst), rlast_r.eq(rlast),
                         ax_r.eq(ax), cx_r.eq(cx), j_r.eq(j), xlast_r.eq(xlast),
                         *[a.eq(b) for a, b in zip(hs_r, hs, strict=True)]]
        s8_v, s8_sof = Signal(), Signal()
        s8_j = Signal(cb)
        s8_hs = regs("s8_hs", 3, SUM_BITS)
        s8_cx, s8_cy = Signal(cb + 1), Signal(cb + 1)
        s8_rfirst, s8_rlast, s8_last = Signal(), Signal(), Signal()
        m.d.sync += [s8_v.eq(s7_v & xlast), s8_sof.eq(s7_sof), s8_j.eq(j), s8_cx.eq(cx),
                     s8_cy.eq(cy), s8_rfirst.eq(rfirst), s8_rlast.eq(rlast),
                     s8_last.eq(s7_xe & s7_ye),
                     *[a.eq(b) for a, b in zip(s8_hs, hs, strict=True)]]

        # ---- S9: vertical accumulation in a memory of out_w column sums --------------------------
        acc_depth = max_tensor_width(cfg)
        acc_waddr, acc_wdata, acc_wen, acc_raddr, acc_rdata = reg_ram(
            m, platform, "accmem", acc_depth, 3 * SUM_BITS)
        m.d.comb += acc_raddr.eq(s8_j)
        s9_v, s9_sof, s9_last = Signal(), Signal(), Signal()
        s9_j = Signal(cb)
        s9_hs = regs("s9_hs", 3, SUM_BITS)
        s9_ridx = Signal(2)
        s9_rfirst, s9_rlast = Signal(), Signal()
        m.d.sync += [s9_v.eq(s8_v), s9_sof.eq(s8_sof), s9_last.eq(s8_last), s9_j.eq(s8_j),
                     s9_ridx.eq(Cat(s8_cx != kx_r, s8_cy != ky_r)), s9_rfirst.eq(s8_rfirst),
                     s9_rlast.eq(s8_rlast), *[a.eq(b) for a, b in zip(s9_hs, s8_hs, strict=True)]]
        # S9b: the read data registered, then the add and the write-back. A column's next read
        # comes a whole binned row later, long after this write.
        s9b_v, s9b_sof, s9b_last, s9b_rfirst, s9b_rlast = (Signal(name=f"s9b_{n}") for n in
                                                            ("v", "sof", "last", "rf", "rl"))
        s9b_j = Signal(cb)
        s9b_hs = regs("s9b_hs", 3, SUM_BITS)
        s9b_prev = acc_rdata                # the RAM's registered read data (reg_ram)
        s9b_r = Signal(RECIP_BITS + 1)
        m.d.sync += [s9b_v.eq(s9_v), s9b_sof.eq(s9_sof), s9b_last.eq(s9_last),
                     s9b_rfirst.eq(s9_rfirst), s9b_rlast.eq(s9_rlast), s9b_j.eq(s9_j),
                     s9b_r.eq(p.recip[s9_ridx]),
                     *[a.eq(b) for a, b in zip(s9b_hs, s9_hs, strict=True)]]
        # S9c: the read data once more in a fabric register next to the adder (the RAM sits far
        # from it after placement); the write-back moves a cycle later, still long before the
        # column's next read a binned row later.
        s9c_v, s9c_sof, s9c_last, s9c_rfirst, s9c_rlast = (Signal(name=f"s9c_{n}") for n in
                                                            ("v", "sof", "last", "rf", "rl"))
        s9c_j = Signal(cb)
        s9c_hs = regs("s9c_hs", 3, SUM_BITS)
        s9c_prev = Signal(3 * SUM_BITS, reset_less=True)
        s9c_r = Signal(RECIP_BITS + 1)
        m.d.sync += [s9c_v.eq(s9b_v), s9c_sof.eq(s9b_sof), s9c_last.eq(s9b_last),
                     s9c_rfirst.eq(s9b_rfirst), s9c_rlast.eq(s9b_rlast), s9c_j.eq(s9b_j),
                     s9c_r.eq(s9b_r), s9c_prev.eq(s9b_prev),
                     *[a.eq(b) for a, b in zip(s9c_hs, s9b_hs, strict=True)]]
        vs = regs("vs", 3, SUM_BITS)
        for i in range(3):
            prev = s9c_prev[i * SUM_BITS:(i + 1) * SUM_BITS]
            m.d.comb += vs[i].eq(Mux(s9c_rfirst, 0, prev) + s9c_hs[i])
        m.d.comb += [acc_waddr.eq(s9c_j), acc_wdata.eq(Cat(*vs)),
                     acc_wen.eq(s9c_v & (s9c_j < acc_depth))]
        s10_v, s10_sof, s10_last = Signal(), Signal(), Signal()
        s10_vs = regs("s10_vs", 3, SUM_BITS)
        s10_r = Signal(RECIP_BITS + 1)
        m.d.sync += [s10_v.eq(s9c_v & s9c_rlast), s10_sof.eq(s9c_sof), s10_last.eq(s9c_last),
                     s10_r.eq(s9c_r), *[a.eq(b) for a, b in zip(s10_vs, vs, strict=True)]]

        # ---- S11-S12: divide by the box size (fixed-point reciprocal, split multiply) -----------
        # vs (20 bits) * R (25 bits) as four partial products of at most 10 x 13 bits
        rl, vl = 12, SUM_BITS // 2
        s10b_v, s10b_sof, s10b_last = Signal(), Signal(), Signal()
        s11_v, s11_sof, s11_last = Signal(), Signal(), Signal()
        m.d.sync += [s10b_v.eq(s10_v), s10b_sof.eq(s10_sof), s10b_last.eq(s10_last),
                     s11_v.eq(s10b_v), s11_sof.eq(s10b_sof), s11_last.eq(s10b_last)]
        s11_pp = []
        for i in range(3):
            v_lo, v_hi = s10_vs[i][:vl], s10_vs[i][vl:]
            r_lo, r_hi = s10_r[:rl], s10_r[rl:]
            s11_pp.append([registered_mul(m, platform, a, b, f"recip_mul{i}_{k}")
                           for k, (a, b) in enumerate([(v_lo, r_lo), (v_lo, r_hi),
                                                       (v_hi, r_lo), (v_hi, r_hi)])])
        s11a_v, s11a_sof, s11a_last = Signal(), Signal(), Signal()
        s11a_lo = regs("s11a_lo", 3, 36)
        s11a_hi = regs("s11a_hi", 3, 36)
        m.d.sync += [s11a_v.eq(s11_v), s11a_sof.eq(s11_sof), s11a_last.eq(s11_last),
                     *[s11a_lo[i].eq(s11_pp[i][0] + (s11_pp[i][1] << rl)) for i in range(3)],
                     *[s11a_hi[i].eq(s11_pp[i][2] + (s11_pp[i][3] << rl)) for i in range(3)]]
        s11b_v, s11b_sof, s11b_last = Signal(), Signal(), Signal()
        s11b_p = regs("s11b_p", 3, SUM_BITS + RECIP_BITS + 1)
        m.d.sync += [s11b_v.eq(s11a_v), s11b_sof.eq(s11a_sof), s11b_last.eq(s11a_last),
                     *[s11b_p[i].eq(s11a_lo[i] + (s11a_hi[i] << vl)) for i in range(3)]]
        s12a_v, s12a_sof, s12a_last = Signal(), Signal(), Signal()
        s12a_q = regs("s12a_q", 3, SUM_BITS + 2)
        m.d.sync += [s12a_v.eq(s11b_v), s12a_sof.eq(s11b_sof), s12a_last.eq(s11b_last),
                     *[s12a_q[i].eq(s11b_p[i][RECIP_BITS:] + s11b_p[i][RECIP_BITS - 1])
                       for i in range(3)]]
        s12_v, s12_first = Signal(), Signal()
        s12_u = regs("s12_u", 3, 8)
        first_pending = Signal()
        with m.If(s12a_sof):
            m.d.sync += first_pending.eq(1)
        with m.Elif(s12a_v):
            m.d.sync += first_pending.eq(0)
        m.d.sync += [s12_v.eq(s12a_v), s12_first.eq(first_pending | s12a_sof),
                     *[s12_u[i].eq(Mux(s12a_q[i] > 255, 255, s12a_q[i])) for i in range(3)]]
        m.d.comb += [mfifo.w_data.eq(Cat(*s12_u, s12_first)), mfifo.w_en.eq(s12_v)]

        # ---- stage B: nearest-neighbour upscaler over a ring of box-filtered rows -------------
        # Filler: pops box-filtered pixels (mid_w x mid_h per frame) into a ring memory of
        # C = 2 * max_tensor_width pixels, row after row (addresses wrap). Generator: output row
        # r reads box-filtered row gy = floor(r mid_h / out_h), column c reads floor(c mid_w /
        # out_w) (Bresenham); it issues one tensor pixel per clock once row gy is loaded and the
        # output FIFO has room. The filler may write while fewer than C pixels lie between the
        # start of row gy and its write pointer (``space``), so a row is never overwritten while
        # the generator can still read it, and small ROIs are buffered whole.
        maxw = max_tensor_width(cfg)
        ab = bits_for(maxw - 1) + 1
        ring = 1 << ab
        rm_waddr, rm_wdata, rm_wen, rm_raddr, rm_rdata = reg_ram(m, platform, "rowmem", ring, 24)
        # Control decisions come from flip-flops and zero tests only (150 MHz on ECP5): down
        # counters for row/column ends, availability of the generator's row registered (and
        # conservative: rows only ever complete), freed ring space credited a cycle late.
        mw_m1, mh_m1, mw_a = reg("mw_m1", cb), reg("mh_m1", cb), reg("mw_a", ab + 1)
        ow_m1, oh_m1 = reg("ow_m1", cb), reg("oh_m1", cb)
        mw_is1, mh_is1 = reg("mw_is1"), reg("mh_is1")
        thr_x, thr_y = reg("thr_x", signed(cb + 2)), reg("thr_y", signed(cb + 2))
        mw_s, mh_s = reg("mw_s", signed(cb + 2)), reg("mh_s", signed(cb + 2))
        m.d.sync += [mw_m1.eq(p.mid_w - 1), mh_m1.eq(p.mid_h - 1), mw_a.eq(p.mid_w),
                     mw_is1.eq(p.mid_w == 1), mh_is1.eq(p.mid_h == 1),
                     ow_m1.eq(p.out_w - 1), oh_m1.eq(p.out_h - 1),
                     thr_x.eq(p.mid_w - p.out_w), thr_y.eq(p.mid_h - p.out_h),
                     mw_s.eq(p.mid_w), mh_s.eq(p.mid_h)]
        head = mfifo.r_data
        # filler: columns left in the row, rows left in the frame, rows loaded, ring pointer
        fx_left, rows_left, loaded = Signal(cb), Signal(cb), Signal(cb + 1)
        fopen, fdone = Signal(), Signal()
        wptr, space = Signal(ab), Signal(ab + 1)
        # generator: columns/rows left, box-filtered row gy, its ring base, read address
        gbusy, g_at_first = Signal(), Signal()
        gx_left, gr_left, gy = Signal(cb), Signal(cb), Signal(cb + 1)
        gbase, ra = Signal(ab), Signal(ab)
        dx, dy = Signal(signed(cb + 2)), Signal(signed(cb + 2))   # Bresenham e - (Lo - Lm)
        start, accept, drop = Signal(), Signal(), Signal()
        with m.If(mfifo.r_rdy):
            with m.If(head[24]):
                # a new frame; wait while a complete previous frame is still being generated
                m.d.comb += start.eq(~(gbusy & fdone))
            with m.Elif(fopen & ~fdone):
                m.d.comb += accept.eq(space != 0)
            with m.Else():
                m.d.comb += drop.eq(1)       # outside a frame or beyond its last row
        m.d.comb += mfifo.r_en.eq(start | accept | drop)
        row_end = Signal()
        m.d.comb += row_end.eq(Mux(start, mw_is1, fx_left == 0))
        m.d.comb += [rm_waddr.eq(Mux(start, 0, wptr)), rm_wdata.eq(head[:24]),
                     rm_wen.eq(start | accept)]
        with m.If(start):
            m.d.sync += [fx_left.eq(Mux(mw_is1, 0, mw_m1 - 1)), wptr.eq(1), fopen.eq(1),
                         loaded.eq(mw_is1), rows_left.eq(Mux(mw_is1, mh_m1 - 1, mh_m1)),
                         fdone.eq(mw_is1 & mh_is1)]
        with m.Elif(accept):
            m.d.sync += [fx_left.eq(Mux(row_end, mw_m1, fx_left - 1)), wptr.eq(wptr + 1)]
            with m.If(row_end):
                m.d.sync += [loaded.eq(loaded + 1), rows_left.eq(rows_left - 1),
                             fdone.eq(rows_left == 0)]

        out_ok = Signal()
        m.d.sync += out_ok.eq(ofifo.level < FIFO_DEPTH - OUT_MARGIN)
        # is row gy (or gy + 1, after an advance) loaded? registered one cycle late
        av0, av1, gy_inc_r, start_r = Signal(), Signal(), Signal(), Signal()
        gy_inc = Signal()
        m.d.sync += [av0.eq(gy < loaded), av1.eq(gy + 1 < loaded), start_r.eq(start)]
        issue = Signal()
        m.d.comb += issue.eq(gbusy & ~start_r & Mux(gy_inc_r, av1, av0) & out_ok)
        g_first, g_last, col_end = Signal(), Signal(), Signal()
        m.d.comb += [col_end.eq(gx_left == 0), g_first.eq(g_at_first),
                     g_last.eq(col_end & (gr_left == 0)), gy_inc.eq(issue & col_end & (dy >= 0)),
                     rm_raddr.eq(ra)]
        m.d.sync += gy_inc_r.eq(gy_inc & ~start)
        # ring space: minus the pixel written, plus the row freed last cycle (both precomputed)
        # (one adder each: the operand, mid_w or mid_w - 1 / 0 or -1, is a register mux)
        mw_a1 = Signal(signed(ab + 2))
        m.d.sync += mw_a1.eq(p.mid_w - 1)
        sp_keep, sp_take = Signal(ab + 2), Signal(ab + 2)
        m.d.comb += [sp_keep.eq(space + Mux(gy_inc_r, mw_a, 0)),
                     sp_take.eq(space + Mux(gy_inc_r, mw_a1, -1))]
        with m.If(start):
            m.d.sync += [gbusy.eq(1), g_at_first.eq(1), gx_left.eq(ow_m1), gr_left.eq(oh_m1),
                         gy.eq(0), gbase.eq(0), ra.eq(0), dx.eq(thr_x), dy.eq(thr_y),
                         space.eq(ring - 1)]
        with m.Else():
            m.d.sync += space.eq(Mux(accept, sp_take, sp_keep))
            with m.If(issue):
                m.d.sync += g_at_first.eq(0)
                with m.If(col_end):
                    m.d.sync += [gx_left.eq(ow_m1), dx.eq(thr_x), gr_left.eq(gr_left - 1),
                                 dy.eq(Mux(dy >= 0, dy + thr_y, dy + mh_s))]
                    with m.If(dy >= 0):
                        m.d.sync += [gy.eq(gy + 1), gbase.eq(gbase + mw_a),
                                     ra.eq(gbase + mw_a)]
                    with m.Else():
                        m.d.sync += ra.eq(gbase)
                    with m.If(gr_left == 0):
                        m.d.sync += gbusy.eq(0)
                with m.Else():
                    m.d.sync += [gx_left.eq(gx_left - 1),
                                 dx.eq(Mux(dx >= 0, dx + thr_x, dx + mw_s)),
                                 ra.eq(ra + (dx >= 0))]

        # issue -> (2) row memory data -> normalization (6) -> output FIFO
        def delay(sig, n, name):
            for k in range(n):
                nxt = Signal(len(sig), name=f"{name}_d{k}")
                m.d.sync += nxt.eq(sig)
                sig = nxt
            return sig

        b_v = delay(issue, 2, "b_v")
        b_first = delay(issue & g_first, 2, "b_first")
        b_last = delay(issue & g_last, 2, "b_last")
        b_u = [rm_rdata[8 * i:8 * (i + 1)] for i in range(3)]

        # ---- S13-S14: normalization: multiply, round, shift, offset, clamp --------------------
        s13_v, s13_first, s13_last = (delay(x, 2, n) for x, n in
                                      ((b_v, "s13_v"), (b_first, "s13_f"), (b_last, "s13_l")))
        s13_t = [registered_mul(m, platform, b_u[i], p.norm_mul[i], f"norm_mul{i}")
                 for i in range(3)]
        s13b_v, s13b_first, s13b_last = Signal(), Signal(), Signal()
        s13b_t = regs("s13b_t", 3, 25)
        m.d.sync += [s13b_v.eq(s13_v), s13b_first.eq(s13_first), s13b_last.eq(s13_last),
                     *[s13b_t[i].eq(s13_t[i] + rnd[i]) for i in range(3)]]
        s13c_v, s13c_first, s13c_last = Signal(), Signal(), Signal()
        s13c_t = regs("s13c_t", 3, 25)
        m.d.sync += [s13c_v.eq(s13b_v), s13c_first.eq(s13b_first), s13c_last.eq(s13b_last),
                     *[s13c_t[i].eq(s13b_t[i] >> p.norm_shift[i]) for i in range(3)]]
        s13d_v, s13d_first, s13d_last = Signal(), Signal(), Signal()
        s13d_t = regs("s13d_t", 3, signed(27))
        m.d.sync += [s13d_v.eq(s13c_v), s13d_first.eq(s13c_first), s13d_last.eq(s13c_last),
                     *[s13d_t[i].eq(s13c_t[i] + p.norm_off[i]) for i in range(3)]]
        s14_v, s14_last, s14_first = Signal(), Signal(), Signal()
        s14_q = [data_reg(signed(8), name=f"s14_q{i}") for i in range(3)]
        m.d.sync += [s14_v.eq(s13d_v), s14_last.eq(s13d_last), s14_first.eq(s13d_first)]
        for i in range(3):
            t = s13d_t[i]
            m.d.sync += s14_q[i].eq(Mux(t > 127, 127, Mux(t < -128, -128, t)))

        # ---- output FIFO ---------------------------------------------------------------------
        beat = Signal(TENSOR_LAYOUT)
        m.d.comb += [beat.first.eq(s14_first), beat.last.eq(s14_last),
                     *[beat.data[i].eq(s14_q[i]) for i in range(3)]]
        m.d.comb += [ofifo.w_data.eq(beat), ofifo.w_en.eq(s14_v)]
        # registered output stage: o.valid / o.payload come straight from flip-flops
        out_v = Signal()
        out_d = Signal(TENSOR_LAYOUT.size)
        m.d.comb += [ofifo.r_en.eq(~out_v | self.o.ready),
                     self.o.valid.eq(out_v), self.o.payload.eq(out_d)]
        with m.If(ofifo.r_en):
            m.d.sync += [out_v.eq(ofifo.r_rdy), out_d.eq(ofifo.r_data)]
        return m
