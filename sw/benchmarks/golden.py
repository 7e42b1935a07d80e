"""Golden model vs TFLM reference interpreter: wall time per inference, and bit-exactness on the
bench inputs.

Models: the shipped person_detect and a generated MobileNetV2-shaped network (models.zoo.generate).
Both run single-threaded BLAS (see sw.cli.limit_blas_threads) on the same random inputs.
"""

from __future__ import annotations

import time

import numpy as np

from models.zoo import PERSON_DETECT


def _models(quick: bool):
    yield "person_detect", PERSON_DETECT.read_bytes()
    try:
        from models.zoo.generate import mobilenet_v2_like
    except ImportError:
        return
    hw = (96, 96) if quick else (224, 224)
    yield f"mobilenet_v2_like_{hw[0]}", mobilenet_v2_like(input_hw=hw, seed=0)


def _time(fn, xs, repeat):
    fn(xs[0])  # warm up
    t = time.perf_counter()
    for i in range(repeat):
        fn(xs[i % len(xs)])
    return (time.perf_counter() - t) / repeat


def run(quick: bool) -> dict:
    from models.golden import GoldenModel
    from models.tflm_ref import TflmReference
    from sw.cli.check import random_inputs
    from sw.tflite_import import load_tflite

    out = {}
    repeat = 5 if quick else 30
    for name, data in _models(quick):
        g = load_tflite(data, name=name)
        gm, ref = GoldenModel(g), TflmReference(data)
        rng = np.random.default_rng(0)
        xs = [random_inputs(g, rng) for _ in range(4)]
        exact = all(
            np.array_equal(a, b) for x in xs for a, b in zip(gm.run(x), ref.run(x), strict=True)
        )
        tg = _time(gm.run, xs, repeat)
        tr = _time(ref.run, xs, repeat)
        out[name] = {
            "macs": g.macs(),
            "golden_ms_per_inference": round(tg * 1e3, 3),
            "tflm_ms_per_inference": round(tr * 1e3, 3),
            "speedup_vs_tflm": round(tr / tg, 2),
            "bit_exact": exact,
        }
    return out
