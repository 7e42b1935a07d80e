"""Golden CSI-2 model: CRC, ECC (correct 1-bit / detect 2-bit), RAW10/RAW8 packing, parser rules."""

import numpy as np
import pytest

from hw.csi2 import COUNTER_NAMES, DataType, ErrorFlag
from models import csi2

SPEC_CRC_EXAMPLE = bytes.fromhex("FF00 0000 1EF0 1EC7 4F82 78C5 82E0 8C70 D23C 78E9 FF00 0001")

SAMPLE_HEADERS = [csi2.header(DataType.FS.value, 7), csi2.header(DataType.FE.value, 0),
                  csi2.header(DataType.RAW10.value, 800),
                  csi2.header(DataType.RAW8.value, 0xBEEF, 2),
                  csi2.header(DataType.USER3.value, 0x1234, 3)]


def test_crc_spec_example():
    assert len(SPEC_CRC_EXAMPLE) == 24
    assert csi2.crc16(SPEC_CRC_EXAMPLE) == 0xE569


def test_crc_empty_is_seed():
    assert csi2.crc16(b"") == 0xFFFF


def test_fe_ecc():
    assert csi2.header(DataType.FE.value, 0) == bytes([0x01, 0x00, 0x00, 0x07])


@pytest.mark.parametrize("hdr", SAMPLE_HEADERS, ids=lambda h: h.hex())
def test_ecc_single_and_double(hdr):
    status, h = csi2.ecc_decode(hdr)
    want = hdr[0] | hdr[1] << 8 | hdr[2] << 16
    assert status == csi2.EccStatus.OK and h == want
    word = int.from_bytes(hdr, "little")
    for i in range(32):
        bad = (word ^ (1 << i)).to_bytes(4, "little")
        status, h = csi2.ecc_decode(bad)
        assert status == csi2.EccStatus.CORRECTED and h == want, i
    for i in range(32):
        for j in range(i + 1, 32):
            bad = (word ^ (1 << i) ^ (1 << j)).to_bytes(4, "little")
            assert csi2.ecc_decode(bad)[0] == csi2.EccStatus.DETECTED, (i, j)


def test_raw10_round_trip_and_layout():
    rng = np.random.default_rng(1)
    px = rng.integers(0, 1024, 64, dtype=np.uint16)
    b = csi2.raw10_pack(px)
    assert len(b) == 80
    assert np.array_equal(csi2.raw10_unpack(b), px)
    # byte layout: 4 MSB bytes then [P3|P2|P1|P0] LSBs
    b4 = csi2.raw10_pack([0x3FF, 0x001, 0x002, 0x203])
    assert b4 == bytes([0xFF, 0x00, 0x00, 0x80, 0b11_10_01_11])
    # a partial group yields no pixels
    assert csi2.raw10_unpack(b[:9]).size == 4
    with pytest.raises(ValueError):
        csi2.raw10_pack(px[:3])


def test_raw8_round_trip():
    px = np.arange(0, 1024, 4, dtype=np.uint16)
    assert np.array_equal(csi2.raw8_unpack(csi2.raw8_pack(px)), px)


def test_parse_clean_frames():
    rng = np.random.default_rng(2)
    raws = [rng.integers(0, 1024, (6, 16), dtype=np.uint16) for _ in range(3)]
    bursts = [b for n, r in enumerate(raws) for b in csi2.frame_packets(r, n + 5)]
    res = csi2.parse(bursts)
    assert res.counters == {**dict.fromkeys(COUNTER_NAMES, 0), "frames": 3}
    assert res.statuses == [(5, 0), (6, 0), (7, 0)]
    frames = res.frames()
    assert len(frames) == 3
    for f, r in zip(frames, raws, strict=True):
        assert np.array_equal(np.stack(f), r)


def test_parse_error_rules():
    raw = np.full((2, 8), 100, dtype=np.uint16)
    pk = csi2.frame_packets(raw, 1, line_start_end=False)   # FS, L0, L1, FE
    line = bytearray(pk[1])
    line[6] ^= 0x10                                          # payload bit -> CRC error
    hdr2 = bytearray(pk[2])
    hdr2[0] ^= 0x03                                          # two header bits -> detected
    res = csi2.parse([pk[0], bytes(line), bytes(hdr2), pk[2][:8], b"\x00\x01", pk[3],
                      pk[3], pk[0] + b"\x00", pk[1], pk[0], pk[1]])
    c = res.counters
    assert c["crc_errors"] == 1 and c["ecc_detected"] == 1
    assert c["length_errors"] == 3          # truncated line, 2-byte burst, overlong FS
    assert c["sync_errors"] == 2            # FE outside frame, FS inside frame
    assert c["frames"] == 3 and c["frames_flagged"] == 2
    assert res.statuses[0] == (1, (ErrorFlag.CRC | ErrorFlag.ECC | ErrorFlag.LENGTH).value)
    assert res.statuses[1] == (1, (ErrorFlag.LENGTH | ErrorFlag.SYNC).value)
