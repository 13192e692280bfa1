"""The metric: :class:`Metric`, a ready ``metric(output, query) -> float``, and
:func:`build_metric`, which makes one from a ``--metric`` spec.

``output`` is the text the adapter generated for the query, ``query`` is the
holdout line as the user wrote it (its gold answer under ``gold`` or
``expected_output``). A metric returns a score in ``[0, 1]``; the built-ins
(:mod:`adaptergate.metrics.builtin`) return exactly ``0.0`` or ``1.0``. The
gate uses a metric when it generates with real adapters (``--metric NAME``)
instead of calling a ``--scorer``.

The judge metric
----------------

``judge`` is not a text comparison: an LLM judge scores each generated
answer on weighted criteria (1-10 each, mapped to a score in ``[0, 1]``),
configured by the ``--judge-*`` options. It lives in :mod:`adaptergate.metrics.judge`
and is wired in :func:`adaptergate.scoring.model.score_with_adapters`;
:func:`~adaptergate.metrics.base.is_judge` recognises it and :func:`build_metric`
refuses it (there is no ``metric(output, query)`` function for it). It takes no options.

User metrics
------------

``module:function`` names ``f(output, query) -> float``. Every value is
checked as for a scorer: NaN, infinities, values outside ``[0, 1]`` and
non-numbers end the run with a :class:`~adaptergate.errors.ScorerError`
(exit 3) naming the query; an exception inside ``f`` ends it with one line
(the traceback is kept on the error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError, ScorerError
from adaptergate.metrics.base import METRICS
from adaptergate.metrics.gold import qid_of
from adaptergate.metrics.spec import MetricSpec, checked_spec, parse_metric, resolved_options, spec_error
from adaptergate.scoring.scorers import _SPEC_RE, _bad_value, _format_tb, _one_line, load_scorer

__all__ = ["MAX_PROBLEMS_REPORTED", "Metric", "build_metric"]

MAX_PROBLEMS_REPORTED = 50


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
        prepared = self._prepare(query, qid_of(query, query_id))
        return 1.0 if self._compare(output, prepared) else 0.0

    def check_gold(self, query: dict[str, Any], *, query_id: str | None = None) -> None:
        """Raise the InvalidInputError scoring this query would raise for its
        gold answer (or pattern); a no-op for user metrics."""
        if self._prepare is not None:
            self._prepare(query, qid_of(query, query_id))

    def check_golds(self, queries: Sequence[dict[str, Any]], ids: Sequence[str] | None = None) -> None:
        """Check every query before generating; one InvalidInputError listing
        every problem (the first 50) when any query is unusable."""
        if self._prepare is None:
            return
        problems: list[str] = []
        count = 0
        for i, query in enumerate(queries):
            try:
                self._prepare(query, qid_of(query, ids[i] if ids is not None else None))
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
                f"metric {name} raised {_one_line(exc)} on query {qid_of(query, query_id)!r}",
                traceback_text=_format_tb(exc),
            ) from exc
        if type(v) is not float and type(v) is not int:
            why = _bad_value(v)
            if why:
                raise ScorerError(f"metric {name} returned {why} for query {qid_of(query, query_id)!r}")
        value = float(v)
        if not (0.0 <= value <= 1.0):  # also catches NaN
            what = (
                "NaN" if math.isnan(value)
                else "an infinite value" if math.isinf(value)
                else f"{value!r}, outside [0, 1]"
            )
            raise ScorerError(f"metric {name} returned {what} for query {qid_of(query, query_id)!r}")
        return value


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
    info = METRICS.get(spec.name)
    if info is not None:
        if info.builder is None:
            raise InvalidInputError(
                f"metric {spec.name!r} is scored by {info.scored_by}, not a metric function;"
                f" use it with --base-model and {info.configured_by}"
            )
        spec = checked_spec(spec)
        return info.builder(spec, resolved_options(spec))
    if spec.options:
        raise InvalidInputError(f"--metric {spec.name!r}: a user metric takes no options")
    if not _SPEC_RE.match(spec.name):
        raise spec_error(spec.name, "expected a built-in or module:function (e.g. my_eval:score)")
    try:
        scorer = load_scorer(spec.name, search_path=search_path)
    except ScorerError as exc:
        raise ScorerError(f"--metric {spec.name}: {exc.message}", traceback_text=exc.traceback_text) from exc
    except InvalidInputError as exc:
        raise InvalidInputError(f"--metric {spec.name}: {exc.message}", details=exc.details) from None
    return Metric(spec, needs_gold=False, user=scorer.single)
