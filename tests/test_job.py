"""One gate job: settings, recording, and the manifest's approval bands."""

from __future__ import annotations


from adaptergate.examples import EXAMPLE_HOLDOUT, EXAMPLE_SCORER
from adaptergate.pipeline.job import GateJob, run_job
from adaptergate.pipeline.ledger import AuditLog, ReplayBuffer
from adaptergate.manifest.model import ApprovalPolicy


def _job(tmp_path, candidate="adapter_good_v19", **extra) -> GateJob:
    return GateJob(
        tenant="acme", holdout_path=EXAMPLE_HOLDOUT, candidate=candidate, baseline="adapter_good_v18",
        scorer_spec=EXAMPLE_SCORER, audit_log=tmp_path / "audit.jsonl", replay_path=tmp_path / "replay.jsonl",
        **extra,
    )


def test_a_passing_candidate_below_the_floor_is_recorded_as_rejected(tmp_path):
    plain = run_job(_job(tmp_path / "a"))
    assert plain.accepted and plain.approval is None
    floor = round(plain.score_candidate + 0.05, 3)
    d = run_job(_job(tmp_path / "b", approval=ApprovalPolicy(floor=floor, auto_approve=0.99)))
    assert not d.accepted and d.approval == "reject"
    assert d.reason.startswith(f"REJECTED: the candidate's score {d.score_candidate:.3f} is below")
    assert d.verdict == plain.verdict  # the statistics are unchanged; the policy rejected
    [record] = AuditLog(tmp_path / "b" / "audit.jsonl").decisions()
    assert record.accepted is False and record.approval == "reject"
    [replayed] = ReplayBuffer(tmp_path / "b" / "replay.jsonl", tenant_id="acme").records()
    assert replayed.decision().approval == "reject" and replayed.reason == d.reason


def test_review_and_approve_bands(tmp_path):
    plain = run_job(_job(tmp_path / "a"))
    s = plain.score_candidate
    review = run_job(_job(tmp_path / "b", approval=ApprovalPolicy(floor=s - 0.1, auto_approve=s + 0.01)))
    assert review.accepted and review.approval == "review" and "needs a human review" in review.reasons[-1]
    approve = run_job(_job(tmp_path / "c", approval=ApprovalPolicy(floor=s - 0.1, auto_approve=s - 0.01)))
    assert approve.accepted and approve.approval == "approve"
    rejected = run_job(_job(tmp_path / "d", candidate="adapter_bad_v19", approval=ApprovalPolicy(floor=0.0)))
    assert not rejected.accepted and rejected.approval == "reject"
    assert not (tmp_path / "c" / "replay.jsonl").exists()
