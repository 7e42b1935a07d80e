"""TFLite/gemmlowp fixed-point primitives, vectorized and bit-exact with TFLM's reference kernels.

All functions take and return NumPy integer arrays (computed in int64, results in the int32 range)
and broadcast their arguments. They are the single definition of requantization used by the golden
kernels, the golden models of the hardware blocks and the compiler's constant generation.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "INT32_MIN",
    "INT32_MAX",
    "wrap_int32",
    "srdhm",
    "rdbpot",
    "mbqm",
    "quantize_multiplier",
    "quantize_multiplier_smaller_than_one",
    "tfl_round",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap_int32(x):
    """Two's-complement wrap to int32 (what C's int32 arithmetic does on this platform)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul(int32 a, int32 b).

    The C code adds a nudge of 2^30 (or 1 - 2^30 when a*b < 0) and divides by 2^31 truncating toward
    zero; both cases equal the arithmetic shift (a*b + 2^30) >> 31, which is what is computed here.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    q = (a * b + (1 << 30)) >> 31
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    if np.any(overflow):
        q = np.where(overflow, INT32_MAX, q)
    return q


def rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT(int32 x, int exponent), exponent in [0, 31].

    Rounds half away from zero: (x + 2^(e-1) - [x < 0 and e > 0]) >> e, equal to gemmlowp's
    mask/remainder/threshold formulation.
    """
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    half = (np.int64(1) << e) >> 1
    return (x + half - ((x < 0) & (e > 0))) >> e


def mbqm(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier(int32 x, int32 multiplier, int shift) (double rounding).

    shift > 0 is a left shift applied to x (int32 wrap, as the C code), shift <= 0 a rounding right
    shift.
    """
    shift = np.asarray(shift, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    if np.any(shift > 0):
        x = wrap_int32(x << np.maximum(shift, 0))
    return rdbpot(srdhm(x, multiplier), np.maximum(-shift, 0))


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


# --- gemmlowp FixedPoint<int32> helpers and TFLM int16 helpers (nonlinear/elementwise kernels) ---
# Values are int64 NumPy arrays holding int32 (or int16) quantities; every function broadcasts.

__all__ += [
    "INT16_MIN",
    "INT16_MAX",
    "wrap_int16",
    "clz32",
    "srmpot",
    "rounding_half_sum",
    "fp_one",
    "exp_on_negative_values",
    "one_over_one_plus_x_for_x_in_0_1",
    "fp_logistic",
    "get_reciprocal",
    "calculate_input_radius",
    "srdhm16",
    "sdhm16",
    "rdbpot16",
    "saturating_left_shift16",
    "downscale_int32_to_int16_multiplier",
    "activation_range_quantized",
]

INT16_MIN = -(1 << 15)
INT16_MAX = (1 << 15) - 1


def wrap_int16(x):
    """Two's-complement wrap to int16 (C's conversion of an int to int16_t)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def clz32(x):
    """CountLeadingZeros of ``uint32(x)`` (32 for 0)."""
    u = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    return 32 - np.frexp(u.astype(np.float64))[1].astype(np.int64)


def srmpot(x, exponent: int):
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32 raw values."""
    x = np.asarray(x, dtype=np.int64)
    if exponent == 0:
        return x
    if exponent < 0:
        return rdbpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def rounding_half_sum(a, b):
    """gemmlowp RoundingHalfSum(int32, int32): (a + b + sign) / 2, C division."""
    s = np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)
    v = s + np.where(s >= 0, 1, -1)
    return np.where(v >= 0, v >> 1, -((-v) >> 1))


def fp_one(integer_bits: int) -> int:
    """Raw value of FixedPoint<int32, integer_bits>::One()."""
    return INT32_MAX if integer_bits == 0 else 1 << (31 - integer_bits)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap_int32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = srmpot(x4, -2)
    poly = srmpot(wrap_int32(srdhm(wrap_int32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap_int32(constant_term + srdhm(constant_term, wrap_int32(x + poly)))


_EXP_BARREL = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)


def exp_on_negative_values(a, integer_bits: int):
    """gemmlowp exp_on_negative_values: FixedPoint<int32, integer_bits> -> FixedPoint<int32, 0>."""
    a = np.asarray(a, dtype=np.int64)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_q_minus_q = wrap_int32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        srmpot(a_mod_q_minus_q, integer_bits)
    )
    remainder = wrap_int32(a_mod_q_minus_q - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, fp_one(0), result)


def one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 on FixedPoint<int32, 0> raw values."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = wrap_int32(1515870810 + srdhm(half_denominator, -1010580540))
    one_f2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap_int32(one_f2 - half_denominator_times_x)
        x = wrap_int32(x + srmpot(srdhm(x, one_minus), 2))
    return srmpot(x, 1)


def fp_logistic(a, integer_bits: int):
    """gemmlowp logistic(FixedPoint<int32, integer_bits>) -> FixedPoint<int32, 0> raw."""
    a = np.asarray(a, dtype=np.int64)
    positive = a > 0
    abs_input = np.where(positive, a, wrap_int32(-a))
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(wrap_int32(-abs_input), integer_bits)
    )
    result_if_negative = wrap_int32(INT32_MAX - result_if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, result_if_positive, result_if_negative))


def get_reciprocal(x, x_integer_digits: int):
    """TFLite GetReciprocal(x, x_integer_digits) -> (FixedPoint<int32,0>, num_bits_over_unit)."""
    x = np.asarray(x, dtype=np.int64)
    headroom_plus_one = clz32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = (((x & 0xFFFFFFFF) << headroom_plus_one) - (1 << 31)) & 0xFFFFFFFF
    shifted_sum_minus_one = wrap_int32(shifted)
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def calculate_input_radius(
    input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31
) -> int:
    """TFLite CalculateInputRadius (double arithmetic, floor)."""
    max_input_rescaled = (
        1.0
        * ((1 << input_integer_bits) - 1)
        * float(1 << (total_signed_bits - input_integer_bits))
        / float(1 << input_left_shift)
    )
    return int(math.floor(max_input_rescaled))


def srdhm16(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul(int16 a, int16 b)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    v = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(v >= 0, v >> 15, -((-v) >> 15))
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, wrap_int16(q))


def sdhm16(a, b):
    """TFLite reference_ops::SaturatingDoublingHighMul(int16, int16): truncating, no nudge."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    q = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((a == b) & (a == INT16_MIN), INT16_MAX, wrap_int16(q))


def rdbpot16(x, exponent: int):
    """gemmlowp RoundingDivideByPOT on int16, incl. its int16 mask truncation for exponent >= 16."""
    x = np.asarray(x, dtype=np.int64)
    mask = int(wrap_int16((1 << exponent) - 1))
    remainder = wrap_int16(x & mask)
    threshold = wrap_int16((mask >> 1) + (x < 0))
    return wrap_int16((x >> exponent) + (remainder > threshold))


def saturating_left_shift16(x, amount: int):
    """TFLite reference_ops::SaturatingLeftShift(int16 value, int amount)."""
    return np.clip(np.asarray(x, dtype=np.int64) * (1 << amount), INT16_MIN, INT16_MAX)


def downscale_int32_to_int16_multiplier(m: int) -> int:
    """TFLite DownScaleInt32ToInt16Multiplier."""
    if m >= INT32_MAX - (1 << 15):
        return INT16_MAX
    return (m + (1 << 15)) >> 16


def activation_range_quantized(
    activation: str, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127
) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized: fused activation -> (act_min, act_max).

    ``zero_point + int(round(float32(f) / float32(scale)))``, the division done in float32 as in C.
    """
    s = np.float32(scale)

    def q(f: float) -> int:
        return int(zero_point) + int(tfl_round(float(np.float32(f) / s)))

    if activation == "RELU":
        return max(qmin, q(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    return qmin, qmax
