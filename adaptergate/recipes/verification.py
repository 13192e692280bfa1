"""Checking a recipe application: a rejection, and the later gate run of the same tenant.

What ``recipes log`` / ``recipes verify`` record (:func:`build_verified_application`)
once :func:`check_application` has accepted the pair.
"""

from __future__ import annotations

import uuid

from adaptergate.errors import InvalidInputError
from adaptergate.models import GateDecision
from adaptergate.recipes.model import VerifiedApplication, slice_key
from adaptergate.recipes.refs import parse_time

__all__ = ["build_verified_application", "check_application", "check_rejection"]


def _rejecting_slices(decision: GateDecision) -> list[str]:
    """The driver slice first, then every other slice that rejected on its own."""
    driver = decision.driver_slice
    tags = [driver.slice_tag] if driver is not None else []
    for s in decision.slice_attributions:
        if s.violates and not s.explained_by_driver and s.slice_tag not in tags:
            tags.append(s.slice_tag)
    return tags


def _slice_delta(decision: GateDecision, tag: str) -> float | None:
    for s in decision.slice_attributions:
        if s.slice_tag == tag:
            return s.delta
    return None


def _when(d: GateDecision) -> str:
    return f"{d.candidate_id} at {d.timestamp}"


def check_rejection(decision: GateDecision) -> None:
    """Refuse (:class:`InvalidInputError`) a decision a recipe cannot be logged
    against: an acceptance, or a rejection without a driver slice."""
    if decision.accepted:
        raise InvalidInputError(
            f"the decision ({_when(decision)}) was accepted ({decision.verdict}): a recipe is logged"
            " against a rejection"
        )
    driver = decision.driver_slice
    if driver is None:
        raise InvalidInputError(
            f"the rejection ({_when(decision)}) has no driver slice: recipes are matched by driver"
            " slice, so its outcome could not inform a recommendation"
        )


def check_application(decision: GateDecision, outcome: GateDecision) -> None:
    """Refuse (:class:`InvalidInputError`) a pair that cannot be an application:
    the decision must be a rejection with a driver slice (:func:`check_rejection`),
    the outcome the same tenant's and strictly newer."""
    check_rejection(decision)
    if decision.tenant_id != outcome.tenant_id:
        raise InvalidInputError(
            f"the decision and the outcome are for different tenants ({decision.tenant_id!r} and"
            f" {outcome.tenant_id!r}): an outcome must re-gate the same tenant"
        )
    t_dec, t_out = parse_time(decision.timestamp), parse_time(outcome.timestamp)
    for d, t in ((decision, t_dec), (outcome, t_out)):
        if t is None:
            raise InvalidInputError(f"cannot read the timestamp {d.timestamp!r} of {d.candidate_id}'s decision")
    assert t_dec is not None and t_out is not None
    if t_out <= t_dec:
        raise InvalidInputError(
            f"the outcome ({_when(outcome)}) is not newer than the decision ({_when(decision)}):"
            " the outcome is the gate run after applying the recipe"
        )


def build_verified_application(
    *,
    recipe_id: str,
    decision: GateDecision,
    outcome: GateDecision,
    note: str | None = None,
    application_id: str | None = None,
) -> VerifiedApplication:
    """The application record of ``recipe_id`` from its rejection and its outcome (checked)."""
    check_application(decision, outcome)
    driver = decision.driver_slice
    assert driver is not None
    rejecting = _rejecting_slices(decision)
    return VerifiedApplication(
        application_id=application_id or uuid.uuid4().hex,
        recipe_id=recipe_id,
        tenant_id=decision.tenant_id,  # hashed by the model; never stored
        driver_slice_tag=driver.slice_tag,
        driver_slice_key=slice_key(driver.slice_tag),
        rejecting_slice_keys=sorted({slice_key(t) for t in rejecting}),
        rejecting_slices=rejecting,
        decision_candidate_id=decision.candidate_id,
        decision_baseline_id=decision.baseline_id,
        decision_timestamp=decision.timestamp,
        decision_verdict=decision.verdict,
        decision_score=decision.score_candidate,
        decision_delta=decision.delta,
        decision_driver_delta=driver.delta,
        outcome_candidate_id=outcome.candidate_id,
        outcome_baseline_id=outcome.baseline_id,
        outcome_timestamp=outcome.timestamp,
        outcome_verdict=outcome.verdict,
        outcome_score=outcome.score_candidate,
        outcome_delta=outcome.delta,
        outcome_driver_delta=_slice_delta(outcome, driver.slice_tag),
        accepted=outcome.accepted,
        note=note or None,
    )
