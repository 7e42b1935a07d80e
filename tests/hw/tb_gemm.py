"""cocotb bench of hw.gemm.GemmTop against models.gemm (run by tests/hw/test_gemm.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
import numpy as np
from amaranth.hdl import signed
from amaranth.lib import data

from hw.config import Config
from hw.gemm import m_block
from hw.requant import SHIFT_BITS
from models.arith import quantize_multiplier
from models.gemm import streams
from models.requant import activation_range
from sim.cocotb_run import tb_params
from tests.hw.tb_array_common import Sink, Source, idle_check, pack, run, start, unpack

#: cocotb ``timeout_time`` of this bench's tests in simulated ms (a backstop behind the
#: bounded waits, 100 k cycles per ms): CI runs take < 0.03 ms; ``sw.benchmarks.gemm`` runs
#: ``steady_state`` on the default preset (~0.7 ms).
TIMEOUT_MS = 50


class Bundle:
    """Several ports seen as one packed value (field 0 in the low bits)."""

    def __init__(self, *ports):
        self.ports = [(h, len(h)) for h in ports]

    @property
    def value(self) -> int:
        out, off = 0, 0
        for h, w in self.ports:
            out |= int(h.value) << off
            off += w
        return out

    @value.setter
    def value(self, v: int) -> None:
        for h, w in self.ports:
            h.value = v & ((1 << w) - 1)
            v >>= w


def random_gemm(rng: random.Random, cfg: Config, m, k, n, extreme=False, corner=False,
                zp=None, act=None, raw=False) -> dict:
    nrng = np.random.default_rng(rng.getrandbits(32))
    if extreme:
        a = nrng.choice([-128, 127], size=(m, k))
        w = nrng.choice([-128, 127], size=(k, n))
    else:
        a = nrng.integers(-128, 128, size=(m, k))
        w = nrng.integers(-128, 128, size=(k, n))
    if corner:
        bias = nrng.choice([-(1 << 31), (1 << 31) - 1, 0, 1 << 20], size=n)
        mult = nrng.choice([-(1 << 31), (1 << 31) - 1, 1 << 30, 0, 1], size=n)
        shift = nrng.choice([-31, 31, 0, 5, -5], size=n)
    else:
        bias = nrng.integers(-(1 << 16), 1 << 16, size=n)
        # Output scale such that the accumulators spread over the int8 range (few clamps), so any
        # accumulation error shows in the output.
        typical = 30.0 / (5500.0 * max(1.0, k) ** 0.5)
        scales = [typical * rng.uniform(0.3, 3.0) for _ in range(n)]
        qm = [quantize_multiplier(s) for s in scales]
        mult = np.array([q for q, _ in qm])
        shift = np.array([e for _, e in qm])
    if zp is None:
        zp = rng.choice([-128, 127, 0, rng.randint(-128, 127)])
    if act is None:
        act = rng.choice(["NONE", "NONE", "RELU", "RELU6"])
    qmin, qmax = activation_range(act, rng.choice([0.02, 0.1]), zp)
    return streams(cfg, a, w, bias, mult, shift, zp, qmin, qmax, raw=raw)


class TB:
    def __init__(self, dut, cfg: Config, seed: int):
        self.dut, self.cfg = dut, cfg
        self.R, self.C = cfg.array_rows, cfg.array_cols
        self.rng = random.Random(seed)
        self.clocked = False
        C = self.C
        self.l_act = data.ArrayLayout(signed(8), self.R)
        self.l_c8 = data.ArrayLayout(signed(8), C)
        self.l_params = data.StructLayout({"bias": data.ArrayLayout(signed(32), C),
                                           "mult": data.ArrayLayout(signed(32), C),
                                           "shift": data.ArrayLayout(signed(SHIFT_BITS), C)})
        self.l_cmd = data.StructLayout({"m": 16, "k_tiles": 16, "n_tiles": 16, "zp": signed(8),
                                        "qmin": signed(8), "qmax": signed(8), "raw": 1})
        self.l_acc = data.ArrayLayout(signed(32), C)

    async def phase(self, gemms: list[dict], idle: float, stall: float, act_delay: int = 0):
        dut = self.dut
        cmds = [pack(self.l_cmd, g["cmd"]) for g in gemms]
        params = [pack(self.l_params, p) for g in gemms for p in g["params"]]
        wgts = [pack(self.l_c8, w) for g in gemms for w in g["wgt"]]
        acts = [pack(self.l_act, a) for g in gemms for a in g["act"]]
        want = [(d, last, g["cmd"]["raw"]) for g in gemms for d, last in g["out"]]
        rng = self.rng
        srcs = [
            Source(dut.cmd_valid, dut.cmd_ready,
                   Bundle(dut.cmd_m, dut.cmd_k_tiles, dut.cmd_n_tiles, dut.cmd_zp, dut.cmd_qmin,
                          dut.cmd_qmax, dut.cmd_raw), cmds, rng, idle),
            Source(dut.params_valid, dut.params_ready,
                   Bundle(dut.params_bias, dut.params_mult, dut.params_shift), params, rng, idle),
            Source(dut.wgt_valid, dut.wgt_ready, dut.wgt_data, wgts, rng, idle),
            Source(dut.act_valid, dut.act_ready, dut.act_data, acts, rng, idle, act_delay),
        ]
        snk = Sink(dut.out_valid, dut.out_ready, Bundle(dut.out_data, dut.out_acc, dut.out_last),
                   rng, stall)
        await start(dut, srcs, [snk], clock=not self.clocked)
        self.clocked = True
        cycles = await run(dut, srcs, [snk], lambda: len(snk.beats) == len(want),
                           40 * (len(acts) + len(wgts)) + 2000,
                           what=f"GEMM: {len(want)} output beats of {len(gemms)} commands",
                           state=lambda: f"busy={int(dut.busy.value)}")
        C = self.C
        for i, (bits, (d, last, raw)) in enumerate(zip(snk.beats, want, strict=True)):
            got_last = bits >> (40 * C)
            if raw:   # int32 acc lanes (data don't-care)
                got = unpack(self.l_acc, bits >> (8 * C))
                assert (bits >> (8 * C)) & ((1 << (32 * C)) - 1) == pack(self.l_acc, d)
            else:     # int8 data lanes (acc don't-care)
                got = [((bits >> (8 * c)) & 0xFF) - (((bits >> (8 * c)) & 0x80) << 1)
                       for c in range(C)]
                assert bits & ((1 << (8 * C)) - 1) == pack(self.l_c8, d)
            assert got == d and got_last == int(last), \
                f"out beat {i} (raw={raw}): got {got} last={got_last}, want {d} last={last}"
        assert all(s.done for s in srcs), "a stream was not fully consumed"
        await idle_check(dut, [snk], 3 * (self.R + self.C) + 30)
        assert not int(dut.busy.value), "engine still busy after the final beat"
        return cycles, srcs[3]


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def steady_state(dut):
    """A long GEMM without gaps or back-pressure: activations stream at one beat per cycle."""
    p = tb_params()
    cfg = Config(**p["config"])
    tb = TB(dut, cfg, p["seed"])
    mb = m_block(cfg)
    m, k, n = p.get("steady_m", 2 * mb), p.get("steady_k", 4 * cfg.array_rows), \
        p.get("steady_n", 2 * cfg.array_cols)
    g = random_gemm(tb.rng, cfg, m, k, n)
    cycles, asrc = await tb.phase([g], 0.0, 0.0)
    span = asrc.last_cycle - asrc.first_cycle + 1
    ratio = asrc.idx / span
    result = {"m": m, "k": k, "n": n, "act_beats": asrc.idx, "act_span_cycles": span,
              "total_cycles": cycles, "macs": m * k * n,
              "steady_macs_per_cycle_ratio": ratio,
              "end_to_end_macs_per_cycle_ratio": m * k * n / (cycles * cfg.pes)}
    Path("gemm_result.json").write_text(json.dumps(result))
    dut._log.info("steady state: %s", result)
    assert ratio >= p.get("min_ratio", 0.95), f"steady-state ratio {ratio:.3f}"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def random_shapes(dut):
    """Random M, K, N (not multiples of the array), gaps, back-pressure, every activation."""
    p = tb_params()
    cfg = Config(**p["config"])
    tb = TB(dut, cfg, p["seed"] + 1)
    mb, R, C = m_block(cfg), cfg.array_rows, cfg.array_cols
    rng = tb.rng
    for _ in range(p["rounds"]):
        gemms = [random_gemm(rng, cfg, rng.randint(1, 2 * mb + 3), rng.randint(1, 3 * R + 3),
                             rng.randint(1, 2 * C + 3)) for _ in range(3)]
        cycles, asrc = await tb.phase(gemms, rng.choice([0.0, 0.2, 0.5]),
                                      rng.choice([0.0, 0.3, 0.7]))
        dut._log.info("round: %d GEMMs, %d activation beats, %d cycles", len(gemms), asrc.idx,
                      cycles)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def saturation(dut):
    """Extreme operands (+-128/127), saturating multipliers and shifts, extreme zero points."""
    p = tb_params()
    cfg = Config(**p["config"])
    tb = TB(dut, cfg, p["seed"] + 2)
    rng = tb.rng
    R, C = cfg.array_rows, cfg.array_cols
    gemms = [random_gemm(rng, cfg, rng.randint(1, 12), rng.randint(1, 4 * R), rng.randint(1, 2 * C),
                         extreme=True, corner=True) for _ in range(4)]
    gemms.append(random_gemm(rng, cfg, 3, 1, 1, extreme=True, corner=True))
    await tb.phase(gemms, 0.2, 0.3)
    # One- and two-row blocks over several K tiles with both weight banks preloaded (activations
    # start late): psums of one accumulator row 1 and 2 cycles apart exercise the forwarding.
    for mm in (1, 2):
        g = random_gemm(rng, cfg, mm, 3 * R + 1, C + 1, zp=0, act="NONE")
        _, asrc = await tb.phase([g], 0.0, 0.0, act_delay=3 * R + 10)
        dut._log.info("rows %d: activations accepted in cycles %s", mm, asrc.taken)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def raw_mode(dut):
    """Raw int32 outputs (requant bypassed) under back-pressure and idle gaps, raw and normal
    commands back to back in both orders (stale requant beats must not leak into the output)."""
    p = tb_params()
    cfg = Config(**p["config"])
    tb = TB(dut, cfg, p["seed"] + 3)
    mb, R, C = m_block(cfg), cfg.array_rows, cfg.array_cols
    rng = tb.rng
    # Saturating bias and extreme operands: the int32 sum wraps.
    g = random_gemm(rng, cfg, mb + 5, 3 * R + 1, 2 * C + 1, extreme=True, corner=True, raw=True)
    await tb.phase([g], 0.2, 0.6)
    for _ in range(p["rounds"]):
        gemms = [random_gemm(rng, cfg, rng.randint(1, mb + 3), rng.randint(1, 2 * R + 3),
                             rng.randint(1, 2 * C + 1), raw=raw)
                 for raw in (True, False, True, True, False, False)]
        await tb.phase(gemms, rng.choice([0.0, 0.2]), rng.choice([0.0, 0.5, 0.8]))
