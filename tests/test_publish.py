"""Publishing: the Publisher seam, the shared rules, and ``adaptergate publish REPORT.json``.

The end-to-end test runs the Action (entrypoint.py) against one stand-in GitHub server,
then publishes the report.json it wrote against a fresh one with the CLI, and holds the
comment and the check run equal: a fork's pull request, published from a ``workflow_run``
job, reads exactly as a same-repository one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from github_stub import GitHubStub
from test_action import BASE_SHA, HEAD_SHA, PR, SCORER, _holdout, run_action

RUN_URL = "https://github.com/acme/adapters/actions/runs/4242"
CHECK_FIELDS = ("name", "head_sha", "status", "conclusion", "details_url", "external_id")


def cli(argv: list[str]) -> int:
    """``adaptergate ARGV`` in-process, with the publish command registered."""
    from adaptergate.cli import publish
    from adaptergate.cli.app import app, main

    publish.register(app)  # idempotent: a no-op once the app wires it itself
    return main(argv)


@pytest.fixture
def env(monkeypatch):
    """A clean environment for the CLI: fast retries, no runner variables."""
    for name in ("GITHUB_ACTIONS", "GITHUB_REPOSITORY", "GITHUB_WORKSPACE", "GITHUB_API_URL", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ADAPTERGATE_GITHUB_BACKOFF", "0.01")
    monkeypatch.setenv("ADAPTERGATE_GITHUB_SECONDARY_WAIT", "0.2")
    monkeypatch.setenv("ADAPTERGATE_GITHUB_SPACING", "0")
    return monkeypatch


def make_workspace(root: Path) -> Path:
    ws = root / "workspace"
    (ws / "holdouts").mkdir(parents=True)
    (ws / "holdouts" / "acme.jsonl").write_text(_holdout(), encoding="utf-8")
    (ws / "gate_scorer.py").write_text(SCORER, encoding="utf-8")
    return ws


def new_stub() -> GitHubStub:
    stub = GitHubStub(owner="acme", repo="adapters").start()
    stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
    return stub


@pytest.fixture(scope="module")
def posted(tmp_path_factory) -> dict[str, Any]:
    """What the Action posted for a rejection, and the report.json it wrote."""
    ws = make_workspace(tmp_path_factory.mktemp("action"))
    stub = new_stub()
    try:
        run = run_action(ws, stub)
        assert run.code == 1, run.stdout + run.stderr
        [comment] = stub.comments_on(PR)
        [check] = stub.check_runs.values()
        assert stub.violations == []
    finally:
        stub.stop()
    return {"workspace": ws, "report": ws / run.outputs["report-path"], "comment": comment, "check": check}


@pytest.fixture
def stub():
    s = new_stub()
    try:
        yield s
        assert s.violations == [], s.violations
    finally:
        s.stop()


def publish_args(report: Path, stub: GitHubStub, *extra: str) -> list[str]:
    return ["publish", str(report), "--repo", "acme/adapters", "--pr", str(PR), "--sha", HEAD_SHA,
            "--api-url", stub.url, "--run-url", RUN_URL, *extra]


def _writes(stub: GitHubStub) -> list:
    return [r for r in stub.requests if r.method in ("POST", "PATCH", "DELETE")]


# --------------------------------------------------------------------------
# adaptergate publish against the stand-in GitHub
# --------------------------------------------------------------------------


def test_publish_posts_what_the_action_posts(posted, stub, env, capsys):
    env.setenv("GITHUB_TOKEN", stub.token)
    code = cli(publish_args(posted["report"], stub, "--workspace", str(posted["workspace"])))
    out = capsys.readouterr()
    assert code == 1, out.out + out.err  # the report's verdict: rejected
    [comment] = stub.comments_on(PR)
    assert comment["user"]["login"] == "github-actions[bot]"
    assert comment["body"] == posted["comment"]["body"]
    assert comment["body"].startswith("<!-- adaptergate:report tenant=acme -->")
    [check] = stub.check_runs.values()
    want = posted["check"]
    assert {k: check[k] for k in CHECK_FIELDS} == {k: want[k] for k in CHECK_FIELDS}
    assert check["conclusion"] == "failure" and check["head_sha"] == HEAD_SHA
    assert check["output"]["title"] == want["output"]["title"]
    assert check["output"]["summary"] == want["output"]["summary"]
    assert check["annotations_all"] == want["annotations_all"]
    assert len(check["annotations_all"]) == 12
    assert "Pull-request comment created" in out.out and "Check run 'adaptergate / acme': failure" in out.out
    assert stub.token not in out.out + out.err


def test_a_second_publish_updates_the_sticky_comment(posted, stub, env, capsys):
    env.setenv("GITHUB_TOKEN", stub.token)
    stub.add_comment(PR, "<!-- adaptergate:report tenant=acme -->\nforged", login="mallory")
    args = publish_args(posted["report"], stub, "--workspace", str(posted["workspace"]))
    assert cli(args) == 1
    assert cli(args) == 1
    mine = [c for c in stub.comments_on(PR) if c["user"]["login"] == "github-actions[bot]"]
    assert len(mine) == 1 and len(stub.comments_on(PR)) == 2
    ops = [r.operation_id for r in stub.requests]
    assert ops.count("issues/create-comment") == 1
    # the second publish made a new check run: the comment is edited to link it
    out = capsys.readouterr().out
    assert out.count("Pull-request comment created") == 1 and out.count("Pull-request comment updated") == 1
    [body] = [c["body"] for c in mine]
    latest = list(stub.check_runs.values())[-1]["html_url"]
    assert body.count("[check run](") == 1 and f"[check run]({latest})" in body


def test_the_action_workspace_path_is_known_without_workspace(posted, stub, env, tmp_path):
    """A report written inside the Docker action names its holdout under /github/workspace."""
    doc = json.loads(posted["report"].read_text(encoding="utf-8"))
    doc["holdout_path"] = "/github/workspace/holdouts/acme.jsonl"
    report = tmp_path / "report.json"
    report.write_text(json.dumps(doc), encoding="utf-8")
    env.setenv("GITHUB_TOKEN", stub.token)
    env.chdir(tmp_path)
    assert cli(publish_args(report, stub)) == 1
    [check] = stub.check_runs.values()
    assert check["annotations_all"] == posted["check"]["annotations_all"]


def test_comment_on_failure_and_accepted_report(posted, stub, env, tmp_path):
    doc = json.loads(posted["report"].read_text(encoding="utf-8"))
    doc.update(accepted=True, verdict="PASS", driver_slice_tag=None)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(doc), encoding="utf-8")
    env.setenv("GITHUB_TOKEN", stub.token)
    assert cli(publish_args(report, stub, "--comment", "on-failure")) == 0
    assert stub.comments_on(PR) == []  # nothing to update, and an acceptance creates none
    [check] = stub.check_runs.values()
    assert check["conclusion"] == "success" and check["output"]["title"].startswith("ACCEPTED · PASS")


@pytest.mark.parametrize("spelling", ["false", "False", "FALSE", "off", "no"])
def test_comment_false_spellings(posted, stub, env, spelling):
    env.setenv("GITHUB_TOKEN", stub.token)
    assert cli(publish_args(posted["report"], stub, "--comment", spelling)) == 1
    assert stub.comments_on(PR) == [] and len(stub.check_runs) == 1


@pytest.mark.parametrize("spelling", ["true", "True", "on"])
def test_comment_true_spellings(posted, stub, env, spelling):
    env.setenv("GITHUB_TOKEN", stub.token)
    assert cli(publish_args(posted["report"], stub, "--comment", spelling)) == 1
    assert len(stub.comments_on(PR)) == 1


def test_comment_bad_value_is_a_usage_error(posted, stub, env, capsys):
    env.setenv("GITHUB_TOKEN", stub.token)
    assert cli(publish_args(posted["report"], stub, "--comment", "sometimes")) == 2
    assert "is not true, false or on-failure" in capsys.readouterr().err


def test_check_run_only_and_custom_name(posted, stub, env):
    env.setenv("MY_TOKEN", stub.token)
    args = ["publish", str(posted["report"]), "--repo", "acme/adapters", "--sha", HEAD_SHA,
            "--api-url", stub.url, "--comment", "off", "--check-name", "gate {tenant}", "--token-env", "MY_TOKEN"]
    assert cli(args) == 1
    assert stub.comments_on(PR) == []
    [check] = stub.check_runs.values()
    assert check["name"] == "gate acme" and check["details_url"] == check["html_url"]  # no --run-url


def test_a_pr_whose_head_is_another_commit_gets_no_comment(posted, stub, env, capsys):
    """--pr from an artifact cannot steer the comment onto another pull request."""
    env.setenv("GITHUB_TOKEN", stub.token)
    other = "d" * 40
    args = ["publish", str(posted["report"]), "--repo", "acme/adapters", "--pr", str(PR), "--sha", other,
            "--api-url", stub.url]
    assert cli(args) == 1
    assert stub.comments_on(PR) == []
    [check] = stub.check_runs.values()
    assert check["head_sha"] == other
    assert f"pull request #{PR}'s head is {HEAD_SHA[:12]}" in capsys.readouterr().err


@pytest.mark.parametrize("scorer_accepts", [False, True])
def test_github_outage_is_a_warning_and_the_verdict_stands(posted, env, capsys, tmp_path, scorer_accepts):
    report = posted["report"]
    if scorer_accepts:
        doc = json.loads(report.read_text(encoding="utf-8"))
        doc.update(accepted=True, verdict="PASS")
        report = tmp_path / "report.json"
        report.write_text(json.dumps(doc), encoding="utf-8")
    with GitHubStub(owner="acme", repo="adapters") as stub:
        stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        stub.fail_next(1000, 500)
        env.setenv("GITHUB_TOKEN", stub.token)
        env.setenv("ADAPTERGATE_GITHUB_RETRIES", "1")
        code = cli(publish_args(report, stub))
        assert stub.violations == []
    err = capsys.readouterr().err
    assert code == (0 if scorer_accepts else 1)
    assert "warning: could not" in err and "The verdict stands" in err and "Traceback" not in err


def test_read_only_token_is_a_warning_with_the_permissions_hint(posted, env, capsys):
    with GitHubStub(owner="acme", repo="adapters", read_only=True) as stub:
        stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        env.setenv("GITHUB_TOKEN", stub.token)
        assert cli(publish_args(posted["report"], stub)) == 1
        assert stub.comments == {} and stub.check_runs == {}
    assert "pull-requests: write" in capsys.readouterr().err


def test_in_github_actions_warnings_are_workflow_commands(posted, env, capsys):
    with GitHubStub(owner="acme", repo="adapters", read_only=True) as stub:
        stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        env.setenv("GITHUB_TOKEN", stub.token)
        env.setenv("GITHUB_ACTIONS", "true")
        assert cli(publish_args(posted["report"], stub)) == 1
    assert "::warning::could not post the pull-request comment" in capsys.readouterr().out


@pytest.mark.parametrize("case, args, message", [
    ("no token", [], "no token: $GITHUB_TOKEN is empty"),
    ("no pr", ["--comment", "on"], "--pr is needed"),
    ("no sha", ["--check-run"], "--sha is needed"),
    ("no repo", ["--no-repo"], "no repository"),
    ("bad repo", ["--repo", "acme"], "--repo must be OWNER/NAME"),
    ("nothing", ["--comment", "off", "--no-check-run"], "nothing to publish"),
])
def test_missing_token_pr_sha_or_repo_is_exit_2_with_one_line(posted, stub, env, capsys, case, args, message):
    if case != "no token":
        env.setenv("GITHUB_TOKEN", stub.token)
    argv = ["publish", str(posted["report"]), "--api-url", stub.url]
    if "--no-repo" in args:
        args = []
    elif "--repo" not in args:
        argv += ["--repo", "acme/adapters"]
    if case not in ("no pr",):
        argv += ["--pr", str(PR)]
    if case not in ("no sha",):
        argv += ["--sha", HEAD_SHA]
    code = cli([*argv, *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert stub.requests == []


def test_missing_or_manifest_report_is_exit_2(posted, stub, env, capsys, tmp_path):
    env.setenv("GITHUB_TOKEN", stub.token)
    assert cli(publish_args(tmp_path / "nope.json", stub)) == 2
    assert "report not found" in capsys.readouterr().err
    manifest = tmp_path / "manifest.json"
    manifest.write_text('[{"tenant": "acme", "change": "update", "status": "rejected"}]\n', encoding="utf-8")
    assert cli(publish_args(manifest, stub)) == 2
    assert "manifest gate's summary" in capsys.readouterr().err
    not_a_report = tmp_path / "other.json"
    not_a_report.write_text('{"hello": 1}', encoding="utf-8")
    assert cli(publish_args(not_a_report, stub)) == 2
    assert stub.requests == []


def test_register_is_idempotent():
    import typer

    from adaptergate.cli import publish

    app = typer.Typer()
    publish.register(app)
    publish.register(app)
    assert [c.name for c in app.registered_commands] == ["publish"]


# --------------------------------------------------------------------------
# The seam: Publisher protocol, registry, shared rules
# --------------------------------------------------------------------------


class MemoryPublisher:
    """A publisher that keeps what it is given (registered by name in the tests below)."""

    comment_limit = 1000
    summary_limit = 2000

    def __init__(self) -> None:
        self.comments: dict[str, str] = {}
        self.checks: list[dict[str, Any]] = []
        self.heads: dict[int, str] = {}

    @classmethod
    def connect(cls, *, token, repository, api_url=None, env=None) -> "MemoryPublisher":
        return cls()

    def upsert_comment(self, pr_number, body, *, marker, create=True):
        from adaptergate.publish.base import CommentResult

        if marker not in self.comments and not create:
            return None
        action = "updated" if marker in self.comments else "created"
        self.comments[marker] = body
        return CommentResult(url=f"memory://{pr_number}", id=1, action=action)

    def pull_request_head(self, pr_number):
        return self.heads[pr_number]

    def start_check_run(self, *, name, head_sha, details_url=None, external_id=None):
        self.checks.append({"name": name, "head_sha": head_sha, "status": "in_progress"})
        return len(self.checks) - 1

    def finish_check_run(self, *, name, head_sha, conclusion, title, summary, text=None, annotations=(),
                         run=None, details_url=None, external_id=None):
        from adaptergate.publish.base import CheckRunResult

        if run is None:
            run = self.start_check_run(name=name, head_sha=head_sha)
        self.checks[run].update(status="completed", conclusion=conclusion, title=title, summary=summary,
                                annotations=list(annotations), details_url=details_url)
        return CheckRunResult(url=f"memory://check/{run}", id=run, annotation_requests=1)


class Said:
    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def info(self, text: str) -> None:
        self.infos.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)


def test_github_publisher_satisfies_the_protocol_and_is_registered():
    from adaptergate.publish.base import PUBLISHERS, Publisher, open_publisher, publisher_names
    from adaptergate.publish.github import GitHubPublisher

    assert PUBLISHERS["github"] == "adaptergate.publish.github:GitHubPublisher"
    assert "github" in publisher_names()
    pub = open_publisher("github", token="t0ken-value", repository="acme/adapters",
                         env={"ADAPTERGATE_GITHUB_RETRIES": "2"})
    assert isinstance(pub, GitHubPublisher) and isinstance(pub, Publisher)
    assert pub.comment_limit == 65_536 and pub.summary_limit == 65_535


def test_unknown_publisher_is_a_usage_error():
    from adaptergate.errors import UsageError
    from adaptergate.publish.base import open_publisher

    with pytest.raises(UsageError, match="publisher must be one of"):
        open_publisher("gitlab", token="x", repository="a/b")


def test_a_registered_publisher_gets_the_same_rules(posted, monkeypatch):
    from adaptergate.publish import base
    from adaptergate.publish.report import PublishSettings, Target, publish_decision
    from adaptergate.recipes import read_decision

    monkeypatch.setitem(base.PUBLISHERS, "memory", "test_publish:MemoryPublisher")
    pub = base.open_publisher("memory", token="x", repository="acme/adapters")
    assert isinstance(pub, base.Publisher)
    decision = read_decision(posted["report"])
    said = Said()
    out = publish_decision(pub, Target("acme/adapters", PR, HEAD_SHA, RUN_URL), PublishSettings(), decision, said,
                           holdout_rel="holdouts/acme.jsonl")
    [(marker, body)] = pub.comments.items()
    assert marker == "<!-- adaptergate:report tenant=acme -->"
    # cut to this publisher's limit, with the pointer to the run
    assert len(body) <= pub.comment_limit and "cut here to fit" in body and RUN_URL in body
    [check] = pub.checks
    assert check["conclusion"] == "failure" and check["title"] == posted["check"]["output"]["title"]
    assert len(check["summary"]) <= pub.summary_limit
    assert check["annotations"] == posted["check"]["annotations_all"]
    assert out.comment_url == f"memory://{PR}" and out.check_run_url == "memory://check/0"
    assert said.warnings == [] and len(said.infos) == 2


def test_action_required_needs_a_run_url_and_on_failure_only_updates(posted):
    from adaptergate.publish.report import PublishSettings, Target, publish_decision
    from adaptergate.recipes import read_decision

    decision = read_decision(posted["report"]).model_copy(update={"accepted": True, "approval": "review"})
    pub = MemoryPublisher()
    publish_decision(pub, Target("acme/adapters", PR, HEAD_SHA, None), PublishSettings(comment="on-failure"),
                     decision, Said(), holdout_rel=None)
    assert pub.comments == {}  # on-failure: an acceptance creates no comment
    [check] = pub.checks
    assert check["conclusion"] == "neutral"  # action_required needs a details URL
    assert check["title"].startswith("NEEDS REVIEW") and check["annotations"] == []
    publish_decision(pub, Target("acme/adapters", PR, HEAD_SHA, RUN_URL), PublishSettings(), decision, Said(),
                     holdout_rel=None)
    assert pub.checks[-1]["conclusion"] == "action_required"


def test_holdout_for_annotations(posted, tmp_path):
    from adaptergate.cli.publish import holdout_for_annotations
    from adaptergate.models import PolicyChange, PolicyReview
    from adaptergate.recipes import read_decision

    d = read_decision(posted["report"])
    assert holdout_for_annotations(d, posted["workspace"]) == "holdouts/acme.jsonl"
    assert holdout_for_annotations(d, tmp_path) is None  # outside the checkout: no lines
    assert holdout_for_annotations(d.model_copy(update={"holdout_path": "h/acme.jsonl"}), tmp_path) == "h/acme.jsonl"
    changed = PolicyReview(source="base commit b", changes=[
        PolicyChange(kind="file", what="holdout holdouts/acme.jsonl", after="changed in this pull request")])
    # the gate read the base commit's holdout: its lines are not the checkout's
    assert holdout_for_annotations(d.model_copy(update={"policy": changed}), posted["workspace"]) is None


def test_only_the_expected_user_403_is_silenced():
    """A workflow token may not read GET /user (that is how the bot is recognised): PyGithub's
    log line for it is dropped; every other failed request is still logged."""
    import logging

    from adaptergate.publish.github import _ExpectedUserForbidden

    quiet = _ExpectedUserForbidden()

    def rec(msg: str) -> logging.LogRecord:
        return logging.LogRecord("github.GithubRetry", logging.INFO, __file__, 0, msg, (), None)

    assert not quiet.filter(rec("Request GET /user failed with 403: Forbidden"))
    assert not quiet.filter(rec("Request GET /api/v3/user failed with 403: Forbidden"))  # GHES
    assert quiet.filter(rec("Request POST /repos/acme/adapters/issues/7/comments failed with 403: Forbidden"))
    assert quiet.filter(rec("Request GET /users/octocat failed with 403: Forbidden"))
    assert quiet.filter(rec("Request GET /user failed with 500: Server Error"))
