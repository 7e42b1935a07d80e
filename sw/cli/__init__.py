"""``logicdie`` command line (SPEC section 8).

Each subcommand lives in its own module ``sw/cli/<name>.py`` exposing ``register(subparsers)`` which
adds its parser and sets ``func`` (called with the parsed args, returning an exit code and
optionally a JSON dict). Every subcommand takes ``--json``: one JSON object on stdout and nothing
else there.

Bad input raises :class:`hw.errors.UserError`; :func:`main` prints it as one line on stderr and
exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from hw.errors import UserError

__all__ = ["main", "SUBCOMMANDS"]

#: Subcommand modules, in --help order. A module missing here is simply not offered.
SUBCOMMANDS = ["check", "compile", "run", "isp", "fuzz", "synth", "bench", "sweep", "regress"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default prints usage; we keep the one-line contract
        raise UserError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="logicdie",
        description="logic die of an intelligent vision sensor: "
        "RTL generation, golden models, simulation and synthesis",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f"sw.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"sw.cli.{name}":
                continue
            raise
        mod.register(sub)
    return p


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every subcommand has."""
    p.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout, nothing else"
    )


def limit_blas_threads() -> None:
    """One BLAS thread: the golden model's GEMMs are small; threading only adds contention."""
    import numpy  # noqa: F401  (threadpoolctl only sees BLAS libraries already loaded)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        limit_blas_threads()
        parser = build_parser()
        args = parser.parse_args(argv)
        result = args.func(args)
        code, payload = (result, None) if not isinstance(result, tuple) else result
        if getattr(args, "json", False) and payload is not None:
            sys.stdout.write(json.dumps(payload, default=_json_default) + "\n")
        return int(code or 0)
    except UserError as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"logicdie: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("logicdie: interrupted", file=sys.stderr)
        return 130


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
