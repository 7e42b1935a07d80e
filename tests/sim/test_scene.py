"""sim/scene.py: deterministic moving scenes with per-frame ground truth and sensor noise."""

from __future__ import annotations

import numpy as np
import pytest

from hw.errors import UserError
from sim.scene import MIN_VISIBLE, SCENES, make_scene, sprites
from sim.sensor import Sensor


@pytest.mark.parametrize("name", SCENES)
def test_deterministic_and_well_formed(name):
    s = make_scene(name, 12, seed=5)
    a, ta = s.frame(7)
    b, tb = make_scene(name, 12, seed=5).frame(7)
    assert a.dtype == np.uint8 and a.shape == (240, 320, 3)
    assert np.array_equal(a, b) and ta == tb
    assert not np.array_equal(a, make_scene(name, 12, seed=6).frame(7)[0])
    for g in ta:
        x0, y0, x1, y1 = g["box"]
        assert x1 > x0 and y1 > y0 and 0.0 <= g["visible"] <= 1.0
        assert g["ignore"] == (g["visible"] < MIN_VISIBLE)
    with pytest.raises(IndexError):
        s.frame(12)


def test_faces_are_pasted_where_the_truth_says():
    """Noiseless: each fully visible truth box holds its sprite's face pixels (not background)."""
    s = make_scene("shelf", 3, noise=False)
    img, truth = s.frame(0)
    assert truth
    for g in truth:
        x0, y0, x1, y1 = (int(round(v)) for v in g["box"])
        a = next(a for a in s.actors if a.pid == g["id"])
        sp = s._sprite(a)
        fx0, fy0 = int(round(sp.face[0])), int(round(sp.face[1]))
        h, w = y1 - y0 - 2, x1 - x0 - 2
        got = img[y0 + 1:y0 + 1 + h, x0 + 1:x0 + 1 + w].astype(int)
        want = np.rint(sp.rgb[fy0 + 1:fy0 + 1 + h, fx0 + 1:fx0 + 1 + w]).astype(int)
        assert np.abs(got - want).mean() < 3  # +-1 pixel of rounding in the placement
        assert np.abs(got - s.background[y0 + 1:y0 + 1 + h, x0 + 1:x0 + 1 + w]).mean() > 10


def test_entrance_crossings_and_occlusion():
    s = make_scene("entrance", 60)
    n_in, n_out = s.truth_counts()
    assert n_in + n_out >= 3 and n_in >= 1 and n_out >= 1
    # independent count: side of the line at the first and last frame of each identity (each
    # walker crosses once, straight across)
    tracks = s.truth_tracks()
    sides = [(pts[0][1] < s.line_x, pts[-1][1] < s.line_x) for pts in tracks.values()]
    assert n_in == sum(a and not b for a, b in sides)
    assert n_out == sum(b and not a for a, b in sides)
    vis = [g["visible"] for t in range(60) for g in s.frame(t)[1]]
    assert min(vis) < MIN_VISIBLE < max(vis)  # some faces off-frame or occluded


def test_shelf_truth_slots():
    s = make_scene("shelf", 30, seed=2)
    assert len(s.slots) == 6
    for t in range(0, 30, 5):
        _, truth = s.frame(t)
        stocked = s.truth_slots(t)
        ids = {g["id"] for g in truth}
        assert ids == {k for k, v in enumerate(stocked) if v}
        for g in truth:  # the face lies inside its slot
            x0, y0, x1, y1 = s.slots[g["id"]]
            cx, cy = (g["box"][0] + g["box"][2]) / 2, (g["box"][1] + g["box"][3]) / 2
            assert x0 <= cx <= x1 and y0 <= cy <= y1


def test_noise_follows_the_sensor_model():
    s = make_scene("entrance", 1)
    quiet = make_scene("entrance", 1, noise=False)
    a = s.frame(0)[0].astype(float)
    b = quiet.frame(0)[0].astype(float)
    patch = (slice(150, 180), slice(8, 60))  # plain wall, no person at frame 0
    sens = Sensor("320x240", shot_noise=s.shot_noise, read_noise=s.read_noise)
    full = 1023 - sens.black_level
    sig = b[patch] / 255 * full
    want = np.sqrt(sig * sens.shot_noise + sens.read_noise ** 2).mean() / full * 255
    got = (a[patch] - b[patch]).std()
    assert got == pytest.approx(want, rel=0.15)


def test_bad_scene():
    with pytest.raises(UserError, match="unknown scene"):
        make_scene("moon", 3)
    with pytest.raises(UserError):
        make_scene("entrance", 0)


def test_sprites_have_faces_inside():
    for sp in sprites().values():
        h, w = sp.alpha.shape
        x0, y0, x1, y1 = sp.face
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert sp.alpha[int((y0 + y1) / 2), int((x0 + x1) / 2)] == pytest.approx(1.0)
