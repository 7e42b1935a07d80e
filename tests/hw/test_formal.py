"""Formal proofs (sw/formal.py, hw/props.py; docs/formal.md).

CI tier: the registry (every property has a seeded bug that must break it), the FIFO bounds and the
CSI-2 RX output stream rules proven, their seeded bugs caught with a counterexample VCD, and the
``logicdie formal --json`` contract on one block. Full tier: every property of every block holds
(proven or passed to its depth), every seeded bug is caught, every cover is reachable.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sw import formal

formal._load_blocks()

BLOCK_NAMES = list(formal.BLOCKS)
#: FIFO bounds attached to FIFOs inside a block are the same helper as the fifo block's, whose
#: seeded bugs (overfill, overdrain) show they are not vacuous.
_FIFO_RULES = {"no_overflow", "no_underflow"}


@pytest.fixture(autouse=True)
def _tools():
    try:
        formal._check_tools()
    except Exception as e:  # pragma: no cover - the project installs both
        pytest.fail(str(e))


def _caught(block: str, mutation: str, prop: str, tmp_path: Path) -> dict:
    rec = formal.run_property(block, prop, mutation=mutation, root=tmp_path)
    assert rec["status"] == "failed", (block, mutation, prop, rec)
    assert rec["vcd"] and Path(rec["vcd"]).is_file()
    assert "$var" in Path(rec["vcd"]).read_text()[:200000]
    return rec


def test_every_property_has_a_seeded_bug():
    """Non-vacuity bookkeeping: each property is the target of a mutation of its block (FIFO
    bounds: of the fifo block), and every mutation targets existing properties."""
    fifo_targets = {p.rsplit(".", 1)[1] for ps in formal.BLOCKS["fifo"].mutations.values()
                    for p in ps}
    assert fifo_targets >= _FIFO_RULES
    for name, block in formal.BLOCKS.items():
        names = formal.block_properties(name)
        assert names, name
        targets = {p for ps in block.mutations.values() for p in ps}
        assert targets <= set(names), (name, targets - set(names))
        for p in names:
            assert p in targets or p.rsplit(".", 1)[1] in _FIFO_RULES, (name, p)


def test_fifo_bounds_proven_and_bugs_caught(tmp_path):
    for p in formal.block_properties("fifo"):
        rec = formal.run_property("fifo", p, root=tmp_path)
        assert rec["status"] == "proven", rec
    for mutation, props in formal.BLOCKS["fifo"].mutations.items():
        for p in props:
            _caught("fifo", mutation, p, tmp_path)


def test_csi2_rx_output_stream_rules(tmp_path):
    """The RX's pixel stream keeps valid until ready (k-induction closes); a wrapper that drops
    valid in one cycle is caught with a trace."""
    rec = formal.run_property("csi2_rx", "o.valid_held", root=tmp_path)
    assert rec["status"] == "proven", rec
    bad = _caught("csi2_rx", "o_valid_drop", "o.valid_held", tmp_path)
    assert bad["step"] <= bad["depth"]


def test_cli_json(tmp_path, monkeypatch, capsys):
    from sw.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["formal", "--only", "fifo", "--property", "fifo.no_overflow", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    payload = json.loads(out)
    props = payload["properties"]
    assert [p["name"] for p in props] == ["fifo.no_overflow"]
    for p in props:
        assert p["block"] == "fifo" and p["status"] in ("proven", "passed")
        assert isinstance(p["depth"], int) and p["time_s"] >= 0
    assert (tmp_path / "build" / "formal" / "fifo").is_dir()


def test_cli_bad_block(capsys):
    from sw.cli import main

    assert main(["formal", "--only", "nosuchblock"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nosuchblock" in err


@pytest.mark.full
@pytest.mark.parametrize("block", BLOCK_NAMES)
def test_block_properties_hold(block, tmp_path):
    recs = formal.run_all(only=block, root=tmp_path)
    bad = [r for r in recs if r["status"] not in ("proven", "passed")]
    assert not bad, bad


@pytest.mark.full
@pytest.mark.parametrize("block", BLOCK_NAMES)
def test_block_mutations_caught(block, tmp_path):
    for mutation, props in formal.BLOCKS[block].mutations.items():
        for p in props:
            _caught(block, mutation, p, tmp_path)


@pytest.mark.full
@pytest.mark.parametrize("block", BLOCK_NAMES)
def test_block_covers_reachable(block, tmp_path):
    rec = formal.run_covers(block, root=tmp_path)
    assert rec["status"] == "passed" and rec["reached"] == rec["covers"], rec
