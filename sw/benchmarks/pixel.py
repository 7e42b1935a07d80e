"""Pixel-path figures: pixels per cycle sustained by RX + ISP (RTL, no back-pressure), golden model
speed, and fuzz totals (counters and the clean-frame verdict)."""

from __future__ import annotations

import time

from hw.config import preset

__all__ = ["run"]


def run(quick: bool) -> dict:
    from models.isp import IspParams, isp_frame
    from sim.sensor import Sensor
    from sw.pixel import PixelInterface, RtlTransport, run_fuzz

    cfg = preset("default")
    mode = "160x120" if quick else "640x480"
    sensor = Sensor(mode)
    raw, bursts = sensor.stream("astronaut", frame_number=1)
    side = min(96, sensor.height // 2)
    p = IspParams.make(sensor.width, sensor.height, size=(side, side), channels=3)
    t0 = time.perf_counter()
    want = isp_frame(raw, p)
    golden_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    got, r = PixelInterface(RtlTransport(cfg)).tensor(bursts, p)
    rtl_s = time.perf_counter() - t0
    pixels = sensor.width * sensor.height
    line_bytes = sum(len(b) for b in bursts)
    ncases = 100 if quick else 1000
    t0 = time.perf_counter()
    fz = run_fuzz(ncases, seed=7, backend="rtl", config=cfg)
    fuzz_s = time.perf_counter() - t0
    return {
        "sensor_mode": sensor.mode,
        "bit_exact": bool(got is not None and (got == want).all()),
        "pixels": pixels,
        "cycles": r.cycles,
        "pixels_per_cycle": round(pixels / r.cycles, 4) if r.cycles else None,
        "stream_bytes": line_bytes,
        "bytes_per_cycle": round(line_bytes / r.cycles, 4) if r.cycles else None,
        "frame_ms_at_clock": round(r.cycles / cfg.clock_mhz / 1e3, 3) if r.cycles else None,
        "clock_mhz": cfg.clock_mhz,
        "golden_isp_ms": round(golden_ms, 2),
        "rtl_sim_s": round(rtl_s, 2),
        "fuzz": {k: fz[k] for k in ("cases", "hangs", "ecc_corrected", "ecc_detected",
                                     "crc_errors", "length_errors", "sync_errors",
                                     "frames_flagged", "counters_match_golden",
                                     "clean_frames_bit_exact")},
        "fuzz_s": round(fuzz_s, 1),
    }
