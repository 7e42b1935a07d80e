"""Golden int8 nonlinear kernels: SOFTMAX, LOGISTIC, MEAN.

Bit-exact ports of TFLM's reference arithmetic (double-rounding MultiplyByQuantizedMultiplier):
- SOFTMAX: softmax_common.cc CalculateSoftmaxParams (PreprocessSoftmaxScaling with beta; diff_min
  from CalculateInputRadius(5, left_shift)) and reference_ops::Softmax<int8, int8> (gemmlowp
  exp_on_negative_values on Q5.26, sum in Q12.19, GetReciprocal). TFLM requires output zero point
  -128 and scale exactly 1/256, and aborts (TFLITE_CHECK) when a row's sum of exponentials reaches
  512, e.g. 512 or more elements equal to the row maximum: we raise UserError there.
- LOGISTIC: logistic_common.cc (input_multiplier from frexp(scale * 2^27), input_range_radius) and
  reference_integer_ops::Logistic (gemmlowp logistic on FixedPoint<int32, 4>). TFLM requires output
  zero point -128 and never looks at the output scale: the result is always on scale 1/256.
- MEAN: reduce_common.cc EvalMeanHelper for int8 -> reference_ops::QuantizedMeanOrSum (sum over the
  resolved axes, 1/N folded into the multiplier after a floor(log2 N) pre-shift capped at 32 and at
  31 + shift) for every axis set: this TFLM version has no int8 special case for 4-D axes {1, 2}
  and no plain integer-division path for equal input/output quantization.

Per-model constant work (multipliers, exp/logistic tables over every possible int8 input or input
difference) happens in ``prepare``; per-inference work is vectorized NumPy over whole tensors.
"""

from __future__ import annotations

import math

import numpy as np

from hw.errors import UserError
from models.arith import (
    calculate_input_radius,
    exp_on_negative_values,
    fp_logistic,
    get_reciprocal,
    mbqm,
    quantize_multiplier,
    rdbpot,
    srdhm,
    tfl_round,
    wrap_int32,
)
from models.graph import Graph, Op
from models.kernels import kernel
from models.kernels.common import CODES, int8_qparams

__all__: list[str] = []


# ------------------------------------------------------------------------------------ SOFTMAX
_SCALED_DIFF_INTEGER_BITS = 5
_ACCUMULATION_INTEGER_BITS = 12


@kernel("SOFTMAX")
def prepare_softmax(op: Op, graph: Graph):
    si, _ = int8_qparams(graph, op.inputs[0], "input", op)
    so, zo = int8_qparams(graph, op.outputs[0], "output", op)
    if zo != -128 or np.float32(so) != np.float32(1.0 / 256):
        raise UserError(
            f"SOFTMAX op {op.index}: int8 output must have zero point -128 and scale "
            f"1/256 (TFLM requires it), got {zo} and {so:g}"
        )
    beta = float(np.float32(op.options.get("beta", 1.0)))
    # PreprocessSoftmaxScaling (double-rounding build): cap at 2^31 - 1, quantize (> 1).
    real = min(beta * si * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS)), float((1 << 31) - 1))
    if not real > 1.0:
        raise UserError(
            f"SOFTMAX op {op.index}: beta * input scale is too small "
            f"(TFLM requires beta * s_in * 2^26 > 1)"
        )
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -calculate_input_radius(_SCALED_DIFF_INTEGER_BITS, left_shift)
    # Tables over every possible input difference d = x - max(row) in [-255, 0], indexed by -d.
    d = -np.arange(256, dtype=np.int64)
    valid = d >= diff_min
    rescaled = srdhm(wrap_int32(d * (1 << left_shift)), multiplier)  # ...GreaterThanOne
    exp_q0 = np.where(valid, exp_on_negative_values(rescaled, _SCALED_DIFF_INTEGER_BITS), 0)
    exp_acc = np.where(valid, rdbpot(exp_q0, _ACCUMULATION_INTEGER_BITS), 0)  # Rescale<12>
    exp_q0 = exp_q0.astype(np.int64)
    exp_acc = exp_acc.astype(np.int64)
    out_shape = tuple(graph.tensors[op.outputs[0]].shape)

    def fn(inputs):
        x = np.asarray(inputs[0], dtype=np.int8)
        depth = x.shape[-1] if x.ndim else 1
        rows = x.reshape(-1, depth).astype(np.int16)
        idx = rows.max(axis=1, keepdims=True) - rows  # -(x - max) in [0, 255]
        sums = exp_acc[idx].sum(axis=1, keepdims=True)
        if sums.shape[0] <= _SCALAR_ROWS:  # per-row scalars: cheaper in Python ints
            pairs = [_get_reciprocal_scalar(int(v)) for v in sums[:, 0]]
            shifted_scale = np.array([[p[0]] for p in pairs], dtype=np.int64)
            exponent = np.array([[p[1] + 31 - 8] for p in pairs], dtype=np.int64)
        else:
            shifted_scale, nbou = get_reciprocal(wrap_int32(sums), _ACCUMULATION_INTEGER_BITS)
            exponent = nbou + 31 - 8
        if np.any((exponent < 0) | (exponent > 31)):
            raise UserError(
                f"SOFTMAX op {op.index}: a row's sum of exponentials reaches 512 "
                f"(too many values near the row maximum); TFLM aborts on this input"
            )
        # excluded differences (< diff_min) have exp 0 here, giving unsat 0 -> -128 as TFLM writes
        unsat = rdbpot(srdhm(shifted_scale, exp_q0[idx]), exponent)
        out = np.clip(unsat - 128, -128, 127)
        return [out.astype(np.int8).reshape(out_shape)]

    return fn


_SCALAR_ROWS = 8


def _get_reciprocal_scalar(x: int) -> tuple[int, int]:
    """models.arith.get_reciprocal(wrap_int32(x), 12) on one Python int (same arithmetic)."""
    x = ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    u = x & 0xFFFFFFFF
    headroom_plus_one = 32 - u.bit_length()
    num_bits_over_unit = _ACCUMULATION_INTEGER_BITS - headroom_plus_one
    a = ((((u << headroom_plus_one) - (1 << 31)) & 0xFFFFFFFF) ^ (1 << 31)) - (1 << 31)

    def srdhm_s(p: int, q: int) -> int:
        if p == q == -(1 << 31):
            return (1 << 31) - 1
        return (p * q + (1 << 30)) >> 31

    def wrap(v: int) -> int:
        return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)

    # one_over_one_plus_x_for_x_in_0_1(a)
    s = a + (1 << 31) - 1
    v = s + (1 if s >= 0 else -1)
    half_denominator = v // 2 if v >= 0 else -((-v) // 2)
    y = wrap(1515870810 + srdhm_s(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap((1 << 29) - srdhm_s(half_denominator, y))
        t = srdhm_s(y, one_minus)  # Rescale<2> of an F4 value: saturating << 2
        t = (1 << 31) - 1 if t > (1 << 29) - 1 else -(1 << 31) if t < -((1 << 29) - 1) else t << 2
        y = wrap(y + t)
    y = (1 << 31) - 1 if y > (1 << 30) - 1 else -(1 << 31) if y < -((1 << 30) - 1) else y << 1
    return y, num_bits_over_unit


# ----------------------------------------------------------------------------------- LOGISTIC
@kernel("LOGISTIC")
def prepare_logistic(op: Op, graph: Graph):
    si, zi = int8_qparams(graph, op.inputs[0], "input", op)
    _, zo = int8_qparams(graph, op.outputs[0], "output", op)
    if zo != -128:
        raise UserError(
            f"LOGISTIC op {op.index}: int8 output must have zero point -128 "
            f"(TFLM requires it), got {zo}"
        )
    input_integer_bits = 4
    frac, input_left_shift = math.frexp(si * float(1 << (31 - input_integer_bits)))
    input_multiplier = int(tfl_round(frac * float(1 << 31)))
    if input_multiplier == 1 << 31:  # static_cast<int32_t>(2^31) on x86
        input_multiplier = -(1 << 31)
    if input_left_shift < 0:
        raise UserError(
            f"LOGISTIC op {op.index}: input scale {si:g} too small (TFLM needs scale * 2^27 >= 0.5)"
        )
    radius = calculate_input_radius(input_integer_bits, input_left_shift, 31)
    v = CODES - zi
    inside = (v > -radius) & (v < radius)
    v_in = np.where(inside, v, 0)
    q4 = mbqm(v_in, input_multiplier, input_left_shift)
    out_q0 = fp_logistic(q4, input_integer_bits)
    out = np.clip(rdbpot(out_q0, 31 - 8) - 128, -128, 127)
    lut = np.where(v <= -radius, -128, np.where(v >= radius, 127, out)).astype(np.int8)
    out_shape = tuple(graph.tensors[op.outputs[0]].shape)

    def fn(inputs):
        x = np.asarray(inputs[0], dtype=np.int8)
        return [lut.take(x.view(np.uint8)).reshape(out_shape)]

    return fn


# --------------------------------------------------------------------------------------- MEAN
def _axes(op: Op, graph: Graph, ndim: int) -> tuple[int, ...]:
    t = graph.tensor(op.inputs[1]) if len(op.inputs) > 1 else None
    if t is None or t.data is None:
        raise UserError(f"MEAN op {op.index}: the axes must be a constant tensor")
    resolved: list[int] = []
    for a in np.asarray(t.data).reshape(-1).tolist():
        c = a + ndim if a < 0 else a
        if not 0 <= c < ndim:
            raise UserError(f"MEAN op {op.index}: axis {a} out of range for a {ndim}-D input")
        if c not in resolved:
            resolved.append(c)
    return tuple(resolved)


@kernel("MEAN")
def prepare_mean(op: Op, graph: Graph):
    si, zi = int8_qparams(graph, op.inputs[0], "input", op)
    so, zo = int8_qparams(graph, op.outputs[0], "output", op)
    in_shape = tuple(graph.tensors[op.inputs[0]].shape)
    out_shape = tuple(graph.tensors[op.outputs[0]].shape)
    axes = _axes(op, graph, len(in_shape))
    multiplier, shift = quantize_multiplier(si / so)
    n = 1
    for a in axes:
        n *= in_shape[a]
    if n == 0 or 0 in in_shape:
        zeros = np.zeros(out_shape, dtype=np.int8)
        return lambda inputs: [zeros.copy()]
    # Fold 1/n into the multiplier (QuantizedMeanOrSum, compute_sum=false).
    pre = min(n.bit_length() - 1, 32, 31 + shift)
    if pre < 0:
        raise UserError(f"MEAN op {op.index}: input/output scale ratio too small (TFLM UB)")
    multiplier = (multiplier << pre) // n
    shift -= pre
    offset = zi * n

    def fn(inputs):
        x = np.asarray(inputs[0], dtype=np.int8)
        total = x.sum(axis=axes, dtype=np.int64)
        shifted = wrap_int32(total - offset)
        out = np.clip(wrap_int32(mbqm(shifted, multiplier, shift) + zo), -128, 127)  # int32 add
        return [out.astype(np.int8).reshape(out_shape)]

    return fn
