"""The NPU top (docs/npu.md): instruction fetch and dispatch, the LOAD / COMPUTE / STORE queues with
their dependency tokens, the CSRs of hw/regmap.py, the host port, the simulation backdoor, the
performance counters and the issue/retire trace ports, around the banked SRAM (hw/sram.py), the
LOAD/STORE units (hw/dma.py), the conv unit (hw/conv_unit.py) and the vector unit (hw/vector.py).

Fetch: the instruction at ``pc`` (16-byte aligned; instruction index ``(pc - PROG_ADDR) / 32``) is
read as the one to four SRAM lines that hold its 32 bytes, realigned, decoded and pushed into its
queue's FIFO (``hw.isa.QUEUE_OF``); SYNC and DONE wait until every queue is empty and every unit
idle (DONE then raises STATUS.done and stops). An opcode outside ``hw.isa.Opcode`` stops the NPU
with ERROR 1; a unit's ``error`` with ERROR 2; a PROG_ADDR that is not 16-byte aligned or a fetch
past the SRAM with ERROR 3 (ERROR_INDEX tells which instruction). After an error the NPU must be
reset (``rst``) before the next START (the units may hold half-done work); the SRAM keeps its
contents across resets.

Queues: each queue's head issues when its ``pop_*`` tokens are available and the queue has no
instruction in flight (LOAD, STORE: one at a time). The COMPUTE queue serves the conv unit, the
vector unit, NOP and HOST in program order with two slots, A (conv unit or HOST) and B (vector
unit): a head with header ``overlap`` = 0, and every NOP/HOST, waits until both slots are empty
(the semantics before the flag existed); with ``overlap`` = 1 a CONV waits only for slot A, a
vector op only for slot B (and for no HOST in A), so the array and the vector unit run at the same
time and may complete out of order (hw/isa.py states the compiler's contract). Tokens are pushed
when the unit reports the instruction complete (``idle`` high again); two pushes to one neighbour
in the same cycle both count. NOP retires at issue; HOST raises STATUS.host_wait with
HOST_CALL = ``call`` and retires when the host writes CTRL.HOST_DONE (the LOAD and STORE queues run
on meanwhile, as in the ISA's cycle model).

Trace ports: ``issue_valid[q]``/``issue_index[q]`` and ``retire_valid[q]``/``retire_index[q]`` for
q = LOAD 0, COMPUTE 1 (slot A: CONV, HOST, NOP), STORE 2, VECTOR 3 (slot B: the vector ops of the
COMPUTE queue); SYNC and DONE issue and retire on the COMPUTE pair (in the cycle the queues are
drained). ``status`` mirrors STATUS (bit 0 busy, 1 done, 2 host_wait, 3 error) for
harnesses.
"""

from __future__ import annotations

import warnings

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hw import regmap
from hw.config import Config
from hw.csr import grouped_read
from hw.dma import LoadUnit, StoreUnit
from hw.fifos import SlowHeadFIFO
from hw.isa import INSTR_BITS, INSTR_BYTES, INSTR_LAYOUT, Opcode
from hw.npu_if import (
    buf_write_signature,
    line_addr_bits,
    line_bytes,
    sram_read_signature,
    sram_write_signature,
    unit_signature,
)
from hw.sram import Sram, copies, data_reg

__all__ = ["NpuTop", "NullUnit", "top", "QUEUE_DEPTH", "index_bits", "host_cmd_layout",
           "unit_classes"]

#: Instructions buffered per queue between fetch and issue.
QUEUE_DEPTH = 8
LOADQ, COMPQ, STOREQ = 0, 1, 2
#: Trace port pairs: LOAD, COMPUTE (conv unit, NOP, HOST, SYNC, DONE), STORE, vector unit.
NTRACE = 4
_VECTOR_OPS = (Opcode.DWCONV, Opcode.POOL, Opcode.ELTWISE, Opcode.LUT, Opcode.VMATMUL)


def index_bits(config: Config) -> int:
    """Width of an instruction index (trace ports, ERROR_INDEX)."""
    return max(1, (config.sram_bytes // INSTR_BYTES - 1).bit_length())


def host_cmd_layout() -> data.StructLayout:
    return data.StructLayout({"addr": 32, "we": 1, "wdata": 32})


class NullUnit(wiring.Component):
    """Stand-in for a unit that is not built: accepts any command and raises ``error``."""

    def __init__(self, config: Config, buf: bool = False):
        members = dict(unit_signature().members)
        members.update({"rd": Out(sram_read_signature(config)),
                        "wr": Out(sram_write_signature(config))})
        if buf:
            members["buf"] = In(buf_write_signature(config))
        self._buf = buf
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        err = Signal()
        m.d.comb += [self.cmd.ready.eq(1), self.idle.eq(1), self.error.eq(err)]
        if self._buf:
            m.d.comb += self.buf.req.ready.eq(1)
        with m.If(self.cmd.valid):
            m.d.sync += err.eq(1)
        return m


def unit_classes(units: str = "auto"):
    """(conv unit class, vector unit class): the real ones when importable (``units="auto"``),
    else :class:`NullUnit` stand-ins (``units="null"`` forces them)."""
    conv = vec = None
    if units == "auto":
        try:
            from hw.conv_unit import ConvUnit as conv
        except Exception as e:  # a unit under construction must not break the top
            warnings.warn(f"hw.conv_unit not usable ({e}); NullUnit stands in", stacklevel=2)
        try:
            from hw.vector import VectorUnit as vec
        except Exception as e:
            warnings.warn(f"hw.vector not usable ({e}); NullUnit stands in", stacklevel=2)
    elif units != "null":
        raise ValueError(f"units must be 'auto' or 'null', got {units!r}")
    return conv, vec


class NpuTop(wiring.Component):
    """The NPU (see the module docstring and docs/npu.md)."""

    def __init__(self, config: Config, backdoor: bool = False, units: str = "auto",
                 ext_ports: bool = False):
        self.config = config
        self.backdoor = backdoor
        self.ext_ports = ext_ports
        self.W = W = line_bytes(config)
        if W & (W - 1) or W < 4:
            raise ValueError(f"SRAM line of {W} bytes: must be a power of two >= 4")
        self.ib = ib = index_bits(config)
        self._conv_cls, self._vec_cls = unit_classes(units)
        members = {
            "host_cmd": In(stream.Signature(host_cmd_layout())),
            "host_rsp": Out(stream.Signature(data.StructLayout({"rdata": 32}))),
            "irq": Out(1),
            "status": Out(4),
            "issue_valid": Out(NTRACE),
            "issue_index": Out(data.ArrayLayout(ib, NTRACE)),
            "retire_valid": Out(NTRACE),
            "retire_index": Out(data.ArrayLayout(ib, NTRACE)),
        }
        if backdoor:
            members.update({
                "bd_we": In(1), "bd_re": In(1), "bd_addr": In(line_addr_bits(config)),
                "bd_wdata": In(8 * W), "bd_rdata": Out(8 * W),
            })
        if ext_ports:
            # SoC ports (hw/soc.py): one more SRAM read and write master (lowest priority after
            # the units), and a start strobe that loads PROG_ADDR and clears the counters.
            members.update({
                "ext_rd": In(sram_read_signature(config)),
                "ext_wr": In(sram_write_signature(config)),
                "ext_start": In(1), "ext_prog_addr": In(24),
            })
        super().__init__(members)

    # ------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfg, W, ib = self.config, self.W, self.ib
        lw = (W - 1).bit_length()
        bd = 1 if self.backdoor else 0

        # ---- blocks
        m.submodules.load = load = LoadUnit(cfg)
        m.submodules.store = store = StoreUnit(cfg)
        m.submodules.conv = conv = (self._conv_cls(cfg) if self._conv_cls
                                    else NullUnit(cfg, buf=True))
        m.submodules.vec = vec = self._vec_cls(cfg) if self._vec_cls else NullUnit(cfg)
        # read masters: [backdoor], host, fetch, load, store, conv, vec
        # write masters: [backdoor], host, store, conv, vec
        ext = 1 if self.ext_ports else 0
        # with cfg.sram_read_ports == 2 the vector unit reads through the second port alone
        groups = [0] * (bd + 6 + ext)
        if cfg.sram_read_ports == 2:
            groups[bd + 5] = 1
        m.submodules.sram = sram = Sram(cfg, n_read=bd + 6 + ext, n_write=bd + 4 + ext,
                                        priority0=self.backdoor, read_groups=tuple(groups))
        if self.ext_ports:
            wiring.connect(m, wiring.flipped(self.ext_rd), sram.rd[bd + 6])
            wiring.connect(m, wiring.flipped(self.ext_wr), sram.wr[bd + 4])
        rd_host, rd_fetch = sram.rd[bd], sram.rd[bd + 1]
        wr_host = sram.wr[bd]
        wiring.connect(m, load.rd, sram.rd[bd + 2])
        wiring.connect(m, store.rd, sram.rd[bd + 3])
        wiring.connect(m, conv.rd, sram.rd[bd + 4])
        wiring.connect(m, vec.rd, sram.rd[bd + 5])
        wiring.connect(m, store.wr, sram.wr[bd + 1])
        wiring.connect(m, conv.wr, sram.wr[bd + 2])
        wiring.connect(m, vec.wr, sram.wr[bd + 3])
        wiring.connect(m, load.buf, conv.buf)
        if self.backdoor:
            m.d.comb += [
                sram.rd[0].req.valid.eq(self.bd_re), sram.rd[0].req.payload.addr.eq(self.bd_addr),
                self.bd_rdata.eq(sram.rd[0].rdata),
                sram.wr[0].req.valid.eq(self.bd_we), sram.wr[0].req.payload.addr.eq(self.bd_addr),
                sram.wr[0].req.payload.data.eq(self.bd_wdata),
                sram.wr[0].req.payload.mask.eq(Const((1 << W) - 1, W)),
            ]

        # ---- control state
        busy = Signal()
        done = Signal()
        error = Signal()
        host_wait = Signal()
        err_code = Signal(2)
        err_index = Signal(ib)
        host_call = Signal(16)
        prog_addr = Signal(24)
        running = busy & ~error
        start = Signal()          # CTRL.START strobe (from the host port) or ext_start
        host_done = Signal()      # CTRL.HOST_DONE strobe
        clear = Signal()          # CTRL.CLEAR strobe

        def past_end(a):
            return a[:24] > cfg.sram_bytes - INSTR_BYTES

        start_addr = Signal(24)   # PROG_ADDR, or ext_prog_addr with ext_start
        # past_end(start_addr) with the compares before the select: ext_start (the SoC
        # sequencer's decision) then selects a result, and does not start a 24-bit compare
        # (the routed die's path ran TX idle -> the sequencer -> ext_start -> here, issue #13)
        start_oob = Signal()
        if self.ext_ports:
            m.d.comb += [start_addr.eq(Mux(self.ext_start, self.ext_prog_addr, prog_addr)),
                         start_oob.eq(Mux(self.ext_start, past_end(self.ext_prog_addr),
                                          past_end(prog_addr)))]
            with m.If(self.ext_start):
                m.d.comb += [start.eq(1), clear.eq(1)]
                m.d.sync += prog_addr.eq(self.ext_prog_addr)
        else:
            m.d.comb += [start_addr.eq(prog_addr), start_oob.eq(past_end(prog_addr))]

        # ---- queues
        # An entry: the instruction, its index and (COMPUTE queue) its class as three decoded
        # bits, CONV / vector op / HOST, set at DECODE from registers (issue #13: decoding the
        # head's opcode was in front of the issue decision, which enables the queue's 270-bit
        # head register and the units' command registers).
        qw = INSTR_BITS + ib
        queue = SlowHeadFIFO if cfg.npu_issue_stages == 2 else fifo.SyncFIFOBuffered
        qs = [queue(width=qw + (3 if q == COMPQ else 0), depth=QUEUE_DEPTH) for q in range(3)]
        for q, f in enumerate(qs):
            m.submodules[f"q{q}"] = f

        # ---- fetch
        nlmax = max(-(-INSTR_BYTES // W), 1) + (1 if W > 16 else 0)
        fbuf = [data_reg(8 * W, name=f"fline{i}") for i in range(nlmax)]
        pc = Signal(24)
        pc_oob = Signal()   # pc + INSTR_BYTES is past the SRAM (set with pc: a register)

        fidx = Signal(ib)
        f_req = Signal(range(nlmax + 1))
        f_rsp = Signal(range(nlmax + 1))
        f_out = Signal(range(nlmax + 1))  # fetch reads in flight
        nl = Signal(range(nlmax + 1))
        if W > 16:
            off16 = pc[4:lw]
            m.d.comb += nl.eq(Mux(pc[:lw] > W - INSTR_BYTES, 2, 1))
            ins_raw = (Cat(*fbuf) >> (off16 * 128))[:INSTR_BITS]
        else:
            m.d.comb += nl.eq(INSTR_BYTES // W)
            ins_raw = Cat(*fbuf)[:INSTR_BITS]
        # DECODE's opcode tests as registers, set as the instruction's first line (which holds
        # its header) arrives: from the fetch buffer they started the NPU's routed ECP5 critical
        # path (the opcode -> SYNC / DONE and the queue -> advance -> pc's enable)
        line0 = (rd_fetch.rdata >> (off16 * 128)) if W > 16 else rd_fetch.rdata
        opc_in = data.View(INSTR_LAYOUT, Cat(line0, Const(0, INSTR_BITS))[:INSTR_BITS]) \
            .header.opcode.as_value()
        d_bad, d_bar, d_done = Signal(), Signal(), Signal()   # bad opcode, SYNC or DONE, DONE
        d_q = Signal(2)                                       # the queue of any other opcode
        d_cls = Signal(3)                                     # CONV, vector op, HOST
        with m.If(rd_fetch.rvalid & (f_rsp == 0)):
            m.d.sync += [d_bad.eq(opc_in > max(op.value for op in Opcode)),
                         d_cls.eq(Cat(opc_in == Opcode.CONV,
                                      Cat(*[opc_in == op for op in _VECTOR_OPS]).any(),
                                      opc_in == Opcode.HOST)),
                         d_bar.eq((opc_in == Opcode.SYNC) | (opc_in == Opcode.DONE)),
                         d_done.eq(opc_in == Opcode.DONE),
                         d_q.eq(Mux(opc_in == Opcode.LOAD, LOADQ,
                                    Mux((opc_in == Opcode.COPY) | (opc_in == Opcode.FILL),
                                        STOREQ, COMPQ)))]
        m.d.comb += [
            rd_fetch.req.payload.addr.eq(pc[lw:] + f_req),
        ]
        f_acc = rd_fetch.req.valid & rd_fetch.req.ready
        m.d.sync += f_out.eq(f_out + f_acc - rd_fetch.rvalid)
        with m.If(rd_fetch.rvalid):
            with m.Switch(f_rsp):
                for i in range(nlmax):
                    with m.Case(i):
                        m.d.sync += fbuf[i].eq(rd_fetch.rdata)
            m.d.sync += f_rsp.eq(f_rsp + 1)

        units_idle = load.idle & store.idle & conv.idle & vec.idle
        inflight = Signal(4)  # LOAD, COMPUTE slot A, STORE, COMPUTE slot B
        queues_empty = Cat(*[f.level == 0 for f in qs]).all()
        all_idle = units_idle & (inflight == 0) & queues_empty
        if cfg.npu_issue_stages == 2:
            # (FPGA clocks) a barrier (SYNC / DONE) reads all_idle a cycle late, from a
            # register: the units' idle flags no longer reach the fetch state, pc and fidx in
            # the cycle (on the routed ECP5 die, 15.8 ns, issue #13). Exact: while DECODE holds
            # a barrier (and in the REQ cycle before it) fetch pushes nothing, and nothing goes
            # busy without an issue from a non-empty queue, so all_idle stays once true. The
            # price: one cycle per SYNC / DONE.
            all_idle_q = Signal()
            m.d.sync += all_idle_q.eq(all_idle)
            barrier_ok = all_idle_q
        else:
            barrier_ok = all_idle
        barrier_retire = Signal()  # SYNC / DONE issue+retire pulse (COMPUTE pair)

        def fail(code, index):
            m.d.sync += [error.eq(1), err_code.eq(code), err_index.eq(index)]

        go = start & ~busy & (f_out == 0) & (start_addr[:4] == 0)
        go_addr, go_oob = start_addr, start_oob
        if cfg.npu_issue_stages == 2:
            # (FPGA clocks) fetch leaves IDLE a cycle after the start, from registers: the start
            # strobe (the host port's CTRL decode or the SoC sequencer's ext_start, across the
            # die) and its address select no longer reach pc's and fidx's enables (on the routed
            # ECP5 die, 14.9 ns, issue #13). busy, done and error still change in the start
            # cycle; fetch is in IDLE then and in the cycle after (busy was low). The price: one
            # cycle per run.
            go_q = Signal()
            go_addr, go_oob = Signal(24, reset_less=True), Signal(reset_less=True)
            m.d.sync += [go_q.eq(go), go_addr.eq(start_addr), go_oob.eq(start_oob)]
            go = go_q

        with m.FSM(name="fetch"):
            with m.State("IDLE"):
                with m.If(go):
                    m.d.sync += [pc.eq(go_addr), fidx.eq(0), f_req.eq(0), f_rsp.eq(0),
                                 pc_oob.eq(go_oob)]
                    m.next = "REQ"
            with m.State("REQ"):
                with m.If(~running):
                    m.next = "IDLE"
                with m.Elif(pc_oob):
                    fail(3, fidx)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += rd_fetch.req.valid.eq(f_req < nl)
                    with m.If(f_acc):
                        m.d.sync += f_req.eq(f_req + 1)
                    with m.If(rd_fetch.rvalid & (f_rsp + 1 == nl)):
                        m.next = "DECODE"
            with m.State("DECODE"):
                advance = Signal()
                with m.If(~running):
                    m.next = "IDLE"
                with m.Elif(d_bad):
                    fail(1, fidx)
                    m.next = "IDLE"
                with m.Elif(d_bar):
                    with m.If(barrier_ok):
                        m.d.comb += barrier_retire.eq(1)
                        with m.If(d_done):
                            m.d.sync += [done.eq(1), busy.eq(0)]
                            m.next = "IDLE"
                        with m.Else():
                            m.d.comb += advance.eq(1)
                with m.Else():
                    q = d_q
                    for i, f in enumerate(qs):
                        m.d.comb += [f.w_data.eq(Cat(ins_raw, fidx, d_cls)),
                                     f.w_en.eq((q == i) & f.w_rdy)]
                        with m.If((q == i) & f.w_rdy):
                            m.d.comb += advance.eq(1)
                with m.If(advance):
                    m.d.sync += [pc.eq(pc + INSTR_BYTES), fidx.eq(fidx + 1), f_req.eq(0),
                                 pc_oob.eq(past_end(pc + INSTR_BYTES)),
                                 f_rsp.eq(0)]
                    m.next = "REQ"

        # ---- issue / retire
        # COMPUTE queue: two slots, A (conv unit, HOST, NOP) and B (vector unit). A head with
        # header.overlap = 0 (and every NOP/HOST) issues only when both slots are empty; with
        # overlap = 1 a CONV needs only slot A empty, a vector op only slot B empty (and no HOST
        # in slot A). Trace pair 1 reports slot A (and SYNC/DONE), pair 3 slot B.
        tok = {k: Signal(8, name=f"tok_{k[0]}{k[1]}") for k in ((0, 1), (1, 0), (1, 2), (2, 1))}
        # tok != 0 as registers, set with the counts (the issue decision reads flags)
        tok_nz = {k: Signal(name=f"tok_nz_{k[0]}{k[1]}") for k in tok}
        inc = {k: Signal(2, name=f"inc_{k[0]}{k[1]}") for k in tok}
        dec = {k: Signal(name=f"dec_{k[0]}{k[1]}") for k in tok}
        nslot = 4  # LOAD, COMPUTE slot A, STORE, COMPUTE slot B
        inf_pp = Signal(nslot)   # in-flight push_prev per slot
        inf_pn = Signal(nslot)   # in-flight push_next per slot
        inf_idx = [Signal(ib, name=f"inf_idx{q}") for q in range(nslot)]
        a_host = Signal()        # slot A holds a HOST call (else a CONV)
        fire = [Signal(name=f"fire{q}") for q in range(3)]
        retire = [Signal(name=f"retire{q}") for q in range(nslot)]
        start_slot = Signal(nslot)  # the slot an issuing instruction occupies
        nop_fire = Signal()
        heads = []
        for q, f in enumerate(qs):
            h = data.View(INSTR_LAYOUT, f.r_data[:INSTR_BITS])
            hidx = f.r_data[INSTR_BITS:INSTR_BITS + ib]
            heads.append((h, hidx))
            need_prev = h.header.pop_prev if q > 0 else Const(0)
            need_next = h.header.pop_next if q < 2 else Const(0)
            tok_ok = ((~need_prev | tok_nz[(q - 1, q)] if q > 0 else Const(1))
                      & (~need_next | tok_nz[(q + 1, q)] if q < 2 else Const(1)))
            can = Signal(name=f"can{q}")
            if q == LOADQ:
                m.d.comb += can.eq(running & f.r_rdy & tok_ok & ~inflight[q])
                m.d.comb += [load.cmd.valid.eq(can), load.cmd.payload.eq(h.raw),
                             fire[q].eq(can & load.cmd.ready), dec[(1, 0)].eq(fire[q] & need_next),
                             start_slot[0].eq(fire[q])]
            elif q == STOREQ:
                m.d.comb += can.eq(running & f.r_rdy & tok_ok & ~inflight[q])
                m.d.comb += [store.cmd.valid.eq(can), store.cmd.payload.eq(h.raw),
                             fire[q].eq(can & store.cmd.ready),
                             dec[(1, 2)].eq(fire[q] & need_prev), start_slot[2].eq(fire[q])]
            else:
                is_conv, is_vec, is_host = (f.r_data[qw + i] for i in range(3))
                is_nop = ~is_conv & ~is_vec & ~is_host
                ov = h.header.overlap
                a_busy, b_busy = inflight[1], inflight[3]
                slot_ok = Mux(is_conv, ~a_busy & (~b_busy | ov),
                              Mux(is_vec, ~b_busy & (~a_busy | (ov & ~a_host)),
                                  ~a_busy & ~b_busy))
                m.d.comb += can.eq(running & f.r_rdy & tok_ok & slot_ok)
                m.d.comb += [
                    conv.cmd.valid.eq(can & is_conv), conv.cmd.payload.eq(h.raw),
                    vec.cmd.valid.eq(can & is_vec), vec.cmd.payload.eq(h.raw),
                    fire[q].eq(can & ((is_conv & conv.cmd.ready) | (is_vec & vec.cmd.ready)
                                      | is_host | is_nop)),
                    nop_fire.eq(can & is_nop),
                    dec[(0, 1)].eq(fire[q] & need_prev),
                    dec[(2, 1)].eq(fire[q] & need_next),
                    start_slot[1].eq(fire[q] & (is_conv | is_host)),
                    start_slot[3].eq(fire[q] & is_vec),
                ]
                with m.If(fire[q] & ~is_nop & ~is_vec):
                    m.d.sync += a_host.eq(is_host)
                with m.If(can & is_host):
                    m.d.sync += [host_wait.eq(1), host_call.eq(h.host.call)]
            m.d.comb += f.r_en.eq(fire[q])
        for s_ in range(nslot):
            h, hidx = heads[s_ if s_ < 3 else COMPQ]
            with m.If(start_slot[s_]):
                m.d.sync += [inf_pp[s_].eq(h.header.push_prev),
                             inf_pn[s_].eq(h.header.push_next), inf_idx[s_].eq(hidx)]
        # completion
        m.d.comb += [
            retire[0].eq(inflight[0] & load.idle),
            retire[1].eq(inflight[1] & Mux(a_host, ~host_wait, conv.idle)),
            retire[2].eq(inflight[2] & store.idle),
            retire[3].eq(inflight[3] & vec.idle),
        ]
        for s_ in range(nslot):
            with m.If(start_slot[s_]):
                m.d.sync += inflight[s_].eq(1)
            with m.Elif(retire[s_]):
                m.d.sync += inflight[s_].eq(0)
        h1 = heads[COMPQ][0]
        m.d.comb += [
            inc[(0, 1)].eq(retire[0] & inf_pn[0]),
            inc[(1, 0)].eq((retire[1] & inf_pp[1]) + (retire[3] & inf_pp[3])
                           + (nop_fire & h1.header.push_prev)),
            inc[(1, 2)].eq((retire[1] & inf_pn[1]) + (retire[3] & inf_pn[3])
                           + (nop_fire & h1.header.push_next)),
            inc[(2, 1)].eq(retire[2] & inf_pp[2]),
        ]
        for k, t in tok.items():
            # t moves by inc - dec in [-1, 3] (mod 256): the flag's next value is one of
            # five tests of t alone, selected by inc and dec (die run H's path was the issue
            # decision -> dec -> the adder -> a compare of its sum)
            nz_if = {-1: t != 1, 0: tok_nz[k], 1: t != 255, 2: t != 254, 3: t != 253}
            step = Signal(range(-1, 4), name=f"{t.name}_step")
            m.d.comb += step.eq(inc[k] - dec[k])
            with m.Switch(step):
                for d, v in nz_if.items():
                    with m.Case(d):
                        m.d.sync += tok_nz[k].eq(v)
            m.d.sync += t.eq(t + inc[k] - dec[k])

        # trace ports
        for q in range(3):
            h, hidx = heads[q]
            iv = fire[q] if q != COMPQ else fire[q] & ~start_slot[3]
            m.d.comb += [self.issue_valid[q].eq(iv), self.issue_index[q].eq(hidx),
                         self.retire_valid[q].eq(retire[q]), self.retire_index[q].eq(inf_idx[q])]
        m.d.comb += [self.issue_valid[3].eq(start_slot[3]),
                     self.issue_index[3].eq(heads[COMPQ][1]),
                     self.retire_valid[3].eq(retire[3]), self.retire_index[3].eq(inf_idx[3])]
        with m.If(nop_fire):
            m.d.comb += [self.retire_valid[COMPQ].eq(1),
                         self.retire_index[COMPQ].eq(heads[COMPQ][1])]
        with m.If(barrier_retire):
            m.d.comb += [self.issue_valid[COMPQ].eq(1), self.issue_index[COMPQ].eq(fidx),
                         self.retire_valid[COMPQ].eq(1), self.retire_index[COMPQ].eq(fidx)]

        # unit errors
        with m.If(running):
            with m.If(load.error):
                fail(2, inf_idx[0])
            with m.Elif(conv.error):
                fail(2, inf_idx[1])
            with m.Elif(vec.error):
                fail(2, inf_idx[3])
            with m.Elif(store.error):
                fail(2, inf_idx[2])

        # ---- start / host done
        with m.If(host_done & host_wait):
            m.d.sync += host_wait.eq(0)
        with m.If(error):
            m.d.sync += busy.eq(0)
        with m.If(start & ~busy & (f_out == 0)):
            misaligned = start_addr[:4] != 0
            m.d.sync += [busy.eq(~misaligned), done.eq(0), error.eq(misaligned),
                         err_code.eq(Mux(misaligned, 3, 0)), err_index.eq(0), host_wait.eq(0),
                         inflight.eq(0)]
            for t in (*tok.values(), *tok_nz.values()):
                m.d.sync += t.eq(0)

        # ---- counters
        n_ret = Signal(3)
        m.d.comb += n_ret.eq(self.retire_valid[0] + self.retire_valid[1] + self.retire_valid[2]
                             + self.retire_valid[3])
        stall_any = load.stall | store.stall | conv.stall | vec.stall
        # The units' MAC counts are registered before their sum (issue #13: the vector unit's
        # count is E2's take decision times a product; with the adder behind it that was a
        # 15.8 ns path on the die). MACS lags its events by one more cycle, which the contract
        # below allows: a unit's last MAC is many cycles before its results are stored.
        unit_macs = []
        for name, u in (("conv", conv), ("vec", vec)):
            r = Signal.like(u.macs, name=f"macs_{name}")
            m.d.sync += r.eq(u.macs)
            unit_macs.append(r)
        incs = {
            "CYCLES": Const(1),
            "LOAD_BUSY": ~load.idle,
            "CONV_BUSY": ~conv.idle,
            "VEC_BUSY": ~vec.idle,
            "STORE_BUSY": ~store.idle,
            "STALL": stall_any,
            "MACS": unit_macs[0] + unit_macs[1],
            "INSTRS": n_ret,
            "HOST_WAIT": host_wait,
        }
        assert list(incs) == list(regmap.COUNTERS)
        # Contract: a CSR read accepted in the first cycle STATUS.done shows sees the last busy
        # cycle's counts. Each increment is registered first (`inc_*`, zero outside busy), so
        # no unit's stall or busy logic reaches a 64-bit adder in the cycle it happens, and a
        # counter lags its events by one cycle; the host port samples CSRs one cycle after it
        # accepts the read (state "CSR" below), so the read still sees every count.
        # The clear (CTRL.CLEAR, ext_start) reaches the counters a cycle later, through
        # a registered copy per counter (hw.sram.copies): as one combinational net it was a
        # 578-pin LSR net from the SoC sequencer's start decision (issue #13). The counts equal
        # the undelayed clear's from the second cycle after the strobe on (the clear then drops
        # the pending increment, which the undelayed clear had zeroed); a CSR read sampled in
        # the cycle right after the strobe sees the counts before it (a host port read is
        # sampled one cycle after it is accepted, so a read after a host-port START or CLEAR
        # write sees zeros; only a read racing ext_start can see the old counts).
        cnt = {k: Signal(64, name=f"cnt_{k.lower()}") for k in incs}
        clear_q = copies(m, platform, clear, len(cnt), "clear_q")
        for (k, c), cq in zip(cnt.items(), clear_q, strict=True):
            inc = Signal(len(Value.cast(incs[k])), name=f"inc_{k.lower()}")
            m.d.sync += inc.eq(Mux(busy, incs[k], 0))
            with m.If(cq):
                m.d.sync += c.eq(0)
            with m.Else():
                m.d.sync += c.eq(c + inc)

        # ---- CSR read mux
        hwcfg = (cfg.array_rows & 0xFF) | (cfg.array_cols & 0xFF) << 8 | \
            (cfg.vector_lanes & 0xFF) << 16 | lw << 24
        status = Cat(busy, done, host_wait, error)
        csr_vals = {
            "ID": Const(regmap.ID_MAGIC, 32), "HWCFG": Const(hwcfg, 32),
            "SRAM_BYTES": Const(cfg.sram_bytes, 32), "CTRL": Const(0, 32), "STATUS": status,
            "PROG_ADDR": prog_addr, "HOST_CALL": host_call, "ERROR": err_code,
            "ERROR_INDEX": err_index, "FETCH_INDEX": fidx,
        }
        ob = (regmap.CSR_WORDS - 1).bit_length()
        h_addr = Signal(32)
        h_word = h_addr[2:2 + ob]
        # a counter's half is chosen first, into a word register per counter (loaded in every
        # cycle, beside its counter; LO at an even word, HI at the next): the groups' registers
        # then select among 4 counter words, not 8 halves across the controller (ECP5 timing,
        # issue #13: npu_csr_rd_g2 / g3, 11.2 ns on die run U). The word register samples the
        # counters when the group registers did before (state "CSR"), one cycle more per read.
        for k, c in cnt.items():
            assert regmap.offset(f"{k}_HI") == regmap.offset(f"{k}_LO") + 1
            assert regmap.offset(f"{k}_LO") % 2 == 0
            cw = Signal(32, name=f"csr_cw_{k.lower()}")
            m.d.sync += cw.eq(Mux(h_word[0], c[32:], c[:32]))
            csr_vals[f"{k}_LO"] = csr_vals[f"{k}_HI"] = cw
        assert set(csr_vals) == {c.name for c in regmap.CSRS}


        # ---- host port
        hc = self.host_cmd
        hp = hc.payload
        h_wdata = Signal(32)
        rsp = Signal(32)
        is_csr = hp.addr >= regmap.CSR_BASE
        in_sram = hp.addr < cfg.sram_bytes
        # the CSR read in two registered levels (hw.csr.grouped_read, groups of 8 words) after
        # the counters' word registers: those load from h_addr in the CSR state, the group
        # registers from them in CSR_G, rsp from the groups in CSR2 (the one mux of every CSR
        # into rsp, fed by the 64-bit counters across the controller, was a 12.7 ns path on
        # the routed ECP5 die, issue #13); two cycles more per CSR read
        csr_rd = grouped_read(m, regmap.CSRS, csr_vals, h_word, h_word // 8, 8, "npu_csr_rd")
        word_sel = h_addr[2:lw]
        m.d.comb += [
            self.host_rsp.payload.rdata.eq(rsp),
            rd_host.req.payload.addr.eq(h_addr[lw:]),
            wr_host.req.payload.addr.eq(h_addr[lw:]),
            wr_host.req.payload.data.eq(h_wdata.replicate(W // 4)),
            wr_host.req.payload.mask.eq(Const(0xF, W) << (word_sel * 4)),
        ]
        h_we = Signal()
        with m.FSM(name="host"):
            with m.State("IDLE"):
                m.d.comb += hc.ready.eq(1)
                with m.If(hc.valid):
                    m.d.sync += [h_addr.eq(hp.addr), h_wdata.eq(hp.wdata), h_we.eq(hp.we)]
                    with m.If(is_csr):
                        with m.If(hp.we):
                            with m.Switch(hp.addr[2:2 + ob]):
                                with m.Case(regmap.offset("CTRL")):
                                    m.d.comb += [
                                        start.eq(hp.wdata[regmap.CTRL_BITS["START"]]),
                                        host_done.eq(hp.wdata[regmap.CTRL_BITS["HOST_DONE"]]),
                                        clear.eq(hp.wdata[regmap.CTRL_BITS["CLEAR"]]),
                                    ]
                                with m.Case(regmap.offset("PROG_ADDR")):
                                    m.d.sync += prog_addr.eq(hp.wdata)
                        with m.Else():
                            m.next = "CSR"
                    with m.Elif(in_sram):
                        m.next = "SRAM"
                    with m.Elif(~hp.we):
                        m.d.sync += rsp.eq(0)
                        m.next = "RSP"
            with m.State("CSR"):
                m.next = "CSR_G"
            with m.State("CSR_G"):
                m.next = "CSR2"
            with m.State("CSR2"):
                m.d.sync += rsp.eq(csr_rd)
                m.next = "RSP"
            with m.State("SRAM"):
                with m.If(h_we):
                    m.d.comb += wr_host.req.valid.eq(1)
                    with m.If(wr_host.req.ready):
                        m.next = "IDLE"
                with m.Else():
                    m.d.comb += rd_host.req.valid.eq(1)
                    with m.If(rd_host.req.ready):
                        m.next = "RWAIT"
            with m.State("RWAIT"):
                with m.If(rd_host.rvalid):
                    m.d.sync += rsp.eq((rd_host.rdata >> (word_sel * 32))[:32])
                    m.next = "RSP"
            with m.State("RSP"):
                m.d.comb += self.host_rsp.valid.eq(1)
                with m.If(self.host_rsp.ready):
                    m.next = "IDLE"
        m.d.comb += [self.status.eq(status), self.irq.eq(done | host_wait | error)]
        return m


def top(config: Config) -> NpuTop:
    """Factory registered in hw/tops.py as "npu" (no backdoor: the synthesizable top)."""
    return NpuTop(config)
