"""Pixel-path top: CSI-2 RX -> ISP, with flat, plainly named ports (for lint, synthesis and
harnesses).

Ports (N = ``config.csi2_lanes_bytes``):

* ``in_data[8N]`` (byte 0 in bits 7:0), ``in_n``, ``in_last``, ``in_valid`` -> ``in_ready``: the
  byte stream (see :func:`hw.csi2.beat_layout`);
* ``out_data[24]`` (three int8 channels, channel 0 in bits 7:0), ``out_first``, ``out_last``,
  ``out_valid``, ``out_ready``: the NHWC tensor stream (one pixel per beat);
* ``params``: the ISP parameters, a plain vector packed as :func:`hw.isp.params_layout`;
* ``status_valid``, ``status_frame``, ``status_flags``: one strobe per closed frame (RX verdict);
* ``cnt_<name>`` (32 bits) for every RX counter of :data:`hw.csi2.COUNTER_NAMES`; ``in_frame``.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config
from hw.csi2 import COUNTER_NAMES
from hw.csi2_rx import Csi2Rx
from hw.isp import Isp, params_layout

__all__ = ["PixelTop", "top"]


class PixelTop(wiring.Component):
    def __init__(self, config: Config):
        self.config = config
        n = config.csi2_lanes_bytes
        ports = {
            "in_data": In(8 * n), "in_n": In(n.bit_length()), "in_last": In(1), "in_valid": In(1),
            "in_ready": Out(1),
            "out_data": Out(24), "out_first": Out(1), "out_last": Out(1), "out_valid": Out(1),
            "out_ready": In(1),
            "params": In(params_layout(config).size),
            "status_valid": Out(1), "status_frame": Out(16), "status_flags": Out(8),
            "in_frame": Out(1),
        }
        ports.update({f"cnt_{name}": Out(32) for name in COUNTER_NAMES})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = Csi2Rx(self.config)
        m.submodules.isp = isp = Isp(self.config)
        wiring.connect(m, rx.o, isp.i)
        n = self.config.csi2_lanes_bytes
        m.d.comb += [
            rx.i.payload.data.as_value().eq(self.in_data), rx.i.payload.n.eq(self.in_n),
            rx.i.payload.last.eq(self.in_last), rx.i.valid.eq(self.in_valid),
            self.in_ready.eq(rx.i.ready),
            self.out_data.eq(isp.o.payload.data.as_value()), self.out_first.eq(isp.o.payload.first),
            self.out_last.eq(isp.o.payload.last), self.out_valid.eq(isp.o.valid),
            isp.o.ready.eq(self.out_ready),
            isp.params.as_value().eq(self.params),
            self.status_valid.eq(rx.status_valid), self.status_frame.eq(rx.status.frame),
            self.status_flags.eq(rx.status.flags), self.in_frame.eq(rx.in_frame),
        ]
        assert len(self.in_data) == 8 * n
        for i, name in enumerate(COUNTER_NAMES):
            m.d.comb += getattr(self, f"cnt_{name}").eq(rx.counters[i])
        return m


def top(config: Config) -> PixelTop:
    """Factory registered in hw/tops.py as "pixel"."""
    return PixelTop(config)
