"""Golden model of the per-channel requantization pipeline (hw/requant.py), cycle-free and
bit-exact.

Contract (TFLite int8, SPEC section 4), per output channel ``n``::

    x   = wrap32(acc + bias[n])                       # int32 accumulator plus int32 bias
    y   = mbqm(x, mult[n], shift[n])                  # MultiplyByQuantizedMultiplier (models.arith)
    y   = wrap32(y + zero_point)                      # output zero point, int32 arithmetic as in C
    out = clamp(y, qmin, qmax)                        # fused activation range, int8

``shift`` is TFLite's signed shift: > 0 shifts ``x`` left (int32 wrap), <= 0 is a rounding right
shift; the hardware supports ``shift`` in [-31, 31]. ``qmin``/``qmax`` come from
:func:`activation_range`.
"""

from __future__ import annotations

import numpy as np

from models.arith import activation_range_quantized, mbqm, wrap_int32

__all__ = ["SHIFT_MIN", "SHIFT_MAX", "ACTIVATIONS", "requant", "activation_range", "check_params"]

SHIFT_MIN = -31
SHIFT_MAX = 31
#: Fused activations the requant stage implements (as a [qmin, qmax] clamp).
ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def check_params(mult, shift, zero_point, qmin, qmax) -> None:
    """Raise ValueError if the parameters are outside what the hardware implements."""
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if mult.size and (mult.min() < -(1 << 31) or mult.max() >= (1 << 31)):
        raise ValueError("requant multiplier must be int32")
    if shift.size and (shift.min() < SHIFT_MIN or shift.max() > SHIFT_MAX):
        raise ValueError(f"requant shift must be in [{SHIFT_MIN}, {SHIFT_MAX}]")
    if not -128 <= zero_point <= 127:
        raise ValueError("output zero point must be int8")
    if not -128 <= qmin <= qmax <= 127:
        raise ValueError("activation range must satisfy -128 <= qmin <= qmax <= 127")


def requant(acc, bias, mult, shift, zero_point: int, qmin: int = -128,
            qmax: int = 127) -> np.ndarray:
    """Requantize int32 accumulators ``acc[..., N]`` with per-channel ``bias/mult/shift[N]`` to
    int8."""
    check_params(mult, shift, zero_point, qmin, qmax)
    x = wrap_int32(np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64))
    y = mbqm(x, np.asarray(mult, dtype=np.int64), np.asarray(shift, dtype=np.int64))
    y = wrap_int32(y + int(zero_point))
    return np.clip(y, qmin, qmax).astype(np.int8)


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite CalculateActivationRangeQuantized for an int8 output with ``scale`` and
    ``zero_point`` (models.arith's single definition: float32 division, as TFLM)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unsupported fused activation {activation!r}; use one of {ACTIVATIONS}")
    return activation_range_quantized(activation, scale, zero_point)
