"""The bundled demos: ``adaptergate demo classifier`` and ``adaptergate demo sql``.

The CLI tests check what a user sees; the others check that the story is
produced by the models and the scorer, not written into the demo.
"""

from __future__ import annotations

import re
import shlex
import tempfile

import numpy as np
import pytest

from adaptergate.demos import catalog as demos
from adaptergate.cli.app import main
from adaptergate.scoring.scorers import load_scorer


@pytest.fixture(autouse=True)
def _temp_in_tmp_path(tmp_path, monkeypatch):
    """The demos write their holdout under tempfile.mkdtemp(); keep it inside tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def run(argv, capsys):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def slice_mean(score_fn, adapter, rows, tag):
    picked = [r for r in rows if tag in r["slices"]]
    assert picked, tag
    return float(np.mean([score_fn(adapter, r) for r in picked]))


def printed_gate_command(out: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith("$ adaptergate gate "))
    return shlex.split(line[len("$ adaptergate "):])


# ------------------------------------------------------------------ the CLI


def test_demo_classifier_rejects_on_refund_slice(capsys):
    code, out, _ = run(["demo", "classifier"], capsys)
    assert code == 0
    assert out.startswith("Demo: ")
    assert "REJECTED" in out and "ACCEPTED" not in out
    assert "DRIVER SLICE: intent=refund " in out
    assert re.search(r"^\s+Pattern: .+ in \d+/\d+ failing", out, re.M)
    assert "intent=refund   ← driver" in out
    assert "(the gate exited 1" in out


def test_demo_sql_rejects_on_null_check_slice(capsys):
    code, out, _ = run(["demo", "sql"], capsys)
    assert code == 0
    assert out.startswith("Demo: ")
    assert "REJECTED" in out and "ACCEPTED" not in out
    assert "DRIVER SLICE: intent=null_check " in out
    assert "intent=null_check   ← driver" in out
    backend = "AST equality (sqlglot" if demos._sqlglot() is not None else "normalised string equality"
    assert f"scoring: {backend}" in out
    assert "IS NULL   (match)" in out and "= NULL;   (no match)" in out


def test_demo_sql_printed_gate_command_reproduces_the_verdict(capsys):
    _, out, _ = run(["demo", "sql"], capsys)
    code, out2, _ = run([*printed_gate_command(out), "--format", "json"], capsys)
    assert code == 1
    assert '"accepted": false' in out2 and '"verdict": "FAIL"' in out2


def test_demo_help_lists_all_three(capsys):
    code, out, _ = run(["demo", "--help"], capsys)
    assert code == 0
    for name in ("silent", "classifier", "sql"):
        assert re.search(rf"^\s+{name}\s", out, re.M), name


# ----------------------------------------------------------- the classifier


def test_support_data_is_deterministic_and_held_out():
    train, holdout = demos.build_support_data()
    train2, holdout2 = demos.build_support_data()
    assert train == train2 and holdout == holdout2
    assert len({r["id"] for r in holdout}) == len(holdout) >= 100
    assert not {r["text"] for r in train} & {r["prompt"] for r in holdout}
    intents = {r["gold"] for r in holdout}
    assert intents == set(demos._TEMPLATES)
    for intent in intents:
        for lang in ("en", "es"):
            assert any(r["slices"] == [f"intent={intent}", f"lang={lang}"] for r in holdout)


def test_contamination_touches_only_the_refund_intent():
    train, _ = demos.build_support_data()
    clean = [r["intent"] for r in train]
    dirty = demos.contaminated_labels(train)
    changed = [(a, b) for a, b in zip(clean, dirty) if a != b]
    assert changed and set(changed) == {("refund", "order_status")}
    assert len(changed) < len(train) // 10


def test_candidate_really_scores_lower_on_the_contaminated_slice():
    _, holdout = demos.build_support_data()
    base, cand = demos.BASELINE_ADAPTER, demos.CANDIDATE_ADAPTER
    refund_base = slice_mean(demos.score_intent, base, holdout, "intent=refund")
    refund_cand = slice_mean(demos.score_intent, cand, holdout, "intent=refund")
    assert refund_base >= 0.9
    assert refund_cand <= refund_base - 0.3
    # The other intents are (nearly) untouched: the damage is local.
    for intent in set(demos._TEMPLATES) - {"refund"}:
        tag = f"intent={intent}"
        assert slice_mean(demos.score_intent, cand, holdout, tag) >= slice_mean(
            demos.score_intent, base, holdout, tag
        ) - 0.1, intent


def test_naive_bayes_learns_its_labels():
    texts = ["refund my order", "money back please", "where is my order", "track my parcel"]
    labels = ["refund", "refund", "status", "status"]
    model = demos.NaiveBayesIntents().fit(texts, labels)
    assert model.predict(texts) == labels
    assert model.predict(["I want my money back", "track order"]) == ["refund", "status"]
    # Swapping the labels swaps the predictions: nothing is hard-coded.
    swapped = demos.NaiveBayesIntents().fit(texts, labels[::-1])
    assert swapped.predict(["money back please"]) == ["status"]


def test_intent_scorer_is_importable_with_a_batch_form():
    scorer = load_scorer("adaptergate.demos.catalog:score_intent")
    assert scorer.mode == "batch"
    _, holdout = demos.build_support_data()
    batch = scorer.batch(demos.BASELINE_ADAPTER, holdout[:10])
    assert batch == [scorer.single(demos.BASELINE_ADAPTER, q) for q in holdout[:10]]
    with pytest.raises(ValueError, match="unknown adapter"):
        scorer.single("nope", holdout[0])


# ------------------------------------------------------------------ the SQL


def test_sql_candidate_fails_only_null_checks():
    rows = demos.sql_holdout_rows()
    base, cand = demos.SQL_BASELINE, demos.SQL_CANDIDATE
    assert slice_mean(demos.score_sql, base, rows, demos.NULL_SLICE) == 1.0
    assert slice_mean(demos.score_sql, cand, rows, demos.NULL_SLICE) == 0.0
    for intent in ("filter", "aggregate", "join"):
        tag = f"intent={intent}"
        assert slice_mean(demos.score_sql, base, rows, tag) == 1.0, tag
        assert slice_mean(demos.score_sql, cand, rows, tag) == 1.0, tag


def test_sql_candidate_differs_in_form_everywhere_and_in_meaning_only_on_nulls():
    for question, _, intent in demos.SQL_QUESTIONS:
        a, b = demos.sql_adapter_v1(question), demos.sql_adapter_v2(question)
        assert a != b  # formatting differs on every query...
        assert ("= NULL" in b) == (intent == "null_check")  # ...the bug only where NULL matters
        assert ("IS NULL" in a) == (intent == "null_check")


@pytest.mark.parametrize("backend", ["string", "sqlglot"])
def test_sql_equal(backend, monkeypatch):
    if backend == "string":
        monkeypatch.setattr(demos, "_sqlglot", lambda: None)
        assert demos.sql_backend().startswith("normalised string equality")
    else:
        pytest.importorskip("sqlglot")
        assert demos.sql_backend().startswith("AST equality (sqlglot")
    gold = "SELECT * FROM customers WHERE email IS NULL"
    assert demos.sql_equal("select *\n  from customers\nwhere email is null;", gold)
    assert not demos.sql_equal("select * from customers where email = NULL;", gold)
    assert not demos.sql_equal("SELECT * FROM customers WHERE phone IS NULL", gold)
    assert not demos.sql_equal("SELECT * FROM customers WHERE", gold)


def test_sql_scorer_rejects_unknown_adapter():
    with pytest.raises(ValueError, match="unknown adapter"):
        demos.score_sql("nope", demos.sql_holdout_rows()[0])
