"""ISA cycle-model figures (SPEC section 9): cycles and MAC utilization, whole network and per
layer, for person_detect and a MobileNetV2-shaped network on the ``default`` preset (estimates from
the compiled program; the RTL's performance counters will be held to them within +-10 % per
layer)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path


def _figures(graph, config: str, per_layer: bool) -> dict:
    from sw.compiler import compile_graph, estimate

    t0 = time.perf_counter()
    c = compile_graph(graph, config)
    t_compile = time.perf_counter() - t0
    est = estimate(c)
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in est["layers"]:
        by_kind[r["kind"]][0] += r["cycles"]
        by_kind[r["kind"]][1] += r["macs"]
    pes = est["pes"]
    out = {
        "config": config,
        "macs": est["macs"],
        "cycles": est["cycles"],
        "utilization": est["utilization"],
        "ms_at_clock": est["ms"],
        "instructions": len(c.program),
        "sram_bytes": c.memory["total_bytes"],
        "compile_s": t_compile,
        "by_op": {
            k: {"cycles": cy, "macs": m, "utilization": m / (cy * pes) if cy else 0.0}
            for k, (cy, m) in by_kind.items()
        },
        "busy_cycles": est["busy"],
    }
    if per_layer:
        out["layers"] = [
            {k: r[k] for k in ("layer", "out_shape", "macs", "cycles", "utilization")}
            for r in est["layers"]
        ]
    return out


def run(quick: bool) -> dict:
    import numpy as np

    from models.zoo.generate import mobilenet_v2_like
    from sw.runtime import make_backend
    from sw.tflite_import import load_tflite

    zoo = Path(__file__).resolve().parents[2] / "models" / "zoo"
    pd = load_tflite(zoo / "person_detect.tflite")
    out = {"person_detect": _figures(pd, "default", per_layer=True)}
    hw = (96, 96) if quick else (224, 224)
    mn = load_tflite(mobilenet_v2_like(input_hw=hw, alpha=1.0, seed=0), name="mobilenet_v2_like")
    key = f"mobilenet_v2_{hw[0]}"
    out[key] = _figures(mn, "default", per_layer=True)
    # functional simulation speed (ms per inference of the ISA simulator)
    for name, g in (("person_detect", pd), (key, mn)):
        b = make_backend("isa", g, "default")
        x = [
            np.random.default_rng(0).integers(-128, 128, size=t.shape, dtype=np.int8)
            for t in g.input_tensors()
        ]
        b.run(x)
        t0 = time.perf_counter()
        b.run(x)
        out[name]["isa_sim_ms_per_inference"] = 1e3 * (time.perf_counter() - t0)
    return out
