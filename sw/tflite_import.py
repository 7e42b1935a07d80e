"""TFLite flatbuffer → :class:`models.graph.Graph`: the one validation layer for models.

Contract: :func:`load_tflite` accepts a path (a regular file: a FIFO or device is refused before it
is opened) or the model bytes and either returns a graph that passes :func:`validate_graph`, or
raises :class:`hw.errors.UserError` with one line naming the cause and the tensor or operator
(missing, empty or truncated file, not a TFLite flatbuffer, a bundle given as a model, float-only
or uint8 model, unsupported op or activation, corrupt buffer, index out of range, bad quantization,
shapes that do not match what an op computes, a cycle, no ops, ...).

Every field the importer reads is checked against the schema's meaning as it is read (indices in
range, enum values known, buffers of exactly the size their shape and dtype need, vectors inside
the file: a corrupt vector length fails at once instead of looping), and :func:`validate_graph`
checks what needs the whole graph. The bundle loader (:mod:`sw.bundle`) runs the same
:func:`validate_graph` on the graph a bundle carries.

Two graph passes run at import (issue #12): shape arithmetic on constants (SHAPE, STRIDED_SLICE,
PACK, GATHER, CAST, integer CONCATENATION / RESHAPE / ADD / MUL, ...: :data:`FOLDABLE_OPS`) is
folded into constant tensors (:func:`fold_constants`), so a Keras export whose RESHAPE takes its
shape from SHAPE -> STRIDED_SLICE -> PACK imports; then the layout pass (:mod:`sw.layout`, skipped
with ``layout=False``) removes the TRANSPOSEs of PyTorch-style NCHW exports. Both keep every graph
output equal to the model's, element for element.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path

import numpy as np

from hw.errors import UserError
from models.graph import SPEC_OPS, Graph, Op, Quant, Tensor

__all__ = ["load_tflite", "read_model_bytes", "validate_graph", "fold_constants", "FOLDABLE_OPS"]

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
    """The bytes of a model given by path or bytes; UserError if missing, unreadable or not a
    regular file (a FIFO or device is refused before it is opened: nothing blocks)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    from sw.fileio import read_input

    return read_input(source, "model file", hint="give a .tflite model file")


def load_tflite(source: str | Path | bytes, name: str | None = None, *,
                layout: bool = True) -> Graph:
    """Import a TFLite int8 model (see module docstring for the contract). Shape arithmetic on
    constants is folded (:func:`fold_constants`); with ``layout`` (default) the layout pass
    (:func:`sw.layout.optimize_layout`) then removes the TRANSPOSEs a choice of stored layouts
    makes no-ops (same graph outputs, element for element)."""
    data = read_model_bytes(source)
    label = name or (
        Path(source).name if not isinstance(source, (bytes, bytearray, memoryview)) else "model"
    )
    if not data:
        raise UserError(f"{label} is empty (0 bytes); give a .tflite model file or a bundle")
    if data[:8] == b"LDBUNDLE":
        raise UserError(f"{label} is a logicdie bundle, not a TFLite model; give the .tflite "
                        "file (bundles are run with `logicdie run --model BUNDLE`)")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(
            f"{label} is not a TFLite flatbuffer (no 'TFL3' identifier); give a .tflite model file"
        )
    fb = _schema()
    try:
        with _bounded_vectors(len(data)):
            model = _unpack(fb, data)
    except UserError:
        raise
    except Exception:
        raise UserError(
            f"{label} is a truncated or corrupt TFLite flatbuffer; re-export the model"
        ) from None
    try:
        graph = _convert(model, data, label, fb)
    except UserError:
        raise
    except (IndexError, ValueError, TypeError, AttributeError, OverflowError, KeyError) as e:
        raise UserError(
            f"{label} is a corrupt TFLite model ({type(e).__name__}: {e}); re-export the model"
        ) from None
    validate_graph(graph, label)
    if layout:
        from sw.layout import optimize_layout

        opt = optimize_layout(graph)
        if opt is not graph:
            validate_graph(opt, label)
        graph = opt
    return graph


class _Corrupt(Exception):
    pass


@contextlib.contextmanager
def _bounded_vectors(nbytes: int):
    """While unpacking with the schema's object API, refuse any vector that does not fit in the
    buffer and cap the total of vector elements at a few times the file size: a corrupt length
    field (up to 2**32) then fails at once instead of looping for hours (flatbuffers' Python
    reader does not verify). Single-threaded use only (it patches the reader for the duration)."""
    import flatbuffers.table as fbt

    orig = fbt.Table.VectorLen
    budget = [4 * nbytes + 4096]

    def vector_len(self, off):
        n = orig(self, off)
        if n < 0 or self.Vector(off) + n > len(self.Bytes):
            raise _Corrupt("vector beyond the end of the buffer")
        budget[0] -= n
        if budget[0] < 0:
            raise _Corrupt("vectors longer than the file")
        return n

    fbt.Table.VectorLen = vector_len
    try:
        yield
    finally:
        fbt.Table.VectorLen = orig


def _unpack(fb, data: bytes):
    """What the importer reads: operator codes, buffers and the first subgraph (object API),
    leaving other subgraphs, metadata and signatures unread."""
    m = fb.Model.GetRootAsModel(data, 0)

    class _M:
        pass

    model = _M()
    model.subgraphs = (
        [fb.SubGraphT.InitFromObj(m.Subgraphs(0))] if m.SubgraphsLength() > 0 else []
    )
    model.operatorCodes = [
        fb.OperatorCodeT.InitFromObj(m.OperatorCodes(i)) for i in range(m.OperatorCodesLength())
    ]
    model.buffers = [fb.BufferT.InitFromObj(m.Buffers(i)) for i in range(m.BuffersLength())]
    return model


def _tname(t) -> str:
    n = t.name
    return n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n or "")


def _convert(model, data: bytes, label: str, fb) -> Graph:
    """Schema objects -> Graph, validating every field as it is read (indices, types, buffers,
    quantization); :func:`validate_graph` then checks what needs the whole graph."""
    if not model.subgraphs:
        raise UserError(f"{label} has no subgraph; re-export the model")
    op_names = _enum_names(fb.BuiltinOperator)
    type_names = _enum_names(fb.TensorType)
    opt_names = _enum_names(fb.BuiltinOptions)
    sg = model.subgraphs[0]
    buffers = model.buffers or []

    tensors: list[Tensor] = []
    for i, t in enumerate(sg.tensors or []):
        tn = _tname(t)
        what = f"{label}: tensor {i} '{tn}'"
        tname = type_names.get(t.type, str(t.type))
        if tname not in _DTYPES:
            raise UserError(f"{what} has unsupported type {tname}")
        dtype = _DTYPES[tname]
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if any(d < 0 for d in shape):
            raise UserError(f"{what} has a dynamic shape {shape}; logicdie needs static shapes")
        if t.sparsity is not None:
            raise UserError(f"{what} is sparse; logicdie reads dense tensors only")
        quant = None
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 0:
            scale = np.asarray(q.scale, dtype=np.float32)
            zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [], dtype=np.int64)
            if zp.size != scale.size:  # (TFLM reads a missing zero point out of bounds)
                raise UserError(f"{what} has {scale.size} quantization scales but {zp.size} "
                                "zero points (corrupt model)")
            quant = Quant(scale=scale, zero_point=zp, axis=int(q.quantizedDimension))
        elif q is not None and q.zeroPoint is not None and len(q.zeroPoint):
            raise UserError(f"{what} has quantization zero points but no scale (corrupt model)")
        const = None
        b = int(t.buffer)
        if b < 0 or b >= max(len(buffers), 1):
            raise UserError(f"{what} refers to buffer {b}, but the model has {len(buffers)} "
                            "(corrupt model)")
        if b > 0:
            buf = buffers[b]
            raw = None
            if buf.data is not None and len(buf.data):
                raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
            elif getattr(buf, "offset", 0) and buf.offset > 1:
                if buf.offset + buf.size > len(data):
                    raise UserError(f"{what}: buffer {b} lies beyond the end of the file "
                                    "(truncated model)")
                raw = data[buf.offset : buf.offset + buf.size]
            if raw is not None:
                want = math.prod(shape) * np.dtype(dtype).itemsize
                if len(raw) != want:
                    raise UserError(
                        f"{what}: buffer has {len(raw)} bytes, expected {want} for its shape "
                        f"{shape} {dtype} (corrupt model)"
                    )
                const = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        tensors.append(Tensor(index=i, name=tn, shape=shape, dtype=dtype, quant=quant,
                              data=const))

    ops: list[Op] = []
    codes = model.operatorCodes or []
    n = len(tensors)
    for k, o in enumerate(sg.operators or []):
        if not 0 <= o.opcodeIndex < len(codes):
            raise UserError(f"{label}: operator {k} has opcode index {o.opcodeIndex}, but the "
                            f"model has {len(codes)} operator codes (corrupt model)")
        oc = codes[o.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        kind = op_names.get(code, f"BUILTIN_{code}")
        if kind == "CUSTOM":
            cname = oc.customCode.decode("utf-8", "replace") if isinstance(
                oc.customCode, bytes) else oc.customCode
            raise UserError(
                f"{label}: unsupported op CUSTOM ({cname}) at operator {k}; "
                f"logicdie supports {', '.join(SPEC_OPS)}"
            )
        if kind not in SPEC_OPS and kind not in FOLDABLE_OPS:
            raise UserError(
                f"{label}: unsupported op {kind} at operator {k}; "
                f"logicdie supports {', '.join(SPEC_OPS)}"
            )
        inputs = [int(i) for i in (o.inputs if o.inputs is not None else [])]
        outputs = [int(i) for i in (o.outputs if o.outputs is not None else [])]
        for role, idxs in (("input", inputs), ("output", outputs)):
            for i in idxs:
                if i >= n or i < -1 or (i == -1 and role == "output"):
                    raise UserError(
                        f"{label}: operator {k} ({kind}) {role} refers to tensor {i}, which does "
                        f"not exist (the model has {n} tensors; corrupt model)"
                    )
        otype = opt_names.get(int(o.builtinOptionsType), str(o.builtinOptionsType))
        want = _OPTION_TYPES.get(kind)
        if otype != "NONE" and otype != want:
            raise UserError(f"{label}: operator {k} ({kind}) carries {otype}, not "
                            f"{want or 'no options'} (corrupt model)")
        if otype == "NONE" and kind in _OPTIONS_REQUIRED:
            raise UserError(f"{label}: operator {k} ({kind}) has no {want} (corrupt model)")
        options = _options(o.builtinOptions) if otype != "NONE" else {}
        act = options.get("activation", "NONE")
        if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            raise UserError(
                f"{label}: operator {k} ({kind}) has fused activation {act}; "
                "supported: NONE, RELU, RELU6"
            )
        pad = options.get("padding", "VALID")
        if pad not in ("SAME", "VALID"):
            raise UserError(f"{label}: operator {k} ({kind}) has padding {pad}; "
                            "expected SAME or VALID (corrupt model)")
        ops.append(Op(index=k, kind=kind, inputs=inputs, outputs=outputs, options=options))

    for role, idxs in (("input", sg.inputs), ("output", sg.outputs)):
        for i in (idxs if idxs is not None else []):
            if not 0 <= int(i) < n:
                raise UserError(f"{label}: graph {role} refers to tensor {int(i)}, which does "
                                f"not exist (the model has {n} tensors; corrupt model)")
    ops = fold_constants(tensors, ops, label)
    return Graph(
        name=label,
        tensors=tensors,
        ops=ops,
        inputs=[int(i) for i in (sg.inputs if sg.inputs is not None else [])],
        outputs=[int(i) for i in (sg.outputs if sg.outputs is not None else [])],
    )


# ------------------------------------------------------------------------------ constant folding
#: Shape-arithmetic ops the importer evaluates when their inputs are constants (SHAPE: when its
#: input's shape is static, i.e. always); they never reach the graph.
FOLDABLE_OPS = ("SHAPE", "STRIDED_SLICE", "SLICE", "PACK", "GATHER", "CAST", "EXPAND_DIMS", "SUB",
                "FLOOR_DIV", "REDUCE_PROD")
#: SPEC ops folded too when every input is a constant and the output is an integer (shape) tensor.
_FOLD_SPEC = ("CONCATENATION", "RESHAPE", "SQUEEZE", "ADD", "MUL")
_INT_DTYPES = ("int32", "int64")


def fold_constants(tensors: list[Tensor], ops: list[Op], label: str) -> list[Op]:
    """Evaluate shape arithmetic at import: every op of :data:`FOLDABLE_OPS` (and integer
    CONCATENATION / RESHAPE / SQUEEZE / ADD / MUL) whose inputs are constants, or SHAPE of any
    tensor (shapes are static), becomes constant data on its output tensor and is removed; the
    remaining ops are renumbered in order. A foldable op that is not on constants is an unsupported
    op (UserError naming it). Keras exports compute a RESHAPE's shape as SHAPE -> STRIDED_SLICE ->
    PACK: after folding, the RESHAPE reads a constant shape."""
    keep: list[Op] = []
    for op in ops:
        if op.kind in FOLDABLE_OPS or op.kind in _FOLD_SPEC:
            ins = [tensors[i] for i in op.inputs if i >= 0]
            outs = [tensors[i] for i in op.outputs]
            const = all(t.data is not None for t in ins) or (op.kind == "SHAPE" and ins)
            spec_int = op.kind not in _FOLD_SPEC or all(t.dtype in _INT_DTYPES for t in outs)
            if const and spec_int and len(outs) == 1 and outs[0].data is None:
                where = f"{label}: operator {op.index} ({op.kind})"
                try:
                    val = _fold(op, ins, outs[0])
                except (ValueError, IndexError, TypeError, KeyError) as e:
                    raise UserError(f"{where}: cannot evaluate it on its constant inputs ({e}); "
                                    "re-export the model") from None
                y = outs[0]
                val = np.asarray(val)
                if y.shape and math.prod(y.shape) == val.size:
                    val = val.reshape(y.shape)
                elif tuple(val.shape) != tuple(y.shape):
                    raise UserError(f"{where}: computes shape {val.shape}, its output tensor "
                                    f"{_tn(y)} is {y.shape} (corrupt model)")
                y.data = val.astype(y.dtype)
                continue
            if op.kind in FOLDABLE_OPS:
                raise UserError(f"{label}: unsupported op {op.kind} at operator {op.index} on "
                                "computed tensors (logicdie folds it only on constants); "
                                f"logicdie supports {', '.join(SPEC_OPS)}")
        keep.append(op)
    for k, op in enumerate(keep):
        op.index = k
    return keep


def _fold(op: Op, ins: list[Tensor], y: Tensor) -> np.ndarray:
    """The value of a foldable op on constant inputs (NumPy, integer semantics of TFLite)."""
    k, o = op.kind, op.options
    d = [t.data for t in ins]
    if k == "SHAPE":
        return np.asarray(ins[0].shape, dtype=y.dtype)
    if k == "STRIDED_SLICE":
        x, begin, end = d[0], d[1].reshape(-1), d[2].reshape(-1)
        strides = d[3].reshape(-1) if len(d) > 3 else np.ones_like(begin)
        if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0):
            raise ValueError("ellipsis and new-axis masks are not folded")
        sl: list = []
        for i in range(x.ndim):
            if i >= begin.size:
                sl.append(slice(None))
                continue
            b, e, st = int(begin[i]), int(end[i]), int(strides[i])
            if o.get("offset", False):
                e = b + e
            if o.get("shrink_axis_mask", 0) >> i & 1:
                sl.append(b % x.shape[i])
                continue
            sl.append(slice(None if o.get("begin_mask", 0) >> i & 1 else b,
                            None if o.get("end_mask", 0) >> i & 1 else e, st))
        return x[tuple(sl)]
    if k == "SLICE":
        x, begin, size = d[0], d[1].reshape(-1), d[2].reshape(-1)
        return x[tuple(slice(int(b), None if int(s) < 0 else int(b) + int(s))
                       for b, s in zip(begin, size, strict=True))]
    if k == "PACK":
        return np.stack(d, axis=int(o.get("axis", 0)))
    if k == "CONCATENATION":
        return np.concatenate(d, axis=int(o.get("axis", 0)))
    if k == "GATHER":
        if int(o.get("batch_dims", 0)):
            raise ValueError("batch_dims is not folded")
        return np.take(d[0], d[1].astype(np.int64), axis=int(o.get("axis", 0)))
    if k in ("CAST", "RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
        return d[0].reshape(y.shape) if k != "CAST" else d[0]
    if k == "REDUCE_PROD":
        axes = tuple(int(a) % d[0].ndim for a in d[1].reshape(-1))
        return np.prod(d[0].astype(np.int64), axis=axes, keepdims=bool(o.get("keep_dims")))
    a, b = (v.astype(np.int64) for v in d[:2])
    if k == "ADD":
        return a + b
    if k == "SUB":
        return a - b
    if k == "MUL":
        return a * b
    if k == "FLOOR_DIV":
        return np.floor_divide(a, b)
    raise ValueError(f"{k} is not foldable")


#: The options table each op may carry (schema BuiltinOptions names).
_OPTION_TYPES = {
    "SHAPE": "ShapeOptions", "STRIDED_SLICE": "StridedSliceOptions", "SLICE": "SliceOptions",
    "PACK": "PackOptions", "GATHER": "GatherOptions", "CAST": "CastOptions",
    "EXPAND_DIMS": "ExpandDimsOptions", "SUB": "SubOptions", "FLOOR_DIV": "FloorDivOptions",
    "REDUCE_PROD": "ReducerOptions",
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions", "ADD": "AddOptions", "MUL": "MulOptions",
    "PAD": "PadOptions", "MEAN": "ReducerOptions", "RESHAPE": "ReshapeOptions",
    "SQUEEZE": "SqueezeOptions", "SOFTMAX": "SoftmaxOptions", "TRANSPOSE": "TransposeOptions",
    "CONCATENATION": "ConcatenationOptions",
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "LEAKY_RELU": "LeakyReluOptions", "HARD_SWISH": "HardSwishOptions",
    "QUANTIZE": "QuantizeOptions", "DEQUANTIZE": "DequantizeOptions",
}
#: Ops whose options have no default: geometry, or values TFLM reads as 0 when the table is
#: absent (a SOFTMAX without options has beta 0 there and aborts the interpreter).
_OPTIONS_REQUIRED = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                     "FULLY_CONNECTED", "SOFTMAX", "CONCATENATION", "LEAKY_RELU")


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


# ------------------------------------------------------------------------------ graph validation
#: Largest tensor accepted (elements): twice the largest preset's SRAM, small enough for the
#: golden model's NumPy temporaries.
MAX_ELEMENTS = 1 << 24
#: Largest kernel, stride or dilation accepted in an option.
MAX_WINDOW = 1 << 12
_INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def validate_graph(graph: Graph, label: str | None = None) -> None:
    """Check a graph against the meaning of the schema and what logicdie runs; UserError (one
    line naming the tensor or operator) for the first violation.

    Checked: at least one op, input and output; tensor shapes (rank at most 6, as TFLM's kernels; no
    zero-size dimension, at most :data:`MAX_ELEMENTS` elements); quantization (finite scales > 0,
    zero points in the type's range, per-channel scale counts equal to the quantized dimension);
    execution order (every op reads only graph inputs, constants and outputs of earlier ops: a cycle
    is refused); one writer per tensor; per op the input count, dtypes (int8 activations, int8
    constant symmetric weights, int32 bias), options (strides, filters, dilations >= 1) and the
    output shape the op computes from its inputs. Requantizing ops need effective multipliers within
    [2^-32, 2^16] and int8 activations scales within [2^-26, 2^16] (outside, TFLM's fixed-point
    arithmetic overflows)."""
    label = label or graph.name
    _check_quantized(graph, label)
    ts = graph.tensors
    if not graph.ops:
        raise UserError(f"{label}: the model has no operators; re-export the model")
    if not graph.inputs or not graph.outputs:
        raise UserError(f"{label}: the model declares no graph "
                        f"{'inputs' if not graph.inputs else 'outputs'} (corrupt model)")
    for role, idxs in (("input", graph.inputs), ("output", graph.outputs)):
        if len(set(idxs)) != len(idxs):
            raise UserError(f"{label}: a graph {role} is listed twice (corrupt model)")
        for i in idxs:
            if not 0 <= i < len(ts):
                raise UserError(f"{label}: graph {role} refers to tensor {i}, which does not "
                                "exist (corrupt model)")
    for t in ts:
        _check_tensor(t, label)
    for i in graph.inputs:
        t = ts[i]
        if t.data is not None:
            raise UserError(f"{label}: graph input {_tn(t)} is a constant (corrupt model)")
        if t.dtype not in ("int8", "float32"):
            raise UserError(f"{label}: graph input {_tn(t)} is {t.dtype}; logicdie runs int8 "
                            "inputs (or float32 followed by QUANTIZE)")
    ready = set(graph.inputs) | {t.index for t in ts if t.data is not None}
    produced = {o for op in graph.ops for o in op.outputs}
    written: dict[int, int] = {}
    for op in graph.ops:
        where = f"{label}: operator {op.index} ({op.kind})"
        for i in op.inputs:
            if i >= 0 and i not in ready and i not in produced:
                raise UserError(
                    f"{where} reads tensor {_tn(ts[i])}, which is not a constant, a graph input "
                    "or any operator's output (missing data; corrupt model)")
            if i >= 0 and i not in ready:
                raise UserError(
                    f"{where} reads tensor {_tn(ts[i])} before any operator computes it (the "
                    "graph has a cycle, is out of order, or misses an input; corrupt model)")
        for i in op.outputs:
            t = ts[i]
            if t.data is not None or i in graph.inputs:
                kind = "constant" if t.data is not None else "graph input"
                raise UserError(f"{where} writes {kind} tensor {_tn(t)} (corrupt model)")
            if i in written:
                raise UserError(f"{where} writes tensor {_tn(t)}, already written by operator "
                                f"{written[i]} (corrupt model)")
            written[i] = op.index
        _check_op(graph, op, where)
        ready.update(op.outputs)
    for i in graph.outputs:
        if i not in written:
            raise UserError(f"{label}: graph output {_tn(ts[i])} is not computed by any operator "
                            "(corrupt model)")


def _tn(t: Tensor) -> str:
    return f"{t.index} '{t.name}'"


def _check_tensor(t: Tensor, label: str) -> None:
    what = f"{label}: tensor {_tn(t)}"
    if len(t.shape) > 6:
        raise UserError(f"{what} has {len(t.shape)} dimensions {t.shape}; TFLite kernels take "
                        "up to 6 (the NPU compiler up to 4)")
    if 0 in t.shape:
        raise UserError(f"{what} has a zero-size shape {t.shape}")
    if math.prod(t.shape) > MAX_ELEMENTS:
        raise UserError(f"{what} has {math.prod(t.shape):,} elements, more than the SRAM of any "
                        "preset holds; use a smaller model")
    q = t.quant
    if q is None:
        return
    if not np.all(np.isfinite(q.scale)) or np.any(q.scale <= 0):
        bad = next(float(v) for v in q.scale if not (np.isfinite(v) and v > 0))
        raise UserError(f"{what} has quantization scale {bad:g}; scales must be finite and "
                        "above 0 (corrupt model)")
    if np.any(q.scale < 1e-30) or np.any(q.scale > 1e30):
        raise UserError(f"{what} has a quantization scale outside 1e-30..1e30 "
                        f"({float(q.scale.min()):g}..{float(q.scale.max()):g})")
    lo, hi = _INT_RANGE.get(t.dtype, (-(1 << 31), (1 << 31) - 1))
    if np.any(q.zero_point < lo) or np.any(q.zero_point > hi):
        raise UserError(f"{what} has zero point {int(q.zero_point.flat[0])} outside the "
                        f"{t.dtype} range {lo}..{hi}")
    # (biases carry their filter's per-channel scales with the filter's axis: the axis is only
    # checked where it is used, on weights, in _check_op)
    if q.scale.size > 1 and 0 <= q.axis < len(t.shape) and t.data is not None and t.dtype == "int8":
        if q.scale.size != t.shape[q.axis]:
            raise UserError(f"{what} has {q.scale.size} per-channel scales for "
                            f"{t.shape[q.axis]} channels (dimension {q.axis} of {t.shape})")


# op -> (min inputs, max inputs)
_ARITY = {
    "CONV_2D": (2, 3), "DEPTHWISE_CONV_2D": (2, 3), "FULLY_CONNECTED": (2, 3),
    "AVERAGE_POOL_2D": (1, 1), "MAX_POOL_2D": (1, 1), "ADD": (2, 2), "MUL": (2, 2),
    "PAD": (2, 2), "MEAN": (2, 2), "RESHAPE": (1, 2), "SQUEEZE": (1, 1), "SOFTMAX": (1, 1),
    "LOGISTIC": (1, 1), "TRANSPOSE": (2, 2), "CONCATENATION": (1, 64),
    "RESIZE_NEAREST_NEIGHBOR": (2, 2), "RELU": (1, 1), "RELU6": (1, 1), "LEAKY_RELU": (1, 1),
    "HARD_SWISH": (1, 1), "QUANTIZE": (1, 1), "DEQUANTIZE": (1, 1),
}
_SAME_SHAPE = ("SOFTMAX", "LOGISTIC", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "QUANTIZE",
               "DEQUANTIZE")


def _check_op(g: Graph, op: Op, where: str) -> None:
    ts = g.tensors
    if op.kind not in SPEC_OPS:
        raise UserError(f"{where}: unsupported op; logicdie supports {', '.join(SPEC_OPS)}")
    act = op.options.get("activation", "NONE")
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise UserError(f"{where} has fused activation {act}; supported: NONE, RELU, RELU6")
    if op.options.get("padding", "VALID") not in ("SAME", "VALID"):
        raise UserError(f"{where} has padding {op.options.get('padding')}; expected SAME or "
                        "VALID (corrupt model)")
    lo, hi = _ARITY[op.kind]
    if not lo <= len(op.inputs) <= hi:
        want = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise UserError(f"{where} has {len(op.inputs)} inputs; it takes {want}")
    if len(op.outputs) != 1:
        raise UserError(f"{where} has {len(op.outputs)} outputs; it has 1")
    for k, i in enumerate(op.inputs):
        optional = k == 2 and op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        if i < 0 and not optional:
            raise UserError(f"{where}: input {k} is missing")
    x = ts[op.inputs[0]]
    y = ts[op.outputs[0]]
    opts = op.options

    def int8_act(t: Tensor, role: str, const_ok: bool = False) -> None:
        if t.dtype != "int8":
            raise UserError(f"{where}: {role} tensor {_tn(t)} is {t.dtype}; logicdie runs int8 "
                            "activations")
        if t.quant is None:
            raise UserError(f"{where}: {role} tensor {_tn(t)} has no quantization; give a "
                            "quantized int8 model")
        if t.quant.scale.size != 1:
            raise UserError(f"{where}: {role} tensor {_tn(t)} is quantized per channel; "
                            "activations take one scale")
        if t.data is not None and not const_ok:
            raise UserError(f"{where}: {role} tensor {_tn(t)} is a constant; logicdie expects "
                            "a computed tensor here")
        sc = float(t.quant.scale[0])
        if not 2.0**-26 <= sc <= 2.0**16:
            raise UserError(f"{where}: {role} tensor {_tn(t)} has scale {sc:g}, outside the "
                            "2^-26..2^16 TFLite's int8 arithmetic handles")

    def multiplier(v: float, what: str) -> None:
        if not 2.0**-32 <= abs(v) <= 2.0**16:
            raise UserError(f"{where}: {what} {v:g} is outside 2^-32..2^16 (the scales of "
                            "its tensors are inconsistent)")

    def s_of(t: Tensor) -> float:
        return float(t.quant.scale[0])

    def const(k: int, what: str, dtypes=("int32",)) -> np.ndarray:
        t = ts[op.inputs[k]]
        if t.data is None:
            raise UserError(f"{where}: {what} tensor {_tn(t)} is not constant; logicdie needs "
                            f"constant {what}")
        if t.dtype not in dtypes:
            raise UserError(f"{where}: {what} tensor {_tn(t)} is {t.dtype}; expected "
                            f"{' or '.join(dtypes)}")
        return np.asarray(t.data).astype(np.int64).reshape(-1)

    def pos_opt(key: str, default: int | None = None) -> int:
        v = opts.get(key, default)
        if v is None or not isinstance(v, (int, np.integer)) or not 1 <= int(v) <= MAX_WINDOW:
            raise UserError(f"{where}: option {key} is {v}; it must be 1..{MAX_WINDOW}")
        return int(v)

    def want_shape(shape) -> None:
        shape = tuple(int(d) for d in shape)
        if tuple(y.shape) != shape:
            raise UserError(f"{where}: output tensor {_tn(y)} has shape {y.shape}, but the op "
                            f"computes {shape} from its inputs")

    k = op.kind
    if k in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        int8_act(x, "input")
        int8_act(y, "output")
        w = ts[op.inputs[1]]
        if w.data is None:
            raise UserError(f"{where}: weights tensor {_tn(w)} is not constant; logicdie needs "
                            "constant weights")
        if w.dtype != "int8" or w.quant is None:
            raise UserError(f"{where}: weights tensor {_tn(w)} is {w.dtype}"
                            f"{'' if w.quant else ' without quantization'}; expected quantized "
                            "int8")
        if np.any(w.quant.zero_point != 0):
            raise UserError(f"{where}: weights tensor {_tn(w)} has a non-zero zero point; int8 "
                            "weights are symmetric")
        if k == "FULLY_CONNECTED":
            if len(w.shape) != 2:
                raise UserError(f"{where}: weights tensor {_tn(w)} has shape {w.shape}; expected "
                                "[units, depth]")
            units, depth = w.shape
            if math.prod(x.shape) % depth:
                raise UserError(f"{where}: input tensor {_tn(x)} of shape {x.shape} is not a "
                                f"whole number of rows of depth {depth} (weights {w.shape})")
            rows = math.prod(x.shape) // depth
            if y.shape[-1] != units or math.prod(y.shape) != rows * units:
                raise UserError(f"{where}: output tensor {_tn(y)} has shape {y.shape}, but the op "
                                f"computes {rows} rows of {units} units")
            cout, axis = units, 0
        else:
            if len(x.shape) != 4 or len(w.shape) != 4:
                bad = x if len(x.shape) != 4 else w
                raise UserError(f"{where}: {'input' if bad is x else 'weights'} tensor "
                                f"{_tn(bad)} has shape {bad.shape}; it must be 4-D")
            fh, fw = w.shape[1], w.shape[2]
            cin = x.shape[3]
            if k == "CONV_2D":
                cout, axis = w.shape[0], 0
                if w.shape[3] != cin:
                    raise UserError(f"{where}: weights tensor {_tn(w)} has {w.shape[3]} input "
                                    f"channels, the input {_tn(x)} has {cin}")
            else:
                cout, axis = w.shape[3], 3
                if w.shape[0] != 1:
                    raise UserError(f"{where}: depthwise weights {_tn(w)} must be [1, H, W, C], "
                                    f"got {w.shape}")
                dm = pos_opt("depth_multiplier")  # TFLM's kernel indexes with it
                if cout != cin * dm:
                    raise UserError(f"{where}: weights tensor {_tn(w)} has {cout} channels, not "
                                    f"the input's {cin} times the depth multiplier {dm}")
            sh, sw = pos_opt("stride_h"), pos_opt("stride_w")
            dh, dw = pos_opt("dilation_h", 1), pos_opt("dilation_w", 1)
            oh = _out_size(opts.get("padding", "VALID"), x.shape[1], fh, sh, dh)
            ow = _out_size(opts.get("padding", "VALID"), x.shape[2], fw, sw, dw)
            if oh < 1 or ow < 1:
                raise UserError(f"{where}: a {fh}x{fw} filter does not fit the {x.shape[1]}x"
                                f"{x.shape[2]} input with VALID padding")
            want_shape((x.shape[0], oh, ow, cout))
        q = w.quant
        for c, ws in enumerate(np.asarray(q.scale, np.float64)):
            multiplier(s_of(x) * ws / s_of(y), f"requantization multiplier (channel {c})")
        if q.scale.size not in (1, cout) or (q.scale.size > 1 and q.axis != axis):
            raise UserError(f"{where}: weights tensor {_tn(w)} has {q.scale.size} scales along "
                            f"dimension {q.axis}; expected 1 or {cout} along dimension {axis}")
        if k == "DEPTHWISE_CONV_2D" and (len(op.inputs) < 3 or op.inputs[2] < 0):
            raise UserError(f"{where} has no bias (TFLM's reference kernel crashes without one); "
                            "give it a zero bias")
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = ts[op.inputs[2]]
            if b.data is None or b.dtype != "int32" or b.shape != (cout,):
                raise UserError(f"{where}: bias tensor {_tn(b)} must be a constant int32 "
                                f"[{cout}], got {'' if b.data is not None else 'non-constant '}"
                                f"{b.dtype} {list(b.shape)}")
    elif k in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        int8_act(x, "input")
        int8_act(y, "output")
        if len(x.shape) != 4:
            raise UserError(f"{where}: input tensor {_tn(x)} must be 4-D, got {x.shape}")
        fh, fw = pos_opt("filter_height"), pos_opt("filter_width")
        sh, sw = pos_opt("stride_h"), pos_opt("stride_w")
        oh = _out_size(opts.get("padding", "VALID"), x.shape[1], fh, sh)
        ow = _out_size(opts.get("padding", "VALID"), x.shape[2], fw, sw)
        if oh < 1 or ow < 1:
            raise UserError(f"{where}: a {fh}x{fw} window does not fit the {x.shape[1]}x"
                            f"{x.shape[2]} input with VALID padding")
        want_shape((x.shape[0], oh, ow, x.shape[3]))
    elif k in ("ADD", "MUL"):
        a, b = x, ts[op.inputs[1]]
        int8_act(a, "input 0", const_ok=True)
        int8_act(b, "input 1", const_ok=True)
        int8_act(y, "output")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise UserError(f"{where}: input shapes {a.shape} and {b.shape} do not broadcast") \
                from None
        want_shape(shape)
        if k == "MUL":
            multiplier(s_of(a) * s_of(b) / s_of(y), "output multiplier")
        else:
            multiplier(2 * max(s_of(a), s_of(b)) / (2**20 * s_of(y)), "output multiplier")
    elif k in _SAME_SHAPE:
        if k == "QUANTIZE":
            if x.dtype not in ("float32", "int8") or y.dtype != "int8":
                raise UserError(f"{where}: QUANTIZE from {x.dtype} to {y.dtype}; logicdie runs "
                                "float32 -> int8 and int8 -> int8")
            if x.dtype == "int8":
                int8_act(x, "input")
            int8_act(y, "output")
        elif k == "DEQUANTIZE":
            int8_act(x, "input")
            if y.dtype != "float32":
                raise UserError(f"{where}: DEQUANTIZE to {y.dtype}; logicdie runs int8 -> "
                                "float32")
        else:
            int8_act(x, "input")
            int8_act(y, "output")
        if k == "SOFTMAX":
            beta = opts.get("beta", 1.0)
            if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
                raise UserError(f"{where}: softmax beta {beta} must be finite and above 0")
        if k == "LOGISTIC" and x.quant.scale[0] >= 16:
            raise UserError(f"{where}: input tensor {_tn(x)} has scale {x.quant.scale[0]:g}; "
                            "TFLite's fixed-point logistic needs an input scale below 16")
        if k == "LEAKY_RELU":
            alpha = opts.get("alpha", 0.0)
            if not (isinstance(alpha, (int, float)) and math.isfinite(alpha)):
                raise UserError(f"{where}: leaky ReLU alpha {alpha} must be finite")
            if alpha:
                multiplier(alpha * s_of(x) / s_of(y), "alpha multiplier")
        if k in ("RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH") or (
                k == "QUANTIZE" and x.dtype == "int8"):
            multiplier(s_of(x) / s_of(y), "output multiplier")
        if len(x.shape) == 0:
            raise UserError(f"{where}: input tensor {_tn(x)} is 0-D")
        want_shape(x.shape)
    elif k == "PAD":
        int8_act(x, "input")
        int8_act(y, "output")
        pads = const(1, "paddings")
        if pads.size != 2 * len(x.shape) or np.any(pads < 0) or np.any(pads > MAX_WINDOW):
            raise UserError(f"{where}: paddings {pads.tolist()} must be {len(x.shape)} pairs of "
                            f"0..{MAX_WINDOW}")
        p = pads.reshape(-1, 2)
        want_shape(tuple(d + int(a) + int(b) for d, (a, b) in zip(x.shape, p, strict=True)))
    elif k == "MEAN":
        int8_act(x, "input")
        int8_act(y, "output")
        axes = const(1, "axes")
        r = len(x.shape)
        if axes.size == 0 or np.any(axes < -r) or np.any(axes >= r):
            raise UserError(f"{where}: axes {axes.tolist()} out of range for a {r}-D input")
        red = {int(a) % r for a in axes}
        if opts.get("keep_dims", False):
            shape = tuple(1 if d in red else x.shape[d] for d in range(r))
        else:
            shape = tuple(x.shape[d] for d in range(r) if d not in red)
        multiplier(s_of(x) / s_of(y), "output multiplier")
        if math.prod(shape) != math.prod(y.shape) or (opts.get("keep_dims") and
                                                      tuple(y.shape) != shape):
            want_shape(shape)
    elif k in ("RESHAPE", "SQUEEZE"):
        int8_act(x, "input")
        int8_act(y, "output")
        if math.prod(x.shape) != math.prod(y.shape):
            raise UserError(f"{where}: input {x.shape} and output {y.shape} hold different "
                            "numbers of elements")
    elif k == "TRANSPOSE":
        int8_act(x, "input")
        int8_act(y, "output")
        perm = const(1, "permutation")
        if sorted(perm.tolist()) != list(range(len(x.shape))):
            raise UserError(f"{where}: permutation {perm.tolist()} is not a permutation of the "
                            f"{len(x.shape)} dimensions")
        want_shape(tuple(x.shape[int(p)] for p in perm))
    elif k == "CONCATENATION":
        int8_act(y, "output")
        r = len(y.shape)
        axis = opts.get("axis", 0)
        if not isinstance(axis, (int, np.integer)) or not -r <= int(axis) < r:
            raise UserError(f"{where}: axis {axis} out of range for {r}-D tensors")
        axis = int(axis) % r
        total = 0
        for n, i in enumerate(op.inputs):
            t = ts[i]
            int8_act(t, f"input {n}", const_ok=True)
            if len(t.shape) != r or any(t.shape[d] != y.shape[d] for d in range(r) if d != axis):
                raise UserError(f"{where}: input {_tn(t)} of shape {t.shape} does not concatenate "
                                f"into {y.shape} along axis {axis}")
            total += t.shape[axis]
        if total != y.shape[axis]:
            want_shape(tuple(total if d == axis else y.shape[d] for d in range(r)))
    elif k == "RESIZE_NEAREST_NEIGHBOR":
        int8_act(x, "input")
        int8_act(y, "output")
        size = const(1, "size")
        if len(x.shape) != 4 or size.size != 2 or np.any(size < 1) or np.any(size > 1 << 16):
            raise UserError(f"{where}: needs a 4-D input and a size of two positive values, got "
                            f"{x.shape} and {size.tolist()}")
        want_shape((x.shape[0], int(size[0]), int(size[1]), x.shape[3]))


def _out_size(padding: str, size: int, filt: int, stride: int, dilation: int = 1) -> int:
    """TFLite ComputeOutSize."""
    eff = (filt - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - eff + stride) // stride
