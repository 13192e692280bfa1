"""The decision core: pure functions over arrays of per-query scores.

No I/O, no printing, no torch. Inputs are the baseline and candidate score
vectors (one entry per query, in holdout order) and a :class:`SliceIndex`
(which query carries which slice tag); outputs are plain dataclasses of
numpy arrays that :mod:`adaptergate.gate` turns into a
:class:`~adaptergate.models.GateDecision`.

The ``threshold`` rule is adaptergate 0.5.4's, reproduced exactly (means are
accumulated in holdout order so a verdict on a boundary comes out the same):

* aggregate: reject when ``mean(candidate) - mean(baseline) < -epsilon``;
* ``--slice-epsilon``: reject when a slice with at least ``slice_min_size``
  queries drops by more than ``slice_epsilon``;
* ``--strict``: reject when a query that passed on the baseline
  (score >= ``pass_threshold``; 0.5.4's rule is the default 1.0) fails on
  the candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaptergate.models import GateConfig

@dataclass(frozen=True)
class SliceIndex:
    """Sparse query x tag membership, in COO form.

    ``tags`` are in order of first appearance; ``query_idx``/``tag_idx`` list
    each membership once, grouped by query in ascending query order (so
    per-tag sums accumulate in holdout order, as 0.5.4 summed them).
    """

    tags: list[str]
    query_idx: np.ndarray
    tag_idx: np.ndarray
    n_queries: int

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.tag_idx, minlength=len(self.tags)).astype(np.int64)

    def members(self, tag: int) -> np.ndarray:
        return self.query_idx[self.tag_idx == tag]


def build_slice_index(slices: Sequence[Sequence[str]]) -> SliceIndex:
    """Index the slice tags of each query.

    Tags within one query must be distinct (the holdout loader guarantees it).
    """
    lookup: dict[str, int] = {}
    setdefault = lookup.setdefault
    # new tags get the next number: len() is evaluated before setdefault inserts
    t_list = [setdefault(tag, len(lookup)) for tags in slices for tag in tags]
    counts = np.fromiter((len(tags) for tags in slices), dtype=np.int64, count=len(slices))
    q_idx = np.repeat(np.arange(len(slices), dtype=np.int64), counts)
    t_idx = np.asarray(t_list, dtype=np.int64)
    return SliceIndex(tags=list(lookup), query_idx=q_idx, tag_idx=t_idx, n_queries=len(slices))


def ordered_mean(values: np.ndarray) -> float:
    """Mean accumulated left to right, like 0.5.4's ``total += score``."""
    if values.size == 0:
        return 0.0
    return float(np.cumsum(values, dtype=np.float64)[-1]) / values.size


@dataclass(frozen=True)
class SliceStats:
    """Per-tag aggregates; every array is indexed like ``SliceIndex.tags``."""

    n: np.ndarray
    n_regressed: np.ndarray
    mean_baseline: np.ndarray
    mean_candidate: np.ndarray
    delta: np.ndarray
    contribution: np.ndarray
    share_of_drop: np.ndarray
    eligible: np.ndarray
    violates: np.ndarray
    order: np.ndarray
    """Tag indices, most regressed first; ties broken by tag name."""


def slice_stats(
    index: SliceIndex, baseline: np.ndarray, candidate: np.ndarray, config: GateConfig
) -> SliceStats:
    n_tags = len(index.tags)
    q, t = index.query_idx, index.tag_idx
    n = np.bincount(t, minlength=n_tags).astype(np.int64)
    safe_n = np.maximum(n, 1)
    sum_b = np.bincount(t, weights=baseline[q], minlength=n_tags)
    sum_c = np.bincount(t, weights=candidate[q], minlength=n_tags)
    d = candidate - baseline
    regressed = (d < 0)[q]
    n_reg = np.bincount(t, weights=regressed.astype(np.float64), minlength=n_tags).astype(np.int64)
    mean_b = sum_b / safe_n
    mean_c = sum_c / safe_n
    delta = mean_c - mean_b
    sum_d = np.bincount(t, weights=d[q], minlength=n_tags)
    total = max(index.n_queries, 1)
    contribution = sum_d / total
    mass = float(np.clip(-d, 0.0, None).sum())
    share = np.clip(-sum_d, 0.0, None) / mass if mass > 0 else np.zeros(n_tags)
    eligible = n >= config.slice_min_size
    if config.slice_epsilon is None:
        violates = np.zeros(n_tags, dtype=bool)
    else:
        violates = eligible & (delta < -config.slice_epsilon)
    names = np.asarray(index.tags, dtype=object)
    order = np.asarray(sorted(range(n_tags), key=lambda i: (delta[i], names[i])), dtype=np.int64)
    return SliceStats(n, n_reg, mean_b, mean_c, delta, contribution, share, eligible, violates, order)


def excess_drop(stats: SliceStats, n_queries: int, aggregate_delta: float) -> np.ndarray:
    """How much more score each slice lost than its size alone explains.

    ``-(sum of the slice's deltas - n_slice * aggregate delta) / N``: zero
    for a slice that fell exactly as much as the whole holdout, positive for
    one that carries more than its share of the drop. A slice merely
    containing the broken queries (``lang=en`` around ``intent=refund``)
    dilutes them with unbroken ones and scores lower than the broken slice.
    """
    sum_d = stats.contribution * max(n_queries, 1)
    return -(sum_d - stats.n * aggregate_delta) / max(n_queries, 1)


def choose_driver(index: SliceIndex, stats: SliceStats, aggregate_delta: float) -> int | None:
    """The slice that carries the largest share of the drop beyond its size.

    Candidates are slices that may reject on their own (``eligible``, i.e.
    at least ``slice_min_size`` queries) and whose mean dropped. The driver
    maximises :func:`excess_drop`; when no slice fell more than the whole
    holdout (a perfectly uniform drop), the one with the largest net drop is
    named. Ties: larger net drop, smaller slice, then tag name.
    """
    loss = -stats.contribution
    cands = [i for i in range(len(index.tags)) if stats.eligible[i] and stats.delta[i] < 0 and loss[i] > 0]
    if not cands:
        return None
    excess = excess_drop(stats, index.n_queries, aggregate_delta)
    tol = 1e-12
    if max(excess[i] for i in cands) > tol:
        return min(cands, key=lambda i: (-excess[i], -loss[i], stats.n[i], index.tags[i]))
    return min(cands, key=lambda i: (-loss[i], stats.n[i], index.tags[i]))


@dataclass(frozen=True)
class Overlap:
    """Each slice's change outside its overlap with the driver."""

    n_outside: np.ndarray
    delta_outside: np.ndarray
    explained: np.ndarray


def explain_by_driver(
    index: SliceIndex, baseline: np.ndarray, candidate: np.ndarray, stats: SliceStats,
    driver: int, tolerance: float,
) -> Overlap:
    """Mark regressed slices whose drop vanishes once the driver's queries are removed."""
    n_tags = len(index.tags)
    in_driver = np.zeros(index.n_queries, dtype=bool)
    in_driver[index.members(driver)] = True
    outside = ~in_driver[index.query_idx]
    d = (candidate - baseline)[index.query_idx]
    n_out = np.bincount(index.tag_idx, weights=outside.astype(np.float64), minlength=n_tags).astype(np.int64)
    sum_out = np.bincount(index.tag_idx, weights=np.where(outside, d, 0.0), minlength=n_tags)
    delta_out = np.where(n_out > 0, sum_out / np.maximum(n_out, 1), 0.0)
    explained = (stats.delta < 0) & ((n_out == 0) | (delta_out >= -tolerance))
    explained[driver] = False
    return Overlap(n_out, delta_out, explained)


@dataclass(frozen=True)
class CoreDecision:
    """Everything the threshold rule decided, before any text is written."""

    n: int
    mean_baseline: float
    mean_candidate: float
    delta: float
    aggregate_ok: bool
    strict_violations: np.ndarray
    stats: SliceStats
    driver: int | None
    overlap: Overlap | None
    worst_violation: int | None

    @property
    def accepted(self) -> bool:
        return self.aggregate_ok and self.strict_violations.size == 0 and self.worst_violation is None


def decide_threshold(
    baseline: np.ndarray, candidate: np.ndarray, index: SliceIndex, config: GateConfig
) -> CoreDecision:
    """Apply adaptergate 0.5.4's threshold rule (plus attribution) to score vectors."""
    baseline = np.asarray(baseline, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if baseline.shape != candidate.shape or baseline.ndim != 1:
        raise ValueError("baseline and candidate must be 1-d arrays of the same length")
    n = baseline.size
    mean_b = ordered_mean(baseline)
    mean_c = ordered_mean(candidate)
    delta = mean_c - mean_b
    aggregate_ok = delta >= -config.epsilon
    if config.strict:
        thr = config.pass_threshold
        strict = np.flatnonzero((baseline >= thr) & (candidate < thr))
    else:
        strict = np.zeros(0, dtype=np.int64)
    stats = slice_stats(index, baseline, candidate, config)
    worst = next((int(i) for i in stats.order if stats.violates[i]), None)
    driver = choose_driver(index, stats, delta)
    overlap = None
    if driver is not None:
        tol = config.slice_epsilon if config.slice_epsilon is not None else config.epsilon
        overlap = explain_by_driver(index, baseline, candidate, stats, driver, tol)
    return CoreDecision(n, mean_b, mean_c, delta, bool(aggregate_ok), strict, stats, driver, overlap, worst)
