"""Functional NPU ISA simulator with a cycle model (the contract the RTL NPU is held to).

:class:`IsaSim` executes a compiled program instruction by instruction (each instruction vectorized
with NumPy) on a model of the on-die SRAM and the array's local buffers (:mod:`hw.isa`), bit-exact
with the golden graph. :func:`schedule` is the analytic cycle model: it replays the three queues
(LOAD, COMPUTE, STORE) with their dependency tokens and the per-instruction costs of
:class:`hw.isa.Timing`, giving each instruction a start and end cycle; it raises on a deadlock (a
pop no push can satisfy) and checks that no two concurrently running instructions of different
queues touch the same WBUF/PBUF slot or SRAM bytes with at least one writer (so executing in program
order equals the hardware's concurrent execution).

The simulator does not read bundle files (sim/ does not import sw/): it takes the program bytes, the
memory image segments and the host-call table as plain data (``sw.bundle.Bundle`` provides them).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from hw.isa import (
    LAYOUTS,
    PARAM_RECORD_BYTES,
    QUEUE_OF,
    AccMode,
    BufSel,
    EltMode,
    Opcode,
    PoolMode,
    Queue,
    Timing,
    buffer_sizes,
    decode,
    decode_program,
    encode,
)
from models.arith import mbqm, wrap_int32
from models.kernels.common import requant

__all__ = ["IsaSim", "schedule", "Schedule", "SimError", "instr_cost", "check_overlap",
           "overlap_conflict", "compute_unit"]


def normalize(program: list[dict]) -> list[dict]:
    """Every instruction dict with all of its layout's fields (absent ones 0), as decode() gives."""
    out = []
    for ins in program:
        op = Opcode(ins["opcode"])
        if set(ins) >= _FIELDS[op]:
            out.append(ins)
        else:
            out.append(decode(encode(ins)))
    return out


_FIELDS = {op: {n for n, _ in lay} - {"_rsv"} for op, lay in LAYOUTS.items()}


class SimError(RuntimeError):
    """The program is malformed (deadlock, hazard, out-of-range access): a compiler or bundle
    bug."""


# ----------------------------------------------------------------------------------------------
# cycle model
def instr_cost(ins: dict, t: Timing) -> int:
    """Cycles one instruction keeps its unit busy (Timing's formulas; the mechanisms of the RTL
    units: see Timing's docstring)."""
    op = ins["opcode"]
    if op == Opcode.LOAD:
        return t.issue + t.load_latency + math.ceil(ins["nbytes"] / t.load_bytes_per_cycle)
    if op == Opcode.CONV:
        return _conv_cost(_key(ins, _CONV_KEYS), t)
    if op in (Opcode.DWCONV, Opcode.POOL):
        return _window_cost(_key(ins, _WIN_KEYS) + (op == Opcode.DWCONV,), t)
    if op == Opcode.VMATMUL:
        return _vmatmul_cost(_key(ins, _VM_KEYS), t)
    if op == Opcode.ELTWISE:
        return _stream_cost(_key(ins, _ELT_KEYS) + (True,), t)
    if op == Opcode.LUT:
        k = _key(ins, ("count", "in_addr", "lut_addr"))
        return _stream_cost((k[0], 0, k[1], 0, k[2], False), t)
    if op == Opcode.COPY:
        # per row: the destination lines + 1 (the realigning read is a line longer, also when
        # source and destination are aligned alike: measured on the RTL)
        n = ins["planes"] * ins["rows"]
        if not n or not ins["row_bytes"]:
            return t.issue
        W = t.line_bytes
        d0 = _mod(ins["dst_addr"], W)
        dp, ds = ins["dst_plane_stride"] % W, ins["dst_row_stride"] % W
        planes = ins["planes"]
        period = W // math.gcd(dp, W)
        lines = 0.0
        for p in range(min(planes, period)):  # planes with distinct alignments, weighted
            weight = (planes - p + period - 1) // period
            lines += weight * _dst_lines((d0 + p * dp) % W, ins["row_bytes"], ds, W)
        rows_cost = n * (t.copy_row_cycles + 1) + ins["rows"] * lines
        return t.issue + t.store_setup + math.ceil(rows_cost)
    if op == Opcode.FILL:
        if not ins["rows"] or not ins["row_bytes"]:
            return t.issue
        W = t.line_bytes
        per = t.fill_row_cycles + _dst_lines(_mod(ins["dst_addr"], W), ins["row_bytes"],
                                             ins["dst_row_stride"] % W, W)
        return t.issue + t.store_setup + math.ceil(ins["rows"] * per)
    if op == Opcode.HOST:
        return t.issue + t.host_cycles
    return t.issue


def _mod(addr, W: int) -> int:
    """``addr % W``; an address not yet placed (the compiler's estimates) counts as aligned."""
    return addr % W if isinstance(addr, int) else 0


@lru_cache(maxsize=65536)
def _dst_lines(d0: int, n: int, ds: int, W: int) -> float:
    """Average SRAM lines a row of ``n`` bytes touches, rows at ``dst + k * ds`` (``d0`` = dst
    mod W): exact over the period of the rows' alignments."""
    period = W // math.gcd(ds, W)
    return sum(((d0 + k * ds) % W + n - 1) // W + 1 for k in range(period)) / period


_CONV_KEYS = ("in_h", "in_w", "in_c", "out_h", "out_w", "n_cols", "k_h", "k_w", "stride_h",
              "stride_w", "pad_top", "pad_left", "in_pitch", "acc")
_WIN_KEYS = ("in_h", "in_w", "in_c", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w",
             "pad_top", "pad_left", "in_addr", "w_addr", "p_addr", "depth_mult")
_VM_KEYS = ("m", "k", "n", "in_addr", "w_addr", "p_addr")
_ELT_KEYS = ("count", "b_period", "a_addr", "b_addr", "p_addr")


def _key(ins: dict, names) -> tuple:
    """The fields the cost depends on, as ints (an address not placed yet, e.g. the compiler's
    symbolic ``("t", tensor)``, counts as line-aligned)."""
    out = []
    for n in names:
        v = ins.get(n, 0)
        v = getattr(v, "value", v)
        out.append(v if isinstance(v, int) else 0)
    return tuple(out)


# ---- the conv unit (hw/conv_unit.py: act gather pieces feeding the GEMM engine of hw/gemm.py)
@lru_cache(maxsize=4096)
def _conv_cost(k: tuple, t: Timing) -> int:
    (in_h, in_w, in_c, out_h, out_w, n_cols, k_h, k_w, sh, sw, pt, pl, in_pitch, acc) = k
    R, C = t.R, t.C
    m = out_h * out_w
    kk = k_h * k_w * in_c
    nk = max(1, math.ceil(kk / R))
    pieces = _conv_pieces(k, R, nk, t.line_bytes)  # act-gather cycles per row, per K tile (average)
    # The array's two weight banks: tile i + 1 loads (R rows) into the bank of tile i - 1 once
    # that bank is released, C + 1 cycles after i - 1's last activation: tile i + 1 starts at
    # max(s[i] + a[i], s[i - 1] + a[i - 1] + R + C + 1), a = a tile's activations (act-gather
    # cycles); tile 1 loads into the free bank right after tile 0 (R + 1 cycles).
    full, rest = divmod(m, t.acc_rows)
    # (each (M block, K tile) pass plus the walk's turn cycle after it, Timing.conv_turn)
    acts = ([t.acc_rows * p + t.conv_turn for p in pieces] * full
            + [rest * p + t.conv_turn for p in pieces] * (1 if rest else 0))
    gap = R + C + 1
    if min(acts) >= gap:
        stream = math.ceil(sum(acts))
    else:
        s_prev, s = 0.0, max(acts[0], R + 1)
        for i in range(1, len(acts) - 1):
            s_prev, s = s, max(s + acts[i], s_prev + acts[i - 1] + gap)
        stream = math.ceil(s + acts[-1]) if len(acts) > 1 else math.ceil(acts[0])
    extra = 0
    if acc in (AccMode.MID, AccMode.LAST):  # int32 partials read back
        extra = math.ceil(4 * m * n_cols / t.load_bytes_per_cycle)
    if acc == AccMode.LAST and t.last_requant_cycles > 1:
        # a time-shared LAST requant takes one output beat per last_requant_cycles
        stream = max(stream, m * t.last_requant_cycles) + t.last_requant_cycles
    return (t.issue + t.conv_setup + R + stream + extra + t.array_latency + t.requant_latency
            + t.conv_out)


def _conv_pieces(k: tuple, R: int, nk: int, W: int = 0) -> list[float]:
    """Average act-gather pieces (cycles) per row for each K tile: the walk of hw/conv_unit.py
    (a piece is the rest of a tap, a whole kernel row of a dense input, or a run spanning two
    taps; padding taps are separate pieces), averaged over the output pixels' padding classes."""
    (in_h, in_w, in_c, out_h, out_w, n_cols, k_h, k_w, sh, sw, pt, pl, in_pitch, acc) = k
    contig = in_pitch in (0, in_c)
    if in_c % R == 0:
        return [1.0] * nk
    ycls: dict[tuple, int] = {}
    for oy in range(out_h):
        iy0 = oy * sh - pt
        kk = tuple(0 <= iy0 + ky < in_h for ky in range(k_h))
        ycls[kk] = ycls.get(kk, 0) + 1
    xcls: dict[tuple, int] = {}
    for ox in range(out_w):
        ix0 = ox * sw - pl
        kk = (tuple(0 <= ix0 + kx < in_w for kx in range(k_w + 1)), ix0 + k_w - 1 < in_w)
        xcls[kk] = xcls.get(kk, 0) + 1
    tot = [0.0] * nk
    n = out_h * out_w
    for yk, yn in ycls.items():
        for xk, xn in xcls.items():
            p = _walk(in_c, k_h, k_w, R, nk, contig, yk, xk, W)
            w = yn * xn / n
            for i in range(nk):
                tot[i] += w * p[i]
    return tot


@lru_cache(maxsize=4096)
def _walk(in_c, k_h, k_w, R, nk, contig, yok, xk, W=0) -> tuple:
    """Act-gather cycles per K tile of one row: its pieces; with ``W`` (line bytes) also the
    expected second cycle of a piece that jumps to a new line (a beat's first piece, a kernel
    row's first piece) and crosses that line's end ((n - 1) / W of n data bytes)."""
    xok, xend_ok = xk
    rowbytes = k_w * in_c
    ky = kx = ci = rpos = 0
    kdone = False
    out = []
    for _ in range(nk):
        lane = 0
        pieces = first = 0.0
        ky0 = ky_last = ky
        while True:
            pieces += 1
            if kdone:
                break
            jump = lane > 0 and kx == 0 and ci == 0  # a new kernel row within the beat
            seg = min(R - lane, in_c - ci)
            iy_ok = yok[ky]
            ix_ge0 = xok[kx] or any(xok[:kx])  # ix >= 0 (the valid taps are a contiguous run)
            row_left = rowbytes - rpos
            lanes_left = R - lane
            r1 = in_c - ci
            kx_end = kx == k_w - 1
            merge = (contig and iy_ok and ix_ge0 and xend_ok and row_left <= lanes_left
                     and row_left > r1)
            span2 = (contig and iy_ok and ix_ge0 and xok[kx + 1] and not kx_end
                     and r1 < lanes_left and lanes_left - r1 < in_c)
            n = row_left if merge else (lanes_left if span2 else seg)
            if W and iy_ok and (xok[kx] or merge or span2):
                if jump:
                    pieces += (n - 1) / W
                elif lane == 0:  # a jump if the previous row's last piece is another kernel row
                    first = (n - 1) / W
            ky_last = ky
            tap_end = ci + n == in_c
            row_end = merge or (tap_end and kx_end)
            if row_end:
                kdone = ky == k_h - 1
                ky, kx, ci, rpos = ky + 1, 0, 0, 0
            elif span2:
                kx, ci, rpos = kx + 1, lanes_left - r1, rpos + n
            elif tap_end:
                kx, ci, rpos = kx + 1, 0, rpos + n
            else:
                ci, rpos = ci + n, rpos + n
            lane += n
            if kdone or lane == R:
                break
        out.append(pieces + (first if ky_last != ky0 else 0.0))
    return tuple(out)


# ---- the vector unit (hw/vector.py: commands of up to dw_taps + 1 vectors, a line cache)
class _Lines:
    """The vector unit's line cache: ``ne`` entries, misses fetched one line per cycle into
    round-robin victims not used by the current command (REQ); ASM then pops the command's
    lines, one per cycle, once its entry is at the head of the ``meta_depth``-deep command FIFO:
    a command of more misses than that FIFO holds stalls REQ until it has been assembled.

    POST time-shared over ``post_cycles`` = H > 1 phases (hw/vector.py): EXEC takes an emitting
    command (one that completes an output vector) at least H cycles after the previous one, ASM
    hands EXEC one command at a time, so the command FIFO fills and REQ slows to EXEC's pace;
    :meth:`tail` is the last output vector's extra delay. With H = 1 EXEC never waits."""

    __slots__ = ("ent", "where", "rr", "ne", "W", "L", "req", "asm", "fifo", "depth", "reads",
                 "H", "ex", "em", "asm1")

    def __init__(self, t: Timing):
        self.ne = t.vector_cache_lines
        self.ent = [None] * self.ne
        self.where: dict[int, int] = {}
        self.rr = 0
        self.W = t.line_bytes
        self.L = t.lanes
        self.depth = t.vector_meta_depth
        self.req = 0  # cycle REQ completed the last command
        self.asm = 0  # cycle ASM finished the last command
        self.fifo: deque = deque()  # ASM finish cycles of the commands in the FIFO
        self.reads = 0  # SRAM line reads (misses) so far
        self.H = t.post_cycles
        self.ex = 0  # cycle EXEC took the last command (H > 1)
        self.em = -self.H  # ... the last emitting command
        self.asm1 = 0  # asm as if EXEC never waited (H > 1)

    def cmd(self, addrs, emit: bool = False) -> int:
        """Cycles one command whose vectors start at ``addrs`` adds: max(1, lines missed), plus
        REQ's wait for room in the command FIFO (``emit``: the command completes an output
        vector)."""
        n = self._misses(addrs)
        r = self.req + n
        fifo = self.fifo
        while fifo and fifo[0] <= r:
            fifo.popleft()
        if len(fifo) >= self.depth:
            r = max(r, fifo[-self.depth])
            while fifo and fifo[0] <= r:
                fifo.popleft()
        if self.H > 1:
            # ASM finishes a command once EXEC has taken the previous one; EXEC takes an
            # emitting command once POST has taken the previous output vector's H phases
            self.asm1 = max(self.asm1, r + 1) + n
            a = self.asm = max(max(self.asm, r + 1) + n, self.ex + 1)
            self.ex = max(a, self.em + self.H) if emit else a
            if emit:
                self.em = self.ex
        else:
            self.asm = max(self.asm, r + 1) + n  # the FIFO entry is readable a cycle later
        fifo.append(self.asm)
        inc = r - self.req
        self.req = r
        return inc

    def tail(self) -> int:
        """Cycles the last output vector ends after the pace EXEC would keep if it never waited
        (as with H = 1, which ``Timing.vector_latency`` counts from), plus its H - 1 later
        phases: 0 with H = 1."""
        if self.H == 1:
            return 0
        return max(0, self.em - self.asm1) + self.H - 1

    def _misses(self, addrs) -> int:
        """Lines missed by one command. As REQ: the victims skip every entry the command hits
        (its lines already present), misses are fetched in slot order."""
        W, L, where, ent = self.W, self.L, self.where, self.ent
        need = []
        for a in addrs:
            lo = a // W
            need.append(lo)
            if a % W + L > W:
                need.append(lo + 1)
        used = {where[ln] for ln in need if ln in where}
        miss = 0
        for ln in need:
            if ln in where:
                continue
            v = self.rr
            while v in used:
                v = v + 1 if v + 1 < self.ne else 0
            old = ent[v]
            if old is not None:
                del where[old]
            ent[v] = ln
            where[ln] = v
            used.add(v)
            self.rr = v + 1 if v + 1 < self.ne else 0
            miss += 1
        self.reads += miss
        return miss if miss > 1 else 1


def _dw_groups(ntap: int, is_dw: bool, t: Timing) -> int:
    """Channel groups per DWCONV / POOL super-group (hw/vector.py SETUP2): POOL ``dw_groups``;
    DWCONV with register weights as many (dw_groups >> k) as the weight memory holds; else 1."""
    S = t.dw_groups
    if not is_dw:
        return S
    if not 0 < ntap <= t.dw_weight_regs:
        return 1
    c9 = -(-9 // t.dw_taps)
    k = 0
    while ntap > c9 * t.dw_taps * (1 << k):
        k += 1
    return S >> k


def _param_cmds(lc: _Lines, pa: int, L: int, TT: int, n: int = 12) -> int:
    """Cycles of the ceil(n / TT) commands loading an n-vector record (TT vectors each)."""
    return sum(lc.cmd(tuple(pa + i * L for i in range(c, min(c + TT, n))))
               for c in range(0, n, TT))


def _window_cost(k: tuple, t: Timing) -> int:
    """DWCONV / POOL cycles (:func:`_window_sim`)."""
    return _window_sim(k, t)[0]


@lru_cache(maxsize=4096)
def _window_sim(k: tuple, t: Timing) -> tuple[int, float]:
    """(cycles, SRAM line reads) of a DWCONV / POOL: super-groups of up to ``dw_groups`` channel
    groups of `lanes` outputs (outer) > pixels > groups > taps (dw_taps per command when the
    weights fit the weight memory or for POOL, else one tap with its weight vector). DWCONV
    loads each super-group's parameter records and weights first (dw_taps vectors per
    command)."""
    (in_h, in_w, in_c, out_h, out_w, k_h, k_w, sh, sw, pt, pl, in_addr, w_addr, p_addr, dm,
     is_dw) = k
    L, W, TT = t.lanes, t.line_bytes, t.dw_taps
    dm = max(1, dm) if is_dw else 1
    co = in_c * dm
    if not (out_h and out_w and co):
        return t.issue + t.vector_setup, 0.0
    ntap = k_h * k_w
    kzero = ntap == 0
    wc = is_dw and 0 < ntap <= t.dw_weight_regs
    nt = TT if (wc or not is_dw) else 1
    S = _dw_groups(ntap, is_dw, t)
    taps = [divmod(i, max(1, k_w)) for i in range(max(1, ntap))]
    rowb = in_w * in_c
    sample = out_h > 8
    rows = list(range(6)) + [out_h - 2, out_h - 1] if sample else list(range(out_h))
    total = 0
    total_reads = 0.0
    memo: dict[tuple, tuple] = {}
    # an input that fits the line cache, or a small map (the next group's first taps read the
    # lines of the previous group's last ones: channels of several groups share a line), keeps
    # lines across super-groups: simulate every one on one cache; else each starts cold and
    # super-groups of the same line alignment cost the same
    shared = ((in_h * in_w * in_c + W - 1) // W + 2 <= t.vector_cache_lines
              or out_h * out_w <= 16)
    lc = _Lines(t)
    last_phases = t.post_cycles - 1  # the last output vector's later POST phases (in tail())
    ngroups = math.ceil(co / L)
    ci0 = rr = 0
    for g0 in range(0, ngroups, S):
        gs = []  # (co0, ci0, r) of each group of the super-group
        for g in range(g0, min(ngroups, g0 + S)):
            gs.append((g * L, ci0, rr))
            rn = rr + L
            ci0 += rn // dm
            rr = rn % dm
        co0, gci0 = gs[0][0], gs[0][1]
        key = ((in_addr + gci0) % W, (w_addr + co0) % W, (p_addr + 12 * co0) % W, len(gs),
               gs[0][2])
        if shared or key not in memo:
            if not shared:
                lc = _Lines(t)
            reads0 = lc.reads
            cyc = 1  # GINIT (a cycle without a command)
            lc.req += 1
            if is_dw:
                cyc += sum(_param_cmds(lc, p_addr + 12 * c0, L, TT) for c0, _, _ in gs)
                if wc:
                    cyc += sum(lc.cmd(tuple(w_addr + c0 + i * co
                                            for i in range(j, min(j + TT, ntap))))
                               for c0, _, _ in gs for j in range(0, ntap, TT))
            pre_reads = lc.reads - reads0
            rcyc, rrd = [], []
            for oy in rows:
                c = 0
                rd0 = lc.reads
                iy0 = oy * sh - pt
                for ox in range(out_w):
                    ix0 = ox * sw - pl
                    for c0, gci, _ in gs:
                        base = in_addr + gci
                        for t0 in range(0, len(taps), nt):
                            av = []
                            if not kzero:
                                for i in range(t0, min(t0 + nt, ntap)):
                                    ky, kx = taps[i]
                                    iy, ix = iy0 + ky, ix0 + kx
                                    if 0 <= iy < in_h and 0 <= ix < in_w:
                                        av.append(base + iy * rowb + ix * in_c)
                                if is_dw and not wc:
                                    av.append(w_addr + c0 + t0 * co)
                            c += lc.cmd(av, t0 + nt >= len(taps))
                rcyc.append(c)
                rrd.append(lc.reads - rd0)

            def rows_total(v):
                return v[0] + sum(v[1:6]) * (out_h - 3) / 5 + v[6] + v[7] if sample else sum(v)

            # a super-group simulated on a cache of its own ends with EXEC's backlog (H > 1:
            # REQ runs up to the command FIFO's depth ahead), which delays the next one
            lag = 0 if shared else lc.tail() - last_phases
            memo[key] = (cyc + rows_total(rcyc) + lag, pre_reads + rows_total(rrd))
        total += memo[key][0]
        total_reads += memo[key][1]
    tail = lc.tail() if shared else last_phases
    return (t.issue + t.vector_setup + round(total) + tail + t.vector_latency, total_reads)


@lru_cache(maxsize=4096)
def _vmatmul_cost(k: tuple, t: Timing) -> int:
    """VMATMUL: rows > groups of `lanes` output channels (12 parameter commands each) > dw_taps
    channels per command > K chunks of `lanes` (a command reads dw_taps weight rows' chunks and
    the input chunk)."""
    m, kk, n, in_addr, w_addr, p_addr = k
    L, TT = t.lanes, t.dw_taps
    if not (m and n):
        return t.issue + t.vector_setup
    lc = _Lines(t)
    rows = min(m, 4)
    total = 0
    for i in range(rows):
        xrow = in_addr + i * kk
        for j0 in range(0, n, L):
            total += _param_cmds(lc, p_addr + 12 * j0, L, TT)
            vnj = min(L, n - j0)
            for jj in range(0, vnj, TT):
                wr = [w_addr + (j0 + j) * kk for j in range(jj, min(jj + TT, vnj))]
                last_jj = jj + TT >= vnj
                for k0 in range(0, max(kk, 1), L):
                    if kk:
                        total += lc.cmd([a + k0 for a in wr] + [xrow + k0],
                                        last_jj and k0 + L >= kk)
                    else:
                        total += 1
    total = total * m / rows
    return t.issue + t.vector_setup + round(total) + lc.tail() + t.vector_latency


@lru_cache(maxsize=4096)
def _stream_cost(k: tuple, t: Timing) -> int:
    """ELTWISE (12 parameter commands, then a and b vectors of up to `lanes` elements, split at
    b_period boundaries) / LUT (256 / lanes table commands, then one vector per command)."""
    count, per, a_addr, b_addr, p_addr, elt = k
    L = t.lanes
    if not count:
        return t.issue + t.vector_setup
    lc = _Lines(t)
    total = 0
    if elt:
        total += _param_cmds(lc, p_addr, L, t.dw_taps)
    else:
        total += _param_cmds(lc, p_addr, L, t.dw_taps, 256 // L)
    ei = er = 0
    while ei < count:
        lim = L if per <= 1 else per - er
        en = min(L, count - ei, lim)
        if elt:
            total += lc.cmd((a_addr + ei, b_addr + (er if per else ei)), True)
        else:
            total += lc.cmd((a_addr + ei,), True)
        ei += en
        er = 0 if er + en >= per else er + en
    return t.issue + t.vector_setup + total + lc.tail() + t.vector_latency


def _footprint(ins: dict, host_calls=None) -> tuple[list, list]:
    """(reads, writes): lists of ('sram', lo, hi) byte ranges and ('wbuf'|'pbuf', slot)."""
    op = ins["opcode"]
    r, w = [], []
    if op == Opcode.LOAD:
        r.append(("sram", ins["sram_addr"], ins["sram_addr"] + ins["nbytes"]))
        w.append(("wbuf" if ins["buf"] == BufSel.WBUF else "pbuf", ins["slot"]))
    elif op == Opcode.CONV:
        pitch = ins["in_pitch"] or ins["in_c"]
        r.append(
            (
                "sram",
                ins["in_addr"],
                ins["in_addr"] + (ins["in_h"] * ins["in_w"] - 1) * pitch + ins["in_c"],
            )
        )
        r += [("wbuf", ins["wslot"]), ("pbuf", ins["pslot"])]
        n = ins["out_h"] * ins["out_w"]
        acc = ("sram", ins["acc_addr"], ins["acc_addr"] + 4 * n * ins["n_cols"])
        if ins["acc"] in (AccMode.MID, AccMode.LAST):
            r.append(acc)
        if ins["acc"] in (AccMode.FIRST, AccMode.MID):
            w.append(acc)
        else:
            w.append(
                (
                    "sram",
                    ins["out_addr"],
                    ins["out_addr"] + (n - 1) * ins["out_pitch"] + ins["n_cols"],
                )
            )
    elif op == Opcode.DWCONV:
        c = ins["in_c"]
        co = c * ins["depth_mult"]
        r.append(("sram", ins["in_addr"], ins["in_addr"] + ins["in_h"] * ins["in_w"] * c))
        w.append(("sram", ins["out_addr"], ins["out_addr"] + ins["out_h"] * ins["out_w"] * co))
    elif op == Opcode.POOL:
        c = ins["in_c"]
        r.append(("sram", ins["in_addr"], ins["in_addr"] + ins["in_h"] * ins["in_w"] * c))
        w.append(("sram", ins["out_addr"], ins["out_addr"] + ins["out_h"] * ins["out_w"] * c))
    elif op == Opcode.ELTWISE:
        n = ins["count"]
        r.append(("sram", ins["a_addr"], ins["a_addr"] + n))
        r.append(("sram", ins["b_addr"], ins["b_addr"] + (ins["b_period"] or n)))
        w.append(("sram", ins["out_addr"], ins["out_addr"] + n))
    elif op == Opcode.VMATMUL:
        m, k, n = ins["m"], ins["k"], ins["n"]
        r.append(("sram", ins["in_addr"], ins["in_addr"] + m * k))
        r.append(("sram", ins["w_addr"], ins["w_addr"] + n * k))
        r.append(("sram", ins["p_addr"], ins["p_addr"] + n * PARAM_RECORD_BYTES))
        w.append(("sram", ins["out_addr"], ins["out_addr"] + m * n))
    elif op == Opcode.LUT:
        r.append(("sram", ins["in_addr"], ins["in_addr"] + ins["count"]))
        w.append(("sram", ins["out_addr"], ins["out_addr"] + ins["count"]))
    elif op == Opcode.COPY:

        def span(base, rs, ps):
            return base, base + (ins["planes"] - 1) * ps + (ins["rows"] - 1) * rs + ins["row_bytes"]

        r.append(("sram",) + span(ins["src_addr"], ins["src_row_stride"], ins["src_plane_stride"]))
        w.append(("sram",) + span(ins["dst_addr"], ins["dst_row_stride"], ins["dst_plane_stride"]))
    elif op == Opcode.FILL:
        w.append(
            (
                "sram",
                ins["dst_addr"],
                ins["dst_addr"] + (ins["rows"] - 1) * ins["dst_row_stride"] + ins["row_bytes"],
            )
        )
    elif op == Opcode.HOST:
        call = host_calls[ins["call"]] if host_calls and ins["call"] < len(host_calls) else None
        if call is None:  # unknown: the host may touch anything
            r.append(("sram", 0, 1 << 30))
            w.append(("sram", 0, 1 << 30))
        else:
            for lst, ds in ((r, call["inputs"]), (w, call["outputs"])):
                for d in ds:
                    n = int(np.prod(d["shape"], dtype=np.int64)) * np.dtype(d["dtype"]).itemsize
                    lst.append(("sram", d["addr"], d["addr"] + n))
    return r, w


def _conflict(a, b) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "sram":
        return a[1] < b[2] and b[1] < a[2]
    return a[1] == b[1]


@dataclass
class Schedule:
    """Result of :func:`schedule`: per-instruction [start, end) cycles, the total, and per-queue
    busy time."""

    start: list[int]
    end: list[int]
    total: int
    busy: dict[str, int] = field(default_factory=dict)


_VECTOR_OPS = frozenset({Opcode.DWCONV, Opcode.POOL, Opcode.ELTWISE, Opcode.LUT, Opcode.VMATMUL})
_CONV_UNIT, _VEC_UNIT = 0, 1


def compute_unit(op) -> int | None:
    """The compute unit of a COMPUTE-queue opcode: 0 conv unit (CONV), 1 vector unit, None for
    NOP/HOST (which wait for both units)."""
    if op == Opcode.CONV:
        return _CONV_UNIT
    if op in _VECTOR_OPS:
        return _VEC_UNIT
    return None


def read_rate(ins: dict, t: Timing) -> float:
    """SRAM line reads per cycle, averaged over the instruction's cost, that a COMPUTE instruction
    makes when it runs alone (0..1): the conv unit's act gather (a 1x1 conv reads a new line
    every W / in_pitch rows of each K tile; other kernels jump between input rows: about a line
    per streaming cycle), the vector unit's line-cache misses (a window op's kernel rows advance
    stride * in_c bytes per output pixel; an eltwise stream reads its two inputs once; a VMATMUL
    streams its weight rows). The cycle model shares the one SRAM read port between two
    overlapping instructions with it (see :func:`schedule`)."""
    op = ins["opcode"]
    W = t.line_bytes
    cost = instr_cost(ins, t)
    if cost <= 0:
        return 0.0
    if op == Opcode.CONV:
        fixed = t.issue + t.conv_setup + t.R + t.array_latency + t.requant_latency
        if ins["k_h"] * ins["k_w"] == 1:
            nk = max(1, math.ceil(ins["in_c"] / t.R))
            m = ins["out_h"] * ins["out_w"]
            reads = nk * m * min(1.0, (ins["in_pitch"] or ins["in_c"]) / W)
        else:
            reads = cost - fixed
    elif op in (Opcode.DWCONV, Opcode.POOL):
        # the line-cache misses the command replay counts (super-groups fetch a pixel's lines
        # once for all their groups)
        reads = _window_sim(_key(ins, _WIN_KEYS) + (op == Opcode.DWCONV,), t)[1]
    elif op == Opcode.ELTWISE:
        reads = (ins["count"] + (ins["b_period"] or ins["count"])) / W
    elif op == Opcode.LUT:
        reads = ins["count"] / W
    elif op == Opcode.VMATMUL:
        reads = cost - t.issue - t.vector_setup - t.vector_latency
    else:
        return 0.0
    return max(0.0, min(1.0, reads / cost))


def _contend(rem_a: float, ra: float, rem_b: float, rb: float) -> tuple[float, float]:
    """Finish times (from now) of two instructions with ``rem`` cycles of work left sharing the
    round-robin read port at read rates ``ra``, ``rb``: the busier unit gets what the other
    leaves (at least half); the other's reads wait for the port when the busier one requests in
    the same cycle (one cycle in ``hi`` of them), so it slows by a factor 1 + lo * hi."""
    if rem_a <= 0 or rem_b <= 0 or not ra or not rb:
        return rem_a, rem_b
    lo, hi = (ra, rb) if ra <= rb else (rb, ra)
    s_lo = 1.0 / (1.0 + lo * hi)
    if lo > 0.5:
        s_lo = min(s_lo, 0.5 / lo)
    s_hi = min(1.0, max(0.5, 1.0 - lo * s_lo) / hi)
    sa, sb = (s_lo, s_hi) if ra <= rb else (s_hi, s_lo)
    tau = min(rem_a / sa, rem_b / sb)
    return (tau + rem_a - tau * sa, tau + rem_b - tau * sb)


def schedule(program: list[dict], config, check_hazards: bool = True, host_calls=None) -> Schedule:
    """Replay the queues with their tokens; raise SimError on deadlock, token misuse or a hazard.

    The COMPUTE queue issues in program order onto two units (hw.isa: ``overlap``): an instruction
    starts no earlier than the previous COMPUTE instruction started, after its own unit is free
    and, unless ``overlap`` = 1, after the other unit is free too (NOP/HOST wait for both). While
    two instructions overlap they share the SRAM read port (:func:`read_rate`, :func:`_contend`):
    the one issued earlier has its end (and its token pushes) moved.
    ``busy`` has per-queue keys and per-unit ``conv``/``vector`` (their sum may exceed ``total``).
    """
    t = Timing(config)
    program = normalize(program)
    n = len(program)
    start = [0] * n
    end = [0] * n
    # tokens: availability times, keyed (from_queue, to_queue); pushes must come in time order
    tokens: dict[tuple[int, int], deque] = {
        (0, 1): deque(),
        (1, 0): deque(),
        (1, 2): deque(),
        (2, 1): deque(),
    }
    last_push = {k: (-1, -1) for k in tokens}  # (time, instruction) of the latest push
    pushed: dict[int, list] = {}  # COMPUTE instruction -> its token cells (moved if it slows)
    inflight: list = [None, None]  # per compute unit: (instruction, read rate)
    free = [0, 0, 0]
    ufree = [0, 0]  # COMPUTE queue: conv unit, vector unit
    cissue = 0  # start of the previous COMPUTE instruction (in-order issue)
    busy = [0, 0, 0]
    ubusy = [0, 0]
    # split into segments at SYNC/DONE barriers
    seg_start = 0
    barrier_time = 0
    for i in range(n + 1):
        is_barrier = i == n or program[i]["opcode"] in (Opcode.SYNC, Opcode.DONE)
        if not is_barrier:
            continue
        queues = [deque(), deque(), deque()]
        for j in range(seg_start, i):
            q = QUEUE_OF[program[j]["opcode"]]
            queues[q.value].append(j)
        free = [max(f, barrier_time) for f in free]
        ufree = [max(f, barrier_time) for f in ufree]
        cissue = max(cissue, barrier_time)
        while any(queues):
            progressed = False
            for q in range(3):
                while queues[q]:
                    j = queues[q][0]
                    ins = program[j]
                    need = []
                    if ins["pop_prev"]:
                        if q == 0:
                            raise SimError(f"instruction {j}: LOAD cannot pop_prev")
                        need.append((q - 1, q))
                    if ins["pop_next"]:
                        if q == 2:
                            raise SimError(f"instruction {j}: STORE cannot pop_next")
                        need.append((q + 1, q))
                    if any(not tokens[k] for k in need):
                        break
                    u = None
                    if q == 1:
                        u = compute_unit(ins["opcode"])
                        if u is not None and ins["overlap"]:
                            s = max(cissue, ufree[u])
                        else:
                            s = max(cissue, ufree[0], ufree[1])
                    else:
                        s = free[q]
                    for k in need:
                        s = max(s, tokens[k].popleft()[0])
                    e = s + instr_cost(ins, t)
                    if q == 1 and u is not None:
                        rj = read_rate(ins, t)
                        o = inflight[1 - u]
                        if o is not None and end[o[0]] > s and t.shared_read_port:
                            # both units run: they share the SRAM read port
                            oj, ro = o
                            dj, do = _contend(e - s, rj, end[oj] - s, ro)
                            e = s + math.ceil(dj)
                            eo = s + math.ceil(do)
                            if eo != end[oj]:
                                ubusy[1 - u] += eo - end[oj]
                                busy[1] += eo - end[oj]
                                end[oj] = eo
                                ufree[1 - u] = max(ufree[1 - u], eo)
                                for cell in pushed.get(oj, ()):
                                    cell[0] = eo
                        inflight[u] = (j, rj)
                    start[j], end[j] = s, e
                    if q == 1:
                        cissue = s
                        if u is None:
                            ufree = [e, e]
                            inflight = [None, None]
                        else:
                            ufree[u] = e
                            ubusy[u] += e - s
                        free[q] = max(ufree)
                    else:
                        free[q] = e
                    busy[q] += e - s
                    for flag, nq in (("push_prev", q - 1), ("push_next", q + 1)):
                        if not ins[flag]:
                            continue
                        if nq < 0 or nq > 2:
                            raise SimError(f"instruction {j}: {Queue(q).name} cannot {flag}")
                        k = (q, nq)
                        if e < last_push[k][0]:
                            raise SimError(
                                f"token order: instruction {j} pushes to {Queue(nq).name} at "
                                f"cycle {e}, before instruction {last_push[k][1]} (earlier in "
                                f"the program) does at {last_push[k][0]}"
                            )
                        last_push[k] = (e, j)
                        cell = [e]
                        tokens[k].append(cell)
                        if q == 1:
                            pushed.setdefault(j, []).append(cell)
                    queues[q].popleft()
                    progressed = True
            if not progressed:
                stuck = [queues[q][0] for q in range(3) if queues[q]]
                raise SimError(f"deadlock: instructions {stuck} wait for tokens never pushed")
        barrier_time = max(free + ufree)
        if i < n:
            start[i] = barrier_time
            end[i] = barrier_time + t.issue
            barrier_time = end[i]
            free = [barrier_time] * 3
            ufree = [barrier_time] * 2
            cissue = barrier_time
            inflight = [None, None]
        seg_start = i + 1
    total = max(end) + t.startup if n else 0  # + the first fetch (the trace starts at issue)
    if check_hazards:
        check_overlap(program, host_calls)
        _check_hazards(program, start, end, host_calls)
    return Schedule(start, end, total, {"load": busy[0], "compute": busy[1], "store": busy[2],
                                        "conv": ubusy[0], "vector": ubusy[1]})


def overlap_conflict(ins: dict, other: dict | None, host_calls=None, fps=None) -> str | None:
    """Why COMPUTE instruction ``ins`` may not carry ``overlap`` = 1 when ``other`` is the last
    preceding COMPUTE instruction of the other unit (hw.isa's contract), or None when it may."""
    if other is None:
        return None
    ri, wi = fps[0] if fps else _footprint(ins, host_calls)
    ro, wo = fps[1] if fps else _footprint(other, host_calls)
    for x in wi:
        for y in ro + wo:
            if _conflict(x, y):
                return f"writes {x} which the other unit's instruction touches"
    for x in ri:
        for y in wo:
            if _conflict(x, y):
                return f"reads {x} which the other unit's instruction writes"
    for flag in ("push_prev", "push_next"):
        if ins[flag] and other[flag]:
            return f"both {flag}"
    return None


def check_overlap(program, host_calls=None) -> None:
    """Static check of hw.isa's ``overlap`` contract: every COMPUTE instruction with overlap = 1
    against the last preceding COMPUTE instruction of the other unit (since the last NOP/HOST/
    SYNC/DONE, which wait for both units); raises SimError naming both instructions."""
    last: list[int | None] = [None, None]
    for j, ins in enumerate(program):
        op = ins["opcode"]
        if op in (Opcode.SYNC, Opcode.DONE):
            last = [None, None]
            continue
        if QUEUE_OF[op] != Queue.COMPUTE:
            continue
        u = compute_unit(op)
        if u is None:
            last = [None, None]
            continue
        o = last[1 - u]
        if ins["overlap"] and o is not None:
            why = overlap_conflict(ins, program[o], host_calls)
            if why:
                raise SimError(f"hazard: instruction {j} has overlap=1 but {why} "
                               f"(instruction {o})")
        last[u] = j


def _check_hazards(program, start, end, host_calls=None):
    """Instructions overlapping in time must not conflict (one writer): instructions of different
    queues, and COMPUTE instructions on different units."""
    order = sorted(range(len(program)), key=lambda j: start[j])
    active: list[int] = []
    fps = {}
    for j in order:
        active = [a for a in active if end[a] > start[j]]
        if end[j] > start[j]:
            if j not in fps:
                fps[j] = _footprint(program[j], host_calls)
            rj, wj = fps[j]
            for a in active:
                ra, wa = fps[a]
                for x in wj:
                    for y in ra + wa:
                        if _conflict(x, y):
                            raise SimError(
                                f"hazard: instructions {a} and {j} overlap in time on {x}"
                            )
                for x in rj:
                    for y in wa:
                        if _conflict(x, y):
                            raise SimError(
                                f"hazard: instructions {a} and {j} overlap in time on {x}"
                            )
            active.append(j)


# ----------------------------------------------------------------------------------------------
# execution
class IsaSim:
    """Functional simulator of one NPU instance.

    ``program``: instruction bytes or decoded dicts; ``image``: list of (address, bytes) segments
    loaded into SRAM by :meth:`reset`; ``host_calls``: the host-call table (list of dicts with
    ``inputs`` and ``outputs``, each a list of dicts ``{"tensor", "addr", "shape", "dtype"}``);
    ``host_handler(call, {tensor: array}) -> {tensor: array}`` runs a HOST instruction's op.
    """

    def __init__(self, config, program, image, host_calls=None, host_handler=None):
        self.config = config
        self.program = (
            decode_program(program)
            if isinstance(program, bytes | bytearray)
            else normalize(program)
        )
        self.image = image
        self.host_calls = host_calls or []
        self.host_handler = host_handler
        self.timing = Timing(config)
        sizes = buffer_sizes(config)
        self.wbuf = [np.zeros(sizes["wbuf_slot"], np.int8) for _ in range(2)]
        self.pbuf = [np.zeros(sizes["pbuf_slot"], np.int8) for _ in range(2)]
        self.sram = np.zeros(config.sram_bytes, np.int8)
        self._sched: Schedule | None = None
        self._im2col_cache = None
        self.reset()

    # ------------------------------------------------------------------ memory
    def reset(self) -> None:
        """Clear SRAM and buffers and load the memory image."""
        self.sram[:] = 0
        for addr, blob in self.image:
            self._write_bytes(addr, np.frombuffer(bytes(blob), np.int8))
        self._im2col_cache = None

    def _check(self, addr, n):
        if addr < 0 or addr + n > self.sram.size:
            raise SimError(f"SRAM access [{addr}, {addr + n}) outside 0..{self.sram.size}")

    def _write_bytes(self, addr: int, b: np.ndarray) -> None:
        self._check(addr, b.size)
        self.sram[addr : addr + b.size] = b
        c = self._im2col_cache
        if c is not None and addr < c[1] and c[0] < addr + b.size:
            self._im2col_cache = None

    def write(self, addr: int, array: np.ndarray) -> None:
        """Write an array's bytes (C order) at ``addr``."""
        self._write_bytes(addr, np.frombuffer(np.ascontiguousarray(array).tobytes(), np.int8))

    def read(self, addr: int, shape, dtype="int8") -> np.ndarray:
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        self._check(addr, n)
        return self.sram[addr : addr + n].view(np.uint8).copy().view(dt).reshape(shape)

    def _i8(self, addr, n) -> np.ndarray:
        self._check(addr, n)
        return self.sram[addr : addr + n]

    # ------------------------------------------------------------------ run
    @property
    def sched(self) -> Schedule:
        if self._sched is None:
            self._sched = schedule(self.program, self.config, host_calls=self.host_calls)
        return self._sched

    def run(self) -> Schedule:
        """Execute the program once (SRAM must hold the inputs); return the cycle schedule."""
        sched = self.sched
        for j, ins in enumerate(self.program):
            op = ins["opcode"]
            fn = _EXEC.get(op)
            if fn is not None:
                try:
                    fn(self, ins)
                except SimError:
                    raise
                except (ValueError, IndexError) as e:
                    raise SimError(f"instruction {j} ({op.name}): {e}") from e
            if op == Opcode.DONE:
                break
        return sched

    # ------------------------------------------------------------------ opcodes
    def _load(self, ins):
        buf = (self.wbuf if ins["buf"] == BufSel.WBUF else self.pbuf)[ins["slot"]]
        n = ins["nbytes"]
        if n > buf.size:
            raise SimError(f"LOAD of {n} bytes overflows a {buf.size}-byte slot")
        buf[:n] = self._i8(ins["sram_addr"], n)

    def _im2col(self, ins, h, w, c, kh, kw, sh, sw, pt, pl, oh, ow, zp):
        pitch = ins["in_pitch"] or c
        key = (ins["in_addr"], h, w, c, pitch, kh, kw, sh, sw, pt, pl, oh, ow, zp)
        cache = self._im2col_cache
        if cache is not None and cache[2] == key:
            return cache[3]
        span = (h * w - 1) * pitch + c
        raw = self._i8(ins["in_addr"], span)
        x = np.lib.stride_tricks.as_strided(raw, shape=(h, w, c), strides=(w * pitch, pitch, 1))
        x = x.astype(np.float64)
        need_h, need_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
        pb, pr = max(0, need_h - h - pt), max(0, need_w - w - pl)
        if pt or pl or pb or pr:
            x = np.pad(x, ((pt, pb), (pl, pr), (0, 0)), constant_values=zp)
        if kh == 1 and kw == 1:
            cols = x[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :].reshape(oh * ow, c)
        else:
            v = sliding_window_view(x, (kh, kw), axis=(0, 1))  # H', W', C, kh, kw
            v = v[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
            cols = v.transpose(0, 1, 3, 4, 2).reshape(oh * ow, kh * kw * c)
        cols = np.ascontiguousarray(cols)
        self._im2col_cache = (ins["in_addr"], ins["in_addr"] + span, key, cols)
        return cols

    @staticmethod
    def _params(raw: np.ndarray, n: int):
        p = raw[: n * PARAM_RECORD_BYTES].view(np.uint8).copy().view("<i4").reshape(n, 3)
        return p[:, 0].astype(np.int64), p[:, 1].astype(np.int64), p[:, 2].astype(np.int64)

    def _conv(self, ins):
        h, w, c = ins["in_h"], ins["in_w"], ins["in_c"]
        kh, kw = ins["k_h"], ins["k_w"]
        oh, ow, n = ins["out_h"], ins["out_w"], ins["n_cols"]
        k = kh * kw * c
        if k * n > self.wbuf[0].size or n * PARAM_RECORD_BYTES > self.pbuf[0].size:
            raise SimError("CONV tile exceeds the WBUF/PBUF slot")
        cols = self._im2col(
            ins,
            h,
            w,
            c,
            kh,
            kw,
            ins["stride_h"],
            ins["stride_w"],
            ins["pad_top"],
            ins["pad_left"],
            oh,
            ow,
            ins["in_zp"],
        )
        wt = self.wbuf[ins["wslot"]][: k * n].reshape(k, n).astype(np.float64)
        bias, mult, shift = self._params(self.pbuf[ins["pslot"]], n)
        acc = wrap_int32((cols @ wt).astype(np.int64) + bias)
        mode = ins["acc"]
        if mode in (AccMode.MID, AccMode.LAST):
            acc = wrap_int32(acc + self.read(ins["acc_addr"], acc.shape, "<i4"))
        if mode in (AccMode.FIRST, AccMode.MID):
            self.write(ins["acc_addr"], acc.astype("<i4"))
            return
        y = requant(acc, mult, shift, ins["out_zp"], ins["act_min"], ins["act_max"])
        self._store_pixels(ins["out_addr"], ins["out_pitch"], y)

    def _store_pixels(self, addr, pitch, y):
        m, n = y.shape
        if pitch == n:
            self._write_bytes(addr, y.reshape(-1))
            return
        self._check(addr, (m - 1) * pitch + n)
        view = np.lib.stride_tricks.as_strided(self.sram[addr:], shape=(m, n), strides=(pitch, 1))
        view[...] = y
        c = self._im2col_cache
        if c is not None and addr < c[1] and c[0] < addr + (m - 1) * pitch + n:
            self._im2col_cache = None

    def _dwconv(self, ins):
        h, w, c, dm = ins["in_h"], ins["in_w"], ins["in_c"], ins["depth_mult"]
        kh, kw, sh, sw = ins["k_h"], ins["k_w"], ins["stride_h"], ins["stride_w"]
        oh, ow, pt, pl = ins["out_h"], ins["out_w"], ins["pad_top"], ins["pad_left"]
        co = c * dm
        x = self._i8(ins["in_addr"], h * w * c).reshape(h, w, c).astype(np.int64)
        if dm > 1:
            x = np.repeat(x, dm, axis=2)
        need_h, need_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
        pb, pr = max(0, need_h - h - pt), max(0, need_w - w - pl)
        x = np.pad(x, ((pt, pb), (pl, pr), (0, 0)), constant_values=ins["in_zp"])
        wts = self._i8(ins["w_addr"], kh * kw * co).reshape(kh, kw, co).astype(np.int32)
        bias, mult, shift = self._params(self._i8(ins["p_addr"], co * PARAM_RECORD_BYTES), co)
        if oh == 1 and ow == 1:  # global pooling-sized kernels (MEAN): one reduction
            acc = (x[:kh, :kw, :] * wts).sum(axis=(0, 1)).reshape(1, 1, co)
            kh = 0  # skip the tap loop
        else:
            acc = np.zeros((oh, ow, co), np.int64)
        for ky in range(kh):
            for kx in range(kw):
                acc += (
                    x[ky : ky + (oh - 1) * sh + 1 : sh, kx : kx + (ow - 1) * sw + 1 : sw, :]
                    * wts[ky, kx]
                )
        y = requant(wrap_int32(acc + bias), mult, shift, ins["out_zp"], ins["act_min"],
                    ins["act_max"])
        self._write_bytes(ins["out_addr"], y.reshape(-1))

    def _vmatmul(self, ins):
        m, k, n = ins["m"], ins["k"], ins["n"]
        x = self._i8(ins["in_addr"], m * k).reshape(m, k).astype(np.float64)
        wt = self._i8(ins["w_addr"], n * k).reshape(n, k).astype(np.float64)
        bias, mult, shift = self._params(self._i8(ins["p_addr"], n * PARAM_RECORD_BYTES), n)
        acc = wrap_int32((x @ wt.T).astype(np.int64) + bias)
        y = requant(acc, mult, shift, ins["out_zp"], ins["act_min"], ins["act_max"])
        self._write_bytes(ins["out_addr"], y.reshape(-1))

    def _pool(self, ins):
        h, w, c = ins["in_h"], ins["in_w"], ins["in_c"]
        kh, kw, sh, sw = ins["k_h"], ins["k_w"], ins["stride_h"], ins["stride_w"]
        oh, ow, pt, pl = ins["out_h"], ins["out_w"], ins["pad_top"], ins["pad_left"]
        x = self._i8(ins["in_addr"], h * w * c).reshape(h, w, c)
        pb = max(0, (oh - 1) * sh + kh - h - pt)
        pr = max(0, (ow - 1) * sw + kw - w - pl)
        pads = ((pt, pb), (pl, pr), (0, 0))

        def windows(a):
            v = sliding_window_view(a, (kh, kw), axis=(0, 1))
            return v[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]

        if ins["mode"] == PoolMode.MAX:
            y = windows(np.pad(x, pads, constant_values=-128)).max(axis=(-1, -2)).astype(np.int64)
        else:
            ones = np.pad(np.ones((h, w, 1), np.int64), pads)
            count = windows(ones).sum(axis=(-1, -2))
            acc = windows(np.pad(x.astype(np.int64), pads)).sum(axis=(-1, -2))
            half = count // 2
            num = np.where(acc > 0, acc + half, acc - half)
            y = np.where(num >= 0, num // count, -((-num) // count))
        y = np.clip(y, ins["act_min"], ins["act_max"])
        self._write_bytes(ins["out_addr"], y.astype(np.int8).reshape(-1))

    def _eltwise(self, ins):
        n = ins["count"]
        a = self._i8(ins["a_addr"], n).astype(np.int64)
        per = ins["b_period"]
        b = self._i8(ins["b_addr"], per or n).astype(np.int64)
        if per:
            if n % per:
                raise SimError(f"ELTWISE count {n} is not a multiple of b_period {per}")
            b = np.tile(b, n // per)
        p = self._i8(ins["p_addr"], 48).view(np.uint8).copy().view("<i4").astype(np.int64)
        (a_off, a_mult, a_shift, b_off, b_mult, b_shift, left, o_mult, o_shift, o_off, lo, hi) = p
        if ins["mode"] == EltMode.ADD:
            sa = mbqm((a + a_off) << left, a_mult, a_shift)
            sb = mbqm((b + b_off) << left, b_mult, b_shift)
            y = wrap_int32(mbqm(sa + sb, o_mult, o_shift) + o_off)
        elif ins["mode"] == EltMode.MUL:
            y = wrap_int32(mbqm((a + a_off) * (b + b_off), o_mult, o_shift) + o_off)
        else:
            raise SimError(f"ELTWISE mode {ins['mode']} is not defined")
        self._write_bytes(ins["out_addr"], np.clip(y, lo, hi).astype(np.int8))

    def _lut(self, ins):
        n = ins["count"]
        lut = self._i8(ins["lut_addr"], 256)
        x = self._i8(ins["in_addr"], n).astype(np.int16) + 128
        self._write_bytes(ins["out_addr"], lut[x])

    def _copy(self, ins):
        rb, rows, planes = ins["row_bytes"], ins["rows"], ins["planes"]
        if not (rb and rows and planes):
            return
        sp, sr, dp, dr = (
            ins["src_plane_stride"],
            ins["src_row_stride"],
            ins["dst_plane_stride"],
            ins["dst_row_stride"],
        )
        s0, d0 = ins["src_addr"], ins["dst_addr"]
        self._check(s0, (planes - 1) * sp + (rows - 1) * sr + rb)
        self._check(d0, (planes - 1) * dp + (rows - 1) * dr + rb)
        st = np.lib.stride_tricks.as_strided
        src = st(self.sram[s0:], shape=(planes, rows, rb), strides=(sp, sr, 1)).copy()
        dst = st(self.sram[d0:], shape=(planes, rows, rb), strides=(dp, dr, 1))
        dst[...] = src
        self._im2col_cache = None

    def _fill(self, ins):
        rb, rows, dr = ins["row_bytes"], ins["rows"], ins["dst_row_stride"]
        if not (rb and rows):
            return
        d0 = ins["dst_addr"]
        self._check(d0, (rows - 1) * dr + rb)
        dst = np.lib.stride_tricks.as_strided(self.sram[d0:], shape=(rows, rb), strides=(dr, 1))
        dst[...] = ins["value"]
        self._im2col_cache = None

    def _host(self, ins):
        k = ins["call"]
        if k >= len(self.host_calls) or self.host_handler is None:
            raise SimError(f"HOST call {k} has no handler")
        call = self.host_calls[k]
        vals = {
            d["tensor"]: self.read(d["addr"], tuple(d["shape"]), d["dtype"]) for d in call["inputs"]
        }
        outs = self.host_handler(k, vals)
        for d in call["outputs"]:
            v = np.asarray(outs[d["tensor"]])
            if tuple(v.shape) != tuple(d["shape"]) or v.dtype != np.dtype(d["dtype"]):
                raise SimError(
                    f"HOST call {k} returned {v.shape} {v.dtype} for tensor {d['tensor']}"
                )
            self.write(d["addr"], v)


_EXEC = {
    Opcode.LOAD: IsaSim._load,
    Opcode.CONV: IsaSim._conv,
    Opcode.DWCONV: IsaSim._dwconv,
    Opcode.POOL: IsaSim._pool,
    Opcode.ELTWISE: IsaSim._eltwise,
    Opcode.LUT: IsaSim._lut,
    Opcode.COPY: IsaSim._copy,
    Opcode.FILL: IsaSim._fill,
    Opcode.HOST: IsaSim._host,
    Opcode.VMATMUL: IsaSim._vmatmul,
}

_ = Queue  # re-exported meaning: QUEUE_OF maps opcodes to queues
