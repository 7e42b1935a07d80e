"""Synthesis flow (sw/synth.py, `logicdie synth`): a small yosys smoke test in CI, full PnR in
full."""

import json

import pytest

from hw.errors import UserError
from sw.cli import main
from sw.synth import synth

KEYS = {"target", "device", "fmax_mhz", "luts", "ffs", "dsps", "brams", "meets_timing", "top",
        "config"}


def test_synth_ice40_yosys_smoke(tmp_path):
    """ice40 preset GEMM through yosys synth_ice40: the report has the contract keys and the design
    is within the UP5K's DSP/LUT budget (place-and-route is in the full tier)."""
    r = synth("ice40", "ice40", "gemm", pnr=False, outdir=tmp_path)
    assert KEYS <= set(r)
    assert json.loads((tmp_path / "report.json").read_text())["luts"] == r["luts"]
    assert 0 < r["luts"] <= 5280 and r["dsps"] <= 8 and r["ffs"] > 0


def test_synth_bad_input_is_a_user_error(capsys):
    with pytest.raises(UserError):
        synth("xc7", "tiny")
    with pytest.raises(UserError):
        synth("ecp5", "tiny", top="nope")
    assert main(["synth", "--target", "ecp5", "--config", "nope", "--json"]) == 2
    assert capsys.readouterr().out == ""


@pytest.mark.full
def test_synth_ecp5_meets_150mhz(capsys):
    code = main(["synth", "--target", "ecp5", "--config", "ecp5", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert KEYS <= set(r)
    assert r["meets_timing"] and r["fmax_mhz"] >= 150, r
    assert code == 0


@pytest.mark.full
def test_synth_ice40_fits_up5k(tmp_path):
    r = synth("ice40", "ice40", "gemm", outdir=tmp_path)
    assert r["luts"] <= 5280 and r["dsps"] <= 8 and r["brams"] <= 30 + 4
    assert r["meets_timing"], r
