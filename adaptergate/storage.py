"""Durable file writes shared by the holdout store and the ledger.

Two primitives, both under a :mod:`filelock` lock file beside the target
(``<name>.lock``) so concurrent adaptergate processes serialise:

* :func:`atomic_write` replaces a file whole: write a temp file in the same
  directory, fsync it, ``os.replace`` it over the target, fsync the
  directory. A reader sees the old file or the new one, never a mix.
* :func:`locked_append` appends complete lines with one ``write`` on an
  ``O_APPEND`` descriptor, then fsyncs, so two runs never interleave.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from adaptergate.errors import InvalidInputError

LOCK_TIMEOUT_S = 60.0


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock that guards ``path`` (created beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(path)), timeout=timeout)
    try:
        with lock:
            yield
    except Timeout as exc:
        raise InvalidInputError(
            f"could not lock {path} within {timeout:.0f}s: another adaptergate process holds"
            f" {lock_path(path)}"
        ) from exc


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, chunks: Iterable[bytes], *, locked: bool = False) -> None:
    """Replace ``path`` with the concatenation of ``chunks``, atomically.

    Pass ``locked=True`` when the caller already holds :func:`file_lock`.
    """
    if not locked:
        with file_lock(path):
            atomic_write(path, chunks, locked=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def locked_append(path: Path, lines: Iterable[str], *, locked: bool = False) -> None:
    """Append whole lines (each without its newline) durably."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if not data:
        return
    if locked:
        _append(path, data)
        return
    with file_lock(path):
        _append(path, data)


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # A file whose last line lacks its newline (a crash mid-write by some
        # other tool) would glue our record onto it: start on a fresh line.
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as rh:
                rh.seek(size - 1)
                if rh.read(1) != b"\n":
                    data = b"\n" + data
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_input(path: Path, what: str) -> bytes:
    """A user's input file, whole, without a UTF-8 byte-order mark.

    A missing file, a directory or an unreadable file is one exit-2 line
    naming ``what`` ("holdout file", "training file", …).
    """
    from adaptergate.errors import InvalidInputError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{what} is a directory, not a file: {path}") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data
