"""The file's statistics: text lengths (characters, words) and n-gram diversity."""

from __future__ import annotations

import numpy as np

from adaptergate.holdout.datacheck.minhash import BIGRAM_C, MinHashIndex, unique_sorted

__all__ = ["diversity_of", "lengths_of", "rate"]


def _stats(values: np.ndarray) -> dict[str, float | int | None]:
    if not len(values):
        return {"min": None, "p5": None, "median": None, "p95": None, "max": None, "mean": None}
    p5, med, p95 = np.percentile(values, [5, 50, 95])
    return {"min": int(values.min()), "p5": round(float(p5), 2), "median": round(float(med), 2),
            "p95": round(float(p95), 2), "max": int(values.max()), "mean": round(float(values.mean()), 2)}


def rate(count: int, total: int) -> float:
    return round(count / total, 6) if total else 0.0


def lengths_of(texts: list[str]) -> dict[str, dict[str, float | int | None] | int]:
    """Length statistics of the records' texts, in characters and whitespace tokens."""
    chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    words = np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
    return {"characters": _stats(chars), "tokens": _stats(words),
            "no_text": int(sum(1 for t in texts if not t.strip()))}


def diversity_of(index: MinHashIndex, n_texts: int, mult: np.ndarray) -> dict[str, float | int]:
    """distinct-1/2 and mean per-record type-token ratio of the file's texts.

    The file's distinct texts are the first ``n_texts`` of ``index``, each
    appearing ``mult`` times (words are compared by their 64-bit hashes).
    """
    lens = index.lens[:n_texts]
    tokens = int((lens * mult).sum())
    if not tokens:
        return {"distinct_1": 0.0, "distinct_2": 0.0, "ttr": 0.0, "tokens": 0}
    h = index.tokens[: int(lens.sum())]
    text_of = np.repeat(np.arange(n_texts, dtype=np.int64), lens)
    inside = text_of[1:] == text_of[:-1]  # a bigram never spans two records
    distinct2 = len(unique_sorted(h[:-1][inside] * BIGRAM_C + h[1:][inside]))
    bigrams = int((np.maximum(lens - 1, 0) * mult).sum())
    # distinct words per text: sort (text, word hash) packed in one uint64
    bits = max(1, int(n_texts).bit_length())
    keys = np.sort((text_of.astype(np.uint64) << np.uint64(64 - bits)) | (h >> np.uint64(bits)))
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    uniq = np.bincount((keys[new] >> np.uint64(64 - bits)).astype(np.int64), minlength=n_texts)
    return {
        "distinct_1": round(len(unique_sorted(h)) / tokens, 6),
        "distinct_2": round(distinct2 / bigrams, 6) if bigrams else 0.0,
        "ttr": round(float((uniq / lens * mult).sum() / mult.sum()), 6),
        "tokens": tokens,
    }
