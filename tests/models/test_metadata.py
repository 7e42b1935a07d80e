"""Metadata: pack -> parse round trips, CSI-2 framing, and corrupt blobs / packets (clear error per
frame, nothing lost, the next frame intact)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from hw.csi2 import DataType
from hw.metadata import (
    HEADER_BYTES,
    HEADER_FIELDS,
    METADATA_VERSION,
    TABLE_ENTRY_BYTES,
    TABLE_HEADER_BYTES,
    TABLE_HEADER_FIELDS,
    TENSOR_BYTES,
    TRAILER_BYTES,
    TRAILER_FIELDS,
    MetaFlag,
    field_offsets,
)
from models.csi2 import crc16, ecc_decode
from models.metadata import (
    Metadata,
    MetadataError,
    MetaTensor,
    frame_to_packets,
    pack,
    parse_stream,
    tx_table,
    unpack,
)

HDR_FMT = "<" + "".join(c for _, c in HEADER_FIELDS)
DTYPES = ("int8", "uint8", "int16", "int32", "float32")


def _random_md(rng, fc=None) -> Metadata:
    tensors = []
    for _ in range(int(rng.integers(0, 4))):
        dt = np.dtype(DTYPES[int(rng.integers(len(DTYPES)))])
        shape = tuple(int(s) for s in rng.integers(1, 7, size=int(rng.integers(0, 5))))
        if dt.kind == "f":
            a = rng.normal(size=shape).astype(dt)
        else:
            info = np.iinfo(dt)
            a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)
        tensors.append(
            MetaTensor(a, float(np.float32(rng.uniform(0, 1))), int(rng.integers(-128, 128)))
        )
    return Metadata(
        int(rng.integers(0, 1 << 32)) if fc is None else fc,
        int(rng.integers(0, 64)),
        tensors,
        *(int(v) for v in rng.integers(0, 1 << 32, size=3)),
        int(rng.integers(1, 1 << 20)),
        int(rng.integers(0, 1 << 32)),
    )


def _same(a: Metadata, b: Metadata):
    keys = ("frame_counter", "flags", "cycles_isp", "cycles_npu", "cycles_total", "clock_khz")
    keys += ("cycles_tx",)
    assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys]
    assert len(a.tensors) == len(b.tensors)
    for x, y in zip(a.tensors, b.tensors, strict=True):
        assert x.data.dtype == y.data.dtype and x.data.shape == y.data.shape
        assert np.array_equal(x.data, y.data)
        assert np.float32(x.scale) == np.float32(y.scale) and x.zero_point == y.zero_point


def test_layout_offsets():
    from hw.metadata import TENSOR_FIELDS, struct_layout

    assert struct_layout(HEADER_FIELDS).size == 8 * HEADER_BYTES  # the TX's view: same bytes
    assert struct_layout(TENSOR_FIELDS).size == 8 * TENSOR_BYTES
    offs = field_offsets(HEADER_FIELDS)
    assert offs["magic"] == (0, 4)
    assert sum(n for _, n in offs.values()) == HEADER_BYTES
    assert TENSOR_BYTES % 4 == 0


def _header(blob) -> dict:
    names = [n for n, _ in HEADER_FIELDS]
    return dict(zip(names, struct.unpack_from(HDR_FMT, blob), strict=True))


def test_blob_sections_and_trailer():
    """Version 2: header, descriptors, payload, trailer (cycles_tx), CRC-32 at the documented
    places, computed here with struct/zlib independently of pack()."""
    md = Metadata(7, int(MetaFlag.VALID), [MetaTensor(np.arange(5, dtype=np.int8), 0.5, 3)])
    md.cycles_tx = 0xA1B2C3D4
    blob = pack(md)
    fields = _header(blob)
    assert fields["version"] == METADATA_VERSION == 2
    assert fields["payload_bytes"] == 8 and fields["n_tensors"] == 1
    end = HEADER_BYTES + TENSOR_BYTES + 8
    assert blob[end - 8 : end] == bytes(range(5)) + bytes(3)  # payload padded with zeros
    assert TRAILER_FIELDS[0][0] == "cycles_tx" and TRAILER_BYTES == 4
    assert struct.unpack_from("<I", blob, end) == (0xA1B2C3D4,)
    assert len(blob) == end + TRAILER_BYTES + 4
    assert struct.unpack_from("<I", blob, len(blob) - 4) == (zlib.crc32(blob[:-4]),)
    assert unpack(blob).kpi()["cycles_tx"] == 0xA1B2C3D4


def test_tx_table_matches_pack():
    """The TX table's header and descriptors are the bytes pack() puts in the blob, for tensors
    given as data or as (shape, dtype, scale, zero_point)."""
    rng = np.random.default_rng(11)
    assert TABLE_HEADER_BYTES % 16 == 0 and TABLE_ENTRY_BYTES == 4 + TENSOR_BYTES == 32
    for _ in range(50):
        md = _random_md(rng)
        addrs = [int(a) for a in rng.integers(0, 1 << 20, size=len(md.tensors))]
        tab = tx_table(list(zip(addrs, md.tensors, strict=True)))
        specs = [(t.shape, t.data.dtype, t.scale, t.zero_point) for t in md.tensors]
        assert tx_table(list(zip(addrs, specs, strict=True))) == tab
        blob = pack(md)
        hdr = _header(blob)
        th = struct.unpack_from("<" + "".join(c for _, c in TABLE_HEADER_FIELDS), tab)
        th = dict(zip([n for n, _ in TABLE_HEADER_FIELDS], th, strict=True))
        assert (th["n_tensors"], th["payload_bytes"]) == (hdr["n_tensors"], hdr["payload_bytes"])
        assert len(tab) == TABLE_HEADER_BYTES + len(md.tensors) * TABLE_ENTRY_BYTES
        for i, a in enumerate(addrs):
            e = TABLE_HEADER_BYTES + i * TABLE_ENTRY_BYTES
            assert struct.unpack_from("<I", tab, e) == (a,)
            d = HEADER_BYTES + i * TENSOR_BYTES
            assert tab[e + 4 : e + TABLE_ENTRY_BYTES] == blob[d : d + TENSOR_BYTES]


def test_blob_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        md = _random_md(rng)
        _same(md, unpack(pack(md)))


@pytest.mark.parametrize("line_bytes", [7, 64, 1024])
def test_packets_round_trip_with_image(line_bytes):
    rng = np.random.default_rng(line_bytes)
    bursts, want, images = [], [], []
    for k in range(5):
        md = _random_md(rng, fc=1000 + k)
        img = rng.integers(-128, 128, size=(1, 6, 5, 3), dtype=np.int8) if k % 2 else None
        bursts += frame_to_packets(pack(md), md.frame_counter, image=img, line_bytes=line_bytes)
        want.append(md)
        images.append(img)
    frames = parse_stream(bursts)
    assert len(frames) == 5
    for f, md, img in zip(frames, want, images, strict=True):
        assert f.ok, f.error
        _same(f.metadata, md)
        if img is None:
            assert f.image() is None
        else:
            assert np.array_equal(f.image().view(np.int8), img.reshape(6, 15))


def test_blob_corruptions_raise_clear_errors():
    rng = np.random.default_rng(3)
    md = _random_md(rng)
    md.tensors.append(MetaTensor(np.arange(10, dtype=np.int8)))
    blob = pack(md)
    with pytest.raises(MetadataError, match="truncated"):
        unpack(blob[:10])
    with pytest.raises(MetadataError, match="length"):
        unpack(blob[:-1])
    with pytest.raises(MetadataError, match="magic"):
        unpack(b"XXXX" + blob[4:])
    bad_version = blob[:4] + struct.pack("<H", 99) + blob[6:]
    with pytest.raises(MetadataError, match="version"):
        unpack(bad_version)
    for pos in rng.integers(HEADER_BYTES, len(blob) - 4, size=20):
        flipped = bytearray(blob)
        flipped[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(MetadataError):
            unpack(bytes(flipped))
    # a consistent CRC over an inconsistent descriptor is still caught
    body = bytearray(blob[:-4])
    body[HEADER_BYTES + 1] = 9  # rank 9
    with pytest.raises(MetadataError, match="rank"):
        unpack(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))


def _frames(rng, n=4):
    mds = [_random_md(rng, fc=k) for k in range(n)]
    for m in mds:
        m.tensors.append(MetaTensor(rng.integers(-128, 128, size=100, dtype=np.int8)))
    per = [frame_to_packets(pack(m), m.frame_counter, line_bytes=32) for m in mds]
    return mds, per


def _check_others(frames, mds, bad):
    assert len(frames) == len(mds)  # nothing lost, nothing merged
    for k, (f, m) in enumerate(zip(frames, mds, strict=True)):
        if k == bad:
            assert not f.ok and f.error and f.metadata is None
        else:
            assert f.ok, f.error
            _same(f.metadata, m)


def test_corrupt_payload_crc_flags_one_frame():
    rng = np.random.default_rng(5)
    mds, per = _frames(rng)
    p = bytearray(per[1][2])
    p[6] ^= 0x10
    per[1][2] = bytes(p)
    frames = parse_stream([b for f in per for b in f])
    _check_others(frames, mds, 1)
    assert "CRC" in frames[1].error


def test_header_single_bit_corrected_double_bit_detected():
    rng = np.random.default_rng(6)
    mds, per = _frames(rng)
    orig = per[2][1]
    p = bytearray(orig)
    p[1] ^= 0x04  # one bit of the word count: ECC corrects it
    per[2][1] = bytes(p)
    frames = parse_stream([b for f in per for b in f])
    _check_others(frames, mds, None)
    assert frames[2].ecc_corrected == 1
    p = bytearray(orig)
    p[0] ^= 0x01
    p[2] ^= 0x80  # two bits: detected, the packet is lost -> frame in error
    per[2][1] = bytes(p)
    assert ecc_decode(bytes(p[:4]))[0] == "detected"
    frames = parse_stream([b for f in per for b in f])
    _check_others(frames, mds, 2)


def test_truncated_packet_missing_fe_and_garbage():
    rng = np.random.default_rng(7)
    mds, per = _frames(rng)
    per[0][1] = per[0][1][:-5]  # truncated long packet
    frames = parse_stream([b for f in per for b in f])
    _check_others(frames, mds, 0)
    assert "length" in frames[0].error
    mds, per = _frames(rng)
    per[3] = per[3][:-1]  # FE of the last frame missing
    frames = parse_stream([b for f in per for b in f])
    _check_others(frames, mds, 3)
    assert "FE" in frames[3].error
    mds, per = _frames(rng)
    per[1] = per[1][:-1]  # FE missing mid-stream: the next FS closes the frame, next is intact
    frames = parse_stream([b for f in per for b in f])
    _check_others(frames, mds, 1)
    # a data packet outside any frame is reported as its own error record, frames intact
    mds, per = _frames(rng, 2)
    stray = per[0][1]
    frames = parse_stream(per[0] + [stray] + per[1])
    assert [f.ok for f in frames] == [True, False, True]
    assert "outside" in frames[1].error


def test_packet_types_and_crc_on_wire():
    md = Metadata(0x12345, int(MetaFlag.VALID), [MetaTensor(np.arange(4, dtype=np.int8))])
    bursts = frame_to_packets(pack(md), md.frame_counter, line_bytes=16)
    assert bursts[0][0] & 0x3F == DataType.FS.value
    assert (bursts[0][1] | (bursts[0][2] << 8)) == 0x2345
    assert bursts[-1][0] & 0x3F == DataType.FE.value
    for b in bursts[1:-1]:
        assert b[0] & 0x3F == DataType.EMBEDDED.value
        wc = b[1] | (b[2] << 8)
        assert crc16(b[4 : 4 + wc]) == b[4 + wc] | (b[5 + wc] << 8)
