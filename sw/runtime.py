"""Host runtime: backends over one compiled model and a picamera2-IMX500-shaped ``Device``.

Backends (:func:`make_backend`): ``golden`` (NumPy graph executor) and ``isa`` (the functional ISA simulator
with its cycle model); ``rtl`` arrives with the RTL NPU. Every backend has ``run(inputs) -> outputs``
(graph inputs and outputs exactly as the model declares them, bit-exact with TFLM), ``run_npu(tensors)
-> NPU output tensors`` (what the ISP feeds and the metadata carries), ``last_cycles`` (None for golden)
and ``last_stats`` (per-layer cycles/utilization for isa).

:class:`Device` runs the whole functional pipeline per frame: sensor model -> CSI-2 -> golden ISP -> backend
-> metadata packets -> parser -> decoded outputs, with the methods picamera2's IMX500 helper has
(``get_outputs``, ``get_output_shapes``, ``get_input_size``, ``get_kpi_info``, ``input_tensor_image``,
``set_inference_roi_abs``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hw.config import Config, preset
from hw.errors import UserError
from models.graph import Graph
from models.kernels import get_prepare

__all__ = [
    "make_backend",
    "load_model",
    "IsaBackend",
    "GoldenBackend",
    "Device",
    "HostOps",
    "BACKENDS",
]

BACKENDS = ("golden", "isa")


def load_model(model, config: Config | str = "default"):
    """``model``: a Graph, TFLite bytes/path, bundle bytes/path, or a Compiled -> Compiled."""
    from sw.bundle import from_bytes, is_bundle
    from sw.compiler import Compiled, compile_graph

    cfg = preset(config)
    if isinstance(model, Compiled):
        return model
    if isinstance(model, Graph):
        return compile_graph(model, cfg)
    if isinstance(model, str | Path):
        p = Path(model)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise UserError(f"model {p} not found") from None
        except OSError as e:
            raise UserError(f"cannot read model {p}: {e.strerror}") from None
        label = p.name
    else:
        data, label = bytes(model), "model"
    if is_bundle(data):
        c = from_bytes(data, label)
        if c.config.to_dict() != cfg.to_dict() and config != "default":
            raise UserError(
                f"bundle {label} was compiled for preset '{c.config.name}', not "
                f"'{cfg.name}'; recompile it with --config {cfg.name}"
            )
        return c
    from sw.tflite_import import load_tflite

    return compile_graph(load_tflite(data, name=label), cfg)


class HostOps:
    """Runs graph ops by index with the golden kernels (host prologue, tail and fallback ops)."""

    def __init__(self, graph: Graph):
        self.g = graph
        self._fns = {}
        self._consts = {t.index: t.data for t in graph.tensors if t.data is not None}

    def fn(self, k: int):
        if k not in self._fns:
            self._fns[k] = get_prepare(self.g.ops[k].kind)(self.g.ops[k], self.g)
        return self._fns[k]

    def run_ops(self, ops: list[int], vals: dict) -> dict:
        """Run ops in order; ``vals`` maps tensor index -> array (updated and returned)."""
        for k in ops:
            op = self.g.ops[k]
            ins = [
                (vals[i] if i in vals else self._consts.get(i)) if i >= 0 else None
                for i in op.inputs
            ]
            outs = self.fn(k)(ins)
            for i, v in zip(op.outputs, outs, strict=True):
                vals[i] = v
        return vals


class _Base:
    name = "base"

    def __init__(self, compiled):
        self.compiled = compiled
        self.config = compiled.config
        self.host = HostOps(compiled.host_graph)
        self.last_cycles = None
        self.last_stats = None

    def check_inputs(self, inputs):
        c = self.compiled
        if len(inputs) != len(c.graph_inputs):
            raise UserError(f"model takes {len(c.graph_inputs)} input(s), got {len(inputs)}")
        vals = {}
        for x, d in zip(inputs, c.graph_inputs, strict=True):
            x = np.asarray(x)
            if tuple(x.shape) != tuple(d["shape"]) or x.dtype != np.dtype(d["dtype"]):
                raise UserError(
                    f"input '{d['name']}' must be {d['dtype']} {tuple(d['shape'])}, got "
                    f"{x.dtype} {x.shape}"
                )
            vals[d["tensor"]] = x
        return vals

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Graph inputs -> graph outputs: host prologue, NPU, host tail."""
        c = self.compiled
        vals = self.host.run_ops(c.host_pre, self.check_inputs(inputs))
        outs = self.run_npu([vals[d.tensor] for d in c.inputs])
        return self.finish(outs)

    def finish(self, npu_outputs: list[np.ndarray]) -> list[np.ndarray]:
        """NPU outputs (as the metadata carries them) -> graph outputs (runs the host tail)."""
        c = self.compiled
        vals = {
            d.tensor: np.asarray(v).reshape(d.shape)
            for d, v in zip(c.outputs, npu_outputs, strict=True)
        }
        vals = self.host.run_ops(c.host_post, vals)
        return [vals[i] for i in c.graph_outputs]

    def run_npu(self, tensors):  # pragma: no cover - abstract
        raise NotImplementedError


class IsaBackend(_Base):
    """The functional ISA simulator: bit-exact outputs, cycles from the cycle model."""

    name = "isa"

    def __init__(self, compiled):
        super().__init__(compiled)
        from sim.isa_sim import IsaSim

        self.sim = IsaSim(
            compiled.config,
            compiled.program,
            compiled.image,
            host_calls=compiled.host_calls,
            host_handler=self._host_call,
        )

    def _host_call(self, k: int, vals: dict) -> dict:
        return self.host.run_ops(self.compiled.host_calls[k]["ops"], dict(vals))

    def run_npu(self, tensors):
        from sw.compiler import layer_stats

        c = self.compiled
        self.sim.reset()
        for d, x in zip(c.inputs, tensors, strict=True):
            x = np.asarray(x)
            if tuple(x.shape) != tuple(d.shape) or x.dtype != np.dtype(d.dtype):
                raise UserError(
                    f"NPU input '{d.name}' must be {d.dtype} {d.shape}, got {x.dtype} {x.shape}"
                )
            self.sim.write(d.addr, x)
        sched = self.sim.run()
        self.last_cycles = int(sched.total)
        if self.last_stats is None:
            self.last_stats = layer_stats(c, sched)
        return [self.sim.read(d.addr, d.shape, d.dtype) for d in c.outputs]


class GoldenBackend(_Base):
    """The golden graph executor behind the same interface (no cycles)."""

    name = "golden"

    def __init__(self, compiled, graph: Graph | None = None):
        super().__init__(compiled)
        self.graph = graph
        if graph is None:
            raise UserError(
                "the golden backend needs the model's graph (give a .tflite, not a bundle)"
            )
        self.full = HostOps(graph)
        pre = set(compiled.host_pre) | set(compiled.host_post)
        self.middle = [op.index for op in graph.ops if op.index not in pre]

    def run_npu(self, tensors):
        c = self.compiled
        vals = {d.tensor: np.asarray(x) for d, x in zip(c.inputs, tensors, strict=True)}
        vals = self.full.run_ops(self.middle, vals)
        return [vals[d.tensor] for d in c.outputs]


def make_backend(name: str, graph_or_model, config: Config | str = "default"):
    """A backend by name over a Graph, TFLite path/bytes, bundle path/bytes or Compiled model."""
    cfg = preset(config)
    if name not in BACKENDS:
        raise UserError(f"backend {name!r} is not available; choose one of {', '.join(BACKENDS)}")
    compiled = load_model(graph_or_model, cfg)
    if name == "isa":
        return IsaBackend(compiled)
    graph = graph_or_model if isinstance(graph_or_model, Graph) else None
    if graph is None:
        from sw.bundle import is_bundle
        from sw.tflite_import import load_tflite

        if isinstance(graph_or_model, str | Path):
            data = Path(graph_or_model).read_bytes()
        elif isinstance(graph_or_model, bytes | bytearray):
            data = bytes(graph_or_model)
        else:
            data = b""
        if data and not is_bundle(data):
            graph = load_tflite(data)
        else:
            graph = (
                compiled.host_graph
                if all(
                    t.data is not None or not _needs_const(compiled.host_graph, t.index)
                    for t in compiled.host_graph.tensors
                )
                else None
            )
    return GoldenBackend(compiled, graph)


def _needs_const(g: Graph, i: int) -> bool:
    return any(i in op.inputs[1:] for op in g.ops)


def progress(iterable, total=None, desc="frames"):
    """tqdm on stderr for multi-frame runs (silent when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit="frame",
        file=sys.stderr,
        disable=not sys.stderr.isatty() or (total is not None and total < 2),
    )
