"""The CLI end to end: exit codes, one-line errors, formats, audit and replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from adaptergate.cli.app import main
from adaptergate.examples import EXAMPLE_HOLDOUT

MOCK = "adaptergate.examples.mock_scorer:score"
BAD, GOOD = "adapter_bad_v19", "adapter_good_v18"


def gate_args(holdout=EXAMPLE_HOLDOUT, *extra, scorer=MOCK, candidate=BAD, baseline=GOOD):
    args = ["gate", "--tenant", "acme", "--candidate", candidate]
    if baseline is not None:
        args += ["--baseline", baseline]
    return args + ["--holdout", str(holdout), "--scorer", scorer, *extra]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- verdicts


def test_bundled_example_rejects_with_billing_driver(capsys):
    code, out, err = run(gate_args(EXAMPLE_HOLDOUT, "--format", "json", "--slice-epsilon", "0.10"), capsys)
    assert code == 1
    d = json.loads(out)
    assert d["accepted"] is False and d["verdict"] == "FAIL" and d["decision_rule"] == "stat"
    assert d["driver_slice_tag"] == "intent=billing_dispute"
    assert d["schema_version"] == 3


def test_accepted_exit_zero(capsys):
    code, out, _ = run(gate_args(EXAMPLE_HOLDOUT, "--format", "json", candidate="adapter_good_v20"), capsys)
    assert code == 0 and json.loads(out)["accepted"] is True


def test_demo_runs_and_exits_zero(capsys):
    code, out, _ = run(["demo", "mock"], capsys)
    assert code == 0
    assert "REJECTED" in out and "DRIVER SLICE: intent=billing_dispute" in out


def test_demo_silent_contrasts_both_rules(capsys):
    code, out, _ = run(["demo", "silent"], capsys)
    assert code == 0
    assert out.index("ACCEPTED") < out.index("REJECTED")
    assert "intent=gdpr_erasure" in out


@pytest.mark.parametrize("fmt", ["human", "json", "pr-comment", "markdown", "junit"])
def test_every_format_renders(fmt, capsys):
    code, out, _ = run(gate_args(EXAMPLE_HOLDOUT, "--format", fmt, "--slice-epsilon", "0.1"), capsys)
    assert code == 1
    # markdown escapes '_' (it renders as billing_dispute)
    assert ("billing\\_dispute" if fmt in ("pr-comment", "markdown") else "billing_dispute") in out
    if fmt == "json":
        json.loads(out)
    if fmt == "junit":
        root = ET.fromstring(out)
        assert int(root.attrib["failures"]) >= 1
    if fmt == "pr-comment":
        assert out.startswith("<!-- adaptergate:report")


def test_quiet_is_json(capsys):
    code, out, _ = run(gate_args(EXAMPLE_HOLDOUT, "--quiet"), capsys)
    assert code == 1 and json.loads(out)["tenant_id"] == "acme"


def test_json_never_contains_nan(capsys, tmp_path):
    # every score 0.0 on both sides: deltas are 0, shares undefined -> no NaN anywhere
    (tmp_path / "zero_scorer.py").write_text("def score(a, q):\n    return 0.0\n")
    os.chdir(tmp_path)
    code, out, _ = run(gate_args(EXAMPLE_HOLDOUT, "--format", "json", scorer="zero_scorer:score"), capsys)
    assert code == 0
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


# ------------------------------------------------------- audit and replay


def test_audit_and_replay_round_trip(tmp_path, capsys):
    audit, replay, rows = tmp_path / "audit.jsonl", tmp_path / "rejected.jsonl", tmp_path / "rows.jsonl"
    common = ["--audit-log", audit, "--replay-path", replay, "--format", "json"]
    assert run(gate_args(EXAMPLE_HOLDOUT, *common, candidate="adapter_bad_v19"), capsys)[0] == 1
    assert run(gate_args(EXAMPLE_HOLDOUT, *common, candidate="adapter_good_v20"), capsys)[0] == 0
    assert run(gate_args(EXAMPLE_HOLDOUT, *common, "--rows-out", rows, candidate="adapter_bad_v21"), capsys)[0] == 1
    records = [json.loads(x) for x in audit.read_text().splitlines()]
    assert len(records) == 3 and all(r["schema_version"] == 3 for r in records)
    assert all(r["per_query"] == [] for r in records)  # compact: rows live elsewhere
    assert len(rows.read_text().splitlines()) == 48
    code, out, _ = run(["replay", "list", "--tenant", "acme", "--replay-path", replay], capsys)
    listed = [json.loads(x) for x in out.splitlines()]
    assert [r["candidate"] for r in listed] == ["adapter_bad_v19", "adapter_bad_v21"]
    assert [r["index"] for r in listed] == [2, 1]
    # --index 2 is the older rejection (0.5.4 always showed the newest)
    code, out, _ = run(["replay", "show", "--tenant", "acme", "--replay-path", replay, "--index", "2",
                        "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["candidate_id"] == "adapter_bad_v19"
    code, out, _ = run(["replay", "show", "--tenant", "acme", "--replay-path", replay, "--index", "1",
                        "--format", "json"], capsys)
    assert json.loads(out)["candidate_id"] == "adapter_bad_v21"
    code, _, err = run(["replay", "show", "--tenant", "acme", "--replay-path", replay, "--index", "3"], capsys)
    assert code == 2 and "out of range" in err


def test_scorer_failure_goes_to_audit_not_console(tmp_path, capsys, monkeypatch):
    (tmp_path / "boom_scorer.py").write_text("def score(a, q):\n    raise KeyError('gold')\n")
    monkeypatch.chdir(tmp_path)
    audit = tmp_path / "audit.jsonl"
    code, out, err = run(gate_args(EXAMPLE_HOLDOUT, "--audit-log", audit, scorer="boom_scorer:score"), capsys)
    assert code == 3
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    rec = json.loads(audit.read_text())
    assert rec["kind"] == "error" and rec["exit_code"] == 3
    assert "Traceback" in rec["traceback"] and "KeyError" in rec["traceback"]


# ------------------------------------------------------ bad input table


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


SCORERS = {
    "nan_scorer": "def score(a, q):\n    return float('nan')\n",
    "inf_scorer": "def score(a, q):\n    return float('inf')\n",
    "str_scorer": "def score(a, q):\n    return '0.8'\n",
    "range_scorer": "def score(a, q):\n    return 1.5\n",
    "none_scorer": "def score(a, q):\n    return None\n",
    "raise_scorer": "def score(a, q):\n    raise ValueError('model exploded')\n",
    "syntax_scorer": "def score(a, q)\n    return 1\n",
    "importerr_scorer": "import not_a_real_dependency_xyz\ndef score(a, q):\n    return 1.0\n",
    "atimport_scorer": "raise RuntimeError('no GPU')\n",
    "batchlen_scorer": "def score(a, q):\n    return 1.0\ndef score_batch(a, qs):\n    return [1.0]\n",
}

BAD_HOLDOUTS = {
    "malformed.jsonl": '{"id": "a", "prompt": "x"}\n{not json\n',
    "nonobject.jsonl": '[1, 2]\n',
    "noid.jsonl": '{"prompt": "x"}\n',
    "dupid.jsonl": '{"id": "a"}\n{"id": "a"}\n',
    "strslices.jsonl": '{"id": "a", "slices": "intent=x"}\n',
    "intslices.jsonl": '{"id": "a", "slices": [3]}\n',
    "notutf8.jsonl": b'{"id": "a", "prompt": "caf\xe9"}\n',
    "empty.jsonl": "",
    "othertenant.jsonl": '{"id": "a", "tenant": "globex"}\n',
    "small.jsonl": "".join(f'{{"id": "q{i}"}}\n' for i in range(5)),
    "huge.jsonl": '{"id": "a", "prompt": "' + "x" * 3000 + '"}\n',
}


def _cases():
    ok = str(EXAMPLE_HOLDOUT)
    cases = [
        ("empty baseline", gate_args(ok, baseline=""), 2, "--baseline is empty"),
        ("no baseline", gate_args(ok, baseline=None), 2, "no --baseline"),
        ("same adapter", gate_args(ok, baseline=BAD), 2, "same adapter"),
        ("unknown format", gate_args(ok, "--format", "xml"), 2, "--format"),
        ("missing option", ["gate", "--tenant", "acme"], 2, "Missing option"),
        ("unknown option", gate_args(ok, "--frobnicate"), 2, "No such option"),
        ("bad epsilon", gate_args(ok, "--epsilon", "abc"), 2, "--epsilon"),
        ("negative epsilon", gate_args(ok, "--epsilon", "-0.1"), 2, "--epsilon"),
        ("nan epsilon", gate_args(ok, "--epsilon", "nan"), 2, "--epsilon"),
        ("zero sample", gate_args(ok, "--sample", "0"), 2, "--sample"),
        ("sample below minimum", gate_args(ok, "--sample", "5"), 2, "insufficient"),
        ("bad decision rule", gate_args(ok, "--decision", "vibes"), 2, "--decision"),
        ("holdout missing", gate_args("nope.jsonl"), 2, "not found"),
        ("holdout is a dir", gate_args("."), 2, "directory"),
        ("scorer no colon", gate_args(ok, scorer="mock_scorer"), 2, "module:function"),
        ("scorer missing module", gate_args(ok, scorer="no_such_module_xyz:score"), 2, "no module named"),
        ("scorer missing attr", gate_args(ok, scorer="adaptergate.examples.mock_scorer:nope"), 2, "no attribute"),
        ("replay index 0", ["replay", "show", "--tenant", "a", "--replay-path", "r.jsonl", "--index", "0"], 2, "--index"),
        ("import missing file", ["holdout", "import", "--tenant", "a", "--holdout", "h.jsonl",
                                 "--from-jsonl", "missing.jsonl"], 2, "not found"),
        ("add bad json", ["holdout", "add", "--tenant", "a", "--holdout", "h.jsonl", "{nope"], 2, "not valid JSON"),
        ("add bare slice string", ["holdout", "add", "--tenant", "a", "--holdout", "h.jsonl",
                                   '{"id": "q", "slices": "intent=x"}'], 2, "slices"),
        ("add non key=value tag", ["holdout", "add", "--tenant", "a", "--holdout", "h.jsonl",
                                   '{"id": "q", "slices": ["refund"]}'], 2, "key=value"),
        ("remove from missing", ["holdout", "remove", "--holdout", "h.jsonl", "q1"], 2, "not found"),
    ]
    for name, why in [
        ("nan_scorer", "NaN"), ("inf_scorer", "infinite"), ("str_scorer", "str"),
        ("range_scorer", "outside [0, 1]"), ("none_scorer", "NoneType"), ("raise_scorer", "model exploded"),
        ("syntax_scorer", "SyntaxError"), ("importerr_scorer", "not_a_real_dependency_xyz"),
        ("atimport_scorer", "no GPU"), ("batchlen_scorer", "1 scores for 48 queries"),
    ]:
        cases.append((name, gate_args(ok, scorer=f"{name}:score"), 3, why))
    for fname, why in [
        ("malformed.jsonl", "malformed.jsonl:2: invalid JSON"), ("nonobject.jsonl", "expected a JSON object"),
        ("noid.jsonl", "missing id"), ("dupid.jsonl", "duplicate id 'a' (first at line 1)"),
        ("strslices.jsonl", "slices must be a list"), ("intslices.jsonl", "slices[0] must be a string"),
        ("notutf8.jsonl", "invalid UTF-8"), ("empty.jsonl", "is empty"),
        ("othertenant.jsonl", "does not match --tenant"), ("small.jsonl", "insufficient"),
    ]:
        cases.append((fname, gate_args(fname), 2, why))
    cases.append(("huge line", gate_args("huge.jsonl", "--max-line-bytes", "1000"), 2, "over the 1,000-byte cap"))
    cases.append(("validate broken", ["holdout", "validate", "--holdout", "malformed.jsonl"], 2, "invalid JSON"))
    return cases


CASES = _cases()


@pytest.mark.parametrize("name,argv,code,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_or_3_with_one_clear_line(name, argv, code, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for mod, src in SCORERS.items():
        _write(tmp_path / f"{mod}.py", src)
    for fname, content in BAD_HOLDOUTS.items():
        _write(tmp_path / fname, content)
    got, out, err = run(argv, capsys)
    assert got == code, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert needle in err
    first = err.strip().splitlines()[0] if err.strip() else ""
    assert first.startswith(("adaptergate: error:", "Usage:")), err
    if first.startswith("adaptergate: error:"):
        # one line, plus located details for file problems only
        assert all(line.startswith("  ") for line in err.strip().splitlines()[1:]), err


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "raise_scorer2.py", SCORERS["raise_scorer"])
    code, _, err = run(["--debug", *gate_args(EXAMPLE_HOLDOUT, scorer="raise_scorer2:score")], capsys)
    assert code == 3 and "Traceback" in err and "model exploded" in err


def test_console_script_end_to_end(tmp_path):
    """The installed entry point, as a user runs it: exit code and stderr."""
    exe = Path(sys.executable).with_name("adaptergate")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "adaptergate.cli.app"]
    (tmp_path / "h.jsonl").write_text('{"id": "a"}\n{oops\n')
    p = subprocess.run(
        [*cmd, "gate", "--tenant", "t", "--candidate", "c", "--baseline", "b", "--holdout", "h.jsonl",
         "--scorer", MOCK], cwd=tmp_path, capture_output=True, text=True,
    )
    assert p.returncode == 2 and "h.jsonl:2: invalid JSON" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([*cmd, *gate_args(EXAMPLE_HOLDOUT, "--format", "json")], capture_output=True, text=True)
    assert p.returncode == 1 and json.loads(p.stdout)["accepted"] is False


def test_import_does_not_load_the_ml_stack():
    code = "import sys, adaptergate, adaptergate.cli.app; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------- holdout CLI


def test_holdout_commands(tmp_path, capsys):
    h = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"q{i}", "prompt": f"p {i}", "slices": [f"intent=i{i % 3}"]}) + "\n" for i in range(30))
        + '{"id": "q1", "prompt": "again"}\n{bad\n'
    )
    code, out, err = run(["holdout", "import", "--tenant", "acme", "--holdout", h, "--from-jsonl", src], capsys)
    assert code == 2
    assert json.loads(out) == {"imported": 30, "skipped": 2, "size": 30}
    assert "duplicate id 'q1'" in err and "src.jsonl:32: invalid JSON" in err
    code, out, _ = run(["holdout", "size", "--tenant", "acme", "--holdout", h], capsys)
    assert out.strip() == "30"
    code, out, _ = run(["holdout", "add", "--tenant", "acme", "--holdout", h, '{"id": "new", "slices": ["intent=x"]}'], capsys)
    assert code == 0 and json.loads(out) == {"added": "new", "size": 31}
    code, out, _ = run(["holdout", "remove", "--holdout", h, "new", "ghost"], capsys)
    assert code == 2 and json.loads(out) == {"removed": ["new"], "missing": ["ghost"], "size": 30}
    code, out, _ = run(["holdout", "validate", "--holdout", h], capsys)
    assert code == 0 and json.loads(out)["size"] == 30
    code, out, _ = run(["holdout", "stats", "--holdout", h, "--json"], capsys)
    stats = json.loads(out)
    assert stats["size"] == 30 and stats["slices_by_key"]["intent"] == {"i0": 10, "i1": 10, "i2": 10}
    code, out, _ = run(["holdout", "list", "--holdout", h], capsys)
    assert len(out.splitlines()) == 30 and json.loads(out.splitlines()[0])["query_id"] == "q0"


def test_strict_only_failure_is_not_called_statistical(tmp_path, capsys, monkeypatch):
    # one query out of 40 breaks: not significant, but --strict rejects it
    (tmp_path / "one_break.py").write_text(
        "def score(a, q):\n    return 0.0 if (a == 'v2' and q['id'] == 'q7') else 1.0\n"
    )
    h = tmp_path / "h.jsonl"
    h.write_text("".join(json.dumps({"id": f"q{i}"}) + "\n" for i in range(40)))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["gate", "--tenant", "t", "--candidate", "v2", "--baseline", "v1", "--holdout", h,
                        "--scorer", "one_break:score", "--strict", "--format", "json"], capsys)
    d = json.loads(out)
    assert code == 1 and d["verdict"] == "FAIL"
    assert d["reason"] == "REJECTED (FAIL): strict mode: 1 query that passed on the baseline now fails."
    assert d["evidence"]["verdict"] != "FAIL"
