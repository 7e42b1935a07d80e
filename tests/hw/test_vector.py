"""Depthwise / vector unit (hw/vector.py) cosimulated with cocotb on Verilator against IsaSim."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed

from hw.config import preset
from hw.vector import MBQM_LATENCY, VectorUnit, _mbqm
from models.arith import mbqm
from sim.cocotb_run import run_cocotb
from tests.hw.pipe_sim import run_pipeline

CASES = [
    pytest.param(preset("tiny"), 30, False, 0.7, id="tiny"),
    pytest.param(preset("tiny"), 150, True, 0.8, id="tiny-more", marks=pytest.mark.full),
    pytest.param(preset("ecp5"), 60, True, 0.8, id="ecp5", marks=pytest.mark.full),
    # 16 lanes, 256-byte lines, 9 taps per command (Verilog ~1.2 MB, build ~2 min)
    pytest.param(preset("default"), 40, True, 0.8, id="default", marks=pytest.mark.full),
]




def window_specs(L: int) -> list[dict]:
    """DWCONV / POOL shapes that exercise the super-groups (hw.isa.Timing.dw_groups channel
    groups of L lanes per pixel): channel counts of several super-groups and a partial one, at
    odd alignments (the bench places tensors at random byte offsets), strides 1 and 2 with SAME
    and VALID padding, depth multipliers, kernels that shrink the super-group (4x4, 5x5), a
    map smaller than the window and kernels of one weight row (1x1, 1x2)."""
    def dw(h, w, c, k, s, p, dm=1, kw=None):
        kw = kw or k
        return {"opcode": "DWCONV", "in_h": h, "in_w": w, "in_c": c, "k_h": k, "k_w": kw,
                "stride_h": s, "stride_w": s, "pad_top": p, "pad_left": p, "depth_mult": dm,
                "out_h": (h + 2 * p - k) // s + 1, "out_w": (w + 2 * p - kw) // s + 1}

    pool = dict(dw(8, 7, 9 * L + 3, 3, 2, 1), opcode="POOL", mode="MAX")
    del pool["depth_mult"]
    return [
        dw(9, 9, 10 * L + 1, 3, 1, 1),          # wide C, SAME, stride 1
        dw(10, 11, 11 * L + 5, 3, 2, 0),        # wide C, VALID, stride 2
        dw(7, 8, 6 * L + 2, 3, 2, 1),           # stride 2, SAME
        dw(5, 6, 2 * L + 3, 3, 2, 1, dm=2),     # depth multiplier across groups
        dw(6, 6, 4 * L + 1, 4, 1, 1),           # 16 taps: fewer groups per super-group
        dw(6, 5, 3 * L, 5, 1, 2),               # 25 taps
        dw(2, 3, 5 * L + 7, 3, 1, 1),           # map smaller than the kernel
        # one weight row per group (1x1, 1x2): a MAC reads the row the WLOAD just ahead of it
        # wrote (the weight memory's read as the command enters EXEC, vector_req_stages = 2)
        dw(4, 5, L - 1, 1, 1, 0),
        dw(3, 6, L + 2, 1, 1, 0, kw=2),
        pool,
        dict(pool, mode="AVG", stride_h=1, stride_w=1, out_h=8, out_w=7),
    ]


@pytest.mark.parametrize("cfg, n, big, ready", CASES)
def test_vector(cfg, n, big, ready):
    run_cocotb(VectorUnit(cfg), "vector", "tests.hw.tb_vector",
               {"config": cfg.to_dict(), "seed": n + cfg.vector_lanes, "n": n, "big": big,
                "edge": 0.3, "ready": ready, "wready": ready,
                "fixed": window_specs(cfg.vector_lanes), "region": region(cfg)})


POST_CASES = [
    # (full tier: POST on one lane is in the CI tier with taps2 and with every ecp5 choice)
    pytest.param(preset("tiny").replace(vector_post_lanes=1), id="tiny-post1",
                 marks=pytest.mark.full),
    pytest.param(preset("tiny").replace(vector_post_lanes=2), id="tiny-post2"),
    pytest.param(preset("tiny").replace(vector_post_lanes=1, vector_taps=2), id="tiny-post1-taps2"),
    # EXEC in two stages (Config.vector_exec_stages = 2), with and without a
    # time-shared POST
    pytest.param(preset("tiny").replace(vector_exec_stages=2), id="tiny-exec2"),
    # the command input through a FIFO (Config.vector_req_stages = 2) alone, then with every
    # pipeline choice of the ecp5 preset (and its SRAM read latency of 3)
    pytest.param(preset("tiny").replace(vector_req_stages=2), id="tiny-req2"),
    pytest.param(preset("tiny").replace(vector_post_lanes=1, vector_taps=2, vector_exec_stages=2,
                                        vector_req_stages=2, sram_read_latency=3),
                 id="tiny-post1-taps2-exec2-req2-lat3", marks=pytest.mark.full),
    # P0 loaded a cycle after E2 (vector_exec_stages = 3) with a time-shared
    # POST of 4 and of 2 phases (P0's free test looks a cycle ahead) and with an untimeshared one
    pytest.param(preset("tiny").replace(vector_post_lanes=1, vector_taps=2, vector_exec_stages=3,
                                        vector_req_stages=2, sram_read_latency=4),
                 id="tiny-post1-taps2-exec3-req2-lat4", marks=pytest.mark.full),
    # the multipliers' operands registered too (vector_exec_stages = 4), and the products again
    # in the fabric (5, the ecp5 preset's)
    pytest.param(preset("tiny").replace(vector_post_lanes=1, vector_taps=2, vector_exec_stages=4,
                                        vector_req_stages=2, sram_read_latency=4),
                 id="tiny-post1-taps2-exec4-req2-lat4", marks=pytest.mark.full),
    pytest.param(preset("tiny").replace(vector_post_lanes=1, vector_taps=2, vector_exec_stages=5,
                                        vector_req_stages=2, sram_read_latency=4),
                 id="tiny-post1-taps2-exec5-req2-lat4"),
    pytest.param(preset("tiny").replace(vector_exec_stages=4), id="tiny-exec4",
                 marks=pytest.mark.full),
    pytest.param(preset("tiny").replace(vector_post_lanes=2, vector_exec_stages=3),
                 id="tiny-post2-exec3", marks=pytest.mark.full),
    pytest.param(preset("tiny").replace(vector_exec_stages=3), id="tiny-exec3",
                 marks=pytest.mark.full),
]


@pytest.mark.parametrize("cfg", POST_CASES)
def test_vector_post_lanes(cfg):
    """POST time-shared over fewer lanes than the unit has (Config.vector_post_lanes): every
    opcode bit-exact with IsaSim under back-pressure, then (same build) without back-pressure
    each instruction's cycles within 10 % (or 3 cycles) of the cycle model, which prices the
    time-sharing (hw.isa.Timing.post_cycles)."""
    base = {"config": cfg.to_dict(), "n": 30, "big": False, "edge": 0.3,
            "fixed": window_specs(cfg.vector_lanes), "region": region(cfg)}
    run_cocotb(VectorUnit(cfg), "vector", "tests.hw.tb_vector",
               dict(base, seed=7 + cfg.post_lanes, ready=0.7, wready=0.7))
    run_cocotb(VectorUnit(cfg), "vector", "tests.hw.tb_vector",
               dict(base, seed=11 + cfg.post_lanes, ready=1.0, wready=1.0, model_tol=0.10,
                    model_slack=3))


def region(cfg) -> int:
    """SRAM bytes the bench fills: enough for the widest fixed shape."""
    return 16384 if cfg.vector_lanes <= 4 else 65536


def test_mbqm_pipeline_matches_golden():
    """POST's MultiplyByQuantizedMultiplier pipeline (``_mbqm``: the 32 x 32 product as four
    registered partial products) equals the golden ``models.arith.mbqm`` on int32 extremes and
    random operands, one operand set per cycle, each result ``MBQM_LATENCY`` cycles later."""
    rng = random.Random(5)
    edge = [-(1 << 31), -(1 << 31) + 1, -1, 0, 1, (1 << 31) - 1, 1 << 30, -(1 << 30), 0xFFFF,
            -0x10000, 0x7FFF8000]
    vals = [(rng.choice(edge), rng.choice(edge), rng.randrange(-31, 32)) for _ in range(400)]
    vals += [(rng.randrange(-1 << 31, 1 << 31), rng.randrange(-1 << 31, 1 << 31),
              rng.randrange(-31, 32)) for _ in range(1600)]
    vals += [(-(1 << 31), -(1 << 31), 0), (-(1 << 31), -(1 << 31), -5), (1, -(1 << 31), 31)]
    want = [int(mbqm(x, mu, sh)) for x, mu, sh in vals]
    m = Module()
    x, mult, shift = Signal(signed(32)), Signal(signed(32)), Signal(signed(8))
    out = _mbqm(m, x, mult, shift, "t")
    got = run_pipeline(m, (x, mult, shift), vals, out, MBQM_LATENCY)
    bad = [(v, w, g) for v, w, g in zip(vals, want, got, strict=False) if w != g]
    assert len(got) == len(vals) and not bad, f"{len(bad)} mismatches, first {bad[:3]}"
    assert len(set(np.sign(want))) == 3   # negative, zero and positive results



