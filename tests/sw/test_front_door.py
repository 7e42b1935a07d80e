"""The front door (issue 17): every bad input -- model, bundle, image, path, argument, output --
gives exit 2 with one line on stderr, or a correct result; never a traceback, a hang or a
half-written file.

Most cases run the CLI in process (:func:`sw.cli.main`); FIFOs, devices and closed stdout run it as
a subprocess, as users do. Property tests draw mutated models and tampered bundles
(:mod:`sw.frontdoor`) with hypothesis; the big case counts are ``full``.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import zlib

import flatbuffers
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from hw.errors import UserError
from models.tflite_writer import ModelBuilder
from models.zoo import PERSON_DETECT
from sw import frontdoor
from sw.cli import main
from tests.sw.cli_util import ROOT, logicdie


# ------------------------------------------------------------------------------ helpers
def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean(code, out, err, *words):
    """Exit 2, one line on stderr naming the cause, nothing on stdout."""
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("logicdie: error: "), err
    assert out == ""
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


def base_model() -> bytes:
    """input -> CONV_2D -> output (int8, per-channel weights), the base of the bad variants."""
    b = ModelBuilder("base")
    x = b.input((1, 6, 6, 3), "int8", 0.05, -128)
    w = b.weights(np.random.default_rng(0).normal(size=(4, 3, 3, 3)), axis=0)
    b.output(b.conv2d(x, w, bias=np.zeros(4, np.int32), stride=1, padding="SAME",
                      activation="RELU6", out_scale=0.05, out_zp=-128))
    return b.finish()


def variant(edit) -> bytes:
    """The base model with ``edit(model_t)`` applied through the schema's object API."""
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(base_model(), 0))
    edit(m)
    bld = flatbuffers.Builder(1024)
    bld.Finish(m.Pack(bld), file_identifier=b"TFL3")
    return bytes(bld.Output())


def _sg(m):
    return m.subgraphs[0]


def _t(m, i):
    return _sg(m).tensors[i]


def _conv(m):
    return _sg(m).operators[0]


def _set(obj, **kw):
    for k, v in kw.items():
        setattr(obj, k, v)


def _cycle(m):
    """Two ops reading each other's outputs: conv(x) -> y, and conv's input rewired to y."""
    _conv(m).inputs = [int(_conv(m).outputs[0]), 1, 2]


def _empty(m):
    _sg(m).operators = []
    _sg(m).outputs = list(_sg(m).inputs)


# tensors of the base model: 0 input, 1 weights, 2 bias, 3 output
BAD_MODELS = {
    "int16 activations": (lambda m: _set(_t(m, 0), type=fb.TensorType.INT16), "int16"),
    "int32 activations": (lambda m: _set(_t(m, 3), type=fb.TensorType.INT32), "int32"),
    "channel mismatch": (lambda m: _set(_t(m, 0), shape=[1, 6, 6, 5]), "channels"),
    "non-constant weights": (lambda m: (_set(_t(m, 1), buffer=0), _set(_sg(m), inputs=[0, 1])),
                             "not constant"),
    "weights without data": (lambda m: _set(_t(m, 1), buffer=0), "not a constant"),
    "zero-size tensor": (lambda m: _set(_t(m, 0), shape=[1, 0, 6, 3]), "zero-size"),
    "0-D tensor": (lambda m: _set(_t(m, 0), shape=[]), "tensor 0"),
    "5-D tensor": (lambda m: _set(_t(m, 0), shape=[1, 1, 6, 6, 3]), "tensor 0"),
    "cycle": (_cycle, "before any operator computes it"),
    "no ops": (_empty, "no operators"),
    "NaN scale": (lambda m: _set(_t(m, 3).quantization, scale=[float("nan")]), "scale nan"),
    "inf scale": (lambda m: _set(_t(m, 3).quantization, scale=[float("inf")]), "scale inf"),
    "zero scale": (lambda m: _set(_t(m, 0).quantization, scale=[0.0]), "scale 0"),
    "per-channel count": (lambda m: _set(_t(m, 1).quantization, scale=[0.1] * 3,
                                         zeroPoint=[0] * 3), "3 per-channel scales"),
    "stride 0": (lambda m: _set(_conv(m).builtinOptions, strideH=0), "stride_h"),
    "index out of range": (lambda m: _set(_conv(m), inputs=[0, 1, 99]), "tensor 99"),
    "negative index": (lambda m: _set(_conv(m), inputs=[-5, 1, 2]), "tensor -5"),
    "conv with one input": (lambda m: _set(_conv(m), inputs=[0]), "1 inputs"),
    "zero point out of range": (lambda m: _set(_t(m, 0).quantization, zeroPoint=[300]),
                                "zero point 300"),
    "graph output out of range": (lambda m: _set(_sg(m), outputs=[42]), "tensor 42"),
    "missing zero points": (lambda m: _set(_t(m, 3).quantization, zeroPoint=[]),
                            "0 zero points"),
}


# ------------------------------------------------------------------------------ models
@pytest.mark.parametrize("name", sorted(BAD_MODELS))
def test_bad_model_refused_everywhere(capsys, tmp_path, name):
    edit, words = BAD_MODELS[name]
    path = tmp_path / "bad.tflite"
    path.write_bytes(variant(edit))
    out = tmp_path / "out"
    out.mkdir()
    for argv in (["compile", path, "-o", out / "b.bundle"], ["check", path, "--inputs", "1"],
                 ["check", path, "--inputs", "1", "--backend", "isa", "--json"]):
        assert_clean(*cli(capsys, *argv), words)
    assert list(out.iterdir()) == []  # nothing half-written


def test_base_model_is_accepted_and_bit_exact(capsys, tmp_path):
    """Control: the unmodified base model compiles and checks bit-exact against TFLM."""
    path = tmp_path / "base.tflite"
    path.write_bytes(base_model())
    code, out, err = cli(capsys, "check", path, "--backend", "isa", "--inputs", "2", "--json")
    assert code == 0 and json.loads(out)["bit_exact"] is True, err
    code, out, err = cli(capsys, "compile", path, "-o", tmp_path / "b.bundle")
    assert code == 0, err


def test_huge_model_reports_sram(capsys, tmp_path):
    """A model of 20 MiB of weights does not fit: said as SRAM, not as an instruction field."""
    b = ModelBuilder("huge")
    x = b.input((1, 4096), "int8", 0.05, 0)
    for _ in range(2):
        w = b.const(np.ones((2560, 4096), np.int8), "int8", 0.01, 0)
        y = b.fully_connected(x, w, np.zeros(2560, np.int32), out_scale=1.0, out_zp=0)
        w2 = b.const(np.ones((4096, 2560), np.int8), "int8", 0.01, 0)
        x = b.fully_connected(y, w2, np.zeros(4096, np.int32), out_scale=1.0, out_zp=0)
    b.output(x)
    path = tmp_path / "huge.tflite"
    path.write_bytes(b.finish())
    assert_clean(*cli(capsys, "compile", path, "-o", tmp_path / "h.bundle"), "SRAM")


# ------------------------------------------------------------------------------ paths
def test_output_refuses_input_and_non_regular(capsys, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(base_model())
    before = model.read_bytes()
    assert_clean(*cli(capsys, "compile", model, "-o", model), "input")
    assert model.read_bytes() == before
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_clean(*cli(capsys, "compile", model, "-o", fifo), "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert_clean(*cli(capsys, "compile", model, "-o", tmp_path), "directory")
    assert_clean(*cli(capsys, "compile", model, "-o", tmp_path / "nodir" / "b.bundle"),
                 "does not exist")
    # a symlink to the input is the input
    link = tmp_path / "link.tflite"
    link.symlink_to(model)
    assert_clean(*cli(capsys, "compile", model, "-o", link), "input")
    # a regular file that is not a previous bundle is not replaced either; a bundle is
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert_clean(*cli(capsys, "compile", model, "-o", notes), "not a previous bundle")
    assert notes.read_text() == "keep me"
    assert cli(capsys, "compile", model, "-o", tmp_path / "b.bundle")[0] == 0
    assert cli(capsys, "compile", model, "-o", tmp_path / "b.bundle")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bundle", "fifo", "link.tflite",
                                                          "m.tflite", "notes.txt"]


def test_model_paths_that_are_not_files(capsys, tmp_path):
    fifo = tmp_path / "fifo.tflite"
    os.mkfifo(fifo)  # would block forever if opened
    for path, words in ((fifo, "FIFO"), ("/dev/zero", "character device"),
                        (tmp_path, "directory"), (tmp_path / "none.tflite", "not found")):
        assert_clean(*cli(capsys, "check", path), words)
        assert_clean(*cli(capsys, "compile", path, "-o", tmp_path / "x.bundle"), words)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    assert_clean(*cli(capsys, "check", empty), "empty")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    from sw.fileio import atomic_write

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def full(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match="no space left"):
        atomic_write(target, full, "bundle")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
    with pytest.raises(UserError, match="cannot write"):
        atomic_write("/proc/logicdie-test.bin", b"x", "bundle")
    assert atomic_write(target, b"new") == 3 and target.read_bytes() == b"new"


# ------------------------------------------------------------------------------ arguments
@pytest.mark.parametrize("argv, words", [
    (["check", PERSON_DETECT, "--seed", "-1"], "seed"),
    (["isp", "astronaut", "--seed", "-3"], "seed"),
    (["fuzz", "csi2", "--seed", "-1"], "seed"),
    (["fuzz", "model", "--cases", "0"], "cases"),
    (["check", PERSON_DETECT, "--inputs", "0"], "inputs"),
    (["run", "--fps", "-5"], "fps"),
    (["run", "--fps", "nan"], "fps"),
    (["run", "--fps", "inf"], "fps"),
    (["compile", PERSON_DETECT, "-o", "x.bundle", "--input-range=-inf,1"], "finite"),
    (["compile", PERSON_DETECT, "-o", "x.bundle", "--input-range=1,1"], "below"),
    (["run", "--plot", "/nonexistent-dir/p.png"], "does not exist"),
    (["run", "--plot", "plot.xyz"], "unknown extension"),
    (["run", "--plot", "plot"], "no extension"),
    (["isp", "astronaut", "--plot", "p.bogus"], "unknown extension"),
])
def test_bad_arguments(capsys, argv, words):
    assert_clean(*cli(capsys, *argv), words)


# ------------------------------------------------------------------------------ images
def test_images(tmp_path):
    from sw.images import load_image_file

    g16 = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    got = load_image_file(tmp_path / "g16.png")
    want = (g16.astype(np.int64) * 255 + 32767) // 65535
    assert got.dtype == np.uint8 and np.array_equal(got, want)
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "f.tiff")
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(load_image_file(tmp_path / "rgb.png"), rgb)
    data = bytearray((tmp_path / "rgb.png").read_bytes())
    idat = data.index(b"IDAT")
    n = struct.unpack(">I", data[idat - 4 : idat])[0]
    data[idat + 4 + n] ^= 0xFF  # the IDAT chunk's CRC
    (tmp_path / "crc.png").write_bytes(bytes(data))
    (tmp_path / "trunc.png").write_bytes((tmp_path / "rgb.png").read_bytes()[:80])
    # a bomb: a header claiming 30000 x 30000 pixels, expanded from a few kB
    raw = zlib.compress(b"\0" * (1 + 30000 // 8) * 30000, 9)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 1, 0,
                                                                   0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(bomb)
    Image.new("RGBA", (4, 4), (1, 2, 3, 7)).save(tmp_path / "alpha.png")
    for name, words in (("f.tiff", "floating-point"), ("crc.png", "corrupt"),
                        ("trunc.png", "corrupt"), ("bomb.png", "pixels"),
                        ("alpha.png", "transparent")):
        with pytest.raises(UserError) as e:
            load_image_file(tmp_path / name)
        assert words in str(e.value) and "\n" not in str(e.value), (name, str(e.value))


# ------------------------------------------------------------------------------ bundles
def test_bundle_messages(capsys, tmp_path):
    empty = tmp_path / "e.bundle"
    empty.write_bytes(b"")
    assert_clean(*cli(capsys, "check", empty), "empty")
    good = tmp_path / "g.bundle"
    model = tmp_path / "m.tflite"
    model.write_bytes(base_model())
    assert cli(capsys, "compile", model, "-o", good)[0] == 0
    code, out, err = cli(capsys, "check", good, "--backend", "isa", "--inputs", "2", "--json")
    assert code == 0 and json.loads(out)["bit_exact"] and json.loads(out)["reference"] == "golden"
    # a tampered config whose name still says 'default'
    magic, version, meta, blob = frontdoor._split_bundle(good.read_bytes())
    meta["config"]["array_rows"] = 8
    bad = tmp_path / "t.bundle"
    bad.write_bytes(frontdoor._seal(magic, version, json.dumps(meta).encode(), blob))
    assert_clean(*cli(capsys, "check", bad), "differs from preset 'default'", "array_rows")


# ------------------------------------------------------------------------------ subprocess
def test_subprocess_fifo_and_stdout(tmp_path):
    fifo = tmp_path / "m.tflite"
    os.mkfifo(fifo)
    r = logicdie("compile", str(fifo), "-o", str(tmp_path / "b.bundle"), timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "FIFO" in r.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "sw", "check", str(PERSON_DETECT), "--inputs", "1", "--json"]
    with open("/dev/full", "w") as full:
        r = subprocess.run(base, stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "standard output" in r.stderr
    r = subprocess.run(base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       cwd=ROOT, env=env, timeout=120,
                       preexec_fn=lambda: os.close(1))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "closed" in r.stderr


# ------------------------------------------------------------------------------ properties
_SEEDS = {}


def _seeds(kind):
    if kind not in _SEEDS:
        _SEEDS[kind] = (frontdoor.seed_models(real=False) if kind == "model"
                        else frontdoor._seed_bundles(real=False))
    return _SEEDS[kind]


def _property(kind, seed, tmp_path):
    import random

    r = random.Random(seed)
    name, data = r.choice(_seeds(kind))
    case, desc = (frontdoor.mutate_model if kind == "model" else frontdoor.mutate_bundle)(data, r)
    res = frontdoor._check_case(kind, case, str(tmp_path))
    assert res["outcome"] in ("clean_error", "accepted"), (name, desc, res)


_SETTINGS = dict(deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@settings(max_examples=60, **_SETTINGS)
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_models_keep_the_contract(tmp_path, seed):
    _property("model", seed, tmp_path)


@settings(max_examples=60, **_SETTINGS)
@given(seed=st.integers(0, 2**32 - 1))
def test_tampered_bundles_keep_the_contract(tmp_path, seed):
    _property("bundle", seed, tmp_path)


_MODES = ("L", "RGB", "I;16", "F", "RGBA", "P", "1", "LA", "CMYK", "I")
_FORMATS = {"png": "PNG", "tiff": "TIFF", "bmp": "BMP", "jpg": "JPEG", "gif": "GIF"}


@settings(max_examples=40, **_SETTINGS)
@given(mode=st.sampled_from(_MODES), ext=st.sampled_from(sorted(_FORMATS)),
       w=st.integers(1, 40), h=st.integers(1, 40), seed=st.integers(0, 2**16),
       corrupt=st.sampled_from([None, "flip", "truncate"]))
def test_odd_images(tmp_path, mode, ext, w, h, seed, corrupt):
    """Any image file: a uint8 gray/RGB array of its size (exactly Pillow's 8-bit data for L/RGB
    PNGs), or one clean UserError line; never another exception."""
    from sw.images import load_image_file

    rng = np.random.default_rng(seed)
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode) \
        if mode not in ("I;16", "F", "I") else Image.fromarray(
            {"I;16": rng.integers(0, 65536, (h, w), dtype=np.uint16),
             "F": rng.random((h, w), dtype=np.float32),
             "I": rng.integers(0, 1 << 20, (h, w), dtype=np.int32)}[mode])
    path = tmp_path / f"x.{ext}"
    try:
        im.save(path, _FORMATS[ext])
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format
    if corrupt:
        data = bytearray(path.read_bytes())
        if corrupt == "flip":
            data[len(data) // 2] ^= 0x5A
        else:
            data = data[: max(1, len(data) * 2 // 3)]
        path.write_bytes(bytes(data))
    try:
        got = load_image_file(path)
    except UserError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return
    assert got.dtype == np.uint8 and got.shape[:2] == (h, w) and got.ndim in (2, 3)
    if ext == "png" and mode in ("L", "RGB") and not corrupt:
        assert np.array_equal(got, np.asarray(im))


_PATH_KINDS = ("fifo", "dir", "missing", "devzero", "empty", "garbage", "link_to_dir",
               "missing_dir")


def _make_path(tmp_path, kind):
    p = tmp_path / f"p_{kind}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "devzero":
        return "/dev/zero"
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "garbage":
        p.write_bytes(os.urandom(64))
    elif kind == "link_to_dir":
        (tmp_path / "target").mkdir(exist_ok=True)
        p.symlink_to(tmp_path / "target")
    elif kind == "missing_dir":
        return str(tmp_path / "nodir" / "x")
    return str(p)


@settings(max_examples=30, **_SETTINGS)
@given(kind=st.sampled_from(_PATH_KINDS), role=st.sampled_from(["check", "compile_in",
                                                                  "compile_out", "bundle"]))
def test_bad_paths(capsys, tmp_path_factory, kind, role):
    """Any non-file as an input or output path: exit 2 with one line, nothing created."""
    tmp = tmp_path_factory.mktemp("paths")
    p = _make_path(tmp, kind)
    model = tmp / "m.tflite"
    model.write_bytes(base_model())
    argv = {"check": ["check", p], "compile_in": ["compile", p, "-o", tmp / "o.bundle"],
            "compile_out": ["compile", model, "-o", p],
            "bundle": ["check", p, "--backend", "isa"]}[role]
    before = sorted(os.listdir(tmp))
    if role == "compile_out" and kind in ("missing", "empty"):
        assert cli(capsys, *argv)[0] == 0  # a new or empty file is a valid target
        return
    assert_clean(*cli(capsys, *argv))
    assert sorted(os.listdir(tmp)) == before


@pytest.mark.full
@pytest.mark.parametrize("target", ["model", "bundle"])
def test_fuzz_cli_2000(target):
    r = logicdie("fuzz", target, "--cases", "2000", "--seed", "11", "--json", timeout=3600)
    out = json.loads(r.stdout)
    assert r.returncode == 0, out["failures"]
    assert out["cases"] == 2000 and out["tracebacks"] == out["hangs"] == 0
    assert out["partial_files"] == out["wrong_results"] == out["bad_messages"] == 0
    assert out["accepted"] > 0 and out["clean_errors"] > 0
