"""The approval rule: a tenant's approval bands applied to a decision the gate made.

A manifest may give a tenant approval bands on the candidate's aggregate
score (:class:`adaptergate.manifest.model.ApprovalPolicy`): below ``floor`` a
passing candidate is rejected, between ``floor`` and ``auto_approve`` it
needs a human review, above it is approved. A candidate the gate rejected is
in the ``reject`` band whatever its score.

:func:`approval_outcome` is a pure function: it reads a decision and returns
what the rule changes (:class:`ApprovalOutcome`); the pipeline applies it
(:func:`adaptergate.pipeline.job.apply_approval`) before anything is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from adaptergate.models import GateDecision, Rejection

__all__ = ["ApprovalBands", "ApprovalOutcome", "Band", "approval_outcome"]

Band = Literal["approve", "review", "reject"]


class ApprovalBands(Protocol):
    """What the rule reads of a tenant's bands (``ApprovalPolicy`` is one)."""

    floor: float | None
    auto_approve: float | None

    def band(self, score: float) -> Band: ...


@dataclass(frozen=True)
class ApprovalOutcome:
    """What the approval rule makes of a decision: its band and the fields it changes.

    ``accepted``, ``verdict``, ``reason`` and ``reasons`` are the decision's
    new values (unchanged where the rule changes nothing); ``rejection`` is
    the record to add to ``rejected_by`` when the floor rejects a candidate
    the gate passed (None otherwise).
    """

    band: Band
    accepted: bool
    verdict: str
    reason: str
    reasons: list[str]
    rejection: Rejection | None = None


def approval_outcome(decision: GateDecision, bands: ApprovalBands) -> ApprovalOutcome:
    """Apply ``bands`` to ``decision`` (read only): the band, and what changes.

    * the gate rejected: band ``reject``, nothing else changes;
    * the score is below the floor: the candidate is rejected. The floor's
      sentence becomes the headline and the gate's headline moves to the top of
      ``reasons``; a threshold decision's verdict becomes REJECTED (a stat
      verdict, PASS …, stays: it is the statistics);
    * between the floor and auto-approve: a "needs a human review" line is
      added to ``reasons``;
    * otherwise: band ``approve``, nothing else changes.
    """
    unchanged = dict(
        accepted=decision.accepted, verdict=decision.verdict, reason=decision.reason, reasons=list(decision.reasons)
    )
    if not decision.accepted:
        return ApprovalOutcome(band="reject", **unchanged)
    score = decision.score_candidate
    band = bands.band(score)
    if band == "reject":
        verdict = "REJECTED" if decision.decision_rule == "threshold" else decision.verdict
        floor = bands.floor if bands.floor is not None else float("nan")  # band() rejects only below a floor
        reason = (
            f"REJECTED: the candidate's score {score:.3f} is below the tenant's approval floor"
            f" {floor:.3f} (the gate itself passed: {verdict})"
        )
        return ApprovalOutcome(
            band=band, accepted=False, verdict=verdict, reason=reason,
            reasons=[decision.reason, *decision.reasons],
            rejection=Rejection(rule="approval-floor", lines=[reason]),
        )
    if band == "review":
        auto = bands.auto_approve if bands.auto_approve is not None else float("nan")
        line = (
            f"needs a human review: the candidate's score {score:.3f} is between the floor and the"
            f" auto-approve threshold {auto:.3f}"
        )
        return ApprovalOutcome(band=band, **{**unchanged, "reasons": [*decision.reasons, line]})
    return ApprovalOutcome(band=band, **unchanged)
