"""A judge request: :class:`JudgeRequest` (one item to judge), :class:`JudgeStats`
(what a judge backend did with its requests), and the error for a request whose
judgement stays malformed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adaptergate.errors import EvaluationError
from adaptergate.metrics.judge.replies import shorten

__all__ = ["JudgeRequest", "JudgeStats", "still_malformed"]


@dataclass(frozen=True)
class JudgeRequest:
    query_id: str
    prompt: str
    gold: Any
    answers: tuple[str, ...]

    @property
    def pairwise(self) -> bool:
        return len(self.answers) == 2


@dataclass
class JudgeStats:
    judged: int = 0
    """Judgements made in this run (not from the cache)."""
    cached: int = 0
    repairs: int = 0
    """Malformed replies that were answered with a repair message."""
    fallbacks: int = 0
    """Local items decoded freely because the tokenizer could not spell the scores."""
    calls: int = 0
    """Requests sent to the server, or batched generation steps of the local model."""
    seconds: float = 0.0
    over_context: int = 0
    """Local judge prompts (with room for the reply) longer than the judge model's context."""
    context: int | None = None
    """The local judge model's context window in tokens, where its config says."""


def still_malformed(req: JudgeRequest, attempts: int, why: str) -> EvaluationError:
    """The run's end when ``req`` got no valid judgement in ``attempts`` tries."""
    tries = f"{attempts} attempt" + ("" if attempts == 1 else "s")
    return EvaluationError(
        f"judge output for query {req.query_id!r} is still malformed after {tries}: {shorten(why)}"
    )
