"""The bot flow (examples/bot/): retrain, promote, open a PR, gate, merge or close.

``examples/bot/bot_flow.sh`` runs the flow on a local git repository (a branch
per proposal, ``git merge --ff-only`` for auto-merge, deleting the branch for
closing a rejected PR). It runs here twice on a real repository holding the
tiny demo model: a retrained copy of the good adapter is merged, the
corrupted candidate is rejected and lands in the replay buffer. The example
workflows and the script are linted as GitHub users would lint them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
BOT = REPO / "examples" / "bot"
SCRIPT = BOT / "bot_flow.sh"
BOT_WORKFLOW = BOT / "adaptergate-bot.yml"
GATE_WORKFLOW = BOT / "adaptergate-gate-manifest.yml"
BIN = Path(sys.executable).parent

BASE_ID = "tiny-llama"
TENANT = "acme"
WEIGHTS = "adapter_model.safetensors"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",  # no user or system git config
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ADAPTERGATE_PROGRESS": "0",
        "ADAPTERGATE_CACHE": str(home / "cache"),
        "GIT_AUTHOR_DATE": "2026-11-01T10:00:00Z", "GIT_COMMITTER_DATE": "2026-11-01T10:00:00Z",
    }  # fmt: skip


def _git(root: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], env=env, capture_output=True, text=True,
                          check=True)
    return proc.stdout.strip()


def _adapter(src: Path, dest: Path, *, nudge: bool = False) -> str:
    """Copy a PEFT adapter declaring the manifest's base; ``nudge``: near-equal new weights."""
    shutil.copytree(src, dest)
    cfg = json.loads((dest / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = BASE_ID
    (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    if nudge:
        from safetensors.torch import load_file, save_file

        tensors = load_file(dest / WEIGHTS)
        name = sorted(tensors)[0]
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] += 1e-6
        save_file(tensors, dest / WEIGHTS, metadata={"format": "pt"})
        assert _sha(dest / WEIGHTS) != _sha(src / WEIGHTS)
    return _sha(dest / WEIGHTS)


def _main_manifest(root: Path, env: dict[str, str]) -> dict:
    return yaml.safe_load(_git(root, env, "show", "main:adaptergate.yaml"))


def _bot(root: Path, env: dict[str, str], trained: Path, replay: Path, run_id: str):
    return subprocess.run(
        ["bash", str(SCRIPT), str(root), TENANT, str(trained), str(replay)],
        env={**env, "RUN_ID": run_id}, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("git") and shutil.which("bash")), reason="needs git, bash")
def test_bot_flow_merges_a_good_adapter_and_closes_a_bad_one(tmp_path, demo_assets):
    from adaptergate.backends.base_model import inspect_base

    home = tmp_path / "home"
    home.mkdir()
    env = _env(home)
    root = tmp_path / "adapters-repo"
    root.mkdir()
    _git(root, env, "init", "-q", "-b", "main")
    shutil.copytree(demo_assets.base_dir, root / "models" / "tiny-llama")
    (root / "holdouts").mkdir()
    shutil.copy(demo_assets.holdout, root / "holdouts" / "support.jsonl")
    v1 = _adapter(demo_assets.baseline_adapter, root / "adapters" / TENANT / "1.0.0")
    manifest = {"schema_version": 1, "tenants": {TENANT: {
        "adapter": {"version": "1.0.0", "path": f"adapters/{TENANT}/1.0.0", "sha256": v1},
        "base_model": {"id": BASE_ID, "path": "models/tiny-llama",
                       "sha256": inspect_base(root / "models" / "tiny-llama").sha256},
        "holdout": "holdouts/support.jsonl",
        "gate": {"slice_epsilon": 0.10, "metric": "exact"},
    }}}  # fmt: skip
    (root / "adaptergate.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    _git(root, env, "add", "-A")
    _git(root, env, "-c", "user.name=ml", "-c", "user.email=ml@example.com",
         "commit", "-q", "-m", "acme at 1.0.0")  # fmt: skip

    trained = tmp_path / "trained"
    good = _adapter(demo_assets.baseline_adapter, trained / "good", nudge=True)
    _adapter(demo_assets.candidate_adapter, trained / "bad")
    records = tmp_path / "records"
    replay, audit = records / "replay.jsonl", records / "audit.jsonl"

    # (a) a retrained good adapter: gated, accepted, merged
    proc = _bot(root, env, trained / "good", replay, "run1")
    assert proc.returncode == 0, _explain(proc)
    steps = [line for line in proc.stdout.splitlines() if line.startswith("[bot] ")]
    expected = ["branch:", "train:", "promote:", "pr:", "gate:", "merged:"]
    assert [s.split()[1] for s in steps] == expected, steps
    entry = _main_manifest(root, env)["tenants"][TENANT]["adapter"]
    assert entry == {"version": "1.1.0", "path": f"adapters/{TENANT}/run1", "sha256": good}
    assert _git(root, env, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert _git(root, env, "branch", "--list", "adaptergate/*") == ""
    assert _git(root, env, "status", "--porcelain") == ""
    commit = _git(root, env, "log", "-1", "--format=%an: %s")
    assert commit == "adaptergate-bot: adaptergate: promote acme to 1.1.0 (run run1)"
    decisions = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(decisions) == 1 and decisions[0]["accepted"] is True, decisions
    assert not replay.exists() or replay.read_text() == ""
    merged = _git(root, env, "rev-parse", "main")

    # (b) the corrupted candidate: gated, rejected, closed; main unchanged
    proc = _bot(root, env, trained / "bad", replay, "run2")
    assert proc.returncode == 1, _explain(proc)
    assert "[bot] closed: acme 1.2.0 rejected" in proc.stdout, proc.stdout
    assert _git(root, env, "rev-parse", "main") == merged
    assert _main_manifest(root, env)["tenants"][TENANT]["adapter"]["version"] == "1.1.0"
    assert _git(root, env, "branch", "--list", "adaptergate/*") == ""
    assert not (root / "adapters" / TENANT / "run2").exists()
    assert _git(root, env, "status", "--porcelain") == ""
    decisions = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [d["accepted"] for d in decisions] == [True, False]

    listed = subprocess.run(
        [str(BIN / "adaptergate"), "replay", "list", "--tenant", TENANT,
         "--replay-path", str(replay)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, _explain(listed)
    (rejection,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert "1.2.0" in rejection["candidate"] and "1.1.0" in rejection["baseline"], rejection
    shown = subprocess.run(
        [str(BIN / "adaptergate"), "replay", "show", "--tenant", TENANT,
         "--replay-path", str(replay), "--format", "json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, _explain(shown)
    assert json.loads(shown.stdout)["driver_slice_tag"] == "intent=refund"


# --------------------------------------------------------------------------
# Lint: the workflows (actionlint, SchemaStore schema) and the script (shellcheck)
# --------------------------------------------------------------------------


def _tool(name: str) -> Path:
    exe = BIN / name
    if exe.is_file():
        return exe
    found = shutil.which(name)
    if found:
        return Path(found)
    pytest.skip(f"{name} is not installed")


def _run(*args: str | Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path} if path else None
    return subprocess.run([str(a) for a in args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_bot_workflows_pass_actionlint():
    # shellcheck on PATH: actionlint also checks every `run:` script with it
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    proc = _run(_tool("actionlint"), "-config-file", REPO / ".github" / "actionlint.yaml",
                BOT_WORKFLOW, GATE_WORKFLOW, path=path)  # fmt: skip
    assert proc.returncode == 0, _explain(proc)


def test_bot_workflows_match_the_github_workflows_schema():
    proc = _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                BOT_WORKFLOW, GATE_WORKFLOW)  # fmt: skip
    assert proc.returncode == 0, _explain(proc)


def test_bot_flow_script_passes_shellcheck():
    proc = _run(_tool("shellcheck"), SCRIPT)
    assert proc.returncode == 0, _explain(proc)


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {("on" if k is True else k): v for k, v in data.items()}  # YAML 1.1 reads `on` as True


def test_bot_workflows_are_bounded_and_pinned():
    for path in (BOT_WORKFLOW, GATE_WORKFLOW):
        workflow = _load(path)
        assert workflow["permissions"] == {"contents": "read"}, path.name
        for job_id, job in workflow["jobs"].items():
            assert isinstance(job.get("timeout-minutes"), int), f"{path.name}: {job_id}"
            for step in job["steps"]:
                ref = step.get("uses", "@v1").partition("@")[2]
                assert ref not in {"", "main", "master", "latest"}, step


def test_bot_workflow_opens_prs_with_an_app_token():
    workflow = _load(BOT_WORKFLOW)
    assert set(workflow["on"]) == {"workflow_dispatch", "repository_dispatch", "schedule"}
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    uses = [s.get("uses", "") for s in job["steps"]]
    assert any(u.startswith("actions/create-github-app-token@") for u in uses)
    script = "\n".join(s.get("run", "") for s in job["steps"])
    for command in ("adaptergate promote", "gh pr create", "gh pr merge", "--auto", "git push"):
        assert command in script, command
    (push,) = [s for s in job["steps"] if "gh pr create" in s.get("run", "")]
    assert push["env"]["GH_TOKEN"] == "${{ steps.app-token.outputs.token }}"
    assert "GITHUB_TOKEN" in BOT_WORKFLOW.read_text()  # the comment says why it is not used


def test_gate_workflow_gates_the_manifest_and_settles_bot_prs():
    workflow = _load(GATE_WORKFLOW)
    assert "pull_request" in workflow["on"]
    gate, settle = workflow["jobs"]["gate"], workflow["jobs"]["settle"]
    (checkout,) = [s for s in gate["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0 and checkout["with"]["lfs"] is True
    (action,) = [s for s in gate["steps"] if s.get("uses") == "adaptergate/adaptergate-action@v1"]
    assert action["with"]["manifest"] == "adaptergate.yaml" and action["with"]["replay-path"]
    assert settle["needs"] == "gate"
    assert "adaptergate-bot[bot]" in settle["if"] and "adaptergate/" in settle["if"]
    runs = "\n".join(s.get("run", "") for s in settle["steps"])
    for command in ("gh pr close", "git worktree", "HEAD:refs/heads/adaptergate-ledger",
                    "gh pr review", "--approve", "--add-reviewer"):  # fmt: skip
        assert command in runs, command
    assert settle["permissions"] == {"contents": "write", "pull-requests": "write"}
