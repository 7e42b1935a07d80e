"""``logicdie fuzz csi2``: JSON contract on both backends (RTL shares the pixel-top build)."""

import json

from sw.cli import main


def _run(capsys, *argv):
    code = main(["fuzz", "csi2", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out)


def test_fuzz_golden(capsys):
    code, out = _run(capsys, "--cases", "50", "--seed", "3", "--backend", "golden")
    assert code == 0 and out["cases"] == 50 and out["hangs"] == 0
    assert out["clean_frames_bit_exact"] is True and out["counters_match_golden"]


def test_fuzz_rtl(capsys):
    code, out = _run(capsys, "--cases", "40", "--seed", "5", "--config", "tiny")
    assert code == 0
    for k in ("cases", "hangs", "ecc_corrected", "ecc_detected", "crc_errors",
              "clean_frames_bit_exact"):
        assert k in out
    assert out["hangs"] == 0 and out["clean_frames_bit_exact"] is True
    assert out["counters_match_golden"] and out["statuses_match_golden"]
