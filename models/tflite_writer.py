"""A small TFLite flatbuffer writer for tests and the generated model zoo.

Builds int8 TFLite models the way real converters lay them out (buffer 0 empty, one buffer per
constant, ``file_identifier`` ``TFL3``, schema version 3) with the schema's object API from
``tflite-micro``.

Contract:
- :class:`ModelBuilder` methods return :class:`T` handles; each op method computes its output shape
  and creates its output tensor with the quantization TFLite converters produce and TFLM accepts:
  * CONV_2D / DEPTHWISE_CONV_2D: int8 symmetric weights, per-channel (quantized_dimension 0 for
    conv, 3 for depthwise) or per-tensor; int32 bias, scale ``in_scale * w_scale[c]``, zero point 0.
  * FULLY_CONNECTED: int8 weights [out, in] (per-tensor by default), int32 bias as above.
  * AVERAGE_POOL_2D, MAX_POOL_2D, PAD, RESHAPE, SQUEEZE, TRANSPOSE, RESIZE_NEAREST_NEIGHBOR: output
    quantization equal to the input's.
  * CONCATENATION: every input and the output share one (scale, zero point); TFLM requires it.
  * SOFTMAX and LOGISTIC: output scale 1/256, zero point -128.
  * ADD, MUL, MEAN, RELU, RELU6, LEAKY_RELU, HARD_SWISH, QUANTIZE (int8->int8): free output
    quantization (defaults to the input's). Note TFLM's RELU6 ignores the output quantization.
  * QUANTIZE float32->int8, DEQUANTIZE int8->float32.
- :meth:`ModelBuilder.finish` returns the flatbuffer bytes.

What the pinned TFLM accepts (probed; the op methods raise ValueError instead of writing a model
TFLM would refuse — use :meth:`ModelBuilder.op` to write one deliberately):
  * AVERAGE_POOL_2D / MAX_POOL_2D: output scale and zero point equal to the input's.
  * CONCATENATION: int8 inputs and output share scale and zero point; fused activation NONE only.
  * SOFTMAX: output zero point -128 and scale 1/256. LOGISTIC: output zero point -128 (TFLM checks
    only that; converters use 1/256).
  * TRANSPOSE: rank <= 5. Perm, PAD paddings, MEAN axes, RESHAPE shape, RESIZE size: int32
    (TFLM rejects int64 paddings/axes and misreads an int64 perm as int32).
  * DEPTHWISE_CONV_2D without bias crashes TFLM (segfault): a zero bias is always written.
  * HARD_SWISH: (in_scale / 128) / out_scale < 1. ADD: 2 * max(s1, s2) / (2^20 * s_out) < 1
    (otherwise TFLM aborts the process).
  * RESHAPE, SQUEEZE, TRANSPOSE, RESIZE_NEAREST_NEIGHBOR, PAD, RELU6 do not requantize in TFLM:
    a different output quantization is accepted but ignored (PAD fills with the output zero
    point; RELU6 clamps the raw codes to [zp_in, q_in(6)]).
  * uint8 quantized models are rejected ("Hybrid models are not supported").
  * The default arena of ``tflite_micro`` (10x the model size) is too small for models whose
    activations dwarf their weights: pass ``arena_size``.

Example::

    b = ModelBuilder()
    x = b.input((1, 8, 8, 3), "int8", 0.05, -128)
    w = b.weights(np.random.default_rng(0).normal(size=(4, 3, 3, 3)), axis=0)
    y = b.conv2d(x, w, bias=np.zeros(4, np.int32), stride=2, padding="SAME", activation="RELU6",
                 out_scale=0.1, out_zp=-128)
    b.output(y)
    data = b.finish()
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

__all__ = ["ModelBuilder", "T", "quantize_symmetric", "conv_out_size", "TYPE_CODES"]

TYPE_CODES = {
    "float32": fb.TensorType.FLOAT32, "int32": fb.TensorType.INT32, "uint8": fb.TensorType.UINT8,
    "int64": fb.TensorType.INT64, "bool": fb.TensorType.BOOL, "int16": fb.TensorType.INT16,
    "int8": fb.TensorType.INT8,
}
_ACT = {"NONE": fb.ActivationFunctionType.NONE, "RELU": fb.ActivationFunctionType.RELU,
        "RELU_N1_TO_1": fb.ActivationFunctionType.RELU_N1_TO_1,
        "RELU6": fb.ActivationFunctionType.RELU6}
_PAD = {"SAME": fb.Padding.SAME, "VALID": fb.Padding.VALID}


@dataclass(frozen=True)
class T:
    """Handle on a tensor of the model under construction."""
    index: int
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...] | None = None
    zero_point: tuple[int, ...] | None = None
    axis: int = 0

    @property
    def qparams(self) -> tuple[float, int]:
        """(scale, zero_point) of a per-tensor quantized tensor."""
        assert self.scale is not None and len(self.scale) == 1, "per-tensor quantization expected"
        return self.scale[0], self.zero_point[0]


def conv_out_size(n: int, k: int, stride: int, padding: str, dilation: int = 1) -> int:
    """TFLite's output size of a windowed op along one axis."""
    if padding == "SAME":
        return (n + stride - 1) // stride
    eff = (k - 1) * dilation + 1
    return (n - eff + stride) // stride


def quantize_symmetric(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization of float weights, per channel along ``axis`` (per tensor if
    None), as TFLite's converter does it: scale = max|w| / 127, values in [-127, 127].
    Returns (q, scales)."""
    w = np.asarray(w, np.float64)
    if axis is None:
        amax = np.array([np.abs(w).max()])
        bshape = (1,) * w.ndim
    else:
        red = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w).max(axis=red) if red else np.abs(w)
        bshape = tuple(-1 if i == axis else 1 for i in range(w.ndim))
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale.astype(np.float64).reshape(bshape)), -127, 127).astype(np.int8)
    return q, scale


def _as_tuple(v) -> tuple:
    return tuple(np.atleast_1d(np.asarray(v)).tolist())


class ModelBuilder:
    """Fluent builder of a one-subgraph TFLite model (quantization rules: module docstring)."""

    def __init__(self, name: str = "logicdie_test", description: str = "logicdie tflite_writer"):
        self.name = name
        self.description = description
        self._tensors: list[fb.TensorT] = []
        self._handles: list[T] = []
        self._buffers: list[fb.BufferT] = [fb.BufferT()]  # buffer 0: the empty sentinel
        self._ops: list[fb.OperatorT] = []
        self._opcodes: list[fb.OperatorCodeT] = []
        self._opcode_index: dict[int, int] = {}
        self._inputs: list[int] = []
        self._outputs: list[int] = []

    # ---------------------------------------------------------------- tensors
    def tensor(self, shape, dtype: str = "int8", scale=None, zp=None, axis: int = 0,
               data: np.ndarray | None = None, name: str | None = None) -> T:
        """Add a tensor (constant when ``data`` is given); ``scale``/``zp`` scalars or 1-D."""
        shape = tuple(int(s) for s in shape)
        t = fb.TensorT()
        t.shape = np.array(shape, np.int32) if shape else []
        t.type = TYPE_CODES[dtype]
        t.name = name or f"t{len(self._tensors)}"
        t.buffer = 0
        sc = zpt = None
        if scale is not None:
            sc = tuple(float(np.float32(s)) for s in _as_tuple(scale))
            zpt = _as_tuple(0 if zp is None else zp)
            if len(zpt) == 1 and len(sc) > 1:
                zpt = zpt * len(sc)
            zpt = tuple(int(z) for z in zpt)
            q = fb.QuantizationParametersT()
            q.scale = list(sc)
            q.zeroPoint = list(zpt)
            q.quantizedDimension = int(axis)
            t.quantization = q
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data).astype(dtype, copy=False).reshape(shape))
            buf = fb.BufferT()
            buf.data = np.frombuffer(arr.tobytes(), np.uint8)
            self._buffers.append(buf)
            t.buffer = len(self._buffers) - 1
        self._tensors.append(t)
        h = T(len(self._tensors) - 1, shape, dtype, sc, zpt, int(axis))
        self._handles.append(h)
        return h

    def input(self, shape, dtype: str = "int8", scale=None, zp=None, name: str | None = None) -> T:
        """A graph input. int8 inputs need ``scale`` and ``zp``; float32 inputs have none."""
        if dtype != "float32" and scale is None:
            raise ValueError("quantized input needs a scale")
        h = self.tensor(shape, dtype, scale, zp, name=name or f"input{len(self._inputs)}")
        self._inputs.append(h.index)
        return h

    def output(self, *ts: T) -> None:
        for t in ts:
            self._outputs.append(t.index)

    def const(self, data, dtype: str | None = None, scale=None, zp=None, axis: int = 0,
              name: str | None = None) -> T:
        data = np.asarray(data)
        dtype = dtype or str(data.dtype)
        return self.tensor(data.shape, dtype, scale, zp, axis, data=data, name=name)

    def weights(self, w_float: np.ndarray, axis: int | None = 0, name: str | None = None) -> T:
        """Symmetric int8 weights from floats, per channel along ``axis`` (None: per tensor)."""
        q, s = quantize_symmetric(w_float, axis)
        return self.const(q, "int8", s, np.zeros(s.size, np.int64), axis=axis or 0, name=name)

    def _bias(self, bias, x: T, w: T, n_out: int) -> int:
        """Bias tensor index (-1 if None). ``bias``: int32 array (as is) or float (quantized)."""
        if bias is None:
            return -1
        if isinstance(bias, T):
            return bias.index
        wscale = np.asarray(w.scale, np.float64)
        bscale = (np.float64(x.scale[0]) * wscale).astype(np.float32)
        bscale_list = bscale
        b = np.asarray(bias)
        if b.dtype.kind == "f":
            b = np.clip(np.round(b / bscale.astype(np.float64)), -2**31, 2**31 - 1)
        b = b.astype(np.int32).reshape(n_out)
        return self.const(b, "int32", bscale_list, np.zeros(bscale_list.size, np.int64), 0).index

    # ---------------------------------------------------------------- ops
    def _opcode(self, name: str) -> int:
        code = getattr(fb.BuiltinOperator, name)
        if code not in self._opcode_index:
            oc = fb.OperatorCodeT()
            oc.builtinCode = code
            placeholder = fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
            oc.deprecatedBuiltinCode = min(code, placeholder)
            oc.version = 1
            self._opcodes.append(oc)
            self._opcode_index[code] = len(self._opcodes) - 1
        return self._opcode_index[code]

    def op(self, kind: str, inputs: Sequence, outputs: Sequence[T], options=None,
           options_type: str | None = None) -> None:
        """Append a raw operator. ``inputs`` holds handles or ints (-1: absent optional input)."""
        o = fb.OperatorT()
        o.opcodeIndex = self._opcode(kind)
        o.inputs = [i.index if isinstance(i, T) else int(i) for i in inputs]
        o.outputs = [t.index for t in outputs]
        if options is not None:
            # 'Conv2DOptionsT' -> 'Conv2DOptions'
            tname = options_type or type(options).__name__[:-1]
            o.builtinOptionsType = getattr(fb.BuiltinOptions, tname)
            o.builtinOptions = options
        self._ops.append(o)

    def _out(self, shape, like: T | None, scale, zp, dtype: str = "int8",
             name: str | None = None) -> T:
        if dtype == "float32":
            return self.tensor(shape, "float32", name=name)
        if scale is None:
            scale, zp = like.qparams
        return self.tensor(shape, dtype, scale, 0 if zp is None else zp, name=name)

    def conv2d(self, x: T, w: T, bias=None, stride=1, padding: str = "SAME",
               activation: str = "NONE", out_scale=None, out_zp=None, dilation=1) -> T:
        """CONV_2D: x NHWC int8, w OHWI int8 (quantized_dimension 0)."""
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
        n, h, wd, _ = x.shape
        co, kh, kw, _ = w.shape
        oh, ow = conv_out_size(h, kh, sh, padding, dh), conv_out_size(wd, kw, sw, padding, dw)
        bi = self._bias(bias, x, w, co)
        y = self._out((n, oh, ow, co), x, out_scale, out_zp)
        opt = fb.Conv2DOptionsT()
        opt.padding, opt.strideH, opt.strideW = _PAD[padding], sh, sw
        opt.dilationHFactor, opt.dilationWFactor = dh, dw
        opt.fusedActivationFunction = _ACT[activation]
        self.op("CONV_2D", [x, w, bi], [y], opt)
        return y

    def depthwise_conv2d(self, x: T, w: T, bias=None, stride=1, padding: str = "SAME",
                         activation: str = "NONE", out_scale=None, out_zp=None, dilation=1) -> T:
        """DEPTHWISE_CONV_2D: w is [1, KH, KW, C*mult] (quantized_dimension 3). ``bias=None`` writes
        a zero int32 bias: TFLM's int8 depthwise kernel crashes (segfault) without one, and
        converters always emit it."""
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
        n, h, wd, ci = x.shape
        _, kh, kw, co = w.shape
        if co % ci:
            raise ValueError("depthwise output channels must be a multiple of the input channels")
        oh, ow = conv_out_size(h, kh, sh, padding, dh), conv_out_size(wd, kw, sw, padding, dw)
        bi = self._bias(np.zeros(co, np.int32) if bias is None else bias, x, w, co)
        y = self._out((n, oh, ow, co), x, out_scale, out_zp)
        opt = fb.DepthwiseConv2DOptionsT()
        opt.padding, opt.strideH, opt.strideW = _PAD[padding], sh, sw
        opt.dilationHFactor, opt.dilationWFactor = dh, dw
        opt.depthMultiplier = co // ci
        opt.fusedActivationFunction = _ACT[activation]
        self.op("DEPTHWISE_CONV_2D", [x, w, bi], [y], opt)
        return y

    def depthwise_weights(self, w_float: np.ndarray, per_channel: bool = True) -> T:
        """Depthwise weights [1, KH, KW, C] from floats, per channel along axis 3."""
        return self.weights(w_float, axis=3 if per_channel else None)

    def fully_connected(self, x: T, w: T, bias=None, activation: str = "NONE", out_scale=None,
                        out_zp=None, keep_num_dims: bool = False) -> T:
        """FULLY_CONNECTED: w is [out, in]; x is flattened to [-1, in] unless keep_num_dims."""
        co, ci = w.shape
        total = math.prod(x.shape)
        if total % ci:
            raise ValueError("input size is not a multiple of the weights' input depth")
        shape = x.shape[:-1] + (co,) if keep_num_dims else (total // ci, co)
        bi = self._bias(bias, x, w, co)
        y = self._out(shape, x, out_scale, out_zp)
        opt = fb.FullyConnectedOptionsT()
        opt.fusedActivationFunction = _ACT[activation]
        opt.keepNumDims = keep_num_dims
        self.op("FULLY_CONNECTED", [x, w, bi], [y], opt)
        return y

    def _pool(self, kind, x, filter, stride, padding, activation, out_scale, out_zp) -> T:
        if out_scale is not None and (float(np.float32(out_scale)), int(out_zp or 0)) != \
                x.qparams:
            raise ValueError(f"{kind}: TFLM requires the output quantization of the input")
        fh, fw = (filter, filter) if isinstance(filter, int) else filter
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        n, h, wd, c = x.shape
        y = self._out((n, conv_out_size(h, fh, sh, padding), conv_out_size(wd, fw, sw, padding), c),
                      x, out_scale, out_zp)
        opt = fb.Pool2DOptionsT()
        opt.padding, opt.strideH, opt.strideW = _PAD[padding], sh, sw
        opt.filterHeight, opt.filterWidth = fh, fw
        opt.fusedActivationFunction = _ACT[activation]
        self.op(kind, [x], [y], opt)
        return y

    def average_pool2d(self, x: T, filter=2, stride=2, padding: str = "VALID",
                       activation: str = "NONE", out_scale=None, out_zp=None) -> T:
        return self._pool("AVERAGE_POOL_2D", x, filter, stride, padding, activation, out_scale,
                          out_zp)

    def max_pool2d(self, x: T, filter=2, stride=2, padding: str = "VALID", activation: str = "NONE",
                   out_scale=None, out_zp=None) -> T:
        return self._pool("MAX_POOL_2D", x, filter, stride, padding, activation, out_scale, out_zp)

    def _binary(self, kind, a: T, b: T, activation, out_scale, out_zp, opt) -> T:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
        y = self._out(shape, a, out_scale, out_zp)
        opt.fusedActivationFunction = _ACT[activation]
        self.op(kind, [a, b], [y], opt)
        return y

    def add(self, a: T, b: T, activation: str = "NONE", out_scale=None, out_zp=None) -> T:
        return self._binary("ADD", a, b, activation, out_scale, out_zp, fb.AddOptionsT())

    def mul(self, a: T, b: T, activation: str = "NONE", out_scale=None, out_zp=None) -> T:
        return self._binary("MUL", a, b, activation, out_scale, out_zp, fb.MulOptionsT())

    def pad(self, x: T, paddings) -> T:
        """PAD with the output zero point: ``paddings`` is [[before, after]] per dimension."""
        p = np.asarray(paddings, np.int32).reshape(len(x.shape), 2)
        shape = tuple(int(s + p[i].sum()) for i, s in enumerate(x.shape))
        pt = self.const(p, "int32")
        y = self._out(shape, x, None, None, x.dtype)
        self.op("PAD", [x, pt], [y], fb.PadOptionsT())
        return y

    def mean(self, x: T, axes, keep_dims: bool = True, out_scale=None, out_zp=None) -> T:
        axes = [int(a) % len(x.shape) for a in np.atleast_1d(axes)]
        shape = tuple((1 if i in axes else s) for i, s in enumerate(x.shape)
                      if keep_dims or i not in axes)
        at = self.const(np.asarray(axes, np.int32), "int32")
        y = self._out(shape, x, out_scale, out_zp)
        opt = fb.ReducerOptionsT()
        opt.keepDims = keep_dims
        self.op("MEAN", [x, at], [y], opt)
        return y

    def reshape(self, x: T, new_shape, shape_tensor: bool = True, options: bool = True) -> T:
        """RESHAPE (one -1 allowed). Converters emit the shape as input 1 and in the options."""
        ns = list(int(s) for s in new_shape)
        total = math.prod(x.shape)
        if -1 in ns:
            known = math.prod(s for s in ns if s != -1)
            ns[ns.index(-1)] = total // known
        if math.prod(ns) != total:
            raise ValueError(f"cannot reshape {x.shape} to {new_shape}")
        ins = [x]
        if shape_tensor:
            ins.append(self.const(np.asarray(list(new_shape), np.int32), "int32"))
        y = self._out(tuple(ns), x, None, None, x.dtype)
        opt = None
        if options:
            opt = fb.ReshapeOptionsT()
            opt.newShape = list(int(s) for s in new_shape)
        self.op("RESHAPE", ins, [y], opt)
        return y

    def squeeze(self, x: T, axes=None) -> T:
        if axes is None or len(axes) == 0:
            axes_n = [i for i, s in enumerate(x.shape) if s == 1]
        else:
            axes_n = [int(a) % len(x.shape) for a in axes]
        shape = tuple(s for i, s in enumerate(x.shape) if i not in axes_n)
        y = self._out(shape, x, None, None, x.dtype)
        opt = fb.SqueezeOptionsT()
        opt.squeezeDims = list(int(a) for a in (axes or []))
        self.op("SQUEEZE", [x], [y], opt)
        return y

    def softmax(self, x: T, beta: float = 1.0) -> T:
        """SOFTMAX over the last axis; output scale 1/256, zero point -128 (TFLM requires it)."""
        y = self.tensor(x.shape, "int8", 1.0 / 256, -128)
        opt = fb.SoftmaxOptionsT()
        opt.beta = float(beta)
        self.op("SOFTMAX", [x], [y], opt)
        return y

    def logistic(self, x: T) -> T:
        """LOGISTIC; int8 output scale 1/256, zero point -128 (TFLM requires it)."""
        y = self.tensor(x.shape, "int8", 1.0 / 256, -128)
        self.op("LOGISTIC", [x], [y])
        return y

    def transpose(self, x: T, perm) -> T:
        perm = [int(p) for p in perm]
        if len(perm) > 5:
            raise ValueError("TRANSPOSE: TFLM supports rank <= 5")
        pt = self.const(np.asarray(perm, np.int32), "int32")
        y = self._out(tuple(x.shape[p] for p in perm), x, None, None, x.dtype)
        self.op("TRANSPOSE", [x, pt], [y], fb.TransposeOptionsT())
        return y

    def concatenation(self, xs: Sequence[T], axis: int = -1, activation: str = "NONE") -> T:
        """CONCATENATION; int8 inputs must share one quantization (TFLM), the output takes it."""
        if activation != "NONE":
            raise ValueError("CONCATENATION: TFLM supports no fused activation")
        if len({x.qparams for x in xs if x.dtype == "int8"}) > 1:
            raise ValueError("CONCATENATION: TFLM requires one shared input quantization")
        ax = axis % len(xs[0].shape)
        shape = list(xs[0].shape)
        shape[ax] = sum(x.shape[ax] for x in xs)
        y = self._out(tuple(shape), xs[0], None, None, xs[0].dtype)
        opt = fb.ConcatenationOptionsT()
        opt.axis = int(axis)
        opt.fusedActivationFunction = _ACT[activation]
        self.op("CONCATENATION", list(xs), [y], opt)
        return y

    def resize_nearest_neighbor(self, x: T, size, align_corners: bool = False,
                                half_pixel_centers: bool = False) -> T:
        size = [int(s) for s in size]
        st = self.const(np.asarray(size, np.int32), "int32")
        y = self._out((x.shape[0], size[0], size[1], x.shape[3]), x, None, None, x.dtype)
        opt = fb.ResizeNearestNeighborOptionsT()
        opt.alignCorners, opt.halfPixelCenters = align_corners, half_pixel_centers
        self.op("RESIZE_NEAREST_NEIGHBOR", [x, st], [y], opt)
        return y

    def relu(self, x: T, out_scale=None, out_zp=None) -> T:
        y = self._out(x.shape, x, out_scale, out_zp)
        self.op("RELU", [x], [y])
        return y

    def relu6(self, x: T, out_scale=None, out_zp=None) -> T:
        y = self._out(x.shape, x, out_scale, out_zp)
        self.op("RELU6", [x], [y])
        return y

    def leaky_relu(self, x: T, alpha: float = 0.2, out_scale=None, out_zp=None) -> T:
        y = self._out(x.shape, x, out_scale, out_zp)
        opt = fb.LeakyReluOptionsT()
        opt.alpha = float(alpha)
        self.op("LEAKY_RELU", [x], [y], opt)
        return y

    def hard_swish(self, x: T, out_scale=None, out_zp=None) -> T:
        y = self._out(x.shape, x, out_scale, out_zp)
        self.op("HARD_SWISH", [x], [y], fb.HardSwishOptionsT())
        return y

    def quantize(self, x: T, out_scale, out_zp, dtype: str = "int8") -> T:
        """QUANTIZE: float32 -> int8, or int8 -> int8 requantization."""
        y = self.tensor(x.shape, dtype, out_scale, out_zp)
        self.op("QUANTIZE", [x], [y])
        return y

    def dequantize(self, x: T) -> T:
        y = self.tensor(x.shape, "float32")
        self.op("DEQUANTIZE", [x], [y])
        return y

    def unary(self, kind: str, x: T, out_scale=None, out_zp=None, options=None) -> T:
        """Any elementwise builtin (e.g. TANH, ABS) — for models with ops outside SPEC section 4."""
        y = self._out(x.shape, x, out_scale, out_zp, x.dtype)
        self.op(kind, [x], [y], options)
        return y

    def binary(self, kind: str, a: T, b: T, out_scale=None, out_zp=None, options=None) -> T:
        """Any broadcasting binary builtin (e.g. SUB), for ops outside SPEC section 4."""
        y = self._out(tuple(np.broadcast_shapes(a.shape, b.shape)), a, out_scale, out_zp, a.dtype)
        self.op(kind, [a, b], [y], options)
        return y

    # ---------------------------------------------------------------- output
    def model(self) -> fb.ModelT:
        sg = fb.SubGraphT()
        sg.tensors = self._tensors
        sg.inputs = list(self._inputs)
        sg.outputs = list(self._outputs)
        sg.operators = self._ops
        sg.name = "main"
        m = fb.ModelT()
        m.version = 3
        m.operatorCodes = self._opcodes
        m.subgraphs = [sg]
        m.description = self.description
        m.buffers = self._buffers
        return m

    def finish(self) -> bytes:
        """The model as TFLite flatbuffer bytes."""
        if not self._outputs:
            raise ValueError("model has no outputs")
        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model().Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def expose_intermediates(data: bytes) -> tuple[bytes, list[int]]:
    """Rewrite a model so every op output is also a graph output (original outputs first, then the
    others in op order), for layer-by-layer comparison with TFLM. Returns (model bytes, the tensor
    index of each output in order)."""
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    sg = m.subgraphs[0]
    outs = [int(i) for i in sg.outputs]
    for op in sg.operators:
        for i in op.outputs:
            if int(i) >= 0 and int(i) not in outs:
                outs.append(int(i))
    sg.outputs = outs
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), outs
