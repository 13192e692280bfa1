"""A query's gold answer: :func:`gold_of` (``gold``, else ``expected_output``), the
accepted answers a metric compares with, and the errors that name the query.

``exact``, ``contains``, ``regex``, ``numeric`` and ``sql`` accept a list
of accepted answers (any one matching scores 1). For ``exact``/``contains``
a number gold is compared as its JSON spelling (``42``, ``2.5``, ``true``).
``json`` compares a list gold as a JSON array. A query without the gold
answer its metric needs, or with one the metric cannot use, is an
:class:`~adaptergate.errors.InvalidInputError` naming the query;
:meth:`~adaptergate.metrics.metric.Metric.check_golds` finds all of them
before anything is generated.
"""

from __future__ import annotations

import json
from typing import Any

from adaptergate.errors import InvalidInputError
from adaptergate.holdout.store import GOLD_KEYS, ID_KEYS, _first

__all__ = ["accepted_answers", "as_text", "gold_error", "gold_of", "json_type", "qid_of", "require_gold"]


def gold_of(query: dict[str, Any]) -> Any:
    """The gold answer of a holdout query (``gold``, else ``expected_output``);
    None when it has neither (a JSON ``null`` counts as absent)."""
    return _first(query, GOLD_KEYS)


def qid_of(query: Any, query_id: str | None) -> str:
    """How errors name a query: ``query_id`` when given, else the query's own id, else ``?``."""
    if query_id is not None:
        return str(query_id)
    if isinstance(query, dict):
        raw = _first(query, ID_KEYS)
        if raw is not None:
            return str(raw)
    return "?"


def gold_error(metric: str, qid: str, why: str) -> InvalidInputError:
    """The error for a query whose gold answer (or pattern) ``metric`` cannot use."""
    return InvalidInputError(f"metric {metric}: query {qid!r} {why}")


def require_gold(metric: str, query: dict[str, Any], qid: str) -> Any:
    """The gold answer of a query that must have one."""
    gold = gold_of(query)
    if gold is None:
        raise gold_error(metric, qid, f"has no gold answer (expected one of: {', '.join(GOLD_KEYS)})")
    return gold


def accepted_answers(metric: str, gold: Any, qid: str) -> list[Any]:
    """A gold answer as the list of accepted answers."""
    if isinstance(gold, list):
        if not gold:
            raise gold_error(metric, qid, "has an empty list of gold answers")
        for g in gold:
            if isinstance(g, (list, dict)) or g is None:
                raise gold_error(
                    metric, qid, f"has a list of gold answers holding {json_type(g)}; expected strings"
                )
        return gold
    if isinstance(gold, dict):
        raise gold_error(metric, qid, "has an object as gold answer; expected a string or a list of them")
    return [gold]


def json_type(v: Any) -> str:
    """What a JSON value is, for error messages (``a string``, ``null``)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return f"a {type(v).__name__}"


def as_text(g: Any) -> str:
    """A gold answer as text: a string as it is, anything else as JSON spells it."""
    if isinstance(g, str):
        return g
    if isinstance(g, bool):
        return "true" if g else "false"
    return json.dumps(g)  # int and float as JSON spells them
