"""Sensor model: a scene image -> Bayer RAW10 frame -> CSI-2 packet-layer bursts (models/csi2.py).

Contract:

* modes: ``full`` (4056x3040), ``binned`` (2028x1520) or ``WxH`` with W a multiple of 4 (whole RAW10
  groups), H even, both no larger than full; anything else raises UserError;
* :meth:`Sensor.capture`: image (H, W, 3) RGB or (H, W) gray, uint8 (or float in [0, 1]), any size
  -> resized to the mode (PIL bilinear) -> linear signal ``v / 255 * (1023 - black) * gain`` sampled
  at each site by the Bayer pattern (R, G or B of the scene; gray scenes use the same value) ->
  optional noise (shot: Gaussian with variance ``signal * shot_noise``, read: Gaussian of std
  ``read_noise`` DN, from a ``numpy.random.default_rng(seed)``) -> ``+ black`` -> rounded, clipped
  to 0..1023 (uint16);
* :meth:`Sensor.packets`: the bursts of one frame (FS with the frame number in WC, per line LS /
  RAW10 or RAW8 long packet / LE, FE) with correct ECC and CRC-16.
"""

from __future__ import annotations

import re

import numpy as np

from hw.csi2 import DataType
from hw.errors import UserError
from hw.isp import PATTERNS, pattern_positions
from models.csi2 import frame_packets

__all__ = ["SENSOR_MODES", "parse_mode", "Sensor", "load_image", "PHOTOS", "frame_bursts"]

SENSOR_MODES = {"full": (4056, 3040), "binned": (2028, 1520)}
#: scikit-image photo names accepted wherever an image path is.
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry")


def parse_mode(mode: str) -> tuple[int, int]:
    """Sensor mode name or ``WxH`` -> (W, H)."""
    if mode in SENSOR_MODES:
        return SENSOR_MODES[mode]
    mt = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(mode))
    fw, fh = SENSOR_MODES["full"]
    if not mt:
        raise UserError(f"bad sensor mode {mode!r}: use full, binned or WxH (e.g. 640x480)")
    w, h = int(mt[1]), int(mt[2])
    if w < 4 or h < 2 or w % 4 or h % 2 or w > fw or h > fh:
        raise UserError(f"bad sensor mode {mode!r}: W must be a multiple of 4, H even, at most "
                        f"{fw}x{fh}")
    return w, h


def load_image(spec) -> np.ndarray:
    """An image array from a file path, a scikit-image photo name, or an array (passed through)."""
    if isinstance(spec, np.ndarray):
        return spec
    name = str(spec)
    if name in PHOTOS:
        try:
            import skimage.data
        except ImportError:
            raise UserError(f"photo {name!r} needs scikit-image (pip install scikit-image)") \
                from None
        return np.asarray(getattr(skimage.data, name)())
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError
    path = Path(name)
    if not path.is_file():
        raise UserError(f"image {name!r} not found: give a file path or one of "
                        f"{', '.join(PHOTOS)}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image {name!r}: {e}") from None


class Sensor:
    """A Bayer RAW10 sensor in one mode (module docstring)."""

    def __init__(self, mode: str = "640x480", *, pattern: str = "RGGB", black_level: int = 64,
                 gain: float = 1.0, shot_noise: float = 0.0, read_noise: float = 0.0,
                 seed: int = 0, dt: int = DataType.RAW10.value):
        self.width, self.height = parse_mode(mode)
        if pattern not in PATTERNS:
            raise UserError(f"unknown Bayer pattern {pattern!r}; choose one of "
                            f"{', '.join(PATTERNS)}")
        if not 0 <= black_level < 1023:
            raise UserError(f"black level {black_level} out of range 0..1022")
        if gain <= 0 or shot_noise < 0 or read_noise < 0:
            raise UserError("gain must be > 0 and noise levels >= 0")
        self.pattern = pattern
        self.black_level = black_level
        self.gain = float(gain)
        self.shot_noise = float(shot_noise)
        self.read_noise = float(read_noise)
        self.dt = dt
        self.rng = np.random.default_rng(seed)

    @property
    def mode(self) -> str:
        return f"{self.width}x{self.height}"

    def scene(self, image) -> np.ndarray:
        """The image resized to the sensor (H, W, 3) as float in [0, 1]."""
        from PIL import Image
        img = load_image(image)
        if img.dtype != np.uint8:
            img = np.clip(np.asarray(img, dtype=np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] != 3:
            raise UserError(f"image of shape {img.shape} is neither RGB nor gray")
        im = Image.fromarray(img).resize((self.width, self.height), Image.BILINEAR)
        return np.asarray(im, dtype=np.float64) / 255.0

    def capture(self, image) -> np.ndarray:
        """One RAW10 frame (H, W) uint16 of ``image`` (module docstring)."""
        rgb = self.scene(image)
        sig = np.empty((self.height, self.width), dtype=np.float64)
        rgb_of = dict(zip(("R", "G1", "G2", "B"), (0, 1, 1, 2), strict=True))
        for name, posn in zip(("R", "G1", "G2", "B"), pattern_positions(self.pattern),
                              strict=True):
            sl = (slice(posn >> 1, None, 2), slice(posn & 1, None, 2))
            sig[sl] = rgb[sl + (rgb_of[name],)]
        sig *= (1023 - self.black_level) * self.gain
        if self.shot_noise:
            sig += self.rng.normal(0.0, 1.0, sig.shape) * np.sqrt(np.maximum(sig, 0)
                                                                  * self.shot_noise)
        if self.read_noise:
            sig += self.rng.normal(0.0, self.read_noise, sig.shape)
        return np.clip(np.rint(sig) + self.black_level, 0, 1023).astype(np.uint16)

    def packets(self, raw: np.ndarray, frame_number: int = 0) -> list[bytes]:
        """CSI-2 bursts of one frame of ``raw``."""
        raw = np.asarray(raw)
        if raw.shape != (self.height, self.width):
            raise UserError(f"RAW frame {raw.shape} does not match the sensor mode {self.mode}")
        return frame_packets(raw, frame_number, dt=self.dt)

    def stream(self, image, frame_number: int = 0) -> tuple[np.ndarray, list[bytes]]:
        """(RAW frame, its bursts)."""
        raw = self.capture(image)
        return raw, self.packets(raw, frame_number)


def frame_bursts(image, mode: tuple[int, int] | str, frame_number: int = 0, seed: int = 0,
                 **sensor_kw) -> list[bytes]:
    """One frame of ``image`` as CSI-2 bursts (default sensor: RGGB, black level 64, noiseless).

    ``mode`` is a mode string or a (W, H) tuple. Used by the runtime (sw/runtime.py)."""
    if not isinstance(mode, str):
        mode = f"{mode[0]}x{mode[1]}"
    return Sensor(mode, seed=seed, **sensor_kw).stream(image, frame_number)[1]
