"""The publishing seam: where a gate's report is posted for reviewers.

A publisher is anything that implements :class:`Publisher`: it keeps one
*sticky note* per marker on a change under review (a pull-request comment
that later runs update in place), says which commit a change's head is at,
and posts *status runs* on a commit (a check run: started in progress,
finished with a conclusion, a title, a Markdown summary and line annotations). Today that is GitHub
(:mod:`adaptergate.publish.github`); another forge is another module
registered here by name. :func:`open_publisher` imports a publisher's module
only when it is chosen, so nothing imports PyGithub until something is posted.

What is posted, and when, is decided once for every front end by
:mod:`adaptergate.publish.report`; a publisher only carries it.

Adding a publisher: write ``adaptergate/publish/<name>.py`` with a class that
satisfies :class:`Publisher` and has a ``connect(*, token, repository,
api_url, env)`` class method (``api_url`` None: the forge's default; ``env``:
the environment, for tuning variables), then add one line to
:data:`PUBLISHERS` (or call :func:`register_publisher` from your own code).
A failed call raises :class:`PublishError`; it must never change a verdict.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from adaptergate.errors import UsageError

__all__ = [
    "PUBLISHERS",
    "CheckRunResult",
    "CommentResult",
    "PublishError",
    "Publisher",
    "open_publisher",
    "publisher_names",
    "register_publisher",
    "truncate_markdown",
]


class PublishError(Exception):
    """A call failed after retries; ``read_only`` when the token may not write."""

    def __init__(self, message: str, *, status: int | None = None, read_only: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.read_only = read_only


@dataclass(frozen=True)
class CommentResult:
    url: str
    id: int
    action: str  # "created" | "updated" | "unchanged"
    removed_duplicates: int = 0


@dataclass(frozen=True)
class CheckRunResult:
    url: str
    id: int
    annotation_requests: int


@runtime_checkable
class Publisher(Protocol):
    """One repository, one credential: sticky notes on changes, status runs on commits."""

    comment_limit: int
    """The most characters a sticky note's body may hold."""
    summary_limit: int
    """The most characters a status run's summary may hold."""

    def upsert_comment(self, pr_number: int, body: str, *, marker: str, create: bool = True) -> CommentResult | None:
        """Create or update the note on change ``pr_number`` whose body starts with ``marker``
        (only notes the credential itself wrote count). With ``create=False`` an existing note
        is updated but none is created: None then when there is none."""
        ...

    def pull_request_head(self, pr_number: int) -> str:
        """The commit change ``pr_number``'s head is at now (a caller that got the number from
        untrusted data checks it against the commit its report is for)."""
        ...

    def start_check_run(self, *, name: str, head_sha: str, details_url: str | None = None,
                        external_id: str | None = None) -> Any:
        """A status run on ``head_sha``, in progress; the handle :meth:`finish_check_run` takes."""
        ...

    def finish_check_run(
        self, *, name: str, head_sha: str, conclusion: str, title: str, summary: str, text: str | None = None,
        annotations: Sequence[dict[str, Any]] = (), run: Any = None, details_url: str | None = None,
        external_id: str | None = None,
    ) -> CheckRunResult:
        """Complete ``run`` (or a new status run) with ``conclusion`` (success, failure, neutral,
        action_required, skipped), ``title``, ``summary`` and line ``annotations``."""
        ...


PUBLISHERS: dict[str, str] = {
    "github": "adaptergate.publish.github:GitHubPublisher",
}
"""Publisher name -> ``module:class``, imported only when chosen."""


def register_publisher(name: str, target: str) -> None:
    """Make ``name`` choosable (``target`` is ``module:class``)."""
    PUBLISHERS[name] = target


def publisher_names() -> tuple[str, ...]:
    return tuple(PUBLISHERS)


def open_publisher(
    name: str, *, token: str, repository: str, api_url: str | None = None, env: Mapping[str, str] | None = None,
) -> Publisher:
    """A publisher of the kind registered as ``name``, posting to ``repository`` with ``token``."""
    target = PUBLISHERS.get(name)
    if target is None:
        raise UsageError(f"publisher must be one of {', '.join(PUBLISHERS)}, got {name!r}")
    module, _, cls = target.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    return factory.connect(token=token, repository=repository, api_url=api_url, env=dict(env or {}))


def truncate_markdown(text: str, limit: int, pointer: str) -> str:
    """``text`` cut at a line boundary so that it plus ``pointer`` fits in ``limit`` characters.

    An open ``<details>`` block is closed so the rest of the page renders.
    Unchanged when it already fits.
    """
    if len(text) <= limit:
        return text
    tail = "\n\n" + pointer.strip() + "\n"
    budget = limit - len(tail) - len("\n</details>\n")
    if budget <= 0:
        return tail.strip()[:limit]
    cut = text[:budget]
    nl = cut.rfind("\n")
    if nl > budget // 2:
        cut = cut[:nl]
    if cut.count("<details>") > cut.count("</details>"):
        cut += "\n</details>\n"
    return cut + tail
