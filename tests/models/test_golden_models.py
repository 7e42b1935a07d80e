"""Whole networks: the golden model equals TFLM bit for bit on the shipped person_detect (both BMPs,
expected classes, >= 50 random inputs) and on the generated networks of models.zoo.generate."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.golden import GoldenModel
from models.zoo import NO_PERSON_BMP, PERSON_BMP, PERSON_DETECT
from models.zoo import generate as zoo
from sw.tflite_import import load_tflite
from tests.models.conftest import check_bit_exact


def _bmp_raw_bytes(path) -> np.ndarray:
    """models/zoo/README.md raw-bytes convention: 8-bit gray rows top-down, each byte as int8."""
    img = np.asarray(Image.open(path), dtype=np.uint8)
    assert img.shape == (96, 96)
    return img.view(np.int8).reshape(1, 96, 96, 1)


@pytest.fixture(scope="module")
def person_detect() -> bytes:
    return PERSON_DETECT.read_bytes()


@pytest.mark.parametrize("bmp, person", [(PERSON_BMP, True), (NO_PERSON_BMP, False)],
                         ids=["person", "no_person"])
def test_person_detect_bmp(person_detect, bmp, person):
    from models.tflm_ref import TflmReference

    graph = load_tflite(person_detect)
    x = _bmp_raw_bytes(bmp)
    want = TflmReference(person_detect).run([x])[0]
    got = GoldenModel(graph).run([x])[0]
    np.testing.assert_array_equal(got, want)
    # output [notperson, person]
    assert (int(got[0, 1]) > int(got[0, 0])) == person


def test_person_detect_random_inputs(person_detect):
    compared = check_bit_exact(person_detect, n_random=50, seed=2026)
    assert compared == 53 * 2


# Small enough for the CI tier; the 224x224 alpha 1.0 network runs in the full tier.
GENERATED = {
    "mobilenet_v2_96_a035": lambda: zoo.mobilenet_v2_like((96, 96), 3, 0.35, seed=1),
    "mobilenet_v2_96_a035_keras_avgpool": lambda: zoo.mobilenet_v2_like(
        (96, 96), 3, 0.35, seed=3, pool="avgpool", keras_padding=True),
    "mobilenet_v2_gray_odd_80x72_a05": lambda: zoo.mobilenet_v2_like(
        (80, 72), 1, 0.5, num_classes=2, seed=11, blocks=zoo.MOBILENET_V2_BLOCKS[:4]),
    "ssd_fpn_64": lambda: zoo.ssd_fpn_like((64, 64), seed=4),
    "ssd_fpn_48x80_int8_boxes": lambda: zoo.ssd_fpn_like((48, 80), seed=12, float_boxes=False),
    "nchw_input_32": lambda: zoo.nchw_input_model((3, 32, 32), seed=5),
    "float_io_32": lambda: zoo.float_io_model((32, 32), seed=6),
    "yolo_tiny_64": lambda: zoo.yolo_tiny_like((64, 64), seed=7),
    "mobilenet_v3_64": lambda: zoo.mobilenet_v3_like((64, 64), seed=8),
}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_network(name):
    check_bit_exact(GENERATED[name](), n_random=5, seed=7)


@pytest.mark.full
@pytest.mark.parametrize("seed", [2, 20])
def test_mobilenet_v2_224(seed):
    check_bit_exact(zoo.mobilenet_v2_like((224, 224), 3, 1.0, seed=seed), n_random=3, seed=seed)


@pytest.mark.full
@pytest.mark.parametrize("seed", range(5))
def test_generated_networks_more_seeds(seed):
    for data in (zoo.mobilenet_v2_like((128, 128), 3, 0.5, seed=100 + seed),
                 zoo.ssd_fpn_like((96, 96), seed=200 + seed),
                 zoo.yolo_tiny_like((96, 96), seed=300 + seed),
                 zoo.mobilenet_v3_like((96, 96), seed=400 + seed)):
        check_bit_exact(data, n_random=3, seed=seed)


def test_generators_are_seeded():
    assert zoo.ssd_fpn_like((32, 32), seed=1) == zoo.ssd_fpn_like((32, 32), seed=1)
    assert zoo.ssd_fpn_like((32, 32), seed=1) != zoo.ssd_fpn_like((32, 32), seed=2)


def test_generated_activations_are_calibrated():
    """Calibration keeps intermediate activations informative: no int8 tensor of the generated
    MobileNetV2 is (nearly) constant, and none saturates at the top of its range (except RELU6
    outputs, whose 127 is the real 6.0 clip)."""
    graph = load_tflite(GENERATED["mobilenet_v2_96_a035"]())
    gm = GoldenModel(graph)
    x = np.random.default_rng(0).integers(-128, 128, graph.input_tensors()[0].shape, np.int8)
    vals = gm.run_all([x])
    for op in graph.ops[:-1]:  # the 1000-class SOFTMAX is legitimately mostly -128
        v = vals[op.outputs[0]]
        assert len(np.unique(v)) >= 16, (op.kind, op.index)
        if op.options.get("activation") != "RELU6":
            assert np.mean(v == 127) < 0.05, (op.kind, op.index)


@pytest.mark.parametrize("name", ["person_detect", "mobilenet_v3_64", "ssd_fpn_64"])
def test_intermediates_match_tflm(name, person_detect):
    """GoldenModel.run_all gives every intermediate tensor equal to TFLM's (each op output made a
    graph output by expose_intermediates), the layer-by-layer contract later stages rely on."""
    from models.tflite_writer import expose_intermediates
    from models.tflm_ref import TflmReference

    data = person_detect if name == "person_detect" else GENERATED[name]()
    full, order = expose_intermediates(data)
    graph = load_tflite(full)
    x = [np.random.default_rng(3).integers(-128, 128, t.shape).astype(t.dtype)
         for t in graph.input_tensors()]
    want = TflmReference(full).run(x)
    got = GoldenModel(load_tflite(data)).run_all(x)
    assert len(want) == len(order) == len({o for op in graph.ops for o in op.outputs})
    for idx, w in zip(order, want, strict=True):
        np.testing.assert_array_equal(got[idx], w, err_msg=f"tensor {idx}")
