"""The built-in metrics: text comparisons of a generated answer with the gold
answer (``exact``, ``contains``, ``regex``, ``json``, ``numeric``, ``sql``),
their option tables, and their registration in :data:`~adaptergate.metrics.base.METRICS`.

Each returns exactly ``0.0`` or ``1.0``; gold answers are read as in
:mod:`adaptergate.metrics.gold`.

Built-ins and their options
---------------------------

``exact`` — the output equals the gold answer after normalisation (applied
to both sides, in this order): ``nfkc`` (Unicode NFKC), ``casefold``,
``strip_punct`` (remove every Unicode punctuation character, categories
``P*``), ``collapse_ws`` (runs of whitespace become one space), ``strip``
(surrounding whitespace; on by default, ``strip=false`` turns it off).

``contains`` — the normalised gold answer is a substring of the normalised
output (same options as ``exact``). A gold answer that normalises to the
empty string is an error: it would match every output.

``regex`` — ``re.fullmatch`` of the query's ``pattern`` field, or of the
gold answer when there is none, on the output. Options ``i``
(IGNORECASE), ``s`` (DOTALL) and ``strip`` (strip the output first; on by
default). An invalid pattern is an error naming the query.

``json`` — the output (surrounding whitespace and one enclosing Markdown
fence, ```` ```json ```` or ```` ``` ````, tolerated) parsed as JSON equals
the gold answer as data: key order does not matter, ``1 == 1.0``, but
``true`` is not ``1``. A string gold answer is parsed as JSON (``"\\"a\\""``
for the string ``a``); a structure is used as it is. Output that does not
parse scores 0 (a model failure, not an error). No options.

``numeric`` — the first number in the output (``-12``, ``3.5``, ``.5``,
``1e-3``, ``1,234.5`` with comma thousands separators; a sign counts only
when no letter or digit stands right before it) is within tolerance of the
gold number (``math.isclose`` with ``rel`` and ``abs``; defaults
``rel=1e-9``, ``abs=0``). No number in the output scores 0. A percent sign
or unit after the number is ignored, never converted.

``sql`` — the output and the gold answer parse (``sqlglot``, option
``dialect``) to one statement each whose SQL, after normalising
identifiers the way the dialect resolves them and dropping comments, is the
same: keyword case, whitespace, a trailing ``;`` and an enclosing
```` ```sql ```` fence do not matter. Output that does not parse, or holds
more than one statement, scores 0. Needs ``pip install 'adaptergate[sql]'``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from adaptergate.errors import InvalidInputError
from adaptergate.holdout.store import GOLD_KEYS
from adaptergate.metrics.base import MetricFactory, OptionTable, register_metric
from adaptergate.metrics.gold import (
    accepted_answers,
    as_text,
    gold_error,
    gold_of,
    json_type,
    require_gold,
)
from adaptergate.metrics.metric import Metric
from adaptergate.metrics.spec import MetricSpec

__all__ = ["BUILTINS", "first_number"]

_NORMALISE_OPTIONS: OptionTable = {
    "strip": ("bool", True),
    "casefold": ("bool", False),
    "collapse_ws": ("bool", False),
    "strip_punct": ("bool", False),
    "nfkc": ("bool", False),
}
_OPTIONS: dict[str, OptionTable] = {
    "exact": _NORMALISE_OPTIONS,
    "contains": _NORMALISE_OPTIONS,
    "regex": {"i": ("bool", False), "s": ("bool", False), "strip": ("bool", True)},
    "json": {},
    "numeric": {"rel": ("tol", 1e-9), "abs": ("tol", 0.0)},
    "sql": {"dialect": ("str", None)},
}
BUILTINS: tuple[str, ...] = tuple(_OPTIONS)
# Options of "exact" that make its comparison looser than token identity.
_TOKEN_CHANGING = ("casefold", "collapse_ws", "strip_punct", "nfkc")


# --------------------------------------------------------------------------- text metrics


class _PunctTable(dict):
    """A ``str.translate`` table deleting Unicode punctuation (categories
    ``P*``), filled one code point at a time as texts need them."""

    def __missing__(self, cp: int) -> int | None:
        value = None if unicodedata.category(chr(cp))[0] == "P" else cp
        self[cp] = value
        return value


_PUNCT = _PunctTable()


_WS_RE = re.compile(r"\s+")


def _normaliser(options: dict[str, Any]) -> Callable[[str], str]:
    nfkc = options["nfkc"]
    casefold = options["casefold"]
    punct = _PUNCT if options["strip_punct"] else None
    collapse = options["collapse_ws"]
    strip = options["strip"]

    def normalise(s: str) -> str:
        if nfkc:
            s = unicodedata.normalize("NFKC", s)
        if casefold:
            s = s.casefold()
            if nfkc:
                s = unicodedata.normalize("NFKC", s)
        if punct is not None:
            s = s.translate(punct)
        if collapse:
            s = _WS_RE.sub(" ", s)
        if strip:
            s = s.strip()
        return s

    return normalise


def _text_metric(spec: MetricSpec, opts: dict[str, Any]) -> Metric:
    normalise = _normaliser(opts)
    label = str(spec)
    contains = spec.name == "contains"

    def prepare(query: dict[str, Any], qid: str) -> list[str]:
        golds = accepted_answers(label, require_gold(label, query, qid), qid)
        answers = [normalise(as_text(g)) for g in golds]
        if contains and any(a == "" for a in answers):
            raise gold_error(label, qid, "has a gold answer that is empty after normalisation"
                              " ('contains' would match any output)")
        return answers

    if contains:
        def compare(output: str, answers: list[str]) -> bool:
            out = normalise(output)
            return any(a in out for a in answers)
    else:
        def compare(output: str, answers: list[str]) -> bool:
            out = normalise(output)
            return any(a == out for a in answers)

    exact_match_gold = not contains and not any(opts[k] for k in _TOKEN_CHANGING)
    return Metric(spec, needs_gold=True, exact_match_gold=exact_match_gold, prepare=prepare, compare=compare)


def _regex_metric(spec: MetricSpec, opts: dict[str, Any]) -> Metric:
    flags = (re.IGNORECASE if opts["i"] else 0) | (re.DOTALL if opts["s"] else 0)
    strip = opts["strip"]
    label = str(spec)

    def prepare(query: dict[str, Any], qid: str) -> list[re.Pattern[str]]:
        pattern = query.get("pattern")
        if pattern is not None:
            if not isinstance(pattern, str):
                raise gold_error(label, qid, f"has {json_type(pattern)} as pattern; expected a string")
            sources = [pattern]
        else:
            gold = gold_of(query)
            if gold is None:
                raise gold_error(
                    label, qid, f"has neither a pattern nor a gold answer ({', '.join(GOLD_KEYS)})"
                )
            sources = [as_text(g) for g in accepted_answers(label, gold, qid)]
        compiled = []
        for source in sources:
            try:
                compiled.append(_compile(source, flags))
            except re.error as exc:
                raise gold_error(label, qid, f"has an invalid regular expression {source!r}: {exc}") from None
        return compiled

    def compare(output: str, patterns: list[re.Pattern[str]]) -> bool:
        if strip:
            output = output.strip()
        return any(p.fullmatch(output) is not None for p in patterns)

    return Metric(spec, needs_gold=False, prepare=prepare, compare=compare)


@lru_cache(maxsize=4096)
def _compile(source: str, flags: int) -> re.Pattern[str]:
    return re.compile(source, flags)


# --------------------------------------------------------------------------- json


def _fence_re(lang: str) -> re.Pattern[str]:
    return re.compile(rf"\A```[ \t]*(?:{lang})?[ \t]*\r?\n?(.*?)\s*(?:```)?\Z", re.DOTALL | re.IGNORECASE)


_JSON_FENCE = _fence_re("json")
_SQL_FENCE = _fence_re("sql")


def _unfence(text: str, fence: re.Pattern[str]) -> str:
    text = text.strip()
    if text.startswith("```"):
        m = fence.match(text)
        if m is None:
            return ""
        return m.group(1).strip()
    return text


_MISSING = object()


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _MISSING


def _json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON data: key order irrelevant, 1 == 1.0, true != 1."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, bool) or isinstance(y, bool):
            if not (isinstance(x, bool) and isinstance(y, bool) and x == y):
                return False
        elif isinstance(x, (int, float)) and isinstance(y, (int, float)):
            if x != y:
                return False
        elif isinstance(x, str) and isinstance(y, str):
            if x != y:
                return False
        elif x is None or y is None:
            if x is not y:
                return False
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif isinstance(x, dict) and isinstance(y, dict):
            if len(x) != len(y) or x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        else:
            return False
    return True


def _json_metric(spec: MetricSpec, opts: dict[str, Any]) -> Metric:
    label = str(spec)

    def prepare(query: dict[str, Any], qid: str) -> Any:
        gold = require_gold(label, query, qid)
        if isinstance(gold, str):
            value = _loads(_unfence(gold, _JSON_FENCE))
            if value is _MISSING:
                raise gold_error(
                    label, qid, "has a gold answer that is not valid JSON (write a JSON string"
                    " value quoted, e.g. \"\\\"text\\\"\")"
                )
            return value
        return gold

    def compare(output: str, gold: Any) -> bool:
        value = _loads(_unfence(output, _JSON_FENCE))
        return value is not _MISSING and _json_equal(value, gold)

    return Metric(spec, needs_gold=True, prepare=prepare, compare=compare)


# --------------------------------------------------------------------------- numeric

_NUMBER = (
    r"(?:(?<![0-9A-Za-z])[-+\u2212])?"  # a sign, unless glued to a word or number before it
    r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])(?:\.[0-9]*)?"  # 1,234 / 1,234.5
    r"|[0-9]+(?:\.[0-9]*)?"  # 12 / 12. / 12.5
    r"|\.[0-9]+)"  # .5
    r"(?:[eE][-+]?[0-9]+)?"  # exponent
)
_NUMBER_RE = re.compile(_NUMBER)
_NUMBER_FULL_RE = re.compile(rf"\s*({_NUMBER})\s*")


def _to_float(text: str) -> float:
    return float(text.replace(",", "").replace("\u2212", "-"))


def first_number(text: str) -> float | None:
    """The first number in ``text`` (the ``numeric`` metric's reading), or None."""
    m = _NUMBER_RE.search(text)
    return None if m is None else _to_float(m.group(0))


def _numeric_metric(spec: MetricSpec, opts: dict[str, Any]) -> Metric:
    rel, abs_ = opts["rel"], opts["abs"]
    label = str(spec)

    def prepare(query: dict[str, Any], qid: str) -> list[float]:
        numbers = []
        for g in accepted_answers(label, require_gold(label, query, qid), qid):
            value: float | None = None
            if isinstance(g, (int, float)) and not isinstance(g, bool):
                value = float(g)
            elif isinstance(g, str):
                m = _NUMBER_FULL_RE.fullmatch(g)
                value = _to_float(m.group(1)) if m else None
            if value is None:
                raise gold_error(label, qid, f"has a gold answer that is not a number: {g!r}")
            if not math.isfinite(value):
                raise gold_error(label, qid, f"has a gold answer that is not finite: {g!r}")
            numbers.append(value)
        return numbers

    def compare(output: str, golds: list[float]) -> bool:
        value = first_number(output)
        if value is None or not math.isfinite(value):
            return False
        return any(math.isclose(value, g, rel_tol=rel, abs_tol=abs_) for g in golds)

    return Metric(spec, needs_gold=True, prepare=prepare, compare=compare)


# --------------------------------------------------------------------------- sql


def _import_sqlglot() -> Any:
    try:
        import sqlglot
        import sqlglot.errors  # noqa: F401
        from sqlglot.optimizer.normalize_identifiers import normalize_identifiers  # noqa: F401
    except ImportError:
        raise InvalidInputError(
            "metric 'sql' needs sqlglot: pip install 'adaptergate[sql]'"
        ) from None
    return sqlglot


def _sql_metric(spec: MetricSpec, opts: dict[str, Any]) -> Metric:
    sqlglot = _import_sqlglot()
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    dialect = opts["dialect"]
    label = str(spec)
    if dialect is not None:
        try:
            sqlglot.Dialect.get_or_raise(dialect)
        except Exception as exc:  # ValueError in sqlglot 25+
            raise InvalidInputError(f"--metric {label!r}: unknown SQL dialect {dialect!r} ({exc})") from None

    def canonical(text: str) -> str | None:
        try:
            statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
            if len(statements) != 1:
                return None
            tree = normalize_identifiers(statements[0], dialect=dialect)
            return tree.sql(dialect=dialect, pretty=False, comments=False)
        except Exception:  # anything sqlglot raises on garbage: not SQL
            return None

    def prepare(query: dict[str, Any], qid: str) -> list[str]:
        out = []
        for g in accepted_answers(label, require_gold(label, query, qid), qid):
            if not isinstance(g, str):
                raise gold_error(label, qid, f"has {json_type(g)} as gold answer; expected SQL text")
            c = canonical(_unfence(g, _SQL_FENCE))
            if c is None:
                raise gold_error(label, qid, f"has a gold answer that is not one SQL statement: {g!r}")
            out.append(c)
        return out

    def compare(output: str, golds: list[str]) -> bool:
        c = canonical(_unfence(output, _SQL_FENCE))
        return c is not None and c in golds

    return Metric(spec, needs_gold=True, prepare=prepare, compare=compare)


# --------------------------------------------------------------------------- registration

_BUILDERS: dict[str, MetricFactory] = {
    "exact": _text_metric,
    "contains": _text_metric,
    "regex": _regex_metric,
    "json": _json_metric,
    "numeric": _numeric_metric,
    "sql": _sql_metric,
}

for _name in BUILTINS:
    register_metric(_name, _BUILDERS[_name], options=_OPTIONS[_name])
