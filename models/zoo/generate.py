"""Seeded generators of realistic random int8 networks, built with :mod:`models.tflite_writer`.

Every generator returns the TFLite flatbuffer bytes of a model shaped like a real network family.
Weights are random (He-normal, seeded), quantized as TFLite's converter does (symmetric per-channel
int8 for conv and depthwise, per-tensor for fully connected, int32 bias at ``in_scale * w_scale``).
Activation quantization is *calibrated*: a float forward pass of the same network (dequantized
weights) on a seeded calibration input gives each activation's [min, max], turned into (scale, zero
point) as the converter's asymmetric int8 scheme does, so activations use the int8 range instead of
saturating.

Generators (all keyword arguments, deterministic for a given ``seed``):

- :func:`mobilenet_v2_like` — stem conv, inverted residual blocks (expand 1x1, depthwise 3x3
  stride 1/2, project 1x1, residual ADD), 1x1 head conv, MEAN or AVERAGE_POOL_2D, FC, SOFTMAX.
  ``keras_padding=True`` emits PAD + VALID depthwise for stride 2 (as Keras' MobileNetV2 does).
- :func:`ssd_fpn_like` — backbone at strides 8/16/32, FPN top-down path
  (RESIZE_NEAREST_NEIGHBOR + ADD), per-level heads reshaped and CONCATENATED (int8 QUANTIZE
  requant onto the shared scale), LOGISTIC class scores and DEQUANTIZE'd box regressions.
- :func:`nchw_input_model` — NCHW input with a leading TRANSPOSE, conv, MAX_POOL_2D, MEAN, FC.
- :func:`float_io_model` — float32 input, QUANTIZE, PAD + VALID conv, FC, SOFTMAX, DEQUANTIZE.
- :func:`yolo_tiny_like` — conv + LEAKY_RELU + MAX_POOL_2D, upsample, CONCATENATION, LOGISTIC.
- :func:`mobilenet_v3_like` — HARD_SWISH, squeeze-excite (MEAN, 1x1 conv RELU, hard sigmoid by ADD,
  RELU6, MUL), residual ADD, AVERAGE_POOL_2D, RESHAPE/SQUEEZE, FC, SOFTMAX.

``python -m models.zoo.generate OUTDIR`` writes a few of them as .tflite files.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.tflite_writer import ModelBuilder, T, quantize_symmetric

__all__ = ["mobilenet_v2_like", "ssd_fpn_like", "nchw_input_model", "float_io_model",
           "yolo_tiny_like", "mobilenet_v3_like", "GENERATORS", "main"]


def _qparams(f: np.ndarray) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero_point) covering [min(f, 0), max(f, 0)], converter style."""
    lo = min(float(np.min(f)), 0.0)
    hi = max(float(np.max(f)), 0.0)
    if hi - lo < 1e-6:
        hi = lo + 1e-3
    scale = (hi - lo) / 255.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zp


def _act(f: np.ndarray, act: str) -> np.ndarray:
    if act == "RELU":
        return np.maximum(f, 0)
    if act == "RELU6":
        return np.clip(f, 0, 6)
    if act == "RELU_N1_TO_1":
        return np.clip(f, -1, 1)
    return f


def _pad_same(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], value=0.0) -> np.ndarray:
    pads = [(0, 0)]
    for n, kk, ss in zip(x.shape[1:3], k, s, strict=True):
        out = -(-n // ss)
        total = max((out - 1) * ss + kk - n, 0)
        pads.append((total // 2, total - total // 2))
    pads.append((0, 0))
    return np.pad(x, pads, constant_values=value)


def _windows(x: np.ndarray, k, s, padding, value=0.0) -> np.ndarray:
    """[N, OH, OW, C, KH, KW] windows of an NHWC float array."""
    if padding == "SAME":
        x = _pad_same(x, k, s, value)
    return sliding_window_view(x, k, axis=(1, 2))[:, ::s[0], ::s[1]]


@dataclass
class V:
    """A value of the network under construction: tensor handle and calibration float value."""
    t: T
    f: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.t.shape


class CalibratedNet:
    """Builds an int8 TFLite model while running its float twin for activation calibration."""

    def __init__(self, seed: int, name: str = "generated"):
        self.b = ModelBuilder(name)
        self.rng = np.random.default_rng(seed)

    # ------------------------------------------------------------- helpers
    def _quant_out(self, f, act="NONE"):
        return _qparams(_act(f, act))

    def _w(self, shape, fan_in, axis):
        wf = self.rng.normal(0, math.sqrt(2.0 / fan_in), size=shape)
        q, s = quantize_symmetric(wf, axis)
        if axis is None:
            deq = q.astype(np.float64) * np.float64(s[0])
        else:
            bshape = tuple(-1 if i == axis else 1 for i in range(len(shape)))
            deq = q.astype(np.float64) * s.astype(np.float64).reshape(bshape)
        return wf, deq

    def _bias(self, n):
        return self.rng.normal(0, 0.1, size=n)

    # ------------------------------------------------------------- graph
    def input(self, shape, calib: np.ndarray | None = None, scale=None, zp=None,
              dtype="int8") -> V:
        """Graph input. int8 inputs default to scale 1/128, zero point 0 (real range [-1, 1]);
        calibration data defaults to uniform [-1, 1]."""
        f = calib if calib is not None else self.rng.uniform(-1, 1, size=shape)
        if dtype == "float32":
            return V(self.b.input(shape, "float32"), f)
        s = scale if scale is not None else 1.0 / 128
        z = zp if zp is not None else 0
        return V(self.b.input(shape, "int8", s, z), f)

    def output(self, *vs: V) -> None:
        self.b.output(*(v.t for v in vs))

    def finish(self) -> bytes:
        return self.b.finish()

    def conv(self, x: V, cout: int, k=3, stride=1, padding="SAME", act="RELU6") -> V:
        cin = x.shape[3]
        wf, deq = self._w((cout, k, k, cin), k * k * cin, 0)
        bf = self._bias(cout)
        win = _windows(x.f, (k, k), (stride, stride), padding)
        f = np.tensordot(win, deq.transpose(3, 1, 2, 0), axes=([3, 4, 5], [0, 1, 2])) + bf
        s, z = self._quant_out(f, act)
        w = self.b.weights(wf, axis=0)
        t = self.b.conv2d(x.t, w, bias=bf, stride=stride, padding=padding, activation=act,
                          out_scale=s, out_zp=z)
        return V(t, _act(f, act))

    def dwconv(self, x: V, k=3, stride=1, padding="SAME", act="RELU6", mult=1) -> V:
        c = x.shape[3] * mult
        wf, deq = self._w((1, k, k, c), k * k, 3)
        bf = self._bias(c)
        xf = np.repeat(x.f, mult, axis=3) if mult > 1 else x.f
        win = _windows(xf, (k, k), (stride, stride), padding)
        f = np.einsum("nhwcij,ijc->nhwc", win, deq[0], optimize=True) + bf
        s, z = self._quant_out(f, act)
        w = self.b.weights(wf, axis=3)
        t = self.b.depthwise_conv2d(x.t, w, bias=bf, stride=stride, padding=padding,
                                    activation=act, out_scale=s, out_zp=z)
        return V(t, _act(f, act))

    def fc(self, x: V, n: int, act="NONE") -> V:
        cin = x.shape[-1]
        wf, deq = self._w((n, cin), cin, None)
        bf = self._bias(n)
        f = x.f.reshape(-1, cin) @ deq.T + bf
        s, z = self._quant_out(f, act)
        t = self.b.fully_connected(x.t, self.b.weights(wf, axis=None), bias=bf, activation=act,
                                   out_scale=s, out_zp=z)
        return V(t, _act(f, act))

    def add(self, a: V, b: V, act="NONE") -> V:
        f = a.f + b.f
        s, z = self._quant_out(f, act)
        return V(self.b.add(a.t, b.t, act, s, z), _act(f, act))

    def mul(self, a: V, b: V, act="NONE") -> V:
        f = a.f * b.f
        s, z = self._quant_out(f, act)
        return V(self.b.mul(a.t, b.t, act, s, z), _act(f, act))

    def const(self, value: np.ndarray) -> V:
        """A per-tensor int8 constant operand (for ADD/MUL)."""
        value = np.asarray(value, np.float64)
        s, z = _qparams(value)
        q = np.clip(np.round(value / s) + z, -128, 127).astype(np.int8)
        return V(self.b.const(q, "int8", s, z), (q.astype(np.float64) - z) * s)

    def pad(self, x: V, paddings) -> V:
        # int8 PAD fills with the zero point, i.e. real 0.
        return V(self.b.pad(x.t, paddings), np.pad(x.f, paddings))

    def avg_pool(self, x: V, k, stride, padding="VALID") -> V:
        k2 = (k, k) if isinstance(k, int) else tuple(k)
        win = _windows(x.f, k2, (stride, stride), padding, value=np.nan)
        return V(self.b.average_pool2d(x.t, k2, stride, padding), np.nanmean(win, axis=(4, 5)))

    def max_pool(self, x: V, k, stride, padding="VALID") -> V:
        k2 = (k, k) if isinstance(k, int) else tuple(k)
        win = _windows(x.f, k2, (stride, stride), padding, value=-np.inf)
        return V(self.b.max_pool2d(x.t, k2, stride, padding), win.max(axis=(4, 5)))

    def mean(self, x: V, axes, keep_dims=True) -> V:
        f = x.f.mean(axis=tuple(axes), keepdims=keep_dims)
        s, z = _qparams(f)
        return V(self.b.mean(x.t, axes, keep_dims, s, z), f)

    def reshape(self, x: V, shape) -> V:
        t = self.b.reshape(x.t, shape)
        return V(t, x.f.reshape(t.shape))

    def squeeze(self, x: V, axes) -> V:
        t = self.b.squeeze(x.t, axes)
        return V(t, x.f.reshape(t.shape))

    def transpose(self, x: V, perm) -> V:
        return V(self.b.transpose(x.t, perm), x.f.transpose(perm))

    def resize_nearest(self, x: V, size) -> V:
        h, w = x.shape[1:3]
        iy = np.minimum((np.arange(size[0]) * h) // size[0], h - 1)
        ix = np.minimum((np.arange(size[1]) * w) // size[1], w - 1)
        return V(self.b.resize_nearest_neighbor(x.t, size), x.f[:, iy][:, :, ix])

    def requant(self, x: V, scale: float, zp: int) -> V:
        """int8 -> int8 QUANTIZE onto (scale, zp), as converters insert before CONCATENATION."""
        if x.t.qparams == (float(np.float32(scale)), zp):
            return x
        return V(self.b.quantize(x.t, scale, zp), x.f)

    def concat(self, xs: list[V], axis: int) -> V:
        s, z = _qparams(np.concatenate([v.f.ravel() for v in xs]))
        xs = [self.requant(v, s, z) for v in xs]
        return V(self.b.concatenation([v.t for v in xs], axis), np.concatenate([v.f for v in xs],
                                                                               axis=axis))

    def softmax(self, x: V) -> V:
        e = np.exp(x.f - x.f.max(axis=-1, keepdims=True))
        return V(self.b.softmax(x.t), e / e.sum(axis=-1, keepdims=True))

    def logistic(self, x: V) -> V:
        return V(self.b.logistic(x.t), 1 / (1 + np.exp(-x.f)))

    def relu(self, x: V) -> V:
        f = np.maximum(x.f, 0)
        s, z = _qparams(f)
        return V(self.b.relu(x.t, s, z), f)

    def relu6(self, x: V) -> V:
        # TFLM's RELU6 clamps in the input's quantization (ignores the output's): keep it equal.
        return V(self.b.relu6(x.t), np.clip(x.f, 0, 6))

    def leaky_relu(self, x: V, alpha=0.1) -> V:
        f = np.where(x.f > 0, x.f, alpha * x.f)
        s, z = _qparams(f)
        return V(self.b.leaky_relu(x.t, alpha, s, z), f)

    def hard_swish(self, x: V) -> V:
        f = x.f * np.clip(x.f + 3, 0, 6) / 6
        s, z = _qparams(f)
        return V(self.b.hard_swish(x.t, s, z), f)

    def quantize(self, x: V) -> V:
        s, z = _qparams(x.f)
        return V(self.b.quantize(x.t, s, z), x.f)

    def dequantize(self, x: V) -> V:
        return V(self.b.dequantize(x.t), x.f)


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


#: MobileNetV2 inverted residual settings: (expansion t, channels c, repeats n, first stride s).
MOBILENET_V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2_like(input_hw=(224, 224), channels=3, alpha=1.0, num_classes=1000, seed=0,
                      pool="mean", keras_padding=False, blocks=None, last_channels=1280) -> bytes:
    """MobileNetV2-shaped int8 classifier: stem conv 3x3/2, inverted residual blocks (expand 1x1
    RELU6, depthwise 3x3 stride 1/2 RELU6, project 1x1 linear, residual ADD when shapes allow), 1x1
    head conv, global pool (``pool`` 'mean' -> MEAN over H, W; 'avgpool' -> AVERAGE_POOL_2D +
    RESHAPE), FC, SOFTMAX.
    ``blocks`` overrides :data:`MOBILENET_V2_BLOCKS` (e.g. a truncated list for fast tests)."""
    h, w = input_hw
    net = CalibratedNet(seed, f"mobilenet_v2_like_{h}x{w}_a{alpha}")
    x = net.input((1, h, w, channels))
    x = net.conv(x, _make_divisible(32 * alpha), 3, 2)
    cin = x.shape[3]
    for t, c, n, s in (blocks or MOBILENET_V2_BLOCKS):
        cout = _make_divisible(c * alpha)
        for i in range(n):
            stride = s if i == 0 else 1
            inp = x
            if t != 1:
                x = net.conv(x, cin * t, 1, 1)
            if stride == 2 and keras_padding:
                hh, ww = x.shape[1:3]
                # Keras' correct_pad: (0, 1) for an even size, (1, 1) for an odd one.
                x = net.pad(x, [[0, 0], [hh % 2, 1], [ww % 2, 1], [0, 0]])
                x = net.dwconv(x, 3, 2, "VALID")
            else:
                x = net.dwconv(x, 3, stride)
            x = net.conv(x, cout, 1, 1, act="NONE")
            if stride == 1 and cin == cout:
                x = net.add(inp, x)
            cin = cout
    last = _make_divisible(last_channels * alpha) if alpha > 1.0 else last_channels
    x = net.conv(x, last, 1, 1)
    if pool == "mean":
        x = net.mean(x, [1, 2], keep_dims=False)
    else:
        x = net.avg_pool(x, x.shape[1:3], 1, "VALID")
        x = net.reshape(x, [1, last])
    x = net.fc(x, num_classes)
    net.output(net.softmax(x))
    return net.finish()


def ssd_fpn_like(input_hw=(64, 64), channels=3, num_classes=3, anchors=2, width=16, seed=0,
                 float_boxes=True) -> bytes:
    """SSD/FPN-shaped detector: a small backbone to strides 8, 16, 32; FPN top-down (1x1 lateral
    convs, RESIZE_NEAREST_NEIGHBOR x2, ADD); per level a class head and a box head (3x3 convs)
    reshaped to [1, -1, classes] / [1, -1, 4] and CONCATENATED across levels (inputs requantized
    onto one scale by int8 QUANTIZE, as converters do); outputs LOGISTIC class scores and box
    regressions (DEQUANTIZE'd to float32 if ``float_boxes``)."""
    h, w = input_hw
    net = CalibratedNet(seed, f"ssd_fpn_like_{h}x{w}")
    x = net.input((1, h, w, channels))
    x = net.conv(x, width, 3, 2)
    x = net.dwconv(x, 3, 2)
    x = net.conv(x, width * 2, 1)
    c3 = net.conv(net.dwconv(x, 3, 2), width * 2, 1)          # stride 8
    c4 = net.conv(net.dwconv(c3, 3, 2), width * 4, 1)         # stride 16
    c5 = net.conv(net.dwconv(c4, 3, 2), width * 4, 1)         # stride 32
    p5 = net.conv(c5, width * 2, 1, act="NONE")
    p4 = net.add(net.conv(c4, width * 2, 1, act="NONE"), net.resize_nearest(p5, c4.shape[1:3]))
    p3 = net.add(net.conv(c3, width * 2, 1, act="NONE"), net.resize_nearest(p4, c3.shape[1:3]))
    cls, box = [], []
    for p in (p3, p4, p5):
        f = net.conv(p, width * 2, 3, act="RELU")
        cls.append(net.reshape(net.conv(f, anchors * num_classes, 3, act="NONE"),
                               [1, -1, num_classes]))
        box.append(net.reshape(net.conv(f, anchors * 4, 3, act="NONE"), [1, -1, 4]))
    scores = net.logistic(net.concat(cls, 1))
    boxes = net.concat(box, 1)
    net.output(scores, net.dequantize(boxes) if float_boxes else boxes)
    return net.finish()


def nchw_input_model(input_chw=(3, 32, 32), num_classes=10, seed=0) -> bytes:
    """NCHW int8 input, a leading TRANSPOSE to NHWC, conv, MAX_POOL_2D, depthwise, MEAN, FC."""
    c, h, w = input_chw
    net = CalibratedNet(seed, f"nchw_input_{c}x{h}x{w}")
    x = net.input((1, c, h, w))
    x = net.transpose(x, [0, 2, 3, 1])
    x = net.conv(x, 16, 3, 1)
    x = net.max_pool(x, 2, 2)
    x = net.dwconv(x, 3, 2)
    x = net.conv(x, 32, 1, 1, act="RELU")
    x = net.mean(x, [1, 2], keep_dims=True)
    x = net.fc(x, num_classes)
    net.output(x)
    return net.finish()


def float_io_model(input_hw=(32, 32), channels=3, num_classes=10, seed=0) -> bytes:
    """float32 input -> QUANTIZE -> PAD + VALID conv 3x3/2 -> depthwise -> conv ->
    AVERAGE_POOL_2D -> FC -> SOFTMAX -> DEQUANTIZE (float32 output)."""
    h, w = input_hw
    net = CalibratedNet(seed, f"float_io_{h}x{w}")
    x = net.input((1, h, w, channels), dtype="float32")
    x = net.quantize(x)
    x = net.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    x = net.conv(x, 16, 3, 2, "VALID")
    x = net.dwconv(x, 3, 1)
    x = net.conv(x, 24, 1, 1)
    x = net.avg_pool(x, x.shape[1:3], 1)
    x = net.reshape(x, [1, -1])
    x = net.fc(x, num_classes)
    net.output(net.dequantize(net.softmax(x)))
    return net.finish()


def yolo_tiny_like(input_hw=(64, 64), channels=3, num_outputs=12, seed=0) -> bytes:
    """YOLO-tiny-shaped: conv + LEAKY_RELU(0.1) + MAX_POOL_2D stages, a 2x RESIZE_NEAREST_NEIGHBOR
    upsample CONCATENATED with a skip, two LOGISTIC heads."""
    h, w = input_hw
    net = CalibratedNet(seed, f"yolo_tiny_like_{h}x{w}")
    x = net.input((1, h, w, channels))
    feats = []
    for c in (8, 16, 32, 32):
        x = net.leaky_relu(net.conv(x, c, 3, 1, act="NONE"), 0.1)
        feats.append(x)
        x = net.max_pool(x, 2, 2)
    x = net.leaky_relu(net.conv(x, 64, 3, 1, act="NONE"), 0.1)
    head1 = net.logistic(net.conv(x, num_outputs, 1, act="NONE"))
    u = net.leaky_relu(net.conv(x, 16, 1, act="NONE"), 0.1)
    u = net.resize_nearest(u, feats[-1].shape[1:3])
    y = net.concat([u, feats[-1]], 3)
    y = net.leaky_relu(net.conv(y, 32, 3, act="NONE"), 0.1)
    head2 = net.logistic(net.conv(y, num_outputs, 1, act="NONE"))
    net.output(head1, head2)
    return net.finish()


def mobilenet_v3_like(input_hw=(64, 64), channels=3, num_classes=10, seed=0) -> bytes:
    """MobileNetV3-shaped: HARD_SWISH stem, blocks with squeeze-excite (MEAN keep_dims, 1x1 conv
    RELU, 1x1 conv, hard sigmoid = RELU6(x + 3) * 1/6 by ADD/RELU6/MUL, MUL broadcast over H, W),
    residual ADD, standalone RELU, AVERAGE_POOL_2D, 1x1 conv, SQUEEZE, FC, SOFTMAX."""
    h, w = input_hw
    net = CalibratedNet(seed, f"mobilenet_v3_like_{h}x{w}")
    x = net.input((1, h, w, channels))
    x = net.hard_swish(net.conv(x, 16, 3, 2, act="NONE"))
    three = net.const(np.full((1, 1, 1, 1), 3.0))
    sixth = net.const(np.full((1, 1, 1, 1), 1.0 / 6))
    for cexp, cout, stride, hs in ((32, 16, 1, False), (48, 24, 2, True), (72, 24, 1, True)):
        inp = x
        e = net.conv(x, cexp, 1, act="NONE")
        e = net.hard_swish(e) if hs else net.relu(e)
        d = net.dwconv(e, 3, stride, act="NONE")
        d = net.hard_swish(d) if hs else net.relu(d)
        se = net.mean(d, [1, 2], keep_dims=True)
        se = net.conv(se, max(8, cexp // 4), 1, act="RELU")
        se = net.conv(se, cexp, 1, act="NONE")
        se = net.mul(net.relu6(net.add(se, three)), sixth)
        d = net.mul(d, se)
        x = net.conv(d, cout, 1, act="NONE")
        if stride == 1 and inp.shape == x.shape:
            x = net.add(inp, x)
    x = net.hard_swish(net.conv(x, 96, 1, act="NONE"))
    x = net.avg_pool(x, x.shape[1:3], 1)
    x = net.hard_swish(net.conv(x, 128, 1, act="NONE"))
    x = net.squeeze(x, [1, 2])
    x = net.fc(x, num_classes)
    net.output(net.softmax(x))
    return net.finish()


#: name -> zero-argument callable giving model bytes (the files ``main`` writes).
GENERATORS = {
    "mobilenet_v2_96_a035": lambda: mobilenet_v2_like((96, 96), 3, 0.35, seed=1),
    "mobilenet_v2_224_a10": lambda: mobilenet_v2_like((224, 224), 3, 1.0, seed=2),
    "mobilenet_v2_96_a035_keras": lambda: mobilenet_v2_like((96, 96), 3, 0.35, seed=3,
                                                            pool="avgpool", keras_padding=True),
    "ssd_fpn_64": lambda: ssd_fpn_like((64, 64), seed=4),
    "nchw_input_32": lambda: nchw_input_model((3, 32, 32), seed=5),
    "float_io_32": lambda: float_io_model((32, 32), seed=6),
    "yolo_tiny_64": lambda: yolo_tiny_like((64, 64), seed=7),
    "mobilenet_v3_64": lambda: mobilenet_v3_like((64, 64), seed=8),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m models.zoo.generate OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, gen in GENERATORS.items():
        path = out / f"{name}.tflite"
        path.write_bytes(gen())
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
