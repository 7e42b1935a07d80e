"""The ISA definition: encode/decode round trips, field range checks, layouts, generated docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.lib import enum

from hw.isa import (
    HEADER,
    INSTR_BITS,
    INSTR_BYTES,
    LAYOUTS,
    QUEUE_OF,
    Opcode,
    decode,
    decode_program,
    doc_markdown,
    encode,
    encode_program,
)


def _random_fields(op: Opcode, rng: np.random.Generator) -> dict:
    out = {"opcode": op}
    for name, f in LAYOUTS[op]:
        if name in ("opcode", "_rsv"):
            continue
        if isinstance(f.shape, type) and issubclass(f.shape, enum.Enum):
            out[name] = list(f.shape)[int(rng.integers(len(f.shape)))]
            continue
        s = Shape.cast(f.shape)
        lo, hi = (
            (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1)
            if s.signed
            else (0, (1 << s.width) - 1)
        )
        out[name] = int(rng.choice([lo, hi, int(rng.integers(lo, hi + 1))]))
    return out


@pytest.mark.parametrize("op", list(Opcode), ids=lambda o: o.name)
def test_round_trip_every_opcode(op):
    rng = np.random.default_rng(op.value)
    for _ in range(50):
        f = _random_fields(op, rng)
        raw = encode(f)
        assert len(raw) == INSTR_BYTES
        assert decode(raw) == f


def test_program_round_trip_and_header_position():
    rng = np.random.default_rng(1)
    prog = [_random_fields(Opcode(int(rng.integers(len(Opcode)))), rng) for _ in range(100)]
    raw = encode_program(prog)
    assert decode_program(raw) == prog
    for lay in LAYOUTS.values():
        assert lay.size <= INSTR_BITS


def test_field_offsets_match_header_layout():
    for op, lay in LAYOUTS.items():
        fields = dict(iter(lay))
        for name, f in HEADER:
            assert fields[name].offset == f.offset, (op, name)
            assert fields[name].width == f.width, (op, name)


def test_out_of_range_and_unknown_fields_rejected():
    with pytest.raises(ValueError, match="does not fit"):
        encode({"opcode": Opcode.CONV, "in_zp": 128})
    with pytest.raises(ValueError, match="does not fit"):
        encode({"opcode": Opcode.LOAD, "nbytes": 1 << 24})
    with pytest.raises(ValueError, match="no field"):
        encode({"opcode": Opcode.LOAD, "in_zp": 0})
    with pytest.raises(ValueError, match="unknown opcode"):
        decode(bytes([31]) + bytes(INSTR_BYTES - 1))
    with pytest.raises(ValueError, match="bytes"):
        decode(bytes(3))
    with pytest.raises(ValueError, match="multiple"):
        decode_program(bytes(INSTR_BYTES + 1))


def test_every_opcode_has_a_queue_and_docs_are_current():
    assert set(QUEUE_OF) == set(Opcode)
    doc = doc_markdown()
    for op in Opcode:
        assert f"| {op.name} |" in doc
    path = Path(__file__).resolve().parents[2] / "docs" / "isa.md"
    assert path.read_text() == doc, "docs/isa.md is stale: run python -m hw.isa --doc > docs/isa.md"


def test_rtl_union_layout_decodes_like_the_host():
    """The decoder's view (INSTR_LAYOUT over the raw word) reads the same fields as decode()."""
    from hw.isa import INSTR_LAYOUT

    rng = np.random.default_rng(7)
    for op in Opcode:
        for _ in range(5):
            f = _random_fields(op, rng)
            word = int.from_bytes(encode(f), "little")
            view = INSTR_LAYOUT.from_bits(word)
            assert view.header.opcode == op
            sub = getattr(view, op.name.lower())
            for name, value in f.items():
                got = getattr(sub, name)
                assert (got if not isinstance(value, int) else int(got)) == value, (op, name)


def test_field_range_and_fits_follow_the_layouts():
    """The compiler's range checks come from the layouts: every field's range equals what encode
    accepts (its edges encode, one beyond raises)."""
    from hw.isa import LAYOUTS, encode, field_range, fits

    checked = 0
    for op, layout in LAYOUTS.items():
        for name, fld in layout:
            if name == "opcode" or name.startswith("_") or not isinstance(fld.shape, Shape):
                continue
            lo, hi = field_range(op, name)
            checked += 1
            for v in (lo, hi):
                encode({"opcode": op, name: v})
                assert fits(op, **{name: v})
            for v in (lo - 1, hi + 1):
                with pytest.raises(ValueError):
                    encode({"opcode": op, name: v})
                assert not fits(op, **{name: v})
    assert checked > 50
