"""Tensor writer: the ISP's NHWC tensor stream -> the NPU's SRAM, through an SRAM write master port.

Contract:

* ``i`` (:data:`hw.isp.TENSOR_LAYOUT`): one tensor pixel per beat, ``first`` on a frame's first
  pixel, ``last`` on its last. ``channels3`` selects 3 bytes per pixel (``data[0..2]``) or 1
  (``data[0]``); it and ``n_pixels`` must be stable while a frame streams.
* A ``first`` beat is taken only when a buffer is offered (``buf_ok``; its byte address on
  ``buf_addr``) or when a frame is being written (``filling``): a ``first`` inside a frame abandons
  it and restarts at the same buffer (``start`` pulses again with ``restart``). Beats before any
  ``first`` are dropped.
* The bytes are written in order from the buffer's address, one byte per cycle into a line
  accumulator that is written to SRAM (byte mask) when the line changes and at the frame's end.
* ``i.ready`` is a register's output (the input goes through a two-entry FIFO at full rate): the
  ISP's output stage does not wait on the SRAM port's ready through the writer's decisions (the
  routed `ecp5` die's critical path, issue #13). The beats and their order are unchanged.
* ``done`` pulses once per frame, after its last SRAM write was accepted, with ``complete`` = the
  frame had exactly ``n_pixels`` pixels with ``last`` on the final one (a ``last`` elsewhere ends
  the frame incomplete). ``filling`` is high from ``start`` to ``done``.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config
from hw.fifos import HeadFIFO
from hw.isp import TENSOR_LAYOUT
from hw.npu_if import line_addr_bits, line_bytes, sram_write_signature
from hw.sram import data_reg

__all__ = ["TensorWriter"]


class TensorWriter(wiring.Component):
    def __init__(self, config: Config):
        self.config = config
        super().__init__({
            "i": In(stream.Signature(TENSOR_LAYOUT)),
            "wr": Out(sram_write_signature(config)),
            "channels3": In(1),
            "n_pixels": In(32),
            "buf_ok": In(1),
            "buf_addr": In(32),
            "start": Out(1),
            "restart": Out(1),
            "done": Out(1),
            "complete": Out(1),
            "filling": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W = line_bytes(self.config)
        lw = (W - 1).bit_length()
        lab = line_addr_bits(self.config)
        # the input FIFO: w_rdy and r_rdy are compares of its level register, and its head
        # is a register (hw.fifos.HeadFIFO, SyncFIFO's cycles): the beat's fields start the
        # writer's decisions (the flush into the 128-bit write register, the accumulator's
        # byte enables) from flip-flops, not from a LUT-RAM read (ECP5 timing, issue #13)
        m.submodules.ififo = ififo = HeadFIFO(width=TENSOR_LAYOUT.size, depth=2)
        m.d.comb += [ififo.w_data.eq(self.i.payload), ififo.w_en.eq(self.i.valid),
                     self.i.ready.eq(ififo.w_rdy)]
        i_valid = ififo.r_rdy
        i_ready = ififo.r_en
        beat = data.View(TENSOR_LAYOUT, ififo.r_data)

        # data registers (hw.sram.data_reg): written as a frame starts or under the masks and
        # valid bits that say which of them are read
        base = data_reg(32)        # the frame's buffer
        addr = data_reg(32)        # byte address of the next byte
        chan = Signal(2)           # byte of the current pixel
        count = Signal(32)         # pixels taken in this frame
        count_nz = Signal()        # count != 0, set with it (the restart test reads a flag)
        bad = Signal()             # a `last` before n_pixels, or n_pixels without `last`
        acc = data_reg(8 * W)      # line accumulator (its bytes are valid under acc_mask)
        acc_mask = Signal(W)
        acc_nz = Signal()          # acc_mask != 0, set with it: END's flush-or-done decision
        #                            (and the SoC's buffer states behind ``done``) starts from
        #                            a flip-flop, not a W-input OR (ECP5 timing, issue #13)
        acc_line = data_reg(lab)
        # the accumulator's line differs from the next byte's: acc_mask.any() & (cur_line !=
        # acc_line) as a register. Every taken byte sets acc_line to its line and steps addr, so
        # the next byte is on another line exactly when this one was the line's last (pos all
        # ones); start and restart clear acc_mask, and with it the flag.
        line_change = Signal()
        # the write register (the SRAM port's payload), filled from the accumulator
        w_valid = Signal()
        w_data = data_reg(8 * W)
        w_mask = data_reg(W)
        w_line = data_reg(lab)
        m.d.comb += [
            self.wr.req.valid.eq(w_valid), self.wr.req.payload.addr.eq(w_line),
            self.wr.req.payload.data.eq(w_data), self.wr.req.payload.mask.eq(w_mask),
        ]
        # the write register is free when empty: not also in the cycle the port takes it, so
        # the SRAM arbiter's ready enables only ``w_valid``, not the accumulator's flush and
        # the advance behind it (ECP5 timing, issue #13). A line is written every W bytes
        # (W cycles or more), so this costs a cycle only when a flush follows one at once.
        w_free = ~w_valid
        with m.If(self.wr.req.ready):
            m.d.sync += w_valid.eq(0)

        # the write register's data follows the accumulator in every cycle it is free, so its
        # 8 * W + W + lab enables are ``~w_valid`` (one flip-flop), not the flush decision's
        # LUTs (run U: ``w_data`` CE 12.73 ns, 128 endpoints; ECP5 timing, issue #13). Its
        # readers (the SRAM port) read it only under ``w_valid``, and a flush is a cycle in
        # which it is free, so what it holds when ``w_valid`` rises is the flushed line.
        with m.If(w_free):
            m.d.sync += [w_data.eq(acc), w_mask.eq(acc_mask), w_line.eq(acc_line)]

        def flush():
            m.d.sync += w_valid.eq(1)

        nbytes = Mux(self.channels3, 3, 1)
        byte = Signal(8)
        with m.Switch(chan):
            for k in range(3):
                with m.Case(k):
                    m.d.comb += byte.eq(beat.data[k])
        cur_line = addr[lw:lw + lab]
        pos = addr[:lw]
        one_hot = Signal(W)
        m.d.comb += one_hot.eq(Const(1, W) << pos)

        with m.FSM(name="writer"):
            with m.State("IDLE"):
                with m.If(i_valid & beat.first & self.buf_ok):
                    m.d.comb += self.start.eq(1)
                    m.d.sync += [base.eq(self.buf_addr), addr.eq(self.buf_addr), chan.eq(0),
                                 count.eq(0), count_nz.eq(0), bad.eq(0), acc_mask.eq(0),
                                 acc_nz.eq(0), line_change.eq(0)]
                    m.next = "FILL"
                with m.Elif(i_valid & ~beat.first):
                    m.d.comb += i_ready.eq(1)      # stray beats outside a frame: dropped
            with m.State("FILL"):
                m.d.comb += self.filling.eq(1)
                # a complete line (the next byte is on another line) goes to the write register
                # as soon as that is free, with or without a byte this cycle: the flush's
                # enables (w_data's 8 * W, w_mask, w_line) are three flip-flops, not the input
                # beat's restart and take decisions (ECP5 timing, issue #13). In a restart's
                # cycle it writes the abandoned frame's line into the buffer the new frame
                # rewrites (a restart reuses the buffer; writes keep their order).
                with m.If(line_change & w_free):
                    flush()
                    m.d.sync += [acc_mask.eq(0), acc_nz.eq(0), line_change.eq(0)]
                # the accumulator's byte at ``pos`` takes the beat's byte in every FILL cycle
                # the accumulator may change (it is not a whole line waiting for the write
                # register): its byte enables are ``pos``'s decode and two flip-flops, not
                # the input's take decision (run U: ``acc`` CE 11.44 ns, 113 endpoints;
                # ECP5 timing, issue #13). Bytes at and after ``pos`` are not under
                # ``acc_mask`` until a take sets their bit, in the cycle it writes the byte.
                with m.If(~line_change | w_free):
                    m.d.sync += acc.word_select(pos, 8).eq(byte)
                with m.If(i_valid & beat.first & (chan == 0) & count_nz):
                    # a new frame inside this one: abandon it, restart at the same buffer
                    m.d.comb += [self.start.eq(1), self.restart.eq(1)]
                    m.d.sync += [addr.eq(base), count.eq(0), count_nz.eq(0), bad.eq(0),
                                 acc_mask.eq(0), acc_nz.eq(0), line_change.eq(0)]
                with m.Elif(i_valid):
                    with m.If(~line_change | w_free):
                        with m.If(line_change):
                            m.d.sync += acc_mask.eq(one_hot)
                        with m.Else():
                            m.d.sync += acc_mask.eq(acc_mask | one_hot)
                        m.d.sync += [acc_line.eq(cur_line), acc_nz.eq(1),
                                     addr.eq(addr + 1), line_change.eq(pos.all())]
                        with m.If(chan + 1 == nbytes):
                            m.d.comb += i_ready.eq(1)
                            m.d.sync += [chan.eq(0), count.eq(count + 1),
                                         count_nz.eq(~count.all())]
                            with m.If(beat.last | (count + 1 == self.n_pixels)):
                                m.d.sync += bad.eq(~beat.last | (count + 1 != self.n_pixels))
                                m.next = "END"
                        with m.Else():
                            m.d.sync += chan.eq(chan + 1)
            with m.State("END"):
                m.d.comb += self.filling.eq(1)
                with m.If(acc_nz):
                    with m.If(w_free):
                        flush()
                        m.d.sync += [acc_mask.eq(0), acc_nz.eq(0)]
                with m.Elif(~w_valid):
                    m.d.comb += [self.done.eq(1), self.complete.eq(~bad)]
                    m.next = "IDLE"
        return m
