"""`logicdie check` contract (SPEC section 8): JSON keys, exit codes, bit-exactness."""

import json

import numpy as np

from models.zoo import PERSON_DETECT
from sw.cli import main
from tests.sw.cli_util import logicdie


def _cli(*args):
    p = logicdie(*args)
    return p.returncode, p.stdout, p.stderr


def test_check_golden_json_contract():
    code, out, err = _cli(
        "check", str(PERSON_DETECT), "--backend", "golden", "--inputs", "3", "--json"
    )
    assert code == 0, err
    assert out.count("\n") == 1  # one JSON object, nothing else on stdout
    res = json.loads(out)
    for key in ("model", "backend", "config", "inputs", "bit_exact", "mismatched_elements", "macs"):
        assert key in res
    assert res["bit_exact"] is True and res["mismatched_elements"] == 0
    assert res["inputs"] == 3 and res["backend"] == "golden"
    # MACs from the model's own shapes: conv = out elements * kh*kw*cin, depthwise = out * kh*kw
    from sw.tflite_import import load_tflite

    g = load_tflite(PERSON_DETECT)
    want = 0
    for op in g.ops:
        out_n = int(np.prod(g.tensors[op.outputs[0]].shape))
        w = g.tensors[op.inputs[1]].shape if len(op.inputs) > 1 else None
        if op.kind == "CONV_2D":
            want += out_n * w[1] * w[2] * w[3]
        elif op.kind == "DEPTHWISE_CONV_2D":
            want += out_n * w[1] * w[2]
    assert res["macs"] == want


def test_check_exit_1_on_mismatch(monkeypatch, capsys):
    """A backend that differs from TFLM must make check fail (the check itself can fail)."""
    import models.golden

    real_run = models.golden.GoldenModel.run

    def off_by_one(self, inputs):
        return [
            (o.astype(np.int16) + 1).clip(-128, 127).astype(o.dtype) for o in real_run(self, inputs)
        ]

    monkeypatch.setattr(models.golden.GoldenModel, "run", off_by_one)
    code = main(["check", str(PERSON_DETECT), "--inputs", "1", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 1
    assert res["bit_exact"] is False and res["mismatched_elements"] > 0
