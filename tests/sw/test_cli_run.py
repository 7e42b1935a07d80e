"""``logicdie run``, ``logicdie check --backend isa`` and the demo: results checked against the
golden model (itself bit-exact with TFLM) on the same input tensors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.golden import GoldenModel
from models.zoo import PERSON_DETECT
from sw.runtime import Device
from sw.tflite_import import load_tflite
from tests.sw.cli_util import logicdie

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "models" / "zoo"


def _cli(*args):
    return logicdie(*args)


def _golden_label(x):
    out = GoldenModel(load_tflite(PERSON_DETECT)).run([x])[0].reshape(-1)
    return ["no person", "person"][int(np.argmax(out))], int(out.max())


def test_run_bmps_as_tensors_json():
    r = _cli(
        "run", "--image", str(ZOO / "person.bmp"), str(ZOO / "no_person.bmp"), "--tensor", "--json"
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [f["frame_counter"] for f in d["frames"]] == [0, 1]
    for f, name in zip(d["frames"], ("person.bmp", "no_person.bmp"), strict=True):
        x = np.asarray(Image.open(ZOO / name)).view(np.int8).reshape(1, 96, 96, 1)
        label, raw = _golden_label(x)
        assert f["valid"] and f["result"]["label"] == label and f["result"]["raw"] == raw
        assert f["kpi"]["cycles_npu"] == d["cycles"] > 0
    assert 0 < d["utilization"] <= 1


def test_run_scene_image_mode_and_plot(tmp_path):
    png = tmp_path / "layers.png"
    r = _cli(
        "run",
        "--scene",
        "coffee",
        "--frames",
        "2",
        "--output-mode",
        "image+metadata",
        "--plot",
        str(png),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert png.stat().st_size > 1000
    assert [f["valid"] for f in d["frames"]] == [True, True]
    assert d["frames"][0]["kpi"]["cycles_isp"] > 0


def test_device_pipeline_matches_golden_on_isp_tensor():
    import skimage.data

    dev = Device(backend="isa", sensor_mode="320x240")
    assert dev.get_input_size() == (96, 96) and dev.get_output_shapes() == [(1, 2)]
    r = dev.capture(skimage.data.camera())
    x = dev._last_tensor
    g = load_tflite(PERSON_DETECT)
    want = GoldenModel(g).run([x])
    assert r.valid and np.array_equal(r.outputs[0], want[0])
    # picamera2's get_outputs: float32, dequantized with the output's quantization
    q = g.tensors[g.outputs[0]].quant
    deq = (want[0].astype(np.float32) - np.float32(q.zero_point[0])) * np.float32(q.scale[0])
    assert dev.get_outputs()[0].dtype == np.float32 and np.array_equal(dev.get_outputs()[0], deq)
    img = dev.input_tensor_image()
    assert img.shape == (96, 96) and np.array_equal(img.astype(np.int16) - 128, x.reshape(96, 96))
    npu_ms, total_ms = Device.get_kpi_info(r)   # picamera2: static, from the metadata
    assert 0 < npu_ms < total_ms
    dev.set_inference_roi_abs((0, 0, 240, 240))
    assert dev.capture(skimage.data.camera()).frame_counter == 1
    # a frame whose inference cannot finish in the frame time is invalid, never merged
    slow = Device(backend="isa", sensor_mode="320x240", fps=1e6)
    r = slow.capture(skimage.data.camera())
    assert not r.valid and "TIMEOUT" in r.errors and slow.get_outputs() is None


def test_run_bad_input_exit_2(tmp_path):
    for args in (
        ["--image", str(tmp_path / "missing.png")],
        ["--scene", "nope"],
        ["--scene", "camera", "--roi", "1,2,3,4"],
        ["--sensor-mode", "641x480"],
        ["--scene", "camera", "--frames", "0"],
    ):
        r = _cli("run", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (
            args,
            r.stderr,
        )


def test_check_backend_isa_json():
    r = _cli("check", str(PERSON_DETECT), "--backend", "isa", "--inputs", "3", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["bit_exact"] and d["mismatched_elements"] == 0 and d["cycles"] > 0
    assert 0 < d["utilization"] <= 1


def _demo(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "sw.demo", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def test_demo_runs():
    """The demo's flow on the golden die (the RTL die's own run is in the full tier)."""
    r = _demo("--backend", "isa")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(" valid ") == 4 and "demo OK" in r.stdout


@pytest.mark.full
def test_demo_runs_on_the_rtl_die():
    r = _demo(timeout=3000)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("RTL == golden") == 4 and "demo OK" in r.stdout


def test_golden_and_isa_devices_agree_frame_by_frame():
    import skimage.data

    devs = [
        Device(backend=b, sensor_mode="320x240", output_mode="image+metadata")
        for b in ("golden", "isa")
    ]
    for name in ("coffee", "astronaut"):
        img = getattr(skimage.data, name)()
        rg, ri = (d.capture(img) for d in devs)
        assert rg.frame_counter == ri.frame_counter and rg.valid and ri.valid
        assert np.array_equal(rg.image, ri.image)  # same ISP tensor sent as RAW8 lines
        assert all(np.array_equal(a, b) for a, b in zip(rg.outputs, ri.outputs, strict=True))
        assert rg.kpi["cycles_npu"] == 0 < ri.kpi["cycles_npu"]
