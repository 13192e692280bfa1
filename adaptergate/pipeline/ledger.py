"""The ledger: the audit log, the per-query rows artifact, the replay buffer.

Three files, all JSON Lines, all written through :mod:`adaptergate.storage`
so concurrent adaptergate processes never interleave or lose a record:

* :class:`AuditLog`: one line per gate run. A decision is stored
  :meth:`~adaptergate.models.GateDecision.compact` (no per-query rows) under
  ``"kind": "decision"``; a run that failed (a scorer traceback, say) is
  stored under ``"kind": "error"`` instead of being dumped on the console.
* :func:`write_rows`: the optional ``--rows-out`` artifact, one
  :class:`~adaptergate.models.QueryRow` per line, replaced atomically.
* :class:`ReplayBuffer`: the rejected candidates of one tenant, bounded by
  rotation (``<path>`` and ``<path>.1``) rather than by rewriting the file.

Reading compatibility with adaptergate 0.5.4: its audit-log lines (a full
decision, ``schema_version`` 2, no ``"kind"``) read as decisions, and its
replay-buffer lines (the decision as a JSON *string* in ``decision_blob``)
read as :class:`ReplayRecord` whose :meth:`ReplayRecord.decision` parses the
string. Every record we write carries ``schema_version``.

Every unreadable or malformed file is reported as
:class:`~adaptergate.errors.InvalidInputError` naming the file and the line,
with one exception: a *torn* last line (no newline, the start of a record
that does not parse: a write that did not finish, see
:mod:`adaptergate.storage`) is skipped with a warning naming the file and
the line, and every complete record before it is read. A file that does not
exist reads as empty: whether that is an error is the caller's decision.

A write that fails (a full disk) raises
:class:`~adaptergate.errors.StorageError` (exit code 3) and leaves the file
as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

from adaptergate import __version__
from adaptergate.errors import InvalidInputError, Problem, StorageError
from adaptergate.models import SCHEMA_VERSION, GateDecision, QueryRow
from adaptergate.storage import (
    utc_now,
    atomic_write,
    drop_torn_tail,
    file_lock,
    is_torn_fragment,
    locked_append,
    rotate_append,
    split_torn_tail,
    warn_torn_tail,
)

__all__ = [
    "AuditLog",
    "ReplayBuffer",
    "ReplayRecord",
    "read_rows",
    "write_rows",
]

_ROW: TypeAdapter[QueryRow] = TypeAdapter(QueryRow)

LEGACY_SCHEMA_VERSION = 2
"""What 0.5.4 wrote; assumed for its replay lines, which carry no version."""

_READ_CHUNK = 1 << 20


# ---------------------------------------------------------------------------
# Shared reading helpers
# ---------------------------------------------------------------------------


def _where(path: Path, line: int | None, message: str) -> str:
    return str(Problem(str(path), line, message))


def _short(exc: ValidationError) -> str:
    """The first few problems of a validation error, on one line."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def _read_bytes(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The whole file and its stat, or ``None`` when it does not exist."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            return fh.read(), st
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise InvalidInputError(f"cannot read {path}: it is a directory") from exc
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _json_lines(path: Path, data: bytes, *, skip_bad: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)`` for every non-blank line of ``data``.

    A line that is not UTF-8, not JSON, or not a JSON object raises
    :class:`InvalidInputError` naming ``path:line``, unless ``skip_bad``.
    A torn last line (:func:`~adaptergate.storage.is_torn_fragment`) is
    skipped with a warning naming ``path:line``, ``skip_bad`` or not.
    """
    body, torn_line = split_torn_tail(data)
    if torn_line is not None:
        warn_torn_tail(path, torn_line, len(data) - len(body))
    for lineno, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if skip_bad:
                continue
            raise InvalidInputError(_where(path, lineno, "not valid UTF-8")) from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if skip_bad:
                continue
            raise InvalidInputError(
                _where(path, lineno, f"not valid JSON ({exc.msg} at column {exc.colno})")
            ) from None
        if not isinstance(obj, dict):
            if skip_bad:
                continue
            raise InvalidInputError(
                _where(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            )
        yield lineno, obj


def _dumps(record: dict[str, Any]) -> str:
    """One strict-JSON line.

    A NaN or infinity has no JSON spelling (``null`` would not read back as
    a float), so a record holding one is refused: the gate must never have
    produced it.
    """
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ValueError(
            f"refusing to write a ledger record for candidate_id={record.get('candidate_id')!r}:"
            f" it holds a non-finite number ({exc})"
        ) from exc


def _compact_dict(decision: GateDecision) -> dict[str, Any]:
    return decision.compact().model_dump(mode="json")



# ---------------------------------------------------------------------------
# Audit log
# ---------------------------------------------------------------------------


class AuditLog:
    """Append-only JSONL record of every gate run.

    Records are dicts with a ``"kind"``: ``"decision"`` (a compact
    :class:`GateDecision`) or ``"error"`` (a run that failed). Lines written
    by adaptergate 0.5.4 have no ``"kind"`` and are decisions.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    # -- writing ---------------------------------------------------------

    def append(self, decision: GateDecision) -> None:
        """Append ``decision`` (compact: no per-query rows) as one line."""
        record = {"kind": "decision", **_compact_dict(decision)}
        locked_append(self.path, [_dumps(record)])

    def append_error(
        self,
        *,
        tenant_id: str,
        candidate_id: str,
        baseline_id: str | None,
        error: str,
        exit_code: int,
        traceback_text: str | None,
    ) -> None:
        """Append the record of a run that produced no verdict."""
        record = {
            "kind": "error",
            "schema_version": SCHEMA_VERSION,
            "tool_version": __version__,
            "timestamp": utc_now(),
            "tenant_id": tenant_id,
            "candidate_id": candidate_id,
            "baseline_id": baseline_id,
            "error": error,
            "exit_code": int(exit_code),
            "traceback": traceback_text,
        }
        locked_append(self.path, [_dumps(record)])

    # -- reading ---------------------------------------------------------

    def _lines(self, *, skip_bad: bool) -> Iterator[tuple[int, dict[str, Any]]]:
        got = _read_bytes(self.path)
        if got is None:
            return iter(())
        return _json_lines(self.path, got[0], skip_bad=skip_bad)

    def records(self, *, skip_bad: bool = False) -> list[dict[str, Any]]:
        """Every record as a dict, oldest first (errors included)."""
        return [obj for _, obj in self._lines(skip_bad=skip_bad)]

    def _validate(self, lineno: int, obj: dict[str, Any]) -> GateDecision:
        try:
            return GateDecision.model_validate(obj)
        except ValidationError as exc:
            raise InvalidInputError(
                _where(self.path, lineno, f"not a valid gate decision ({_short(exc)})")
            ) from None

    @staticmethod
    def _is_decision(obj: dict[str, Any]) -> bool:
        # 0.5.4 lines have no "kind"; any kind but "decision" is not one.
        return obj.get("kind", "decision") == "decision"

    def decisions(self, *, skip_bad: bool = False) -> list[GateDecision]:
        """Every decision, oldest first; error records are skipped.

        A malformed line raises :class:`InvalidInputError` naming
        ``file:line`` unless ``skip_bad``, which drops it silently.
        """
        out: list[GateDecision] = []
        for lineno, obj in self._lines(skip_bad=skip_bad):
            if not self._is_decision(obj):
                continue
            try:
                out.append(self._validate(lineno, obj))
            except InvalidInputError:
                if not skip_bad:
                    raise
        return out

    def find(
        self,
        candidate_id: str,
        timestamp: str,
        *,
        tenant_id: str | None = None,
        skip_bad: bool = False,
    ) -> GateDecision | None:
        """The decision for ``candidate_id`` made at ``timestamp`` (the newest
        such record if several), or ``None``.

        ``timestamp`` is the decision's own (a replay record's
        ``rejected_at``). Only the matching record is validated.
        """
        match: tuple[int, dict[str, Any]] | None = None
        for lineno, obj in self._lines(skip_bad=skip_bad):
            if (
                self._is_decision(obj)
                and obj.get("candidate_id") == candidate_id
                and obj.get("timestamp") == timestamp
                and (tenant_id is None or obj.get("tenant_id") == tenant_id)
            ):
                match = (lineno, obj)
        if match is None:
            return None
        try:
            return self._validate(*match)
        except InvalidInputError:
            if skip_bad:
                return None
            raise


# ---------------------------------------------------------------------------
# Per-query rows artifact (--rows-out)
# ---------------------------------------------------------------------------


def write_rows(path: str | os.PathLike[str], decision: GateDecision) -> None:
    """Write ``decision.per_query`` to ``path`` as JSONL, replacing it atomically.

    A failed write (a full disk) raises :class:`StorageError` and leaves the
    previous file as it was.
    """
    target = Path(path)
    # one encoder for every row: json.dumps(row, ensure_ascii=False) builds a new one per call
    encode = json.JSONEncoder(ensure_ascii=False).encode
    try:
        atomic_write(target, ((encode(row) + "\n").encode("utf-8") for row in decision.per_query))
    except OSError as exc:
        raise StorageError(
            f"cannot write {target}: {exc.strerror or exc} (the file was left as it was)"
        ) from exc


def read_rows(path: str | os.PathLike[str]) -> list[QueryRow]:
    """Read a file written by :func:`write_rows` (missing file: empty list)."""
    target = Path(path)
    got = _read_bytes(target)
    if got is None:
        return []
    rows: list[QueryRow] = []
    for lineno, obj in _json_lines(target, got[0], skip_bad=False):
        try:
            rows.append(_ROW.validate_python(obj))
        except ValidationError as exc:
            raise InvalidInputError(
                _where(target, lineno, f"not a valid query row ({_short(exc)})")
            ) from None
    return rows


# ---------------------------------------------------------------------------
# Replay buffer
# ---------------------------------------------------------------------------


class ReplayRecord(BaseModel):
    """One rejected candidate as kept in the replay buffer.

    Ours embed the compact decision as a JSON object (``"decision"``);
    0.5.4's embed the full decision as a JSON string (``"decision_blob"``).
    :meth:`decision` reads either.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_version: int = LEGACY_SCHEMA_VERSION
    tenant_id: str
    candidate_id: str
    baseline_id: str | None = None
    rejected_at: str
    delta: float
    reason: str
    decision_record: dict[str, Any] | None = Field(None, alias="decision")
    decision_blob: str | None = None

    _source: str | None = PrivateAttr(None)
    _line: int | None = PrivateAttr(None)

    @property
    def location(self) -> str | None:
        """``file:line`` the record was read from, when read from a file."""
        if self._source is None:
            return None
        return f"{self._source}:{self._line}" if self._line is not None else self._source

    def _fail(self, message: str) -> InvalidInputError:
        where = self.location or f"replay record of {self.candidate_id}"
        return InvalidInputError(f"{where}: {message}")

    def decision(self) -> GateDecision:
        """The embedded gate decision (compact for ours, full for 0.5.4's)."""
        if self.decision_record is not None:
            data: Any = self.decision_record
        elif self.decision_blob is not None:
            try:
                data = json.loads(self.decision_blob)
            except json.JSONDecodeError as exc:
                raise self._fail(f"decision_blob is not valid JSON ({exc.msg})") from None
        else:
            raise self._fail("record embeds no decision")
        if not isinstance(data, dict):
            raise self._fail("embedded decision is not a JSON object")
        try:
            return GateDecision.model_validate(data)
        except ValidationError as exc:
            raise self._fail(f"embedded decision is not valid ({_short(exc)})") from None


class ReplayBuffer:
    """The rejected candidates of one tenant, newest last on disk.

    Bounded by rotation: when the live file already holds ``max_records``
    lines, the next :meth:`add` renames it to ``<path>.1`` (replacing the
    older one) and starts a fresh file. At most ``2 * max_records`` records
    are on disk and a read always sees at least the last ``max_records``.
    """

    def __init__(
        self, path: str | os.PathLike[str], tenant_id: str, max_records: int = 200
    ) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        self.path = Path(path)
        self.tenant_id = tenant_id
        self.max_records = max_records

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer({str(self.path)!r}, tenant_id={self.tenant_id!r},"
            f" max_records={self.max_records})"
        )

    @property
    def rotated_path(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    # -- writing ---------------------------------------------------------

    def add(self, decision: GateDecision) -> ReplayRecord:
        """Record a rejected decision of this buffer's tenant.

        Passing an accepted decision or another tenant's is a programming
        error (:class:`ValueError`).
        """
        if decision.accepted:
            raise ValueError(
                "ReplayBuffer.add() expects a rejected decision; got an accepted one for"
                f" candidate_id={decision.candidate_id}"
            )
        if decision.tenant_id != self.tenant_id:
            raise ValueError(
                f"decision tenant_id={decision.tenant_id!r} does not match the buffer's"
                f" tenant_id={self.tenant_id!r}"
            )
        record = {
            "schema_version": SCHEMA_VERSION,
            "tenant_id": decision.tenant_id,
            "candidate_id": decision.candidate_id,
            "baseline_id": decision.baseline_id,
            "rejected_at": decision.timestamp,
            "delta": decision.delta,
            "reason": decision.reason,
            "decision": _compact_dict(decision),
        }
        line = _dumps(record)
        with file_lock(self.path):
            # A torn fragment of a failed add is no record: drop it before
            # counting, so it neither counts nor travels to <path>.1.
            drop_torn_tail(self.path)
            if self._live_line_count() >= self.max_records:
                # The fresh file is written before the renames: a full disk
                # leaves both files as they were.
                rotate_append(self.path, self.rotated_path, [line])
            else:
                locked_append(self.path, [line], locked=True)
        return ReplayRecord.model_validate(record)

    def _live_line_count(self) -> int:
        """Lines in the live file (a last line without newline counts, unless torn)."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return 0
        count = 0
        tail = b""
        with fh:
            while chunk := fh.read(_READ_CHUNK):
                count += chunk.count(b"\n")
                nl = chunk.rfind(b"\n")
                tail = chunk[nl + 1:] if nl >= 0 else tail + chunk
        return count + (bool(tail) and not is_torn_fragment(tail))

    # -- reading ---------------------------------------------------------

    def _snapshot(self) -> list[tuple[Path, bytes]]:
        """Contents of ``<path>.1`` then ``<path>``, consistent without a lock.

        The live file is opened first: if a rotation moves it to ``.1``
        before ``.1`` is opened, both opens see the same file (same inode)
        and it is read once, so no record is lost or doubled.
        """
        live = _read_bytes(self.path)
        old = _read_bytes(self.rotated_path)
        parts: list[tuple[Path, bytes]] = []
        if old is not None and not (live is not None and _same_file(old[1], live[1])):
            parts.append((self.rotated_path, old[0]))
        if live is not None:
            parts.append((self.path, live[0]))
        return parts

    def records(self, *, skip_bad: bool = False) -> list[ReplayRecord]:
        """This tenant's rejections, oldest first."""
        out: list[ReplayRecord] = []
        for path, data in self._snapshot():
            for lineno, obj in _json_lines(path, data, skip_bad=skip_bad):
                if obj.get("tenant_id") != self.tenant_id:
                    continue
                try:
                    rec = ReplayRecord.model_validate(obj)
                except ValidationError as exc:
                    if skip_bad:
                        continue
                    raise InvalidInputError(
                        _where(path, lineno, f"not a valid replay record ({_short(exc)})")
                    ) from None
                rec._source = str(path)
                rec._line = lineno
                out.append(rec)
        return out

    def __len__(self) -> int:
        return len(self.records())

    def __iter__(self) -> Iterator[ReplayRecord]:
        return iter(self.records())

    def recent(self, n: int = 10) -> list[ReplayRecord]:
        """The last ``n`` rejections, oldest first."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        return self.records()[-n:]

    def get(self, index: int) -> ReplayRecord:
        """The ``index``-th most recent rejection: 1 = newest, 2 = the one before."""
        if index < 1:
            raise InvalidInputError(f"--index must be >= 1 (1 = most recent), got {index}")
        recs = self.records()
        if index > len(recs):
            raise InvalidInputError(
                f"replay buffer {self.path} has {len(recs)} rejection(s) for tenant"
                f" {self.tenant_id}; --index {index} is out of range"
            )
        return recs[-index]


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
