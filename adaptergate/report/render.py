"""Reports of a :class:`~adaptergate.models.GateDecision`.

Every textual report comes from a Jinja template in ``templates/`` so the
CLI's markdown, the GitHub PR comment, the check run and the step summary
share one layout:

* ``report.md.j2`` — ``--format markdown`` and ``--format pr-comment``
* ``junit.xml.j2`` — ``--format junit``

``--format json`` is the decision itself; ``human`` is printed with rich by
:func:`print_human`.

Everything a user controls (tenant, adapter and query ids, slice tags,
pattern n-grams, reasons, warnings) is made inert before it reaches
Markdown (filter ``md``), XML (filter ``xml``) or a rich console
(:func:`_rich_text`): a holdout file must never be able to inject HTML,
break a table, @-mention someone or restyle a terminal.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import markupsafe
from rich.console import Console
from rich.markup import escape as rich_escape

import adaptergate
from adaptergate.decide import wording as wording
from adaptergate.errors import AdaptergateError, UsageError
from adaptergate.models import Evidence, FailurePattern, GateDecision, SliceAttribution

__all__ = [
    "RENDER_FORMATS",
    "escape_markdown",
    "escape_xml",
    "get_environment",
    "plain_line",
    "print_human",
    "rich_text",
    "render",
    "render_manifest",
    "report_marker",
    "template_dirs",
]

RENDER_FORMATS: tuple[str, ...] = ("json", "pr-comment", "markdown", "junit")
"""Formats :func:`render` returns as a string (``human`` is :func:`print_human`)."""

MD_VALUE_LIMIT = 200
"""User text longer than this is cut (then ``…``) in reports."""

MD_LONG_TEXT_LIMIT = 1000
"""Limit for reasons and warning messages, which are sentences."""

PR_COMMENT_MAX_CHARS = 65_000
"""GitHub rejects comment bodies (and check-run summaries) over 65,536 chars."""

PR_DETAILS_SLICES = 15
"""pr-comment folds the slice table into ``<details>`` above this many slices."""

PR_DETAILS_IDS = 10
"""pr-comment folds the failing-id list into ``<details>`` above this many ids."""

STAT_LIST_LIMIT = 10
"""The "Failed" and "Not settled" lists show this many sentences (then a count)."""

_MARKER_PREFIX = "<!-- adaptergate:report tenant="


# --------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------


TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
"""The report templates, shipped inside the package (the wheel and a checkout alike)."""


def template_dirs() -> list[Path]:
    """Directories holding the templates (existing ones only)."""
    return [TEMPLATE_DIR] if TEMPLATE_DIR.is_dir() else []


@functools.lru_cache(maxsize=1)
def get_environment() -> jinja2.Environment:
    """The one Jinja environment of adaptergate (created once, then cached)."""
    dirs = template_dirs()
    if not dirs:
        raise AdaptergateError(f"adaptergate's report templates are missing: no {TEMPLATE_DIR}")
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in dirs]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("xml", "xml.j2", "html", "html.j2"),
            disabled_extensions=(),
            default_for_string=False,
            default=False,
        ),
    )
    env.filters.update(
        md=escape_markdown,
        xml=escape_xml,
        signed=_fmt_signed,
        score=_fmt_score,
        pct=_fmt_pct,
        num=_fmt_num,
        marker=_marker_value,
    )
    return env


# --------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------

_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")
# Bidi overrides/isolates can make text read differently from what it is.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MD_SPECIAL = re.compile(r"[&<>|\\`*_\[\]#~!$]|@(?=\w)")
_MD_LINE_START = re.compile(r"^(\d{0,9})((?<=\d)[.)](?=\s|$)|(?<!\d)[-+=])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;"}


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _one_line(text: str) -> str:
    """Line breaks become one space; other control and bidi characters go."""
    text = _LINE_BREAKS.sub(" ", text)
    return "".join(
        ch
        for ch in text
        if ch not in _BIDI_CONTROLS and unicodedata.category(ch) not in ("Cc", "Cs")
    )


def _cap(text: str, limit: int | None) -> str:
    if limit and len(text) > limit:
        return text[:limit] + "…"
    return text


def _md_replace(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _MD_ENTITIES:
        return _MD_ENTITIES[ch]
    if ch == "@":
        # A zero-width space after "@" breaks mentions and e-mail autolinks
        # (an entity would not: GitHub resolves mentions after decoding).
        return "@\u200b"
    return "\\" + ch


def escape_markdown(value: Any, limit: int | None = MD_VALUE_LIMIT) -> str:
    """Make user text inert in GitHub-flavoured Markdown (the ``md`` filter).

    No raw HTML (``< > &`` become entities), ``|`` cannot split a table cell,
    line breaks collapse to a space, emphasis/link/heading/strikethrough/math
    characters are backslash-escaped, ``@name`` cannot mention anyone, and the
    value is cut to ``limit`` characters. Never put the result in a code span:
    entities would show literally there.
    """
    text = _cap(_one_line(_to_text(value)).strip(), limit)
    text = _MD_SPECIAL.sub(_md_replace, text)
    # A value may start a line (a list item): keep it from opening a list,
    # a thematic break or a setext underline there.
    return _MD_LINE_START.sub(r"\1\\\2", text, count=1)


# Characters XML 1.0 forbids: C0 controls other than TAB/LF/CR, lone
# surrogates, U+FFFE, U+FFFF.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape_xml(value: Any, limit: int | None = None, *, one_line: bool = False) -> markupsafe.Markup:
    """Escape for XML text and attributes (the ``xml`` filter).

    Removes characters illegal in XML 1.0, escapes ``& < > " '``; with
    ``one_line`` line breaks become spaces (for attributes).
    """
    text = _XML_ILLEGAL.sub("", _to_text(value))
    if one_line:
        text = _LINE_BREAKS.sub(" ", text)
    return markupsafe.escape(_cap(text, limit))


def report_marker(tenant_id: str) -> str:
    """The hidden first line of a pr-comment, to find (and update) it later.

    The tenant is percent-encoded, so the marker is one line, cannot close
    the HTML comment and is the same string whoever computes it.
    """
    return f"{_MARKER_PREFIX}{_marker_value(tenant_id)} -->"


def _marker_value(value: Any) -> str:
    return quote(_to_text(value), safe="")


# --------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fmt_signed(x: Any, digits: int = 3) -> str:
    return f"{x:+.{digits}f}" if _finite(x) else "n/a"


def _fmt_score(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if _finite(x) else "n/a"


def _fmt_pct(x: Any) -> str:
    return f"{x * 100:.0f}%" if _finite(x) else "n/a"


def _fmt_num(x: Any) -> str:
    return f"{x:g}" if _finite(x) else "n/a"


def _fmt_p(x: Any) -> str:
    """A p-value, compact: ``<0.0001``, ``0.0003``, ``0.034``."""
    if not _finite(x):
        return "n/a"
    if x < 1e-4:
        return "<0.0001"
    return f"{x:.4f}" if x < 0.01 else f"{x:.3f}"


# --------------------------------------------------------------------------
# Shared view of a decision
# --------------------------------------------------------------------------


def _named_ids(ids: list[Any]) -> list[Any]:
    return [q for q in ids if q is not None and q != ""]


def _query_counts(decision: GateDecision) -> tuple[int, int]:
    """(regressed, improved): from per-query rows, else the stored counts."""
    if decision.per_query:
        return len(decision.regressions), len(decision.improvements)
    return decision.n_regressed, decision.n_improved


def _slice_notes(
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


def _sorted_slices(decision: GateDecision) -> list[SliceAttribution]:
    """Most-regressed first (stable, so ties keep the recorded order)."""
    return sorted(
        decision.slice_attributions,
        key=lambda s: s.delta if _finite(s.delta) else math.inf,
    )


def _show_slice_table(decision: GateDecision, driver: SliceAttribution | None) -> bool:
    n = len(decision.slice_attributions)
    return n > 1 or (n == 1 and driver is None)


_STRICT_REASON = re.compile(r"^\s*(REJECTED\s*\(\s*)?strict\b", re.IGNORECASE)


def _strict_rejected(decision: GateDecision) -> bool:
    """A reason that *starts* with strict mode (a slice tag may contain "strict")."""
    return not decision.accepted and any(
        _STRICT_REASON.match(t) for t in [decision.reason, *decision.reasons]
    )


def _aggregate_failed(decision: GateDecision) -> bool:
    """Did the aggregate (or strict) rule reject, as opposed to only a slice rule?

    Rejected with no violating slice: yes. With violating slices: only when
    the aggregate drop itself exceeds epsilon or a reason names strict mode.
    """
    if decision.accepted:
        return False
    if not any(s.violates for s in decision.slice_attributions):
        return True
    if _finite(decision.delta) and _finite(decision.epsilon) and decision.delta < -decision.epsilon:
        return True
    return _strict_rejected(decision)


def _aggregate_message(decision: GateDecision) -> str:
    """The rules other than slice rules that rejected (else the headline)."""
    rules = [
        r for r in decision.reasons if r and not r.lstrip().lower().startswith("slice")
    ]
    return "; ".join(rules) if rules else decision.reason


# --------------------------------------------------------------------------
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


def _slice_verdict(s: SliceAttribution) -> str:
    """FAIL / PASS / INCONCLUSIVE / ``too small (needs ≥ N)``; "" when not tested."""
    ev = s.evidence
    if ev is None or not ev.verdict:
        return ""
    if ev.verdict != "FAIL" and ev.never_significant and ev.min_size:
        return f"too small (needs ≥ {ev.min_size:,})"
    return ev.verdict


def _slice_interval(s: SliceAttribution) -> str:
    ev = s.evidence
    if ev is None or not (_finite(ev.lower) and _finite(ev.upper)):
        return "—"
    return f"{ev.lower:+.3f} to {ev.upper:+.3f}"


def _slice_p(s: SliceAttribution) -> str:
    return _fmt_p(s.evidence.p_value) if s.evidence is not None else "—"


def _slice_p_adjusted(s: SliceAttribution) -> str:
    """Adjusted p only for slices in the tested family (others carry a placeholder 1)."""
    ev = s.evidence
    if ev is None or not ev.verdict or ev.p_adjusted is None:
        return "—"
    return _fmt_p(ev.p_adjusted)


def _unsettled(decision: GateDecision) -> list[SliceAttribution]:
    """Slices whose evidence is INCONCLUSIVE while their drop exceeds slice ε."""
    eps = _slice_epsilon(decision)
    if eps is None:
        return []
    return [
        s
        for s in _sorted_slices(decision)
        if s.evidence is not None
        and s.evidence.verdict == "INCONCLUSIVE"
        and _finite(s.delta)
        and s.delta < -eps
    ]


def _rule_line(decision: GateDecision) -> str:
    """The parameters of the statistical rule, from ``decision.config``."""
    cfg = decision.config
    if cfg is None:
        return f"ε={_fmt_num(decision.epsilon)}"
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


def _stat_view(decision: GateDecision) -> dict[str, Any] | None:
    """Everything the reports show for a stat decision, each sentence once.

    gate.py writes the headline into ``reason`` and, into ``reasons``, the
    aggregate's statement (unless PASS), each failing slice's statement, each
    unsettled slice's statement and the strict line. The aggregate statement
    goes to the Evidence block, unsettled slices to "Not settled"; what is
    left (failing slices, strict mode) is listed once under "Failed".
    """
    if not _is_stat(decision):
        return None
    ev: Evidence = decision.evidence  # type: ignore[assignment]
    verdict = _stat_verdict(decision)
    outcome = "ACCEPTED" if decision.accepted else "REJECTED"
    policy = _policy(decision)
    unsettled = _unsettled(decision)
    elsewhere = {ev.statement, *(s.evidence.statement for s in unsettled if s.evidence is not None)}
    lines: list[str] = []
    for r in decision.reasons:
        if r and r not in elsewhere and r != decision.reason and r not in lines:
            lines.append(r)
    # The PASS headline is the aggregate statement itself: print it once.
    body = _statement_body(ev.statement)
    show_reason = bool(decision.reason) and not (body and body in decision.reason)
    slice_levels = [s.evidence.level for s in decision.slice_attributions if s.evidence is not None]
    level = slice_levels[0] if slice_levels and _finite(slice_levels[0]) else None
    if verdict == "INCONCLUSIVE":
        icon = "⚠️" if decision.accepted else "🚫"
    else:
        icon = "✅" if decision.accepted else "🚫"
    noise = decision.noise.statement if decision.noise is not None else None
    return {
        "verdict": verdict,
        "outcome": outcome,
        "policy": policy,
        "icon": icon,
        "title": f"{outcome} · {verdict}" if verdict else outcome,
        "rule_title": f"{outcome} — {verdict}" if verdict else outcome,
        "policy_note": f"(policy: {policy})" if verdict == "INCONCLUSIVE" else "",
        "show_reason": show_reason,
        "aggregate": ev,
        "power": wording.power_statement(ev, decision.holdout_size),
        "rule": _rule_line(decision),
        "noise": noise or None,
        "failed": lines[:STAT_LIST_LIMIT],
        "failed_more": max(0, len(lines) - STAT_LIST_LIMIT),
        "unsettled": unsettled[:STAT_LIST_LIMIT],
        "unsettled_more": max(0, len(unsettled) - STAT_LIST_LIMIT),
        "slice_level": f"{round(level * 100)}% " if level is not None else "",
        "multiplicity": decision.config.multiplicity if decision.config is not None else "",
        "gated": _slice_epsilon(decision) is not None,
    }


def _junit_stat(decision: GateDecision) -> dict[str, Any]:
    """Testcase outcomes of a stat decision: FAIL fails, INCONCLUSIVE is skipped.

    The aggregate testcase also fails when INCONCLUSIVE evidence meets
    ``--on-inconclusive reject`` (its own, or the overall verdict's: the exit
    code is 1 then and some testcase has to say why).
    """
    ev: Evidence = decision.evidence  # type: ignore[assignment]
    verdict = _stat_verdict(decision)
    reject_policy = _policy(decision) == "reject"
    agg: dict[str, Any] = {"status": "pass", "type": "", "message": ""}
    if ev.verdict == "FAIL":
        agg = {"status": "failure", "type": "aggregate", "message": ev.statement}
    elif _strict_rejected(decision):
        strict = [r for r in decision.reasons if r and _STRICT_REASON.match(r)]
        message = "; ".join(strict) or decision.reason
        agg = {"status": "failure", "type": "strict", "message": message}
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
            message = f"slice {s.slice_tag} regressed (Δ={_fmt_signed(s.delta)})"
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


def _order_slices(
    decision: GateDecision, stat: dict[str, Any] | None, max_rows: int | None
) -> tuple[list[SliceAttribution], list[SliceAttribution], int]:
    """(shown first, the rest, hidden count) for the Markdown slice table.

    Stat decisions with more than ``PR_DETAILS_SLICES`` slices put the slices
    that FAIL or are not settled first, outside any ``<details>``.
    """
    slices = _sorted_slices(decision)
    total = len(slices)
    top: list[SliceAttribution] = []
    if stat is not None and total > PR_DETAILS_SLICES:
        eps = _slice_epsilon(decision)
        eps = eps if eps is not None else math.inf

        def notable(s: SliceAttribution) -> bool:
            ev = s.evidence
            return ev is not None and (
                ev.verdict == "FAIL"
                or (ev.verdict == "INCONCLUSIVE" and _finite(s.delta) and s.delta < -eps)
            )

        top = [s for s in slices if notable(s)]
        ids = {id(s) for s in top}
        slices = top + [s for s in slices if id(s) not in ids]
    if max_rows is not None:
        slices = slices[:max_rows]
    n_top = min(len(top), len(slices))
    return slices[:n_top], slices[n_top:], total - len(slices)


def _context(
    decision: GateDecision,
    *,
    fmt: str,
    show_failures: int,
    staleness_threshold_days: int,
    target: str | None,
    max_slice_rows: int | None = None,
    links: dict[str, str] | None = None,
    recommendations: list[Any] | None = None,
) -> dict[str, Any]:
    driver = decision.driver_slice
    show_failures = max(0, int(show_failures))
    driver_ids = _named_ids(driver.regressed_query_ids) if driver is not None else []
    n_regressed, n_improved = _query_counts(decision)
    stat = _stat_view(decision)
    slices_top, slices, slices_hidden = _order_slices(decision, stat, max_slice_rows)
    reasons = [r for r in decision.reasons if r]
    # gate.py puts the headline in `reason` and one line per rule in `reasons`:
    # list the rules only when there are several (one is already the headline).
    extra_reasons = reasons if len(reasons) > 1 else []
    stale = (
        decision.staleness_days is not None
        and decision.staleness_days > staleness_threshold_days
    )
    return {
        "decision": decision,
        "fmt": fmt,
        "target": target or fmt,
        "pr_comment": fmt == "pr-comment",
        "marker": report_marker(decision.tenant_id),
        "icon": stat["icon"] if stat else ("✅" if decision.accepted else "🚫"),
        "verdict": "ACCEPTED" if decision.accepted else "REJECTED",
        "title": stat["title"] if stat else ("ACCEPTED" if decision.accepted else "REJECTED"),
        "stat": stat,
        "junit_stat": _junit_stat(decision) if stat and fmt == "junit" else None,
        "extra_reasons": extra_reasons,
        "driver": driver,
        "driver_pattern": _pattern_of(driver) if driver is not None else None,
        "aggregate_pattern": (
            _pattern_from(decision.failure_pattern, None) if driver is None else None
        ),
        "driver_ids_shown": driver_ids[:show_failures],
        "driver_ids_more": max(0, len(driver_ids) - show_failures),
        "driver_ids_total": len(driver_ids),
        "n_regressed": n_regressed,
        "n_improved": n_improved,
        "show_slice_table": _show_slice_table(decision, driver),
        "slices_top": slices_top,
        "slices": slices,
        "slices_hidden": slices_hidden,
        "slice_notes": lambda s: _slice_notes(s, driver, stat=stat is not None),
        "slice_interval": _slice_interval,
        "slice_p": _slice_p,
        "slice_p_adjusted": _slice_p_adjusted,
        "slice_verdict": _slice_verdict,
        "details_slices": PR_DETAILS_SLICES,
        "details_ids": PR_DETAILS_IDS,
        "stale": stale,
        "staleness_threshold_days": staleness_threshold_days,
        "aggregate_failed": _aggregate_failed(decision),
        "aggregate_rule": "strict" if _strict_rejected(decision) else "aggregate",
        "aggregate_message": _aggregate_message(decision),
        "long_limit": MD_LONG_TEXT_LIMIT,
        "word_diff": wording.word_diff,
        "judge": _judge_view(decision),
        "judge_scores": _judge_scores,
        "run_url": _safe_url((links or {}).get("run")),
        "recommendations": _recommendation_items(recommendations),
    }


def _recommendation_items(recommendations: list[Any] | None) -> list[dict[str, Any]]:
    """The "What now?" items: dicts of :func:`adaptergate.recipes.library.recommendations_for`.

    The arXiv link is rebuilt here from a well-formed id only, whatever URL an
    item carries; every other value is text the template escapes.
    """
    if not recommendations:
        return []
    from adaptergate.recipes.library import arxiv_id

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


def _judge_view(decision: GateDecision) -> dict[str, Any] | None:
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


def _judge_scores(baseline: dict[str, int] | None, candidate: dict[str, int] | None) -> list[tuple[str, Any, Any]]:
    """(criterion, baseline score, candidate score) in the candidate's criterion order."""
    names = list(candidate or {}) or list(baseline or {})
    return [(n, (baseline or {}).get(n), (candidate or {}).get(n)) for n in names]


def _safe_url(url: str | None) -> str | None:
    """An http(s) URL that cannot break out of a Markdown link (else None)."""
    if not url or not url.startswith(("https://", "http://")):
        return None
    return quote(url, safe=":/?#[]@!$&'*+,;=%-._~").replace("(", "%28").replace(")", "%29")


def _pattern_of(s: SliceAttribution) -> dict[str, Any] | None:
    """The pattern to show for a slice."""
    return _pattern_from(s.failure_pattern, s.pattern)


def _pattern_from(fp: FailurePattern | None, legacy: str | None) -> dict[str, Any] | None:
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
# --------------------------------------------------------------------------


def _scrubbed(fn):
    """Reports never show a secret this process holds (see :func:`adaptergate.trust.scrub`)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from adaptergate.trust import scrub

        return scrub(fn(*args, **kwargs))

    return wrapper


@_scrubbed
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
    """Render ``decision`` as ``json``, ``pr-comment``, ``markdown`` or ``junit``.

    ``show_failures`` is how many failing query ids of the driver slice to
    list; ``staleness_threshold_days`` is the holdout age above which a
    warning appears; ``target`` names the surface the text is for
    (``"check-run"``, ``"step-summary"`` …) and is handed to the templates as
    ``target`` (default: ``fmt``); ``links`` are trusted URLs for the footer
    (``run``: the workflow run); ``recommendations``, for a rejection, are
    repair recipes (:func:`adaptergate.recipes.library.recommendations_for`) shown in
    a "What now?" section of the Markdown reports (none: no section).

    Raises :class:`~adaptergate.errors.UsageError` for any other ``fmt``.
    """
    if fmt not in RENDER_FORMATS:
        hint = " (human output is printed by print_human)" if fmt == "human" else ""
        raise UsageError(
            f"unknown report format {fmt!r}{hint}; valid formats: " + ", ".join(RENDER_FORMATS)
        )
    if fmt == "json":
        return decision.to_json(indent=2)

    env = get_environment()
    opts = dict(
        fmt=fmt,
        show_failures=show_failures,
        staleness_threshold_days=staleness_threshold_days,
        target=target,
        links=links or {},
        recommendations=recommendations,
    )
    if fmt == "junit":
        return env.get_template("junit.xml.j2").render(_context(decision, **opts))

    template = env.get_template("report.md.j2")
    text = template.render(_context(decision, **opts))
    if fmt == "pr-comment":
        # Stay under GitHub's size limit however many slices there are.
        rows = len(decision.slice_attributions)
        while len(text) > PR_COMMENT_MAX_CHARS and rows > 0:
            rows //= 2
            text = template.render(_context(decision, max_slice_rows=rows, **opts))
    return text


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
            "verdict": verdict, "delta": _fmt_signed(d.delta) if d is not None else "—",
            "driver": d.driver_slice_tag if d is not None and not d.accepted else None,
            "note": t.error or t.note,
        })
    return rows


@_scrubbed
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
            from adaptergate.recipes.library import recommendations_from_file

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
        run_url=_safe_url((links or {}).get("run")),
    )


# --------------------------------------------------------------------------
# Human (rich) output
# --------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def plain_line(value: Any, limit: int | None = None) -> str:
    """User text as one printable line: control, bidi and zero-width characters shown as
    ``\\xNN`` / ``\\uNNNN`` (:func:`adaptergate.trust.inert`), lone surrogates as ``\\uNNNN``
    (unencodable), cut at ``limit``."""
    from adaptergate.trust import inert

    text = inert(_LINE_BREAKS.sub(" ", _to_text(value)))
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
    return _cap(text, limit)


def rich_text(value: Any, limit: int | None = None) -> str:
    """User text safe for rich: no markup, no terminal escapes, one line."""
    return rich_escape(plain_line(value, limit))


_rich_text = rich_text


def print_human(
    decision: GateDecision,
    *,
    console: Console,
    err_console: Console,
    show_failures: int = 5,
    staleness_threshold_days: int = 30,
) -> None:
    """Print the decision for a terminal (0.5.4's layout).

    The report goes to ``console``; warnings go to ``err_console`` so they
    survive ``--format json > file``-style piping.
    """
    def out(text: str = "") -> None:
        console.print(text, emoji=False, highlight=False)

    def err(text: str = "") -> None:
        err_console.print(text, emoji=False, highlight=False)

    t = _rich_text
    show_failures = max(0, int(show_failures))
    stat = _stat_view(decision)
    style = "green" if decision.accepted else "red"
    verdict = "ACCEPTED" if decision.accepted else "REJECTED"
    if stat is not None:
        if stat["verdict"] == "INCONCLUSIVE":
            style = "yellow" if decision.accepted else "red"
        title = stat["rule_title"] + (f" {stat['policy_note']}" if stat["policy_note"] else "")
        console.rule(f"[{style}]{title}[/{style}]")
    else:
        console.rule(f"[{style}]{verdict}[/{style}]")
    policy = decision.policy
    if policy is not None and policy.needs_review:
        out(f"[bold yellow]{t(policy.headline(decision.tenant_id))}[/bold yellow]")
    baseline = t(decision.baseline_id) if decision.baseline_id is not None else "(none)"
    out(f"Tenant:    [cyan]{t(decision.tenant_id)}[/cyan]")
    out(f"Candidate: [cyan]{t(decision.candidate_id)}[/cyan]")
    out(f"Baseline:  [cyan]{baseline}[/cyan]")
    out(
        f"Score:     {_fmt_score(decision.score_baseline)} → {_fmt_score(decision.score_candidate)}"
        f"  (Δ={_fmt_signed(decision.delta)}, ε={_fmt_num(decision.epsilon)})"
    )
    out(f"Held-out:  n={decision.holdout_size}")
    if stat is not None:
        _print_stat_block(decision, stat, out)
    else:
        out(f"Reason:    {t(decision.reason)}")
        reasons = [r for r in decision.reasons if r]
        if len(reasons) > 1:
            for r in reasons:
                out(f"  • {t(r)}")
    if decision.judge is not None:
        _print_judge_block(decision, out)

    driver = decision.driver_slice
    if driver is not None:
        share = (
            f", {_fmt_pct(driver.share_of_drop)} of the drop"
            if driver.share_of_drop is not None
            else ""
        )
        out(
            f"\n[bold red]DRIVER SLICE:[/bold red] [magenta]{t(driver.slice_tag)}[/magenta]"
            f"   {_fmt_score(driver.score_baseline)} → {_fmt_score(driver.score_candidate)}"
            f"  (Δ={_fmt_signed(driver.delta)},"
            f" {driver.n_regressed}/{driver.n_total} regressed{share})"
        )
        pattern = _pattern_of(driver)
        if pattern is not None:
            out(f"  [bold]Pattern:[/bold] {_rich_pattern(pattern)}")
        ids = _named_ids(driver.regressed_query_ids)
        if ids and show_failures:
            preview = ", ".join(t(x, MD_VALUE_LIMIT) for x in ids[:show_failures])
            more = f" + {len(ids) - show_failures} more" if len(ids) > show_failures else ""
            out(f"  Failing query IDs: {preview}{more}")
        elif ids:
            out(f"  Failing query IDs: {len(ids)}")
    elif decision.failure_pattern is not None:
        pattern = _pattern_from(decision.failure_pattern, None)
        if pattern is not None:
            out(f"\n[bold]Failure pattern:[/bold] {_rich_pattern(pattern)}")

    if _show_slice_table(decision, driver):
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
        for s in _sorted_slices(decision):
            colour = "red" if s.delta < 0 else "green"
            notes = _slice_notes(s, driver, stat=stat is not None)
            marks = ""
            if notes:
                marks = "   [yellow]← " + ", ".join(notes) + "[/yellow]"
            share = f"   {_fmt_pct(s.share_of_drop)} of drop" if s.share_of_drop is not None else ""
            columns = _rich_stat_columns(s, gated=stat["gated"]) if stat is not None else ""
            out(
                f"  [{colour}]{_fmt_signed(s.delta)}[/{colour}]   {columns}"
                f"{s.n_regressed}/{s.n_total} regressed{share}   "
                f"[magenta]{t(s.slice_tag)}[/magenta]{marks}"
            )

    n_regressed, n_improved = _query_counts(decision)
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


_VERDICT_STYLE = {"FAIL": "red", "PASS": "green", "INCONCLUSIVE": "yellow"}


def _print_judge_block(decision: GateDecision, out: Any) -> None:
    j = decision.judge
    assert j is not None
    mode = "pairwise" if j.pairwise else "pointwise"
    out(f"\n[bold]Judge[/bold] {_rich_text(j.judge, MD_VALUE_LIMIT)} ({mode}; scores {j.scale}):")
    for c in j.criteria:
        colour = "red" if c.delta < 0 else "green"
        out(
            f"  [{colour}]{_fmt_signed(c.delta, 2)}[/{colour}]   {_fmt_score(c.baseline, 2)} → {_fmt_score(c.candidate, 2)}"
            f"   {c.n_worse} worse, {c.n_better} better   [magenta]{_rich_text(c.name)}[/magenta] ×{_fmt_num(c.weight)}"
        )


def _print_stat_block(decision: GateDecision, stat: dict[str, Any], out: Any) -> None:
    """Reason, Evidence, rule and the Failed / Not settled lists: each sentence once."""
    t = _rich_text
    if stat["show_reason"]:
        out(f"Reason:    {t(decision.reason)}")
    out(f"Evidence:  {t(stat['aggregate'].statement)}")
    if stat["power"]:
        out(f"Power:     {t(stat['power'])}")
    out(f"Rule:      {t(stat['rule'])}")
    if stat["noise"]:
        out(f"Noise:     {t(stat['noise'])}")
    lists = (
        ("[bold red]Failed:[/bold red]", stat["failed"], stat["failed_more"]),
        ("[bold yellow]Not settled[/bold yellow] (drop beyond slice ε, evidence inconclusive):",
         [s.evidence.statement for s in stat["unsettled"]], stat["unsettled_more"]),
    )
    for heading, sentences, more in lists:
        if not sentences:
            continue
        out(heading)
        for sentence in sentences:
            out(f"  • {t(sentence)}")
        if more:
            out(f"  … and {more} more (see the slice breakdown)")


def _rich_stat_columns(s: SliceAttribution, *, gated: bool) -> str:
    """Interval, p, adjusted p and verdict of one slice, padded to line up."""
    verdict = _slice_verdict(s) or "—"
    colour = _VERDICT_STYLE.get(s.evidence.verdict if s.evidence is not None else "", "")
    plain = not colour or verdict.startswith("too small")
    shown = verdict if plain else f"[{colour}]{verdict}[/{colour}]"
    pad = " " * max(0, 12 - len(verdict))
    p_value = _slice_p(s)
    p = "p" + ("" if p_value.startswith("<") else "=") + p_value
    if not gated:
        return f"{_slice_interval(s):<16}   {p:<8}   "
    adj = _slice_p_adjusted(s)
    return f"{_slice_interval(s):<16}   {p:<8}   adj {adj:<7}   {shown}{pad}   "


def _rich_pattern(pattern: dict[str, Any]) -> str:
    if pattern["summary"]:
        return _rich_text(pattern["summary"], MD_LONG_TEXT_LIMIT)
    return "; ".join(
        f"“{_rich_text(term.ngram, MD_VALUE_LIMIT)}” in {term.n_failing}/{term.failing_total}"
        f" failing vs {term.n_passing}/{term.passing_total} passing"
        for term in pattern["terms"]
    )
