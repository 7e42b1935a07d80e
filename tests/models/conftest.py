"""Shared helpers for the golden-vs-TFLM tests: input generation and the bit-exact comparison."""

from __future__ import annotations

import math
import os

import numpy as np
from hypothesis import HealthCheck, settings

from models.golden import GoldenModel
from models.graph import Graph
from models.tflm_ref import TflmReference
from sw.tflite_import import load_tflite


def golden_settings(max_examples: int) -> settings:
    """Hypothesis settings for model-building property tests: deterministic (derandomized, no
    example database), no deadline (TFLM load time varies), bounded examples (CI tier budget).
    For bug hunting, GOLDEN_EXAMPLES=K multiplies the examples and GOLDEN_RANDOM=1 draws fresh
    random examples (not derandomized) on each run."""
    scale = int(os.environ.get("GOLDEN_EXAMPLES", "1"))
    fresh = os.environ.get("GOLDEN_RANDOM") == "1"
    return settings(max_examples=max_examples * scale, deadline=None, derandomize=not fresh,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def _float_range(graph: Graph, index: int) -> tuple[float, float]:
    """The real range a float input maps onto: that of the QUANTIZE op reading it, else [-1, 1]."""
    for op in graph.ops:
        if op.kind == "QUANTIZE" and index in op.inputs:
            q = graph.tensors[op.outputs[0]].quant
            s, z = float(q.scale[0]), int(q.zero_point[0])
            info = np.iinfo(graph.tensors[op.outputs[0]].dtype)
            return s * (info.min - z), s * (info.max - z)
    return -1.0, 1.0


def make_inputs(graph: Graph, rng: np.random.Generator, kind: str = "random") -> list[np.ndarray]:
    """Inputs for every graph input. ``kind``: 'random' (uniform over the int8 range; for a float
    input uniform over its QUANTIZE range widened by 10 % so clamping is exercised, with some exact
    rounding ties), 'min' / 'max' (int8 extremes; float range ends beyond the clamp), 'ramp'
    (every int8 value in turn, -128, -127, ..., 127, -128, ...; a float linspace over the range)."""
    xs = []
    for t in graph.input_tensors():
        if t.dtype == "float32":
            lo, hi = _float_range(graph, t.index)
            pad = 0.1 * (hi - lo)
            if kind == "ramp":
                x = np.linspace(lo - pad, hi + pad, math.prod(t.shape)).reshape(t.shape)
            elif kind == "min":
                x = np.full(t.shape, lo - pad)
            elif kind == "max":
                x = np.full(t.shape, hi + pad)
            else:
                x = rng.uniform(lo - pad, hi + pad, size=t.shape)
                # half-way values (k + 0.5) * scale exercise the rounding of QUANTIZE
                for op in graph.ops:
                    if op.kind == "QUANTIZE" and t.index in op.inputs:
                        s = float(graph.tensors[op.outputs[0]].quant.scale[0])
                        flat = x.reshape(-1)
                        m = flat.size // 3
                        flat[:m] = (np.round(flat[:m] / s) + 0.5) * s
                        break
            xs.append(x.astype(np.float32))
        else:
            info = np.iinfo(t.dtype)
            if kind == "min":
                x = np.full(t.shape, info.min)
            elif kind == "max":
                x = np.full(t.shape, info.max)
            elif kind == "ramp":
                x = (np.arange(math.prod(t.shape)) % 256 + info.min).reshape(t.shape)
            else:
                x = rng.integers(info.min, info.max + 1, size=t.shape)
            xs.append(x.astype(t.dtype))
    return xs


#: GOLDEN_STATS=FILE appends per-output statistics (op mix, saturated fraction, distinct values) to
#: FILE: a check that the drawn quantization makes outputs informative rather than saturated.
_STATS = os.environ.get("GOLDEN_STATS")


def _log_stats(graph: Graph, w: np.ndarray) -> None:
    if w.dtype == np.int8:
        sat = float(np.mean((w == -128) | (w == 127)))
    else:
        sat = float("nan")
    with open(_STATS, "a") as f:
        f.write(f"{'+'.join(sorted(graph.op_counts()))}\t{sat:.3f}\t{len(np.unique(w))}\t{w.size}\n")


def check_bit_exact(data: bytes, n_random: int = 2, seed: int = 0, extremes: bool = True,
                    inputs: list[list[np.ndarray]] | None = None) -> int:
    """Run the model through the golden model and TFLM on ``n_random`` random inputs (plus the
    all-min, all-max and ramp inputs if ``extremes``, plus any explicit ``inputs``) and assert
    every output element is equal. Returns the number of output elements compared."""
    graph = load_tflite(data)
    ref = TflmReference(data)
    gm = GoldenModel(graph)
    rng = np.random.default_rng(seed)
    cases = [make_inputs(graph, rng) for _ in range(n_random)]
    if extremes:
        cases += [make_inputs(graph, rng, k) for k in ("min", "max", "ramp")]
    cases += list(inputs or [])
    compared = 0
    for k, xs in enumerate(cases):
        want = ref.run(xs)
        got = gm.run(xs)
        assert len(got) == len(want)
        for j, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g.dtype == w.dtype, f"case {k} output {j}: dtype {g.dtype} != TFLM {w.dtype}"
            assert g.shape == w.shape, f"case {k} output {j}: shape {g.shape} != TFLM {w.shape}"
            bad = int(np.sum(g != w))
            np.testing.assert_array_equal(
                g, w, err_msg=f"case {k} output {j}: {bad}/{w.size} elements differ from TFLM "
                              f"(ops {graph.op_counts()})")
            compared += w.size
            if _STATS and k < n_random:
                _log_stats(graph, w)
    return compared
