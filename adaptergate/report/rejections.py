"""Why a decision rejected, as reports need it: read from ``decision.rejected_by``.

The gate records every rule that rejected as a
:class:`~adaptergate.models.Rejection` (rule name, slices, query count and
the reason lines it wrote); reports read those records, never the prose.

Records written before adaptergate recorded them (0.5.4's, ``schema_version``
2, and earlier records of ours) have ``rejected_by`` None. For them, and only
for them, :func:`infer_rejections_from_prose` rebuilds the records the way
reports used to infer the rules: from the reason sentences.
"""

from __future__ import annotations

import re

from adaptergate.models import GateDecision, Rejection
from adaptergate.report.numbers import finite

__all__ = [
    "aggregate_failed",
    "aggregate_message",
    "aggregate_rule",
    "infer_rejections_from_prose",
    "rejections",
    "strict_message",
]


def rejections(decision: GateDecision) -> list[Rejection]:
    """The rules that rejected ``decision`` ([] when accepted)."""
    if decision.rejected_by is not None:
        return decision.rejected_by
    return infer_rejections_from_prose(decision)


# A reason line that *starts* with strict mode (a slice tag may contain "strict").
_STRICT_REASON = re.compile(r"^\s*(REJECTED\s*\(\s*)?strict\b", re.IGNORECASE)


def infer_rejections_from_prose(decision: GateDecision) -> list[Rejection]:
    """COMPATIBILITY: the rules that rejected a record without ``rejected_by``, from its prose.

    For decisions read back from old audit logs and replay buffers only (0.5.4
    records, schema_version 2, and ours written before ``rejected_by``
    existed); reproduces what reports inferred before the rules were data:

    * strict: a reason line starts with strict mode (``strict …`` or ``REJECTED (strict …``);
    * slice: some slice ``violates`` (or a reason line starts with "slice");
    * aggregate: no violating slice and no strict line, or the aggregate
      delta is below −ε.
    """
    if decision.accepted:
        return []
    strict = any(_STRICT_REASON.match(t) for t in [decision.reason, *decision.reasons])
    violating = [s.slice_tag for s in decision.slice_attributions if s.violates]
    slice_lines = [r for r in decision.reasons if r and r.lstrip().lower().startswith("slice")]
    dropped = finite(decision.delta) and finite(decision.epsilon) and decision.delta < -decision.epsilon
    out: list[Rejection] = []
    if (not violating and not strict) or dropped:
        out.append(Rejection(rule="aggregate"))
    if violating or slice_lines:
        out.append(Rejection(rule="slice", slices=violating, lines=slice_lines))
    if strict:
        strict_lines = [r for r in decision.reasons if r and _STRICT_REASON.match(r)]
        out.append(Rejection(rule="strict", lines=strict_lines))
    return out


def aggregate_failed(rejected: list[Rejection]) -> bool:
    """Did a rule other than a slice rule reject (the aggregate testcase fails)?"""
    return any(r.rule != "slice" for r in rejected)


def aggregate_rule(rejected: list[Rejection]) -> str:
    """The failure type of the aggregate testcase: ``strict`` when strict mode rejected."""
    return "strict" if any(r.rule == "strict" for r in rejected) else "aggregate"


def aggregate_message(decision: GateDecision, rejected: list[Rejection]) -> str:
    """The reason lines other than the slice rules' (else the headline)."""
    slice_lines = {line for r in rejected if r.rule == "slice" for line in r.lines}
    rules = [r for r in decision.reasons if r and r not in slice_lines]
    return "; ".join(rules) if rules else decision.reason


def strict_message(decision: GateDecision, rejected: list[Rejection]) -> str | None:
    """The strict rule's lines (else the headline); None when strict mode did not reject."""
    strict = [r for r in rejected if r.rule == "strict"]
    if not strict:
        return None
    return "; ".join(line for r in strict for line in r.lines if line) or decision.reason
