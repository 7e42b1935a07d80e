"""models.tflite_writer: models it writes load in TFLM with the shapes the builder computed, and
carry the quantization real converters produce (read back from the flatbuffer)."""

from __future__ import annotations

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from models.tflite_writer import ModelBuilder, conv_out_size, quantize_symmetric
from models.tflm_ref import TflmReference
from sw.tflite_import import load_tflite

rng = np.random.default_rng(0)


def _read(data: bytes) -> fb.ModelT:
    return fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))


def _tflm_shapes(data: bytes) -> list[tuple[int, ...]]:
    ref = TflmReference(data)
    return [tuple(int(s) for s in ref.output_details(i)["shape"]) for i in range(ref.n_outputs)]


def _x(b, shape=(1, 9, 7, 3), zp=-3, scale=0.05):
    return b.input(shape, "int8", scale, zp)


def _build_every_op() -> tuple[bytes, list]:
    """One model with every SPEC section 4 op; returns (bytes, output handles)."""
    b = ModelBuilder()
    x = _x(b)
    outs = []
    w = b.weights(rng.normal(size=(5, 3, 3, 3)), axis=0)
    outs.append(b.conv2d(x, w, rng.integers(-99, 99, 5).astype(np.int32), 2, "SAME", "RELU6",
                         0.1, -128))
    dw = b.weights(rng.normal(size=(1, 3, 3, 6)), axis=3)
    outs.append(b.depthwise_conv2d(x, dw, None, 2, "VALID", "RELU", 0.1, -128))
    fcw = b.weights(rng.normal(size=(4, 9 * 7 * 3)), axis=None)
    outs.append(b.fully_connected(x, fcw, np.zeros(4, np.int32), "NONE", 0.2, 3))
    outs.append(b.average_pool2d(x, 3, 2, "SAME"))
    outs.append(b.max_pool2d(x, (2, 3), (2, 1), "VALID", "RELU"))
    y = b.input((1, 1, 1, 3), "int8", 0.02, 7)
    outs.append(b.add(x, y, "NONE", 0.06, 0))
    outs.append(b.mul(x, y, "RELU", 0.01, -100))
    outs.append(b.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]]))
    outs.append(b.mean(x, [1, 2], False, 0.02, 1))
    outs.append(b.reshape(x, [1, -1]))
    outs.append(b.squeeze(b.reshape(x, [1, 1, 189]), [1]))
    outs.append(b.softmax(b.reshape(x, [9, 21])))
    outs.append(b.logistic(x))
    outs.append(b.transpose(x, [0, 3, 1, 2]))
    outs.append(b.concatenation([x, x], 3))
    outs.append(b.resize_nearest_neighbor(x, (18, 14)))
    outs.append(b.relu(x, 0.04, -128))
    outs.append(b.relu6(x))
    outs.append(b.leaky_relu(x, 0.2, 0.05, 10))
    outs.append(b.hard_swish(x, 0.03, -20))
    outs.append(b.quantize(x, 0.1, 5))
    f = b.input((2, 5), "float32")
    outs.append(b.quantize(f, 0.01, -128))
    outs.append(b.dequantize(x))
    b.output(*outs)
    return b.finish(), outs


def test_every_op_loads_in_tflm_with_builder_shapes():
    data, outs = _build_every_op()
    assert data[4:8] == b"TFL3"
    assert _tflm_shapes(data) == [o.shape for o in outs]
    m = _read(data)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    kinds = {names[oc.builtinCode] for oc in m.operatorCodes}
    from tests.models.test_golden_ops import SPEC_OPS
    assert kinds == set(SPEC_OPS)
    assert len(m.buffers[0].data if m.buffers[0].data is not None else []) == 0


def test_quantization_is_converter_like():
    b = ModelBuilder()
    x = _x(b, zp=5, scale=0.04)
    w = b.weights(rng.normal(size=(4, 3, 3, 3)), axis=0)
    dw = b.weights(rng.normal(size=(1, 3, 3, 4)), axis=3)
    y = b.conv2d(x, w, np.arange(4, dtype=np.int32), out_scale=0.1, out_zp=0)
    z = b.depthwise_conv2d(y, dw, np.arange(4, dtype=np.float64) * 0.01, out_scale=0.1, out_zp=0)
    s = b.softmax(b.reshape(z, [1, -1]))
    lg = b.logistic(z)
    b.output(s, lg)
    g = load_tflite(b.finish())
    conv, dwop = g.ops[0], g.ops[1]
    wt, bt = g.tensors[conv.inputs[1]], g.tensors[conv.inputs[2]]
    assert wt.quant.axis == 0 and wt.quant.scale.size == 4 and not wt.quant.zero_point.any()
    assert np.abs(wt.data).max(axis=(1, 2, 3)).tolist() == [127] * 4  # symmetric, full range
    assert bt.dtype == "int32" and bt.data.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(bt.quant.scale, 0.04 * wt.quant.scale, rtol=1e-6)
    dwt, dbt = g.tensors[dwop.inputs[1]], g.tensors[dwop.inputs[2]]
    assert dwt.quant.axis == 3 and dwt.quant.scale.size == 4
    # float bias is quantized at in_scale * w_scale
    np.testing.assert_array_equal(
        dbt.data, np.round(np.arange(4) * 0.01 / (0.1 * dwt.quant.scale.astype(np.float64))))
    for t in (g.tensors[g.outputs[0]], g.tensors[g.outputs[1]]):
        assert t.quant.scalar() == (1.0 / 256, -128)


def test_depthwise_without_bias_gets_zero_bias():
    """TFLM segfaults on an int8 DEPTHWISE_CONV_2D without bias; the writer always writes one."""
    b = ModelBuilder()
    x = _x(b)
    y = b.depthwise_conv2d(x, b.weights(rng.normal(size=(1, 3, 3, 3)), axis=3), None,
                           out_scale=0.1, out_zp=0)
    b.output(y)
    g = load_tflite(b.finish())
    assert g.tensors[g.ops[0].inputs[2]].data.tolist() == [0, 0, 0]


@pytest.mark.parametrize("n, k, stride, padding", [
    (n, k, s, p) for n in (1, 2, 5, 8, 9, 16) for k in (1, 2, 3, 5) for s in (1, 2, 3)
    for p in ("SAME", "VALID") if p == "SAME" or k <= n])
def test_conv_out_size_matches_tflm(n, k, stride, padding):
    b = ModelBuilder()
    x = b.input((1, n, n + 1, 1), "int8", 0.1, 0)
    y = b.max_pool2d(x, k, stride, padding)
    b.output(y)
    assert y.shape[1] == conv_out_size(n, k, stride, padding)
    assert _tflm_shapes(b.finish()) == [y.shape]


def test_quantize_symmetric():
    w = rng.normal(size=(3, 2, 2, 5))
    q, s = quantize_symmetric(w, 0)
    assert q.dtype == np.int8 and s.shape == (3,)
    assert (np.abs(q).reshape(3, -1).max(axis=1) == 127).all()
    np.testing.assert_allclose(q * s[:, None, None, None], w, atol=s.max() / 2 + 1e-9)
    q, s = quantize_symmetric(np.zeros((2, 3)), None)
    assert s.shape == (1,) and s[0] > 0 and not q.any()


def test_ops_outside_spec_can_be_written():
    """Models with other builtins (for the 'unsupported op' CLI error) are valid TFLM models."""
    b = ModelBuilder()
    x = _x(b, shape=(1, 4))
    y = b.unary("TANH", x, 1.0 / 128, 0)
    z = b.binary("SUB", x, y, 0.05, 0, fb.SubOptionsT())
    b.output(z)
    ref = TflmReference(b.finish())
    assert tuple(ref.output_details(0)["shape"]) == (1, 4)


def test_refuses_what_tflm_refuses():
    b = ModelBuilder()
    x = _x(b)
    y = b.input((1, 9, 7, 3), "int8", 0.07, -3)
    with pytest.raises(ValueError, match="MAX_POOL_2D"):
        b.max_pool2d(x, 2, 2, out_scale=0.1, out_zp=0)
    with pytest.raises(ValueError, match="shared input quantization"):
        b.concatenation([x, y], 3)
    with pytest.raises(ValueError, match="activation"):
        b.concatenation([x, x], 3, "RELU")
    with pytest.raises(ValueError, match="rank"):
        b.transpose(b.reshape(x, [1, 1, 1, 9, 7, 3]), [5, 4, 3, 2, 1, 0])
