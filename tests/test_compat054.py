"""Command lines of adaptergate 0.5.4 decide the same here.

``fixtures/compat054/golden.json`` holds what adaptergate 0.5.4 itself printed
for each command line (regenerate with ``make_golden.py``). Each line is run
through our CLI twice: on the holdout file 0.5.4 wrote (its wrapped format)
and on the raw JSONL it was imported from (which 0.5.4 could not read).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adaptergate.cli import main

FIX = Path(__file__).parent / "fixtures" / "compat054"
GOLDEN = json.loads((FIX / "golden.json").read_text())
CASES = sorted(k for k in GOLDEN if not k.startswith("_"))
RAW = {"h_054.jsonl": "raw.jsonl", "s_054.jsonl": "silent_raw.jsonl"}


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    # 0.5.4's rule is `--decision threshold`; the variable keeps old command
    # lines unchanged (the default rule is the statistical one).
    monkeypatch.setenv("ADAPTERGATE_DECISION", "threshold")
    for f in FIX.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.parametrize("source", ["wrapped-054", "raw"])
@pytest.mark.parametrize("case", CASES)
def test_same_decision_as_054(case, source, workdir, capsys):
    g = GOLDEN[case]
    argv = list(g["argv"])
    if source == "raw":
        i = argv.index("--holdout") + 1
        argv[i] = RAW[argv[i]]
    code, d = _run(argv, capsys)
    assert code == g["exit_code"]
    assert d["accepted"] is g["accepted"]
    # Means are accumulated in holdout order, as 0.5.4 did: bit-identical.
    assert d["score_baseline"] == g["score_baseline"]
    assert d["score_candidate"] == g["score_candidate"]
    assert d["delta"] == g["delta"]
    assert d["holdout_size"] == g["holdout_size"]
    assert [[q["query_id"], q["score_baseline"], q["score_candidate"]] for q in d["per_query"]] == g["per_query"]
    ours = {s["slice_tag"]: [s["n_total"], s["n_regressed"], s["delta"]] for s in d["slice_attributions"]}
    assert ours == g["slices"]


def test_holdout_list_matches_054(workdir, capsys):
    assert main(["holdout", "list", "--tenant", "acme", "--holdout", "h_054.jsonl"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines == GOLDEN["_holdout_list"]


def test_add_to_054_file_keeps_its_format(workdir, capsys):
    before = (workdir / "h_054.jsonl").read_text().splitlines()
    q = {"question_id": "new1", "question": "a new one", "slices": ["intent=refund"]}
    assert main(["holdout", "add", "--tenant", "acme", "--holdout", "h_054.jsonl", json.dumps(q)]) == 0
    after = (workdir / "h_054.jsonl").read_text().splitlines()
    assert after[:-1] == before  # untouched lines are kept byte for byte
    rec = json.loads(after[-1])
    assert set(rec) == {"query_id", "tenant_id", "payload", "added_at", "accepted_by_adapter"}
    assert rec["payload"] == q and rec["query_id"] == "new1"
