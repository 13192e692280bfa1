"""``--format json`` carries every warning the human report prints (issue 15).

The human report decides some warnings when it renders (a stale holdout, against
``--staleness-threshold-days``; suspected duplicate slice tags; malformed slices):
the JSON writer adds them to ``warnings``, after the decision's own.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from adaptergate.models import DuplicateSlices, GateConfig, GateDecision, GateWarning
from adaptergate.pipeline.gate import GateRequest, run_gate
from adaptergate.report import print_human, render


def _decision(**kw) -> GateDecision:
    base = dict(
        accepted=True, tenant_id="acme", candidate_id="v2", baseline_id="v1", holdout_size=40,
        score_baseline=0.8, score_candidate=0.8, delta=0.0, epsilon=0.02, reason="ACCEPTED: flat.",
        timestamp="2026-01-01T00:00:00+00:00",
    )
    return GateDecision(**{**base, **kw})


def _human_warnings(d: GateDecision, threshold: int) -> int:
    out, err = io.StringIO(), io.StringIO()
    print_human(d, console=Console(file=out, width=120), err_console=Console(file=err, width=120),
                staleness_threshold_days=threshold)
    return err.getvalue().count("Warning:")


def test_json_has_every_warning_the_human_report_prints():
    d = _decision(
        warnings=[GateWarning(code="bare-slice-tag", message="h.jsonl:3: slice tag 'vip' is not 'key=value'")],
        malformed_slice_queries=2,
        duplicate_slice_details=[DuplicateSlices(tags=["lang=en", "lang=EN"], reason="differ only in case")],
        suspected_duplicate_slices=[["lang=en", "lang=EN"]],
        staleness_days=337,
    )
    doc = json.loads(render(d, "json", staleness_threshold_days=30))
    codes = [w["code"] for w in doc["warnings"]]
    assert codes == ["bare-slice-tag", "malformed-slices", "duplicate-slices", "stale-holdout"]
    assert len(codes) == _human_warnings(d, 30) == 4
    stale = doc["warnings"][-1]["message"]
    assert "337 days" in stale and "threshold: 30" in stale
    assert "lang=en ↔ lang=EN" in doc["warnings"][2]["message"]
    assert doc["staleness_days"] == 337
    # the threshold is the renderer's: above the holdout's age, no staleness warning either way
    doc = json.loads(render(d, "json", staleness_threshold_days=400))
    assert [w["code"] for w in doc["warnings"]] == ["bare-slice-tag", "malformed-slices", "duplicate-slices"]
    assert _human_warnings(d, 400) == 3
    # the decision itself is unchanged (the warnings went on a copy)
    assert [w.code for w in d.warnings] == ["bare-slice-tag"]


def test_json_without_render_time_warnings_is_the_decision_itself():
    d = _decision(staleness_days=3)
    assert render(d, "json") == d.to_json(indent=2)
    assert _human_warnings(d, 30) == 0


def test_gated_stale_holdout_warns_in_json(tmp_path: Path, monkeypatch):
    """End to end through run_gate: the holdout's newest query is a year old."""
    rows = [
        {"id": f"q{i}", "prompt": f"question {i}", "slices": ["intent=a" if i % 2 else "intent=b"],
         "added_at": "2025-01-01T00:00:00+00:00"}
        for i in range(40)
    ]
    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "flat_scorer.py").write_text("def score(adapter_id, query):\n    return 0.5\n")
    monkeypatch.chdir(tmp_path)
    req = GateRequest(tenant="acme", candidate="v2", baseline="v1", holdout_path=path,
                      scorer_spec="flat_scorer:score", config=GateConfig())
    d = run_gate(req)
    assert d.staleness_days is not None and d.staleness_days > 30
    doc = json.loads(render(d, "json"))
    assert [w["code"] for w in doc["warnings"]] == ["stale-holdout"]
    assert len(doc["warnings"]) == _human_warnings(d, 30)
