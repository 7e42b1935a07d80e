"""Golden model of the ISP (hw/isp.py), stage by stage, exactly as the RTL computes it.

Stages (all integer; docs/pixel_path.md has the same text):

1. black level per Bayer tile position k = 2*(y&1) + (x&1): ``v = max(0, raw - black[k])``;
2. gain per tile position, unsigned Q8.8: ``v = min(1023, (v * gain[k]) >> 8)`` (256 = 1.0);
3. 2x2 binning by pattern: R, G1, G2, B of each tile -> ``R8 = R >> 2``, ``G8 = (G1 + G2) >> 3``,
   ``B8 = B >> 2`` (8-bit), or luma ``Y = (77*R8 + 150*G8 + 29*B8 + 128) >> 8`` for 1 channel;
4. ROI crop in binned pixels (the user gives it in sensor pixels, even-aligned: X/2, Y/2, W/2, H/2);
5. resize, any ratio, per axis in two steps: (a) box filter down to Lm = min(Li, Lo): input
   index i of an axis of length Li goes to output ``floor(i * Lm / Li)``; each value is
   ``min(255, (S * R(c) + 2**23) >> 24)`` with S the box sum, c = cx * cy the box size (<= 4096)
   and ``R(c) = (2**24 + c // 2) // c``; (b) nearest-neighbour up to Lo (>= Lm): output o takes
   ``floor(o * Lm / Lo)`` (identity when Lo = Lm);
6. normalization per channel: ``q = clamp(((u * mul + ((1 << shift) >> 1)) >> shift) + offset,
   -128, 127)``; the default ``mul=1, shift=0, offset=-128`` maps u to u - 128.

:class:`IspParams` holds the runtime parameters (the RTL's ``params`` port) and validates user
input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw.errors import UserError
from hw.isp import MAX_BOX, PATTERNS, RECIP_BITS, pattern_positions

__all__ = ["IspParams", "recip", "black_gain", "bin2x2", "resize_boxes", "box_resize",
           "nearest_upscale", "resize", "normalize", "isp_frame", "isp_stages"]


def recip(c: int) -> int:
    """The fixed-point reciprocal of a box size: round(2**24 / c)."""
    return ((1 << RECIP_BITS) + c // 2) // c


@dataclass(frozen=True)
class IspParams:
    """Runtime parameters of one ISP configuration (ROI in sensor pixels; the rest binned)."""
    sensor_w: int
    sensor_h: int
    roi: tuple[int, int, int, int]          # X, Y, W, H in sensor pixels (even)
    size: tuple[int, int]                   # output tensor W, H
    channels: int = 3
    pattern: str = "RGGB"
    black: tuple[int, int, int, int] = (64, 64, 64, 64)
    gain: tuple[int, int, int, int] = (256, 256, 256, 256)
    norm_mul: tuple[int, int, int] = (1, 1, 1)
    norm_shift: tuple[int, int, int] = (0, 0, 0)
    norm_off: tuple[int, int, int] = (-128, -128, -128)
    max_line_pixels: int = field(default=4096, compare=False)

    @classmethod
    def make(cls, sensor_w: int, sensor_h: int, roi=None, size=None, **kw) -> IspParams:
        """Defaults: ROI = whole frame, size = binned ROI size. Validates (UserError if bad)."""
        roi = tuple(roi) if roi is not None else (0, 0, sensor_w, sensor_h)
        size = tuple(size) if size is not None else (roi[2] // 2, roi[3] // 2)
        p = cls(sensor_w, sensor_h, roi, size, **kw)
        p.validate()
        return p

    def validate(self) -> None:
        x, y, w, h = self.roi
        if any(int(v) != v for v in self.roi) or min(self.roi) < 0:
            raise UserError(f"bad ROI {self.roi}: X,Y,W,H must be non-negative integers")
        if any(v % 2 for v in self.roi):
            raise UserError(f"bad ROI {x},{y},{w},{h}: X, Y, W and H must be even (whole 2x2 Bayer "
                            "tiles); round them to even values")
        if w < 2 or h < 2 or x + w > self.sensor_w or y + h > self.sensor_h:
            raise UserError(f"bad ROI {x},{y},{w},{h}: must be at least 2x2 and inside the "
                            f"{self.sensor_w}x{self.sensor_h} sensor frame")
        if self.sensor_w > self.max_line_pixels:
            raise UserError(f"sensor lines of {self.sensor_w} pixels exceed the ISP line buffer "
                            f"({self.max_line_pixels}); use a smaller sensor mode")
        ow, oh = self.size
        if any(int(v) != v for v in self.size) or ow < 1 or oh < 1:
            raise UserError(f"bad tensor size {ow},{oh}: width and height must be positive "
                            "integers")
        wmax, hmax = self.max_line_pixels // 4, self.max_line_pixels
        if ow > wmax or oh > hmax:
            raise UserError(f"bad tensor size {ow},{oh}: at most {wmax} wide (the ISP's row "
                            f"memories) and {hmax} high; use a smaller tensor")
        mw, mh = self.mid_size
        cmax = -(-(w // 2) // mw) * -(-(h // 2) // mh)
        if cmax > MAX_BOX:
            raise UserError(f"resize ratio too large: a box of {cmax} binned pixels exceeds "
                            f"{MAX_BOX}; use a larger tensor size or a smaller ROI")
        if self.channels not in (1, 3):
            raise UserError(f"channels must be 1 or 3, got {self.channels}")
        if self.pattern not in PATTERNS:
            raise UserError(f"unknown Bayer pattern {self.pattern!r}; choose one of "
                            f"{', '.join(PATTERNS)}")
        for g in self.gain:
            if not 0 <= g < 1 << 16:
                raise UserError(f"gain {g} out of range (unsigned Q8.8, 0..65535)")
        for b in self.black:
            if not 0 <= b < 1024:
                raise UserError(f"black level {b} out of range 0..1023")
        for m, s, o in zip(self.norm_mul, self.norm_shift, self.norm_off, strict=True):
            if not (0 <= m < 1 << 16 and 0 <= s < 24 and -(1 << 15) <= o < 1 << 15):
                raise UserError("normalization out of range: mul 0..65535, shift 0..23, "
                                "offset -32768..32767")

    @property
    def binned_roi(self) -> tuple[int, int, int, int]:
        return tuple(v // 2 for v in self.roi)

    @property
    def mid_size(self) -> tuple[int, int]:
        """Size after the box filter (step 5a): min(binned ROI, tensor) per axis."""
        return (min(self.roi[2] // 2, self.size[0]), min(self.roi[3] // 2, self.size[1]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Output tensor shape (H, W, C) (NHWC without N)."""
        return (self.size[1], self.size[0], self.channels)

    def hw_fields(self) -> dict:
        """The values of the RTL ``params`` port (hw.isp.params_layout)."""
        rx, ry, rw, rh = self.binned_roi
        ow, oh = self.size
        mw, mh = self.mid_size
        kx, ky = rw // mw, rh // mh
        return {
            "pattern": PATTERNS.index(self.pattern), "channels3": int(self.channels == 3),
            "black": list(self.black), "gain": list(self.gain),
            "roi_x": rx, "roi_y": ry, "roi_w": rw, "roi_h": rh, "mid_w": mw, "mid_h": mh,
            "out_w": ow, "out_h": oh,
            "kx": kx, "ky": ky,
            "recip": [recip((kx + (i & 1)) * (ky + (i >> 1))) for i in range(4)],
            "norm_mul": list(self.norm_mul), "norm_shift": list(self.norm_shift),
            "norm_off": list(self.norm_off),
        }


def black_gain(raw: np.ndarray, p: IspParams) -> np.ndarray:
    """Stages 1-2 on a (H, W) RAW10 frame (H, W even)."""
    v = np.asarray(raw, dtype=np.int64)
    out = np.empty_like(v)
    for k in range(4):
        sl = (slice(k >> 1, None, 2), slice(k & 1, None, 2))
        t = np.maximum(0, v[sl] - p.black[k])
        out[sl] = np.minimum(1023, (t * p.gain[k]) >> 8)
    return out


def bin2x2(v: np.ndarray, p: IspParams) -> np.ndarray:
    """Stage 3: (H, W) -> (H/2, W/2, C) uint8-valued int64 (C = 3 RGB or 1 luma)."""
    tiles = [v[k >> 1::2, k & 1::2] for k in range(4)]
    r, g1, g2, b = (tiles[k] for k in pattern_positions(p.pattern))
    r8, g8, b8 = r >> 2, (g1 + g2) >> 3, b >> 2
    if p.channels == 1:
        return ((77 * r8 + 150 * g8 + 29 * b8 + 128) >> 8)[..., None]
    return np.stack([r8, g8, b8], axis=-1)


def resize_boxes(li: int, lo: int) -> np.ndarray:
    """Start index of each output box along an axis (input i -> output floor(i*lo/li))."""
    idx = (np.arange(li) * lo) // li
    return np.flatnonzero(np.diff(np.concatenate([[-1], idx])))


def box_resize(x: np.ndarray, ow: int, oh: int) -> np.ndarray:
    """Stage 5 on a (Hr, Wr, C) crop -> (oh, ow, C) uint8-valued int64."""
    hr, wr = x.shape[:2]
    sx, sy = resize_boxes(wr, ow), resize_boxes(hr, oh)
    cx = np.diff(np.concatenate([sx, [wr]]))
    cy = np.diff(np.concatenate([sy, [hr]]))
    s = np.add.reduceat(np.add.reduceat(x, sy, axis=0), sx, axis=1)
    c = cy[:, None] * cx[None, :]
    r = ((1 << RECIP_BITS) + c // 2) // c
    return np.minimum(255, (s * r[..., None] + (1 << (RECIP_BITS - 1))) >> RECIP_BITS)


def nearest_upscale(x: np.ndarray, ow: int, oh: int) -> np.ndarray:
    """Stage 5b on a (Hm, Wm, C) box-filtered image -> (oh, ow, C), oh >= Hm, ow >= Wm: output o
    of an axis takes input ``floor(o * Lm / Lo)``."""
    hm, wm = x.shape[:2]
    iy = (np.arange(oh) * hm) // oh
    ix = (np.arange(ow) * wm) // ow
    return x[iy][:, ix]


def resize(x: np.ndarray, ow: int, oh: int) -> np.ndarray:
    """Stage 5, any ratio: box filter to min(L, Lo) per axis, then nearest-neighbour to Lo."""
    hr, wr = x.shape[:2]
    return nearest_upscale(box_resize(x, min(ow, wr), min(oh, hr)), ow, oh)


def normalize(u: np.ndarray, p: IspParams) -> np.ndarray:
    """Stage 6: per-channel multiply/shift/offset with clamping -> int8."""
    out = np.empty(u.shape, dtype=np.int64)
    for ch in range(u.shape[-1]):
        m, s, o = p.norm_mul[ch], p.norm_shift[ch], p.norm_off[ch]
        out[..., ch] = ((u[..., ch] * m + ((1 << s) >> 1)) >> s) + o
    return np.clip(out, -128, 127).astype(np.int8)


def isp_stages(raw: np.ndarray, p: IspParams) -> dict[str, np.ndarray]:
    """Every stage's output (for plots and stage-wise debugging)."""
    raw = np.asarray(raw)
    if raw.shape != (p.sensor_h, p.sensor_w):
        raise UserError(f"RAW frame is {raw.shape[1]}x{raw.shape[0]}, parameters expect "
                        f"{p.sensor_w}x{p.sensor_h}")
    bg = black_gain(raw, p)
    binned = bin2x2(bg, p)
    rx, ry, rw, rh = p.binned_roi
    roi = binned[ry:ry + rh, rx:rx + rw]
    resized = resize(roi, *p.size)
    return {"raw": raw, "black_gain": bg, "binned": binned, "roi": roi, "resized": resized,
            "tensor": normalize(resized, p)}


def isp_frame(raw: np.ndarray, p: IspParams) -> np.ndarray:
    """The int8 input tensor (H, W, C) of one RAW10 frame."""
    return isp_stages(raw, p)["tensor"]
