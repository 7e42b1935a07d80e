"""The golden graph executor: runs an imported model with the golden kernels, bit-exact with TFLM.

Contract: ``GoldenModel(graph)`` prepares every op once (raises UserError naming an unsupported op);
``run(inputs)`` takes one array per graph input (shape and dtype of the input tensor) and returns
the outputs;
``run_all(inputs)`` returns every tensor's value by tensor index (for layer-by-layer comparison).
"""

from __future__ import annotations

import numpy as np

from hw.errors import UserError
from models.graph import Graph
from models.kernels import get_prepare

__all__ = ["GoldenModel"]


class GoldenModel:
    def __init__(self, graph: Graph):
        self.graph = graph
        self._steps = []
        for op in graph.ops:
            fn = get_prepare(op.kind)(op, graph)
            self._steps.append((op, fn))
        self._consts = {t.index: t.data for t in graph.tensors if t.data is not None}
        # tensors no later op reads can be dropped during run() (keeps memory flat)
        last_use: dict[int, int] = {}
        for k, op in enumerate(graph.ops):
            for i in op.inputs:
                if i >= 0:
                    last_use[i] = k
        self._last_use = last_use

    def _check_inputs(self, inputs):
        g = self.graph
        if len(inputs) != len(g.inputs):
            raise UserError(f"model takes {len(g.inputs)} input(s), got {len(inputs)}")
        out = []
        for x, idx in zip(inputs, g.inputs, strict=True):
            t = g.tensors[idx]
            x = np.asarray(x)
            if tuple(x.shape) != tuple(t.shape):
                raise UserError(f"input '{t.name}' must have shape {t.shape}, got {x.shape}")
            if x.dtype != np.dtype(t.dtype):
                raise UserError(f"input '{t.name}' must be {t.dtype}, got {x.dtype}")
            out.append(x)
        return out

    def _execute(self, inputs, keep_all: bool) -> dict[int, np.ndarray]:
        g = self.graph
        vals: dict[int, np.ndarray] = dict(self._consts)
        for x, idx in zip(self._check_inputs(inputs), g.inputs, strict=True):
            vals[idx] = x
        keep = set(g.outputs)
        for k, (op, fn) in enumerate(self._steps):
            ins = [vals[i] if i >= 0 else None for i in op.inputs]
            outs = fn(ins)
            for i, v in zip(op.outputs, outs, strict=True):
                vals[i] = v
            if not keep_all:
                for i in op.inputs:
                    if (
                        i >= 0
                        and self._last_use.get(i) == k
                        and i not in keep
                        and i not in self._consts
                    ):
                        vals.pop(i, None)
        return vals

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        vals = self._execute(inputs, keep_all=False)
        return [vals[i] for i in self.graph.outputs]

    def run_all(self, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
        return self._execute(inputs, keep_all=True)
