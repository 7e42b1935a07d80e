"""TFLite/gemmlowp fixed-point primitives, vectorized and bit-exact with TFLM's reference kernels.

All functions take and return NumPy integer arrays (computed in int64, results in the int32 range) and
broadcast their arguments. They are the single definition of requantization used by the golden kernels, the
golden models of the hardware blocks and the compiler's constant generation.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["INT32_MIN", "INT32_MAX", "wrap_int32", "srdhm", "rdbpot", "mbqm",
           "quantize_multiplier", "quantize_multiplier_smaller_than_one", "tfl_round"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap_int32(x):
    """Two's-complement wrap to int32 (what C's int32 arithmetic does on this platform)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul(int32 a, int32 b)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    v = ab + nudge
    # C integer division truncates toward zero
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))
    overflow = (a == b) & (a == INT32_MIN)
    return np.where(overflow, INT32_MAX, q)


def rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT(int32 x, int exponent), exponent in [0, 31]."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def mbqm(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier(int32 x, int32 multiplier, int shift) (double rounding).

    shift > 0 is a left shift applied to x (int32 wrap, as the C code), shift <= 0 a rounding right shift.
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    xs = wrap_int32(np.asarray(x, dtype=np.int64) << left)
    return rdbpot(srdhm(xs, multiplier), right)


def tfl_round(v: float) -> float:
    """std::round: halves away from zero (Python's round() is banker's rounding)."""
    return math.copysign(math.floor(abs(v) + 0.5), v)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier(double) -> (int32 multiplier, shift)."""
    if real == 0.0:
        return 0, 0
    frac, exp = math.frexp(real)
    q = int(tfl_round(frac * (1 << 31)))
    if q == (1 << 31):
        q //= 2
        exp += 1
    if exp < -31:
        exp = 0
        q = 0
    return q, exp


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierSmallerThanOneExp: (multiplier, left_shift <= 0)."""
    q, exp = quantize_multiplier(real)
    return q, exp
