"""Contamination: records of the file whose text overlaps a holdout query (exact, normalised or near)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adaptergate.holdout.datacheck.minhash import MinHashIndex
from adaptergate.holdout.datacheck.reading import read_jsonl
from adaptergate.holdout.datacheck.text import (
    ANSWER_KEYS,
    ID_KEYS,
    Rows,
    as_text,
    first_of,
    join_texts,
    record_parts,
    unwrap,
)

__all__ = ["Query", "contamination_of", "read_holdout"]


MAX_PAIRS_IN_JSON = 10_000


@dataclass
class Query:
    holdout: str
    line: int
    id: str
    prompt: str
    full: str


def read_holdout(path: Path) -> tuple[list[Query], int]:
    queries, skipped = [], 0
    for lineno, obj, _why in read_jsonl(path, "holdout file"):
        if obj is None:
            skipped += 1
            continue
        inner = unwrap(obj)
        qid = first_of(inner, ID_KEYS)
        if qid is None:
            qid = obj.get("query_id")
        prompt = record_parts(inner)[1]
        if not prompt.strip():
            skipped += 1
            continue
        gold = first_of(inner, ANSWER_KEYS)
        # no gold field (chat or Alpaca-style rows): the record's whole text
        full = join_texts(prompt, as_text(gold)) if gold is not None else record_parts(inner)[0]
        queries.append(Query(str(path), lineno, str(qid) if qid is not None else f"line {lineno}", prompt, full))
    return queries, skipped


def contamination_of(rows: Rows, full_norm: list[str], prompt_norm: list[str], queries: list[Query],
                     q_prompt_norm: list[str], q_full_norm: list[str], text_id: dict[str, int],
                     index: MinHashIndex, norm: Any) -> dict[str, Any]:
    """The report's ``contamination`` (its ``holdouts`` and ``rate`` are the caller's to fill in).

    ``rows``, ``full_norm``, ``prompt_norm``: the file's records, their normalised
    whole texts and prompt sides; ``queries`` and their normalised prompts and
    prompt + gold; ``text_id``: every compared text's position in ``index``.
    """
    raw_map: dict[str, set[int]] = {}
    norm_map: dict[str, set[int]] = {}
    for qi, q in enumerate(queries):
        for t in (q.prompt.strip(), q.full.strip()):
            if t:
                raw_map.setdefault(t, set()).add(qi)
        for t in (q_prompt_norm[qi], q_full_norm[qi]):
            if t:
                norm_map.setdefault(t, set()).add(qi)
    found: dict[tuple[int, int], tuple[int, float]] = {}  # (row, query) -> (strength, jaccard)

    def hit(row: int, qi: int, strength: int, jac: float) -> None:
        if found.get((row, qi), (-1, 0.0))[0] < strength:
            found[(row, qi)] = (strength, jac)

    raw_get, norm_get = raw_map.get, norm_map.get
    for r, (full, prompt, turns) in enumerate(zip(rows.full, rows.prompt, rows.turns)):
        for t in (full.strip(), prompt.strip(), *(t.strip() for t in turns)):
            for qi in raw_get(t, ()):
                hit(r, qi, 2, 1.0)
        for t in (full_norm[r], prompt_norm[r], *(norm(t) for t in turns)):
            for qi in norm_get(t, ()):
                hit(r, qi, 1, 1.0)
    # near duplicates: the file's whole texts and prompt sides against the queries'
    left = {text_id[t] for t in full_norm if t} | {text_id[t] for t in prompt_norm if t}
    queries_of: dict[int, list[int]] = {}
    for qi in range(len(queries)):
        for t in {q_prompt_norm[qi], q_full_norm[qi]}:
            if t:
                queries_of.setdefault(text_id[t], []).append(qi)
    near: dict[int, list[tuple[int, float]]] = {}
    for a, b, jac in index.pairs_between(np.fromiter(sorted(left), dtype=np.int64),
                                         np.fromiter(queries_of, dtype=np.int64)):
        near.setdefault(a, []).append((b, jac))
    if near:
        for r, (f, p) in enumerate(zip(full_norm, prompt_norm)):
            for t in {f, p}:
                for b, jac in near.get(text_id.get(t, -1), ()):
                    for qi in queries_of[b]:
                        hit(r, qi, 0, jac)
    kinds = {2: "exact", 1: "normalised", 0: "near"}
    pairs = []
    for (r, qi), (strength, jac) in sorted(found.items(), key=lambda kv: (rows.lines[kv[0][0]], kv[0][1])):
        q = queries[qi]
        pairs.append({"line": rows.lines[r], "holdout": q.holdout, "holdout_line": q.line,
                      "holdout_id": q.id, "kind": kinds[strength], "jaccard": round(jac, 4)})
    by_kind = Counter(p["kind"] for p in pairs)
    return {
        "rows": len({r for r, _q in found}),
        "rate": 0.0,
        "holdout_queries": len(queries),
        "holdout_hit": len({qi for _r, qi in found}),
        "by_kind": {k: by_kind.get(k, 0) for k in ("exact", "normalised", "near")},
        "pairs_total": len(pairs),
        "pairs": pairs[:MAX_PAIRS_IN_JSON],
    }
