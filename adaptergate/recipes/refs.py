"""Naming a gate decision: a decision file, an audit log's record N, or a selector (``@last``…).

Also what a rejection's rules were (:func:`settings_of`), so a recipe's
outcome can be re-gated under them.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.models import GateDecision
from adaptergate.recipes.jsonl import brief_error, decode_text, jsonl_objects, read_data, without_torn_tail

__all__ = [
    "REF_HELP",
    "SELECTORS",
    "ResolvedDecision",
    "parse_time",
    "read_decision",
    "resolve_application_refs",
    "resolve_decision_ref",
    "settings_of",
]


def parse_time(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def _is_decision_record(obj: dict[str, Any]) -> bool:
    # 0.5.4's audit lines have no "kind"; ours are "decision" or "error".
    return obj.get("kind", "decision") == "decision"


def read_decision(path: str | os.PathLike[str], line: int = -1) -> GateDecision:
    """The gate decision to recommend for, from a decision file or an audit log.

    ``path`` holds either one JSON object (a decision, also pretty-printed, as
    ``gate --format json`` writes it) or JSON Lines (an audit log: 0.5.4's or
    ours). ``line`` picks among the *decision records* only, 0-based,
    negative from the end (``-1``: the newest); records of failed runs
    (``"kind": "error"``) are skipped and not counted. For a 0.5.4 audit log,
    which holds only decisions, this is 0.5.4's ``--line``.
    """
    p = Path(path)
    decisions = _decision_records(p)
    idx = line if line >= 0 else len(decisions) + line
    if not 0 <= idx < len(decisions):
        raise InvalidInputError(
            f"--line {line} is out of range: {p} holds {len(decisions)} decision record(s)"
            " (--line counts decision records only: 0 = first, -1 = last)"
        )
    return _validate_decision(p, *decisions[idx])


def _decision_records(p: Path) -> list[tuple[int | None, dict[str, Any]]]:
    """The decision records of a decision file or an audit log, oldest first,
    as ``(line number or None for a single-object file, raw object)``."""
    data = read_data(p, "decision file")
    if data is None:
        raise InvalidInputError(f"decision file not found: {p}")
    data, torn = without_torn_tail(p, data)  # an audit log's last append may have failed
    text = decode_text(p, "decision file", data)
    if not text.strip():
        if torn:
            raise InvalidInputError(f"decision file {p} holds no complete record (its only line is incomplete)")
        raise InvalidInputError(f"decision file {p} is empty")
    records: list[tuple[int | None, dict[str, Any]]]
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        records = list(jsonl_objects(p, text))
    else:
        if not isinstance(whole, dict):
            raise InvalidInputError(
                f"{p}: expected a gate decision (a JSON object) or an audit log (JSON Lines),"
                f" got a JSON {type(whole).__name__}"
            )
        records = [(None, whole)]
    decisions = [(n, obj) for n, obj in records if _is_decision_record(obj)]
    if not decisions:
        raise InvalidInputError(
            f"{p} holds no gate decision ({len(records)} record(s), none of kind 'decision')"
        )
    return decisions


def _validate_decision(p: Path, lineno: int | None, obj: dict[str, Any]) -> GateDecision:
    try:
        return GateDecision.model_validate(obj)
    except ValidationError as exc:
        where = f"{p}:{lineno}" if lineno is not None else str(p)
        raise InvalidInputError(f"{where}: not a valid gate decision ({brief_error(exc)})") from None


def settings_of(decision: GateDecision) -> dict[str, Any]:
    """The decision settings a gate job needs to re-gate under ``decision``'s
    rules (:data:`adaptergate.models.SETTING_NAMES`). A 0.5.4 record, which has no
    ``config``, gives its threshold rule and epsilon. A rejection that gated no slice
    gives ``slice_epsilon`` ``"off"``, so the statistical rule's default slice margin
    does not apply to the re-gate."""
    from adaptergate.models import SETTING_NAMES, SLICE_GATING_OFF

    if decision.config is None:
        return {"decision": "threshold" if decision.schema_version < 3 else decision.decision_rule,
                "epsilon": decision.epsilon}
    cfg = decision.config.model_dump()
    out = {name: cfg[name] for name in SETTING_NAMES if name in cfg}
    if out.get("slice_epsilon") is None:
        out["slice_epsilon"] = SLICE_GATING_OFF  # the rejection gated no slice: neither does the re-gate
    return out


SELECTORS: tuple[str, ...] = ("@last", "@last-rejected", "@last-accepted")
REF_HELP = (
    "a decision JSON file (gate --format json), FILE:N (decision record N of an audit log: 0 = first,"
    " -1 = last), or @last, @last-rejected, @last-accepted with --audit-log"
)
_FILE_LINE = re.compile(r"(?s)(.+):(-?\d+)")


class ResolvedDecision(BaseModel):
    """A gate decision and where it was read (``file`` or ``file:line``)."""

    decision: GateDecision
    source: str


def _where_rec(p: Path, lineno: int | None) -> str:
    return f"{p}:{lineno}" if lineno is not None else str(p)


def resolve_decision_ref(
    ref: str,
    *,
    option: str = "--decision",
    audit_log: str | os.PathLike[str] | None = None,
    tenant: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> ResolvedDecision:
    """The gate decision a REF names (see :data:`REF_HELP`).

    ``@last`` / ``@last-rejected`` / ``@last-accepted``: the newest such
    decision record of ``audit_log`` for ``tenant`` (any tenant if None),
    optionally only among those strictly older than ``before`` or newer
    than ``after`` (timestamps). A file REF is checked against ``tenant``.
    """
    if ref.startswith("@"):
        if ref not in SELECTORS:
            raise UsageError(f"{option} {ref}: unknown selector; use {', '.join(SELECTORS)}")
        if audit_log is None:
            raise UsageError(f"{option} {ref} needs --audit-log FILE (the audit log to select from)")
        log = Path(audit_log)
        t_before = parse_time(before) if before else None
        t_after = parse_time(after) if after else None
        want = {"@last": None, "@last-rejected": False, "@last-accepted": True}[ref]
        for lineno, obj in reversed(_decision_records(log)):
            if tenant is not None and obj.get("tenant_id") != tenant:
                continue
            if want is not None and obj.get("accepted") is not want:
                continue
            if t_before is not None or t_after is not None:
                t = parse_time(obj.get("timestamp")) if isinstance(obj.get("timestamp"), str) else None
                if t is None or (t_before is not None and t >= t_before) or (t_after is not None and t <= t_after):
                    continue
            return ResolvedDecision(decision=_validate_decision(log, lineno, obj), source=_where_rec(log, lineno))
        kind = {None: "", False: "rejected ", True: "accepted "}[want]
        scope = f" of tenant {tenant!r}" if tenant is not None else ""
        when = f" older than {before}" if before else (f" newer than {after}" if after else "")
        raise InvalidInputError(f"{option} {ref}: no {kind}decision{scope}{when} in {log}")
    path, index = Path(ref), -1
    if not path.exists():
        m = _FILE_LINE.fullmatch(ref)
        if m is None or not Path(m.group(1)).is_file():
            raise InvalidInputError(f"{option} {ref}: no such file; give {REF_HELP}")
        path, index = Path(m.group(1)), int(m.group(2))
    records = _decision_records(path)
    idx = index if index >= 0 else len(records) + index
    if not 0 <= idx < len(records):
        raise InvalidInputError(
            f"{option} {ref}: {path} holds {len(records)} decision record(s) (N counts decision records"
            " only: 0 = first, -1 = last)"
        )
    lineno, obj = records[idx]
    got = ResolvedDecision(decision=_validate_decision(path, lineno, obj), source=_where_rec(path, lineno))
    if tenant is not None and got.decision.tenant_id != tenant:
        raise InvalidInputError(
            f"{option} {ref} ({got.source}) is for tenant {got.decision.tenant_id!r}, not --tenant {tenant!r}"
        )
    return got


def resolve_application_refs(
    decision_ref: str,
    outcome_ref: str,
    *,
    audit_log: str | os.PathLike[str] | None = None,
    tenant: str | None = None,
) -> tuple[ResolvedDecision, ResolvedDecision]:
    """The rejection and the outcome of ``recipes log``.

    A selector takes its tenant (when ``tenant`` is None) and its time bound
    from the other REF: ``--decision @last-rejected --outcome @last`` is the
    newest decision and the newest rejection of the same tenant before it.
    """
    if decision_ref.startswith("@") or not outcome_ref.startswith("@"):
        outcome = resolve_decision_ref(outcome_ref, option="--outcome", audit_log=audit_log, tenant=tenant)
        decision = resolve_decision_ref(
            decision_ref, option="--decision", audit_log=audit_log,
            tenant=tenant if tenant is not None or not decision_ref.startswith("@") else outcome.decision.tenant_id,
            before=outcome.decision.timestamp if decision_ref.startswith("@") else None,
        )
    else:
        decision = resolve_decision_ref(decision_ref, option="--decision", audit_log=audit_log, tenant=tenant)
        outcome = resolve_decision_ref(
            outcome_ref, option="--outcome", audit_log=audit_log,
            tenant=tenant if tenant is not None else decision.decision.tenant_id,
            after=decision.decision.timestamp,
        )
    return decision, outcome
