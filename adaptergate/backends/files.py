"""Reading the files under review, bounded: JSON files, sha256 digests, and the one-line error a check fails with.

Adapters, their configs and sometimes the base model arrive in the pull
request under review, so every read is bounded (the size of a JSON file, the
nesting of JSON: :data:`adaptergate.trust.MAX_JSON_DEPTH`) and every failure is
an :class:`~adaptergate.errors.InvalidInputError` (exit 2) of one line naming
the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError
from adaptergate.trust import json_loads_bounded

__all__ = ["fail", "file_sha256", "normalise_sha", "pickle_refusal", "read_json"]


_CHUNK = 1 << 20


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")).replace("\r", " ")


def fail(message: str, details: list[str] | None = None) -> InvalidInputError:
    """The error a check raises: one line (line breaks become spaces), each detail too."""
    return InvalidInputError(_one_line(message), details=[_one_line(d) for d in details or []])


def pickle_refusal(file: Path, where: Path) -> str:
    """Why pickle weights ``file`` in ``where`` are not loaded without ``--allow-pickle``."""
    return (
        f"refusing to load pickle weights {file.name} from {where}: loading a pickle executes "
        "code; pass --allow-pickle if you trust it"
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed in 1 MiB chunks."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def normalise_sha(value: str, what: str) -> str:
    """An expected sha256 (``sha256:`` prefix optional, any case) as 64 lowercase hex digits."""
    v = str(value).strip().lower()
    if v.startswith("sha256:"):
        v = v[len("sha256:"):]
    if not re.fullmatch(r"[0-9a-f]{64}", v):
        raise fail(f"expected sha256 of {what} must be 64 hex digits, got {value!r}")
    return v


def read_json(path: Path, what: str, max_bytes: int) -> dict[str, Any]:
    """The JSON object in ``path`` (at most ``max_bytes``); ``what`` names the file's owner in errors."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise fail(f"{what}: {path} is larger than the {max_bytes:,}-byte cap")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise fail(f"{what}: {path.name} not found in {path.parent}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json_loads_bounded(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{what}: {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except ValueError as exc:
        raise fail(f"{what}: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise fail(f"{what}: {path} is not a JSON object")
    return data
