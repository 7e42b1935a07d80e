"""The bundle: one versioned, checksummed file holding a compiled model (program, memory image,
requant tables, tensor descriptors, host ops and the ISP input normalization) and the model it was
compiled from.

File layout (little-endian)::

    magic     8 bytes  b"LDBUNDLE"
    version   u32      BUNDLE_VERSION
    meta_len  u32      length of the JSON metadata
    blob_len  u64      length of the binary blob
    meta      zlib-compressed JSON (UTF-8): config, descriptors, layers, the graph (constants as
              blob offsets), compile options, ...
    blob      program bytes, memory image segments and the graph's constants
    sha256    32 bytes over everything before it

A bundle is data from outside: :func:`from_bytes` checks the checksum, then validates the contents
(the config is a known preset; the program decodes; memory segments and tensor descriptors lie
inside the SRAM; the graph passes :func:`sw.tflite_import.validate_graph`), and finally recompiles
the carried graph and requires the program, memory image, descriptors and host-op tables to be
exactly what this compiler produces. So a bundle that loads runs bit-exactly like its own graph on
the golden model, whatever was done to the file and however its checksum was recomputed. Anything
else raises :class:`hw.errors.UserError` with one line (what is wrong, what to do).
:func:`save_bundle` writes atomically (:func:`sw.fileio.atomic_write`).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from hw.config import Config
from hw.errors import UserError
from hw.isa import INSTR_BYTES, decode_program
from models.graph import Graph, Op, Quant, Tensor
from sw.compiler import Compiled, TensorDesc

__all__ = ["BUNDLE_MAGIC", "BUNDLE_VERSION", "to_bytes", "from_bytes", "save_bundle", "load_bundle"]

BUNDLE_MAGIC = b"LDBUNDLE"
BUNDLE_VERSION = 2
#: Largest bundle read (the largest preset SRAM plus its graph, with room).
MAX_BUNDLE_BYTES = 1 << 30
_HDR = struct.Struct("<8sIIQ")


def _jsonable(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, bytes):
        return o.hex()
    if hasattr(o, "value") and hasattr(o, "name"):  # enum members
        return int(o.value)
    raise TypeError(f"not serialisable: {type(o).__name__}")


class _Blob:
    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, b: bytes) -> list[int]:
        off = self.size
        self.parts.append(bytes(b))
        self.size += len(b)
        return [off, len(b)]


def _complete(g: Graph) -> bool:
    """Every tensor an op reads is a graph input, an op output or has its constant data."""
    made = set(g.inputs) | {o for op in g.ops for o in op.outputs}
    return all(i < 0 or i in made or g.tensors[i].data is not None for op in g.ops
               for i in op.inputs)


def to_bytes(c: Compiled, graph: Graph | None = None) -> bytes:
    """Serialise a Compiled model and the graph it was compiled from (``graph``; default
    ``c.host_graph``, which must then hold every constant) into bundle bytes."""
    g = graph if graph is not None else c.host_graph
    if not _complete(g):
        raise ValueError("to_bytes needs the graph the model was compiled from (its constants)")
    blob = _Blob()
    prog = blob.add(c.program_bytes)
    image = [[int(addr)] + blob.add(data) for addr, data in c.image]
    tensors = []
    for t in g.tensors:
        d = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype}
        if t.quant is not None:
            d["quant"] = {
                "scale": [float(s) for s in t.quant.scale],
                "zero_point": [int(z) for z in t.quant.zero_point],
                "axis": t.quant.axis,
            }
        if t.data is not None:
            d["data"] = blob.add(np.ascontiguousarray(t.data).tobytes())
            d["data_dtype"] = str(t.data.dtype)
        tensors.append(d)
    ops = [
        {
            "index": op.index,
            "kind": op.kind,
            "inputs": list(op.inputs),
            "outputs": list(op.outputs),
            "options": op.options,
        }
        for op in g.ops
    ]
    meta = {
        "config": c.config.to_dict(),
        "program": prog,
        "image": image,
        "inputs": [d.to_dict() for d in c.inputs],
        "outputs": [d.to_dict() for d in c.outputs],
        "graph_inputs": c.graph_inputs,
        "graph_outputs": c.graph_outputs,
        "host_pre": c.host_pre,
        "host_post": c.host_post,
        "host_calls": c.host_calls,
        "layers": [layer.to_dict() for layer in c.layers],
        "layer_of": c.layer_of,
        "memory": c.memory,
        "input_norm": c.input_norm,
        "macs": c.macs,
        "warnings": c.warnings,
        "compile": {"input_range": c.input_norm.get("range")},
        "graph": {
            "name": g.name,
            "tensors": tensors,
            "ops": ops,
            "inputs": list(g.inputs),
            "outputs": list(g.outputs),
        },
    }
    mj = zlib.compress(json.dumps(meta, default=_jsonable, separators=(",", ":")).encode(), 6)
    body = _HDR.pack(BUNDLE_MAGIC, BUNDLE_VERSION, len(mj), blob.size) + mj + b"".join(blob.parts)
    return body + hashlib.sha256(body).digest()


_HINT = "recompile it with `logicdie compile MODEL -o BUNDLE`"
_DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32", "float16", "float64", "bool",
           "uint16", "uint32", "uint64")


class _Bad(Exception):
    """A malformed field (message: which one)."""


def _int(v, what: str, lo: int = -(1 << 62), hi: int = 1 << 62) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _Bad(f"{what} is {v!r}, not an integer in {lo}..{hi}")
    return v


def _ints(v, what: str, lo: int = -(1 << 62), hi: int = 1 << 62) -> list[int]:
    if not isinstance(v, list):
        raise _Bad(f"{what} is not a list")
    return [_int(x, f"{what}[{k}]", lo, hi) for k, x in enumerate(v)]


def _float(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad(f"{what} is {v!r}, not a number")
    return float(v)


def _str(v, what: str) -> str:
    if not isinstance(v, str):
        raise _Bad(f"{what} is not a string")
    return v


def _dict(v, what: str) -> dict:
    if not isinstance(v, dict):
        raise _Bad(f"{what} is not an object")
    return v


def _config(d) -> Config:
    from hw.config import preset, preset_names

    d = _dict(d, "config")
    name = _str(d.get("name"), "config.name")
    if name not in preset_names():
        raise UserError(f"bundle was compiled for hardware configuration {name!r}, which is not "
                        f"a preset ({', '.join(preset_names())}); {_HINT}")
    cfg = preset(name)
    if d != cfg.to_dict():
        diff = sorted(k for k in set(d) | set(cfg.to_dict()) if d.get(k) != cfg.to_dict().get(k))
        raise UserError(f"bundle's configuration differs from preset '{name}' in "
                        f"{', '.join(diff)} (tampered, or from another logicdie); {_HINT}")
    return cfg


def _graph(gm, part) -> Graph:
    gm = _dict(gm, "graph")
    tensors = []
    for i, d in enumerate(gm["tensors"]):
        d = _dict(d, f"tensor {i}")
        shape = tuple(_ints(d["shape"], f"tensor {i} shape", 0, 1 << 30))
        dtype = _str(d["dtype"], f"tensor {i} dtype")
        if dtype not in _DTYPES:
            raise _Bad(f"tensor {i} has dtype {dtype!r}")
        q = None
        if "quant" in d:
            qd = _dict(d["quant"], f"tensor {i} quant")
            scale = [_float(v, f"tensor {i} scale") for v in qd["scale"]]
            zp = _ints(qd["zero_point"], f"tensor {i} zero point")
            if not scale or len(scale) != len(zp):
                raise _Bad(f"tensor {i} has {len(scale)} scales and {len(zp)} zero points")
            q = Quant(np.asarray(scale, np.float32), np.asarray(zp, np.int64),
                      _int(qd["axis"], f"tensor {i} axis", -(1 << 31), 1 << 31))
        arr = None
        if "data" in d:
            if _str(d.get("data_dtype"), f"tensor {i} data_dtype") != dtype:
                raise _Bad(f"tensor {i} data is {d['data_dtype']}, its dtype {dtype}")
            raw = part(d["data"])
            if len(raw) != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
                raise _Bad(f"tensor {i} data has {len(raw)} bytes for shape {list(shape)}")
            arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        tensors.append(Tensor(i, _str(d["name"], f"tensor {i} name"), shape, dtype, q, arr))
    n = len(tensors)
    ops = []
    for k, o in enumerate(gm["ops"]):
        o = _dict(o, f"op {k}")
        ops.append(Op(k if _int(o["index"], f"op {k} index") == k else -1,
                      _str(o["kind"], f"op {k} kind"), _ints(o["inputs"], f"op {k} inputs", -1,
                                                             n - 1),
                      _ints(o["outputs"], f"op {k} outputs", 0, n - 1),
                      dict(_dict(o["options"], f"op {k} options"))))
        if ops[-1].index != k:
            raise _Bad(f"op {k} has index {o['index']}")
    return Graph(_str(gm["name"], "graph name"), tensors, ops,
                 _ints(gm["inputs"], "graph inputs", 0, n - 1),
                 _ints(gm["outputs"], "graph outputs", 0, n - 1))


def _check_layout(meta: dict, cfg: Config, graph: Graph, blob_len: int) -> None:
    """Addresses, shapes and op kinds of the program, image and descriptors (before the
    recompile, for precise messages)."""
    from hw.isa import Opcode

    sram = cfg.sram_bytes
    spans = []
    for k, seg in enumerate(meta["image"]):
        a, off, n = _ints(seg, f"image segment {k}", 0, 1 << 40)
        if a + n > sram:
            raise _Bad(f"memory segment {k} at {a:#x}+{n} lies outside the {sram:,}-byte SRAM")
        spans.append((a, a + n, k))
    spans.sort()
    for (_a0, e0, k0), (a1, _, k1) in zip(spans, spans[1:], strict=False):
        if a1 < e0:
            raise _Bad(f"memory segments {k0} and {k1} overlap")
    for role in ("inputs", "outputs"):
        for k, d in enumerate(meta[role]):
            d = _dict(d, f"{role}[{k}]")
            t = _int(d["tensor"], f"{role}[{k}].tensor", 0, len(graph.tensors) - 1)
            shape = _ints(d["shape"], f"{role}[{k}].shape", 1, 1 << 30)
            dtype = _str(d["dtype"], f"{role}[{k}].dtype")
            if dtype not in _DTYPES:
                raise _Bad(f"{role}[{k}] has dtype {dtype!r}")
            if list(graph.tensors[t].shape) != shape or graph.tensors[t].dtype != dtype:
                raise _Bad(f"NPU {role[:-1]} {k} is {dtype} {shape}, its tensor "
                           f"{graph.tensors[t].dtype} {list(graph.tensors[t].shape)}")
            a = _int(d["addr"], f"{role}[{k}].addr", 0, sram)
            if a + int(np.prod(shape)) * np.dtype(dtype).itemsize > sram:
                raise _Bad(f"NPU {role[:-1]} {k} at {a:#x} lies outside the SRAM")
    program = decode_program_checked(meta, blob_len)
    kinds = set(Opcode)
    for k, ins in enumerate(program):
        if ins["opcode"] not in kinds:
            raise _Bad(f"instruction {k} has unknown opcode {ins['opcode']}")
    if not program or program[-1]["opcode"] != Opcode.DONE:
        raise _Bad("the program does not end with DONE")
    layer_of = _ints(meta["layer_of"], "layer_of", -1, len(meta["layers"]) - 1)
    if len(layer_of) != len(program):
        raise _Bad("layer_of does not cover the program")
    for role in ("host_pre", "host_post"):
        _ints(meta[role], role, 0, len(graph.ops) - 1)


def decode_program_checked(meta: dict, blob_len: int) -> list:
    off, n = _ints(meta["program"], "program", 0, blob_len)
    if n % INSTR_BYTES or off + n > blob_len:
        raise _Bad(f"program of {n} bytes at {off} (instructions are {INSTR_BYTES} bytes)")
    return meta["_program"]


def from_bytes(data: bytes, label: str = "bundle", *, with_graph: bool = False):
    """Parse and validate bundle bytes (module docstring) -> Compiled (and the graph it carries,
    with ``with_graph``); UserError for anything truncated, corrupt, tampered or of another
    version."""
    data = bytes(data)
    hint = _HINT
    if not data:
        raise UserError(f"{label} is empty (0 bytes), not a bundle; {hint}")
    if len(data) < _HDR.size + 32:
        raise UserError(f"{label}: truncated bundle ({len(data)} bytes); {hint}")
    magic, version, mlen, blen = _HDR.unpack_from(data, 0)
    if magic != BUNDLE_MAGIC:
        raise UserError(f"{label}: not a logicdie bundle (bad magic); {hint}")
    if version != BUNDLE_VERSION:
        raise UserError(
            f"{label}: bundle version {version}, this logicdie reads version "
            f"{BUNDLE_VERSION}; {hint}"
        )
    end = _HDR.size + mlen + blen
    if len(data) != end + 32:
        raise UserError(
            f"{label}: truncated or padded bundle ({len(data)} bytes, expected {end + 32}); {hint}"
        )
    if hashlib.sha256(data[:end]).digest() != data[end:]:
        raise UserError(f"{label}: checksum mismatch (corrupt bundle); {hint}")
    try:
        z = zlib.decompressobj()
        raw = z.decompress(data[_HDR.size : _HDR.size + mlen], 64 * mlen + (1 << 20))
        if z.unconsumed_tail:
            raise _Bad("metadata expands beyond any real bundle's")
        meta = _dict(json.loads(raw), "metadata")
        blob = memoryview(data)[_HDR.size + mlen : end]

        def part(ref):
            off, n = _ints(ref, "blob reference", 0, len(blob))
            if len(ref) != 2 or off + n > len(blob):
                raise _Bad("blob reference out of range")
            return bytes(blob[off : off + n])

        cfg = _config(meta["config"])
        graph = _graph(meta["graph"], part)
        try:
            meta["_program"] = decode_program(part(meta["program"]))
        except ValueError as e:
            raise _Bad(f"the program does not decode ({e})") from None
        _check_layout(meta, cfg, graph, len(blob))
        image = [(int(a), part([o, n])) for a, o, n in meta["image"]]
        rng = _dict(meta["compile"], "compile").get("input_range")
        if rng is not None:
            rng = tuple(_float(v, "input range") for v in rng)
            if len(rng) != 2 or not all(np.isfinite(rng)):
                raise _Bad("the input range is not two finite numbers")
        stored = {
            "program": meta["_program"], "image": image,
            "inputs": [TensorDesc.from_dict(d).to_dict() for d in meta["inputs"]],
            "outputs": [TensorDesc.from_dict(d).to_dict() for d in meta["outputs"]],
            "graph_inputs": meta["graph_inputs"], "graph_outputs": meta["graph_outputs"],
            "host_pre": meta["host_pre"], "host_post": meta["host_post"],
            "host_calls": meta["host_calls"], "layer_of": meta["layer_of"],
            "memory": meta["memory"], "input_norm": meta["input_norm"], "macs": meta["macs"],
            "layers": meta["layers"],
        }
    except UserError:
        raise
    except _Bad as e:
        raise UserError(f"{label}: invalid bundle contents: {e}; {hint}") from None
    except KeyError as e:
        raise UserError(f"{label}: malformed bundle contents (missing field {e}); {hint}") \
            from None
    except (ValueError, TypeError, IndexError, AttributeError, OverflowError,
            RecursionError, zlib.error) as e:
        what = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise UserError(f"{label}: malformed bundle contents ({what}); {hint}") from None
    return _recompiled(label, graph, cfg, rng, stored, meta, with_graph)


def _recompiled(label, graph, cfg, rng, stored, meta, with_graph):
    """Compile the carried graph again and require every stored field to be what it gives."""
    from sw.compiler import compile_graph
    from sw.tflite_import import validate_graph

    try:
        validate_graph(graph, graph.name or "graph")
    except UserError as e:
        raise UserError(f"{label}: the bundle's model is invalid ({e}); {_HINT}") from None
    first = None
    for host_tail in (True, False):
        try:
            c = compile_graph(graph, cfg, host_tail=host_tail, input_range=rng)
        except UserError as e:
            raise UserError(f"{label}: the bundle's model does not compile ({e}); {_HINT}") \
                from None
        fresh = {
            "program": c.program, "image": [(int(a), bytes(b)) for a, b in c.image],
            "inputs": [d.to_dict() for d in c.inputs],
            "outputs": [d.to_dict() for d in c.outputs],
            "graph_inputs": c.graph_inputs, "graph_outputs": c.graph_outputs,
            "host_pre": c.host_pre, "host_post": c.host_post, "host_calls": c.host_calls,
            "layer_of": c.layer_of, "memory": c.memory, "input_norm": c.input_norm,
            "macs": c.macs, "layers": [layer.to_dict() for layer in c.layers],
        }
        fresh = json.loads(json.dumps(fresh, default=_jsonable))
        st = json.loads(json.dumps(stored, default=_jsonable))
        diff = [k for k in fresh if fresh[k] != st[k]]
        if not diff:
            c.host_graph = graph  # complete: the golden backend can run a bundle
            c.warnings = [str(w) for w in meta.get("warnings", [])] if isinstance(
                meta.get("warnings"), list) else c.warnings
            return (c, graph) if with_graph else c
        first = first or diff
    raise UserError(f"{label}: the bundle's {'/'.join(first[:3])} "
                    f"field{'s' if len(first) > 1 else ''} do{'' if len(first) > 1 else 'es'} "
                    "not match the model it carries "
                    f"(tampered, or written by another logicdie version); {_HINT}")


def save_bundle(c: Compiled, path: str | Path, graph: Graph | None = None, *,
                inputs=()) -> int:
    """Write atomically (:func:`sw.fileio.atomic_write`; never over a non-regular file or one of
    ``inputs``). ``graph``: the graph ``c`` was compiled from (see :func:`to_bytes`). Returns the
    size."""
    from sw.fileio import atomic_write

    return atomic_write(path, to_bytes(c, graph), "bundle", inputs=inputs, replaces=is_bundle)


def load_bundle(path: str | Path, *, with_graph: bool = False):
    from sw.fileio import read_input

    p = Path(path)
    data = read_input(p, "bundle", limit=MAX_BUNDLE_BYTES,
                      hint=f"compile one with `logicdie compile MODEL -o {p}`")
    return from_bytes(data, label=str(p), with_graph=with_graph)


def is_bundle(data: bytes) -> bool:
    return bytes(data[:8]) == BUNDLE_MAGIC
