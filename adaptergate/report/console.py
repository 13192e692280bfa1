"""The decision printed for a terminal with rich (``--format human``).

The report goes to one console, warnings to another (stderr), so they
survive ``--format json > file``-style piping. User text goes through
:func:`adaptergate.report.escape.rich_text`: no markup, no terminal escapes.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.segment import Segment, Segments
from rich.table import Table

from adaptergate.models import GateDecision, SliceAttribution
from adaptergate.report.escape import MD_LONG_TEXT_LIMIT, MD_VALUE_LIMIT, rich_text
from adaptergate.report.numbers import NBSP, finite, fmt_num, fmt_pct, fmt_score, fmt_signed, plural
from adaptergate.report.lead import CONSOLE_WORDS, lead_lines
from adaptergate.report.view import (
    UNCHANGED_NAMES,
    clean_statement,
    collapse_note,
    engine_view,
    is_unchanged,
    named_ids,
    pattern_from,
    pattern_of,
    query_counts,
    show_slice_table,
    slice_check,
    slice_delta_cell,
    slice_role,
    slice_p,
    slice_p_adjusted,
    sorted_slices,
    stat_view,
    trace_view,
    verdict_icon,
)

__all__ = ["print_human"]


def print_human(
    decision: GateDecision,
    *,
    console: Console,
    err_console: Console,
    show_failures: int = 5,
    staleness_threshold_days: int = 30,
) -> None:
    """Print the decision for a terminal: the verdict, what broke (one line per slice, as the
    Markdown reports lead with), the numbers, the driver slice and the slice table (a rich table:
    its columns line up; slices where no query changed are one line).

    The report goes to ``console``; warnings go to ``err_console`` so they
    survive ``--format json > file``-style piping.
    """
    def out(text: str = "") -> None:
        console.print(text, emoji=False, highlight=False)

    def err(text: str = "") -> None:
        err_console.print(text, emoji=False, highlight=False)

    t = rich_text
    show_failures = max(0, int(show_failures))
    stat = stat_view(decision)
    style = "green" if decision.accepted else "red"
    verdict = "ACCEPTED" if decision.accepted else "REJECTED"
    if decision.accepted and verdict_icon(decision) != "✅":
        style = "yellow"
    collapsed = collapse_note(decision)
    note = f" — {t(collapsed)} collapsed" if collapsed else ""
    if stat is not None:
        title = stat["rule_title"] + (f" {stat['policy_note']}" if stat["policy_note"] else "")
        console.rule(f"[{style}]{title}{note}[/{style}]")
    else:
        console.rule(f"[{style}]{verdict}{note}[/{style}]")
    policy = decision.policy
    if policy is not None and policy.needs_review:
        out(f"[bold yellow]{t(policy.headline(decision.tenant_id))}[/bold yellow]")
    for line, _ in lead_lines(decision, stat, CONSOLE_WORDS):
        out(f"  • {line}")
    baseline = t(decision.baseline_id) if decision.baseline_id is not None else "(none)"
    digest = trace_view(decision, None, None)["candidate_sha"]
    out(f"Tenant:    [cyan]{t(decision.tenant_id)}[/cyan]")
    out(f"Candidate: [cyan]{t(decision.candidate_id)}[/cyan]" + (f" (sha256 {digest})" if digest else ""))
    out(f"Baseline:  [cyan]{baseline}[/cyan]")
    out(
        f"Score:     {fmt_score(decision.score_baseline)} → {fmt_score(decision.score_candidate)}"
        f"  (Δ={fmt_signed(decision.delta)}, ε={fmt_num(decision.epsilon)})"
    )
    out(f"Held-out:  n={decision.holdout_size}")
    engine = engine_view(decision)
    if engine is not None:
        out(f"Scored by: {t(engine['text'])}")
        if engine["parity"]:
            out(f"Parity:    {t(engine['parity'])}")
    if stat is not None:
        _print_stat_block(decision, stat, out)
    else:
        out(f"Reason:    {t(clean_statement(decision.reason))}")
        reasons = [r for r in decision.reasons if r]
        if len(reasons) > 1:
            for r in reasons:
                out(f"  • {t(clean_statement(r))}")
    if decision.judge is not None:
        _print_judge_block(decision, out)

    driver = decision.driver_slice
    if driver is not None:
        share = (
            f", {fmt_pct(driver.share_of_drop)} of the drop"
            if driver.share_of_drop is not None
            else ""
        )
        out(
            f"\n[bold red]DRIVER SLICE:[/bold red] [magenta]{t(driver.slice_tag)}[/magenta]"
            f"   {fmt_score(driver.score_baseline)} → {fmt_score(driver.score_candidate)}"
            f"  (Δ={fmt_signed(driver.delta)},"
            f" {driver.n_regressed}/{driver.n_total} regressed{share})"
        )
        pattern = pattern_of(driver)
        if pattern is not None:
            out(f"  [bold]Pattern:[/bold] {_rich_pattern(pattern)}")
        ids = named_ids(driver.regressed_query_ids)
        if ids and show_failures:
            preview = ", ".join(t(x, MD_VALUE_LIMIT) for x in ids[:show_failures])
            more = f" + {len(ids) - show_failures} more" if len(ids) > show_failures else ""
            out(f"  Failing query IDs: {preview}{more}")
        elif ids:
            out(f"  Failing query IDs: {len(ids)}")
    elif decision.failure_pattern is not None:
        pattern = pattern_from(decision.failure_pattern, None)
        if pattern is not None:
            out(f"\n[bold]Failure pattern:[/bold] {_rich_pattern(pattern)}")

    if show_slice_table(decision, driver):
        if stat is not None:
            what = (
                f"one-sided p, p adjusted by {stat['multiplicity']}"
                if stat["gated"]
                else "one-sided p; slices are not gated without --slice-epsilon"
            )
            out(
                "\n[bold]Slice breakdown[/bold] (most-regressed first;"
                f" {stat['slice_level']}interval, {what}):"
            )
        else:
            out("\n[bold]Slice breakdown[/bold] (most-regressed first):")
        rows = [s for s in sorted_slices(decision) if not is_unchanged(s, driver)]
        unchanged = [s.slice_tag for s in sorted_slices(decision) if is_unchanged(s, driver)]
        if rows:
            print_wide(console, Padding(_slice_table(decision, rows, driver, stat), (0, 0, 0, 2), expand=False))
        if unchanged:
            names = ", ".join(t(x, MD_VALUE_LIMIT) for x in unchanged[:UNCHANGED_NAMES])
            more = f" and {len(unchanged) - UNCHANGED_NAMES} more" if len(unchanged) > UNCHANGED_NAMES else ""
            out(f"  {plural(len(unchanged), 'slice')} unchanged (no query changed): {names}{more}")

    n_regressed, n_improved = query_counts(decision)
    if n_regressed:
        note = ""
        if len(decision.slice_attributions) > 1:
            note = (
                " (slice n_regressed values may sum higher when queries belong"
                " to multiple slices)"
            )
        out(f"\n[yellow]{n_regressed} unique queries regressed[/yellow]{note}")
    if n_improved:
        out(f"[green]{n_improved} unique queries improved[/green]")

    # ---- warnings: stderr -------------------------------------------------
    for w in decision.warnings:
        err(f"\n[yellow]Warning:[/yellow] {t(w.message)} [dim]({t(w.code)})[/dim]")
    if decision.malformed_slice_queries > 0:
        err(
            f"\n[yellow]Warning:[/yellow] {decision.malformed_slice_queries}"
            " held-out queries had a malformed 'slices' field"
            " (expected list, got non-list). Those queries contributed to"
            " aggregate scoring but were skipped for slice attribution."
        )
    if decision.duplicate_slice_details or decision.suspected_duplicate_slices:
        err(
            "\n[yellow]Warning:[/yellow] suspected duplicate slice tags."
            " Consider normalising your held-out set:"
        )
        if decision.duplicate_slice_details:
            for d in decision.duplicate_slice_details:
                tags = "  ↔  ".join(f"[magenta]{t(x)}[/magenta]" for x in d.tags)
                err(f"  • {tags}  ({t(d.reason)})")
        else:
            for pair in decision.suspected_duplicate_slices:
                err("  • " + "  ↔  ".join(f"[magenta]{t(x)}[/magenta]" for x in pair))
    if decision.staleness_days is not None and decision.staleness_days > staleness_threshold_days:
        err(
            f"\n[yellow]Warning:[/yellow] held-out set has not been refreshed"
            f" in {decision.staleness_days} days (threshold: {staleness_threshold_days})."
            " Stale held-out sets may fail to reflect current traffic — consider"
            " adding fresh queries to avoid eval-set drift being misread as adapter drift."
        )


def print_wide(console: Console, renderable: Any) -> None:
    """Print a table at its natural width where no terminal wraps it (a CI log, a pipe, a
    file); on a terminal, at the terminal's width (rich wraps the cells, the columns stay)."""
    natural = Measurement.get(console, console.options.update_width(10_000), renderable).maximum
    if console.is_terminal or natural <= console.width:
        console.print(renderable)
        return
    segments: list[Segment] = []
    for line in console.render_lines(renderable, console.options.update_width(natural), pad=False):
        segments += [*line, Segment.line()]
    console.print(Segments(segments), soft_wrap=True, crop=False, end="")


def _slice_table(
    decision: GateDecision, rows: list[SliceAttribution], driver: SliceAttribution | None,
    stat: dict[str, Any] | None,
) -> Table:
    """slice (with ← notes) | Δ (interval) | regressed | verdict or p | adj. p | share of drop."""
    gated = stat is not None and stat["gated"]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), expand=False)
    table.add_column("slice", no_wrap=True)
    table.add_column(f"Δ ({stat['slice_level']}interval)" if stat is not None else "Δ", no_wrap=True)
    table.add_column("regressed", justify="right", no_wrap=True)
    table.add_column("verdict" if stat is None or gated else "p", no_wrap=True)
    if gated:
        table.add_column("p", justify="right", no_wrap=True)
        table.add_column("adj. p", justify="right", no_wrap=True)
    table.add_column("share of drop", justify="right", no_wrap=True)
    for s in rows:
        role = slice_role(s, driver, decision).replace("🎯" + NBSP, "")
        notes = [role] if role else []
        tag = f"[magenta]{rich_text(s.slice_tag, MD_VALUE_LIMIT)}[/magenta]"
        if notes:
            tag += "   [yellow]← " + ", ".join(notes) + "[/yellow]"
        colour = "red" if finite(s.delta) and s.delta < 0 else "green"
        check = slice_check(s, decision, stat)
        verdict_colour = _VERDICT_STYLE.get(s.evidence.verdict if s.evidence is not None else "", "")
        if stat is None:
            verdict_colour = "red" if s.violates else ""
        if verdict_colour and not check.startswith("too small"):
            check = f"[{verdict_colour}]{rich_escape(check)}[/{verdict_colour}]"
        else:
            check = rich_escape(check)
        cells = [tag, f"[{colour}]{slice_delta_cell(s, ' ')}[/{colour}]", f"{s.n_regressed}/{s.n_total}", check]
        if gated:
            cells += [rich_escape(slice_p(s)), rich_escape(slice_p_adjusted(s))]
        cells.append(fmt_pct(s.share_of_drop) if s.share_of_drop is not None else "—")
        table.add_row(*cells)
    return table


_VERDICT_STYLE = {"FAIL": "red", "PASS": "green", "INCONCLUSIVE": "yellow"}


def _print_judge_block(decision: GateDecision, out: Any) -> None:
    j = decision.judge
    assert j is not None
    mode = "pairwise" if j.pairwise else "pointwise"
    out(f"\n[bold]Judge[/bold] {rich_text(j.judge, MD_VALUE_LIMIT)} ({mode}; scores {j.scale}):")
    for c in j.criteria:
        colour = "red" if c.delta < 0 else "green"
        out(
            f"  [{colour}]{fmt_signed(c.delta, 2)}[/{colour}]   {fmt_score(c.baseline, 2)} → {fmt_score(c.candidate, 2)}"
            f"   {c.n_worse} worse, {c.n_better} better   [magenta]{rich_text(c.name)}[/magenta] ×{fmt_num(c.weight)}"
        )


def _print_stat_block(decision: GateDecision, stat: dict[str, Any], out: Any) -> None:
    """Reason, Evidence, rule and the Failed / Not settled lists: each sentence once."""
    t = rich_text
    if stat["show_reason"]:
        out(f"Reason:    {t(clean_statement(decision.reason))}")
    out(f"Evidence:  {t(stat['aggregate_statement'])}")
    if stat["power"]:
        out(f"Power:     {t(stat['power'])}")
    out(f"Rule:      {t(stat['rule'])}")
    if stat["noise"]:
        out(f"Noise:     {t(stat['noise'])}")
    lists = (
        ("[bold red]Failed:[/bold red]", stat["failed"], stat["failed_more"]),
        ("[bold]Explained by the driver[/bold] (within tolerance outside it):", stat["explained"],
         stat["explained_more"]),
        ("[bold yellow]Not settled[/bold yellow] (drop beyond slice ε, evidence inconclusive):",
         stat["unsettled_statements"], stat["unsettled_more"]),
    )
    for heading, sentences, more in lists:
        if not sentences:
            continue
        out(heading)
        for sentence in sentences:
            out(f"  • {t(sentence)}")
        if more:
            out(f"  … and {more} more (see the slice breakdown)")


def _rich_pattern(pattern: dict[str, Any]) -> str:
    if pattern["summary"]:
        return rich_text(pattern["summary"], MD_LONG_TEXT_LIMIT)
    return "; ".join(
        f"“{rich_text(term.ngram, MD_VALUE_LIMIT)}” in {term.n_failing}/{term.failing_total}"
        f" failing vs {term.n_passing}/{term.passing_total} passing"
        for term in pattern["terms"]
    )
