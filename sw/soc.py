"""Host side of the logic die (hw/soc.py), in Glasgow's layering: the gateware; transports that take
the sensor's CSI-2 bursts and return the die's CSI-2 output bursts; :class:`SocInterface` on top.

* :func:`soc_layout` / :func:`soc_image`: where the host puts the staging buffers, the two programs
  (the model's program prefixed with a COPY of staging buffer k into the model's input tensor and a
  SYNC) and the metadata TX table, above the compiled model's memory.
* :class:`GoldenSocTransport` (``golden`` or ``isa`` NPU arithmetic): the golden pipeline of the
  whole die: models.csi2 parser -> models.isp -> backend.run_npu -> models.metadata packets. Its
  frame rules are hw/soc.py's (module docstring). KPI: given (the RTL's measured values, for
  ``--compare``) or estimated (ISA cycle model; 0 for golden).
* :class:`RtlSocTransport`: the ``soc`` top in Verilator (sim/harness/soc.py): uploads the image
  through the host port, sets the CSRs, pushes bursts and collects the output; serves HOST calls.
* :class:`SocInterface`: frames of bursts in, :class:`OutFrame` (bursts + parsed metadata) out.

Equality contract: for the same input bursts, configuration and per-frame KPI, the golden transport
emits exactly the RTL's output bytes (:func:`golden_equal`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from hw import regmap
from hw.errors import UserError
from hw.isa import Opcode, encode_program
from hw.metadata import DEFAULT_LINE_BYTES, TABLE_ALIGN, MetaFlag
from hw.regmap import OutputMode
from models import csi2
from models.isp import IspParams, isp_frame
from models.metadata import (
    Metadata,
    MetaTensor,
    ParsedFrame,
    frame_to_packets,
    pack,
    parse_stream,
    tx_table,
)

__all__ = ["SocLayout", "soc_layout", "soc_programs", "soc_image", "SocSetup", "OutFrame",
           "forward", "is_forwarded", "split_output",
           "GoldenSocTransport", "RtlSocTransport", "SocInterface", "golden_equal", "kpi_of",
           "OUTPUT_MODES"]

#: CLI names of the output modes.
OUTPUT_MODES = {"metadata": OutputMode.METADATA, "image+metadata": OutputMode.IMAGE,
                "raw+metadata": OutputMode.RAW}


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


@dataclass(frozen=True)
class SocLayout:
    """SRAM byte addresses of what the SoC adds to a compiled model."""

    stage: tuple[int, int]
    prog: tuple[int, int]
    table: int
    end: int


def soc_programs(compiled, stage: tuple[int, int]) -> list[bytes]:
    """The two programs: COPY staging buffer k -> the model's input, SYNC, the model's program."""
    from sw.compiler import _copy_rows

    d = compiled.inputs[0]
    row = int(np.prod(d.shape[2:])) if len(d.shape) == 4 else d.nbytes
    rows = d.nbytes // row
    out = []
    for src in stage:
        pre = _copy_rows(src, d.addr, row, rows, row, row) + [{"opcode": Opcode.SYNC}]
        out.append(encode_program(pre + list(compiled.program)))
    return out


def soc_layout(compiled) -> SocLayout:
    """Staging buffers, programs and the TX table above the model's memory; UserError if the
    preset's SRAM is too small."""
    cfg = compiled.config
    if len(compiled.inputs) != 1:
        raise UserError(f"the logic die feeds one input tensor; this model's NPU takes "
                        f"{len(compiled.inputs)}")
    nbytes = compiled.inputs[0].nbytes
    a = _align(compiled.memory["total_bytes"], 64)
    s0 = a
    s1 = _align(s0 + nbytes, 64)
    p0 = _align(s1 + nbytes, 64)
    progs = soc_programs(compiled, (s0, s1))
    plen = max(len(p) for p in progs)
    p1 = _align(p0 + plen, 64)
    t = _align(p1 + plen, TABLE_ALIGN)
    end = t + len(table_bytes(compiled))
    if end > cfg.sram_bytes:
        raise UserError(
            f"model plus the die's staging buffers need {end:,} bytes of SRAM; preset "
            f"'{cfg.name}' has {cfg.sram_bytes:,}: use a larger preset")
    return SocLayout((s0, s1), (p0, p1), t, end)


def table_bytes(compiled) -> bytes:
    """The metadata TX table of the model's NPU outputs (models.metadata.tx_table)."""
    return tx_table([(d.addr, (tuple(d.shape), d.dtype, d.scale, d.zero_point))
                     for d in compiled.outputs])


def soc_image(compiled, layout: SocLayout) -> list[tuple[int, bytes]]:
    """Everything the host uploads: the model's image, the two programs, the TX table."""
    progs = soc_programs(compiled, layout.stage)
    return (list(compiled.image) + [(layout.prog[0], progs[0]), (layout.prog[1], progs[1]),
                                    (layout.table, table_bytes(compiled))])


@dataclass
class SocSetup:
    """What the host configures: the compiled model, the ISP parameters, the output mode and the
    frame budget in cycles (0: none)."""

    compiled: object
    isp: IspParams
    mode: OutputMode = OutputMode.METADATA
    budget: int = 0

    @property
    def config(self):
        return self.compiled.config


@dataclass
class OutFrame:
    """One metadata frame of the die's output: its bursts and what the parser made of them."""

    bursts: list
    parsed: ParsedFrame

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.bursts)


@dataclass
class _InFrame:
    """A closed input frame (one RX status): flags and, when clean and complete, its tensor."""

    flags: int
    tensor: np.ndarray | None


def is_forwarded(burst: bytes) -> bool:
    """An output burst that is not the metadata's: its header's VC (after ECC correction) is not
    0, or it has no usable header (RAW mode forwards the sensor's bursts on VC 1, corrupt ones
    included)."""
    if len(burst) < 4:
        return True
    status, h = csi2.ecc_decode(burst[:4])
    return status == csi2.EccStatus.DETECTED or (h >> 6) & 3 != 0


def forward(bursts) -> list[bytes]:
    """The RAW-mode copy of input bursts (hw/soc.py): byte 0 bit 6 toggled (VC bit 0) and byte 3
    (ECC) adjusted by that bit's parity."""
    from hw.csi2 import ecc_parity

    out = []
    for b in bursts:
        b = bytearray(b)
        if len(b) > 0:
            b[0] ^= 0x40
        if len(b) > 3:
            b[3] ^= ecc_parity(1 << 6)
        out.append(bytes(b))
    return out


def split_output(bursts: list[bytes]) -> tuple[list[list[bytes]], list[bytes]]:
    """Output bursts -> (metadata frames, one list per FS..FE on VC 0; forwarded bursts)."""
    meta = [b for b in bursts if not is_forwarded(b)]
    return _split_frames(meta), [b for b in bursts if is_forwarded(b)]


def _split_frames(bursts: list[bytes]) -> list[list[bytes]]:
    """Metadata bursts -> one list per FS..FE (the die never interleaves frames)."""
    out, cur = [], None
    for b in bursts:
        dt = b[0] & 0x3F if b else -1
        if dt == 0x00 or cur is None:
            cur = []
            out.append(cur)
        cur.append(b)
        if dt == 0x01 and len(b) == 4:
            cur = None
    return out


class GoldenSocTransport:
    """The golden die (module docstring). ``backend`` is a sw.runtime backend (golden or isa) of
    the same compiled model."""

    def __init__(self, setup: SocSetup, backend):
        self.setup = setup
        self.backend = backend
        self.name = f"golden-{backend.name}"
        self.parser = csi2.Parser()
        self._closed = 0
        self.frame_counter = 0
        self.pending: list[_InFrame] = []
        #: RAW mode: the forwarded copy of every input burst so far
        self.raw_out: list[bytes] = []

    def feed(self, bursts) -> None:
        """Parse more input; closed frames join :attr:`pending`."""
        bursts = [bytes(b) for b in bursts]
        if self.setup.mode == OutputMode.RAW:
            self.raw_out += forward(bursts)
        res = self.parser.feed(bursts)
        p = self.setup.isp
        for k in range(self._closed, len(res.statuses)):
            _, flags = res.statuses[k]
            l0, l1 = res.frame_lines[k]
            lines = [ln.pixels for ln in res.lines[l0:l1]]
            tensor = None
            if not flags and len(lines) == p.sensor_h and all(x.size == p.sensor_w
                                                               for x in lines):
                tensor = isp_frame(np.stack(lines).astype(np.int64), p)
            self.pending.append(_InFrame(flags, tensor))
        self._closed = len(res.statuses)
        # closed frames' lines are done with (memory stays flat over long runs); an open frame
        # keeps its lines, renumbered from 0
        st = self.parser._state
        keep = st.line0 if st.in_frame else len(res.lines)
        del res.lines[:keep]
        st.line0 = 0

    def emit(self, frame: _InFrame, kpi: dict | None = None) -> list[bytes]:
        """One metadata frame's bursts. ``kpi`` (cycles_isp, cycles_npu, cycles_total, cycles_tx):
        the RTL's values, or None to estimate."""
        s, c = self.setup, self.setup.compiled
        cfg = s.config
        fc = self.frame_counter
        self.frame_counter += 1
        tensors, image = [], None
        if frame.flags:
            flags = MetaFlag.RX_ERROR
        elif frame.tensor is None:
            flags = MetaFlag.ISP_ERROR
        else:
            out = self.backend.run_npu([frame.tensor[None]])
            tensors = [MetaTensor(np.asarray(v).reshape(d.shape), d.scale, d.zero_point)
                       for v, d in zip(out, c.outputs, strict=True)]
            flags = MetaFlag.VALID
            if s.mode == OutputMode.IMAGE:
                flags |= MetaFlag.IMAGE
                image = frame.tensor
        if kpi is None:
            inferred = frame.tensor is not None and not frame.flags
            c_isp = s.isp.sensor_w * s.isp.sensor_h // cfg.isp_pixels_per_clock if inferred else 0
            c_npu = int(self.backend.last_cycles or 0) if inferred else 0
            kpi = {"cycles_isp": c_isp, "cycles_npu": c_npu, "cycles_total": c_isp + c_npu,
                   "cycles_tx": 0}
        if flags & MetaFlag.VALID and s.budget and kpi["cycles_total"] > s.budget:
            flags, tensors, image = MetaFlag.TIMEOUT, [], None
        md = Metadata(fc, int(flags), tensors, kpi["cycles_isp"], kpi["cycles_npu"],
                      kpi["cycles_total"], int(round(cfg.clock_mhz * 1e3)), kpi["cycles_tx"])
        return frame_to_packets(pack(md), fc, image=image, line_bytes=DEFAULT_LINE_BYTES)

    def process(self, bursts, kpis: list[dict] | None = None) -> list[list[bytes]]:
        """Feed bursts; emit every frame they close (``kpis``: one per frame, or None)."""
        self.feed(bursts)
        out = []
        for k, fr in enumerate(self.pending):
            out.append(self.emit(fr, kpis[k] if kpis else None))
        self.pending.clear()
        return out


class RtlSocTransport:
    """The logic die in Verilator (sim/harness/soc.py). ``stall``: probability the output is not
    ready in a cycle (back-pressure)."""

    name = "rtl"

    def __init__(self, setup: SocSetup, host_ops=None, waves=None, stall: float = 0.0,
                 progress: bool = False):
        from sim.harness.soc import SocSim

        self.setup = setup
        self.host = host_ops
        self.stall = stall
        self.sim = SocSim(setup.config, waves=waves, progress=progress)
        self.layout = soc_layout(setup.compiled)
        self._upload()
        self.configure(setup)
        self.fe_done = 0
        #: seconds spent in the C++ loop / in this transport's calls
        self.loop_s = 0.0
        #: RAW mode: the forwarded bursts received so far
        self.raw_out: list[bytes] = []

    def _upload(self) -> None:
        for addr, blob in soc_image(self.setup.compiled, self.layout):
            self.sim.write_mem(addr, bytes(blob))

    def configure(self, setup: SocSetup) -> None:
        """CSRs from the setup (the die is disabled while they change)."""
        sim, lay = self.sim, self.layout
        sim.csr_write("SOC_CFG", 0)
        fields = setup.isp.hw_fields()
        for name, fld, idx in regmap.isp_csr_fields():
            v = fields[fld] if idx is None else fields[fld][idx]
            sim.csr_write(name, int(v))
        for k in range(2):
            sim.csr_write(f"STAGE{k}_ADDR", lay.stage[k])
            sim.csr_write(f"PROG{k}_ADDR", lay.prog[k])
        sim.csr_write("MD_TABLE_ADDR", lay.table)
        sim.csr_write("FRAME_BUDGET", setup.budget)
        mode_lo = regmap.SOC_CFG_BITS["mode"][0]
        en = regmap.SOC_CFG_BITS["enable"][0]
        sim.csr_write("SOC_CFG", int(setup.mode) << mode_lo | 1 << en)
        self.setup = setup

    def push(self, bursts) -> None:
        self.sim.push_bursts(bursts)

    def run(self, frames: int, max_cycles: int) -> list[list[bytes]]:
        """Clock until ``frames`` more metadata frames have left (or the die is quiet with no input
        left); serves HOST calls. Returns the output bursts split per frame."""
        import time

        sim = self.sim
        target = self.fe_done + frames
        quiet = 4 * self.setup.config.max_line_pixels + 4000
        t0 = time.perf_counter()
        budget = max_cycles
        while True:
            c0 = sim.cycle
            r = sim.run(budget, fe_target=target, quiet=quiet, stall=self.stall)
            budget -= sim.cycle - c0
            if r == "irq":
                self._host_call()
                continue
            if r == "max_cycles":
                raise RuntimeError(
                    f"the logic die produced {sim.fe_count - self.fe_done} of {frames} metadata "
                    f"frame(s) in {max_cycles:,} cycles (SOC_STATUS=0x"
                    f"{sim.csr_read('SOC_STATUS'):x}, NPU STATUS=0x{sim.csr_read('STATUS'):x})")
            break
        self.loop_s += time.perf_counter() - t0
        self.fe_done = sim.fe_count
        frames, raw = split_output(sim.pull_bursts())
        self.raw_out += raw
        return frames

    def _host_call(self) -> None:
        """Serve the NPU's HOST instruction through the host port (as RtlBackend does)."""
        from sw.runtime import _as_bytes, _from_bytes, _nbytes

        sim, c = self.sim, self.setup.compiled
        if self.host is None:
            raise RuntimeError("the NPU asked for a host call but no host ops were given")
        call = c.host_calls[sim.csr_read("HOST_CALL")]
        vals = {d["tensor"]: _from_bytes(sim.read_mem(d["addr"], _nbytes(d)), d["shape"],
                                         d["dtype"]) for d in call["inputs"]}
        outs = self.host.run_ops(call["ops"], dict(vals))
        for d in call["outputs"]:
            sim.write_mem(d["addr"], _as_bytes(np.asarray(outs[d["tensor"]], d["dtype"])))
        sim.csr_write("CTRL", 1 << regmap.CTRL_BITS["HOST_DONE"])

    def kpi_registers(self) -> dict:
        return {k: self.sim.csr_read(k) for k in regmap.SOC_KPI}

    def counters(self) -> dict:
        names = [c.name for c in regmap.soc_csrs()
                 if c.name.startswith("RX_") or c.name in regmap.SOC_COUNTERS]
        return {n: self.sim.csr_read(n) for n in names}

    def close(self) -> None:
        self.sim.close()


def frame_cycles_bound(setup: SocSetup) -> int:
    """Cycles one frame may take in the RTL before it is reported stuck: 20x the ISA model's NPU
    estimate plus the sensor frame and a million."""
    from sw.compiler import estimate

    return (20 * estimate(setup.compiled)["cycles"] + 20 * setup.isp.sensor_w * setup.isp.sensor_h
            + 1_000_000)


class SocInterface:
    """The die over a transport: iterate input frames (lists of bursts) -> OutFrames, one per
    metadata frame, in order. The RTL keeps one frame ahead (frame N+1 streams in while frame N
    infers)."""

    def __init__(self, transport):
        self.transport = transport

    def frames(self, inputs: Iterable[list[bytes]]) -> Iterator[OutFrame]:
        tr = self.transport
        if isinstance(tr, RtlSocTransport):
            yield from self._rtl_frames(inputs)
            return
        for bursts in inputs:
            for b in tr.process(bursts):
                yield OutFrame(b, _parse_one(b))

    def _rtl_frames(self, inputs) -> Iterator[OutFrame]:
        tr = self.transport
        bound = frame_cycles_bound(tr.setup)
        it = iter(inputs)
        queued = 0
        for _ in range(2):       # two frames in: the second streams while the first infers
            nxt = next(it, None)
            if nxt is None:
                break
            tr.push(nxt)
            queued += 1
        while queued:
            for b in tr.run(1, bound):
                yield OutFrame(b, _parse_one(b))
            queued -= 1
            nxt = next(it, None)
            if nxt is not None:
                tr.push(nxt)
                queued += 1


def _parse_one(bursts: list[bytes]) -> ParsedFrame:
    p = parse_stream(bursts)
    if len(p) != 1:
        return ParsedFrame(-1, error=f"{len(p)} frames in one FS..FE group")
    return p[0]


def kpi_of(parsed: ParsedFrame) -> dict | None:
    md = parsed.metadata
    if md is None:
        return None
    return {"cycles_isp": md.cycles_isp, "cycles_npu": md.cycles_npu,
            "cycles_total": md.cycles_total, "cycles_tx": md.cycles_tx}


def golden_equal(golden: GoldenSocTransport, frame: _InFrame | None, out: OutFrame) -> bool:
    """Emit ``frame`` on the golden die with ``out``'s measured KPI and compare every byte with
    the RTL's ``out`` (the equality contract of the module docstring)."""
    kpi = kpi_of(out.parsed)
    if frame is None or kpi is None:
        return False
    return golden.emit(frame, kpi) == list(out.bursts)
