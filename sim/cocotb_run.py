"""Build an Amaranth component with Verilator (cached by hash) and run a cocotb test module on it.

Contract:
- The Verilog is generated from the component; the build directory is
  ``build/cocotb/<top>-<sha256(verilog, flags)[:16]>``, so structural parameters (config presets)
  build once and stimulus variations (seeds, back-pressure) reuse the build. A file lock makes
  concurrent pytest-xdist workers share one build safely.
- ``test_module`` is a dotted module name importable from the project root (e.g.
  ``tests.hw.tb_gemm``).
- Test parameters reach the cocotb module as JSON in the environment variable ``LOGICDIE_TB`` (read
  it with
  :func:`tb_params`).
- The C++ of cocotb builds is compiled at ``-O0`` (``LOGICDIE_COCOTB_OPT`` overrides; part of the
  cache key): a cocotb bench's time goes into Python coroutines and VPI calls, not the model's
  evaluation, and ``-O0`` builds 3–6× faster than Verilator's default ``-Os``.
- A finished build leaves a ``.built`` stamp and only its executable and generated sources (the
  precompiled headers and object files are deleted); a directory with the stamp is reused as is.
- ``WAVES=1`` in the environment (or ``waves=True``) builds with FST tracing and writes ``dump.fst``
  in the run directory, whose path is printed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from sim.toolchain import build_dir, project_root, setup_env, verilator_make_flags

__all__ = ["verilog_of", "run_cocotb", "tb_params", "VERILATOR_FLAGS"]

#: Amaranth's Verilog has width-extension warnings by construction; they are not errors.
VERILATOR_FLAGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3"]


def verilog_of(component, name: str) -> str:
    """Verilog text of an Amaranth ``wiring.Component`` with top module ``name``."""
    from amaranth.back import verilog

    return verilog.convert(component, name=name, emit_src=False)


def _waves_requested(waves: bool | None) -> bool:
    if waves is not None:
        return waves
    return os.environ.get("WAVES", "0") not in ("", "0")


def run_cocotb(
    component,
    top: str,
    test_module: str,
    params: dict | None = None,
    *,
    testcase: str | None = None,
    waves: bool | None = None,
    seed: int = 1,
    sources: tuple[Path, ...] = (),
) -> Path:
    """Build ``component`` as Verilog module ``top`` and run cocotb ``test_module`` against it.
    ``sources``: more Verilog files to build with it (models of the vendor primitives the
    component instantiates, e.g. ``sim/verilog/MULT18X18D.v``; part of the build's hash).

    Raises (via cocotb's runner) if any cocotb test fails. Returns the run directory.
    """
    from cocotb_tools.runner import get_runner

    setup_env()
    _fix_pch_flag()
    waves = _waves_requested(waves)
    text = verilog_of(component, top)
    flags = list(VERILATOR_FLAGS) + (["--trace-fst", "--trace-structs"] if waves else [])
    opt = cxx_opt()
    extra = "".join(Path(f).read_text() for f in sources)
    key = hashlib.sha256((text + "\0" + extra + "\0" + " ".join(flags) + "\0" + opt).encode()
                         ).hexdigest()[:16]
    bdir = build_dir("cocotb", f"{top}-{key}")
    src = bdir / f"{top}.v"
    with open(bdir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runner = get_runner("verilator")
        stamp = bdir / ".built"
        # The directory's name is the hash of the Verilog, the flags and the optimization, so a
        # finished build (its stamp and its executable) is this build: no Verilator, no make.
        if not (stamp.exists() and (bdir / top).exists()):
            stamp.unlink(missing_ok=True)
            src.write_text(text)
            runner.build(
                sources=[src, *(Path(f).resolve() for f in sources)],
                hdl_toplevel=top,
                build_dir=bdir,
                build_args=flags,
                waves=waves,
                always=True,
                log_file=bdir / "build.log",
            )
            _drop_intermediates(bdir)
            stamp.touch()
    rundir = Path(tempfile.mkdtemp(prefix="run-", dir=bdir))
    # The simulator's embedded Python imports the test module by dotted name (e.g.
    # "tests.hw.tb_gemm").
    pypath = os.pathsep.join(p for p in (str(project_root()), os.environ.get("PYTHONPATH")) if p)
    # cocotb's runner sets the simulator's PYTHONPATH from this process's sys.path (extra_env's
    # PYTHONPATH is overridden), so the project root must be on sys.path outside pytest too.
    if str(project_root()) not in sys.path:
        sys.path.insert(0, str(project_root()))
    env = {"LOGICDIE_TB": json.dumps(params or {}), "PYTHONPATH": pypath}
    results = runner.test(
        test_module=test_module,
        hdl_toplevel=top,
        # named, since a reused build never called runner.build (which would have told it)
        hdl_toplevel_lang="verilog",
        build_dir=bdir,
        test_dir=rundir,
        testcase=testcase,
        seed=seed,
        extra_env=env,
        waves=waves,
        log_file=rundir / "sim.log",
    )
    _raise_on_failures(results)
    if waves:
        print(f"waves: {rundir}")
    return rundir


def _drop_intermediates(bdir: Path) -> None:
    """Delete what only the build needed: the precompiled headers (~144 MB of a ~150 MB build)
    and the object files. The executable and the generated sources stay; a build directory is
    then ~5 MB, so a cold ``make test`` needs a few hundred MB of disk for its builds, not 3 GB."""
    for pattern in ("*.gch", "*.o", "*.a"):
        for f in bdir.glob(pattern):
            f.unlink(missing_ok=True)


def cxx_opt() -> str:
    """C++ optimization of cocotb builds: ``$LOGICDIE_COCOTB_OPT`` or ``-O0``."""
    return os.environ.get("LOGICDIE_COCOTB_OPT", "-O0")


def _fix_pch_flag() -> None:
    """The runner's ``make`` inherits MAKEFLAGS: verilated.mk's variables for every Verilator
    build (sim.toolchain.verilator_make_flags) at this module's optimization."""
    os.environ["MAKEFLAGS"] = verilator_make_flags(os.environ.get("MAKEFLAGS", ""), cxx_opt())


def _raise_on_failures(results_xml: Path) -> None:
    from cocotb_tools.check_results import get_results

    num_tests, num_failed = get_results(results_xml)
    if num_tests == 0:
        raise AssertionError(f"cocotb ran no test ({results_xml})")
    if num_failed:
        raise AssertionError(f"{num_failed} of {num_tests} cocotb tests failed ({results_xml})")


def tb_params() -> dict:
    """Inside a cocotb test: the parameters passed by :func:`run_cocotb`."""
    return json.loads(os.environ.get("LOGICDIE_TB", "{}"))
