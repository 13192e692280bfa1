"""Failure patterns: n-grams that failing queries share and passing ones lack.

When the gate rejects, a one-line description of what the failing queries
have in common helps triage. adaptergate 0.5.4 reported the most frequent
n-grams among failing queries only; a word present in every query of the
holdout came out as "the pattern", and the line said "all" for terms that
only some failing queries contained. Here each candidate n-gram is
contrasted with the passing queries, each term carries its own counts, and
the result does not depend on input order or ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from fractions import Fraction
from itertools import chain
from typing import Iterable, Sequence

from adaptergate.holdout.store import query_text  # the query's text: a holdout notion
from adaptergate.models import FailurePattern, PatternTerm

__all__ = ["find_failure_pattern", "query_text", "STOPWORDS"]


MIN_FAILING_TEXTS = 3
"""Fewer failing texts than this and no pattern is reported."""

MIN_CONTRAST = Fraction(1, 4)
"""A term's failing rate must exceed its passing rate by at least this much..."""

MIN_RATIO = 2
"""...and be at least this many times the passing rate."""

MAX_N = 3
"""Longest n-gram considered."""

STOPWORDS: frozenset[str] = frozenset(
    """
    a about after all also am an and any are as at be been before being but by
    can could did do does doing for from had has have having he her here hers
    him his how i if in into is it its me more most my no nor not of on once
    only or other our ours out over own same she should so some such than that
    the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why
    will with would you your yours
    """.split()
)
"""Words that are never a term on their own nor the first or last word of one."""

_TOKEN_RE = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower())


def _is_edge(token: str) -> bool:
    """Whether a token may stand alone or begin/end an n-gram."""
    return len(token) > 1 and token not in STOPWORDS


def _all_ngrams(tokens: list[str]) -> set[str]:
    """Every admissible 1-, 2- and 3-gram of one text."""
    edge = [_is_edge(t) for t in tokens]
    out: set[str] = set()
    n_tok = len(tokens)
    for i in range(n_tok):
        if not edge[i]:
            continue
        out.add(tokens[i])
        for n in range(2, MAX_N + 1):
            j = i + n - 1
            if j < n_tok and edge[j]:
                out.add(" ".join(tokens[i : j + 1]))
    return out


def _frequent_ngrams(docs: list[list[str]], min_docs: int) -> dict[str, int]:
    """The admissible n-grams (:func:`_all_ngrams`) found in at least ``min_docs`` of
    ``docs`` (token lists), with their document frequencies.

    The same as counting every n-gram of every document, without building
    the rare ones: an n-gram occurs in no more documents than its first and
    its last token, so only n-grams that begin and end with a frequent
    admissible token can reach ``min_docs``. Tokens are counted first (one
    set per document, at C speed), then only those n-grams are built.
    """
    token_df = Counter(chain.from_iterable(map(set, docs)))
    frequent = {t for t, c in token_df.items() if c >= min_docs and _is_edge(t)}
    if not frequent:
        return {}
    per_doc: list[set[str]] = []
    for tokens in docs:
        at = [i for i, t in enumerate(tokens) if t in frequent]
        if not at:
            continue
        grams = {tokens[i] for i in at}
        if len(at) > 1:
            ends = set(at)
            n_tok = len(tokens)
            for i in at:
                for j in range(i + 1, min(i + MAX_N, n_tok)):
                    if j in ends:
                        grams.add(" ".join(tokens[i : j + 1]))
        per_doc.append(grams)
    counts = Counter(chain.from_iterable(per_doc))
    return {g: c for g, c in counts.items() if c >= min_docs}


def _present(texts: Iterable[str | None]) -> list[str]:
    return [t for t in texts if isinstance(t, str) and t.strip()]


def _sample(texts: list[str], k: int) -> list[str]:
    """``k`` texts evenly strided over the sorted texts (order independent)."""
    ordered = sorted(texts)
    total = len(ordered)
    return [ordered[(i * total) // k] for i in range(k)]


def _count_candidates(texts: Sequence[str], candidates: Iterable[str]) -> Counter[str]:
    """Document frequency of ``candidates`` only, over ``texts``.

    Only positions whose token starts some candidate are examined, and only
    the candidate lengths starting with that token are built.
    """
    cand = set(candidates)
    lengths_by_first: dict[str, set[int]] = {}
    for ngram in cand:
        parts = ngram.split(" ")
        lengths_by_first.setdefault(parts[0], set()).add(len(parts))
    starts = {first: tuple(sorted(ns)) for first, ns in lengths_by_first.items()}
    counts: Counter[str] = Counter()
    find = _TOKEN_RE.findall
    # A text holds a token only if it holds it as a substring: one C-level search
    # skips the texts without any first token before they are tokenized.
    mention = re.compile("|".join(map(re.escape, sorted(starts)))).search if starts else None
    for text in texts:
        low = text.lower()
        if mention is None or mention(low) is None:
            continue
        tokens = find(low)
        if starts.keys().isdisjoint(tokens):
            continue
        seen: set[str] = set()
        n_tok = len(tokens)
        for i, tok in enumerate(tokens):
            lengths = starts.get(tok)
            if lengths is None:
                continue
            for n in lengths:
                if n == 1:  # the token itself is a candidate
                    seen.add(tok)
                elif i + n <= n_tok:
                    gram = " ".join(tokens[i : i + n])
                    if gram in cand:
                        seen.add(gram)
        counts.update(seen)
    return counts


def _overlaps(a: str, b: str) -> bool:
    """Whether either n-gram is a token-aligned contiguous run of the other."""
    return f" {a} " in f" {b} " or f" {b} " in f" {a} "


def _pct(n: int, total: int) -> str:
    """``n/total`` as a percentage: ``0%``, ``<1%``, ``>99%`` or a rounded integer."""
    if n <= 0 or total <= 0:
        return "0%"
    if 100 * n < total:
        return "<1%"
    if n >= total:
        return "100%"
    rounded = (200 * n + total) // (2 * total)  # half up, exact
    return ">99%" if rounded >= 100 else f"{rounded}%"


def _summary(terms: list[PatternTerm], passing_total: int, sampled_from: int | None) -> str:
    if passing_total == 0:
        parts = [f'"{t.ngram}" in {t.n_failing:,}/{t.failing_total:,} failing' for t in terms]
        return "; ".join(parts) + " (no passing queries to compare)"
    parts = [
        f'"{t.ngram}" in {t.n_failing:,}/{t.failing_total:,} failing'
        f" vs {_pct(t.n_passing, t.passing_total)} of passing queries"
        for t in terms
    ]
    line = "; ".join(parts)
    if sampled_from is not None:
        line += f" (passing rates from a sample of {passing_total:,} of {sampled_from:,})"
    return line


def find_failure_pattern(
    failing_texts: Sequence[str | None],
    passing_texts: Sequence[str | None],
    *,
    max_terms: int = 3,
    min_failing: int = 2,
    min_coverage: float = 0.5,
    max_passing: int = 50_000,
    passing_population: int | None = None,
) -> FailurePattern | None:
    """Up to ``max_terms`` n-grams over-represented in failing vs passing texts.

    ``None``/blank texts are ignored. Returns ``None`` with fewer than three
    failing texts or when no n-gram is both frequent among failing texts
    (``>= max(min_failing, ceil(min_coverage * n_failing))`` of them) and
    clearly rarer among passing ones (rate lower by ``>= 0.25`` and at most
    half). More than ``max_passing`` passing texts are counted on an evenly
    strided sample of their sorted order. A caller that already sampled the
    passing texts passes ``passing_population``, the number it drew them
    from, so the summary says the rates come from a sample.
    """
    if max_terms < 1:
        raise ValueError(f"max_terms must be >= 1, got {max_terms}")
    if min_failing < 1:
        raise ValueError(f"min_failing must be >= 1, got {min_failing}")
    if not (0.0 <= min_coverage <= 1.0) or math.isnan(min_coverage):
        raise ValueError(f"min_coverage must be within [0, 1], got {min_coverage}")
    if max_passing < 1:
        raise ValueError(f"max_passing must be >= 1, got {max_passing}")

    failing = _present(failing_texts)
    n_fail = len(failing)
    if n_fail < MIN_FAILING_TEXTS:
        return None

    # round() guards ceil against float noise, e.g. 0.3 * 10 == 3.0000000000000004
    min_docs = max(min_failing, math.ceil(round(min_coverage * n_fail, 9)))
    candidates = _frequent_ngrams([_tokens(text) for text in failing], min_docs)
    if not candidates:
        return None

    passing = _present(passing_texts)
    sampled_from: int | None = None
    if len(passing) > max_passing:
        sampled_from = len(passing)
        passing = _sample(passing, max_passing)
    elif passing_population is not None and passing_population > len(passing):
        sampled_from = passing_population
    n_pass = len(passing)
    pass_df = _count_candidates(passing, candidates) if n_pass else Counter()

    scored: list[tuple[Fraction, int, int, str]] = []
    for gram, n_f in candidates.items():
        f_rate = Fraction(n_f, n_fail)
        p_rate = Fraction(pass_df[gram], n_pass) if n_pass else Fraction(0)
        contrast = f_rate - p_rate
        if contrast >= MIN_CONTRAST and f_rate >= MIN_RATIO * p_rate:
            scored.append((contrast, n_f, gram.count(" ") + 1, gram))
    scored.sort(key=lambda s: (-s[0], -s[1], -s[2], s[3]))

    selected: list[str] = []
    for *_, gram in scored:
        if any(_overlaps(gram, s) for s in selected):
            continue
        selected.append(gram)
        if len(selected) >= max_terms:
            break
    if not selected:
        return None

    terms = [
        PatternTerm(
            ngram=g,
            n_failing=candidates[g],
            failing_total=n_fail,
            n_passing=pass_df[g],
            passing_total=n_pass,
        )
        for g in selected
    ]
    return FailurePattern(
        failing_total=n_fail,
        passing_total=n_pass,
        passing_sampled_from=sampled_from,
        terms=terms,
        summary=_summary(terms, n_pass, sampled_from),
    )
