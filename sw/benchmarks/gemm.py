"""GEMM engine benchmark: steady-state MACs/cycle over R x C, measured in RTL simulation.

Runs the ``steady_state`` cocotb test of ``tests/hw/tb_gemm.py`` (Verilator, cached build) on a long
GEMM with no input gaps and no output back-pressure. ``steady_macs_per_cycle_ratio`` = activation
beats / cycles from the first to the last accepted activation (each beat is R*C MACs of array work;
K and N are multiples of the array so no MAC is padding); ``end_to_end_macs_per_cycle_ratio``
includes pipeline fill and drain. The outputs are checked bit-exact against models.gemm by the same
test. Also returns the last synthesis reports of the gemm top at the target's preset
(build/synth/<target>/gemm-<target>/) if present.
"""

from __future__ import annotations

import json
import time

from hw.config import preset
from hw.gemm import m_block, top
from sim.cocotb_run import run_cocotb
from sim.toolchain import build_dir

__all__ = ["run"]


def run(quick: bool) -> dict:
    cfg = preset("tiny" if quick else "default")
    mb = m_block(cfg)
    m, k, n = (4 * mb, 4 * cfg.array_rows, 2 * cfg.array_cols) if quick else \
        (8 * mb, 8 * cfg.array_rows, 4 * cfg.array_cols)
    t0 = time.monotonic()
    rundir = run_cocotb(top(cfg), "gemm", "tests.hw.tb_gemm",
                        {"config": cfg.to_dict(), "seed": 1, "rounds": 0, "steady_m": m,
                         "steady_k": k, "steady_n": n, "min_ratio": 0.0},
                        testcase="steady_state")
    res = json.loads((rundir / "gemm_result.json").read_text())
    out = {"config": cfg.name, "array": f"{cfg.array_rows}x{cfg.array_cols}", **res,
           "sim_wall_s": round(time.monotonic() - t0, 1)}
    for target in ("ecp5", "ice40"):
        p = build_dir("synth", target) / f"gemm-{target}" / "report.json"
        if p.exists():
            r = json.loads(p.read_text())
            out[f"synth_{target}"] = {k: r.get(k) for k in (
                "top", "config", "fmax_mhz", "meets_timing", "luts", "ffs", "dsps", "brams")}
    return out
