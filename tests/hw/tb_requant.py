"""cocotb bench of hw.requant.Requant against models.requant (run by tests/hw/test_requant.py)."""

from __future__ import annotations

import random

import cocotb
import numpy as np

from hw.requant import RequantCore, requant_in_layout, requant_out_layout
from models.arith import INT32_MAX, INT32_MIN, quantize_multiplier
from models.requant import activation_range, requant
from sim.cocotb_run import tb_params
from tests.hw.tb_array_common import Sink, Source, idle_check, pack, run, start, unpack
from tests.hw.tb_common import TEST_TIMEOUT_MS


def random_beat(rng: random.Random, lanes: int, corner: bool) -> dict:
    def acc():
        if corner and rng.random() < 0.3:
            return rng.choice([INT32_MIN, INT32_MAX, 0, -1, 1, INT32_MIN + 1, INT32_MAX - 1])
        return rng.choice([rng.randint(-(1 << 14), 1 << 14), rng.randint(-(1 << 20), 1 << 20),
                           rng.randint(INT32_MIN, INT32_MAX)])

    def mult():
        r = rng.random()
        if corner and r < 0.15:
            return rng.choice([INT32_MIN, INT32_MAX, 0, -1, 1, 1 << 30])
        if r < 0.6:
            return quantize_multiplier(rng.uniform(1e-4, 4.0))[0]
        return rng.randint(INT32_MIN, INT32_MAX)

    def shift():
        if corner and rng.random() < 0.3:
            return rng.choice([-31, 31, 0, -1, 1, 30, -30])
        return rng.choice([rng.randint(-12, 2), rng.randint(-31, 31)])

    zp = rng.choice([-128, 127, 0, rng.randint(-128, 127)]) if corner else rng.randint(-128, 127)
    act = rng.choice(["NONE", "RELU", "RELU6", "RELU_N1_TO_1", "RANDOM"])
    if act == "RANDOM":
        qmin = rng.randint(-128, 127)
        qmax = rng.randint(qmin, 127)
    else:
        qmin, qmax = activation_range(act, rng.choice([0.01, 0.05, 0.5, 1 / 16]), zp)
    b = {"acc": [acc() for _ in range(lanes)], "bias": [acc() for _ in range(lanes)],
         "mult": [mult() for _ in range(lanes)], "shift": [shift() for _ in range(lanes)],
         "zp": zp, "qmin": qmin, "qmax": qmax, "last": 0}
    if corner and rng.random() < 0.2:  # SRDHM overflow: x == mult == INT32_MIN
        n = rng.randrange(lanes)
        b["acc"][n], b["bias"][n], b["mult"][n], b["shift"][n] = INT32_MIN, 0, INT32_MIN, 0
    return b


def expected(beat: dict) -> list[int]:
    return requant(np.array(beat["acc"]), beat["bias"], beat["mult"], beat["shift"],
                   beat["zp"], beat["qmin"], beat["qmax"]).tolist()


class TB:
    def __init__(self, dut, lanes: int, seed: int):
        self.dut, self.lanes = dut, lanes
        self.rng = random.Random(seed)
        self.lin, self.lout = requant_in_layout(lanes), requant_out_layout(lanes)
        self.clocked = False

    async def phase(self, n: int, idle: float, stall: float, corner: bool) -> int:
        beats = [random_beat(self.rng, self.lanes, corner) for _ in range(n)]
        beats[-1]["last"] = 1
        src = Source(self.dut.i__valid, self.dut.i__ready, self.dut.i__payload,
                     [pack(self.lin, b) for b in beats], self.rng, idle)
        snk = Sink(self.dut.o__valid, self.dut.o__ready, self.dut.o__payload, self.rng, stall)
        await start(self.dut, [src], [snk], clock=not self.clocked)
        self.clocked = True
        cycles = await run(self.dut, [src], [snk], lambda: len(snk.beats) == n, 40 * n + 200,
                           what=f"requant: {n} output beats")
        for i, (b, raw) in enumerate(zip(beats, snk.beats, strict=True)):
            got = unpack(self.lout, raw)
            want = expected(b)
            assert got["data"] == want, f"beat {i}: got {got['data']}, want {want}, input {b}"
            assert got["last"] == b["last"], f"beat {i}: last flag"
        await idle_check(self.dut, [snk], len(RequantCore.FULL) + 8)
        return cycles


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def full_rate(dut):
    """No gaps, no back-pressure: one beat per cycle after the pipeline fills (a SerialRequant:
    one per ``phases`` cycles)."""
    p = tb_params()
    tb = TB(dut, p["lanes"], p["seed"])
    n = p["beats"]
    cycles = await tb.phase(n, 0.0, 0.0, corner=False)
    ph = p.get("phases", 1)
    assert cycles <= n * ph + p["latency"] + 6, f"{n} beats took {cycles} cycles"


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def corners_with_backpressure(dut):
    """Saturation corners, extreme shifts and zero points, idle gaps and random back-pressure."""
    p = tb_params()
    tb = TB(dut, p["lanes"], p["seed"] + 1)
    await tb.phase(p["beats"], 0.3, 0.4, corner=True)
    await tb.phase(p["beats"] // 2, 0.1, 0.8, corner=True)
