"""ctypes binding of the C++ Verilator harness of the logic die (sim/harness/soc_harness.cpp).

* :func:`build` generates ``Soc(config)``'s Verilog and builds it with the harness (cached by hash
  under ``build/harness/soc-<hash>/``, see sim/harness/build.py).
* :data:`ARGTYPES` declares every shim function's signature in one place.
* :class:`SocSim`: host port (SRAM bytes, NPU CSRs of hw.regmap.CSRS, SoC CSRs of
  hw.regmap.soc_csrs by name), CSI-2 input bursts in, output bursts out, and the C++ run loop.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np

from hw import regmap
from hw.config import Config, preset
from hw.errors import UserError
from sim.harness.build import build_harness
from sim.harness.ffi import Handle, load, read_words_span, write_words_rmw

__all__ = ["build", "SocSim", "ARGTYPES", "RUN_RESULTS"]

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "soc_harness.cpp"
#: sc_run's return codes.
RUN_RESULTS = ("target", "irq", "quiet", "max_cycles")

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_U8P = ctypes.POINTER(ctypes.c_uint8)
_U32P = ctypes.POINTER(ctypes.c_uint32)
_I32P = ctypes.POINTER(ctypes.c_int32)
#: name -> (restype, argtypes) of every shim function.
ARGTYPES = {
    "sc_create": (_P, []),
    "sc_destroy": (None, [_P]),
    "sc_waves": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "sc_reset": (None, [_P, ctypes.c_int]),
    "sc_host_write": (None, [_P, ctypes.c_uint32, _U32P, _I64]),
    "sc_host_read": (None, [_P, ctypes.c_uint32, _U32P, _I64]),
    "sc_push_bursts": (_I64, [_P, _U8P, _I32P, _I64]),
    "sc_pending_in": (_I64, [_P]),
    "sc_run": (ctypes.c_int, [_P, _I64, _I64, _I64, ctypes.c_double, ctypes.c_uint32]),
    "sc_out_count": (_I64, [_P]),
    "sc_out_bytes": (_I64, [_P, _U8P, _I64]),
    "sc_out_lens": (_I64, [_P, _I32P, _I64]),
    "sc_fe_count": (_I64, [_P]),
    "sc_cycle": (_I64, [_P]),
    "sc_loop_ns": (_I64, [_P]),
}

_BUILT: dict[tuple, Path] = {}


def build(config: Config, waves: bool = False, units: str = "auto", progress: bool = False
          ) -> Path:
    """Shared library of the SoC top for ``config`` (cached by hash; memoized per process).
    ``progress``: say on stderr that a build may take minutes (only when one is needed)."""
    key = (config.digest(), bool(waves), units)
    if key not in _BUILT or not _BUILT[key].exists():
        _BUILT[key] = _build(config, waves, units, progress)
    return _BUILT[key]


def _build(config: Config, waves: bool, units: str, progress: bool) -> Path:
    import threading
    import time

    from hw.soc import Soc
    from sim.cocotb_run import verilog_of

    done = threading.Event()

    def tick(t0: float) -> None:     # a line every 15 s while Verilator and g++ work
        while not done.wait(15.0):
            print(f"  ... still building the '{config.name}' die ({time.monotonic() - t0:.0f} s)",
                  file=sys.stderr, flush=True)

    def verilog() -> str:
        if progress:
            print(f"building the '{config.name}' logic die in Verilator (first run of this "
                  "preset and hw/ revision: minutes; cached under build/harness/) ...",
                  file=sys.stderr, flush=True)
            threading.Thread(target=tick, args=(time.monotonic(),), daemon=True).start()
        return verilog_of(Soc(config, units=units), "soc")

    defines = {"SC_NBYTES": config.csi2_lanes_bytes}
    if waves:
        defines["SC_WAVES"] = 1
    try:
        return build_harness("soc", "soc", verilog, SOURCE,
                             params=f"{config.digest()} units={units}", defines=defines,
                             waves=waves)
    finally:
        done.set()


class SocSim(Handle):
    """One logic-die model instance in the C++ harness."""

    def __init__(self, config: Config | str, waves: str | Path | None = None,
                 units: str = "auto", progress: bool = False):
        self.config = cfg = preset(config)
        self._open(load(build(cfg, waves=waves is not None, units=units, progress=progress),
                        ARGTYPES), "sc")
        if waves is not None:
            self.lib.sc_waves(self.h, str(waves).encode())
        self.reset()

    def reset(self, cycles: int = 4) -> None:
        self.lib.sc_reset(self.h, cycles)

    @property
    def cycle(self) -> int:
        return int(self.lib.sc_cycle(self.h))

    @property
    def loop_seconds(self) -> float:
        """Seconds spent inside the C++ run loop since create."""
        return int(self.lib.sc_loop_ns(self.h)) * 1e-9

    @property
    def fe_count(self) -> int:
        return int(self.lib.sc_fe_count(self.h))

    # ------------------------------------------------------------------ host port
    def write_words(self, addr: int, words) -> None:
        w = np.ascontiguousarray(np.asarray(words, "<u4"))
        if w.size:
            self.lib.sc_host_write(self.h, addr, w.ctypes.data_as(_U32P), w.size)

    def read_words(self, addr: int, n: int) -> np.ndarray:
        out = np.zeros(n, "<u4")
        if n:
            self.lib.sc_host_read(self.h, addr, out.ctypes.data_as(_U32P), n)
        return out

    def write_mem(self, addr: int, data) -> None:
        """Bytes into the NPU's SRAM through the host port."""
        b = np.frombuffer(bytes(data), np.uint8)
        if addr < 0 or addr + b.size > self.config.sram_bytes:
            raise UserError(f"SRAM write [{addr}, {addr + b.size}) outside the "
                            f"{self.config.sram_bytes}-byte SRAM")
        write_words_rmw(addr, b, self.read_words, self.write_words)

    def read_mem(self, addr: int, n: int) -> np.ndarray:
        return read_words_span(addr, n, self.read_words)

    def csr_read(self, name: str) -> int:
        """A SoC CSR (hw.regmap.soc_csrs) or an NPU CSR (hw.regmap.CSRS) by name."""
        return int(self.read_words(_csr_address(name), 1)[0])

    def csr_write(self, name: str, value: int) -> None:
        self.write_words(_csr_address(name), [value & 0xFFFFFFFF])

    # ------------------------------------------------------------------ streams
    def push_bursts(self, bursts) -> None:
        bursts = [bytes(b) for b in bursts]
        if not bursts:
            return
        data = np.frombuffer(b"".join(bursts), np.uint8)
        lens = np.array([len(b) for b in bursts], np.int32)
        if not data.size:
            data = np.zeros(1, np.uint8)
        self.lib.sc_push_bursts(self.h, data.ctypes.data_as(_U8P), lens.ctypes.data_as(_I32P),
                                lens.size)

    @property
    def pending_in(self) -> int:
        return int(self.lib.sc_pending_in(self.h))

    def run(self, max_cycles: int, fe_target: int = 0, quiet: int = 0, stall: float = 0.0,
            seed: int = 0) -> str:
        """The C++ loop (shim contract): "target" | "irq" | "quiet" | "max_cycles"."""
        return RUN_RESULTS[self.lib.sc_run(self.h, int(max_cycles), int(fe_target), int(quiet),
                                           float(stall), int(seed) & 0xFFFFFFFF)]

    def pull_bursts(self) -> list[bytes]:
        """Output bursts collected so far (removed from the harness)."""
        n = int(self.lib.sc_out_count(self.h))
        if not n:
            return []
        lens = np.zeros(n, np.int32)
        self.lib.sc_out_lens(self.h, lens.ctypes.data_as(_I32P), n)
        total = int(lens.sum())
        data = np.zeros(max(total, 1), np.uint8)
        self.lib.sc_out_bytes(self.h, data.ctypes.data_as(_U8P), total)
        out, off = [], 0
        for k in lens.tolist():
            out.append(data[off:off + k].tobytes())
            off += k
        return out


def _csr_address(name: str) -> int:
    try:
        return regmap.soc_address(name)
    except KeyError:
        return regmap.address(name)
