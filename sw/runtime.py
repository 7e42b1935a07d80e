"""Host runtime: backends over one compiled model and a picamera2-IMX500-shaped ``Device``.

Backends (:func:`make_backend`): ``golden`` (NumPy graph executor), ``isa`` (the functional ISA
simulator with its cycle model) and ``rtl`` (the RTL NPU of hw/npu.py in Verilator through the C++
harness of sim/harness/npu.py; cycles and per-layer times from its counters and retire trace).
Every backend has ``run(inputs) -> outputs`` (graph inputs and outputs exactly as the model
declares them, bit-exact with TFLM), ``run_npu(tensors) -> NPU output tensors`` (what the ISP
feeds and the metadata carries), ``last_cycles`` (None for golden) and ``last_stats``
(per-layer cycles/utilization for isa and rtl).

:class:`Device` runs frames through the logic die (sw/soc.py): sensor model -> CSI-2 bursts -> the
die (``rtl``: hw/soc.py in Verilator; ``golden``/``isa``: the golden die) -> CSI-2 metadata
packets -> parser -> host tail -> decoded outputs, with the methods picamera2's IMX500 helper has
(``get_outputs``, ``get_output_shapes``, ``get_input_size``, ``get_kpi_info``,
``input_tensor_image``, ``set_inference_roi_abs``, ``set_inference_aspect_ratio``,
``get_roi_scaled``, ``convert_inference_coords``, ``network_intrinsics``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    "RtlBackend",
    "Device",
    "HostOps",
    "BACKENDS",
]

BACKENDS = ("golden", "isa", "rtl")


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
        from sw.fileio import read_input

        data = read_input(p, "model")  # regular files only: a FIFO or device never blocks
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


class RtlBackend(_Base):
    """The RTL NPU in Verilator: the bundle's memory image and the inputs are written into the
    simulated SRAM (``upload``: "backdoor", one line per cycle, or "host", the 32-bit host port),
    the program runs from PROG_ADDR, HOST calls are served by the host between ``run`` calls, and
    the outputs are read back. ``last_cycles`` is the CYCLES counter; ``last_counters`` every
    counter; ``last_stats`` per-layer cycles from the issue/retire trace."""

    name = "rtl"
    #: A run that takes more than this many times the cycle model's estimate (plus a million
    #: cycles) is reported as a hang instead of simulating for hours (``max_cycles``).
    hang_factor = 20

    def __init__(self, compiled, waves: str | None = None, upload: str = "backdoor"):
        super().__init__(compiled)
        from sim.harness.npu import NpuSim
        from sw.compiler import estimate

        self.sim = NpuSim(compiled.config, waves=waves)
        #: cycles one run may take before it is reported as a hang
        self.max_cycles = self.hang_factor * estimate(compiled)["cycles"] + 1_000_000
        self.upload = upload
        self.last_counters = None
        self.last_trace = None
        #: seconds of the last run_npu spent inside the harness's C++ run loop
        self.last_sim_s = 0.0

    def run_npu(self, tensors):
        from sw.compiler import layer_stats

        c, sim = self.compiled, self.sim
        sim.reset()
        for addr, blob in c.image:
            sim.write_mem(addr, np.frombuffer(bytes(blob), np.uint8), port=self.upload)
        for d, x in zip(c.inputs, tensors, strict=True):
            x = np.asarray(x)
            if tuple(x.shape) != tuple(d.shape) or x.dtype != np.dtype(d.dtype):
                raise UserError(
                    f"NPU input '{d.name}' must be {d.dtype} {d.shape}, got {x.dtype} {x.shape}"
                )
            sim.write_mem(d.addr, _as_bytes(x), port=self.upload)
        sim.start(c.memory["program_addr"])
        self.last_sim_s = 0.0
        while True:
            t0 = time.perf_counter()
            status = sim.run(self.max_cycles)
            self.last_sim_s += time.perf_counter() - t0
            if status == "done":
                break
            if status == "host":
                k = sim.host_call
                call = c.host_calls[k]
                vals = {
                    d["tensor"]: _from_bytes(
                        sim.read_mem(d["addr"], _nbytes(d)), d["shape"], d["dtype"])
                    for d in call["inputs"]
                }
                outs = self.host.run_ops(call["ops"], dict(vals))
                for d in call["outputs"]:
                    sim.write_mem(d["addr"], _as_bytes(np.asarray(outs[d["tensor"]], d["dtype"])))
                sim.resume()
                continue
            counters = sim.counters()
            raise RuntimeError(
                f"RTL NPU stopped with status {status!r} at cycle {sim.cycle} "
                f"(ERROR={counters.get('ERROR')}, instructions retired {counters.get('INSTRS')})"
            )
        self.last_counters = sim.counters()
        self.last_cycles = int(self.last_counters["CYCLES"])
        self.last_trace = sim.trace()
        self.last_stats = layer_stats(
            c, _trace_schedule(self.last_trace, len(c.program), self.last_cycles,
                               self.last_counters))
        return [
            _from_bytes(sim.read_mem(d.addr, _nbytes({"shape": d.shape, "dtype": d.dtype})),
                        d.shape, d.dtype)
            for d in c.outputs
        ]


def _nbytes(d) -> int:
    return int(np.prod(d["shape"], dtype=np.int64)) * np.dtype(d["dtype"]).itemsize


def _as_bytes(x: np.ndarray) -> np.ndarray:
    return np.frombuffer(np.ascontiguousarray(x).tobytes(), np.uint8)


def _from_bytes(raw: np.ndarray, shape, dtype) -> np.ndarray:
    return np.frombuffer(np.asarray(raw, np.uint8).tobytes(), np.dtype(dtype)).reshape(shape).copy()


def _trace_schedule(trace: np.ndarray, n_instr: int, total: int, counters: dict):
    """A :class:`sim.isa_sim.Schedule` from the RTL's (index, issue, retire) trace, cycles counted
    from the first issue; instructions never issued get [0, 0); busy per queue from the
    counters."""
    from sim.isa_sim import Schedule

    start, end = [0] * n_instr, [0] * n_instr
    t0 = int(trace[:, 1].min()) if len(trace) else 0
    for idx, s, e in np.asarray(trace, np.int64):
        if 0 <= idx < n_instr:
            start[idx], end[idx] = int(s - t0), int(e - t0)
    busy = {
        "load": int(counters.get("LOAD_BUSY", 0)),
        "compute": int(counters.get("CONV_BUSY", 0)) + int(counters.get("VEC_BUSY", 0)),
        "store": int(counters.get("STORE_BUSY", 0)),
    }
    return Schedule(start=start, end=end, total=total, busy=busy)


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
    if name == "rtl":
        return RtlBackend(compiled)
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


# ------------------------------------------------------------------------------------------ pixel
# path
def parse_sensor_mode(mode: str) -> tuple[int, int]:
    """'full' (4056x3040), 'binned' (2028x1520) or 'WxH' -> (width, height) (sim.sensor's rules)."""
    from sim.sensor import parse_mode

    return parse_mode(mode)


def sensor_bursts(image: np.ndarray, mode: tuple[int, int], frame_number: int, seed: int = 0):
    """Scene image -> the sensor model's CSI-2 bursts (RAW10 Bayer RGGB, black level 64)."""
    from sim.sensor import frame_bursts

    return frame_bursts(image, mode, frame_number=frame_number, seed=seed)


def raw_from_bursts(bursts, mode: tuple[int, int]) -> tuple[np.ndarray | None, int]:
    """Golden CSI-2 RX: bursts -> (RAW10 frame or None, RX error flags of the frame)."""
    from models.csi2 import parse

    res = parse(bursts)
    frames = res.frames()
    flags = res.statuses[0][1] if res.statuses else 1
    w, h = mode
    if not frames or len(frames[0]) != h or any(ln.size != w for ln in frames[0]):
        return None, flags or 1
    return np.stack(frames[0]).astype(np.int64), flags


class FrameResult(dict):
    """One frame's outcome: keys frame_counter, valid, errors, outputs, npu_outputs, result, kpi,
    packets, metadata_bytes (attribute access too)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Device:
    """picamera2-IMX500-shaped device over the logic die: sensor frames in, CSI-2 metadata out,
    decoded on the host.

    The die is :mod:`sw.soc`'s: ``backend="rtl"`` runs the whole SoC (hw/soc.py) in Verilator,
    the host only configures it and parses the packets it emits; ``"golden"`` and ``"isa"`` run
    the golden die (same frame rules, same output bytes) with that NPU arithmetic. ``compare``
    (rtl only) also runs the golden die and checks every output byte (KPI taken from the RTL).

    ``model``: TFLite path/bytes, bundle path/bytes, Graph or Compiled. ``output_mode``:
    'metadata', 'image+metadata' or 'raw+metadata' (the sensor's bursts forwarded on VC 1).
    ``fps``: its period in die cycles is the frame budget (a frame whose FS-to-metadata time
    exceeds it is sent invalid with TIMEOUT); 0 disables it.
    """

    def __init__(
        self,
        model=None,
        backend: str = "isa",
        config: Config | str = "default",
        sensor_mode: str = "640x480",
        output_mode: str = "metadata",
        fps: float = 30.0,
        labels: list[str] | None = None,
        seed: int = 0,
        compare: bool = False,
        progress: bool = False,
        waves: str | None = None,
    ):
        from models.zoo import __file__ as zoo_init
        from sw.soc import OUTPUT_MODES

        if model is None:
            model = Path(zoo_init).with_name("person_detect.tflite")
        from sw.postprocess import prepare_model  # known detector: its NCHW/BGR input -> NHWC RGB

        model = prepare_model(model)
        if output_mode not in OUTPUT_MODES:
            raise UserError(f"bad output mode {output_mode!r}: one of {', '.join(OUTPUT_MODES)}")
        if backend not in BACKENDS:
            raise UserError(f"backend {backend!r} is not available; choose one of "
                            f"{', '.join(BACKENDS)}")
        if compare and backend != "rtl":
            raise UserError("--compare checks the RTL die against the golden die: use "
                            "--backend rtl")
        if fps is None or not fps >= 0 or fps == float("inf"):
            raise UserError(f"bad frame rate {fps!r}: give a positive number of frames per "
                            "second (0: no frame budget)")
        self.config = preset(config)
        self.backend_name = backend
        self.compare = compare
        self._progress = progress
        self._waves = waves
        # NPU arithmetic of the golden die (for rtl: the reference of --compare, and the host tail)
        npu = backend if backend != "rtl" else "golden"
        try:
            self.backend = make_backend(npu, model, self.config)
        except UserError:
            if backend != "rtl":
                raise
            self.backend = make_backend("isa", model, self.config)
        self.compiled = self.backend.compiled
        self.mode = parse_sensor_mode(sensor_mode)
        self.output_mode = output_mode
        self.fps = fps
        self.seed = seed
        self.labels = labels or _default_labels(self.compiled)
        d = self.compiled.inputs[0]
        if len(d.shape) != 4 or d.shape[0] != 1 or d.shape[3] not in (1, 3) or d.dtype != "int8":
            self.roi = None
        else:
            self.roi = _centered_roi(self.mode, d.shape[2], d.shape[1])
        self.network_intrinsics = NetworkIntrinsics.of(self)
        self._in_frames = 0
        self._tensor_frames = 0       # infer_tensor frames before the die's first frame
        self._raw_seen = 0
        self._golden = None
        self._rtl = None
        self._last: FrameResult | None = None
        self._last_tensor = None
        #: output bytes and input RAW10 bytes of the frames so far
        self.output_bytes = 0
        self.raw_bytes = 0

    @property
    def frame_counter(self) -> int:
        """The frame counter the next metadata frame carries."""
        return self._golden.frame_counter if self._golden is not None else self._tensor_frames

    @property
    def budget_cycles(self) -> int:
        return int(self.config.clock_mhz * 1e6 / self.fps) if self.fps else 0

    # ---- picamera2-shaped queries
    def get_input_size(self) -> tuple[int, int]:
        """(width, height) of the network input tensor."""
        s = self.compiled.inputs[0].shape
        return (int(s[2]), int(s[1])) if len(s) == 4 else (int(s[-1]), 1)

    def get_output_shapes(self, metadata=None) -> list[tuple]:
        """Shapes of the model's outputs; with ``metadata`` (a frame result) those it carries."""
        if metadata is not None:
            outs = metadata["outputs"]
            return [tuple(np.shape(o)) for o in outs] if outs is not None else []
        g = self.compiled.host_graph
        return [tuple(g.tensors[i].shape) for i in self.compiled.graph_outputs]

    def set_inference_roi_abs(self, roi: tuple[int, int, int, int]) -> None:
        """ROI (x, y, w, h) in sensor pixels that the ISP crops and resizes to the input tensor."""
        from models.isp import IspParams

        x, y, w, h = (int(v) for v in roi)
        tw, th = self.get_input_size()
        IspParams.make(
            *self.mode, roi=(x, y, w, h), size=(tw, th), channels=self.compiled.inputs[0].shape[-1]
        ).validate()
        self.roi = (x, y, w, h)
        self._reconfigure()

    def set_inference_aspect_ratio(self, aspect_ratio: tuple[int, int]) -> None:
        """The largest centred ROI with aspect ``(w, h)`` (picamera2's meaning)."""
        aw, ah = aspect_ratio
        if not (aw > 0 and ah > 0):
            raise UserError(f"bad aspect ratio {aspect_ratio!r}: two positive numbers")
        self.set_inference_roi_abs(_centered_roi(self.mode, aw, ah))

    def get_roi_scaled(self, request=None) -> tuple[int, int, int, int]:
        """The inference ROI (x, y, w, h) in sensor-frame pixels (our ISP output is the sensor
        frame, so picamera2's scaling to the ISP output is the identity)."""
        return tuple(self.roi) if self.roi is not None else (0, 0, *self.mode)

    def convert_inference_coords(self, coords, metadata=None, picam2=None):
        """picamera2's meaning: ``coords`` (y0, x0, y1, x1) normalized to the input tensor (0..1)
        -> (x, y, w, h) in sensor-frame pixels, through the ROI the ISP cropped."""
        y0, x0, y1, x1 = (float(v) for v in coords)
        rx, ry, rw, rh = self.get_roi_scaled()
        x, y = rx + x0 * rw, ry + y0 * rh
        return (int(round(x)), int(round(y)), int(round((x1 - x0) * rw)),
                int(round((y1 - y0) * rh)))

    def get_outputs(self, metadata: FrameResult | None = None, add_batch: bool = False):
        """The model's outputs of the last (or given) frame, dequantized to float32 like
        picamera2 (None if that frame is invalid). ``FrameResult.outputs`` keeps the raw values."""
        r = metadata or self._last
        if r is None or not r["valid"]:
            return None
        g = self.compiled.host_graph
        outs = []
        for o, i in zip(r["outputs"], self.compiled.graph_outputs, strict=True):
            t = g.tensors[i]
            o = np.asarray(o)
            if t.quant is not None and o.dtype.kind in "iu":
                o = ((o.astype(np.float32) - np.float32(t.quant.zero_point[0]))
                     * np.float32(t.quant.scale[0]))
            o = o.astype(np.float32)
            outs.append(o[None] if add_batch else o)
        return outs

    @staticmethod
    def get_kpi_info(metadata) -> tuple[float, float] | None:
        """(DNN runtime ms, total ms) of a frame result, like picamera2's (dnn, dsp) runtimes."""
        if metadata is None:
            return None
        k = metadata["kpi"]
        return k["ms_npu"], k["ms_total"]

    def input_tensor_image(self, input_tensor=None) -> np.ndarray | None:
        """An input tensor (default: the last frame's; image mode carries it in the metadata) as
        an 8-bit image (q + 128), HxW or HxWx3."""
        t = self._last_tensor if input_tensor is None else np.asarray(input_tensor)
        if t is None:
            return None
        tw, th = self.get_input_size()
        t = np.asarray(t).view(np.int8) if np.asarray(t).dtype == np.uint8 else np.asarray(t)
        img = (t.astype(np.int16) + 128).astype(np.uint8).reshape(th, tw, -1)
        return img[..., 0] if img.shape[-1] == 1 else img

    # ---- frames
    def isp_params(self):
        from models.isp import IspParams

        tw, th = self.get_input_size()
        n = self.compiled.input_norm
        ch = self.compiled.inputs[0].shape[-1]
        return IspParams.make(
            *self.mode,
            roi=self.roi,
            size=(tw, th),
            channels=ch,
            norm_mul=tuple(n["mul"]) + (1,) * (3 - ch),
            norm_shift=tuple(n["shift"]) + (0,) * (3 - ch),
            norm_off=tuple(n["offset"]) + (-128,) * (3 - ch),
        )

    def _setup(self):
        from sw.soc import OUTPUT_MODES, SocSetup

        return SocSetup(self.compiled, self.isp_params(), OUTPUT_MODES[self.output_mode],
                        self.budget_cycles)

    def _reconfigure(self) -> None:
        if self._golden is not None:
            self._golden.setup = self._setup()
        if self._rtl is not None:
            self._rtl.configure(self._setup())

    def _transports(self):
        from sw.soc import GoldenSocTransport, RtlSocTransport, soc_layout

        if self.roi is None:
            raise UserError(
                "this model's input is not an image (1xHxWx1 or 1xHxWx3 int8); feed tensors"
            )
        if self._golden is None:
            setup = self._setup()
            if self.backend_name == "rtl":
                soc_layout(self.compiled)  # a model too big for the die: one line, before a build
                self._rtl = RtlSocTransport(setup, host_ops=self.backend.host,
                                            progress=self._progress, waves=self._waves)
            self._golden = GoldenSocTransport(setup, self.backend)
            self._golden.frame_counter = self._tensor_frames
        return self._golden, self._rtl

    def sensor_frame(self, image: np.ndarray) -> list[bytes]:
        """The sensor model's CSI-2 bursts of the next input frame."""
        k = self._in_frames
        self._in_frames += 1
        return sensor_bursts(image, self.mode, k & 0xFFFF, seed=self.seed + k)

    def capture(self, image: np.ndarray) -> FrameResult:
        """One frame of a scene image: sensor -> CSI-2 -> the die -> metadata -> host."""
        out = list(self.stream([self.sensor_frame(image)]))
        if len(out) != 1:
            raise RuntimeError(f"one sensor frame gave {len(out)} metadata frames")
        return out[0]

    def capture_bursts(self, bursts: list[bytes]) -> list[FrameResult]:
        """One input frame given as CSI-2 bursts (e.g. corrupted) -> the metadata frames it
        closes (usually one)."""
        return list(self.stream([bursts]))

    def stream(self, inputs) -> Iterator[FrameResult]:
        """Input frames (lists of CSI-2 bursts) -> one FrameResult per metadata frame, in order.
        On the RTL the next frame streams into the die while the current one infers."""
        from sw.soc import OutFrame, SocInterface, golden_equal

        golden, rtl = self._transports()

        def fed(it):
            for bursts in it:
                bursts = [bytes(b) for b in bursts]
                self.raw_bytes += sum(len(b) for b in bursts)
                golden.feed(bursts)
                yield bursts

        if rtl is None:
            for _ in fed(inputs):
                while golden.pending:
                    fr = golden.pending.pop(0)
                    b = golden.emit(fr)
                    self.output_bytes += sum(len(x) for x in golden.raw_out[self._raw_seen:])
                    self._raw_seen = len(golden.raw_out)
                    yield self._result(OutFrame(b, _parse(b)), fr.tensor, None)
            return
        for of in SocInterface(rtl).frames(fed(inputs)):
            gin = golden.pending.pop(0) if golden.pending else None
            exact = None
            self.output_bytes += sum(len(b) for b in rtl.raw_out[self._raw_seen:])
            self._raw_seen = len(rtl.raw_out)
            if self.compare:
                exact = golden_equal(golden, gin, of)
                # RAW mode: the forwarded bursts so far are a prefix of the golden copy (all of
                # it once the last metadata frame is out)
                exact &= rtl.raw_out == golden.raw_out[:len(rtl.raw_out)]
            else:
                golden.frame_counter += 1
            yield self._result(of, gin.tensor if gin is not None else None, exact)

    def forwarded_exact(self) -> bool | None:
        """RAW mode with compare: every forwarded burst so far equals the golden copy (call after
        the stream ends: then all of them must have arrived)."""
        if self._rtl is None or self._golden is None or not self.compare:
            return None
        return self._rtl.raw_out == self._golden.raw_out

    def _result(self, of, tensor, exact) -> FrameResult:
        p = of.parsed
        self.output_bytes += of.nbytes
        if not p.ok:
            r = FrameResult(frame_counter=p.frame_number, valid=False,
                            errors=[f"stream: {p.error}"], outputs=None, npu_outputs=None,
                            result=None, kpi=None, packets=len(of.bursts), metadata_bytes=0,
                            output_bytes=of.nbytes, image=None, bit_exact=exact)
            self._last = r
            return r
        md = p.metadata
        outputs = result = None
        if md.valid:
            outputs = self.backend.finish([t.data for t in md.tensors])
            result = decode_result(outputs, self.compiled, self.labels)
        if tensor is not None:   # the NPU's input tensor (batch dimension included)
            self._last_tensor = np.asarray(tensor).reshape(self.compiled.inputs[0].shape)
        kpi = md.kpi()
        r = FrameResult(
            frame_counter=md.frame_counter,
            valid=md.valid,
            errors=md.error_names(),
            outputs=outputs,
            npu_outputs=[t.data for t in md.tensors],
            result=result,
            kpi=kpi,
            packets=len(of.bursts),
            metadata_bytes=sum(len(b) - 6 for b in of.bursts if b and (b[0] & 0x3F) == 0x12),
            output_bytes=of.nbytes,
            image=p.image(),
            bit_exact=exact,
        )
        self._last = r
        return r

    def infer_tensor(self, tensor: np.ndarray) -> FrameResult:
        """One inference from a ready int8 input tensor, skipping sensor, RX and ISP (golden and
        isa NPU arithmetic only: the RTL die takes sensor frames)."""
        from hw.metadata import MetaFlag
        from models.metadata import Metadata, MetaTensor, frame_to_packets, pack
        from sw.soc import OutFrame

        if self.backend_name == "rtl":
            raise UserError("the RTL die takes sensor frames (capture an image); tensors go to "
                            "the golden or isa backend")
        d = self.compiled.inputs[0]
        t = np.asarray(tensor)
        if t.size != int(np.prod(d.shape)) or t.dtype != np.int8:
            raise UserError(
                f"input tensor must be int8 with {int(np.prod(d.shape))} elements "
                f"(shape {d.shape}), got {t.dtype} {t.shape}"
            )
        t = t.reshape(d.shape)
        out = self.backend.run_npu([t])
        tensors = [MetaTensor(np.asarray(v).reshape(o.shape), o.scale, o.zero_point)
                   for v, o in zip(out, self.compiled.outputs, strict=True)]
        fc = self.frame_counter
        if self._golden is not None:
            self._golden.frame_counter += 1
        else:
            self._tensor_frames += 1
        md = Metadata(fc, int(MetaFlag.VALID), tensors, 0, int(self.backend.last_cycles or 0),
                      int(self.backend.last_cycles or 0), int(round(self.config.clock_mhz * 1e3)))
        b = frame_to_packets(pack(md), fc)
        self._last_tensor = t
        return self._result(OutFrame(b, _parse(b)), t, None)

    def close(self) -> None:
        if self._rtl is not None:
            self._rtl.close()
            self._rtl = None


def _parse(bursts):
    from sw.soc import _parse_one

    return _parse_one(bursts)


@dataclass(frozen=True)
class NetworkIntrinsics:
    """What picamera2's NetworkIntrinsics says about a network, from the compiled model:
    ``task`` ('classification' or 'object detection'), ``labels``, ``input_size`` (w, h),
    ``inference_rate`` (the Device's frame rate) and ``bbox_normalization`` / ``bbox_order``
    (detections are in input-tensor pixels, (x0, y0, x1, y1))."""

    task: str
    labels: tuple | None
    input_size: tuple
    inference_rate: float
    bbox_normalization: bool = False
    bbox_order: str = "xy"

    @classmethod
    def of(cls, dev) -> NetworkIntrinsics:
        from sw.postprocess import match_detector

        g = dev.compiled.host_graph
        det = match_detector(g, dev.compiled.graph_outputs) is not None
        return cls("object detection" if det else "classification",
                   tuple(dev.labels) if dev.labels else None, dev.get_input_size(),
                   float(dev.fps or 0.0))


def _centered_roi(mode, tw, th) -> tuple[int, int, int, int]:
    """Largest even ROI centred in the sensor frame with the tensor's aspect ratio."""
    sw, sh = mode
    scale = min(sw / tw, sh / th)
    w = max(2, int(tw * scale) // 2 * 2)
    h = max(2, int(th * scale) // 2 * 2)
    return ((sw - w) // 4 * 2, (sh - h) // 4 * 2, w, h)


def _default_labels(compiled) -> list[str] | None:
    g = compiled.host_graph
    outs = [g.tensors[i].shape for i in compiled.graph_outputs]
    if "person" in g.name.lower() and len(outs) == 1 and int(np.prod(outs[0])) == 2:
        return ["no person", "person"]
    return None


def decode_result(outputs, compiled, labels=None) -> dict | None:
    """Decode: a known anchor-based detector (sw.postprocess.match_detector, by output structure)
    gives ``detections`` ({box [x0, y0, x1, y1] in input-tensor pixels, score, landmarks, class})
    after threshold and NMS; otherwise a single output is a classification (class index, label,
    dequantized score) and several outputs are summarised per output (shape, argmax, max)."""
    g = compiled.host_graph
    from sw.postprocess import decode_outputs

    det = decode_outputs(outputs, g, compiled.graph_outputs)
    if det is not None:  # a known anchor-based detector (by output structure): boxes after NMS
        n = len(det["detections"])
        boxes = " ".join(
            "[" + ",".join(f"{v:.0f}" for v in d["box"]) + f"]@{d['score']:.2f}"
            for d in det["detections"][:4]
        )
        return {
            **det,
            "label": f"{n} detection{'s' if n != 1 else ''}" + (f" {boxes}" if n else ""),
            "score": max((d["score"] for d in det["detections"]), default=0.0),
        }

    def top(o, t):
        o = np.asarray(o).reshape(-1)
        k = int(np.argmax(o))
        if t.quant is not None and t.dtype != "float32":
            score = float((int(o[k]) - int(t.quant.zero_point[0])) * float(t.quant.scale[0]))
        else:
            score = float(o[k])
        return k, score, (int(o[k]) if o.dtype.kind in "iu" else float(o[k]))

    if len(outputs) != 1:
        res = []
        for o, i in zip(outputs, compiled.graph_outputs, strict=True):
            k, score, _ = top(o, g.tensors[i])
            res.append({"shape": list(np.shape(o)), "argmax": k, "max": score})
        return {"outputs": res, "label": f"{len(res)} outputs", "score": res[0]["max"]}
    k, score, raw = top(outputs[0], g.tensors[compiled.graph_outputs[0]])
    return {
        "class": k,
        "label": labels[k] if labels and k < len(labels) else f"class {k}",
        "score": score,
        "raw": raw,
    }
