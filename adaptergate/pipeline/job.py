"""One gate job as the CLI and the GitHub Action run it.

:class:`GateJob` holds everything a caller chose (ids, holdout, scorer or
model, the decision settings given explicitly, the files to record to);
:func:`run_job` resolves the settings (given > ``--config`` file > built-in
defaults, :func:`adaptergate.pipeline.settings.with_defaults`), runs :func:`adaptergate.pipeline.gate.run_gate` and records the outcome in
the audit log, the replay buffer and the rows file. Both front ends stay thin:
``adaptergate gate`` parses flags into a job, the action parses ``INPUT_*``
variables into the same job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptergate.errors import ScorerError, UsageError
from adaptergate.holdout.store import DEFAULT_MAX_LINE_BYTES
from adaptergate.scoring.model import ModelInputs
from adaptergate.models import SETTING_NAMES, ApprovalPolicy, GateConfig, GateDecision, PolicyReview

__all__ = ["GateJob", "SETTING_NAMES", "apply_approval", "apply_policy_review", "gate_config", "run_job"]


@dataclass(frozen=True)
class GateJob:
    tenant: str
    holdout_path: Path
    candidate: str | None = None
    baseline: str | None = None
    scorer_spec: str | None = None
    model: ModelInputs | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    """Decision settings given explicitly (names from :data:`SETTING_NAMES`); None = not given."""
    config_path: Path | None = None
    require_calibration: bool = True
    sample: int | None = None
    sample_seed: str | None = None
    repeats: int = 1
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    audit_log: Path | None = None
    replay_path: Path | None = None
    rows_out: Path | None = None
    approval: ApprovalPolicy | None = None
    """The tenant's approval bands (manifest): applied before anything is recorded."""
    holdout_label: str | None = None
    """The holdout as the repository names it, when ``holdout_path`` is a copy (the base
    commit's version of a file the pull request changed)."""
    policy: PolicyReview | None = None
    """Pull requests: where the policy came from and what the pull request changes in it;
    a passing candidate whose pull request changes its own policy needs a human review."""


def gate_config(**kwargs: Any) -> GateConfig:
    """A :class:`GateConfig`, with a bad value reported as one usage line."""
    from pydantic import ValidationError

    try:
        return GateConfig(**kwargs)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "--" + str(err["loc"][0]).replace("_", "-") if err.get("loc") else "option"
        raise UsageError(f"invalid {name}: {err['msg']} (got {err.get('input')!r})") from None


def _request(job: GateJob):
    from adaptergate.pipeline.settings import tenant_settings, with_defaults
    from adaptergate.pipeline.gate import GateRequest

    unknown = set(job.settings) - set(SETTING_NAMES)
    if unknown:
        raise UsageError("unknown decision setting(s): " + ", ".join(sorted(unknown)))
    given = {k: v for k, v in job.settings.items() if v is not None}
    settings = with_defaults({**tenant_settings(job.config_path, job.tenant), **given})
    config = gate_config(
        **settings, require_calibration=job.require_calibration, sample=job.sample, sample_seed=job.sample_seed,
    )
    candidate, baseline = job.candidate, job.baseline
    if job.model is not None:
        if job.scorer_spec:
            raise UsageError("give either --scorer or --base-model with adapters, not both")
        candidate = candidate or job.model.candidate_adapter.name
        baseline = baseline or job.model.baseline_adapter.name
    elif not job.scorer_spec:
        raise UsageError(
            "give --scorer module:function, or --base-model with --baseline-adapter and --candidate-adapter"
        )
    if candidate is None:
        raise UsageError("Missing option '--candidate'")
    return GateRequest(
        tenant=job.tenant, candidate=candidate, baseline=baseline, holdout_path=job.holdout_path,
        scorer_spec=job.scorer_spec or "", config=config, max_line_bytes=job.max_line_bytes,
        repeats=job.repeats, model=job.model,
    )


def apply_approval(decision: GateDecision, policy: ApprovalPolicy) -> None:
    """Apply the approval rule (:func:`adaptergate.decide.approval.approval_outcome`) to ``decision``.

    Sets ``decision.approval``; a passing candidate below the floor becomes a
    rejection. Done before the decision is recorded, so the audit log and the
    replay buffer see the rejection too.
    """
    from adaptergate.decide.approval import approval_outcome

    outcome = approval_outcome(decision, policy)
    decision.approval = outcome.band
    decision.accepted = outcome.accepted
    decision.verdict = outcome.verdict
    decision.reason = outcome.reason
    decision.reasons = outcome.reasons
    if outcome.rejection is not None:
        decision.rejected_by = [*(decision.rejected_by or []), outcome.rejection]


def apply_policy_review(decision: GateDecision, review: PolicyReview) -> None:
    """Record where the policy came from; a passing candidate whose pull request changes its
    own gate policy needs a human review (the change takes effect only after merge)."""
    decision.policy = review
    if review.needs_review and decision.accepted:
        decision.approval = "review"


def run_job(job: GateJob, *, progress: Callable[[int], None] | None = None) -> GateDecision:
    """Gate, then record: audit log (decision or scorer failure), replay buffer, rows.

    Raises what :func:`~adaptergate.pipeline.gate.run_gate` raises; a scorer failure
    is written to the audit log first.
    """
    from adaptergate.pipeline.gate import run_gate

    request = _request(job)  # (the ledger below is imported only when something is recorded)
    try:
        decision = run_gate(request, progress=progress)
    except ScorerError as exc:
        if job.audit_log is not None:
            from adaptergate.pipeline.ledger import AuditLog

            AuditLog(job.audit_log).append_error(
                tenant_id=request.tenant, candidate_id=request.candidate, baseline_id=request.baseline,
                error=exc.message, exit_code=int(exc.exit_code), traceback_text=exc.traceback_text,
            )
        raise
    if job.approval is not None:
        apply_approval(decision, job.approval)
    if job.policy is not None:
        apply_policy_review(decision, job.policy)
    if job.holdout_label is not None:
        decision.holdout_path = job.holdout_label
    if job.audit_log is not None:
        from adaptergate.pipeline.ledger import AuditLog

        AuditLog(job.audit_log).append(decision)
    if job.replay_path is not None and not decision.accepted:
        from adaptergate.pipeline.ledger import ReplayBuffer

        ReplayBuffer(job.replay_path, tenant_id=request.tenant).add(decision)
    if job.rows_out is not None:
        from adaptergate.pipeline.ledger import write_rows

        write_rows(job.rows_out, decision)
    return decision
