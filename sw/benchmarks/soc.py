"""Logic-die figures (issue: the whole die in RTL): person_detect frame -> metadata through the SoC
top in Verilator at VGA, per frame: wall time after the build, the die's cycles (ISP, NPU, TX,
total), the Python-driven loop against the same build's raw C++ loop, output bytes per mode
against the RAW10 frame, and a short soak with the golden comparison.

``quick``: the ``tiny`` preset at 160x120 (a smoke run); otherwise the ``default`` preset at
640x480 (its first build takes minutes).
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["run"]


def _photos():
    import skimage.data

    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.camera(),
            skimage.data.chelsea()]


def run(quick: bool) -> dict:
    from sw.runtime import Device

    model = Path(__file__).resolve().parents[2] / "models" / "zoo" / "person_detect.tflite"
    config, mode = ("tiny", "160x120") if quick else ("default", "640x480")
    imgs = _photos()
    out = {"config": config, "sensor_mode": mode, "model": "person_detect"}
    t0 = time.perf_counter()
    dev = Device(model, backend="rtl", config=config, sensor_mode=mode, progress=True)
    try:
        dev.capture(imgs[0])                               # builds (cached) and warms up
        out["first_frame_s"] = time.perf_counter() - t0
        rtl = dev._rtl
        n = 4
        loop0, wall0, cyc0 = rtl.sim.loop_seconds, time.perf_counter(), rtl.sim.cycle
        frames = list(dev.stream(dev.sensor_frame(imgs[k % 4]) for k in range(n)))
        wall = time.perf_counter() - wall0
        loop = rtl.sim.loop_seconds - loop0
        cycles = rtl.sim.cycle - cyc0
        k = frames[-1].kpi
        out.update({
            "frames": n,
            "wall_s_per_frame": wall / n,
            "cycles_isp": k["cycles_isp"], "cycles_npu": k["cycles_npu"],
            "cycles_tx": k["cycles_tx"], "cycles_total": k["cycles_total"],
            "sim_cycles_per_frame": cycles / n,
            "sim_cycles_per_s": cycles / wall,
            "cxx_loop_s_per_frame": loop / n,
            # host work per frame (sensor model, golden parse/ISP tracking, packing, parsing)
            # outside the C++ loop: the Python-driven throughput relative to the raw loop
            "python_vs_cxx_loop": loop / wall if wall else None,
            "raw10_bytes_per_frame": dev.raw_bytes / (n + 1),
            "metadata_bytes_per_frame": frames[-1].output_bytes,
        })
    finally:
        dev.close()
    dev = Device(model, backend="rtl", config=config, sensor_mode=mode,
                 output_mode="image+metadata", compare=True)
    try:
        n = 8 if quick else 20
        t0 = time.perf_counter()
        res = list(dev.stream(dev.sensor_frame(imgs[k % 4]) for k in range(n)))
        out.update({
            "image_mode_bytes_per_frame": res[-1].output_bytes,
            "soak_frames": n,
            "soak_mismatches": sum(1 for r in res if not r.bit_exact),
            "soak_wall_s": time.perf_counter() - t0,
        })
    finally:
        dev.close()
    raw = out["raw10_bytes_per_frame"]
    out["reduction_metadata_vs_raw10"] = raw / out["metadata_bytes_per_frame"]
    out["reduction_image_vs_raw10"] = raw / out["image_mode_bytes_per_frame"]
    return out
