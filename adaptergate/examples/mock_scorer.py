"""A deterministic mock scorer for trying adaptergate without a model.

Same behaviour as adaptergate 0.5.4's ``adaptergate.examples.mock_scorer``,
so command lines written against it decide the same:

* adapter ids containing ``bad`` score around 0.55, ``good`` around 0.88,
  ``v<even>`` around 0.85, anything else around 0.70;
* slice tags shift the score (``intent=billing_dispute`` collapses for a
  ``bad`` adapter: it is the driver slice of the bundled example);
* a deterministic per-(adapter, query) jitter in [-0.1, 0.1).

``score_batch`` is the same function over a list of queries: adaptergate
calls it once per adapter instead of once per query.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# slice tag -> (bonus for a good adapter, penalty for a bad one)
SLICE_EFFECTS: dict[str, tuple[float, float]] = {
    "intent=billing_dispute": (+0.05, 0.45),
    "intent=refund_request": (+0.03, 0.30),
    "intent=technical_support": (+0.02, 0.10),
    "intent=order_status": (+0.02, 0.05),
    "lang=es": (-0.02, 0.04),
    "difficulty=hard": (-0.05, 0.15),
    "difficulty=easy": (+0.05, -0.05),
}


def _base(adapter_id: str) -> tuple[float, bool]:
    name = adapter_id.lower()
    if "bad" in name:
        return 0.55, True
    if "good" in name:
        return 0.88, False
    m = re.search(r"v(\d+)", name)
    return (0.85 if m and int(m.group(1)) % 2 == 0 else 0.70), False


def _score(adapter_id: str, base: float, is_bad: bool, query: dict[str, Any]) -> float:
    slices = query.get("slices")
    if isinstance(slices, list):
        for tag in slices:
            if isinstance(tag, str) and tag in SLICE_EFFECTS:
                bonus, penalty = SLICE_EFFECTS[tag]
                base = base - penalty if is_bad else base + bonus
    qid = query.get("question_id") or query.get("id") or query.get("query_id") or ""
    digest = hashlib.sha256(f"{adapter_id}|{qid}".encode("utf-8")).hexdigest()
    jitter = (int(digest[:8], 16) % 200 - 100) / 1000.0
    return max(0.0, min(1.0, base + jitter))


def score(adapter_id: str, query: dict[str, Any]) -> float:
    """Score one query for one adapter, in [0, 1]."""
    if adapter_id is None:
        return 0.0
    base, is_bad = _base(adapter_id)
    return _score(adapter_id, base, is_bad, query)


def score_batch(adapter_id: str, queries: list[dict[str, Any]]) -> list[float]:
    """Score many queries for one adapter (identical values to :func:`score`)."""
    if adapter_id is None:
        return [0.0] * len(queries)
    base, is_bad = _base(adapter_id)
    return [_score(adapter_id, base, is_bad, q) for q in queries]
