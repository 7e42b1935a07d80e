"""TFLite flatbuffer → :class:`models.graph.Graph`, validating as it reads.

Contract: :func:`load_tflite` accepts a path or the model bytes and either returns a graph whose
every op is in
:data:`models.graph.SPEC_OPS`, whose tensors have static shapes and whose constant buffers have
exactly the size their shape and dtype require, or raises :class:`hw.errors.UserError` with one line
naming the cause (missing or truncated file, not a TFLite flatbuffer, float-only model, unsupported
op or activation, corrupt buffer).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hw.errors import UserError
from models.graph import SPEC_OPS, Graph, Op, Quant, Tensor

__all__ = ["load_tflite", "read_model_bytes"]

_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_PADDING = {0: "SAME", 1: "VALID"}
_DTYPES = {
    "FLOAT32": "float32",
    "INT32": "int32",
    "UINT8": "uint8",
    "INT64": "int64",
    "BOOL": "bool",
    "INT16": "int16",
    "INT8": "int8",
    "FLOAT64": "float64",
    "UINT32": "uint32",
    "UINT16": "uint16",
    "UINT64": "uint64",
    "FLOAT16": "float16",
}
_RENAME = {
    "fused_activation_function": "activation",
    "dilation_w_factor": "dilation_w",
    "dilation_h_factor": "dilation_h",
}


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    return fb


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def read_model_bytes(source: str | Path | bytes) -> bytes:
    """The bytes of a model given by path or bytes; UserError if missing or unreadable."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    if not path.exists():
        raise UserError(f"model file not found: {path}")
    if path.is_dir():
        raise UserError(f"model path is a directory, not a .tflite file: {path}")
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read model file {path}: {e.strerror}") from None


def load_tflite(source: str | Path | bytes, name: str | None = None) -> Graph:
    """Import a TFLite int8 model (see module docstring for the contract)."""
    data = read_model_bytes(source)
    label = name or (
        Path(source).name if not isinstance(source, (bytes, bytearray, memoryview)) else "model"
    )
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(
            f"{label} is not a TFLite flatbuffer (no 'TFL3' identifier); give a .tflite model file"
        )
    fb = _schema()
    try:
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    except Exception:
        raise UserError(
            f"{label} is a truncated or corrupt TFLite flatbuffer; re-export the model"
        ) from None
    try:
        return _convert(model, data, label, fb)
    except UserError:
        raise
    except (IndexError, ValueError, TypeError, AttributeError) as e:
        raise UserError(
            f"{label} is a corrupt TFLite model ({type(e).__name__}: {e}); re-export the model"
        ) from None


def _convert(model, data: bytes, label: str, fb) -> Graph:
    if not model.subgraphs:
        raise UserError(f"{label} has no subgraph; re-export the model")
    op_names = _enum_names(fb.BuiltinOperator)
    type_names = _enum_names(fb.TensorType)
    sg = model.subgraphs[0]
    buffers = model.buffers or []

    tensors: list[Tensor] = []
    for i, t in enumerate(sg.tensors or []):
        tname = type_names.get(t.type, str(t.type))
        if tname not in _DTYPES:
            raise UserError(f"{label}: tensor {i} has unsupported type {tname}")
        dtype = _DTYPES[tname]
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if any(d < 0 for d in shape):
            raise UserError(
                f"{label}: tensor {i} has a dynamic shape {shape}; logicdie needs static shapes"
            )
        quant = None
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 0:
            zp = q.zeroPoint if q.zeroPoint is not None else np.zeros(len(q.scale), np.int64)
            quant = Quant(
                scale=np.asarray(q.scale, dtype=np.float32),
                zero_point=np.asarray(zp, dtype=np.int64),
                axis=int(q.quantizedDimension),
            )
        const = None
        if 0 < t.buffer < len(buffers):
            buf = buffers[t.buffer]
            raw = None
            if buf.data is not None and len(buf.data):
                raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
            elif getattr(buf, "offset", 0) and buf.offset > 1:
                raw = data[buf.offset : buf.offset + buf.size]
            if raw is not None:
                want = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                if len(raw) != want:
                    raise UserError(
                        f"{label}: tensor {i} buffer has {len(raw)} bytes, expected {want} "
                        "for its shape (corrupt model)"
                    )
                const = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        tname_str = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name)
        tensors.append(
            Tensor(index=i, name=tname_str, shape=shape, dtype=dtype, quant=quant, data=const)
        )

    ops: list[Op] = []
    codes = model.operatorCodes or []
    for k, o in enumerate(sg.operators or []):
        if o.opcodeIndex >= len(codes):
            raise UserError(f"{label}: operator {k} has a bad opcode index (corrupt model)")
        oc = codes[o.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        kind = op_names.get(code, f"BUILTIN_{code}")
        if kind == "CUSTOM":
            cname = oc.customCode.decode() if isinstance(oc.customCode, bytes) else oc.customCode
            raise UserError(
                f"{label}: unsupported op CUSTOM ({cname}) at operator {k}; "
                f"logicdie supports {', '.join(SPEC_OPS)}"
            )
        if kind not in SPEC_OPS:
            raise UserError(
                f"{label}: unsupported op {kind} at operator {k}; "
                f"logicdie supports {', '.join(SPEC_OPS)}"
            )
        inputs = [int(i) for i in (o.inputs if o.inputs is not None else [])]
        outputs = [int(i) for i in (o.outputs if o.outputs is not None else [])]
        for i in inputs + outputs:
            if i >= len(tensors):
                raise UserError(
                    f"{label}: operator {k} ({kind}) refers to tensor {i}, which does not "
                    "exist (corrupt model)"
                )
        options = _options(o.builtinOptions)
        act = options.get("activation", "NONE")
        if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            raise UserError(
                f"{label}: operator {k} ({kind}) has fused activation {act}; "
                "supported: NONE, RELU, RELU6"
            )
        ops.append(Op(index=k, kind=kind, inputs=inputs, outputs=outputs, options=options))

    graph = Graph(
        name=label,
        tensors=tensors,
        ops=ops,
        inputs=[int(i) for i in sg.inputs],
        outputs=[int(i) for i in sg.outputs],
    )
    _check_quantized(graph, label)
    return graph


def _options(obj) -> dict:
    if obj is None:
        return {}
    out = {}
    for key, value in vars(obj).items():
        k = _snake(key)
        k = _RENAME.get(k, k)
        if k == "activation":
            value = _ACTIVATIONS.get(int(value), str(value))
        elif k == "padding":
            value = _PADDING.get(int(value), str(value))
        elif isinstance(value, np.ndarray):
            value = [int(v) for v in value]
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[k] = value
    return out


_FLOAT_OK = {"QUANTIZE": "inputs", "DEQUANTIZE": "outputs"}


def _check_quantized(graph: Graph, label: str) -> None:
    """Reject float models: compute ops must see int8 (int32/int16 where TFLite uses them)."""
    for t in graph.tensors:
        if t.dtype == "uint8" and t.quant is not None:
            raise UserError(
                f"{label}: uint8-quantized model (tensor '{t.name}'); logicdie runs int8 models "
                "(TFLite full-integer int8 quantization): re-export with int8"
            )
    for op in graph.ops:
        allowed = _FLOAT_OK.get(op.kind)
        for role, idxs in (("inputs", op.inputs), ("outputs", op.outputs)):
            if role == allowed:
                continue
            for i in idxs:
                if i >= 0 and graph.tensors[i].dtype in ("float32", "float16", "float64"):
                    raise UserError(
                        f"{label}: float model (op {op.index} {op.kind} has a float tensor "
                        f"'{graph.tensors[i].name}'); logicdie runs int8 quantized models: export "
                        "with full-integer quantization"
                    )
