"""models.arith against a literal transcription of gemmlowp/TFLite's C code with Python integers."""

import numpy as np
import pytest

from models.arith import mbqm, quantize_multiplier, rdbpot, srdhm

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def c_div(a, b):  # C integer division (truncate toward zero)
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ref_srdhm(a, b):
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def ref_rdbpot(x, e):
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def wrap(v):
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def ref_mbqm(x, m, s):
    left, right = max(s, 0), max(-s, 0)
    return ref_rdbpot(ref_srdhm(wrap(x * (1 << left)), m), right)


EDGES = [I32_MIN, I32_MIN + 1, -(1 << 30), -65537, -3, -2, -1, 0, 1, 2, 3, 65535, 1 << 30, I32_MAX]


def _vals(rng, n):
    return np.concatenate(
        [
            np.array(EDGES, np.int64),
            rng.integers(I32_MIN, I32_MAX, n, endpoint=True),
            rng.integers(-4096, 4096, n),
        ]
    )


def test_srdhm_matches_c():
    rng = np.random.default_rng(1)
    a = _vals(rng, 300)
    b = _vals(rng, 300)
    aa, bb = np.meshgrid(a, b)
    got = srdhm(aa.ravel(), bb.ravel())
    want = [ref_srdhm(int(x), int(y)) for x, y in zip(aa.ravel(), bb.ravel(), strict=True)]
    assert got.tolist() == want


@pytest.mark.parametrize("e", range(0, 32))
def test_rdbpot_matches_c(e):
    rng = np.random.default_rng(e)
    x = _vals(rng, 500)
    assert rdbpot(x, e).tolist() == [ref_rdbpot(int(v), e) for v in x]


def test_mbqm_matches_c_including_left_shifts():
    rng = np.random.default_rng(7)
    xs = _vals(rng, 200)
    for real in [1e-6, 0.0003, 0.02, 0.4999, 0.5, 0.75, 0.9999999, 1.0, 1.7, 3.0, 100.0]:
        m, s = quantize_multiplier(real)
        got = mbqm(xs, m, s)
        assert got.tolist() == [ref_mbqm(int(x), m, s) for x in xs], real
