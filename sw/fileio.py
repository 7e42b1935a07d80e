"""The one way logicdie reads input files and writes output files (SPEC section 8: nothing half-
written left behind, one clean line for every I/O failure).

Contracts:

- :func:`read_input` reads a whole *regular* file. It ``stat``s the path before opening it, so a
  FIFO, ``/dev/zero``, a terminal or a directory is refused with one line instead of blocking
  forever or reading without end, and a file larger than ``limit`` is refused before it is read.
- :func:`check_output` validates an output target before any work is done: its directory exists,
  the target is absent or a regular file (through symlinks), it is not one of the command's input
  files, and (with ``replaces``, a test on its first bytes) an existing file is a previous output
  of the same kind (a bundle, a PNG, ...), never some other file of the user's.
- :func:`atomic_write` writes bytes (or lets a callback write into a binary file object) to a
  temporary file in the target's directory, fsyncs it and renames it over the target. On any
  failure (full or read-only file system, permission, a failing callback, Ctrl-C) the temporary
  file is removed and the target is untouched; OS errors become a :class:`UserError` naming the path
  and the cause. Something that is not a regular file is never replaced, and neither is an input.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from hw.errors import UserError

__all__ = ["read_input", "check_output", "atomic_write", "file_kind", "describe_oserror"]

#: Largest input file read whole (TFLite flatbuffers are limited to 2 GiB by their offsets).
MAX_INPUT_BYTES = 2 << 30


def file_kind(mode: int) -> str:
    """A human name for a file type (from ``st_mode``)."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def describe_oserror(e: OSError) -> str:
    """The cause of an OS error in a few words ("No space left on device")."""
    if e.strerror:
        return e.strerror
    if e.errno is not None:
        return os.strerror(e.errno)
    return str(e) or type(e).__name__


def read_input(path: str | os.PathLike, what: str = "input file", *,
               limit: int = MAX_INPUT_BYTES, hint: str = "") -> bytes:
    """The bytes of a regular file; UserError (one line) for anything else.

    ``what`` names the file in messages ("model", "bundle", "image"); ``hint`` is appended to the
    not-found message (what to do)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        tail = f"; {hint}" if hint else ""
        raise UserError(f"{what} {p} not found{tail}") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {p}: {describe_oserror(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {p} is a directory, not a file; give the file itself")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {p} is {file_kind(st.st_mode)}, not a regular file; "
                        "give a file")
    if st.st_size > limit:
        raise UserError(f"{what} {p} is {st.st_size:,} bytes, more than the {limit:,} bytes "
                        f"logicdie reads")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise UserError(f"cannot read {what} {p}: {describe_oserror(e)}") from None
    try:
        st2 = os.fstat(fd)
        if not stat.S_ISREG(st2.st_mode):  # replaced between stat and open
            raise UserError(f"{what} {p} is {file_kind(st2.st_mode)}, not a regular file")
        chunks, total = [], 0
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            total += len(b)
            if total > limit:
                raise UserError(f"{what} {p} is larger than the {limit:,} bytes logicdie reads")
            chunks.append(b)
        return b"".join(chunks)
    except OSError as e:
        raise UserError(f"cannot read {what} {p}: {describe_oserror(e)}") from None
    finally:
        os.close(fd)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_output(path: str | os.PathLike, what: str = "output", *,
                 inputs: Iterable[str | os.PathLike] = (),
                 replaces: Callable[[bytes], bool] | None = None) -> Path:
    """Validate an output target (see module docstring); returns the path to write (symlinks to a
    regular file are followed, so the link survives)."""
    p = Path(path)
    if str(path) == "" or p.name in ("", ".", ".."):
        raise UserError(f"{what} path {str(path)!r} names no file; give a file name")
    real = Path(os.path.realpath(p))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UserError(f"cannot write {what} {p}: {describe_oserror(e)}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{what} {p} is a directory; give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"refusing to replace {p}: it is {file_kind(st.st_mode)}, not a "
                            f"regular file; give another {what} path")
        for src in inputs:
            try:
                if _same_file(st, os.stat(src)):
                    raise UserError(f"{what} {p} is the input file {src}; give another {what} "
                                    "path (it would overwrite the input)")
            except OSError:
                continue
        if replaces is not None and st.st_size:
            try:
                with open(real, "rb") as f:
                    head = f.read(64)
            except OSError as e:
                raise UserError(f"cannot write {what} {p}: {describe_oserror(e)}") from None
            if not replaces(head):
                raise UserError(f"refusing to replace {p}: it is not a previous {what}; give "
                                "another path or delete the file first")
    d = real.parent
    try:
        dst = os.stat(d)
    except FileNotFoundError:
        raise UserError(f"cannot write {what} {p}: directory {p.parent} does not exist") from None
    except OSError as e:
        raise UserError(f"cannot write {what} {p}: {describe_oserror(e)}") from None
    if not stat.S_ISDIR(dst.st_mode):
        raise UserError(f"cannot write {what} {p}: {p.parent} is not a directory")
    return real


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], None],
                 what: str = "output", *, inputs: Iterable[str | os.PathLike] = (),
                 replaces: Callable[[bytes], bool] | None = None) -> int:
    """Write ``data`` (bytes, or a callback writing into a binary file) atomically; returns the
    number of bytes written. See the module docstring for the contract."""
    inputs = list(inputs)
    target = check_output(path, what, inputs=inputs, replaces=replaces)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise UserError(f"cannot write {what} {path}: {describe_oserror(e)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        # re-check right before the rename: the target may have changed while we worked
        check_output(path, what, inputs=inputs, replaces=replaces)
        os.replace(tmp, target)
    except OSError as e:
        _unlink(tmp)
        if e.errno == errno.ENOSPC:
            raise UserError(f"cannot write {what} {path}: no space left on device") from None
        raise UserError(f"cannot write {what} {path}: {describe_oserror(e)}") from None
    except BaseException:
        _unlink(tmp)
        raise
    return size


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass
