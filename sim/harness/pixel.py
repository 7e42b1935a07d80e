"""ctypes binding of the C++ Verilator harness of the pixel top (sim/harness/pixel_harness.cpp).

* :func:`build` generates the pixel top's Verilog, builds it with the harness into a shared library
  under ``build/harness/pixel-<hash>/`` (hash of Verilog, harness source and flags; unique library
  name per build; a file lock makes concurrent builds safe) and returns its path.
* :data:`ARGTYPES` declares every shim function's signature in one place.
* :class:`PixelSim` wraps one model instance: params, bursts in, beats / statuses / counters out.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from hw.config import Config
from hw.csi2 import COUNTER_NAMES
from sim.harness.build import build_harness
from sim.harness.ffi import Handle, load

__all__ = ["build", "PixelSim", "ARGTYPES"]

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "pixel_harness.cpp"

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_U32P = ctypes.POINTER(ctypes.c_uint32)
_I64P = ctypes.POINTER(ctypes.c_int64)
#: name -> (restype, argtypes) of every shim function.
ARGTYPES = {
    "ld_create": (_P, []),
    "ld_destroy": (None, [_P]),
    "ld_reset": (None, [_P, ctypes.c_int]),
    "ld_set_params": (None, [_P, _U32P, ctypes.c_int]),
    "ld_push_bursts": (ctypes.c_int, [_P, ctypes.POINTER(ctypes.c_uint8),
                                      ctypes.POINTER(ctypes.c_int32), ctypes.c_int, ctypes.c_int]),
    "ld_run": (_I64, [_P, _I64, _I64, ctypes.c_double, ctypes.c_uint32, _I64]),
    "ld_pull_beats": (_I64, [_P, _U32P, _I64]),
    "ld_pull_status": (_I64, [_P, _U32P, _I64]),
    "ld_pull_case_ends": (_I64, [_P, _I64P, _I64]),
    "ld_pending": (_I64, [_P]),
    "ld_counters": (None, [_P, _U32P, ctypes.c_int]),
    "ld_busy_cycles": (_I64, [_P]),
}



def build(config: Config) -> Path:
    """Shared library of the pixel top for ``config`` (cached by hash, sim.harness.build)."""
    from hw.pixel_top import PixelTop
    from sim.cocotb_run import verilog_of

    return build_harness("pixel", "pixel_top", lambda: verilog_of(PixelTop(config), "pixel_top"),
                         SOURCE, params=config.digest(),
                         defines={"LD_NBYTES": config.csi2_lanes_bytes})


class PixelSim(Handle):
    """One pixel-top model instance in the C++ harness."""

    def __init__(self, config: Config):
        self.config = config
        self._open(load(build(config), ARGTYPES), "ld")
        self.lib.ld_reset(self.h, 3)

    def set_params(self, packed: int, width: int) -> None:
        n = (width + 31) // 32
        words = (ctypes.c_uint32 * n)(*[(packed >> (32 * i)) & 0xFFFFFFFF for i in range(n)])
        self.lib.ld_set_params(self.h, words, n)

    def push_case(self, bursts: list[bytes]) -> None:
        data = np.frombuffer(b"".join(bursts), dtype=np.uint8)
        lens = np.array([len(b) for b in bursts], dtype=np.int32)
        self.lib.ld_push_bursts(self.h, data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
                                lens.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), len(bursts), 1)

    def run(self, max_cycles: int, quiet: int = 120, stall: float = 0.0, seed: int = 0,
            hang_cycles: int = 20000) -> int:
        return int(self.lib.ld_run(self.h, max_cycles, quiet, stall, seed, hang_cycles))

    def _pull(self, fn, dtype, ctype) -> np.ndarray:
        chunks = []
        while True:
            buf = np.empty(1 << 16, dtype=dtype)
            n = fn(self.h, buf.ctypes.data_as(ctypes.POINTER(ctype)), buf.size)
            chunks.append(buf[:n])
            if n < buf.size:
                return np.concatenate(chunks)

    def beats(self) -> np.ndarray:
        return self._pull(self.lib.ld_pull_beats, np.uint32, ctypes.c_uint32)

    def statuses(self) -> np.ndarray:
        return self._pull(self.lib.ld_pull_status, np.uint32, ctypes.c_uint32)

    def case_ends(self) -> np.ndarray:
        return self._pull(self.lib.ld_pull_case_ends, np.int64, ctypes.c_int64)

    def counters(self) -> dict[str, int]:
        out = (ctypes.c_uint32 * len(COUNTER_NAMES))()
        self.lib.ld_counters(self.h, out, len(COUNTER_NAMES))
        return dict(zip(COUNTER_NAMES, (int(v) for v in out), strict=True))

    def busy_cycles(self) -> int:
        return int(self.lib.ld_busy_cycles(self.h))
