"""A judge run: :func:`judge_answers` judges both adapters' answers (from the cache
where it can) into a :class:`JudgeOutcome`; :func:`backend_factory` says what
builds the judge."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptergate.metrics.judge.cache import JudgeIdentity, cache_path, item_key, read_cache
from adaptergate.metrics.judge.criteria import Criterion, pairwise_swapped, weighted_score
from adaptergate.metrics.judge.local import LocalJudgeFactory
from adaptergate.metrics.judge.replies import Judgement
from adaptergate.metrics.judge.request import JudgeRequest, JudgeStats
from adaptergate.metrics.judge.settings import JudgeSettings
from adaptergate.metrics.judge.url import UrlJudge, chat_endpoint
from adaptergate.trust import public_url

__all__ = ["JudgeOutcome", "backend_factory", "judge_answers"]


@dataclass
class JudgeOutcome:
    """Judge scores of both adapters' answers, per query."""

    criteria: tuple[Criterion, ...]
    pairwise: bool
    judge: str
    backend: str
    baseline: list[dict[str, int]]
    candidate: list[dict[str, int]]
    baseline_reasoning: list[str]
    candidate_reasoning: list[str]
    swapped: list[bool] | None
    stats: JudgeStats = field(default_factory=JudgeStats)

    def scores(self) -> tuple[Any, Any]:
        import numpy as np

        return (
            np.asarray([weighted_score(s, self.criteria) for s in self.baseline], dtype=np.float64),
            np.asarray([weighted_score(s, self.criteria) for s in self.candidate], dtype=np.float64),
        )

    def summary(self) -> Any:
        from adaptergate.models import JudgeCriterionSummary, JudgeSummary

        n = len(self.baseline)
        rows = []
        for c in self.criteria:
            b = [s[c.name] for s in self.baseline]
            k = [s[c.name] for s in self.candidate]
            mb, mk = (sum(b) / n, sum(k) / n) if n else (0.0, 0.0)
            rows.append(JudgeCriterionSummary(
                name=c.name, weight=c.weight, rubric=c.rubric, baseline=mb, candidate=mk, delta=mk - mb,
                n_worse=sum(1 for x, y in zip(b, k) if y < x), n_better=sum(1 for x, y in zip(b, k) if y > x),
            ))
        return JudgeSummary(
            judge=self.judge, backend=self.backend, pairwise=self.pairwise, criteria=rows,
            n_judged=self.stats.judged, n_cached=self.stats.cached, n_repaired=self.stats.repairs,
            n_candidate_first=sum(self.swapped) if self.swapped is not None else None,
        )


def backend_factory(settings: JudgeSettings, gen: Any, *, allow_pickle: bool = False) -> Callable[[], Any]:
    """What builds the judge: loading a local model waits until something is left to judge."""
    if settings.url is not None:
        return lambda: UrlJudge(settings)
    return LocalJudgeFactory(settings, gen, allow_pickle=allow_pickle)


def judge_answers(
    settings: JudgeSettings,
    requests_for: Callable[[int], tuple[str, str, Any]],
    hashes: Sequence[str],
    baseline_outputs: Sequence[str | None],
    candidate_outputs: Sequence[str | None],
    *,
    cache_root: Path,
    backend_factory: Callable[[], Any],
    progress: Callable[[int], None] | None = None,
) -> JudgeOutcome:
    """Judge every query's two answers, from the cache where possible.

    ``requests_for(i)`` gives query ``i``'s (id, prompt, gold). The backend
    is built (a local model loaded) only when something is left to judge.
    """
    from adaptergate.storage import locked_append

    n = len(hashes)
    pairwise = settings.pairwise
    swapped = [pairwise_swapped(h) for h in hashes] if pairwise else None
    # what each query needs judged: (key, answers)
    needs: list[list[tuple[str, tuple[str, ...]]]] = []
    for i in range(n):
        b, c = baseline_outputs[i] or "", candidate_outputs[i] or ""
        if pairwise:
            assert swapped is not None
            answers = (c, b) if swapped[i] else (b, c)
            needs.append([(item_key(hashes[i], answers), answers)])
        else:
            needs.append([(item_key(hashes[i], (b,)), (b,)), (item_key(hashes[i], (c,)), (c,))])

    backend: Any = None
    identity_probe = _identity_without_loading(settings, backend_factory)
    results: dict[str, Judgement] = {}
    stats = JudgeStats()
    path: Path | None = None
    if identity_probe is not None:
        path = cache_path(cache_root, identity_probe, settings)
        results = read_cache(path, settings)
    # one judgement per distinct (query, answers): identical answers of both adapters are judged once
    todo: dict[str, tuple[int, tuple[str, ...]]] = {}
    hits: set[str] = set()
    for i, items in enumerate(needs):
        for key, answers in items:
            if key in results:
                hits.add(key)
            else:
                todo.setdefault(key, (i, answers))
    stats.cached = len(hits)
    if progress and stats.cached:
        progress(stats.cached)
    label = identity_probe.label if identity_probe is not None else ""
    kind = identity_probe.kind if identity_probe is not None else ""
    if todo:
        backend = backend_factory()
        label, kind = backend.label, backend.kind
        if path is None:
            path = cache_path(cache_root, backend, settings)
            results.update(read_cache(path, settings))
            stats.cached += sum(1 for k in todo if k in results)
            todo = {k: v for k, v in todo.items() if k not in results}
        keys = list(todo)
        reqs = []
        for key in keys:
            i, answers = todo[key]
            qid, prompt, gold = requests_for(i)
            reqs.append(JudgeRequest(query_id=qid, prompt=prompt, gold=gold, answers=answers))
        fresh: list[str] = []

        def done(k: int, judgement: Judgement) -> None:
            key = keys[k]
            results[key] = judgement
            fresh.append(json.dumps({"k": key, **judgement.to_record()}, ensure_ascii=False))
            if len(fresh) >= 64:
                locked_append(path, fresh)
                fresh.clear()
            if progress:
                progress(1)

        try:
            backend.judge(reqs, done)
        finally:
            if fresh:
                locked_append(path, fresh)
            backend.close()
        stats.judged = len(keys)  # identical answers of one query are one judgement
        s = backend.stats
        stats.repairs, stats.fallbacks, stats.calls, stats.seconds = s.repairs, s.fallbacks, s.calls, s.seconds
        stats.over_context, stats.context = s.over_context, s.context

    base_scores: list[dict[str, int]] = []
    cand_scores: list[dict[str, int]] = []
    base_reason: list[str] = []
    cand_reason: list[str] = []
    for i, items in enumerate(needs):
        if pairwise:
            assert swapped is not None
            j = results[items[0][0]]
            c_pos, b_pos = (0, 1) if swapped[i] else (1, 0)
            base_scores.append(j.scores[b_pos])
            cand_scores.append(j.scores[c_pos])
            base_reason.append(j.reasoning)
            cand_reason.append(j.reasoning)
        else:
            jb, jc = results[items[0][0]], results[items[1][0]]
            base_scores.append(jb.scores[0])
            cand_scores.append(jc.scores[0])
            base_reason.append(jb.reasoning)
            cand_reason.append(jc.reasoning)
    return JudgeOutcome(
        criteria=settings.criteria, pairwise=pairwise, judge=label, backend=kind,
        baseline=base_scores, candidate=cand_scores, baseline_reasoning=base_reason,
        candidate_reasoning=cand_reason, swapped=swapped, stats=stats,
    )


def _identity_without_loading(settings: JudgeSettings, factory: Callable[[], Any]) -> JudgeIdentity | None:
    """The judge's cache identity without loading a model (the weights are hashed, not loaded)."""
    if settings.url is not None:
        endpoint = chat_endpoint(settings.url)
        ident = f"url:{endpoint} model:{settings.name}"
        return JudgeIdentity(ident, f"{settings.name} at {public_url(endpoint)}", "url", {"judge": ident})
    probe = getattr(factory, "identity", None)
    return probe() if callable(probe) else None
