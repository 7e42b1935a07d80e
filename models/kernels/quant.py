"""QUANTIZE (float32 -> int8, int8 -> int8 requantize) and DEQUANTIZE (int8 -> float32), as TFLM."""

from __future__ import annotations

import numpy as np

from hw.errors import UserError
from models.arith import mbqm, quantize_multiplier, wrap_int32
from models.kernels import kernel
from models.kernels.common import qparams

_LIMITS = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


@kernel("QUANTIZE")
def prepare_quantize(op, g):
    x_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    out_scale, out_zp = qparams(y_t)
    if y_t.dtype not in _LIMITS:
        raise UserError(f"QUANTIZE op {op.index}: output type {y_t.dtype} is not supported")
    lo, hi = _LIMITS[y_t.dtype]
    if x_t.dtype == "float32":
        s = np.float32(out_scale)

        def run(ins):
            v = (ins[0].astype(np.float32) / s).astype(np.float64)  # float32 division, as TFLM
            r = np.copysign(np.floor(np.abs(v) + 0.5), v)  # std::round, exact in float64
            r = np.clip(np.nan_to_num(r), -(2.0**31), 2.0**31 - 1)
            return [np.clip(r.astype(np.int64) + out_zp, lo, hi).astype(y_t.dtype)]

        return run
    in_scale, in_zp = qparams(x_t)
    mult, shift = quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))

    def run(ins):
        # TFLM's Requantize adds the output zero point in int32
        v = wrap_int32(mbqm(ins[0].astype(np.int64) - in_zp, mult, shift) + out_zp)
        return [np.clip(v, lo, hi).astype(y_t.dtype)]

    return run


@kernel("DEQUANTIZE")
def prepare_dequantize(op, g):
    x_t = g.tensors[op.inputs[0]]
    scale, zp = qparams(x_t)
    s = float(np.float32(scale))

    def run(ins):
        return [(s * (ins[0].astype(np.float64) - zp)).astype(np.float32)]

    return run
