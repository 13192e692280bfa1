"""Why a decision rejected is data: ``GateDecision.rejected_by``.

Every rule that can reject writes a :class:`Rejection` record (rule, slices,
query count, the reason lines it wrote); reports read the records, never the
prose; records written before the field existed still render, as before.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from adaptergate.decide.approval import ApprovalOutcome, approval_outcome
from adaptergate.decide.rules import (
    build_slice_index,
    decide_stat,
    decide_threshold,
    stat_rejections,
    threshold_rejections,
)
from adaptergate.manifest.model import ApprovalPolicy
from adaptergate.models import GateConfig, GateDecision, Rejection
from adaptergate.pipeline.gate import GateRequest, build_decision, prepare
from adaptergate.pipeline.job import apply_approval
from adaptergate.report import RENDER_FORMATS, infer_rejections_from_prose, print_human, rejections, render

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)
N = 60
REFUND = np.arange(N) % 5 == 0  # 12 queries
TAGS = [["intent=refund" if r else "intent=other", f"lang={'en' if i % 2 else 'de'}"] for i, r in enumerate(REFUND)]


def _decide(tmp_path: Path, b, c, *, slices=None, baseline: str | None = "base", **cfg) -> GateDecision:
    slices = slices if slices is not None else TAGS
    holdout = tmp_path / "h.jsonl"
    holdout.write_text("".join(
        json.dumps({"id": f"q{i}", "prompt": f"question {i}", "slices": s}) + "\n" for i, s in enumerate(slices)
    ))
    config = GateConfig(**{"require_calibration": baseline is not None, **cfg})
    request = GateRequest(tenant="t", candidate="cand", baseline=baseline, holdout_path=holdout,
                          scorer_spec="x:y", config=config)
    full, sample = prepare(request)
    return build_decision(request, full, sample, np.asarray(b, float), np.asarray(c, float), now=NOW)


def _ones() -> np.ndarray:
    return np.ones(N)


def _refund_broken() -> np.ndarray:
    c = _ones()
    c[REFUND] = 0.0
    return c


def _prose(d: GateDecision) -> list[str]:
    return [d.reason, *d.reasons]


def _check_lines(d: GateDecision) -> None:
    """Each record quotes lines the decision prints, and exists iff the decision rejects."""
    assert d.rejected_by is not None
    assert d.accepted == (d.rejected_by == [])
    for r in d.rejected_by:
        assert r.lines and all(line in _prose(d) for line in r.lines)


# --------------------------------------------------------------------------
# Every rule's record, threshold rule
# --------------------------------------------------------------------------


def test_threshold_aggregate(tmp_path):
    d = _decide(tmp_path, _ones(), _ones() * 0.5, decision="threshold")
    assert [r.rule for r in d.rejected_by] == ["aggregate"]
    assert d.rejected_by[0].lines == [d.reasons[0]] and d.rejected_by[0].lines[0].startswith("aggregate")
    _check_lines(d)


def test_threshold_slice_names_every_violating_slice_worst_first(tmp_path):
    c = _refund_broken()
    c[(np.arange(N) % 2 == 0) & ~REFUND] = 0.9  # lang=de dips too, less
    d = _decide(tmp_path, _ones(), c, decision="threshold", epsilon=0.3, slice_epsilon=0.25)
    [r] = d.rejected_by
    assert r.rule == "slice" and r.slices == ["intent=refund", "lang=de"]
    assert r.slices == [s.slice_tag for s in d.slice_attributions if s.violates]
    assert r.lines == [d.reasons[0]] and "(1 more slice(s) too)" in r.lines[0]
    _check_lines(d)


def test_threshold_strict_counts_the_broken_queries(tmp_path):
    c = _ones()
    c[[3, 7]] = 0.0
    d = _decide(tmp_path, _ones(), c, decision="threshold", epsilon=0.5, strict=True)
    [r] = d.rejected_by
    assert r == Rejection(rule="strict", n_queries=2, lines=[d.reasons[0]])
    _check_lines(d)


def test_threshold_every_rule_at_once_in_reason_order(tmp_path):
    d = _decide(tmp_path, _ones(), _refund_broken(), decision="threshold", slice_epsilon=0.1, strict=True)
    assert [r.rule for r in d.rejected_by] == ["aggregate", "slice", "strict"]
    assert [line for r in d.rejected_by for line in r.lines] == d.reasons
    _check_lines(d)


@pytest.mark.parametrize("rule", ["threshold", "stat"])
def test_accepted_records_no_rejection(tmp_path, rule):
    d = _decide(tmp_path, _ones(), _ones(), decision=rule, slice_epsilon=0.1, strict=True)
    assert d.accepted and d.rejected_by == []


def test_no_baseline_records_no_rejection(tmp_path):
    d = _decide(tmp_path, np.zeros(N), _ones() * 0.7, baseline=None)
    assert d.accepted and d.rejected_by == []


# --------------------------------------------------------------------------
# Every rule's record, statistical rule
# --------------------------------------------------------------------------


def test_stat_aggregate(tmp_path):
    d = _decide(tmp_path, _ones(), np.where(np.arange(N) % 2, 0.0, 1.0))
    assert d.verdict == "FAIL"
    [r] = d.rejected_by
    assert r.rule == "aggregate" and r.lines == [d.evidence.statement]
    _check_lines(d)


def test_stat_slice(tmp_path):
    d = _decide(tmp_path, _ones(), _refund_broken(), epsilon=0.5, slice_epsilon=0.25)  # lang=* drop 0.2
    assert d.verdict == "FAIL" and d.evidence.verdict != "FAIL"
    [r] = d.rejected_by
    failing = [s for s in d.slice_attributions if s.evidence is not None and s.evidence.verdict == "FAIL"]
    assert r.rule == "slice" and r.slices == [s.slice_tag for s in failing] == ["intent=refund"]
    assert r.lines == [s.evidence.statement for s in failing]
    _check_lines(d)


def test_stat_strict(tmp_path):
    c = _ones()
    c[5] = 0.0
    d = _decide(tmp_path, _ones(), c, epsilon=0.5, strict=True)
    assert d.verdict == "FAIL"
    assert [(r.rule, r.n_queries) for r in d.rejected_by] == [("strict", 1)]
    _check_lines(d)


def test_stat_inconclusive_policy_names_the_unsettled_slices(tmp_path):
    c = _ones()
    c[np.flatnonzero(REFUND)[:2]] = 0.0  # refund: 2 of 12 broke, not enough to settle
    d = _decide(tmp_path, _ones(), c, slice_epsilon=0.1, on_inconclusive="reject")
    assert d.verdict == "INCONCLUSIVE" and not d.accepted
    [r] = d.rejected_by
    assert r.rule == "inconclusive-policy" and r.slices == ["intent=refund"]
    unsettled = next(s for s in d.slice_attributions if s.slice_tag == "intent=refund")
    assert unsettled.evidence.statement in r.lines
    _check_lines(d)
    accepting = _decide(tmp_path, _ones(), c, slice_epsilon=0.1, on_inconclusive="accept")
    assert accepting.accepted and accepting.rejected_by == []


def test_decide_functions_are_pure_over_arrays():
    index = build_slice_index(TAGS)
    b, c = _ones(), _refund_broken()
    cfg = GateConfig(decision="threshold", slice_epsilon=0.25, strict=True)
    core = decide_threshold(b, c, index, cfg)
    assert [(r.rule, r.slices, r.n_queries, r.lines) for r in threshold_rejections(core, index.tags)] == [
        ("aggregate", [], None, []), ("slice", ["intent=refund"], None, []), ("strict", [], 12, []),
    ]
    stat = decide_stat(b, c, index, GateConfig(slice_epsilon=0.25))
    assert [(r.rule, r.slices) for r in stat_rejections(stat, index.tags, GateConfig(slice_epsilon=0.25))] == [
        ("aggregate", []), ("slice", ["intent=refund"])]
    assert threshold_rejections(decide_threshold(b, b, index, cfg), index.tags) == []


# --------------------------------------------------------------------------
# The approval rule, a pure function
# --------------------------------------------------------------------------


def _passing(tmp_path, rule="threshold") -> GateDecision:
    c = _ones()
    c[:6] = 0.5  # mean 0.95
    return _decide(tmp_path, _ones(), c, decision=rule, epsilon=0.1)


@pytest.mark.parametrize("rule", ["threshold", "stat"])
def test_approval_floor_rejects_and_says_so(tmp_path, rule):
    d = _passing(tmp_path, rule)
    assert d.accepted
    before = d.model_copy(deep=True)
    out = approval_outcome(d, ApprovalPolicy(floor=0.99, auto_approve=0.995))
    assert d == before  # the rule only reads the decision
    assert isinstance(out, ApprovalOutcome) and out.band == "reject" and not out.accepted
    assert out.verdict == ("REJECTED" if rule == "threshold" else d.verdict)  # stat verdict is the statistics
    assert out.reason.startswith("REJECTED: the candidate's score 0.950 is below the tenant's approval floor 0.990")
    assert out.reasons == [d.reason, *d.reasons]
    assert out.rejection == Rejection(rule="approval-floor", lines=[out.reason])

    apply_approval(d, ApprovalPolicy(floor=0.99, auto_approve=0.995))
    assert (d.approval, d.accepted, d.verdict, d.reason, d.reasons) == (
        out.band, out.accepted, out.verdict, out.reason, out.reasons)
    assert d.rejected_by == [out.rejection]


def test_approval_review_and_approve_bands(tmp_path):
    d = _passing(tmp_path)
    review = approval_outcome(d, ApprovalPolicy(floor=0.5, auto_approve=0.99))
    assert review.band == "review" and review.accepted and review.rejection is None
    assert review.reason == d.reason and review.reasons == [
        *d.reasons,
        "needs a human review: the candidate's score 0.950 is between the floor and the auto-approve threshold 0.990",
    ]
    approve = approval_outcome(d, ApprovalPolicy(floor=0.5, auto_approve=0.9))
    assert (approve.band, approve.accepted, approve.reason, approve.reasons, approve.rejection) == (
        "approve", True, d.reason, d.reasons, None)


def test_approval_of_a_rejected_candidate_changes_nothing_but_the_band(tmp_path):
    d = _decide(tmp_path, _ones(), _ones() * 0.5, decision="threshold")
    out = approval_outcome(d, ApprovalPolicy(floor=0.0))
    assert (out.band, out.accepted, out.verdict, out.reason, out.reasons, out.rejection) == (
        "reject", False, d.verdict, d.reason, d.reasons, None)
    apply_approval(d, ApprovalPolicy(floor=0.0))
    assert d.approval == "reject" and [r.rule for r in d.rejected_by] == ["aggregate"]


# --------------------------------------------------------------------------
# Rendering reads the records; old records still render
# --------------------------------------------------------------------------


def _junit_aggregate(d: GateDecision) -> ET.Element | None:
    root = ET.fromstring(render(d, "junit"))
    case = next(c for c in root.iter("testcase") if c.get("name") == "aggregate")
    return case.find("failure")


def test_rendering_reads_the_records_not_the_prose(tmp_path):
    # A slice whose tag starts with "strict": its statement reads like strict mode's.
    tags = [["strict-mode=on" if r else "strict-mode=off"] for r in REFUND]
    d = _decide(tmp_path, _ones(), _refund_broken(), slices=tags, epsilon=0.5, slice_epsilon=0.1,
                on_inconclusive="reject")
    assert [r.rule for r in d.rejected_by] == ["slice"] and d.reasons[-1].startswith("strict-mode=on")
    assert _junit_aggregate(d) is None  # only the slice failed
    # The prose is the same; the records say strict mode rejected: the report follows the records.
    strict = d.model_copy(update={"rejected_by": [Rejection(rule="strict", n_queries=1, lines=["strict: one"])]})
    failure = _junit_aggregate(strict)
    assert failure is not None and failure.get("type") == "strict" and failure.get("message") == "strict: one"


def test_threshold_junit_types_from_the_records(tmp_path):
    both = _decide(tmp_path, _ones(), _refund_broken(), decision="threshold", slice_epsilon=0.1, strict=True)
    failure = _junit_aggregate(both)
    assert failure.get("type") == "strict"
    assert failure.get("message") == "; ".join([both.reasons[0], both.reasons[2]])  # not the slice line
    only_slice = _decide(tmp_path, _ones(), _refund_broken(), decision="threshold", epsilon=0.5, slice_epsilon=0.1)
    assert _junit_aggregate(only_slice) is None


def _old(d: GateDecision) -> GateDecision:
    """``d`` as an audit log written before ``rejected_by`` holds it."""
    raw = json.loads(d.compact().to_json())
    del raw["rejected_by"]
    old = GateDecision.model_validate(raw)
    assert old.rejected_by is None
    return old


def _everything(d: GateDecision) -> dict[str, str]:
    from io import StringIO

    from rich.console import Console

    out = {fmt: render(d, fmt) for fmt in RENDER_FORMATS if fmt != "json"}
    buf = StringIO()
    print_human(d, console=Console(file=buf, width=120), err_console=Console(file=buf, width=120))
    out["human"] = buf.getvalue()
    return out


@pytest.mark.parametrize("rule", ["threshold", "stat"])
@pytest.mark.parametrize("case", ["aggregate", "slice", "strict", "all", "floor", "inconclusive"])
def test_records_and_the_compatibility_inference_agree(tmp_path, rule, case):
    """For what the gate writes, reports of a record with and without ``rejected_by`` are identical."""
    c = {"aggregate": _ones() * 0.5, "slice": _refund_broken(), "all": _refund_broken()}.get(case, _ones())
    cfg: dict = {"decision": rule, "epsilon": 0.05 if case in ("aggregate", "all") else 0.5, "slice_epsilon": 0.1}
    if case == "strict":
        c = _ones()
        c[4] = 0.0
    if case in ("strict", "all"):
        cfg["strict"] = True
    if case == "inconclusive":
        c = _ones()
        c[np.flatnonzero(REFUND)[:2]] = 0.0
        cfg.update(epsilon=0.02, on_inconclusive="reject")
    d = _decide(tmp_path, _ones(), c, **cfg)
    if case == "floor":
        c[:6] = 0.5  # mean 0.95: passes the gate, not the floor
        d = _decide(tmp_path, _ones(), c, **cfg)
        apply_approval(d, ApprovalPolicy(floor=0.99))
    assert not d.accepted
    new = d.compact()
    assert _everything(new) == _everything(_old(d))
    assert [r.rule for r in infer_rejections_from_prose(_old(d))]  # something rejected


def test_a_054_record_renders(tmp_path):
    d = GateDecision.model_validate_json((FIXTURES / "recipes054" / "decision.json").read_text())
    assert d.schema_version == 2 and d.rejected_by is None and not d.accepted
    assert rejections(d) == infer_rejections_from_prose(d) != []
    for text in _everything(d).values():
        assert text
    assert _junit_aggregate(d) is not None or any(s.violates for s in d.slice_attributions)


def test_compatibility_inference_reproduces_the_old_reading():
    base = dict(tenant_id="t", candidate_id="c", baseline_id="b", holdout_size=10, score_baseline=1.0,
                timestamp="2024-01-01T00:00:00+00:00", epsilon=0.02, schema_version=2)
    agg = GateDecision(accepted=False, score_candidate=0.5, delta=-0.5, reason="REJECTED: aggregate dropped", **base)
    assert [r.rule for r in infer_rejections_from_prose(agg)] == ["aggregate"]
    strict = GateDecision(accepted=False, score_candidate=1.0, delta=0.0, reason="REJECTED: strict mode: 1 query",
                          reasons=["strict mode: 1 query that passed now fails"], **base)
    assert [(r.rule, r.lines) for r in infer_rejections_from_prose(strict)] == [
        ("strict", ["strict mode: 1 query that passed now fails"])]
    assert infer_rejections_from_prose(agg.model_copy(update={"accepted": True})) == []


def test_records_round_trip_through_json_and_the_audit_record(tmp_path):
    d = _decide(tmp_path, _ones(), _refund_broken(), decision="threshold", slice_epsilon=0.1, strict=True)
    again = GateDecision.model_validate_json(d.to_json())
    assert again.rejected_by == d.rejected_by == d.compact().rejected_by
    keys = list(json.loads(d.to_json()))
    assert keys.index("rejected_by") == keys.index("reasons") + 1
