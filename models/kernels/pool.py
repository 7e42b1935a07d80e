"""AVERAGE_POOL_2D and MAX_POOL_2D, int8, as TFLM's reference_integer_ops (window clipped at the
borders;
average rounds half away from zero over the count of valid pixels; no requantization, clamp to
activation)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.kernels import kernel
from models.kernels.common import activation_range, out_size, same_padding


def _geometry(op, x_shape):
    o = op.options
    fh, fw = int(o["filter_height"]), int(o["filter_width"])
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    pad = o.get("padding", "VALID")
    _, h, w, _ = x_shape
    oh, ow = out_size(pad, h, fh, sh), out_size(pad, w, fw, sw)
    ph = same_padding(pad, h, fh, sh, 1, oh)
    pw = same_padding(pad, w, fw, sw, 1, ow)
    return fh, fw, sh, sw, oh, ow, ph, pw


def _window_view(xp, fh, fw, oh, ow, sh, sw):
    v = sliding_window_view(xp, (fh, fw), axis=(1, 2))  # N, H', W', C, fh, fw
    return v[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]


def _pad_amounts(h, w, fh, fw, sh, sw, oh, ow, ph, pw):
    bottom = max(0, (oh - 1) * sh + fh - h - ph[0])
    right = max(0, (ow - 1) * sw + fw - w - pw[0])
    return ((0, 0), (ph[0], bottom), (pw[0], right), (0, 0))


@kernel("AVERAGE_POOL_2D")
def prepare_avg(op, g):
    x_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    fh, fw, sh, sw, oh, ow, ph, pw = _geometry(op, x_t.shape)
    lo, hi = activation_range(op.options.get("activation", "NONE"), y_t)
    _, h, w, _ = x_t.shape
    pads = _pad_amounts(h, w, fh, fw, sh, sw, oh, ow, ph, pw)
    # count of valid (unpadded) pixels per output position
    ones = np.pad(np.ones((1, h, w, 1), np.int64), pads)
    count = _window_view(ones, fh, fw, oh, ow, sh, sw).sum(axis=(-1, -2))  # 1, OH, OW, 1

    def run(ins):
        xp = np.pad(ins[0].astype(np.int64), pads)
        acc = _window_view(xp, fh, fw, oh, ow, sh, sw).sum(axis=(-1, -2))
        half = count // 2
        num = np.where(acc > 0, acc + half, acc - half)
        q = np.where(num >= 0, num // count, -((-num) // count))  # C division truncates
        return [np.clip(q, lo, hi).astype(np.int8)]

    return run


@kernel("MAX_POOL_2D")
def prepare_max(op, g):
    x_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    fh, fw, sh, sw, oh, ow, ph, pw = _geometry(op, x_t.shape)
    lo, hi = activation_range(op.options.get("activation", "NONE"), y_t)
    _, h, w, _ = x_t.shape
    pads = _pad_amounts(h, w, fh, fw, sh, sw, oh, ow, ph, pw)

    def run(ins):
        xp = np.pad(ins[0], pads, constant_values=-128)
        m = _window_view(xp, fh, fw, oh, ow, sh, sw).max(axis=(-1, -2))
        return [np.clip(m, lo, hi).astype(np.int8)]

    return run
