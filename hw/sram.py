"""The NPU's banked on-die SRAM with its read and write arbiters (docs/npu.md, hw/npu_if.py).

``config.sram_banks`` banks of ``config.sram_word_bytes``-byte words side by side form one line of
:func:`hw.npu_if.line_bytes` bytes. Every bank is an :class:`amaranth.lib.memory.Memory` (no init
data, so an 8 MiB SRAM stays a few lines of Verilog) with one synchronous read port and one write
port with byte enables: per cycle the SRAM serves one line read and one line write in total.

Ports: ``rd[i]`` (``In(sram_read_signature)``, ``n_read`` of them) and ``wr[j]``
(``In(sram_write_signature)``, ``n_write``). Each arbiter grants one request per cycle, round robin
over the masters (the master after the last granted one first); with ``priority0=True`` master 0
(the simulation backdoor) is always granted when it requests. A read accepted in cycle t has its
line on the shared ``rdata`` bus in cycle t + ``Config.sram_read_latency`` with the ``rvalid`` of
the requesting master high, so responses return to each master in request order. A write accepted in
cycle t is seen by every read accepted from cycle t + 1 on (a read and a write of the same line in
one cycle read the old line). With ``Config.sram_read_latency`` = 3 the granted read and write
(address, data, byte enables) are registered before the banks: the arbiters' decisions no longer
travel to the address pins of every block RAM in the same cycle (the NPU's critical path on an
FPGA). Reads and writes are delayed alike, so the ordering above holds unchanged.

Large memories and Verilog: Amaranth 0.5 always emits a memory's init data, one Verilog line per
word (amaranth-lang/amaranth#1522): 30 MB and ~10 minutes for the 8 MiB default SRAM. The banks
carry the attribute ``logicdie_noinit`` and :func:`_install_noinit` makes the RTLIL emitter skip
the (all-zero) init of memories with that attribute only, so the SRAM's Verilog is a plain
``reg [..] bank [..]`` array (contents undefined at power-up, as a real SRAM; Verilator zeroes it).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from hw.config import Config
from hw.npu_if import (
    line_addr_bits,
    line_bytes,
    sram_read_latency,
    sram_read_signature,
    sram_write_signature,
)

__all__ = ["Sram", "round_robin", "NOINIT_ATTR"]

NOINIT_ATTR = "logicdie_noinit"


def _install_noinit() -> None:
    """Skip ``$meminit`` for all-zero memories marked with :data:`NOINIT_ATTR` (see above)."""
    from amaranth.back import rtlil

    emitter = rtlil.ModuleEmitter
    if getattr(emitter, "_logicdie_noinit", False):
        return
    orig = emitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if NOINIT_ATTR in cell.attributes and not any(cell.init):
            return None
        return orig(self, cell_idx, cell)

    emitter.emit_memory = emit_memory
    emitter._logicdie_noinit = True


_install_noinit()


def round_robin(m: Module, requests: list, last: Signal, priority0: bool = False):
    """Grant logic: returns (grant_valid, grant_index). ``last`` is the index granted last; the
    caller updates it. Requests are scanned starting after ``last``."""
    n = len(requests)
    gv = Signal(name=f"{last.name}_gv")
    gi = Signal(range(max(2, n)), name=f"{last.name}_gi")
    with m.Switch(last):
        for lst in range(n):
            with m.Case(lst):
                order = [(lst + k) % n for k in range(1, n + 1)]
                if priority0:
                    order = [0] + [i for i in order if i != 0]
                with m.If(requests[order[0]]):
                    m.d.comb += [gv.eq(1), gi.eq(order[0])]
                for i in order[1:]:
                    with m.Elif(requests[i]):
                        m.d.comb += [gv.eq(1), gi.eq(i)]
    return gv, gi


class Sram(wiring.Component):
    """Banked SRAM with ``n_read`` read and ``n_write`` write masters (see module docstring).

    ``read_groups`` (one port index per read master, default all 0): with more than one index
    every bank gets one read port per group, each group its own round-robin arbiter and response
    bus, so masters of different groups read in the same cycle (``Config.sram_read_ports``; the
    NPU gives the vector unit its own port). Master 0's ``priority0`` applies within its group.
    """

    def __init__(self, config: Config, n_read: int, n_write: int, priority0: bool = False,
                 read_groups: tuple[int, ...] | None = None):
        self.config = config
        self.n_read, self.n_write = n_read, n_write
        self.priority0 = priority0
        self.read_groups = tuple(read_groups) if read_groups is not None else (0,) * n_read
        if len(self.read_groups) != n_read or min(self.read_groups) != 0:
            raise ValueError("read_groups must give each read master a port index from 0")
        self.W = line_bytes(config)
        self.lines = config.sram_bytes // self.W
        super().__init__({
            "rd": In(sram_read_signature(config)).array(n_read),
            "wr": In(sram_write_signature(config)).array(n_write),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        wb = cfg.sram_word_bytes
        depth = self.lines
        ab = line_addr_bits(cfg)

        # ---- read arbiters, one per read port group
        ngroups = max(self.read_groups) + 1
        r_gv, r_gi, r_addr = [], [], []
        for g in range(ngroups):
            idx = [i for i, gg in enumerate(self.read_groups) if gg == g]
            sfx = "" if g == 0 else str(g)
            last = Signal(range(max(2, len(idx))), name=f"r_last{sfx}")
            gv, gl = round_robin(m, [self.rd[i].req.valid for i in idx], last,
                                 self.priority0 and idx[0] == 0)
            gi = Signal(range(max(2, self.n_read)), name=f"r_gi{sfx}")
            addr = Signal(ab, name=f"r_addr{sfx}")
            for k, i in enumerate(idx):
                p = self.rd[i]
                m.d.comb += p.req.ready.eq(gv & (gl == k))
                with m.If(gl == k):
                    m.d.comb += [addr.eq(p.req.payload.addr), gi.eq(i)]
            with m.If(gv):
                m.d.sync += last.eq(gl)
            r_gv.append(gv)
            r_gi.append(gi)
            r_addr.append(addr)

        # ---- write arbiter
        w_last = Signal(range(max(2, self.n_write)), name="w_last")
        w_gv, w_gi = round_robin(m, [p.req.valid for p in self.wr], w_last, self.priority0)
        w_addr = Signal(ab)
        w_data = Signal(8 * self.W)
        w_mask = Signal(self.W)
        for i, p in enumerate(self.wr):
            m.d.comb += p.req.ready.eq(w_gv & (w_gi == i))
            with m.If(w_gi == i):
                m.d.comb += [w_addr.eq(p.req.payload.addr), w_data.eq(p.req.payload.data),
                             w_mask.eq(p.req.payload.mask)]
        with m.If(w_gv):
            m.d.sync += w_last.eq(w_gi)

        # ---- the bank inputs: the grants themselves (latency 2) or registered (latency 3)
        lat = sram_read_latency(cfg)
        if lat == 3:
            regs = []
            for sig in [*r_gv, *r_gi, *r_addr, w_gv, w_addr, w_data, w_mask]:
                q = Signal.like(sig, name=f"{sig.name}_q")
                m.d.sync += q.eq(sig)
                regs.append(q)
            r_gv, r_gi, r_addr = (regs[k * ngroups:(k + 1) * ngroups] for k in range(3))
            w_gv, w_addr, w_data, w_mask = regs[3 * ngroups:]

        # ---- banks
        lines = [Signal(8 * self.W, name=f"line{g}") for g in range(ngroups)]
        for b in range(cfg.sram_banks):
            mem = Memory(shape=8 * wb, depth=depth, init=[], attrs={NOINIT_ATTR: 1})
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port(granularity=8)
            m.d.comb += [
                wp.addr.eq(w_addr),
                wp.data.eq(w_data[8 * wb * b: 8 * wb * (b + 1)]),
                wp.en.eq(w_mask[wb * b: wb * (b + 1)] & w_gv.replicate(wb)),
            ]
            for g in range(ngroups):
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq(r_addr[g]), rp.en.eq(1),
                             lines[g][8 * wb * b: 8 * wb * (b + 1)].eq(rp.data)]

        # ---- response routing per group: (valid, master) through the read port and the rdata
        # register (the two cycles after the banks' inputs)
        for g in range(ngroups):
            v1, v2 = Signal(name=f"rv1_{g}"), Signal(name=f"rv2_{g}")
            i1, i2 = Signal.like(r_gi[g], name=f"ri1_{g}"), Signal.like(r_gi[g], name=f"ri2_{g}")
            rdata = Signal(8 * self.W, name=f"rdata{g}")
            m.d.sync += [v1.eq(r_gv[g]), i1.eq(r_gi[g]), v2.eq(v1), i2.eq(i1),
                         rdata.eq(lines[g])]
            for i, p in enumerate(self.rd):
                if self.read_groups[i] == g:
                    m.d.comb += [p.rdata.eq(rdata), p.rvalid.eq(v2 & (i2 == i))]
        return m
