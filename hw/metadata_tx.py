"""Metadata transmitter: one command per frame -> one CSI-2 frame of metadata (and optionally the
image) on a byte-beat output stream, bit-exactly as models.metadata.frame_to_packets(pack(md))
(format: hw/metadata.py).

Ports of :class:`MetadataTx`:

* ``cmd`` (``In(stream.Signature(TX_CMD_LAYOUT))``): one frame. ``frame_counter``, ``flags`` and the
  KPI cycle counts go into the blob header as given (the SoC sets VALID/IMAGE/error flags);
  ``table_addr`` is the SRAM byte address of the TX table (hw/metadata.py, TABLE_ALIGN aligned) read
  when ``tensors`` is 1; with ``tensors`` 0 the blob has no tensors and no payload (invalid frames)
  and nothing is read from the table. ``image`` 1: ``image_rows`` RAW8 long packets of
  ``image_row_bytes`` bytes each, row r read at ``image_addr + r * image_row_bytes`` (the rows are
  one contiguous range), sent after FS and before the blob. ``cmd.ready`` is high only while no
  frame is being generated (the tail of the previous frame may still be draining).
* ``o`` (``Out(stream.Signature(hw.csi2.beat_layout(config.csi2_lanes_bytes)))``): the output
  bytes, one burst per packet: ``last`` on a packet's final beat with ``n`` bytes valid in it,
  every other beat full. ``valid`` and the payload come from a register (never wait for ``ready``;
  stable while stalled). Unused bytes of a last beat are zero.
* ``rd`` (``Out(hw.npu_if.sram_read_signature(config))``): reads the table, the tensors and the
  image rows. At most :data:`READ_SLOTS` reads are in flight or buffered (responses cannot be
  stalled: a read is only issued when a line slot is free for its response).
* ``idle``: high when no frame is in flight (nothing buffered, no read outstanding, the last beat
  taken).

Per command, in order: FS (WC = frame_counter & 0xFFFF); the image lines; the blob (header from
the command, the table header and constants; each table entry's descriptor bytes copied verbatim;
each tensor's ``nbytes`` bytes read at its ``sram_addr``, zero-padded to PAYLOAD_ALIGN; the trailer
with ``cycles_tx``; CRC-32) cut into EMBEDDED long packets of at most ``line_bytes`` bytes; FE.
The descriptors' ``offset`` fields are copied as given (models.metadata.tx_table lays them out as
pack() does). A table inconsistent with itself never hangs or desynchronizes the TX: the payload is
always exactly the table's ``payload_bytes`` long (tensor bytes beyond it are neither read nor sent,
a shortfall is sent as zeros), so the frame's packets, CRCs and FE stay well-formed and the host's
parser reports the bad descriptors. ``clock_khz`` is
``round(config.clock_mhz * 1000)``. ``cycles_tx`` is defined in hw/metadata.py: the count of a
counter that is 0 in the ``cmd`` handshake cycle, sampled in the cycle the trailer's first byte is
taken from the byte source (:class:`_Framer`) by the packetizer.

Structure (one sub-component per stage, all at one byte per clock at most):

* :class:`_SramBytes`: byte-range jobs (address, length) -> their bytes in order, reading whole SRAM
  lines into :data:`READ_SLOTS` line slots.
* :class:`_Framer`: the frame sequencer and byte source: emits *tokens* (a packet header request
  {dt, wc} or one payload byte) and computes the blob's CRC-32 and ``cycles_tx``.
* :class:`_Packetizer`: header request -> 4 header bytes (ECC), payload bytes (CRC-16), 2 CRC bytes,
  without a bubble between packets.
* :class:`_BeatPacker`: bytes with ``last`` -> ``csi2_lanes_bytes``-wide beats.

Throughput: one output byte per clock (the beat packer fills a beat of ``csi2_lanes_bytes`` bytes in
as many cycles; packet headers and CRCs are wire bytes too, no bubble between packets), except a
bubble of about 4 cycles per SRAM job (the table header, overlapped with FS; the image; the
descriptors; per tensor its two fields and its bytes: about 20 cycles per tensor in all) and 4 per
table entry (its sram_addr bytes are skipped). A frame of S wire bytes with T tensors takes about
S + 20 T + 10 cycles without back-pressure.
"""

from __future__ import annotations

import zlib

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config
from hw.csi2 import CRC_SEED, ECC_MASKS, DataType, beat_layout, crc16_byte
from hw.fifos import RingFIFO2
from hw.metadata import (
    CRC_BYTES,
    DEFAULT_LINE_BYTES,
    HEADER_BYTES,
    HEADER_FIELDS,
    METADATA_MAGIC,
    METADATA_VERSION,
    PAYLOAD_ALIGN,
    TABLE_ENTRY_BYTES,
    TABLE_ENTRY_FIELDS,
    TABLE_HEADER_BYTES,
    TABLE_HEADER_FIELDS,
    TENSOR_BYTES,
    TRAILER_BYTES,
    TRAILER_FIELDS,
    field_offsets,
    struct_layout,
)
from hw.npu_if import line_addr_bits, line_bytes, sram_read_signature
from hw.sram import data_reg
from hw.systolic import small_mul

__all__ = ["MetadataTx", "TX_CMD_LAYOUT", "READ_SLOTS", "TOKEN_LAYOUT", "linear_xor"]

#: One frame's command (module docstring).
TX_CMD_LAYOUT = data.StructLayout({
    "frame_counter": 32,
    "flags": 16,
    "cycles_isp": 32,
    "cycles_npu": 32,
    "cycles_total": 32,
    "table_addr": 32,
    "tensors": 1,
    "image": 1,
    "image_addr": 32,
    "image_rows": 16,
    "image_row_bytes": 16,
})

#: SRAM line slots of the reader: reads in flight plus lines buffered.
READ_SLOTS = 2

#: Framer -> packetizer token: ``hdr`` 1: start a packet of data type ``dt`` and word count ``wc``
#: (short packets for dt < 0x10: wc is the frame number); ``hdr`` 0: one payload byte ``byte``.
TOKEN_LAYOUT = data.StructLayout({"hdr": 1, "dt": 6, "wc": 16, "byte": 8})

#: A byte-range job of the reader: SRAM byte address and length.
JOB_LAYOUT = data.StructLayout({"addr": 32, "len": 32})

#: Byte + end-of-burst, between the packetizer and the beat packer.
BYTE_LAYOUT = data.StructLayout({"byte": 8, "last": 1})

_CRC32_POLY = 0xEDB88320  # zlib / ISO-HDLC, reflected


def _crc32_byte(crc: int, byte: int) -> int:
    crc ^= byte
    for _ in range(8):
        crc = (crc >> 1) ^ (_CRC32_POLY if crc & 1 else 0)
    return crc


assert (_crc32_byte(0xFFFFFFFF, 0x61) ^ 0xFFFFFFFF) == zlib.crc32(b"a")


def linear_xor(ref, inputs: list, nout: int):
    """A GF(2)-linear function as XOR trees: ``ref`` maps an int of the concatenated ``inputs``
    bits to an ``nout``-bit int and must be linear (ref(a ^ b) == ref(a) ^ ref(b), ref(0) == 0);
    each output bit is the parity of the input bits whose unit vector sets it."""
    vec = Cat(*inputs)
    cols = [ref(1 << i) for i in range(len(vec))]
    return Cat(*[Cat(*[vec[i] for i, c in enumerate(cols) if c >> o & 1] or [Const(0, 1)]).xor()
                 for o in range(nout)])


def _crc_step(crc, byte, nbits: int, step):
    """The CRC register after one more byte (``step(crc, byte)``: the same step in Python)."""
    return linear_xor(lambda v: step(v & ((1 << nbits) - 1), v >> nbits), [crc, byte], nbits)


class _SramBytes(wiring.Component):
    """Byte-range reader. ``job`` {addr: SRAM byte address, len: bytes}: the job's bytes appear on
    ``o`` in order, jobs back to back (a job is accepted once the previous one has issued all its
    reads, so the next job's reads overlap the previous job's bytes). ``len`` 0 is accepted and
    yields nothing. ``idle``: no job active, no read in flight, no byte buffered."""

    def __init__(self, config: Config, slots: int = READ_SLOTS):
        self.W = line_bytes(config)
        assert self.W >= 2 and self.W & (self.W - 1) == 0, \
            "SRAM line bytes must be a power of two, at least 2"
        self.LA = line_addr_bits(config)
        self.slots = slots
        super().__init__({
            "job": In(stream.Signature(JOB_LAYOUT)),
            "job_nz": In(1),  # the job's len != 0 (the caller's register)
            "o": Out(stream.Signature(8)),
            "rd": Out(sram_read_signature(config)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        W, S = self.W, self.slots
        sh = (W - 1).bit_length()
        tag = data.StructLayout({"first": range(W), "last": range(W)})

        # ---- request side: the active job's remaining lines
        lines_left = Signal(33 - sh + 1)
        next_line = Signal(32 - sh)
        first_off = Signal(range(W))  # byte offset of the next line's first byte (job start)
        last_off = Signal(range(W))  # byte offset of the job's last byte in its last line
        used = Signal(range(S + 1))  # slots allocated (requested, not yet fully consumed)
        req_ptr = Signal(range(S))
        resp_ptr = Signal(range(S))
        rd_ptr = Signal(range(S))
        tags = [Signal(tag, name=f"tag{i}") for i in range(S)]
        full = Signal(S)
        lines = [data_reg(8 * W, name=f"line{i}") for i in range(S)]

        # lines_left == 0 and == 1 as flags set with it: the job's ready, the request's valid
        # and the last line's tag start from flip-flops, not 30-bit compares (ECP5 timing,
        # issue #13)
        ll_z = Signal(init=1)
        ll_1 = Signal()
        job = self.job.payload
        m.d.comb += self.job.ready.eq(ll_z)
        with m.If(self.job.valid & self.job.ready & self.job_nz):
            # lines = ceil((addr % W + len) / W) and the last byte's offset (addr + len - 1) % W,
            # each one adder of len and a few-bit constant (the job's fields come from the
            # framer's mux, so no 32-bit adders in a row); one line iff addr % W + len <= W
            lo = job.addr[:sh]
            m.d.sync += [
                next_line.eq(job.addr[sh:]),
                lines_left.eq((job.len + (lo + (W - 1))) >> sh),
                ll_z.eq(0), ll_1.eq((job.len[sh + 1:] == 0) & (job.len[:sh + 1] <= W - lo)),
                first_off.eq(lo),
                last_off.eq((lo + job.len[:sh] - 1)[:sh]),
            ]

        pop = Signal()
        req = self.rd.req
        # a request needs a free slot at the cycle's start, not one the extractor frees in
        # the cycle: the request (and with the port's ready, next_line's, lines_left's and the
        # tags' enables) then starts from registers, not from the output's ready and the
        # extractor's last-byte compare (die run U: ``next_line`` 12.53 ns, issue #13). A
        # freed slot's line is asked for a cycle later, while the other slot's W bytes leave.
        m.d.comb += [req.valid.eq(~ll_z & (used < S)),
                     req.payload.addr.eq(next_line)]
        with m.If(req.valid & req.ready):
            m.d.sync += [next_line.eq(next_line + 1), lines_left.eq(lines_left - 1),
                         ll_z.eq(ll_1), ll_1.eq(lines_left == 2),
                         first_off.eq(0), req_ptr.eq(_inc(req_ptr, S))]
            for i in range(S):
                with m.If(req_ptr == i):
                    m.d.sync += [tags[i].first.eq(first_off),
                                 tags[i].last.eq(Mux(ll_1, last_off, W - 1))]
        m.d.sync += used.eq(used + (req.valid & req.ready) - pop)

        # ---- responses (always room: a slot was allocated at request time)
        with m.If(self.rd.rvalid):
            m.d.sync += resp_ptr.eq(_inc(resp_ptr, S))
            for i in range(S):
                with m.If(resp_ptr == i):
                    m.d.sync += [lines[i].eq(self.rd.rdata), full[i].eq(1)]

        # ---- byte extractor from the head slot
        started = Signal()
        ptr = Signal(range(W))
        head_line = Signal(8 * W)
        head_tag = Signal(tag)
        head_full = Signal()
        for i in range(S):
            with m.If(rd_ptr == i):
                m.d.comb += [head_line.eq(lines[i]), head_tag.eq(tags[i]),
                             head_full.eq(full[i])]
        cur = Mux(started, ptr, head_tag.first)
        m.d.comb += [self.o.valid.eq(head_full), self.o.payload.eq(head_line.word_select(cur, 8)),
                     pop.eq(self.o.valid & self.o.ready & (cur == head_tag.last))]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [ptr.eq(cur + 1), started.eq(1)]
            with m.If(pop):
                m.d.sync += [started.eq(0), rd_ptr.eq(_inc(rd_ptr, S))]
                for i in range(S):
                    with m.If(rd_ptr == i):
                        # a response into the same slot this cycle is impossible: it was allocated
                        m.d.sync += full[i].eq(0)
        m.d.comb += self.idle.eq(ll_z & (used == 0))
        return m


def _set_counter(m, reg, flags: dict, value=None):
    """``reg`` := ``value`` (None: ``reg - 1``) with ``flags`` (n -> a Signal kept equal to
    ``reg == n``) set beside it: from the value as ``reg`` takes it, or on a decrement from the
    flag of n + 1 where one is kept, else a compare of ``reg`` with n + 1. The decisions read the
    flags, flip-flops, not compares of the counter (ECP5 timing, issue #13)."""
    if value is None:
        value = reg - 1
        nxt = {n: flags[n + 1] if n + 1 in flags else reg == n + 1 for n in flags}
    else:
        v = Value.cast(value)[:len(reg)]
        nxt = {n: v == n for n in flags}
    m.d.sync += [reg.eq(value), *[f.eq(nxt[n]) for n, f in flags.items()]]


def _inc(ptr, n):
    return Mux(ptr == n - 1, 0, ptr + 1)


class _Packetizer(wiring.Component):
    """Tokens -> packet bytes: a header token becomes DataID (vc, dt), WC LSB, WC MSB, ECC; a long
    packet (dt >= 0x10) then passes ``wc`` byte tokens (CRC-16 over them) and appends the CRC-16
    LSB first. ``last`` marks each packet's final byte. Expects exactly ``wc`` byte tokens after a
    long packet's header token and none after a short one's."""

    def __init__(self, vc: int):
        self.vc = vc
        super().__init__({
            "i": In(stream.Signature(TOKEN_LAYOUT)),
            "o": Out(stream.Signature(BYTE_LAYOUT)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        h24 = Signal(24)  # DataID | WC << 8 of the current packet
        rem = Signal(16)
        crc = Signal(16)
        idx = Signal(2)
        tok = self.i.payload
        # the header's ECC is a register, computed from the header token as h24 loads (its
        # parity trees were in front of the beat packer's output register: ECP5 timing)
        ecc = Signal(8)
        hdr_bytes = Cat(h24, ecc)
        is_long = h24[4:6] != 0  # DT >= 0x10

        with m.FSM():
            with m.State("WAIT"):
                # a header token's first byte (DataID) goes out at once; a stray byte token (the
                # framer never sends one here) is dropped
                h = Cat(tok.dt, Const(self.vc, 2), tok.wc)
                m.d.comb += [self.idle.eq(1), self.o.valid.eq(self.i.valid & tok.hdr),
                             self.o.payload.byte.eq(h[:8]),
                             self.i.ready.eq(~tok.hdr | self.o.ready)]
                with m.If(self.i.valid & tok.hdr & self.o.ready):
                    m.d.sync += [h24.eq(h), rem.eq(tok.wc), crc.eq(CRC_SEED), idx.eq(1),
                                 ecc.eq(Cat(*[(h & mask).xor() for mask in ECC_MASKS]))]
                    m.next = "HDR"
            with m.State("HDR"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.byte.eq(hdr_bytes.word_select(
                    idx, 8)), self.o.payload.last.eq((idx == 3) & ~is_long)]
                with m.If(self.o.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == 3):
                        m.next = "WAIT"
                        with m.If(is_long):
                            m.next = "DATA"
                            with m.If(rem == 0):
                                m.next = "CRC"
            with m.State("DATA"):
                m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.byte.eq(tok.byte),
                             self.i.ready.eq(self.o.ready)]
                with m.If(self.i.valid & self.o.ready):
                    m.d.sync += [crc.eq(_crc_step(crc, tok.byte, 16, crc16_byte)),
                                 rem.eq(rem - 1)]
                    with m.If(rem == 1):
                        m.d.sync += idx.eq(0)
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.byte.eq(crc.word_select(idx[0], 8)),
                             self.o.payload.last.eq(idx[0])]
                with m.If(self.o.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx[0]):
                        m.next = "WAIT"
        return m


class _BeatPacker(wiring.Component):
    """Bytes with ``last`` -> beats of ``nbytes`` bytes (hw.csi2.beat_layout): a beat leaves when
    full or at ``last``; every burst starts at byte 0 of a beat. ``o`` is a register."""

    def __init__(self, nbytes: int):
        self.B = nbytes
        super().__init__({
            "i": In(stream.Signature(BYTE_LAYOUT)),
            "o": Out(stream.Signature(beat_layout(nbytes))),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self.B
        acc = Signal(data.ArrayLayout(8, B))
        cnt = Signal(range(B))
        out = self.o.payload
        completes = (cnt == B - 1) | self.i.payload.last
        out_free = ~self.o.valid | self.o.ready
        m.d.comb += [self.i.ready.eq(~completes | out_free),
                     self.idle.eq(~self.o.valid & (cnt == 0))]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            byte = self.i.payload.byte
            with m.If(completes):
                m.d.sync += [self.o.valid.eq(1), out.n.eq(cnt + 1),
                             out.last.eq(self.i.payload.last), cnt.eq(0)]
                for j in range(B):
                    # bytes before the current one come from acc; cnt > B - 1 is impossible (a
                    # constant comparison Verilator's lint flags), so the last byte needs no test
                    older = (cnt > j) if j < B - 1 else Const(0)
                    m.d.sync += out.data[j].eq(Mux(cnt == j, byte, Mux(older, acc[j], 0)))
            with m.Else():
                m.d.sync += [acc[cnt].eq(byte), cnt.eq(cnt + 1)]
        return m


class _Framer(wiring.Component):
    """The frame sequencer and byte source (module docstring): ``cmd`` in, ``tok`` tokens out,
    ``job``/``b`` to the byte reader. ``busy``: a command is being processed."""

    def __init__(self, config: Config, line_bytes_: int):
        self.config = config
        self.line_bytes = line_bytes_
        super().__init__({
            "cmd": In(stream.Signature(TX_CMD_LAYOUT)),
            "tok": Out(stream.Signature(TOKEN_LAYOUT)),
            "job": Out(stream.Signature(JOB_LAYOUT)),
            "b": In(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        self.m = m
        self.cmd_r = cmd = data_reg(TX_CMD_LAYOUT)
        self.cyc = Signal(32)  # cycles since the cmd handshake (0 in that cycle)
        # bytes left to capture / to read in DESC (at most a table's entries), and cnt == 1 as a
        # flag set with it (``_set_cnt``): the capture's and DESC's last-byte tests, which
        # change state, start from a flip-flop, not a 32-bit compare (ECP5 timing, issue #13)
        self.cnt = Signal(range(0x10000 * TABLE_ENTRY_BYTES))
        self.cnt1 = Signal()
        self.idx = Signal(range(max(HEADER_BYTES, TABLE_ENTRY_BYTES, TRAILER_BYTES,
                                    CRC_BYTES) + 1))
        self.cap = data_reg(8 * TABLE_HEADER_BYTES)  # captured table bytes (shifted in at the top)
        self.n_tensors = Signal(16)
        self.payload_bytes = Signal(32)
        self.pay_rem = Signal(32)  # payload bytes not yet emitted (the table's payload_bytes)
        self.tensor = Signal(16)  # tensors done
        self.blob_rem = Signal(34)  # blob bytes not yet emitted (never wraps: 32-bit sizes)
        self.pkt_rem = Signal(16)  # bytes left in the current EMBEDDED / RAW8 packet
        # pkt_rem == 0 and == 1 as flags set with it (``_set_pkt``): the blob's packet-open
        # decision and the image row's end, which gate ``taken`` and the counters' enables,
        # start from flip-flops (die run U: the framer's ``cnt`` enable, 14.1 ns, issue #13)
        self.pkt_z = Signal(init=1)
        self.pkt_1 = Signal()
        self.crc32 = Signal(32)
        # the CRC folds in each taken blob byte a cycle later, from registers (``crc_v``,
        # ``crc_b``): the packetizer's ready enables 9 flip-flops, not the 32-bit CRC step
        # (ECP5 timing, issue #13); CRC waits for the last pending byte
        self.crc_v = Signal()
        self.crc_b = Signal(8)
        m.d.sync += self.crc_v.eq(0)
        with m.If(self.crc_v):
            m.d.sync += self.crc32.eq(_crc_step(self.crc32, self.crc_b, 32, _crc32_byte))
        m.d.sync += self.cyc.eq(self.cyc + 1)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                # ``cmd_r`` loads in every IDLE cycle (nothing reads it there): its enables
                # are the FSM's state decode, not the SoC's decision behind ``cmd.valid``
                # (ECP5 timing, issue #13); the handshake's cycle loads the command taken
                # so do the counters' starting values (cyc is 1 in the cycle after the
                # handshake, as it counts from 0 in it): their 130 enables are not the
                # decision behind ``cmd.valid`` either (die run T: tx.cmd.valid ->
                # payload_bytes, issue #13)
                m.d.sync += [cmd.eq(self.cmd.payload), self.cyc.eq(1), self.tensor.eq(0),
                             self.n_tensors.eq(0), self.payload_bytes.eq(0)]
                self._set_cnt(TABLE_HEADER_BYTES)
                with m.If(self.cmd.valid):
                    _goto(m, self.cmd.payload.tensors, "TBL_JOB", "FS")
            self._table(cmd)
            self._image(cmd)
            self._blob_header(cmd)
            self._tensors(cmd)
            self._blob_tail()
            with m.State("FE"):
                self._short(DataType.FE, "IDLE")
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    # ---- helpers: one token / job / capture per call, inside the current FSM state

    def _short(self, dt, then):
        m, tok = self.m, self.tok
        m.d.comb += [tok.valid.eq(1), tok.payload.hdr.eq(1), tok.payload.dt.eq(dt.value),
                     tok.payload.wc.eq(self.cmd_r.frame_counter[:16])]
        with m.If(tok.ready):
            m.next = then

    def _issue(self, addr, length, then=None):
        """Offer a reader job; returns its handshake condition (and goes to ``then`` on it)."""
        m, job = self.m, self.job
        m.d.comb += [job.valid.eq(1), job.payload.addr.eq(addr), job.payload.len.eq(length)]
        if then is not None:
            with m.If(job.ready):
                m.next = then
        return job.ready

    def _set_cnt(self, value):
        """``cnt`` := value (None: cnt - 1), with its flag (:func:`_set_counter`)."""
        _set_counter(self.m, self.cnt, {1: self.cnt1}, value)

    def _set_pkt(self, value):
        """``pkt_rem`` := value (None: pkt_rem - 1), with its flags (:func:`_set_counter`)."""
        _set_counter(self.m, self.pkt_rem, {0: self.pkt_z, 1: self.pkt_1}, value)

    def _capture(self):
        """Shift reader bytes into the top of ``cap`` while ``cnt`` > 0; returns 'last byte'."""
        m, b = self.m, self.b
        m.d.comb += b.ready.eq(1)
        with m.If(b.valid):
            m.d.sync += self.cap.eq(Cat(self.cap[8:], b.payload))
            self._set_cnt(None)
        return b.valid & self.cnt1

    def _emit_blob(self, byte, avail, update_crc=True):
        """Offer one blob byte; returns the 'taken' condition. Opens an EMBEDDED packet of
        min(line_bytes, bytes left) first when the previous one is full (the byte waits)."""
        m, tok = self.m, self.tok
        taken = Signal()
        with m.If(self.pkt_z):
            wc = Mux(self.blob_rem > self.line_bytes, self.line_bytes, self.blob_rem)
            m.d.comb += [tok.valid.eq(1), tok.payload.hdr.eq(1),
                         tok.payload.dt.eq(DataType.EMBEDDED.value), tok.payload.wc.eq(wc)]
            with m.If(tok.ready):
                self._set_pkt(wc)
        with m.Else():
            m.d.comb += [tok.valid.eq(avail), tok.payload.byte.eq(byte),
                         taken.eq(avail & tok.ready)]
            if update_crc:
                # crc_b loads the byte offered, taken or not (CRC reads it only after a
                # taken one, crc_v): its 8 enables are the FSM's state, not the packetizer's
                # ready (die run AA: crc_b 13.37 ns, issue #13)
                m.d.sync += self.crc_b.eq(byte)
            with m.If(taken):
                m.d.sync += self.blob_rem.eq(self.blob_rem - 1)
                self._set_pkt(None)
                if update_crc:
                    m.d.sync += self.crc_v.eq(1)
        return taken

    def _after_table(self, cmd):
        _goto(self.m, cmd.image, "IMG_JOB", "BLOB")

    # ---- phases

    def _table(self, cmd):
        """TBL_JOB, FS, TBL_CAP, TBL_DONE: FS goes out while the table header is read."""
        m = self.m
        with m.State("TBL_JOB"):
            self._issue(cmd.table_addr, TABLE_HEADER_BYTES, "FS")
        with m.State("FS"):
            self._short(DataType.FS, "TBL_CAP")
            with m.If(self.tok.ready & ~cmd.tensors):
                self._after_table(cmd)
        with m.State("TBL_CAP"):
            with m.If(self._capture()):
                m.next = "TBL_DONE"
        with m.State("TBL_DONE"):
            tbl = data.View(struct_layout(TABLE_HEADER_FIELDS), self.cap)
            m.d.sync += [self.n_tensors.eq(tbl.n_tensors),
                         self.payload_bytes.eq(tbl.payload_bytes)]
            self._after_table(cmd)

    def _image(self, cmd):
        """IMG_JOB, IMG_HDR, IMG_DATA: image_rows RAW8 packets of image_row_bytes bytes."""
        m, tok, b = self.m, self.tok, self.b
        rows_left = Signal(16)
        with m.State("IMG_JOB"):
            with m.If(self._issue(cmd.image_addr, cmd.image_rows * cmd.image_row_bytes,
                                  "IMG_HDR")):
                m.d.sync += rows_left.eq(cmd.image_rows)
        with m.State("IMG_HDR"):
            with m.If(rows_left == 0):
                m.next = "BLOB"
            with m.Else():
                m.d.comb += [tok.valid.eq(1), tok.payload.hdr.eq(1),
                             tok.payload.dt.eq(DataType.RAW8.value),
                             tok.payload.wc.eq(cmd.image_row_bytes)]
                with m.If(tok.ready):
                    m.d.sync += rows_left.eq(rows_left - 1)
                    self._set_pkt(cmd.image_row_bytes)
                    m.next = "IMG_DATA"
        with m.State("IMG_DATA"):
            with m.If(self.pkt_z):
                m.next = "IMG_HDR"
            with m.Else():
                m.d.comb += [tok.valid.eq(b.valid), tok.payload.byte.eq(b.payload),
                             b.ready.eq(tok.ready)]
                with m.If(b.valid & tok.ready):
                    self._set_pkt(None)
                    with m.If(self.pkt_1):
                        m.next = "IMG_HDR"

    def _blob_header(self, cmd):
        """BLOB (sizes), HEADER (from HEADER_FIELDS), DESC_JOB, DESC (descriptors copied from the
        table entries, skipping each entry's sram_addr)."""
        m, b = self.m, self.b
        idx = self.idx
        hdr = Signal(struct_layout(HEADER_FIELDS))
        src = {
            "magic": int.from_bytes(METADATA_MAGIC, "little"),
            "version": METADATA_VERSION,
            "header_bytes": HEADER_BYTES,
            "frame_counter": cmd.frame_counter,
            "flags": cmd.flags,
            "n_tensors": self.n_tensors,
            "cycles_isp": cmd.cycles_isp,
            "cycles_npu": cmd.cycles_npu,
            "cycles_total": cmd.cycles_total,
            "clock_khz": int(round(self.config.clock_mhz * 1e3)),
            "payload_bytes": self.payload_bytes,
        }
        assert set(src) == {n for n, _ in HEADER_FIELDS}, "a header field has no source"
        for name, _ in HEADER_FIELDS:
            m.d.comb += getattr(hdr, name).eq(src[name])
        table_bytes = self.n_tensors * TABLE_ENTRY_BYTES
        desc_skip = TABLE_ENTRY_BYTES - TENSOR_BYTES  # entry bytes before the descriptor

        with m.State("BLOB"):
            self._set_pkt(0)
            m.d.sync += [idx.eq(0), self.crc32.eq(0xFFFFFFFF),
                         self.pay_rem.eq(self.payload_bytes),
                         # (a constant times n_tensors in logic: yosys put it on a DSP)
                         self.blob_rem.eq(HEADER_BYTES
                                          + small_mul(Const(TENSOR_BYTES), self.n_tensors)
                                          + self.payload_bytes + TRAILER_BYTES + CRC_BYTES)]
            m.next = "HEADER"
        with m.State("HEADER"):
            with m.If(self._emit_blob(hdr.as_value().word_select(idx, 8), 1)):
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == HEADER_BYTES - 1):
                    m.d.sync += idx.eq(0)
                    _goto(m, self.n_tensors == 0, "T_FILL", "DESC_JOB")
        with m.State("DESC_JOB"):
            self._set_cnt(table_bytes)
            self._issue(cmd.table_addr + TABLE_HEADER_BYTES, table_bytes, "DESC")
        with m.State("DESC"):
            skip = idx < desc_skip
            taken = self._emit_blob(b.payload, b.valid & ~skip)
            m.d.comb += b.ready.eq(skip | taken)
            with m.If(b.valid & b.ready):
                m.d.sync += idx.eq(Mux(idx == TABLE_ENTRY_BYTES - 1, 0, idx + 1))
                self._set_cnt(None)
                with m.If(self.cnt1):
                    m.d.sync += idx.eq(0)
                    m.next = "T_JOBS"

    def _tensors(self, cmd):
        """Per tensor: T_JOBS (read the entry's sram_addr and nbytes), T_CAP, T_JOB, T_DATA (the
        bytes, then zeros up to PAYLOAD_ALIGN); then T_FILL. The payload is exactly the table's
        payload_bytes long whatever the entries say (data beyond it is not read, a shortfall is
        sent as zeros), so the packets always match the header."""
        m, b, idx = self.m, self.b, self.idx
        ent = field_offsets(TABLE_ENTRY_FIELDS)
        assert ent["sram_addr"][1] == 4 and ent["nbytes"][1] == 4
        entry = cmd.table_addr + TABLE_HEADER_BYTES + self.tensor * TABLE_ENTRY_BYTES
        t_sram, t_nb = self.cap[-64:-32], self.cap[-32:]  # after T_CAP's 8 bytes
        t_done = Signal(32)  # payload bytes of this tensor emitted (data, then padding)
        t_len = Signal(32)  # data bytes of this tensor read and sent
        assert PAYLOAD_ALIGN & (PAYLOAD_ALIGN - 1) == 0
        al = (PAYLOAD_ALIGN - 1).bit_length()

        with m.State("T_JOBS"):
            off = Mux(idx == 0, ent["sram_addr"][0], ent["nbytes"][0])
            with m.If(self._issue(entry + off, 4)):
                m.d.sync += idx.eq(1)
                with m.If(idx == 1):
                    m.d.sync += idx.eq(0)
                    self._set_cnt(8)
                    m.next = "T_CAP"
        with m.State("T_CAP"):
            with m.If(self._capture()):
                m.next = "T_JOB"
        with m.State("T_JOB"):
            t_clip = Mux(t_nb < self.pay_rem, t_nb, self.pay_rem)
            with m.If(self._issue(t_sram, t_clip, "T_DATA")):
                m.d.sync += [t_done.eq(0), t_len.eq(t_clip)]
        with m.State("T_DATA"):
            in_data = t_done < t_len
            with m.If(~in_data & ((t_done[:al] == 0) | (self.pay_rem == 0))):
                m.d.sync += self.tensor.eq(self.tensor + 1)
                _goto(m, self.tensor + 1 == self.n_tensors, "T_FILL", "T_JOBS")
            with m.Else():
                taken = self._emit_blob(Mux(in_data, b.payload, 0), ~in_data | b.valid)
                m.d.comb += b.ready.eq(in_data & taken)
                with m.If(taken):
                    m.d.sync += [t_done.eq(t_done + 1), self.pay_rem.eq(self.pay_rem - 1)]
        with m.State("T_FILL"):
            # nothing left with a consistent table; zeros up to payload_bytes otherwise
            with m.If(self.pay_rem == 0):
                m.next = "TRAILER"
            with m.Else():
                with m.If(self._emit_blob(0, 1)):
                    m.d.sync += self.pay_rem.eq(self.pay_rem - 1)

    def _blob_tail(self):
        """TRAILER (from TRAILER_FIELDS; cycles_tx sampled as its first byte is taken), CRC."""
        m, idx = self.m, self.idx
        cycles_tx = Signal(32)
        trl = Signal(struct_layout(TRAILER_FIELDS))
        src = {"cycles_tx": Mux(idx == 0, self.cyc, cycles_tx)}
        assert set(src) == {n for n, _ in TRAILER_FIELDS}, "a trailer field has no source"
        for name, _ in TRAILER_FIELDS:
            m.d.comb += getattr(trl, name).eq(src[name])
        with m.State("TRAILER"):
            with m.If(self._emit_blob(trl.as_value().word_select(idx, 8), 1)):
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == 0):
                    m.d.sync += cycles_tx.eq(self.cyc)
                with m.If(idx == TRAILER_BYTES - 1):
                    m.d.sync += idx.eq(0)
                    m.next = "CRC"
        with m.State("CRC"):
            with m.If(self._emit_blob((~self.crc32).word_select(idx, 8), ~self.crc_v,
                                      update_crc=False)):
                m.d.sync += idx.eq(idx + 1)
                with m.If(idx == CRC_BYTES - 1):
                    m.next = "FE"


def _goto(m, cond, a: str, b: str) -> None:
    """``m.next = a if cond else b`` (inside an FSM state)."""
    with m.If(cond):
        m.next = a
    with m.Else():
        m.next = b


class MetadataTx(wiring.Component):
    """The metadata transmitter (module docstring)."""

    def __init__(self, config: Config, line_bytes: int = DEFAULT_LINE_BYTES, vc: int = 0):
        if not 1 <= line_bytes <= 0xFFFF:
            raise ValueError("line_bytes must be in 1..65535")
        if not 0 <= vc <= 3:
            raise ValueError("vc must be in 0..3")
        self.config, self.line_bytes, self.vc = config, line_bytes, vc
        super().__init__({
            "cmd": In(stream.Signature(TX_CMD_LAYOUT)),
            "o": Out(stream.Signature(beat_layout(config.csi2_lanes_bytes))),
            "rd": Out(sram_read_signature(config)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = reader = _SramBytes(self.config)
        m.submodules.framer = framer = _Framer(self.config, self.line_bytes)
        m.submodules.packetizer = pk = _Packetizer(self.vc)
        m.submodules.packer = packer = _BeatPacker(self.config.csi2_lanes_bytes)
        wiring.connect(m, wiring.flipped(self.cmd), framer.cmd)
        # the framer's job goes through a register slice to the reader: the framer's job mux
        # ends at a register and the reader's line-count adders start from one (on the die the
        # two ran in a row across the FPGA, 17.0 ns: issue #13, session 12); one cycle more per
        # job, the same throughput
        jq_v = Signal()
        jq = data_reg(JOB_LAYOUT)
        # (with ``len != 0`` as a flag beside it: the reader's load enable, its line counters'
        # and addresses', starts from flip-flops, not a 32-bit OR)
        jq_nz = data_reg(name="jq_nz")
        m.d.comb += [framer.job.ready.eq(~jq_v | reader.job.ready),
                     reader.job.valid.eq(jq_v), reader.job.payload.eq(jq),
                     reader.job_nz.eq(jq_nz)]
        with m.If(framer.job.valid & framer.job.ready):
            m.d.sync += [jq_v.eq(1), jq.eq(framer.job.payload),
                         jq_nz.eq(framer.job.payload.len != 0)]
        with m.Elif(reader.job.ready):
            m.d.sync += jq_v.eq(0)
        wiring.connect(m, reader.o, framer.b)
        wiring.connect(m, wiring.flipped(self.rd), reader.rd)
        # the framer's tokens go through a 2-entry ring (hw.fifos.RingFIFO2) to the packetizer:
        # the framer's ``taken`` (which enables its counters) sees a ready from the ring's
        # level register, not the packetizer's and beat packer's ready chain (on the die the
        # CRC state's valid reached the framer's byte counter through it: 14.6 ns, issue #13,
        # session 25); one cycle more per token, the same throughput
        # The token is registered first (``tok_r``): the ring's entries load from a register,
        # not from the framer's byte muxes (header / trailer bytes by index, the state's
        # source), which reached both entries (die run U: ``tx.tokq``, 13.4 ns, issue #13); one
        # cycle more per token, the same throughput
        tw = len(framer.tok.payload.as_value())
        m.submodules.tokq = tokq = RingFIFO2(width=tw)
        tok_r = data_reg(tw, name="tok_r")
        tok_v = Signal()
        tok_take = ~tok_v | tokq.w_rdy
        with m.If(tok_take):
            m.d.sync += [tok_r.eq(framer.tok.payload), tok_v.eq(framer.tok.valid)]
        m.d.comb += [tokq.w_en.eq(tok_v), tokq.w_data.eq(tok_r),
                     framer.tok.ready.eq(tok_take),
                     pk.i.valid.eq(tokq.r_rdy), pk.i.payload.eq(tokq.r_data),
                     tokq.r_en.eq(pk.i.ready)]
        wiring.connect(m, pk.o, packer.i)
        wiring.connect(m, packer.o, wiring.flipped(self.o))
        m.d.comb += self.idle.eq(~framer.busy & ~jq_v & ~tok_v & ~tokq.r_rdy & reader.idle
                                 & pk.idle & packer.idle)
        return m
