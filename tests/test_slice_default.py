"""No silent collapse: under the statistical rule slices are gated by default.

``--slice-epsilon`` defaults to 0.10 under ``--decision stat`` (the default rule) in
the CLI, the Action, manifests and the Python API; ``off`` gates the aggregate only.
Under ``--decision threshold`` / ``ADAPTERGATE_DECISION=threshold`` every default is
adaptergate 0.5.4's: no slice gating unless a margin is given
(``tests/test_compat054.py`` holds the decisions to 0.5.4's own outputs).
"""

from __future__ import annotations

import json

import pytest

from adaptergate.cli import main
from adaptergate.errors import UsageError
from adaptergate.models import DEFAULT_SLICE_EPSILON, GateConfig
from adaptergate.pipeline.options import GateOptions, options_from_strings
from adaptergate.pipeline.settings import with_defaults

COLLAPSE_SCORER = '''
def score(adapter_id, query):
    """Equal everywhere, except that the candidate breaks every query of intent=refund."""
    if adapter_id == "candidate" and "intent=refund" in query["slices"]:
        return 0.0
    return 1.0
'''


@pytest.fixture
def collapse(tmp_path, monkeypatch):
    """300 queries; a 12-query slice collapses 1.000 -> 0.000 (the aggregate moves by 0.04)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADAPTERGATE_DECISION", raising=False)
    monkeypatch.delenv("ADAPTERGATE_CONFIG", raising=False)
    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    rows = [{"id": f"q{i}", "prompt": f"question {i}",
             "slices": ["intent=refund" if i < 12 else f"intent=other{i % 8}", f"lang={'en' if i % 2 else 'de'}"]}
            for i in range(300)]
    (tmp_path / "h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "collapse_scorer.py").write_text(COLLAPSE_SCORER, encoding="utf-8")
    import sys

    sys.modules.pop("collapse_scorer", None)
    return tmp_path


def gate(capsys, *extra: str) -> tuple[int, dict]:
    code = main(["gate", "--tenant", "acme", "--candidate", "candidate", "--baseline", "baseline",
                 "--holdout", "h.jsonl", "--scorer", "collapse_scorer:score", "--epsilon", "0.05",
                 "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_with_defaults():
    assert with_defaults({}) == {"slice_epsilon": DEFAULT_SLICE_EPSILON} and DEFAULT_SLICE_EPSILON == 0.10
    assert with_defaults({"decision": "stat"})["slice_epsilon"] == 0.10
    assert "slice_epsilon" not in with_defaults({"decision": "threshold"})  # 0.5.4's default: none
    assert with_defaults({"slice_epsilon": "off"}) == {"slice_epsilon": None}
    assert with_defaults({"slice_epsilon": "OFF", "decision": "threshold"})["slice_epsilon"] is None
    assert with_defaults({"slice_epsilon": 0.2})["slice_epsilon"] == 0.2
    assert with_defaults({"decision": "threshold", "slice_epsilon": 0.2})["slice_epsilon"] == 0.2
    assert GateConfig().slice_epsilon is None  # the model itself: a recorded decision reads back as written


def test_stat_rule_gates_slices_by_default(collapse, capsys):
    code, d = gate(capsys)
    assert code == 1 and d["verdict"] == "FAIL" and d["config"]["slice_epsilon"] == 0.10
    assert d["driver_slice_tag"] == "intent=refund"
    assert any(r["rule"] == "slice" for r in d["rejected_by"]), d["rejected_by"]


def test_slice_epsilon_off_gates_the_aggregate_only(collapse, capsys):
    code, d = gate(capsys, "--slice-epsilon", "off")
    assert code == 0 and d["accepted"] is True and d["config"]["slice_epsilon"] is None
    code, d = gate(capsys, "--slice-epsilon", "0.5")  # a margin given wins over the default
    assert d["config"]["slice_epsilon"] == 0.5


def test_bad_slice_epsilon_is_a_usage_error(collapse, capsys):
    code = main(["gate", "--tenant", "acme", "--candidate", "c", "--baseline", "b", "--holdout", "h.jsonl",
                 "--scorer", "collapse_scorer:score", "--slice-epsilon", "tenth"])
    err = capsys.readouterr().err
    assert code == 2 and "'tenth' is not a number or 'off'" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_threshold_rule_keeps_054_defaults(collapse, capsys, monkeypatch, how):
    extra = ("--decision", "threshold") if how == "flag" else ()
    if how == "env":
        monkeypatch.setenv("ADAPTERGATE_DECISION", "threshold")
    code, d = gate(capsys, *extra)
    assert code == 0 and d["accepted"] is True  # as 0.5.4: the aggregate dropped 0.04 < 0.05
    assert d["config"]["decision"] == "threshold" and d["config"]["slice_epsilon"] is None
    code, d = gate(capsys, *extra, "--slice-epsilon", "0.10")
    assert code == 1 and d["config"]["slice_epsilon"] == 0.10


def test_settings_file_rule_and_margin_are_respected(collapse, capsys):
    (collapse / "settings.json").write_text(json.dumps(
        {"schema_version": 1, "tenants": {"acme": {"decision": "threshold"}}}), encoding="utf-8")
    code, d = gate(capsys, "--config", "settings.json")
    assert code == 0 and d["config"]["slice_epsilon"] is None
    (collapse / "settings.json").write_text(json.dumps(
        {"schema_version": 1, "tenants": {"acme": {"slice_epsilon": 0.3}}}), encoding="utf-8")
    code, d = gate(capsys, "--config", "settings.json")
    assert d["config"]["slice_epsilon"] == 0.3


def test_python_api_default(collapse):
    import adaptergate

    d = adaptergate.run_gate(tenant="acme", holdout="h.jsonl", candidate="candidate", baseline="baseline",
                             scorer="collapse_scorer:score", epsilon=0.05)
    assert d.accepted is False and d.config.slice_epsilon == 0.10
    d = adaptergate.run_gate(tenant="acme", holdout="h.jsonl", candidate="candidate", baseline="baseline",
                             scorer="collapse_scorer:score", epsilon=0.05, slice_epsilon="off")
    assert d.accepted is True and d.config.slice_epsilon is None


def test_action_input_strings():
    assert options_from_strings({"slice_epsilon": "off"}).slice_epsilon == "off"
    assert options_from_strings({"slice_epsilon": " Off "}).slice_epsilon == "off"
    assert options_from_strings({"slice_epsilon": "0.1"}).slice_epsilon == 0.1
    assert options_from_strings({"slice_epsilon": ""}) == GateOptions()
    with pytest.raises(UsageError, match=r"input 'slice-epsilon' must be a number or off, got 'lots'"):
        options_from_strings({"slice_epsilon": "lots"})
    with pytest.raises(UsageError, match=r"input 'decision' must be one of stat, threshold"):
        options_from_strings({"decision": "vote"})


def test_recipes_verify_regates_without_slices_when_the_rejection_had_none(collapse, capsys):
    from adaptergate.recipes import read_decision, settings_of

    code, _ = gate(capsys, "--slice-epsilon", "off", "--epsilon", "0.01")
    (collapse / "d.json").write_text(json.dumps(_), encoding="utf-8")
    settings = settings_of(read_decision(collapse / "d.json"))
    assert settings["slice_epsilon"] == "off" and with_defaults(settings)["slice_epsilon"] is None


@pytest.mark.parametrize("text, expected", [("off", None), ("'off'", None), ("no", None), ("0.25", 0.25), (None, 0.10)])
def test_manifest_gate_slice_epsilon(text, expected):
    """A manifest's gate.slice_epsilon: a margin, off (YAML's unquoted off is false: still off, never a
    margin of 0), or unset (the stat rule's default)."""
    from adaptergate.manifest.model import parse_manifest

    gate_block = f"{{slice_epsilon: {text}}}" if text is not None else "{}"
    m = parse_manifest(
        "schema_version: 1\ntenants:\n  acme:\n    adapter: {version: 1.0.0, path: a, sha256: " + "a" * 64 + "}\n"
        f"    base_model: {{id: b}}\n    holdout: h.jsonl\n    gate: {gate_block}\n", "adaptergate.yaml")
    value = m.tenants["acme"].gate.slice_epsilon
    assert with_defaults({"slice_epsilon": value} if value is not None else {})["slice_epsilon"] == expected
