"""Metrics: how a generated answer is scored against the gold (built-ins, user functions, the LLM judge).

Modules, one noun each:

* :mod:`~adaptergate.metrics.base` — the seam: the registry of metrics by name
  (:data:`METRICS`, :func:`register_metric`, :func:`metric_info`, :func:`is_judge`);
* :mod:`~adaptergate.metrics.spec` — :class:`MetricSpec`, the ``--metric`` grammar and its options;
* :mod:`~adaptergate.metrics.gold` — a query's gold answer and the errors naming the query;
* :mod:`~adaptergate.metrics.metric` — :class:`Metric` and :func:`build_metric`;
* :mod:`~adaptergate.metrics.builtin` — the built-in text comparisons, registered on import;
* :mod:`~adaptergate.metrics.judge` — the LLM judge (imported only where it runs).

Importing this package registers the built-ins; it never imports the judge.
"""

from adaptergate.metrics.base import (
    JUDGE,
    METRICS,
    MetricFactory,
    MetricInfo,
    is_judge,
    metric_info,
    register_metric,
)
from adaptergate.metrics.builtin import BUILTINS, first_number
from adaptergate.metrics.gold import gold_of
from adaptergate.metrics.metric import Metric, build_metric
from adaptergate.metrics.spec import MetricSpec, parse_metric

__all__ = [
    "BUILTINS",
    "JUDGE",
    "METRICS",
    "Metric",
    "MetricFactory",
    "MetricInfo",
    "MetricSpec",
    "build_metric",
    "first_number",
    "gold_of",
    "is_judge",
    "metric_info",
    "parse_metric",
    "register_metric",
]
