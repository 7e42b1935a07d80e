"""Build a Verilog top plus a C++ harness into a shared library with Verilator (cached by hash).

Contract (used by sim/harness/npu.py and sim/harness/pixel.py):

- The build directory is ``build/harness/<name>-<key>/`` with ``key = sha256(verilog, harness
  source, Verilator flags, C flags)[:16]``; the library is ``lib<name>_<key>.so`` (unique per
  build, so several builds can be loaded into one process with ctypes).
- A file lock makes concurrent builds (pytest-xdist workers, parallel CLI runs) safe: the second
  waits and reuses the first's library.
- After a successful build only the library, the Verilog and ``build.log`` stay (the object tree
  is deleted: ~150 MB per build, mostly precompiled headers).
- ``build.log`` in the build directory keeps Verilator's and the compiler's output.
- Generating a big top's Verilog only to hash it takes minutes (the ``default`` NPU: 1–3 min), so
  a second key comes first: :func:`hw_digest` (every ``hw/*.py`` file, the Amaranth version) plus
  the caller's parameters, the harness source and the flags. ``build/harness/index/<name>-<key>``
  names the library built for it; when it exists the Verilog is not generated at all. Any edit
  under hw/ changes that key, and the Verilog hash below it still decides whether to rebuild.
- :data:`FLAGS` are the Verilator flags of every harness build; :func:`cxx_opt` the C++
  optimization of the hot code (Verilator's ``OPT_FAST`` and ``OPT_GLOBAL``: the model's
  evaluation, the runtime library and the harness; ``LOGICDIE_CXX_OPT``, default ``-O2``; part of
  the cache key). Verilator's "slow" files (constructors, initial blocks) keep ``OPT_SLOW``'s
  default, no optimization: an ``-O`` in ``-CFLAGS`` would override it for every file and only
  lengthen the build.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from sim.toolchain import build_dir, project_root, setup_env, verilator_make_flags

__all__ = ["FLAGS", "WAVE_FLAGS", "cxx_opt", "hw_digest", "build_harness"]

#: Amaranth's Verilog has width-extension warnings by construction; they are not errors.
FLAGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3"]
WAVE_FLAGS = ["--trace-fst", "--trace-structs"]


def cxx_opt() -> str:
    """C++ optimization flag of harness builds: ``$LOGICDIE_CXX_OPT`` or ``-O2``."""
    return os.environ.get("LOGICDIE_CXX_OPT", "-O2")


def hw_digest() -> str:
    """Digest of everything a top's Verilog is generated from: the hw/ sources and Amaranth."""
    from importlib.metadata import version

    h = hashlib.sha256(version("amaranth").encode())
    for f in sorted((project_root() / "hw").rglob("*.py")):
        h.update(f.relative_to(project_root()).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def build_harness(name: str, top: str, verilog: Callable[[], str], source: Path, *,
                  params: str, defines: dict[str, int], waves: bool = False) -> Path:
    """Shared library of Verilog module ``top`` built with harness ``source``.

    ``verilog()`` generates the Verilog text (called only when the index has no library for
    ``params`` — the top's parameters, e.g. the config digest — at this :func:`hw_digest`).
    ``defines`` become ``-D`` C flags of the harness; ``waves`` adds FST tracing (the harness must
    honour its own ``*_WAVES`` define). Returns the library path; raises ``RuntimeError`` naming
    the build log when Verilator or the compiler fails.
    """
    flags = FLAGS + (WAVE_FLAGS if waves else [])
    opt = cxx_opt()
    cflags = " ".join(["-fPIC", *(f"-D{k}={v}" for k, v in sorted(defines.items()))])
    tail = [source.read_text(), " ".join(flags), cflags, opt]
    skey = hashlib.sha256("\0".join([hw_digest(), params, *tail]).encode()).hexdigest()[:16]
    index = build_dir("harness", "index") / f"{name}-{skey}"
    if index.exists():
        known = Path(index.read_text().strip())
        if known.exists():
            return known
    lib = _build(name, top, verilog(), source, flags, cflags, opt, tail)
    # (a temporary file per process: two workers that both missed the index would otherwise
    # share one, and the second's replace finds it gone -- FileNotFoundError under xdist)
    tmp = index.with_name(f"{index.name}.{os.getpid()}.tmp")
    tmp.write_text(str(lib))
    tmp.replace(index)
    return lib


def _build(name, top, verilog: str, source: Path, flags, cflags, opt, tail) -> Path:
    key = hashlib.sha256("\0".join([verilog, *tail]).encode()).hexdigest()[:16]
    bdir = build_dir("harness", f"{name}-{key}")
    lib = bdir / f"lib{name}_{key}.so"
    with open(bdir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if lib.exists():
            return lib
        vfile = bdir / f"{top}.v"
        vfile.write_text(verilog)
        env = setup_env(dict(os.environ))
        env["MAKEFLAGS"] = verilator_make_flags(env.get("MAKEFLAGS", ""), opt)
        cmd = ["verilator", "--cc", "--exe", "--build", "-j", "2", *flags,
               "--top-module", top, "--prefix", "Vtop", "-Mdir", str(bdir / "obj"),
               "-CFLAGS", cflags, "-LDFLAGS", "-shared", "-o", str(lib), str(vfile), str(source)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        (bdir / "build.log").write_text(r.stdout + r.stderr)
        if r.returncode or not lib.exists():
            raise RuntimeError(f"{name} harness build failed, see {bdir / 'build.log'}")
        # Only the library is reused (a build runs only when it is missing): the object tree,
        # ~150 MB of it precompiled headers, goes.
        shutil.rmtree(bdir / "obj", ignore_errors=True)
    return lib
