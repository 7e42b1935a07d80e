"""The one image loader of the command line: a file -> uint8 gray (H, W) or RGB (H, W, 3) array,
or one clean :class:`UserError` line.

Contract, per pixel type (nothing is decoded "somehow"):

- 8-bit gray ``L`` and ``RGB``: as stored. Bilevel ``1``, palette ``P``/``PA``, ``CMYK`` and
  ``YCbCr``: converted to RGB (or gray for bilevel) by Pillow's exact conversions.
- 16-bit gray (``I;16``, ``I;16B``, ``I;16L``, and ``I`` decoded from a 16-bit PNG): scaled to 8
  bits by ``(v * 255 + 32767) // 65535`` (full scale maps to full scale), never clipped.
- Alpha (``RGBA``, ``LA``, ``PA``): dropped when every pixel is opaque, refused otherwise (what is
  behind a transparent pixel is not in the file).
- Float (``F``) and 32-bit integer (``I``, not from a 16-bit file) images are refused: their
  scale (0..1, 0..255, 0..65535, ...) is not in the file.
- Every file is verified first (``Image.verify``: PNG chunk CRCs, structure) and then decoded in
  full; a truncated or corrupt file is refused, never decoded into a different picture.
- Size: at most :data:`MAX_PIXELS` pixels, checked from the header before decoding (a
  decompression bomb is refused without being expanded), and at most :data:`MAX_FILE_BYTES` bytes.
"""

from __future__ import annotations

import io
import os
import struct
import warnings

import numpy as np

from hw.errors import UserError
from sw.fileio import read_input

__all__ = ["load_image_file", "MAX_PIXELS", "MAX_FILE_BYTES"]

#: Largest image decoded: 64 Mpixel (five times the 12.3 MP sensor's full mode).
MAX_PIXELS = 64 * 1024 * 1024
#: Largest image file read.
MAX_FILE_BYTES = 512 * 1024 * 1024

_16BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def load_image_file(path: str | os.PathLike, hint: str = "") -> np.ndarray:
    """Decode one image file (module docstring); UserError with one line for anything refused
    (``hint``: what to do, added to the not-found message)."""
    from PIL import Image, UnidentifiedImageError

    data = read_input(path, "image", limit=MAX_FILE_BYTES, hint=hint)
    label = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                _check_size(im, label)
                im.verify()
            with Image.open(io.BytesIO(data)) as im:
                _check_size(im, label)
                fmt = im.format
                im.load()
                return _to_uint8(im, label, fmt)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"image {label} is too large to decode (more than {MAX_PIXELS:,} "
                        "pixels); scale it down") from None
    except UnidentifiedImageError:
        raise UserError(f"image {label} is corrupt or not an image file (Pillow reads PNG, "
                        "JPEG, BMP, TIFF, ...)") from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError,
            struct.error, MemoryError, ZeroDivisionError) as e:
        what = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"image {label} is truncated or corrupt ({what}); re-export it") from None


def _check_size(im, label: str) -> None:
    w, h = im.size
    if w <= 0 or h <= 0:
        raise UserError(f"image {label} has no pixels ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise UserError(f"image {label} is {w}x{h} = {w * h:,} pixels, more than the "
                        f"{MAX_PIXELS:,} logicdie decodes; scale it down")


def _to_uint8(im, label: str, fmt: str | None) -> np.ndarray:
    mode = im.mode
    if mode in ("L", "RGB"):
        return np.array(im, dtype=np.uint8)
    if mode == "1":
        return np.array(im.convert("L"), dtype=np.uint8)
    if mode in _16BIT or (mode == "I" and fmt == "PNG"):
        a = np.array(im).astype(np.int64)
        if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
            raise UserError(f"image {label}: 16-bit pixel values outside 0..65535")
        return ((a * 255 + 32767) // 65535).astype(np.uint8)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA") if mode not in ("LA", "La") else im.convert("LA")
        a = np.array(rgba)
        if a[..., -1].min(initial=255) < 255:
            raise UserError(f"image {label} has transparent pixels; flatten it onto a background "
                            "(e.g. save as RGB) first")
        return np.ascontiguousarray(a[..., :-1] if mode not in ("LA", "La") else a[..., 0])
    if mode in ("P", "CMYK", "YCbCr"):
        return np.array(im.convert("RGB"), dtype=np.uint8)
    if mode in ("F", "I"):
        kind = "floating-point" if mode == "F" else "32-bit integer"
        raise UserError(f"image {label} has {kind} pixels, whose range (0..1, 0..255, ...) is "
                        "ambiguous; convert it to 8- or 16-bit first")
    raise UserError(f"image {label} has pixel mode {mode}, which logicdie does not decode; "
                    "convert it to 8-bit gray or RGB")
