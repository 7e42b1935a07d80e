"""Issue #12 item 4, no mid-graph host ops: the layout pass (sw.layout), TRANSPOSE and any-ratio
RESIZE on the store queue, shape arithmetic folded at import, ``host_ops`` in the compile report.

Expectations come from TFLM (the oracle) on the original model and from NumPy's transpose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hw.errors import UserError
from models.golden import GoldenModel
from models.tflite_writer import ModelBuilder
from models.tflm_ref import TflmReference
from sw.compiler import compile_graph
from sw.runtime import IsaBackend
from sw.tflite_import import FOLDABLE_OPS, load_tflite
from tests.models.corner_models import (
    keras_shape_model,
    pytorch_nchw_model,
    random_layout_model,
    transpose_perms_model,
)
from tests.sim.test_isa_sim import _inputs as random_inputs
from tests.sw.cli_util import logicdie

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "models"
RETINAFACE = SHARED / "retinaface.tflite"


def _inputs(g, rng):
    return random_inputs(g, rng, float_range=(-1, 2))


def _exact_vs_tflm(data, raw, g, isa, rng, n):
    """``n`` random inputs: golden before and after the layout pass and the ISA simulator equal
    the TFLM reference."""
    ref = TflmReference(data)
    for _ in range(n):
        xs = _inputs(g, rng)
        want = ref.run(xs)
        _exact(GoldenModel(raw).run(xs), want)
        _exact(GoldenModel(g).run(xs), want)
        _exact(isa.run(xs), want)


def _exact(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(np.asarray(a).reshape(b.shape), b), \
            f"{np.count_nonzero(np.asarray(a).reshape(b.shape) != b)} of {b.size} differ"


def _mid(c, g):
    return [g.ops[k].kind for call in c.host_calls for k in call["ops"]]


@pytest.mark.parametrize("config", ["default", "tiny"])
def test_pytorch_nchw_model_bit_exact_and_no_mid_host_ops(config):
    """PyTorch layout: 11 TRANSPOSEs, after the pass one in the input prologue and one writing
    the NCHW int8 output (on the die); no host op mid-graph; golden (before and after the pass)
    and the ISA simulator equal TFLM."""
    data = pytorch_nchw_model()
    raw, g = load_tflite(data, layout=False), load_tflite(data)
    assert raw.op_counts()["TRANSPOSE"] == 11
    assert g.op_counts()["TRANSPOSE"] == 2
    assert [op.kind for op in g.ops[:3]] == ["QUANTIZE", "TRANSPOSE", "PAD"]
    assert [g.tensors[i].shape for i in g.outputs] == [raw.tensors[i].shape for i in raw.outputs]
    c = compile_graph(g, config)
    assert [g.ops[k].kind for k in c.host_pre] == ["QUANTIZE", "TRANSPOSE"]
    assert _mid(c, g) == []
    assert [layer.engine for layer in c.layers if layer.kind == "TRANSPOSE"] == ["store"]
    _exact_vs_tflm(data, raw, g, IsaBackend(c), np.random.default_rng(3), 3)


@pytest.mark.parametrize("seed", range(12))
def test_random_transpose_sandwiches_bit_exact(seed):
    """Random permutations around random agnostic ops: golden before and after the layout pass
    and the ISA simulator equal TFLM; no host op mid-graph."""
    data = random_layout_model(seed)
    raw, g = load_tflite(data, layout=False), load_tflite(data)
    assert g.op_counts().get("TRANSPOSE", 0) <= raw.op_counts()["TRANSPOSE"]
    c = compile_graph(g, "default")
    assert _mid(c, g) == []
    _exact_vs_tflm(data, raw, g, IsaBackend(c), np.random.default_rng(seed), 2)


def test_every_transpose_permutation_on_the_store_queue():
    """All 23 non-identity permutations of a 4-D tensor (sizes 1, 3, 4, 5 and with size-1 axes
    that merge): COPY lowering equals NumPy's transpose and TFLM."""
    for shape in ((1, 3, 4, 5), (1, 1, 4, 6)):
        data, perms = transpose_perms_model(shape)
        g = load_tflite(data)
        c = compile_graph(g, "default")
        assert _mid(c, g) == [] and not c.host_pre
        assert sum(layer.kind == "TRANSPOSE" for layer in c.layers) == 23
        isa = IsaBackend(c)
        x = _inputs(g, np.random.default_rng(0))
        got = isa.run(x)
        conv = GoldenModel(g).run_all(x)[g.ops[0].outputs[0]]
        for p, y in zip(perms, got, strict=True):
            assert np.array_equal(y, np.transpose(conv, p))
        _exact(got, TflmReference(data).run(x))


def test_fractional_resize_on_the_store_queue():
    """RESIZE_NEAREST_NEIGHBOR by non-integer ratios (up and down, align_corners and
    half_pixel_centers) runs as COPYs, bit-exact with TFLM."""
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x = b.input((1, 5, 7, 3), "int8", 0.05, 2)
    c = b.conv2d(x, b.weights(rng.normal(size=(6, 1, 1, 3)), axis=0), out_scale=0.05, out_zp=0)
    outs = [b.resize_nearest_neighbor(c, (9, 13)),
            b.resize_nearest_neighbor(c, (3, 4), align_corners=True),
            b.resize_nearest_neighbor(c, (8, 7), half_pixel_centers=True),
            b.resize_nearest_neighbor(c, (5, 11))]
    b.output(*outs)
    data = b.finish()
    g = load_tflite(data)
    comp = compile_graph(g, "default")
    assert _mid(comp, g) == []
    assert {layer.engine for layer in comp.layers if layer.kind.startswith("RESIZE")} == {"store"}
    xs = _inputs(g, rng)
    _exact(IsaBackend(comp).run(xs), TflmReference(data).run(xs))


def test_keras_shape_arithmetic_is_folded_at_import():
    """RESHAPE whose shape is PACK(STRIDED_SLICE(SHAPE(x)), -1): TFLM runs it; the importer folds
    the shape ops into a constant and every backend equals TFLM."""
    data = keras_shape_model()
    g = load_tflite(data)
    assert set(g.op_counts()) == {"CONV_2D", "RESHAPE", "FULLY_CONNECTED"}
    shape_t = g.tensors[next(op for op in g.ops if op.kind == "RESHAPE").inputs[1]]
    assert shape_t.data is not None and shape_t.data.tolist() == [1, -1]
    ref, isa = TflmReference(data), IsaBackend(compile_graph(g, "default"))
    rng = np.random.default_rng(0)
    for _ in range(3):
        xs = _inputs(g, rng)
        want = ref.run(xs)
        _exact(GoldenModel(g).run(xs), want)
        _exact(isa.run(xs), want)


def test_shape_op_on_computed_values_is_refused():
    """A foldable op reading a computed tensor is an unsupported op: one line naming it."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    assert "STRIDED_SLICE" in FOLDABLE_OPS
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), "int8", 0.05, 0)
    y = b.tensor((1, 2, 4, 2), "int8", 0.05, 0)
    consts = [b.const(np.array(v, np.int32)) for v in ([0, 0, 0, 0], [1, 2, 4, 2], [1, 1, 1, 1])]
    b.op("STRIDED_SLICE", [x, *consts], [y], fb.StridedSliceOptionsT())
    b.output(y)
    with pytest.raises(UserError, match="STRIDED_SLICE at operator 0 on computed tensors"):
        load_tflite(b.finish())


def test_compile_report_json_host_ops(tmp_path):
    """``compile --report --json``: the layers and host_ops before / mid / after; the text
    report says the same."""
    model = tmp_path / "nchw.tflite"
    model.write_bytes(pytorch_nchw_model())
    r = logicdie("compile", str(model), "-o", str(tmp_path / "b.bundle"), "--report", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["host_ops"] == {"before": ["QUANTIZE", "TRANSPOSE"], "mid": [],
                               "after": ["SOFTMAX", "DEQUANTIZE"]}
    assert out["layers"] and all("engine" in row for row in out["layers"])
    r = logicdie("compile", str(model), "-o", str(tmp_path / "c.bundle"), "--report")
    assert r.returncode == 0, r.stderr
    assert ("host ops: before NPU QUANTIZE, TRANSPOSE; mid-graph - (none); after NPU SOFTMAX, "
            "DEQUANTIZE") in r.stdout


@pytest.mark.skipif(not RETINAFACE.exists(), reason="needs ../shared/models/retinaface.tflite")
@pytest.mark.parametrize("backend", ["golden", "isa"])
def test_retinaface_no_mid_graph_host_ops(backend):
    """The PyTorch RetinaFace: 95 TRANSPOSEs -> one, in the input prologue; no HOST call; check
    bit-exact against TFLM."""
    g = load_tflite(RETINAFACE)
    assert g.op_counts()["TRANSPOSE"] == 1
    c = compile_graph(g, "default")
    assert _mid(c, g) == []
    assert [g.ops[k].kind for k in c.host_pre] == ["QUANTIZE", "TRANSPOSE"]
    r = logicdie("check", str(RETINAFACE), "--backend", backend, "--inputs", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["bit_exact"] and out["mismatched_elements"] == 0


@pytest.mark.full
@pytest.mark.skipif(not RETINAFACE.exists(), reason="needs ../shared/models/retinaface.tflite")
def test_retinaface_rtl_no_host_wait():
    """Done-when of issue #12 item 4 on the RTL (default preset): bit-exact, HOST_WAIT 0."""
    r = logicdie("check", str(RETINAFACE), "--backend", "rtl", "--inputs", "2", "--json",
                 timeout=3600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["bit_exact"] and out["counters"]["HOST_WAIT"] == 0
    assert 0 < out["utilization"] <= 1
