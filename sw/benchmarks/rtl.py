"""RTL NPU figures (issue #6, SPEC section 9): person_detect and a MobileNetV2-shaped network on the
``default`` preset through the Verilator harness: RTL cycles and MAC utilization (whole and per
layer), the ISA cycle model's error per layer, the performance counters, and simulation speed
(cycles/s of the Python-driven run vs the harness's own C++ run loop; wall time per inference
after the build). ``--quick``: person_detect and a 96x96 MobileNetV2 (alpha 0.35, 10 classes) on
``tiny``."""

from __future__ import annotations

import time
from pathlib import Path


def _figures(graph, config: str) -> dict:
    import numpy as np

    from sw.compiler import estimate
    from sw.runtime import make_backend

    t0 = time.perf_counter()
    rtl = make_backend("rtl", graph, config)
    t_build = time.perf_counter() - t0
    isa = make_backend("isa", graph, config)
    rng = np.random.default_rng(0)
    x = [rng.integers(-128, 128, size=t.shape, dtype=np.int8) for t in graph.input_tensors()]
    want = isa.run(x)
    t0 = time.perf_counter()
    got = rtl.run(x)
    wall = time.perf_counter() - t0
    exact = all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    st = rtl.last_stats
    est = estimate(rtl.compiled)
    cyc = rtl.last_cycles
    layers = []
    for r, e in zip(st["layers"], est["layers"], strict=True):
        layers.append({
            "layer": r["layer"], "kind": r["kind"], "engine": r["engine"], "macs": r["macs"],
            "rtl_cycles": r["cycles"], "utilization": r["utilization"],
            "model_cycles": e["cycles"],
            "model_error": (e["cycles"] - r["cycles"]) / r["cycles"] if r["cycles"] else None,
        })
    errs = [abs(r["model_error"]) for r in layers if r["model_error"] is not None]
    conv = [r for r in layers if r["engine"] == "array"]
    conv_cyc = sum(r["rtl_cycles"] for r in conv)
    cnt = rtl.last_counters
    return {
        "config": config,
        "bit_exact_vs_isa": exact,
        "cycles": cyc,
        "model_cycles": est["cycles"],
        "utilization": st["utilization"],
        "array_layers_utilization": (sum(r["macs"] for r in conv) / (conv_cyc * st["pes"])
                                     if conv_cyc else None),
        "ms_at_clock": st["ms"],
        "layers_within_10pct_of_model": sum(e <= 0.10 for e in errs),
        "layers_compared": len(errs),
        "model_error_total": (est["cycles"] - cyc) / cyc if cyc else None,
        # the array and the vector unit at the same time (hw.isa overlap): busy sums > cycles
        "concurrency": {
            "conv_busy": cnt["CONV_BUSY"], "vec_busy": cnt["VEC_BUSY"],
            "busy_sum_over_cycles": (cnt["CONV_BUSY"] + cnt["VEC_BUSY"]) / cyc if cyc else None,
            "overlap_instructions": sum(int(i["overlap"]) for i in rtl.compiled.program),
        },
        "layers": layers,
        "counters": cnt,
        "build_and_load_s": t_build,
        "wall_s_per_inference": wall,
        "cycles_per_s_python_driven": cyc / wall if wall else None,
        "cycles_per_s_cxx_loop": cyc / rtl.last_sim_s if rtl.last_sim_s else None,
        "python_driven_fraction": rtl.last_sim_s / wall if wall else None,
    }


def run(quick: bool) -> dict:
    from models.zoo.generate import mobilenet_v2_like
    from sw.tflite_import import load_tflite

    zoo = Path(__file__).resolve().parents[2] / "models" / "zoo"
    config = "tiny" if quick else "default"
    hw = (96, 96) if quick else (224, 224)
    pd = load_tflite(zoo / "person_detect.tflite")
    # alpha 1.0 weights (3.7 MB) do not fit tiny's 1 MiB SRAM: --quick runs alpha 0.35, 10 classes
    kw = {"alpha": 0.35, "num_classes": 10} if quick else {"alpha": 1.0}
    mn = load_tflite(mobilenet_v2_like(input_hw=hw, seed=0, **kw), name="mobilenet_v2_like")
    return {"person_detect": _figures(pd, config), f"mobilenet_v2_{hw[0]}": _figures(mn, config)}
