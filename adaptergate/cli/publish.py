"""``adaptergate publish REPORT.json``: post a saved report as the sticky comment and the check run.

The report is the ``report.json`` the Action writes into its report directory
(or ``gate --format json``'s output): the whole decision. It is posted with
the code the Action posts with (:mod:`adaptergate.publish.report`), so the
comment and the check run read the same as if the gate had posted them.

This is how a pull request from a fork gets its comment: the gate runs on the
fork's ``pull_request`` event with a read-only token and uploads its report
directory; a ``workflow_run`` job of the base repository, which holds a write
token and never runs the fork's code, downloads it and runs this command
(``examples/workflows/adaptergate-publish.yml``). Other CI systems publish the
same way.

The report and a pull-request number taken from an artifact are data the
pull request's run produced: the report is rendered with its text escaped, and
with ``--sha`` the comment is posted only when pull request ``--pr`` has that
commit as its head (an artifact cannot steer the comment onto another pull
request).

Exit codes: the report's verdict (0 accepted, 1 rejected) once it was read,
whatever happens on GitHub: a call that fails after retries (an outage, a
token that may not write, a pull request whose head moved on) is a warning,
as in the Action. 2 (one line) when nothing can be attempted: the report is
missing or not a decision, no token in ``--token-env``, no repository, a
comment without ``--pr``, a check run without ``--sha``.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from adaptergate.errors import ExitCode, InvalidInputError, UsageError

__all__ = ["register", "publish", "holdout_for_annotations"]

ACTION_WORKSPACE = Path("/github/workspace")
"""Where a Docker container action sees the workspace (the Action's report names its holdout there)."""


class CommentMode(str, Enum):
    on = "on"
    off = "off"
    on_failure = "on-failure"


def comment_mode(value: Any) -> CommentMode:
    """``--comment``: ``true`` or ``false`` (every spelling the Action's switches take, one parser:
    :func:`~adaptergate.pipeline.options.parse_bool`; ``on``/``off`` among them) or ``on-failure``."""
    from adaptergate.pipeline.options import parse_bool

    if isinstance(value, CommentMode):
        return value
    text = str(value).strip().lower()
    if text == CommentMode.on_failure.value:
        return CommentMode.on_failure
    flag = parse_bool(text)
    if flag is None:
        raise typer.BadParameter(f"{value!r} is not true, false or on-failure (on and off work too)")
    return CommentMode.on if flag else CommentMode.off


def register(app: typer.Typer) -> None:
    """Add the ``publish`` command to ``app`` (once: a second call does nothing)."""
    if any(c.name == "publish" or c.callback is publish for c in app.registered_commands):
        return
    app.command("publish")(publish)


def publish(
    report: Path = typer.Argument(
        ..., metavar="REPORT.json",
        help="A saved gate decision: the report.json in the Action's report directory, or 'gate --format json'.",
    ),
    repo: Optional[str] = typer.Option(
        None, "--repo", metavar="OWNER/NAME", help="The repository to post to (default: $GITHUB_REPOSITORY).",
    ),
    pr: Optional[int] = typer.Option(
        None, "--pr", min=1, help="The pull request that gets the sticky comment (needed unless --comment off).",
    ),
    sha: Optional[str] = typer.Option(
        None, "--sha",
        help="The commit the check run goes on: the pull request's head (needed unless --no-check-run)."
        " With --pr, the comment is posted only when the pull request's head is this commit.",
    ),
    token_env: str = typer.Option(
        "GITHUB_TOKEN", "--token-env", metavar="VAR", help="The environment variable that holds the token.",
    ),
    api_url: Optional[str] = typer.Option(
        None, "--api-url", help="The REST API (default: $GITHUB_API_URL, else https://api.github.com).",
    ),
    comment: str = typer.Option(
        "true", "--comment", metavar="true|false|on-failure", callback=comment_mode,
        help="true: create or update the sticky comment; on-failure: create it only for a rejection"
        " (an existing one is still updated); false: none. on and off work too.",
    ),
    check_run: bool = typer.Option(True, "--check-run/--no-check-run", help="Post the check run."),
    check_name: str = typer.Option(
        "adaptergate / {tenant}", "--check-name", help="The check run's name ({tenant} is replaced).",
    ),
    run_url: Optional[str] = typer.Option(
        None, "--run-url",
        help="The run that holds the full report (the gate's run): linked from the comment and the check run.",
    ),
    show_failures: int = typer.Option(5, "--show-failures", min=0, help="Failing queries shown in the reports."),
    recipes: Optional[Path] = typer.Option(
        None, "--recipes", help="Recipe library: a rejected report ends with the recipes that fit.",
    ),
    workspace: Optional[Path] = typer.Option(
        None, "--workspace",
        help="The checkout the report's holdout path is relative to, for line annotations"
        " (default: $GITHUB_WORKSPACE, else the current directory; the Action's /github/workspace is known).",
    ),
    publisher_name: str = typer.Option("github", "--publisher", help="Where to post (a registered publisher)."),
) -> None:
    """Post a saved report as the pull request's sticky comment and a check run.

    Exit code: the report's verdict (0 accepted, 1 rejected); GitHub failures are warnings.
    2 when the report, the token, the repository, --pr (for a comment) or --sha (for a
    check run) is missing.
    """
    from adaptergate.publish.base import PublishError, open_publisher, publisher_names
    from adaptergate.publish.report import PublishSettings, Target, publish_decision
    from adaptergate.trust import register_secret

    env = os.environ
    decision = _read_report(report)
    code = int(ExitCode.ACCEPTED if decision.accepted else ExitCode.REJECTED)
    if publisher_name not in publisher_names():
        raise UsageError(f"--publisher must be one of {', '.join(publisher_names())}, got {publisher_name!r}")
    repository = repo or env.get("GITHUB_REPOSITORY") or ""
    if not repository:
        raise UsageError("no repository to post to: give --repo OWNER/NAME (or set GITHUB_REPOSITORY)")
    if repository.count("/") != 1 or not all(repository.split("/")):
        raise UsageError(f"--repo must be OWNER/NAME, got {repository!r}")
    token = env.get(token_env, "").strip()
    register_secret(token)
    if not token:
        raise UsageError(f"no token: ${token_env} is empty or unset (name another variable with --token-env)")
    if comment is not CommentMode.off and pr is None:
        raise UsageError("--pr is needed for the sticky comment (or --comment off)")
    if check_run and not sha:
        raise UsageError("--sha is needed for the check run: the pull request's head commit (or --no-check-run)")
    if comment is CommentMode.off and not check_run:
        raise UsageError("nothing to publish: --comment off and --no-check-run")
    if recipes is not None and not recipes.is_file():
        raise UsageError(f"--recipes: {recipes} is not a file (create one with 'adaptergate recipes seed')")

    import logging

    # PyGithub logs each retried request; the warnings below say what matters.
    logging.getLogger("github").setLevel(logging.ERROR)
    notes = _Notes(actions=env.get("GITHUB_ACTIONS") == "true")
    settings = PublishSettings(comment=comment.value, check_run=check_run, check_name=check_name,
                               show_failures=show_failures, recipes=recipes)
    try:
        publisher = open_publisher(publisher_name, token=token, repository=repository,
                                   api_url=api_url or env.get("GITHUB_API_URL") or None, env=env)
    except Exception as exc:  # noqa: BLE001 - as in the Action: a broken client is a warning
        notes.warning(f"cannot talk to GitHub ({type(exc).__name__}: {exc}); nothing was posted."
                      " The verdict stands (exit code).")
        raise typer.Exit(code) from None
    target_pr = pr if comment is not CommentMode.off else None
    if target_pr is not None and sha:
        try:
            head = publisher.pull_request_head(target_pr)
        except PublishError as exc:
            notes.warning(f"could not read pull request #{target_pr} ({exc.message}): no comment posted."
                          " The verdict stands (exit code).")
            target_pr = None
        else:
            if head.lower() != sha.lower():
                notes.warning(
                    f"pull request #{target_pr}'s head is {head[:12]}, not the report's commit {sha[:12]}"
                    " (a newer push, or a --pr that names another pull request): no comment posted."
                    " The verdict stands (exit code)."
                )
                target_pr = None
    from adaptergate.recipes import recommendations_from_file

    target = Target(repository=repository, pr=target_pr, head_sha=sha if check_run else None, run_url=run_url)
    publish_decision(
        publisher, target, settings, decision, notes,
        holdout_rel=holdout_for_annotations(decision, workspace or Path(env.get("GITHUB_WORKSPACE") or os.getcwd())),
        recommendations=recommendations_from_file(decision, recipes),
    )
    raise typer.Exit(code)


def _read_report(path: Path) -> Any:
    """The gate decision in ``path`` (a manifest gate's summary is refused with the way out)."""
    from adaptergate.recipes import read_decision

    if not path.is_file():
        raise InvalidInputError(f"report not found: {path}")
    with path.open("rb") as f:
        start = f.read(64).lstrip()
    if start.startswith(b"["):
        raise UsageError(
            f"{path} is a manifest gate's summary: publish each tenant's report"
            f" ({path.parent}/<tenant>/report.json) with its own command"
        )
    return read_decision(path)


def holdout_for_annotations(decision: Any, workspace: Path) -> str | None:
    """The report's holdout as the repository names it, for line annotations; None when its
    lines are not the checkout's (the pull request changed the holdout, so the gate read the
    base commit's) or it lies outside ``workspace`` (and the Action's ``/github/workspace``)."""
    policy = decision.policy
    if policy is not None and any(c.kind == "file" and c.what.startswith("holdout ") for c in policy.changes):
        return None
    raw = decision.holdout_path
    if not raw:
        return None
    path = Path(raw)
    if not path.is_absolute():
        return path.as_posix()
    for root in (workspace, workspace.resolve(), ACTION_WORKSPACE):
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            continue
    return None


class _Notes:
    """What publishing did: info on stdout; warnings on stderr, or as ``::warning`` workflow
    commands in GitHub Actions (they show on the run's page). Secrets are scrubbed."""

    def __init__(self, actions: bool) -> None:
        self.actions = actions

    def info(self, text: str) -> None:
        from adaptergate.trust import inert, scrub

        sys.stdout.write(scrub(inert(text)) + "\n")
        sys.stdout.flush()

    def warning(self, text: str) -> None:
        from adaptergate.trust import inert, scrub

        if self.actions:
            from adaptergate.action.commands import command

            sys.stdout.write(scrub(command("warning", text)) + "\n")
            sys.stdout.flush()
        else:
            sys.stderr.write(f"warning: {scrub(inert(text))}\n")
            sys.stderr.flush()
