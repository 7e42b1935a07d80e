"""cocotb bench of the ISP (hw/isp.py) against models/isp.py.

Parameters (``tb_params``): ``cases`` = list of dicts (photo, mode, pattern, roi, size, channels,
black, gain, norm_mul, norm_shift, norm_off, noise seed), ``stall`` (output back-pressure
probability), ``idle`` (input gap probability), ``seed``, ``max_line``. All cases run in one
simulation, one after the other (the parameters port changes between frames). Model -> checker per
frame; at the end nothing may be left in flight. With no back-pressure: without upscaling the ISP
must take one sensor pixel per clock; when upscaling (the output is the rate limit) the whole frame
may take at most input + output pixels cycles, and a case marked ``dense`` (input small next to the
output) must emit one tensor pixel per clock from its first to its last output.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np

from hw.csi2 import PIXEL_LAYOUT
from hw.isp import TENSOR_LAYOUT, params_layout
from models.isp import IspParams, isp_frame
from sim.cocotb_run import tb_params
from sim.sensor import Sensor
from tests.hw.tb_array_common import Sink, Source, idle_check, pack, run, start, unpack

#: cocotb ``timeout_time`` of this bench's tests in simulated ms (a backstop behind the
#: bounded waits, 100 k cycles per ms): the CI frames take 0.5 ms (50 k cycles).
TIMEOUT_MS = 100


def frame_beats(raw: np.ndarray) -> list[int]:
    h, w = raw.shape
    out = []
    flat = raw.reshape(-1).tolist()
    for i, v in enumerate(flat):
        x = i % w
        out.append(pack(PIXEL_LAYOUT, {"pix": v, "sof": int(i == 0), "sol": int(x == 0)}))
    return out


class IspTB:
    def __init__(self, dut, cfg: dict):
        self.dut = dut
        self.cfg = cfg
        self.rng = random.Random(cfg.get("seed", 0))
        self.max_line = cfg.get("max_line", 4096)

    def case(self, c: dict):
        sensor = Sensor(c["mode"], pattern=c["pattern"], seed=c.get("seed", 0),
                        shot_noise=c.get("shot", 0.0), read_noise=c.get("read", 0.0))
        raw = sensor.capture(c["photo"])
        kw = {k: tuple(c[k]) for k in ("black", "gain", "norm_mul", "norm_shift", "norm_off")
              if k in c}
        p = IspParams.make(sensor.width, sensor.height, roi=c.get("roi"), size=c.get("size"),
                           channels=c["channels"], pattern=c["pattern"],
                           max_line_pixels=self.max_line, **kw)
        return raw, p

    async def run(self):
        dut = self.dut
        layout = params_layout_from_width(len(dut.params), self.max_line)
        first = True
        for c in self.cfg["cases"]:
            raw, p = self.case(c)
            want = isp_frame(raw, p)
            dut.params.value = layout.const(p.hw_fields()).as_bits()
            src = Source(dut.i__valid, dut.i__ready, dut.i__payload, frame_beats(raw), self.rng,
                         idle=self.cfg.get("idle", 0.0))
            sink = Sink(dut.o__valid, dut.o__ready, dut.o__payload, self.rng,
                        stall=c.get("stall", self.cfg.get("stall", 0.0)))
            await start(dut, [src], [sink], clock=first)
            first = False
            npx = want.shape[0] * want.shape[1]
            cycles = await run(dut, [src], [sink], lambda s=sink, n=npx: len(s.beats) >= n,
                               max_cycles=(raw.size + npx) * 20 + 1000,
                               what=f"ISP: {npx} tensor pixels of {c['photo']} {c['mode']} "
                                    f"roi={p.roi} size={p.size}")
            await idle_check(dut, [sink], 40)
            got = [unpack(TENSOR_LAYOUT, b) for b in sink.beats]
            ch = p.channels
            arr = np.array([g["data"][:ch] for g in got], dtype=np.int64).reshape(want.shape)
            assert [g["first"] for g in got] == [1] + [0] * (npx - 1), "first marker"
            assert [g["last"] for g in got] == [0] * (npx - 1) + [1], "last marker"
            bad = np.argwhere(arr != want)
            assert bad.size == 0, f"case {c}: {len(bad)} mismatches, first at {bad[:3].tolist()}"
            up = p.size != p.mid_size
            if sink.stall == 0.0 and self.cfg.get("idle", 0.0) == 0.0 and not up:
                # one pixel per clock: the source was never refused
                span = src.last_cycle - src.first_cycle + 1
                assert span == raw.size, f"ISP took {span} cycles for {raw.size} pixels"
            elif sink.stall == 0.0 and self.cfg.get("idle", 0.0) == 0.0:
                total = sink.cycles[-1] - src.first_cycle + 1
                assert total <= raw.size + npx + 64, f"upscale took {total} cycles"
                if c.get("dense"):
                    span = sink.cycles[-1] - sink.cycles[0] + 1
                    assert span == npx, f"{npx} tensor pixels took {span} cycles"
            dut._log.info(f"case ok: {c['photo']} {c['mode']} {c['pattern']} ch={ch} "
                          f"roi={p.roi} size={p.size} cycles={cycles}")


def params_layout_from_width(width: int, max_line: int):
    from hw.config import preset
    lay = params_layout(preset("tiny").replace(max_line_pixels=max_line))
    assert lay.size == width, (lay.size, width)
    return lay


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def isp_frames(dut):
    await IspTB(dut, tb_params()).run()
