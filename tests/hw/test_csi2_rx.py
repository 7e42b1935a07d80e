"""CSI-2 RX (hw/csi2_rx.py) on Verilator against models/csi2.parse, and the pixel path under
fuzzing.

* RX alone, 4 and 1 bytes per beat: a fuzzed stream (corrupted frame + clean frame per case, plus
  RAW8 frames) with output back-pressure and input gaps; every pixel beat, status and counter equal.
* Pixel top (RX + ISP) via the C++ harness: >= 200 fuzz cases in CI (10,000 in the full tier): no
  hang, counters and statuses equal to the golden parser, every clean frame's tensor bit-exact.
"""

import pytest

from hw.config import preset
from hw.csi2_rx import Csi2Rx
from sim.cocotb_run import run_cocotb
from sw.pixel import run_fuzz


@pytest.mark.parametrize("cfg, cases", [
    pytest.param(preset("tiny"), 120, id="4bytes"),
    pytest.param(preset("ice40"), 60, id="1byte"),
])
def test_rx_vs_golden(cfg, cases):
    run_cocotb(Csi2Rx(cfg), "csi2_rx", "tests.hw.tb_csi2_rx",
               {"cases": cases, "raw8_frames": 3, "seed": cfg.csi2_lanes_bytes, "stall": 0.3,
                "idle": 0.1, "nbytes": cfg.csi2_lanes_bytes})


def _check(out, n):
    assert out["cases"] == n
    assert out["hangs"] == 0
    assert out["counters_match_golden"], out
    assert out["statuses_match_golden"], out
    assert out["clean_frames_ok"] == n, out["first_bad_cases"]
    assert out["clean_frames_bit_exact"]
    # the corruptions exercised every error class
    for k in ("ecc_corrected", "ecc_detected", "crc_errors", "length_errors", "sync_errors"):
        assert out[k] > 0, k


def test_pixel_fuzz_ci():
    _check(run_fuzz(200, seed=11, backend="rtl", config="tiny"), 200)


@pytest.mark.full
def test_pixel_fuzz_full():
    _check(run_fuzz(10000, seed=12345, backend="rtl", config="tiny"), 10000)


@pytest.mark.full
def test_pixel_fuzz_cocotb_engine():
    """The cocotb batch driver (sim/harness/pixel_tb.py) gives the same verdicts."""
    _check(run_fuzz(100, seed=13, backend="rtl", config="tiny", engine="cocotb"), 100)
