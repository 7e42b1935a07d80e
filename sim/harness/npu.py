"""ctypes binding of the C++ Verilator harness of the NPU top (sim/harness/npu_harness.cpp).

* :func:`build` generates ``NpuTop(config, backdoor=True)``'s Verilog and builds it with the harness
  into a shared library under ``build/harness/npu-<hash>/`` (hash of the Verilog, the harness source
  and the flags; a unique library name per build, so several builds load into one process; a file
  lock makes concurrent builds safe) and returns its path.
* :data:`ARGTYPES` declares every shim function's signature in one place.
* :class:`NpuSim` is the API of docs/npu.md: memory through the backdoor or the host port, CSRs by
  name (hw/regmap.py), start / run (the loop runs in C++) / host calls, counters and the
  issue/retire trace.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from hw import regmap
from hw.config import Config, preset
from hw.errors import UserError
from hw.npu_if import line_bytes, sram_read_latency
from sim.harness.build import build_harness
from sim.harness.ffi import Handle, load, read_words_span, write_words_rmw

__all__ = ["build", "NpuSim", "ARGTYPES", "RUN_RESULTS"]

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "npu_harness.cpp"
#: np_run's return codes.
RUN_RESULTS = ("done", "host", "error", "timeout", "retired")

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
_U8P = ctypes.POINTER(ctypes.c_uint8)
_U32P = ctypes.POINTER(ctypes.c_uint32)
_I64P = ctypes.POINTER(ctypes.c_int64)
#: name -> (restype, argtypes) of every shim function.
ARGTYPES = {
    "np_create": (_P, []),
    "np_destroy": (None, [_P]),
    "np_waves": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "np_reset": (None, [_P, ctypes.c_int]),
    "np_bd_write": (None, [_P, _I64, _U8P, _I64]),
    "np_bd_read": (None, [_P, _I64, _U8P, _I64]),
    "np_host_write": (None, [_P, ctypes.c_uint32, _U32P, _I64]),
    "np_host_read": (None, [_P, ctypes.c_uint32, _U32P, _I64]),
    "np_run": (ctypes.c_int, [_P, _I64, _I64]),
    "np_trace_len": (_I64, [_P]),
    "np_trace": (_I64, [_P, _I64P, _I64]),
    "np_trace_clear": (None, [_P]),
    "np_cycle": (_I64, [_P]),
}

#: In-process memo of :func:`build` (generating the Verilog to hash it takes seconds).
_BUILT: dict[tuple, Path] = {}


def build(config: Config, waves: bool = False, units: str = "auto") -> Path:
    """Shared library of the NPU top for ``config`` (cached by hash; memoized per process)."""
    key = (config.digest(), bool(waves), units)
    if key not in _BUILT or not _BUILT[key].exists():
        _BUILT[key] = _build(config, waves, units)
    return _BUILT[key]


def _build(config: Config, waves: bool, units: str) -> Path:
    from hw.npu import NTRACE, NpuTop, index_bits
    from sim.cocotb_run import verilog_of

    defines = {"NP_W": line_bytes(config), "NP_IB": index_bits(config), "NP_NTRACE": NTRACE,
               "NP_LAT": sram_read_latency(config)}
    if waves:
        defines["NP_WAVES"] = 1
    return build_harness(
        "npu", "npu", lambda: verilog_of(NpuTop(config, backdoor=True, units=units), "npu"),
        SOURCE, params=f"{config.digest()} units={units}", defines=defines, waves=waves)


def _u8p(a: np.ndarray):
    return a.ctypes.data_as(_U8P)


class NpuSim(Handle):
    """One NPU model instance in the C++ harness (the API of docs/npu.md)."""

    def __init__(self, config: Config | str, waves: str | Path | None = None,
                 units: str = "auto"):
        self.config = cfg = preset(config)
        self.W = line_bytes(cfg)
        self._open(load(build(cfg, waves=waves is not None, units=units), ARGTYPES), "np")
        if waves is not None:
            self.lib.np_waves(self.h, str(waves).encode())
        self.reset()

    # ------------------------------------------------------------------ control
    def reset(self, cycles: int = 4) -> None:
        """Reset the NPU (SRAM contents are kept)."""
        self.lib.np_reset(self.h, cycles)

    @property
    def cycle(self) -> int:
        return int(self.lib.np_cycle(self.h))

    def _check_range(self, addr: int, n: int) -> None:
        if addr < 0 or n < 0 or addr + n > self.config.sram_bytes:
            raise UserError(f"SRAM access [{addr}, {addr + n}) outside the "
                            f"{self.config.sram_bytes}-byte SRAM")

    # ------------------------------------------------------------------ memory
    def write_mem(self, addr: int, data, port: str = "backdoor") -> None:
        """Write bytes (any buffer / array, its raw bytes) at SRAM byte address ``addr``."""
        b = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray)
                          else np.ascontiguousarray(data).tobytes(), np.uint8)
        n = b.size
        self._check_range(addr, n)
        if n == 0:
            return
        if port == "backdoor":
            W = self.W
            l0, l1 = addr // W, (addr + n - 1) // W
            buf = np.zeros((l1 - l0 + 1) * W, np.uint8)
            if addr % W:
                buf[:W] = self._bd_read_lines(l0, 1)
            if (addr + n) % W:
                buf[-W:] = self._bd_read_lines(l1, 1)
            buf[addr - l0 * W: addr - l0 * W + n] = b
            self.lib.np_bd_write(self.h, l0, _u8p(buf), l1 - l0 + 1)
        elif port == "host":
            write_words_rmw(addr, b, self._host_read_words, self._host_write_words)
        else:
            raise ValueError(f"port must be 'backdoor' or 'host', got {port!r}")

    def read_mem(self, addr: int, n: int, port: str = "backdoor") -> np.ndarray:
        """``n`` bytes from SRAM byte address ``addr`` (uint8)."""
        self._check_range(addr, n)
        if n == 0:
            return np.zeros(0, np.uint8)
        if port == "backdoor":
            W = self.W
            l0, l1 = addr // W, (addr + n - 1) // W
            buf = self._bd_read_lines(l0, l1 - l0 + 1)
            return buf[addr - l0 * W: addr - l0 * W + n].copy()
        if port == "host":
            return read_words_span(addr, n, self._host_read_words)
        raise ValueError(f"port must be 'backdoor' or 'host', got {port!r}")

    def load_image(self, image, port: str = "backdoor") -> None:
        """Write a compiler memory image: ``[(addr, bytes), ...]``."""
        for addr, blob in image:
            self.write_mem(addr, blob, port=port)

    def _bd_read_lines(self, line: int, n: int) -> np.ndarray:
        buf = np.zeros(n * self.W, np.uint8)
        self.lib.np_bd_read(self.h, line, _u8p(buf), n)
        return buf

    def _host_write_words(self, addr: int, words: np.ndarray) -> None:
        self.lib.np_host_write(self.h, addr, words.ctypes.data_as(_U32P), words.size)

    def _host_read_words(self, addr: int, n: int) -> np.ndarray:
        out = np.zeros(n, "<u4")
        self.lib.np_host_read(self.h, addr, out.ctypes.data_as(_U32P), n)
        return out

    # ------------------------------------------------------------------ CSRs
    def csr_read(self, name: str) -> int:
        return int(self._host_read_words(regmap.address(name), 1)[0])

    def csr_write(self, name: str, value: int) -> None:
        w = np.array([value & 0xFFFFFFFF], "<u4")
        self.lib.np_host_write(self.h, regmap.address(name), w.ctypes.data_as(_U32P), 1)

    def status(self) -> dict:
        v = self.csr_read("STATUS")
        return {k: bool(v >> b & 1) for k, b in regmap.STATUS_BITS.items()}

    def counters(self) -> dict:
        """Every 64-bit counter CSR by name (hw.regmap.COUNTERS)."""
        out = {}
        for name in regmap.COUNTERS:
            lo = self.csr_read(f"{name}_LO")
            hi = self.csr_read(f"{name}_HI")
            out[name] = lo | hi << 32
        return out

    # ------------------------------------------------------------------ run
    def start(self, prog_addr: int) -> None:
        """Clear the counters and the trace and start fetching at ``prog_addr``."""
        self.lib.np_trace_clear(self.h)
        self.csr_write("PROG_ADDR", prog_addr)
        bits = regmap.CTRL_BITS
        self.csr_write("CTRL", 1 << bits["CLEAR"])
        self.csr_write("CTRL", 1 << bits["START"])

    def run(self, max_cycles: int) -> str:
        """Clock until done / a host call / an error, or ``max_cycles``: "done" | "host" |
        "error" | "timeout"."""
        return RUN_RESULTS[self.lib.np_run(self.h, int(max_cycles), -1)]

    def run_until_retired(self, index: int, max_cycles: int) -> str:
        """Like :meth:`run`, also stopping ("retired") when instruction ``index`` retires."""
        return RUN_RESULTS[self.lib.np_run(self.h, int(max_cycles), int(index))]

    @property
    def host_call(self) -> int:
        return self.csr_read("HOST_CALL")

    def resume(self) -> None:
        """Finish the pending HOST call (CTRL.HOST_DONE)."""
        self.csr_write("CTRL", 1 << regmap.CTRL_BITS["HOST_DONE"])

    def error(self) -> tuple[int, int]:
        """(ERROR code, ERROR_INDEX)."""
        return self.csr_read("ERROR"), self.csr_read("ERROR_INDEX")

    def trace(self) -> np.ndarray:
        """(n, 3) int64 rows: instruction index, issue cycle, retire cycle (-1: not yet)."""
        n = int(self.lib.np_trace_len(self.h))
        out = np.zeros((n, 3), np.int64)
        if n:
            self.lib.np_trace(self.h, out.ctypes.data_as(_I64P), n)
        return out
