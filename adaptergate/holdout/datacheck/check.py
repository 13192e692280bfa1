"""The data check itself: one pass over the file, then the report (the ``--json`` dict) and its verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptergate.errors import UsageError
from adaptergate.holdout.datacheck.contamination import contamination_of, read_holdout
from adaptergate.holdout.datacheck.duplicates import canonical, duplicates_of
from adaptergate.holdout.datacheck.minhash import MinHashIndex
from adaptergate.holdout.datacheck.reading import read_jsonl
from adaptergate.holdout.datacheck.schema import load_schema, validate_record
from adaptergate.holdout.datacheck.stats import diversity_of, lengths_of, rate
from adaptergate.holdout.datacheck.text import Rows, normalise, record_parts

__all__ = ["DEFAULT_MAX_PROBLEMS", "check_data", "exit_code"]

DEFAULT_MAX_PROBLEMS = 20


def check_data(
    path: Path,
    *,
    schema: Path | None = None,
    holdouts: Sequence[Path] = (),
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    fail_under: float | None = None,
) -> dict[str, Any]:
    """Check one JSONL file; return the report (the ``--json`` dict).

    With ``schema``, the check fails when any record violates it; ``fail_under`` (a rate in
    [0, 1]) lowers the bar to that share of valid records (``fail_under`` in the report: the
    bar applied, None without a schema or ``--fail-under``)."""
    if max_problems < 0:
        raise UsageError(f"--max-problems must be >= 0, got {max_problems}")
    if fail_under is not None and not (0.0 <= fail_under <= 1.0):
        raise UsageError(f"--fail-under must be a rate between 0 and 1, got {fail_under:g}")
    path = Path(path)
    validator = load_schema(Path(schema)) if schema is not None else None
    query_sets = [(Path(h), *read_holdout(Path(h))) for h in holdouts]

    records = valid = 0
    problems: list[str] = []
    problems_total = 0
    problem_counts: Counter[str] = Counter()
    rows = Rows()
    seen_json: dict[bytes, int] = {}
    exact_dups: list[tuple[int, int]] = []
    verdicts: dict[bytes, list[tuple[str, str, str]]] = {}
    for lineno, obj, why in read_jsonl(path, "file"):
        records += 1
        if obj is None:
            problem_counts["not_object"] += 1
            problems_total += 1
            if len(problems) < max_problems:
                problems.append(f"line {lineno}: not a JSON object ({why})")
            continue
        key = canonical(obj)
        first = seen_json.setdefault(key, lineno)
        if first != lineno:
            exact_dups.append((first, lineno))
        if validator is not None:
            errors = verdicts.get(key)
            if errors is None:
                errors = verdicts[key] = validate_record(validator, obj)
            for jpath, keyword, message in errors:
                problem_counts[keyword] += 1
                problems_total += 1
                if len(problems) < max_problems:
                    problems.append(f"line {lineno}: {jpath}: {message}")
            if not errors:
                valid += 1
        else:
            valid += 1
        full, prompt, turns = record_parts(obj)
        rows.lines.append(lineno)
        rows.full.append(full)
        rows.prompt.append(prompt)
        rows.turns.append(turns)
    objects = len(rows.lines)

    # ---- normalised texts and one MinHash index over every text we compare
    norm_cache: dict[str, str] = {}

    def norm(text: str) -> str:
        got = norm_cache.get(text)
        if got is None:
            got = norm_cache[text] = normalise(text)
        return got

    full_norm = [norm(t) for t in rows.full]
    text_id: dict[str, int] = {}
    for t in full_norm:  # the file's texts first, in order of first appearance
        if t:
            text_id.setdefault(t, len(text_id))
    n_file_texts = len(text_id)
    queries = [q for _p, qs, _s in query_sets for q in qs]
    prompt_norm = [norm(t) for t in rows.prompt] if query_sets else []
    q_prompt_norm = [norm(q.prompt) for q in queries]
    q_full_norm = [norm(q.full) for q in queries]
    if queries:
        for t in (*prompt_norm, *q_prompt_norm, *q_full_norm):
            if t:
                text_id.setdefault(t, len(text_id))
    ordered = sorted(text_id, key=text_id.__getitem__)
    index = MinHashIndex(ordered)

    # ---- lengths and diversity
    lengths = lengths_of(rows.full)
    mult = Counter(t for t in full_norm if t)
    diversity = diversity_of(index, n_file_texts,
                             np.fromiter((mult[t] for t in ordered[:n_file_texts]), dtype=np.int64,
                                         count=n_file_texts))

    # ---- duplicates
    duplicates = duplicates_of(exact_dups, rows.lines, full_norm, index, ordered, n_file_texts, objects)

    # ---- contamination
    contamination = None
    if holdouts:
        contamination = contamination_of(rows, full_norm, prompt_norm, queries, q_prompt_norm,
                                         q_full_norm, text_id, index, norm)
        contamination["holdouts"] = [{"path": str(p), "queries": len(qs), "skipped_lines": s}
                                     for p, qs, s in query_sets]
        contamination["rate"] = rate(contamination["rows"], objects)

    compliance = round(valid / records, 6) if records else None
    reasons = []
    if contamination and contamination["rows"]:
        n = contamination["rows"]
        reasons.append(f"training data overlaps the holdout: {n} row{'s' if n != 1 else ''}"
                       " — the gate's verdict would be optimistic")
    # with a schema, every record must satisfy it unless --fail-under lowers the bar
    bar = fail_under if fail_under is not None else (1.0 if validator is not None else None)
    if bar is not None and compliance is not None and compliance < bar:
        bad = records - valid
        if fail_under is None:
            reasons.append(f"{bad} of {records} record{'s' if records != 1 else ''} violate{'s' if bad == 1 else ''}"
                           f" the schema (compliance {compliance:.2%}); --fail-under RATE accepts a lower rate")
        else:
            reasons.append(f"schema compliance {compliance:.2%} is below --fail-under {fail_under:g}"
                           f" ({bad} of {records} records invalid)")
    return {
        "path": str(path),
        "schema": str(schema) if schema is not None else None,
        "records": records,
        "objects": objects,
        "valid": valid,
        "compliance": compliance,
        "fail_under": bar,
        "problems": problems,
        "problems_total": problems_total,
        "problem_counts": dict(sorted(problem_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "lengths": lengths,
        "duplicates": duplicates,
        "diversity": diversity,
        "contamination": contamination,
        "verdict": {"ok": not reasons, "reasons": reasons},
    }


def exit_code(report: dict[str, Any]) -> int:
    """0 when the check passed, 1 when it found contamination, or a record that violates the
    schema (compliance below 1, or below --fail-under when given)."""
    return 0 if report["verdict"]["ok"] else 1
