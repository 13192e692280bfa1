"""One gate run, end to end: holdout -> scorer -> decision -> GateDecision.

This module wires the pieces together and nothing else: loading and
validation live in :mod:`adaptergate.holdout.store`, scoring in
:mod:`adaptergate.scoring.scorers`, the rule in :mod:`adaptergate.decide.rules`,
failure patterns in :mod:`adaptergate.decide.patterns`. Rendering and publishing
consume the returned :class:`~adaptergate.models.GateDecision`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptergate import __version__
from adaptergate.decide import wording as wording
from adaptergate.decide.rules import (
    CoreDecision,
    Evidence as EvidenceArrays,
    SliceIndex,
    StatDecision,
    build_slice_index,
    decide_stat,
    decide_threshold,
    slice_index_from_codes,
    stat_rejections,
    threshold_rejections,
)
from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.holdout.store import DEFAULT_MAX_LINE_BYTES, GOLD_KEYS, Holdout, load_holdout
from adaptergate.models import (
    Evidence,
    FailingExample,
    FailurePattern,
    GateConfig,
    GateDecision,
    GateWarning,
    QueryRow,
    Rejection,
    SliceAttribution,
)
from adaptergate.decide.patterns import find_failure_pattern, query_text
from adaptergate.scoring.scorers import Scorer, load_scorer, score_all
from adaptergate.holdout.tags import duplicate_pairs, find_duplicate_slices

if TYPE_CHECKING:  # the model path imports it when it runs
    from adaptergate.scoring.model import ModelInputs


@dataclass(frozen=True)
class GateRequest:
    tenant: str
    candidate: str
    baseline: str | None
    holdout_path: Path
    scorer_spec: str
    config: GateConfig
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    repeats: int = 1
    model: ModelInputs | None = None


def _check_ids(request: GateRequest) -> None:
    for name, value in (("--tenant", request.tenant), ("--candidate", request.candidate)):
        if not value or not value.strip():
            raise UsageError(f"{name} must not be empty")
    if request.baseline is not None and not request.baseline.strip():
        raise UsageError(
            "--baseline is empty; pass the production adapter id, or omit --baseline together"
            " with --no-require-calibration to promote a tenant's first adapter"
        )
    if request.baseline is not None and request.baseline == request.candidate:
        raise UsageError(f"--candidate and --baseline are the same adapter ({request.candidate!r})")


def prepare(request: GateRequest) -> tuple[Holdout, Holdout]:
    """Validate the request and load the holdout; nothing is scored yet.

    Returns the full holdout and the (possibly sampled) one to gate on. Every
    failure here is invalid input: exit 2, nothing evaluated.
    """
    _check_ids(request)
    config = request.config
    if request.baseline is None and config.require_calibration:
        raise UsageError(
            "no --baseline given: pass the production adapter id, or add"
            " --no-require-calibration to promote a tenant's first adapter"
        )
    # The holdout lives for the whole run. Move it (and everything alive now)
    # to the collector's permanent generation: objects are still freed by
    # reference counting, but a million payload dicts are no longer rescanned
    # by every full collection the rest of the run triggers (seconds at 1M).
    # The collector stays off until then: re-enabled with a million young
    # objects, its next allocation would scan them all once more (1 s at 1M).
    enabled = gc.isenabled()
    gc.disable()
    try:
        full = load_holdout(request.holdout_path, tenant=request.tenant, max_line_bytes=request.max_line_bytes)
        gc.freeze()
    finally:
        if enabled:
            gc.enable()
    if len(full) == 0:
        raise InvalidInputError(
            f"holdout {request.holdout_path} is empty; add queries with 'adaptergate holdout add'"
            " or 'adaptergate holdout import'"
        )
    sample = full.sample(config.sample, config.sample_seed or request.candidate)
    if len(sample) < config.min_holdout_size:
        what = f"--sample {config.sample} gives" if config.sample and config.sample < len(full) else "holdout has"
        raise InvalidInputError(
            f"insufficient held-out set: {what} {len(sample)} queries, fewer than the minimum"
            f" {config.min_holdout_size}; add queries before gating (or lower --min-holdout-size)"
        )
    return full, sample


def run_gate(
    request: GateRequest,
    *,
    scorer: Scorer | None = None,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> GateDecision:
    if request.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {request.repeats}")
    full, holdout = prepare(request)
    if request.model is not None:
        return _run_with_adapters(request, full, holdout, progress=progress, now=now)
    scorer = scorer or load_scorer(request.scorer_spec)

    def runs(adapter: str) -> np.ndarray:
        return np.stack([
            score_all(scorer, adapter, holdout.payloads, holdout.ids, progress=progress)
            for _ in range(request.repeats)
        ])

    cand_runs = runs(request.candidate)
    base_runs = runs(request.baseline) if request.baseline is not None else None
    cand = cand_runs.mean(axis=0)
    base = base_runs.mean(axis=0) if base_runs is not None else np.zeros(len(holdout), dtype=np.float64)
    decision = _collector_paused(build_decision, request, full, holdout, base, cand, now=now)
    if request.repeats > 1 and base_runs is not None:
        from adaptergate.decide.calibration import noise_floor

        decision.noise = noise_floor(base_runs, cand_runs, request.config.alpha)
    return decision


def _collector_paused(fn: Callable[..., GateDecision], *args: Any, **kwargs: Any) -> GateDecision:
    """``fn(*args, **kwargs)`` with the cyclic collector off: describing a decision makes a
    million small objects (per-query rows, n-gram sets) and no cycles, so its passes are waste."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn(*args, **kwargs)
    finally:
        if enabled:
            gc.enable()


def _run_with_adapters(
    request: GateRequest, full: Holdout, holdout: Holdout, *, progress: Callable[[int], None] | None,
    now: datetime | None,
) -> GateDecision:
    from adaptergate.scoring.model import score_with_adapters

    if request.baseline is None:
        raise UsageError("--baseline-adapter is required with --base-model")
    if request.repeats != 1:
        raise UsageError("--repeats applies to a non-deterministic --scorer; greedy decoding is deterministic")
    assert request.model is not None
    scores = score_with_adapters(
        request.model, holdout.payloads, holdout.ids, progress=progress,
    )
    decision = build_decision(request, full, holdout, scores.baseline, scores.candidate, now=now)
    for row, b_out, c_out in zip(decision.per_query, scores.baseline_outputs, scores.candidate_outputs):
        if b_out is not None or c_out is not None:
            row["baseline_output"] = b_out
            row["candidate_output"] = c_out
    outputs = {
        str(row["query_id"]): row for row in decision.per_query if "candidate_output" in row
    } if decision.examples else {}
    for ex in decision.examples:
        row = outputs.get(str(ex.query_id))
        if row is not None:
            ex.baseline_output, ex.candidate_output = row["baseline_output"], row["candidate_output"]
    if scores.judge is not None:
        _attach_judge(decision, scores.judge)
        st = scores.judge.stats
        if st.over_context:
            decision.warnings.append(GateWarning(
                code="judge-over-context",
                message=f"{st.over_context} judge prompt(s) were longer than the judge model's context window"
                f" ({st.context} tokens, room for its reply included): its scores for them are unreliable;"
                " use a judge model with a longer context",
            ))
    decision.evaluation = scores.info
    return decision


def _attach_judge(decision: GateDecision, judged: Any) -> None:
    """``--metric judge``: the per-criterion summary, per-query criterion scores, examples' reasoning."""
    decision.judge = judged.summary()
    where: dict[str, int] = {}
    for k, (row, b, c) in enumerate(zip(decision.per_query, judged.baseline, judged.candidate)):
        row["judge_baseline"] = b
        row["judge_candidate"] = c
        where[str(row["query_id"])] = k
    for ex in decision.examples:
        k = where.get(str(ex.query_id))
        if k is None:
            continue
        ex.judge_scores_baseline = judged.baseline[k]
        ex.judge_scores_candidate = judged.candidate[k]
        ex.judge_reasoning = _clip(judged.candidate_reasoning[k])
        if judged.swapped is not None:
            ex.judge_candidate_label = "A" if judged.swapped[k] else "B"


def build_decision(
    request: GateRequest,
    full: Holdout,
    holdout: Holdout,
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    now: datetime | None = None,
) -> GateDecision:
    """Decide on scored arrays and describe the result."""
    config = request.config
    index = _slice_index(holdout)
    stat = None
    if config.decision == "stat" and request.baseline is not None:
        stat = decide_stat(baseline, candidate, index, config, clusters=_cluster_ids(holdout.clusters))
        core = stat.core
    else:
        core = decide_threshold(baseline, candidate, index, config)
    delta = candidate - baseline
    regressed = delta < 0
    texts = _TextCache(holdout.payloads)

    slices = _slice_attributions(index, core, holdout, regressed, texts)
    aggregate_pattern = None
    if core.driver is None and regressed.any():
        aggregate_pattern = _pattern(np.flatnonzero(regressed), regressed, texts)

    findings = find_duplicate_slices(index.tags)
    warnings = [GateWarning(code="bare-slice-tag", message=str(w)) for w in holdout.warnings[:20]]
    if len(holdout.warnings) > 20:
        warnings.append(
            GateWarning(code="bare-slice-tag", message=f"... and {len(holdout.warnings) - 20} more")
        )
    small = [
        s.slice_tag for s in slices if not s.eligible and s.delta < 0 and config.slice_epsilon is not None
        and s.delta < -config.slice_epsilon
    ]
    if small:
        warnings.append(
            GateWarning(
                code="small-slice-regressed",
                message=(
                    f"{len(small)} slice(s) with fewer than {config.slice_min_size} queries dropped by more"
                    f" than slice_epsilon but cannot reject on their own: " + ", ".join(small[:5])
                    + (" ..." if len(small) > 5 else "")
                ),
            )
        )
    agg_evidence = None
    if stat is not None:
        agg_evidence = _evidence(stat.aggregate, 0, float(stat.aggregate.alpha_used[0]))
        agg_evidence.statement = wording.aggregate_statement(agg_evidence, config.epsilon, core.n)
        pos = {tag: k for k, tag in enumerate(index.tags)}
        for s_attr in slices:
            ev = _evidence(stat.slices, pos[s_attr.slice_tag], config.alpha)
            ev.statement = wording.slice_statement(s_attr.slice_tag, ev, s_attr.n_total, config.slice_epsilon)
            s_attr.evidence = ev
            if config.slice_epsilon is not None:
                s_attr.violates = ev.verdict == "FAIL"
        reasons, lines = _stat_reasons(request, stat, agg_evidence, slices)
        rejected_by = _with_lines(stat_rejections(stat, index.tags, config), lines)
    else:
        reasons, lines = _reasons(request, core, slices)
        rejected_by = _with_lines(threshold_rejections(core, index.tags), lines)
    timestamp = (now or datetime.now(timezone.utc)).isoformat()
    rows: list[QueryRow] = [
        {"query_id": qid, "score_baseline": b, "score_candidate": c, "delta": d, "line": ln}
        for qid, b, c, d, ln in zip(
            holdout.ids, baseline.tolist(), candidate.tolist(), delta.tolist(), holdout.lines
        )
    ]
    driver_tag = index.tags[core.driver] if core.driver is not None else None
    decision = GateDecision(
        tool_version=__version__,
        accepted=stat.accepted if stat is not None else core.accepted,
        verdict=stat.verdict if stat is not None else "",
        decision_rule="stat" if stat is not None else "threshold",
        evidence=agg_evidence,
        binary_scores=stat.binary if stat is not None else None,
        tenant_id=request.tenant,
        candidate_id=request.candidate,
        baseline_id=request.baseline,
        holdout_size=core.n,
        score_baseline=core.mean_baseline,
        score_candidate=core.mean_candidate,
        delta=core.delta,
        epsilon=config.epsilon,
        reason=reasons[0],
        reasons=reasons[1:],
        rejected_by=rejected_by,
        timestamp=timestamp,
        holdout_path=str(request.holdout_path),
        config=config,
        n_regressed=int(regressed.sum()),
        n_improved=int((delta > 0).sum()),
        slice_attributions=slices,
        driver_slice_tag=driver_tag,
        failure_pattern=aggregate_pattern,
        malformed_slice_queries=0,
        suspected_duplicate_slices=duplicate_pairs(findings),
        duplicate_slice_details=findings,
        staleness_days=full.staleness_days(),
        warnings=warnings,
        examples=_examples(index, core.driver, holdout, baseline, candidate, regressed),
    )
    # Built from validated arrays: assigned without re-validating a million rows.
    decision.per_query = rows
    return decision


def _slice_index(holdout: Holdout) -> SliceIndex:
    """The slice index, from the codes the loader made while validating when it made them."""
    tc = holdout.tag_codes
    if tc is not None and tc.counts.size == len(holdout):
        return slice_index_from_codes(list(tc.tags), tc.codes, tc.counts)
    return build_slice_index(holdout.slices)


MAX_EXAMPLES = 5
"""Regressed queries shown with their prompt (and both answers, with real adapters)."""

MAX_EXAMPLE_TEXT = 2_000
"""Prompts and gold answers longer than this are cut in examples."""


def _clip(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_EXAMPLE_TEXT:
        return value[:MAX_EXAMPLE_TEXT] + "…"
    return value


def _examples(
    index: SliceIndex, driver: int | None, holdout: Holdout, baseline: np.ndarray, candidate: np.ndarray,
    regressed: np.ndarray,
) -> list[FailingExample]:
    """The worst regressed queries of the driver slice (of the holdout when there is none)."""
    pool = index.members(driver) if driver is not None else np.arange(len(holdout.ids))
    failing = pool[regressed[pool]]
    delta = candidate[failing] - baseline[failing]
    picked = failing[np.argsort(delta, kind="stable")[:MAX_EXAMPLES]]
    out = []
    for i in picked.tolist():
        payload = holdout.payloads[i]
        out.append(FailingExample(
            query_id=holdout.ids[i], line=holdout.lines[i], prompt=_clip(query_text(payload)),
            gold=_clip(next((payload[k] for k in GOLD_KEYS if payload.get(k) is not None), None)),
            score_baseline=float(baseline[i]), score_candidate=float(candidate[i]),
        ))
    return out


MAX_PASSING_FOR_PATTERN = 10_000
MAX_IDS_PER_SLICE = 1_000
"""Failing ids listed per slice (all of them for the driver; per_query has every row)."""


class _TextCache:
    """Query texts, extracted only for the queries a pattern looks at."""

    def __init__(self, payloads: list[dict]) -> None:
        self._payloads = payloads
        self._cache: dict[int, str | None] = {}

    def take(self, indices: np.ndarray) -> list[str | None]:
        cache, payloads = self._cache, self._payloads
        out = []
        for i in indices.tolist():
            t = cache.get(i, _MISSING)
            if t is _MISSING:
                t = cache[i] = query_text(payloads[i])
            out.append(t)
        return out


_MISSING = object()


def _pattern(failing: np.ndarray, regressed: np.ndarray, texts: _TextCache) -> FailurePattern | None:
    if failing.size < 3:
        return None
    passing = np.flatnonzero(~regressed)
    population = None
    if passing.size > MAX_PASSING_FOR_PATTERN:
        # An evenly strided sample in holdout order: deterministic for a file.
        population = int(passing.size)
        pick = np.linspace(0, passing.size - 1, MAX_PASSING_FOR_PATTERN).round().astype(np.int64)
        passing = passing[pick]  # strictly increasing: passing.size > len(pick)
    return find_failure_pattern(
        texts.take(failing),
        texts.take(passing),
        max_passing=MAX_PASSING_FOR_PATTERN,
        passing_population=population,
    )


def _slice_attributions(
    index: SliceIndex, core: CoreDecision, holdout: Holdout, regressed: np.ndarray, texts: _TextCache
) -> list[SliceAttribution]:
    stats = core.stats
    overlap = core.overlap
    out: list[SliceAttribution] = []
    ids = np.empty(len(holdout.ids), dtype=object)
    ids[:] = holdout.ids
    # Members of every tag at once: sort memberships by tag (stable keeps query order).
    # (a stable sort is unique; on 16-bit keys numpy sorts by radix, ~10x faster)
    keys = index.tag_idx.astype(np.uint16) if len(index.tags) <= 1 << 16 else index.tag_idx
    by_tag = np.argsort(keys, kind="stable")
    q_sorted = index.query_idx[by_tag]
    bounds = np.concatenate(([0], np.cumsum(stats.n)))
    # Patterns are computed for the slices a reader looks at: the driver and
    # every slice that rejects (the passing side is the whole holdout).
    pattern_for = {core.driver} | {int(i) for i in np.flatnonzero(stats.violates)}
    for ti in stats.order.tolist():
        members = q_sorted[bounds[ti]:bounds[ti + 1]]
        failing = members[regressed[members]]
        pattern = _pattern(failing, regressed, texts) if ti in pattern_for and failing.size else None
        out.append(
            SliceAttribution(
                slice_tag=index.tags[ti],
                n_total=int(stats.n[ti]),
                n_regressed=int(stats.n_regressed[ti]),
                score_baseline=float(stats.mean_baseline[ti]),
                score_candidate=float(stats.mean_candidate[ti]),
                delta=float(stats.delta[ti]),
                regressed_query_ids=ids[failing if ti == core.driver else failing[:MAX_IDS_PER_SLICE]].tolist(),
                pattern=pattern.summary if pattern else None,
                contribution=float(stats.contribution[ti]),
                share_of_drop=float(stats.share_of_drop[ti]) if stats.share_of_drop[ti] > 0 else None,
                eligible=bool(stats.eligible[ti]),
                violates=bool(stats.violates[ti]),
                explained_by_driver=bool(overlap.explained[ti]) if overlap is not None else False,
                delta_outside_driver=(
                    float(overlap.delta_outside[ti])
                    if overlap is not None and ti != core.driver and overlap.n_outside[ti] > 0
                    else None
                ),
                n_outside_driver=int(overlap.n_outside[ti]) if overlap is not None and ti != core.driver else None,
                failure_pattern=pattern,
            )
        )
    return out


def _with_lines(rejections: list[Rejection], lines: dict[str, list[str]]) -> list[Rejection]:
    """The rules that rejected, each with the reason lines it wrote."""
    return [r.model_copy(update={"lines": lines.get(r.rule, [])}) for r in rejections]


def _reasons(
    request: GateRequest, core: CoreDecision, slices: list[SliceAttribution]
) -> tuple[list[str], dict[str, list[str]]]:
    """The headline reason first, then one line per rule that rejected; and those lines by rule."""
    cfg = request.config
    agg = f"aggregate {core.mean_baseline:.3f} → {core.mean_candidate:.3f} (Δ={core.delta:+.3f}) over n={core.n}"
    if request.baseline is None:
        return [
            f"ACCEPTED: no baseline to compare against (calibration disabled). Candidate scored"
            f" {core.mean_candidate:.3f} on n={core.n} held-out queries. First adapter for this"
            " tenant — future updates will be gated against it."
        ], {}
    found: list[str] = []
    by_rule: dict[str, list[str]] = {}
    slice_msg = None
    if not core.aggregate_ok:
        found.append(f"{agg} drops more than ε={cfg.epsilon}")
        by_rule["aggregate"] = [found[-1]]
    violating = [s for s in slices if s.violates]
    if violating:
        worst = violating[0]  # slices are ordered most-regressed first
        slice_msg = (
            f"slice '{worst.slice_tag}' {worst.score_baseline:.3f} → {worst.score_candidate:.3f}"
            f" (Δ={worst.delta:+.3f}) on n={worst.n_total} queries drops more than slice_ε={cfg.slice_epsilon}"
            + (f" ({len(violating) - 1} more slice(s) too)" if len(violating) > 1 else "")
        )
        found.append(slice_msg)
        by_rule["slice"] = [slice_msg]
    if core.strict_violations.size:
        found.append(wording.strict_statement(core.strict_violations.size, cfg.pass_threshold))
        by_rule["strict"] = [found[-1]]
    if not found:
        if core.delta >= 0:
            return [f"ACCEPTED: {agg}. Improved or flat."], {}
        return [f"ACCEPTED (tolerated regression): {agg}. |Δ|={abs(core.delta):.3f} ≤ ε={cfg.epsilon}."], {}
    if core.aggregate_ok and slice_msg is not None:
        head = (
            f"REJECTED (slice regression): {agg} is within ε={cfg.epsilon}, BUT {slice_msg}."
            " Mean-score eval would have accepted; slice attribution catches it."
        )
    else:
        head = "REJECTED: " + "; ".join(found) + "."
    return [head, *found], by_rule


def _cluster_ids(clusters: list[str | None]) -> np.ndarray | None:
    """Integer cluster ids; a query without a cluster is a cluster of its own."""
    if clusters.count(None) == len(clusters):
        return None
    lookup: dict[object, int] = {}
    out = np.empty(len(clusters), dtype=np.int64)
    for i, c in enumerate(clusters):
        key = ("q", i) if c is None else ("c", c)
        out[i] = lookup.setdefault(key, len(lookup))
    return out


def _opt_int(x: float) -> int | None:
    return int(x) if np.isfinite(x) else None


def _evidence(ev: EvidenceArrays, i: int, interval_alpha: float) -> Evidence:
    p = ev.paired
    alpha = float(ev.alpha_used[i])
    return Evidence(
        verdict=str(ev.verdict[i]),
        estimate=float(p.delta[i]),
        lower=float(p.lower[i]),
        upper=float(p.upper[i]),
        level=1 - 2 * interval_alpha,
        method=p.method,
        p_value=float(p.p_drop[i]),
        p_adjusted=float(ev.p_adjusted[i]) if len(ev.alpha_used) > 1 else None,
        alpha=alpha,
        n_drop=int(p.n_drop[i]) if p.n_drop is not None else None,
        n_gain=int(p.n_gain[i]) if p.n_gain is not None else None,
        mde=float(ev.mde[i]) if np.isfinite(ev.mde[i]) else None,
        n_needed=_opt_int(float(ev.n_needed[i])),
        never_significant=bool(ev.never_significant[i]),
        min_size=int(ev.min_size[i]) or None,
    )


def _stat_reasons(
    request: GateRequest, stat: StatDecision, agg: Evidence, slices: list[SliceAttribution]
) -> tuple[list[str], dict[str, list[str]]]:
    """Headline, then one line per rule that failed (or left it inconclusive); and the lines by rule.

    The lines of ``inconclusive-policy`` (used only when it rejects) are the
    aggregate's statement when it is INCONCLUSIVE, then the unsettled slices'.
    """
    cfg = request.config
    lines: list[str] = []
    by_rule: dict[str, list[str]] = {}
    if agg.verdict != "PASS":
        lines.append(agg.statement)
        by_rule["aggregate" if agg.verdict == "FAIL" else "inconclusive-policy"] = [agg.statement]
    for s in slices:
        if s.evidence is not None and s.evidence.verdict == "FAIL":
            lines.append(s.evidence.statement)
            by_rule.setdefault("slice", []).append(s.evidence.statement)
    if cfg.slice_epsilon is not None and stat.verdict != "FAIL":
        for s in slices:
            ev = s.evidence
            if ev is not None and ev.verdict == "INCONCLUSIVE" and s.eligible and s.delta < -cfg.slice_epsilon:
                lines.append(ev.statement)
                by_rule.setdefault("inconclusive-policy", []).append(ev.statement)
    if stat.core.strict_violations.size:
        lines.append(wording.strict_statement(stat.core.strict_violations.size, cfg.pass_threshold))
        by_rule["strict"] = [lines[-1]]
    policy = ""
    if stat.verdict == "INCONCLUSIVE":
        policy = (
            " Policy --on-inconclusive accept: not blocked."
            if cfg.on_inconclusive == "accept" else " Policy --on-inconclusive reject: blocked."
        )
    word = "ACCEPTED" if stat.accepted else "REJECTED"
    if stat.verdict == "PASS":
        head = f"{word} (PASS): {agg.statement.removeprefix('PASS: ')}"
    elif stat.verdict == "FAIL":
        n_fail = sum(1 for s in slices if s.evidence is not None and s.evidence.verdict == "FAIL")
        what = []
        if agg.verdict == "FAIL":
            what.append(f"the aggregate dropped {-agg.estimate:.3f} (beyond ε={cfg.epsilon:g})")
        if n_fail:
            worst = next(s for s in slices if s.evidence is not None and s.evidence.verdict == "FAIL")
            what.append(
                f"slice '{worst.slice_tag}' dropped {-worst.delta:.3f} on {worst.n_total} queries"
                + (f" ({n_fail - 1} more slice(s) too)" if n_fail > 1 else "")
            )
        evidence = ", with significant evidence" if what else ""
        if stat.core.strict_violations.size:
            k = stat.core.strict_violations.size
            what.append(
                f"strict mode: {k} quer{'y' if k == 1 else 'ies'} that passed on the baseline now"
                f" {'fails' if k == 1 else 'fail'}"
            )
        head = f"{word} (FAIL): " + "; ".join(what) + evidence + "."
    else:
        head = f"{word} (INCONCLUSIVE): the evidence does not settle it.{policy}"
    return [head, *lines], by_rule
