"""ISP (hw/isp.py) cosimulated with cocotb on Verilator against models/isp.py.

One build (tiny preset: line buffers of 4096 pixels); real photos from scikit-image, all four Bayer
patterns, 1 and 3 channels, integer and fractional resize ratios, non-default black level / gain /
normalization, sensor noise, upscaling (integer, fractional, mixed with downscaling, output-bound),
output back-pressure and input gaps, all inside one simulation.
"""

import pytest

from hw.config import preset
from hw.errors import UserError
from hw.isp import Isp
from models.isp import IspParams
from sim.cocotb_run import run_cocotb

CASES = [
    # integer ratio (box 2x2), RGB, no back-pressure -> checks 1 pixel/clock
    dict(photo="astronaut", mode="96x64", pattern="RGGB", channels=3, roi=[0, 0, 96, 64],
         size=[24, 16], stall=0.0),
    # fractional ratios, luma, odd-sized tensor, back-pressure
    dict(photo="camera", mode="128x96", pattern="GRBG", channels=1, roi=[10, 6, 90, 70],
         size=[13, 11], stall=0.5),
    dict(photo="coffee", mode="120x80", pattern="GBRG", channels=3, roi=[22, 14, 84, 52],
         size=[29, 17], stall=0.3),
    dict(photo="chelsea", mode="100x60", pattern="BGGR", channels=1, roi=[4, 2, 92, 56],
         size=[46, 28], stall=0.2),
    # 1:1 (no resize), non-default black level, gain and normalization, noise
    dict(photo="astronaut", mode="64x48", pattern="BGGR", channels=3, roi=[8, 8, 40, 32],
         size=[20, 16], black=[60, 64, 70, 66], gain=[300, 256, 200, 512],
         norm_mul=[181, 3, 1], norm_shift=[8, 1, 0], norm_off=[-100, -128, -128], read=3.0,
         shot=0.4, seed=7, stall=0.1),
    # 1:1 with heavy back-pressure: outputs at their densest, the FIFO bound is exercised
    dict(photo="chelsea", mode="64x48", pattern="GRBG", channels=3, roi=[0, 0, 64, 48],
         size=[32, 24], stall=0.9),
    # big box (downscale to 1 pixel per axis)
    dict(photo="coffee", mode="64x32", pattern="RGGB", channels=1, roi=[0, 0, 64, 32],
         size=[1, 3], stall=0.0),
    # upscaling (nearest after the box filter): integer 2x, RGB, no back-pressure
    dict(photo="astronaut", mode="32x24", pattern="RGGB", channels=3, roi=[0, 0, 32, 24],
         size=[32, 24], stall=0.0),
    # fractional upscale, luma, ROI inside the frame, back-pressure
    dict(photo="camera", mode="40x32", pattern="GBRG", channels=1, roi=[4, 2, 20, 14],
         size=[23, 17], stall=0.3),
    # mixed: down along x, up along y, RGB
    dict(photo="chelsea", mode="64x16", pattern="BGGR", channels=3, roi=[0, 0, 64, 16],
         size=[12, 19], stall=0.2),
    # a tiny ROI blown up (output-bound: one tensor pixel per clock), fractional, RGB and luma
    dict(photo="coffee", mode="16x8", pattern="GRBG", channels=3, roi=[4, 2, 6, 4],
         size=[37, 29], stall=0.0, dense=True),
    dict(photo="astronaut", mode="16x8", pattern="RGGB", channels=1, roi=[0, 0, 16, 8],
         size=[40, 20], stall=0.0, dense=True),
]


def test_isp_vs_golden():
    cfg = preset("tiny")
    run_cocotb(Isp(cfg), "isp", "tests.hw.tb_isp",
               {"cases": CASES, "seed": 3, "idle": 0.0, "max_line": cfg.max_line_pixels})


@pytest.mark.parametrize("roi, size, msg", [
    ((1, 0, 40, 40), (10, 10), "even"),
    ((0, 0, 41, 40), (10, 10), "even"),
    ((0, 0, 40, 40), (2000, 10), "tensor size"),
    ((0, 0, 40, 40), (0, 10), "tensor size"),
    ((60, 0, 40, 40), (10, 10), "inside"),
])
def test_bad_roi_rejected(roi, size, msg):
    with pytest.raises(UserError, match=msg):
        IspParams.make(64, 48, roi=roi, size=size)
