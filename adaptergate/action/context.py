"""The runner's contract with a container action, read once from the environment.

The runner starts the container with the workspace mounted at
``GITHUB_WORKSPACE``, the triggering event at ``GITHUB_EVENT_PATH``, the
repository, the commit and the run in ``GITHUB_*`` variables, and two files to
append to: ``GITHUB_OUTPUT`` (step outputs) and ``GITHUB_STEP_SUMMARY`` (the job
page). :class:`RunnerContext` holds what the action needs of that, and resolves
path inputs against the workspace (confined: a symlink in the pull request cannot
lead a path out of it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["RunnerContext"]

_log = logging.getLogger("adaptergate.action")


@dataclass
class RunnerContext:
    """What the runner tells a container action, read once from the environment."""

    env: Mapping[str, str]
    workspace: Path
    event_name: str = ""
    event: dict[str, Any] = field(default_factory=dict)
    repository: str | None = None
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    sha: str | None = None
    run_id: str | None = None
    output_file: Path | None = None
    summary_file: Path | None = None
    debug: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RunnerContext":
        import json

        workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
        event: dict[str, Any] = {}
        path = env.get("GITHUB_EVENT_PATH")
        if path:
            try:
                loaded = json.loads(Path(path).read_text(encoding="utf-8"))
                event = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError) as exc:
                _log.warning("cannot read the event file %s: %s", path, exc)
        return cls(
            env=env,
            workspace=workspace,
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=event,
            repository=env.get("GITHUB_REPOSITORY") or None,
            api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
            server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            sha=env.get("GITHUB_SHA") or None,
            run_id=env.get("GITHUB_RUN_ID") or None,
            output_file=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            summary_file=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            debug=env.get("RUNNER_DEBUG") == "1" or env.get("ADAPTERGATE_DEBUG", "") not in ("", "0"),
        )

    @property
    def pull_request(self) -> dict[str, Any] | None:
        pr = self.event.get("pull_request")
        return pr if isinstance(pr, dict) and isinstance(pr.get("number"), int) else None

    @property
    def head_sha(self) -> str | None:
        """The commit a check run belongs on: the PR head (GITHUB_SHA is the merge commit)."""
        pr = self.pull_request
        if pr is not None:
            sha = (pr.get("head") or {}).get("sha")
            if isinstance(sha, str) and sha:
                return sha
        return self.sha

    @property
    def base_sha(self) -> str | None:
        """The pull request's base commit (what a manifest change is compared with)."""
        pr = self.pull_request
        sha = ((pr or {}).get("base") or {}).get("sha")
        return sha if isinstance(sha, str) and sha else None

    @property
    def from_fork(self) -> bool:
        """A pull request whose head lives in another repository: its token is read-only."""
        pr = self.pull_request
        if pr is None:
            return False
        head_repo = (pr.get("head") or {}).get("repo")
        if not isinstance(head_repo, dict):
            return True  # the fork was deleted
        base = (
            ((pr.get("base") or {}).get("repo") or {}).get("full_name")
            or (self.event.get("repository") or {}).get("full_name")
            or self.repository
        )
        return head_repo.get("full_name") != base

    @property
    def run_url(self) -> str | None:
        if not (self.repository and self.run_id):
            return None
        return f"{self.server_url}/{quote(self.repository)}/actions/runs/{quote(self.run_id)}"

    def resolve(self, value: str) -> Path:
        """A path input: absolute as given, else relative to the workspace."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.workspace / p

    def path(self, value: str, what: str) -> Path:
        """A path input, confined: one that names a place inside the workspace must stay there
        once resolved (a symlink committed in the pull request cannot lead elsewhere); one the
        workflow points outside the workspace is the workflow's own location."""
        from adaptergate.trust import confine

        p = self.resolve(value)
        ws = self.workspace.resolve()
        lexical = Path(os.path.normpath(p))
        if lexical == ws or lexical.is_relative_to(ws) or lexical.is_relative_to(self.workspace):
            return confine(p, ws, f"input '{what}'")
        return p

    def relative(self, path: Path) -> str:
        """``path`` as the repository sees it (relative to the workspace when inside it)."""
        try:
            return path.resolve().relative_to(self.workspace.resolve()).as_posix()
        except ValueError:
            return path.as_posix()
