"""Metadata packer (golden model of the metadata TX) and host parser, for the format of
hw/metadata.py.

- :func:`pack` builds one frame's blob; :func:`unpack` parses and verifies it (MetadataError on
  anything wrong: magic, version, sizes, CRC-32).
- :func:`tx_table` builds the RTL transmitter's TX table (hw/metadata.py) with the descriptors and
  payload layout :func:`pack` uses (one code path: :func:`_descriptors`).
- :func:`frame_to_packets` wraps a blob (and optionally the input tensor as RAW8 lines) into the
  CSI-2 bursts of one frame; :func:`parse_stream` turns a burst stream back into one
  :class:`ParsedFrame` per FS..FE. A corrupt packet (header ECC beyond correction, payload CRC-16,
  wrong length, missing FS/FE) gives that frame ``error`` set and ``metadata`` None: the frame is
  reported, never dropped or merged, and the next FS starts cleanly.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from hw.csi2 import DataType, is_long
from hw.errors import UserError
from hw.metadata import (
    DEFAULT_LINE_BYTES,
    DTYPE_CODES,
    DTYPE_NAMES,
    HEADER_BYTES,
    HEADER_FIELDS,
    MAX_RANK,
    METADATA_MAGIC,
    METADATA_VERSION,
    PAYLOAD_ALIGN,
    TABLE_ENTRY_FIELDS,
    TABLE_HEADER_FIELDS,
    TENSOR_BYTES,
    TENSOR_FIELDS,
    TRAILER_BYTES,
    TRAILER_FIELDS,
    MetaFlag,
)
from models.csi2 import EccStatus, crc16, ecc_decode, long_packet, short_packet

__all__ = [
    "MetadataError",
    "MetaTensor",
    "Metadata",
    "pack",
    "unpack",
    "tx_table",
    "frame_to_packets",
    "parse_stream",
    "ParsedFrame",
]

_HDR = struct.Struct("<" + "".join(c for _, c in HEADER_FIELDS))
_DESC = struct.Struct("<" + "".join(c for _, c in TENSOR_FIELDS))
_TRAILER = struct.Struct("<" + "".join(c for _, c in TRAILER_FIELDS))
_TAB_HDR = struct.Struct("<" + "".join(c for _, c in TABLE_HEADER_FIELDS))
_TAB_ADDR = struct.Struct("<" + TABLE_ENTRY_FIELDS[0][1])
assert _HDR.size == HEADER_BYTES and _DESC.size == TENSOR_BYTES and _TRAILER.size == TRAILER_BYTES
assert TABLE_ENTRY_FIELDS[1:] == TENSOR_FIELDS


class MetadataError(UserError):
    """A metadata blob or packet stream is corrupt (the message says what and where)."""


@dataclass
class MetaTensor:
    data: np.ndarray
    scale: float = 0.0
    zero_point: int = 0

    @property
    def shape(self):
        return tuple(self.data.shape)


@dataclass
class Metadata:
    frame_counter: int
    flags: int
    tensors: list = field(default_factory=list)
    cycles_isp: int = 0
    cycles_npu: int = 0
    cycles_total: int = 0
    clock_khz: int = 0
    cycles_tx: int = 0  # measured by the RTL transmitter (hw/metadata.py); 0 from the models

    @property
    def valid(self) -> bool:
        return bool(self.flags & MetaFlag.VALID)

    def kpi(self) -> dict:
        ms = (lambda c: c / self.clock_khz) if self.clock_khz else (lambda c: None)
        return {
            "cycles_isp": self.cycles_isp,
            "cycles_npu": self.cycles_npu,
            "cycles_tx": self.cycles_tx,
            "cycles_total": self.cycles_total,
            "clock_mhz": self.clock_khz / 1e3,
            "ms_isp": ms(self.cycles_isp),
            "ms_npu": ms(self.cycles_npu),
            "ms_tx": ms(self.cycles_tx),
            "ms_total": ms(self.cycles_total),
        }

    def error_names(self) -> list[str]:
        return [
            f.name for f in MetaFlag if f not in (MetaFlag.VALID, MetaFlag.IMAGE) and self.flags & f
        ]


def _spec(t) -> tuple[np.dtype, tuple, float, int, bytes | None]:
    """A tensor (MetaTensor, array, or (shape, dtype, scale, zero_point)) -> (little-endian dtype,
    shape, scale, zero_point, bytes or None); ValueError for what metadata cannot carry."""
    if isinstance(t, tuple) and len(t) == 4 and isinstance(t[0], (tuple, list)):
        shape, dt, scale, zp = t
        dt, shape, b = np.dtype(dt), tuple(int(d) for d in shape), None
    else:
        if not isinstance(t, MetaTensor):
            t = MetaTensor(np.asarray(t))
        a = np.array(t.data, copy=None, order="C")  # keeps rank 0 (ascontiguousarray would not)
        dt, shape, scale, zp = a.dtype, a.shape, t.scale, t.zero_point
        b = None
        if str(dt) in DTYPE_CODES:
            b = a.astype(dt.newbyteorder("<"), copy=False).tobytes()
    if str(dt) not in DTYPE_CODES or len(shape) > MAX_RANK:
        raise ValueError(f"metadata cannot carry a {dt} tensor of rank {len(shape)}")
    if any(d > 0xFFFF or d < 0 for d in shape):
        raise ValueError(f"tensor dimension beyond 16 bits: {shape}")
    return dt, shape, float(scale), int(zp), b


def _descriptors(tensors) -> tuple[list[bytes], list[int], int, list[bytes | None]]:
    """The blob layout of ``tensors``: (descriptor bytes per tensor, payload offset per tensor,
    payload_bytes, the tensors' bytes or None for shape-only specs). Each tensor's bytes sit at its
    offset, padded with zeros to PAYLOAD_ALIGN."""
    descs, offsets, off, datas = [], [], 0, []
    for t in tensors:
        dt, shape, scale, zp, b = _spec(t)
        datas.append(b)
        nb = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        dims = list(shape) + [0] * (MAX_RANK - len(shape))
        descs.append(_DESC.pack(DTYPE_CODES[str(dt)], len(shape), 0, *dims, scale, zp, off, nb))
        offsets.append(off)
        off += nb + (-nb % PAYLOAD_ALIGN)
    return descs, offsets, off, datas


def pack(md: Metadata) -> bytes:
    """Metadata -> blob. Tensors: MetaTensor (or arrays) of the dtypes in DTYPE_CODES, rank <= 4."""
    descs, offsets, pbytes, datas = _descriptors(md.tensors)
    payload = bytearray(pbytes)
    for b, off in zip(datas, offsets, strict=True):
        if b is None:
            raise ValueError("pack needs tensor data, not a (shape, dtype, scale, zp) spec")
        payload[off : off + len(b)] = b
    hdr = _HDR.pack(
        METADATA_MAGIC,
        METADATA_VERSION,
        HEADER_BYTES,
        md.frame_counter & 0xFFFFFFFF,
        int(md.flags) & 0xFFFF,
        len(descs),
        md.cycles_isp & 0xFFFFFFFF,
        md.cycles_npu & 0xFFFFFFFF,
        md.cycles_total & 0xFFFFFFFF,
        md.clock_khz & 0xFFFFFFFF,
        pbytes,
    )
    body = hdr + b"".join(descs) + bytes(payload) + _TRAILER.pack(md.cycles_tx & 0xFFFFFFFF)
    return body + struct.pack("<I", zlib.crc32(body))


def tx_table(entries) -> bytes:
    """The RTL transmitter's TX table (hw/metadata.py) for ``entries``: a list of ``(sram_addr,
    tensor)`` with tensor a MetaTensor (or array) or ``(shape, dtype, scale, zero_point)``. The
    descriptors and payload_bytes are exactly those :func:`pack` emits for the same tensors."""
    entries = list(entries)
    descs, _, pbytes, _ = _descriptors([t for _, t in entries])
    out = bytearray(_TAB_HDR.pack(len(descs), 0, pbytes, b""))
    for (addr, _), d in zip(entries, descs, strict=True):
        out += _TAB_ADDR.pack(int(addr)) + d
    return bytes(out)


def unpack(blob: bytes) -> Metadata:
    """Blob -> Metadata; MetadataError naming the problem for anything inconsistent."""
    blob = bytes(blob)
    if len(blob) < HEADER_BYTES + 4:
        raise MetadataError(
            f"metadata truncated: {len(blob)} bytes, header alone is {HEADER_BYTES}"
        )
    (magic, version, hbytes, fc, flags, nt, c_isp, c_npu, c_tot, clk, pbytes) = _HDR.unpack_from(
        blob
    )
    if magic != METADATA_MAGIC:
        raise MetadataError(f"not logicdie metadata (magic {magic!r})")
    if version != METADATA_VERSION:
        raise MetadataError(f"metadata version {version}; this parser reads {METADATA_VERSION}")
    if hbytes < HEADER_BYTES:
        raise MetadataError(f"metadata header size {hbytes} < {HEADER_BYTES}")
    total = hbytes + nt * TENSOR_BYTES + pbytes + TRAILER_BYTES + 4
    if len(blob) != total:
        raise MetadataError(f"metadata length {len(blob)} bytes, header says {total}")
    (crc,) = struct.unpack_from("<I", blob, total - 4)
    if zlib.crc32(blob[: total - 4]) != crc:
        raise MetadataError(f"metadata CRC-32 mismatch (frame {fc})")
    (c_tx,) = _TRAILER.unpack_from(blob, total - 4 - TRAILER_BYTES)
    md = Metadata(fc, flags, [], c_isp, c_npu, c_tot, clk, c_tx)
    pstart = hbytes + nt * TENSOR_BYTES
    for i in range(nt):
        f = _DESC.unpack_from(blob, hbytes + i * TENSOR_BYTES)
        code, rank, dims, scale, zp, off, nb = f[0], f[1], f[3 : 3 + MAX_RANK], *f[3 + MAX_RANK :]
        if code not in DTYPE_NAMES or rank > MAX_RANK:
            raise MetadataError(f"metadata tensor {i}: bad dtype code {code} or rank {rank}")
        dt = np.dtype(DTYPE_NAMES[code]).newbyteorder("<")
        shape = tuple(dims[:rank])
        if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != nb or off + nb > pbytes:
            raise MetadataError(
                f"metadata tensor {i}: shape {shape} does not match {nb} bytes at offset {off}"
            )
        data = np.frombuffer(blob, dt, count=nb // dt.itemsize, offset=pstart + off).reshape(shape)
        md.tensors.append(MetaTensor(data.astype(dt.newbyteorder("=")), scale, zp))
    return md


def frame_to_packets(
    blob: bytes,
    frame_counter: int,
    image: np.ndarray | None = None,
    line_bytes: int = DEFAULT_LINE_BYTES,
    vc: int = 0,
) -> list[bytes]:
    """CSI-2 bursts of one metadata frame (hw/metadata.py module docstring)."""
    if line_bytes < 1 or line_bytes > 0xFFFF:
        raise ValueError("line_bytes must be in 1..65535")
    out = [short_packet(DataType.FS.value, frame_counter & 0xFFFF, vc)]
    if image is not None:
        img = np.ascontiguousarray(image)
        rows = (
            img.reshape(img.shape[0] if img.ndim >= 2 else 1, -1)
            if img.ndim != 4
            else img.reshape(img.shape[1], -1)
        )
        for r in rows:
            out.append(long_packet(DataType.RAW8.value, r.view(np.uint8).tobytes(), vc))
    for k in range(0, len(blob), line_bytes):
        out.append(long_packet(DataType.EMBEDDED.value, blob[k : k + line_bytes], vc))
    out.append(short_packet(DataType.FE.value, frame_counter & 0xFFFF, vc))
    return out


@dataclass
class ParsedFrame:
    """One FS..FE of the metadata stream: the decoded metadata or the error that spoiled it."""

    frame_number: int
    metadata: Metadata | None = None
    image_lines: list = field(default_factory=list)
    error: str | None = None
    ecc_corrected: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.metadata is not None

    def image(self) -> np.ndarray | None:
        if not self.image_lines:
            return None
        return np.stack([np.frombuffer(b, np.uint8) for b in self.image_lines])


def parse_stream(bursts) -> list[ParsedFrame]:
    """Bursts -> one ParsedFrame per frame. Errors are recorded per frame (first one wins), never
    raised; bytes outside a frame and a missing FE are reported as an error frame, never merged into
    the next."""
    frames: list[ParsedFrame] = []
    cur: ParsedFrame | None = None
    chunks: list[bytes] = []

    def close(err=None):
        nonlocal cur, chunks
        if cur is None:
            return
        if err and cur.error is None:
            cur.error = err
        if cur.error is None:
            try:
                cur.metadata = unpack(b"".join(chunks))
                if cur.metadata.frame_counter & 0xFFFF != cur.frame_number:
                    cur.error = (
                        f"frame number {cur.frame_number} in FS does not match the metadata's "
                        f"frame counter {cur.metadata.frame_counter}"
                    )
                    cur.metadata = None
            except MetadataError as e:
                cur.error = str(e)
        frames.append(cur)
        cur, chunks = None, []

    for k, b in enumerate(bursts):
        b = bytes(b)
        if len(b) < 4:
            if cur is not None and cur.error is None:
                cur.error = f"packet {k}: {len(b)}-byte burst is shorter than a header"
            continue
        status, h = ecc_decode(b[:4])
        if status == EccStatus.DETECTED:
            if cur is not None and cur.error is None:
                cur.error = f"packet {k}: uncorrectable header ECC error"
            continue
        dt, wc = h & 0x3F, h >> 8
        if cur is not None and status == EccStatus.CORRECTED:
            cur.ecc_corrected += 1
        if dt == DataType.FS.value:
            if cur is not None:
                close("frame end (FE) missing before the next frame start")
            cur = ParsedFrame(wc)
            continue
        if dt == DataType.FE.value:
            if cur is None:
                frames.append(ParsedFrame(wc, error=f"packet {k}: frame end without frame start"))
            else:
                close()
            continue
        if not is_long(dt):
            continue
        if cur is None:
            frames.append(ParsedFrame(-1, error=f"packet {k}: data packet outside a frame"))
            continue
        if len(b) != 4 + wc + 2:
            if cur.error is None:
                cur.error = f"packet {k}: length {len(b)} does not match word count {wc} + 6"
            continue
        payload = b[4 : 4 + wc]
        if crc16(payload) != (b[4 + wc] | (b[5 + wc] << 8)):
            if cur.error is None:
                cur.error = f"packet {k}: payload CRC-16 mismatch"
            continue
        if dt == DataType.EMBEDDED.value:
            chunks.append(payload)
        elif dt == DataType.RAW8.value:
            cur.image_lines.append(payload)
    if cur is not None:
        close("stream ended before frame end (FE)")
    return frames
