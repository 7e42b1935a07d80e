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
FPGA). Reads and writes are delayed alike, so the ordering above holds unchanged. With 4, also
every bank is split into sub-banks of :data:`SUB_LINES` lines whose read data are registered
before the sub-bank select. With ``Config.sram_arbiter_stages`` = 1 the grants are registers
(:func:`registered_grant`): a master's ``ready`` no longer depends on the other masters' requests
in the same cycle; a request to a master not holding the grant waits one cycle. With 2 each
master's accepted request is also registered at its port (:func:`_port_registers`) and the grant
moves on the previous cycle's requests, so no master's request logic reaches anything past its
port in the cycle; reads take one cycle more (:func:`hw.npu_if.sram_read_latency`), writes are
delayed alike (the ordering above holds), and a request may wait two cycles for the grant.

Large memories and Verilog: Amaranth 0.5 always emits a memory's init data, one Verilog line per
word (amaranth-lang/amaranth#1522): 30 MB and ~10 minutes for the 8 MiB default SRAM. The banks
carry the attribute ``logicdie_noinit`` and :func:`_install_noinit` makes the RTLIL emitter skip
the (all-zero) init of memories with that attribute only, so the SRAM's Verilog is a plain
``reg [..] bank [..]`` array (contents undefined at power-up, as a real SRAM; Verilator zeroes it).
"""

from __future__ import annotations

import functools
import operator

from amaranth import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal
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

__all__ = ["Sram", "round_robin", "registered_grant", "delayed", "NOINIT_ATTR"]

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


#: Lines per sub-bank at ``Config.sram_read_latency`` = 4: the depth of an ECP5 DP16KD at 9
#: bits wide, so a sub-bank of one bank is word-bytes block RAMs side by side.
SUB_LINES = 2048


def data_reg(shape=1, **kwargs) -> Signal:
    """A data register: no reset. For registers every reader of which is qualified by a flag
    that is reset (a valid bit, a state), or that are written before they are read (an
    instruction's fields and what is derived from them). On ECP5 a synchronous reset is a
    routed LSR net to every flip-flop it resets, and the flip-flops of a tile must share one
    LSR net: the datapath's resets made the die's largest nets (issue #13, docs/fpga.md)."""
    # (src_loc_at=1: the signal is named after the caller's variable, as Signal(...) would be)
    return Signal(shape, reset_less=True, src_loc_at=1, **kwargs)


def global_net(m: Module, platform, sig: Signal, name: str) -> Signal:
    """``sig`` (1 bit, best a register's output) as a net for very many flip-flop control
    pins (a reset). On ECP5 (a platform with ``dsp_family == "ecp5"``, as ``logicdie synth``
    passes) it goes through a DCCA, i.e. on a global (primary clock) network: nextpnr promotes
    only clocks to globals itself, and as a routed net a reset to thousands of LSR pins was one
    of the die's longest, slowest-to-route nets (issue #13). Elsewhere (simulation) it is
    ``sig`` itself."""
    if getattr(platform, "dsp_family", None) != "ecp5":
        return sig
    out = Signal(name=name)
    m.submodules[f"{name}_dcc"] = Instance("DCCA", i_CLKI=sig, i_CE=1, o_CLKO=out)
    return out


def copies(m: Module, platform, sig: Signal, n: int, name: str) -> list[Signal]:
    """``n`` copies of ``sig`` one cycle later (data registers named ``name``0 ..), to split a
    net of very many pins into ``n`` nets. On ECP5 (``platform.dsp_family == "ecp5"``) each
    copy's flip-flops are FD1S3AX instances: yosys merges identical registers (``opt_merge``;
    a ``keep`` on the wires does not stop it), not instances of library cells. nextpnr's
    router1 rips a net up whole when it takes one of its wires, so a net of 1,000+ pins came
    back again and again in the die's routing tail (issue #13, docs/fpga.md session 19)."""
    out = [Signal(len(sig), name=f"{name}{k}", reset_less=True) for k in range(n)]
    ecp5 = getattr(platform, "dsp_family", None) == "ecp5"
    for k, q in enumerate(out):
        if not ecp5:
            m.d.sync += q.eq(sig)
            continue
        for i in range(len(sig)):
            m.submodules[f"{name}{k}_ff{i}"] = Instance(
                "FD1S3AX", p_GSR="DISABLED", i_D=sig[i], i_CK=ClockSignal(), o_Q=q[i])
    return out


def delayed(m: Module, sig, name: str, reset_less: bool = False) -> Signal:
    """``sig`` one cycle later (a register named ``name``; ``reset_less``: a data register, see
    :func:`data_reg`)."""
    q = (Signal.like(sig, name=name, reset_less=reset_less) if isinstance(sig, Signal)
         else Signal(len(sig), name=name, reset_less=reset_less))
    m.d.sync += q.eq(sig)
    return q


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


def registered_grant(m: Module, requests: list, name: str, priority0: bool = False,
                     stale: bool = False):
    """Grant logic with the grant in a register (``Config.sram_arbiter_stages`` >= 1): returns
    (readies, fire_valid, fire_index). The register names the master holding the grant; each
    cycle it moves round robin to the next requesting master after it (the holder itself when
    it is the only one), and stays when nobody requests. So ``ready`` of every master is a
    register compare, whatever the others request; a transfer is the holder's ``valid``. With
    ``stale`` the grant moves on the requests of the previous cycle (registered here), so no
    master's ``valid`` reaches the grant register either. With ``priority0`` master 0 (the
    simulation backdoor) still takes the port in the cycle it requests and the holder waits."""
    n = len(requests)
    g = Signal(range(max(2, n)), name=f"{name}_g")
    rr_reqs = requests
    if stale:
        rr_reqs = [delayed(m, r, f"{name}_req{i}") for i, r in enumerate(requests)]
    nv, ni = round_robin(m, rr_reqs, g)
    with m.If(nv):
        m.d.sync += g.eq(ni)
    held = [g == i for i in range(n)]
    fire_v = Signal(name=f"{name}_fv")
    fire_i = Signal(range(max(2, n)), name=f"{name}_fi")
    m.d.comb += [fire_v.eq(Array(requests)[g]), fire_i.eq(g)]
    if priority0:
        held = [Const(1)] + [h & ~requests[0] for h in held[1:]]
        with m.If(requests[0]):
            m.d.comb += [fire_v.eq(1), fire_i.eq(0)]
    return held, fire_v, fire_i


def _arbiter(m: Module, requests: list, name: str, priority0: bool, stages: int):
    """(readies, grant_valid, grant_index) of one arbiter with ``Config.sram_arbiter_stages``
    = ``stages``: :func:`registered_grant` (on the previous cycle's requests with 2), else
    :func:`round_robin` deciding in the cycle."""
    if stages:
        return registered_grant(m, requests, name, priority0, stale=stages == 2)
    last = Signal(range(max(2, len(requests))), name=f"{name}_last")
    gv, gi = round_robin(m, requests, last, priority0)
    with m.If(gv):
        m.d.sync += last.eq(gi)
    return [gv & (gi == k) for k in range(len(requests))], gv, gi


def _port_registers(m: Module, ports: list, readies: list, name: str):
    """``Config.sram_arbiter_stages`` = 2: each master's accepted request registered at its port
    (``ports``: (index, valid, payload fields)); returns (valid, master index, payload fields)
    of the one accepted in the previous cycle, selected by AND-OR from registers only (at most
    one master is accepted per cycle)."""
    vqs, fqs = [], []
    for (i, valid, fields), ready in zip(ports, readies, strict=True):
        vq = Signal(name=f"{name}{i}_vq")
        m.d.sync += vq.eq(valid & ready)
        fq = [Signal.like(f, name=f"{name}{i}_q{k}", reset_less=True) for k, f in enumerate(fields)]
        m.d.sync += [q.eq(f) for q, f in zip(fq, fields, strict=True)]
        vqs.append(vq)
        fqs.append(fq)
    v = Signal(name=f"{name}_vq")
    idx = Signal(range(max(2, max(i for i, _, _ in ports) + 1)), name=f"{name}_iq")
    m.d.comb += [v.eq(Cat(*vqs).any()),
                 idx.eq(_or_all([Mux(vq, i, 0) for vq, (i, _, _) in zip(vqs, ports,
                                                                         strict=True)]))]
    out = []
    for k, f in enumerate(ports[0][2]):
        o = Signal.like(f, name=f"{name}_f{k}")
        m.d.comb += o.eq(_or_all([Mux(vq, fq[k], 0) for vq, fq in zip(vqs, fqs, strict=True)]))
        out.append(o)
    return v, idx, out


def _or_all(values: list):
    return functools.reduce(operator.or_, values)


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

        arb = cfg.sram_arbiter_stages
        # ---- read arbiters, one per read port group
        ngroups = max(self.read_groups) + 1
        r_gv, r_gi, r_addr = [], [], []
        for g in range(ngroups):
            idx = [i for i, gg in enumerate(self.read_groups) if gg == g]
            sfx = "" if g == 0 else str(g)
            reqs = [self.rd[i].req.valid for i in idx]
            prio = self.priority0 and idx[0] == 0
            readies, gv, gl = _arbiter(m, reqs, f"r{sfx}", prio, arb)
            gi = Signal(range(max(2, self.n_read)), name=f"r_gi{sfx}")
            addr = Signal(ab, name=f"r_addr{sfx}")
            for k, i in enumerate(idx):
                m.d.comb += self.rd[i].req.ready.eq(readies[k])
            if arb == 2:
                gv, gq, (aq,) = _port_registers(
                    m, [(i, self.rd[i].req.valid, [self.rd[i].req.payload.addr]) for i in idx],
                    readies, f"rd{sfx}_")
                m.d.comb += [addr.eq(aq), gi.eq(gq)]
            else:
                for k, i in enumerate(idx):
                    with m.If(gl == k):
                        m.d.comb += [addr.eq(self.rd[i].req.payload.addr), gi.eq(i)]
            r_gv.append(gv)
            r_gi.append(gi)
            r_addr.append(addr)

        # ---- write arbiter
        wreqs = [p.req.valid for p in self.wr]
        w_readies, w_gv, w_gi = _arbiter(m, wreqs, "w", self.priority0, arb)
        w_addr = Signal(ab)
        w_data = Signal(8 * self.W)
        w_mask = Signal(self.W)
        for i, p in enumerate(self.wr):
            m.d.comb += p.req.ready.eq(w_readies[i])
        if arb == 2:
            w_gv, _, (aq, dq, mq) = _port_registers(
                m, [(i, p.req.valid, [p.req.payload.addr, p.req.payload.data, p.req.payload.mask])
                    for i, p in enumerate(self.wr)], w_readies, "wr_")
            m.d.comb += [w_addr.eq(aq), w_data.eq(dq), w_mask.eq(mq)]
        else:
            for i, p in enumerate(self.wr):
                with m.If(w_gi == i):
                    m.d.comb += [w_addr.eq(p.req.payload.addr), w_data.eq(p.req.payload.data),
                                 w_mask.eq(p.req.payload.mask)]

        # ---- the bank inputs: the grants themselves (latency 2) or registered (3 and 4)
        # (the bank pipeline: Config.sram_read_latency; sram_read_latency(cfg) adds the port
        # registers of sram_arbiter_stages = 2 in front of it)
        lat = cfg.sram_read_latency
        assert sram_read_latency(cfg) == lat + (arb == 2)
        if lat >= 3:
            regs = []
            for sig in [*r_gv, *r_gi, *r_addr, w_gv, w_addr, w_data, w_mask]:
                q = Signal.like(sig, name=f"{sig.name}_q")
                m.d.sync += q.eq(sig)
                regs.append(q)
            r_gv, r_gi, r_addr = (regs[k * ngroups:(k + 1) * ngroups] for k in range(3))
            w_gv, w_addr, w_data, w_mask = regs[3 * ngroups:]

        # ---- banks. Latency 4 splits each bank into sub-banks of SUB_LINES lines whose read
        # data are registered before the sub-bank select: a block RAM's slow clock-to-output and
        # the select across the block-RAM columns then take a cycle each.
        split = lat == 4
        sub = min(SUB_LINES, depth) if split else depth
        nsub = -(-depth // sub)
        sb = max(1, (sub - 1).bit_length()) if split else ab
        stages = 3 if split else 2             # cycles from the bank inputs to rdata
        lines = [Signal(8 * self.W, name=f"line{g}") for g in range(ngroups)]
        # per read port, the sub-bank of the read whose data are in the sub-bank registers
        # (its last register in one copy per bank and byte: the select of the byte's sub-bank
        # multiplexer, ~80 pins each on ``ecp5``; one register drove 600-1,300 pins per bit)
        sels = [[[0] * wb for _ in range(cfg.sram_banks)] for _ in range(ngroups)]
        for g in range(ngroups if nsub > 1 else 0):
            sel0 = delayed(m, r_addr[g][sb:], f"rsub{g}_0", reset_less=True)
            sel1 = iter(copies(m, platform, sel0, cfg.sram_banks * wb, f"rsub{g}_1_"))
            sels[g] = [[next(sel1) for _ in range(wb)] for _ in range(cfg.sram_banks)]
        for b in range(cfg.sram_banks):
            outs = [[] for _ in range(ngroups)]
            for k in range(nsub):
                mem = Memory(shape=8 * wb, depth=min(sub, depth - k * sub), init=[],
                             attrs={NOINIT_ATTR: 1})
                m.submodules[f"bank{b}_{k}" if split else f"bank{b}"] = mem
                here = w_gv & (w_addr[sb:] == k) if nsub > 1 else w_gv
                wp = mem.write_port(granularity=8)
                m.d.comb += [
                    wp.addr.eq(w_addr[:sb]),
                    wp.data.eq(w_data[8 * wb * b: 8 * wb * (b + 1)]),
                    wp.en.eq(w_mask[wb * b: wb * (b + 1)] & here.replicate(wb)),
                ]
                for g in range(ngroups):
                    rp = mem.read_port()
                    m.d.comb += [rp.addr.eq(r_addr[g][:sb]), rp.en.eq(1)]
                    if split:
                        q = Signal(8 * wb, name=f"sub{g}_{b}_{k}", reset_less=True)
                        m.d.sync += q.eq(rp.data)
                        outs[g].append(q)
                    else:
                        outs[g].append(rp.data)
            for g in range(ngroups):
                for y in range(wb):
                    lo = 8 * (wb * b + y)
                    m.d.comb += lines[g][lo:lo + 8].eq(
                        Array(o[8 * y:8 * y + 8] for o in outs[g])[sels[g][b][y]])

        # ---- response routing per group: (valid, master) through the read port (and the
        # sub-bank registers) and the rdata register
        for g in range(ngroups):
            v, i_ = r_gv[g], r_gi[g]
            for d in range(stages):
                v, i_ = delayed(m, v, f"rv{d}_{g}"), delayed(m, i_, f"ri{d}_{g}")
            rdata = Signal(8 * self.W, name=f"rdata{g}")
            m.d.sync += rdata.eq(lines[g])
            for i, p in enumerate(self.rd):
                if self.read_groups[i] == g:
                    m.d.comb += [p.rdata.eq(rdata), p.rvalid.eq(v & (i_ == i))]
        return m
