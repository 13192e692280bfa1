"""The data check's report for a terminal (``adaptergate data check`` without ``--json``)."""

from __future__ import annotations

from typing import Any

from adaptergate.holdout.datacheck.check import DEFAULT_MAX_PROBLEMS
from adaptergate.report.escape import rich_text

__all__ = ["print_report"]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _num(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:g}" if isinstance(x, float) else str(x)


def print_report(report: dict[str, Any], console: Any, *, max_items: int = DEFAULT_MAX_PROBLEMS) -> None:
    """The report for a terminal; every piece of user text is escaped and one-lined."""
    from rich.table import Table

    def out(text: str = "") -> None:
        console.print(text, emoji=False, highlight=False)

    t = rich_text
    dup = report["duplicates"]
    out(f"[bold]{t(report['path'])}[/bold]: {report['records']} records, {report['objects']} JSON objects")
    if report["schema"] is not None:
        out(f"schema {t(report['schema'])} (draft 2020-12): {report['valid']} valid,"
            f" compliance {_pct(report['compliance'])}")
    elif report["records"] != report["objects"]:
        out(f"{report['valid']} of {report['records']} lines are JSON objects ({_pct(report['compliance'])})")
    if report["problems"]:
        more = report["problems_total"] - len(report["problems"])
        out(f"problems ({report['problems_total']}):")
        for p in report["problems"]:
            out(f"  {t(p)}")
        if more > 0:
            out(f"  ... and {more} more")
        out("failing keywords: " + ", ".join(f"{t(k)} {v}" for k, v in report["problem_counts"].items()))

    table = Table("length", "min", "p5", "median", "p95", "max", "mean")
    for name in ("characters", "tokens"):
        s = report["lengths"][name]
        table.add_row(name, *(_num(s[k]) for k in ("min", "p5", "median", "p95", "max", "mean")))
    console.print(table)
    if report["lengths"]["no_text"]:
        out(f"{report['lengths']['no_text']} records have no recognised text field")

    out(f"duplicates: exact {dup['exact']} ({_pct(dup['exact_rate'])}), normalised {dup['normalised']}"
        f" ({_pct(dup['normalised_rate'])}), near {dup['near']} ({_pct(dup['near_rate'])},"
        f" Jaccard >= {dup['threshold']:g} on word {dup['shingle']}-shingles)")
    for ex in dup["examples"]:
        a, b = ex["lines"]
        extra = f", Jaccard {ex['jaccard']:.2f}" if ex["kind"] == "near" else ""
        out(f"  line {b} repeats line {a} ({ex['kind']}{extra})")
    div = report["diversity"]
    out(f"diversity: distinct-1 {div['distinct_1']:.3f}, distinct-2 {div['distinct_2']:.3f},"
        f" mean type-token ratio {div['ttr']:.3f}")

    con = report["contamination"]
    if con is not None:
        names = ", ".join(t(h["path"]) for h in con["holdouts"])
        out(f"contamination against {names} ({con['holdout_queries']} queries):"
            f" {con['rows']} training rows ({_pct(con['rate'])}) overlap {con['holdout_hit']} holdout queries")
        for p in con["pairs"][:max_items]:
            extra = f", Jaccard {p['jaccard']:.2f}" if p["kind"] == "near" else ""
            out(f"  line {p['line']} <-> {t(p['holdout_id'], 80)} ({t(p['holdout'])}:{p['holdout_line']},"
                f" {p['kind']}{extra})")
        if con["pairs_total"] > max_items:
            out(f"  ... and {con['pairs_total'] - max_items} more pairs")
    verdict = report["verdict"]
    if verdict["ok"]:
        out("[green]OK[/green]")
    for reason in verdict["reasons"]:
        out(f"[bold red]FAIL[/bold red]: {t(reason)}")
