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
import errno
import importlib
import io
import json
import os
import sys

from hw.errors import UserError

__all__ = ["main", "SUBCOMMANDS"]

#: Subcommand modules, in --help order. A module missing here is simply not offered.
SUBCOMMANDS = [
    "check", "compile", "run", "isp", "fuzz", "synth", "bench", "sweep", "regress", "app",
    "formal",
]


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


# ----------------------------------------------------------------------------- argument types
# Each returns the parsed value or raises argparse.ArgumentTypeError, which _Parser.error turns
# into one UserError line naming the option.

def _int(text: str) -> int:
    try:
        return int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def seed_int(text: str) -> int:
    """A random seed: an integer 0 <= S < 2**63."""
    v = _int(text)
    if not 0 <= v < 2**63:
        raise argparse.ArgumentTypeError(f"seed {text} must be between 0 and 2**63-1")
    return v


def positive_int(text: str) -> int:
    """A count: an integer >= 1 (and below 10**9)."""
    v = _int(text)
    if not 1 <= v < 10**9:
        raise argparse.ArgumentTypeError(f"{text} must be a whole number from 1 to 999999999")
    return v


def positive_float(text: str) -> float:
    """A finite float > 0 (NaN and infinities refused)."""
    import math

    try:
        v = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number above 0")
    return v


def real_range(text: str) -> tuple[float, float]:
    """``LO,HI``: two finite floats with LO < HI."""
    import math

    try:
        lo, hi = (float(v) for v in text.split(","))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not LO,HI (two numbers)") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise argparse.ArgumentTypeError(f"{text!r}: LO and HI must be finite numbers")
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"{text!r}: LO must be below HI")
    return lo, hi


def input_file(text: str) -> str:
    """An existing regular file (checked with ``stat``, never opened: a FIFO or device given as
    input is refused here instead of blocking whoever reads it first)."""
    import os
    import stat as st

    from sw.fileio import file_kind

    try:
        mode = os.stat(text).st_mode
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"{text} not found") from None
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {e.strerror}") from None
    if not st.S_ISREG(mode):
        raise argparse.ArgumentTypeError(f"{text} is {file_kind(mode)}, not a regular file")
    return text


#: File types matplotlib's Agg backend writes, by extension.
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")
_PLOT_MAGIC = {"png": (b"\x89PNG",), "pdf": (b"%PDF",), "svg": (b"<?xml", b"<svg"),
               "svgz": (b"\x1f\x8b",), "eps": (b"%!PS", b"\xc5\xd0\xd3\xc6"), "ps": (b"%!PS",),
               "jpg": (b"\xff\xd8",), "jpeg": (b"\xff\xd8",), "tif": (b"II*\0", b"MM\0*"),
               "tiff": (b"II*\0", b"MM\0*"), "webp": (b"RIFF",)}


def is_plot(path: str):
    """A test on an existing file's first bytes: is it a plot of ``path``'s format (a previous
    output that may be replaced)?"""
    import os

    magic = _PLOT_MAGIC.get(os.path.splitext(path)[1].lower().lstrip("."), ())
    return lambda head: head.startswith(magic)


def plot_file(text: str) -> str:
    """An output plot path: a known extension, an existing directory, not a directory itself."""
    import os

    from sw.fileio import check_output

    ext = os.path.splitext(text)[1].lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        raise argparse.ArgumentTypeError(
            f"plot file {text!r} has {'no extension' if not ext else f'unknown extension .{ext}'}"
            f"; use one of .{', .'.join(PLOT_FORMATS)}")
    try:
        check_output(text, "plot", replaces=is_plot(text))
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def limit_blas_threads() -> None:
    """One BLAS thread: the golden model's GEMMs are small; threading only adds contention."""
    import numpy  # noqa: F401  (threadpoolctl only sees BLAS libraries already loaded)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


class _ClosedStdout(io.TextIOBase):
    """Stands in for a closed standard output: any write is an OSError (EBADF)."""

    def writable(self):
        return True

    def write(self, s):
        raise OSError(errno.EBADF, "standard output is closed")


def _guard_std_fds() -> None:
    """If fd 0/1/2 is closed, put /dev/null there so no file we open lands on it (a bundle on fd 1
    would receive our prints); a closed stdout then fails on its first write."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if fd == 1:
                sys.stdout = _ClosedStdout()
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()


def _stdout_failed(e: OSError) -> int:
    """Report a failed write to stdout (closed, full, broken pipe) as one line; silence stdout so
    the interpreter's final flush does not print a second error."""
    cause = e.strerror or os.strerror(e.errno or 0)
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        sys.stdout = _ClosedStdout()
    print(f"logicdie: error: cannot write to standard output: {cause}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = None
    _guard_std_fds()
    try:
        try:
            limit_blas_threads()
            parser = build_parser()
            args = parser.parse_args(argv)
            result = args.func(args)
            code, payload = (result, None) if not isinstance(result, tuple) else result
            if getattr(args, "json", False) and payload is not None:
                sys.stdout.write(json.dumps(payload, default=_json_default) + "\n")
            sys.stdout.flush()
            return int(code or 0)
        except UserError as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"logicdie: error: {msg}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("logicdie: interrupted", file=sys.stderr)
            return 130
        except MemoryError:
            print("logicdie: error: out of memory (the input is too large for this machine)",
                  file=sys.stderr)
            return 2
    except OSError as e:
        # every file logicdie opens reports its own errors as UserError (sw.fileio): an OSError
        # without a file name reaching here is standard output failing (closed, full, pipe)
        if e.filename is None and e.errno in (errno.EPIPE, errno.ENOSPC, errno.EBADF, errno.EIO,
                                              errno.EDQUOT):
            return _stdout_failed(e)
        raise


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
