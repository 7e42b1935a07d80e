"""The logic die: CSI-2 RX -> ISP -> tensor writer -> NPU -> metadata TX, one CSI-2 stream in and
one out, configured through one host port (docs/soc.md).

Blocks: :class:`hw.csi2_rx.Csi2Rx`, :class:`hw.isp.Isp`, :class:`hw.tensor_writer.TensorWriter`
(into the NPU's SRAM through the NPU's ``ext_wr`` master port), :class:`hw.npu.NpuTop` (with
``ext_ports``), :class:`hw.metadata_tx.MetadataTx` (reads the table, tensors and image rows through
``ext_rd``), the frame sequencer and the SoC CSRs of :func:`hw.regmap.soc_csrs`.

Frames (the contract the golden pipeline of sw/soc.py reproduces byte for byte):

* Every frame the RX closes (one status record per FS) gives exactly one metadata frame, in order,
  carrying the continuous 32-bit FRAME_COUNTER.
* Two staging buffers (STAGE0/1_ADDR) take the ISP's tensors: frame N+1's tensor is written while
  frame N infers. With no buffer free the writer holds the ISP back (and the ISP the RX): in
  simulation the input is back-pressured, nothing is dropped. A tensor is tagged with the index of
  the RX frame whose first pixel entered the ISP last (the ISP emits a frame's first tensor pixel
  before the next frame's first sensor pixel for every ROI of at least one box row).
* A frame the RX flagged (any :class:`hw.csi2.ErrorFlag`) is not inferred: RX_ERROR, VALID clear,
  no tensors. A clean frame without a complete tensor: ISP_ERROR. Otherwise the NPU runs
  PROG0/PROG1_ADDR (the buffer's program: the host prefixes the model's program with a COPY of the
  staging buffer into the model's input tensor), waiting first for the TX to finish the previous
  frame (the outputs are rewritten). An NPU error: NPU_ERROR (the NPU is reset). FS to NPU done
  beyond FRAME_BUDGET cycles: TIMEOUT, VALID clear, no tensors. Else VALID with the table's
  tensors, and in output mode IMAGE the tensor as RAW8 lines (IMAGE flag).
* Output mode RAW: every input burst is also forwarded to the output (cut-through, whole packets,
  never interleaved with a metadata packet) with its virtual channel's bit 0 toggled and the ECC
  byte adjusted (the sensor's VC 0 frame leaves on VC 1; a corrupt header stays exactly as corrupt);
  the metadata frames stay on VC 0. The interleaving depends on timing, each VC's bytes do not.
* KPI per frame: cycles_isp (FS to the tensor's last byte in SRAM), cycles_npu (start to done),
  cycles_total (FS to the TX command); the TX measures cycles_tx into the metadata trailer.
* HOST instructions stop the NPU with STATUS.host_wait: the host serves them through the NPU CSRs
  (``irq`` is high meanwhile).

Ports (flat, for the harness): ``in_*`` the CSI-2 input beats (:func:`hw.csi2.beat_layout`),
``out_*`` the CSI-2 output beats (same layout, one packet per burst), ``host_cmd_*`` /
``host_rsp_*`` the 32-bit host port, ``irq`` (NPU host_wait: a HOST call), ``frame_out`` (a
pulse per metadata frame command), ``busy`` (a tensor being written, the NPU running, the TX
busy or a frame record waiting; the ISP's own pipeline is not included).
"""

from __future__ import annotations

from amaranth import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
)
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from hw import regmap
from hw.config import Config
from hw.csi2 import COUNTER_NAMES, ecc_parity
from hw.csi2_rx import Csi2Rx
from hw.csr import grouped_read
from hw.fifos import SlowHeadFIFO
from hw.isp import Isp
from hw.metadata import MetaFlag
from hw.metadata_tx import MetadataTx
from hw.npu import NpuTop
from hw.sram import data_reg, global_net
from hw.systolic import registered_mul, small_mul
from hw.tensor_writer import TensorWriter

__all__ = ["Soc", "top", "BufState", "ISP_WAIT_LIMIT"]

#: SoC CSR words per first-level read multiplexer (the host port's read is two registers deep).
CSR_GROUP = 16

#: Cycles a clean frame's record waits for its tensor before it is sent with ISP_ERROR.
ISP_WAIT_LIMIT = 1 << 20


class BufState:
    """Staging buffer states (SOC_STATUS bits 9:8 and 11:10)."""
    FREE, FILLING, FULL, BUSY = 0, 1, 2, 3


class Soc(wiring.Component):
    """The logic die (module docstring). ``units="null"`` builds NPU stand-ins (fast builds)."""

    def __init__(self, config: Config, units: str = "auto"):
        self.config = config
        self.units = units
        n = config.csi2_lanes_bytes
        super().__init__({
            "in_data": In(8 * n), "in_n": In(n.bit_length()), "in_last": In(1),
            "in_valid": In(1), "in_ready": Out(1),
            "out_data": Out(8 * n), "out_n": Out(n.bit_length()), "out_last": Out(1),
            "out_valid": Out(1), "out_ready": In(1),
            "host_cmd_valid": In(1), "host_cmd_ready": Out(1), "host_cmd_addr": In(32),
            "host_cmd_we": In(1), "host_cmd_wdata": In(32),
            "host_rsp_valid": Out(1), "host_rsp_ready": In(1), "host_rsp_data": Out(32),
            "irq": Out(1), "frame_out": Out(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.rx = rx = Csi2Rx(cfg)
        m.submodules.isp = isp = Isp(cfg)
        m.submodules.writer = writer = TensorWriter(cfg)
        npu = NpuTop(cfg, units=self.units, ext_ports=True)
        npu_rst = Signal()        # the sequencer's request (RUN, NPU error)
        # The NPU's reset is a register: it reaches every flip-flop of the NPU, and as the
        # sequencer's combinational output it was the routed die's critical path (FSM state ->
        # the reset's LUT -> 11.6 ns of wire to the far LSR inputs). It takes effect one cycle
        # later, while the sequencer is in EMIT; the NPU starts again at the earliest two cycles
        # after that (EMIT -> WAIT -> NPU).
        # The NPU's reset is the die's reset or that register (as ResetInserter would make it)
        # as one net, in a domain of its own: on ECP5 on a global network (hw.sram.global_net).
        # As an OR of both per NPU module (ResetInserter's lowering) it made routed nets of
        # 600-1,800 LSR pins (issue #13). (Not a register of both: the NPU would leave a die
        # reset a cycle after the host port, which then loses its first command.)
        npu_rst_q = Signal()
        m.d.sync += npu_rst_q.eq(npu_rst)
        npu_rst_any = Signal()
        m.d.comb += npu_rst_any.eq(npu_rst_q | ResetSignal())
        m.domains.npu = ClockDomain("npu", local=True)
        m.d.comb += [ClockSignal("npu").eq(ClockSignal()),
                     ResetSignal("npu").eq(global_net(m, platform, npu_rst_any, "npu_rst_g"))]
        m.submodules.npu = DomainRenamer({"sync": "npu"})(npu)
        m.submodules.tx = tx = MetadataTx(cfg)
        wiring.connect(m, rx.o, isp.i)
        wiring.connect(m, isp.o, writer.i)
        wiring.connect(m, writer.wr, npu.ext_wr)
        wiring.connect(m, tx.rd, npu.ext_rd)
        regs = self._csr_storage(m, platform, isp, writer)
        raw_mode = regs["SOC_CFG"][regmap.SOC_CFG_BITS["mode"][0]:][:2] == regmap.OutputMode.RAW
        rec_room = Signal()      # the frame-record FIFO can take two more records
        self._streams(m, rx, tx, raw_mode, rec_room)
        seq = self._sequencer(m, rx, isp, writer, npu, npu_rst, tx, regs, rec_room)
        self._host_port(m, npu, regs, seq)
        return m

    # ------------------------------------------------------------------------------ streams
    def _streams(self, m, rx, tx, raw_mode, rec_room) -> None:
        """Input beats -> RX (and, in RAW mode, a copy of every burst to the output with its VC
        toggled: bit 6 of header byte 0, and the ECC byte adjusted by the parity of that bit, so
        the sensor's VC 0 frame leaves on VC 1 beside the metadata on VC 0). The output takes
        whole packets from the TX or the copy, never interleaving two packets."""
        n = self.config.csi2_lanes_bytes
        nw = n.bit_length()
        m.submodules.tee = tee = fifo.SyncFIFOBuffered(width=8 * n + nw + 1, depth=16)
        # input held back while the copy is full, or while frame records could overflow (a
        # flood of empty frames while the NPU is busy)
        room = rec_room & (~raw_mode | tee.w_rdy)
        m.d.comb += [
            rx.i.payload.data.as_value().eq(self.in_data), rx.i.payload.n.eq(self.in_n),
            rx.i.payload.last.eq(self.in_last), rx.i.valid.eq(self.in_valid & room),
            self.in_ready.eq(rx.i.ready & room),
        ]
        # the copy: bytes 0 and 3 of each burst rewritten
        pos = Signal(16)                       # byte position of this beat in its burst
        with m.If(self.in_valid & self.in_ready):
            m.d.sync += pos.eq(Mux(self.in_last, 0, pos + n))
        data = Signal(8 * n)
        toggles = []
        for k in range(n):
            byte = self.in_data[8 * k:8 * k + 8]
            at = pos + k
            toggles.append(Mux(at == 0, byte ^ 0x40, Mux(at == 3, byte ^ ecc_parity(1 << 6),
                                                           byte)))
        m.d.comb += [data.eq(Cat(*toggles)),
                     tee.w_data.eq(Cat(data, self.in_n, self.in_last)),
                     tee.w_en.eq(raw_mode & self.in_valid & self.in_ready)]
        # packet arbiter
        owner = Signal(2)                      # 0 none, 1 TX, 2 copy
        t_data, t_n, t_last = tee.r_data[:8 * n], tee.r_data[8 * n:8 * n + nw], tee.r_data[-1]
        use_tee = (owner == 2) | ((owner == 0) & tee.r_rdy)
        use_tx = (owner == 1) | ((owner == 0) & ~tee.r_rdy)
        m.d.comb += [
            self.out_valid.eq(Mux(use_tee, tee.r_rdy, use_tx & tx.o.valid)),
            self.out_data.eq(Mux(use_tee, t_data, tx.o.payload.data.as_value())),
            self.out_n.eq(Mux(use_tee, t_n, tx.o.payload.n)),
            self.out_last.eq(Mux(use_tee, t_last, tx.o.payload.last)),
            tee.r_en.eq(use_tee & self.out_ready),
            tx.o.ready.eq(use_tx & self.out_ready),
        ]
        beat = self.out_valid & self.out_ready
        with m.If(beat):
            m.d.sync += owner.eq(Mux(self.out_last, 0, Mux(use_tee, 2, 1)))

    # ------------------------------------------------------------------------------ registers
    def _csr_storage(self, m, platform, isp, writer) -> dict:
        """RW CSR registers by name; the ISP parameter registers drive ``isp.params``."""
        regs = {c.name: Signal(32, name=f"csr_{c.name.lower()}")
                for c in regmap.soc_csrs() if c.access == "RW"}
        for name, field, idx in regmap.isp_csr_fields():
            tgt = isp.params[field]
            if idx is not None:
                tgt = tgt[idx]
            tgt = Value.cast(tgt)
            # the register holds the field's bits only (reads extend them by the field's sign):
            # 33 words of ISP parameters are 448 bits on `ecp5`, not 1,056
            regs[name] = Signal(tgt.shape(), name=f"csr_{name.lower()}")
            m.d.comb += tgt.eq(regs[name])
        p = isp.params
        # the frame's pixels, a product of two ISP registers with registered operands and
        # product (on ECP5 one MULT18X18D's own registers: run U's ``npix``, 11.5 ns through a
        # combinational one, issue #13). It follows a write of OUT_W / OUT_H two cycles later;
        # the writer reads it when a frame's first pixel has passed the ISP, long after.
        npix = registered_mul(m, platform, p.out_w, p.out_h, "npix")
        m.d.comb += [writer.channels3.eq(p.channels3), writer.n_pixels.eq(npix)]
        return regs

    # ------------------------------------------------------------------------------ sequencer
    def _sequencer(self, m, rx, isp, writer, npu, npu_rst, tx, regs, rec_room) -> dict:
        cfg_mode = regs["SOC_CFG"][regmap.SOC_CFG_BITS["mode"][0]:][:2]
        enable = regs["SOC_CFG"][regmap.SOC_CFG_BITS["enable"][0]]
        now = Signal(32)
        m.d.sync += now.eq(now + 1)

        # ---- RX frames: one record (flags, FS time) per status strobe; tags for the ISP
        n_status = Signal(16)
        sof_tag = Signal(16)
        open_stamp = Signal(32)
        in_frame_d = Signal()
        m.d.sync += in_frame_d.eq(rx.in_frame)
        with m.If((rx.in_frame & ~in_frame_d) | (rx.status_valid & rx.in_frame)):
            m.d.sync += open_stamp.eq(now)
        with m.If(rx.status_valid):
            m.d.sync += n_status.eq(n_status + 1)
        with m.If(rx.o.valid & rx.o.ready & rx.o.payload.sof):
            m.d.sync += sof_tag.eq(n_status)
        # (the head reloads only while empty: its enables are not EMIT's handshake; a record
        # is read once per frame, so the cycles are SyncFIFOBuffered's)
        m.submodules.records = rec = SlowHeadFIFO(width=8 + 32, depth=8)
        m.d.comb += rec_room.eq(rec.level <= rec.depth - 3)
        m.d.comb += [rec.w_data.eq(Cat(rx.status.flags, open_stamp)),
                     rec.w_en.eq(rx.status_valid)]
        r_flags, r_stamp = rec.r_data[:8], rec.r_data[8:]

        # ---- staging buffers
        state = [Signal(2, name=f"buf{b}_state") for b in range(2)]
        tag = [Signal(16, name=f"buf{b}_tag") for b in range(2)]
        done_at = [Signal(32, name=f"buf{b}_done") for b in range(2)]
        stage_addr = [regs["STAGE0_ADDR"], regs["STAGE1_ADDR"]]
        prog_addr = [regs["PROG0_ADDR"], regs["PROG1_ADDR"]]
        wbuf = Signal()                       # buffer the writer fills
        free0 = state[0] == BufState.FREE
        # the buffers' states after this cycle (``state_n``; every update below sets them):
        # the writer's ``buf_ok`` is a register set from them (and from SOC_CFG.enable, so an
        # enable takes effect a cycle later), so the writer's start decision, far across the
        # die, starts from a flip-flop and not from the SoC's state compares (on the routed
        # die buf0_state -> buf_ok -> the writer's start -> back -> the next tags was run Q's
        # 15.8 ns path, issue #13); buf_addr's select is the current state, as buf_ok's is
        state_n = [Signal(2, name=f"buf{b}_state_n") for b in range(2)]
        m.d.comb += [sn.eq(st) for sn, st in zip(state_n, state, strict=True)]
        m.d.sync += [st.eq(sn) for st, sn in zip(state, state_n, strict=True)]
        buf_ok = Signal(name="buf_ok_q")
        m.d.sync += buf_ok.eq(enable & ((state_n[0] == BufState.FREE)
                                        | (state_n[1] == BufState.FREE)))
        m.d.comb += [
            writer.buf_ok.eq(buf_ok),
            writer.buf_addr.eq(Mux(free0, stage_addr[0], stage_addr[1])),
        ]
        # the buffers' tags after this cycle (``tag_n``): the sequencer's tag-to-head compares
        # are registers set from them and from the head's next value (below)
        # (``sof_n[b]``: buffer b takes sof_tag as its tag now; its tag-to-head flags select
        # between tests of sof_tag and of its tag, so the writer's start only selects)
        tag_n = [Signal(16, name=f"buf{b}_tag_n") for b in range(2)]
        sof_n = [Signal(name=f"buf{b}_sof_n") for b in range(2)]
        m.d.comb += [tn.eq(Mux(sn, sof_tag, tg))
                     for tn, sn, tg in zip(tag_n, sof_n, tag, strict=True)]
        with m.If(writer.start & ~writer.restart):
            m.d.sync += wbuf.eq(~free0)
            with m.If(free0):
                m.d.comb += [state_n[0].eq(BufState.FILLING), sof_n[0].eq(1)]
            with m.Else():
                m.d.comb += [state_n[1].eq(BufState.FILLING), sof_n[1].eq(1)]
        with m.If(writer.restart):
            for b in range(2):
                with m.If(wbuf == b):
                    m.d.comb += sof_n[b].eq(1)
        m.d.sync += [t.eq(tn) for t, tn in zip(tag, tag_n, strict=True)]
        with m.If(writer.done):
            for b in range(2):
                with m.If(wbuf == b):
                    m.d.comb += state_n[b].eq(Mux(writer.complete, BufState.FULL,
                                                  BufState.FREE))
        # a buffer's done time is ``now`` in its last FILLING cycle, which is the writer's
        # ``done`` cycle (``done`` ends FILLING, and only the buffer FILLING is written): the
        # 32 flip-flops load in every FILLING cycle, so their enable is a compare of the state
        # register, not the writer's ``done`` decision from across the die (ECP5 timing,
        # issue #13: buf0/1_done 11.2 ns on die run U)
        for b in range(2):
            with m.If(state[b] == BufState.FILLING):
                m.d.sync += done_at[b].eq(now)

        # ---- the frame sequencer
        head = Signal(16)                     # index of the record at the FIFO's head
        sel = Signal()                        # buffer of the frame being inferred
        sel_valid = Signal()
        flags = Signal(16)
        wait_n = Signal(range(ISP_WAIT_LIMIT + 1))
        c_isp = Signal(32)
        c_npu = Signal(32)
        npu_t0 = Signal(32)
        tx_busy = Signal()
        tx_acc_d = Signal()
        tx_buf = Signal()
        tx_buf_valid = Signal()
        tx_t0 = Signal(32)
        acc_now = data_reg(32)                # now and EMIT's total, a cycle late
        acc_total = data_reg(32)
        kpi = {k: Signal(32, name=k.lower()) for k in regmap.SOC_KPI}
        cnt = {k: Signal(32, name=k.lower()) for k in regmap.SOC_COUNTERS}
        npu_st = npu.status                   # bit 0 busy, 1 done, 2 host_wait, 3 error
        tx_accept = tx.cmd.valid & tx.cmd.ready
        # tag == head and tag < head (mod 2^16) as registers, set from the next tags and head
        # (exact: they change only by those assignments), so WAIT's decisions start from flags,
        # not from a 16-bit subtract and compares of the registers (on the routed die the
        # sequencer's state was a 15.2 ns path, issue #13)
        # (the head index moves on a cycle after the TX takes EMIT's command: below)
        head_n = Signal(16)
        m.d.comb += head_n.eq(Mux(tx_acc_d, head + 1, head))
        m.d.sync += head.eq(head_n)
        t_eq = [Signal(name=f"buf{b}_at_head", init=1) for b in range(2)]
        t_old = [Signal(name=f"buf{b}_older") for b in range(2)]
        for b in range(2):
            m.d.sync += [t_eq[b].eq(Mux(sof_n[b], sof_tag == head_n, tag[b] == head_n)),
                         t_old[b].eq(Mux(sof_n[b], (sof_tag - head_n)[15],
                                         (tag[b] - head_n)[15]))]
        full_eq = [(state[b] == BufState.FULL) & t_eq[b] for b in range(2)]
        older = t_old                                             # tag < head (mod 2^16)
        newer = [~t_old[b] & ~t_eq[b] for b in range(2)]
        m.d.sync += tx_acc_d.eq(tx_accept)
        m.d.comb += tx_busy.eq(~tx.idle | tx_acc_d)
        tx_busy_d = Signal()
        m.d.sync += tx_busy_d.eq(tx_busy)
        # KPI_TX loads a cycle after the TX went idle, from a register of now - tx_t0 (the
        # value of the idle cycle): its 32 enables do not wait on the TX's idle reduction, nor
        # its D on the subtract (die run U: tx_busy_d -> kpi_tx, issue #13)
        tx_span = data_reg(32, name="tx_span")
        tx_end_d = Signal()
        m.d.sync += [tx_span.eq(now - tx_t0), tx_end_d.eq(tx_busy_d & ~tx_busy)]
        with m.If(tx_end_d):
            m.d.sync += kpi["KPI_TX"].eq(tx_span)
        with m.If(tx_busy_d & ~tx_busy):
            with m.If(tx_buf_valid):
                m.d.sync += tx_buf_valid.eq(0)
                for b in range(2):
                    with m.If(tx_buf == b):
                        m.d.comb += state_n[b].eq(BufState.FREE)

        valid = Signal()
        m.d.comb += valid.eq((flags & int(MetaFlag.VALID)).any())
        # The counters add registered event pulses (a cycle after the event), so an event's
        # decision is not the enable of a 32-bit adder's register, and EMIT's ``total >
        # budget`` is a register ``over``, set from the next cycle's total (now + 1 - r_stamp:
        # the records' head holds until EMIT pops it); FRAME_BUDGET acts a cycle after its
        # write (ECP5 timing, issue #13: TIMEOUTS / FRAMES_VALID were 13 ns paths)
        over = Signal()
        m.d.sync += over.eq((now + 1 - r_stamp)[:32] > regs["FRAME_BUDGET"])
        ev = {k: Signal(name=f"ev_{k.lower()}") for k in cnt}
        m.d.sync += [e.eq(0) for e in ev.values()]
        for k, e in ev.items():
            with m.If(e):
                m.d.sync += cnt[k].eq(cnt[k] + 1)
        with m.FSM(name="seq"):
            with m.State("WAIT"):
                with m.If(rec.r_rdy & enable):
                    for b in range(2):   # tensors of frames already sent: release
                        with m.If((state[b] == BufState.FULL) & older[b]):
                            m.d.comb += state_n[b].eq(BufState.FREE)
                    m.d.sync += [sel_valid.eq(0), c_isp.eq(0), c_npu.eq(0)]
                    with m.If(r_flags != 0):
                        for b in range(2):
                            with m.If(full_eq[b]):
                                m.d.comb += state_n[b].eq(BufState.FREE)
                        m.d.sync += [flags.eq(int(MetaFlag.RX_ERROR)), wait_n.eq(0)]
                        m.next = "EMIT"
                    with m.Elif(full_eq[0] | full_eq[1]):
                        b_sel = Mux(full_eq[0], 0, 1)
                        m.d.sync += [sel.eq(b_sel), sel_valid.eq(1), wait_n.eq(0),
                                     c_isp.eq(Mux(full_eq[0], done_at[0], done_at[1]) - r_stamp)]
                        for b in range(2):
                            with m.If(b_sel == b):
                                m.d.comb += state_n[b].eq(BufState.BUSY)
                        m.next = "NPU"
                    w_newer = Mux(wbuf, newer[1], newer[0])
                    w_filling = Mux(wbuf, state[1], state[0]) == BufState.FILLING
                    with m.Elif((writer.filling & w_newer & w_filling)
                                | ((state[0] == BufState.FULL) & newer[0])
                                | ((state[1] == BufState.FULL) & newer[1])
                                | (wait_n == ISP_WAIT_LIMIT)):
                        m.d.sync += [flags.eq(int(MetaFlag.ISP_ERROR)), wait_n.eq(0),
                                     ev["ISP_ERRORS"].eq(1)]
                        m.next = "EMIT"
                    with m.Else():
                        m.d.sync += wait_n.eq(wait_n + 1)
            with m.State("NPU"):
                # the TX's busy a cycle late (a register: the TX reader's idle test was the
                # start of the routed die's critical path, issue #13). Safe: a command the TX
                # takes in EMIT makes tx_busy_d high by the time this state is reached (EMIT ->
                # WAIT -> NPU); the NPU starts at most one cycle after the TX finishes.
                with m.If(~tx_busy_d & ~npu_st[0]):
                    m.d.comb += npu.ext_start.eq(1)
                    m.d.sync += npu_t0.eq(now)
                    m.next = "RUN"
                m.d.comb += npu.ext_prog_addr.eq(Mux(sel, prog_addr[1], prog_addr[0]))
            with m.State("RUN"):
                with m.If(npu_st[3]):
                    m.d.comb += npu_rst.eq(1)
                    m.d.sync += [flags.eq(int(MetaFlag.NPU_ERROR)), c_npu.eq(now - npu_t0),
                                 ev["NPU_ERRORS"].eq(1)]
                    m.next = "EMIT"
                with m.Elif(npu_st[1] & ~npu_st[0]):
                    m.d.sync += [
                        c_npu.eq(now - npu_t0),
                        flags.eq(int(MetaFlag.VALID) | Mux(cfg_mode == regmap.OutputMode.IMAGE,
                                                           int(MetaFlag.IMAGE), 0)),
                    ]
                    m.next = "EMIT"
            with m.State("EMIT"):
                # TIMEOUT iff an inferred frame's cycles_total (FS to this command, the header's
                # value) exceeds FRAME_BUDGET: VALID and IMAGE clear, no tensors
                total = now - r_stamp
                budget = regs["FRAME_BUDGET"]
                late = valid & (budget != 0) & over
                out_flags = Mux(late, int(MetaFlag.TIMEOUT), flags)
                p = isp.params
                row_bytes = Mux(p.channels3, small_mul(Const(3), p.out_w), p.out_w)
                m.d.comb += [
                    tx.cmd.valid.eq(~tx_busy),
                    tx.cmd.payload.frame_counter.eq(regs["FRAME_COUNTER"]),
                    tx.cmd.payload.flags.eq(out_flags),
                    tx.cmd.payload.cycles_isp.eq(c_isp),
                    tx.cmd.payload.cycles_npu.eq(c_npu),
                    tx.cmd.payload.cycles_total.eq(total),
                    tx.cmd.payload.table_addr.eq(regs["MD_TABLE_ADDR"]),
                    tx.cmd.payload.tensors.eq(valid & ~late),
                    tx.cmd.payload.image.eq((flags & int(MetaFlag.IMAGE)).any() & ~late),
                    tx.cmd.payload.image_addr.eq(Mux(sel, stage_addr[1], stage_addr[0])),
                    tx.cmd.payload.image_rows.eq(p.out_h),
                    tx.cmd.payload.image_row_bytes.eq(row_bytes),
                ]
                m.d.sync += [acc_now.eq(now), acc_total.eq(total)]
                with m.If(tx_accept):
                    m.d.comb += [rec.r_en.eq(1), self.frame_out.eq(1)]
                    m.d.sync += [
                        tx_buf.eq(sel), tx_buf_valid.eq(sel_valid),
                        ev["FRAMES_OUT"].eq(1), ev["FRAMES_VALID"].eq(valid & ~late),
                        ev["TIMEOUTS"].eq(late),
                    ]
                    m.next = "WAIT"
        # The frame's wide registers take the TX's accept a cycle later (tx_acc_d, a register):
        # the accept (the TX's ready and idle, from across the die) enables only flags and the
        # state (its fanout to ~180 flip-flops was a 14.2 ns path, issue #13). Exact: in that
        # cycle the sequencer is in WAIT and idle (the records' head reloads a cycle after a
        # read: SlowHeadFIFO), so c_isp / c_npu hold, and the TX cannot finish yet; the accept
        # cycle's now and total come from registers (acc_now / acc_total).
        with m.If(tx_acc_d):
            m.d.sync += [
                regs["FRAME_COUNTER"].eq(regs["FRAME_COUNTER"] + 1), tx_t0.eq(acc_now),
                kpi["KPI_ISP"].eq(c_isp), kpi["KPI_NPU"].eq(c_npu),
                kpi["KPI_TOTAL"].eq(acc_total),
            ]
        status = Cat(writer.filling, npu_st[0], tx_busy, rec.r_rdy, Const(0, 4), state[0],
                     state[1])
        m.d.comb += [self.irq.eq(npu_st[2]),
                     self.busy.eq(writer.filling | npu_st[0] | tx_busy | rec.r_rdy)]
        return {"kpi": kpi, "cnt": cnt, "status": status, "rx": rx}

    # ------------------------------------------------------------------------------ host port
    def _host_port(self, m, npu, regs, seq) -> None:
        """SoC CSRs at SOC_CSR_BASE; every other address goes to the NPU's host port."""
        is_soc = self.host_cmd_addr >= regmap.SOC_CSR_BASE
        word = self.host_cmd_addr[2:10]
        rsp = data_reg(32)                     # (data: read under rsp_valid)
        rsp_valid = Signal()
        w_v = Signal()                         # a write taken last cycle, done this cycle
        clear = Signal()
        rx = seq["rx"]
        vals = {"SOC_ID": Const(regmap.SOC_ID_MAGIC, 32), "SOC_CTRL": Const(0, 32),
                "SOC_STATUS": seq["status"]}
        vals.update(regs)
        for i, name in enumerate(COUNTER_NAMES):
            vals[f"RX_{name.upper()}"] = rx.counters[i]
        vals.update(seq["cnt"])
        vals.update(seq["kpi"])
        assert set(vals) == {c.name for c in regmap.soc_csrs()}
        # Two registered levels (hw.csr.grouped_read): each group of CSR_GROUP words has its
        # own read mux and register (placed near its registers), then one small mux of the
        # groups feeds `rsp`. Before, one 60:1 mux drew 1,900 wires to one spot, the die's
        # routing hot spot.
        rd_grp = Signal(len(word))             # any group of the word space (unused: 0)
        rd_pend = Signal()                     # a read's group registers load this cycle
        rdata = grouped_read(m, regmap.soc_csrs(), vals, word, rd_grp, CSR_GROUP, "csr_rd")
        m.d.sync += rd_pend.eq(0)
        with m.If(rd_pend):
            m.d.sync += [rsp.eq(rdata), rsp_valid.eq(1)]
        m.d.comb += [
            npu.host_cmd.payload.addr.eq(self.host_cmd_addr),
            npu.host_cmd.payload.we.eq(self.host_cmd_we),
            npu.host_cmd.payload.wdata.eq(self.host_cmd_wdata),
            npu.host_cmd.valid.eq(self.host_cmd_valid & ~is_soc),
            self.host_cmd_ready.eq(Mux(is_soc, ~rsp_valid & ~rd_pend & ~w_v, npu.host_cmd.ready)),
            self.host_rsp_valid.eq(rsp_valid | npu.host_rsp.valid),
            self.host_rsp_data.eq(Mux(rsp_valid, rsp, npu.host_rsp.payload.rdata)),
            npu.host_rsp.ready.eq(self.host_rsp_ready & ~rsp_valid),
        ]
        with m.If(rsp_valid & self.host_rsp_ready):
            m.d.sync += rsp_valid.eq(0)
        # A write is taken into registers (``w_v``, word, data) and done in the next cycle, from
        # them: the CSRs' enables decode a registered word, not the host command's address
        # compare and handshake (on the routed ECP5 die those ran from the host port to ~60
        # 32-bit registers' enables, issue #13). The port takes no SoC command while a write
        # is pending, so a read right behind a write reads the written value.
        w_word, w_data = data_reg(len(word)), data_reg(32)
        m.d.sync += w_v.eq(0)
        with m.If(self.host_cmd_valid & is_soc & ~rsp_valid & ~rd_pend & ~w_v):
            with m.If(self.host_cmd_we):
                m.d.sync += [w_v.eq(1), w_word.eq(word), w_data.eq(self.host_cmd_wdata)]
            with m.Else():
                m.d.sync += [rd_grp.eq(word // CSR_GROUP), rd_pend.eq(1)]
        with m.If(w_v):
            with m.Switch(w_word):
                for c in regmap.soc_csrs():
                    if c.access == "RW":
                        with m.Case(c.offset):
                            m.d.sync += regs[c.name].eq(w_data)
                    elif c.name == "SOC_CTRL":
                        with m.Case(c.offset):
                            m.d.comb += clear.eq(w_data[regmap.SOC_CTRL_BITS["CLEAR"]])
        with m.If(clear):
            for c in seq["cnt"].values():
                m.d.sync += c.eq(0)


def top(config: Config) -> Soc:
    """Factory registered in hw/tops.py as "soc"."""
    return Soc(config)
