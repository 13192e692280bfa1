"""Duplicates among the file's records: exact (the record), normalised (its text) and near (MinHash).

Every level includes the stricter ones before it (``near >= normalised``);
each count is a fraction of the file's JSON objects.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import orjson

from adaptergate.holdout.datacheck.minhash import NEAR_THRESHOLD, SHINGLE_SIZE, MinHashIndex
from adaptergate.holdout.datacheck.stats import rate

__all__ = ["canonical", "duplicates_of"]

MAX_EXAMPLES = 5


def canonical(obj: Any) -> bytes:
    """A 128-bit digest of the record as JSON with sorted keys (orjson's own bytes are large)."""
    try:
        data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits
        data = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )
    return hashlib.blake2b(data, digest_size=16).digest()


def duplicates_of(exact_dups: list[tuple[int, int]], lines: list[int], full_norm: list[str],
                  index: MinHashIndex, ordered: list[str], n_file_texts: int, objects: int) -> dict[str, Any]:
    """The report's ``duplicates``.

    ``exact_dups``: ``(first line, repeating line)`` of the records whose
    :func:`canonical` digest repeats; ``lines`` and ``full_norm``: each JSON
    object's line and normalised text; the file's distinct texts are the first
    ``n_file_texts`` of ``index`` (``ordered`` by their index).
    """
    first_norm: dict[str, int] = {}
    norm_dups: list[tuple[int, int]] = []
    for line, t in zip(lines, full_norm):
        if not t:
            continue
        first = first_norm.setdefault(t, line)
        if first != line:
            norm_dups.append((first, line))
    near = index.pairs_within(np.arange(n_file_texts))
    near_flagged: dict[int, tuple[int, float]] = {}
    for a, b, jac in sorted(near, key=lambda p: (p[1], -p[2], p[0])):
        near_flagged.setdefault(b, (a, jac))
    exact_set = {b for _a, b in exact_dups}
    examples = [{"kind": "exact", "lines": [a, b], "jaccard": 1.0} for a, b in exact_dups[:MAX_EXAMPLES]]
    examples += [{"kind": "normalised", "lines": [a, b], "jaccard": 1.0}
                 for a, b in [p for p in norm_dups if p[1] not in exact_set][:MAX_EXAMPLES]]
    examples += [{"kind": "near", "lines": [first_norm[ordered[a]], first_norm[ordered[b]]],
                  "jaccard": round(jac, 4)}
                 for b, (a, jac) in sorted(near_flagged.items())[:MAX_EXAMPLES]]
    n_near = len(norm_dups) + len(near_flagged)
    return {
        "exact": len(exact_dups), "exact_rate": rate(len(exact_dups), objects),
        "normalised": len(norm_dups), "normalised_rate": rate(len(norm_dups), objects),
        "near": n_near, "near_rate": rate(n_near, objects),
        "threshold": NEAR_THRESHOLD, "shingle": SHINGLE_SIZE, "examples": examples,
    }
