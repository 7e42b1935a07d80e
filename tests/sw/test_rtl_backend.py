"""The ``rtl`` backend (sw/runtime.py RtlBackend over the NPU harness): whole networks on the RTL
NPU in Verilator, checked against the golden graph (itself bit-exact with TFLM) and, through
``logicdie check --backend rtl``, against TFLM directly. CI tier: the ``tiny`` preset (random
multi-layer networks against IsaSim are in tests/hw/test_npu.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.golden import GoldenModel
from sw.compiler import compile_graph
from sw.runtime import RtlBackend
from sw.tflite_import import load_tflite
from tests.sim.test_isa_sim import _inputs, random_model
from tests.sw.cli_util import logicdie as _cli

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo"


def _assert_rtl_exact(graph, config, inputs_list) -> RtlBackend:
    rtl = RtlBackend(compile_graph(graph, config))
    gold = GoldenModel(graph)
    for xs in inputs_list:
        got, want = rtl.run(xs), gold.run(xs)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert np.array_equal(g, w), f"{np.count_nonzero(g != w)} of {w.size} differ"
    return rtl


def test_person_detect_tiny_bmps():
    graph = load_tflite(ZOO / "person_detect.tflite")
    xs = [
        [np.asarray(Image.open(ZOO / f)).view(np.int8).reshape(1, 96, 96, 1)]
        for f in ("person.bmp", "no_person.bmp")
    ]
    rtl = _assert_rtl_exact(graph, "tiny", xs)
    c = rtl.last_counters
    n_instr = len(rtl.compiled.program)
    # counters read back sensibly: every instruction up to DONE retired once, the units' busy
    # cycles and the MACs fit in the run, the array did at least the graph's conv MACs
    assert 0 < c["INSTRS"] <= n_instr
    assert c["CYCLES"] == rtl.last_cycles > 0
    for unit in ("LOAD_BUSY", "CONV_BUSY", "VEC_BUSY", "STORE_BUSY"):
        assert 0 <= c[unit] <= c["CYCLES"]
    assert c["CONV_BUSY"] > 0 and c["VEC_BUSY"] > 0
    assert 0 < c["MACS"] <= c["CYCLES"] * rtl.config.pes
    st = rtl.last_stats
    assert sum(r["cycles"] for r in st["layers"]) == st["cycles"] == c["CYCLES"]


def test_host_port_upload_equals_backdoor():
    graph = load_tflite(random_model(4), name="random4")
    xs = _inputs(graph, np.random.default_rng(4))
    compiled = compile_graph(graph, "tiny")
    a = RtlBackend(compiled)
    b = RtlBackend(compiled, upload="host")
    for g, w in zip(b.run(xs), a.run(xs), strict=True):
        assert np.array_equal(g, w)
    assert a.last_cycles == b.last_cycles


def test_cli_check_rtl_json():
    r = _cli("check", str(ZOO / "person_detect.tflite"), "--backend", "rtl", "--config", "tiny",
             "--inputs", "1", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["bit_exact"] is True and d["mismatched_elements"] == 0
    assert d["cycles"] > 0 and 0 < d["utilization"] <= 1
    assert d["counters"]["CYCLES"] == d["cycles"]


@pytest.mark.full
def test_mobilenet_v2_96_default():
    from models.zoo.generate import mobilenet_v2_like

    graph = load_tflite(mobilenet_v2_like(input_hw=(96, 96), alpha=0.35, seed=0), name="mnv2")
    _assert_rtl_exact(graph, "default", [_inputs(graph, np.random.default_rng(0))])


@pytest.mark.full
@pytest.mark.parametrize("config", ["default", "ecp5"])
def test_person_detect_presets(config):
    graph = load_tflite(ZOO / "person_detect.tflite")
    rng = np.random.default_rng(1)
    _assert_rtl_exact(graph, config, [_inputs(graph, rng) for _ in range(2)])
