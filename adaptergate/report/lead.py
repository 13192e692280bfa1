"""What broke, in words a reviewer acts on: the lines every report leads with.

One line per slice that broke (the driver first): the answer most of its
regressed queries now give instead of the baseline's when the answers are known
(a model gate), else how many queries broke; one line for the slices the driver
explains; one per slice or aggregate not settled; the other rules that
rejected; else that nothing broke. :class:`Words` says how user text is shown
(escaped Markdown for the Markdown reports, rich text for the terminal).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from adaptergate.models import Evidence, GateDecision, SliceAttribution
from adaptergate.report.escape import MD_LONG_TEXT_LIMIT, MD_VALUE_LIMIT, escape_markdown, rich_text
from adaptergate.report.numbers import finite, fmt_num, fmt_score, fmt_signed, plural
from adaptergate.report.view import (
    ANSWER_LIMIT,
    LEAD_LIMIT,
    _slice_epsilon,
    collapsed_slices,
    query_counts,
    sorted_slices,
)

__all__ = ["CONSOLE_WORDS", "MARKDOWN_WORDS", "Words", "change_sentence", "lead_lines"]


# --------------------------------------------------------------------------


class Words:
    """How the lead's sentences show user text: escaped for Markdown or for a terminal."""

    def __init__(self, esc: Callable[[Any, int | None], str], strong: Callable[[str], str]) -> None:
        self.esc = esc
        self.strong = strong

    def tag(self, tag: str) -> str:
        return self.strong(self.esc(tag, MD_VALUE_LIMIT))

    def quote(self, text: Any) -> str:
        return "“" + self.esc(text, ANSWER_LIMIT) + "”"

    def text(self, text: Any) -> str:
        return self.esc(text, MD_LONG_TEXT_LIMIT)


MARKDOWN_WORDS = Words(lambda v, limit: escape_markdown(v, limit), lambda t: f"**{t}**")


def _outputs(decision: GateDecision, ids: set[str]) -> dict[str, tuple[Any, Any]]:
    """(baseline answer, candidate answer) of the queries ``ids``, where the decision knows them."""
    out: dict[str, tuple[Any, Any]] = {}
    if not ids:
        return out
    for ex in decision.examples:
        key = str(ex.query_id)
        if key in ids and (ex.baseline_output is not None or ex.candidate_output is not None):
            out[key] = (ex.baseline_output, ex.candidate_output)
    for row in decision.per_query:
        key = str(row["query_id"])
        if key in ids:
            b, c = row.get("baseline_output"), row.get("candidate_output")
            if b is not None or c is not None:
                out[key] = (b, c)
    return out


def change_sentence(decision: GateDecision, s: SliceAttribution, outputs: dict[str, tuple[Any, Any]],
                    w: Words) -> str:
    """What changed in slice ``s``: the answer most of its regressed queries now give instead of
    the baseline's when answers are known, else how many queries broke."""
    pairs = [outputs[str(q)] for q in s.regressed_query_ids if str(q) in outputs]
    answers = Counter(c for _, c in pairs if c is not None)
    if answers:
        answer, k = answers.most_common(1)[0]
        if 2 * k >= len(pairs):
            before = Counter(b for b, c in pairs if c == answer and b is not None).most_common(1)
            verb = "answers" if k == 1 else "answer"
            text = f"{k:,} of {plural(s.n_total, 'query', 'queries')} now {verb} {w.quote(answer)}"
            if before and before[0][0] != answer:
                text += f" instead of {w.quote(before[0][0])}"
            rest = s.n_regressed - k
            if rest > 0:
                text += f"; {rest:,} more regressed otherwise"
            return text
    if decision.binary_scores:
        verb = "passed now fails" if s.n_regressed == 1 else "passed now fail"
        return f"{s.n_regressed:,} of {plural(s.n_total, 'query', 'queries')} that {verb}"
    return f"{s.n_regressed:,} of {plural(s.n_total, 'query', 'queries')} scored lower"


def _scores(b: float, c: float) -> str:
    return f"{fmt_score(b)} → {fmt_score(c)}"


def lead_lines(
    decision: GateDecision, stat: dict[str, Any] | None, w: Words = MARKDOWN_WORDS, *, limit: int = LEAD_LIMIT,
) -> list[tuple[str, bool]]:
    """What broke, as (line, is the driver's line): one line per slice that broke (the driver
    first), one for the slices the driver explains, one per slice or aggregate not settled, the
    other rules that rejected; else that nothing broke."""
    from adaptergate.report.rejections import rejections

    driver = decision.driver_slice
    rejected = rejections(decision)
    slices = sorted_slices(decision)
    failing_tags = {t for r in rejected if r.rule == "slice" for t in r.slices}
    broke: list[SliceAttribution] = []
    if not decision.accepted and driver is not None and finite(driver.delta) and driver.delta < 0:
        broke.append(driver)
    for s in slices:
        if not s.explained_by_driver and (s.slice_tag in failing_tags or (not decision.accepted and s.violates)):
            broke.append(s)
    collapsed = {s.slice_tag for s in collapsed_slices(decision)}
    broke += [s for s in slices if s.slice_tag in collapsed]
    seen: set[str] = set()
    broke = [s for s in broke if not (s.slice_tag in seen or seen.add(s.slice_tag))]
    outputs = _outputs(decision, {str(q) for s in broke[:limit] for q in s.regressed_query_ids})
    gated = _slice_epsilon(decision) is not None
    lines: list[tuple[str, bool]] = []

    def add(text: str, is_driver: bool = False) -> None:
        lines.append((text, is_driver))

    for s in broke[:limit]:
        roles = []
        is_driver = driver is not None and s.slice_tag == driver.slice_tag
        if is_driver:
            roles.append("driver" + (f", {s.share_of_drop * 100:.0f}% of the drop" if finite(s.share_of_drop) else ""))
        elif s.slice_tag in collapsed and decision.accepted:
            roles.append("collapsed")
        role = f" ({', '.join(roles)})" if roles else ""
        line = f"{w.tag(s.slice_tag)}{role}: {change_sentence(decision, s, outputs, w)} ({_scores(s.score_baseline, s.score_candidate)})"
        if decision.accepted and s.slice_tag in collapsed:
            if not gated:
                line += "; slices are not gated (no slice ε), so it did not block"
            elif s.evidence is not None and s.evidence.never_significant and s.evidence.min_size:
                line += f"; too small to block on its own (a test needs ≥ {s.evidence.min_size:,} queries)"
            elif s.evidence is not None and s.evidence.verdict:
                line += f"; the evidence is not enough to block ({s.evidence.verdict})"
        add(line + ".", is_driver)
    if len(broke) > limit:
        add(f"… and {plural(len(broke) - limit, 'more slice')} (see the slice table).")
    explained = [
        s for s in slices if s.explained_by_driver and (
            s.slice_tag in failing_tags or s.violates or (s.evidence is not None and s.evidence.verdict == "FAIL"))
    ]
    if explained and driver is not None:
        names = ", ".join(w.esc(s.slice_tag, MD_VALUE_LIMIT) for s in explained[:limit])
        more = len(explained) - limit
        if more > 0:
            names += f" and {more:,} more"
        add(
            f"{names}: dropped only through {w.tag(driver.slice_tag)}"
            " (explained by the driver; within tolerance outside it)."
        )
    if stat is not None:
        shown = {s.slice_tag for s in broke[:limit]}
        for s in stat["unsettled"][:limit]:
            if s.slice_tag in shown or s.evidence is None:
                continue
            ev = s.evidence
            line = (f"{w.tag(s.slice_tag)}: Δ={fmt_signed(s.delta)} on {plural(s.n_total, 'query', 'queries')},"
                    f" beyond slice ε={fmt_num(_slice_epsilon(decision))} but not settled")
            add(line + _settle(ev, s.n_total) + ".")
        ev = stat["aggregate"]
        if ev.verdict == "INCONCLUSIVE":
            add(
                f"Overall not settled: Δ={fmt_signed(ev.estimate)} on {plural(decision.holdout_size, 'query', 'queries')}"
                f" ({round(ev.level * 100)}% interval {fmt_signed(ev.lower)} to {fmt_signed(ev.upper)} straddles"
                f" −ε={-decision.epsilon:g})" + _settle(ev, decision.holdout_size) + "."
            )
    n_regressed, n_improved = query_counts(decision)
    # from the numbers, not the rule records: a record written before rejected_by reads the same
    ev = decision.evidence
    dropped = (ev.verdict == "FAIL") if stat is not None and ev is not None else (
        finite(decision.delta) and finite(decision.epsilon) and decision.delta < -decision.epsilon)
    if not decision.accepted and dropped and not broke:
        add(
            f"Overall: {n_regressed:,} of {plural(decision.holdout_size, 'query', 'queries')} regressed,"
            f" {n_improved:,} improved ({_scores(decision.score_baseline, decision.score_candidate)},"
            f" Δ={fmt_signed(decision.delta)} beyond ε={fmt_num(decision.epsilon)})."
        )
    for r in rejected:
        if r.rule == "strict":
            for text in r.lines or [decision.reason]:
                add(w.text(text).rstrip(".") + ".")
    if not decision.accepted and decision.approval == "reject" and decision.reason:
        add(w.text(re.sub(r"^REJECTED:\s*", "", decision.reason)).rstrip(".") + ".")
    if not lines:
        if n_regressed == 0:
            add("No query regressed" + (f"; {n_improved:,} improved." if n_improved else "."))
        else:
            add(
                f"Nothing broke beyond tolerance: {n_regressed:,} of"
                f" {plural(decision.holdout_size, 'query', 'queries')} regressed, {n_improved:,} improved."
            )
    return lines


def _settle(ev: Evidence, n: int) -> str:
    if ev.never_significant and ev.min_size:
        return f"; at least {ev.min_size:,} queries are needed to ever settle it"
    if ev.n_needed is not None and ev.n_needed > n:
        return f"; about {ev.n_needed - n:,} more queries would settle it"
    return ""


CONSOLE_WORDS = Words(lambda v, limit: rich_text(v, limit), lambda text: f"[magenta]{text}[/magenta]")
"""The lead's sentences for a terminal: user text made inert for rich, slice tags in magenta."""
