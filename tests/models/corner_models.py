"""Hand-built TFLite models that reach arithmetic corners random models almost never hit.

Expected values never come from here: the tests run these models through TFLM (the oracle) and
compare the golden model, the ISA simulator and the RTL against it.
"""

from __future__ import annotations

import numpy as np

from models.tflite_writer import ModelBuilder

__all__ = ["ZP_WRAP_OPS", "zp_wrap_model", "ramp_input", "assert_zp_wrap_equals_tflm"]

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
