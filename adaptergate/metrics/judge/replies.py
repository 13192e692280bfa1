"""The judge's replies: the output contract (:func:`parse_judgement` into a
:class:`Judgement`, or a :class:`JudgeOutputError`), the contract as JSON Schema
for ``response_format``, and reading a local model's free text."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from adaptergate.metrics.judge.criteria import SCORE_MAX, SCORE_MIN, Criterion

__all__ = [
    "MAX_REASONING_CHARS",
    "JudgeOutputError",
    "Judgement",
    "first_object",
    "output_schema",
    "parse_judgement",
    "reasoning_of",
    "response_format",
    "shorten",
]

MAX_REASONING_CHARS = 2_000


class JudgeOutputError(ValueError):
    """A judge reply that breaks the output contract (the message says how)."""


@dataclass(frozen=True)
class Judgement:
    """One validated judge reply: ``scores`` per answer, in the order shown."""

    scores: tuple[dict[str, int], ...]
    reasoning: str

    def to_record(self) -> dict[str, Any]:
        return {"scores": list(self.scores), "reasoning": self.reasoning}


@lru_cache(maxsize=32)
def _validators(names: tuple[str, ...], pairwise: bool) -> Any:
    from typing import Annotated

    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {
        f"c{i}": (Annotated[int, Field(ge=SCORE_MIN, le=SCORE_MAX, alias=name)], ...)
        for i, name in enumerate(names)
    }
    config = ConfigDict(extra="forbid", strict=True)
    scores = create_model("JudgeScores", __config__=config, **fields)
    if pairwise:
        scores = create_model(
            "PairwiseScores", __config__=config,
            a=(scores, Field(alias="A")), b=(scores, Field(alias="B")),
        )
    return create_model("Judgement", __config__=config, scores=(scores, ...), reasoning=(str, ...))


def _loc(loc: Sequence[Any], names: tuple[str, ...]) -> str:
    parts = []
    for part in loc:
        if isinstance(part, str) and re.fullmatch(r"c\d+", part) and int(part[1:]) < len(names):
            part = names[int(part[1:])]
        elif part in ("a", "b"):
            part = str(part).upper()
        parts.append(str(part))
    return ".".join(parts)


def _explain(err: dict[str, Any], names: tuple[str, ...]) -> str:
    where = _loc(err.get("loc", ()), names)
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "missing":
        return f"{where} is missing"
    if kind == "extra_forbidden":
        return f"unexpected key {where}"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"{where} is {value!r}, outside {SCORE_MIN}-{SCORE_MAX}"
    if kind.startswith("int"):
        return f"{where} is {value!r}, not an integer {SCORE_MIN}-{SCORE_MAX}"
    if kind.startswith("string"):
        return f"{where} must be a string"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{where or 'the reply'} must be a JSON object"
    return f"{where}: {err.get('msg', kind)}"


_FENCE_RE = re.compile(r"\A```[ \t]*(?:json)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```\Z", re.DOTALL | re.IGNORECASE)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JudgeOutputError(f"key {key!r} appears twice")
        out[key] = value
    return out


def parse_judgement(text: Any, criteria: Sequence[Criterion], *, pairwise: bool = False) -> Judgement:
    """Validate one judge reply against the contract (:mod:`adaptergate.metrics.judge`).

    Raises :class:`JudgeOutputError` with a short reason; never guesses.
    """
    from pydantic import ValidationError

    if not isinstance(text, str):
        raise JudgeOutputError("the reply has no text content")
    body = text.strip()
    if body.startswith("```"):
        m = _FENCE_RE.match(body)
        if m is None:
            raise JudgeOutputError("unterminated or malformed Markdown fence around the JSON")
        body = m.group(1).strip()
    if not body:
        raise JudgeOutputError("the reply is empty")
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates)
    except JudgeOutputError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JudgeOutputError(f"not one JSON object ({shorten(str(exc), 80)})") from None
    if not isinstance(data, dict):
        raise JudgeOutputError("the reply must be a JSON object")
    names = tuple(c.name for c in criteria)
    try:
        obj = _validators(names, pairwise).model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        why = "; ".join(_explain(e, names) for e in errors[:3])
        if len(errors) > 3:
            why += f" (and {len(errors) - 3} more)"
        raise JudgeOutputError(why) from None

    def as_dict(model: Any) -> dict[str, int]:
        return {name: int(getattr(model, f"c{i}")) for i, name in enumerate(names)}

    scores = (as_dict(obj.scores.a), as_dict(obj.scores.b)) if pairwise else (as_dict(obj.scores),)
    return Judgement(scores=scores, reasoning=obj.reasoning[:MAX_REASONING_CHARS])


def shorten(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (for error messages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def output_schema(criteria: Sequence[Criterion], *, pairwise: bool = False) -> dict[str, Any]:
    """The contract as JSON Schema (what ``response_format`` json_schema sends)."""
    scores = {
        "type": "object",
        "properties": {
            c.name: {"type": "integer", "enum": list(range(SCORE_MIN, SCORE_MAX + 1))} for c in criteria
        },
        "required": [c.name for c in criteria],
        "additionalProperties": False,
    }
    if pairwise:
        scores = {
            "type": "object", "properties": {"A": scores, "B": scores}, "required": ["A", "B"],
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "properties": {"scores": scores, "reasoning": {"type": "string"}},
        "required": ["scores", "reasoning"],
        "additionalProperties": False,
    }


def response_format(criteria: Sequence[Criterion], *, pairwise: bool = False, kind: str = "json_schema"
                    ) -> dict[str, Any]:
    if kind == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "adaptergate_judgement", "strict": True, "schema": output_schema(criteria, pairwise=pairwise),
        },
    }


def reasoning_of(raw: str) -> str:
    """Freely generated reasoning up to its first unescaped quote, unescaped when it can be."""
    cut = len(raw)
    escaped = False
    for k, ch in enumerate(raw):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            cut = k
            break
    piece = raw[:cut]
    try:
        piece = json.loads('"' + piece + '"')
    except ValueError:
        pass
    return " ".join(piece.split())[:MAX_REASONING_CHARS]


def first_object(text: str) -> str:
    """A free generation up to the end of its first balanced JSON object (strings respected).

    Only what the model wrote after the object is dropped (a model does not
    stop at the closing brace); text *before* the object still fails the
    contract in :func:`parse_judgement`.
    """
    depth = 0
    in_str = escaped = False
    start = None
    for k, ch in enumerate(text):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            if start is None:
                start = k
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                end = k + 1
                rest = text[end:].lstrip()
                if rest.startswith("```"):
                    end = len(text) - len(rest) + 3
                return text[:end]
    return text
