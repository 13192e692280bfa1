"""Built-in metrics: compare a model's generated text with a query's gold answer.

A metric is called as ``metric(output, query) -> float``: ``output`` is the
text the adapter generated for the query, ``query`` is the holdout line as
the user wrote it (its gold answer under ``gold`` or ``expected_output``). It
returns a score in ``[0, 1]``; the built-ins return exactly ``0.0`` or
``1.0``. The gate uses a metric when it generates with real adapters
(``--metric NAME``) instead of calling a ``--scorer``.

Grammar of ``--metric``
-----------------------

::

    metric   = builtin [ ":" option { "," option } ]
             | "judge"
             | module ":" function
    builtin  = "exact" | "contains" | "regex" | "json" | "numeric" | "sql"
    option   = key [ "=" value ]          (a bare key means key=true)
    key      = letters, digits and "_"     (case-sensitive, lower case)
    value    = any text without ","        (surrounding spaces are ignored)
    boolean  = true | false | yes | no | on | off | 1 | 0   (any case)
    module   = identifier { "." identifier }   (as for --scorer)
    function = identifier

The text before the first ``:`` decides: a built-in name means a built-in
with options, so ``exact:casefold`` is never a user function ``casefold`` in
a module ``exact`` (a user metric's module cannot share a built-in's name;
put it in a package, e.g. ``evals.exact:score``). Anything else must be
``module:function``, imported exactly like ``--scorer`` (the current
directory, or ``search_path``, is importable). Options are validated: an
unknown option, a repeated option, a bad value, or a malformed spec is an
:class:`~adaptergate.errors.InvalidInputError` (exit 2).

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

Gold answers
------------

``exact``, ``contains``, ``regex``, ``numeric`` and ``sql`` accept a list
of accepted answers (any one matching scores 1). For ``exact``/``contains``
a number gold is compared as its JSON spelling (``42``, ``2.5``, ``true``).
``json`` compares a list gold as a JSON array. A query without the gold
answer its metric needs, or with one the metric cannot use, is an
:class:`~adaptergate.errors.InvalidInputError` naming the query;
:meth:`Metric.check_golds` finds all of them before anything is generated.

The judge metric
----------------

``judge`` is not a text comparison: an LLM judge scores each generated
answer on weighted criteria (1-10 each, mapped to a score in ``[0, 1]``),
configured by the ``--judge-*`` options. It lives in :mod:`adaptergate.metrics.judge`
and is wired in :func:`adaptergate.scoring.model.score_with_adapters`;
:func:`is_judge` recognises it and :func:`build_metric` refuses it (there is
no ``metric(output, query)`` function for it). It takes no options.

User metrics
------------

``module:function`` names ``f(output, query) -> float``. Every value is
checked as for a scorer: NaN, infinities, values outside ``[0, 1]`` and
non-numbers end the run with a :class:`~adaptergate.errors.ScorerError`
(exit 3) naming the query; an exception inside ``f`` ends it with one line
(the traceback is kept on the error).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError, ScorerError
from adaptergate.holdout.store import GOLD_KEYS, ID_KEYS, _first
from adaptergate.scoring.scorers import _SPEC_RE, _bad_value, _format_tb, _one_line, load_scorer

__all__ = [
    "BUILTINS",
    "Metric",
    "MetricSpec",
    "build_metric",
    "first_number",
    "gold_of",
    "is_judge",
    "parse_metric",
]

MAX_PROBLEMS_REPORTED = 50

# Option kinds: "bool", "tol" (a finite float >= 0), "str".
_NORMALISE_OPTIONS: dict[str, tuple[str, Any]] = {
    "strip": ("bool", True),
    "casefold": ("bool", False),
    "collapse_ws": ("bool", False),
    "strip_punct": ("bool", False),
    "nfkc": ("bool", False),
}
_OPTIONS: dict[str, dict[str, tuple[str, Any]]] = {
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

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_KEY_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class MetricSpec:
    """A parsed ``--metric``: a built-in name with its explicitly given,
    typed options, or ``module:function`` (then ``options`` is empty)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return self.name in _OPTIONS

    def __str__(self) -> str:
        """The canonical spec: options sorted, defaults left out."""
        table = _OPTIONS.get(self.name, {})
        parts = []
        for key in sorted(self.options):
            value = self.options[key]
            default = table[key][1] if key in table else object()
            if value == default and type(value) is type(default):
                continue
            if value is True:
                parts.append(key)
            elif value is False:
                parts.append(f"{key}=false")
            else:
                parts.append(f"{key}={value}")
        return self.name + (":" + ",".join(parts) if parts else "")


def _bad_spec(spec: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"--metric {spec!r}: {why}")


def _coerce(spec: str, metric: str, key: str, kind: str, raw: Any) -> Any:
    """One option value, from spec text or an already typed value."""
    if kind == "bool":
        if type(raw) is bool:
            return raw
        if isinstance(raw, str):
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        raise _bad_spec(spec, f"option {key!r} of metric {metric!r} takes true or false, got {raw!r}")
    if kind == "tol":
        value: float | None
        if isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                value = None
        elif isinstance(raw, (int, float)) and type(raw) is not bool:
            value = float(raw)
        else:
            value = None
        if value is None or not math.isfinite(value) or value < 0:
            raise _bad_spec(
                spec, f"option {key!r} of metric {metric!r} takes a finite number >= 0, got {raw!r}"
            )
        return value
    # "str"
    if not isinstance(raw, str) or not raw.strip():
        raise _bad_spec(spec, f"option {key!r} of metric {metric!r} takes a non-empty value, got {raw!r}")
    return raw.strip()


def _unknown_option(spec: str, metric: str, key: str, bare: bool) -> InvalidInputError:
    table = _OPTIONS[metric]
    known = ", ".join(table) if table else "none"
    hint = ""
    if bare:  # perhaps meant as module:function
        hint = (
            f"; a user metric cannot live in a module named {metric!r}"
            f" (use a package path such as 'evals.{metric}:{key}')"
        )
    return _bad_spec(spec, f"unknown option {key!r} for metric {metric!r} (options: {known}){hint}")


def _validate(spec: str, name: str, raw_options: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    table = _OPTIONS[name]
    options: dict[str, Any] = {}
    for key, raw in raw_options:
        if key not in table:
            raise _unknown_option(spec, name, key, raw is None)
        if key in options:
            raise _bad_spec(spec, f"option {key!r} is given twice")
        kind = table[key][0]
        if raw is None:  # a bare flag
            if kind != "bool":
                raise _bad_spec(spec, f"option {key!r} of metric {name!r} needs a value ({key}=...)")
            raw = True
        options[key] = _coerce(spec, name, key, kind, raw)
    return options


JUDGE = "judge"
"""The LLM-judge metric (:mod:`adaptergate.metrics.judge`), handled outside :class:`Metric`."""


def is_judge(spec: Any) -> bool:
    """Whether ``--metric`` names the LLM judge (``judge``, surrounding spaces ignored)."""
    if isinstance(spec, MetricSpec):
        return spec.name == JUDGE
    return isinstance(spec, str) and spec.strip() == JUDGE


def parse_metric(spec: str) -> MetricSpec:
    """Parse ``--metric`` (grammar in the module docstring); a bad spec is an
    :class:`InvalidInputError`. User metrics are not imported here."""
    if not isinstance(spec, str):
        raise InvalidInputError(f"--metric must be a string, got {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise _bad_spec(spec, f"empty metric; use one of {', '.join(BUILTINS)} or module:function")
    head, colon, rest = text.partition(":")
    head = head.strip()
    if head == JUDGE:
        if colon:
            raise _bad_spec(spec, "metric 'judge' takes no options; configure it with the --judge-* options")
        return MetricSpec(JUDGE, {})
    if head in _OPTIONS:
        if not colon:
            return MetricSpec(head, {})
        tokens = rest.split(",")
        raw: list[tuple[str, Any]] = []
        for token in tokens:
            key, eq, value = token.partition("=")
            key = key.strip()
            if not key:
                raise _bad_spec(spec, "empty option" + (" list" if len(tokens) == 1 else ""))
            if not _KEY_RE.match(key):
                raise _bad_spec(spec, f"bad option name {key!r}")
            raw.append((key, value if eq else None))
        return MetricSpec(head, _validate(spec, head, raw))
    if _SPEC_RE.match(text):
        return MetricSpec(text, {})
    if colon:
        why = "expected a built-in with options or module:function (e.g. my_eval:score)"
    else:
        why = f"unknown metric; built-ins: {', '.join(BUILTINS)}, judge; or module:function for your own"
    raise _bad_spec(spec, why)


# --------------------------------------------------------------------------- queries


def gold_of(query: dict[str, Any]) -> Any:
    """The gold answer of a holdout query (``gold``, else ``expected_output``);
    None when it has neither (a JSON ``null`` counts as absent)."""
    return _first(query, GOLD_KEYS)


def _qid(query: Any, query_id: str | None) -> str:
    if query_id is not None:
        return str(query_id)
    if isinstance(query, dict):
        raw = _first(query, ID_KEYS)
        if raw is not None:
            return str(raw)
    return "?"


def _gold_error(metric: str, qid: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"metric {metric}: query {qid!r} {why}")


def _require_gold(metric: str, query: dict[str, Any], qid: str) -> Any:
    gold = gold_of(query)
    if gold is None:
        raise _gold_error(metric, qid, f"has no gold answer (expected one of: {', '.join(GOLD_KEYS)})")
    return gold


def _answers(metric: str, gold: Any, qid: str) -> list[Any]:
    """A gold answer as the list of accepted answers."""
    if isinstance(gold, list):
        if not gold:
            raise _gold_error(metric, qid, "has an empty list of gold answers")
        for g in gold:
            if isinstance(g, (list, dict)) or g is None:
                raise _gold_error(
                    metric, qid, f"has a list of gold answers holding {_json_type(g)}; expected strings"
                )
        return gold
    if isinstance(gold, dict):
        raise _gold_error(metric, qid, "has an object as gold answer; expected a string or a list of them")
    return [gold]


def _json_type(v: Any) -> str:
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


def _as_text(g: Any) -> str:
    if isinstance(g, str):
        return g
    if isinstance(g, bool):
        return "true" if g else "false"
    return json.dumps(g)  # int and float as JSON spells them


# --------------------------------------------------------------------------- the metric


class Metric:
    """A ready metric: ``metric(output, query) -> float``.

    ``needs_gold`` is True when every query must carry a gold answer
    (``regex`` can use a ``pattern`` field instead, user metrics decide for
    themselves). ``exact_match_gold`` is True only for ``exact`` whose
    options do not change tokens (``strip`` alone, on or off): then the
    score is 1 exactly when the output is one of the gold answers, up to
    surrounding whitespace when ``strip`` is on, so teacher-forcing the
    gold answer (stripped when ``spec.options.get("strip", True)``) decides
    the same pass — except that it cannot credit an output that adds
    surrounding whitespace the gold answer lacks.
    """

    __slots__ = ("spec", "needs_gold", "exact_match_gold", "_prepare", "_compare", "_user")

    def __init__(
        self,
        spec: MetricSpec,
        *,
        needs_gold: bool,
        exact_match_gold: bool = False,
        prepare: Callable[[dict[str, Any], str], Any] | None = None,
        compare: Callable[[str, Any], bool] | None = None,
        user: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self.spec = spec
        self.needs_gold = needs_gold
        self.exact_match_gold = exact_match_gold
        self._prepare = prepare
        self._compare = compare
        self._user = user

    @property
    def name(self) -> str:
        return self.spec.name

    def __str__(self) -> str:
        return str(self.spec)

    def __repr__(self) -> str:
        return f"Metric({str(self.spec)!r})"

    def __call__(self, output: str, query: dict[str, Any], *, query_id: str | None = None) -> float:
        """Score one output. ``query_id`` names the query in errors when the
        query dict itself has no id (0.5.4's wrapped lines)."""
        if type(output) is not str:
            raise TypeError(f"metric output must be str, got {type(output).__name__}")
        if self._user is not None:
            return self._call_user(output, query, query_id)
        assert self._prepare is not None and self._compare is not None
        prepared = self._prepare(query, _qid(query, query_id))
        return 1.0 if self._compare(output, prepared) else 0.0

    def check_gold(self, query: dict[str, Any], *, query_id: str | None = None) -> None:
        """Raise the InvalidInputError scoring this query would raise for its
        gold answer (or pattern); a no-op for user metrics."""
        if self._prepare is not None:
            self._prepare(query, _qid(query, query_id))

    def check_golds(self, queries: Sequence[dict[str, Any]], ids: Sequence[str] | None = None) -> None:
        """Check every query before generating; one InvalidInputError listing
        every problem (the first 50) when any query is unusable."""
        if self._prepare is None:
            return
        problems: list[str] = []
        count = 0
        for i, query in enumerate(queries):
            try:
                self._prepare(query, _qid(query, ids[i] if ids is not None else None))
            except InvalidInputError as exc:
                count += 1
                if len(problems) < MAX_PROBLEMS_REPORTED:
                    problems.append(exc.message)
        if count:
            noun = "query" if count == 1 else "queries"
            more = f"; the first {MAX_PROBLEMS_REPORTED} follow" if count > len(problems) else ""
            message = (
                problems[0] if count == 1
                else f"{count} {noun} cannot be scored by metric {self.spec}{more}"
            )
            raise InvalidInputError(message, details=problems)

    def _call_user(self, output: str, query: dict[str, Any], query_id: str | None) -> float:
        assert self._user is not None
        name = self.spec.name
        try:
            v = self._user(output, query)
        except Exception as exc:
            raise ScorerError(
                f"metric {name} raised {_one_line(exc)} on query {_qid(query, query_id)!r}",
                traceback_text=_format_tb(exc),
            ) from exc
        if type(v) is not float and type(v) is not int:
            why = _bad_value(v)
            if why:
                raise ScorerError(f"metric {name} returned {why} for query {_qid(query, query_id)!r}")
        value = float(v)
        if not (0.0 <= value <= 1.0):  # also catches NaN
            what = (
                "NaN" if math.isnan(value)
                else "an infinite value" if math.isinf(value)
                else f"{value!r}, outside [0, 1]"
            )
            raise ScorerError(f"metric {name} returned {what} for query {_qid(query, query_id)!r}")
        return value


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


def _resolved(spec: MetricSpec) -> dict[str, Any]:
    table = _OPTIONS[spec.name]
    return {key: spec.options.get(key, default) for key, (_, default) in table.items()}


def _text_metric(spec: MetricSpec, opts: dict[str, Any]) -> Metric:
    normalise = _normaliser(opts)
    label = str(spec)
    contains = spec.name == "contains"

    def prepare(query: dict[str, Any], qid: str) -> list[str]:
        answers = [normalise(_as_text(g)) for g in _answers(label, _require_gold(label, query, qid), qid)]
        if contains and any(a == "" for a in answers):
            raise _gold_error(label, qid, "has a gold answer that is empty after normalisation"
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
                raise _gold_error(label, qid, f"has {_json_type(pattern)} as pattern; expected a string")
            sources = [pattern]
        else:
            gold = gold_of(query)
            if gold is None:
                raise _gold_error(
                    label, qid, f"has neither a pattern nor a gold answer ({', '.join(GOLD_KEYS)})"
                )
            sources = [_as_text(g) for g in _answers(label, gold, qid)]
        compiled = []
        for source in sources:
            try:
                compiled.append(_compile(source, flags))
            except re.error as exc:
                raise _gold_error(label, qid, f"has an invalid regular expression {source!r}: {exc}") from None
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
        gold = _require_gold(label, query, qid)
        if isinstance(gold, str):
            value = _loads(_unfence(gold, _JSON_FENCE))
            if value is _MISSING:
                raise _gold_error(
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
        for g in _answers(label, _require_gold(label, query, qid), qid):
            value: float | None = None
            if isinstance(g, (int, float)) and not isinstance(g, bool):
                value = float(g)
            elif isinstance(g, str):
                m = _NUMBER_FULL_RE.fullmatch(g)
                value = _to_float(m.group(1)) if m else None
            if value is None:
                raise _gold_error(label, qid, f"has a gold answer that is not a number: {g!r}")
            if not math.isfinite(value):
                raise _gold_error(label, qid, f"has a gold answer that is not finite: {g!r}")
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
        for g in _answers(label, _require_gold(label, query, qid), qid):
            if not isinstance(g, str):
                raise _gold_error(label, qid, f"has {_json_type(g)} as gold answer; expected SQL text")
            c = canonical(_unfence(g, _SQL_FENCE))
            if c is None:
                raise _gold_error(label, qid, f"has a gold answer that is not one SQL statement: {g!r}")
            out.append(c)
        return out

    def compare(output: str, golds: list[str]) -> bool:
        c = canonical(_unfence(output, _SQL_FENCE))
        return c is not None and c in golds

    return Metric(spec, needs_gold=True, prepare=prepare, compare=compare)


# --------------------------------------------------------------------------- building

_BUILDERS: dict[str, Callable[[MetricSpec, dict[str, Any]], Metric]] = {
    "exact": _text_metric,
    "contains": _text_metric,
    "regex": _regex_metric,
    "json": _json_metric,
    "numeric": _numeric_metric,
    "sql": _sql_metric,
}


def build_metric(spec: str | MetricSpec, *, search_path: Path | None = None) -> Metric:
    """A ready :class:`Metric` for a spec string or a :class:`MetricSpec`.

    User metrics are imported here (as ``--scorer``, via
    :func:`adaptergate.scoring.scorers.load_scorer`); ``sql`` imports sqlglot here,
    so a missing extra fails before anything is generated.
    """
    if isinstance(spec, str):
        spec = parse_metric(spec)
    elif not isinstance(spec, MetricSpec):
        raise InvalidInputError(f"--metric must be a string, got {type(spec).__name__}")
    if spec.name == JUDGE:
        raise InvalidInputError(
            "metric 'judge' is scored by an LLM judge (adaptergate.metrics.judge), not a metric function;"
            " use it with --base-model and the --judge-* options"
        )
    if spec.name in _OPTIONS:
        options = _validate(spec.name, spec.name, spec.options.items())
        spec = MetricSpec(spec.name, options)
        return _BUILDERS[spec.name](spec, _resolved(spec))
    if spec.options:
        raise InvalidInputError(f"--metric {spec.name!r}: a user metric takes no options")
    if not _SPEC_RE.match(spec.name):
        raise _bad_spec(spec.name, "expected a built-in or module:function (e.g. my_eval:score)")
    try:
        scorer = load_scorer(spec.name, search_path=search_path)
    except ScorerError as exc:
        raise ScorerError(f"--metric {spec.name}: {exc.message}", traceback_text=exc.traceback_text) from exc
    except InvalidInputError as exc:
        raise InvalidInputError(f"--metric {spec.name}: {exc.message}", details=exc.details) from None
    return Metric(spec, needs_gold=False, user=scorer.single)
