"""Hand-built TFLite models that reach arithmetic corners random models almost never hit.

Expected values never come from here: the tests run these models through TFLM (the oracle) and
compare the golden model, the ISA simulator and the RTL against it.
"""

from __future__ import annotations

import numpy as np

from models.tflite_writer import ModelBuilder, T

__all__ = ["ZP_WRAP_OPS", "zp_wrap_model", "ramp_input", "assert_zp_wrap_equals_tflm",
           "pytorch_nchw_model", "keras_shape_model", "transpose_perms_model",
           "random_layout_model"]

ZP_WRAP_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


def zp_wrap_model(op: str, zp: int = 100) -> bytes:
    """One ``op`` whose requantized accumulator lands within ``zp`` of INT32_MAX for part of the
    input ramp, so adding the output zero point overflows int32 (TFLM wraps, then clamps).

    Scales: input 1 + 2^-15, weight 1 - 2^-15, output 1 -> effective multiplier 1 - 2^-30, i.e.
    quantized multiplier 2^31 - 2 with shift 0: y = acc - 2 near 2^31. Weight 1, bias
    INT32_MAX - 127, so acc = x + bias sweeps the last 256 int32 values below the limit.
    """
    b = ModelBuilder()
    bias = np.array([2**31 - 1 - 127], np.int32)
    w_scale = np.array([1 - 2**-15], np.float32)
    one = np.ones((1, 1, 1, 1), np.int8)
    if op == "FULLY_CONNECTED":
        x = b.input((256, 1), "int8", 1 + 2**-15, 0)
        w = b.const(one.reshape(1, 1), "int8", w_scale, 0, axis=0)
        y = b.fully_connected(x, w, bias, "NONE", 1.0, zp)
    elif op == "CONV_2D":
        x = b.input((1, 16, 16, 1), "int8", 1 + 2**-15, 0)
        w = b.const(one, "int8", w_scale, 0, axis=0)
        y = b.conv2d(x, w, bias, 1, "VALID", "NONE", 1.0, zp)
    elif op == "DEPTHWISE_CONV_2D":
        x = b.input((1, 16, 16, 1), "int8", 1 + 2**-15, 0)
        w = b.const(one, "int8", w_scale, 0, axis=3)
        y = b.depthwise_conv2d(x, w, bias, 1, "VALID", "NONE", 1.0, zp)
    else:
        raise ValueError(op)
    b.output(y)
    return b.finish()


def ramp_input(shape) -> np.ndarray:
    """Every int8 code, -128 … 127, in order (``shape`` has 256 elements)."""
    return np.arange(-128, 128, dtype=np.int8).reshape(shape)


def assert_zp_wrap_equals_tflm(op: str, make_backend) -> None:
    """Run :func:`zp_wrap_model` (``op``) on the ramp through ``make_backend(graph)`` (an object
    with ``run(inputs) -> outputs``) and assert its output equals TFLM's."""
    from models.tflm_ref import TflmReference
    from sw.tflite_import import load_tflite

    data = zp_wrap_model(op)
    g = load_tflite(data)
    xs = [ramp_input(g.tensors[g.inputs[0]].shape)]
    want = TflmReference(data).run(xs)[0]
    got = make_backend(g).run(xs)[0]
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} of {want.size} differ"


# ------------------------------------------------------------------------------ layouts (#12)
_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def pytorch_nchw_model(seed: int = 0, hw: tuple[int, int] = (12, 16)) -> bytes:
    """A network laid out as PyTorch exports do: float NCHW input -> QUANTIZE -> PAD (NCHW) ->
    TRANSPOSE -> CONV_2D -> TRANSPOSE -> LEAKY_RELU / PAD / ADD (with a per-channel NCHW constant
    and with another branch) / MUL / CONCATENATION (axis 1) / RELU / MEAN (keep_dims) between
    TRANSPOSE-wrapped convolutions, a TRANSPOSE around a fractional RESIZE_NEAREST_NEIGHBOR, then
    NHWC heads (RESHAPE, SOFTMAX, DEQUANTIZE) and one NCHW int8 output."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    h, w = hw

    def conv(x: T, cout: int, k: int = 1, stride: int = 1, dw: bool = False) -> T:
        """NCHW in, NCHW out, TRANSPOSEs around an NHWC conv (as the converter writes them)."""
        t = b.transpose(x, _TO_NHWC)
        cin = t.shape[3]
        if dw:
            y = b.depthwise_conv2d(t, b.depthwise_weights(rng.normal(size=(1, k, k, cin))),
                                   bias=rng.normal(size=cin) * 0.1, stride=stride,
                                   padding="VALID", out_scale=0.04, out_zp=-3)
        else:
            y = b.conv2d(t, b.weights(rng.normal(size=(cout, k, k, cin)) * 0.3, axis=0),
                         bias=rng.normal(size=cout) * 0.1, stride=stride, padding="VALID",
                         out_scale=0.05, out_zp=2)
        return b.transpose(y, _TO_NCHW)

    x = b.input((1, 3, h, w), "float32")
    q = b.quantize(x, 0.02, -5)
    p = b.pad(q, [[0, 0], [0, 0], [1, 1], [1, 1]])
    c1 = b.leaky_relu(conv(p, 8, k=3, stride=2), alpha=0.1, out_scale=0.04, out_zp=-20)
    d = b.pad(c1, [[0, 0], [0, 0], [1, 1], [1, 1]])
    c2 = b.leaky_relu(conv(d, 8, k=3, dw=True), alpha=0.1, out_scale=0.04, out_zp=-20)
    bias = b.const(rng.integers(-40, 40, size=(1, 8, 1, 1)), "int8", 0.03, 1)
    a1 = b.add(c2, bias, out_scale=0.05, out_zp=0)
    m1 = b.mul(a1, c1, out_scale=0.01, out_zp=3)
    e1 = conv(m1, 6)
    e2 = conv(m1, 4)
    e2 = b.quantize(e2, 0.05, 2)  # int8 -> int8 (same quantization as e1, as concat needs)
    cat = b.relu(b.concatenation([e1, e2], axis=1))
    up = b.transpose(cat, _TO_NHWC)
    up = b.resize_nearest_neighbor(up, (cat.shape[2] * 2 - 1, cat.shape[3] * 2 - 1))
    up = b.transpose(up, _TO_NCHW)
    mean = b.mean(up, [2, 3], keep_dims=True, out_scale=0.05, out_zp=2)
    s = b.add(up, mean, out_scale=0.06, out_zp=-1)
    head = b.transpose(s, _TO_NHWC)
    head = b.conv2d(head, b.weights(rng.normal(size=(4, 1, 1, 10)), axis=0),
                    out_scale=0.1, out_zp=0)
    r = b.reshape(head, (1, -1, 2))
    sm = b.dequantize(b.softmax(r))
    b.output(sm, b.leaky_relu(s, alpha=0.2))  # the second output stays NCHW
    return b.finish()


def keras_shape_model(seed: int = 0) -> bytes:
    """A Keras-style flatten: RESHAPE whose shape is PACK(STRIDED_SLICE(SHAPE(x))[0], -1), then
    FULLY_CONNECTED; the shape arithmetic is int32 and constant once shapes are static."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.input((1, 6, 6, 3), "int8", 0.05, -3)
    c = b.conv2d(x, b.weights(rng.normal(size=(4, 3, 3, 3)), axis=0), stride=2,
                 out_scale=0.1, out_zp=1, activation="RELU")
    shp = b.tensor((4,), "int32")
    b.op("SHAPE", [c], [shp], fb.ShapeOptionsT())
    batch = b.tensor((), "int32")
    so = fb.StridedSliceOptionsT()
    so.shrinkAxisMask = 1
    b.op("STRIDED_SLICE", [shp, b.const(np.array([0], np.int32)), b.const(np.array([1], np.int32)),
                           b.const(np.array([1], np.int32))], [batch], so)
    new_shape = b.tensor((2,), "int32")
    po = fb.PackOptionsT()
    po.valuesCount, po.axis = 2, 0
    b.op("PACK", [batch, b.const(np.array(-1, np.int32))], [new_shape], po)
    flat = b.tensor((1, 36), "int8", *c.qparams)
    b.op("RESHAPE", [c, new_shape], [flat], fb.ReshapeOptionsT())
    y = b.fully_connected(flat, b.weights(rng.normal(size=(5, 36)), axis=None),
                          out_scale=0.2, out_zp=0)
    b.output(y)
    return b.finish()


def transpose_perms_model(shape=(1, 3, 4, 5), seed: int = 0) -> tuple[bytes, list]:
    """A 1x1 conv producing ``shape`` and one TRANSPOSE per non-identity permutation of its 4
    axes, each a graph output (the layout pass cannot remove them: they run on the die)."""
    from itertools import permutations

    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.input(shape[:3] + (2,), "int8", 0.05, 0)
    c = b.conv2d(x, b.weights(rng.normal(size=(shape[3], 1, 1, 2)), axis=0),
                 out_scale=0.05, out_zp=0)
    perms = [p for p in permutations(range(4)) if p != (0, 1, 2, 3)]
    b.output(*[b.transpose(c, p) for p in perms])
    return b.finish(), perms


def random_layout_model(seed: int) -> bytes:
    """Random TRANSPOSE sandwiches: conv -> TRANSPOSE(random perm) -> three random agnostic ops
    (LEAKY_RELU, RELU, PAD on any axes, ADD of a broadcast constant, MUL with a second branch,
    CONCATENATION on a random axis) -> TRANSPOSE(random perm) -> conv (if at batch 1); the
    sandwich's last tensor is a second (int8) output half of the time."""
    from itertools import permutations

    rng = np.random.default_rng(seed)
    perms = list(permutations(range(4)))
    b = ModelBuilder()
    x = b.input((1, int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3), "int8", 0.05, 1)
    y = b.conv2d(x, b.weights(rng.normal(size=(int(rng.integers(2, 5)), 1, 1, 3)), axis=0),
                 out_scale=0.05, out_zp=-2)
    cur = b.transpose(y, perms[int(rng.integers(len(perms)))])
    for _ in range(3):
        k = int(rng.integers(6))
        if k == 0:
            cur = b.leaky_relu(cur, alpha=0.25, out_scale=0.04, out_zp=3)
        elif k == 1:
            cur = b.relu(cur)
        elif k == 2:
            cur = b.pad(cur, rng.integers(0, 2, size=(4, 2)))
        elif k == 3:
            shape = tuple(d if rng.random() < 0.5 else 1 for d in cur.shape)
            c = b.const(rng.integers(-50, 50, size=shape), "int8", 0.03, -1)
            cur = b.add(cur, c, out_scale=0.06, out_zp=0)
        elif k == 4:
            cur = b.mul(cur, b.relu(cur), out_scale=0.01, out_zp=0)
        else:
            cur = b.concatenation([cur, cur], axis=int(rng.integers(4)))
    t = b.transpose(cur, perms[int(rng.integers(len(perms)))])
    z = t  # (convolutions run at batch 1: a PAD / CONCATENATION may have grown axis 0)
    if t.shape[0] == 1:
        z = b.conv2d(t, b.weights(rng.normal(size=(3, 1, 1, t.shape[3])), axis=0),
                     out_scale=0.1, out_zp=0)
    b.output(z, *([cur] if rng.random() < 0.5 else []))
    return b.finish()
