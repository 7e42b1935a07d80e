"""Data-movement ops: PAD, RESHAPE, SQUEEZE, TRANSPOSE, CONCATENATION, RESIZE_NEAREST_NEIGHBOR.

None of them changes values except PAD (fills with the output zero point for int8, as TFLM's
pad.cc). CONCATENATION copies int8 values unchanged (TFLM's int8 concatenation does not requantize).
"""

from __future__ import annotations

import numpy as np

from hw.errors import UserError
from models.arith import tfl_round
from models.kernels import kernel
from models.kernels.common import qparams


def _const_input(op, g, i, what):
    t = g.tensor(op.inputs[i]) if len(op.inputs) > i else None
    if t is None or t.data is None:
        raise UserError(f"{op.kind} op {op.index}: non-constant {what} is not supported")
    return t.data


@kernel("PAD")
def prepare_pad(op, g):
    pads = _const_input(op, g, 1, "paddings").astype(np.int64).reshape(-1, 2)
    y_t = g.tensors[op.outputs[0]]
    value = qparams(y_t)[1] if y_t.quant is not None else 0
    widths = [tuple(int(v) for v in p) for p in pads]

    def run(ins):
        return [np.pad(ins[0], widths, constant_values=value).astype(ins[0].dtype)]

    return run


def _reshape(op, g):
    shape = g.tensors[op.outputs[0]].shape

    def run(ins):
        return [ins[0].reshape(shape)]

    return run


kernel("RESHAPE")(_reshape)
kernel("SQUEEZE")(_reshape)


@kernel("TRANSPOSE")
def prepare_transpose(op, g):
    perm = tuple(int(p) for p in _const_input(op, g, 1, "permutation"))

    def run(ins):
        return [np.ascontiguousarray(np.transpose(ins[0], perm))]

    return run


@kernel("CONCATENATION")
def prepare_concat(op, g):
    axis = int(op.options.get("axis", 0))
    rank = len(g.tensors[op.outputs[0]].shape)
    if axis < 0:
        axis += rank

    def run(ins):
        return [np.concatenate([x for x in ins if x is not None], axis=axis)]

    return run


def _nearest(out_size: int, in_size: int, align: bool, half: bool) -> np.ndarray:
    """TFLite GetNearestNeighbor for every output index (float32 arithmetic as the C++)."""
    if align and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    offset = np.float32(0.5) if half else np.float32(0.0)
    idx = []
    for o in range(out_size):
        v = (np.float32(o) + offset) * scale
        i = int(tfl_round(float(v))) if align else int(np.floor(v))
        i = min(i, in_size - 1)
        if half:
            i = max(0, i)
        idx.append(i)
    return np.asarray(idx, np.int64)


@kernel("RESIZE_NEAREST_NEIGHBOR")
def prepare_resize_nn(op, g):
    x_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    _, h, w, _ = x_t.shape
    _, oh, ow, _ = y_t.shape
    align = bool(op.options.get("align_corners", False))
    half = bool(op.options.get("half_pixel_centers", False))
    ry, rx = _nearest(oh, h, align, half), _nearest(ow, w, align, half)

    def run(ins):
        return [ins[0][:, ry][:, :, rx]]

    return run
