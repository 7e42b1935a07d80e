"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, int8 per-channel, exactly as TFLM's reference
kernels.

Accumulation: sum(w * (x - zp_in)) + bias in int32, computed exactly (float64 GEMM is exact here:
every partial sum is an integer below 2^53), then per-channel MultiplyByQuantizedMultiplier, +
zp_out, clamp. Padding positions contribute zero, as TFLM skips them: the input is padded with its
zero point.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hw.errors import UserError
from models.kernels import kernel
from models.kernels.common import (
    Requant,
    activation_range,
    out_size,
    per_channel_multipliers,
    qparams,
    same_padding,
)

__all__ = ["conv_geometry"]


def conv_geometry(op, in_shape, fh, fw):
    """(out_h, out_w, (pad_top, pad_bottom), (pad_left, pad_right), stride_h, stride_w, dh, dw)."""
    o = op.options
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dh, dw = int(o.get("dilation_h", 1)), int(o.get("dilation_w", 1))
    pad = o.get("padding", "VALID")
    _, h, w, _ = in_shape
    oh, ow = out_size(pad, h, fh, sh, dh), out_size(pad, w, fw, sw, dw)
    return (
        oh,
        ow,
        same_padding(pad, h, fh, sh, dh, oh),
        same_padding(pad, w, fw, sw, dw, ow),
        sh,
        sw,
        dh,
        dw,
    )


def _exact_float(wint: np.ndarray, in_zp: int):
    """float32 when every partial sum of w*(x - zp) is an integer below 2^24 (exact in float32
    GEMM),
    float64 otherwise (exact below 2^53, always true here)."""
    xmax = max(abs(-128 - in_zp), abs(127 - in_zp))
    bound = int(np.abs(wint).sum(axis=0).max(initial=0)) * xmax
    return np.float32 if bound < (1 << 24) else np.float64


def _padded(x, zp, ph, pw, need_h, need_w):
    """Pad NHWC x with zp to at least need_h x need_w (top/left pad included)."""
    n, h, w, c = x.shape
    bottom = max(0, need_h - h - ph[0])
    right = max(0, need_w - w - pw[0])
    if ph[0] == 0 and pw[0] == 0 and bottom == 0 and right == 0:
        return x
    return np.pad(x, ((0, 0), (ph[0], bottom), (pw[0], right), (0, 0)), constant_values=zp)


def _windows(xs, fh, fw, oh, ow, sh, sw, dh, dw):
    """(N, OH, OW, FH, FW, C) strided view of the padded input."""
    eh, ew = (fh - 1) * dh + 1, (fw - 1) * dw + 1
    v = sliding_window_view(xs, (eh, ew), axis=(1, 2))  # N, H', W', C, eh, ew
    v = v[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :, ::dh, ::dw]
    return v.transpose(0, 1, 2, 4, 5, 3)


class _Weighted(NamedTuple):
    """What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED prepare alike."""

    x_t: object
    w_t: object
    y_t: object
    in_zp: int
    w_zp: int
    bias: np.ndarray  # int64, one per output channel
    rq: Requant


def _weighted(op, g, what: str, n_out: int) -> _Weighted:
    """Tensors, zero points, bias and per-channel requantization of a weighted op."""
    x_t, w_t = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
    b_t = g.tensor(op.inputs[2]) if len(op.inputs) > 2 else None
    y_t = g.tensors[op.outputs[0]]
    if w_t.data is None:
        raise UserError(f"{op.kind} op {op.index}: non-constant {what} is not supported")
    in_scale, in_zp = qparams(x_t)
    out_scale, out_zp = qparams(y_t)
    mult, shift = per_channel_multipliers(in_scale, w_t.quant.scale, out_scale, n_out)
    lo, hi = activation_range(op.options.get("activation", "NONE"), y_t)
    w_zp = int(w_t.quant.zero_point[0]) if w_t.quant is not None else 0
    has_bias = b_t is not None and b_t.data is not None
    bias = b_t.data.astype(np.int64) if has_bias else np.zeros(n_out, np.int64)
    return _Weighted(x_t, w_t, y_t, in_zp, w_zp, bias, Requant(mult, shift, out_zp, lo, hi))


@kernel("CONV_2D")
def prepare_conv(op, g):
    cout, fh, fw, cin_f = g.tensors[op.inputs[1]].shape
    x_t, w_t, _, in_zp, w_zp, bias, rq = _weighted(op, g, "filter", cout)
    oh, ow, ph, pw, sh, sw, dh, dw = conv_geometry(op, x_t.shape, fh, fw)
    cin = x_t.shape[3]
    groups = cin // cin_f
    if groups != 1:
        raise UserError(
            f"CONV_2D op {op.index}: grouped convolution ({groups} groups) is not supported"
        )
    wint = (w_t.data.astype(np.int64) - w_zp).reshape(cout, -1).T  # (FH*FW*C, Cout)
    ftype = _exact_float(wint, in_zp)
    wmat = wint.astype(ftype)
    need_h, need_w = (oh - 1) * sh + (fh - 1) * dh + 1, (ow - 1) * sw + (fw - 1) * dw + 1
    pointwise = fh == 1 and fw == 1 and sh == 1 and sw == 1

    def run(ins):
        x = ins[0]
        n = x.shape[0]
        xf = x.astype(ftype)
        xf -= in_zp
        if pointwise:
            cols = xf[:, :oh, :ow, :].reshape(-1, cin)
        else:
            xp = _padded(xf, 0.0, ph, pw, need_h, need_w)
            cols = _windows(xp, fh, fw, oh, ow, sh, sw, dh, dw).reshape(n * oh * ow, -1)
        acc = (cols @ wmat).astype(np.int64)
        acc += bias
        return [rq(acc).reshape(n, oh, ow, cout)]

    return run


@kernel("DEPTHWISE_CONV_2D")
def prepare_depthwise(op, g):
    _, fh, fw, cout = g.tensors[op.inputs[1]].shape
    x_t, w_t, _, in_zp, w_zp, bias, rq = _weighted(op, g, "filter", cout)
    cin = x_t.shape[3]
    mult_d = cout // cin
    oh, ow, ph, pw, sh, sw, dh, dw = conv_geometry(op, x_t.shape, fh, fw)
    wts = w_t.data[0].astype(np.int32) - w_zp  # FH, FW, Cout
    need_h, need_w = (oh - 1) * sh + (fh - 1) * dh + 1, (ow - 1) * sw + (fw - 1) * dw + 1
    _, h, w, _ = x_t.shape
    ph_b, pw_r = max(0, need_h - h - ph[0]), max(0, need_w - w - pw[0])
    hp, wp = ph[0] + h + ph_b, pw[0] + w + pw_r
    # float32 accumulation is exact while every partial sum stays below 2^24 in magnitude
    bound = int(np.abs(wts).sum(axis=(0, 1)).max(initial=0)) * max(
        abs(-128 - in_zp), abs(127 - in_zp)
    )
    acc_t = np.float32 if bound < (1 << 24) else np.float64
    # Few channels: channel-major (N, C, H, W) keeps the tap loop on long contiguous rows.
    chan_major = cout < 16
    wk = wts.astype(acc_t)
    if chan_major:
        wk = np.ascontiguousarray(wk.transpose(2, 0, 1))[:, :, :, None, None]  # C, FH, FW, 1, 1

    def run(ins):
        x = ins[0]
        n = x.shape[0]
        # padded, zero-point-subtracted input (padding contributes 0, as TFLM skips it)
        if chan_major:
            xp = np.zeros((n, cin, hp, wp), acc_t)
            xp[:, :, ph[0] : ph[0] + h, pw[0] : pw[0] + w] = x.transpose(0, 3, 1, 2)
            xp[:, :, ph[0] : ph[0] + h, pw[0] : pw[0] + w] -= in_zp
            if mult_d > 1:
                xp = np.repeat(xp, mult_d, axis=1)
            acc = np.zeros((n, cout, oh, ow), acc_t)
        else:
            xp = np.zeros((n, hp, wp, cin), acc_t)
            xp[:, ph[0] : ph[0] + h, pw[0] : pw[0] + w] = x
            xp[:, ph[0] : ph[0] + h, pw[0] : pw[0] + w] -= in_zp
            if mult_d > 1:
                xp = np.repeat(xp, mult_d, axis=3)
            acc = np.zeros((n, oh, ow, cout), acc_t)
        tmp = np.empty_like(acc)
        for ky in range(fh):
            for kx in range(fw):
                y0, x0 = ky * dh, kx * dw
                ys, xs = (
                    slice(y0, y0 + (oh - 1) * sh + 1, sh),
                    slice(x0, x0 + (ow - 1) * sw + 1, sw),
                )
                if chan_major:
                    np.multiply(xp[:, :, ys, xs], wk[:, ky, kx], out=tmp)
                else:
                    np.multiply(xp[:, ys, xs], wk[ky, kx], out=tmp)
                acc += tmp
        if chan_major:
            acc = acc.transpose(0, 2, 3, 1)
        acc = acc.astype(np.int64)
        acc += bias
        return [rq(acc)]

    return run


@kernel("FULLY_CONNECTED")
def prepare_fc(op, g):
    units, depth = g.tensors[op.inputs[1]].shape
    _, w_t, y_t, in_zp, w_zp, bias, rq = _weighted(op, g, "weights", units)
    wint = (w_t.data.astype(np.int64) - w_zp).T
    ftype = _exact_float(wint, in_zp)
    wmat = wint.astype(ftype)
    out_shape = y_t.shape

    def run(ins):
        x = ins[0].reshape(-1, depth).astype(ftype)
        x -= in_zp
        acc = (x @ wmat).astype(np.int64)
        acc += bias
        y = rq(acc)
        return [
            y.reshape(out_shape)
            if y.shape[0] == out_shape[0]
            else y.reshape((-1,) + tuple(out_shape[1:]))
        ]

    return run
