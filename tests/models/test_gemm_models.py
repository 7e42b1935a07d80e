"""Golden models of the array blocks (models/requant.py, systolic.py, gemm.py) against independent
scalar re-implementations of the TFLite reference code, and the hardware's algebraic shortcuts."""

import random

import numpy as np
import pytest

from hw.config import preset
from hw.gemm import m_block
from models.arith import INT32_MAX, INT32_MIN, quantize_multiplier, rdbpot, srdhm
from models.gemm import accumulate, fold_input_zero_point, gemm, gemm_raw, streams
from models.requant import activation_range, requant
from models.systolic import psums, run_stream

CORNER32 = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, INT32_MAX - 1, INT32_MAX]


def _wrap(x: int) -> int:
    return ((x + (1 << 31)) % (1 << 32)) - (1 << 31)


def _srdhm_ref(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul, transcribed with C semantics."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    return int(v / (1 << 31)) if abs(v) < (1 << 52) else (abs(v) >> 31) * (1 if v >= 0 else -1)


def _rdbpot_ref(x: int, e: int) -> int:
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def _requant_ref(acc, bias, mult, shift, zp, qmin, qmax) -> int:
    x = _wrap(acc + bias)
    left, right = max(shift, 0), max(-shift, 0)
    y = _rdbpot_ref(_srdhm_ref(_wrap(x * (1 << left)), mult), right)
    return min(max(_wrap(y + zp), qmin), qmax)


def _cases(rng, n):
    for _ in range(n):
        yield (rng.choice(CORNER32 + [rng.randint(INT32_MIN, INT32_MAX), rng.randint(-9999, 9999)]),
               rng.choice(CORNER32 + [rng.randint(-(1 << 20), 1 << 20)]),
               rng.choice(CORNER32 + [quantize_multiplier(rng.uniform(1e-5, 8.0))[0]]),
               rng.randint(-31, 31), rng.choice([-128, 127, 0, rng.randint(-128, 127)]))


def test_requant_matches_scalar_reference():
    rng = random.Random(3)
    cases = list(_cases(rng, 4000))
    acc, bias, mult, shift, zp = (np.array(c) for c in zip(*cases, strict=True))
    for qmin, qmax in [(-128, 127), (0, 127), (-5, 60)]:
        want = [_requant_ref(*c[:4], c[4], qmin, qmax) for c in cases]
        got = [int(requant(a, b, m, s, z, qmin, qmax))
               for a, b, m, s, z in zip(acc, bias, mult, shift, zp, strict=True)]
        assert got == want


def test_requant_vectorised_per_channel():
    rng = np.random.default_rng(4)
    acc = rng.integers(-(1 << 20), 1 << 20, size=(7, 5))
    bias, mult = rng.integers(-999, 999, size=5), rng.integers(1 << 30, (1 << 31) - 1, size=5)
    shift = rng.integers(-12, 3, size=5)
    got = requant(acc, bias, mult, shift, -3, -128, 127)
    want = [[_requant_ref(int(acc[i, j]), int(bias[j]), int(mult[j]), int(shift[j]), -3, -128, 127)
             for j in range(5)] for i in range(7)]
    assert got.tolist() == want


def test_requant_rejects_out_of_range_parameters():
    with pytest.raises(ValueError):
        requant(0, 0, 1 << 30, 32, 0)
    with pytest.raises(ValueError):
        requant(0, 0, 1 << 30, 0, 200)


def test_hardware_srdhm_and_rdbpot_identities():
    """hw/requant.py computes SRDHM as (a*b + 2**30) >> 31 and RDBPOT as (q + half - neg) >> e."""
    rng = np.random.default_rng(5)
    a = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, 20000, endpoint=True), CORNER32 * 9])
    b = np.concatenate([rng.integers(INT32_MIN, INT32_MAX, 20000, endpoint=True),
                        np.repeat(CORNER32, 9)])
    hw = np.minimum((a.astype(object) * b.astype(object) + (1 << 30)) >> 31, INT32_MAX)
    assert (hw.astype(np.int64) == srdhm(a, b)).all()
    e = rng.integers(0, 32, a.size)
    half = np.where(e > 0, np.left_shift(1, np.maximum(e, 1) - 1, dtype=np.int64), 0)
    hw_r = (a + half - ((a < 0) & (e > 0))) >> e
    assert (hw_r == rdbpot(a, e)).all()


def test_activation_range():
    assert activation_range("NONE", 0.1, 5) == (-128, 127)
    assert activation_range("RELU", 0.1, -20) == (-20, 127)
    assert activation_range("RELU6", 6 / 255, -128) == (-128, 127)
    assert activation_range("RELU6", 0.1, 0) == (0, 60)
    with pytest.raises(ValueError):
        activation_range("TANH", 0.1, 0)


def test_systolic_model_stream():
    cfg = preset("tiny").replace(array_rows=3, array_cols=2)
    rng = np.random.default_rng(6)
    w = rng.integers(-128, 128, size=(2, 3, 2))
    a = rng.integers(-128, 128, size=(5, 3))
    beats = [(a[i], i in (1, 4)) for i in range(5)]
    got = run_stream(cfg, w.reshape(-1, 2).tolist(), beats)
    want = psums(a[:2], w[0]).tolist() + psums(a[2:], w[1]).tolist()
    assert [p for p, _ in got] == want
    assert [last for _, last in got] == [False, True, False, False, True]


@pytest.mark.parametrize("name, R, C", [
    ("tiny", 4, 4), ("ns", 3, 5), ("8x8", 8, 8), ("16x4", 16, 4)])
def test_gemm_streams_reassemble(name, R, C):
    cfg = preset("tiny").replace(array_rows=R, array_cols=C)
    rng = np.random.default_rng(R * 10 + C)
    M, K, N = 2 * m_block(cfg) + 3, 3 * R + 1, 2 * C + 1
    a = rng.integers(-128, 128, size=(M, K))
    w = rng.integers(-128, 128, size=(K, N))
    bias = rng.integers(-5000, 5000, size=N)
    mult = rng.integers(1 << 30, (1 << 31) - 1, size=N)
    shift = rng.integers(-14, -8, size=N)
    s = streams(cfg, a, w, bias, mult, shift, 7, -128, 100)
    kt, nt, mb = -(-K // R), -(-N // C), -(-M // m_block(cfg))
    assert len(s["params"]) == nt
    assert len(s["wgt"]) == nt * mb * kt * R
    assert len(s["act"]) == nt * kt * M
    assert [last for _, last in s["out"]].count(True) == 1 and s["out"][-1][1]
    # Reassemble Y from the out beats (N tile outer, rows inner) and compare with the direct GEMM.
    y = np.zeros((M, nt * C), dtype=np.int64)
    i = 0
    for t in range(nt):
        for m in range(M):
            y[m, t * C:(t + 1) * C] = s["out"][i][0]
            i += 1
    assert (y[:, :N] == gemm(a, w, bias, mult, shift, 7, -128, 100)).all()


def test_gemm_accumulate_wraps_and_zero_point_folds():
    rng = np.random.default_rng(8)
    a = rng.integers(-128, 128, size=(6, 40))
    w = rng.integers(-128, 128, size=(40, 3))
    bias = rng.integers(-(1 << 20), 1 << 20, size=3)
    zp_in = -77
    direct = (a - zp_in) @ w + bias
    folded = accumulate(a, w).astype(np.int64) + fold_input_zero_point(bias, w, zp_in)
    assert (((direct - folded) % (1 << 32)) == 0).all()
    big = np.full((1, 140000), -128)
    assert accumulate(big, np.full((140000, 1), -128))[0, 0] == _wrap(140000 * 16384)


def test_gemm_raw_streams():
    """Raw mode: out lanes are wrap32(A @ W + bias) (Python integers); padded lanes 0."""
    cfg = preset("tiny").replace(array_rows=3, array_cols=2)
    rng = np.random.default_rng(9)
    M, K, N = 5, 7, 3
    a = rng.integers(-128, 128, size=(M, K))
    w = rng.integers(-128, 128, size=(K, N))
    bias = np.array([(1 << 31) - 1, -(1 << 31), 12345])
    want = [[_wrap(sum(int(a[m, k]) * int(w[k, n]) for k in range(K)) + int(bias[n]))
             for n in range(N)] for m in range(M)]
    assert gemm_raw(a, w, bias).tolist() == want
    s = streams(cfg, a, w, bias, [0] * N, [0] * N, 0, raw=True)
    assert s["cmd"]["raw"] == 1
    assert streams(cfg, a, w, bias, [0] * N, [0] * N, 0)["cmd"]["raw"] == 0
    got = [d for d, _ in s["out"]]
    assert got[:M] == [row[:2] for row in want]
    assert got[M:] == [[row[2], 0] for row in want]
