"""Parity: does the serving engine answer as PEFT does?

What a gate scores through vLLM or a server is what is served; what a team
trained and checked offline is usually PEFT. The two can differ (kernels,
dtype, quantisation, a server's chat template), and nobody notices until a
tenant does. :func:`run_parity` asks both the same queries, greedy, with the same
token budget, and counts identical answers; the queries that differ are kept
with both answers, side by side.

``adaptergate parity`` runs it on its own (exit 1 below ``--min-agreement``);
``gate --parity-sample N`` runs it on N of the gate's queries with the
candidate adapter, and the report carries the figure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError

__all__ = ["ParityDiff", "ParityResult", "gate_parity", "parity_sample", "run_parity"]

SHOWN_DIFFS = 20
"""Differing queries kept in a summary (all are counted)."""


@dataclass(frozen=True)
class ParityDiff:
    query_id: str
    prompt: str
    peft: str
    served: str


@dataclass
class ParityResult:
    backend: str
    engine: dict[str, Any]
    queries: int
    identical: int
    diffs: list[ParityDiff] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        """Share of identical answers (1.0 for no queries: nothing disagreed)."""
        return self.identical / self.queries if self.queries else 1.0

    def summary(self, shown: int = SHOWN_DIFFS) -> dict[str, Any]:
        """JSON-ready: the figure, the engine, and the first ``shown`` differing queries."""
        return {
            "backend": self.backend, "engine": self.engine, "queries": self.queries,
            "identical": self.identical, "agreement": round(self.agreement, 6),
            "differing": [
                {"id": d.query_id, "prompt": d.prompt, "peft": d.peft, "served": d.served} for d in self.diffs[:shown]
            ],
            "differing_total": len(self.diffs),
        }


def parity_sample(ids: Sequence[str], n: int | None) -> list[int]:
    """``n`` query indices chosen by a hash of their ids (the same queries on every run and
    machine, whatever the holdout's order), in holdout order; all of them when ``n`` is None
    or at least the holdout's size."""
    if n is None or n >= len(ids):
        return list(range(len(ids)))
    if n <= 0:
        return []
    ranked = sorted(range(len(ids)), key=lambda i: hashlib.sha256(f"parity\0{ids[i]}".encode()).hexdigest())
    return sorted(ranked[:n])


def _result(backend: str, engine: dict[str, Any], ids: Sequence[str], prompts: Sequence[str],
            ours: Sequence[str], theirs: Sequence[str]) -> ParityResult:
    diffs = [ParityDiff(str(q), p, a, b) for q, p, a, b in zip(ids, prompts, ours, theirs) if a != b]
    return ParityResult(backend=backend, engine=engine, queries=len(prompts),
                        identical=len(prompts) - len(diffs), diffs=diffs)


def open_peft(base_model: str | Path, adapters: dict[str, Path], settings: Any) -> Any:
    """The PEFT backend on the same base and adapters, with the same token policy."""
    from adaptergate.backends.base import open_backend

    base = Path(base_model)
    if not base.is_dir():
        raise InvalidInputError(
            f"parity runs PEFT here beside the serving backend: --base-model must be the base model's"
            f" directory, got {base_model} (a name only the server knows)"
        )
    return open_backend("peft", base, adapters, replace(settings, options={}))


def gate_parity(
    inputs: Any, runner: Any, adapter: str, payloads: list[dict[str, Any]], ids: list[str], golds: list[Any], *,
    sample: int, settings: Any, progress: Callable[[int], None] | None = None,
) -> ParityResult:
    """``gate --parity-sample N``: N of the gate's queries, the candidate adapter, the gate's
    serving backend (``runner``, still open) against PEFT."""
    from adaptergate.scoring.model import _max_new_tokens, _prompt_of

    picked = parity_sample(ids, sample)
    prompts = [_prompt_of(payloads[i], ids[i]) for i in picked]
    picked_ids = [ids[i] for i in picked]
    max_new = inputs.max_new_tokens or _max_new_tokens(runner, [golds[i] for i in picked if golds[i] is not None])
    theirs = runner.generate(prompts, [adapter] * len(prompts), max_new_tokens=max_new)
    peft = open_peft(inputs.base_model, {adapter: Path(inputs.candidate_adapter)}, settings)
    try:
        ours = peft.generate(prompts, [adapter] * len(prompts), max_new_tokens=max_new)
    finally:
        peft.close()
    return _result(runner.name, runner.identity(), picked_ids, prompts, ours, theirs)


def run_parity(
    base_model: str, adapter: Path, payloads: list[dict[str, Any]], ids: list[str], *, backend: str,
    settings: Any, sample: int | None = None, max_new_tokens: int | None = None,
    allow_pickle: bool = False, progress: Callable[[int], None] | None = None,
) -> ParityResult:
    """``adaptergate parity``: ``adapter``'s greedy answers from ``backend`` and from PEFT on the
    sampled queries. The adapter is validated against the base first, as in a gate."""
    from adaptergate.backends.adapters import validate_adapter
    from adaptergate.backends.base import open_backend
    from adaptergate.backends.base_model import inspect_base
    from adaptergate.backends.peft import check_no_remote_code
    from adaptergate.metrics.gold import gold_of
    from adaptergate.scoring.model import _max_new_tokens, _prompt_of

    if backend == "peft":
        raise InvalidInputError("parity compares a serving backend with PEFT: --backend vllm or openai")
    check_no_remote_code(base_model, what="base model", trust_remote_code=settings.trust_remote_code)
    base = inspect_base(Path(base_model), allow_pickle=allow_pickle)
    validate_adapter(adapter, base, allow_pickle=allow_pickle, name="adapter")
    picked = parity_sample(ids, sample)
    prompts = [_prompt_of(payloads[i], ids[i]) for i in picked]
    picked_ids = [ids[i] for i in picked]
    golds = [g for g in (gold_of(payloads[i]) for i in picked) if g is not None]
    name = "adapter"
    served = open_backend(backend, base_model, {name: Path(adapter)}, settings)
    try:
        max_new = max_new_tokens or _max_new_tokens(served, golds)
        theirs = served.generate(prompts, [name] * len(prompts), max_new_tokens=max_new, progress=progress)
        engine = served.identity()
    finally:
        served.close()
    peft = open_peft(base_model, {name: Path(adapter)}, settings)
    try:
        ours = peft.generate(prompts, [name] * len(prompts), max_new_tokens=max_new, progress=progress)
    finally:
        peft.close()
    return _result(backend, engine, picked_ids, prompts, ours, theirs)
