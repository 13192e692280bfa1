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
from adaptergate.report.view import report_context

__all__ = ["FORMATS", "PR_COMMENT_MAX_CHARS", "RENDER_FORMATS", "RenderOptions", "ReportFormat", "render"]

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

    def context(self, decision: GateDecision, fmt: str, **extra: Any) -> dict[str, Any]:
        """The template context of ``decision`` rendered as ``fmt``."""
        return report_context(
            decision, fmt=fmt, show_failures=self.show_failures,
            staleness_threshold_days=self.staleness_threshold_days, target=self.target,
            links=self.links, recommendations=self.recommendations, **extra,
        )


class ReportFormat(Protocol):
    """A report format: the decision rendered as one string."""

    def __call__(self, decision: GateDecision, options: RenderOptions) -> str: ...


def render_json(decision: GateDecision, options: RenderOptions) -> str:
    return decision.to_json(indent=2)


def render_markdown(decision: GateDecision, options: RenderOptions) -> str:
    return get_environment().get_template("report.md.j2").render(options.context(decision, "markdown"))


def render_pr_comment(decision: GateDecision, options: RenderOptions) -> str:
    template = get_environment().get_template("report.md.j2")
    text = template.render(options.context(decision, "pr-comment"))
    # Stay under GitHub's size limit however many slices there are.
    rows = len(decision.slice_attributions)
    while len(text) > PR_COMMENT_MAX_CHARS and rows > 0:
        rows //= 2
        text = template.render(options.context(decision, "pr-comment", max_slice_rows=rows))
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
) -> str:
    """Render ``decision`` as ``json``, ``pr-comment``, ``markdown`` or ``junit`` (see :data:`FORMATS`).

    ``show_failures`` is how many failing query ids of the driver slice to
    list; ``staleness_threshold_days`` is the holdout age above which a
    warning appears; ``target`` names the surface the text is for
    (``"check-run"``, ``"step-summary"`` …) and is handed to the templates as
    ``target`` (default: ``fmt``); ``links`` are trusted URLs for the footer
    (``run``: the workflow run); ``recommendations``, for a rejection, are
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
        links=links or {}, recommendations=recommendations,
    )
    return renderer(decision, options)
