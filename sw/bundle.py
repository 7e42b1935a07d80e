"""The bundle: one versioned, checksummed file holding a compiled model (program, memory image,
requant tables, tensor descriptors, host ops and the ISP input normalization).

File layout (little-endian)::

    magic    8 bytes  b"LDBUNDLE" version  u32      BUNDLE_VERSION meta_len u32      length of the
    JSON metadata blob_len u64      length of the binary blob meta     zlib-compressed JSON (UTF-8):
    config, descriptors, layers, host graph (constants as blob offsets), ... blob     program bytes,
    memory image segments and host-op constants sha256   32 bytes over everything before it

:func:`load_bundle` raises :class:`hw.errors.UserError` (one line, what to do) for a missing,
truncated, corrupt or wrong-version file. :func:`save_bundle` writes atomically (temporary file +
rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from hw.config import Config
from hw.errors import UserError
from hw.isa import decode_program
from models.graph import Graph, Op, Quant, Tensor
from sw.compiler import Compiled, LayerInfo, TensorDesc

__all__ = ["BUNDLE_MAGIC", "BUNDLE_VERSION", "to_bytes", "from_bytes", "save_bundle", "load_bundle"]

BUNDLE_MAGIC = b"LDBUNDLE"
BUNDLE_VERSION = 1
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


def to_bytes(c: Compiled) -> bytes:
    """Serialise a Compiled model into bundle bytes."""
    blob = _Blob()
    prog = blob.add(c.program_bytes)
    image = [[int(addr)] + blob.add(data) for addr, data in c.image]
    g = c.host_graph
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


def from_bytes(data: bytes, label: str = "bundle") -> Compiled:
    """Parse bundle bytes; UserError for anything truncated, corrupt or of another version."""
    data = bytes(data)
    hint = "recompile it with `logicdie compile MODEL -o BUNDLE`"
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
        meta = json.loads(zlib.decompress(data[_HDR.size : _HDR.size + mlen]))
        blob = memoryview(data)[_HDR.size + mlen : end]

        def part(ref):
            off, n = ref
            if off < 0 or off + n > len(blob):
                raise ValueError("blob reference out of range")
            return bytes(blob[off : off + n])

        cfg = Config(**meta["config"])
        program = decode_program(part(meta["program"]))
        image = [(int(a), part([o, n])) for a, o, n in meta["image"]]
        gm = meta["graph"]
        tensors = []
        for i, d in enumerate(gm["tensors"]):
            q = None
            if "quant" in d:
                q = Quant(
                    np.asarray(d["quant"]["scale"], np.float32),
                    np.asarray(d["quant"]["zero_point"], np.int64),
                    int(d["quant"]["axis"]),
                )
            arr = None
            if "data" in d:
                arr = (
                    np.frombuffer(part(d["data"]), dtype=d["data_dtype"]).reshape(d["shape"]).copy()
                )
            tensors.append(Tensor(i, d["name"], tuple(d["shape"]), d["dtype"], q, arr))
        ops = [
            Op(o["index"], o["kind"], list(o["inputs"]), list(o["outputs"]), dict(o["options"]))
            for o in gm["ops"]
        ]
        graph = Graph(gm["name"], tensors, ops, list(gm["inputs"]), list(gm["outputs"]))
        return Compiled(
            config=cfg,
            program=program,
            image=image,
            inputs=[TensorDesc.from_dict(d) for d in meta["inputs"]],
            outputs=[TensorDesc.from_dict(d) for d in meta["outputs"]],
            graph_inputs=meta["graph_inputs"],
            graph_outputs=meta["graph_outputs"],
            host_pre=meta["host_pre"],
            host_post=meta["host_post"],
            host_calls=meta["host_calls"],
            layers=[LayerInfo(**d) for d in meta["layers"]],
            layer_of=meta["layer_of"],
            memory=meta["memory"],
            input_norm=meta["input_norm"],
            host_graph=graph,
            macs=int(meta["macs"]),
            warnings=list(meta.get("warnings", [])),
        )
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, zlib.error) as e:
        raise UserError(
            f"{label}: malformed bundle contents ({type(e).__name__}: {e}); {hint}"
        ) from None


def save_bundle(c: Compiled, path: str | Path) -> int:
    """Write atomically: a temporary file in the same directory, fsync, rename. Returns the size."""
    path = Path(path)
    data = to_bytes(c)
    d = path.parent if str(path.parent) else Path(".")
    if not d.is_dir():
        raise UserError(f"cannot write bundle {path}: directory {d} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return len(data)


def load_bundle(path: str | Path) -> Compiled:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"bundle {p} not found; compile one with `logicdie compile MODEL -o {p}`"
        ) from None
    except OSError as e:
        raise UserError(f"cannot read bundle {p}: {e.strerror}") from None
    return from_bytes(data, label=str(p))


def is_bundle(data: bytes) -> bool:
    return bytes(data[:8]) == BUNDLE_MAGIC
