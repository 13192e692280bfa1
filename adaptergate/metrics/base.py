"""The metric seam: the registry of metrics by name (:data:`METRICS`), each a
:class:`MetricInfo`, and what a metric's builder is (:class:`MetricFactory`).

A metric named on ``--metric`` is either registered here or a user metric
``module:function``. A registered metric with a builder is built into a
:class:`~adaptergate.metrics.metric.Metric` (``metric(output, query) ->
float``); its option table says which ``name:key=value`` options
:func:`~adaptergate.metrics.spec.parse_metric` accepts. A registered metric
without a builder is scored elsewhere: the LLM judge
(:mod:`adaptergate.metrics.judge`, imported only by whoever runs it) scores
the baseline's and the candidate's answers together.

Adding a metric: write a builder ``(spec, options) -> Metric`` and call
:func:`register_metric`; the built-ins do so in :mod:`adaptergate.metrics.builtin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from adaptergate.metrics.metric import Metric
    from adaptergate.metrics.spec import MetricSpec

__all__ = [
    "JUDGE",
    "METRICS",
    "MetricFactory",
    "MetricInfo",
    "OptionTable",
    "is_judge",
    "metric_info",
    "register_metric",
]

OptionTable = Mapping[str, tuple[str, Any]]
"""Option name -> (kind, default); kinds: ``"bool"``, ``"tol"`` (a finite float >= 0), ``"str"``."""


class MetricFactory(Protocol):
    """Builds a ready metric from its spec and its options, every option present
    (the spec's own, else the default of the option table)."""

    def __call__(self, spec: MetricSpec, options: dict[str, Any], /) -> Metric: ...


@dataclass(frozen=True)
class MetricInfo:
    """What the gate knows of a metric by its name."""

    name: str
    builder: MetricFactory | None = None
    """Builds the metric; None: no ``metric(output, query)`` function (the judge), or a user metric."""
    options: OptionTable | None = None
    """The options ``name:key=value`` takes; None: none at all (``name:...`` is an error)."""
    needs_both_answers: bool = False
    """Scores the baseline's and the candidate's answers together (the judge), not one output at a time."""
    needs_model: bool = False
    """Scored by a model of its own (a judge model or server), configured outside ``--metric``."""
    scored_by: str = ""
    """Who scores a metric without a builder, for error messages."""
    configured_by: str = ""
    """Where a metric without options is configured, for error messages."""


METRICS: dict[str, MetricInfo] = {}
"""Metric name -> :class:`MetricInfo`, in registration order."""


def register_metric(
    name: str,
    builder: MetricFactory | None,
    *,
    options: OptionTable | None = None,
    needs_both_answers: bool = False,
    needs_model: bool = False,
    scored_by: str = "",
    configured_by: str = "",
) -> MetricInfo:
    """Make ``name`` a metric ``--metric`` accepts (replacing one of that name)."""
    info = MetricInfo(
        name, builder, options=options, needs_both_answers=needs_both_answers, needs_model=needs_model,
        scored_by=scored_by, configured_by=configured_by,
    )
    METRICS[name] = info
    return info


def metric_info(spec: str | MetricSpec) -> MetricInfo:
    """The registry's entry for a spec (a :class:`~adaptergate.metrics.spec.MetricSpec`, or its
    text: ``exact:casefold`` is ``exact``). Nothing is validated; a name the registry does not
    hold (a user metric ``module:function``) gets a :class:`MetricInfo` with the defaults."""
    from adaptergate.metrics.spec import MetricSpec

    if isinstance(spec, MetricSpec):
        name = spec.name
    elif isinstance(spec, str):
        name = spec.strip()
        head, colon, _ = name.partition(":")
        info = METRICS.get(head.strip())
        if info is not None and (not colon or info.options is not None):
            return info
    else:
        raise TypeError(f"a metric spec is a str or a MetricSpec, got {type(spec).__name__}")
    return METRICS.get(name) or MetricInfo(name)


def is_judge(spec: Any) -> bool:
    """Whether ``--metric`` names the LLM judge (``judge``, surrounding spaces ignored): a
    metric that scores both adapters' answers together."""
    from adaptergate.metrics.spec import MetricSpec

    return isinstance(spec, (str, MetricSpec)) and metric_info(spec).needs_both_answers


JUDGE = "judge"
"""The LLM-judge metric (:mod:`adaptergate.metrics.judge`), handled outside
:class:`~adaptergate.metrics.metric.Metric`."""

register_metric(
    JUDGE, None, needs_both_answers=True, needs_model=True,
    scored_by="an LLM judge (adaptergate.metrics.judge)", configured_by="the --judge-* options",
)
