"""Golden int8 elementwise kernels: ADD, MUL, RELU, RELU6, LEAKY_RELU, HARD_SWISH.

Bit-exact ports of TFLM's reference arithmetic (double-rounding MultiplyByQuantizedMultiplier):
add_common.cc + reference_integer_ops::AddFunc, mul_common.cc + reference_integer_ops::Mul,
activations_common.cc (ReluQuantized, Relu6Quantized), leaky_relu_common.cc + QuantizeLeakyRelu,
hard_swish_common.cc + reference_ops::HardSwish (int16 fixed point).

Every op here is a pure function of its int8 input value(s), so ``prepare`` evaluates the reference
arithmetic (vectorized) once over all 256 (unary) or 256x256 (binary) input codes and the
per-inference function is a single table lookup with NumPy broadcasting (any rank, as TFLM's
BroadcastBinaryOpSimple).

TFLM quirks kept on purpose (the oracle does them):
- RELU6 does not requantize: it clamps the raw input codes to [zp_in, q_in(6.0)] and ignores the
  output tensor's quantization. RELU requantizes in -> out with its own multiplier.
- LEAKY_RELU and HARD_SWISH multipliers: the float32 scales are widened to double before the
  multiply/divide (the installed TFLM build; some TFLM sources divide in float32, which differs in
  the last multiplier bit: tests/models/test_golden_ops.py pins such cases).
- ADD aborts in TFLM when 2*max(s1, s2) / (2^20 * s_out) >= 1; we raise UserError instead.
"""

from __future__ import annotations

import numpy as np

from hw.errors import UserError
from models.arith import (
    activation_range_quantized,
    downscale_int32_to_int16_multiplier,
    mbqm,
    quantize_multiplier,
    rdbpot,
    rdbpot16,
    saturating_left_shift16,
    sdhm16,
    srdhm,
    srdhm16,
    tfl_round,
    wrap_int16,
    wrap_int32,
)
from models.graph import Graph, Op
from models.kernels import kernel
from models.kernels.common import CODES, int8_qparams

__all__: list[str] = []


def _out_shape(graph: Graph, op: Op) -> tuple[int, ...]:
    return tuple(graph.tensors[op.outputs[0]].shape)


def _unary(graph: Graph, op: Op, lut: np.ndarray):
    """fn applying a 256-entry int8 table indexed by the input's uint8 bit pattern."""
    lut = np.asarray(lut, dtype=np.int8)
    shape = _out_shape(graph, op)

    def fn(inputs):
        x = np.asarray(inputs[0], dtype=np.int8)
        return [lut.take(x.view(np.uint8)).reshape(shape)]

    return fn


def _binary(graph: Graph, op: Op, lut2d: np.ndarray):
    """fn applying a [256, 256] int8 table with NumPy broadcasting of the two inputs."""
    flat = np.ascontiguousarray(lut2d, dtype=np.int8).reshape(-1)
    shape = _out_shape(graph, op)

    def fn(inputs):
        a = np.asarray(inputs[0], dtype=np.int8).view(np.uint8)
        b = np.asarray(inputs[1], dtype=np.int8).view(np.uint8)
        try:
            idx = (a.astype(np.uint16) << 8) | b  # a's code * 256 + b's code, broadcast
        except ValueError:
            raise UserError(
                f"{op.kind} op {op.index}: shapes {a.shape} and {b.shape} do not broadcast"
            ) from None
        return [flat.take(idx).reshape(shape)]

    return fn


# ---------------------------------------------------------------------------------- ADD / MUL
@kernel("ADD")
def prepare_add(op: Op, graph: Graph):
    s1, z1 = int8_qparams(graph, op.inputs[0], "input 1", op)
    s2, z2 = int8_qparams(graph, op.inputs[1], "input 2", op)
    so, zo = int8_qparams(graph, op.outputs[0], "output", op)
    left_shift = 20
    twice_max_input_scale = 2.0 * max(s1, s2)  # float32 max, then double
    real1 = s1 / twice_max_input_scale
    real2 = s2 / twice_max_input_scale
    real_out = twice_max_input_scale / ((1 << left_shift) * so)
    if not 0.0 < real_out < 1.0:
        raise UserError(
            f"ADD op {op.index}: output scale {so:g} too small for the input scales "
            f"(TFLM requires 2*max(s1,s2)/(2^20*s_out) < 1)"
        )
    m1, sh1 = quantize_multiplier(real1)
    m2, sh2 = quantize_multiplier(real2)
    mo, sho = quantize_multiplier(real_out)
    act_min, act_max = activation_range_quantized(op.options.get("activation", "NONE"), so, zo)
    a = CODES[:, None]
    b = CODES[None, :]
    sa = rdbpot(srdhm((a - z1) * (1 << left_shift), m1), -sh1)
    sb = rdbpot(srdhm((b - z2) * (1 << left_shift), m2), -sh2)
    raw = rdbpot(srdhm(sa + sb, mo), -sho) + zo
    return _binary(graph, op, np.clip(raw, act_min, act_max))


@kernel("MUL")
def prepare_mul(op: Op, graph: Graph):
    s1, z1 = int8_qparams(graph, op.inputs[0], "input 1", op)
    s2, z2 = int8_qparams(graph, op.inputs[1], "input 2", op)
    so, zo = int8_qparams(graph, op.outputs[0], "output", op)
    m, sh = quantize_multiplier(s1 * s2 / so)
    act_min, act_max = activation_range_quantized(op.options.get("activation", "NONE"), so, zo)
    prod = (CODES[:, None] - z1) * (CODES[None, :] - z2)
    raw = wrap_int32(mbqm(prod, m, sh) + zo)  # TFLM adds the offset in int32
    return _binary(graph, op, np.clip(raw, act_min, act_max))


# -------------------------------------------------------------------------------- activations
@kernel("RELU")
def prepare_relu(op: Op, graph: Graph):
    si, zi = int8_qparams(graph, op.inputs[0], "input", op)
    so, zo = int8_qparams(graph, op.outputs[0], "output", op)
    m, sh = quantize_multiplier(si / so)
    act_min = max(-128, zo)  # zp + int(roundf(0.0f / scale))
    raw = zo + mbqm(CODES - zi, m, sh)
    return _unary(graph, op, np.clip(raw, act_min, 127))


@kernel("RELU6")
def prepare_relu6(op: Op, graph: Graph):
    si, zi = int8_qparams(graph, op.inputs[0], "input", op)
    int8_qparams(graph, op.outputs[0], "output", op)
    # FloatToQuantizedType<int8>(6.0f, scale, zp): round(6.0f / scale) in float32, + zp, clamp.
    six = int(np.clip(int(tfl_round(float(np.float32(6.0) / np.float32(si)))) + zi, -128, 127))
    lo = zi
    x = CODES
    return _unary(graph, op, np.where(x > six, six, np.where(x < lo, lo, x)))


@kernel("LEAKY_RELU")
def prepare_leaky_relu(op: Op, graph: Graph):
    si, zi = int8_qparams(graph, op.inputs[0], "input", op)
    so, zo = int8_qparams(graph, op.outputs[0], "output", op)
    alpha = np.float32(op.options.get("alpha", 0.0))
    f_si, f_so = np.float32(si), np.float32(so)
    m_alpha, sh_alpha = quantize_multiplier(float(f_si) * float(alpha) / float(f_so))
    m_id, sh_id = quantize_multiplier(float(f_si) / float(f_so))
    v = CODES - zi
    neg_alpha = m_alpha < 0
    scaled_alpha = mbqm(v, -m_alpha if neg_alpha else m_alpha, sh_alpha)
    if neg_alpha:
        scaled_alpha = -scaled_alpha
    raw = zo + np.where(v >= 0, mbqm(v, m_id, sh_id), scaled_alpha)
    return _unary(graph, op, np.clip(raw, -128, 127))


@kernel("HARD_SWISH")
def prepare_hard_swish(op: Op, graph: Graph):
    si, zi = int8_qparams(graph, op.inputs[0], "input", op)
    so, zo = int8_qparams(graph, op.outputs[0], "output", op)
    hires_input_scale = np.float32(1.0 / 128.0) * np.float32(si)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    out_m32, out_exp = quantize_multiplier(float(hires_input_scale) / float(np.float32(so)))
    out_m16 = downscale_int32_to_int16_multiplier(out_m32)
    if out_exp > 0:
        raise UserError(
            f"HARD_SWISH op {op.index}: input/output scales give a multiplier >= 1, "
            f"which TFLM rejects"
        )
    rel_m32, rel_exp = quantize_multiplier(float(hires_input_scale) / float(reluish_scale))
    rel_m16 = downscale_int32_to_int16_multiplier(rel_m32)

    input_value = wrap_int16(CODES - zi)
    hires = wrap_int16(input_value * 128)
    preshift_out = srdhm16(hires, out_m16)
    reluish = hires
    if rel_exp > 0:
        reluish = saturating_left_shift16(reluish, rel_exp - 1)
    reluish = srdhm16(reluish, rel_m16)
    if rel_exp > 0:
        reluish = saturating_left_shift16(reluish, 1)
    if rel_exp < 0:
        reluish = rdbpot16(reluish, -rel_exp)
    reluish = (reluish + (1 << 15)) >> 1
    preshift_output_value = sdhm16(reluish, preshift_out)
    out = rdbpot16(preshift_output_value, -out_exp)
    out = wrap_int16(out + zo)
    return _unary(graph, op, np.clip(out, -128, 127))
