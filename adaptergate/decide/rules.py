"""The decision core: pure functions over arrays of per-query scores.

No I/O, no printing, no torch. Inputs are the baseline and candidate score
vectors (one entry per query, in holdout order) and a :class:`SliceIndex`
(which query carries which slice tag); outputs are plain dataclasses of
numpy arrays that :mod:`adaptergate.pipeline.gate` turns into a
:class:`~adaptergate.models.GateDecision`.

The ``threshold`` rule is adaptergate 0.5.4's, reproduced exactly (means are
accumulated in holdout order so a verdict on a boundary comes out the same):

* aggregate: reject when ``mean(candidate) - mean(baseline) < -epsilon``;
* ``--slice-epsilon``: reject when a slice with at least ``slice_min_size``
  queries drops by more than ``slice_epsilon``;
* ``--strict``: reject when a query that passed on the baseline
  (score >= ``pass_threshold``; 0.5.4's rule is the default 1.0) fails on
  the candidate.

Which rules rejected is data (:func:`threshold_rejections`,
:func:`stat_rejections`: :class:`~adaptergate.models.Rejection` records);
the sentences that explain them are written by :mod:`adaptergate.pipeline.gate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from dataclasses import dataclass

import numpy as np

from adaptergate.models import GateConfig, Rejection
from adaptergate.decide.stats import (
    PairedStats,
    bh_adjust,
    binary_paired,
    clustered_paired,
    continuous_paired,
    holm_adjust,
    mcnemar_p_min,
    min_exact_size,
    tarone_bonferroni,
    norm_ppf,
    queries_needed,
)

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
    flat = list(chain.from_iterable(slices))
    lookup = {tag: i for i, tag in enumerate(dict.fromkeys(flat))}  # first-appearance order
    t_idx = np.fromiter(map(lookup.__getitem__, flat), dtype=np.int64, count=len(flat))
    counts = np.fromiter(map(len, slices), dtype=np.int64, count=len(slices))
    return slice_index_from_codes(list(lookup), t_idx, counts)


def slice_index_from_codes(tags: list[str], codes: np.ndarray, counts: np.ndarray) -> SliceIndex:
    """The index of queries whose tags are ``codes`` (indices into ``tags``, query after query;
    ``counts[q]`` of them for query ``q``), as :func:`build_slice_index` makes it."""
    q_idx = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    return SliceIndex(tags=tags, query_idx=q_idx, tag_idx=codes, n_queries=int(counts.size))


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


# ------------------------------------------------------ statistical rule


@dataclass(frozen=True)
class Evidence:
    """Paired statistics and a three-valued verdict, per group.

    Group 0 is the aggregate (see :func:`decide_stat`); slices follow in the
    order of ``SliceIndex.tags``.
    """

    paired: PairedStats
    p_adjusted: np.ndarray
    verdict: np.ndarray  # "PASS" | "FAIL" | "INCONCLUSIVE" | "" (slice not tested)
    alpha_used: np.ndarray
    n_needed: np.ndarray  # float, NaN when not applicable / not resolvable
    never_significant: np.ndarray  # bool: too small to ever reach significance
    min_size: np.ndarray  # int: size needed before significance is possible (0 = n/a)
    mde: np.ndarray  # smallest drop detectable with 80% power at this size


@dataclass(frozen=True)
class StatDecision:
    core: CoreDecision
    binary: bool
    clustered: bool
    aggregate: Evidence
    slices: Evidence
    verdict: str
    accepted: bool


def _group_counts(
    groups: np.ndarray, q: np.ndarray, n_groups: int, baseline: np.ndarray, candidate: np.ndarray,
    binary: bool, clusters: np.ndarray | None, alpha: float,
) -> PairedStats:
    """Paired statistics for every group given memberships (group id, query id)."""
    n = np.bincount(groups, minlength=n_groups).astype(np.float64)
    b, c = baseline[q], candidate[q]
    d = c - b
    if clusters is not None:
        cl = clusters[q]
        n_cl = int(clusters.max()) + 1 if clusters.size else 1
        key = groups.astype(np.int64) * n_cl + cl
        uniq, inv = np.unique(key, return_inverse=True)
        g_groups = uniq // n_cl
        g_n = np.bincount(inv, minlength=uniq.size).astype(np.float64)
        g_sum = np.bincount(inv, weights=d, minlength=uniq.size)
        sum_d = np.bincount(groups, weights=d, minlength=n_groups)
        return clustered_paired(n, sum_d, g_groups, g_n, g_sum, n_groups, alpha)
    if binary:
        both = np.bincount(groups, weights=(b > 0.5) & (c > 0.5), minlength=n_groups)
        drop = np.bincount(groups, weights=(b > 0.5) & (c < 0.5), minlength=n_groups)
        gain = np.bincount(groups, weights=(b < 0.5) & (c > 0.5), minlength=n_groups)
        return binary_paired(n, both, drop, gain, alpha)
    sum_d = np.bincount(groups, weights=d, minlength=n_groups)
    sum_d2 = np.bincount(groups, weights=d * d, minlength=n_groups)
    return continuous_paired(n, sum_d, sum_d2, alpha)


def _power(
    paired: PairedStats, margin: float, alpha: np.ndarray, binary: bool, exact: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Queries needed to settle, 'never significant' flags, minimum sizes, MDE."""
    k = paired.n.size
    n_needed = np.full(k, np.nan)
    never = np.zeros(k, dtype=bool)
    min_size = np.zeros(k, dtype=np.int64)
    mde = np.full(k, np.nan)
    for i in range(k):
        n_i = int(paired.n[i])
        if n_i == 0:
            continue
        sd = float(paired.sd[i])
        if binary:  # at least one discordant pair's worth of spread
            sd = max(sd, float(np.sqrt(1.0 / n_i)))
        a = float(alpha[i])
        z = norm_ppf(1 - a) + norm_ppf(0.8)
        mde[i] = z * sd / np.sqrt(n_i) if sd > 0 else np.nan
        if exact:
            min_size[i] = min_exact_size(a)
            never[i] = n_i < min_size[i]
        delta = float(paired.delta[i])
        gap = delta + margin if delta >= -margin else -delta
        need = queries_needed(sd, gap, a)
        if need is not None:
            n_needed[i] = need
    return n_needed, never, min_size, mde


def decide_stat(
    baseline: np.ndarray, candidate: np.ndarray, index: SliceIndex, config: GateConfig,
    clusters: np.ndarray | None = None,
) -> StatDecision:
    """The statistical rule: paired intervals, three-valued verdicts, slice error control.

    Per group (the aggregate, then every slice):

    * FAIL when the drop is significant (one-sided p below the group's
      alpha after adjustment) and the estimated drop exceeds the margin
      (``epsilon``; ``slice_epsilon`` for slices);
    * PASS when the lower confidence bound clears the margin;
    * INCONCLUSIVE otherwise.

    Family-wise error control (Holm; ``multiplicity="bh"`` for FDR): with
    slice gating on, alpha is split between the aggregate (alpha/2) and the
    slices (alpha/2, Holm across eligible slices); when the aggregate fails
    its share passes on to the slices, and when every slice fails theirs
    passes to the aggregate (a graphical procedure: the family-wise error
    stays at alpha). Overall: FAIL if the aggregate or any eligible slice
    fails (or ``strict`` finds a broken query); PASS if the aggregate passes
    and no eligible slice's estimate is beyond ``slice_epsilon``;
    INCONCLUSIVE otherwise, which ``on_inconclusive`` maps to accept or reject.
    """
    core = decide_threshold(baseline, candidate, index, config)
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    alpha = config.alpha
    binary = bool(np.all((b == 0) | (b == 1)) and np.all((c == 0) | (c == 1)))
    clustered = clusters is not None
    gating = config.slice_epsilon is not None
    n_tags = len(index.tags)
    eligible = core.stats.eligible

    agg_alpha = alpha / 2 if gating and eligible.any() else alpha
    q_all = np.arange(b.size, dtype=np.int64)
    agg = _group_counts(np.zeros(b.size, dtype=np.int64), q_all, 1, b, c, binary, clusters, agg_alpha)

    s_eps = config.slice_epsilon or 0.0
    slice_ps = _group_counts(index.tag_idx, index.query_idx, n_tags, b, c, binary, clusters, alpha)
    fam = np.flatnonzero(eligible) if gating else np.zeros(0, dtype=np.int64)
    exact = binary and clusters is None
    agg_fail = bool(agg.p_drop[0] < agg_alpha and agg.delta[0] < -config.epsilon)
    slice_level = alpha if (agg_fail or not gating) else alpha / 2
    p_adj = np.ones(n_tags)
    family_size = int(fam.size)

    def adjust_at(level: float) -> None:
        nonlocal family_size
        if not fam.size:
            return
        if config.multiplicity == "bh":
            p_adj[fam] = bh_adjust(slice_ps.p_drop[fam])
        elif exact:
            # exact tests: slices with too few discordant pairs to ever reach
            # significance do not share the budget (Tarone 1990)
            p_min = mcnemar_p_min(slice_ps.n_drop[fam] + slice_ps.n_gain[fam])  # type: ignore[index]
            p_adj[fam], family_size = tarone_bonferroni(slice_ps.p_drop[fam], p_min, level)
        else:
            p_adj[fam] = holm_adjust(slice_ps.p_drop[fam])

    def slice_fails_at(level: float) -> np.ndarray:
        return (p_adj < level) & (slice_ps.delta < -s_eps) & eligible & gating

    adjust_at(slice_level)
    slice_fails = slice_fails_at(slice_level)
    if gating and not agg_fail and fam.size and slice_fails[fam].all():
        agg_alpha = alpha  # every slice rejected: their alpha passes to the aggregate
        agg = _group_counts(np.zeros(b.size, dtype=np.int64), q_all, 1, b, c, binary, clusters, agg_alpha)
        agg_fail = bool(agg.p_drop[0] < agg_alpha and agg.delta[0] < -config.epsilon)

    agg_verdict = "FAIL" if agg_fail else ("PASS" if agg.lower[0] >= -config.epsilon else "INCONCLUSIVE")
    s_verdict = np.full(n_tags, "", dtype=object)
    if gating:
        passes = slice_ps.lower >= -s_eps
        s_verdict[eligible] = np.where(
            slice_fails[eligible], "FAIL", np.where(passes[eligible], "PASS", "INCONCLUSIVE")
        )
    # per-slice level used for power statements: the first step (worst case)
    s_alpha = np.full(n_tags, slice_level / max(family_size, 1))
    a_need, a_never, a_min, a_mde = _power(agg, config.epsilon, np.array([agg_alpha]), binary, exact)
    s_need, s_never, s_min, s_mde = _power(
        slice_ps, config.slice_epsilon if gating else config.epsilon, s_alpha, binary, exact
    )
    aggregate = Evidence(agg, np.array([agg.p_drop[0]]), np.array([agg_verdict], dtype=object),
                         np.array([agg_alpha]), a_need, a_never, a_min, a_mde)
    slices = Evidence(slice_ps, p_adj, s_verdict, s_alpha, s_need, s_never, s_min, s_mde)

    strict_fail = core.strict_violations.size > 0
    if agg_fail or slice_fails.any() or strict_fail:
        verdict = "FAIL"
    elif agg_verdict == "PASS" and not (gating and np.any(eligible & (slice_ps.delta < -s_eps))):
        verdict = "PASS"
    else:
        verdict = "INCONCLUSIVE"
    accepted = verdict == "PASS" or (verdict == "INCONCLUSIVE" and config.on_inconclusive == "accept")
    return StatDecision(core, binary, clustered, aggregate, slices, verdict, accepted)


# ------------------------------------------------------ which rules rejected


def threshold_rejections(core: CoreDecision, tags: Sequence[str]) -> list[Rejection]:
    """The rules that rejected under the threshold rule: aggregate, slice, strict (in that order).

    ``tags`` are the slice tags (``SliceIndex.tags``); a slice rejection names
    every violating slice, most regressed first. Empty when accepted.
    """
    out: list[Rejection] = []
    if not core.aggregate_ok:
        out.append(Rejection(rule="aggregate"))
    violating = [tags[i] for i in core.stats.order.tolist() if core.stats.violates[i]]
    if violating:
        out.append(Rejection(rule="slice", slices=violating))
    if core.strict_violations.size:
        out.append(Rejection(rule="strict", n_queries=int(core.strict_violations.size)))
    return out


def unsettled_slices(stat: StatDecision, config: GateConfig) -> np.ndarray:
    """Tag indices (most regressed first) of eligible slices whose evidence is INCONCLUSIVE
    while their estimated drop exceeds ``slice_epsilon`` (none without slice gating)."""
    if config.slice_epsilon is None:
        return np.zeros(0, dtype=np.int64)
    stats = stat.core.stats
    keep = stats.eligible & (stat.slices.verdict == "INCONCLUSIVE") & (stats.delta < -config.slice_epsilon)
    return np.asarray([i for i in stats.order.tolist() if keep[i]], dtype=np.int64)


def stat_rejections(stat: StatDecision, tags: Sequence[str], config: GateConfig) -> list[Rejection]:
    """The rules that rejected under the statistical rule, in the order the reasons list them.

    aggregate (its evidence is FAIL), slice (every FAIL slice, most regressed
    first), strict, and inconclusive-policy (the verdict is INCONCLUSIVE and
    ``on_inconclusive`` is reject; it names the unsettled slices). Empty when accepted.
    """
    out: list[Rejection] = []
    if stat.aggregate.verdict[0] == "FAIL":
        out.append(Rejection(rule="aggregate"))
    failing = [tags[i] for i in stat.core.stats.order.tolist() if stat.slices.verdict[i] == "FAIL"]
    if failing:
        out.append(Rejection(rule="slice", slices=failing))
    if stat.core.strict_violations.size:
        out.append(Rejection(rule="strict", n_queries=int(stat.core.strict_violations.size)))
    if stat.verdict == "INCONCLUSIVE" and not stat.accepted:
        unsettled = [tags[i] for i in unsettled_slices(stat, config).tolist()]
        out.append(Rejection(rule="inconclusive-policy", slices=unsettled))
    return out
