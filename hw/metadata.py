"""The metadata output format (SPEC section 7), defined once for the RTL metadata TX and the host
parser.

One frame's metadata is a **blob** (all fields little-endian)::

    header        HEADER_FIELDS (HEADER_BYTES bytes)
    descriptors   n_tensors x TENSOR_FIELDS (TENSOR_BYTES bytes each)
    payload       the tensors' bytes, each at its descriptor's ``offset`` (relative to the payload
                  start), in descriptor order, each padded with zeros to PAYLOAD_ALIGN bytes
    trailer       TRAILER_FIELDS (TRAILER_BYTES bytes): values only known once the payload is out
    crc32         u32 CRC-32 (ISO-HDLC, as zlib.crc32) over every byte before it

Version 2 added the trailer. ``cycles_tx`` is measured by the transmitter (hw/metadata_tx.py): a
counter is 0 in the cycle the transmitter accepts the frame's command (``cmd.valid & cmd.ready``)
and counts every clock after it; ``cycles_tx`` is its value in the cycle the trailer's first byte
is taken from the transmitter's byte source (its blob byte stream, before the packetizer adds
headers and CRC-16). It covers the FS packet, the image lines and every blob byte before the
trailer, output back-pressure included; it excludes the last ``TRAILER_BYTES + 4`` blob bytes, the
final packet's CRC-16, the FE packet and the few bytes buffered in the transmitter's output
pipeline (at most ``2 * csi2_lanes_bytes``).

The **TX table** is how the SoC tells the transmitter what to send (all little-endian, at a
16-byte aligned SRAM byte address): TABLE_HEADER_FIELDS (TABLE_HEADER_BYTES bytes) then
``n_tensors`` entries of TABLE_ENTRY_FIELDS (TABLE_ENTRY_BYTES bytes each): the tensor's SRAM byte
address followed by its descriptor exactly as it appears in the blob (offsets and ``payload_bytes``
precomputed as models.metadata.pack lays them out; models.metadata.tx_table builds a table). The
transmitter copies descriptors verbatim and reads ``nbytes`` bytes at ``sram_addr`` per tensor.

On the wire it is one CSI-2 frame on virtual channel ``vc``: FS (WC = frame counter & 0xFFFF); in
mode ``image+metadata`` the input tensor as RAW8 long packets (one per tensor row, H lines of W*C
bytes, int8 sent as its two's-complement byte), then the blob cut into EMBEDDED (0x12) long packets
of at most ``line_bytes`` bytes; FE. A frame whose inference did not finish in time has ``VALID``
clear (and ``TIMEOUT`` set) and carries no tensors: it is never merged with the next frame.
"""

from __future__ import annotations

import enum

__all__ = [
    "METADATA_MAGIC",
    "METADATA_VERSION",
    "HEADER_FIELDS",
    "TENSOR_FIELDS",
    "HEADER_BYTES",
    "TENSOR_BYTES",
    "MAX_RANK",
    "PAYLOAD_ALIGN",
    "TRAILER_FIELDS",
    "TRAILER_BYTES",
    "CRC_BYTES",
    "TABLE_HEADER_FIELDS",
    "TABLE_ENTRY_FIELDS",
    "TABLE_HEADER_BYTES",
    "TABLE_ENTRY_BYTES",
    "TABLE_ALIGN",
    "MetaFlag",
    "DTYPE_CODES",
    "DTYPE_NAMES",
    "DEFAULT_LINE_BYTES",
    "field_offsets",
    "struct_layout",
]

METADATA_MAGIC = b"LDMD"
METADATA_VERSION = 2
MAX_RANK = 4
PAYLOAD_ALIGN = 4
DEFAULT_LINE_BYTES = 1024

#: Header fields: (name, struct code). Byte offsets follow in order with no padding.
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("magic", "4s"),  # METADATA_MAGIC
    ("version", "H"),  # METADATA_VERSION
    ("header_bytes", "H"),  # HEADER_BYTES (lets a newer parser skip fields it does not know)
    ("frame_counter", "I"),  # 32-bit frame counter
    ("flags", "H"),  # MetaFlag bits
    ("n_tensors", "H"),
    ("cycles_isp", "I"),  # KPI: ISP cycles of this frame
    ("cycles_npu", "I"),  # KPI: NPU cycles of this frame's inference
    ("cycles_total", "I"),  # KPI: frame start to metadata ready
    ("clock_khz", "I"),  # KPI: die clock, for cycles -> ms
    ("payload_bytes", "I"),  # bytes of the payload section
)

#: Per-tensor descriptor fields.
TENSOR_FIELDS: tuple[tuple[str, str], ...] = (
    ("dtype", "B"),  # DTYPE_CODES
    ("rank", "B"),  # 0..MAX_RANK
    ("reserved", "H"),
    ("dims", f"{MAX_RANK}H"),  # shape, unused dims 0
    ("scale", "f"),  # quantization scale (float32), 0 if none
    ("zero_point", "i"),
    ("offset", "I"),  # byte offset in the payload
    ("nbytes", "I"),
)


def _size(fields) -> int:
    import struct

    return struct.calcsize("<" + "".join(c for _, c in fields))


#: Trailer fields (version 2), between the payload and the CRC-32.
TRAILER_FIELDS: tuple[tuple[str, str], ...] = (
    ("cycles_tx", "I"),  # KPI: this frame's TX cycles (module docstring)
)

#: TX table header (module docstring); padded to 16 bytes so entries stay 16-byte aligned.
TABLE_HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("n_tensors", "H"),
    ("reserved", "H"),
    ("payload_bytes", "I"),  # the blob header's payload_bytes
    ("reserved2", "8s"),
)

#: TX table entry: the tensor's SRAM byte address, then its blob descriptor (TENSOR_FIELDS).
TABLE_ENTRY_FIELDS: tuple[tuple[str, str], ...] = (("sram_addr", "I"), *TENSOR_FIELDS)

#: Alignment of the TX table's SRAM byte address.
TABLE_ALIGN = 16
CRC_BYTES = 4

HEADER_BYTES = _size(HEADER_FIELDS)
TENSOR_BYTES = _size(TENSOR_FIELDS)
TRAILER_BYTES = _size(TRAILER_FIELDS)
TABLE_HEADER_BYTES = _size(TABLE_HEADER_FIELDS)
TABLE_ENTRY_BYTES = _size(TABLE_ENTRY_FIELDS)
assert TABLE_HEADER_BYTES % TABLE_ALIGN == 0 and TABLE_ENTRY_BYTES == 32


def field_offsets(fields) -> dict[str, tuple[int, int]]:
    """name -> (byte offset, byte size), for the RTL's header/descriptor ROM."""
    import struct

    out, off = {}, 0
    for name, code in fields:
        n = struct.calcsize("<" + code)
        out[name] = (off, n)
        off += n
    return out


class MetaFlag(enum.IntFlag):
    """Frame flags: VALID is set iff the frame's inference finished and its tensors are present."""

    VALID = 1 << 0
    RX_ERROR = 1 << 1  # the CSI-2 receiver flagged this frame (ECC, CRC, length, sync)
    ISP_ERROR = 1 << 2
    NPU_ERROR = 1 << 3
    TIMEOUT = 1 << 4  # inference did not finish within the frame time
    IMAGE = 1 << 5  # image lines were sent with this frame


DTYPE_CODES = {"int8": 0, "uint8": 1, "int16": 2, "int32": 3, "float32": 4}
DTYPE_NAMES = {v: k for k, v in DTYPE_CODES.items()}


def struct_layout(fields):
    """The fields as an Amaranth ``data.StructLayout`` (byte-exact, little-endian bit order) for the
    TX."""
    import struct

    from amaranth.hdl import unsigned
    from amaranth.lib import data

    members = {}
    for name, code in fields:
        if code[:-1].isdigit() and code[-1] != "s":
            n = int(code[:-1])
            members[name] = data.ArrayLayout(unsigned(8 * struct.calcsize("<" + code[-1])), n)
        else:
            members[name] = unsigned(8 * struct.calcsize("<" + code))
    return data.StructLayout(members)
