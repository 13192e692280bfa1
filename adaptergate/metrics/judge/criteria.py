"""The judge's criteria: :class:`Criterion` (name, weight, rubric), the defaults,
validating and loading them, and what they make of scores (the weighted score,
the pairwise order)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError

__all__ = [
    "Criterion",
    "DEFAULT_CRITERIA",
    "MAX_CRITERIA",
    "MAX_RUBRIC_CHARS",
    "SCORE_MAX",
    "SCORE_MIN",
    "check_criteria",
    "criteria_hash",
    "load_criteria",
    "pairwise_swapped",
    "weighted_score",
]

SCORE_MIN, SCORE_MAX = 1, 10
MAX_CRITERIA = 20
MAX_RUBRIC_CHARS = 2_000
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class Criterion:
    name: str
    weight: float
    rubric: str


DEFAULT_CRITERIA: tuple[Criterion, ...] = (
    Criterion("accuracy", 2.0, "Facts, numbers and actions are correct; consistent with the reference"
              " answer when one is given."),
    Criterion("relevance", 1.5, "Answers the question that was asked, with nothing off-topic."),
    Criterion("style", 1.0, "Clear and appropriately concise, in the language and tone of the query."),
    Criterion("completeness", 1.5, "Covers everything the query needs; nothing important is missing."),
    Criterion("coherence", 1.0, "Well organised and internally consistent; no contradictions."),
)


def _criteria_error(source: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"--judge-criteria {source}: {why}")


def check_criteria(raw: Any, source: str = "(inline)") -> tuple[Criterion, ...]:
    """Validate criteria given as data (a list, or ``{"criteria": [...]}``)."""
    if isinstance(raw, dict) and set(raw) == {"criteria"}:
        raw = raw["criteria"]
    if not isinstance(raw, list) or not raw:
        raise _criteria_error(source, "expected a non-empty list of {name, weight, rubric}")
    if len(raw) > MAX_CRITERIA:
        raise _criteria_error(source, f"{len(raw)} criteria; at most {MAX_CRITERIA}")
    out: list[Criterion] = []
    seen: set[str] = set()
    for k, item in enumerate(raw, 1):
        where = f"criterion {k}"
        if not isinstance(item, dict):
            raise _criteria_error(source, f"{where} is not an object with name, weight and rubric")
        extra = sorted(set(item) - {"name", "weight", "rubric"})
        if extra:
            raise _criteria_error(source, f"{where} has unknown key(s): {', '.join(map(str, extra))}")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise _criteria_error(
                source, f"{where} name {name!r}: a letter, then letters, digits, '_' or '-' (at most 40)"
            )
        if name in seen:
            raise _criteria_error(source, f"criterion {name!r} is given twice")
        seen.add(name)
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight <= 0:
            raise _criteria_error(source, f"criterion {name!r} weight {weight!r}: a finite number > 0")
        rubric = item.get("rubric")
        if not isinstance(rubric, str) or not rubric.strip():
            raise _criteria_error(source, f"criterion {name!r} needs a rubric (non-empty text)")
        if len(rubric) > MAX_RUBRIC_CHARS:
            raise _criteria_error(source, f"criterion {name!r} rubric is over {MAX_RUBRIC_CHARS} characters")
        out.append(Criterion(name, float(weight), " ".join(rubric.split())))
    return tuple(out)


def load_criteria(path: Path | str | None) -> tuple[Criterion, ...]:
    """Criteria from a JSON or YAML file (``None``: :data:`DEFAULT_CRITERIA`)."""
    if path is None:
        return DEFAULT_CRITERIA
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _criteria_error(str(p), "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _criteria_error(str(p), f"cannot read it ({type(exc).__name__}: {exc})") from None
    from adaptergate.trust import YamlRefusal, json_loads_bounded, yaml_loads_bounded

    if p.suffix.lower() == ".json":
        try:
            data = json_loads_bounded(text)
        except ValueError as exc:
            raise _criteria_error(str(p), f"invalid JSON ({exc})") from None
    else:
        import yaml

        try:
            data = yaml_loads_bounded(text)
        except YamlRefusal as exc:
            raise _criteria_error(str(p), f"line {exc.line}: {exc.reason}") from None
        except yaml.YAMLError as exc:
            # the problem and where, never the file's text (PyYAML's message quotes the line)
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            what = getattr(exc, "problem", None) or type(exc).__name__
            raise _criteria_error(str(p), f"invalid YAML ({what}{where})") from None
    return check_criteria(data, str(p))


def criteria_hash(criteria: Sequence[Criterion]) -> str:
    blob = json.dumps([[c.name, c.weight, c.rubric] for c in criteria], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:24]


def weighted_score(scores: dict[str, int], criteria: Sequence[Criterion]) -> float:
    """The weighted mean of ``(s - 1) / 9`` over the criteria: a score in [0, 1]."""
    total = sum(c.weight for c in criteria)
    value = sum(c.weight * (scores[c.name] - SCORE_MIN) / (SCORE_MAX - SCORE_MIN) for c in criteria) / total
    return min(1.0, max(0.0, value))


def pairwise_swapped(query_hash: str) -> bool:
    """Whether the candidate is shown as answer A for this query (seeded by its hash)."""
    return random.Random(f"adaptergate-judge-order:{query_hash}").random() < 0.5
