"""Golden model of the CSI-2 packet layer: packetizer (what a sensor sends) and parser (what the RX
does).

Transport model (no D-PHY): the byte stream is a sequence of *bursts*; a burst is the bytes between
a D-PHY SoT and EoT and normally holds exactly one packet. The RX sees burst boundaries (the
``last`` flag of its input stream), which is how it finds the next header after a corrupt or wrongly
sized packet.

:func:`parse` is the exact behavioural reference of ``hw/csi2_rx.py``: same counters, same per-frame
status records, same pixel lines. Its rules (also in docs/pixel_path.md):

* burst shorter than 4 bytes: ``length_errors`` += 1 (frame flagged LENGTH if in a frame), dropped;
* header ECC: no error -> used; one bit wrong (any of the 32 bits) -> corrected, ``ecc_corrected``
  += 1; otherwise -> ``ecc_detected`` += 1, frame flagged ECC, burst dropped;
* short packet: FS inside a frame closes the open frame with the SYNC flag (``sync_errors`` += 1),
  then opens a new frame numbered by WC; FE inside a frame closes it, outside it is a sync error;
  other short packets are ignored. Bytes after a short packet's header: ``length_errors`` += 1 (flag
  if in a frame);
* long packet (DT >= 0x10): payload = the next WC bytes, then 2 CRC bytes (LSB first). A burst that
  ends early is truncated (``length_errors``, no CRC verdict); otherwise the CRC is checked
  (``crc_errors``) and extra bytes are an overlong error (``length_errors``). Every error flags the
  open frame. A long packet outside a frame is a sync error. RAW10 / RAW8 packets inside a frame
  emit their complete pixels (RAW10: whole 5-byte groups; RAW8 pixels are scaled to 10 bits as
  ``byte << 2``) as one line, even if the packet later proves bad; the first pixel after FS carries
  ``sof``.
* a frame is counted in ``frames_flagged`` when it closes with any flag set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw.csi2 import (
    COUNTER_NAMES,
    CRC_SEED,
    ECC_SYNDROMES,
    DataType,
    ErrorFlag,
    crc16_byte,
    ecc_parity,
    is_long,
)

__all__ = ["header", "ecc_decode", "crc16", "raw10_pack", "raw10_unpack", "raw8_pack",
           "raw8_unpack", "short_packet", "long_packet", "frame_packets", "parse", "ParseResult",
           "Line", "EccStatus", "Parser"]


def header(dt: int, wc: int, vc: int = 0) -> bytes:
    """The 4 header bytes: DataID, WC LSB, WC MSB, ECC."""
    if not 0 <= wc <= 0xFFFF:
        raise ValueError(f"word count {wc} does not fit 16 bits")
    h = ((vc & 3) << 6) | (int(dt) & 0x3F) | (wc << 8)
    return bytes([h & 0xFF, (h >> 8) & 0xFF, (h >> 16) & 0xFF, ecc_parity(h)])


class EccStatus:
    OK = "ok"
    CORRECTED = "corrected"
    DETECTED = "detected"


def ecc_decode(hdr: bytes) -> tuple[str, int]:
    """Check a 4-byte header. Returns (status, corrected 24 header bits).

    A single flipped bit anywhere in the 32 bits (24 data, 6 parity, 2 reserved) is corrected; any
    error pattern whose syndrome is not a single-bit one (every double-bit error) is detected.
    """
    h = hdr[0] | (hdr[1] << 8) | (hdr[2] << 16)
    ecc = hdr[3]
    syn = (ecc & 0x3F) ^ ecc_parity(h)
    rsv = ecc >> 6
    if syn == 0 and rsv == 0:
        return EccStatus.OK, h
    if syn == 0 and rsv in (1, 2):
        return EccStatus.CORRECTED, h
    if rsv == 0 and syn in ECC_SYNDROMES:
        bit = ECC_SYNDROMES[syn]
        return EccStatus.CORRECTED, (h ^ (1 << bit)) if bit < 24 else h
    return EccStatus.DETECTED, h


def crc16(data: bytes | bytearray | np.ndarray, crc: int = CRC_SEED) -> int:
    """CRC-16/MCRF4XX of ``data`` (table driven)."""
    tab = _crc_table()
    for b in bytes(data):
        crc = (crc >> 8) ^ tab[(crc ^ b) & 0xFF]
    return crc


_TABLE: list[int] = []


def _crc_table() -> list[int]:
    if not _TABLE:
        _TABLE.extend(crc16_byte(0, b) for b in range(256))
    return _TABLE


def raw10_pack(pixels) -> bytes:
    """Pack 10-bit pixels (a multiple of 4): 4 MSB bytes then one byte of LSBs [P3|P2|P1|P0]."""
    p = np.asarray(pixels, dtype=np.uint16).reshape(-1)
    if p.size % 4:
        raise ValueError("RAW10 needs a multiple of 4 pixels per line")
    if p.size and int(p.max()) > 1023:
        raise ValueError("RAW10 pixels must be < 1024")
    g = p.reshape(-1, 4)
    out = np.empty((g.shape[0], 5), dtype=np.uint8)
    out[:, :4] = g >> 2
    out[:, 4] = (g[:, 0] & 3) | ((g[:, 1] & 3) << 2) | ((g[:, 2] & 3) << 4) | ((g[:, 3] & 3) << 6)
    return out.tobytes()


def raw10_unpack(data: bytes) -> np.ndarray:
    """Unpack RAW10 bytes; only whole 5-byte groups produce pixels (4 each)."""
    b = np.frombuffer(bytes(data), dtype=np.uint8)
    n = b.size // 5
    g = b[:n * 5].reshape(n, 5).astype(np.uint16)
    lsb = g[:, 4]
    px = (g[:, :4] << 2) | np.stack([(lsb >> (2 * i)) & 3 for i in range(4)], axis=1)
    return px.reshape(-1)


def raw8_pack(pixels) -> bytes:
    """RAW8: one byte per pixel (the 8 MSBs of a 10-bit pixel)."""
    return (np.asarray(pixels, dtype=np.uint16).reshape(-1) >> 2).astype(np.uint8).tobytes()


def raw8_unpack(data: bytes) -> np.ndarray:
    """RAW8 bytes as 10-bit pixels (``byte << 2``), the RX's convention."""
    return np.frombuffer(bytes(data), dtype=np.uint8).astype(np.uint16) << 2


def short_packet(dt: int, wc: int = 0, vc: int = 0) -> bytes:
    return header(dt, wc, vc)


def long_packet(dt: int, payload: bytes, vc: int = 0) -> bytes:
    payload = bytes(payload)
    c = crc16(payload)
    return header(dt, len(payload), vc) + payload + bytes([c & 0xFF, c >> 8])


def frame_packets(raw: np.ndarray, frame_number: int = 0, *, dt: int = DataType.RAW10.value,
                  line_start_end: bool = True, vc: int = 0) -> list[bytes]:
    """The bursts of one frame: FS(frame number), per line [LS(line)] long packet [LE], FE."""
    raw = np.asarray(raw)
    pack = raw10_pack if dt == DataType.RAW10.value else raw8_pack
    out = [short_packet(DataType.FS.value, frame_number & 0xFFFF, vc)]
    for y in range(raw.shape[0]):
        if line_start_end:
            out.append(short_packet(DataType.LS.value, (y + 1) & 0xFFFF, vc))
        out.append(long_packet(dt, pack(raw[y]), vc))
        if line_start_end:
            out.append(short_packet(DataType.LE.value, (y + 1) & 0xFFFF, vc))
    out.append(short_packet(DataType.FE.value, frame_number & 0xFFFF, vc))
    return out


@dataclass
class Line:
    """One line of the RX pixel stream: ``sof`` is set on its first pixel if it opens the frame."""
    sof: bool
    pixels: np.ndarray


@dataclass
class ParseResult:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
    #: (frame number, ErrorFlag bits) for every closed frame, in order.
    statuses: list[tuple[int, int]] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    #: per closed frame (same order as ``statuses``): the [start, end) range of its ``lines``
    frame_lines: list[tuple[int, int]] = field(default_factory=list)

    def frames(self) -> list[np.ndarray]:
        """Pixel lines grouped by sof into frames (lists of lines), for clean-frame checks."""
        out: list[list[np.ndarray]] = []
        for ln in self.lines:
            if ln.sof or not out:
                out.append([])
            out[-1].append(ln.pixels)
        return out


class _State:
    def __init__(self, res: ParseResult):
        self.res = res
        self.in_frame = False
        self.frame = 0
        self.flags = 0
        self.pending_sof = False
        self.line0 = 0

    def flag(self, f: ErrorFlag):
        if self.in_frame:
            self.flags |= f.value

    def close(self, extra: int = 0):
        flags = self.flags | extra
        self.res.statuses.append((self.frame, flags))
        self.res.frame_lines.append((self.line0, len(self.res.lines)))
        if flags:
            self.res.counters["frames_flagged"] += 1
        self.in_frame = False


class Parser:
    """The RX's rules over a stream fed in pieces (a frame open at the end of one :meth:`feed`
    stays open for the next), as the RTL sees one continuous input."""

    def __init__(self):
        self.result = ParseResult()
        self._state = _State(self.result)

    def feed(self, bursts) -> ParseResult:
        return parse(bursts, self.result, self._state)


def parse(bursts, result: ParseResult | None = None, _state: _State | None = None
          ) -> ParseResult:
    """Run the RX's rules (module docstring) over ``bursts`` (iterable of bytes)."""
    res = result or ParseResult()
    st = _state or _State(res)
    c = res.counters
    for b in bursts:
        b = bytes(b)
        if len(b) < 4:
            c["length_errors"] += 1
            st.flag(ErrorFlag.LENGTH)
            continue
        status, h = ecc_decode(b[:4])
        if status == EccStatus.DETECTED:
            c["ecc_detected"] += 1
            st.flag(ErrorFlag.ECC)
            continue
        if status == EccStatus.CORRECTED:
            c["ecc_corrected"] += 1
        dt, wc = h & 0x3F, h >> 8
        if not is_long(dt):
            if dt == DataType.FS.value:
                if st.in_frame:
                    c["sync_errors"] += 1
                    st.close(ErrorFlag.SYNC.value)
                c["frames"] += 1
                st.in_frame, st.frame, st.flags, st.pending_sof = True, wc, 0, True
                st.line0 = len(res.lines)
            elif dt == DataType.FE.value:
                if st.in_frame:
                    st.close()
                else:
                    c["sync_errors"] += 1
            if len(b) > 4:
                c["length_errors"] += 1
                st.flag(ErrorFlag.LENGTH)
            continue
        # long packet
        if not st.in_frame:
            c["sync_errors"] += 1
        payload = b[4:4 + wc]
        if st.in_frame and dt in (DataType.RAW10.value, DataType.RAW8.value):
            px = raw10_unpack(payload) if dt == DataType.RAW10.value else raw8_unpack(payload)
            if px.size:
                res.lines.append(Line(st.pending_sof, px))
                st.pending_sof = False
        if len(b) < 4 + wc + 2:
            c["length_errors"] += 1
            st.flag(ErrorFlag.LENGTH)
            continue
        if crc16(payload) != (b[4 + wc] | (b[5 + wc] << 8)):
            c["crc_errors"] += 1
            st.flag(ErrorFlag.CRC)
        if len(b) > 4 + wc + 2:
            c["length_errors"] += 1
            st.flag(ErrorFlag.LENGTH)
    return res
