"""Host runtime: backends over one compiled model and a picamera2-IMX500-shaped ``Device``.

Backends (:func:`make_backend`): ``golden`` (NumPy graph executor), ``isa`` (the functional ISA
simulator with its cycle model) and ``rtl`` (the RTL NPU of hw/npu.py in Verilator through the C++
harness of sim/harness/npu.py; cycles and per-layer times from its counters and retire trace).
Every backend has ``run(inputs) -> outputs`` (graph inputs and outputs exactly as the model
declares them, bit-exact with TFLM), ``run_npu(tensors) -> NPU output tensors`` (what the ISP
feeds and the metadata carries), ``last_cycles`` (None for golden) and ``last_stats``
(per-layer cycles/utilization for isa and rtl).

:class:`Device` runs the whole functional pipeline per frame: sensor model -> CSI-2 -> golden ISP ->
backend -> metadata packets -> parser -> decoded outputs, with the methods picamera2's IMX500 helper
has (``get_outputs``, ``get_output_shapes``, ``get_input_size``, ``get_kpi_info``,
``input_tensor_image``, ``set_inference_roi_abs``).
"""

from __future__ import annotations

import sys
import time
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
    """picamera2-IMX500-shaped device over a backend: frame in, metadata out, decoded on the host.

    ``model``: TFLite path/bytes, bundle path/bytes, Graph or Compiled. ``output_mode``: 'metadata'
    or 'image+metadata'. ``fps``: frame rate whose period bounds the inference (slower -> invalid
    frame).
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
    ):
        from models.zoo import __file__ as zoo_init

        if model is None:
            model = Path(zoo_init).with_name("person_detect.tflite")
        from sw.postprocess import prepare_model  # known detector: its NCHW/BGR input -> NHWC RGB

        model = prepare_model(model)
        if output_mode not in ("metadata", "image+metadata"):
            raise UserError(f"bad output mode {output_mode!r}: metadata or image+metadata")
        self.config = preset(config)
        self.backend = make_backend(backend, model, self.config)
        self.compiled = self.backend.compiled
        self.mode = parse_sensor_mode(sensor_mode)
        self.output_mode = output_mode
        self.fps = fps
        self.seed = seed
        self.frame_counter = 0
        self.labels = labels or _default_labels(self.compiled)
        d = self.compiled.inputs[0]
        if len(d.shape) != 4 or d.shape[0] != 1 or d.shape[3] not in (1, 3) or d.dtype != "int8":
            self.roi = None
        else:
            self.roi = _centered_roi(self.mode, d.shape[2], d.shape[1])
        self._last: FrameResult | None = None
        self._last_tensor = None

    # ---- picamera2-shaped queries
    def get_input_size(self) -> tuple[int, int]:
        """(width, height) of the network input tensor."""
        s = self.compiled.inputs[0].shape
        return (int(s[2]), int(s[1])) if len(s) == 4 else (int(s[-1]), 1)

    def get_output_shapes(self) -> list[tuple]:
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

    def get_outputs(self, metadata: FrameResult | None = None, add_batch: bool = False):
        """The model's outputs of the last (or given) frame, None if that frame is invalid."""
        r = metadata or self._last
        if r is None or not r["valid"]:
            return None
        outs = r["outputs"]
        return [o[None] if add_batch else o for o in outs]

    def get_kpi_info(self, metadata: FrameResult | None = None):
        """(npu_ms, total_ms) of the last (or given) frame, as picamera2's (dnn, dsp) runtimes."""
        r = metadata or self._last
        if r is None:
            return None
        return r["kpi"]["ms_npu"], r["kpi"]["ms_total"]

    def input_tensor_image(self) -> np.ndarray | None:
        """The last input tensor as an 8-bit image (q + 128), HxW or HxWx3."""
        t = self._last_tensor
        if t is None:
            return None
        img = (t.astype(np.int16) + 128).astype(np.uint8)
        img = img.reshape(img.shape[-3:]) if img.ndim == 4 else img
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

    def capture(self, image: np.ndarray) -> FrameResult:
        """One frame of a scene image: sensor -> CSI-2 -> RX -> ISP -> NPU -> metadata -> host."""
        from models.isp import isp_frame

        if self.roi is None:
            raise UserError(
                "this model's input is not an image (1xHxWx1 or 1xHxWx3 int8); feed tensors"
            )
        fc = self.frame_counter
        bursts = sensor_bursts(image, self.mode, fc & 0xFFFF, seed=self.seed + fc)
        raw, rx_flags = raw_from_bursts(bursts, self.mode)
        p = self.isp_params()
        cycles_isp = self.mode[0] * self.mode[1] // self.config.isp_pixels_per_clock
        if raw is None:
            return self._emit(None, rx_error=True, cycles_isp=cycles_isp)
        tensor = isp_frame(raw, p)[None]
        return self._emit(tensor, rx_error=bool(rx_flags), cycles_isp=cycles_isp)

    def infer_tensor(self, tensor: np.ndarray) -> FrameResult:
        """One frame from a ready int8 input tensor (skips sensor and ISP)."""
        d = self.compiled.inputs[0]
        t = np.asarray(tensor)
        if t.size != int(np.prod(d.shape)) or t.dtype != np.int8:
            raise UserError(
                f"input tensor must be int8 with {int(np.prod(d.shape))} elements "
                f"(shape {d.shape}), got {t.dtype} {t.shape}"
            )
        return self._emit(t.reshape(d.shape), rx_error=False, cycles_isp=0)

    def _emit(self, tensor, rx_error: bool, cycles_isp: int) -> FrameResult:
        from hw.metadata import MetaFlag
        from models.metadata import Metadata, MetaTensor, frame_to_packets, pack, parse_stream

        c = self.compiled
        fc = self.frame_counter
        self.frame_counter += 1
        flags = 0
        tensors = []
        cycles_npu = 0
        if tensor is not None:
            self._last_tensor = tensor
            npu_out = self.backend.run_npu([tensor])
            cycles_npu = int(self.backend.last_cycles or 0)
            tensors = [
                MetaTensor(np.asarray(v).reshape(d.shape), d.scale, d.zero_point)
                for v, d in zip(npu_out, c.outputs, strict=True)
            ]
        if rx_error:
            flags |= MetaFlag.RX_ERROR
        if tensor is None:
            flags |= MetaFlag.ISP_ERROR
        payload = sum(t.data.nbytes for t in tensors)
        cycles_tx = (payload + 256) // max(1, self.config.csi2_lanes_bytes)
        cycles_total = cycles_isp + cycles_npu + cycles_tx
        budget = self.config.clock_mhz * 1e6 / self.fps if self.fps else float("inf")
        if cycles_total > budget:
            flags |= MetaFlag.TIMEOUT
        if tensor is not None and not flags & (MetaFlag.TIMEOUT | MetaFlag.ISP_ERROR):
            flags |= MetaFlag.VALID
        else:
            tensors = []
        image = None
        if self.output_mode == "image+metadata" and tensor is not None:
            flags |= MetaFlag.IMAGE
            image = tensor
        md = Metadata(
            fc,
            int(flags),
            tensors,
            cycles_isp,
            cycles_npu,
            cycles_total,
            int(round(self.config.clock_mhz * 1e3)),
        )
        blob = pack(md)
        packets = frame_to_packets(blob, fc, image=image)
        parsed = parse_stream(packets)
        if len(parsed) != 1 or not parsed[0].ok:
            raise RuntimeError(f"metadata round trip failed: {[p.error for p in parsed]}")
        got = parsed[0].metadata
        outputs = None
        result = None
        if got.valid:
            outputs = self.backend.finish([t.data for t in got.tensors])
            result = decode_result(outputs, c, self.labels)
        r = FrameResult(
            frame_counter=got.frame_counter,
            valid=got.valid,
            errors=got.error_names(),
            outputs=outputs,
            npu_outputs=[t.data for t in got.tensors],
            result=result,
            kpi=got.kpi(),
            packets=len(packets),
            metadata_bytes=len(blob),
            image=parsed[0].image(),
        )
        self._last = r
        return r


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
        return {
            **det,
            "label": f"{n} detection{'s' if n != 1 else ''}",
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
