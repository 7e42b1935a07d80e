"""Host side of the pixel path (Glasgow layering): the gateware (hw/pixel_top.py), a transport that
moves bursts in and tensor beats / RX status out (golden model or RTL simulation), and this
interface on top, used by the CLI (sw/cli/isp.py, sw/cli/fuzz.py), the benchmark and the tests.

* :class:`GoldenTransport`: models/csi2.parse + models/isp on every complete frame.
* :class:`RtlTransport`: the pixel top in Verilator, all cases in one cocotb run
  (sim/harness/pixel_tb.py), build cached by hash under build/cocotb.
* :class:`PixelInterface`: ``process(bursts per case)`` -> :class:`RunResult`; :func:`isp_image`;
  :func:`fuzz` (corrupted streams, each followed by a clean frame).
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.config import Config, preset
from hw.csi2 import COUNTER_NAMES, DataType, ErrorFlag
from hw.errors import UserError
from models import csi2
from models.isp import IspParams, isp_frame

__all__ = ["RunResult", "GoldenTransport", "RtlTransport", "PixelInterface", "make_transport",
           "fuzz_cases", "FuzzCase", "run_fuzz", "split_frames", "CORRUPTIONS"]


@dataclass
class RunResult:
    """One run's results: per case the tensor frames (split at ``first``); RX statuses, counters."""
    frames: list[list[np.ndarray]]                # per case: (H, W, C) int8 tensors (or partial)
    complete: list[list[bool]]                    # per case: frame ended with ``last`` at full size
    statuses: list[tuple[int, int]]
    counters: dict[str, int]
    hang: int = -1                                # case index that hung, or -1
    cycles: int = 0                               # busy cycles (RTL only)
    case_cycles: list[int] = field(default_factory=list)


def split_frames(beats: np.ndarray, p: IspParams) -> tuple[list[np.ndarray], list[bool]]:
    """Output beats (uint32: data | first << 24 | last << 25) -> frames split at ``first``."""
    h, w, c = p.shape
    frames, complete = [], []
    starts = [i for i, b in enumerate(beats.tolist()) if (b >> 24) & 1]
    if beats.size and (not starts or starts[0] != 0):
        starts = [0] + starts
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else beats.size
        seg = beats[s:e]
        d = np.stack([((seg >> (8 * i)) & 0xFF).astype(np.uint8).view(np.int8)
                      for i in range(c)], axis=-1)
        ok = seg.size == h * w and bool((int(seg[-1]) >> 25) & 1) and \
            not any((int(x) >> 25) & 1 for x in seg[:-1])
        frames.append(d.reshape(h, w, c) if ok else d)
        complete.append(ok)
    return frames, complete


class GoldenTransport:
    """The golden pixel path: parse each case's bursts, run the ISP model on complete frames."""
    name = "golden"

    def __init__(self, config: Config):
        self.config = config

    def run(self, cases: list[list[bytes]], p: IspParams, **_kw) -> RunResult:
        res = csi2.ParseResult()
        frames, complete = [], []
        for bursts in cases:
            n0 = len(res.lines)
            _parse_into(bursts, res)
            case_lines = res.lines[n0:]
            fr, cp = [], []
            groups: list[list[np.ndarray]] = []
            for ln in case_lines:
                if ln.sof or not groups:
                    groups.append([])
                groups[-1].append(ln.pixels)
            for g in groups:
                if len(g) == p.sensor_h and all(x.size == p.sensor_w for x in g):
                    fr.append(isp_frame(np.stack(g), p))
                    cp.append(True)
                else:
                    fr.append(None)
                    cp.append(False)
            frames.append(fr)
            complete.append(cp)
        return RunResult(frames, complete, res.statuses, dict(res.counters))


def _parse_into(bursts, res: csi2.ParseResult) -> None:
    """Parse continuing the counters/statuses/lines of ``res`` (a fresh frame state per call is
    fine: every case starts outside a frame or is closed by the next case's FS, as in the RTL)."""
    csi2.parse(bursts, res)


class RtlTransport:
    """The pixel top (RX + ISP) in Verilator.

    ``engine="harness"`` (default): the C++ harness (sim/harness/pixel_harness.cpp via ctypes), the
    per-cycle loop in C++. ``engine="cocotb"``: one cocotb run per call (sim/harness/pixel_tb.py).
    Both run all cases in one simulation and return the same :class:`RunResult`."""
    name = "rtl"

    def __init__(self, config: Config, engine: str = "harness"):
        if engine not in ("harness", "cocotb"):
            raise UserError(f"unknown RTL engine {engine!r}; choose harness or cocotb")
        self.config = config
        self.engine = engine

    def _split(self, beats, ends_out, p):
        frames, complete = [], []
        s = 0
        for e in ends_out:
            f, c = split_frames(beats[s:e], p)
            frames.append(f)
            complete.append(c)
            s = e
        return frames, complete

    def run(self, cases: list[list[bytes]], p: IspParams, *, stall: float = 0.0,
            idle: float = 0.0, seed: int = 0, hang_cycles: int = 20000) -> RunResult:
        from hw.isp import params_layout

        layout = params_layout(self.config)
        packed = layout.const(p.hw_fields()).as_bits()
        if self.engine == "cocotb":
            return self._run_cocotb(cases, p, packed, stall, idle, seed, hang_cycles)
        from sim.harness.pixel import PixelSim

        sim = PixelSim(self.config)
        try:
            sim.set_params(packed, layout.size)
            nbytes = 0
            for c in cases:
                sim.push_case(c)
                nbytes += sum(len(b) for b in c)
            npx = p.size[0] * p.size[1] * 4 * len(cases)      # upscaling: output-bound
            ran = sim.run(max_cycles=40 * nbytes + npx + 200 * len(cases) + 100000, stall=stall,
                          seed=seed, hang_cycles=hang_cycles)
            ends = sim.case_ends().tolist()
            hang = len(ends) if ran < 0 else -1
            frames, complete = self._split(sim.beats(), ends, p)
            st = [(int(v) >> 8, int(v) & 0xFF) for v in sim.statuses().tolist()]
            return RunResult(frames, complete, st, sim.counters(), hang, sim.busy_cycles())
        finally:
            sim.close()

    def _run_cocotb(self, cases, p, packed, stall, idle, seed, hang_cycles) -> RunResult:
        from hw.pixel_top import PixelTop
        from sim.cocotb_run import run_cocotb
        from sim.toolchain import build_dir

        flat = [b for c in cases for b in c]
        lens = np.array([len(b) for b in flat], dtype=np.int64)
        data = np.frombuffer(b"".join(flat), dtype=np.uint8)
        ends = np.cumsum([len(c) for c in cases]).astype(np.int64)
        work = Path(tempfile.mkdtemp(prefix="pixel-", dir=build_dir("pixel_runs")))
        np.savez(work / "job.npz", bytes=data, lens=lens, case_ends=ends)
        params = {"job": str(work / "job.npz"), "out": str(work / "out.npz"),
                  "params": str(packed), "stall": stall, "idle": idle, "seed": seed,
                  "hang_cycles": hang_cycles}
        run_cocotb(PixelTop(self.config), "pixel_top", "sim.harness.pixel_tb", params)
        out = np.load(work / "out.npz")
        frames, complete = self._split(out["beats"], out["case_out_ends"].tolist(), p)
        st = [(int(v) >> 8, int(v) & 0xFF) for v in out["status"].tolist()]
        counters = dict(zip(COUNTER_NAMES, (int(v) for v in out["counters"]), strict=True))
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
        return RunResult(frames, complete, st, counters, int(out["hang"]), int(out["cycles"]),
                         out["case_cycles"].tolist())


def make_transport(backend: str, config: Config | str = "tiny", engine: str = "harness"):
    config = preset(config)
    if backend == "golden":
        return GoldenTransport(config)
    if backend == "rtl":
        return RtlTransport(config, engine)
    raise UserError(f"unknown backend {backend!r}; choose golden or rtl")


class PixelInterface:
    """The pixel path over a transport: frames in, tensors and RX status out."""

    def __init__(self, transport):
        self.transport = transport

    def process(self, cases, p: IspParams, **kw) -> RunResult:
        return self.transport.run(cases, p, **kw)

    def tensor(self, bursts: list[bytes], p: IspParams,
               **kw) -> tuple[np.ndarray | None, RunResult]:
        """One frame's bursts -> its tensor (None if no complete frame came out)."""
        r = self.process([bursts], p, **kw)
        for f, ok in zip(r.frames[0], r.complete[0], strict=True):
            if ok:
                return f, r
        return None, r


# ---- fuzzing ---------------------------------------------------------------------------------

CORRUPTIONS = ("hdr_flip1", "hdr_flip2", "payload_flip", "crc_flip", "truncate", "overlong",
               "missing_fe", "garbage", "wrong_wc", "drop_packet", "missing_fs")


@dataclass
class FuzzCase:
    bursts: list[bytes]          # corrupted frame then a clean frame
    clean_raw: np.ndarray        # RAW of the clean frame
    kinds: list[str]


def _corrupt(bursts: list[bytes], rng: random.Random, kind: str) -> list[bytes]:
    b = [bytearray(x) for x in bursts]
    longs = [i for i, x in enumerate(b) if len(x) > 6 and (x[0] & 0x3F) >= 0x10]
    i = rng.choice(longs) if longs else 0
    hdrs = [k for k, x in enumerate(b) if len(x) >= 4] or [None]
    if kind == "hdr_flip1" and hdrs[0] is not None:
        j = rng.choice(hdrs)
        b[j][rng.randrange(4)] ^= 1 << rng.randrange(8)
    elif kind == "hdr_flip2" and hdrs[0] is not None:
        j = rng.choice(hdrs)
        bits = rng.sample(range(32), 2)
        for t in bits:
            b[j][t // 8] ^= 1 << (t % 8)
    elif kind == "payload_flip" and longs:
        k = rng.randrange(4, len(b[i]) - 2)
        b[i][k] ^= 1 << rng.randrange(8)
    elif kind == "crc_flip" and longs:
        b[i][len(b[i]) - 1 - rng.randrange(2)] ^= 1 << rng.randrange(8)
    elif kind == "truncate" and longs:
        del b[i][rng.randrange(1, len(b[i])):]
    elif kind == "overlong" and longs:
        b[i].extend(rng.randbytes(rng.randrange(1, 12)))
    elif kind == "missing_fe":
        b = [x for x in b if not (len(x) == 4 and x[0] == DataType.FE.value)] or b
    elif kind == "garbage":
        b.insert(rng.randrange(len(b) + 1), bytearray(rng.randbytes(rng.randrange(1, 40))))
    elif kind == "wrong_wc" and longs:
        wc = b[i][1] | b[i][2] << 8
        new = max(0, wc + rng.choice([-7, -5, -1, 1, 3, 5, 9]))
        b[i][:4] = csi2.header(b[i][0] & 0x3F, new, b[i][0] >> 6)
    elif kind == "drop_packet":
        del b[rng.randrange(len(b))]
    elif kind == "missing_fs":
        b = [x for x in b if not (len(x) == 4 and x[0] == DataType.FS.value)] or b
    return [bytes(x) for x in b if len(x)]


def fuzz_cases(n: int, seed: int = 0, mode: tuple[int, int] = (32, 8)) -> list[FuzzCase]:
    """``n`` cases: a frame with 1..3 random corruptions, then a clean frame (random RAW10)."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    w, h = mode
    out = []
    for k in range(n):
        raw_a = nrng.integers(0, 1024, (h, w), dtype=np.uint16)
        raw_b = nrng.integers(0, 1024, (h, w), dtype=np.uint16)
        bursts = csi2.frame_packets(raw_a, (2 * k) & 0xFFFF)
        kinds = [rng.choice(CORRUPTIONS) for _ in range(rng.randint(1, 3))]
        for kind in kinds:
            bursts = _corrupt(bursts, rng, kind)
        clean = csi2.frame_packets(raw_b, (2 * k + 1) & 0xFFFF)
        out.append(FuzzCase(bursts + clean, raw_b, kinds))
    return out


def fuzz_params(mode: tuple[int, int] = (32, 8)) -> IspParams:
    """ISP parameters of the fuzz frames: whole frame, a fractional resize, RGB."""
    w, h = mode
    return IspParams.make(w, h, roi=(0, 0, w, h), size=(w // 2 - 5, h // 2 - 1), channels=3)


def run_fuzz(n: int, seed: int = 0, backend: str = "rtl", config: Config | str = "tiny",
             stall: float = 0.2, progress=None, engine: str = "harness") -> dict:
    """Run ``n`` fuzz cases through ``backend``; compare counters/statuses with the golden parser
    and every clean frame with the golden ISP. Returns the JSON summary of ``logicdie fuzz
    csi2``."""
    cases = fuzz_cases(n, seed)
    p = fuzz_params()
    gold = GoldenTransport(preset(config)).run([c.bursts for c in cases], p)
    tr = make_transport(backend, config, engine)
    chunk = (500 if engine == "cocotb" else 1000) if backend == "rtl" else max(1, n)
    results: list[RunResult] = []
    for s in range(0, n, chunk):
        part = cases[s:s + chunk]
        results.append(tr.run([c.bursts for c in part], p, stall=stall, seed=seed + s)
                       if backend == "rtl" else tr.run([c.bursts for c in part], p))
        if progress is not None:
            progress(len(part))
    frames = [f for r in results for f in r.frames]
    complete = [c for r in results for c in r.complete]
    statuses = [s for r in results for s in r.statuses]
    hangs = sum(1 for r in results if r.hang >= 0)
    counters = dict.fromkeys(COUNTER_NAMES, 0)
    for r in results:
        for k, v in r.counters.items():
            counters[k] += v
    clean_ok = 0
    bad_cases = []
    for k, c in enumerate(cases):
        want = isp_frame(c.clean_raw, p)
        got_ok = k < len(frames) and complete[k] and complete[k][-1]
        if got_ok and np.array_equal(frames[k][-1], want):
            clean_ok += 1
        elif len(bad_cases) < 10:
            bad_cases.append(k)
    clean_status_ok = sum(1 for s in statuses if s[1] == 0)
    return {
        "cases": n, "backend": backend, "engine": engine if backend == "rtl" else None,
        "seed": seed, "hangs": hangs,
        "ecc_corrected": counters["ecc_corrected"], "ecc_detected": counters["ecc_detected"],
        "crc_errors": counters["crc_errors"], "length_errors": counters["length_errors"],
        "sync_errors": counters["sync_errors"], "frames": counters["frames"],
        "frames_flagged": counters["frames_flagged"],
        "counters_match_golden": counters == gold.counters,
        "statuses_match_golden": statuses == gold.statuses,
        "clean_frames": n, "clean_frames_ok": clean_ok,
        "clean_frames_bit_exact": clean_ok == n and hangs == 0,
        "clean_status_records": clean_status_ok,
        "first_bad_cases": bad_cases,
        "flag_names": {f.name: f.value for f in ErrorFlag},
    }


def _dump(o) -> str:
    return json.dumps(o)
