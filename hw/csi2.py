"""MIPI CSI-2 packet-layer constants shared by the gateware (hw/csi2_rx.py), the golden model
(models/csi2.py), the sensor model (sim/sensor.py) and the host (sw/pixel.py).

Packet header (4 bytes, sent in this order): DataID (bits 7:6 virtual channel, 5:0 data type), word
count LSB, word count MSB, ECC. The 24 header bits D0..D23 are DataID (D0..D7) then WC (D8..D23);
ECC bits 5:0 are the parity bits P0..P5 of :data:`ECC_MASKS`, bits 7:6 are reserved and sent as
zero.

Payload CRC: CRC-16/MCRF4XX (poly x^16+x^12+x^5+1 reflected = 0x8408, seed 0xFFFF, no final XOR),
sent LSB first after the payload.

Nothing here imports anything but the standard library and amaranth's enum.
"""

from __future__ import annotations

from amaranth.lib import data, enum

__all__ = ["DataType", "ECC_MASKS", "ECC_SYNDROMES", "CRC_POLY", "CRC_SEED", "ErrorFlag",
           "RAW10_GROUP_BYTES", "RAW10_GROUP_PIXELS", "ecc_parity", "crc16_byte", "is_long",
           "COUNTER_NAMES", "PIXEL_LAYOUT", "STATUS_LAYOUT", "beat_layout"]


class DataType(enum.Enum, shape=6):
    """CSI-2 data types used by the die (6-bit DT field)."""
    FS = 0x00          #: frame start (short; WC = frame number)
    FE = 0x01          #: frame end (short; WC = frame number)
    LS = 0x02          #: line start (short; WC = line number)
    LE = 0x03          #: line end (short)
    EMBEDDED = 0x12    #: embedded 8-bit non-image data (long)
    RAW8 = 0x2A        #: 1 pixel per byte (long)
    RAW10 = 0x2B       #: 4 pixels in 5 bytes (long)
    USER0 = 0x30       #: user-defined 8-bit data types 0x30..0x37 (long); metadata TX uses these
    USER1 = 0x31
    USER2 = 0x32
    USER3 = 0x33
    USER4 = 0x34
    USER5 = 0x35
    USER6 = 0x36
    USER7 = 0x37


def is_long(dt: int) -> bool:
    """Data types 0x00..0x0F are short packets (header only); 0x10..0x3F are long packets."""
    return (dt & 0x3F) >= 0x10


#: ECC parity masks: parity bit Pi = XOR of the header bits D0..D23 selected by ECC_MASKS[i].
ECC_MASKS: tuple[int, ...] = tuple(
    sum(1 << d for d in bits) for bits in (
        (0, 1, 2, 4, 5, 7, 10, 11, 13, 16, 20, 21, 22, 23),
        (0, 1, 3, 4, 6, 8, 10, 12, 14, 17, 20, 21, 22, 23),
        (0, 2, 3, 5, 6, 9, 11, 12, 15, 18, 20, 21, 22),
        (1, 2, 3, 7, 8, 9, 13, 14, 15, 19, 20, 21, 23),
        (4, 5, 6, 7, 8, 9, 16, 17, 18, 19, 20, 22, 23),
        (10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23),
    ))


def ecc_parity(header24: int) -> int:
    """The 6 ECC parity bits of the 24 header bits (bits 7:6 of the ECC byte are zero)."""
    return sum((bin(header24 & m).count("1") & 1) << i for i, m in enumerate(ECC_MASKS))


#: Syndrome -> header bit index (0..23 data D0..D23, 24..29 parity P0..P5) for every single-bit
# error.
#: Every data column has odd weight (3 or 5) and parity columns weight 1, so the code is SEC-DED:
#: a double error gives an even, non-zero syndrome that is not in this table.
ECC_SYNDROMES: dict[int, int] = {
    **{ecc_parity(1 << d): d for d in range(24)},
    **{1 << p: 24 + p for p in range(6)},
}
assert len(ECC_SYNDROMES) == 30

CRC_POLY = 0x8408   # x^16 + x^12 + x^5 + 1, reflected
CRC_SEED = 0xFFFF

RAW10_GROUP_BYTES = 5
RAW10_GROUP_PIXELS = 4


def crc16_byte(crc: int, byte: int) -> int:
    """One byte step of CRC-16/MCRF4XX (LSB first)."""
    crc ^= byte
    for _ in range(8):
        crc = (crc >> 1) ^ (CRC_POLY if crc & 1 else 0)
    return crc


class ErrorFlag(enum.Flag, shape=8):
    """Per-frame error flags the RX reports with each frame's status (metadata TX forwards them)."""
    #: a header in the frame had an uncorrectable (2-bit) error; the packet was dropped
    ECC = 0x01
    CRC = 0x02        #: a long packet's payload CRC did not match
    #: a packet ended before its word count (truncated) or carried extra bytes (overlong)
    LENGTH = 0x04
    SYNC = 0x08       #: frame structure broken: FS inside a frame (FE missing)
    OVERFLOW = 0x10   #: the ISP output could not keep up (reserved for the SoC top)


#: Error/status counters of the RX, in the order of its ``counters`` port and of the host-side
# report.
#: frames: FS received; frames_flagged: frames closed (by FE or by a new FS) with any ErrorFlag set;
#: ecc_corrected: headers with a corrected 1-bit error; ecc_detected: headers dropped for an
# uncorrectable
#: error; crc_errors: long packets with a bad CRC (complete packets only); length_errors: truncated
# or
#: overlong packets (and bursts shorter than a header); sync_errors: FS inside a frame, FE outside a
# frame,
#: long packet outside a frame.
COUNTER_NAMES = ("frames", "frames_flagged", "ecc_corrected", "ecc_detected", "crc_errors",
                 "length_errors", "sync_errors")


#: RX -> ISP pixel stream beat: one 10-bit sensor pixel; ``sof`` on the frame's first pixel, ``sol``
# on
#: each line's first pixel (RAW8 pixels arrive as ``byte << 2``).
PIXEL_LAYOUT = data.StructLayout({"pix": 10, "sof": 1, "sol": 1})

#: Per-frame status record the RX emits when a frame closes (by FE, or by an FS that finds it open).
STATUS_LAYOUT = data.StructLayout({"frame": 16, "flags": 8})


def beat_layout(nbytes: int) -> data.StructLayout:
    """One beat of the RX's byte-stream input: ``nbytes`` bytes (byte 0 first on the wire), ``n`` =
    valid bytes in a ``last`` beat (1..nbytes; non-last beats are always full), ``last`` = end of
    the burst (D-PHY EoT). Every burst starts at byte 0 of a beat."""
    return data.StructLayout({"data": data.ArrayLayout(8, nbytes), "n": nbytes.bit_length(),
                              "last": 1})
