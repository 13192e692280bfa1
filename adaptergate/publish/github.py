"""Publishing a decision on GitHub: the sticky pull-request comment and the check run.

Talks to the REST API through PyGithub (``base_url`` makes it work with
GitHub Enterprise Server). Every call is retried on 5xx, on secondary rate
limits and on 429, honouring ``Retry-After`` (PyGithub's
:class:`github.GithubRetry`, widened to PATCH and DELETE).

The ``github`` publisher of :mod:`adaptergate.publish.base` (it satisfies
:class:`~adaptergate.publish.base.Publisher`). Nothing here decides anything
(:mod:`adaptergate.publish.report` does): a failure to publish is reported to
the caller as :class:`PublishError` and must never change the gate's exit code.
The token is never logged or put into an error message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Sequence

from adaptergate.publish.base import CheckRunResult, CommentResult, PublishError, truncate_markdown

__all__ = [
    "BOT_LOGIN",
    "CHECK_ANNOTATIONS_PER_REQUEST",
    "CHECK_TEXT_LIMIT",
    "COMMENT_BODY_LIMIT",
    "CheckRunResult",
    "CommentResult",
    "GitHubPublisher",
    "PublishError",
    "truncate_markdown",
]

COMMENT_BODY_LIMIT = 65_536
"""GitHub rejects issue-comment bodies longer than this (characters)."""

CHECK_TEXT_LIMIT = 65_535
"""Limit of a check run's ``output.summary`` and ``output.text`` (characters)."""

CHECK_TITLE_LIMIT = 255

CHECK_ANNOTATIONS_PER_REQUEST = 50
"""GitHub accepts at most this many annotations per create/update request."""

BOT_LOGIN = "github-actions[bot]"
"""Who a workflow's GITHUB_TOKEN posts as (GET /user is refused to that token)."""

_log = logging.getLogger("adaptergate.publish.github")

_RETRY_LOGGER = "github.GithubRetry"
"""PyGithub's retry logger: it logs every 403 (at INFO, and PyGithub sets the ``github`` logger
to INFO with a handler of its own when imported), the expected one of ``GET /user`` included."""


class _ExpectedUserForbidden(logging.Filter):
    """Drops PyGithub's "Request GET /user failed with 403" while :meth:`GitHubPublisher.identity`
    asks who the token is: a workflow's GITHUB_TOKEN (an installation token) may not read
    ``/user``, which is how the bot's login is recognised, not a problem worth a log line."""

    _EXPECTED = re.compile(r"^Request GET \S*/user failed with 40[134]\b")

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not self._EXPECTED.match(record.getMessage())
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not ours to drop
            return True


@contextmanager
def _quiet_expected_user_forbidden() -> Iterator[None]:
    logger = logging.getLogger(_RETRY_LOGGER)
    quiet = _ExpectedUserForbidden()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _message(exc: BaseException) -> str:
    """A GitHub error as one line, without headers (which could carry anything)."""
    from github import GithubException

    if isinstance(exc, GithubException):
        data = exc.data if isinstance(exc.data, dict) else {}
        msg = str(data.get("message") or "").strip() or type(exc).__name__
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0]
            detail = first.get("message") or first.get("code") if isinstance(first, dict) else first
            if detail:
                msg += f" ({detail})"
        return f"HTTP {exc.status}: {msg}"
    return f"{type(exc).__name__}: {exc}"


class GitHubPublisher:
    """Posts to one repository with one token (the ``github`` publisher).

    ``retries`` bounds the attempts per call; ``backoff`` is urllib3's
    backoff factor (0 s, then 2·backoff, 4·backoff … between attempts);
    ``secondary_rate_wait`` is the wait after a secondary rate limit that
    names no ``Retry-After``. ``spacing`` keeps PyGithub's pause between
    requests (0.25 s, 1 s between writes), as GitHub asks of integrations.
    """

    comment_limit = COMMENT_BODY_LIMIT
    summary_limit = CHECK_TEXT_LIMIT

    def __init__(
        self,
        *,
        token: str,
        repository: str,
        api_url: str = "https://api.github.com",
        retries: int = 5,
        backoff: float = 1.0,
        secondary_rate_wait: float = 60.0,
        timeout: int = 30,
        user_agent: str = "adaptergate",
        spacing: bool = True,
    ) -> None:
        from github import Auth, Github, GithubRetry

        if "/" not in repository:
            raise ValueError(f"repository must be owner/name, got {repository!r}")
        retry = GithubRetry(
            total=retries,
            backoff_factor=backoff,
            secondary_rate_wait=secondary_rate_wait,
            status_forcelist=[429, *range(500, 600)],
            allowed_methods=frozenset({"GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"}),
            raise_on_status=False,
        )
        pauses = {} if spacing else {"seconds_between_requests": 0, "seconds_between_writes": 0}
        self._gh = Github(
            auth=Auth.Token(token), base_url=api_url.rstrip("/"), retry=retry, timeout=int(timeout),
            per_page=100, user_agent=user_agent, lazy=True, **pauses,
        )
        self.repository = repository
        self._repo = self._gh.get_repo(repository)
        self._login: str | None = None

    @classmethod
    def connect(
        cls, *, token: str, repository: str, api_url: str | None = None, env: Mapping[str, str] | None = None,
    ) -> "GitHubPublisher":
        """The registry's constructor: ``api_url`` None is github.com's; ``env`` tunes the retries
        (``ADAPTERGATE_GITHUB_RETRIES``, ``_BACKOFF``, ``_SECONDARY_WAIT``; ``_SPACING=0`` drops
        the pauses between requests)."""
        env = env or {}
        return cls(
            token=token, repository=repository, api_url=(api_url or "https://api.github.com").rstrip("/"),
            retries=int(env.get("ADAPTERGATE_GITHUB_RETRIES", "5")),
            backoff=float(env.get("ADAPTERGATE_GITHUB_BACKOFF", "1.0")),
            secondary_rate_wait=float(env.get("ADAPTERGATE_GITHUB_SECONDARY_WAIT", "60")),
            spacing=env.get("ADAPTERGATE_GITHUB_SPACING") != "0",
        )

    # ------------------------------------------------------------ plumbing

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from github import GithubException

        try:
            return fn(*args, **kwargs)
        except GithubException as exc:
            status = exc.status
            message = _message(exc)
            read_only = status == 403 and "rate limit" not in message.lower()
            raise PublishError(f"{what}: {message}", status=status, read_only=read_only) from None
        except Exception as exc:  # connection errors after retries, timeouts
            raise PublishError(f"{what}: {_message(exc)}", status=_status(exc)) from None

    def identity(self) -> str:
        """The login the token posts as: the user of a PAT, else ``github-actions[bot]``."""
        if self._login is None:
            from github import GithubException

            try:
                with _quiet_expected_user_forbidden():
                    self._login = self._gh.get_user().login
            except GithubException as exc:
                # An installation token (GITHUB_TOKEN, a GitHub App) may not read /user.
                if exc.status not in (401, 403, 404):
                    raise PublishError(f"reading the token's user: {_message(exc)}", status=exc.status) from None
                self._login = BOT_LOGIN
        return self._login

    # ------------------------------------------------------------- comment

    def upsert_comment(
        self, pr_number: int, body: str, *, marker: str, create: bool = True
    ) -> CommentResult | None:
        """Create or update the sticky comment that starts with ``marker``.

        Only comments written by the token's own identity count (anyone can
        paste a marker). The oldest one is updated in place; any later copies
        (left by a retried create, or a race between two runs) are deleted.
        With ``create=False`` an existing comment is updated but none is
        created; returns None then when there is none.
        """
        if len(body) > COMMENT_BODY_LIMIT:
            raise ValueError(f"comment body is {len(body)} characters, over GitHub's {COMMENT_BODY_LIMIT}")
        me = self.identity()
        issue = self._repo.get_issue(pr_number)  # lazy: no request, comments only

        def find() -> list[Any]:
            return [
                c for c in issue.get_comments()
                if (c.body or "").startswith(marker) and c.user is not None and c.user.login == me
            ]

        ours = self._call(f"listing the comments of #{pr_number}", find)
        if not ours:
            if not create:
                return None
            made = self._call(f"commenting on #{pr_number}", issue.create_comment, body)
            return CommentResult(url=made.html_url, id=made.id, action="created")
        keep, extra = ours[0], ours[1:]
        removed = 0
        for c in extra:
            try:
                self._call(f"deleting duplicate comment {c.id}", c.delete)
                removed += 1
            except PublishError as exc:
                _log.warning("%s", exc.message)
        if keep.body == body:
            return CommentResult(url=keep.html_url, id=keep.id, action="unchanged", removed_duplicates=removed)
        self._call(f"updating comment {keep.id}", keep.edit, body)
        return CommentResult(url=keep.html_url, id=keep.id, action="updated", removed_duplicates=removed)

    def pull_request_head(self, pr_number: int) -> str:
        """The commit pull request ``pr_number``'s head is at now."""
        return str(self._call(f"reading pull request #{pr_number}", lambda: self._repo.get_pull(pr_number).head.sha))

    # ----------------------------------------------------------- check run

    def start_check_run(self, *, name: str, head_sha: str, details_url: str | None = None,
                        external_id: str | None = None) -> Any:
        """Create the check run in progress (shown while adapters are evaluated)."""
        kwargs: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": "in_progress"}
        if details_url:
            kwargs["details_url"] = details_url
        if external_id:
            kwargs["external_id"] = external_id
        return self._call(f"creating check run {name!r}", self._repo.create_check_run, **kwargs)

    def finish_check_run(
        self,
        *,
        name: str,
        head_sha: str,
        conclusion: str,
        title: str,
        summary: str,
        text: str | None = None,
        annotations: Sequence[dict[str, Any]] = (),
        run: Any = None,
        details_url: str | None = None,
        external_id: str | None = None,
    ) -> CheckRunResult:
        """Complete ``run`` (or a new check run) with ``conclusion`` and the report.

        Annotations go in batches of :data:`CHECK_ANNOTATIONS_PER_REQUEST`:
        every batch but the last while the run stays in progress, the last
        one with the conclusion, so the run completes once, fully annotated.
        """
        title = title[:CHECK_TITLE_LIMIT]
        summary = summary[:CHECK_TEXT_LIMIT]
        text = text[:CHECK_TEXT_LIMIT] if text else None
        batches = [
            list(annotations[i:i + CHECK_ANNOTATIONS_PER_REQUEST])
            for i in range(0, len(annotations), CHECK_ANNOTATIONS_PER_REQUEST)
        ] or [[]]

        def output(batch: list[dict[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {"title": title, "summary": summary}
            if text:
                out["text"] = text
            if batch:
                out["annotations"] = batch
            return out

        if run is None:
            run = self.start_check_run(name=name, head_sha=head_sha, details_url=details_url,
                                       external_id=external_id)
        requests = 0
        for batch in batches[:-1]:
            self._call(f"annotating check run {run.id}", run.edit, status="in_progress", output=output(batch))
            requests += 1
        self._call(
            f"completing check run {run.id}", run.edit, status="completed", conclusion=conclusion,
            output=output(batches[-1]),
        )
        requests += 1
        return CheckRunResult(url=run.html_url, id=run.id, annotation_requests=requests)

