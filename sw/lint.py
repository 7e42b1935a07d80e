"""``python -m sw.lint``: ``verilator --lint-only`` on every registered top (hw/tops.py) per preset.

Each top is generated for each preset (default, ecp5, ice40, tiny; ``--config`` narrows it) and
linted with ``-Wall`` minus the waivers below. Exit 0 iff every top lints clean.

Waivers (why each warning class is not a defect of the generated RTL):

- ``WIDTHEXPAND``/``WIDTHTRUNC``: Amaranth emits explicit-width arithmetic whose Verilog relies on
  the language's implicit extension/truncation (its semantics are defined by Amaranth, not by these
  widths).
- ``UNUSEDSIGNAL``/``UNUSEDPARAM``: Amaranth keeps named intermediate signals and unused slices of
  wide payloads (e.g. the high half of a product, unused payload fields of a stream) for readability
  and waves.
- ``DECLFILENAME``: one file holds the top and all its submodules.
- ``PINCONNECTEMPTY``/``UNDRIVEN`` on unused submodule outputs are not waived: none are expected.
- ``CASEINCOMPLETE``: Amaranth's ``Switch``/FSM lowering produces cases with a default branch
  elsewhere.
- ``GENUNNAMED``/``VARHIDDEN``: naming style of yosys' Verilog backend.
- ``PROCASSINIT``: every Amaranth register has a power-on value (``init=``) declared on the ``reg``
  *and* a synchronous reset to the same value in its process; both are intended (FPGA init + reset).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from hw.config import PRESETS, preset
from hw.errors import UserError
from hw.tops import TOPS, build_top
from sim.cocotb_run import verilog_of
from sim.toolchain import verilator_bin

__all__ = ["WAIVERS", "lint_top", "main"]

WAIVERS = ["WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL", "UNUSEDPARAM", "DECLFILENAME",
           "CASEINCOMPLETE", "GENUNNAMED", "VARHIDDEN", "PROCASSINIT"]


def lint_top(name: str, config) -> tuple[bool, str]:
    """Lint one top at one config; returns (clean, verilator output)."""
    text = verilog_of(build_top(name, config), name)
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / f"{name}.v"
        src.write_text(text)
        cmd = [verilator_bin(), "--lint-only", "-Wall", *[f"-Wno-{w}" for w in WAIVERS],
               "--top-module", name, str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.lint", description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", help="preset(s) to lint (default: all)")
    ap.add_argument("--top", action="append", help="top(s) to lint (default: all registered)")
    args = ap.parse_args(argv)
    try:
        configs = [preset(c) for c in (args.config or list(PRESETS))]
        tops = args.top or list(TOPS)
        for t in tops:
            if t not in TOPS:
                raise UserError(f"unknown top {t!r}; choose one of {', '.join(TOPS)}")
    except UserError as e:
        print(f"lint: error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for t in tops:
        for cfg in configs:
            try:
                ok, out = lint_top(t, cfg)
            except ValueError as e:  # the design does not support this preset (documented)
                print(f"lint {t} @ {cfg.name}: not built ({e})")
                continue
            print(f"lint {t} @ {cfg.name}: {'clean' if ok else 'FAILED'}")
            if not ok:
                failed += 1
                print(out)
    if not tops:
        print("lint: no tops registered")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
