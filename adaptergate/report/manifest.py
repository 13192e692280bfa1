"""The report of a manifest gate: one row per tenant, then each tenant not accepted outright.

Verdicts and icons are the single report's (:func:`~adaptergate.report.view.verdict_icon`):
⚠️ is an acceptance that is INCONCLUSIVE or has a collapsed slice, in the table and in the
tenant's section alike. Each tenant's section is its report without the headline (the
tenant's H3 heading carries it), its headings one level down.
"""

from __future__ import annotations

from typing import Any

import adaptergate
from adaptergate.errors import UsageError
from adaptergate.report.environment import get_environment
from adaptergate.report.escape import MD_LONG_TEXT_LIMIT, escape_markdown, report_marker, scrubbed
from adaptergate.report.formats import render
from adaptergate.report.numbers import fmt_signed
from adaptergate.report.view import collapse_note, trace_links, verdict_icon, verdict_title

__all__ = ["render_manifest"]


_STATUS_WORDS = {
    "accepted": "accepted", "review": "needs review", "rejected": "rejected", "error": "error", "skipped": "—",
}


def tenant_icon(t: Any) -> str:
    """A tenant's icon, the one its own report's headline shows (:func:`verdict_icon`)."""
    if t.status == "error":
        return "❌"
    if t.status == "skipped":
        return ""
    if t.status == "review":
        return "👀"
    if t.decision is not None:
        return verdict_icon(t.decision)
    return "🚫" if t.status == "rejected" else "✅"


def _manifest_rows(outcome: Any) -> list[dict[str, Any]]:
    rows = []
    for t in outcome.tenants:
        d = t.decision
        icon = tenant_icon(t)
        verdict = f"{icon} {_STATUS_WORDS[t.status]}" if icon else _STATUS_WORDS[t.status]
        if d is not None and d.verdict and d.verdict not in ("ACCEPTED", "REJECTED"):
            verdict += f" ({d.verdict})"
        rows.append({
            "tenant": t.tenant, "kind": t.kind, "base_version": t.base_version, "head_version": t.head_version,
            "verdict": verdict, "delta": fmt_signed(d.delta) if d is not None else "—",
            "driver": d.driver_slice_tag if d is not None and not d.accepted else (
                collapse_note(d) or None if d is not None else None),
            "note": t.error or t.note,
        })
    return rows


def _summary_line(outcome: Any) -> str:
    gated = outcome.gated
    counts = {s: sum(1 for t in gated if t.status == s) for s in ("accepted", "review", "rejected", "error")}
    parts = [f"{n:,} {what}" for what, n in (
        ("accepted", counts["accepted"]),
        ("needs review" if counts["review"] == 1 else "need review", counts["review"]),
        ("rejected", counts["rejected"]), ("failed to evaluate", counts["error"]),
    ) if n]
    skipped = len(outcome.tenants) - len(gated)
    changed = "1 tenant changed its adapter" if len(gated) == 1 else f"{len(gated):,} tenants changed adapters"
    return (
        changed + (": " + ", ".join(parts) if parts else "")
        + (f"; {skipped:,} without an adapter change" if skipped else "") + "."
    )


@scrubbed
def render_manifest(
    outcome: Any,
    fmt: str,
    *,
    show_failures: int = 5,
    manifest_name: str = "manifest",
    links: dict[str, str] | None = None,
    recipes: Any = None,
    head_sha: str | None = None,
) -> str:
    """One Markdown report for a manifest gate (``markdown`` or ``pr-comment``).

    ``outcome`` is a :class:`adaptergate.manifest.discovery.ManifestOutcome`. A row per
    tenant, then the report of every tenant not accepted outright (rejected, needing a
    review, accepted although INCONCLUSIVE or with a collapsed slice), with the recipes
    that fit a rejection when ``recipes``, a library path, is given. ``links`` and
    ``head_sha`` as for :func:`adaptergate.report.render`.
    """
    if fmt not in ("markdown", "pr-comment"):
        raise UsageError(f"a manifest gate renders as markdown or pr-comment, not {fmt!r}")
    gated = outcome.gated
    icons = [tenant_icon(t) for t in gated]
    if "❌" in icons:
        icon, headline = "❌", "COULD NOT DECIDE"
    elif "🚫" in icons:
        icon, headline = "🚫", "REJECTED"
    elif "👀" in icons:
        icon, headline = "👀", "NEEDS REVIEW"
    elif gated:
        icon, headline = ("⚠️" if "⚠️" in icons else "✅"), "ACCEPTED"
    else:
        icon, headline = "ℹ️", "NOTHING TO GATE"
    sections = []
    for t, t_icon in zip(gated, icons):
        if t.decision is not None and t_icon in ("🚫", "👀", "⚠️"):
            from adaptergate.recipes import recommendations_from_file

            body = render(t.decision, "markdown", show_failures=show_failures, target="manifest-section",
                          recommendations=recommendations_from_file(t.decision, recipes) if t.status == "rejected"
                          else None)
            title = verdict_title(t.decision) if t.status != "review" else "NEEDS REVIEW"
            sections.append({"tenant": t.tenant, "icon": t_icon, "title": title, "body": body})
        elif t.status == "error":
            sections.append({"tenant": t.tenant, "icon": "❌", "title": "COULD NOT DECIDE",
                             "body": "- **Error**: " + escape_markdown(t.error, 2000) + "\n"})
    env = get_environment()
    trace = trace_links(links, head_sha)
    return env.get_template("manifest.md.j2").render(
        pr_comment=fmt == "pr-comment",
        marker=report_marker(f"manifest:{manifest_name}"),
        icon=icon, headline=headline, summary_line=_summary_line(outcome), rows=_manifest_rows(outcome),
        manifest_name=manifest_name,
        policy_changes=[
            t.policy.headline(t.tenant) for t in outcome.tenants if t.policy is not None and t.policy.needs_review
        ],
        sections=sections, long_limit=MD_LONG_TEXT_LIMIT, version=adaptergate.__version__,
        trace=trace, run_url=trace["run"],
    )


# --------------------------------------------------------------------------
# Human (rich) output
