"""``adaptergate data check``: data quality of a JSONL file, and its overlap with holdouts.

The file may be a holdout or the training data a candidate adapter was trained
on; nothing here assumes holdout semantics. One pass reports:

* **schema compliance** (``--schema``): every JSON object is validated with
  :class:`jsonschema.Draft202012Validator` (full draft 2020-12, ``format``
  checked with the validator's :class:`~jsonschema.FormatChecker`). The schema
  is checked against the 2020-12 meta-schema first; a bad one is invalid input.
  A non-blank line that is not a JSON object is an invalid record
  (``line L: not a JSON object``). Problems read ``line L: <json path>: <message>``;
  ``problem_counts`` counts the errors per failing keyword (``not_object`` for
  lines that are not objects).
* **length distribution** of each record's text (:func:`record_text`), in
  characters and whitespace tokens: min, p5, median, p95, max, mean.
* **duplicates** among the JSON objects, each a fraction of them; every level
  includes the stricter ones before it (``near >= normalised``):

  - ``exact``: the record (as JSON with sorted keys) repeats an earlier record;
  - ``normalised``: the text, normalised by :func:`normalise` (NFKC, casefold,
    punctuation and format characters removed, whitespace collapsed), repeats an
    earlier record's;
  - ``near``: the text's word 5-shingle set has Jaccard similarity >= 0.8 with
    an earlier record's (found by MinHash + LSH banding, then verified exactly).

* **n-gram diversity** over the normalised tokens: distinct-1 and distinct-2
  (unique / total n-grams over the whole file, n-grams within a record) and
  ``ttr``, the mean type-token ratio of a record (distinct-1 *is* the file's
  type-token ratio, so the per-record mean is what adds information).
* **contamination** (``--holdout``, repeatable): records of the file whose text
  overlaps a holdout query. A record's texts are its whole text, its prompt side
  (user turns, prompt, instruction + input) and each user turn; a query's are its
  prompt and its prompt + ``"\\n"`` + gold. ``exact``: a record text equals a query
  text (surrounding whitespace ignored); ``normalised``: equal after
  :func:`normalise`; ``near``: whole text or prompt side against the query's
  prompt or prompt + gold at shingle Jaccard >= 0.8. Any overlap is a failed check:
  the holdout no longer measures generalisation, and the gate's verdict would be
  optimistic.

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

import functools
import hashlib
import json
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.report.render import plain_line, rich_text
from adaptergate.storage import read_input

__all__ = [
    "NEAR_THRESHOLD",
    "SHINGLE_SIZE",
    "check_data",
    "exit_code",
    "normalise",
    "print_report",
    "record_text",
]

NEAR_THRESHOLD = 0.8
SHINGLE_SIZE = 5
DEFAULT_MAX_PROBLEMS = 20
MAX_EXAMPLES = 5
MAX_PAIRS_IN_JSON = 10_000
_MESSAGE_LIMIT = 300

PROMPT_KEYS = ("prompt", "question", "text", "query")
ANSWER_KEYS = ("completion", "gold", "expected_output", "answer", "response")
USER_ROLES = frozenset({"user", "human"})
ID_KEYS = ("id", "question_id", "query_id")


# ------------------------------------------------------------------ text


def _as_text(value: Any) -> str:
    """A field's text: strings as they are, content-part lists joined, other JSON compact."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for item in value:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])  # OpenAI-style content parts
            elif item is not None:
                parts.append(_as_text(item))
        return "\n".join(p for p in parts if p)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _text_of(value: Any) -> str:
    return value if type(value) is str else _as_text(value)


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def _first(obj: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _unwrap(obj: dict[str, Any]) -> dict[str, Any]:
    """adaptergate 0.5.4 wrote holdout lines as {"query_id", "tenant_id", "payload", ...}."""
    payload = obj.get("payload")
    if isinstance(payload, dict) and "query_id" in obj and "tenant_id" in obj:
        return payload
    return obj


def _turns(messages: Any, text_key: str, role_key: str) -> tuple[str, list[str]] | None:
    if not isinstance(messages, list):
        return None
    every, users = [], []
    for m in messages:
        if type(m) is not dict:
            continue
        text = m.get(text_key)
        if type(text) is not str:
            text = _as_text(text)
        if not text:
            continue
        every.append(text)
        role = m.get(role_key)
        if role in USER_ROLES or (type(role) is str and role.lower() in USER_ROLES):
            users.append(text)
    return "\n".join(every), users


def record_parts(obj: Any) -> tuple[str, str, tuple[str, ...]]:
    """``(text, prompt side, user turns)`` of one record; see :func:`record_text`."""
    if not isinstance(obj, dict):
        return "", "", ()
    if "payload" in obj:
        obj = _unwrap(obj)
    for list_key, text_key, role_key in (("messages", "content", "role"),
                                         ("conversations", "value", "from")):
        if list_key in obj:
            got = _turns(obj[list_key], text_key, role_key)
            if got is not None:
                text, users = got
                # the turns matter apart from the prompt side only when there are several
                return text, "\n".join(users), tuple(users) if len(users) > 1 else ()
    if "instruction" in obj or "input" in obj or "output" in obj:
        prompt = _join(_text_of(obj.get("instruction")), _text_of(obj.get("input")))
        return _join(prompt, _text_of(obj.get("output"))), prompt, ()
    prompt = _text_of(_first(obj, PROMPT_KEYS))
    return _join(prompt, _text_of(_first(obj, ANSWER_KEYS))), prompt, ()


def record_text(obj: Any) -> str:
    """The text of one record, for lengths, duplicates, diversity and contamination.

    The first shape that matches wins (a 0.5.4-wrapped holdout line is unwrapped):

    1. ``messages``: a list of ``{"role", "content"}`` (chat format): every
       message's content (a string, or a list of ``{"type": "text", "text"}``
       parts), joined with newlines; ``conversations`` with ``{"from", "value"}``
       (ShareGPT) likewise;
    2. ``instruction`` / ``input`` / ``output`` (Alpaca), any of them present:
       the three joined with newlines;
    3. otherwise the prompt (``prompt``, ``question``, ``text``, ``query``; the
       first present) and the answer (``completion``, ``gold``,
       ``expected_output``, ``answer``, ``response``; the first present) joined
       with a newline. A non-string field counts as its compact JSON.

    A record with none of these has no text (``""``), counted as ``no_text``.
    """
    return record_parts(obj)[0]


@functools.lru_cache(maxsize=1)
def _strip_table() -> dict[int, Any]:
    """Punctuation (P*) and format (Cf: zero-width, bidi) removed; other controls -> space."""
    table: dict[int, Any] = {}
    for cp in range(sys.maxunicode + 1):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "P" or cat == "Cf":
            table[cp] = None
        elif cat == "Cc":
            table[cp] = " "
    return table


@functools.lru_cache(maxsize=1)
def _ascii_tables() -> tuple[bytes, bytes]:
    """The same mapping as :func:`_strip_table` for ASCII, as ``bytes.translate`` arguments."""
    to_space = bytearray(range(256))
    delete = bytearray()
    for cp in range(128):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "P" or cat == "Cf":
            delete.append(cp)
        elif cat == "Cc":
            to_space[cp] = ord(" ")
    return bytes(to_space), bytes(delete)


def _normalise_once(text: str) -> str:
    if text.isascii():  # NFKC is the identity and casefold is lower() on ASCII
        to_space, delete = _ascii_tables()
        return b" ".join(text.encode("ascii").lower().translate(to_space, delete).split()).decode("ascii")
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(text.translate(_strip_table()).split())


def normalise(text: str) -> str:
    """NFKC, casefold, strip punctuation, collapse whitespace; idempotent.

    ``"Refund my order 123!"`` and ``"refund my  ORDER 123"`` both become
    ``"refund my order 123"``. Removing a character can make the rest
    composable again, so the step is repeated until nothing changes.
    """
    out = _normalise_once(text)
    if out.isascii():
        return out
    for _ in range(8):
        again = _normalise_once(out)
        if again == out:
            break
        out = again
    return out


# ----------------------------------------------------------------- MinHash

_NUM_PERM = 96
_BANDS, _BAND_ROWS = 16, 6
_PREFILTER = 0.6
_BUCKET_WINDOW = 8
_CHUNK = 1 << 13
_U64 = np.uint64


def _constants(label: str, n: int) -> np.ndarray:
    """``n`` fixed odd 64-bit constants (BLAKE2b of a label: the same on every numpy version)."""
    return np.array([int.from_bytes(hashlib.blake2b(f"adaptergate.holdout.datacheck/{label}/{i}".encode(),
                                                    digest_size=8).digest(), "little") | 1
                     for i in range(n)], dtype=_U64)


_PERM_A, _PERM_B = _constants("perm-a", _NUM_PERM), _constants("perm-b", _NUM_PERM)
_SHINGLE_C = _constants("shingle", SHINGLE_SIZE)
_BAND_C = _constants("band", _BAND_ROWS)
_BYTE_W = _constants("byte", 256)
_LEN_W, _BIGRAM_C = _constants("misc", 2)
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


def _unique(a: np.ndarray) -> np.ndarray:
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
        code = _unique(np.concatenate(found_i) * m + np.concatenate(found_j))
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
        code = _unique(np.concatenate(found_l) * nr + np.concatenate(found_r))
        return self._verified(*self._keep_likely(left[code // nr], right[code % nr]))

    def _verified(self, a: np.ndarray, b: np.ndarray) -> list[tuple[int, int, float]]:
        """The candidate pairs whose exact Jaccard similarity reaches the threshold."""
        out = []
        for x, y in zip(a.tolist(), b.tolist()):
            jac = self.jaccard(x, y)
            if jac >= NEAR_THRESHOLD:
                out.append((x, y, jac))
        return out


# ---------------------------------------------------------------- reading


class _NotObject(Exception):
    pass


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_line(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        # orjson refuses integers beyond 64 bits, which are valid JSON
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _NotObject("not UTF-8") from None
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise _NotObject(f"invalid JSON: {msg}") from None


_JSON_TYPES = {dict: "object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}


def _read_jsonl(path: Path, what: str) -> Iterator[tuple[int, Any, str | None]]:
    """``(line number, object or None, why it is not an object)`` for each non-blank line."""
    data = read_input(path, what)
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = _parse_line(raw)
        except _NotObject as exc:
            yield lineno, None, str(exc)
            continue
        if isinstance(obj, dict):
            yield lineno, obj, None
        else:
            yield lineno, None, f"got {_JSON_TYPES.get(type(obj), 'not an object')}"


def _canonical(obj: Any) -> bytes:
    """A 128-bit digest of the record as JSON with sorted keys (orjson's own bytes are large)."""
    try:
        data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits
        data = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )
    return hashlib.blake2b(data, digest_size=16).digest()


# ----------------------------------------------------------------- schema


def _load_schema(path: Path) -> Any:
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError:  # pragma: no cover - jsonschema is installed with the test extra
        raise InvalidInputError("--schema needs the jsonschema package: pip install 'jsonschema>=4.18'") from None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidInputError(f"schema file not found: {path}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"schema file is a directory: {path}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"schema {path} is not UTF-8") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read schema {path}: {exc.strerror or exc}") from None
    try:
        schema = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidInputError(f"schema {path} is not valid JSON: {msg}{where}") from None
    if not isinstance(schema, (dict, bool)):
        raise InvalidInputError(f"invalid schema {path}: a schema must be a JSON object or a boolean")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        declared = schema.get("$schema") if isinstance(schema, dict) else None
        hint = ""
        if isinstance(declared, str) and "2020-12" not in declared:
            hint = f"; it declares $schema {plain_line(declared, 80)}, but is read as draft 2020-12"
        raise InvalidInputError(
            f"invalid schema {path}: {plain_line(exc.message, _MESSAGE_LIMIT)} (at {_schema_where(exc)}){hint}"
        ) from None
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _schema_where(exc: Any) -> str:
    parts = list(getattr(exc, "absolute_path", ()) or ())
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _json_path(error: Any) -> str:
    path = getattr(error, "json_path", None)
    return path if isinstance(path, str) else _schema_where(error)


def _validate(validator: Any, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(json path, keyword, message)`` of each error, sorted by path."""
    from referencing.exceptions import Unresolvable

    try:
        errors = list(validator.iter_errors(obj))
    except Unresolvable as exc:
        raise InvalidInputError(f"schema reference cannot be resolved: {plain_line(str(exc), 200)}") from None
    out = [(_json_path(e), str(e.validator), plain_line(e.message, _MESSAGE_LIMIT)) for e in errors]
    out.sort(key=lambda t: (t[0], t[1]))
    return out


# ------------------------------------------------------------------ report


@dataclass
class _Query:
    holdout: str
    line: int
    id: str
    prompt: str
    full: str


@dataclass
class _Rows:
    lines: list[int] = field(default_factory=list)
    full: list[str] = field(default_factory=list)
    prompt: list[str] = field(default_factory=list)
    turns: list[tuple[str, ...]] = field(default_factory=list)


def _stats(values: np.ndarray) -> dict[str, float | int | None]:
    if not len(values):
        return {"min": None, "p5": None, "median": None, "p95": None, "max": None, "mean": None}
    p5, med, p95 = np.percentile(values, [5, 50, 95])
    return {"min": int(values.min()), "p5": round(float(p5), 2), "median": round(float(med), 2),
            "p95": round(float(p95), 2), "max": int(values.max()), "mean": round(float(values.mean()), 2)}


def _rate(count: int, total: int) -> float:
    return round(count / total, 6) if total else 0.0


def _read_holdout(path: Path) -> tuple[list[_Query], int]:
    queries, skipped = [], 0
    for lineno, obj, _why in _read_jsonl(path, "holdout file"):
        if obj is None:
            skipped += 1
            continue
        inner = _unwrap(obj)
        qid = _first(inner, ID_KEYS)
        if qid is None:
            qid = obj.get("query_id")
        prompt = record_parts(inner)[1]
        if not prompt.strip():
            skipped += 1
            continue
        gold = _first(inner, ANSWER_KEYS)
        # no gold field (chat or Alpaca-style rows): the record's whole text
        full = _join(prompt, _as_text(gold)) if gold is not None else record_parts(inner)[0]
        queries.append(_Query(str(path), lineno, str(qid) if qid is not None else f"line {lineno}", prompt, full))
    return queries, skipped


def check_data(
    path: Path,
    *,
    schema: Path | None = None,
    holdouts: Sequence[Path] = (),
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    fail_under: float | None = None,
) -> dict[str, Any]:
    """Check one JSONL file; return the report (the ``--json`` dict)."""
    if max_problems < 0:
        raise UsageError(f"--max-problems must be >= 0, got {max_problems}")
    if fail_under is not None and not (0.0 <= fail_under <= 1.0):
        raise UsageError(f"--fail-under must be a rate between 0 and 1, got {fail_under:g}")
    path = Path(path)
    validator = _load_schema(Path(schema)) if schema is not None else None
    query_sets = [(Path(h), *_read_holdout(Path(h))) for h in holdouts]

    records = valid = 0
    problems: list[str] = []
    problems_total = 0
    problem_counts: Counter[str] = Counter()
    rows = _Rows()
    seen_json: dict[bytes, int] = {}
    exact_dups: list[tuple[int, int]] = []
    verdicts: dict[bytes, list[tuple[str, str, str]]] = {}
    for lineno, obj, why in _read_jsonl(path, "file"):
        records += 1
        if obj is None:
            problem_counts["not_object"] += 1
            problems_total += 1
            if len(problems) < max_problems:
                problems.append(f"line {lineno}: not a JSON object ({why})")
            continue
        key = _canonical(obj)
        first = seen_json.setdefault(key, lineno)
        if first != lineno:
            exact_dups.append((first, lineno))
        if validator is not None:
            errors = verdicts.get(key)
            if errors is None:
                errors = verdicts[key] = _validate(validator, obj)
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
    chars = np.fromiter((len(t) for t in rows.full), dtype=np.int64, count=objects)
    words = np.fromiter((len(t.split()) for t in rows.full), dtype=np.int64, count=objects)
    lengths = {"characters": _stats(chars), "tokens": _stats(words),
               "no_text": int(sum(1 for t in rows.full if not t.strip()))}
    mult = Counter(t for t in full_norm if t)
    diversity = _diversity(index, n_file_texts,
                           np.fromiter((mult[t] for t in ordered[:n_file_texts]), dtype=np.int64,
                                       count=n_file_texts))

    # ---- duplicates
    first_norm: dict[str, int] = {}
    norm_dups: list[tuple[int, int]] = []
    for line, t in zip(rows.lines, full_norm):
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
    duplicates = {
        "exact": len(exact_dups), "exact_rate": _rate(len(exact_dups), objects),
        "normalised": len(norm_dups), "normalised_rate": _rate(len(norm_dups), objects),
        "near": n_near, "near_rate": _rate(n_near, objects),
        "threshold": NEAR_THRESHOLD, "shingle": SHINGLE_SIZE, "examples": examples,
    }

    # ---- contamination
    contamination = None
    if holdouts:
        contamination = _contamination(rows, full_norm, prompt_norm, queries, q_prompt_norm,
                                       q_full_norm, text_id, index, norm)
        contamination["holdouts"] = [{"path": str(p), "queries": len(qs), "skipped_lines": s}
                                     for p, qs, s in query_sets]
        contamination["rate"] = _rate(contamination["rows"], objects)

    compliance = round(valid / records, 6) if records else None
    reasons = []
    if contamination and contamination["rows"]:
        n = contamination["rows"]
        reasons.append(f"training data overlaps the holdout: {n} row{'s' if n != 1 else ''}"
                       " — the gate's verdict would be optimistic")
    if fail_under is not None and compliance is not None and compliance < fail_under:
        reasons.append(f"schema compliance {compliance:.2%} is below --fail-under {fail_under:g}"
                       f" ({records - valid} of {records} records invalid)")
    return {
        "path": str(path),
        "schema": str(schema) if schema is not None else None,
        "records": records,
        "objects": objects,
        "valid": valid,
        "compliance": compliance,
        "problems": problems,
        "problems_total": problems_total,
        "problem_counts": dict(sorted(problem_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "lengths": lengths,
        "duplicates": duplicates,
        "diversity": diversity,
        "contamination": contamination,
        "verdict": {"ok": not reasons, "reasons": reasons},
    }


def _diversity(index: MinHashIndex, n_texts: int, mult: np.ndarray) -> dict[str, float | int]:
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
    distinct2 = len(_unique(h[:-1][inside] * _BIGRAM_C + h[1:][inside]))
    bigrams = int((np.maximum(lens - 1, 0) * mult).sum())
    # distinct words per text: sort (text, word hash) packed in one uint64
    bits = max(1, int(n_texts).bit_length())
    keys = np.sort((text_of.astype(_U64) << _U64(64 - bits)) | (h >> _U64(bits)))
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    uniq = np.bincount((keys[new] >> _U64(64 - bits)).astype(np.int64), minlength=n_texts)
    return {
        "distinct_1": round(len(_unique(h)) / tokens, 6),
        "distinct_2": round(distinct2 / bigrams, 6) if bigrams else 0.0,
        "ttr": round(float((uniq / lens * mult).sum() / mult.sum()), 6),
        "tokens": tokens,
    }


def _contamination(rows: _Rows, full_norm: list[str], prompt_norm: list[str], queries: list[_Query],
                   q_prompt_norm: list[str], q_full_norm: list[str], text_id: dict[str, int],
                   index: MinHashIndex, norm: Any) -> dict[str, Any]:
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


def exit_code(report: dict[str, Any]) -> int:
    """0 when the check passed, 1 when it found contamination or compliance below --fail-under."""
    return 0 if report["verdict"]["ok"] else 1


# ----------------------------------------------------------------- human


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _num(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:g}" if isinstance(x, float) else str(x)


def print_report(report: dict[str, Any], console: Any, *, max_items: int = DEFAULT_MAX_PROBLEMS) -> None:
    """The report for a terminal; every piece of user text is escaped and one-lined."""
    from rich.table import Table

    def out(text: str = "") -> None:
        console.print(text, emoji=False, highlight=False)

    t = rich_text
    dup = report["duplicates"]
    out(f"[bold]{t(report['path'])}[/bold]: {report['records']} records, {report['objects']} JSON objects")
    if report["schema"] is not None:
        out(f"schema {t(report['schema'])} (draft 2020-12): {report['valid']} valid,"
            f" compliance {_pct(report['compliance'])}")
    elif report["records"] != report["objects"]:
        out(f"{report['valid']} of {report['records']} lines are JSON objects ({_pct(report['compliance'])})")
    if report["problems"]:
        more = report["problems_total"] - len(report["problems"])
        out(f"problems ({report['problems_total']}):")
        for p in report["problems"]:
            out(f"  {t(p)}")
        if more > 0:
            out(f"  ... and {more} more")
        out("failing keywords: " + ", ".join(f"{t(k)} {v}" for k, v in report["problem_counts"].items()))

    table = Table("length", "min", "p5", "median", "p95", "max", "mean")
    for name in ("characters", "tokens"):
        s = report["lengths"][name]
        table.add_row(name, *(_num(s[k]) for k in ("min", "p5", "median", "p95", "max", "mean")))
    console.print(table)
    if report["lengths"]["no_text"]:
        out(f"{report['lengths']['no_text']} records have no recognised text field")

    out(f"duplicates: exact {dup['exact']} ({_pct(dup['exact_rate'])}), normalised {dup['normalised']}"
        f" ({_pct(dup['normalised_rate'])}), near {dup['near']} ({_pct(dup['near_rate'])},"
        f" Jaccard >= {dup['threshold']:g} on word {dup['shingle']}-shingles)")
    for ex in dup["examples"]:
        a, b = ex["lines"]
        extra = f", Jaccard {ex['jaccard']:.2f}" if ex["kind"] == "near" else ""
        out(f"  line {b} repeats line {a} ({ex['kind']}{extra})")
    div = report["diversity"]
    out(f"diversity: distinct-1 {div['distinct_1']:.3f}, distinct-2 {div['distinct_2']:.3f},"
        f" mean type-token ratio {div['ttr']:.3f}")

    con = report["contamination"]
    if con is not None:
        names = ", ".join(t(h["path"]) for h in con["holdouts"])
        out(f"contamination against {names} ({con['holdout_queries']} queries):"
            f" {con['rows']} training rows ({_pct(con['rate'])}) overlap {con['holdout_hit']} holdout queries")
        for p in con["pairs"][:max_items]:
            extra = f", Jaccard {p['jaccard']:.2f}" if p["kind"] == "near" else ""
            out(f"  line {p['line']} <-> {t(p['holdout_id'], 80)} ({t(p['holdout'])}:{p['holdout_line']},"
                f" {p['kind']}{extra})")
        if con["pairs_total"] > max_items:
            out(f"  ... and {con['pairs_total'] - max_items} more pairs")
    verdict = report["verdict"]
    if verdict["ok"]:
        out("[green]OK[/green]")
    for reason in verdict["reasons"]:
        out(f"[bold red]FAIL[/bold red]: {t(reason)}")
