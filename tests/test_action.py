"""The container action end to end: entrypoint.py run as the runner runs it.

Each test builds the step's environment the way the GitHub runner does —
every input of ``action.yml`` with its default, overridden by the step's
``with:``, as ``INPUT_<NAME>`` (upper-cased, hyphens kept) — plus a complete
``pull_request`` event file, a workspace, GITHUB_OUTPUT and
GITHUB_STEP_SUMMARY files, then runs ``entrypoint.py`` in a subprocess
against the stand-in GitHub server of :mod:`tests.github_stub`, which
validates every request and response against GitHub's OpenAPI description.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from github_stub import GitHubStub, make_pull_request_event

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = REPO_ROOT / "entrypoint.py"
HEAD_SHA = "a" * 40
BASE_SHA = "b" * 40
MERGE_SHA = "c" * 40  # GITHUB_SHA of a pull_request run: the merge commit, not the head
PR = 7

SCORER = '''
def score(adapter_id, query):
    """Baseline always right; the candidate breaks every query of intent=refund."""
    if adapter_id == "candidate" and "intent=refund" in query.get("slices", []):
        return 0.0
    return 1.0
'''


def _action_inputs() -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / "action.yml").read_text(encoding="utf-8"))["inputs"]


def runner_env(with_: dict[str, str], *, token: str) -> dict[str, str]:
    """INPUT_* as the runner sets them: defaults from action.yml, then the step's ``with:``."""
    env = {}
    for name, spec in _action_inputs().items():
        value = str(with_.get(name, spec.get("default", "")))
        value = value.replace("${{ github.token }}", token)
        env["INPUT_" + name.replace(" ", "_").upper()] = value
    unknown = set(with_) - set(_action_inputs())
    assert not unknown, f"not inputs of action.yml: {unknown}"
    return env


def parse_outputs(text: str) -> dict[str, str]:
    """Read GITHUB_OUTPUT as the runner does (``name=value`` and ``name<<DELIM`` blocks)."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1:j])
            i = j + 1
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
            i += 1
        else:
            i += 1
    return out


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    workspace: Path


def _holdout(n_refund: int = 12, n_other: int = 36, prompt=lambda tag, i: f"question {tag} {i}") -> str:
    rows = []
    for tag, n in (("refund", n_refund), ("billing", n_other)):
        for i in range(n):
            rows.append({
                "id": f"{tag}_{i}", "prompt": prompt(tag, i), "gold": "ok",
                "slices": [f"intent={tag}", "lang=en"], "tenant": "acme",
            })
    return "".join(json.dumps(r) + "\n" for r in rows)


GIT_ENV = {
    "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
    "GIT_AUTHOR_DATE": "2026-11-01T10:00:00Z", "GIT_COMMITTER_DATE": "2026-11-01T10:00:00Z",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True,
                          env=GIT_ENV).stdout.strip()


def commit_all(root: Path, message: str) -> str:
    """Commit everything in ``root`` (a repository is made on first use); the commit's sha."""
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws = tmp_path / "workspace"
    (ws / "holdouts").mkdir(parents=True)
    (ws / "holdouts" / "acme.jsonl").write_text(_holdout(), encoding="utf-8")
    (ws / "gate_scorer.py").write_text(SCORER, encoding="utf-8")
    return ws


BASE_WITH = {
    "tenant": "acme",
    "holdout": "holdouts/acme.jsonl",
    "scorer": "gate_scorer:score",
    "candidate": "candidate",
    "baseline": "baseline",
    "slice-epsilon": "0.10",
}


def run_action(
    workspace: Path,
    stub: GitHubStub | None,
    with_: dict[str, str] | None = None,
    *,
    event: dict | None = None,
    event_name: str = "pull_request",
    fork: bool = False,
    extra_env: dict[str, str] | None = None,
    base_with: dict[str, str] | None = None,
    commit_base: bool = True,
) -> Run:
    home = workspace.parent / "home"
    files = workspace.parent / "file_commands"
    home.mkdir(exist_ok=True)
    files.mkdir(exist_ok=True)
    output, summary = files / "output", files / "summary"
    for f in (output, summary):
        f.write_text("", encoding="utf-8")
    if event is None and event_name == "pull_request":
        # The pull request changes nothing the gate's policy reads: the workspace as it is now is
        # also its base commit (tests of what a pull request may change set up both sides).
        base = commit_all(workspace, "base") if commit_base else BASE_SHA
        event = make_pull_request_event(
            owner="acme", repo="adapters", number=PR, head_sha=HEAD_SHA, base_sha=base, fork=fork,
        )
    event_path = workspace.parent / "event.json"
    event_path.write_text(json.dumps(event or {}), encoding="utf-8")
    token = stub.token if stub is not None else ""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO_ROOT),
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_REPOSITORY": "acme/adapters",
        "GITHUB_REPOSITORY_OWNER": "acme",
        "GITHUB_SHA": MERGE_SHA,
        "GITHUB_REF": f"refs/pull/{PR}/merge",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_WORKFLOW": "adaptergate",
        "GITHUB_JOB": "gate",
        "GITHUB_ACTION": "__adaptergate_adaptergate-action",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": stub.url if stub is not None else "http://127.0.0.1:9",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(workspace.parent),
        # fast retries for tests (the defaults back off for seconds)
        "ADAPTERGATE_GITHUB_BACKOFF": "0.01",
        "ADAPTERGATE_GITHUB_SECONDARY_WAIT": "0.2",
        "ADAPTERGATE_GITHUB_SPACING": "0",
        **runner_env({**(BASE_WITH if base_with is None else base_with), **(with_ or {})}, token=token),
        **(extra_env or {}),
    }
    proc = subprocess.run(
        [sys.executable, str(ENTRYPOINT)], cwd=workspace, env=env, capture_output=True, text=True,
        timeout=180,
    )
    return Run(
        code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr,
        outputs=parse_outputs(output.read_text(encoding="utf-8")),
        summary=summary.read_text(encoding="utf-8"), workspace=workspace,
    )


@pytest.fixture
def stub():
    with GitHubStub(owner="acme", repo="adapters") as s:
        s.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        yield s
        assert s.violations == [], s.violations


def _bot_comments(stub: GitHubStub) -> list[dict]:
    return [c for c in stub.comments_on(PR) if c["user"]["login"] == "github-actions[bot]"]


def _writes(stub: GitHubStub) -> list:
    return [r for r in stub.requests if r.method in ("POST", "PATCH", "DELETE")]


# --------------------------------------------------------------------------
# The happy path: comment, check run, outputs, summary, annotations
# --------------------------------------------------------------------------


def test_rejection_posts_comment_and_check_run_and_writes_outputs(workspace, stub):
    run = run_action(workspace, stub)
    assert run.code == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr

    # outputs, as the runner reads them
    o = run.outputs
    assert set(o) == {"decision", "verdict", "delta", "driver-slice", "report-path", "comment-url",
                      "check-run-url", "exit-code", "approval", "tenants"}
    assert o["approval"] == o["tenants"] == ""  # manifest mode only
    assert o["decision"] == "rejected" and o["verdict"] == "FAIL" and o["exit-code"] == "1"
    assert o["driver-slice"] == "intent=refund"
    assert float(o["delta"]) == pytest.approx(-0.25)
    report = json.loads((workspace / o["report-path"]).read_text(encoding="utf-8"))
    assert report["accepted"] is False and len(report["per_query"]) == 48
    assert (workspace / "adaptergate-report" / "report.md").is_file()
    assert (workspace / "adaptergate-report" / "junit.xml").is_file()

    # one sticky comment by the token's identity
    [comment] = _bot_comments(stub)
    assert comment["body"].startswith("<!-- adaptergate:report tenant=acme -->")
    assert "REJECTED" in comment["body"] and "intent=refund" in comment["body"]
    assert "[workflow run](https://github.com/acme/adapters/actions/runs/4242)" in comment["body"]
    assert o["comment-url"] == comment["html_url"]

    # the check run: on the PR head, not on the merge commit
    [check] = stub.check_runs.values()
    assert check["name"] == "adaptergate / acme"
    assert check["head_sha"] == HEAD_SHA
    assert check["status"] == "completed" and check["conclusion"] == "failure"
    assert check["output"]["title"].startswith("REJECTED · FAIL")
    assert "intent=refund" in check["output"]["summary"]
    assert check["details_url"] == "https://github.com/acme/adapters/actions/runs/4242"
    assert o["check-run-url"] == check["html_url"]
    # the comment and the check run say which commit they are for; the comment links the check run
    for text in (comment["body"], check["output"]["summary"]):
        assert f"commit [`{HEAD_SHA[:7]}`](https://github.com/acme/adapters/commit/{HEAD_SHA})" in text
    assert f"[check run]({check['html_url']})" in comment["body"]
    notes = check["annotations_all"]
    assert len(notes) == 12 and all(a["path"] == "holdouts/acme.jsonl" for a in notes)
    assert sorted(a["start_line"] for a in notes) == list(range(1, 13))  # the refund lines
    assert all(a["annotation_level"] == "failure" for a in notes)

    # step summary and log annotations (at most 10, on the holdout's lines)
    assert "REJECTED" in run.summary and "intent=refund" in run.summary
    errors = [ln for ln in run.stdout.splitlines() if ln.startswith("::error file=holdouts/acme.jsonl,line=")]
    assert len(errors) == 10
    # the check run was created in progress before the gate ran, then completed
    creates = [r for r in stub.requests if r.operation_id == "checks/create"]
    assert len(creates) == 1 and creates[0].body["status"] == "in_progress"


def test_second_run_updates_the_comment_in_place(workspace, stub):
    # big enough slices for a fixed candidate to PASS (not merely INCONCLUSIVE)
    (workspace / "holdouts" / "acme.jsonl").write_text(_holdout(n_refund=100, n_other=100), encoding="utf-8")
    stub.add_comment(PR, "<!-- adaptergate:report tenant=acme -->\nforged by someone else", login="mallory")
    stub.add_comment(PR, "LGTM", login="reviewer")
    first = run_action(workspace, stub)
    assert first.code == 1
    [mine] = _bot_comments(stub)
    # a fixed candidate on the next push: the same comment now says ACCEPTED
    (workspace / "gate_scorer.py").write_text("def score(adapter_id, query):\n    return 1.0\n")
    second = run_action(workspace, stub)
    assert second.code == 0 and second.outputs["verdict"] == "PASS", second.stdout
    [after] = _bot_comments(stub)
    assert after["id"] == mine["id"] and "ACCEPTED" in after["body"] and "REJECTED" not in after["body"]
    assert second.outputs["comment-url"] == first.outputs["comment-url"]
    assert len(stub.comments_on(PR)) == 3  # the forged marker and the review comment untouched
    assert any(c["body"].endswith("forged by someone else") for c in stub.comments_on(PR))
    assert [r.operation_id for r in stub.requests].count("issues/create-comment") == 1
    assert [r.operation_id for r in stub.requests].count("issues/update-comment") == 1
    conclusions = sorted(c["conclusion"] for c in stub.check_runs.values())
    assert conclusions == ["failure", "success"]


def test_sticky_comment_found_past_the_first_page_and_duplicates_removed(workspace, stub):
    for i in range(230):
        stub.add_comment(PR, f"chatter {i}", login="reviewer")
    first = run_action(workspace, stub)
    [mine] = _bot_comments(stub)
    # a retried create left a second copy (as a 502 after a successful POST can)
    stub.add_comment(PR, mine["body"], login="github-actions[bot]", user_type="Bot")
    assert len(_bot_comments(stub)) == 2
    second = run_action(workspace, stub)
    assert first.code == second.code == 1
    assert [c["id"] for c in _bot_comments(stub)] == [mine["id"]]
    lists = [r for r in stub.requests if r.operation_id == "issues/list-comments"]
    assert len(lists) >= 6  # three pages per run (231-232 comments, 100 a page)


def test_comment_on_failure_only_and_off(workspace, stub):
    (workspace / "gate_scorer.py").write_text("def score(adapter_id, query):\n    return 1.0\n")
    run = run_action(workspace, stub, {"comment": "on-failure"})
    assert run.code == 0 and _bot_comments(stub) == [] and run.outputs["comment-url"] == ""
    run = run_action(workspace, stub, {"comment": "off", "check-run": "off"})
    assert run.code == 0 and _writes(stub) == [w for w in _writes(stub) if w.operation_id == "checks/create"
                                                or w.operation_id == "checks/update"]
    assert len(stub.check_runs) == 1  # only the first run made one


@pytest.mark.parametrize("spelling", ["true", "True", "TRUE", "on"])
def test_comment_true_posts_the_comment(workspace, stub, spelling):
    run = run_action(workspace, stub, {"comment": spelling, "check-run": spelling.replace("on", "true")})
    assert run.code == 1, run.stdout + run.stderr
    [comment] = _bot_comments(stub)
    assert run.outputs["comment-url"] == comment["html_url"]
    assert len(stub.check_runs) == 1


@pytest.mark.parametrize("spelling", ["false", "False", "FALSE", "off"])
def test_comment_false_posts_no_comment(workspace, stub, spelling):
    run = run_action(workspace, stub, {"comment": spelling})
    assert run.code == 1, run.stdout + run.stderr  # the verdict, not a usage error
    assert _bot_comments(stub) == [] and run.outputs["comment-url"] == ""
    assert len(stub.check_runs) == 1  # check-run keeps its default (true)
    run = run_action(workspace, stub, {"comment": spelling, "check-run": "false"})
    assert run.code == 1 and len(stub.check_runs) == 1  # no second check run


def test_a_bad_switch_names_its_spellings(workspace, stub):
    run = run_action(workspace, stub, {"comment": "sometimes"})
    assert run.code == 2
    assert "input 'comment' must be true, false or on-failure (on and off work too), got 'sometimes'" in run.stdout
    run = run_action(workspace, stub, {"check-run": "maybe"})
    assert run.code == 2 and "input 'check-run' must be true or false, got 'maybe'" in run.stdout


def test_log_has_no_user_403_noise_and_the_report_is_inside_its_group(workspace, stub):
    run = run_action(workspace, stub)
    assert run.code == 1
    both = run.stdout + run.stderr
    # a GITHUB_TOKEN may not read GET /user: expected, and not worth a log line
    assert "GET /user" not in both and "failed with 403" not in both
    assert any(r.path.endswith("/user") and r.status == 403 for r in stub.requests)  # it was asked
    lines = run.stdout.splitlines()
    start = lines.index("::group::adaptergate gate: tenant acme")
    end = lines.index("::endgroup::", start)
    group = "\n".join(lines[start + 1:end])
    assert "REJECTED" in group and "DRIVER SLICE: intent=refund" in group and "Slice breakdown" in group
    assert group.startswith("::stop-commands::")
    assert "DRIVER SLICE" not in "\n".join(lines[end:])  # not printed again after the group


def test_inconclusive_accepted_by_policy_is_a_neutral_check(workspace, stub):
    # 3 refund queries break out of 48: too few to settle a 0.10 slice margin
    (workspace / "holdouts" / "acme.jsonl").write_text(_holdout(n_refund=3, n_other=45), encoding="utf-8")
    run = run_action(workspace, stub, {"slice-min-size": "3"})
    assert run.code == 0, run.stdout
    assert run.outputs["verdict"] == "INCONCLUSIVE" and run.outputs["decision"] == "accepted"
    [check] = stub.check_runs.values()
    assert check["conclusion"] == "neutral"
    warnings = [ln for ln in run.stdout.splitlines() if ln.startswith("::warning file=holdouts/acme.jsonl")]
    assert warnings  # the broken queries are still pointed at


def test_annotations_go_in_batches_of_50(workspace, stub):
    (workspace / "holdouts" / "acme.jsonl").write_text(_holdout(n_refund=130, n_other=200), encoding="utf-8")
    run = run_action(workspace, stub)
    assert run.code == 1
    [check] = stub.check_runs.values()
    assert len(check["annotations_all"]) == 130
    assert stub.annotation_batches and max(stub.annotation_batches) <= 50
    assert sum(stub.annotation_batches) == 130
    assert check["status"] == "completed" and check["conclusion"] == "failure"


# --------------------------------------------------------------------------
# Failure modes
# --------------------------------------------------------------------------


def test_fork_pull_request_degrades_without_writes(workspace):
    with GitHubStub(owner="acme", repo="adapters", read_only=True) as stub:
        stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA, head_repo_full_name="octocat/adapters")
        run = run_action(workspace, stub, fork=True)
        assert run.code == 1, run.stdout
        assert _writes(stub) == [] and stub.violations == []
        assert "::notice::Pull request from a fork" in run.stdout
        assert run.outputs["decision"] == "rejected" and run.outputs["comment-url"] == ""
        assert "REJECTED" in run.summary
        assert sum(ln.startswith("::error file=") for ln in run.stdout.splitlines()) == 10


def test_read_only_token_403_is_a_warning_not_a_crash(workspace):
    """Same repository, but the workflow forgot `permissions:`: every write is refused."""
    with GitHubStub(owner="acme", repo="adapters", read_only=True) as stub:
        stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        run = run_action(workspace, stub)
        assert run.code == 1 and "Traceback" not in run.stdout + run.stderr
        assert "pull-requests: write" in run.stdout
        assert stub.comments == {} and stub.check_runs == {}
        assert all(r.status == 403 for r in _writes(stub))
        assert run.outputs["decision"] == "rejected" and stub.violations == []


def test_502_then_success_is_retried(workspace, stub):
    stub.fail_next(1, 502, method="POST", path_regex=r"/issues/\d+/comments$", body="<html>502 Bad Gateway</html>")
    stub.fail_next(1, 503, method="PATCH", path_regex=r"/check-runs/\d+$")
    run = run_action(workspace, stub)
    assert run.code == 1
    assert len(_bot_comments(stub)) == 1
    [check] = stub.check_runs.values()
    assert check["conclusion"] == "failure"
    statuses = [r.status for r in stub.requests if r.operation_id == "issues/create-comment"]
    assert statuses == [502, 201]


def test_secondary_rate_limit_honours_retry_after(workspace, stub):
    stub.fail_next(
        1, 403, method="POST", path_regex=r"/issues/\d+/comments$", headers={"Retry-After": "1"},
        body={"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
              "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"},
    )
    run = run_action(workspace, stub)
    assert run.code == 1 and len(_bot_comments(stub)) == 1
    creates = [r for r in stub.requests if r.operation_id == "issues/create-comment"]
    assert [r.status for r in creates] == [403, 201]


@pytest.mark.parametrize("scorer, expected", [("broken", 1), ("fixed", 0)])
def test_github_outage_never_changes_the_verdict(workspace, scorer, expected):
    with GitHubStub(owner="acme", repo="adapters") as stub:
        stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        if scorer == "fixed":
            (workspace / "gate_scorer.py").write_text("def score(adapter_id, query):\n    return 1.0\n")
        stub.fail_next(1000, 500)
        run = run_action(workspace, stub, extra_env={"ADAPTERGATE_GITHUB_RETRIES": "2"})
        assert run.code == expected, run.stdout
        assert run.outputs["exit-code"] == str(expected)
        assert "::warning::could not" in run.stdout and "Traceback" not in run.stdout + run.stderr
        assert stub.violations == []


def test_no_token_and_no_pull_request_still_gates(workspace):
    run = run_action(workspace, None, {"github-token": ""}, event={"ref": "refs/heads/main"}, event_name="push")
    assert run.code == 1
    assert run.outputs["decision"] == "rejected" and run.outputs["comment-url"] == ""
    assert "REJECTED" in run.summary


def test_push_event_gets_a_check_run_on_github_sha(workspace, stub):
    run = run_action(workspace, stub, event={"ref": "refs/heads/main"}, event_name="push")
    assert run.code == 1
    [check] = stub.check_runs.values()
    assert check["head_sha"] == MERGE_SHA and stub.comments == {}


def test_github_enterprise_server_api_prefix(workspace):
    with GitHubStub(owner="acme", repo="adapters", prefix="/api/v3") as stub:
        stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        # PyGithub's default pauses between requests (as GitHub asks of integrations) kept here
        run = run_action(workspace, stub, extra_env={"ADAPTERGATE_GITHUB_SPACING": "1"})
        assert run.code == 1 and len(_bot_comments(stub)) == 1 and stub.violations == []
        assert all(r.path.startswith("/api/v3/") for r in stub.requests)


def test_token_is_masked_and_never_printed(workspace, stub):
    run = run_action(workspace, stub)
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if stub.token in ln]
    assert lines == [f"::add-mask::{stub.token}"]
    assert stub.token not in run.summary and stub.token not in json.dumps(run.outputs)


def test_bad_input_is_exit_2_with_a_failed_check_run(workspace, stub):
    run = run_action(workspace, stub, {"epsilon": "two percent"})
    assert run.code == 2 and "Traceback" not in run.stdout + run.stderr
    assert "::error title=adaptergate::input 'epsilon' must be a number" in run.stdout
    assert run.outputs["exit-code"] == "2" and run.outputs["decision"] == ""
    [check] = stub.check_runs.values()
    assert check["conclusion"] == "failure" and "invalid input" in check["output"]["title"]
    assert "could not decide" in run.summary

    run = run_action(workspace, stub, {"holdout": "holdouts/missing.jsonl"})
    assert run.code == 2 and "missing.jsonl" in run.stdout


def test_scorer_crash_is_exit_3(workspace, stub):
    (workspace / "gate_scorer.py").write_text("def score(adapter_id, query):\n    raise RuntimeError('GPU fell off')\n")
    run = run_action(workspace, stub)
    assert run.code == 3 and "GPU fell off" in run.stdout
    assert "Traceback" not in run.stdout
    debug = run_action(workspace, stub, extra_env={"RUNNER_DEBUG": "1"})
    assert debug.code == 3 and "Traceback" in debug.stdout


# --------------------------------------------------------------------------
# Size limits and hostile text
# --------------------------------------------------------------------------


def test_oversized_reports_are_truncated_with_a_pointer(workspace, stub):
    long_id = "q" * 180
    rows = [
        {"id": f"{long_id}{i}", "prompt": f"refund please {i}", "gold": "ok", "slices": ["intent=refund"]}
        for i in range(7000)
    ] + [{"id": f"ok{i}", "prompt": "fine", "gold": "ok", "slices": ["intent=other"]} for i in range(100)]
    (workspace / "holdouts" / "acme.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = run_action(workspace, stub, {"show-failures": "7000"})
    assert run.code == 1, run.stdout
    [comment] = _bot_comments(stub)
    assert len(comment["body"]) <= 65_536
    assert "cut here to fit GitHub's size limit" in comment["body"]
    assert comment["body"].count("<details>") == comment["body"].count("</details>")
    [check] = stub.check_runs.values()
    assert len(check["output"]["summary"]) <= 65_535
    assert len(run.summary.encode("utf-8")) <= 1024 * 1024
    assert "1 MiB step-summary limit" in run.summary
    # the full report is kept for the artifact
    assert (workspace / "adaptergate-report" / "report.md").stat().st_size > 1024 * 1024


HOSTILE = "<img src=x onerror=alert(1)> @octocat | --- | **bold** [link](https://evil.example) ::add-mask::x"


def test_markdown_injection_in_query_text_is_neutralised(workspace, stub):
    (workspace / "holdouts" / "acme.jsonl").write_text(
        _holdout(prompt=lambda tag, i: HOSTILE if tag == "refund" else f"fine {i}"), encoding="utf-8"
    )
    rows = [json.loads(ln) for ln in (workspace / "holdouts" / "acme.jsonl").read_text().splitlines()]
    rows[0]["id"] = "refund_0 <script>@admin|"
    (workspace / "holdouts" / "acme.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = run_action(workspace, stub)
    assert run.code == 1
    [comment] = _bot_comments(stub)
    body = comment["body"]
    for text in (body, stub.check_runs[next(iter(stub.check_runs))]["output"]["summary"], run.summary):
        assert "<img" not in text and "<script" not in text
        assert "@octocat" not in text and "@admin" not in text
        assert "[link](" not in text  # brackets escaped: no link
        assert "refund\\_0 &lt;script&gt;@\u200badmin&#124;" in text
        # every row of each table (the worst queries, the slices) has its header's cells
        header = None
        for ln in text.splitlines():
            if not ln.startswith("|"):
                header = None
                continue
            cells = len(re.split(r"(?<!\\)\|", ln))
            header = header or cells
            assert cells == header, ln
    # a query text cannot issue workflow commands: printed inside stop-commands only
    for ln in run.stdout.splitlines():
        assert not ln.startswith("::add-mask::x")


def test_rejected_report_ends_with_the_recipes_that_fit(workspace, stub):
    from adaptergate.cli.app import main

    assert main(["recipes", "seed", "--recipes", str(workspace / "recipes.jsonl")]) == 0
    run = run_action(workspace, stub, {"recipes": "recipes.jsonl"})
    assert run.code == 1, run.stdout
    [comment] = _bot_comments(stub)
    for text in (comment["body"], run.summary, next(iter(stub.check_runs.values()))["output"]["summary"]):
        assert "What now?" in text and "https://arxiv.org/abs/" in text
    missing = run_action(workspace, stub, {"recipes": "nope.jsonl"})
    assert missing.code == 2 and "input 'recipes'" in missing.stdout


def test_cli_gate_recipes_option(tmp_path, capsys):
    from adaptergate.cli.app import main
    from adaptergate.examples import EXAMPLE_HOLDOUT

    lib = tmp_path / "recipes.jsonl"
    assert main(["recipes", "seed", "--recipes", str(lib)]) == 0
    capsys.readouterr()
    argv = ["gate", "--tenant", "acme", "--holdout", str(EXAMPLE_HOLDOUT), "--candidate", "adapter_bad_v19",
            "--baseline", "adapter_good_v18", "--scorer", "adaptergate.examples.mock_scorer:score",
            "--recipes", str(lib)]
    assert main([*argv, "--format", "markdown"]) == 1
    assert "What now?" in capsys.readouterr().out
    assert main(argv) == 1  # human: 0.5.4's recommend-cmd listing after the report
    assert "arXiv" in capsys.readouterr().out
