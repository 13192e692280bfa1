"""Promotion as code: a manifest in a real git repository, gated from what a PR changed.

The repository holds the tiny demo model and its two real LoRA adapters
(trained once per session). The base commit has three tenants; the head
commit promotes acme (the corrupted candidate, replacing the adapter in
place, so the baseline must come out of git), edits globex's description
only, and rolls initech back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from adaptergate.manifest.discovery import plan_manifest_gate, run_manifest_gate
from adaptergate.errors import InvalidInputError
from adaptergate.pipeline.options import GateOptions

pytestmark = pytest.mark.slow

BASE_ID = "tiny-llama"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git(root: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "bot", "GIT_AUTHOR_EMAIL": "bot@example.com",
        "GIT_COMMITTER_NAME": "bot", "GIT_COMMITTER_EMAIL": "bot@example.com",
        "GIT_AUTHOR_DATE": "2026-11-01T10:00:00Z", "GIT_COMMITTER_DATE": "2026-11-01T10:00:00Z",
        "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(root.parent),
    }
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _copy_adapter(src: Path, dest: Path) -> str:
    """Copy a PEFT adapter, declaring the manifest's base id; returns the weights' sha256."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    cfg = json.loads((dest / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = BASE_ID
    (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    return _sha(dest / "adapter_model.safetensors")


def _entry(version: str, path: str, sha: str, base_sha: str, **extra) -> dict:
    return {
        "adapter": {"version": version, "path": path, "sha256": sha},
        "base_model": {"id": BASE_ID, "path": "models/tiny-llama", "sha256": base_sha},
        "holdout": "holdouts/support.jsonl",
        "gate": {"slice_epsilon": 0.10, "metric": "exact"},
        **extra,
    }


def _write(root: Path, manifest: dict) -> None:
    import yaml

    (root / "adaptergate.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


@pytest.fixture
def repo(tmp_path, demo_assets):
    from adaptergate.backends.base_model import inspect_base

    root = tmp_path / "adapters-repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(demo_assets.base_dir, root / "models" / "tiny-llama")
    base_sha = inspect_base(root / "models" / "tiny-llama").sha256
    (root / "holdouts").mkdir()
    shutil.copy(demo_assets.holdout, root / "holdouts" / "support.jsonl")
    good, bad = demo_assets.baseline_adapter, demo_assets.candidate_adapter

    acme_v1 = _copy_adapter(good, root / "adapters" / "acme")
    globex = _copy_adapter(good, root / "adapters" / "globex" / "1.0.0")
    ini_v1 = _copy_adapter(good, root / "adapters" / "initech" / "1.0.0")
    ini_v2 = _copy_adapter(bad, root / "adapters" / "initech" / "2.0.0")
    base_manifest = {"schema_version": 1, "tenants": {
        "acme": _entry("1.0.0", "adapters/acme", acme_v1, base_sha),
        "globex": _entry("1.0.0", "adapters/globex/1.0.0", globex, base_sha, description="old words"),
        "initech": _entry("2.0.0", "adapters/initech/2.0.0", ini_v2, base_sha),
    }}
    _write(root, base_manifest)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "tenants at their production adapters")
    base_commit = git(root, "rev-parse", "HEAD")

    acme_v2 = _copy_adapter(bad, root / "adapters" / "acme")  # replaced in place
    head_manifest = json.loads(json.dumps(base_manifest))
    head_manifest["tenants"]["acme"]["adapter"].update(version="1.1.0", sha256=acme_v2)
    head_manifest["tenants"]["globex"]["description"] = "new words"
    head_manifest["tenants"]["initech"]["adapter"].update(version="1.0.0", path="adapters/initech/1.0.0", sha256=ini_v1)
    head_manifest["tenants"]["initech"]["rollback"] = {"from_version": "2.0.0", "reason": "refunds broke in prod"}
    _write(root, head_manifest)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "promote acme 1.1.0, roll initech back")
    return {"root": root, "base": base_commit, "head": git(root, "rev-parse", "HEAD"),
            "manifest": head_manifest, "base_sha": base_sha}


def test_discovery_gates_only_the_moved_adapter(repo, tmp_path):
    plan = plan_manifest_gate(repo["root"] / "adaptergate.yaml", repo["base"], cache_dir=tmp_path / "cache")
    kinds = {p.change.tenant: p.change.kind for p in plan.tenants}
    assert kinds == {"acme": "promotion", "globex": "metadata", "initech": "rollback"}
    jobs = {p.change.tenant: p.job for p in plan.tenants if p.job is not None}
    assert list(jobs) == ["acme"]  # metadata edits and rollbacks are not scored
    acme = jobs["acme"]
    # versions named with their weights' hash (semver build metadata): never ambiguous
    man = repo["manifest"]["tenants"]["acme"]["adapter"]
    assert acme.candidate == f"1.1.0+{man['sha256'][:12]}"
    assert acme.baseline.startswith("1.0.0+") and acme.baseline != "1.0.0+" + man["sha256"][:12]
    # the baseline's bytes were replaced in the working tree: taken from the base commit
    assert acme.model is not None and acme.model.baseline_adapter != repo["root"] / "adapters" / "acme"
    try:
        outcome = run_manifest_gate(plan)
    finally:
        plan.cleanup()
    assert not Path(acme.model.baseline_adapter).exists()  # the extracted copy is cleaned up
    by = {t.tenant: t for t in outcome.tenants}
    assert by["acme"].error is None, by["acme"].error
    assert by["acme"].status == "rejected" and by["acme"].decision.driver_slice_tag == "intent=refund"
    assert by["globex"].status == "skipped" and "description" in by["globex"].note
    assert by["initech"].status == "review" and "refunds broke in prod" in by["initech"].note
    assert outcome.exit_code == 1


def test_tenants_on_one_base_load_it_once(repo, tmp_path, monkeypatch):
    """A PR that moves two tenants on the same base loads the base model once, and
    each tenant still gets its own verdict."""
    from adaptergate.backends import peft as runner_mod
    root = repo["root"]
    head = json.loads(json.dumps(repo["manifest"]))
    sha = _copy_adapter(root / "adapters" / "initech" / "2.0.0", root / "adapters" / "globex" / "1.1.0")
    head["tenants"]["globex"]["adapter"].update(version="1.1.0", path="adapters/globex/1.1.0", sha256=sha)
    _write(root, head)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "promote globex 1.1.0 too")

    loads = []
    real_load = runner_mod.load_causal_lm
    monkeypatch.setattr(runner_mod, "load_causal_lm", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    plan = plan_manifest_gate(root / "adaptergate.yaml", repo["base"], cache_dir=tmp_path / "cache")
    try:
        outcome = run_manifest_gate(plan)
    finally:
        plan.cleanup()
    by = {t.tenant: t for t in outcome.tenants}
    assert [t for t, o in by.items() if o.decision is not None] == ["acme", "globex"]
    assert len(loads) == 1
    for tenant in ("acme", "globex"):
        d = by[tenant].decision
        assert by[tenant].status == "rejected" and d.driver_slice_tag == "intent=refund", tenant
    assert by["acme"].decision.delta == by["globex"].decision.delta  # same adapters, same scores


def _problems(repo, mutate) -> InvalidInputError:
    manifest = json.loads(json.dumps(repo["manifest"]))
    mutate(manifest)
    _write(repo["root"], manifest)
    with pytest.raises(InvalidInputError) as info:
        plan_manifest_gate(repo["root"] / "adaptergate.yaml", repo["base"])
    return info.value


def test_tampered_weights_are_refused_before_anything_runs(repo):
    weights = repo["root"] / "adapters" / "acme" / "adapter_model.safetensors"
    expected = repo["manifest"]["tenants"]["acme"]["adapter"]["sha256"]
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    err = _problems(repo, lambda m: None)
    assert err.message.startswith(f"tenant acme: adapter.sha256: expected {expected}, got {_sha(weights)}")
    assert err.exit_code == 2


def test_wrong_base_is_refused(repo):
    cfg_path = repo["root"] / "adapters" / "acme" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "meta-llama/Llama-3.1-8B"
    cfg_path.write_text(json.dumps(cfg))

    def new_sha(m):  # the config is not hashed, the weights are: the manifest stays consistent
        pass

    err = _problems(repo, new_sha)
    assert "tenant acme: base_model:" in err.message and "meta-llama/Llama-3.1-8B" in err.message


def test_base_weights_hash_is_checked(repo):
    err = _problems(repo, lambda m: m["tenants"]["acme"]["base_model"].update(sha256="0" * 64))
    assert err.message.startswith("tenant acme: base_model.sha256: expected " + "0" * 64)


def test_version_must_increase_unless_flagged_as_rollback(repo):
    err = _problems(repo, lambda m: m["tenants"]["acme"]["adapter"].update(version="1.0.0"))
    assert "tenant acme: adapter.version: expected a version above 1.0.0" in err.message
    err = _problems(repo, lambda m: m["tenants"]["initech"].pop("rollback"))
    assert "tenant initech: adapter.version: expected a version above 2.0.0" in err.message
    err = _problems(repo, lambda m: m["tenants"]["initech"]["rollback"].update(from_version="1.5.0"))
    assert "tenant initech: rollback.from_version: expected 2.0.0, got 1.5.0" in err.message


def test_every_problem_is_listed(repo):
    def both(m):
        m["tenants"]["acme"]["adapter"]["version"] = "0.9.0"
        m["tenants"]["initech"].pop("rollback")

    err = _problems(repo, both)
    assert len(err.details) == 2 and "(and 1 more)" in err.message


def test_unknown_base_ref_is_one_clear_line(repo):
    with pytest.raises(InvalidInputError, match="fetch-depth: 0"):
        plan_manifest_gate(repo["root"] / "adaptergate.yaml", "0" * 40)


def test_action_gates_each_changed_tenant_with_one_comment(repo, tmp_path):
    from github_stub import GitHubStub, make_pull_request_event
    from test_action import run_action

    event = make_pull_request_event(owner="acme", repo="adapters", number=7, head_sha=repo["head"],
                                    base_sha=repo["base"])
    with GitHubStub(owner="acme", repo="adapters") as stub:
        stub.add_pull(7, head_sha=repo["head"], base_sha=repo["base"])
        run = run_action(repo["root"], stub, {"manifest": "adaptergate.yaml", "cache-dir": str(tmp_path / "c")},
                         event=event, base_with={})
        assert stub.violations == []
    assert run.code == 1, run.stdout + run.stderr
    o = run.outputs
    assert o["decision"] == "rejected" and o["approval"] == "reject" and o["verdict"] == "REJECTED"
    assert o["driver-slice"] == "acme: intent=refund"
    tenants = {t["tenant"]: t for t in json.loads(o["tenants"])}
    assert tenants["acme"]["status"] == "rejected" and tenants["acme"]["from"] == "1.0.0"
    assert tenants["globex"]["status"] == "skipped" and tenants["initech"]["status"] == "review"

    [comment] = stub.comments_on(7)
    body = comment["body"]
    assert body.startswith("<!-- adaptergate:report tenant=manifest%3Aadaptergate.yaml -->")
    assert "| acme | promotion | 1.0.0 → 1.1.0 | 🚫 rejected" in body
    assert "| globex | metadata |" in body and "| initech | rollback | 2.0.0 → 1.0.0 | 👀 needs review" in body
    assert "### 🚫 acme" in body and "intent=refund" in body

    runs = {r["name"]: r for r in stub.check_runs.values()}
    assert set(runs) == {"adaptergate / acme", "adaptergate / initech"}  # none for a metadata edit
    assert runs["adaptergate / acme"]["conclusion"] == "failure"
    assert runs["adaptergate / acme"]["head_sha"] == repo["head"]
    assert runs["adaptergate / initech"]["conclusion"] == "action_required"
    assert (repo["root"] / "adaptergate-report" / "acme" / "report.json").is_file()
    assert (repo["root"] / o["report-path"]).read_text().strip() == o["tenants"]


def test_cli_gate_manifest_json_and_usage_errors(repo, tmp_path, capsys, monkeypatch):
    from adaptergate.cli.app import main

    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    manifest = str(repo["root"] / "adaptergate.yaml")
    replay = tmp_path / "replay.jsonl"
    code = main(["gate", "--manifest", manifest, "--base-ref", repo["base"], "--format", "json",
                 "--cache-dir", str(tmp_path / "c"), "--replay-path", str(replay)])
    out, err = capsys.readouterr()
    assert code == 1, err
    doc = json.loads(out)
    by = {t["tenant"]: t for t in doc["tenants"]}
    assert by["acme"]["status"] == "rejected" and by["acme"]["decision"]["driver_slice_tag"] == "intent=refund"
    assert by["acme"]["decision"]["candidate_id"].startswith("1.1.0+")
    assert by["acme"]["decision"]["baseline_id"].startswith("1.0.0+")
    assert by["globex"]["status"] == "skipped" and by["initech"]["status"] == "review"
    assert main(["replay", "list", "--tenant", "acme", "--replay-path", str(replay)]) == 0
    assert "1.1.0" in capsys.readouterr().out

    # only one tenant, and it is not the one that moved: nothing scored, exit 0
    assert main(["gate", "--manifest", manifest, "--base-ref", repo["base"], "--tenant", "globex"]) == 0
    assert "metadata" in capsys.readouterr().out

    for argv, message in (
        (["--holdout", "h.jsonl"], "--holdout does not go with --manifest"),
        ([], None),
    ):
        full = ["gate", "--manifest", manifest, *argv] + (["--base-ref", repo["base"]] if message else [])
        assert main(full) == 2
        err = capsys.readouterr().err
        assert (message or "--manifest needs --base-ref") in err and "Traceback" not in err
    assert main(["gate", "--manifest", manifest, "--base-ref", repo["base"], "--tenant", "nobody"]) == 2
    assert "no tenant 'nobody'" in capsys.readouterr().err


# -------------------------------------------------------------- judged tenants

ONE_CRITERION = [{"name": "accuracy", "weight": 1.0, "rubric": "The answer does what the reference answer does."}]


def _judged(repo, judge: dict | None) -> None:
    """acme gated by the judge: the policy is read from the base commit, so a new base commit
    gets the judge (and any new file in the working tree), then the promotion goes on top."""
    root = repo["root"]
    gate = {"metric": "judge", **({"judge": judge} if judge is not None else {})}
    head_commit = repo["head"]
    git(root, "checkout", "-q", repo["base"], "--", "adapters", "adaptergate.yaml")
    base = yaml.safe_load((root / "adaptergate.yaml").read_text())
    base["tenants"]["acme"]["gate"] = gate
    _write(root, base)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "acme is judged")
    repo["base"] = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", head_commit, "--", "adapters", "adaptergate.yaml")
    head = json.loads(json.dumps(repo["manifest"]))
    head["tenants"]["acme"]["gate"] = gate
    _write(root, head)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "promote acme 1.1.0 (judged)")
    repo["head"] = git(root, "rev-parse", "HEAD")


def test_a_judged_tenant_takes_its_judge_from_the_manifest_and_the_command_line_wins(repo, tmp_path):
    root = repo["root"]
    (root / "judges").mkdir()
    (root / "judges" / "acme.yaml").write_text(
        "- {name: accuracy, weight: 3, rubric: right action}\n- {name: tone, weight: 1, rubric: polite}\n"
    )
    _judged(repo, {"criteria": "judges/acme.yaml", "url": "https://judge.example/v1", "name": "big-judge",
                   "pairwise": True, "retries": 4})
    plan = plan_manifest_gate(root / "adaptergate.yaml", repo["base"])
    (job,) = [p.job for p in plan.tenants if p.job is not None]
    judge = job.model.judge
    assert job.model.metric == "judge"
    assert [(c.name, c.weight) for c in judge.criteria] == [("accuracy", 3.0), ("tone", 1.0)]
    assert (judge.url, judge.name, judge.model, judge.pairwise, judge.retries) == (
        "https://judge.example/v1", "big-judge", None, True, 4)
    plan.cleanup()

    # a judge named on the command line (or as Action inputs) replaces the manifest's judge,
    # the manifest's other judge settings stay
    plan = plan_manifest_gate(root / "adaptergate.yaml", repo["base"],
                              overrides=GateOptions(judge_model=root / "models" / "tiny-llama"))
    (job,) = [p.job for p in plan.tenants if p.job is not None]
    judge = job.model.judge
    assert (judge.url, judge.name, judge.model) == (None, None, root / "models" / "tiny-llama")
    assert judge.pairwise and [c.name for c in judge.criteria] == ["accuracy", "tone"]
    plan.cleanup()


@pytest.mark.parametrize("judge, why", [
    (None, "tenant acme: gate.judge: --metric judge needs exactly one judge"),
    ({"url": "https://judge.example/v1"}, "tenant acme: gate.judge: --judge-url needs --judge-name"),
    ({"model": "models/tiny-llama", "criteria": [{"name": "accuracy"}]}, "gate.judge.criteria"),
    ({"model": "models/tiny-llama", "criteria": "judges/missing.yaml"}, "judges/missing.yaml"),
])
def test_a_judged_tenant_without_a_usable_judge_is_one_line_before_anything_runs(repo, judge, why):
    _judged(repo, judge)
    with pytest.raises(InvalidInputError) as info:
        plan_manifest_gate(repo["root"] / "adaptergate.yaml", repo["base"])
    assert why in info.value.message and "\n" not in info.value.message


def test_a_judged_tenant_is_gated_by_its_local_judge(repo, tmp_path):
    """End to end: the tiny model judges its own adapters' answers (plumbing, not quality)."""
    _judged(repo, {"model": "models/tiny-llama", "criteria": ONE_CRITERION, "reasoning_tokens": 0})
    plan = plan_manifest_gate(repo["root"] / "adaptergate.yaml", repo["base"], cache_dir=tmp_path / "cache")
    try:
        outcome = run_manifest_gate(plan)
    finally:
        plan.cleanup()
    acme = {t.tenant: t for t in outcome.tenants}["acme"]
    assert acme.error is None, acme.error
    d = acme.decision
    assert d.judge is not None and [c.name for c in d.judge.criteria] == ["accuracy"]
    assert d.evaluation["metric"] == "judge" and d.evaluation["judge"]["backend"] == "model"
    assert d.evaluation["judge"]["judged"] > 0, d.evaluation


# -------------------------------------------------------------- Hub adapters

REV_GOOD, REV_BAD = "1" * 40, "2" * 40


def _hub_commit(repo, version: str, rev: str, sha: str) -> str:
    root = repo["root"]
    manifest = json.loads(json.dumps(repo["manifest"]))
    manifest["tenants"]["acme"]["adapter"] = {"version": version, "hf_repo": "org/acme-lora", "revision": rev,
                                              "sha256": sha}
    _write(root, manifest)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"acme {version} from the Hub")
    return git(root, "rev-parse", "HEAD")


def test_hub_adapters_are_gated_from_the_hub_cache_at_their_pinned_revisions(repo, demo_assets, tmp_path,
                                                                            monkeypatch):
    """Baseline and candidate given as hf_repo + revision: both come out of the Hub cache
    (HF_HUB_OFFLINE: nothing is downloaded), are verified like local ones, and gated."""
    from adaptergate.manifest.model import hub_snapshot

    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    good = _copy_adapter(demo_assets.baseline_adapter, hub_snapshot(hub, "org/acme-lora", REV_GOOD))
    base = _hub_commit(repo, "1.2.0", REV_GOOD, good)
    bad_dir = tmp_path / "bad"
    bad = _copy_adapter(demo_assets.candidate_adapter, bad_dir)
    _hub_commit(repo, "1.3.0", REV_BAD, bad)
    manifest = repo["root"] / "adaptergate.yaml"

    # the candidate's revision is not in the cache yet: one line, with the command that fetches it
    with pytest.raises(InvalidInputError) as info:
        plan_manifest_gate(manifest, base)
    assert info.value.message == (
        f"tenant acme: adapter.hf_repo: expected org/acme-lora@{REV_BAD} on disk, got not in the Hub cache"
        f" {hub}, and HF_HUB_OFFLINE is set (huggingface-cli download org/acme-lora --revision {REV_BAD})"
    )

    snap = hub_snapshot(hub, "org/acme-lora", REV_BAD)
    shutil.copytree(bad_dir, snap)
    plan = plan_manifest_gate(manifest, base, cache_dir=tmp_path / "cache")
    try:
        (job,) = [p.job for p in plan.tenants if p.job is not None]
        assert job.model.candidate_adapter == snap
        assert job.model.baseline_adapter == hub_snapshot(hub, "org/acme-lora", REV_GOOD)
        outcome = run_manifest_gate(plan)
    finally:
        plan.cleanup()
    acme = {t.tenant: t for t in outcome.tenants}["acme"]
    assert acme.error is None, acme.error
    assert acme.status == "rejected" and acme.decision.driver_slice_tag == "intent=refund"

    # weights in the cache that are not the pinned ones are refused like tampered local weights
    (snap / "adapter_model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(InvalidInputError) as info:
        plan_manifest_gate(manifest, base)
    assert info.value.message.startswith(f"tenant acme: adapter.sha256: expected {bad}, got ")
