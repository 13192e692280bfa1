"""Reading the library's JSONL files: bytes, a torn last line, UTF-8, one object a line.

Every problem is one exit-2 line (:class:`~adaptergate.errors.InvalidInputError`)
naming the file, and the line where there is one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adaptergate.errors import InvalidInputError
from adaptergate.storage import split_torn_tail, warn_torn_tail

__all__ = ["brief_error", "decode_text", "jsonl_objects", "read_data", "read_text", "without_torn_tail"]


def read_data(path: Path, what: str) -> bytes | None:
    """The file's bytes, or ``None`` when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InvalidInputError(f"cannot read {what} {path}: it is a directory") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def without_torn_tail(path: Path, data: bytes) -> tuple[bytes, bool]:
    """``data`` less a torn last line, the start of a record that a failed
    write left without its newline (:func:`~adaptergate.storage.is_torn_fragment`),
    which is reported as a warning naming ``path:line``; and whether there was one."""
    body, torn_line = split_torn_tail(data)
    if torn_line is None:
        return data, False
    warn_torn_tail(path, torn_line, len(data) - len(body))
    return body, True


def decode_text(path: Path, what: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {path} is not valid UTF-8 (byte {exc.start})") from None


def read_text(path: Path, what: str, *, torn_tail_ok: bool = False) -> str | None:
    """The file as text, or ``None`` when it does not exist.

    ``torn_tail_ok`` (the append-only files): a torn last line is dropped
    with a warning (:func:`without_torn_tail`); the records before it are read.
    """
    data = read_data(path, what)
    if data is None:
        return None
    if torn_tail_ok:
        data, _ = without_torn_tail(path, data)
    return decode_text(path, what, data)


def jsonl_objects(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # Split on "\n" only: str.splitlines() would also split inside a record at
    # U+2028, U+0085 and the like, which JSON (ensure_ascii=False) leaves raw.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise InvalidInputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def brief_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    if exc.error_count() > 3:
        parts.append(f"... and {exc.error_count() - 3} more")
    return "; ".join(parts)
