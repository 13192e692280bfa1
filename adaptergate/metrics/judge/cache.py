"""The judge cache: judgements under ``<cache>/judge/``, one JSONL file per judge
(:class:`JudgeIdentity`), criteria, prompt version and mode; one line per
(query, answers) item."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergate.metrics.judge.criteria import criteria_hash
from adaptergate.metrics.judge.prompts import PROMPT_VERSION
from adaptergate.metrics.judge.replies import Judgement, parse_judgement
from adaptergate.metrics.judge.settings import JudgeSettings

__all__ = ["CACHE_VERSION", "JudgeIdentity", "cache_path", "item_key", "read_cache"]

CACHE_VERSION = 1


@dataclass(frozen=True)
class JudgeIdentity:
    """Who judges, as the cache keys it: known without loading a local model."""

    identity: str
    label: str
    kind: str
    fields: dict[str, Any]

    def key_fields(self) -> dict[str, Any]:
        return self.fields


def cache_path(root: Path, backend: Any, settings: JudgeSettings) -> Path:
    """The cache file of a judge (``backend.key_fields()``) with these settings under ``root``."""
    key = json.dumps(
        {"v": CACHE_VERSION, "prompt": PROMPT_VERSION, "criteria": criteria_hash(settings.criteria),
         "pairwise": settings.pairwise, **backend.key_fields()},
        sort_keys=True,
    ).encode("utf-8")
    return root / "judge" / (hashlib.sha256(key).hexdigest()[:40] + ".jsonl")


def item_key(query_hash: str, answers: Sequence[str]) -> str:
    """One cached item: a query and the answer(s) shown to the judge, in order."""
    blob = json.dumps([query_hash, list(answers)], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:40]


def read_cache(path: Path, settings: JudgeSettings) -> dict[str, Judgement]:
    """The valid judgements in ``path`` by item key (none when it does not exist)."""
    out: dict[str, Judgement] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    want = 2 if settings.pairwise else 1
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            scores = rec["scores"]
            obj = {"scores": scores[0] if want == 1 else {"A": scores[0], "B": scores[1]},
                   "reasoning": rec["reasoning"]}
            if len(scores) != want:
                continue
            out[rec["k"]] = parse_judgement(json.dumps(obj), settings.criteria, pairwise=settings.pairwise)
        except (ValueError, KeyError, TypeError, IndexError):
            continue  # a torn or foreign line: that item is judged again
    return out
