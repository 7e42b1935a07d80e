"""CSI-2 receiver (packet layer): byte-stream bursts -> 10-bit pixel stream with frame/line markers.

Behaviour is exactly :func:`models.csi2.parse` (see its docstring for the rules, counters and
flags).

Contract:

* ``i``: ``config.csi2_lanes_bytes`` (1, 2 or 4) bytes per beat (:func:`hw.csi2.beat_layout`); every
  burst (one packet, D-PHY SoT..EoT) starts at byte 0 of a beat and ends with ``last``.
* ``o``: one pixel per beat (:data:`hw.csi2.PIXEL_LAYOUT`) at up to 1 pixel per clock; honours
  ``o.ready``. Pixels of a long packet leave before its CRC is known; a bad packet flags its frame.
* ``status`` / ``status_valid``: one record (a one-cycle strobe, never back-pressured) per closed
  frame (frame number from FS, :class:`hw.csi2.ErrorFlag` bits).
* ``counters``: 32-bit counters in the order of :data:`hw.csi2.COUNTER_NAMES`.
* Never hangs: a burst is always consumed up to ``last``; a header error drops the burst; the next
  FS opens a new frame whatever the state.

Per packet the RX spends two cycles decoding the header, one checking the CRC and a few draining the
unpacker, so a line of W RAW10 pixels takes about W + 10 cycles at 4 bytes per beat.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config
from hw.csi2 import (
    COUNTER_NAMES,
    CRC_SEED,
    ECC_MASKS,
    PIXEL_LAYOUT,
    STATUS_LAYOUT,
    DataType,
    ErrorFlag,
    beat_layout,
    crc16_byte,
    ecc_parity,
)

__all__ = ["Csi2Rx"]

_CNT = {n: i for i, n in enumerate(COUNTER_NAMES)}


def _crc_bytes(crc, data_bytes):
    """CRC-16/MCRF4XX over ``data_bytes`` (list of 8-bit values) as flat XOR trees.

    The CRC is linear over GF(2): each output bit is the parity of a fixed subset of the input bits
    (16 CRC bits then 8 bits per byte), found here by evaluating unit vectors in Python.
    """
    k = len(data_bytes)
    nin = 16 + 8 * k

    def ref(vec):
        c = vec & 0xFFFF
        for i in range(k):
            c = crc16_byte(c, (vec >> (16 + 8 * i)) & 0xFF)
        return c

    cols = [ref(1 << b) for b in range(nin)]
    inputs = Cat(crc, *data_bytes)
    masks = [sum(1 << b for b in range(nin) if (cols[b] >> o) & 1) for o in range(16)]
    return Cat(*[(inputs & mk).xor() for mk in masks])


class Csi2Rx(wiring.Component):
    """The receiver (module docstring)."""

    def __init__(self, config: Config):
        self.config = config
        self.nbytes = n = config.csi2_lanes_bytes
        if n not in (1, 2, 4):
            raise ValueError("hw.csi2_rx.Csi2Rx supports csi2_lanes_bytes of 1, 2 or 4")
        super().__init__({
            "i": In(stream.Signature(beat_layout(n))),
            "o": Out(stream.Signature(PIXEL_LAYOUT)),
            "status": Out(STATUS_LAYOUT),
            "status_valid": Out(1),
            "counters": Out(data.ArrayLayout(32, len(COUNTER_NAMES))),
            "in_frame": Out(1),
        })

    def elaborate(self, platform):  # noqa: C901  (one FSM)
        m = Module()
        N = self.nbytes
        beat = self.i.payload
        take = Signal()
        m.d.comb += take.eq(self.i.valid & self.i.ready)
        nb = Signal(range(N + 1))        # valid bytes in this beat
        m.d.comb += nb.eq(Mux(beat.last, beat.n, N))

        # ---- counters and frame state ------------------------------------------------------
        inc = {name: Signal(name=f"inc_{name}") for name in COUNTER_NAMES}
        cnt = [Signal(32, name=f"cnt_{name}") for name in COUNTER_NAMES]
        for name, c in zip(COUNTER_NAMES, cnt, strict=True):
            inc_r = Signal(name=f"inc_r_{name}")      # one cycle later: keeps decode off the adder
            m.d.sync += inc_r.eq(inc[name])
            with m.If(inc_r):
                m.d.sync += c.eq(c + 1)
            m.d.comb += self.counters[_CNT[name]].eq(c)
        in_frame = Signal()
        frame = Signal(16)
        flags = Signal(8)
        flag_set = Signal(8)               # OR'ed into flags this cycle (if a frame is open after)
        pending_sof = Signal()
        line_first = Signal()
        m.d.comb += self.in_frame.eq(in_frame)

        # ---- header ------------------------------------------------------------------------
        hdr = Signal(32)
        hb = Signal(range(4 // N + 1))     # header beats received
        hdr_last = Signal()
        h24 = hdr[:24]
        ecc = hdr[24:]
        # The syndrome is linear in the header bytes: it is accumulated as the header beats arrive
        # (ECC byte bits 5:0 XOR the parity of the data bytes), so decoding starts from a register.
        syn = Signal(6)

        def syn_contrib(j, byte):
            if j == 3:
                return byte[:6]
            return Cat(*[(byte & ((mask >> (8 * j)) & 0xFF)).xor() for mask in ECC_MASKS])
        rsv = ecc[6:]
        flip = Signal(24)
        single = Signal()
        m.d.comb += [
            flip.eq(Cat(*[(syn == ecc_parity(1 << d)) for d in range(24)])),
            single.eq((syn == 1) | (syn == 2) | (syn == 4) | (syn == 8) | (syn == 16)
                      | (syn == 32)),
        ]
        hc = Signal(24)
        ok, corrected, detected = Signal(), Signal(), Signal()
        m.d.comb += [
            hc.eq(h24 ^ Mux(rsv == 0, flip, 0)),
            ok.eq((syn == 0) & (rsv == 0)),
            corrected.eq(((syn == 0) & ((rsv == 1) | (rsv == 2)))
                         | ((rsv == 0) & (single | (flip != 0)))),
            detected.eq(~ok & ~corrected),
        ]
        # decode results, registered (state ECC) before DECODE acts on them
        hcr = Signal(24)
        corr_r, det_r = Signal(), Signal()
        dt = hcr[:6]
        wc_in = hcr[8:24]

        # ---- packet registers -------------------------------------------------------------
        raw10 = Signal()
        pix_en = Signal()
        rem = Signal(signed(19))          # payload bytes still expected (wc - bytes so far)
        crc = Signal(16, init=CRC_SEED)
        crc_rx = Signal(16)

        # ---- byte buffer between the input side and the unpacker --------------------------
        CAP = 12
        buf = Signal(8 * CAP)
        bcnt = Signal(range(CAP + 1))
        do_pop = Signal()
        group = Mux(raw10, 5, 1)
        # accepted payload beat, registered: the CRC and the buffer take it one cycle later
        pb_v = Signal()
        pb_data = Signal(8 * N)
        pb_m = Signal(range(N + 1))       # payload bytes in it
        pb_push = Signal()                # they go to the unpacker (pixel packet in a frame)
        m.d.sync += [pb_v.eq(0), pb_data.eq(Cat(*beat.data))]   # data: no enable (pb_v says)

        # ---- emitter -------------------------------------------------------------------------
        px = [Signal(10, name=f"px{k}") for k in range(4)]
        ecount = Signal(range(5))
        # ecount == 0 / == 1 kept as flip-flops: do_pop (which steers the whole byte buffer) is
        # then one LUT of flip-flops and the byte-count compare
        ec0, ec1 = Signal(init=1), Signal()
        eidx = Signal(2)
        o = self.o
        m.d.comb += [o.valid.eq(~ec0), o.payload.pix.eq(Cat(*px).word_select(eidx, 10)),
                     o.payload.sof.eq(pending_sof), o.payload.sol.eq(line_first)]
        xfer = Signal()
        m.d.comb += xfer.eq(o.valid & o.ready)
        with m.If(xfer):
            m.d.sync += [pending_sof.eq(0), line_first.eq(0)]
        emit_free = Signal()
        m.d.comb += emit_free.eq(ec0 | (ec1 & o.ready))
        m.d.comb += do_pop.eq(emit_free & (bcnt >= group))
        with m.If(do_pop):
            with m.If(raw10):
                lsb = buf[32:40]
                m.d.sync += [px[k].eq(Cat(lsb[2 * k:2 * k + 2], buf[8 * k:8 * k + 8]))
                             for k in range(4)]
                m.d.sync += [ecount.eq(4), eidx.eq(0), ec0.eq(0), ec1.eq(0)]
            with m.Else():
                m.d.sync += [px[0].eq(Cat(Const(0, 2), buf[:8])), ecount.eq(1), eidx.eq(0),
                             ec0.eq(0), ec1.eq(1)]
        with m.Elif(xfer):
            m.d.sync += [ecount.eq(ecount - 1), eidx.eq(eidx + 1), ec0.eq(ec1),
                         ec1.eq(ecount == 2)]

        # buffer update: pop `group` bytes from the front, append the registered beat's payload
        # bytes after the rest. Both outcomes (pop / no pop) are built from registers only and
        # selected last, so do_pop (which depends on o.ready) drives just the final mux.
        push = Signal()
        m.d.comb += push.eq(pb_v & pb_push)
        nbufs, ncnts = [], []
        for popped in (False, True):
            base = Signal(range(CAP + 1), name=f"base_{int(popped)}")
            m.d.comb += base.eq(bcnt - group if popped else bcnt)
            shifted = Signal(8 * CAP, name=f"shifted_{int(popped)}")
            m.d.comb += shifted.eq(Mux(raw10, buf >> 40, buf >> 8) if popped else buf)
            incoming = Signal(8 * CAP, name=f"incoming_{int(popped)}")
            m.d.comb += incoming.eq(pb_data << (base * 8))
            nb_ = Signal(8 * CAP, name=f"nbuf_{int(popped)}")
            for s_ in range(CAP):
                m.d.comb += nb_[8 * s_:8 * s_ + 8].eq(
                    Mux(s_ < base, shifted[8 * s_:8 * s_ + 8], incoming[8 * s_:8 * s_ + 8]))
            nc = Signal(range(CAP + 1), name=f"ncnt_{int(popped)}")
            m.d.comb += nc.eq(base + Mux(push, pb_m, 0))
            nbufs.append(nb_)
            ncnts.append(nc)
        bcnt_next = Signal(range(CAP + 1))
        m.d.comb += bcnt_next.eq(Mux(do_pop, ncnts[1], ncnts[0]))
        # room for the pending beat and one more (<= N bytes each), registered one cycle ahead
        room = Signal()
        m.d.sync += [buf.eq(Mux(do_pop, nbufs[1], nbufs[0])), bcnt.eq(bcnt_next),
                     room.eq(bcnt_next <= CAP - 2 * N)]

        # ---- status output ----------------------------------------------------------------
        st_v = Signal()
        st_frame = Signal(16)
        st_flags = Signal(8)
        m.d.comb += [self.status_valid.eq(st_v), self.status.frame.eq(st_frame),
                     self.status.flags.eq(st_flags)]
        m.d.sync += st_v.eq(0)

        def close_frame(extra):
            f = flags | flag_set | extra
            m.d.sync += [st_v.eq(1), st_frame.eq(frame), st_flags.eq(f)]
            m.d.comb += inc["frames_flagged"].eq(f != 0)

        # flags: OR in flag_set while a frame is open (FS overrides below)
        with m.If(in_frame):
            m.d.sync += flags.eq(flags | flag_set)

        # ---- payload lane bookkeeping -----------------------------------------------------
        pay_m = Signal(range(N + 1))
        # Facts about `rem` the next beat needs, registered one beat ahead (non-last beats are full,
        # so the next beat sees rem - N): rem <= 0, rem < N, rem's low bits, rem == k, rem == k-1.
        r_le0, r_small, r_low = Signal(), Signal(), Signal(3)
        eq_lo = Signal(N)                 # eq_lo[k]: byte k of the next beat is the CRC LSB
        eq_hi = Signal(N)                 # eq_hi[k]: ... the CRC MSB

        def rem_facts(v):
            """(register, value) pairs for the facts of remaining count ``v``."""
            return [r_le0.eq(v <= 0), r_small.eq(v < N), r_low.eq(v[:3]),
                    eq_lo.eq(Cat(*[v == k for k in range(N)])),
                    eq_hi.eq(Cat(*[v == k - 1 for k in range(N)]))]

        m.d.comb += pay_m.eq(Mux(r_le0, 0, Mux(r_small & (r_low < nb), r_low, nb)))
        pb_bytes = [pb_data[8 * i:8 * i + 8] for i in range(N)]
        cand = [crc] + [_crc_bytes(crc, pb_bytes[:k]) for k in range(1, N + 1)]
        with m.If(pb_v):
            with m.Switch(pb_m):
                for k in range(N + 1):
                    with m.Case(k):
                        m.d.sync += crc.eq(cand[k])

        with m.FSM(name="rx"):
            with m.State("HDR"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take):
                    m.d.sync += hdr.word_select(hb, 8 * N).eq(Cat(*beat.data))
                    with m.Switch(hb):
                        for h in range(4 // N):
                            with m.Case(h):
                                acc = syn if h else Const(0, 6)
                                for i in range(N):
                                    acc = acc ^ syn_contrib(h * N + i, beat.data[i])
                                m.d.sync += syn.eq(acc)
                    with m.If(beat.last & ((hb * N + beat.n) < 4)):
                        m.d.comb += [inc["length_errors"].eq(1),
                                     flag_set.eq(ErrorFlag.LENGTH.value)]
                        m.d.sync += hb.eq(0)
                    with m.Elif(hb == 4 // N - 1):
                        m.d.sync += [hb.eq(0), hdr_last.eq(beat.last)]
                        m.next = "ECC"
                    with m.Else():
                        m.d.sync += hb.eq(hb + 1)

            with m.State("ECC"):
                m.d.sync += [hcr.eq(hc), corr_r.eq(corrected), det_r.eq(detected)]
                m.next = "DECODE"

            with m.State("DECODE"):
                with m.If(det_r):
                    m.d.comb += [inc["ecc_detected"].eq(1), flag_set.eq(ErrorFlag.ECC.value)]
                    with m.If(hdr_last):
                        m.next = "HDR"
                    with m.Else():
                        m.next = "DROP"
                with m.Else():
                    m.d.comb += inc["ecc_corrected"].eq(corr_r)
                    with m.If(dt < 0x10):
                        ovl = ~hdr_last
                        m.d.comb += inc["length_errors"].eq(ovl)
                        with m.If(dt == DataType.FS.value):
                            with m.If(in_frame):
                                m.d.comb += inc["sync_errors"].eq(1)
                                close_frame(ErrorFlag.SYNC.value)
                            m.d.comb += inc["frames"].eq(1)
                            m.d.sync += [in_frame.eq(1), frame.eq(wc_in), pending_sof.eq(1),
                                         flags.eq(Mux(ovl, ErrorFlag.LENGTH.value, 0))]
                        with m.Elif(dt == DataType.FE.value):
                            with m.If(in_frame):
                                close_frame(0)
                                m.d.sync += [in_frame.eq(0), flags.eq(0)]
                            with m.Else():
                                m.d.comb += inc["sync_errors"].eq(1)
                        with m.Else():
                            m.d.comb += flag_set.eq(Mux(ovl, ErrorFlag.LENGTH.value, 0))
                        with m.If(ovl):
                            m.next = "DROP"
                        with m.Else():
                            m.next = "HDR"
                    with m.Else():
                        m.d.comb += inc["sync_errors"].eq(~in_frame)
                        m.d.sync += [raw10.eq(dt == DataType.RAW10.value),
                                     pix_en.eq(in_frame & ((dt == DataType.RAW10.value)
                                                           | (dt == DataType.RAW8.value))),
                                     line_first.eq(1), rem.eq(wc_in), *rem_facts(wc_in),
                                     crc.eq(CRC_SEED),
                                     crc_rx.eq(0)]
                        with m.If(hdr_last):
                            m.d.comb += [inc["length_errors"].eq(1),
                                         flag_set.eq(ErrorFlag.LENGTH.value)]
                            m.next = "HDR"
                        with m.Else():
                            m.next = "PAYLOAD"

            with m.State("PAYLOAD"):
                # room check on bcnt alone: room for the pending beat and this one (<= N each)
                m.d.comb += self.i.ready.eq(~pix_en | room)
                with m.If(take):
                    m.d.sync += [pb_v.eq(1), pb_m.eq(pay_m),
                                 pb_push.eq(pix_en),
                                 # saturate far below -2 (an endless overlong burst must not wrap)
                                 rem.eq(Mux(rem < -(1 << 17), rem, rem - nb)),
                                 *rem_facts(rem - N)]
                    for k in range(N):
                        with m.If((k < nb) & eq_lo[k]):
                            m.d.sync += crc_rx[:8].eq(beat.data[k])
                        with m.If((k < nb) & eq_hi[k]):
                            m.d.sync += crc_rx[8:].eq(beat.data[k])
                    with m.If(beat.last):
                        m.next = "CRCWAIT"

            with m.State("CRCWAIT"):          # the last payload beat enters the CRC this cycle
                m.next = "CHECK"

            with m.State("CHECK"):
                with m.If(rem > -2):
                    m.d.comb += [inc["length_errors"].eq(1), flag_set.eq(ErrorFlag.LENGTH.value)]
                with m.Else():
                    bad_crc = crc != crc_rx
                    ovl = rem < -2
                    m.d.comb += [inc["crc_errors"].eq(bad_crc), inc["length_errors"].eq(ovl),
                                 flag_set.eq(Mux(bad_crc, ErrorFlag.CRC.value, 0)
                                             | Mux(ovl, ErrorFlag.LENGTH.value, 0))]
                m.next = "DRAIN"

            with m.State("DRAIN"):
                with m.If((bcnt < group) & ec0 & ~pb_v):
                    m.d.sync += [bcnt.eq(0), line_first.eq(0)]
                    m.next = "HDR"

            with m.State("DROP"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take & beat.last):
                    m.next = "HDR"
        return m
