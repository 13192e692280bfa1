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
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergate.cli import main
from adaptergate.errors import InvalidInputError
from adaptergate.examples import EXAMPLE_HOLDOUT
from adaptergate.ledger import AuditLog
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
