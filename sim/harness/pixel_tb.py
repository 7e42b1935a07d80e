"""Batch cocotb driver of the pixel top (hw/pixel_top.py): one simulation streams many frames/cases.

Used by the host interface's RTL transport (sw/pixel.py) for ``logicdie isp --backend rtl`` and
``logicdie fuzz csi2 --backend rtl``, and by the tests. Inputs come in a job file (npz), results go
to an npz, both named in the cocotb parameters (``sim.cocotb_run.tb_params``):

* job: ``bytes`` (uint8, all bursts back to back), ``lens`` (burst lengths), ``case_ends`` (number
  of bursts up to the end of each case); params: ``job``, ``out``, ``params`` (packed ISP parameters
  as a decimal string), ``stall`` (probability out_ready is low), ``idle`` (probability of an input
  gap), ``seed``, ``hang_cycles`` (in_ready low this long with input pending and no output beat =
  hang), ``case_out_cycles`` (default :data:`CASE_OUT_CYCLES`; a case not finished -- input taken
  and output quiet -- within ``40 * its bytes + hang_cycles + case_out_cycles`` cycles = hang too,
  so an output that never goes quiet cannot run the simulation forever).
* after each case the driver pauses until the output has been quiet for ``QUIET`` cycles and records
  how many output beats the case produced (``case_out_ends``).
* out: ``beats`` (uint32: data[23:0], first << 24, last << 25), ``case_out_ends``, ``status``
  (frame << 8 | flags per status strobe), ``counters`` (final, COUNTER_NAMES order), ``hang``
  (index of the case that hung, or -1), ``cycles`` (busy cycles: first input beat to the later of
  the last input beat and the last output beat),
  ``case_cycles`` (cycles per case, first beat to quiet).
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hw.csi2 import COUNTER_NAMES
from sim.cocotb_run import tb_params

QUIET = 120
#: Cycles a case may spend emitting output beyond its input's budget (an upscaling ISP emits
#: many tensor pixels per sensor pixel): a bound on a babbling output, not a performance figure.
CASE_OUT_CYCLES = 1_000_000
#: cocotb backstop in simulated ms (1e8 cycles of the 10 ns clock): the per-case bounds end the
#: run first; this only catches a wait outside them.
TEST_TIMEOUT_MS = 1000


def beats_of(data: np.ndarray, lens: np.ndarray, nbytes: int) -> list[tuple[int, int, int, int]]:
    """Bursts -> beats (data int, n, last, burst index)."""
    out = []
    off = 0
    for bi, ln in enumerate(lens.tolist()):
        burst = data[off:off + ln]
        off += ln
        for s in range(0, ln, nbytes):
            chunk = bytes(burst[s:s + nbytes])
            last = int(s + nbytes >= ln)
            out.append((int.from_bytes(chunk.ljust(nbytes, b"\0"), "little"), len(chunk), last,
                        bi))
    return out


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def stream_cases(dut):
    P = tb_params()
    job = np.load(P["job"])
    nbytes = len(dut.in_data) // 8
    beats = beats_of(job["bytes"], job["lens"], nbytes)
    case_ends = job["case_ends"].tolist()
    rng = random.Random(P.get("seed", 0))
    stall, idle = float(P.get("stall", 0.0)), float(P.get("idle", 0.0))
    hang_cycles = int(P.get("hang_cycles", 20000))
    case_out_cycles = int(P.get("case_out_cycles", CASE_OUT_CYCLES))
    lens = job["lens"].tolist()
    case_bytes = [sum(lens[a:b]) for a, b in zip([0] + case_ends[:-1], case_ends, strict=True)]

    Clock(dut.clk, 10, unit="ns").start()
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    dut.params.value = int(P["params"])
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    in_valid, in_data, in_n, in_last = dut.in_valid, dut.in_data, dut.in_n, dut.in_last
    in_ready, out_valid, out_ready, out_data = dut.in_ready, dut.out_valid, dut.out_ready, \
        dut.out_data
    out_first, out_last = dut.out_first, dut.out_last
    st_valid, st_frame, st_flags = dut.status_valid, dut.status_frame, dut.status_flags

    out_beats: list[int] = []
    status: list[int] = []
    case_out_ends: list[int] = []
    case_cycles: list[int] = []
    idx, showing, rdy = 0, False, 1
    case = 0
    pausing = False
    quiet = 0
    stuck = 0
    hang = -1
    cycle = 0
    first_in = last_in = last_out = None
    case_start = 0
    ncase = len(case_ends)
    beat_case_end = [0] * ncase
    # beat index at which each case's last beat is accepted
    bi_to_beat = {}
    for k, b in enumerate(beats):
        bi_to_beat[b[3]] = k
    for c, e in enumerate(case_ends):
        beat_case_end[c] = bi_to_beat[e - 1] + 1 if e else 0

    while case < ncase:
        await RisingEdge(dut.clk)
        cycle += 1
        if not pausing and not showing and idx < beat_case_end[case] and \
                (idle == 0.0 or rng.random() >= idle):
            d, n, last, _ = beats[idx]
            in_data.value = d
            in_n.value = n
            in_last.value = last
            showing = True
        in_valid.value = int(showing)
        rdy = int(stall == 0.0 or rng.random() >= stall)
        out_ready.value = rdy
        await ReadOnly()
        if showing:
            if int(in_ready.value):
                if first_in is None:
                    first_in = cycle
                last_in = cycle
                idx += 1
                showing = False
                stuck = 0
                if idx == beat_case_end[case]:
                    pausing = True
            else:
                stuck += 1
                if stuck > hang_cycles:
                    dut._log.warning(f"case {case}: in_ready not within {hang_cycles} cycles; saw "
                                   f"beat {idx}/{beat_case_end[case]} pending, "
                                   f"{len(out_beats)} output beats, cycle {cycle}")
                    hang = case
                    break
        ov = int(out_valid.value)
        if rdy and ov:
            out_beats.append(int(out_data.value) | int(out_first.value) << 24
                             | int(out_last.value) << 25)
            last_out = cycle
            stuck = 0     # output progress (an upscaling ISP holds its input back meanwhile)
        if int(st_valid.value):
            status.append(int(st_frame.value) << 8 | int(st_flags.value))
        budget = 40 * case_bytes[case] + hang_cycles + case_out_cycles
        if cycle - case_start > budget:
            dut._log.warning(f"case {case}: input taken and output quiet for {QUIET} cycles: not "
                           f"within {budget} cycles; saw beat {idx}/{beat_case_end[case]}, "
                           f"out_valid={int(out_valid.value)}, {len(out_beats)} output beats, "
                           f"quiet {quiet}, cycle {cycle}")
            hang = case
            break
        if pausing or idx >= beat_case_end[case]:
            quiet = 0 if ov else quiet + 1
            if quiet >= QUIET:
                case_out_ends.append(len(out_beats))
                case_cycles.append(cycle - QUIET - case_start)
                case_start = cycle
                case += 1
                pausing = False
                quiet = 0
    await RisingEdge(dut.clk)
    in_valid.value = 0
    counters = [int(getattr(dut, f"cnt_{n}").value) for n in COUNTER_NAMES]
    busy = (max(last_in, last_out or 0) - first_in + 1) if first_in is not None else 0
    np.savez(P["out"], beats=np.array(out_beats, dtype=np.uint32),
             case_out_ends=np.array(case_out_ends, dtype=np.int64),
             status=np.array(status, dtype=np.int64), counters=np.array(counters, dtype=np.int64),
             hang=np.int64(hang), cycles=np.int64(busy),
             case_cycles=np.array(case_cycles, dtype=np.int64))
