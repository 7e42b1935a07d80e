"""What every ctypes binding of a C++ harness shares (sim/harness/npu.py, pixel.py, soc.py).

* :func:`load`: a built harness library, loaded once per process, with its argtypes table (each
  binding declares every shim function's signature in one ``ARGTYPES`` dict).
* :class:`Handle`: the lifetime of one opaque model instance (``<prefix>_create`` /
  ``<prefix>_destroy``): close, context manager, and close on garbage collection.
* :func:`write_words_rmw`: bytes at any byte address through a 32-bit word port
  (read-modify-write of the partial words at both ends).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["load", "Handle", "write_words_rmw", "read_words_span"]

_LIBS: dict[str, ctypes.CDLL] = {}


def load(path: Path, argtypes: dict) -> ctypes.CDLL:
    """The library at ``path`` with ``argtypes`` (name -> (restype, [argtypes])) applied."""
    key = str(path)
    if key not in _LIBS:
        lib = ctypes.CDLL(key)
        for name, (res, args) in argtypes.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _LIBS[key] = lib
    return _LIBS[key]


class Handle:
    """One model instance: subclasses call :meth:`_open` with their library and shim prefix."""

    lib: ctypes.CDLL
    h = None
    _prefix = ""

    def _open(self, lib: ctypes.CDLL, prefix: str) -> None:
        self.lib, self._prefix = lib, prefix
        self.h = getattr(lib, f"{prefix}_create")()

    def close(self) -> None:
        if self.h:
            getattr(self.lib, f"{self._prefix}_destroy")(self.h)
            self.h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_words_rmw(addr: int, data: np.ndarray, read_words: Callable[[int, int], np.ndarray],
                    write_words: Callable[[int, np.ndarray], None]) -> None:
    """Write the bytes ``data`` (uint8) at byte address ``addr`` through a 32-bit word port."""
    n = data.size
    if n == 0:
        return
    a0, a1 = addr & ~3, (addr + n + 3) & ~3
    buf = np.zeros(a1 - a0, np.uint8)
    if addr % 4:
        buf[:4] = read_words(a0, 1).view(np.uint8)
    if (addr + n) % 4:
        buf[-4:] = read_words(a1 - 4, 1).view(np.uint8)
    buf[addr - a0: addr - a0 + n] = data
    write_words(a0, buf.view("<u4").copy())


def read_words_span(addr: int, n: int, read_words: Callable[[int, int], np.ndarray]
                    ) -> np.ndarray:
    """``n`` bytes from byte address ``addr`` through a 32-bit word port."""
    if n == 0:
        return np.zeros(0, np.uint8)
    a0, a1 = addr & ~3, (addr + n + 3) & ~3
    return read_words(a0, (a1 - a0) // 4).view(np.uint8)[addr - a0: addr - a0 + n].copy()
