"""The view of a decision that every report shows: what the templates and the console read.

:func:`report_context` is the whole context of a template (``report.md.j2``,
``junit.xml.j2``); :func:`stat_view` is what a statistical decision adds
(verdict, evidence, the "Failed" and "Not settled" lists, each sentence
once). Slices are ordered most-regressed first; which rules rejected comes
from :mod:`adaptergate.report.rejections`, never from the prose.
"""

from __future__ import annotations

import math
import re
from typing import Any

from adaptergate.decide import wording as wording
from adaptergate.models import Evidence, FailurePattern, GateDecision, SliceAttribution
from adaptergate.report.escape import MD_LONG_TEXT_LIMIT, report_marker, safe_url
from adaptergate.report.numbers import NBSP, finite, fmt_num, fmt_p, fmt_score, fmt_signed, plural
from adaptergate.report.rejections import (
    aggregate_failed,
    aggregate_message,
    aggregate_rule,
    rejections,
    strict_message,
)

PR_DETAILS_SLICES = 15
"""pr-comment folds the slice table into ``<details>`` above this many slices."""

PR_DETAILS_IDS = 10
"""pr-comment folds the failing-id list into ``<details>`` above this many ids."""

STAT_LIST_LIMIT = 10
"""The "Failed" and "Not settled" lists show this many sentences (then a count)."""

LEAD_LIMIT = 5
"""Lines under the headline saying what broke: this many slices (then a count)."""

COLLAPSE_DROP = 0.5
"""A slice whose score fell by at least this much "collapsed": reports name it whatever the verdict."""

ANSWER_LIMIT = 80
"""Answers, expected answers and prompts are cut to this many characters in the lead and the examples table."""

UNCHANGED_NAMES = 8
"""The "N slices unchanged" line names this many (then a count)."""


# --------------------------------------------------------------------------
# Shared view of a decision
# --------------------------------------------------------------------------


def named_ids(ids: list[Any]) -> list[Any]:
    return [q for q in ids if q is not None and q != ""]


def query_counts(decision: GateDecision) -> tuple[int, int]:
    """(regressed, improved): from per-query rows, else the stored counts."""
    if decision.per_query:
        return len(decision.regressions), len(decision.improvements)
    return decision.n_regressed, decision.n_improved


def slice_notes(
    s: SliceAttribution, driver: SliceAttribution | None, *, stat: bool = False
) -> list[str]:
    notes = []
    if driver is not None and s.slice_tag == driver.slice_tag:
        notes.append("driver")
    if s.violates and not stat:  # stat tables say FAIL in their verdict column
        notes.append("rejects")
    if not s.eligible:
        notes.append("below min size")
    if s.explained_by_driver:
        notes.append("explained by driver")
    return notes


def sorted_slices(decision: GateDecision) -> list[SliceAttribution]:
    """Most-regressed first (stable, so ties keep the recorded order)."""
    return sorted(
        decision.slice_attributions,
        key=lambda s: s.delta if finite(s.delta) else math.inf,
    )


def show_slice_table(decision: GateDecision, driver: SliceAttribution | None) -> bool:
    n = len(decision.slice_attributions)
    return n > 1 or (n == 1 and driver is None)



# Statistical rule (decision_rule == "stat")
# --------------------------------------------------------------------------

_STAT_VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")


def _is_stat(decision: GateDecision) -> bool:
    return decision.decision_rule == "stat" and decision.evidence is not None


def _stat_verdict(decision: GateDecision) -> str:
    """PASS, FAIL or INCONCLUSIVE: the statistical verdict (not the exit code)."""
    if decision.verdict in _STAT_VERDICTS:
        return decision.verdict
    ev = decision.evidence
    return ev.verdict if ev is not None and ev.verdict in _STAT_VERDICTS else ""


def _policy(decision: GateDecision) -> str:
    cfg = decision.config
    return cfg.on_inconclusive if cfg is not None else ("accept" if decision.accepted else "reject")


def _slice_epsilon(decision: GateDecision) -> float | None:
    return decision.config.slice_epsilon if decision.config is not None else None


def slice_verdict(s: SliceAttribution) -> str:
    """FAIL / PASS / INCONCLUSIVE / ``too small (needs ≥ N)``; "" when not tested."""
    ev = s.evidence
    if ev is None or not ev.verdict:
        return ""
    if ev.verdict != "FAIL" and ev.never_significant and ev.min_size:
        return f"too small (needs ≥ {ev.min_size:,})"
    return ev.verdict


def slice_interval(s: SliceAttribution) -> str:
    ev = s.evidence
    if ev is None or not (finite(ev.lower) and finite(ev.upper)):
        return "—"
    return f"{ev.lower:+.3f} to {ev.upper:+.3f}"


def slice_p(s: SliceAttribution) -> str:
    return fmt_p(s.evidence.p_value) if s.evidence is not None else "—"


def slice_p_adjusted(s: SliceAttribution) -> str:
    """Adjusted p only for slices in the tested family (others carry a placeholder 1)."""
    ev = s.evidence
    if ev is None or not ev.verdict or ev.p_adjusted is None:
        return "—"
    return fmt_p(ev.p_adjusted)


def _unsettled(decision: GateDecision) -> list[SliceAttribution]:
    """Slices whose evidence is INCONCLUSIVE while their drop exceeds slice ε."""
    eps = _slice_epsilon(decision)
    if eps is None:
        return []
    return [
        s
        for s in sorted_slices(decision)
        if s.evidence is not None
        and s.evidence.verdict == "INCONCLUSIVE"
        and finite(s.delta)
        and s.delta < -eps
    ]


def _rule_line(decision: GateDecision) -> str:
    """The parameters of the statistical rule, from ``decision.config``."""
    cfg = decision.config
    if cfg is None:
        return f"ε={fmt_num(decision.epsilon)}"
    parts = [f"statistical: ε={cfg.epsilon:g}"]
    if cfg.slice_epsilon is not None:
        parts.append(f"slice ε={cfg.slice_epsilon:g} (slices of ≥ {cfg.slice_min_size} queries)")
    else:
        parts.append("slice ε off")
    parts.append(f"α={cfg.alpha:g}")
    if cfg.slice_epsilon is not None:
        parts.append(f"multiplicity {cfg.multiplicity}")
    parts.append(f"INCONCLUSIVE → {cfg.on_inconclusive}")
    if cfg.strict:
        parts.append(f"strict (pass ≥ {cfg.pass_threshold:g})")
    return ", ".join(parts)


def _statement_body(statement: str) -> str:
    """A statement without its leading ``VERDICT:``."""
    head, sep, rest = statement.partition(": ")
    return rest if sep and head in _STAT_VERDICTS else statement


_SETTLED_ALREADY = re.compile(r" About [\d,]+ queries \(0 more\) would settle it, if the observed difference holds\.")


_SLICES_PLURAL = re.compile(r"\b(\d[\d,]*) (more )?slice\(s\)")


def clean_statement(text: str) -> str:
    """A statement as reports show it: records written before the wording was fixed said
    "About 137 queries (0 more) would settle it" after 144 were run (that sentence goes) and
    "8 more slice(s)" (the plural is spelled out)."""
    if not text:
        return text
    text = _SETTLED_ALREADY.sub("", text)
    return _SLICES_PLURAL.sub(
        lambda m: f"{m.group(1)} {m.group(2) or ''}slice{'' if m.group(1) == '1' else 's'}", text)


def stat_view(decision: GateDecision, limit: int = STAT_LIST_LIMIT) -> dict[str, Any] | None:
    """Everything the reports show for a stat decision, each sentence once.

    gate.py writes the headline into ``reason`` and, into ``reasons``, the
    aggregate's statement (unless PASS), each failing slice's statement, each
    unsettled slice's statement and the strict line. The aggregate statement
    goes to the Evidence block, unsettled slices to "Not settled", slices the
    driver explains to their own list; what is left (failing slices, strict
    mode) is listed once under "Failed". Each list shows ``limit`` sentences, then a count.
    """
    if not _is_stat(decision):
        return None
    ev: Evidence = decision.evidence  # type: ignore[assignment]
    verdict = _stat_verdict(decision)
    outcome = "ACCEPTED" if decision.accepted else "REJECTED"
    policy = _policy(decision)
    unsettled = _unsettled(decision)
    explained = [
        clean_statement(s.evidence.statement) for s in sorted_slices(decision)
        if s.explained_by_driver and s.evidence is not None and s.evidence.statement
        and s.evidence.statement in decision.reasons
    ]
    elsewhere = {
        ev.statement, *(s.evidence.statement for s in unsettled if s.evidence is not None),
        *(s.evidence.statement for s in decision.slice_attributions
          if s.explained_by_driver and s.evidence is not None),
    }
    lines: list[str] = []
    for r in decision.reasons:
        if r and r not in elsewhere and r != decision.reason and r not in lines:
            lines.append(clean_statement(r))
    # The PASS headline is the aggregate statement itself: print it once.
    body = _statement_body(ev.statement)
    show_reason = bool(decision.reason) and not (body and body in decision.reason)
    slice_levels = [s.evidence.level for s in decision.slice_attributions if s.evidence is not None]
    level = slice_levels[0] if slice_levels and finite(slice_levels[0]) else None
    noise = decision.noise.statement if decision.noise is not None else None
    return {
        "verdict": verdict,
        "outcome": outcome,
        "policy": policy,
        "icon": verdict_icon(decision),
        "title": f"{outcome} · {verdict}" if verdict else outcome,
        "rule_title": f"{outcome} — {verdict}" if verdict else outcome,
        "policy_note": f"(policy: {policy})" if verdict == "INCONCLUSIVE" else "",
        "show_reason": show_reason,
        "aggregate": ev,
        "aggregate_statement": clean_statement(ev.statement),
        "power": wording.power_statement(ev, decision.holdout_size),
        "rule": _rule_line(decision),
        "noise": noise or None,
        "failed": lines[:limit],
        "failed_more": max(0, len(lines) - limit),
        "explained": explained[:limit],
        "explained_more": max(0, len(explained) - limit),
        "unsettled": unsettled[:limit],
        "unsettled_statements": [
            clean_statement(s.evidence.statement) for s in unsettled[:limit] if s.evidence is not None
        ],
        "unsettled_more": max(0, len(unsettled) - limit),
        "slice_level": f"{round(level * 100)}% " if level is not None else "",
        "multiplicity": decision.config.multiplicity if decision.config is not None else "",
        "gated": _slice_epsilon(decision) is not None,
    }


def junit_stat(decision: GateDecision) -> dict[str, Any]:
    """Testcase outcomes of a stat decision: FAIL fails, INCONCLUSIVE is skipped.

    The aggregate testcase also fails when INCONCLUSIVE evidence meets
    ``--on-inconclusive reject`` (its own, or the overall verdict's: the exit
    code is 1 then and some testcase has to say why).
    """
    ev: Evidence = decision.evidence  # type: ignore[assignment]
    verdict = _stat_verdict(decision)
    reject_policy = _policy(decision) == "reject"
    strict = strict_message(decision, rejections(decision))
    agg: dict[str, Any] = {"status": "pass", "type": "", "message": ""}
    if ev.verdict == "FAIL":
        agg = {"status": "failure", "type": "aggregate", "message": ev.statement}
    elif strict is not None:
        agg = {"status": "failure", "type": "strict", "message": strict}
    elif reject_policy and (
        ev.verdict == "INCONCLUSIVE" or (verdict == "INCONCLUSIVE" and not decision.accepted)
    ):
        msg = ev.statement if ev.verdict == "INCONCLUSIVE" else decision.reason
        agg = {"status": "failure", "type": "inconclusive", "message": msg}
    elif ev.verdict == "INCONCLUSIVE":
        agg = {"status": "skipped", "type": "", "message": ev.statement}
    cases = []
    for s in decision.slice_attributions:
        sev = s.evidence
        if sev is not None and sev.verdict == "FAIL":
            case = {"status": "failure", "message": sev.statement}
        elif sev is not None and sev.verdict == "INCONCLUSIVE":
            case = {"status": "skipped", "message": "INCONCLUSIVE: " + sev.statement}
        elif sev is None and s.violates:
            message = f"slice {s.slice_tag} regressed (Δ={fmt_signed(s.delta)})"
            case = {"status": "failure", "message": message}
        elif not s.eligible:
            case = {"status": "skipped", "message": "below slice-min-size"}
        else:
            case = {"status": "pass", "message": ""}
        case["s"] = s
        cases.append(case)
    # The aggregate's own lines; each slice's statement sits in its testcase.
    slice_lines = {
        s.evidence.statement for s in decision.slice_attributions if s.evidence is not None
    }
    power = wording.power_statement(ev, decision.holdout_size)
    body: list[str] = []
    for line in (decision.reason, ev.statement, power, *decision.reasons):
        if line and line not in body and line not in slice_lines:
            body.append(line)
    agg["body"] = body or [""]
    statuses = [agg["status"], *(c["status"] for c in cases)]
    return {
        "aggregate": agg,
        "slices": cases,
        "failures": statuses.count("failure"),
        "skipped": statuses.count("skipped"),
    }


def is_unchanged(s: SliceAttribution, driver: SliceAttribution | None = None) -> bool:
    """No query of the slice changed: nothing regressed and the mean did not move (so nothing improved)."""
    if driver is not None and s.slice_tag == driver.slice_tag:
        return False
    return s.n_regressed == 0 and finite(s.delta) and abs(s.delta) < 1e-12


def order_slices(
    decision: GateDecision, stat: dict[str, Any] | None, max_rows: int | None
) -> tuple[list[SliceAttribution], list[SliceAttribution], int, list[SliceAttribution]]:
    """(shown first, the rest, hidden count, unchanged) for the Markdown slice table.

    Slices where no query changed are not rows: reports fold them into one line.
    With more than ``PR_DETAILS_SLICES`` rows, the slices that fail (violate
    slice ε, FAIL) or are not settled come first, outside any ``<details>``.
    """
    driver = decision.driver_slice
    every = sorted_slices(decision)
    unchanged = [s for s in every if is_unchanged(s, driver)]
    slices = [s for s in every if not is_unchanged(s, driver)]
    total = len(slices)
    top: list[SliceAttribution] = []
    if total > PR_DETAILS_SLICES:
        top = [s for s in slices if flagged(s, decision)]
        ids = {id(s) for s in top}
        slices = top + [s for s in slices if id(s) not in ids]
    if max_rows is not None:
        slices = slices[:max_rows]
    n_top = min(len(top), len(slices))
    return slices[:n_top], slices[n_top:], total - len(slices), unchanged


# --------------------------------------------------------------------------
# Verdict and icon: the same in every report
# --------------------------------------------------------------------------


def collapsed_slices(decision: GateDecision) -> list[SliceAttribution]:
    """Slices that may reject on their own and lost at least ``COLLAPSE_DROP`` of their score
    (not explained by the driver), most-regressed first: reports name them whatever the verdict."""
    return [
        s for s in sorted_slices(decision)
        if s.eligible and not s.explained_by_driver and s.n_regressed > 0
        and finite(s.delta) and s.delta <= -COLLAPSE_DROP
    ]


def verdict_icon(decision: GateDecision) -> str:
    """🚫 rejected; 👀 accepted pending a human review; ⚠️ accepted although INCONCLUSIVE or a
    slice collapsed; ✅ accepted. Every report (comment, check run, manifest, terminal) uses it."""
    if not decision.accepted:
        return "🚫"
    if decision.approval == "review":
        return "👀"
    if _stat_verdict(decision) == "INCONCLUSIVE" or collapsed_slices(decision):
        return "⚠️"
    return "✅"


def verdict_title(decision: GateDecision) -> str:
    """``ACCEPTED``, ``REJECTED · FAIL``, ``ACCEPTED · INCONCLUSIVE`` … (the headline's words)."""
    outcome = "ACCEPTED" if decision.accepted else "REJECTED"
    verdict = _stat_verdict(decision) if _is_stat(decision) else ""
    return f"{outcome} · {verdict}" if verdict else outcome


def collapse_note(decision: GateDecision) -> str:
    """For an acceptance: which slice collapsed (the headline names it); "" otherwise."""
    if not decision.accepted:
        return ""
    collapsed = collapsed_slices(decision)
    if not collapsed:
        return ""
    more = len(collapsed) - 1
    return collapsed[0].slice_tag + (f" and {plural(more, 'more slice')}" if more else "")


# --------------------------------------------------------------------------
# Slice table, examples, traceability
# --------------------------------------------------------------------------


def flagged(s: SliceAttribution, decision: GateDecision) -> bool:
    """Would the slice count against the candidate on its own: it violates slice ε, its test
    FAILs, or it drops beyond slice ε without settling."""
    ev = s.evidence
    eps = _slice_epsilon(decision)
    return s.violates or (ev is not None and (ev.verdict == "FAIL" or (
        ev.verdict == "INCONCLUSIVE" and eps is not None and finite(s.delta) and s.delta < -eps)))


def slice_role(s: SliceAttribution, driver: SliceAttribution | None, decision: GateDecision | None = None) -> str:
    """The slice table's role cell: the driver, or a slice the driver explains (said only where
    the slice would otherwise count against the candidate)."""
    if driver is not None and s.slice_tag == driver.slice_tag:
        return "🎯" + NBSP + "driver"
    if s.explained_by_driver and (decision is None or flagged(s, decision)):
        return "explained by driver"
    return ""


def slice_delta_cell(s: SliceAttribution, sep: str = NBSP) -> str:
    """Δ with its interval, as one unbreakable cell: ``-0.858 (-0.886 to -0.830)``."""
    text = fmt_signed(s.delta)
    ev = s.evidence
    if ev is not None and finite(ev.lower) and finite(ev.upper):
        text += f" ({ev.lower:+.3f} to {ev.upper:+.3f})"
    return text.replace(" ", sep)


def slice_check(s: SliceAttribution, decision: GateDecision, stat: dict[str, Any] | None) -> str:
    """The slice table's verdict cell (stat: the slice's test; threshold: slice ε)."""
    if stat is not None:
        if not stat["gated"]:
            return slice_p(s)
        return slice_verdict(s) or ("below min size" if not s.eligible else "—")
    if not s.eligible:
        return "below min size"
    if s.violates:
        return "rejects"
    return "within slice ε" if _slice_epsilon(decision) is not None else "—"


def examples_view(decision: GateDecision, n: int) -> dict[str, Any]:
    """The worst regressed queries as table rows (query | prompt | expected | answers or scores)."""
    rows = []
    for ex in decision.examples[:n]:
        b, c = ex.baseline_output, ex.candidate_output
        diff = wording.word_diff((b or "")[:ANSWER_LIMIT * 2], (c or "")[:ANSWER_LIMIT * 2]) if c is not None else []
        rows.append({"ex": ex, "diff": diff, "scores": f"{fmt_score(ex.score_baseline)}{NBSP}→{NBSP}{fmt_score(ex.score_candidate)}"})
    shown = decision.examples[:n]
    return {
        "rows": rows,
        "outputs": any(e.baseline_output is not None or e.candidate_output is not None for e in shown),
        "prompts": any(e.prompt for e in shown),
        "gold": any(e.gold is not None for e in shown),
        # one column when the baseline answered what was expected everywhere shown
        "gold_is_baseline": bool(shown) and all(
            e.gold is not None and e.baseline_output is not None and str(e.gold) == e.baseline_output for e in shown
        ),
    }


_SHA = re.compile(r"[0-9a-f]{7,40}")


def trace_links(links: dict[str, str] | None, head_sha: str | None) -> dict[str, Any]:
    """The head commit (short, linked when its URL is known: ``links["commit"]``, or made from
    ``links["repository"]``), the check run, the report artifact and the workflow run."""
    links = links or {}
    sha = head_sha.lower() if isinstance(head_sha, str) and _SHA.fullmatch(head_sha.lower()) else None
    commit_url = safe_url(links.get("commit"))
    repo = safe_url(links.get("repository"))
    run = safe_url(links.get("run"))
    if repo is None and run is not None and "/actions/runs/" in run:
        repo = run.split("/actions/runs/", 1)[0]  # a workflow run's page lives under its repository
    if commit_url is None and repo and sha:
        commit_url = f"{repo.rstrip('/')}/commit/{sha}"
    return {
        "sha": sha[:7] if sha else None,
        "commit_url": commit_url if sha else None,
        "check_run": safe_url(links.get("check_run")),
        "artifact": safe_url(links.get("artifact")),
        "run": safe_url(links.get("run")),
    }


def trace_view(decision: GateDecision, links: dict[str, str] | None, head_sha: str | None) -> dict[str, Any]:
    """Which commit, which candidate, where the rest is: :func:`trace_links` and the candidate
    adapter's sha256 (12 hex digits) when adapters were loaded."""
    ev = decision.evaluation or {}
    digest = ev.get("candidate_adapter_sha256")
    digest = digest.lower() if isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{12,64}", digest) else None
    return {**trace_links(links, head_sha), "candidate_sha": digest[:12] if digest else None}


def report_context(
    decision: GateDecision,
    *,
    fmt: str,
    show_failures: int,
    staleness_threshold_days: int,
    target: str | None,
    max_slice_rows: int | None = None,
    max_list: int = STAT_LIST_LIMIT,
    max_lead: int = LEAD_LIMIT,
    links: dict[str, str] | None = None,
    head_sha: str | None = None,
    recommendations: list[Any] | None = None,
) -> dict[str, Any]:
    driver = decision.driver_slice
    show_failures = max(0, int(show_failures))
    driver_ids = named_ids(driver.regressed_query_ids) if driver is not None else []
    n_regressed, n_improved = query_counts(decision)
    stat = stat_view(decision, max_list)
    slices_top, slices, slices_hidden, unchanged = order_slices(decision, stat, max_slice_rows)
    reasons = [r for r in decision.reasons if r]
    # gate.py puts the headline in `reason` and one line per rule in `reasons`:
    # list the rules only when there are several (one is already the headline).
    extra_reasons = [clean_statement(r) for r in reasons] if len(reasons) > 1 else []
    rejected = rejections(decision)
    stale = (
        decision.staleness_days is not None
        and decision.staleness_days > staleness_threshold_days
    )
    target = target or fmt
    section = target == "manifest-section"
    examples = examples_view(decision, show_failures)
    show_examples = bool(examples["rows"]) and (
        not decision.accepted or bool(collapsed_slices(decision)) or (stat is not None and bool(stat["unsettled"]))
    )
    from adaptergate.report.lead import lead_lines

    trace = trace_view(decision, links, head_sha)
    lead = lead_lines(decision, stat, limit=max(1, max_lead))
    # the failing queries in full (folded) where the table above does not already say it all
    examples_in_full = bool(decision.examples) and (
        not show_examples or len(decision.examples) > len(examples["rows"]) or any(
            e.judge_scores_candidate is not None or e.judge_reasoning
            or any(len(str(v)) > ANSWER_LIMIT for v in (e.prompt, e.gold, e.baseline_output, e.candidate_output)
                   if v is not None)
            for e in decision.examples))
    return {
        "decision": decision,
        "reason": clean_statement(decision.reason),
        "fmt": fmt,
        "target": target,
        "pr_comment": fmt == "pr-comment",
        "h": "####" if section else "###",
        "section": section,
        "marker": report_marker(decision.tenant_id),
        "icon": verdict_icon(decision),
        "verdict": "ACCEPTED" if decision.accepted else "REJECTED",
        "title": verdict_title(decision),
        "collapse_note": collapse_note(decision),
        "lead": lead,
        "lead_driver": any(is_driver for _, is_driver in lead),
        "examples": examples,
        "show_examples": show_examples,
        "examples_in_full": examples_in_full,
        "trace": trace,
        "stat": stat,
        "junit_stat": junit_stat(decision) if stat and fmt == "junit" else None,
        "extra_reasons": extra_reasons,
        "driver": driver,
        "driver_pattern": pattern_of(driver) if driver is not None else None,
        "aggregate_pattern": (
            pattern_from(decision.failure_pattern, None) if driver is None else None
        ),
        "driver_ids_shown": driver_ids[:show_failures],
        "driver_ids_more": max(0, len(driver_ids) - show_failures),
        "driver_ids_total": len(driver_ids),
        "n_regressed": n_regressed,
        "n_improved": n_improved,
        "show_slice_table": show_slice_table(decision, driver),
        "slices_top": slices_top,
        "slices": slices,
        "slices_hidden": slices_hidden,
        "slices_unchanged": [s.slice_tag for s in unchanged],
        "unchanged_names": UNCHANGED_NAMES,
        "slice_role": lambda s: slice_role(s, driver, decision),
        "slice_cols": {
            "role": any(slice_role(s, driver, decision) for s in [*slices_top, *slices]),
            # stat tables have the interval instead: the driver's share is in the lead
            "share": stat is None and any(s.share_of_drop is not None for s in [*slices_top, *slices]),
        },
        "slice_delta": slice_delta_cell,
        "slice_check": lambda s: slice_check(s, decision, stat),
        "slice_notes": lambda s: slice_notes(s, driver, stat=stat is not None),
        "slice_interval": slice_interval,
        "slice_p": slice_p,
        "slice_p_adjusted": slice_p_adjusted,
        "slice_verdict": slice_verdict,
        "details_slices": PR_DETAILS_SLICES,
        "details_ids": PR_DETAILS_IDS,
        "stale": stale,
        "staleness_threshold_days": staleness_threshold_days,
        "aggregate_failed": aggregate_failed(rejected),
        "aggregate_rule": aggregate_rule(rejected),
        "aggregate_message": aggregate_message(decision, rejected),
        "long_limit": MD_LONG_TEXT_LIMIT,
        "answer_limit": ANSWER_LIMIT,
        "word_diff": wording.word_diff,
        "judge": judge_view(decision),
        "judge_scores": judge_scores,
        "engine": engine_view(decision),
        "run_url": trace["run"],
        "plural": plural,
        "recommendations": recommendation_items(recommendations),
    }


def recommendation_items(recommendations: list[Any] | None) -> list[dict[str, Any]]:
    """The "What now?" items: dicts of :func:`adaptergate.recipes.recommendations_for`.

    The arXiv link is rebuilt here from a well-formed id only, whatever URL an
    item carries; every other value is text the template escapes.
    """
    if not recommendations:
        return []
    from adaptergate.recipes import arxiv_id

    items = []
    for r in recommendations:
        get = r.get if isinstance(r, dict) else (lambda k, r=r: getattr(r, k, None))
        ident = arxiv_id(get("arxiv_id"))
        items.append({
            "name": get("name") or get("recipe_id") or "",
            "arxiv_id": ident,
            "arxiv_url": f"https://arxiv.org/abs/{ident}" if ident else None,
            "why": get("why") or "",
            "record": get("record") or "no record yet",
        })
    return items


def engine_view(decision: GateDecision) -> dict[str, Any] | None:
    """A serving backend's line ("scored by vLLM 0.32.0, float32, teacher-forced") and its
    parity with PEFT; None for PEFT and for scorer gates (the report reads as it always has)."""
    ev = decision.evaluation or {}
    backend = ev.get("backend")
    if not backend or backend == "peft":
        return None
    engine = ev.get("engine") or {}
    parts = [str(engine.get("engine") if backend == "openai" else "vLLM in-process")]
    if backend == "vllm" and engine.get("version"):
        parts = [f"vLLM {engine['version']} in-process"]
    elif backend == "openai":
        parts = [f"server {engine.get('server', '?')} ({engine.get('model', '?')}, engine {engine.get('engine', '?')})"]
    for key in ("dtype", "quantize"):
        if engine.get(key):
            parts.append(str(engine[key]))
    mode = ev.get("mode")
    if mode:
        parts.append("teacher-forced exact match" if mode == "teacher-forced" else "greedy generation")
    view: dict[str, Any] = {"text": ", ".join(parts), "parity": None}
    parity = ev.get("parity")
    if isinstance(parity, dict) and parity.get("queries"):
        view["parity"] = (
            f"{parity['identical']}/{parity['queries']} sampled answers identical to PEFT's"
            f" ({float(parity['agreement']):.3f})"
        )
        view["parity_differing"] = parity.get("differing") or []
    return view


def judge_view(decision: GateDecision) -> dict[str, Any] | None:
    """``--metric judge``: the per-criterion table (None for every other decision)."""
    j = decision.judge
    if j is None:
        return None
    worst = min(j.criteria, key=lambda c: c.delta, default=None)
    return {
        "summary": j,
        "rows": j.criteria,
        "worst": worst if worst is not None and worst.delta < 0 else None,
        "mode": "pairwise, A/B order randomised per query" if j.pairwise else "each answer judged on its own",
    }


def judge_scores(baseline: dict[str, int] | None, candidate: dict[str, int] | None) -> list[tuple[str, Any, Any]]:
    """(criterion, baseline score, candidate score) in the candidate's criterion order."""
    names = list(candidate or {}) or list(baseline or {})
    return [(n, (baseline or {}).get(n), (candidate or {}).get(n)) for n in names]



def pattern_of(s: SliceAttribution) -> dict[str, Any] | None:
    """The pattern to show for a slice."""
    return pattern_from(s.failure_pattern, s.pattern)


def pattern_from(fp: FailurePattern | None, legacy: str | None) -> dict[str, Any] | None:
    """Summary, else the top terms, else 0.5.4's pattern string; None if nothing."""
    if fp is not None and fp.summary:
        return {"summary": fp.summary, "terms": []}
    if fp is not None and fp.terms:
        return {"summary": "", "terms": fp.terms[:3]}
    if legacy:
        return {"summary": legacy, "terms": []}
    return None


# --------------------------------------------------------------------------
# Public API
