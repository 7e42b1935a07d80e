"""The typed graph IR every layer shares: tensors with shapes, dtypes, quantization and constant
data; ops with normalized options. Built by ``sw.tflite_import`` (validating as it reads), run by
``models.golden``, lowered by the compiler.

Conventions (contracts):
- ``Tensor.shape`` is a tuple of ints in TFLite order (NHWC for 4-D activations, OHWI for conv
  filters, 1HWC for depthwise filters, [out, in] for FULLY_CONNECTED weights).
- ``Tensor.dtype`` is a NumPy dtype name: 'int8', 'uint8', 'int16', 'int32', 'int64', 'float32',
  'bool'.
- ``Quant.scale`` is float32 and ``Quant.zero_point`` int64, both 1-D; length 1 means per-tensor,
  otherwise per-channel along ``Quant.axis``.
- ``Op.inputs`` holds tensor indices; -1 marks an absent optional input (e.g. no bias).
- ``Op.options`` uses snake_case keys. Enumerated values are strings: ``padding`` in {'SAME',
  'VALID'},
  ``activation`` in {'NONE', 'RELU', 'RELU_N1_TO_1', 'RELU6'}. Keys per op (only those used):
  CONV_2D: stride_h, stride_w, dilation_h, dilation_w, padding, activation;
  DEPTHWISE_CONV_2D: + depth_multiplier; FULLY_CONNECTED: activation, keep_num_dims;
  AVERAGE_POOL_2D / MAX_POOL_2D: stride_h, stride_w, filter_h, filter_w, padding, activation;
  ADD / MUL: activation; CONCATENATION: axis, activation; MEAN: keep_dims (axes are input 1);
  SOFTMAX: beta; LEAKY_RELU: alpha; RESIZE_NEAREST_NEIGHBOR: align_corners, half_pixel_centers;
  RESHAPE: new_shape (may be absent: the shape is then input 1 or the output tensor's shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Quant", "Tensor", "Op", "Graph", "SPEC_OPS"]

# : The ops every backend must support (SPEC section 4). Anything else is rejected with a clear
# error.
SPEC_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "ADD",
    "MUL",
    "PAD",
    "MEAN",
    "RESHAPE",
    "SQUEEZE",
    "SOFTMAX",
    "LOGISTIC",
    "TRANSPOSE",
    "CONCATENATION",
    "RESIZE_NEAREST_NEIGHBOR",
    "RELU",
    "RELU6",
    "LEAKY_RELU",
    "HARD_SWISH",
    "QUANTIZE",
    "DEQUANTIZE",
)


@dataclass
class Quant:
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    def scalar(self) -> tuple[float, int]:
        """(scale, zero_point) of a per-tensor quantization."""
        return float(self.scale[0]), int(self.zero_point[0])


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = (
        None  # constant data (weights, biases, shapes), already shaped and typed
    )

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    index: int
    kind: str  # TFLite builtin name, e.g. 'CONV_2D'
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]

    def tensor(self, i: int) -> Tensor | None:
        return None if i < 0 else self.tensors[i]

    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def op_macs(self, op: Op) -> int:
        """Multiply-accumulates of one op per inference (conv, depthwise, FC; else 0)."""
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = self.tensors[op.inputs[1]].shape
            out = self.tensors[op.outputs[0]].shape
            if op.kind == "CONV_2D":  # out NHWC, w OHWI
                return int(np.prod(out)) * w[1] * w[2] * w[3]
            if op.kind == "DEPTHWISE_CONV_2D":  # w 1HWC
                return int(np.prod(out)) * w[1] * w[2]
            return int(np.prod(out)) * w[1]  # FC: out [.., units], w [units, depth]
        return 0

    def macs(self) -> int:
        """Multiply-accumulates of the whole graph per inference."""
        return sum(self.op_macs(op) for op in self.ops)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.kind] = counts.get(op.kind, 0) + 1
        return counts
