"""Sensor model (sim/sensor.py): modes, Bayer sampling, black level, noise, CSI-2 output."""

import numpy as np
import pytest

from hw.errors import UserError
from models import csi2
from sim.sensor import Sensor, parse_mode


def test_modes():
    assert parse_mode("full") == (4056, 3040)
    assert parse_mode("binned") == (2028, 1520)
    assert parse_mode("640x480") == (640, 480)


@pytest.mark.parametrize("bad", ["", "640", "641x480", "640x481", "8000x480", "axb", "0x0"])
def test_bad_modes(bad):
    with pytest.raises(UserError, match="sensor mode"):
        parse_mode(bad)


@pytest.mark.parametrize("pattern, sites", [("RGGB", "RGGB"), ("GRBG", "GRBG"),
                                            ("GBRG", "GBRG"), ("BGGR", "BGGR")])
def test_bayer_sites_and_black_level(pattern, sites):
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 128, 0
    raw = Sensor("8x4", pattern=pattern).capture(img)
    want = {"R": 1023, "G": 64 + round(128 / 255 * 959), "B": 64}
    tile = [raw[0, 0], raw[0, 1], raw[1, 0], raw[1, 1]]
    assert tile == [want[c] for c in sites]


def test_gray_image_and_photo():
    raw = Sensor("16x8").capture(np.full((5, 7), 0, np.uint8))
    assert raw.shape == (8, 16) and raw.dtype == np.uint16 and np.all(raw == 64)
    raw = Sensor("64x48").capture("camera")
    assert raw.max() <= 1023 and raw.min() >= 64


def test_noise_is_seeded():
    a = Sensor("32x16", shot_noise=0.5, read_noise=2.0, seed=3).capture("astronaut")
    b = Sensor("32x16", shot_noise=0.5, read_noise=2.0, seed=3).capture("astronaut")
    c = Sensor("32x16", shot_noise=0.5, read_noise=2.0, seed=4).capture("astronaut")
    clean = Sensor("32x16").capture("astronaut")
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, clean)


def test_gain_saturates():
    raw = Sensor("8x4", gain=4.0).capture(np.full((4, 8), 200, np.uint8))
    assert np.all(raw == 1023)


def test_packets_parse_back():
    s = Sensor("16x6")
    raw, bursts = s.stream("coffee", frame_number=9)
    assert bursts[0] == csi2.header(0x00, 9) and bursts[-1] == csi2.header(0x01, 9)
    res = csi2.parse(bursts)
    assert res.statuses == [(9, 0)]
    assert np.array_equal(np.stack(res.frames()[0]), raw)


def test_bad_image(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Sensor("8x4").capture(str(tmp_path / "nope.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read"):
        Sensor("8x4").capture(str(bad))
