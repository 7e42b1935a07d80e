"""cocotb bench of hw.systolic.SystolicArray against models.systolic (run by
tests/hw/test_systolic.py)."""

from __future__ import annotations

import random

import cocotb
from amaranth.hdl import signed
from amaranth.lib import data

from hw.config import Config
from hw.systolic import act_layout, psum_layout
from models.systolic import run_stream
from sim.cocotb_run import tb_params
from tests.hw.tb_array_common import Sink, Source, idle_check, pack, run, start, unpack
from tests.hw.tb_common import TEST_TIMEOUT_MS


class TB:
    def __init__(self, dut, cfg: Config, seed: int):
        self.dut = dut
        self.cfg = cfg
        self.R, self.C = cfg.array_rows, cfg.array_cols
        self.rng = random.Random(seed)
        self.clocked = False

    def stimulus(self, tiles: int, m_range: tuple[int, int], extreme: bool):
        rng, R, C = self.rng, self.R, self.C

        def v():
            return rng.choice([-128, 127]) if extreme else rng.randint(-128, 127)

        wrows, acts = [], []
        for _ in range(tiles):
            wrows += [[v() for _ in range(C)] for _ in range(R)]
            m = rng.randint(*m_range)
            acts += [([v() for _ in range(R)], i == m - 1) for i in range(m)]
        return wrows, acts

    async def phase(self, tiles, m_range, idle_w, idle_a, extreme=False) -> tuple[int, Source]:
        dut = self.dut
        wrows, acts = self.stimulus(tiles, m_range, extreme)
        want = run_stream(self.cfg, wrows, acts)
        la, lp = act_layout(self.cfg), psum_layout(self.cfg)
        lw = data.ArrayLayout(signed(8), self.C)
        wsrc = Source(dut.w_in__valid, dut.w_in__ready, dut.w_in__payload,
                      [pack(lw, r) for r in wrows], self.rng, idle_w)
        asrc = Source(dut.a_in__valid, dut.a_in__ready, dut.a_in__payload,
                      [pack(la, {"data": a, "last": int(last)}) for a, last in acts],
                      self.rng, idle_a)
        # psum_out has no back-pressure: ready is held low to prove it is ignored.
        snk = Sink(dut.psum_out__valid, None, dut.psum_out__payload, self.rng)
        dut.psum_out__ready.value = 0
        await start(dut, [wsrc, asrc], [snk], clock=not self.clocked)
        self.clocked = True
        cycles = await run(dut, [wsrc, asrc], [snk], lambda: len(snk.beats) == len(want),
                           20 * (len(acts) + len(wrows)) + 200,
                           what=f"systolic: {len(want)} output beats of {tiles} tiles")
        for i, (raw, (p, last)) in enumerate(zip(snk.beats, want, strict=True)):
            got = unpack(lp, raw)
            assert got["data"] == p and got["last"] == int(last), \
                f"psum beat {i}: got {got}, want {p} last={last}"
        assert wsrc.done and asrc.done
        await idle_check(dut, [snk], self.R + self.C + 8)
        return cycles, asrc


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def streaming(dut):
    """Back-to-back tiles with enough rows each: activations are accepted every cycle."""
    p = tb_params()
    tb = TB(dut, Config(**p["config"]), p["seed"])
    m_min = p["rows"] + p["cols"] + 2
    _, asrc = await tb.phase(8, (m_min, 2 * m_min), 0.0, 0.0)
    span = asrc.last_cycle - asrc.first_cycle + 1
    assert span == asrc.idx, f"{asrc.idx} activations took {span} cycles (expected no stall)"


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def random_tiles(dut):
    """Tiles of 1.. rows (bank switches faster than weights load), idle gaps, extreme values."""
    p = tb_params()
    tb = TB(dut, Config(**p["config"]), p["seed"] + 1)
    await tb.phase(p["tiles"], (1, 3 * (p["rows"] + p["cols"])), 0.3, 0.3)
    await tb.phase(p["tiles"] // 2, (1, 4), 0.0, 0.5, extreme=True)
    await tb.phase(p["tiles"] // 2, (1, 6), 0.6, 0.0)
