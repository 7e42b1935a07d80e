"""sw/postprocess.py: anchor decoders, NMS, detector recognition and input adaptation, checked
against the facts of ../shared/models/README.md (measured with the TFLM reference interpreter)
and against TFLM's own outputs on real images."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.tflm_ref import TflmReference
from models.zoo import PERSON_DETECT
from sw.postprocess import (
    RetinaFaceDecoder,
    SsdDecoder,
    decode_outputs,
    iou,
    match_detector,
    nms,
    prepare_model,
    retinaface_priors,
    ssd_anchors,
)
from sw.tflite_import import load_tflite
from tests.sw.cli_util import logicdie

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "models"
RETINAFACE = SHARED / "retinaface.tflite"
TEST_JPEG = SHARED / "retinaface_test.jpeg"
#: README: the TFLM reference's three faces on retinaface_test.jpeg (160 x 120 pixels), score 0.996
README_BOXES = [(108.8, 11.3, 133.4, 39.7), (105.7, 74.1, 131.7, 103.2), (23.5, 11.8, 54.5, 49.5)]
README_CANDIDATES = 16  # priors passing 0.85 before NMS

needs_model = pytest.mark.skipif(not RETINAFACE.exists(), reason="../shared/models not present")


def _readme_input(img: np.ndarray) -> np.ndarray:
    """README's convention: bilinear resize to 160 x 120, BGR, NCHW, raw 0..255 float32."""
    im = np.asarray(Image.fromarray(img).convert("RGB").resize((160, 120), Image.BILINEAR))
    return np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32))


@pytest.fixture(scope="module")
def ref():
    data = RETINAFACE.read_bytes()
    return TflmReference(data), load_tflite(data)


def test_priors_follow_the_readme():
    p = retinaface_priors((160, 120))
    assert len(p) == 600 + 160 + 40
    # README: per step, per cell (i, j) row-major, per min size
    k = 0
    for step, sizes in ((8, (16, 32)), (16, (64, 128)), (32, (256, 512))):
        fh, fw = math.ceil(120 / step), math.ceil(160 / step)
        for i in (0, fh - 1):
            for j in (0, fw - 1):
                for n, s in enumerate(sizes):
                    idx = k + (i * fw + j) * len(sizes) + n
                    want = ((j + 0.5) * step / 160, (i + 0.5) * step / 120, s / 160, s / 120)
                    np.testing.assert_allclose(p[idx], want)
        k += fh * fw * len(sizes)


def test_nms_and_iou():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    # IoU of the first two is 9*10 / (2*100 - 90); above 0.4 -> the lower score goes
    assert iou(boxes[0], boxes[1])[0, 0] == pytest.approx(90 / 110)
    assert nms(boxes, [0.9, 0.95, 0.5, 0.1], 0.4) == [1, 2]
    assert nms(boxes, [0.9, 0.95, 0.5, 0.1], 0.9) == [1, 0, 2]
    assert nms(np.zeros((0, 4)), [], 0.4) == []


def _ssd_encode(box, anchor, sf=(10.0, 10.0, 5.0, 5.0)):
    """TF Object Detection API FasterRcnnBoxCoder.encode of one (x0, y0, x1, y1) normalized box."""
    xa, ya, wa, ha = anchor
    w, h = box[2] - box[0], box[3] - box[1]
    xc, yc = box[0] + w / 2, box[1] + h / 2
    return [sf[0] * (yc - ya) / ha, sf[1] * (xc - xa) / wa, sf[2] * math.log(h / ha),
            sf[3] * math.log(w / wa)]


def test_ssd_decoder_inverts_the_tf_box_coder():
    size = (320, 240)
    anchors = ssd_anchors(size)
    dec = SsdDecoder(size, score_threshold=0.5, nms_iou=0.5)
    rng = np.random.default_rng(3)
    loc = rng.normal(0, 0.3, (len(anchors), 4))
    conf = np.zeros((len(anchors), 3))
    conf[:, 0] = 1.0
    truth = {7: ([0.1, 0.2, 0.3, 0.5], 1, 0.9), 300: ([0.5, 0.4, 0.9, 0.8], 2, 0.8)}
    for k, (b, c, s) in truth.items():
        loc[k] = _ssd_encode(b, anchors[k])
        conf[k] = 0.0
        conf[k, c] = s
    # a duplicate of anchor 7's box, lower score: NMS removes it
    loc[8] = _ssd_encode([0.11, 0.2, 0.3, 0.5], anchors[8])
    conf[8] = [0.0, 0.7, 0.0]
    dets = dec.decode(loc, conf)
    assert [d["class"] for d in dets] == [1, 2]
    for d, (b, _, s) in zip(dets, truth.values(), strict=True):
        np.testing.assert_allclose(d["box"], np.array(b) * (size * 2), atol=1e-9)
        assert d["score"] == pytest.approx(s)
        assert d["landmarks"] == []


@needs_model
def test_retinaface_on_the_readme_image(ref):
    it, g = ref
    outs = it.run([_readme_input(np.asarray(Image.open(TEST_JPEG)))])
    m = match_detector(g)
    assert m is not None and isinstance(m[0], RetinaFaceDecoder)
    res = decode_outputs(outs, g)
    assert res["candidates"] == README_CANDIDATES
    dets = res["detections"]
    assert len(dets) == 3
    ov = iou([d["box"] for d in dets], README_BOXES)
    assert sorted(np.argmax(ov, axis=1).tolist()) == [0, 1, 2]
    assert ov.max(axis=1).min() > 0.95  # README gives the boxes to 0.1 pixel
    assert all(d["score"] > 0.99 and len(d["landmarks"]) == 5 for d in dets)
    for d in dets:  # landmarks (eyes, nose, mouth corners) inside their face box
        x0, y0, x1, y1 = d["box"]
        assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in d["landmarks"])


@needs_model
@pytest.mark.parametrize("photo, faces", [("astronaut", 1), ("coffee", 0), ("chelsea", 0)])
def test_retinaface_on_photos(ref, photo, faces):
    skimage_data = pytest.importorskip("skimage.data")
    it, g = ref
    outs = it.run([_readme_input(getattr(skimage_data, photo)())])
    assert len(decode_outputs(outs, g)["detections"]) == faces


def test_classifier_is_not_a_detector():
    assert match_detector(load_tflite(PERSON_DETECT.read_bytes())) is None
    assert prepare_model(PERSON_DETECT) == PERSON_DETECT


@needs_model
@pytest.mark.parametrize("backend", ["golden", "isa"])
def test_adapted_input_is_bit_exact_with_tflm(ref, backend):
    """The NHWC-RGB adapted graph on the same pixels gives TFLM's outputs on the NCHW-BGR
    original, element for element."""
    from sw.runtime import make_backend

    it, _ = ref
    g = prepare_model(RETINAFACE)
    assert g.tensors[g.inputs[0]].shape == (1, 120, 160, 3)
    be = make_backend(backend, g)
    assert be.compiled.inputs[0].shape == (1, 120, 160, 3)  # what the ISP writes
    for img in (np.asarray(Image.open(TEST_JPEG)),
                np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)):
        x = _readme_input(img)
        want = it.run([x])
        got = be.run([np.ascontiguousarray(x[0].transpose(1, 2, 0)[..., ::-1][None])])
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)


@needs_model
def test_run_cli_reports_the_readme_faces():
    """Done-when of issue 14: sensor model + ISP (box resize) instead of the README's bilinear
    resize, so the boxes need only overlap (IoU >= 0.7)."""
    r = logicdie("run", "--model", str(RETINAFACE), "--image", str(TEST_JPEG), "--backend", "isa",
                 "--json")
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)["frames"][0]
    assert f["valid"]
    dets = f["result"]["detections"]
    assert len(dets) == 3
    ov = iou([d["box"] for d in dets], README_BOXES)
    assert sorted(np.argmax(ov, axis=1).tolist()) == [0, 1, 2]
    assert ov.max(axis=1).min() >= 0.7
    assert all(set(d) >= {"box", "score", "landmarks"} for d in dets)
