"""Golden ISP model (models/isp.py): stage arithmetic, resize boxes, parameter validation."""

import numpy as np
import pytest

from hw.errors import UserError
from hw.isp import MAX_BOX, RECIP_BITS
from models import isp


def test_recip_rounds():
    for c in (1, 2, 3, 7, 100, MAX_BOX):
        assert isp.recip(c) == round((1 << RECIP_BITS) / c)


@pytest.mark.parametrize("li, lo", [(10, 10), (10, 3), (207, 61), (5, 1), (320, 96)])
def test_resize_boxes_partition(li, lo):
    s = isp.resize_boxes(li, lo)
    assert len(s) == lo and s[0] == 0
    sizes = np.diff(np.concatenate([s, [li]]))
    assert set(sizes.tolist()) <= {li // lo, -(-li // lo)}


def test_box_resize_is_rounded_mean():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (37, 53, 3))
    out = isp.box_resize(x, 11, 7)
    sy, sx = isp.resize_boxes(37, 7), isp.resize_boxes(53, 11)
    ey, ex = np.append(sy[1:], 37), np.append(sx[1:], 53)
    for i in range(7):
        for j in range(11):
            box = x[sy[i]:ey[i], sx[j]:ex[j]]
            mean = box.sum(axis=(0, 1)) / (box.shape[0] * box.shape[1])
            assert np.all(np.abs(out[i, j] - mean) <= 0.5 + 1e-3)


def test_identity_and_default_normalization():
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 1024, (8, 12), dtype=np.uint16)
    p = isp.IspParams.make(12, 8, channels=3)
    st = isp.isp_stages(raw, p)
    assert np.array_equal(st["resized"], st["binned"])          # 1:1
    assert np.array_equal(st["tensor"], (st["binned"] - 128).astype(np.int8))


def test_black_level_gain_binning_luma():
    raw = np.array([[100, 300], [200, 1023]], dtype=np.uint16)   # RGGB tile
    p = isp.IspParams.make(2, 2, channels=3, gain=(512, 256, 256, 256))
    bg = isp.black_gain(raw, p)
    assert bg.tolist() == [[72, 236], [136, 959]]
    rgb = isp.bin2x2(bg, p)[0, 0].tolist()
    assert rgb == [72 >> 2, (236 + 136) >> 3, 959 >> 2]
    p1 = isp.IspParams.make(2, 2, channels=1, gain=(512, 256, 256, 256))
    r, g, b = rgb
    assert isp.bin2x2(bg, p1)[0, 0, 0] == (77 * r + 150 * g + 29 * b + 128) >> 8
    # a pixel below the black level clamps at 0
    assert isp.black_gain(np.full((2, 2), 10, np.uint16), p).max() == 0


def test_patterns_pick_the_same_colours():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 1024, (3, 4, 4))
    outs = []
    for pat in ("RGGB", "GRBG", "GBRG", "BGGR"):
        from hw.isp import pattern_positions
        raw = np.empty((8, 8), np.int64)
        for name, k in zip("RGgB", pattern_positions(pat), strict=True):
            ch = {"R": 0, "G": 1, "g": 1, "B": 2}[name]
            raw[k >> 1::2, k & 1::2] = rgb[ch]
        p = isp.IspParams.make(8, 8, channels=3, pattern=pat, black=(0,) * 4)
        outs.append(isp.isp_frame(raw, p))
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


def test_upscale_is_nearest_after_box():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (5, 7, 3))
    # integer ratios: every pixel repeated
    assert np.array_equal(isp.resize(x, 21, 10), np.repeat(np.repeat(x, 2, 0), 3, 1))
    # fractional: output o takes input floor(o * Lm / Lo), every input used, in order
    out = isp.resize(x, 11, 8)
    iy, ix = (np.arange(8) * 5) // 8, (np.arange(11) * 7) // 11
    assert np.array_equal(out, x[iy][:, ix]) and set(iy) == set(range(5))
    # mixed: box along y (10 -> 4), nearest along x (7 -> 9)
    y = rng.integers(0, 256, (10, 7, 1))
    assert np.array_equal(isp.resize(y, 9, 4), isp.nearest_upscale(isp.box_resize(y, 7, 4), 9, 4))
    p = isp.IspParams.make(64, 48, roi=(0, 0, 20, 10), size=(30, 3))
    assert p.mid_size == (10, 3) and p.hw_fields()["kx"] == 1


@pytest.mark.parametrize("kw", [dict(roi=(0, 0, 64, 48), size=(2000, 10)),
                                dict(roi=(3, 0, 10, 10)), dict(channels=2),
                                dict(pattern="RGBG"), dict(roi=(0, 0, 64, 48), size=(0, 5))])
def test_bad_params(kw):
    with pytest.raises(UserError):
        isp.IspParams.make(64, 48, **kw)
