"""Deterministic benchmark scorer: ``scorer_bench:score`` (+ ``score_batch``).

Both adaptergate 0.5.4 and the new package import it via
``--scorer scorer_bench:score`` (run with ``bench/`` as the working directory
or on ``PYTHONPATH``). 0.5.4 calls ``score(adapter_id, query)`` once per query
and adapter; the new package calls ``score_batch(adapter_id, queries)`` when
the module defines it. The two give bit-identical floats: the same IEEE-754
operations in the same order (``+ - * floor`` and comparisons only, no
transcendental functions whose libm / numpy implementations could differ).

Model of the scores, from the query's ``u`` in [0, 1), its ``slices`` and the
adapter id:

* every adapter: ``0.5 + 0.45 * u`` plus a per-(adapter, query) jitter in
  [-0.05, 0.05): the fractional part of ``u * f + p``, where the phase ``p``
  and the frequency ``f`` derive from a CRC-32 of the adapter id;
* an adapter whose id contains ``"cand"`` (the candidate) is 0.005 worse
  everywhere and 0.25 worse on ``intent=refund_request``.

With the synthetic holdouts of ``synth.py`` (25 equally likely intents) the
aggregate drops by about 0.015, inside ``--epsilon 0.02``, while the
refund slice drops by about 0.255, far beyond ``--slice-epsilon 0.10``: the
silent slice regression both versions must REJECT (exit 1).

``score_batch`` needs numpy (imported lazily: the 0.5.4 venv has none).

    python bench/scorer_bench.py   # self-check: score == score_batch bitwise
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Mapping, Sequence

DRIVER_SLICE = "intent=refund_request"
CANDIDATE_MARK = "cand"
BASE = 0.5
SLOPE = 0.45
JITTER_FREQ = 7919.0
JITTER_AMP = 0.1
CANDIDATE_DROP = 0.005
DRIVER_DROP = 0.25


def _phase(adapter_id: Any) -> float:
    return zlib.crc32(str(adapter_id).encode("utf-8")) / 4294967296.0


def _freq(phase: float) -> float:
    # adapter-dependent frequency: the two adapters' jitters are unrelated
    return JITTER_FREQ + 977.0 * phase


def _is_candidate(adapter_id: Any) -> bool:
    return CANDIDATE_MARK in str(adapter_id)


def _in_driver(query: Mapping[str, Any]) -> bool:
    slices = query.get("slices")
    return isinstance(slices, list) and DRIVER_SLICE in slices


def score(adapter_id: str, query: Mapping[str, Any]) -> float:
    """Score one query, in [0, 1]."""
    u = float(query["u"])
    ph = _phase(adapter_id)
    x = u * _freq(ph) + ph
    jitter = (x - math.floor(x) - 0.5) * JITTER_AMP
    s = BASE + SLOPE * u + jitter
    if _is_candidate(adapter_id):
        s = s - CANDIDATE_DROP
        if _in_driver(query):
            s = s - DRIVER_DROP
    return min(1.0, max(0.0, s))


def score_batch(adapter_id: str, queries: Sequence[Mapping[str, Any]]):
    """Score many queries at once; returns a float64 numpy array equal to
    ``[score(adapter_id, q) for q in queries]`` element for element."""
    import numpy as np

    n = len(queries)
    u = np.fromiter((float(q["u"]) for q in queries), dtype=np.float64, count=n)
    ph = _phase(adapter_id)
    x = u * _freq(ph) + ph
    jitter = (x - np.floor(x) - 0.5) * JITTER_AMP
    s = BASE + SLOPE * u + jitter
    if _is_candidate(adapter_id):
        s = s - CANDIDATE_DROP
        driver = np.fromiter((_in_driver(q) for q in queries), dtype=bool, count=n)
        s = np.where(driver, s - DRIVER_DROP, s)
    return np.clip(s, 0.0, 1.0)


def _self_check(n: int = 20000) -> int:
    import random

    import numpy as np

    rng = random.Random(1)
    queries = []
    for i in range(n):
        slices = [DRIVER_SLICE] if i % 7 == 0 else ["intent=other"]
        if i % 11 == 0:
            slices = "intent=refund_request"  # malformed: not a list
        queries.append({"question_id": i, "u": rng.random(), "slices": slices})
    queries.append({"question_id": "edge0", "u": 0.0})
    queries.append({"question_id": "edge1", "u": 0.9999999999999999, "slices": [DRIVER_SLICE]})
    bad = 0
    for adapter in ("base_v1", "cand_v2", "other", "cand"):
        scalar = np.array([score(adapter, q) for q in queries], dtype=np.float64)
        batch = np.asarray(score_batch(adapter, queries), dtype=np.float64)
        same = scalar.view(np.uint64) == batch.view(np.uint64)
        bad += int((~same).sum())
        print(f"{adapter:>8}: {same.sum()}/{len(queries)} bitwise equal, mean {scalar.mean():.4f}")
    base = np.array([score("base_v1", q) for q in queries])
    cand = np.array([score("cand_v2", q) for q in queries])
    drv = np.array([_in_driver(q) for q in queries])
    print(f"delta all {np.mean(cand - base):+.4f}  driver {np.mean((cand - base)[drv]):+.4f}"
          f"  rest {np.mean((cand - base)[~drv]):+.4f}")
    print("OK" if bad == 0 else f"MISMATCH in {bad} values")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(_self_check())
