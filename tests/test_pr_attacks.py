"""A pull request cannot defeat the gate that reviews it.

Each test is an attack from the content of a pull request — the manifest, the
holdout, files at the repository root, paths, query text — run the way the
runner runs the Action (``entrypoint.py`` in a subprocess, a real git
repository as the workspace, the stand-in GitHub server). The base commit runs
a good adapter; the pull request promotes the tiny demo model's corrupted
candidate, whose refund answers are broken (rejected, exit 1, under the base's
settings). Whatever the attack, the corrupted candidate is still rejected or
the run refuses (exit 2); code the pull request brings never runs (a marker
file it would write never appears); the token reaches no server but the
GitHub API; nothing outside the checkout is read.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from github_stub import GitHubStub, make_pull_request_event
from test_action import PR, SCORER, _holdout, commit_all, git, run_action
from test_judge import StandIn

MARKER_CODE = '''
import pathlib
pathlib.Path({marker!r}).write_text("pwned by " + __name__)
def score(*args, **kwargs):
    pathlib.Path({marker!r}).write_text("pwned by " + __name__)
    return 1.0
score_batch = None
'''


def _evil(marker: Path) -> str:
    return MARKER_CODE.format(marker=str(marker))


@pytest.fixture
def stub():
    with GitHubStub(owner="acme", repo="adapters") as s:
        yield s
        assert s.violations == [], s.violations


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory beside the checkout holding what an attacker would like read."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "credentials").write_text("aws_secret_access_key = SUPERSECRET-42\n")
    return d


def _event(base: str, head: str) -> dict:
    return make_pull_request_event(owner="acme", repo="adapters", number=PR, head_sha=head, base_sha=base)


def _everything(run, stub: GitHubStub) -> str:
    """Everything the run showed anyone: log, summary, outputs, comments, check runs."""
    parts = [run.stdout, run.stderr, run.summary, json.dumps(run.outputs)]
    parts += [c["body"] for c in stub.comments_on(PR)]
    parts += [json.dumps(r) for r in stub.check_runs.values()]
    return "\n".join(parts)


# =============================================================================
# Single-tenant mode: holdout, settings file and scorer named by the workflow
# =============================================================================

SINGLE_WITH = {
    "tenant": "acme", "holdout": "holdouts/acme.jsonl", "scorer": "gate_scorer:score",
    "candidate": "candidate", "baseline": "baseline", "config": "adaptergate.json",
}
CONFIG = {"schema_version": 1, "tenants": {"acme": {"slice_epsilon": 0.10}}}


@pytest.fixture
def single(tmp_path) -> tuple[Path, str]:
    """A repository whose base commit gates acme with the refund-breaking scorer."""
    ws = tmp_path / "workspace"
    (ws / "holdouts").mkdir(parents=True)
    (ws / "holdouts" / "acme.jsonl").write_text(_holdout(), encoding="utf-8")
    (ws / "gate_scorer.py").write_text(SCORER, encoding="utf-8")
    (ws / "adaptergate.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    return ws, commit_all(ws, "base: acme's gate")


def _single(ws: Path, base: str, stub, **kw):
    head = commit_all(ws, "the pull request")
    stub.add_pull(PR, head_sha=head, base_sha=base)
    return run_action(ws, stub, SINGLE_WITH, event=_event(base, head), base_with={}, **kw)


def test_a_pr_that_rewrites_holdout_settings_and_scorer_is_judged_by_the_base(single, stub, marker):
    ws, base = single
    (ws / "holdouts" / "acme.jsonl").write_text(_holdout(n_refund=0), encoding="utf-8")  # refunds gone
    (ws / "adaptergate.json").write_text(json.dumps(
        {"schema_version": 1, "tenants": {"acme": {"epsilon": 1.0, "slice_epsilon": 1.0, "decision": "threshold"}}}))
    (ws / "gate_scorer.py").write_text(_evil(marker))
    run = _single(ws, base, stub)
    assert run.code == 1, run.stdout + run.stderr
    assert not marker.exists()
    assert run.outputs["driver-slice"] == "intent=refund"
    # the report leads with what the pull request changes in its own gate
    head = run.summary.split("### Evidence")[0]
    assert "This pull request changes the gate policy of acme" in head
    for what in ("holdout holdouts/acme.jsonl changed", "settings file adaptergate.json changed",
                 "scorer module gate\\_scorer.py changed"):
        assert what in head, what
    [comment] = stub.comments_on(PR)
    assert "This pull request changes the gate policy of acme" in comment["body"].split("### Evidence")[0]
    # the failing queries are not annotated on the checkout's lines (they are the base's)
    [check] = stub.check_runs.values()
    assert check["conclusion"] == "failure" and check["annotations_all"] == []


def test_a_pr_that_only_changes_policy_and_passes_needs_a_review(single, stub):
    ws, base = single
    (ws / "gate_scorer.py").write_text(SCORER.replace('return 0.0', 'return 1.0'))  # candidate fixed
    commit_all(ws, "fixed candidate, in the base too")
    base = git(ws, "rev-parse", "HEAD")
    (ws / "adaptergate.json").write_text(json.dumps({"schema_version": 1, "tenants": {"acme": {"epsilon": 0.5}}}))
    run = _single(ws, base, stub)
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["approval"] == "review"
    [check] = stub.check_runs.values()
    assert check["conclusion"] == "action_required"
    assert check["output"]["title"].startswith("NEEDS REVIEW: this pull request changes its own gate policy")


def test_library_shadows_at_the_repository_root_never_run(single, stub, marker):
    ws, base = single
    for name in ("github", "jinja2", "yaml", "numpy", "rich", "filelock", "orjson", "scipy", "typing_extensions"):
        (ws / f"{name}.py").write_text(_evil(marker))
    (ws / "sitecustomize.py").write_text(_evil(marker))
    run = _single(ws, base, stub)
    assert run.code == 1, run.stdout + run.stderr
    assert not marker.exists()
    assert len(stub.comments_on(PR)) == 1  # PyGithub, jinja2 and the rest were the real ones


def test_a_scorer_module_the_pr_adds_is_refused(single, stub, marker):
    ws, base = single
    (ws / "new_scorer.py").write_text(_evil(marker))
    head = commit_all(ws, "the pull request")
    stub.add_pull(PR, head_sha=head, base_sha=base)
    run = run_action(ws, stub, {**SINGLE_WITH, "scorer": "new_scorer:score"}, event=_event(base, head), base_with={})
    assert run.code == 2, run.stdout + run.stderr
    assert "cannot bring the code it is judged by" in run.stdout and not marker.exists()


def test_a_shallow_clone_cannot_be_verified_and_says_how_to_fix_it(single, stub):
    ws, _ = single
    run = _single(ws, "b" * 40, stub)
    assert run.code == 2, run.stdout + run.stderr
    assert "fetch-depth: 0" in run.stdout and "Traceback" not in run.stdout + run.stderr


def test_the_error_path_cannot_fail(single, stub, tmp_path):
    """GITHUB_OUTPUT unwritable and the holdout missing: exit 2 (not 1, the verdict), no traceback."""
    ws, base = single
    (ws / "holdouts" / "acme.jsonl").unlink()
    git(ws, "rm", "-q", "--cached", "holdouts/acme.jsonl")
    commit_all(ws, "no holdout at all")
    base = git(ws, "rev-parse", "HEAD")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    run = _single(ws, base, stub, extra_env={"GITHUB_OUTPUT": str(blocked), "GITHUB_STEP_SUMMARY": str(blocked)})
    assert run.code == 2, run.stdout + run.stderr
    assert "holdout" in run.stdout and "Traceback" not in run.stdout + run.stderr


ANSI = "\x1b[2J\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
BIDI = "refund\u202egpj.exe"


def test_control_characters_in_ids_and_inputs_are_inert(tmp_path, stub):
    ws = tmp_path / "workspace"
    (ws / "holdouts").mkdir(parents=True)
    rows = [{"id": f"refund_{i}{ANSI if i % 2 else BIDI}", "prompt": "q", "gold": "ok",
             "slices": ["intent=refund"]} for i in range(12)]
    rows += [{"id": f"billing_{i}", "prompt": "q", "gold": "ok", "slices": ["intent=billing"]} for i in range(36)]
    (ws / "holdouts" / "acme.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (ws / "gate_scorer.py").write_text(SCORER)
    base = commit_all(ws, "base")
    stub.add_pull(PR, head_sha=base, base_sha=base)
    run = run_action(ws, stub, {**SINGLE_WITH, "config": "", "tenant": "acme\n::warning::pwned",
                                "slice-epsilon": "0.1"}, event=_event(base, base), base_with={})
    assert run.code == 1, run.stdout + run.stderr
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in run.stdout + run.stderr, repr(raw)
    assert not any(ln.startswith("::warning::pwned") for ln in run.stdout.splitlines())
    errors = [ln for ln in run.stdout.splitlines() if ln.startswith("::error ")]
    assert errors and all("\\x1b" in e or "\\u202e" in e for e in errors[:4])
    [check] = stub.check_runs.values()
    titles = [a["title"] for a in check["annotations_all"]]
    assert titles and not any(ch in t for t in titles for ch in ("\x1b", "\x07", "\u202e", "\n"))


# =============================================================================
# Manifest mode: the tiny demo model and its real adapters in a git repository
# =============================================================================

BASE_ID = "tiny-llama"


@dataclass
class AdaptersRepo:
    root: Path
    base: str
    good: Path
    bad: Path
    manifest: dict

    def entry(self) -> dict:
        return json.loads(json.dumps(self.manifest["tenants"]["acme"]))


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_adapter(src: Path, dest: Path) -> str:
    shutil.copytree(src, dest)
    cfg = json.loads((dest / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = BASE_ID
    (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    return _sha(dest / "adapter_model.safetensors")


def _write_manifest(root: Path, manifest: dict) -> None:
    (root / "adaptergate.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def _base_repo(tmp_path: Path, demo_assets, gate: dict | None = None) -> AdaptersRepo:
    from adaptergate.backends.base_model import inspect_base

    root = tmp_path / "workspace"
    root.mkdir()
    shutil.copytree(demo_assets.base_dir, root / "models" / "tiny-llama")
    (root / "holdouts").mkdir()
    shutil.copy(demo_assets.holdout, root / "holdouts" / "support.jsonl")
    good = _copy_adapter(demo_assets.baseline_adapter, root / "adapters" / "acme" / "1.0.0")
    manifest = {"schema_version": 1, "tenants": {"acme": {
        "adapter": {"version": "1.0.0", "path": "adapters/acme/1.0.0", "sha256": good},
        "base_model": {"id": BASE_ID, "path": "models/tiny-llama",
                       "sha256": inspect_base(root / "models" / "tiny-llama").sha256},
        "holdout": "holdouts/support.jsonl",
        "gate": gate or {"slice_epsilon": 0.10, "metric": "exact"},
    }}}
    _write_manifest(root, manifest)
    base = commit_all(root, "acme in production at 1.0.0")
    return AdaptersRepo(root, base, demo_assets.baseline_adapter, demo_assets.candidate_adapter, manifest)


@pytest.fixture
def adapters(tmp_path, demo_assets) -> AdaptersRepo:
    return _base_repo(tmp_path, demo_assets)


def _promote(repo: AdaptersRepo, edit=None, files: dict[str, str] | None = None) -> str:
    """The pull request: acme's corrupted 1.1.0, with ``edit`` applied to its entry."""
    entry = repo.entry()
    sha = _copy_adapter(repo.bad, repo.root / "adapters" / "acme" / "1.1.0")
    entry["adapter"] = {"version": "1.1.0", "path": "adapters/acme/1.1.0", "sha256": sha}
    if edit is not None:
        edit(entry)
    _write_manifest(repo.root, {"schema_version": 1, "tenants": {"acme": entry}})
    for name, text in (files or {}).items():
        (repo.root / name).parent.mkdir(parents=True, exist_ok=True)
        (repo.root / name).write_text(text)
    return commit_all(repo.root, "promote acme 1.1.0")


def _gate(repo: AdaptersRepo, head: str, stub, with_: dict | None = None, **kw):
    stub.add_pull(PR, head_sha=head, base_sha=repo.base)
    return run_action(repo.root, stub, {"manifest": "adaptergate.yaml",
                                        "cache-dir": str(repo.root.parent / "cache"), **(with_ or {})},
                      event=_event(repo.base, head), base_with={}, **kw)


def _acme(run) -> dict:
    return {t["tenant"]: t for t in json.loads(run.outputs["tenants"])}["acme"]




@pytest.mark.slow
def test_a_pr_metric_module_and_library_shadows_never_run(adapters, stub, marker):
    head = _promote(adapters, lambda e: e["gate"].update(metric="evil_metric:score"), files={
        "evil_metric.py": _evil(marker), "github.py": _evil(marker), "jinja2.py": _evil(marker),
    })
    run = _gate(adapters, head, stub)
    assert run.code == 1, run.stdout + run.stderr
    assert not marker.exists()
    assert _acme(run)["status"] == "rejected"
    [comment] = stub.comments_on(PR)
    top = comment["body"].split("| tenant |")[0]
    assert "This pull request changes the gate policy of acme" in top and "gate.metric exact → evil\\_metric:score" in top


@pytest.mark.slow
def test_a_metric_module_the_workflow_did_not_name_is_refused(tmp_path, demo_assets, stub, marker):
    """Even once merged, a manifest's module:function runs only if the workflow names it."""
    repo = _base_repo(tmp_path, demo_assets, gate={"metric": "evil_metric:score"})
    (repo.root / "evil_metric.py").write_text(_evil(marker))
    repo.base = commit_all(repo.root, "a metric module in the base")
    run = _gate(repo, _promote(repo), stub)
    assert run.code == 2, run.stdout + run.stderr
    assert _acme(run)["status"] == "error" and not marker.exists()
    assert "evil_metric:score: not named by the workflow" in _everything(run, stub)


@pytest.mark.slow
def test_a_pr_judge_never_sees_the_token(adapters, stub, tmp_path):
    evil = StandIn().start()
    try:
        head = _promote(adapters, lambda e: e.update(gate={"metric": "judge", "judge": {
            "url": evil.url + "/v1", "name": "yes-man", "api_key_env": "INPUT_GITHUB-TOKEN"}}))
        run = _gate(adapters, head, stub)
    finally:
        evil.stop()
    assert run.code == 1, run.stdout + run.stderr
    assert evil.requests == []  # the PR's judge was never asked: the base's exact match judged
    assert "gate.judge.api\\_key\\_env" in stub.comments_on(PR)[0]["body"]


@pytest.mark.slow
def test_a_manifest_cannot_name_the_judge_key_or_server(tmp_path, demo_assets, stub):
    evil = StandIn().start()
    try:
        repo = _base_repo(tmp_path, demo_assets, gate={"metric": "judge", "judge": {
            "url": evil.url + "/v1", "name": "yes-man", "api_key_env": "INPUT_GITHUB-TOKEN"}})
        run = _gate(repo, _promote(repo), stub)
        assert run.code == 2, run.stdout + run.stderr
        assert "gate.judge.api_key_env: a manifest cannot choose" in run.stdout
        repo.manifest["tenants"]["acme"]["gate"]["judge"].pop("api_key_env")
        git(repo.root, "reset", "-q", "--hard", repo.base)
        _write_manifest(repo.root, repo.manifest)
        repo.base = commit_all(repo.root, "judge without a key variable")
        run = _gate(repo, _promote(repo), stub)
        assert run.code == 2, run.stdout + run.stderr
        assert "gate.judge.url: a manifest cannot choose the host" in run.stdout
    finally:
        evil.stop()
    assert evil.requests == []


def _loosen(entry: dict) -> None:
    entry["gate"] = {"decision": "threshold", "epsilon": 1.0, "slice_epsilon": 1.0, "metric": "exact"}
    entry["approval"] = {"floor": 0.0}


def _gut_in_place(repo: AdaptersRepo) -> None:
    path = repo.root / "holdouts" / "support.jsonl"
    rows = [ln for ln in path.read_text().splitlines() if "intent=refund" not in ln]
    path.write_text("\n".join(rows) + "\n")


def _gut_copy(repo: AdaptersRepo) -> None:
    src = repo.root / "holdouts" / "support.jsonl"
    rows = [ln for ln in src.read_text().splitlines() if "intent=refund" not in ln]
    (repo.root / "holdouts" / "gutted.jsonl").write_text("\n".join(rows) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["loosen-settings", "holdout-in-place", "holdout-copy"])
def test_a_pr_that_loosens_its_own_gate_is_judged_by_the_base(adapters, stub, attack):
    if attack == "loosen-settings":
        head = _promote(adapters, _loosen)
        expected = "gate.epsilon unset → 1.0"
    elif attack == "holdout-in-place":
        _gut_in_place(adapters)
        head = _promote(adapters)
        expected = "holdout holdouts/support.jsonl changed in this pull request"
    else:
        _gut_copy(adapters)
        head = _promote(adapters, lambda e: e.update(holdout="holdouts/gutted.jsonl"))
        expected = "holdout holdouts/support.jsonl → holdouts/gutted.jsonl"
    run = _gate(adapters, head, stub)
    assert run.code == 1, run.stdout + run.stderr
    acme = _acme(run)
    assert acme["status"] == "rejected"
    body = stub.comments_on(PR)[0]["body"]
    top = body.split("| tenant |")[0]
    assert "This pull request changes the gate policy of acme" in top
    assert expected.replace("_", "\\_") in top, top
    [check] = [r for r in stub.check_runs.values() if r["name"] == "adaptergate / acme"]
    assert check["conclusion"] == "failure"
    assert "This pull request changes the gate policy of acme" in check["output"]["summary"]


@pytest.mark.slow
def test_a_policy_only_change_needs_a_review_and_scores_nothing(adapters, stub):
    entry = adapters.entry()
    entry["gate"]["epsilon"] = 1.0
    _write_manifest(adapters.root, {"schema_version": 1, "tenants": {"acme": entry}})
    head = commit_all(adapters.root, "loosen acme's gate")
    run = _gate(adapters, head, stub)
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["approval"] == "review" and _acme(run)["status"] == "review"
    [check] = stub.check_runs.values()
    assert check["conclusion"] == "action_required"
    assert "changes the gate policy of acme: gate.epsilon unset → 1.0" in check["output"]["title"]


def _absolute_adapter(repo: AdaptersRepo, outside: Path):
    dest = outside / "adapter"
    sha = _copy_adapter(repo.bad, dest)
    return _promote(repo, lambda e: e.update(adapter={"version": "1.1.0", "path": str(dest), "sha256": sha}))


def _symlinked_adapter(repo: AdaptersRepo, outside: Path):
    dest = outside / "adapter"
    sha = _copy_adapter(repo.bad, dest)
    (repo.root / "adapters" / "acme" / "1.1.0").symlink_to(dest)
    entry_edit = lambda e: e.update(adapter={"version": "1.1.0", "path": "adapters/acme/1.1.0", "sha256": sha})  # noqa: E731
    entry = repo.entry()
    entry_edit(entry)
    _write_manifest(repo.root, {"schema_version": 1, "tenants": {"acme": entry}})
    return commit_all(repo.root, "promote a linked adapter")


def _symlinked_weights(repo: AdaptersRepo, outside: Path):
    head = _promote(repo)
    weights = repo.root / "adapters" / "acme" / "1.1.0" / "adapter_model.safetensors"
    shutil.move(weights, outside / "weights.safetensors")
    weights.symlink_to(outside / "weights.safetensors")
    return commit_all(repo.root, "linked weights") or head


def _symlinked_holdout(repo: AdaptersRepo, outside: Path):
    path = repo.root / "holdouts" / "support.jsonl"
    path.unlink()
    path.symlink_to(outside / "credentials")
    return _promote(repo)


def _escaping_holdout(repo: AdaptersRepo, outside: Path):
    return _promote(repo, lambda e: e.update(holdout="../outside/credentials"))


@pytest.mark.slow
@pytest.mark.parametrize("attack, code, named", [
    (_absolute_adapter, 2, "adapter.path"),
    (_symlinked_adapter, 2, "adapters/acme/1.1.0"),
    (_symlinked_weights, 2, "adapter_model.safetensors is a symlink"),
    (_symlinked_holdout, 2, "holdouts/support.jsonl"),
    (_escaping_holdout, 1, "holdout holdouts/support.jsonl → ../outside/credentials"),  # policy: base's holdout
], ids=lambda v: getattr(v, "__name__", None))
def test_paths_from_the_pr_stay_inside_the_checkout(adapters, stub, outside, attack, code, named):
    run = _gate(adapters, attack(adapters, outside), stub)
    assert run.code == code, run.stdout + run.stderr
    seen = _everything(run, stub)
    assert named in seen.replace("\\_", "_")
    assert "SUPERSECRET" not in seen and "Traceback" not in seen


# =============================================================================
# Secrets
# =============================================================================


class EchoingJudge(StandIn):
    """A judge server that refuses the key and echoes the request headers back (as some do)."""

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        return 401, {"error": {"message": f"invalid key; you sent {self.headers[-1].get('Authorization')}"}}


def test_a_judge_that_echoes_the_key_never_gets_it_printed(demo_assets, tmp_path):
    import subprocess
    import sys

    server = EchoingJudge().start()
    key = "sk-live-ECHOED-0123456789"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "adaptergate", "gate", "--tenant", "demo", "--holdout", str(demo_assets.holdout),
             "--base-model", str(demo_assets.base_dir), "--baseline-adapter", str(demo_assets.baseline_adapter),
             "--candidate-adapter", str(demo_assets.candidate_adapter), "--metric", "judge",
             "--judge-url", server.url + "/v1", "--judge-name", "j", "--judge-api-key-env", "JUDGE_KEY",
             "--cache-dir", str(tmp_path / "cache"), "--format", "json"],
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            env={**os.environ, "JUDGE_KEY": key, "ADAPTERGATE_PROGRESS": "0", "OMP_NUM_THREADS": "1",
                 "HF_HUB_OFFLINE": "1", "NO_PROXY": "*"},
        )
    finally:
        server.stop()
    assert server.headers and server.headers[0]["Authorization"] == f"Bearer {key}"  # it was sent, to the judge
    assert proc.returncode == 3, proc.stderr
    assert "401" in proc.stderr and key not in proc.stdout + proc.stderr and "***" in proc.stderr


def test_an_unreadable_criteria_file_is_never_quoted(tmp_path):
    """A criteria path pointing at a credentials file: the error names the file, not its content."""
    from adaptergate.errors import InvalidInputError
    from adaptergate.metrics.judge import load_criteria

    for name, text in (("creds.yaml", "[default]\naws_secret_access_key: SUPERSECRET-42: x\n  - {"),
                       ("creds.json", '{"token": "SUPERSECRET-42", oops}'),
                       ("list.yaml", "- SUPERSECRET-42\n")):
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(InvalidInputError) as info:
            load_criteria(path)
        assert name in info.value.message and "SUPERSECRET" not in info.value.message, info.value.message


# =============================================================================
# Work bounds, through the Action
# =============================================================================


def test_a_slice_tag_bomb_is_one_refusal(tmp_path, stub):
    """12 slice values of 400 KB under one key (the duplicate-tag check once took 23 GB)."""
    ws = tmp_path / "workspace"
    (ws / "holdouts").mkdir(parents=True)
    rows = [{"id": f"q{i}", "prompt": "q", "gold": "ok", "slices": [f"intent={chr(97 + i) * 400_000}"]}
            for i in range(12)]
    (ws / "holdouts" / "acme.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (ws / "gate_scorer.py").write_text(SCORER)
    base = commit_all(ws, "base")
    stub.add_pull(PR, head_sha=base, base_sha=base)
    run = run_action(ws, stub, {**SINGLE_WITH, "config": ""}, event=_event(base, base), base_with={})
    assert run.code == 2, run.stdout[-2000:] + run.stderr[-2000:]
    assert "512-character cap" in run.stdout and len(run.stdout) < 20_000 and "Traceback" not in run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["alias-bomb-card", "deep-adapter-config", "many-target-modules"])
def test_manifest_bombs_are_one_refusal(adapters, stub, attack):
    if attack == "alias-bomb-card":
        head = _promote(adapters)
        text = (adapters.root / "adaptergate.yaml").read_text()
        bomb = "".join(f"      a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i else "lol"] * 10) + "]\n"
                       for i in range(9))
        (adapters.root / "adaptergate.yaml").write_text(text.replace("  acme:\n", "  acme:\n    card:\n" + bomb, 1))
        head = commit_all(adapters.root, "a card")
        words = "alias"
    else:
        def deep(entry):
            cfg_path = adapters.root / "adapters" / "acme" / "1.1.0" / "adapter_config.json"
            cfg = json.loads(cfg_path.read_text())
            if attack == "deep-adapter-config":
                cfg_path.write_text(json.dumps(cfg)[:-1] + ', "notes": ' + "[" * 100_000 + "]" * 100_000 + "}")
            else:
                cfg["target_modules"] = [f"layers.{i}.q_proj" for i in range(50_000)]
                cfg_path.write_text(json.dumps(cfg))
        head = _promote(adapters, deep)
        words = "adapter_config.json"
    run = _gate(adapters, head, stub)
    assert run.code == 2, run.stdout[-3000:] + run.stderr[-3000:]
    assert words in run.stdout and "Traceback" not in run.stdout + run.stderr


@pytest.mark.slow
def test_a_pr_cannot_send_the_gate_to_its_own_server(adapters, stub):
    """``gate.backend`` is policy (read from the base); a server URL or key variable is the
    workflow's alone: a manifest that names one is refused before anything is contacted."""
    evil = StandIn().start()
    try:
        head = _promote(adapters, lambda e: e.update(gate={"backend": "openai", "server_url": evil.url,
                                                           "server_api_key_env": "INPUT_GITHUB-TOKEN"}))
        run = _gate(adapters, head, stub)
        assert run.code == 2, run.stdout + run.stderr
        assert "server_url" in run.stdout and "Extra inputs are not permitted" in run.stdout
        # the backend alone: the base's policy (peft) scores, and the change is shown for review
        git(adapters.root, "reset", "-q", "--hard", adapters.base)
        head = _promote(adapters, lambda e: e.update(gate={"backend": "vllm"}))
        run = _gate(adapters, head, stub)
    finally:
        evil.stop()
    assert evil.requests == []
    assert run.code == 1, run.stdout + run.stderr
    body = stub.comments_on(PR)[-1]["body"]
    assert "gate.backend" in body and "Scored by" not in body  # judged by PEFT, the base's backend
