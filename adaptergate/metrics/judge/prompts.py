"""The judge's prompts: the chat messages that ask for one judgement
(:func:`build_messages`) and the repair message after a malformed reply."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from adaptergate.metrics.judge.criteria import SCORE_MAX, SCORE_MIN, Criterion

__all__ = ["MAX_ANSWER_CHARS", "PROMPT_VERSION", "build_messages", "repair_message"]

PROMPT_VERSION = 1
"""Bump when the judge prompt or skeleton changes: cached judgements are then redone."""
MAX_ANSWER_CHARS = 16_000
"""Answers (and prompts) longer than this are cut before they reach the judge."""


def _example(criteria: Sequence[Criterion], pairwise: bool) -> str:
    one = "{" + ", ".join(f'"{c.name}": <1-10>' for c in criteria) + "}"
    scores = '{"A": ' + one + ', "B": ' + one + "}" if pairwise else one
    return '{"scores": ' + scores + ', "reasoning": "<one or two sentences>"}'


def build_messages(
    criteria: Sequence[Criterion], prompt: str, gold: Any, answers: Sequence[str],
) -> list[dict[str, str]]:
    """Chat messages asking for one judgement (pairwise when two answers are given)."""
    pairwise = len(answers) == 2
    rubric = "\n".join(f"- {c.name} (weight {c.weight:g}): {c.rubric}" for c in criteria)
    what = "two answers (A and B) to the same query" if pairwise else "an answer to a query"
    system = (
        f"You are a strict, impartial judge. You grade {what}.\n"
        f"Score each criterion with an integer from {SCORE_MIN} (very poor) to {SCORE_MAX} (excellent):\n"
        f"{rubric}\n"
        + ("Score A and B independently; their order says nothing about their quality.\n" if pairwise else "")
        + "Reply with only this JSON object, no other text, every criterion present, no other key:\n"
        + _example(criteria, pairwise)
    )
    parts = [f"Query:\n{_clip(prompt)}"]
    if gold is not None:
        ref = gold if isinstance(gold, str) else json.dumps(gold, ensure_ascii=False)
        parts.append(f"Reference answer:\n{_clip(ref)}")
    if pairwise:
        parts.append(f"Answer A:\n{_clip(answers[0])}")
        parts.append(f"Answer B:\n{_clip(answers[1])}")
    else:
        parts.append(f"Answer to grade:\n{_clip(answers[0])}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ANSWER_CHARS else text[:MAX_ANSWER_CHARS] + "…"


def repair_message(why: str, criteria: Sequence[Criterion], pairwise: bool) -> dict[str, str]:
    return {
        "role": "user",
        "content": f"Your reply was not valid: {why}. Reply again with only the JSON object, exactly"
        f" this shape, integer scores {SCORE_MIN}-{SCORE_MAX}, no other key:\n{_example(criteria, pairwise)}",
    }
