"""Reading a JSONL file line by line, tolerantly: each non-blank line is an object or says why not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from adaptergate.storage import read_input

__all__ = ["no_constant", "read_jsonl"]


class _NotObject(Exception):
    pass


def no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_line(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        # orjson refuses integers beyond 64 bits, which are valid JSON
        return json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    except UnicodeDecodeError:
        raise _NotObject("not UTF-8") from None
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise _NotObject(f"invalid JSON: {msg}") from None


_JSON_TYPES = {dict: "object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, Any, str | None]]:
    """``(line number, object or None, why it is not an object)`` for each non-blank line."""
    data = read_input(path, what)
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = _parse_line(raw)
        except _NotObject as exc:
            yield lineno, None, str(exc)
            continue
        if isinstance(obj, dict):
            yield lineno, obj, None
        else:
            yield lineno, None, f"got {_JSON_TYPES.get(type(obj), 'not an object')}"
