"""Durable file writes shared by the holdout store and the ledger.

Two primitives, both under a :mod:`filelock` lock (:func:`file_lock`) so
concurrent adaptergate processes serialise. The lock files live under the cache
directory (``<cache>/locks/<sha256 of the resolved path>-<name>.lock``), never
beside the user's data (they would show up as untracked files in a holdouts
repository); only when the cache directory cannot hold them is the lock file
put beside the target (``<name>.lock``), as adaptergate 0.5.4 did:

* :func:`atomic_write` replaces a file whole: write a temp file in the same
  directory, fsync it, ``os.replace`` it over the target, fsync the
  directory. A reader sees the old file or the new one, never a mix.
* :func:`locked_append` appends complete lines with one ``write`` on an
  ``O_APPEND`` descriptor, then fsyncs, so two runs never interleave.

Torn writes in append-only JSON Lines files
-------------------------------------------

A record is appended whole or not at all, as far as this process can help
it: the file's length is measured under the lock before the ``write``, and
when the write or the fsync fails (a full disk: ``ENOSPC``, ``EFBIG``,
``EDQUOT``; a short write followed by an error) the file is truncated back
to that length and :class:`~adaptergate.errors.StorageError` (exit code 3)
names the file and the reason. A process killed mid-write, a power loss or
another tool can still leave a *torn tail*: a last line without its newline.

A torn tail is recognised by one rule, :func:`is_torn_fragment`, shared by
the writers here and the readers (:mod:`adaptergate.pipeline.ledger`,
:mod:`adaptergate.recipes.jsonl`): the bytes after the file's last newline are a
torn fragment when they start with ``{`` (every record is a JSON object,
written compactly) and do not parse as JSON (nor decode as UTF-8). A proper
prefix of a JSON object never parses, so a complete record is never taken
for a fragment.

* Readers skip a torn fragment with a warning naming ``file:line`` (logged
  on the ``adaptergate.storage`` logger, see :func:`warn_torn_tail`) and
  read every complete record before it. A last line without its newline
  that parses is a complete record and is read normally. Any other bad
  line, a bad line in the middle of the file included, stays an error
  naming ``file:line``.
* An append that finds a torn fragment at the end of the file truncates it
  away (it is an incomplete record of a failed write, never a complete
  one), with the same warning, and then appends. A last line without its
  newline that is *not* a torn fragment (a complete record, or text that
  is not ours) is kept: the append starts on a new line after it. So a torn
  fragment never ends up in the middle of a file, and no complete record
  is ever lost.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from adaptergate.errors import InvalidInputError, StorageError

LOCK_TIMEOUT_S = 60.0

log = logging.getLogger("adaptergate.storage")
"""Where the torn-tail warnings go. The CLI configures no logging, so they
reach stderr through :data:`logging.lastResort` as the bare message
(``warning: FILE:LINE: ...``); the Action's ``basicConfig`` prints them in
the job log."""

_TAIL_CHUNK = 1 << 16


LOCKS_SUBDIR = "locks"


def _lock_dir() -> Path | None:
    """``<cache>/locks`` when this process can create lock files there, else None."""
    directory = cache_root() / LOCKS_SUBDIR
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return directory if os.access(directory, os.W_OK | os.X_OK) else None


def lock_path(path: Path) -> Path:
    """The lock file that guards ``path``: ``<cache>/locks/<sha256 of the resolved path>-<name>.lock``
    (every process that names the file, by any relative path or symlink, takes the same lock,
    and nothing is left beside the user's file), or ``<name>.lock`` beside ``path`` when the
    cache directory is not writable. Processes exclude each other when they share the cache
    directory (``$ADAPTERGATE_CACHE``, else ``~/.cache/adaptergate``)."""
    directory = _lock_dir()
    if directory is None:
        return path.with_name(path.name + ".lock")
    resolved = Path(os.path.abspath(path)).resolve()
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()
    return directory / f"{digest}-{path.name[:100]}.lock"


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock that guards ``path`` (its lock file: :func:`lock_path`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    where = lock_path(path)
    lock = FileLock(str(where), timeout=timeout)
    try:
        with lock:
            yield
    except Timeout as exc:
        raise InvalidInputError(
            f"could not lock {path} within {timeout:.0f}s: another adaptergate process holds"
            f" {where}"
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
    """Append whole lines (each without its newline) durably.

    All or nothing: on a failed write the file is cut back to its previous
    length and :class:`~adaptergate.errors.StorageError` is raised. A torn
    fragment at the end of the file is removed first (see the module
    docstring).
    """
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if not data:
        return
    if locked:
        _append(path, data)
        return
    with file_lock(path):
        _append(path, data)


def rotate_append(path: Path, rotated: Path, lines: Iterable[str]) -> None:
    """Move ``path`` to ``rotated`` and start a fresh ``path`` holding ``lines``.

    The caller holds ``path``'s lock. The new file is written and fsynced
    under a temporary name first, so a failed write (a full disk) raises
    :class:`~adaptergate.errors.StorageError` with both files as they were.
    """
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StorageError(
            f"cannot append to {path}: {_os_reason(exc)} (the file was left as it was)"
        ) from exc
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
            os.replace(path, rotated)
        except OSError as exc:
            raise StorageError(
                f"cannot append to {path}: {_os_reason(exc)} (the file was left as it was)"
            ) from exc
        try:
            os.replace(tmp, path)
        except OSError as exc:  # pragma: no cover - a rename in the same directory
            raise StorageError(
                f"cannot append to {path}: {_os_reason(exc)} (its records were moved to {rotated})"
            ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


# ---------------------------------------------------------------------------
# Torn tails
# ---------------------------------------------------------------------------


def is_torn_fragment(tail: bytes) -> bool:
    """Whether ``tail``, a last line without its newline, is a record cut short.

    True when it starts with ``{`` (leading whitespace aside) and is not
    UTF-8 or not JSON. A complete JSON object (even without its newline),
    blank space and text that does not start like a record are not torn.
    """
    text = tail.strip()
    if not text.startswith(b"{"):
        return False
    try:
        json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return True
    return False


def split_torn_tail(data: bytes) -> tuple[bytes, int | None]:
    """``(data without its torn fragment, line number of the fragment)``.

    ``data`` is returned whole with ``None`` when its last line is complete
    (newline-terminated), blank, or not a torn fragment (:func:`is_torn_fragment`).
    """
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    if not tail or not is_torn_fragment(tail):
        return data, None
    return data[:cut], data.count(b"\n", 0, cut) + 1


def warn_torn_tail(path: Path | str, line: int, size: int, *, removed: bool = False) -> None:
    """Warn that ``path:line`` is a torn fragment of ``size`` bytes (skipped or ``removed``).

    One line on the :data:`log` logger, e.g. ``warning: data/audit.jsonl:3:
    skipped an incomplete last line (41 bytes, no newline: a write that did
    not finish); the records before it were read``.
    """
    if removed:
        what, then = "removed", " before appending; the records before it are kept"
    else:
        what, then = "skipped", "; the records before it were read"
    log.warning(
        "warning: %s:%d: %s an incomplete last line (%d byte%s, no newline: a write that did not"
        " finish)%s",
        path, line, what, size, "" if size == 1 else "s", then,
    )


def _tail_start(fd: int, size: int) -> int:
    """Offset just after the last newline among the first ``size`` bytes (0: none)."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0


def _count_newlines(fd: int, end: int) -> int:
    count = 0
    for start in range(0, end, _TAIL_CHUNK):
        count += os.pread(fd, min(_TAIL_CHUNK, end - start), start).count(b"\n")
    return count


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _settle_tail(fd: int, path: Path, size: int) -> tuple[int, bool, bool]:
    """Deal with a last line that lacks its newline before appending.

    Returns ``(size, removed, needs_newline)``: a torn fragment is truncated
    away (``removed``); any other unterminated last line is kept and the next
    record must start on a new line (``needs_newline``).
    """
    if not size:
        return size, False, False
    cut = _tail_start(fd, size)
    if cut == size:
        return size, False, False
    if not is_torn_fragment(os.pread(fd, size - cut, cut)):
        # A complete record (or someone else's text) without its newline.
        return size, False, True
    # An incomplete record of a failed write: drop it, so it never ends up
    # in the middle of the file.
    os.ftruncate(fd, cut)
    os.fsync(fd)
    warn_torn_tail(path, _count_newlines(fd, cut) + 1, size - cut, removed=True)
    return cut, True, False


def drop_torn_tail(path: Path) -> bool:
    """Truncate a torn fragment off the end of ``path`` (caller holds its lock).

    Returns whether one was removed; a missing file is left missing.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StorageError(f"cannot repair {path}: {_os_reason(exc)} (the file was left as it was)") from exc
    try:
        return _settle_tail(fd, path, os.fstat(fd).st_size)[1]
    except OSError as exc:
        raise StorageError(f"cannot repair {path}: {_os_reason(exc)}") from exc
    finally:
        os.close(fd)


def _append(path: Path, data: bytes) -> None:
    """Append ``data`` (complete lines) to ``path``; the caller holds its lock."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(
            f"cannot append to {path}: {_os_reason(exc)} (the file was left as it was)"
        ) from exc
    removed = False
    size = 0
    try:
        try:
            size, removed, needs_newline = _settle_tail(fd, path, os.fstat(fd).st_size)
            if needs_newline:
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:  # pragma: no cover - regular files report an error instead
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            raise StorageError(
                f"cannot append to {path}: {_os_reason(exc)} ({_restore(fd, path, size, existed, removed)})"
            ) from exc
    finally:
        os.close(fd)


def _restore(fd: int, path: Path, size: int, existed: bool, removed: bool) -> str:
    """Cut ``path`` back to ``size`` bytes after a failed append; say what was left."""
    try:
        if not existed and size == 0:
            os.unlink(path)
            return "the file was not created"
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError as exc:
        return (
            f"and it could not be cut back to its previous length: {_os_reason(exc)};"
            " its last line may be incomplete"
        )
    if removed:
        return "the file keeps its complete records; an incomplete last line was removed"
    return "the file was left as it was"


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


def cache_root() -> Path:
    """Where adaptergate keeps its caches: ``$ADAPTERGATE_CACHE``, else ``~/.cache/adaptergate``."""
    env = os.environ.get("ADAPTERGATE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "adaptergate"


def utc_now() -> str:
    """Now, as the ISO 8601 UTC timestamp every record the tool writes carries."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat()
