"""Scene generator: frame sequences that move, with ground truth per frame (the apps' test bench).

Scenes (:data:`SCENES`, built by :func:`make_scene`):

* ``entrance`` — front view of a corridor with a doorway; people (faces pasted from real photos:
  scikit-image's astronaut and the three portraits of models/zoo/retinaface_test.jpeg, one of
  them also mirrored) walk across the frame, left to right ("in") or right to left ("out"),
  at different depths (the nearer one is pasted over the farther one: partial occlusion),
  crossing the counting line at x = W/2.
* ``heatmap`` — an oblique ceiling camera over a shop floor (aisles and shelves drawn in the
  background); shoppers wander along waypoint paths that favour some aisles, so occupancy is
  uneven.
* ``shelf`` — a front view of a shelf of 2 x 3 slots; each product is a package with a portrait
  label (a stand-in: the only detector we have finds faces); products are taken and restocked
  over time.

Contract:

* ``Scene.frame(t)`` -> ``(image, truth)``: ``image`` (H, W, 3) uint8 RGB, deterministic for
  (scene, seed, t); ``truth`` a list of ``{"id", "box" [x0, y0, x1, y1] (scene pixels, the face),
  "visible" (fraction of the face box neither off-frame nor covered by nearer people),
  "ignore"}``; ``ignore`` marks faces a detector need not find (less than ``MIN_VISIBLE``
  visible): they count as neither a miss nor, if detected, a false alarm.
* Sensor noise: with ``noise`` set, each frame gets the noise model of :class:`sim.sensor.Sensor`
  (shot noise of variance ``signal * shot_noise`` and read noise of std ``read_noise``, in RAW10
  DN over black level 64) applied to each colour, seeded by (seed, t), before it is quantized
  back to 8 bits. (The runtime's sensor is noiseless; the scene carries the noise instead.)
* ``entrance`` ground truth counts: :meth:`Scene.truth_counts` = people whose face centre crosses
  ``line_x`` between frame 0 and frame n - 1, by direction (left to right is "in").
* ``shelf``: ``slots`` (x0, y0, x1, y1) and per frame ``truth_slots`` (True = stocked).

Faces: the box of each source face (in the source image's pixels) is the TFLM reference
interpreter's RetinaFace detection on that image (../shared/models/README.md for the three
portraits, scaled from 160 x 120 to 256 x 256; the same measurement on the whole astronaut photo,
of which models/zoo/astronaut_face.png is the crop x 130..330, y 0..260): annotations, not
outputs of the code under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hw.errors import UserError

__all__ = ["SCENES", "Scene", "make_scene", "sprites", "MIN_VISIBLE"]

SCENES = ("entrance", "heatmap", "shelf")
#: a face with less visible than this is "ignore" in the ground truth
MIN_VISIBLE = 0.6

# (source, crop (x0, y0, x1, y1), face box (x0, y0, x1, y1)) in source-image pixels
_FACES = {
    "astronaut": ("astronaut_face.png", (0, 0, 200, 260), (56.8, 55.8, 142.2, 184.8)),
    "collage_left": ("retinaface_test.jpeg", (6, 0, 120, 140), (37.6, 25.2, 87.2, 105.6)),
    "collage_top": ("retinaface_test.jpeg", (133, 6, 252, 124), (174.1, 24.1, 213.4, 84.7)),
    "collage_bottom": ("retinaface_test.jpeg", (133, 132, 252, 252), (169.1, 158.1, 210.7, 220.2)),
}


@dataclass
class Sprite:
    """An RGBA cut-out (float RGB 0..255, alpha 0..1) and its face box in its own pixels."""

    rgb: np.ndarray
    alpha: np.ndarray
    face: tuple[float, float, float, float]

    def scaled(self, face_w: float, mirror: bool = False) -> Sprite:
        """This sprite resized so its face is ``face_w`` pixels wide (optionally mirrored)."""
        from PIL import Image

        k = face_w / (self.face[2] - self.face[0])
        h, w = self.alpha.shape
        nw, nh = max(2, round(w * k)), max(2, round(h * k))
        rgb = np.asarray(Image.fromarray(self.rgb.astype(np.uint8)).resize((nw, nh),
                                                                           Image.BILINEAR))
        a = np.asarray(Image.fromarray((self.alpha * 255).astype(np.uint8)).resize(
            (nw, nh), Image.BILINEAR)) / 255.0
        kx, ky = nw / w, nh / h
        f = (self.face[0] * kx, self.face[1] * ky, self.face[2] * kx, self.face[3] * ky)
        if mirror:
            rgb, a = rgb[:, ::-1], a[:, ::-1]
            f = (nw - f[2], f[1], nw - f[0], f[3])
        return Sprite(rgb.astype(np.float64), a, f)


def _source(name: str) -> np.ndarray:
    """A source photo shipped in models/zoo/ (provenance in its README)."""
    from PIL import Image

    from models.zoo import ZOO

    with Image.open(ZOO / name) as im:
        return np.asarray(im.convert("RGB"))


def _ellipse_alpha(h: int, w: int, feather: float = 0.12) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    r = np.hypot((x + 0.5 - w / 2) / (w / 2), (y + 0.5 - h / 2) / (h / 2))
    return np.clip((1.0 - r) / feather, 0.0, 1.0)


_SPRITES: dict[str, Sprite] = {}


def sprites() -> dict[str, Sprite]:
    """The face sprites by name (cached): an elliptical cut-out around each face (module docs)."""
    if not _SPRITES:
        srcs: dict[str, np.ndarray] = {}
        for name, (src, (x0, y0, x1, y1), f) in _FACES.items():
            img = srcs.setdefault(src, _source(src))
            crop = img[y0:y1, x0:x1].astype(np.float64)
            _SPRITES[name] = Sprite(crop, _ellipse_alpha(*crop.shape[:2]),
                                    (f[0] - x0, f[1] - y0, f[2] - x0, f[3] - y0))
    return _SPRITES


@dataclass
class _Actor:
    pid: int
    sprite: str
    mirror: bool
    face_w: float
    path: list  # [(t, cx, cy)] keyframes of the face centre (linear in between)
    z: float = 0.0  # larger = nearer (pasted later)
    card: bool = False  # a rectangular package (shelf) instead of an elliptical cut-out

    def at(self, t: float) -> tuple[float, float] | None:
        p = self.path
        if t < p[0][0] or t > p[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in zip(p, p[1:], strict=False):
            if t0 <= t <= t1:
                u = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
                return x0 + u * (x1 - x0), y0 + u * (y1 - y0)
        return p[-1][1], p[-1][2]


@dataclass
class Scene:
    """A generated scene (module docstring); build with :func:`make_scene`."""

    name: str
    size: tuple[int, int]
    frames: int
    background: np.ndarray
    actors: list
    seed: int = 0
    noise: bool = True
    shot_noise: float = 1.0
    read_noise: float = 2.0
    line_x: float | None = None
    slots: list = field(default_factory=list)
    stock: np.ndarray | None = None  # (frames, slots) bool for shelf

    def _sprite(self, a: _Actor) -> Sprite:
        key = (a.sprite, a.mirror, round(a.face_w, 2), a.card)
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            sp = sprites()[a.sprite].scaled(a.face_w, a.mirror)
            if a.card:
                sp.alpha = np.ones_like(sp.alpha)
            cache[key] = sp
        return cache[key]

    def placements(self, t: int) -> list[tuple[_Actor, Sprite, int, int]]:
        """(actor, sprite, x, y of the sprite's top-left) for the actors present at ``t``, far
        to near."""
        out = []
        for a in sorted(self.actors, key=lambda a: a.z):
            if self.stock is not None and not self.stock[t, a.pid]:
                continue
            c = a.at(t)
            if c is None:
                continue
            s = self._sprite(a)
            fx, fy = (s.face[0] + s.face[2]) / 2, (s.face[1] + s.face[3]) / 2
            out.append((a, s, int(round(c[0] - fx)), int(round(c[1] - fy))))
        return out

    def frame(self, t: int) -> tuple[np.ndarray, list[dict]]:
        if not 0 <= t < self.frames:
            raise IndexError(f"frame {t} outside 0..{self.frames - 1}")
        W, H = self.size
        img = self.background.astype(np.float64).copy()
        cover = np.zeros((H, W), np.float64)  # alpha of everything pasted so far
        placed = self.placements(t)
        masks = []
        for _a, s, x, y in placed:
            h, w = s.alpha.shape
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
            if x1 <= x0 or y1 <= y0:
                masks.append(None)
                continue
            al = s.alpha[y0 - y:y1 - y, x0 - x:x1 - x]
            img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - al[..., None]) + \
                s.rgb[y0 - y:y1 - y, x0 - x:x1 - x] * al[..., None]
            m = np.zeros((H, W), np.float64)
            m[y0:y1, x0:x1] = al
            masks.append(m)
            cover = np.maximum(cover, m)
        truth = []
        for k, (a, s, x, y) in enumerate(placed):
            box = [s.face[0] + x, s.face[1] + y, s.face[2] + x, s.face[3] + y]
            area = (box[2] - box[0]) * (box[3] - box[1])
            bx0, by0 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
            bx1, by1 = min(int(math.ceil(box[2])), W), min(int(math.ceil(box[3])), H)
            vis = 0.0
            if bx1 > bx0 and by1 > by0 and area > 0:
                nearer = np.zeros((by1 - by0, bx1 - bx0))
                for m in masks[k + 1:]:
                    if m is not None:
                        nearer = np.maximum(nearer, m[by0:by1, bx0:bx1])
                vis = float((1 - (nearer > 0.5)).sum()) / area
            truth.append({"id": a.pid, "box": [float(v) for v in box], "visible": min(vis, 1.0),
                          "ignore": vis < MIN_VISIBLE})
        if self.noise:
            img = self._noisy(img, t)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8), truth

    def _noisy(self, img: np.ndarray, t: int) -> np.ndarray:
        from sim.sensor import Sensor

        s = Sensor(f"{self.size[0] // 4 * 4}x{self.size[1] // 2 * 2}",
                   shot_noise=self.shot_noise, read_noise=self.read_noise)
        rng = np.random.default_rng((self.seed, t))
        full = 1023 - s.black_level
        sig = img / 255.0 * full
        sig = sig + rng.normal(0.0, 1.0, sig.shape) * np.sqrt(np.maximum(sig, 0) * s.shot_noise)
        sig = sig + rng.normal(0.0, s.read_noise, sig.shape)
        return sig / full * 255.0

    def truth_tracks(self) -> dict[int, list[tuple[int, float, float]]]:
        """Per identity: (frame, face centre x, y) over the frames it is present."""
        out: dict[int, list] = {}
        for t in range(self.frames):
            for a, s, x, y in self.placements(t):
                cx = (s.face[0] + s.face[2]) / 2 + x
                cy = (s.face[1] + s.face[3]) / 2 + y
                out.setdefault(a.pid, []).append((t, cx, cy))
        return out

    def truth_counts(self) -> tuple[int, int]:
        """(in, out): identities whose face centre crosses ``line_x`` left to right / right to left
        (each crossing counts; a crossing is a change of side between two present frames)."""
        if self.line_x is None:
            return 0, 0
        n_in = n_out = 0
        for pts in self.truth_tracks().values():
            for (_, xa, _), (_, xb, _) in zip(pts, pts[1:], strict=False):
                if xa < self.line_x <= xb:
                    n_in += 1
                elif xb < self.line_x <= xa:
                    n_out += 1
        return n_in, n_out

    def truth_slots(self, t: int) -> list[bool]:
        return [bool(v) for v in self.stock[t]] if self.stock is not None else []


# ------------------------------------------------------------------------------ backgrounds
def _entrance_bg(W: int, H: int) -> np.ndarray:
    y, x = np.mgrid[:H, :W]
    img = np.empty((H, W, 3))
    img[:] = (196, 190, 176)  # wall
    img += 10 * np.sin(x / 23.0)[..., None] * 0.3
    floor = y > 0.78 * H
    img[floor] = (120, 104, 90)
    img[floor & ((x // 24 + y // 12) % 2 == 0)] = (132, 116, 100)
    dx0, dx1, dy0 = int(0.38 * W), int(0.62 * W), int(0.12 * H)
    img[dy0:int(0.78 * H), dx0 - 6:dx1 + 6] = (92, 70, 52)  # door frame
    img[dy0 + 6:int(0.78 * H), dx0:dx1] = (44, 52, 60)  # doorway (dark hall beyond)
    img[int(0.05 * H):int(0.09 * H), int(0.44 * W):int(0.56 * W)] = (40, 150, 60)  # exit sign
    return img


def _floor_bg(W: int, H: int) -> np.ndarray:
    y, x = np.mgrid[:H, :W]
    img = np.empty((H, W, 3))
    img[:] = (178, 172, 160)
    img[((x // 20) + (y // 20)) % 2 == 0] = (168, 162, 150)
    for k, x0 in enumerate((0.06, 0.38, 0.70)):
        xa, xb = int(x0 * W), int((x0 + 0.06) * W)
        img[int(0.08 * H):int(0.92 * H), xa:xb] = (70 + 30 * k, 90, 120)  # shelves (aisles)
        img[int(0.08 * H):int(0.92 * H):12, xa:xb] = (230, 200, 60)
    img[int(0.9 * H):, int(0.85 * W):] = (120, 60, 60)  # till
    return img


def _shelf_bg(W: int, H: int, rows: int, cols: int):
    img = np.empty((H, W, 3))
    img[:] = (220, 216, 206)
    slots = []
    m = int(0.04 * W)
    sh = (H - 2 * m) // rows
    sw = (W - 2 * m) // cols
    for r in range(rows):
        yb = m + (r + 1) * sh
        img[yb - 8:yb, m:W - m] = (110, 80, 50)  # shelf board
        for c in range(cols):
            slots.append((m + c * sw, m + r * sh, m + (c + 1) * sw, yb - 8))
    img[:, :m] = img[:, W - m:] = (90, 64, 40)
    return img, slots


# ------------------------------------------------------------------------------ scenes
def make_scene(name: str, frames: int, seed: int = 0, size=(320, 240), noise: bool = True) -> Scene:
    """A scene by name (module docstring). ``frames`` >= 1; ``size`` (W, H) of the frames."""
    if name not in SCENES:
        raise UserError(f"unknown scene {name!r}; choose one of {', '.join(SCENES)}")
    if frames < 1:
        raise UserError("a scene needs at least 1 frame")
    W, H = (int(v) for v in size)
    if W < 64 or H < 48:
        raise UserError(f"scene size {W}x{H} too small (at least 64x48)")
    rng = np.random.default_rng(seed)
    if name == "entrance":
        return _entrance(frames, seed, W, H, rng, noise)
    if name == "heatmap":
        return _heatmap(frames, seed, W, H, rng, noise)
    return _shelf(frames, seed, W, H, rng, noise)


_NAMES = ("astronaut", "collage_left", "collage_top", "collage_bottom")


def _entrance(frames, seed, W, H, rng, noise) -> Scene:
    # one walker every ~11 frames, alternating in/out, at two depths; each crosses the frame in
    # about 36 frames at the 320-wide reference size (speeds scale with W)
    actors = []
    k = 0
    t0 = 0.0
    while t0 < frames:
        direction = 1 if k % 2 == 0 else -1
        name = _NAMES[k % len(_NAMES)]
        mirror = (k // len(_NAMES)) % 2 == 1
        near = k % 3 != 2
        face_w = W * (0.19 if near else 0.16) * float(rng.uniform(0.95, 1.05))
        speed = W / 320 * float(rng.uniform(10.0, 13.0))
        margin = face_w * 1.3
        xs, xe = (-margin, W + margin) if direction > 0 else (W + margin, -margin)
        cy = H * (0.45 if near else 0.36) + float(rng.uniform(-0.03, 0.03)) * H
        dur = abs(xe - xs) / speed
        actors.append(_Actor(k, name, mirror, face_w,
                             [(t0, xs, cy), (t0 + dur, xe, cy + 0.04 * H)],
                             z=1.0 if near else 0.0))
        k += 1
        t0 += float(rng.uniform(11.0, 14.0))
    return Scene("entrance", (W, H), frames, _entrance_bg(W, H), actors, seed, noise,
                 line_x=W / 2)


def _heatmap(frames, seed, W, H, rng, noise) -> Scene:
    # waypoints along the aisles (between the shelves of _floor_bg); most shoppers use the left
    # aisle, fewer the right one
    aisles = [0.22 * W, 0.54 * W, 0.86 * W]
    weights = np.array([0.55, 0.3, 0.15])
    actors = []
    n = max(4, frames // 6)
    for k in range(n):
        t0 = float(rng.uniform(-20, max(1, frames - 10)))
        a = aisles[int(rng.choice(3, p=weights))]
        b = aisles[int(rng.choice(3, p=weights))]
        face_w = W * 0.16 * float(rng.uniform(0.95, 1.05))
        y_top, y_bot = 0.25 * H, 0.80 * H
        path = [(t0, a + rng.uniform(-8, 8), -0.2 * H), (t0 + 12, a, y_top),
                (t0 + 24, a, y_bot), (t0 + 34, b, 0.9 * H), (t0 + 46, b, y_top),
                (t0 + 58, b, -0.2 * H)]
        if k % 2:
            path = [(t, x, H - y) for t, x, y in path]
        actors.append(_Actor(k, _NAMES[k % 4], k % 8 >= 4, face_w,
                             [(t, float(x), float(y)) for t, x, y in path], z=float(k)))
    return Scene("heatmap", (W, H), frames, _floor_bg(W, H), actors, seed, noise)


def _shelf(frames, seed, W, H, rng, noise) -> Scene:
    rows, cols = 2, 3
    bg, slots = _shelf_bg(W, H, rows, cols)
    actors = []
    for k, (x0, y0, x1, y1) in enumerate(slots):
        face_w = 0.42 * (x1 - x0)
        cx, cy = (x0 + x1) / 2, y0 + 0.52 * (y1 - y0)
        actors.append(_Actor(k, _NAMES[k % 4], k >= 4, face_w,
                             [(0, cx, cy), (frames, cx, cy)], card=True))
    stock = np.ones((frames, len(slots)), bool)
    for k in range(len(slots)):  # each slot: maybe emptied at some time, maybe restocked later
        if rng.uniform() < 0.6:
            a = int(rng.integers(1, max(2, frames)))
            b = a + int(rng.integers(3, max(4, frames)))
            stock[a:b, k] = False
    return Scene("shelf", (W, H), frames, bg, actors, seed, noise, slots=slots, stock=stock)
