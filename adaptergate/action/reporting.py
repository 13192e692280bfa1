"""Where a settled verdict goes besides the log: the report files and GitHub.

This is the Actions side of publishing: the settings the inputs give, whether
this run may post at all (a token, a repository, not a fork's read-only token),
the publisher and the target (repository, pull request, head commit, run URL)
the event gives. What is posted, and when, is
:mod:`adaptergate.publish.report`'s, shared with ``adaptergate publish``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergate.action.commands import Log
from adaptergate.action.context import RunnerContext
from adaptergate.action.inputs import Inputs
from adaptergate.errors import UsageError
from adaptergate.publish.report import PublishSettings, Target, start_check
from adaptergate.trust import scrub

__all__ = [
    "ActionSettings", "LogNotes", "can_publish", "publish_settings", "report_links", "start_publishing", "target",
    "write_reports",
]

PUBLISHER = "github"
"""The registry name of the publisher the action posts with (:mod:`adaptergate.publish.base`)."""


@dataclass(frozen=True)
class ActionSettings:
    """The inputs that say where the verdict goes: the report directory, and GitHub."""

    token: str | None
    report_dir: Path
    publish: PublishSettings

    @property
    def show_failures(self) -> int:
        return self.publish.show_failures

    @property
    def recipes(self) -> Path | None:
        return self.publish.recipes


def publish_settings(ctx: RunnerContext, inputs: Inputs) -> ActionSettings:
    show = inputs.int("show-failures")
    return ActionSettings(
        token=inputs.str("github-token"),
        report_dir=ctx.path(inputs.str("report-dir", "adaptergate-report") or "adaptergate-report", "report-dir"),
        publish=PublishSettings(
            comment=inputs.choice("comment", ("on", "off", "on-failure"), "on") or "on",
            check_run=bool(inputs.bool("check-run", True)),
            check_name=inputs.str("check-name") or "adaptergate / {tenant}",
            show_failures=5 if show is None else max(0, show),
            recipes=_recipes_path(ctx, inputs),
        ),
    )


def _recipes_path(ctx: RunnerContext, inputs: Inputs) -> Path | None:
    value = inputs.str("recipes")
    if value is None:
        return None
    path = ctx.path(value, "recipes")
    if not path.is_file():
        raise UsageError(f"input 'recipes': {value} is not a file (create one with 'adaptergate recipes seed')")
    return path


def write_reports(
    decision: Any, directory: Path, show_failures: int, recommendations: list[dict[str, Any]] | None = None,
    *, links: dict[str, str] | None = None, head_sha: str | None = None,
) -> dict[str, Path]:
    """report.json (the whole decision, per-query rows included), report.md and junit.xml
    (report.md names ``head_sha`` and links ``links``: see :func:`report_links`).

    Written atomically, without lock files: the directory belongs to this run.
    ``adaptergate review --decision report.json --query ID`` reads it back.
    """
    from adaptergate.report import render
    from adaptergate.storage import atomic_write

    files = {
        "json": directory / "report.json",
        "markdown": directory / "report.md",
        "junit": directory / "junit.xml",
    }
    contents = {
        "json": decision.to_json_bytes(indent=2) + b"\n",
        "markdown": render(decision, "markdown", show_failures=show_failures, links=links, head_sha=head_sha,
                           recommendations=recommendations).encode("utf-8"),
        "junit": render(decision, "junit", show_failures=show_failures).encode("utf-8"),
    }
    for key, path in files.items():
        atomic_write(path, [scrub(contents[key].decode("utf-8")).encode("utf-8")], locked=True)
    return files


class LogNotes:
    """:class:`~adaptergate.publish.report.Notes` on the step log (warnings as ``::warning``)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def info(self, text: str) -> None:
        self.log.line(text)

    def warning(self, text: str) -> None:
        self.log.cmd("warning", text)


def target(ctx: RunnerContext) -> Target:
    """Where this run posts: the pull request (if the event is one) and its head commit."""
    pr = ctx.pull_request
    return Target(repository=ctx.repository or "", pr=pr["number"] if pr is not None else None,
                  head_sha=ctx.head_sha, run_url=ctx.run_url, server_url=ctx.server_url)


def report_links(ctx: RunnerContext) -> tuple[dict[str, str] | None, str | None]:
    """What the reports of this run link to (the workflow run, the repository) and the commit
    they are for: ``render(..., links=links, head_sha=sha)`` (the step summary, report.md)."""
    t = target(ctx)
    return t.links, t.head_sha


def can_publish(ctx: RunnerContext, settings: ActionSettings, log: Log) -> bool:
    if not settings.token:
        log.line("No github-token: the report is in the step summary and the outputs only.")
        return False
    if not ctx.repository:
        log.line("GITHUB_REPOSITORY is not set: nothing is posted to GitHub.")
        return False
    # pull_request_target runs with a write token even for forks (the user chose it).
    if ctx.from_fork and ctx.event_name != "pull_request_target":
        log.cmd(
            "notice",
            "Pull request from a fork: its token is read-only, so no comment or check run is posted."
            " The verdict is this job's exit code; the report is in the step summary.",
        )
        return False
    return True


def start_publishing(
    ctx: RunnerContext, settings: ActionSettings, tenant: str | None, log: Log
) -> tuple[Any, Any]:
    """The publisher and an in-progress check run; (None, None) when nothing can be posted.

    Never raises: publishing problems are warnings, the gate runs regardless.
    """
    from adaptergate.publish.base import open_publisher

    if not can_publish(ctx, settings, log):
        return None, None
    try:
        publisher = open_publisher(PUBLISHER, token=settings.token or "", repository=ctx.repository or "",
                                   api_url=ctx.api_url, env=ctx.env)
    except Exception as exc:  # noqa: BLE001 - a broken client must not stop the gate
        log.cmd("warning", f"cannot talk to GitHub ({type(exc).__name__}: {exc}); nothing will be posted")
        return None, None
    if tenant is None:
        return publisher, None
    check_run, usable = start_check(publisher, target(ctx), settings.publish, tenant, LogNotes(log))
    if not usable:
        return None, None
    return publisher, check_run
