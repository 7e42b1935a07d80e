"""Golden SOFTMAX, LOGISTIC, MEAN vs the TFLM reference interpreter: every output element equal.

LOGISTIC is swept over all 256 int8 codes; SOFTMAX over many scales, zero points, betas, row lengths
and row contents (full range, narrow rows, constant rows, extremes); MEAN over axis sets, keep_dims,
equal/different quantization and large reductions (the multiplier pre-shift caps).
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


def assert_bit_exact(data: bytes, cases: list[list[np.ndarray]]) -> int:
    """Golden == TFLM on every output element of every input case; returns elements compared.

    The golden model runs first: where it raises UserError (inputs on which TFLM aborts the process)
    the case is skipped without calling TFLM."""
    ref = TflmReference(data, arena_size=1 << 20)
    gm = GoldenModel(load_tflite(data))
    compared = 0
    for k, xs in enumerate(cases):
        try:
            got = gm.run(xs)
        except UserError:
            continue
        want = ref.run(xs)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(
                g, w, err_msg=f"case {k}: {int(np.sum(g != w))}/{w.size} elements differ")
            compared += w.size
    return compared


def log_uniform(rng, lo, hi) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def zero_point(rng) -> int:
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


# ------------------------------------------------------------------------------------ LOGISTIC
def logistic_model(s_in, z_in, shape=(1, 256), out_scale=None) -> bytes:
    b = ModelBuilder()
    x = b.input(shape, "int8", s_in, z_in)
    if out_scale is None:
        y = b.logistic(x)
    else:  # TFLM only checks the output zero point
        y = b.tensor(shape, "int8", out_scale, -128)
        b.op("LOGISTIC", [x], [y])
    b.output(y)
    return b.finish()


def test_logistic_exhaustive():
    rng = np.random.default_rng(31)
    fixed = [(0.1, 0), (0.1, -128), (0.1, 127), (1e-4, 0), (2e-4, -128), (1.0, 3), (8.0, 127),
             (0.0625, -5), (0.5, 0), (1 / 16, 0), (0.03, 60)]
    qs = fixed + [(log_uniform(rng, 1e-4, 8.0), zero_point(rng)) for _ in range(40)]
    compared = 0
    for s_in, z_in in qs:
        data = logistic_model(s_in, z_in)
        compared += assert_bit_exact(data, [[ALL_CODES.reshape(1, 256)]])
    assert compared == 256 * len(qs)


def test_logistic_ignores_output_scale():
    data = logistic_model(0.05, 10, shape=(2, 4, 32), out_scale=0.3)
    assert assert_bit_exact(data, [[ALL_CODES.reshape(2, 4, 32)]]) == 256


# ------------------------------------------------------------------------------------- SOFTMAX
def softmax_model(s_in, z_in, shape, beta) -> bytes:
    b = ModelBuilder()
    x = b.input(shape, "int8", s_in, z_in)
    b.output(b.softmax(x, beta=beta))
    return b.finish()


def softmax_inputs(rng, shape) -> list[list[np.ndarray]]:
    depth = shape[-1]
    full = rng.integers(-128, 128, size=shape).astype(np.int8)
    narrow = (rng.integers(-4, 5, size=shape) + rng.integers(-120, 121)).astype(np.int8)
    peaked = rng.integers(-128, -60, size=shape).astype(np.int8)
    peaked.reshape(-1, depth)[:, rng.integers(0, depth)] = 127
    return [[full], [narrow], [peaked], [np.full(shape, 127, np.int8)],
            [np.full(shape, -128, np.int8)]]


SOFTMAX_SHAPES = [(1, 1), (1, 2), (3, 3), (2, 10), (1, 100), (4, 256), (1, 1000), (1, 2, 3, 12),
                  (2, 4, 4, 5)]


def test_softmax():
    rng = np.random.default_rng(41)
    fixed = [(1 / 16, 0, 1.0), (0.1, -128, 1.0), (0.1, 127, 1.0), (1e-3, 0, 1.0), (1.0, 5, 1.0),
             (0.05, 0, 0.25), (0.05, 0, 3.0), (4.0, -30, 1.0), (2e-3, 20, 0.5)]
    qs = fixed + [(log_uniform(rng, 1e-3, 2.0), zero_point(rng),
                   float(rng.choice([1.0, log_uniform(rng, 0.1, 5.0)]))) for _ in range(18)]
    compared = 0
    for k, (s_in, z_in, beta) in enumerate(qs):
        shape = SOFTMAX_SHAPES[k % len(SOFTMAX_SHAPES)]
        data = softmax_model(s_in, z_in, shape, beta)
        compared += assert_bit_exact(data, softmax_inputs(rng, shape))
    assert compared >= 4000


def test_softmax_row_sum_abort_is_a_user_error():
    """TFLM aborts (TFLITE_CHECK on the reciprocal exponent) when a row's sum of exponentials
    reaches 512; the golden model raises UserError for the same input instead of returning data."""
    data = softmax_model(0.05, 0, (1, 600), 1.0)
    gm = GoldenModel(load_tflite(data))
    with pytest.raises(UserError):
        gm.run([np.zeros((1, 600), np.int8)])
    x = np.full((1, 600), -128, np.int8)
    x[0, :500] = 127  # sum of exponentials 500 < 512: fine
    assert assert_bit_exact(data, [[x]]) == 600


def test_softmax_rejects_bad_output_quantization():
    b = ModelBuilder()
    x = b.input((1, 10), "int8", 0.1, 0)
    y = b.tensor((1, 10), "int8", 1 / 255, -128)
    b.op("SOFTMAX", [x], [y])
    b.output(y)
    with pytest.raises(UserError):
        GoldenModel(load_tflite(b.finish()))


# ---------------------------------------------------------------------------------------- MEAN
MEAN_CASES = [((1, 7, 7, 16), [1, 2]), ((2, 5, 3, 4), [2, 1]), ((1, 6, 6, 3), [1]),
              ((2, 3, 4, 5), [3]), ((3, 4, 5), [0, 2]), ((2, 5, 6, 7), [-1, 1]), ((4, 9), [1]),
              ((2, 3, 4, 5), [0, 1, 2, 3]), ((1, 10, 10, 4), [1, 2]), ((2, 3, 4), [1, -2]),
              ((1, 1, 1, 8), [1, 2]), ((5,), [0])]


def mean_model(shape, axes, keep, q_in, q_out) -> bytes:
    b = ModelBuilder()
    x = b.input(shape, "int8", *q_in)
    b.output(b.mean(x, axes, keep_dims=keep, out_scale=q_out[0], out_zp=q_out[1]))
    return b.finish()


def test_mean():
    rng = np.random.default_rng(51)
    compared = n = 0
    for rep in range(4):
        for shape, axes in MEAN_CASES:
            s_in, z_in = log_uniform(rng, 1e-3, 2.0), zero_point(rng)
            mode = (rep + n) % 3  # same quantization / same scale other zp / different
            s_out = s_in if mode < 2 else log_uniform(rng, 1e-3, 2.0)
            z_out = z_in if mode == 0 else zero_point(rng)
            keep = bool((rep + n) % 2 == 0) or shape == (5,)
            data = mean_model(shape, axes, keep, (s_in, z_in), (s_out, z_out))
            cases = [[rng.integers(-128, 128, size=shape).astype(np.int8)],
                     [np.full(shape, -128, np.int8)], [np.full(shape, 127, np.int8)]]
            compared += assert_bit_exact(data, cases)
            n += 1
    assert n == 4 * len(MEAN_CASES) and compared > 0


@pytest.mark.parametrize("q_in,q_out", [((1e-3, 5), (0.9, -3)),
                                        ((1e-7, 0), (0.5, 10)),  # pre-shift capped at 31 + shift
                                        ((0.02, -128), (0.02, -128)),
                                        ((0.5, 127), (0.01, 0))])  # multiplier > 1
def test_mean_large_reduction(q_in, q_out):
    rng = np.random.default_rng(61)
    shape = (1, 96, 96, 3)
    data = mean_model(shape, [1, 2], True, q_in, q_out)
    cases = [[rng.integers(-128, 128, size=shape).astype(np.int8)],
             [np.full(shape, 127, np.int8)], [np.full(shape, -128, np.int8)]]
    assert assert_bit_exact(data, cases) == 9
