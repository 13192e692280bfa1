"""The report of a manifest gate: one row per tenant, then each tenant not accepted outright."""

from __future__ import annotations

from typing import Any

import adaptergate
from adaptergate.errors import UsageError
from adaptergate.report.environment import get_environment
from adaptergate.report.escape import MD_LONG_TEXT_LIMIT, escape_markdown, report_marker, safe_url, scrubbed
from adaptergate.report.formats import render
from adaptergate.report.numbers import fmt_signed

__all__ = ["render_manifest"]


def _manifest_rows(outcome: Any) -> list[dict[str, Any]]:
    rows = []
    for t in outcome.tenants:
        d = t.decision
        verdict = {
            "accepted": "✅ accepted", "review": "👀 needs review", "rejected": "🚫 rejected",
            "error": "❌ error", "skipped": "—",
        }[t.status]
        if d is not None and d.verdict and d.verdict not in ("ACCEPTED", "REJECTED"):
            verdict += f" ({d.verdict})"
        rows.append({
            "tenant": t.tenant, "kind": t.kind, "base_version": t.base_version, "head_version": t.head_version,
            "verdict": verdict, "delta": fmt_signed(d.delta) if d is not None else "—",
            "driver": d.driver_slice_tag if d is not None and not d.accepted else None,
            "note": t.error or t.note,
        })
    return rows


@scrubbed
def render_manifest(
    outcome: Any,
    fmt: str,
    *,
    show_failures: int = 5,
    manifest_name: str = "manifest",
    links: dict[str, str] | None = None,
    recipes: Any = None,
) -> str:
    """One Markdown report for a manifest gate (``markdown`` or ``pr-comment``).

    ``outcome`` is a :class:`adaptergate.manifest.discovery.ManifestOutcome`. A row per
    tenant, then the full report of every tenant not accepted outright (with
    the recipes that fit a rejection when ``recipes``, a library path, is given).
    """
    if fmt not in ("markdown", "pr-comment"):
        raise UsageError(f"a manifest gate renders as markdown or pr-comment, not {fmt!r}")
    gated = outcome.gated
    counts = {s: sum(1 for t in gated if t.status == s) for s in ("accepted", "review", "rejected", "error")}
    if counts["error"]:
        icon, headline = "❌", "COULD NOT DECIDE"
    elif counts["rejected"]:
        icon, headline = "🚫", "REJECTED"
    elif counts["review"]:
        icon, headline = "👀", "NEEDS REVIEW"
    elif gated:
        icon, headline = "✅", "ACCEPTED"
    else:
        icon, headline = "ℹ️", "NOTHING TO GATE"
    parts = [f"{n} {what}" for what, n in (
        ("accepted", counts["accepted"]), ("need review", counts["review"]),
        ("rejected", counts["rejected"]), ("failed to evaluate", counts["error"]),
    ) if n]
    skipped = len(outcome.tenants) - len(gated)
    summary_line = (
        f"{len(gated)} tenant(s) changed adapters" + (": " + ", ".join(parts) if parts else "")
        + (f"; {skipped} without an adapter change" if skipped else "") + "."
    )
    sections = []
    for t in outcome.tenants:
        if t.decision is not None and t.status in ("rejected", "review"):
            from adaptergate.recipes import recommendations_from_file

            body = render(t.decision, "markdown", show_failures=show_failures, target="manifest-section",
                          recommendations=recommendations_from_file(t.decision, recipes))
            sections.append({"tenant": t.tenant, "icon": "🚫" if t.status == "rejected" else "👀", "body": body})
        elif t.status == "error":
            sections.append({"tenant": t.tenant, "icon": "❌", "body": "- **Error**: " + escape_markdown(t.error, 2000)})
    env = get_environment()
    return env.get_template("manifest.md.j2").render(
        pr_comment=fmt == "pr-comment",
        marker=report_marker(f"manifest:{manifest_name}"),
        icon=icon, headline=headline, summary_line=summary_line, rows=_manifest_rows(outcome),
        policy_changes=[
            t.policy.headline(t.tenant) for t in outcome.tenants if t.policy is not None and t.policy.needs_review
        ],
        sections=sections, long_limit=MD_LONG_TEXT_LIMIT, version=adaptergate.__version__,
        run_url=safe_url((links or {}).get("run")),
    )


# --------------------------------------------------------------------------
# Human (rich) output
