"""Golden ADD, MUL, RELU, RELU6, LEAKY_RELU, HARD_SWISH vs the TFLM reference interpreter.

Unary ops are swept over all 256 int8 input codes, binary ops over all 256 x 256 code pairs (inputs
of shapes (256, 1) and (1, 256) broadcast to every pair), for many scales and zero points including
the extremes (zero points -128 / 127, tiny and large scales), plus broadcasting of ranks 1 to 6.
Every output element must be equal.
"""

from __future__ import annotations

import numpy as np
import pytest

from hw.errors import UserError
from models.golden import GoldenModel
from models.tflite_writer import ModelBuilder
from models.tflm_ref import TflmReference
from sw.tflite_import import load_tflite

ALL_CODES = np.arange(-128, 128, dtype=np.int8)
ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def assert_bit_exact(data: bytes, cases: list[list[np.ndarray]]) -> int:
    """Golden == TFLM on every output element of every input case; returns elements compared."""
    ref = TflmReference(data, arena_size=1 << 20)
    gm = GoldenModel(load_tflite(data))
    compared = 0
    for k, xs in enumerate(cases):
        got, want = gm.run(xs), ref.run(xs)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(
                g, w, err_msg=f"case {k}: {int(np.sum(g != w))}/{w.size} elements differ")
            compared += w.size
    return compared


def quant_cases(seed: int, n: int) -> list[tuple[float, int, float, int]]:
    """(in_scale, in_zp, out_scale, out_zp): fixed extremes first, then log-uniform random ones."""
    fixed = [(0.05, -128, 0.05, -128), (0.05, 127, 0.02, 127), (1e-4, 0, 1e-4, -128),
             (1e-4, -128, 3e-3, 127), (2.5, 5, 0.9, -7), (0.02, 0, 0.1, 0), (8.0, -128, 8.0, 127),
             (0.0078125, 0, 0.0078125, 0)]
    rng = np.random.default_rng(seed)
    out = list(fixed)
    while len(out) < n:
        s_in = float(np.exp(rng.uniform(np.log(1e-4), np.log(4.0))))
        s_out = float(np.exp(rng.uniform(np.log(1e-4), np.log(4.0))))
        z_in, z_out = (int(v) for v in rng.integers(-128, 128, size=2))
        out.append((s_in, z_in, s_out, z_out))
    return out


def unary_model(kind: str, s_in, z_in, s_out, z_out, shape=(1, 4, 8, 8), **kw) -> bytes:
    b = ModelBuilder()
    x = b.input(shape, "int8", s_in, z_in)
    b.output(getattr(b, kind)(x, out_scale=s_out, out_zp=z_out, **kw))
    return b.finish()


@pytest.mark.parametrize("kind", ["relu", "relu6", "leaky_relu", "hard_swish"])
def test_unary_exhaustive(kind):
    rng = np.random.default_rng(7)
    all_in = ALL_CODES.reshape(1, 4, 8, 8)
    n_cases = compared = 0
    seed = {"relu": 1, "relu6": 2, "leaky_relu": 3, "hard_swish": 4}[kind]
    for s_in, z_in, s_out, z_out in quant_cases(seed=seed, n=40):
        kw = {}
        if kind == "leaky_relu":
            kw["alpha"] = float(rng.choice([0.1, 0.2, 0.01, 1.0, 0.0, 1.7, -0.3,
                                            rng.uniform(0.0, 1.0)]))
        if kind == "hard_swish" and s_in / 128 >= s_out:
            continue  # TFLM rejects (multiplier >= 1); covered by test_hard_swish_rejects
        data = unary_model(kind, s_in, z_in, s_out, z_out, **kw)
        rand = rng.integers(-128, 128, size=(1, 4, 8, 8)).astype(np.int8)
        compared += assert_bit_exact(data, [[all_in], [rand]])
        n_cases += 1
    assert n_cases >= 30 and compared >= n_cases * 512


def test_relu6_ignores_output_quantization():
    """TFLM's RELU6 clamps input codes to [zp_in, q_in(6)] and does not requantize."""
    data = unary_model("relu6", 0.1, -20, 0.5, 100)
    gm = GoldenModel(load_tflite(data))
    out = gm.run([ALL_CODES.reshape(1, 4, 8, 8)])[0].reshape(-1)
    np.testing.assert_array_equal(out, np.clip(ALL_CODES, -20, 40))
    assert_bit_exact(data, [[ALL_CODES.reshape(1, 4, 8, 8)]])


def test_hard_swish_rejects_like_tflm():
    data = unary_model("hard_swish", 1.0, 0, 1e-3, 0)
    with pytest.raises(UserError):
        GoldenModel(load_tflite(data))
    with pytest.raises(UserError):
        TflmReference(data, arena_size=1 << 20)


def binary_model(kind, shape_a, shape_b, qa, qb, qo, activation) -> bytes:
    b = ModelBuilder()
    xa = b.input(shape_a, "int8", *qa)
    xb = b.input(shape_b, "int8", *qb)
    b.output(getattr(b, kind)(xa, xb, activation=activation, out_scale=qo[0], out_zp=qo[1]))
    return b.finish()


@pytest.mark.parametrize("kind", ["add", "mul"])
def test_binary_all_code_pairs(kind):
    """Every (a, b) int8 code pair, through broadcasting (256, 1) x (1, 256)."""
    rng = np.random.default_rng(11 if kind == "add" else 12)
    a, b = ALL_CODES.reshape(256, 1), ALL_CODES.reshape(1, 256)
    qs = quant_cases(seed=3 if kind == "add" else 4, n=24)
    compared = 0
    for k, (s1, z1, so, zo) in enumerate(qs):
        s2 = s1 if k % 4 == 0 else float(np.exp(rng.uniform(np.log(1e-4), np.log(4.0))))
        z2 = int(rng.choice([-128, 127, int(rng.integers(-128, 128))]))
        if kind == "add" and 2 * max(np.float32(s1), np.float32(s2)) >= (1 << 20) * np.float32(so):
            so = 2 * max(s1, s2)  # TFLM rejects a too-small ADD output scale
        act = ACTIVATIONS[k % 4]
        data = binary_model(kind, (256, 1), (1, 256), (s1, z1), (s2, z2), (so, zo), act)
        compared += assert_bit_exact(data, [[a, b]])
    assert compared == len(qs) * 65536


BROADCAST_SHAPES = [((1, 4, 4, 8), (1, 4, 4, 8)), ((1, 4, 4, 8), (8,)),
                    ((2, 3, 1, 5), (1, 1, 4, 1)), ((1,), (3, 5)), ((3, 1), (1, 3)),
                    ((2, 1, 3, 1, 2), (1, 4, 1, 5, 1)), ((1, 5, 5, 16), (1, 1, 1, 16)),
                    ((1, 2, 1, 3, 1, 2), (2, 1, 2, 1, 3, 1))]


@pytest.mark.parametrize("kind", ["add", "mul"])
def test_binary_broadcasting(kind):
    rng = np.random.default_rng(21 if kind == "add" else 22)
    qs = quant_cases(seed=5, n=2 * len(BROADCAST_SHAPES))
    compared = 0
    for k, (s1, z1, so, zo) in enumerate(qs):
        sa, sb = BROADCAST_SHAPES[k % len(BROADCAST_SHAPES)]
        if k >= len(BROADCAST_SHAPES):
            sa, sb = sb, sa
        s2 = float(np.exp(rng.uniform(np.log(1e-3), np.log(2.0))))
        z2 = int(rng.integers(-128, 128))
        if kind == "add":
            so = max(so, 2 * max(s1, s2) / 1e5)
        data = binary_model(kind, sa, sb, (s1, z1), (s2, z2), (so, zo), ACTIVATIONS[k % 4])
        cases = [[rng.integers(-128, 128, size=sa).astype(np.int8),
                  rng.integers(-128, 128, size=sb).astype(np.int8)] for _ in range(2)]
        cases.append([np.full(sa, -128, np.int8), np.full(sb, 127, np.int8)])
        compared += assert_bit_exact(data, cases)
    assert compared > 0


def test_add_rejects_tiny_output_scale_like_tflm():
    data = binary_model("add", (1, 8), (1, 8), (0.5, 0), (0.5, 0), (1e-7, 0), "NONE")
    with pytest.raises(UserError):
        GoldenModel(load_tflite(data))
