"""Fuzzing the front door: mutated models and tampered bundles through the command line's contract
(``logicdie fuzz model`` / ``logicdie fuzz bundle``, SPEC section 8).

Every case is a file given to the real CLI entry point (:func:`sw.cli.main`) in a worker process:

- model cases: ``check CASE --backend isa`` (ISA simulator against the TFLM reference) and
  ``compile CASE -o OUT``;
- bundle cases: ``check CASE --backend isa`` (the bundle on the ISA simulator against the golden
  run of the graph it carries).

The contract checker accepts exactly two outcomes per command: exit 0 with a correct result (check:
``bit_exact`` true in its one JSON object; compile: a bundle at OUT that loads), or exit 2 with one
line on stderr (``logicdie: error: ...``) and nothing left in the output directory. Anything else is
counted: ``tracebacks`` (an exception other than UserError escaped, or the worker died), ``hangs``
(no answer within the per-case timeout: the worker is killed and replaced), ``partial_files``,
``wrong_results`` (exit 0 or 1 without a correct result) and ``bad_messages`` (exit 2 without
exactly one line).

Mutations. Models: field-level edits through the schema's object API (tensor types, shapes,
buffers, quantization scales / zero points / axes, operator codes, inputs, outputs, options and
their types, operator order, graph inputs / outputs, buffer contents) and byte-level edits of the
packed flatbuffer (bit flips, random bytes, extreme 32-bit words, truncation, insertion). Bundles:
field-level edits of the metadata (any leaf of the JSON tree, list and key deletions and
duplications, instruction fields of the decoded program) and byte edits of the metadata text, the
blob (program, memory image, graph constants) and the header, each re-sealed with a valid
checksum. Seeds are small generated models (every op of SPEC section 4 appears in one; a case takes
a fraction of a second) and, in one case of ten, the shipped person_detect network.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable

import numpy as np

__all__ = ["seed_models", "mutate_model", "mutate_bundle", "run_cases", "CaseResult"]


# ------------------------------------------------------------------------------------------ seeds
def seed_models(real: bool = True) -> list[tuple[str, bytes]]:
    """Small valid int8 models covering every op the compiler supports, and (``real``) the shipped
    person_detect network."""
    from models.tflite_writer import ModelBuilder

    rng = np.random.default_rng(1234)
    out = []

    b = ModelBuilder("convnet")
    x = b.input((1, 8, 8, 3), "int8", 0.05, -128)
    y = b.conv2d(x, b.weights(rng.normal(size=(8, 3, 3, 3)), axis=0), bias=rng.normal(size=8),
                 stride=2, padding="SAME", activation="RELU6", out_scale=0.05, out_zp=-128)
    y = b.depthwise_conv2d(y, b.depthwise_weights(rng.normal(size=(1, 3, 3, 8))),
                           bias=rng.normal(size=8), stride=1, padding="SAME", activation="RELU",
                           out_scale=0.06, out_zp=-128)
    y = b.average_pool2d(y, filter=2, stride=2)
    y = b.reshape(y, (1, 32))
    y = b.fully_connected(y, b.weights(rng.normal(size=(4, 32)), axis=None),
                          bias=np.zeros(4, np.int32), out_scale=0.1, out_zp=0)
    b.output(b.softmax(y))
    out.append(("convnet", b.finish()))

    b = ModelBuilder("elementwise")
    x = b.input((1, 4, 4, 4), "int8", 0.1, 0)
    a = b.relu(x)
    m = b.mul(x, a, out_scale=0.2, out_zp=3)
    s = b.add(m, x, out_scale=0.2, out_zp=-2)
    p = b.pad(s, [[0, 0], [1, 1], [1, 1], [0, 0]])
    mp = b.max_pool2d(p, filter=2, stride=2)
    c = b.concatenation([mp, mp], axis=3)
    b.output(b.mean(c, [1, 2], keep_dims=True, out_scale=0.2, out_zp=0))
    out.append(("elementwise", b.finish()))

    b = ModelBuilder("float_io")
    x = b.input((1, 6, 6, 2), "float32")
    q = b.quantize(x, 0.02, 5)
    t = b.transpose(q, (0, 2, 1, 3))
    r = b.resize_nearest_neighbor(t, (12, 12))
    h = b.hard_swish(r, 0.02, 0)
    lr = b.leaky_relu(h, 0.2)
    lg = b.logistic(lr)
    b.output(b.dequantize(b.relu6(lg)))
    out.append(("float_io", b.finish()))
    if real:
        from models.zoo import PERSON_DETECT

        out.append(("person_detect", PERSON_DETECT.read_bytes()))
    return out


# ---------------------------------------------------------------------------- model mutations
_EXTREME = [0, -1, 1, 2, 3, 7, 8, 15, 16, 255, 256, 65535, 65536, 2**24, 2**31 - 1, -(2**31),
            -2, 1000, 12345]
_FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, -1.0, 1e-45, 1e-38, 1e-12,
           1e-6, 1.0, 3.5, 1e6, 1e12, 1e38, 3.4e38]


def _rand_int(r: random.Random, cur: int | None = None) -> int:
    c = r.random()
    if c < 0.5:
        return r.choice(_EXTREME)
    if c < 0.8 and cur is not None:
        return int(cur) + r.choice([-2, -1, 1, 2])
    return r.randint(-300, 300)


def mutate_model(data: bytes, r: random.Random) -> tuple[bytes, str]:
    """One mutated model from ``data`` and a short description of what was done."""
    if r.random() < 0.3:
        return _byte_mutation(data, r)
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    done = []
    for _ in range(r.choice([1, 1, 1, 2, 3])):
        done.append(_field_mutation(m, fb, r))
    import flatbuffers

    b = flatbuffers.Builder(1024)
    try:
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
    except Exception as e:  # the object API cannot pack some values (e.g. out-of-range ints)
        return _byte_mutation(data, r)[0], f"pack failed ({type(e).__name__}); byte mutation"
    return bytes(b.Output()), "; ".join(done)


def _byte_mutation(data: bytes, r: random.Random) -> tuple[bytes, str]:
    d = bytearray(data)
    kind = r.choice(["flip", "byte", "word", "truncate", "insert", "zero"])
    n = len(d)
    if kind == "flip":
        for _ in range(r.randint(1, 8)):
            i = r.randrange(n)
            d[i] ^= 1 << r.randrange(8)
    elif kind == "byte":
        for _ in range(r.randint(1, 4)):
            d[r.randrange(n)] = r.randrange(256)
    elif kind == "word":
        i = r.randrange(0, max(1, n - 4)) & ~3
        d[i : i + 4] = struct.pack("<i", r.choice(_EXTREME))
    elif kind == "truncate":
        d = d[: r.randrange(n)]
    elif kind == "insert":
        i = r.randrange(n)
        d[i:i] = bytes(r.randrange(256) for _ in range(r.randint(1, 16)))
    else:
        i = r.randrange(n)
        d[i : i + r.randint(1, 64)] = b"\0" * len(d[i : i + r.randint(1, 64)])
    return bytes(d), f"bytes:{kind}"


def _field_mutation(m, fb, r: random.Random) -> str:
    sg = m.subgraphs[0]
    tensors, ops = sg.tensors, sg.operators
    what = r.choice(["tensor_type", "shape", "buffer", "scale", "zero_point", "quant_axis",
                     "quant_drop", "scale_count", "opcode", "op_code_kind", "op_input",
                     "op_output", "op_arity", "option", "option_type", "op_order", "op_delete",
                     "graph_io", "buffer_data", "no_ops", "op_input_self"])
    ti = r.randrange(len(tensors))
    t = tensors[ti]
    if what == "tensor_type":
        t.type = r.randrange(0, 18)
    elif what == "shape":
        s = list(t.shape) if t.shape is not None else []
        c = r.random()
        if c < 0.3 and s:
            s[r.randrange(len(s))] = r.choice([0, -1, 1, 2, 3, 5, 9, 100, 65536, 2**31 - 1])
        elif c < 0.5:
            s = s + [r.choice([1, 2])]
        elif c < 0.7 and s:
            s = s[:-1]
        elif c < 0.8:
            s = []
        elif s:
            s[r.randrange(len(s))] += r.choice([-1, 1])
        t.shape = s
    elif what == "buffer":
        t.buffer = r.choice([0, len(m.buffers), len(m.buffers) + 5, r.randrange(len(m.buffers)),
                             2**31 - 1])
    elif what in ("scale", "zero_point", "quant_axis", "scale_count", "quant_drop"):
        q = t.quantization
        if q is None or q.scale is None or not len(q.scale):
            q = t.quantization = fb.QuantizationParametersT()
            q.scale, q.zeroPoint = [0.1], [0]
        if what == "scale":
            sc = list(q.scale)
            sc[r.randrange(len(sc))] = r.choice(_FLOATS)
            q.scale = sc
        elif what == "zero_point":
            zp = list(q.zeroPoint) if q.zeroPoint is not None and len(q.zeroPoint) else [0]
            zp[r.randrange(len(zp))] = r.choice([-129, 128, 127, -128, 255, 1000, -(2**31), 5])
            q.zeroPoint = zp
        elif what == "quant_axis":
            q.quantizedDimension = r.choice([-1, 0, 1, 2, 3, 4, 100])
        elif what == "scale_count":
            k = r.choice([0, 1, 2, 3, 7, 9])
            q.scale = [0.05] * k
            q.zeroPoint = [0] * (k if r.random() < 0.7 else k + 1)
        else:
            t.quantization = None
    elif what == "opcode" and ops:
        ops[r.randrange(len(ops))].opcodeIndex = r.choice(
            [len(m.operatorCodes), 2**31 - 1, r.randrange(len(m.operatorCodes))])
    elif what == "op_code_kind":
        oc = m.operatorCodes[r.randrange(len(m.operatorCodes))]
        code = r.choice([0, 1, 2, 3, 4, 9, 14, 17, 18, 19, 21, 22, 25, 28, 34, 39, 40, 22, 32,
                         97, 114, 117, 98, 6, 127, 150, 200])
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
    elif what == "op_input" and ops:
        o = ops[r.randrange(len(ops))]
        ins = list(o.inputs)
        if ins:
            ins[r.randrange(len(ins))] = r.choice([-1, -2, len(tensors), len(tensors) + 3,
                                                   r.randrange(len(tensors))])
        o.inputs = ins
    elif what == "op_input_self" and ops:  # a cycle: an op reads a later op's output
        k = r.randrange(len(ops))
        later = ops[r.randrange(k, len(ops))]
        o = ops[k]
        if o.inputs is not None and len(o.inputs):
            ins = list(o.inputs)
            ins[0] = int(later.outputs[0])
            o.inputs = ins
    elif what == "op_output" and ops:
        o = ops[r.randrange(len(ops))]
        o.outputs = [r.choice([len(tensors), -1, r.randrange(len(tensors))])]
    elif what == "op_arity" and ops:
        o = ops[r.randrange(len(ops))]
        ins = list(o.inputs)
        if ins and r.random() < 0.6:
            ins.pop(r.randrange(len(ins)))
        else:
            ins.append(r.randrange(len(tensors)))
        o.inputs = ins
    elif what == "option" and ops:
        o = ops[r.randrange(len(ops))]
        opt = o.builtinOptions
        if opt is not None and vars(opt):
            key = r.choice(sorted(vars(opt)))
            v = getattr(opt, key)
            if isinstance(v, bool):
                setattr(opt, key, not v)
            elif isinstance(v, int):
                setattr(opt, key, _rand_int(r, v) if key not in ("padding",) else r.randrange(4))
            elif isinstance(v, float):
                setattr(opt, key, r.choice(_FLOATS))
    elif what == "option_type" and ops:
        o = ops[r.randrange(len(ops))]
        src = ops[r.randrange(len(ops))]
        o.builtinOptionsType, o.builtinOptions = src.builtinOptionsType, copy.deepcopy(
            src.builtinOptions)
    elif what == "op_order" and len(ops) > 1:
        i, j = r.sample(range(len(ops)), 2)
        ops[i], ops[j] = ops[j], ops[i]
    elif what == "op_delete" and ops:
        ops.pop(r.randrange(len(ops)))
    elif what == "no_ops":
        sg.operators = []
    elif what == "graph_io":
        c = r.random()
        if c < 0.3:
            sg.inputs = []
        elif c < 0.5:
            sg.outputs = []
        elif c < 0.8:
            sg.outputs = [r.choice([len(tensors), -1, r.randrange(len(tensors))])]
        else:
            sg.inputs = [r.randrange(len(tensors))]
    elif what == "buffer_data":
        cands = [k for k, b in enumerate(m.buffers) if b.data is not None and len(b.data)]
        if cands:
            b = m.buffers[r.choice(cands)]
            d = np.array(b.data, dtype=np.uint8)
            c = r.random()
            if c < 0.5:
                d[r.randrange(d.size)] = r.randrange(256)  # new weights: still a valid model
            elif c < 0.75:
                d = d[: r.randrange(d.size)]
            else:
                d = np.concatenate([d, np.zeros(r.randint(1, 8), np.uint8)])
            b.data = d
    return f"{what}@t{ti}"


# ---------------------------------------------------------------------------- bundle mutations
def _split_bundle(data: bytes):
    from sw.bundle import _HDR

    magic, version, mlen, blen = _HDR.unpack_from(data, 0)
    meta = json.loads(zlib.decompress(data[_HDR.size : _HDR.size + mlen]))
    blob = bytearray(data[_HDR.size + mlen : _HDR.size + mlen + blen])
    return magic, version, meta, blob


def _seal(magic, version, meta_bytes: bytes, blob: bytes, mlen=None, blen=None) -> bytes:
    from sw.bundle import _HDR

    mj = zlib.compress(meta_bytes, 6)
    body = _HDR.pack(magic, version, len(mj) if mlen is None else mlen,
                     len(blob) if blen is None else blen) + mj + bytes(blob)
    return body + hashlib.sha256(body).digest()


def _leaves(o, path=()):
    if isinstance(o, dict):
        yield path, o
        for k, v in o.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(o, list):
        yield path, o
        for k, v in enumerate(o[:64]):
            yield from _leaves(v, path + (k,))
    else:
        yield path, o


def _set(o, path, v):
    for k in path[:-1]:
        o = o[k]
    o[path[-1]] = v


def mutate_bundle(data: bytes, r: random.Random) -> tuple[bytes, str]:
    """One tampered bundle from ``data`` (re-sealed with a valid checksum) and a description."""
    magic, version, meta, blob = _split_bundle(data)
    kind = r.choice(["leaf", "leaf", "leaf", "container", "instr", "instr", "meta_bytes",
                     "blob_bytes", "header"])
    if kind == "leaf":
        paths = [(p, v) for p, v in _leaves(meta) if p and not isinstance(v, (dict, list))]
        p, v = r.choice(paths)
        if isinstance(v, bool):
            nv = not v
        elif isinstance(v, int):
            nv = _rand_int(r, v)
        elif isinstance(v, float):
            nv = r.choice(_FLOATS + [v * 2, -v])
            nv = nv if np.isfinite(nv) else 1e308
        elif isinstance(v, str):
            nv = r.choice(["", "int16", "float32", "CONV_2D", "ADD", "SAME", "bogus", v + "x",
                           "default", "tiny", "ice40"])
        else:
            nv = r.choice([0, "x", [], {}])
        _set(meta, p, nv)
        desc = f"leaf {'/'.join(map(str, p))}={nv!r}"
    elif kind == "container":
        paths = [(p, v) for p, v in _leaves(meta) if p and isinstance(v, (dict, list)) and v]
        p, v = r.choice(paths)
        if isinstance(v, list):
            k = r.randrange(len(v))
            c = r.random()
            if c < 0.4:
                v.pop(k)
            elif c < 0.8:
                v.insert(k, copy.deepcopy(v[k]))
            else:
                v.reverse()
        else:
            v.pop(r.choice(sorted(v)))
        desc = f"container {'/'.join(map(str, p))}"
    elif kind == "instr":
        from hw.isa import INSTR_BYTES, decode_program, encode_program

        off, n = meta["program"]
        orig = bytes(blob[off : off + n])
        prog = decode_program(orig)
        k = r.randrange(len(prog))
        ins = dict(prog[k])
        key = r.choice(sorted(ins))
        cur = ins[key]
        ins[key] = (r.randrange(32) if key == "opcode"
                    else _rand_int(r, int(getattr(cur, "value", cur))))
        prog[k] = ins
        try:
            raw = encode_program(prog)
        except Exception:  # the field cannot hold the value: flip bits of the word instead
            raw = bytearray(orig)
            raw[k * INSTR_BYTES + r.randrange(INSTR_BYTES)] ^= 1 << r.randrange(8)
        blob[off : off + n] = raw
        # the memory image holds the program too (what the NPU runs): change both copies
        for _, o, ln in meta["image"]:
            if ln == n and bytes(blob[o : o + ln]) == orig:
                blob[o : o + ln] = raw
        desc = f"instr {k}.{key}={ins[key]}"
    elif kind == "meta_bytes":
        text = bytearray(json.dumps(meta, separators=(",", ":")).encode())
        i = r.randrange(len(text))
        text[i] = r.choice(b'0123456789-.,:{}[]"eE ')
        return _seal(magic, version, bytes(text), blob), f"meta byte {i}"
    elif kind == "blob_bytes":
        for _ in range(r.randint(1, 4)):
            i = r.randrange(len(blob))
            blob[i] ^= 1 << r.randrange(8)
        desc = "blob bits"
    else:
        mj = json.dumps(meta, separators=(",", ":")).encode()
        mlen = len(zlib.compress(mj, 6))
        c = r.random()
        if c < 0.5:
            return _seal(magic, version, mj, blob, mlen=mlen + r.choice([-3, -1, 1, 7])), \
                "header mlen"
        return _seal(magic, version, mj, blob, blen=len(blob) + r.choice([-3, -1, 1, 7])), \
            "header blen"
    return _seal(magic, version, json.dumps(meta, separators=(",", ":")).encode(), blob), desc


# ---------------------------------------------------------------------------- the checker
class CaseResult(dict):
    """Outcome of one case: ``outcome`` in clean_error / accepted / traceback / hang /
    partial_file / wrong_result / bad_message, plus ``detail``."""


def _cli(argv: list[str]) -> dict:
    """Run ``sw.cli.main(argv)`` in this process with captured stdout/stderr."""
    from sw.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    tb = None
    try:
        code = main(argv)
    except BaseException as e:  # noqa: BLE001 - this is what the fuzzer looks for
        code = None
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
    finally:
        sys.stdout, sys.stderr = old
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "traceback": tb}


def _judge(res: dict, what: str) -> tuple[str, str]:
    if res["traceback"] is not None:
        return "traceback", f"{what}: {res['traceback'].strip().splitlines()[-1]}"
    lines = [ln for ln in res["stderr"].splitlines() if ln.strip()]
    if res["code"] == 2:
        if len(lines) == 1 and lines[0].startswith("logicdie: error: ") and not res["stdout"]:
            return "clean_error", lines[0]
        return "bad_message", f"{what}: stderr {lines[:3]!r} stdout {res['stdout'][:80]!r}"
    if res["code"] == 0:
        return "accepted", ""
    return "wrong_result", f"{what}: exit {res['code']}: {lines[:2]!r}"


def _check_case(kind: str, data: bytes, workdir: str) -> dict:
    """One case through the contract checker (runs in the worker)."""
    d = tempfile.mkdtemp(dir=workdir)
    try:
        path = os.path.join(d, "case.tflite" if kind == "model" else "case.bundle")
        with open(path, "wb") as f:
            f.write(data)
        res = _cli(["check", path, "--backend", "isa", "--inputs", "2", "--seed", "7", "--json"])
        outcome, detail = _judge(res, "check")
        if outcome == "accepted":
            try:
                doc = json.loads(res["stdout"])
                if doc.get("bit_exact") is not True:
                    outcome, detail = "wrong_result", f"check: bit_exact {doc.get('bit_exact')}"
            except ValueError:
                outcome, detail = "wrong_result", "check: stdout is not one JSON object"
        if kind == "model" and outcome in ("accepted", "clean_error"):
            out = os.path.join(d, "out", "case.bundle")
            os.mkdir(os.path.dirname(out))
            res2 = _cli(["compile", path, "-o", out, "--json"])
            o2, d2 = _judge(res2, "compile")
            left = sorted(os.listdir(os.path.dirname(out)))
            if o2 == "accepted":
                from sw.bundle import load_bundle

                try:
                    load_bundle(out)
                except Exception as e:  # noqa: BLE001
                    o2, d2 = "partial_file", f"compile wrote a bundle that does not load: {e}"
                if left != ["case.bundle"]:
                    o2, d2 = "partial_file", f"compile left {left}"
            elif o2 == "clean_error" and left:
                o2, d2 = "partial_file", f"compile failed but left {left}"
            if o2 != "accepted" and o2 != "clean_error":
                outcome, detail = o2, d2
            elif o2 == "clean_error" and outcome == "accepted":
                # check ran the model bit-exactly, so compile must not refuse it (unless the
                # refusal is only about writing, which it is not here)
                outcome, detail = "wrong_result", f"check accepted, compile refused: {d2}"
            elif o2 == "accepted" and outcome == "clean_error" and "TFLM" not in detail:
                outcome, detail = "wrong_result", f"check refused ({detail}), compile accepted"
        return {"outcome": outcome, "detail": detail}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _worker(conn, workdir: str) -> None:
    import warnings

    warnings.simplefilter("ignore")  # the CLI's own warnings are not what is judged here
    while True:
        msg = conn.recv()
        if msg is None:
            return
        kind, data = msg
        try:
            conn.send(_check_case(kind, data, workdir))
        except BaseException as e:  # noqa: BLE001
            conn.send({"outcome": "traceback", "detail": f"checker: {type(e).__name__}: {e}"})


class _Pool:
    """One worker process (fork) at a time; replaced when it hangs or dies."""

    def __init__(self, workdir: str):
        import multiprocessing as mp

        self.ctx = mp.get_context("fork")
        self.workdir = workdir
        self.proc = None

    def _start(self):
        a, b = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(b, self.workdir), daemon=True)
        self.proc.start()
        self.conn = a

    def run(self, kind: str, data: bytes, timeout: float) -> dict:
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send((kind, data))
        if not self.conn.poll(timeout):
            self.kill()
            return {"outcome": "hang", "detail": f"no answer within {timeout:g} s"}
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            code = self.proc.exitcode if self.proc is not None else None
            self.kill()
            return {"outcome": "traceback", "detail": f"worker died (exit code {code})"}

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(5)
            except OSError:
                pass
        self.kill()


def _seed_bundles(real: bool = True) -> list[tuple[str, bytes]]:
    from sw.bundle import to_bytes
    from sw.compiler import compile_graph
    from sw.tflite_import import load_tflite

    out = []
    for name, data in seed_models(real):
        g = load_tflite(data, name=name)
        out.append((name, to_bytes(compile_graph(g, "default"), g)))
    return out


def run_cases(target: str, cases: int, seed: int = 0, timeout: float = 60.0,
              progress: Callable[[int], None] | None = None, keep: str | None = None) -> dict:
    """Run ``cases`` mutated models or bundles (``target``: "model" / "bundle") through the
    contract checker; returns the JSON summary (module docstring). ``keep``: a directory that
    receives every failing case as a file."""
    import sw.cli  # noqa: F401  (imported before forking: workers start warm)
    from sw.cli import limit_blas_threads

    limit_blas_threads()
    r = random.Random(seed)
    seeds = seed_models() if target == "model" else _seed_bundles()
    mutate = mutate_model if target == "model" else mutate_bundle
    counts = {k: 0 for k in ("clean_errors", "accepted", "tracebacks", "hangs", "partial_files",
                             "wrong_results", "bad_messages")}
    key = {"clean_error": "clean_errors", "accepted": "accepted", "traceback": "tracebacks",
           "hang": "hangs", "partial_file": "partial_files", "wrong_result": "wrong_results",
           "bad_message": "bad_messages"}
    failures, messages, per_seed = [], {}, {}
    if keep:
        os.makedirs(keep, exist_ok=True)
    t0 = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="logicdie-fuzz-")
    pool = _Pool(workdir)
    try:
        # the unmutated seeds first: the checker must accept them (a control)
        plan = [(name, data, "seed") for name, data in seeds]
        small = [s for s in seeds if s[0] != "person_detect"]
        real = [s for s in seeds if s[0] == "person_detect"]
        for _ in range(max(0, cases - len(plan))):
            # the real network in one case of ten (it takes ~10x longer than the small seeds)
            name, data = r.choice(real if real and r.random() < 0.1 else small)
            case, desc = mutate(data, r)
            plan.append((name, case, desc))
        for k, (name, case, desc) in enumerate(plan[:cases]):
            res = pool.run(target, case, timeout)
            counts[key[res["outcome"]]] += 1
            per_seed[name] = per_seed.get(name, 0) + 1
            if res["outcome"] == "clean_error":
                msg = res["detail"].split(": ", 2)[-1][:60]
                messages[msg] = messages.get(msg, 0) + 1
            elif res["outcome"] != "accepted":
                if keep:
                    from sw.fileio import atomic_write

                    ext = "tflite" if target == "model" else "bundle"
                    atomic_write(os.path.join(keep, f"case{k:05d}.{ext}"), case, "case")
                if len(failures) < 20:
                    failures.append({"case": k, "seed_model": name, "mutation": desc,
                                     "outcome": res["outcome"], "detail": res["detail"]})
            if progress:
                progress(1)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - t0
    return {
        "target": target, "cases": min(cases, len(plan)), "seed": seed, **counts,
        "wall_s": round(wall, 1), "ms_per_case": round(1e3 * wall / max(1, cases), 1),
        "seed_models": per_seed, "failures": failures,
        "top_errors": dict(sorted(messages.items(), key=lambda kv: -kv[1])[:10]),
    }
