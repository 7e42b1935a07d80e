"""Bundles: round trip (the ISA simulator runs a loaded bundle bit-exactly with the golden graph),
and every bad bundle (truncated, corrupt, wrong magic/version, missing) rejected with a one-line
UserError; ``logicdie compile`` writes atomically and leaves nothing behind on error."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from hw.errors import UserError
from models.golden import GoldenModel
from models.zoo import PERSON_DETECT
from sw.bundle import BUNDLE_MAGIC, BUNDLE_VERSION, from_bytes, load_bundle, save_bundle, to_bytes
from sw.compiler import compile_graph
from sw.runtime import make_backend
from sw.tflite_import import load_tflite
from tests.sw.cli_util import logicdie

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph():
    return load_tflite(PERSON_DETECT)


@pytest.fixture(scope="module")
def compiled(graph):
    return compile_graph(graph, "default")


@pytest.fixture(scope="module")
def blob(compiled, graph):
    return to_bytes(compiled, graph)


def test_round_trip_runs_bit_exact(tmp_path, compiled, graph, blob):
    path = tmp_path / "pd.bundle"
    assert save_bundle(compiled, path, graph) == len(blob)
    c2 = load_bundle(path)
    assert c2.program == compiled.program
    assert c2.image == [(a, bytes(b)) for a, b in compiled.image]
    assert [d.to_dict() for d in c2.outputs] == [d.to_dict() for d in compiled.outputs]
    assert c2.config == compiled.config and c2.input_norm == compiled.input_norm
    isa = make_backend("isa", path)
    gold = GoldenModel(load_tflite(PERSON_DETECT))
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = [rng.integers(-128, 128, size=(1, 96, 96, 1), dtype=np.int8)]
        assert all(np.array_equal(a, b) for a, b in zip(isa.run(x), gold.run(x), strict=True))


def _rehash(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def test_bad_bundles_rejected(blob):
    cases = {
        "truncated": blob[: len(blob) // 2],
        "tiny": blob[:10],
        "empty": b"",
        "padded": blob + b"\0",
        "flipped": blob[:100] + bytes([blob[100] ^ 1]) + blob[101:],
        "magic": _rehash(b"NOTABNDL" + blob[8:-32]),
        "version": _rehash(blob[:8] + struct.pack("<I", BUNDLE_VERSION + 1) + blob[12:-32]),
        "meta": _rehash(blob[:24] + b"\0" * 16 + blob[40:-32]),
    }
    for name, data in cases.items():
        with pytest.raises(UserError) as e:
            from_bytes(data, "x.bundle")
        msg = str(e.value)
        assert "\n" not in msg and "x.bundle" in msg, (name, msg)
    assert blob[:8] == BUNDLE_MAGIC
    with pytest.raises(UserError, match="not found"):
        load_bundle("/nonexistent/dir/x.bundle")


def _cli(*args):
    return logicdie(*args)


def test_cli_compile_report_and_errors(tmp_path):
    out = tmp_path / "pd.bundle"
    r = _cli("compile", str(PERSON_DETECT), "-o", str(out), "--report", "--json")
    assert r.returncode == 0, r.stderr
    import json

    d = json.loads(r.stdout)
    assert d["bundle_bytes"] == out.stat().st_size and d["cycles"] > 0
    assert len(d["layers"]) > 10 and all("macs" in row and "cycles" in row for row in d["layers"])
    # too big for the preset: exit 2, one line, no file and no temporary left behind
    bad = tmp_path / "ice.bundle"
    r = _cli("compile", str(PERSON_DETECT), "-o", str(bad), "--config", "ice40")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "SRAM" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pd.bundle"]
    # a corrupt bundle given to check/run: exit 2, one line
    corrupt = tmp_path / "corrupt.bundle"
    corrupt.write_bytes(out.read_bytes()[:-5])
    r = _cli("run", "--model", str(corrupt), "--scene", "black")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bundle" in r.stderr, r.stderr
