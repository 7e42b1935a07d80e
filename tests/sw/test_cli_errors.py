"""Bad input to ``logicdie check`` (SPEC section 8): exit code 2, exactly one line on stderr naming
the cause, no traceback, nothing on stdout (with or without --json).

The CLI runs as a subprocess (``python -m sw``), as users and make targets run it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from models.tflite_writer import ModelBuilder
from models.zoo import PERSON_DETECT
from tests.sw.cli_util import logicdie

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str):
    return logicdie(*args)


def _float_only_model() -> bytes:
    """A float32 CONV_2D + ADD model (what a converter emits without int8 quantization)."""
    b = ModelBuilder()
    x = b.input((1, 8, 8, 3), "float32")
    w = b.const(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32))
    bias = b.const(np.zeros(4, np.float32))
    y = b.tensor((1, 8, 8, 4), "float32")
    opt = fb.Conv2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = fb.Padding.SAME, 1, 1
    opt.dilationHFactor = opt.dilationWFactor = 1
    b.op("CONV_2D", [x, w, bias], [y], opt)
    b.output(b.binary("ADD", y, y, options=fb.AddOptionsT()))
    return b.finish()


def _unsupported_op_model(kind: str) -> bytes:
    b = ModelBuilder()
    x = b.input((1, 8), "int8", 0.05, 0)
    y = b.fully_connected(x, b.weights(np.random.default_rng(1).normal(size=(8, 8)), axis=None),
                          np.zeros(8, np.int32), out_scale=0.1, out_zp=0)
    if kind == "TANH":
        z = b.unary("TANH", y, 1.0 / 128, 0)
    else:
        z = b.binary(kind, y, x, 0.1, 0, getattr(fb, f"{kind.capitalize()}OptionsT")())
    b.output(z)
    return b.finish()


def _uint8_model() -> bytes:
    """A uint8-quantized CONV_2D (the old TF1 quantization-aware scheme): not int8, unsupported."""
    b = ModelBuilder()
    x = b.input((1, 8, 8, 3), "uint8", 0.02, 128)
    w = b.const(np.random.default_rng(2).integers(0, 256, (4, 3, 3, 3)).astype(np.uint8),
                "uint8", 0.01, 120)
    bias = b.const(np.zeros(4, np.int32), "int32", 0.0002, 0)
    y = b.tensor((1, 8, 8, 4), "uint8", 0.1, 128)
    opt = fb.Conv2DOptionsT()
    opt.padding, opt.strideH, opt.strideW = fb.Padding.SAME, 1, 1
    opt.dilationHFactor = opt.dilationWFactor = 1
    b.op("CONV_2D", [x, w, bias], [y], opt)
    b.output(y)
    return b.finish()


def _tflm_aborting_model(kind: str) -> bytes:
    """Quantization TFLM cannot handle: an ADD whose output scale is ~0 makes TFLM abort() the
    whole process (a TFLITE_CHECK), a HARD_SWISH with a multiplier >= 1 fails its prepare."""
    b = ModelBuilder()
    x = b.input((1, 4, 4, 3), "int8", 0.1, 3)
    b.output(b.add(x, x, out_scale=1e-9, out_zp=0) if kind == "ADD"
             else b.hard_swish(x, 0.1 / 256, 0))
    return b.finish()


def _tflm_rejected_model() -> bytes:
    """Valid TFLite, SPEC ops only, but TFLM refuses it: int8 CONCATENATION inputs with different
    scales (TFLM requires one shared quantization). Its C++ log must not reach stderr."""
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), "int8", 0.05, 0)
    y = b.input((1, 4, 4, 2), "int8", 0.07, 0)
    out = b.tensor((1, 4, 4, 4), "int8", 0.05, 0)
    b.op("CONCATENATION", [x, y], [out], _concat_options(3))
    b.output(out)
    return b.finish()


def _concat_options(axis: int):
    opt = fb.ConcatenationOptionsT()
    opt.axis = axis
    return opt


def _cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (argv after 'check', regex the one stderr line must match)."""
    pd = PERSON_DETECT.read_bytes()
    files = {
        "truncated.tflite": pd[: len(pd) // 2],
        "truncated_header.tflite": pd[:6],
        "empty.tflite": b"",
        "random.tflite": np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes(),
        # the identifier is right but the offsets point nowhere
        "bad_root.tflite": b"\xf0\xff\xff\x0f" + pd[4:],
        "garbage_tfl3.tflite": b"\x10\x00\x00\x00TFL3"
        + np.random.default_rng(1).integers(0, 256, 2048, np.uint8).tobytes(),
        "float_only.tflite": _float_only_model(),
        "tanh.tflite": _unsupported_op_model("TANH"),
        "sub.tflite": _unsupported_op_model("SUB"),
        "tflm_rejects.tflite": _tflm_rejected_model(),
        "uint8.tflite": _uint8_model(),
        "add_abort.tflite": _tflm_aborting_model("ADD"),
        "hswish_bad.tflite": _tflm_aborting_model("HARD_SWISH"),
    }
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    bad_model = r"truncat|corrupt|not a (valid )?tflite|flatbuffer|invalid|malformed|empty"
    return {
        "missing_file": ([str(tmp / "nosuch.tflite")], r"nosuch\.tflite|not found|no such|exist"),
        "truncated_file": ([str(tmp / "truncated.tflite")], bad_model),
        "truncated_header": ([str(tmp / "truncated_header.tflite")], bad_model),
        "empty_file": ([str(tmp / "empty.tflite")], bad_model),
        "random_bytes": ([str(tmp / "random.tflite")], bad_model),
        "bad_root_offset": ([str(tmp / "bad_root.tflite")], bad_model),
        "garbage_after_identifier": ([str(tmp / "garbage_tfl3.tflite")], bad_model),
        "float_only_model": ([str(tmp / "float_only.tflite")], r"float|quantiz|int8"),
        "unsupported_op_tanh": ([str(tmp / "tanh.tflite")], r"TANH"),
        "unsupported_op_sub": ([str(tmp / "sub.tflite")], r"\bSUB\b"),
        "add_output_scale_tflm_aborts": ([str(tmp / "add_abort.tflite")], r"\bADD\b"),
        "hard_swish_multiplier": ([str(tmp / "hswish_bad.tflite")], r"HARD_SWISH"),
        "uint8_model": ([str(tmp / "uint8.tflite")], r"uint8"),
        "tflm_rejects_model": ([str(tmp / "tflm_rejects.tflite")],
                               r"TFLM|reference|CONCATENATION|scale|quantiz"),
        "directory_as_model": ([str(tmp)], r"director"),
        "zero_inputs": ([str(PERSON_DETECT), "--inputs", "0"], r"--inputs"),
        "unknown_backend": ([str(PERSON_DETECT), "--backend", "nosuchbackend"], r"nosuchbackend"),
        "unknown_preset": ([str(PERSON_DETECT), "--config", "nosuchpreset"],
                           r"nosuchpreset|preset"),
    }


CASE_NAMES = ["missing_file", "truncated_file", "truncated_header", "empty_file", "random_bytes",
              "bad_root_offset", "garbage_after_identifier", "float_only_model",
              "unsupported_op_tanh", "unsupported_op_sub", "add_output_scale_tflm_aborts",
              "hard_swish_multiplier", "uint8_model", "tflm_rejects_model",
              "directory_as_model", "zero_inputs", "unknown_backend", "unknown_preset"]


@pytest.mark.parametrize("json_flag", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_check_bad_input(tmp_path, case, json_flag):
    argv, pattern = _cases(tmp_path)[case]
    args = ["check", *argv]
    args += [] if "--backend" in argv else ["--backend", "golden"]
    args += [] if "--inputs" in argv else ["--inputs", "1"]
    if json_flag:
        args.append("--json")
    r = _run(*args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, r.stderr
    assert re.search(pattern, lines[0], re.IGNORECASE), lines[0]
    assert r.stdout == ""


def test_check_good_model_exits_zero(tmp_path):
    """Control: the same invocation on a valid model succeeds (the errors above are the input's)."""
    r = _run("check", str(PERSON_DETECT), "--backend", "golden", "--inputs", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert '"bit_exact": true' in r.stdout


def test_check_model_with_large_activations(tmp_path):
    """A valid model whose activations dwarf its weights (the TFLM arena must be sized from the
    tensors, not from the file size) checks fine: exit 0, bit exact, stderr empty."""
    b = ModelBuilder()
    x = b.input((1, 64, 64, 8), "int8", 0.1, 0)
    b.output(b.relu(x, 0.05, -128))
    path = tmp_path / "big_activations.tflite"
    path.write_bytes(b.finish())
    r = _run("check", str(path), "--backend", "golden", "--inputs", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert '"bit_exact": true' in r.stdout
    assert r.stderr == ""
