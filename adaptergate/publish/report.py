"""What is posted for a decision, and when: one place for every front end.

The GitHub Action (:mod:`adaptergate.action`) and ``adaptergate publish``
(which posts a saved report.json) both call these functions, so a decision
reads the same wherever it was published from. Nothing here knows about the
Actions runner: a caller gives a :class:`~adaptergate.publish.base.Publisher`,
a :class:`Target` (repository, pull request or None, head commit, run URL),
the :class:`PublishSettings` and the decision(s), and a :class:`Notes` sink
for what happened.

The rules:

* **the sticky comment** (only on a pull request, unless ``comment`` is off): the
  ``pr-comment`` rendering, found again by the tenant's marker; ``on`` creates
  it, ``on-failure`` creates it only for a rejection and otherwise only updates
  one a previous run left (so a fixed candidate's comment stops saying REJECTED);
* **the check run** (when ``check_run`` and a head commit is known): conclusion
  success / failure / neutral (INCONCLUSIVE accepted by policy) /
  action_required (a human review; neutral without a run URL, which GitHub
  requires for it), a one-line title, the ``check-run`` rendering as its
  summary, and the failing queries as line annotations on the holdout;
* **size cuts**: bodies are cut at a line to the publisher's limits, with a
  pointer to the full report in the run;
* **a manifest**: one combined comment, one check run per tenant whose adapter moved;
* **could not decide** (exit 2 or 3): a failed check run saying why.

A failed call is a warning on ``notes``: publishing never changes a verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adaptergate.errors import ExitCode
from adaptergate.publish.base import PublishError, Publisher, truncate_markdown
from adaptergate.trust import inert, scrub

__all__ = [
    "CHECK_ANNOTATIONS_MAX",
    "Notes",
    "PublishSettings",
    "Published",
    "Target",
    "check_annotations",
    "check_conclusion",
    "check_title",
    "failing_queries",
    "md_line",
    "post_check",
    "post_comment",
    "publish_decision",
    "publish_error",
    "publish_manifest",
    "start_check",
    "warn_publish",
]

CHECK_ANNOTATIONS_MAX = 500
"""Failing queries annotated on the check run (10 requests of 50)."""

READ_ONLY_HINT = (
    " (the token may not write here: grant the job `permissions: pull-requests: write,"
    " checks: write`; pull requests from forks get a read-only token)"
)


class Notes(Protocol):
    """Where the publishing functions say what they did (the step log, a terminal)."""

    def info(self, text: str) -> None: ...

    def warning(self, text: str) -> None: ...


@dataclass(frozen=True)
class Target:
    """Where a decision is posted."""

    repository: str
    """``owner/name``."""
    pr: int | None
    """The pull request that gets the sticky comment; None: no comment."""
    head_sha: str | None
    """The commit that gets the check run (a pull request's head); None: no check run."""
    run_url: str | None = None
    """The run whose log and summary hold the full report: linked from the reports and the check run."""
    server_url: str = "https://github.com"
    """The forge's web address: the head commit is linked as ``{server_url}/{repository}/commit/{sha}``."""

    @property
    def links(self) -> dict[str, str] | None:
        """What the reports link to: the workflow run and the repository (the head commit's link
        is made from it and :attr:`head_sha`)."""
        links = {}
        if self.run_url:
            links["run"] = self.run_url
        if self.repository and self.server_url:
            links["repository"] = f"{self.server_url.rstrip('/')}/{self.repository}"
        return links or None


@dataclass(frozen=True)
class PublishSettings:
    comment: str = "on"  # on | off | on-failure
    check_run: bool = True
    check_name: str = "adaptergate / {tenant}"
    """A name, or a template with ``{tenant}``."""
    show_failures: int = 5
    recipes: Path | None = None
    """Recipe library: a rejected tenant's report ends with the recipes that fit."""

    def check_name_for(self, tenant: str) -> str:
        return self.check_name.replace("{tenant}", tenant)


@dataclass
class Published:
    comment_url: str = ""
    check_run_url: str = ""


def md_line(text: str) -> str:
    """User text as one escaped Markdown line."""
    from adaptergate.report import escape_markdown

    return escape_markdown(text, 2000)


# --------------------------------------------------------------------------
# What a decision says
# --------------------------------------------------------------------------


def failing_queries(decision: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """Regressed queries with their message, most important first: the driver's worst, then by drop.

    Messages are made as they are taken (a caller wants 10 or 500 of maybe 100,000)."""
    driver = decision.driver_slice
    in_driver = {str(q) for q in driver.regressed_query_ids} if driver is not None else set()
    rows = [r for r in decision.per_query if r["delta"] < 0]
    rows.sort(key=lambda r: (str(r["query_id"]) not in in_driver, r["delta"]))
    for row in rows:
        msg = (
            f"query {row['query_id']} regressed: score {row['score_baseline']:.3f} → "
            f"{row['score_candidate']:.3f}"
        )
        if driver is not None and str(row["query_id"]) in in_driver:
            msg += f" (driver slice {driver.slice_tag})"
        b, c = row.get("baseline_output"), row.get("candidate_output")
        if b is not None or c is not None:
            msg += f"; baseline answered {str(b)[:200]!r}, candidate {str(c)[:200]!r}"
        yield row, msg


def check_annotations(
    decision: Any, holdout_rel: str | None, limit: int = CHECK_ANNOTATIONS_MAX,
) -> list[dict[str, Any]]:
    """The failing queries as annotations on the holdout's lines (``holdout_rel`` None: none,
    the lines the gate read are not the checkout's)."""
    if holdout_rel is None:
        return []
    level = "failure" if not decision.accepted else "warning"
    out = []
    for row, message in failing_queries(decision):
        line = row.get("line")
        if not isinstance(line, int) or line < 1:
            continue
        ann: dict[str, Any] = {
            "path": holdout_rel, "start_line": line, "end_line": line, "annotation_level": level,
            "title": inert(f"Regressed query {row['query_id']}")[:255],
            "message": scrub(inert(message, keep_newlines=True))[:64_000],
        }
        b, c = row.get("baseline_output"), row.get("candidate_output")
        if b is not None or c is not None:
            ann["raw_details"] = scrub(inert(f"baseline:  {b}\ncandidate: {c}", keep_newlines=True))[:64_000]
        out.append(ann)
        if len(out) == limit:
            break
    return out


def check_conclusion(decision: Any) -> str:
    """success / failure; neutral when INCONCLUSIVE was accepted by policy; action_required
    when a passing candidate needs a human review (approval bands, or a pull request that
    changes its own gate policy)."""
    if not decision.accepted:
        return "failure"
    if decision.approval == "review":
        return "action_required"
    return "neutral" if decision.verdict == "INCONCLUSIVE" else "success"


def check_title(decision: Any) -> str:
    """One line: the verdict, the change, the driver of a rejection; an acceptance with a
    collapsed slice names it (a reviewer sees the title without opening the check)."""
    from adaptergate.report.view import collapsed_slices

    if decision.accepted and decision.approval == "review":
        policy = decision.policy
        why = "this pull request changes its own gate policy" if policy is not None and policy.needs_review \
            else "the score is between the floor and the auto-approve threshold"
        return inert(f"NEEDS REVIEW: {why} (Δ={decision.delta:+.3f} over {decision.holdout_size} queries)")[:255]
    head = "ACCEPTED" if decision.accepted else "REJECTED"
    if decision.verdict and decision.verdict not in ("ACCEPTED", "REJECTED"):
        head += f" · {decision.verdict}"
    title = f"{head}: Δ={decision.delta:+.3f} over {decision.holdout_size} queries"
    driver = decision.driver_slice
    if driver is not None and not decision.accepted:
        title += f", driver {driver.slice_tag}"
    collapsed = collapsed_slices(decision) if decision.accepted else []
    if collapsed:
        s = collapsed[0]
        more = f" (and {len(collapsed) - 1} more)" if len(collapsed) > 1 else ""
        title += f", but slice {s.slice_tag} collapsed {s.score_baseline:.3f} → {s.score_candidate:.3f}{more}"
    return inert(title)[:255]


def _runnable(conclusion: str, target: Target) -> str:
    # GitHub wants a details_url with action_required
    return "neutral" if conclusion == "action_required" and not target.run_url else conclusion


# --------------------------------------------------------------------------
# Posting
# --------------------------------------------------------------------------


def _fit(text: str, limit: int, pointer: str) -> str:
    """``text`` cut to ``limit`` (:func:`truncate_markdown`), every ``<details>`` it leaves open
    closed before the pointer (reports nest them: the failing ids inside the statistics)."""
    out = truncate_markdown(text, limit - 64, pointer)
    missing = out.count("<details>") - out.count("</details>")
    if missing > 0:
        at = out.rfind("\n\n" + pointer.strip())
        at = at if at >= 0 else len(out)
        out = out[:at] + "\n</details>\n" * missing + out[at:]
    return out


def _pointer(target: Target, where: str) -> str:
    link = f" ([workflow run]({target.run_url}))" if target.run_url else ""
    return f"_… {where} is cut here to fit GitHub's size limit: the full report is in the job's step summary{link}._"


def warn_publish(notes: Notes, what: str, exc: Any) -> None:
    """A failed call, said once; the hint names the permissions when the token may not write."""
    hint = READ_ONLY_HINT if getattr(exc, "read_only", False) else ""
    notes.warning(f"could not {what}: {exc.message}{hint}. The verdict stands (exit code).")


def post_comment(
    publisher: Publisher, target: Target, notes: Notes, body: str, *, marker: str, create: bool,
) -> str:
    """Create or update the sticky comment (cut to the publisher's limit); its URL, or '' (warned)."""
    assert target.pr is not None
    body = _fit(scrub(body), publisher.comment_limit - 100, _pointer(target, "This comment"))
    try:
        result = publisher.upsert_comment(target.pr, body, marker=marker, create=create)
    except PublishError as exc:
        warn_publish(notes, "post the pull-request comment", exc)
        return ""
    if result is None:
        return ""
    notes.info(f"Pull-request comment {result.action}: {result.url}")
    return result.url


def post_check(
    publisher: Publisher, target: Target, notes: Notes, *, name: str, conclusion: str, title: str, summary: str,
    annotations: list[dict[str, Any]], external_id: str, run: Any = None,
) -> tuple[str, PublishError | None]:
    """Complete a check run on the head commit (summary cut to the publisher's limit).

    Returns its URL ('' when posting failed, warned) and the PublishError, if any.
    """
    assert target.head_sha is not None
    summary = _fit(scrub(summary), publisher.summary_limit - 100, _pointer(target, "This summary"))
    try:
        result = publisher.finish_check_run(
            name=name, head_sha=target.head_sha, conclusion=conclusion, title=scrub(inert(title))[:255],
            summary=summary, annotations=annotations, run=run, details_url=target.run_url, external_id=external_id,
        )
    except PublishError as exc:
        warn_publish(notes, f"complete the check run {name!r}", exc)
        return "", exc
    notes.info(f"Check run {name!r}: {conclusion} ({result.url})")
    return result.url, None


def start_check(
    publisher: Publisher, target: Target, settings: PublishSettings, tenant: str, notes: Notes,
) -> tuple[Any, bool]:
    """The tenant's check run, in progress while adapters are evaluated (None when there is
    to be none), and whether the publisher can still be used (False: the token may not write)."""
    if not (settings.check_run and target.head_sha):
        return None, True
    try:
        run = publisher.start_check_run(
            name=settings.check_name_for(tenant), head_sha=target.head_sha, details_url=target.run_url,
            external_id=tenant,
        )
    except PublishError as exc:
        warn_publish(notes, "create the check run", exc)
        return None, not exc.read_only
    return run, True


def publish_decision(
    publisher: Publisher, target: Target, settings: PublishSettings, decision: Any, notes: Notes, *,
    holdout_rel: str | None, check_run: Any = None, recommendations: list[dict[str, Any]] | None = None,
) -> Published:
    """One tenant's decision: the check run (``check_run``: the one :func:`start_check` opened,
    else a new one), then the sticky comment, which links to it; both name the head commit."""
    from adaptergate.report import render, report_marker

    out = Published()
    links = dict(target.links or {})
    if settings.check_run and target.head_sha:
        out.check_run_url, _ = post_check(
            publisher, target, notes, name=settings.check_name_for(decision.tenant_id),
            conclusion=_runnable(check_conclusion(decision), target), title=check_title(decision),
            summary=render(decision, "markdown", show_failures=settings.show_failures, target="check-run",
                           links=links, head_sha=target.head_sha, recommendations=recommendations),
            annotations=check_annotations(decision, holdout_rel), external_id=decision.tenant_id, run=check_run,
        )
    if out.check_run_url:
        links["check_run"] = out.check_run_url
    if target.pr is not None and settings.comment != "off":
        body = render(decision, "pr-comment", show_failures=settings.show_failures, target="pr-comment",
                      links=links, head_sha=target.head_sha, recommendations=recommendations)
        out.comment_url = post_comment(
            publisher, target, notes, body, marker=report_marker(decision.tenant_id),
            create=settings.comment == "on" or not decision.accepted,
        )
    return out


def publish_manifest(
    publisher: Publisher, target: Target, settings: PublishSettings, outcome: Any, notes: Notes, *,
    manifest_name: str, holdout_rel: Callable[[Any], str | None],
) -> Published:
    """A manifest gate (:class:`~adaptergate.manifest.discovery.ManifestOutcome`): one combined
    comment; one check run per tenant whose adapter moved (``holdout_rel(tenant outcome)``: its
    holdout as the repository names it, None for no line annotations). ``check_run_url`` holds
    one URL a line."""
    from adaptergate.recipes import recommendations_from_file
    from adaptergate.report import render, render_manifest, report_marker

    out = Published()
    links = target.links
    gated = outcome.gated
    if target.pr is not None and settings.comment != "off" and gated:
        body = render_manifest(outcome, "pr-comment", show_failures=settings.show_failures,
                               manifest_name=manifest_name, links=links, recipes=settings.recipes,
                               head_sha=target.head_sha)
        out.comment_url = post_comment(
            publisher, target, notes, body, marker=report_marker(f"manifest:{manifest_name}"),
            create=settings.comment == "on" or outcome.exit_code != 0,
        )
    if not (settings.check_run and target.head_sha):
        return out
    urls = []
    for t in gated:
        d = t.decision
        if d is not None:
            title = f"NEEDS REVIEW: {t.note}"[:255] if t.status == "review" else check_title(d)
            summary = render(d, "markdown", show_failures=settings.show_failures, target="check-run", links=links,
                             head_sha=target.head_sha, recommendations=recommendations_from_file(d, settings.recipes))
            annotations = check_annotations(d, holdout_rel(t))
        else:
            title = {"review": "NEEDS REVIEW", "error": "could not decide"}.get(t.status, t.status)
            title = f"{title}: {t.error or t.note}"[:255]
            summary = md_line(t.error or t.note)
            annotations = []
        url, error = post_check(
            publisher, target, notes, name=settings.check_name_for(t.tenant),
            conclusion=_runnable(t.conclusion, target), title=title, summary=summary, annotations=annotations,
            external_id=t.tenant,
        )
        if url:
            urls.append(url)
        if error is not None and error.read_only:
            break
    out.check_run_url = "\n".join(urls)
    return out


def publish_error(
    publisher: Publisher, target: Target, settings: PublishSettings, notes: Notes, *, tenant: str, message: str,
    code: int, check_run: Any = None,
) -> str:
    """A check run that says the gate could not decide (exit 2 or 3); its URL or ''."""
    if not settings.check_run or not target.head_sha:
        return ""
    what = "invalid input" if code == ExitCode.INVALID_INPUT else "evaluation failed"
    url, _ = post_check(
        publisher, target, notes, name=settings.check_name_for(tenant), conclusion="failure",
        title=f"adaptergate could not decide: {what}",
        summary=f"## ❌ adaptergate could not decide ({what}, exit {code})\n\n" + md_line(message),
        annotations=[], external_id=tenant, run=check_run,
    )
    return url
