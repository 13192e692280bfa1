"""Schema compliance: each record validated against a JSON Schema (draft 2020-12, formats checked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError
from adaptergate.holdout.datacheck.reading import no_constant
from adaptergate.trust import plain_line

__all__ = ["load_schema", "validate_record"]


_MESSAGE_LIMIT = 300


def load_schema(path: Path) -> Any:
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError:  # pragma: no cover - jsonschema is installed with the test extra
        raise InvalidInputError("--schema needs the jsonschema package: pip install 'jsonschema>=4.18'") from None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"schema file not found: {path}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"schema file is a directory: {path}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"schema {path} is not UTF-8") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read schema {path}: {exc.strerror or exc}") from None
    try:
        schema = json.loads(text, parse_constant=no_constant)
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidInputError(f"schema {path} is not valid JSON: {msg}{where}") from None
    if not isinstance(schema, (dict, bool)):
        raise InvalidInputError(f"invalid schema {path}: a schema must be a JSON object or a boolean")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        declared = schema.get("$schema") if isinstance(schema, dict) else None
        hint = ""
        if isinstance(declared, str) and "2020-12" not in declared:
            hint = f"; it declares $schema {plain_line(declared, 80)}, but is read as draft 2020-12"
        raise InvalidInputError(
            f"invalid schema {path}: {plain_line(exc.message, _MESSAGE_LIMIT)} (at {_schema_where(exc)}){hint}"
        ) from None
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _schema_where(exc: Any) -> str:
    parts = list(getattr(exc, "absolute_path", ()) or ())
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _json_path(error: Any) -> str:
    path = getattr(error, "json_path", None)
    return path if isinstance(path, str) else _schema_where(error)


def validate_record(validator: Any, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(json path, keyword, message)`` of each error, sorted by path."""
    from referencing.exceptions import Unresolvable

    try:
        errors = list(validator.iter_errors(obj))
    except Unresolvable as exc:
        raise InvalidInputError(f"schema reference cannot be resolved: {plain_line(str(exc), 200)}") from None
    out = [(_json_path(e), str(e.validator), plain_line(e.message, _MESSAGE_LIMIT)) for e in errors]
    out.sort(key=lambda t: (t[0], t[1]))
    return out
