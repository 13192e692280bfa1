"""The recipe library: 0.5.4's files and command lines, matching and ranking.

``fixtures/recipes054/`` was written by adaptergate 0.5.4 itself (see its
``make_fixtures.py``): the seeded ``recipes.jsonl``, ``recipes_flushed.jsonl``
(0.5.4's ``add_recipe`` rewrite), ``applications.jsonl`` (0.5.4's
``add_application``), an audit log of three 0.5.4 gate runs, and in
``golden.json`` what 0.5.4's CLI printed and exited with.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergate.cli.app import main
from adaptergate.errors import InvalidInputError
from adaptergate.examples import EXAMPLE_HOLDOUT
from adaptergate.pipeline.ledger import AuditLog
from adaptergate.models import GateDecision
from adaptergate.recipes import (
    Recipe,
    RecipeApplication,
    RecipeStore,
    hash_tenant,
    read_decision,
    recommend,
    seed_recipes_bytes,
)

FIX = Path(__file__).parent / "fixtures" / "recipes054"
GOLDEN = json.loads((FIX / "golden.json").read_text(encoding="utf-8"))
SEED_IDS = [
    "procl_slot_rebalance_v1",
    "online_lora_lr_decay_v1",
    "n_lora_orthogonalize_v1",
    "replay_buffer_prune_recent_v1",
    "lora_rank_reduce_v1",
    "silent_collapse_lr_throttle_v1",
    "stable_edit_local_patch_v1",
]
MOCK = "adaptergate.examples.mock_scorer:score"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def work(tmp_path, monkeypatch):
    """A copy of the 0.5.4 fixtures, as cwd (recipes.jsonl without applications)."""
    for name in ("recipes.jsonl", "audit.jsonl", "decision.json", "decision_pretty.json"):
        shutil.copy(FIX / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def decision_054(line: int) -> dict:
    return json.loads((FIX / "audit.jsonl").read_text().splitlines()[line])


def assert_one_line_error(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------- file formats


def test_seed_data_is_054s_seed():
    data = seed_recipes_bytes()
    # 0.5.4's `recipes seed` copied its bundled file verbatim: same bytes here
    assert data == (FIX / "recipes.jsonl").read_bytes()
    ids = [json.loads(x)["recipe_id"] for x in data.decode().splitlines()]
    assert ids == SEED_IDS


def test_reads_054_files_and_writes_them_byte_identical():
    store = RecipeStore(FIX / "recipes_flushed.jsonl", FIX / "applications.jsonl")
    assert [r.recipe_id for r in store.list_recipes()] == SEED_IDS + ["custom_domain_patch_v1"]
    for line, recipe in zip((FIX / "recipes_flushed.jsonl").read_text().splitlines(), store.list_recipes()):
        assert recipe.to_json() == line
    app_lines = (FIX / "applications.jsonl").read_text().splitlines()
    apps = store.applications()
    assert len(apps) == 6
    assert [a.to_json() for a in apps] == app_lines
    assert apps[0].tenant_hash == hash_tenant("acme") == hashlib.sha256(b"acme").hexdigest()[:16]
    assert apps[4].pending and not apps[0].pending


def test_add_recipe_rewrites_like_054(tmp_path):
    path = tmp_path / "recipes.jsonl"
    shutil.copy(FIX / "recipes.jsonl", path)  # the hand-formatted seed file
    store = RecipeStore(path)
    custom = json.loads((FIX / "recipes_flushed.jsonl").read_text().splitlines()[-1])
    store.add_recipe(Recipe(**custom))
    assert path.read_bytes() == (FIX / "recipes_flushed.jsonl").read_bytes()
    assert len(RecipeStore(path)) == 8


def test_add_application_appends_like_054(tmp_path):
    source = RecipeStore(FIX / "recipes.jsonl", FIX / "applications.jsonl")
    store = RecipeStore(tmp_path / "recipes.jsonl")
    assert store.applications_path == tmp_path / "applications.jsonl"
    for app in source.applications():
        store.add_application(app)
    assert store.applications_path.read_bytes() == (FIX / "applications.jsonl").read_bytes()
    assert store.n_applications() == 6 == RecipeStore(tmp_path / "recipes.jsonl").n_applications()


def test_tenant_ids_are_stored_hashed(tmp_path):
    store = RecipeStore(tmp_path / "recipes.jsonl")
    app = store.log_application(recipe_id="lora_rank_reduce_v1", tenant_id="acme-secret-tenant",
                                pre_decision_score=0.5, application_id="a1")
    text = store.applications_path.read_text()
    assert "acme-secret-tenant" not in text
    assert app.tenant_hash == hash_tenant("acme-secret-tenant")
    assert json.loads(text)["tenant_hash"] == app.tenant_hash
    with pytest.raises(ValueError):
        RecipeApplication(application_id="x", recipe_id="r", tenant_id="acme", tenant_hash="0" * 16,
                          pre_decision_score=0.1)


def test_completing_an_application_supersedes_the_pending_record(tmp_path):
    store = RecipeStore(tmp_path / "recipes.jsonl")
    store.log_application(recipe_id="r", tenant_id="t", pre_decision_score=0.5, application_id="a1")
    assert store.applications_for("r")[0].pending
    done = store.complete_application("a1", 0.75)
    assert done.observed_delta == pytest.approx(0.25) and done.completed_at
    reread = RecipeStore(tmp_path / "recipes.jsonl")
    assert len(reread.applications_path.read_text().splitlines()) == 2  # append-only
    assert reread.n_applications() == 1 and not reread.applications_for("r")[0].pending


_finite = st.floats(min_value=-1, max_value=1, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(pre=_finite, post=st.none() | _finite, tenant=st.text(max_size=20),
       tags=st.lists(st.text(max_size=10), max_size=3), extra=st.dictionaries(
           st.sampled_from(["note", "runner", "x_custom"]), st.integers() | st.text(max_size=5), max_size=2))
def test_application_lines_round_trip(pre, post, tenant, tags, extra):
    app = RecipeApplication(application_id="a", recipe_id="r", tenant_id=tenant, pre_decision_score=pre,
                            post_decision_score=post, observed_delta=None if post is None else post - pre,
                            slice_match_signature=tags, **extra)
    line = app.to_json()
    assert "tenant_id" not in json.loads(line)
    again = RecipeApplication.model_validate(json.loads(line))
    assert again.to_json() == line and again == app


@pytest.mark.parametrize("content, fragment", [
    ('{"recipe_id": "x"}\n', "recipes.jsonl:1: not a valid recipe"),
    ('{"recipe_id": "x", "name": "n", "intervention_type": "t", "description": "d",'
     ' "applies_when": {"min_slice_regression_pp": "lots"}}\n', "min_slice_regression_pp"),
    ("\n[1, 2]\n", "recipes.jsonl:2: expected a JSON object"),
    ("{not json\n", "recipes.jsonl:1: not valid JSON"),
])
def test_bad_recipes_file_is_invalid_input(tmp_path, content, fragment):
    path = tmp_path / "recipes.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=fragment.replace("[", r"\[")):
        RecipeStore(path)


# ---------------------------------------------------------------- matching


def _recipe(rid, contains=None, threshold=None, **extra):
    applies = {}
    if contains is not None:
        applies["slice_tag_contains"] = contains
    if threshold is not None:
        applies["min_slice_regression_pp"] = threshold
    return Recipe(recipe_id=rid, name=rid, intervention_type="t", description="d", applies_when=applies, **extra)


def test_matching_semantics_of_054():
    r = _recipe("r", ["Intent=", "domain="], 0.05)
    assert r.matches("intent=billing", -0.06)
    assert r.matches("DOMAIN=legal", -0.05)  # case-insensitive, threshold inclusive
    assert not r.matches("lang=es", -0.5)  # no substring
    assert not r.matches("intent=billing", -0.049)  # drop too small
    catch_all = _recipe("c", [], 0.1)
    assert catch_all.matches("anything", -0.2) and catch_all.match_terms("anything", -0.2) == []
    assert _recipe("none").matches("x", 0.0)
    # a lone string is one substring (0.5.4 would have matched any of its characters)
    lone = _recipe("s", "intent=")
    assert lone.matches("intent=a", -1) and not lone.matches("tenant", -1)


def _store_with(tmp_path, recipes, apps=()):
    path = tmp_path / "r.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in recipes))
    store = RecipeStore(path)
    for a in apps:
        store.add_application(a)
    return store


def _app(rid, delta, i):
    return RecipeApplication(application_id=f"{rid}-{i}", recipe_id=rid, tenant_id=f"t{i}",
                             pre_decision_score=0.5, post_decision_score=None if delta is None else 0.5 + delta,
                             observed_delta=delta)


def test_rejected_decision_gets_matching_recipes_by_match_quality(work):
    store = RecipeStore("recipes.jsonl")
    recs = recommend(decision_054(0), store, top_k=10)  # driver intent=billing_dispute, delta -0.675
    assert {r.recipe.recipe_id for r in recs} == set(SEED_IDS)
    # no evidence: targeted recipes first, then higher thresholds, then recipe_id
    assert [r.recipe.recipe_id for r in recs] == [
        "n_lora_orthogonalize_v1", "procl_slot_rebalance_v1",
        "online_lora_lr_decay_v1", "stable_edit_local_patch_v1",
        "lora_rank_reduce_v1", "silent_collapse_lr_throttle_v1",
        "replay_buffer_prune_recent_v1",
    ]
    assert recs[0].match_terms == ["intent="]
    assert recs[0].to_dict()["rationale"] == "matches driver slice `intent=billing_dispute`; no prior applications yet"
    # driver lang=es (0.5.4 decision, line 2): only catch-all recipes apply
    recs = recommend(decision_054(2), store, top_k=10)
    assert [r.recipe.recipe_id for r in recs][:2] == ["online_lora_lr_decay_v1", "stable_edit_local_patch_v1"]
    assert "procl_slot_rebalance_v1" not in {r.recipe.recipe_id for r in recs}
    assert len(recommend(decision_054(0), store, top_k=3)) == 3


def test_ranked_by_efficacy_once_applications_exist(tmp_path):
    recipes = [_recipe("a_targeted", ["intent="], 0.05), _recipe("b", [], 0.0), _recipe("c", [], 0.0),
               _recipe("d", [], 0.0)]
    apps = [_app("c", 0.10, 0), _app("c", 0.02, 1), _app("b", 0.07, 2), _app("d", None, 3)]
    recs = recommend(decision_054(0), _store_with(tmp_path, recipes, apps))
    assert [r.recipe.recipe_id for r in recs] == ["b", "c", "a_targeted", "d"]
    assert recs[1].expected_efficacy == pytest.approx(0.06) and recs[1].n_uses == 2
    assert recs[3].n_pending == 1 and recs[3].expected_efficacy is None
    # any evidence outranks none, even a recipe that hurt (as 0.5.4)
    (tmp_path / "2").mkdir()
    recs = recommend(decision_054(0), _store_with(tmp_path / "2", recipes, [_app("d", -0.2, 9)]))
    assert [r.recipe.recipe_id for r in recs] == ["d", "a_targeted", "b", "c"]


def test_ranking_does_not_depend_on_file_order(tmp_path):
    recipes = [_recipe(f"r{i}", ["intent="] if i % 3 == 0 else [], [0.0, 0.05, 0.1][i % 3]) for i in range(9)]
    apps = [_app("r4", 0.05, 0), _app("r7", 0.05, 1)]
    orders = set()
    for seed in range(5):
        shuffled = recipes[:]
        random.Random(seed).shuffle(shuffled)
        d = tmp_path / str(seed)
        d.mkdir()
        recs = recommend(decision_054(0), _store_with(d, shuffled, apps), top_k=9)
        orders.add(tuple(r.recipe.recipe_id for r in recs))
    assert len(orders) == 1
    assert next(iter(orders))[:2] == ("r4", "r7")  # equal efficacy and uses: recipe_id


def test_accepted_or_driverless_decision_needs_no_recipe(work):
    store = RecipeStore("recipes.jsonl")
    assert recommend(decision_054(1), store) == []
    driverless = {**decision_054(0), "slice_attributions": []}
    assert recommend(driverless, store) == []
    assert recommend(GateDecision.model_validate(decision_054(0)), store, top_k=0) == []


# ---------------------------------------------------------------- CLI: recipes


def test_recipes_seed_list_show_like_054(work, capsys):
    (work / "recipes.jsonl").unlink()
    g = GOLDEN
    code, out, err = run(["recipes", "list", "--recipes", "recipes.jsonl"], capsys)
    assert code == g["list_missing"]["exit_code"] == 1 and "recipes seed" in err
    code, out, _ = run(["recipes", "seed", "--recipes", "recipes.jsonl"], capsys)
    assert (code, out) == (g["seed"]["exit_code"], g["seed"]["stdout"])
    assert (work / "recipes.jsonl").read_bytes() == (FIX / "recipes.jsonl").read_bytes()
    assert len(RecipeStore("recipes.jsonl")) == 7
    code, out, err = run(["recipes", "seed", "--recipes", "recipes.jsonl"], capsys)
    assert code == g["seed_again"]["exit_code"] == 1 and "--overwrite" in err
    assert_one_line_error(err)
    (work / "recipes.jsonl").write_text("")
    code, out, _ = run(["recipes", "seed", "--recipes", "recipes.jsonl", "--overwrite"], capsys)
    assert (code, out) == (0, g["seed_overwrite"]["stdout"])
    code, out, _ = run(["recipes", "list", "--recipes", "recipes.jsonl"], capsys)
    assert (code, out) == (0, g["list"]["stdout"])
    code, out, _ = run(["recipes", "show", "procl_slot_rebalance_v1", "--recipes", "recipes.jsonl"], capsys)
    assert (code, out) == (0, g["show"]["stdout"])
    code, out, err = run(["recipes", "show", "nope_v0", "--recipes", "recipes.jsonl"], capsys)
    assert code == g["show_unknown"]["exit_code"] == 1 and out == ""
    assert "'nope_v0'" in err
    assert_one_line_error(err)


def test_recipes_empty_or_broken_library(work, capsys):
    (work / "empty.jsonl").write_text("\n")
    code, _, err = run(["recipes", "list", "--recipes", "empty.jsonl"], capsys)
    assert code == 1 and "seed" in err
    (work / "bad.jsonl").write_text('{"recipe_id": "x"\n')
    for argv in (["recipes", "list", "--recipes", "bad.jsonl"],
                 ["recipes", "show", "x", "--recipes", "bad.jsonl"],
                 ["recommend-cmd", "--decision", "audit.jsonl", "--recipes", "bad.jsonl"]):
        code, out, err = run(argv, capsys)
        assert code == 2, argv
        assert "bad.jsonl:1: not valid JSON" in err
        assert_one_line_error(err)
    code, _, err = run(["recipes", "seed", "--recipes", str(work)], capsys)
    assert code == 2 and "directory" in err
    # a broken application log does not stop list/show, but recommend reports it
    (work / "applications.jsonl").write_text('{"application_id": "a"}\n')
    assert run(["recipes", "list", "--recipes", "recipes.jsonl"], capsys)[0] == 0
    code, _, err = run(["recommend-cmd", "--decision", "audit.jsonl", "--recipes", "recipes.jsonl"], capsys)
    assert code == 2 and "applications.jsonl:1: not a valid recipe application" in err
    assert_one_line_error(err)


# ----------------------------------------------------------- CLI: recommend


def _json_run(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("case", ["rec_last_json", "rec_line0_json", "rec_line1_json", "rec_line2_json",
                                  "rec_single_json"])
def test_recommend_json_same_recipes_as_054(case, work, capsys):
    ours = _json_run(GOLDEN[case]["argv"], capsys)
    theirs = json.loads(GOLDEN[case]["stdout"])
    # Every case matches at most --top-k recipes, so both list the same ones;
    # only the order of recipes without applications differs (match quality
    # and recipe_id here, file order in 0.5.4).
    def key(d):
        return d["recipe_id"]

    assert sorted(ours, key=key) == sorted(theirs, key=key)
    assert all(list(d) == list(theirs[0]) for d in ours)  # same keys, same order


def test_recommend_json_ranked_by_efficacy_like_054(work, capsys):
    shutil.copy(FIX / "applications.jsonl", work / "applications.jsonl")
    g = GOLDEN["rec_line0_apps_json"]
    ours = _json_run(g["argv"], capsys)
    theirs = json.loads(g["stdout"])
    proven = [d for d in theirs if d["n_uses"] > 0]
    assert [d["recipe_id"] for d in proven] == [
        "online_lora_lr_decay_v1", "procl_slot_rebalance_v1", "replay_buffer_prune_recent_v1"]
    assert ours[: len(proven)] == proven  # same numbers, same order, same rationale
    assert sorted(ours, key=lambda d: d["recipe_id"]) == sorted(theirs, key=lambda d: d["recipe_id"])
    pending = next(d for d in ours if d["recipe_id"] == "stable_edit_local_patch_v1")
    assert pending["n_pending"] == 1 and pending["expected_efficacy"] is None


def test_recommend_human_output(work, capsys):
    argv = ["recommend-cmd", "--decision", "audit.jsonl", "--recipes", "recipes.jsonl", "--line", "0", "--top-k", "3"]
    code, out, err = run(argv, capsys)
    assert code == 0
    assert "Recipes for driver slice: intent=billing_dispute" in out
    assert "1. N-LoRA subspace orthogonalization   [no prior applications]" in out
    assert "   id: n_lora_orthogonalize_v1" in out and "   source: arXiv 2408.06133" in out
    assert "4." not in out
    assert "no prior applications have been logged" in err and "slice matching only" in err
    shutil.copy(FIX / "applications.jsonl", work / "applications.jsonl")
    code, out, err = run(argv, capsys)
    assert "1. Online-LoRA learning rate decay   [avg Δ=+0.090 over n=3, range +0.067..+0.113]" in out
    assert err == ""  # the honesty note only when nothing has evidence
    code, out, _ = run(["recommend-cmd", "--decision", "audit.jsonl", "--recipes", "recipes.jsonl", "--line", "1"],
                       capsys)
    assert code == 0 and out.strip() == GOLDEN["rec_accepted_human"]["stdout"].strip()
    driverless = {**decision_054(0), "slice_attributions": []}
    (work / "driverless.json").write_text(json.dumps(driverless))
    code, out, _ = run(["recommend-cmd", "--decision", "driverless.json", "--recipes", "recipes.jsonl"], capsys)
    assert code == 0 and "No driver slice" in out
    (work / "one.jsonl").write_text(_recipe("only_domain", ["domain="]).to_json() + "\n")
    code, out, _ = run(["recommend-cmd", "--decision", "decision.json", "--recipes", "one.jsonl"], capsys)
    assert code == 0 and "No recipes in the library match driver slice `intent=billing_dispute`" in out


def test_recommend_reads_pretty_json_decision(work, capsys):
    # 0.5.4 could not read its own `gate --format json` output (multi-line)
    ours = _json_run(["recommend-cmd", "--decision", "decision_pretty.json", "--recipes", "recipes.jsonl",
                      "-f", "json", "--top-k", "10"], capsys)
    assert len(ours) == 7 and ours[0]["matched_slice_tags"] == ["intent=billing_dispute"]


@pytest.mark.parametrize("content, extra, fragment", [
    (None, [], "decision file not found"),
    ("", [], "is empty"),
    ("[1, 2]", [], "got a JSON list"),
    ('{"a": 1}\n{oops\n', [], "audit.jsonl:2: not valid JSON"),
    ('{"kind": "error", "error": "boom"}\n', [], "holds no gate decision"),
    ('{"accepted": false}\n', [], "not a valid gate decision"),
    (None, ["--line", "3"], "--line 3 is out of range"),
    (None, ["--line", "-4"], "out of range"),
])
def test_recommend_bad_decision_input_exits_2(work, capsys, content, extra, fragment):
    if content is not None:
        (work / "audit.jsonl").write_text(content)
    elif not extra:
        (work / "audit.jsonl").unlink()
    code, out, err = run(["recommend-cmd", "--decision", "audit.jsonl", "--recipes", "recipes.jsonl", *extra], capsys)
    assert code == 2 and out == ""
    assert fragment in err
    assert_one_line_error(err)


def test_recommend_usage_errors_exit_2(work, capsys):
    base = ["recommend-cmd", "--decision", "audit.jsonl"]
    code, _, err = run(base + ["--recipes", "missing.jsonl"], capsys)
    assert code == 2 and "recipes file not found" in err
    assert_one_line_error(err)
    assert run(base + ["--recipes", "recipes.jsonl", "--top-k", "0"], capsys)[0] == 2
    assert run(base + ["--recipes", "recipes.jsonl", "--format", "pr-comment"], capsys)[0] == 2


def test_cli_round_trip_with_our_audit_log(tmp_path, capsys, monkeypatch):
    """gate (ours) -> audit log with an error record -> recommend-cmd --line over decisions only."""
    monkeypatch.chdir(tmp_path)
    audit = tmp_path / "audit.jsonl"
    gate = ["gate", "--tenant", "acme", "--baseline", "adapter_good_v18", "--holdout", EXAMPLE_HOLDOUT,
            "--scorer", MOCK, "--slice-epsilon", "0.10", "--audit-log", audit, "--format", "json"]
    assert run(gate + ["--candidate", "adapter_bad_v19"], capsys)[0] == 1
    AuditLog(audit).append_error(tenant_id="acme", candidate_id="broken", baseline_id=None, error="boom",
                                 exit_code=3, traceback_text=None)
    assert run(gate + ["--candidate", "adapter_good_v20"], capsys)[0] == 0
    AuditLog(audit).append_error(tenant_id="acme", candidate_id="broken2", baseline_id=None, error="boom",
                                 exit_code=3, traceback_text=None)
    assert [r.get("kind") for r in AuditLog(audit).records()] == ["decision", "error", "decision", "error"]

    assert run(["recipes", "seed", "--recipes", "lib/recipes.jsonl"], capsys)[0] == 0
    rec = ["recommend-cmd", "--decision", audit, "--recipes", "lib/recipes.jsonl", "--format", "json"]
    assert _json_run(rec, capsys) == []  # last decision: accepted (the error record is skipped)
    assert _json_run(rec + ["--line", "1"], capsys) == []
    assert read_decision(audit, line=-1).candidate_id == "adapter_good_v20"
    assert read_decision(audit, line=1).candidate_id == "adapter_good_v20"
    for line in ("0", "-2"):
        got = _json_run(rec + ["--line", line], capsys)
        assert got and got[0]["matched_slice_tags"] == ["intent=billing_dispute"]
    code, _, err = run(rec + ["--line", "2"], capsys)
    assert code == 2 and "2 decision record(s)" in err

    # log outcomes: the recipe that helped most now ranks first
    store = RecipeStore(tmp_path / "lib" / "recipes.jsonl")
    store.log_application(recipe_id="stable_edit_local_patch_v1", tenant_id="acme",
                          pre_decision_score=0.6, post_decision_score=0.7)
    store.log_application(recipe_id="lora_rank_reduce_v1", tenant_id="acme",
                          pre_decision_score=0.6, post_decision_score=0.65)
    got = _json_run(rec + ["--line", "0", "--top-k", "2"], capsys)
    assert [d["recipe_id"] for d in got] == ["stable_edit_local_patch_v1", "lora_rank_reduce_v1"]
    assert got[0]["n_uses"] == 1 and got[0]["expected_efficacy"] == pytest.approx(0.1)
    code, out, err = run(rec[:-2] + ["--line", "0", "--top-k", "1"], capsys)
    assert code == 0 and "StableEdit localized patch   [avg Δ=+0.100 over n=1]" in out and err == ""


# ===================================================== the recipe loop (issue 7)
# recipes log / recipes verify: applications proven by two real gate
# decisions, efficacy as a Wilson interval, "What now?" in the PR comment.

from adaptergate.recipes import (  # noqa: E402
    VerifiedApplication,
    efficacy_for,
    recommendations_for,
    wilson_interval,
)
from adaptergate.report import get_environment, render  # noqa: E402

TENANT = "acme"  # the example holdout's tenant


def _gate(audit, candidate, capsys, *, tenant=TENANT, baseline="adapter_good_v18", extra=()):
    """A scorer-based gate through the CLI; returns (exit code, decision JSON)."""
    holdout = EXAMPLE_HOLDOUT
    if tenant != TENANT:  # the same queries, another tenant's
        holdout = Path(f"{tenant}_holdout.jsonl")
        holdout.write_text(EXAMPLE_HOLDOUT.read_text().replace('"tenant": "acme"', f'"tenant": "{tenant}"'))
    code, out, err = run(["gate", "--tenant", tenant, "--candidate", candidate, "--baseline", baseline,
                          "--holdout", holdout, "--scorer", MOCK, "--audit-log", audit,
                          "--format", "json", *extra], capsys)
    assert code in (0, 1), err
    return code, json.loads(out)


@pytest.fixture()
def loop(tmp_path, monkeypatch, capsys):
    """A seeded library and an audit log holding one rejection (adapter_bad_v19)."""
    monkeypatch.chdir(tmp_path)
    assert run(["recipes", "seed", "--recipes", "lib/recipes.jsonl"], capsys)[0] == 0
    code, rejected = _gate("audit.jsonl", "adapter_bad_v19", capsys, extra=["--slice-epsilon", "0.10"])
    assert code == 1 and rejected["driver_slice_tag"] == "intent=billing_dispute"
    (tmp_path / "rejected.json").write_text(json.dumps(rejected, indent=2))
    return tmp_path


LOG = ["recipes", "log", "--recipes", "lib/recipes.jsonl"]
REC = ["recommend-cmd", "--recipes", "lib/recipes.jsonl", "--top-k", "7"]


def test_wilson_interval_known_values():
    from scipy.stats import binomtest

    assert wilson_interval(4, 5) == pytest.approx((0.3755, 0.9638), abs=5e-5)
    assert wilson_interval(0, 3) == pytest.approx((0.0, 0.5615), abs=5e-5)
    assert wilson_interval(3, 3) == pytest.approx((0.4385, 1.0), abs=5e-5)
    assert wilson_interval(1, 10) == pytest.approx((0.0179, 0.4042), abs=5e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for n in range(1, 13):
        for k in range(n + 1):
            ci = binomtest(k, n).proportion_ci(method="wilson")
            assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    for bad in ((4, 3), (-1, 3), (0, -1)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


def test_cli_round_trip_gate_recommend_log_recommend(loop, capsys):
    # 1. no record yet: 0.5.4's output, byte for byte the same keys
    recs = _json_run(REC + ["--decision", "audit.jsonl", "-f", "json"], capsys)
    assert recs and all(list(d) == list(json.loads(GOLDEN["rec_line0_json"]["stdout"])[0]) for d in recs)
    code, out, err = run(REC + ["--decision", "audit.jsonl"], capsys)
    assert code == 0 and "[no prior applications]" in out and "rank basis" not in out
    assert "no prior applications have been logged" in err

    # 2. the recipe is applied; the re-gate accepts
    code, accepted = _gate("audit.jsonl", "adapter_good_v20", capsys, extra=["--slice-epsilon", "0.10"])
    assert code == 0
    code, out, err = run(LOG + ["--recipe", "online_lora_lr_decay_v1", "--decision", "@last-rejected",
                                "--outcome", "@last", "--audit-log", "audit.jsonl", "--note", "lr 2e-4 -> 5e-5"],
                         capsys)
    assert code == 0, err
    assert "of online_lora_lr_decay_v1" in out and "driver slice intent=billing_dispute: Δ -0.858 → +0.008" in out
    assert "1/1 succeeded on driver slice intent=billing_dispute" in out

    # what was stored: the signature, both decisions, hashed tenant only
    verified = (loop / "lib" / "applications.verified.jsonl").read_text()
    legacy = (loop / "lib" / "applications.jsonl").read_text()
    assert TENANT not in verified + legacy  # a hex hash cannot spell "acme" by chance
    (app,) = [json.loads(x) for x in verified.splitlines()]
    assert app["tenant_hash"] == hash_tenant(TENANT)
    assert app["driver_slice_tag"] == "intent=billing_dispute" and app["driver_slice_key"] == "intent"
    assert app["rejecting_slice_keys"] == ["difficulty", "intent", "lang"]
    assert (app["decision_candidate_id"], app["outcome_candidate_id"]) == ("adapter_bad_v19", "adapter_good_v20")
    assert app["accepted"] is True and (app["decision_verdict"], app["outcome_verdict"]) == ("FAIL", "PASS")
    rejected = json.loads((loop / "rejected.json").read_text())
    assert (app["decision_score"], app["decision_timestamp"]) == (rejected["score_candidate"], rejected["timestamp"])
    assert app["outcome_score"] == accepted["score_candidate"] and app["outcome_timestamp"] == accepted["timestamp"]
    assert app["decision_driver_delta"] == pytest.approx(-0.8582, abs=1e-4)
    assert app["outcome_driver_delta"] == pytest.approx(0.0077, abs=1e-4)
    assert app["note"] == "lr 2e-4 -> 5e-5"
    # ... and its 0.5.4-shaped summary, which 0.5.4's RecipeApplication(**row) reads (0.5.4's fields only)
    (line,) = [json.loads(x) for x in legacy.splitlines()]
    assert list(line) == list(RecipeApplication.model_fields)
    assert line["application_id"] == app["application_id"]
    assert line["observed_delta"] == pytest.approx(app["outcome_score"] - app["decision_score"])

    # 3. recommend again: the record shows, with the basis of each rank
    code, out, err = run(REC + ["--decision", "audit.jsonl", "--line", "0"], capsys)
    assert code == 0 and err == ""
    assert ("1. Online-LoRA learning rate decay   [avg Δ=+0.600 over n=1]\n   rank basis: 1/1 succeeded on driver"
            " slice intent=billing_dispute so far, too few to rank (needs 3)") in out
    assert "   rank basis: no record yet: cited prior" in out
    assert "   rank basis: no record yet: library prior" in out  # lora_rank_reduce_v1 cites no paper
    got = _json_run(REC + ["--decision", "audit.jsonl", "--line", "0", "-f", "json"], capsys)
    assert got[0]["recipe_id"] == "online_lora_lr_decay_v1" and got[0]["rank_basis"] == "logged"
    assert got[0]["verified"]["n"] == 1 and got[0]["verified"]["successes"] == 1
    assert got[0]["verified"]["level"] == "driver" and got[0]["verified"]["ci_low"] == pytest.approx(0.2065, abs=1e-4)
    assert got[1]["verified"]["n"] == 0 and got[1]["rank_basis"] == "prior"

    # the same application again: refused, nothing appended
    code, _, err = run(LOG + ["--recipe", "online_lora_lr_decay_v1", "--decision", "audit.jsonl:0",
                              "--outcome", "audit.jsonl:-1"], capsys)
    assert code == 2 and "already logged" in err
    assert_one_line_error(err)
    assert len((loop / "lib" / "applications.verified.jsonl").read_text().splitlines()) == 1


def test_log_accepts_decision_files_and_file_line_refs(loop, capsys):
    code, accepted = _gate("audit.jsonl", "adapter_good_v20", capsys)
    (loop / "outcome.json").write_text(json.dumps(accepted, indent=2))  # gate --format json output
    for i, (dec, out_ref) in enumerate([("rejected.json", "outcome.json"), ("audit.jsonl:0", "outcome.json"),
                                        ("audit.jsonl:-2", "@last-accepted")]):
        recipe = SEED_IDS[i]
        got = _json_run(LOG + ["--recipe", recipe, "--decision", dec, "--outcome", out_ref,
                               "--audit-log", "audit.jsonl", "-f", "json"], capsys)
        assert got["application"]["recipe_id"] == recipe and got["application"]["accepted"] is True
        assert got["record"]["n"] == 1
    assert got["decision_source"] == "audit.jsonl:1" and got["outcome_source"] == "audit.jsonl:2"
    assert RecipeStore("lib/recipes.jsonl").n_applications() == 3
    # --tenant selects the tenant's decisions: another tenant's newer runs do not get in the way
    _gate("audit.jsonl", "adapter_bad_v21", capsys, tenant="globex")
    got = _json_run(LOG + ["--recipe", SEED_IDS[3], "--decision", "@last-rejected", "--outcome", "@last",
                           "--tenant", TENANT, "--audit-log", "audit.jsonl", "-f", "json"], capsys)
    assert got["outcome_source"] == "audit.jsonl:2"


def test_log_refuses_pairs_that_are_not_an_application(loop, capsys):
    _gate("audit.jsonl", "adapter_good_v20", capsys)  # record 1: accepted, same tenant
    _gate("audit.jsonl", "adapter_good_v22", capsys, tenant="globex")  # record 2: accepted, other tenant
    cases = [
        (["--decision", "audit.jsonl:0", "--outcome", "audit.jsonl:2"], "different tenants"),
        (["--decision", "audit.jsonl:0", "--outcome", "audit.jsonl:2", "--tenant", TENANT],
         "is for tenant 'globex', not --tenant"),
        (["--decision", "audit.jsonl:1", "--outcome", "audit.jsonl:0"], "was accepted"),
        (["--decision", "audit.jsonl:0", "--outcome", "audit.jsonl:0"], "is not newer than the decision"),
        (["--decision", "@last-rejected", "--outcome", "audit.jsonl:0", "--audit-log", "audit.jsonl"],
         "no rejected decision of tenant"),
        (["--decision", "@last-rejected", "--outcome", "@last"], "needs --audit-log"),
        (["--decision", "@first", "--outcome", "@last", "--audit-log", "audit.jsonl"], "unknown selector"),
        (["--decision", "audit.jsonl:7", "--outcome", "@last", "--audit-log", "audit.jsonl"],
         "holds 3 decision record(s)"),
        (["--decision", "nope.json", "--outcome", "audit.jsonl:1"], "no such file"),
        (["--decision", "audit.jsonl:0", "--outcome", "audit.jsonl:1", "--recipe", "nope_v0"], "no recipe with id"),
    ]
    for argv, fragment in cases:
        recipe = [] if "--recipe" in argv else ["--recipe", "lora_rank_reduce_v1"]
        code, out, err = run(LOG + recipe + argv, capsys)
        assert code == 2 and out == "", argv
        assert fragment in err, (argv, err)
        assert_one_line_error(err)
    # outcome older than the decision: an acceptance logged before the rejection
    _gate("audit.jsonl", "adapter_bad_v23", capsys)  # record 3: rejected, after the acceptance (record 1)
    code, _, err = run(LOG + ["--recipe", "lora_rank_reduce_v1", "--decision", "audit.jsonl:3",
                              "--outcome", "audit.jsonl:1"], capsys)
    assert code == 2 and "the outcome (adapter_good_v20 at " in err and "is not newer" in err
    assert_one_line_error(err)
    code, _, err = run(["recipes", "log", "--recipes", "missing.jsonl", "--recipe", "x", "--decision", "a",
                        "--outcome", "b"], capsys)
    assert code == 2 and "recipes file not found" in err
    assert not (loop / "lib" / "applications.verified.jsonl").exists()
    assert not (loop / "lib" / "applications.jsonl").exists()


def _verify(decision_ref, candidate, capsys, *extra, recipe="stable_edit_local_patch_v1"):
    return run(["recipes", "verify", "--recipes", "lib/recipes.jsonl", "--recipe", recipe,
                "--decision", decision_ref, "--candidate", candidate, "--holdout", EXAMPLE_HOLDOUT,
                "--scorer", MOCK, "--audit-log", "audit.jsonl", *extra], capsys)


def test_verify_regates_under_the_rejections_settings_and_logs(loop, capsys):
    code, out, err = _verify("@last-rejected", "adapter_good_v20", capsys)
    assert code == 0, err
    assert out.startswith("PASS: adapter_good_v20 vs adapter_good_v18, score ")
    assert "slice_epsilon=0.1" in out  # inherited from the rejection
    assert "Record of stable_edit_local_patch_v1 for this slice: 1/1 succeeded" in out
    # the outcome is in the audit log, gated like the rejection
    log = AuditLog("audit.jsonl").decisions()
    assert [d.candidate_id for d in log] == ["adapter_bad_v19", "adapter_good_v20"]
    assert log[1].tenant_id == TENANT and log[1].config.slice_epsilon == 0.1
    # a repair that failed: the new gate's verdict is the exit code, and it counts as a failure
    code, out, err = _verify("audit.jsonl:0", "adapter_bad_v21", capsys, "--rule", "threshold", "-f", "json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["accepted"] is False and doc["exit_code"] == 1 and doc["settings"]["decision"] == "threshold"
    assert doc["settings"]["slice_epsilon"] == 0.1 and doc["decision_source"] == "audit.jsonl:1"
    assert doc["application"]["accepted"] is False and doc["outcome"]["verdict"] == "REJECTED"
    assert (doc["record"]["n"], doc["record"]["successes"]) == (2, 1)
    assert TENANT not in (loop / "lib" / "applications.verified.jsonl").read_text()
    assert RecipeStore("lib/recipes.jsonl").n_applications() == 2
    # checked before anything is gated: exit 2, one line, nothing appended to the audit log
    n = len(AuditLog("audit.jsonl").records())
    for ref, extra, fragment in [
        ("audit.jsonl:1", [], "was accepted"),
        ("audit.jsonl:0", ["--tenant", "globex"], "is for tenant 'acme', not --tenant 'globex'"),
        ("@last-rejected", ["--tenant", "globex"], "no rejected decision of tenant 'globex'"),
    ]:
        code, out, err = _verify(ref, "adapter_good_v20", capsys, *extra)
        assert code == 2 and out == "" and fragment in err, err
        assert_one_line_error(err)
    code, _, err = _verify("audit.jsonl:0", "adapter_good_v20", capsys, recipe="nope_v0")
    assert code == 2 and "no recipe with id 'nope_v0'" in err
    code, _, err = _verify("audit.jsonl:0", "adapter_good_v20", capsys, "--rule", "vibes")
    assert code == 2 and "--rule must be stat or threshold" in err
    assert_one_line_error(err)
    assert len(AuditLog("audit.jsonl").records()) == n


# ------------------------------------------------------------ measured ranking


def _rejection(tenant="acme"):
    return GateDecision.model_validate({**decision_054(0), "tenant_id": tenant})  # driver intent=billing_dispute


def _outcome(decision, i, accepted, driver_delta=0.0, score=0.8):
    attrs = [s.model_copy(update={"delta": driver_delta if s.slice_tag == "intent=billing_dispute" else 0.0})
             for s in decision.slice_attributions]
    return decision.model_copy(update={
        "accepted": accepted, "verdict": "ACCEPTED" if accepted else "REJECTED", "candidate_id": f"fixed_v{i}",
        "timestamp": f"2027-01-01T00:00:{i:02d}+00:00", "score_candidate": score, "slice_attributions": attrs,
    })


def _log_n(store, recipe_id, results, *, start=0, score=0.8):
    d = _rejection()
    for i, ok in enumerate(results, start):
        store.log_outcome(recipe_id=recipe_id, decision=d, outcome=_outcome(d, i, ok, 0.5 if ok else -0.2, score))


def test_ranking_switches_from_prior_to_measured_at_three_applications(work):
    store = RecipeStore("recipes.jsonl")
    d = _rejection()
    prior = [r.recipe.recipe_id for r in recommend(d, store, top_k=7)]
    assert prior[-1] == "replay_buffer_prune_recent_v1"  # last by match quality
    # lora_rank_reduce_v1: two successes with a big aggregate gain (0.5.4's logged Δ ranks it first)
    _log_n(store, "lora_rank_reduce_v1", [True, True], start=0, score=0.95)
    _log_n(store, "replay_buffer_prune_recent_v1", [True, True], start=10, score=0.7)
    recs = recommend(d, RecipeStore("recipes.jsonl"), top_k=7)
    assert [r.recipe.recipe_id for r in recs][:2] == ["lora_rank_reduce_v1", "replay_buffer_prune_recent_v1"]
    assert [r.basis for r in recs[:3]] == ["logged", "logged", "prior"]
    assert recs[1].basis_text.startswith("2/2 succeeded on driver slice intent=billing_dispute so far, too few")
    # the third success makes replay_buffer_prune_recent_v1 measured: it ranks by its interval, first
    _log_n(store, "replay_buffer_prune_recent_v1", [True], start=12, score=0.7)
    recs = recommend(d, RecipeStore("recipes.jsonl"), top_k=7)
    assert [r.recipe.recipe_id for r in recs][:2] == ["replay_buffer_prune_recent_v1", "lora_rank_reduce_v1"]
    assert recs[0].basis == "measured"
    assert recs[0].basis_text == ("measured: 3/3 succeeded, 95% CI 0.44–1.00 on driver slice intent=billing_dispute;"
                                  " driver-slice Δ moved +1.175 on average")
    assert [r.recipe.recipe_id for r in recs[2:]] == [x for x in prior if x not in
                                                       ("replay_buffer_prune_recent_v1", "lora_rank_reduce_v1")]
    # a measured recipe that keeps failing ranks after every recipe without a record
    _log_n(store, "procl_slot_rebalance_v1", [False, False, False], start=20)
    recs = recommend(d, RecipeStore("recipes.jsonl"), top_k=7)
    assert recs[-1].recipe.recipe_id == "procl_slot_rebalance_v1"
    assert recs[-1].basis_text.startswith("measured: 0/3 succeeded, 95% CI 0.00–0.56")
    assert recs[-1].basis_text.endswith("(ranked after the recipes without a record)")
    # among measured recipes: the higher lower bound first (4/4 beats 3/3)
    _log_n(store, "online_lora_lr_decay_v1", [True] * 4, start=30)
    recs = recommend(d, RecipeStore("recipes.jsonl"), top_k=2)
    assert [r.recipe.recipe_id for r in recs] == ["online_lora_lr_decay_v1", "replay_buffer_prune_recent_v1"]


def _verified(recipe_id, tag, accepted, i, improvement=0.1):
    return VerifiedApplication(
        application_id=f"v{i}", recipe_id=recipe_id, tenant_id=f"tenant-{i}", driver_slice_tag=tag,
        driver_slice_key=tag.split("=")[0], decision_candidate_id="a", decision_timestamp="2027-01-01T00:00:00Z",
        decision_verdict="FAIL", decision_score=0.5, decision_delta=-0.2, decision_driver_delta=-0.4,
        outcome_candidate_id="b", outcome_timestamp="2027-01-02T00:00:00Z", outcome_verdict="PASS",
        outcome_score=0.7, outcome_delta=0.0, outcome_driver_delta=-0.4 + improvement, accepted=accepted,
    )


def test_efficacy_matches_the_most_specific_signature_with_enough_applications():
    apps = [_verified("r", "intent=billing", True, 0), _verified("r", "intent=refund", True, 1),
            _verified("r", "intent=refund", False, 2), _verified("r", "lang=es", True, 3),
            _verified("other", "intent=billing", True, 4)]
    e = efficacy_for("r", apps, "intent=billing")
    assert (e.level, e.scope, e.n, e.successes, e.measured) == ("key", "intent=* slices", 3, 2, True)
    assert e.mean_driver_improvement == pytest.approx(0.1) and e.n_verified_total == 4
    assert (e.ci_low, e.ci_high) == pytest.approx(wilson_interval(2, 3))
    e = efficacy_for("r", apps, "lang=es")  # one exact match, one lang=*: all four
    assert (e.level, e.scope, e.n) == ("any", "any slice", 4)
    e = efficacy_for("r", apps, "intent=billing", min_measured=1)
    assert (e.level, e.n, e.successes) == ("driver", 1, 1)
    e = efficacy_for("r", apps[:2], "topic=x")  # too few anywhere: the most specific non-empty level
    assert (e.level, e.n, e.measured) == ("any", 2, False)
    assert efficacy_for("none", apps, "intent=billing").level is None
    assert "tenant-0" not in apps[0].to_json() and apps[0].tenant_hash == hash_tenant("tenant-0")


def test_verified_file_round_trips_and_reports_bad_lines(tmp_path):
    store = RecipeStore(tmp_path / "recipes.jsonl")
    assert store.verified_path == tmp_path / "applications.verified.jsonl"
    assert RecipeStore(tmp_path / "r.jsonl", tmp_path / "x" / "apps.jsonl").verified_path == \
        tmp_path / "x" / "apps.verified.jsonl"
    app = _verified("r", "intent=a", True, 0)
    store.verified_path.write_text(app.to_json() + "\n")
    (again,) = RecipeStore(tmp_path / "recipes.jsonl").verified_applications()
    assert again == app and again.to_json() == app.to_json()
    store.verified_path.write_text('{"recipe_id": "r"}\n')
    with pytest.raises(InvalidInputError, match=r"applications.verified.jsonl:1: not a valid verified recipe"):
        RecipeStore(tmp_path / "recipes.jsonl").verified_applications()


# ------------------------------------------------------- "What now?" in the PR comment


HOSTILE = Recipe(
    recipe_id="evil_v1",
    name="<img src=x onerror=alert(1)> @octocat [click](javascript:alert(1)) | **bold**\n# heading",
    intervention_type="x", description="d",
    source_paper_arxiv="2408.06133) [evil](javascript:alert(1)",
    applies_when={"slice_tag_contains": ["intent="]},
)


def test_pr_comment_what_now_section(work):
    store = RecipeStore("recipes.jsonl")
    d = _rejection()
    _log_n(store, "lora_rank_reduce_v1", [True, True, False, True, True])
    recs = recommendations_for(d, RecipeStore("recipes.jsonl"))
    assert len(recs) == 3 and recs[0]["recipe_id"] == "lora_rank_reduce_v1"
    assert recs[0]["record"].startswith("measured: 4/5 succeeded, 95% CI 0.38–0.96 on driver slice")
    text = render(d, "pr-comment", recommendations=recs)
    section = text[text.index("### 🧰 What now?"):]
    assert section.startswith(
        "### 🧰 What now?\n\nRepair recipes from the recipe library that match this rejection, best first:"
        "\n\n1. **Reduce LoRA rank (heuristic)**\n   - Why: it applies to any slice")
    assert ("   - Record: measured: 4/5 succeeded, 95% CI 0.38–0.96 on driver slice intent=billing\\_dispute"
            in section)
    assert "[arXiv 2408.06133](https://arxiv.org/abs/2408.06133)" in section
    assert "   - Record: no record yet: cited prior" in section
    assert "   - Why: the driver slice intent=billing\\_dispute contains “intent=”" in section
    assert section.index("What now") < section.index("_Generated by adaptergate")
    assert text.startswith(render(d, "pr-comment")[:200])
    # no recommendation for an acceptance, none asked for
    assert recommendations_for(decision_054(1), store) == [] and recommendations_for(d, store, k=0) == []


def test_pr_comment_section_escapes_hostile_recipe_text(tmp_path):
    store = _store_with(tmp_path, [HOSTILE])
    recs = recommendations_for(_rejection(), store)
    assert recs[0]["arxiv_url"] is None  # not a well-formed arXiv id: no link at all
    text = render(_rejection(), "pr-comment", recommendations=recs)
    section = text[text.index("### 🧰 What now?"):]
    assert "<img" not in section and "&lt;img src=x onerror=alert(1)&gt;" in section
    assert "@octocat" not in section and "@\u200boctocat" in section
    assert "\\[click\\](javascript:alert(1))" in section
    assert not re.search(r"(?<!\\)\]\(", section.replace("](https://arxiv.org/abs/", ""))  # no live link
    assert "&#124;" in section and "\\*\\*bold\\*\\*" in section and "\n# heading" not in section
    assert "arxiv.org" not in section
    # a caller's own dicts: the link is rebuilt from a well-formed id, never taken from the item
    items = [{"name": "n", "arxiv_id": "2408.06133v2", "arxiv_url": "javascript:alert(1)", "why": "w",
              "record": "r"},
             {"name": "m", "arxiv_id": "x) [a](javascript:b", "arxiv_url": "https://evil.example", "why": "",
              "record": None}]
    section = render(_rejection(), "markdown", recommendations=items)
    assert "[arXiv 2408.06133v2](https://arxiv.org/abs/2408.06133v2)" in section
    assert "javascript" not in section and "evil.example" not in section
    assert "2. **m**\n   - Why: \n   - Record: no record yet" in section


@pytest.mark.parametrize("make", [lambda: _rejection(), lambda: GateDecision.model_validate(decision_054(1)),
                                  lambda: GateDecision.model_validate(decision_054(2))])
def test_absent_section_leaves_existing_renders_unchanged(make):
    d = make()
    env = get_environment()
    source = env.loader.get_source(env, "report.md.j2")[0]
    start = source.index("{% if recommendations %}")
    end = source.index("{% endif %}\n", source.index("recipes verify", start)) + len("{% endif %}\n")
    without = env.from_string(source[:start] + source[end:])  # the template before this section existed
    from adaptergate.report.view import report_context as _context

    for fmt in ("markdown", "pr-comment"):
        expected = without.render(_context(d, fmt=fmt, show_failures=5, staleness_threshold_days=30, target=None))
        assert render(d, fmt) == expected
        assert render(d, fmt, recommendations=None) == expected == render(d, fmt, recommendations=[])
        assert "What now" not in expected
    assert render(d, "json", recommendations=[{"name": "x"}]) == render(d, "json")
