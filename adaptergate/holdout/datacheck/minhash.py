"""MinHash and LSH over word 5-shingles: near-duplicate pairs among many texts, found fast and verified exactly.

MinHash is written here with numpy, vectorised, with no extra dependency
(datasketch would do, but is not a dependency of adaptergate). Words are hashed
over their UTF-8 bytes in bulk (a splitmix64-mixed sum of the bytes times fixed
random odd weights: deterministic across processes, unlike ``hash()``); a
shingle's hash is a mixed linear combination of its five word hashes; the 96
"permutations" are multiply-add-shift hashes ``(a_k * x + b_k) mod 2**64 >> 32``
with odd ``a_k`` (``(a*x + b) mod p`` would need 128-bit products in numpy),
all drawn from a fixed seed, so every run gives the same answer. LSH uses 16
bands of 6 rows (a pair at Jaccard 0.8 becomes a candidate with probability
0.992, at 0.5 with 0.22); candidates whose signatures agree on fewer than 60%
of the permutations are dropped and the rest are verified exactly on their sets
of 64-bit shingle hashes. Within one LSH bucket a text is compared with the 8
texts before it, which bounds the work on huge clusters of near-identical
templated rows (recall there is best-effort; exact and normalised duplicates
are always exact). A text of fewer than five words is one shingle, so for it
"near" means "normalised-equal". Note that one changed word in the middle of a
30-word text changes 5 of its 26 shingles (Jaccard 21/31 = 0.68): at word
5-shingles and 0.8, a single substitution is a near duplicate from about 50
words on, or near either end of a shorter text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["BIGRAM_C", "NEAR_THRESHOLD", "SHINGLE_SIZE", "MinHashIndex", "unique_sorted"]


NEAR_THRESHOLD = 0.8
SHINGLE_SIZE = 5

_NUM_PERM = 96
_BANDS, _BAND_ROWS = 16, 6
_PREFILTER = 0.6
_BUCKET_WINDOW = 8
_CHUNK = 1 << 13
_U64 = np.uint64


def _constants(label: str, n: int) -> np.ndarray:
    """``n`` fixed odd 64-bit constants (BLAKE2b of a label: the same on every numpy version).

    The labels' prefix is part of the seed, not a module path to keep in step
    with the code: changing it changes every constant, and so which near pairs
    LSH proposes.
    """
    return np.array([int.from_bytes(hashlib.blake2b(f"adaptergate.datacheck/{label}/{i}".encode(),
                                                    digest_size=8).digest(), "little") | 1
                     for i in range(n)], dtype=_U64)


_PERM_A, _PERM_B = _constants("perm-a", _NUM_PERM), _constants("perm-b", _NUM_PERM)
_SHINGLE_C = _constants("shingle", SHINGLE_SIZE)
_BAND_C = _constants("band", _BAND_ROWS)
_BYTE_W = _constants("byte", 256)
_LEN_W, BIGRAM_C = _constants("misc", 2)
_TOKENISE_CHUNK = 1 << 22
_M1, _M2 = _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array."""
    x ^= x >> _U64(30)
    x *= _M1
    x ^= x >> _U64(27)
    x *= _M2
    x ^= x >> _U64(31)
    return x


def unique_sorted(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sorting beats numpy's hash-based unique on large int arrays)."""
    a = np.sort(a)
    if len(a) < 2:
        return a
    keep = np.empty(len(a), dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _token_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the space-separated words of ``texts`` (in order) and words per text.

    Vectorised over the UTF-8 bytes: a word's hash is the splitmix64-mixed sum of
    its bytes times fixed random odd weights (by position within the word, mod
    256) plus its length times another; deterministic across processes (unlike
    ``hash()``), and two words differing in one byte never collide.
    """
    n = len(texts)
    counts = np.zeros(n, dtype=np.int64)
    parts: list[np.ndarray] = []
    lo = 0
    while lo < n:
        hi, size = lo, 0
        while hi < n and (hi == lo or size + len(texts[hi]) < _TOKENISE_CHUNK):
            size += len(texts[hi]) + 1
            hi += 1
        b = np.frombuffer("\n".join(texts[lo:hi]).encode("utf-8", "surrogatepass"), dtype=np.uint8)
        word = (b != 32) & (b != 10)
        edge = np.diff(word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
        starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
        if len(starts):
            text_of = np.cumsum((b == 10).view(np.uint8), dtype=np.int32)[starts]
            counts[lo:hi] = np.bincount(text_of, minlength=hi - lo)
            toklen = ends - starts
            first = np.cumsum(toklen) - toklen
            within = (np.arange(int(toklen.sum())) - np.repeat(first, toklen)).astype(np.uint8)  # mod 256
            vals = _BYTE_W[within]
            vals *= b[word]
            h = np.add.reduceat(vals, first)
            h += toklen.astype(_U64) * _LEN_W
            parts.append(_mix64(h))
        lo = hi
    hashes = np.concatenate(parts) if parts else np.zeros(0, dtype=_U64)
    return hashes, counts


class MinHashIndex:
    """Word 5-shingle sets, MinHash signatures and LSH band keys of many normalised texts.

    ``texts`` are outputs of :func:`normalise` (words separated by one space).
    Also kept for the diversity figures: ``tokens`` (every word's hash, text
    after text) and ``lens`` (words per text).
    """

    def __init__(self, texts: Sequence[str]) -> None:
        n = len(texts)
        self.n = n
        self.tokens, self.lens = _token_hashes(texts)
        tokens, lens = self.tokens, self.lens
        # a text of k >= 5 words has k-4 shingles; a shorter one is one (zero-padded) shingle
        counts = np.where(lens >= SHINGLE_SIZE, lens - SHINGLE_SIZE + 1, np.minimum(lens, 1))
        self.counts = counts
        self.starts = np.cumsum(counts) - counts
        k, m = SHINGLE_SIZE, len(tokens)
        window = np.zeros(max(m - k + 1, 0), dtype=_U64)
        for j in range(k if m >= k else 0):  # every window of k consecutive words, records ignored
            window += tokens[j : m - k + 1 + j] * _SHINGLE_C[j]
        first_word = np.cumsum(lens) - lens
        # keep the windows that lie inside one record
        keep = np.zeros(len(window) + k, dtype=np.int8)
        long_ = lens >= k
        np.add.at(keep, first_word[long_], 1)
        np.add.at(keep, (first_word + lens - k + 1)[long_], -1)
        inside = np.cumsum(keep[: len(window)], dtype=np.int32) > 0
        shingles = np.empty(int(counts.sum()), dtype=_U64)
        long_slots = np.repeat(long_, counts)
        shingles[long_slots] = window[inside]
        short = np.flatnonzero((lens > 0) & ~long_)
        if len(short):
            short_hash = np.zeros(len(short), dtype=_U64)
            for j in range(k - 1):
                has = lens[short] > j
                short_hash[has] += tokens[first_word[short[has]] + j] * _SHINGLE_C[j]
            shingles[self.starts[short]] = short_hash
        self.shingles = _mix64(shingles)
        self.nonempty = counts > 0
        self.sig = self._signatures(len(shingles))  # (permutation, text)
        self.band_keys = np.zeros((_BANDS, n), dtype=_U64)  # (band, text)
        for b in range(_BANDS):
            for r in range(_BAND_ROWS):
                self.band_keys[b] += self.sig[b * _BAND_ROWS + r].astype(_U64) * _BAND_C[r]
        _mix64(self.band_keys)
        self._sets: dict[int, frozenset[int]] = {}

    def _signatures(self, total: int) -> np.ndarray:
        # (permutation, shingle) layout: reduceat then runs over contiguous memory
        sig = np.full((_NUM_PERM, self.n), np.iinfo(np.uint32).max, dtype=np.uint32)
        rows = np.flatnonzero(self.nonempty)
        starts = self.starts[rows]
        buf = np.empty((_NUM_PERM, _CHUNK), dtype=_U64)
        a, b = _PERM_A[:, None], _PERM_B[:, None]
        bounds = np.arange(0, total, _CHUNK)
        first_row = (np.searchsorted(starts, bounds, side="right") - 1).tolist()
        end_row = np.searchsorted(starts, np.minimum(bounds + _CHUNK, total), side="left").tolist()
        for s, r0, r1 in zip(bounds.tolist(), first_row, end_row):
            e = min(s + _CHUNK, total)
            seg = starts[r0:r1] - s
            seg[0] = 0
            vals = buf[:, : e - s]
            np.multiply(a, self.shingles[None, s:e], out=vals)
            vals += b
            mins = (np.minimum.reduceat(vals, seg, axis=1) >> _U64(32)).astype(np.uint32)
            rr = rows[r0:r1]
            sig[:, rr] = np.minimum(sig[:, rr], mins)
        return sig

    def shingle_set(self, i: int) -> frozenset[int]:
        got = self._sets.get(i)
        if got is None:
            s = int(self.starts[i])
            got = self._sets[i] = frozenset(self.shingles[s : s + int(self.counts[i])].tolist())
        return got

    def jaccard(self, i: int, j: int) -> float:
        a, b = self.shingle_set(i), self.shingle_set(j)
        if not a or not b:
            return 0.0
        inter = len(a & b)
        return inter / (len(a) + len(b) - inter)

    def _keep_likely(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(i):
            return i, j
        est = np.empty(len(i))
        for s in range(0, len(i), 1 << 16):
            e = s + (1 << 16)
            est[s:e] = (self.sig[:, i[s:e]] == self.sig[:, j[s:e]]).mean(axis=0)
        keep = est >= _PREFILTER
        return i[keep], j[keep]

    def pairs_within(self, ids: np.ndarray) -> list[tuple[int, int, float]]:
        """Verified near-duplicate pairs ``(a, b, jaccard)`` among ``ids``, ``a`` before ``b`` in ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[self.nonempty[ids]]
        m = len(ids)
        if m < 2:
            return []
        found_i, found_j = [], []
        for b in range(_BANDS):
            keys = self.band_keys[b, ids]
            order = np.argsort(keys, kind="stable")
            sk = keys[order]
            for w in range(1, min(_BUCKET_WINDOW, m - 1) + 1):
                same = sk[w:] == sk[:-w]
                if not same.any():
                    break
                found_i.append(order[:-w][same])
                found_j.append(order[w:][same])
        if not found_i:
            return []
        code = unique_sorted(np.concatenate(found_i) * m + np.concatenate(found_j))
        return self._verified(*self._keep_likely(ids[code // m], ids[code % m]))

    def pairs_between(self, left: np.ndarray, right: np.ndarray) -> list[tuple[int, int, float]]:
        """Verified near-duplicate pairs ``(l, r, jaccard)``, ``l`` in ``left``, ``r`` in ``right``."""
        left = np.asarray(left, dtype=np.int64)
        right = np.asarray(right, dtype=np.int64)
        left, right = left[self.nonempty[left]], right[self.nonempty[right]]
        if not len(left) or not len(right):
            return []
        found_l, found_r = [], []
        mask = _U64((1 << max(16, min(24, 4 + int(len(right)).bit_length()))) - 1)
        for b in range(_BANDS):
            rk = self.band_keys[b, right]
            order = np.argsort(rk, kind="stable")
            srk = rk[order]
            lk = self.band_keys[b, left]
            # a bitmap of the right side's keys rules most of the left side out cheaply
            bitmap = np.zeros(mask + 1, dtype=bool)
            bitmap[rk & mask] = True
            maybe = np.flatnonzero(bitmap[lk & mask])
            lk = lk[maybe]
            lo = np.searchsorted(srk, lk, side="left")
            cnt = np.minimum(np.searchsorted(srk, lk, side="right") - lo, _BUCKET_WINDOW)
            total = int(cnt.sum())
            if not total:
                continue
            offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            found_l.append(np.repeat(maybe, cnt))
            found_r.append(order[np.repeat(lo, cnt) + offs])
        if not found_l:
            return []
        nr = len(right)
        code = unique_sorted(np.concatenate(found_l) * nr + np.concatenate(found_r))
        return self._verified(*self._keep_likely(left[code // nr], right[code % nr]))

    def _verified(self, a: np.ndarray, b: np.ndarray) -> list[tuple[int, int, float]]:
        """The candidate pairs whose exact Jaccard similarity reaches the threshold."""
        out = []
        for x, y in zip(a.tolist(), b.tolist()):
            jac = self.jaccard(x, y)
            if jac >= NEAR_THRESHOLD:
                out.append((x, y, jac))
        return out
