"""The report formats, a registry by name: ``render(decision, fmt)`` looks ``fmt`` up.

Each format is one renderer function, ``(decision, options) -> str`` (the
:class:`ReportFormat` protocol), and one line in :data:`FORMATS`:

* ``json`` — the decision itself;
* ``markdown`` and ``pr-comment`` — ``templates/report.md.j2`` (pr-comment
  leads with a hidden marker and stays under GitHub's size limit);
* ``junit`` — ``templates/junit.xml.j2``.

``human`` is not a string: :func:`adaptergate.report.console.print_human`
prints it to a terminal (the report to one console, warnings to another).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from adaptergate.errors import UsageError
from adaptergate.models import GateDecision
from adaptergate.report.environment import get_environment
from adaptergate.report.escape import scrubbed
from adaptergate.report.view import LEAD_LIMIT, STAT_LIST_LIMIT, report_context

__all__ = ["FORMATS", "PR_COMMENT_MAX_CHARS", "RENDER_FORMATS", "RenderOptions", "ReportFormat", "json_bytes", "render"]

PR_COMMENT_MAX_CHARS = 65_000
"""GitHub rejects comment bodies (and check-run summaries) over 65,536 chars."""


@dataclass(frozen=True)
class RenderOptions:
    """What a caller of :func:`render` chose, handed to every renderer."""

    show_failures: int = 5
    staleness_threshold_days: int = 30
    target: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    recommendations: list[Any] | None = None
    head_sha: str | None = None

    def context(self, decision: GateDecision, fmt: str, **extra: Any) -> dict[str, Any]:
        """The template context of ``decision`` rendered as ``fmt``."""
        return report_context(
            decision, fmt=fmt, show_failures=self.show_failures,
            staleness_threshold_days=self.staleness_threshold_days, target=self.target,
            links=self.links, head_sha=self.head_sha, recommendations=self.recommendations, **extra,
        )


class ReportFormat(Protocol):
    """A report format: the decision rendered as one string."""

    def __call__(self, decision: GateDecision, options: RenderOptions) -> str: ...


def render_json(decision: GateDecision, options: RenderOptions) -> str:
    """:func:`json_bytes` as text (the ``json`` format of :func:`render`)."""
    return json_bytes(decision, options).decode("utf-8")


def json_bytes(decision: GateDecision, options: RenderOptions) -> bytes:
    """The decision itself, its ``warnings`` holding every warning the human report prints.

    ``decision.warnings`` first, then what the human report (and the Markdown ones) decide
    when they render: queries whose slices were malformed, suspected duplicate slice tags,
    and a holdout not refreshed for more than ``options.staleness_threshold_days`` (the
    rule of :func:`adaptergate.report.view.report_context`). The decision is not changed:
    the warnings go on a shallow copy, so a million per-query rows are not copied.
    """
    from adaptergate.models import GateWarning

    extra: list[GateWarning] = []
    if decision.malformed_slice_queries > 0:
        extra.append(GateWarning(
            code="malformed-slices",
            message=f"{decision.malformed_slice_queries} held-out queries had a malformed 'slices' field"
            " (expected list, got non-list); they counted in the aggregate but not in slice attribution",
        ))
    pairs = [d.tags for d in decision.duplicate_slice_details] or decision.suspected_duplicate_slices
    if pairs:
        extra.append(GateWarning(
            code="duplicate-slices",
            message="suspected duplicate slice tags (consider normalising the holdout): "
            + "; ".join(" ↔ ".join(tags) for tags in pairs),
        ))
    days, limit = decision.staleness_days, options.staleness_threshold_days
    if days is not None and days > limit:
        extra.append(GateWarning(
            code="stale-holdout",
            message=f"held-out set has not been refreshed in {days} days (threshold: {limit}); a stale"
            " holdout may not reflect current traffic, so eval-set drift can read as adapter drift",
        ))
    if extra:
        decision = decision.model_copy(update={"warnings": [*decision.warnings, *extra]})
    return decision.to_json_bytes(indent=2)


def render_markdown(decision: GateDecision, options: RenderOptions) -> str:
    return get_environment().get_template("report.md.j2").render(options.context(decision, "markdown"))


def render_pr_comment(decision: GateDecision, options: RenderOptions) -> str:
    template = get_environment().get_template("report.md.j2")
    text = template.render(options.context(decision, "pr-comment"))
    # Stay under GitHub's size limit however many slices there are: fewer slice rows first,
    # then fewer lines on what broke, then shorter lists of statements (failed, unsettled).
    rows, lead, items = len(decision.slice_attributions), LEAD_LIMIT, STAT_LIST_LIMIT
    while len(text) > PR_COMMENT_MAX_CHARS and (rows > 0 or lead > 1 or items > 0):
        if rows > 0:
            rows //= 2
        elif lead > 1:
            lead //= 2
        else:
            items //= 2
        text = template.render(options.context(
            decision, "pr-comment", max_slice_rows=rows, max_lead=lead, max_list=items))
    return text


def render_junit(decision: GateDecision, options: RenderOptions) -> str:
    return get_environment().get_template("junit.xml.j2").render(options.context(decision, "junit"))


FORMATS: dict[str, ReportFormat] = {
    "json": render_json,
    "pr-comment": render_pr_comment,
    "markdown": render_markdown,
    "junit": render_junit,
}
"""The formats :func:`render` knows, by name."""

RENDER_FORMATS: tuple[str, ...] = tuple(FORMATS)
"""Formats :func:`render` returns as a string (``human`` is :func:`~adaptergate.report.console.print_human`)."""


@scrubbed
def render(
    decision: GateDecision,
    fmt: str,
    *,
    show_failures: int = 5,
    staleness_threshold_days: int = 30,
    target: str | None = None,
    links: dict[str, str] | None = None,
    recommendations: list[Any] | None = None,
    head_sha: str | None = None,
) -> str:
    """Render ``decision`` as ``json``, ``pr-comment``, ``markdown`` or ``junit`` (see :data:`FORMATS`).

    ``show_failures`` is how many failing query ids of the driver slice to
    list; ``staleness_threshold_days`` is the holdout age above which a
    warning appears; ``target`` names the surface the text is for
    (``"check-run"``, ``"step-summary"`` …) and is handed to the templates as
    ``target`` (default: ``fmt``); ``links`` are trusted URLs (``run``: the
    workflow run, ``check_run``, ``artifact``: the report artifact, ``commit``:
    the head commit, or ``repository``: the repository's web URL, from which
    the commit's is made); ``head_sha`` is the commit the report is for (shown
    short, linked when its URL is known); ``recommendations``, for a rejection, are
    repair recipes (:func:`adaptergate.recipes.recommendations_for`) shown in
    a "What now?" section of the Markdown reports (none: no section).

    Raises :class:`~adaptergate.errors.UsageError` for any other ``fmt``.
    """
    renderer = FORMATS.get(fmt)
    if renderer is None:
        hint = " (human output is printed by print_human)" if fmt == "human" else ""
        raise UsageError(f"unknown report format {fmt!r}{hint}; valid formats: " + ", ".join(FORMATS))
    options = RenderOptions(
        show_failures=show_failures, staleness_threshold_days=staleness_threshold_days, target=target,
        links=links or {}, recommendations=recommendations, head_sha=head_sha,
    )
    return renderer(decision, options)
