"""The holdout store: a tenant's held-out queries, one JSON object per line.

A line is a query as the user wrote it::

    {"id": "q1", "prompt": "...", "gold": "...", "slices": ["intent=refund"]}

with aliases accepted for the id (``question_id``, ``query_id``), the prompt
(``question``, ``text``, ``query``) and the gold answer (``expected_output``).
Optional: ``cluster``, ``difficulty``, ``criteria``, ``added_at``,
``tenant``; any other field is kept and reaches the scorer untouched.

adaptergate 0.5.4 wrote a wrapped line
(``{"query_id", "tenant_id", "payload", "added_at", "accepted_by_adapter"}``);
such files are read transparently and stay wrapped when we append to them.

Loading validates every line and reports every problem at once, located by
file and line. A holdout arrives in the pull request under review, so what
one line may hold is bounded: its bytes (``max_line_bytes``), the nesting of
its JSON (:data:`~adaptergate.trust.MAX_JSON_DEPTH` levels) and the length
of each slice tag (:data:`MAX_SLICE_TAG_CHARS`); a line past a bound is a
problem like any other. Writes replace the file atomically under a lock
(:mod:`adaptergate.storage`); an import reads the existing file once, so it is
linear in the number of rows.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, repeat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, model_validator

from adaptergate.trust import MAX_JSON_DEPTH, nesting_exceeds
from adaptergate.errors import HoldoutError, InvalidInputError, Problem
from adaptergate.storage import atomic_write, file_lock, read_input

ID_KEYS = ("id", "question_id", "query_id")
PROMPT_KEYS = ("prompt", "question", "text", "query")
GOLD_KEYS = ("gold", "expected_output")
DEFAULT_MAX_LINE_BYTES = 1 << 20
MAX_PROBLEMS_REPORTED = 50
MAX_SLICE_TAG_CHARS = 512
"""Longest slice tag accepted, in characters (key, ``=`` and value).

Tags are short names (``intent=technical_support``, 24 characters, is the
longest in the bundled holdouts); the cap is generous and keeps a tag fit for
a table cell, while a 400 KB "tag" only exists to make every consumer of tags
(the duplicate-tag check first) slow."""
_TOO_DEEP = f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels"


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Parsing a million small objects triggers many useless GC passes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


TEXT_KEYS: tuple[str, ...] = ("prompt", "question", "text", "query")
"""Payload keys searched, in order, by :func:`query_text`."""


def query_text(payload: Any) -> str | None:
    """A query's text: the first non-empty string among ``prompt``, ``question``, ``text``, ``query``."""
    for key in TEXT_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _first(payload: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = payload.get(key)
        if value is not None:
            return value
    return None


class NormalizedQuery(NamedTuple):
    """The fields adaptergate reads from one validated line."""

    id: str
    payload: dict[str, Any]
    slices: tuple[str, ...]
    cluster: str | None
    added_at: str | None
    tenant: str | None
    accepted_by: str | None
    wrapped: bool
    bare_tags: tuple[str, ...] = ()


def normalize_query(obj: Any, *, allow_bare_tags: bool = True) -> NormalizedQuery:
    """Validate one parsed line; raise ``ValueError`` with a one-line reason (its first problem).

    This function is the single definition of a valid query: the loader and
    the :class:`Query` model both call it.
    """
    q = _normalize(obj, allow_bare_tags, None)
    assert q is not None  # without a problem list, the first problem raised
    return q


def _normalize(obj: Any, allow_bare_tags: bool, problems: list[str] | None) -> NormalizedQuery | None:
    """:func:`normalize_query`; given a ``problems`` list, every problem of the line goes into it
    and the query comes back whenever the line is an object (invalid fields "" or None)."""

    def bad(message: str) -> None:
        if problems is None:
            raise ValueError(message)
        problems.append(message)

    if type(obj) is not dict:
        bad(f"expected a JSON object, got {_json_type(obj)}")
        return None
    wrapped = False
    accepted_by = None
    payload = obj
    if "payload" in obj and "query_id" in obj and "tenant_id" in obj and type(obj["payload"]) is dict:
        # adaptergate 0.5.4's HoldoutQuery line.
        wrapped = True
        payload = obj["payload"]
        raw_id = obj["query_id"]
        tenant = obj["tenant_id"]
        added_at = obj.get("added_at")
        accepted_by = obj.get("accepted_by_adapter")
    else:
        raw_id = obj.get("id")
        if raw_id is None:
            raw_id = _first(obj, ID_KEYS)
        tenant = obj.get("tenant")
        if tenant is None:
            tenant = obj.get("tenant_id")
        added_at = obj.get("added_at")
    qid = ""
    if raw_id is None:
        bad("missing id (expected one of: id, question_id, query_id)")
    elif type(raw_id) is str or type(raw_id) is int:
        qid = str(raw_id)
        if not qid.strip():
            bad("id is empty")
            qid = ""
    else:
        bad(f"id must be a string or an integer, got {_json_type(raw_id)}")
    if tenant is not None and type(tenant) is not str:
        bad(f"tenant must be a string, got {_json_type(tenant)}")
        tenant = None
    if added_at is not None and type(added_at) is not str:
        bad(f"added_at must be an ISO-8601 string, got {_json_type(added_at)}")
        added_at = None

    raw_slices = payload.get("slices")
    bare: tuple[str, ...] = ()
    slices: tuple[str, ...] = ()
    if raw_slices is not None and type(raw_slices) is not list:
        hint = (
            f' (write "slices": [{json.dumps(raw_slices)}])' if type(raw_slices) is str else ""
        )
        bad(f"slices must be a list of 'key=value' strings, got {_json_type(raw_slices)}{hint}")
    elif raw_slices is not None:
        for i, tag in enumerate(raw_slices):
            if type(tag) is not str:
                bad(f"slices[{i}] must be a string, got {_json_type(tag)}")
            elif len(tag) > MAX_SLICE_TAG_CHARS:
                bad(
                    f"slice tag {tag[:40]!r}... is {len(tag):,} characters, over the "
                    f"{MAX_SLICE_TAG_CHARS}-character cap"
                )
            elif "=" not in tag:
                if not allow_bare_tags:
                    bad(f"slice tag {tag!r} is not 'key=value' (e.g. 'intent={tag}')")
                bare += (tag,)
            elif not tag.strip() or tag.startswith("="):
                bad(f"slice tag {tag!r} has an empty key")
        slices = tuple(t for t in raw_slices if type(t) is str)
        if len(slices) > 1 and len(set(slices)) < len(slices):
            slices = tuple(dict.fromkeys(slices))
    cluster = payload.get("cluster")
    if cluster is not None:
        if type(cluster) in (str, int):
            cluster = str(cluster)
        else:
            bad(f"cluster must be a string or an integer, got {_json_type(cluster)}")
            cluster = None
    prompt = _first(payload, PROMPT_KEYS)
    if prompt is not None and type(prompt) is not str:
        bad(f"prompt must be a string, got {_json_type(prompt)}")
    return NormalizedQuery(
        id=qid,
        payload=payload,
        slices=slices,
        cluster=cluster,
        added_at=added_at,
        tenant=tenant,
        accepted_by=accepted_by if type(accepted_by) is str else None,
        wrapped=wrapped,
        bare_tags=bare,
    )


_JSON_TYPES = ((bool, "boolean"), ((int, float), "number"), (str, "string"), (list, "array"), (dict, "object"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), type(value).__name__)


class Query(BaseModel):
    """A held-out query (the typed view; the scorer receives the raw dict)."""

    model_config = ConfigDict(extra="allow")

    id: str
    prompt: str | None = None
    gold: Any = None
    slices: list[str] = []
    cluster: str | None = None
    difficulty: Any = None
    criteria: Any = None
    added_at: str | None = None
    tenant: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        q = normalize_query(data, allow_bare_tags=False)
        out = {k: v for k, v in q.payload.items() if k not in ID_KEYS + PROMPT_KEYS + GOLD_KEYS}
        out.update(
            id=q.id,
            prompt=_first(q.payload, PROMPT_KEYS),
            gold=_first(q.payload, GOLD_KEYS),
            slices=list(q.slices),
            cluster=q.cluster,
            added_at=q.added_at,
            tenant=q.tenant,
        )
        return out


class TagCodes(NamedTuple):
    """A holdout's slice tags as codes, made while validating (the slice index's input):
    the distinct ``tags`` in order of first appearance; ``codes`` (numpy int64), the code of
    each tag of each query, query after query; ``counts`` (numpy int64), tags per query."""

    tags: list[str]
    codes: Any
    counts: Any


@dataclass
class Holdout:
    """A loaded, validated holdout: payloads plus columnar views of them."""

    path: Path | None
    ids: list[str] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    slices: list[tuple[str, ...]] = field(default_factory=list)
    clusters: list[str | None] = field(default_factory=list)
    added_at: list[str | None] = field(default_factory=list)
    accepted_by: list[str | None] = field(default_factory=list)
    wrapped: bool = False
    warnings: list[Problem] = field(default_factory=list)
    raw_lines: list[bytes] | None = None
    tag_codes: TagCodes | None = None
    """``slices`` as codes, when the columnar path loaded the file (not kept by :meth:`subset`)."""

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Sequence[int]) -> "Holdout":
        pick = list(indices)
        columns = ("ids", "payloads", "lines", "slices", "clusters", "added_at", "accepted_by")
        return Holdout(
            path=self.path, wrapped=self.wrapped, warnings=self.warnings,
            **{name: list(map(getattr(self, name).__getitem__, pick)) for name in columns},
        )

    def sample(self, n: int | None, seed: str | None) -> "Holdout":
        """A deterministic sample of ``n`` queries, in the order 0.5.4 drew them.

        Same seed, same holdout: same sample, bit for bit the one adaptergate
        0.5.4 drew (``random.Random(int(sha256(seed)[:16], 16)).sample``).
        """
        if n is None or n >= len(self):
            return self
        rng = random.Random(_seed_to_int(seed) if seed else None)
        return self.subset(rng.sample(range(len(self)), n))

    def staleness_days(self, now: datetime | None = None) -> int | None:
        """Days since the newest ``added_at``; None when no query has one."""
        stamps = [s for s in self.added_at if s]
        if not stamps:
            return None
        try:
            latest = max(_parse_time(s) for s in stamps)
        except ValueError:
            return None
        now = now or datetime.now(timezone.utc)
        return max(0, (now - latest).days)


def _parse_time(stamp: str) -> datetime:
    dt = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _seed_to_int(seed: str) -> int:
    return int(hashlib.sha256(seed.encode("utf-8")).hexdigest()[:16], 16)


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{\n")
_LINE_NOT_AN_OBJECT = re.compile(rb"\n[^{]")
_DEEP_MARKS = re.compile(rb"[^\n]{%d}" % (MAX_JSON_DEPTH + 1))


def _read_lines(path: Path, max_line_bytes: int) -> tuple[list[int], list[bytes], list[Problem], int]:
    """Non-blank lines with their 1-based numbers; oversized lines become problems; and a
    bound on the opening brackets (``[``, ``{``) of any line."""
    data = read_input(path, "holdout file")
    # Common case, checked at C speed without copying a line: every line
    # starts with "{" (so is not blank) and is within the cap.
    objects_only = data[:1] == b"{" and _LINE_NOT_AN_OBJECT.search(data) is None
    # A line nests at most as deep as it has opening brackets: their most on
    # one line, counted on the brackets alone, bounds every line's depth.
    marks = data.translate(None, _NOT_BRACKETS)
    brackets = MAX_JSON_DEPTH if _DEEP_MARKS.search(marks) is None else max(map(len, marks.split(b"\n")))
    del marks
    raw_lines = data.split(b"\n")
    del data
    if raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()  # the final newline, or trailing blank text
    if not raw_lines or (objects_only and max(map(len, raw_lines)) <= max_line_bytes):
        return list(range(1, len(raw_lines) + 1)), raw_lines, [], brackets
    problems: list[Problem] = []
    numbers: list[int] = []
    lines: list[bytes] = []
    for lineno, raw in enumerate(raw_lines, start=1):
        if len(raw) > max_line_bytes:
            problems.append(
                Problem(str(path), lineno, f"line is {len(raw):,} bytes, over the {max_line_bytes:,}-byte cap")
            )
            continue
        if raw.strip():
            numbers.append(lineno)
            lines.append(raw)
    return numbers, lines, problems, brackets


def _deep_lines(lines: list[bytes], objs: list[Any], brackets: int) -> list[int]:
    """Indices of the parsed lines nested deeper than :data:`MAX_JSON_DEPTH`.

    orjson stops at 1,024 levels, but Python's own recursion (``json.dumps``
    of a payload, comparing two payloads) stops near 1,000: a line between
    the two would load and then crash a later step. A line can only nest as
    deep as it has brackets (``brackets``: the most on one line, counted at C
    speed by :func:`_read_lines`), so only lines with more are walked.
    """
    if not lines or brackets <= MAX_JSON_DEPTH:
        return []
    return [
        i for i, raw in enumerate(lines)
        if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
        and objs[i] is not _BAD and nesting_exceeds(objs[i], MAX_JSON_DEPTH)
    ]


def _parse(path: Path, numbers: list[int], lines: list[bytes], brackets: int) -> tuple[list, list[Problem]]:
    """Parse every line on its own (a line is a record: nothing may span two).

    orjson (which also rejects invalid UTF-8) parses a clean file in one
    comprehension; on the first failure every line is parsed again carefully
    to locate and describe each problem with the standard library's message.
    Lines nested deeper than :data:`MAX_JSON_DEPTH` are problems on both paths.
    """
    objs, problems = _parse_lines(path, numbers, lines)
    deep = _deep_lines(lines, objs, brackets)
    if deep:
        spath = str(path)
        for i in deep:
            problems.append(Problem(spath, numbers[i], _TOO_DEEP))
            objs[i] = _BAD
        problems.sort(key=lambda p: p.line or 0)
    return objs, problems


def _parse_lines(
    path: Path, numbers: list[int], lines: list[bytes]
) -> tuple[list[Any], list[Problem]]:
    loads = orjson.loads
    with _gc_paused():
        try:
            return list(map(loads, lines)), []
        except orjson.JSONDecodeError:
            pass
        problems: list[Problem] = []
        objs: list[Any] = []
        for lineno, raw in zip(numbers, lines):
            try:
                objs.append(loads(raw))
                continue
            except orjson.JSONDecodeError:
                pass
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(Problem(str(path), lineno, f"invalid UTF-8 at byte {exc.start}"))
                objs.append(_BAD)
                continue
            try:
                objs.append(json.loads(line))  # orjson is stricter (NaN, huge ints)
            except json.JSONDecodeError as exc:
                problems.append(Problem(str(path), lineno, f"invalid JSON: {exc.msg} (column {exc.colno})"))
                objs.append(_BAD)
            except RecursionError:  # orjson refused it past 1,024 levels
                problems.append(Problem(str(path), lineno, _TOO_DEEP))
                objs.append(_BAD)
            except ValueError as exc:  # an integer past Python's 4,300-digit limit
                problems.append(Problem(str(path), lineno, f"invalid JSON: {exc}"))
                objs.append(_BAD)
        return objs, problems


_BAD = object()


def _rows_checked_slowly(objs: list[Any], tenant: str | None) -> bool:
    """The per-row rules of :func:`_columns_fast`, exactly, one Python pass: the first present
    prompt alias, the tenant, cluster and added_at are strings (normalize_query's rules), and
    no row looks like a 0.5.4 wrapped line (those take the careful path)."""
    return not any(
        type(o) is not dict or "payload" in o
        or (
            ((p := o.get("prompt")) is None and (p := o.get("question")) is None
             and (p := o.get("text")) is None and (p := o.get("query")) is None)
            is False and type(p) is not str
        )
        or (
            ((t := o.get("tenant")) is None and (t := o.get("tenant_id")) is None) is False
            and (type(t) is not str or (tenant is not None and t != tenant))
        )
        or ((c := o.get("cluster")) is not None and type(c) is not str)
        or ((a := o.get("added_at")) is not None and type(a) is not str)
        for o in objs
    )


_NONE_OR_STR = frozenset((type(None), str))


def _column(objs: list[dict[str, Any]], key: str, keys: set[Any]) -> list[Any]:
    """``[o.get(key) for o in objs]`` at C speed (all None when no row has ``key``)."""
    if key not in keys:
        return [None] * len(objs)
    return list(map(dict.get, objs, repeat(key)))


def _types(objs: list[dict[str, Any]], key: str) -> set[type]:
    return set(map(type, map(dict.get, objs, repeat(key))))


_CHUNK = 4096  # rows checked together, while their dicts are in the CPU's cache


def _columns_fast(objs: list[Any], tenant: str | None) -> Holdout | None:
    """Validate a clean file column by column, or return None (see :func:`_columns_from`)."""
    if not objs:
        return None
    fast = _columns_from((objs[i:i + _CHUNK] for i in range(0, len(objs), _CHUNK)), tenant)
    if fast is not None:
        fast.payloads = objs
    return fast


def _parsed_chunks(lines: list[bytes], out: list[Any]) -> Iterator[list[Any]]:
    """Parse ``lines`` a chunk at a time (also appended to ``out``) for :func:`_columns_from`
    to check each chunk as it is made; a line that is not JSON raises ``JSONDecodeError``."""
    loads = orjson.loads
    for i in range(0, len(lines), _CHUNK):
        chunk = list(map(loads, lines[i:i + _CHUNK]))
        out.extend(chunk)
        yield chunk


def _columns_from(chunks: Iterable[list[Any]], tenant: str | None) -> Holdout | None:
    """Validate the rows of a clean file, chunk after chunk, or return None (``payloads`` unset).

    The common case (plain lines, string ids, well-formed slices, unique ids) is checked at C
    speed, one ``map`` per field some row of the chunk has; slice tags are checked once each and
    coded as they come. Anything unusual returns None: the caller falls back to
    :func:`normalize_query` line by line, which locates the problems (the two agree on every
    input: ``tests/test_holdout.py``)."""
    import numpy as np

    ids: list[Any] = []
    # columns; each chunk's tag codes, tag counts and id hashes (no two equal: no id twice)
    slices, clusters, added, codes, counts, hashes = [], [], [], [], [], []
    lookup: dict[str, int] = {}  # tag -> code, in order of first appearance
    for objs in chunks:
        if set(map(type, objs)) != {dict}:
            return None
        keys: set[Any] = set().union(*objs)  # every field a row of the chunk has
        # Sufficient for _rows_checked_slowly: every present alias of the prompt, the tenant,
        # cluster and added_at is null or a string (and a tenant, the one asked for).
        # When that does not hold, the exact per-row rule decides.
        settled = "payload" not in keys and all(
            _types(objs, key) <= _NONE_OR_STR
            for key in (*PROMPT_KEYS, "tenant", "tenant_id", "cluster", "added_at") if key in keys
        ) and (tenant is None or all(
            set(map(dict.get, objs, repeat(key))) <= {None, tenant} for key in ("tenant", "tenant_id") if key in keys
        ))
        if not settled and not _rows_checked_slowly(objs, tenant):
            return None
        # normalize_query's precedence: id, then question_id, then query_id
        col: list[Any] | None = None
        id_types: set[type] = set()
        for key in ID_KEYS:
            if key in keys:
                more = list(map(dict.get, objs, repeat(key)))
                col = more if col is None else [a if a is not None else b for a, b in zip(col, more)]
                id_types = set(map(type, col))
                if type(None) not in id_types:
                    break
        if col is None or id_types != {str} or not all(col) or any(map(str.isspace, col)):
            return None  # a missing, non-string, empty or blank id
        ids += col
        hashes.append(np.fromiter(map(hash, col), dtype=np.int64, count=len(col)))
        sl = _column(objs, "slices", keys)
        sl_types = set(map(type, sl))
        if not sl_types <= {type(None), list}:
            return None
        if type(None) in sl_types:
            sl = [x if x is not None else () for x in sl]
        flat = list(chain.from_iterable(sl))
        try:
            try:
                code = np.fromiter(map(lookup.__getitem__, flat), dtype=np.int64, count=len(flat))
            except KeyError:  # new tags: every tag a "key=value" string, checked once each
                for t in dict.fromkeys(flat):
                    if t not in lookup:
                        if not (type(t) is str and "=" in t and t[0] != "=" and len(t) <= MAX_SLICE_TAG_CHARS):
                            return None
                        lookup[t] = len(lookup)
                code = np.fromiter(map(lookup.__getitem__, flat), dtype=np.int64, count=len(flat))
        except TypeError:  # an unhashable element (a list, an object)
            return None
        codes.append(code)
        counts.append(np.fromiter(map(len, sl), dtype=np.int64, count=len(sl)))
        slices += sl
        clusters += _column(objs, "cluster", keys)
        added += _column(objs, "added_at", keys)
    n = len(ids)
    h = np.sort(np.concatenate(hashes)) if n else None
    if h is None or ((h[1:] == h[:-1]).any() and len(set(ids)) != n):
        return None  # no rows, or an id twice
    tc = TagCodes(list(lookup), np.concatenate(codes), np.concatenate(counts))
    if _tag_twice_in_a_row(tc, slices):
        return None
    return Holdout(path=None, ids=ids, slices=slices, clusters=clusters, added_at=added,
                   accepted_by=[None] * n, tag_codes=tc)


def _tag_twice_in_a_row(tc: TagCodes, slices: list[Any]) -> bool:
    """Whether some row lists a tag twice: its k-th and j-th codes compared for every row at once."""
    import numpy as np

    most = int(tc.counts.max()) if tc.counts.size else 0
    if most > 8:
        return sum(map(len, map(set, slices))) != len(tc.codes)
    starts = np.cumsum(tc.counts) - tc.counts
    for j in range(1, most):
        rows = starts[tc.counts > j]
        if any(np.any(tc.codes[rows + k] == tc.codes[rows + j]) for k in range(j)):
            return True
    return False


def load_holdout(
    path: str | Path,
    *,
    tenant: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    allow_bare_tags: bool = True,
    keep_raw: bool = False,
) -> Holdout:
    """Load and validate a holdout file, raising :class:`HoldoutError` listing every problem."""
    path = Path(path)
    numbers, lines, problems, brackets = _read_lines(path, max_line_bytes)
    fast = None
    if not problems and brackets <= MAX_JSON_DEPTH and lines:
        # The common case: every chunk of lines is checked as soon as it is parsed.
        objs: list[Any] = []
        with _gc_paused():
            try:
                fast = _columns_from(_parsed_chunks(lines, objs), tenant)
            except orjson.JSONDecodeError:
                pass
        if fast is not None:
            fast.payloads = objs
    if fast is None:
        objs, parse_problems = _parse(path, numbers, lines, brackets)
        problems.extend(parse_problems)
        if not problems and brackets > MAX_JSON_DEPTH:
            with _gc_paused():
                fast = _columns_fast(objs, tenant)
    if fast is not None:
        fast.path, fast.lines, fast.raw_lines = path, numbers, lines if keep_raw else None
        return fast
    holdout = Holdout(path=path, raw_lines=[] if keep_raw else None)
    first_line: dict[str, int] = {}
    n_wrapped = 0
    spath = str(path)
    with _gc_paused():
        for lineno, obj, raw in zip(numbers, objs, lines):
            if obj is _BAD:
                continue
            # every problem of the line, not only its first
            found: list[str] = []
            q = _normalize(obj, allow_bare_tags, found)
            if q is not None and q.id:
                if q.id in first_line:
                    found.append(f"duplicate id {q.id!r} (first at line {first_line[q.id]})")
                else:
                    first_line[q.id] = lineno
            if q is not None and tenant is not None and q.tenant is not None and q.tenant != tenant:
                found.append(f"tenant {q.tenant!r} does not match --tenant {tenant!r}")
            if q is None or found:
                problems.extend(Problem(spath, lineno, m) for m in found)
                continue
            n_wrapped += q.wrapped
            holdout.ids.append(q.id)
            holdout.payloads.append(q.payload)
            holdout.lines.append(lineno)
            holdout.slices.append(q.slices)
            holdout.clusters.append(q.cluster)
            holdout.added_at.append(q.added_at)
            holdout.accepted_by.append(q.accepted_by)
            if holdout.raw_lines is not None:
                holdout.raw_lines.append(raw)
            for tag in q.bare_tags:
                holdout.warnings.append(
                    Problem(spath, lineno, f"slice tag {tag!r} is not 'key=value'")
                )
    if problems:
        problems.sort(key=lambda p: (p.line or 0))
        shown = problems[:MAX_PROBLEMS_REPORTED]
        more = len(problems) - len(shown)
        err = HoldoutError(
            f"holdout {path} is invalid: {len(problems)} problem(s)"
            + (f" (first {len(shown)} shown)" if more else ""),
            shown,
        )
        err.total = len(problems)  # type: ignore[attr-defined]
        raise err
    holdout.wrapped = bool(holdout.ids) and n_wrapped == len(holdout.ids)
    return holdout


# ----------------------------------------------------------------- writing


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _record_line(q: NormalizedQuery, *, tenant: str, accepted_by: str | None, wrapped: bool, now: str) -> bytes:
    if wrapped:
        rec: dict[str, Any] = {
            "query_id": q.id,
            "tenant_id": q.tenant or tenant,
            "payload": q.payload,
            "added_at": q.added_at or now,
            "accepted_by_adapter": accepted_by,
        }
    else:
        rec = dict(q.payload)
        if _first(rec, ID_KEYS) is None or str(_first(rec, ID_KEYS)) != q.id:
            rec["id"] = q.id  # a 0.5.4 line whose id lived only in its wrapper
        rec.setdefault("tenant", q.tenant or tenant)
        rec.setdefault("added_at", q.added_at or now)
        by = accepted_by or q.accepted_by
        if by is not None:
            rec.setdefault("accepted_by", by)
    return _dumps_line(rec)


def _dumps_line(rec: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(rec) + b"\n"
    except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits, NaN from the stdlib parser
        return json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n"


@dataclass
class ImportResult:
    imported: list[str] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    size: int = 0


def _existing(path: Path, tenant: str, max_line_bytes: int) -> Holdout:
    if not path.exists():
        return Holdout(path=path, raw_lines=[])
    return load_holdout(path, tenant=tenant, max_line_bytes=max_line_bytes, keep_raw=True)


def _rewrite(path: Path, holdout: Holdout, extra: list[bytes]) -> None:
    chunks = [raw + b"\n" for raw in holdout.raw_lines or []]
    atomic_write(path, chunks + extra, locked=True)


def import_queries(
    path: str | Path,
    source: str | Path,
    *,
    tenant: str,
    accepted_by: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> ImportResult:
    """Append every valid line of ``source`` to the holdout at ``path``.

    Invalid lines and ids already present (in the holdout or earlier in the
    source) are skipped and reported; the valid rest is written in one
    atomic replace. Linear in the size of both files.
    """
    path, source = Path(path), Path(source)
    if not source.exists():
        raise InvalidInputError(f"file not found: {source}")
    numbers, lines, skipped, brackets = _read_lines(source, max_line_bytes)
    objs, parse_problems = _parse(source, numbers, lines, brackets)
    skipped.extend(parse_problems)
    result = ImportResult(skipped=skipped)
    with file_lock(path):
        holdout = _existing(path, tenant, max_line_bytes)
        seen = {qid: f"already in {path}" for qid in holdout.ids}
        wrapped = holdout.wrapped
        now = _now()
        new_lines: list[bytes] = []
        fast = None
        if not skipped and not wrapped:
            with _gc_paused():
                fast = _columns_fast(objs, tenant)
            if fast is not None and not seen.keys().isdisjoint(fast.ids):
                fast = None  # some ids already exist: report them line by line
        if fast is not None:
            # Clean source: the same records as below, without a Python call per check.
            with _gc_paused():
                for obj in objs:
                    rec = obj.copy()
                    rec.setdefault("tenant", tenant)
                    rec.setdefault("added_at", now)
                    if accepted_by is not None:
                        rec.setdefault("accepted_by", accepted_by)
                    new_lines.append(_dumps_line(rec))
            result.imported.extend(fast.ids)
            objs = []
        with _gc_paused():
            for lineno, obj in zip(numbers, objs):
                if obj is _BAD:
                    continue
                try:
                    q = normalize_query(obj, allow_bare_tags=False)
                except ValueError as exc:
                    skipped.append(Problem(str(source), lineno, str(exc)))
                    continue
                if q.tenant is not None and q.tenant != tenant:
                    msg = f"tenant {q.tenant!r} does not match --tenant {tenant!r}"
                    skipped.append(Problem(str(source), lineno, msg))
                    continue
                if q.id in seen:
                    skipped.append(Problem(str(source), lineno, f"duplicate id {q.id!r} ({seen[q.id]})"))
                    continue
                seen[q.id] = f"first at line {lineno} of {source}"
                rec_line = _record_line(q, tenant=tenant, accepted_by=accepted_by, wrapped=wrapped, now=now)
                new_lines.append(rec_line)
                result.imported.append(q.id)
        if new_lines:
            _rewrite(path, holdout, new_lines)
        result.size = len(holdout) + len(new_lines)
    result.skipped.sort(key=lambda p: p.line or 0)
    return result


@dataclass
class AddResult:
    query_id: str
    added: bool
    size: int


def add_query(
    path: str | Path,
    payload: Any,
    *,
    tenant: str,
    accepted_by: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> AddResult:
    """Add one query. Re-adding an identical query is a no-op; a different
    query under an existing id is an error."""
    path = Path(path)
    if nesting_exceeds(payload, MAX_JSON_DEPTH):
        raise InvalidInputError(f"invalid query: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        q = normalize_query(payload, allow_bare_tags=False)
    except ValueError as exc:
        raise InvalidInputError(f"invalid query: {exc}") from None
    if q.tenant is not None and q.tenant != tenant:
        raise InvalidInputError(f"query tenant {q.tenant!r} does not match --tenant {tenant!r}")
    with file_lock(path):
        holdout = _existing(path, tenant, max_line_bytes)
        if q.id in holdout.ids:
            i = holdout.ids.index(q.id)
            existing = holdout.payloads[i]
            ignore = {"added_at", "tenant", "accepted_by"}
            same = {k: v for k, v in existing.items() if k not in ignore} == {
                k: v for k, v in q.payload.items() if k not in ignore
            }
            if same:
                return AddResult(q.id, False, len(holdout))
            raise InvalidInputError(
                f"id {q.id!r} already exists in {path} (line {holdout.lines[i]}) with different"
                " content; remove it first with 'adaptergate holdout remove'"
            )
        line = _record_line(q, tenant=tenant, accepted_by=accepted_by, wrapped=holdout.wrapped, now=_now())
        _rewrite(path, holdout, [line])
        return AddResult(q.id, True, len(holdout) + 1)


def remove_queries(
    path: str | Path, ids: Sequence[str], *, tenant: str | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> tuple[list[str], list[str], int]:
    """Remove queries by id. Returns (removed, missing, new size)."""
    path = Path(path)
    with file_lock(path):
        holdout = load_holdout(path, tenant=tenant, max_line_bytes=max_line_bytes, keep_raw=True)
        wanted = set(ids)
        keep = [i for i, qid in enumerate(holdout.ids) if qid not in wanted]
        present = set(holdout.ids)
        removed = [qid for qid in dict.fromkeys(ids) if qid in present]
        missing = [qid for qid in dict.fromkeys(ids) if qid not in present]
        if removed:
            raw = holdout.raw_lines or []
            atomic_write(path, [raw[i] + b"\n" for i in keep], locked=True)
        return removed, missing, len(keep)


def holdout_stats(holdout: Holdout) -> dict[str, Any]:
    """Counts a reviewer wants before trusting a holdout."""
    tag_counts: Counter[str] = Counter()
    for tags in holdout.slices:
        tag_counts.update(tags)
    keys: dict[str, dict[str, int]] = {}
    for tag, count in sorted(tag_counts.items()):
        key, _, value = tag.partition("=") if "=" in tag else ("(bare)", "", tag)
        keys.setdefault(key, {})[value] = count
    n = len(holdout)
    with_gold = sum(1 for p in holdout.payloads if _first(p, GOLD_KEYS) is not None)
    with_prompt = sum(1 for p in holdout.payloads if _first(p, PROMPT_KEYS) is not None)
    untagged = sum(1 for tags in holdout.slices if not tags)
    clusters = {c for c in holdout.clusters if c is not None}
    stamps = sorted(s for s in holdout.added_at if s)
    return {
        "path": str(holdout.path) if holdout.path else None,
        "size": n,
        "format": "adaptergate-0.5.4-wrapped" if holdout.wrapped else "jsonl",
        "with_prompt": with_prompt,
        "with_gold": with_gold,
        "untagged": untagged,
        "distinct_slices": len(tag_counts),
        "slices_by_key": keys,
        "clusters": len(clusters),
        "oldest_added_at": stamps[0] if stamps else None,
        "newest_added_at": stamps[-1] if stamps else None,
        "staleness_days": holdout.staleness_days(),
    }
