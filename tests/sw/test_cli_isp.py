"""``logicdie isp``: JSON contract, golden vs RTL compare, plots, bad input -> exit 2."""

import json

import pytest

from sw.cli import main


def _run(capsys, *argv):
    code = main(["isp", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@pytest.mark.parametrize("photo, channels, roi, size", [
    ("camera", "1", "18,10,130,98", "23,17"),
    ("chelsea", "3", "6,4,144,110", "36,55"),
    # upscaling (binned ROI 18x14 -> 29x31, fractional both ways), and mixed down/up
    ("coffee", "3", "40,30,36,28", "29,31"),
    ("astronaut", "1", "20,12,100,16", "23,40"),
])
def test_compare_rtl_bit_exact(capsys, photo, channels, roi, size):
    code, out, _ = _run(capsys, photo, "--sensor-mode", "160x120", "--roi", roi, "--size", size,
                        "--channels", channels, "--compare")
    assert code == 0
    assert out["bit_exact"] is True and out["mismatched_elements"] == 0
    w, h = (int(v) for v in size.split(","))
    assert out["shape"] == [1, h, w, int(channels)]
    assert out["errors"]["crc_errors"] == 0 and out["errors"]["frame_flags"] == 0
    assert 0.9 < out["pixels_per_cycle"] <= 1.0


def test_golden_vga_and_plot(capsys, tmp_path):
    png = tmp_path / "stages.png"
    code, out, _ = _run(capsys, "astronaut", "--sensor-mode", "640x480", "--roi",
                        "100,40,400,400", "--size", "96,96", "--channels", "1", "--plot", str(png))
    assert code == 0 and out["bit_exact"] is None and out["shape"] == [1, 96, 96, 1]
    assert png.stat().st_size > 10000


def test_image_file(capsys, tmp_path):
    import numpy as np
    from PIL import Image
    f = tmp_path / "img.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (48, 1))).save(f)
    code, out, _ = _run(capsys, str(f), "--sensor-mode", "64x48", "--size", "8,6")
    assert code == 0 and out["shape"] == [1, 6, 8, 3]


@pytest.mark.parametrize("argv, msg", [
    (["camera", "--sensor-mode", "640x480", "--roi", "1,0,100,100"], "even"),
    (["camera", "--roi", "0,0,100"], "--roi"),
    (["camera", "--sensor-mode", "641x480"], "sensor mode"),
    (["camera", "--sensor-mode", "64x48", "--size", "2000,40"], "tensor size"),
    (["camera", "--sensor-mode", "64x48", "--size", "0,4"], "tensor size"),
    (["/no/such/file.png"], "not found"),
])
def test_bad_input_exit_2(capsys, argv, msg):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out is None
    assert msg in err and len(err.strip().splitlines()) == 1
