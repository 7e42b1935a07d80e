"""cocotb bench of the CSI-2 RX (hw/csi2_rx.py) against models/csi2.parse.

Parameters: ``cases`` (fuzz cases from sw.pixel.fuzz_cases: a corrupted frame then a clean one),
``raw8_frames`` (clean RAW8 frames appended), ``seed``, ``stall`` (pixel output back-pressure),
``idle`` (input gaps). The whole stream runs in one simulation; the checker compares every pixel
beat (value, sof, sol), every status strobe and the final counters with the golden parser, and ends
by checking nothing is left in flight.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np

from hw.csi2 import COUNTER_NAMES, PIXEL_LAYOUT, STATUS_LAYOUT, DataType, beat_layout
from models import csi2
from sim.cocotb_run import tb_params
from sw.pixel import fuzz_cases
from tests.hw.tb_array_common import Sink, Source, idle_check, pack, run, start, unpack

#: cocotb ``timeout_time`` of this bench's tests in simulated ms (a backstop behind the
#: bounded waits, 100 k cycles per ms): the CI cases take up to 1.1 ms (110 k cycles).
TIMEOUT_MS = 100


def burst_beats(bursts, nbytes: int) -> list[int]:
    lay = beat_layout(nbytes)
    out = []
    for b in bursts:
        for s in range(0, len(b), nbytes):
            chunk = b[s:s + nbytes]
            out.append(pack(lay, {"data": list(chunk.ljust(nbytes, b"\0")), "n": len(chunk),
                                  "last": int(s + nbytes >= len(b))}))
    return out


def expected_beats(res: csi2.ParseResult) -> list[dict]:
    out = []
    for ln in res.lines:
        for i, v in enumerate(ln.pixels.tolist()):
            out.append({"pix": v, "sof": int(ln.sof and i == 0), "sol": int(i == 0)})
    return out


class RxTB:
    def __init__(self, dut, cfg: dict):
        self.dut, self.cfg = dut, cfg
        self.rng = random.Random(cfg.get("seed", 0))
        self.nbytes = cfg["nbytes"]
        assert len(dut.i__payload) == beat_layout(self.nbytes).size

    def stream(self) -> list[bytes]:
        cases = fuzz_cases(self.cfg["cases"], self.cfg.get("seed", 0))
        bursts = [b for c in cases for b in c.bursts]
        nrng = np.random.default_rng(self.cfg.get("seed", 0))
        for k in range(self.cfg.get("raw8_frames", 0)):
            raw = nrng.integers(0, 256, (4, 12), dtype=np.uint16) << 2
            bursts += csi2.frame_packets(raw, 1000 + k, dt=DataType.RAW8.value)
        return bursts

    async def run(self):
        dut = self.dut
        n = self.nbytes
        bursts = self.stream()
        gold = csi2.parse(bursts)
        want = expected_beats(gold)
        src = Source(dut.i__valid, dut.i__ready, dut.i__payload, burst_beats(bursts, n), self.rng,
                     idle=self.cfg.get("idle", 0.0))
        sink = Sink(dut.o__valid, dut.o__ready, dut.o__payload, self.rng,
                    stall=self.cfg.get("stall", 0.0))
        statuses = []
        after = [0]

        def tick(cycle):
            if int(dut.status_valid.value):
                st = unpack(STATUS_LAYOUT, int(dut.status.value))
                statuses.append((st["frame"], st["flags"]))
            after[0] = after[0] + 1 if src.done else 0

        await start(dut, [src], [sink])
        await run(dut, [src], [sink], lambda: src.done and after[0] > 40, tick=tick,
                  max_cycles=len(src.beats) * 30 + 2000,
                  what=f"RX: {len(src.beats)} input beats taken, then 40 cycles")
        await idle_check(dut, [sink], 40)
        got = [unpack(PIXEL_LAYOUT, b) for b in sink.beats]
        assert len(got) == len(want), f"{len(got)} pixel beats, golden {len(want)}"
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g == w, f"pixel beat {k}: rtl {g} golden {w}"
        assert statuses == gold.statuses, f"statuses differ: {statuses[:8]} vs {gold.statuses[:8]}"
        cv = int(dut.counters.value)
        counters = {name: (cv >> (32 * i)) & 0xFFFFFFFF for i, name in enumerate(COUNTER_NAMES)}
        assert counters == gold.counters, f"counters {counters} golden {gold.counters}"
        dut._log.info(f"{len(bursts)} bursts, {len(want)} pixels, counters {counters}")


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def rx_stream(dut):
    await RxTB(dut, tb_params()).run()
