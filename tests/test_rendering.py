"""Reports of a GateDecision: json, markdown, pr-comment, junit and human."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from adaptergate.errors import UsageError
from adaptergate.models import (
    DuplicateSlices,
    FailurePattern,
    GateConfig,
    GateDecision,
    GateWarning,
    PatternTerm,
    QueryRow,
    SliceAttribution,
)
from adaptergate.report import (
    RENDER_FORMATS,
    escape_markdown,
    get_environment,
    print_human,
    render,
    report_marker,
    template_dirs,
)

EVIL = "| <img src=x onerror=alert(1)> @octocat **bold** \n# heading"

# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


def _driver(tag: str = "intent=refund", ids: list | None = None) -> SliceAttribution:
    ids = ids if ids is not None else [f"q-refund-{i:02d}" for i in range(12)]
    return SliceAttribution(
        slice_tag=tag,
        n_total=14,
        n_regressed=len(ids),
        score_baseline=0.95,
        score_candidate=0.2,
        delta=-0.75,
        regressed_query_ids=ids,
        contribution=-0.0525,
        share_of_drop=0.68,
        eligible=True,
        violates=True,
        failure_pattern=FailurePattern(
            failing_total=12,
            passing_total=40,
            terms=[
                PatternTerm(
                    ngram="partial refund", n_failing=9, failing_total=12,
                    n_passing=1, passing_total=40,
                )
            ],
            summary="“partial refund” in 9/12 failing vs 1/40 passing",
        ),
    )


def _other_slices(n: int) -> list[SliceAttribution]:
    out = []
    for i in range(n):
        delta = -0.01 * (i % 7) + 0.002 * (i % 3)
        out.append(
            SliceAttribution(
                slice_tag=f"topic=t{i:02d}",
                n_total=2 if i % 10 == 9 else 10,
                n_regressed=min(i % 4, 2 if i % 10 == 9 else 10),
                score_baseline=0.9,
                score_candidate=0.9 + delta,
                delta=delta,
                regressed_query_ids=[
                    f"q-t{i:02d}-{k}" for k in range(min(i % 4, 2 if i % 10 == 9 else 10))
                ],
                share_of_drop=0.01 if delta < 0 else None,
                eligible=i % 10 != 9,
                explained_by_driver=(i == 3),
            )
        )
    return out


def rejected_decision(**update) -> GateDecision:
    driver = _driver()
    slices = [*_other_slices(29), driver]  # driver not first: rendering must sort
    per_query = [
        QueryRow(query_id=f"r{i}", score_baseline=1.0, score_candidate=0.0, delta=-1.0)
        for i in range(14)
    ] + [
        QueryRow(query_id=f"i{i}", score_baseline=0.0, score_candidate=1.0, delta=1.0)
        for i in range(3)
    ]
    d = GateDecision(
        tool_version="1.0.0.dev0",
        accepted=False,
        tenant_id="acme",
        candidate_id="adapter-v8",
        baseline_id="adapter-v7",
        holdout_size=200,
        score_baseline=0.924,
        score_candidate=0.353,
        delta=-0.571,
        epsilon=0.02,
        reason="REJECTED: aggregate drop exceeds ε=0.02",
        reasons=["aggregate drop exceeds ε=0.02", "slice 'intent=refund' exceeds slice ε=0.1"],
        timestamp="2025-01-01T00:00:00+00:00",
        config=GateConfig(epsilon=0.02, slice_epsilon=0.1),
        n_regressed=14,
        n_improved=3,
        per_query=per_query,
        slice_attributions=slices,
        driver_slice_tag="intent=refund",
        malformed_slice_queries=2,
        suspected_duplicate_slices=[["intent=refund", "intent=refunds"]],
        duplicate_slice_details=[
            DuplicateSlices(tags=["intent=refund", "intent=refunds"], reason="plural form")
        ],
        staleness_days=45,
        warnings=[GateWarning(code="small-holdout", message="holdout is small for ε=0.02")],
    )
    return d.model_copy(update=update) if update else d


def accepted_decision(**update) -> GateDecision:
    d = GateDecision(
        tool_version="1.0.0.dev0",
        accepted=True,
        tenant_id="acme",
        candidate_id="adapter-v9",
        baseline_id="adapter-v8",
        holdout_size=120,
        score_baseline=0.9,
        score_candidate=0.91,
        delta=0.01,
        epsilon=0.02,
        reason="ACCEPTED: aggregate 0.900 → 0.910 (Δ=+0.010) over n=120. Improved or flat.",
        timestamp="2025-01-02T00:00:00+00:00",
        n_improved=4,
        slice_attributions=[
            SliceAttribution(
                slice_tag="intent=refund", n_total=10, n_regressed=0,
                score_baseline=0.9, score_candidate=0.95, delta=0.05,
            ),
            SliceAttribution(
                slice_tag="intent=billing", n_total=10, n_regressed=1,
                score_baseline=0.9, score_candidate=0.89, delta=-0.01,
            ),
        ],
    )
    return d.model_copy(update=update) if update else d


LEGACY_054 = {
    "accepted": False,
    "candidate_id": "adapter-v3",
    "baseline_id": "adapter-v2",
    "tenant_id": "legacy-tenant",
    "holdout_size": 50,
    "score_baseline": 0.9,
    "score_candidate": 0.86,
    "delta": -0.04,
    "epsilon": 0.05,
    "reason": (
        "REJECTED (slice regression): aggregate 0.900 → 0.860 (Δ=-0.040) is within"
        " ε=0.05, BUT slice 'intent=cancel' collapsed 0.900 → 0.300 (Δ=-0.600)"
    ),
    "timestamp": "2024-06-01T12:00:00+00:00",
    "per_query": [
        {"query_id": "c1", "score_baseline": 1.0, "score_candidate": 0.0, "delta": -1.0},
        {"query_id": "c2", "score_baseline": 1.0, "score_candidate": 0.0, "delta": -1.0},
        {"query_id": "ok", "score_baseline": 0.5, "score_candidate": 0.7, "delta": 0.2},
    ],
    "slice_attributions": [
        {
            "slice_tag": "intent=cancel", "n_total": 5, "n_regressed": 3,
            "score_baseline": 0.9, "score_candidate": 0.3, "delta": -0.6,
            "regressed_query_ids": ["c1", "c2", "c3"], "pattern": "cancel my subscription",
        },
        {
            "slice_tag": "intent=billing", "n_total": 8, "n_regressed": 0,
            "score_baseline": 0.9, "score_candidate": 0.92, "delta": 0.02,
            "regressed_query_ids": [], "pattern": None,
        },
    ],
    "malformed_slice_queries": 0,
    "suspected_duplicate_slices": [],
    "schema_version": 2,
}


def legacy_decision() -> GateDecision:
    return GateDecision.model_validate(LEGACY_054)


def evil_decision() -> GateDecision:
    driver = _driver(tag=EVIL, ids=[EVIL, "ok-id"])
    other = SliceAttribution(
        slice_tag="plain", n_total=10, n_regressed=1, score_baseline=0.9,
        score_candidate=0.88, delta=-0.02,
    )
    return rejected_decision(
        tenant_id=EVIL,
        candidate_id=EVIL,
        baseline_id=EVIL,
        reason=EVIL,
        reasons=[EVIL],
        slice_attributions=[driver, other],
        driver_slice_tag=EVIL,
        suspected_duplicate_slices=[[EVIL, "plain"]],
        duplicate_slice_details=[DuplicateSlices(tags=[EVIL, "plain"], reason=EVIL)],
        warnings=[GateWarning(code=EVIL, message=EVIL)],
        tool_version=EVIL,
    )


def _table_rows(md: str) -> list[str]:
    return [line for line in md.splitlines() if line.startswith("|")]


def _tables(md: str) -> list[list[str]]:
    """Each Markdown table of ``md``: its lines, header first."""
    out: list[list[str]] = []
    previous = False
    for line in md.splitlines():
        row = line.startswith("|")
        if row and not previous:
            out.append([])
        if row:
            out[-1].append(line)
        previous = row
    return out


def _slice_rows(md: str) -> list[str]:
    """The data rows of the slice tables (header and delimiter rows left out)."""
    return [r for t in _tables(md) if t[0].startswith("| slice |") for r in t[2:]]


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------


def test_environment_is_cached_and_strict():
    env = get_environment()
    assert env is get_environment()
    assert env.keep_trailing_newline
    assert template_dirs(), "templates/ must be found from a source checkout"
    for name in ("report.md.j2", "junit.xml.j2"):
        env.get_template(name)


def test_templates_ship_inside_the_package():
    import adaptergate.report

    assert template_dirs() == [Path(adaptergate.report.__file__).resolve().parent / "templates"]
    names = {p.name for p in template_dirs()[0].iterdir()}
    assert {"report.md.j2", "manifest.md.j2", "junit.xml.j2"} <= names


@pytest.mark.parametrize("fmt", ["human", "html", "", "JSON", "text"])
def test_unknown_format_is_usage_error(fmt):
    with pytest.raises(UsageError) as info:
        render(accepted_decision(), fmt)
    for valid in RENDER_FORMATS:
        assert valid in str(info.value)
    assert info.value.exit_code == 2


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [rejected_decision, accepted_decision, legacy_decision])
def test_json_round_trips(make):
    d = make()
    text = render(d, "json")
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert list(data) == list(GateDecision.model_fields)
    back = GateDecision.model_validate(data)
    # the JSON's warnings: the decision's, then those the human report prints (stale holdout …)
    assert back.warnings[:len(d.warnings)] == d.warnings
    assert back.model_copy(update={"warnings": d.warnings}) == d
    assert render(d, "json") == text


def test_json_never_emits_nan():
    d = accepted_decision(delta=math.nan, score_candidate=math.inf)
    text = render(d, "json")
    json.loads(text)  # strict parsers reject NaN
    assert "NaN" not in text and "Infinity" not in text


# --------------------------------------------------------------------------
# Markdown / pr-comment
# --------------------------------------------------------------------------


def test_markdown_rejected_content():
    md = render(rejected_decision(), "markdown")
    # the headline, then what broke, then which candidate, then the slices
    assert md.startswith(
        "## 🚫 adaptergate gate: **REJECTED**\n\n"
        "- **intent=refund** (driver, 68% of the drop): 12 of 14 queries scored lower (0.950 → 0.200).\n"
        "  - **Pattern**: “partial refund” in 9/12 failing vs 1/40 passing\n"
    )
    assert "<!--" not in md
    assert "Tenant **acme** · candidate **adapter-v8** vs baseline **adapter-v7** · score 0.924 → 0.353" in md
    assert "(Δ=-0.571, ε=0.02) on 200 queries" in md
    assert "adapter\\-v8" not in md
    assert "| slice | | Δ | regressed | verdict | share of drop |" in md
    # the statistics and the metadata: folded, after the slices, the warnings
    fold = md[md.index("<summary>Details"):]
    assert md.index("### Slice breakdown") < md.index("### ⚠️ Warnings") < md.index("<summary>Details")
    assert "- **Tenant**: acme" in fold and "- **Candidate**: adapter-v8 vs baseline adapter-v7" in fold
    assert "n=200" in fold and "14 regressed, 3 improved" in fold
    assert "aggregate drop exceeds ε=0.02" in fold
    assert "### 🎯 Driver slice: intent=refund" in fold
    assert "(Δ=-0.750, 12/14 regressed)" in fold and "68% of the drop" in fold
    assert md.count("**Pattern**") == 1  # under the driver's line, not again in the fold
    assert "q\\-refund" not in md
    assert "q-refund-00, q-refund-01, q-refund-02, q-refund-03, q-refund-04 and 7 more" in fold
    warnings = md[md.index("### ⚠️ Warnings"):md.index("<summary>Details")]
    assert "holdout is small" in warnings
    assert "2 held-out queries had a malformed" in warnings
    assert "intent=refund ↔ intent=refunds (plural form)" in warnings
    assert "45 days (threshold: 30)" in warnings
    assert md.count("<details>") == md.count("</details>")
    assert md.rstrip().endswith("</details>\n\n_Generated by adaptergate 1.0.0.dev0_")
    assert md.endswith("\n")


def test_markdown_slice_table_sorted_with_notes():
    md = render(rejected_decision(), "markdown")
    # 30 slices: the one that rejects first, 28 more (folded), 1 where no query changed in a line
    assert "Failed or not settled (1):" in md and "<summary>Show the other 28 slices</summary>" in md
    assert "_1 slice unchanged (no query changed): topic=t00._" in md
    rows = _slice_rows(md)
    assert len(rows) == 29
    first = _cells(rows[0])
    assert first[:2] == ["intent=refund", "🎯\xa0driver"] and first[4] == "rejects" and first[5] == "68%"
    deltas = [float(_cells(r)[2]) for r in rows[1:]]
    assert deltas == sorted(deltas)
    assert sum("below min size" in r for r in rows) == 2  # t09, t19
    # t03 is explained by the driver, but would not count against the candidate anyway
    assert "explained by driver" not in md
    for table in _tables(md):
        header = _unescaped_pipes(table[0])
        assert header <= 8 and all(_unescaped_pipes(r) == header for r in table)


def test_single_reason_not_repeated():
    d = rejected_decision(reason="REJECTED: only rule.", reasons=["only rule"])
    md = render(d, "markdown")
    assert "Rejected by" not in md and "only rule" in md
    out, _ = _human(d)
    assert "  • only rule" not in out
    md = render(rejected_decision(), "markdown")
    assert "- **Rejected by**:\n  - aggregate drop exceeds" in md


def test_markdown_accepted():
    md = render(accepted_decision(), "markdown")
    assert md.startswith("## ✅ adaptergate gate: **ACCEPTED**\n\n- No query regressed; 4 improved.\n")
    assert "Driver slice" not in md
    assert "Warnings" not in md
    assert "0.900 → 0.910 (Δ=+0.010, ε=0.02)" in md
    rows = _slice_rows(md)
    assert "intent=billing" in rows[0] and "intent=refund" in rows[1]
    assert "| slice | Δ | regressed | verdict |" in md  # no driver, no share of a drop: no such columns


def test_markdown_without_baseline():
    md = render(accepted_decision(baseline_id=None), "markdown")
    assert "vs baseline _(none)_" in md and "**adapter-v9** vs no baseline ·" in md
    out, _ = _human(accepted_decision(baseline_id=None))
    assert "Baseline:  (none)" in out
    root = _junit(accepted_decision(baseline_id=None))
    assert root.find("properties/property[@name='baseline']").get("value") == ""


def test_markdown_legacy_054_record():
    d = legacy_decision()
    assert d.driver_slice is not None
    md = render(d, "markdown")
    assert "REJECTED" in md
    assert "- **intent=cancel** (driver): 3 of 5 queries scored lower (0.900 → 0.300)." in md
    assert "### 🎯 Driver slice: intent=cancel" in md
    assert "**Pattern**: cancel my subscription" in md
    assert "c1, c2, c3" in md
    assert "share of drop" not in md and "of the drop" not in md  # 0.5.4 had no share_of_drop
    assert "2 regressed, 1 improved" in md
    assert md.rstrip().endswith("_Generated by adaptergate_")
    for fmt in RENDER_FORMATS:
        assert render(d, fmt)


def test_aggregate_failure_pattern_without_driver():
    fp = FailurePattern(failing_total=5, passing_total=50, summary="long invoices fail")
    md = render(rejected_decision(driver_slice_tag=None, slice_attributions=[], failure_pattern=fp), "markdown")
    assert "Driver slice" not in md
    assert "### Failure pattern" in md and "long invoices fail" in md
    # with a driver, the driver's pattern is shown instead
    md = render(rejected_decision(failure_pattern=fp), "markdown")
    assert "long invoices fail" not in md


def test_pr_comment_marker_and_details():
    d = rejected_decision()
    pr = render(d, "pr-comment")
    first = pr.splitlines()[0]
    assert first == report_marker("acme") == "<!-- adaptergate:report tenant=acme -->"
    assert pr.count("<details>") == pr.count("</details>") == 2
    # the slices beyond the one that rejects (29 rows > 15) sit inside a details block
    start = pr.index("<summary>Show the other 28 slices</summary>")
    end = pr.index("</details>", start)
    assert "| topic=t06 |" in pr[start:end] and "| intent=refund |" in pr[:start]
    # GitHub renders Markdown inside <details> only after a blank line
    assert re.search(r"</summary>\n\n", pr)
    # the markdown report has the same structure, without the marker
    assert render(d, "markdown") == pr.split("\n", 1)[1]
    # few slices: the statistics fold only
    assert render(accepted_decision(), "pr-comment").count("<details>") == 1


def test_pr_comment_long_failing_id_list_folded():
    ids = [f"id{i}" for i in range(40)]
    d = rejected_decision(slice_attributions=[_driver(ids=ids)])
    for fmt in ("pr-comment", "markdown"):
        md = render(d, fmt, show_failures=20)
        assert "<summary>Failing query IDs (20 of 40)</summary>" in md
        assert "- id19\n" in md and "id20" not in md
        assert "and 20 more" in md
        assert md.count("<details>") == md.count("</details>")


def test_pr_comment_marker_escapes_tenant():
    m = report_marker("a b-->c\n<x>")
    assert m.startswith("<!-- adaptergate:report tenant=") and m.endswith(" -->")
    inner = m[len("<!-- adaptergate:report tenant="):-len(" -->")]
    assert "-->" not in inner and "\n" not in inner and "<" not in inner and " " not in inner
    pr = render(evil_decision(), "pr-comment")
    assert pr.splitlines()[0] == report_marker(EVIL)
    assert pr.count("-->") == 1


def test_pr_comment_stays_under_github_limit():
    slices = [
        SliceAttribution(
            slice_tag="|" * 500 + str(i), n_total=5, n_regressed=1,
            score_baseline=0.9, score_candidate=0.8, delta=-0.1,
        )
        for i in range(1000)
    ]
    d = rejected_decision(slice_attributions=slices, driver_slice_tag=None)
    pr = render(d, "pr-comment")
    assert len(pr) <= 65_000
    assert "more slices" in pr
    assert len(render(d, "markdown")) > 65_000  # plain markdown is not cut


@pytest.mark.parametrize("fmt", ["markdown", "pr-comment"])
@pytest.mark.parametrize("n", [0, 1, 3, 5, 12])
def test_show_failures_honoured(fmt, n):
    md = render(rejected_decision(), fmt, show_failures=n)
    shown = [f"q-refund-{i:02d}" for i in range(12) if f"q-refund-{i:02d}" in md]
    assert shown == [f"q-refund-{i:02d}" for i in range(n)]
    if n == 0:
        assert "**Failing query IDs**: 12\n" in md
    elif n < 12:
        assert f"and {12 - n} more" in md
    else:
        assert "more" not in md.split("Failing query IDs")[1].split("\n")[0]


@pytest.mark.parametrize("fmt", ["markdown", "pr-comment"])
def test_staleness_threshold_honoured(fmt):
    d = rejected_decision(staleness_days=45)
    assert "45 days" in render(d, fmt, staleness_threshold_days=30)
    assert "45 days" in render(d, fmt, staleness_threshold_days=44)
    assert "45 days" not in render(d, fmt, staleness_threshold_days=45)
    assert "45 days" not in render(d, fmt, staleness_threshold_days=90)
    assert "days" not in render(rejected_decision(staleness_days=None), fmt)


# --------------------------------------------------------------------------
# Injection
# --------------------------------------------------------------------------


def _assert_inert_markdown(md: str) -> None:
    marker, _, body = md.partition("\n") if md.startswith("<!--") else ("", "", md)
    assert "<img" not in body.lower()
    # the only raw HTML we emit ourselves
    for tag in re.findall(r"<(/?[a-zA-Z][^ >]*)", body):
        assert tag in ("details", "/details", "summary", "/summary"), tag
    assert not re.search(r"@octocat", body)
    assert "**bold**" not in body
    assert "\n# heading" not in body and not re.search(r"^#\s*heading", body, re.M)
    assert "onerror=alert(1)" not in body or "&lt;img" in body
    for table in _tables(body):
        header = _unescaped_pipes(table[0])
        for row in table:
            assert _unescaped_pipes(row) == header, row


@pytest.mark.parametrize("fmt", ["markdown", "pr-comment"])
def test_injection_is_inert(fmt):
    md = render(evil_decision(), fmt)
    _assert_inert_markdown(md)
    assert "&lt;img src=x onerror=alert(1)&gt;" in md
    assert "@\u200boctocat" in md
    assert "&#124;" in md
    assert "\\*\\*bold\\*\\*" in md
    assert "\\# heading" in md
    # the failing id is listed, escaped
    assert md.count("&lt;img") >= 8


def test_injection_in_table_cells():
    md = render(evil_decision(), "markdown")
    [table] = _tables(md)
    assert len(table) == 4  # header, delimiter, the driver, "plain"
    assert all(_unescaped_pipes(r) == 7 for r in table)


def test_escape_markdown_unit():
    assert escape_markdown("a|b") == "a&#124;b"
    assert escape_markdown("<b>&") == "&lt;b&gt;&amp;"
    assert escape_markdown("x\r\ny\nz") == "x y z"
    assert escape_markdown("`code` [l](u) ![i](u) ~~s~~ _e_ \\ $m$") == (
        "\\`code\\` \\[l\\](u) \\!\\[i\\](u) \\~\\~s\\~\\~ \\_e\\_ \\\\ \\$m\\$"
    )
    assert escape_markdown("@octocat, mail a@b.c, lone @ sign") == (
        "@\u200boctocat, mail a@\u200bb.c, lone @ sign"
    )
    assert escape_markdown("x" * 500) == "x" * 200 + "…"
    assert escape_markdown("x" * 500, 10) == "x" * 10 + "…"
    assert escape_markdown(None) == ""
    assert escape_markdown(42) == "42"
    assert escape_markdown("a\u202eb\x00c") == "abc"
    # a value that starts a line cannot open a list or draw a rule
    assert escape_markdown("- - -") == "\\- - -"
    assert escape_markdown("1. x") == "1\\. x"
    assert escape_markdown("  + y ") == "\\+ y"
    assert escape_markdown("a-b 1. c") == "a-b 1. c"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_escape_markdown_never_leaks(text):
    out = escape_markdown(text)
    assert "<" not in out and ">" not in out and "\n" not in out and "\r" not in out
    assert not re.search(r"(?<!\\)\|", out)
    assert not re.search(r"@\w", out)
    # every special character is backslash-escaped or an entity
    stripped = re.sub(r"\\.", "", re.sub(r"&(amp|lt|gt|#124);", "", out))
    assert not re.search(r"[&`*_\[\]#~!$\\]", stripped)


@settings(max_examples=50, deadline=None)
@given(tag=st.text(min_size=1, max_size=80), qid=st.text(max_size=80))
def test_any_slice_tag_keeps_table_shape(tag, qid):
    driver = _driver(tag=tag, ids=[qid or "x"])
    other = SliceAttribution(
        slice_tag=tag + "2", n_total=3, n_regressed=0, score_baseline=0.5,
        score_candidate=0.5, delta=0.0,
    )
    d = rejected_decision(
        tenant_id=tag, slice_attributions=[driver, other], driver_slice_tag=tag
    )
    for fmt in ("markdown", "pr-comment"):
        md = render(d, fmt)
        [table] = _tables(md)
        assert len(table) == 3  # the driver; the unchanged slice is in the line below
        assert all(_unescaped_pipes(r) == 7 for r in table)
        assert "_1 slice unchanged (no query changed): " in md
    ET.fromstring(render(d, "junit").encode())


# --------------------------------------------------------------------------
# JUnit
# --------------------------------------------------------------------------


def _junit(d: GateDecision) -> ET.Element:
    text = render(d, "junit")
    assert text.startswith("<?xml")
    return ET.fromstring(text.encode("utf-8"))


def _cases(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in root.iter("testcase")}


def test_junit_rejected():
    d = rejected_decision()
    root = _junit(d)
    assert root.tag == "testsuite" and root.get("name") == "adaptergate"
    cases = _cases(root)
    assert int(root.get("tests")) == len(cases) == 31
    failures = [n for n, c in cases.items() if c.find("failure") is not None]
    skipped = [n for n, c in cases.items() if c.find("skipped") is not None]
    assert sorted(failures) == ["aggregate", "slice:intent=refund"]
    assert int(root.get("failures")) == 2
    assert int(root.get("skipped")) == len(skipped) == 2
    for n in skipped:
        assert cases[n].find("skipped").get("message") == "below slice-min-size"
    assert all(c.get("classname") == "adaptergate.acme" for c in cases.values())
    body = cases["slice:intent=refund"].find("failure").text
    assert "q-refund-00" in body


def test_junit_accepted():
    root = _junit(accepted_decision())
    assert root.get("failures") == "0"
    assert all(c.find("failure") is None for c in root.iter("testcase"))


def test_junit_slice_only_rejection_keeps_aggregate_green():
    d = legacy_decision()
    d = d.model_copy(
        update={
            "slice_attributions": [
                d.slice_attributions[0].model_copy(update={"violates": True}),
                d.slice_attributions[1],
            ]
        }
    )
    cases = _cases(_junit(d))
    assert cases["aggregate"].find("failure") is None  # Δ=-0.04 within ε=0.05
    assert cases["slice:intent=cancel"].find("failure") is not None


def test_junit_rejected_without_violating_slice_fails_aggregate():
    # 0.5.4 records carry no `violates`: the rejection is the aggregate's
    cases = _cases(_junit(legacy_decision()))
    assert cases["aggregate"].find("failure") is not None
    assert all(c.find("failure") is None for n, c in cases.items() if n != "aggregate")


def test_junit_strict_rejection_fails_aggregate():
    d = rejected_decision(
        delta=-0.01,
        reason="REJECTED (strict mode): a previously passing query now fails",
        reasons=["strict mode: 3 queries that passed now fail"],
    )
    agg = _cases(_junit(d))["aggregate"].find("failure")
    assert agg is not None and agg.get("type") == "strict"
    assert agg.get("message") == "strict mode: 3 queries that passed now fail"
    # "strict" inside a slice tag is not the strict rule
    d = rejected_decision(
        delta=-0.01,
        reason="REJECTED (slice regression): slice 'strict-policy' drops",
        reasons=["slice 'strict-policy' drops more than slice_ε=0.1"],
    )
    assert _cases(_junit(d))["aggregate"].find("failure") is None


def test_junit_escapes_user_text():
    nasty = 'a<b>&"c\'\x00\x1b\ufffe\nd'
    d = rejected_decision(
        tenant_id=nasty,
        reason=nasty,
        reasons=[nasty, "slice rule"],
        slice_attributions=[_driver(tag=nasty, ids=[nasty])],
        driver_slice_tag=nasty,
    )
    text = render(d, "junit")
    assert "\x00" not in text and "\x1b" not in text and "\ufffe" not in text
    assert 'name="slice:a&lt;b&gt;&amp;&#34;c&#39; d"' in text
    root = ET.fromstring(text.encode())
    cases = list(root.iter("testcase"))
    assert cases[0].get("classname") == "adaptergate.a<b>&\"c' d"
    assert cases[1].get("name") == "slice:a<b>&\"c' d"
    assert cases[0].find("failure").get("message") == "a<b>&\"c' d"
    assert "a<b>&\"c'\nd" in cases[0].find("failure").text
    assert "a<b>&\"c'\nd" in cases[1].find("failure").text
    # evil decision parses as well
    ET.fromstring(render(evil_decision(), "junit").encode())


# --------------------------------------------------------------------------
# Human
# --------------------------------------------------------------------------


def _human(d: GateDecision, **kw) -> tuple[str, str]:
    out = Console(record=True, width=120, force_terminal=False, color_system=None)
    err = Console(record=True, width=120, force_terminal=False, color_system=None)
    print_human(d, console=out, err_console=err, **kw)
    return out.export_text(), err.export_text()


def test_human_rejected():
    out, err = _human(rejected_decision())
    assert "REJECTED" in out.splitlines()[0]
    for line in (
        "Tenant:    acme",
        "Candidate: adapter-v8",
        "Baseline:  adapter-v7",
        "Score:     0.924 → 0.353  (Δ=-0.571, ε=0.02)",
        "Held-out:  n=200",
        "Reason:    REJECTED: aggregate drop exceeds ε=0.02",
        "DRIVER SLICE: intent=refund   0.950 → 0.200  (Δ=-0.750, 12/14 regressed, 68% of the drop)",
        "Pattern: “partial refund” in 9/12 failing vs 1/40 passing",
        "Failing query IDs: q-refund-00, q-refund-01, q-refund-02, q-refund-03, q-refund-04 + 7 more",
        "Slice breakdown (most-regressed first):",
        "14 unique queries regressed",
        "3 unique queries improved",
    ):
        assert line in out, line
    # what broke comes right under the verdict, as in the Markdown reports
    assert out.splitlines()[1] == (
        "  • intent=refund (driver, 68% of the drop): 12 of 14 queries scored lower (0.950 → 0.200)."
    )
    assert "rejects" in out and "below min size" in out
    assert "explained by driver" not in out  # t03: it would not count against the candidate anyway
    # a table: every row's columns start where the header's do
    table = out[out.index("Slice breakdown"):].splitlines()[1:]
    header = table[0]
    starts = [header.index(h) for h in ("Δ", "regressed", "verdict")]
    for row in table[2:31]:
        assert row[starts[0] - 1] == " " and row[starts[0]] in "+-", row
    assert "1 slice unchanged (no query changed): topic=t00" in out
    # warnings on stderr only
    assert "Warning" not in out
    assert "holdout is small" in err
    assert "malformed 'slices' field" in err
    assert "intent=refund  ↔  intent=refunds" in err
    assert "45 days (threshold: 30)" in err


def test_human_thresholds_and_failures():
    out, err = _human(rejected_decision(), show_failures=2, staleness_threshold_days=60)
    assert "q-refund-00, q-refund-01 + 10 more" in out
    assert "days" not in err


def test_human_accepted_and_legacy():
    out, err = _human(accepted_decision())
    assert "ACCEPTED" in out.splitlines()[0]
    assert "DRIVER SLICE" not in out and err == ""
    out, _ = _human(legacy_decision())
    assert "DRIVER SLICE: intent=cancel" in out
    assert "Pattern: cancel my subscription" in out
    assert "2 unique queries regressed" in out


def test_human_markup_is_literal():
    tag = "[bold]x[/bold] [red]y :warning: \x1b[31mz"
    d = rejected_decision(
        tenant_id="[link=http://evil]t[/link]",
        slice_attributions=[_driver(tag=tag), *_other_slices(2)],
        driver_slice_tag=tag,
        warnings=[GateWarning(code="c", message="[blink]w")],
    )
    out, err = _human(d)
    assert "Tenant:    [link=http://evil]t[/link]" in out
    assert "[bold]x[/bold] [red]y :warning: \\x1b[31mz" in out
    assert "\x1b" not in out
    assert "[blink]w" in err


# --------------------------------------------------------------------------
# Statistical rule (decision_rule == "stat"), from real gate runs
# --------------------------------------------------------------------------

from adaptergate.pipeline.gate import GateRequest, run_gate  # noqa: E402
from adaptergate.models import Evidence, NoiseFloor  # noqa: E402
from adaptergate.report import STAT_LIST_LIMIT  # noqa: E402
from adaptergate.scoring.scorers import Scorer  # noqa: E402
from adaptergate.decide.wording import power_statement  # noqa: E402


def _stat_gate(tmp_path, rows, candidate, baseline=lambda q: 1.0, **cfg) -> GateDecision:
    """Run the real gate on ``rows`` (written to tmp_path) with an in-process scorer."""
    path = tmp_path / "holdout.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    fns = {"cand": candidate, "base": baseline}
    cfg.setdefault("min_holdout_size", 10)
    decision = run_gate(
        GateRequest(
            tenant="acme", candidate="cand", baseline="base", holdout_path=path,
            scorer_spec="t:s", config=GateConfig(**cfg),
        ),
        scorer=Scorer(spec="t:s", single=lambda adapter, q: fns[adapter](q)),
    )
    assert decision.decision_rule == "stat" and decision.evidence is not None
    return decision


def _rows(spec: dict[str, int]) -> list[dict]:
    """``{"intent=a": 3, ...}`` -> that many queries per slice, ids ``a0, a1, ...``."""
    out = []
    for tag, n in spec.items():
        short = tag.split("=", 1)[-1]
        out += [
            {"id": f"{short}{i}", "prompt": f"q {short} {i}", "slices": [tag]} for i in range(n)
        ]
    return out


@pytest.fixture
def stat_fail(tmp_path) -> GateDecision:
    """12 refund queries break (1 -> 0); 28 others hold: FAIL, aggregate and slice."""
    rows = _rows({"intent=refund": 12, "intent=other": 28})
    d = _stat_gate(
        tmp_path, rows, lambda q: 0.0 if q["id"].startswith("refund") else 1.0, slice_epsilon=0.1
    )
    assert d.verdict == "FAIL" and not d.accepted and d.evidence.verdict == "FAIL"
    return d


@pytest.fixture
def stat_pass(tmp_path) -> GateDecision:
    """Nothing breaks, a few queries improve: PASS."""
    rows = _rows({"intent=a": 60, "intent=b": 60})
    d = _stat_gate(
        tmp_path, rows, lambda q: 1.0, baseline=lambda q: 0.0 if q["id"] in ("a1", "b2") else 1.0,
        slice_epsilon=0.1,
    )
    assert d.verdict == "PASS" and d.accepted and d.evidence.verdict == "PASS"
    return d


@pytest.fixture
def stat_inconclusive(tmp_path) -> GateDecision:
    """Tiny holdout, small drop: 2 of 3 'tiny' queries break. Aggregate INCONCLUSIVE;
    the tiny slice can never reach significance at its size."""
    rows = _rows({"intent=tiny": 3, "intent=main": 37})
    d = _stat_gate(
        tmp_path, rows, lambda q: 0.0 if q["id"] in ("tiny0", "tiny1") else 1.0, slice_epsilon=0.1
    )
    assert d.verdict == "INCONCLUSIVE" and d.accepted
    tiny = next(s for s in d.slice_attributions if s.slice_tag == "intent=tiny")
    assert tiny.evidence.verdict == "INCONCLUSIVE" and tiny.evidence.never_significant
    return d


NOISY = [-0.2, 0.08, -0.16, 0.04, -0.18, 0.06, -0.12, 0.0]


@pytest.fixture
def stat_unsettled(tmp_path) -> GateDecision:
    """Continuous scores: one slice drops beyond slice ε without significance; policy reject."""
    rows = _rows({"intent=noisy": 8, "intent=steady": 22})
    d = _stat_gate(
        tmp_path, rows,
        lambda q: 0.8 + (NOISY[int(q["id"][5:])] if q["id"].startswith("noisy") else 0.0),
        baseline=lambda q: 0.8, slice_epsilon=0.05, on_inconclusive="reject",
    )
    assert d.verdict == "INCONCLUSIVE" and not d.accepted
    noisy = next(s for s in d.slice_attributions if s.slice_tag == "intent=noisy")
    assert noisy.evidence.verdict == "INCONCLUSIVE" and noisy.evidence.n_needed
    return d


def _wide_human(d: GateDecision, **kw) -> tuple[str, str]:
    """Human output on a console wide enough that no sentence wraps."""
    out = Console(record=True, width=2000, force_terminal=False, color_system=None)
    err = Console(record=True, width=2000, force_terminal=False, color_system=None)
    print_human(d, console=out, err_console=err, **kw)
    return out.export_text(), err.export_text()


def _sentences(d: GateDecision) -> list[str]:
    """Every sentence a stat decision carries."""
    out = [d.reason, *d.reasons, d.evidence.statement, power_statement(d.evidence, d.holdout_size)]
    out += [s.evidence.statement for s in d.slice_attributions if s.evidence is not None]
    return [s for s in dict.fromkeys(out) if s]


def _interval(ev: Evidence) -> str:
    return f"{ev.lower:+.3f} to {ev.upper:+.3f}"


# ---- headlines -------------------------------------------------------------


def test_stat_headlines(stat_fail, stat_pass, stat_inconclusive, stat_unsettled):
    cases = [
        (stat_fail, "REJECTED — FAIL", "## 🚫 adaptergate gate: **REJECTED · FAIL**\n"),
        (stat_pass, "ACCEPTED — PASS", "## ✅ adaptergate gate: **ACCEPTED · PASS**\n"),
        (
            stat_inconclusive,  # and 2 of its 3 tiny queries broke: the headline names that slice
            "ACCEPTED — INCONCLUSIVE (policy: accept) — intent=tiny collapsed",
            "## ⚠️ adaptergate gate: **ACCEPTED · INCONCLUSIVE** (policy: accept) — intent=tiny collapsed\n",
        ),
        (
            stat_unsettled,
            "REJECTED — INCONCLUSIVE (policy: reject)",
            "## 🚫 adaptergate gate: **REJECTED · INCONCLUSIVE** (policy: reject)\n",
        ),
    ]
    for d, rule, header in cases:
        out, _ = _wide_human(d)
        assert rule in out.splitlines()[0]
        for fmt in ("markdown", "pr-comment"):
            md = render(d, fmt)
            body = md.split("\n", 1)[1] if fmt == "pr-comment" else md
            assert body.startswith(header), body[:120]


def test_threshold_decision_from_real_run_keeps_its_look(tmp_path):
    rows = _rows({"intent=refund": 12, "intent=other": 28})
    path = tmp_path / "holdout.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    d = run_gate(
        GateRequest(
            tenant="acme", candidate="cand", baseline="base", holdout_path=path, scorer_spec="t:s",
            config=GateConfig(decision="threshold", slice_epsilon=0.1, min_holdout_size=10),
        ),
        scorer=Scorer(
            spec="t:s",
            single=lambda a, q: 0.0 if a == "cand" and q["id"].startswith("refund") else 1.0,
        ),
    )
    assert d.decision_rule == "threshold" and d.evidence is None
    md = render(d, "markdown")
    assert md.startswith("## 🚫 adaptergate gate: **REJECTED**\n")
    assert "### Evidence" not in md and "· FAIL" not in md
    assert "| slice | | Δ | regressed | verdict | share of drop |" in md
    assert "| intent=refund | 🎯\xa0driver | -1.000 | 12/12 | rejects | 100% |" in md
    assert "- **Rejected by**:" in md
    out, _ = _human(d)
    assert out.splitlines()[0].strip("─ ") == "REJECTED"
    assert "Evidence:" not in out and "Slice breakdown (most-regressed first):" in out
    cases = _cases(_junit(d))
    assert cases["aggregate"].find("failure").get("type") == "aggregate"
    assert cases["slice:intent=refund"].find("failure").get("type") == "slice"


# ---- evidence block ----------------------------------------------------------


def test_stat_evidence_block(stat_fail):
    d = stat_fail
    ev = d.evidence
    power = power_statement(ev, d.holdout_size)
    assert power
    out, _ = _wide_human(d)
    assert f"Evidence:  {ev.statement}" in out
    assert f"Power:     {power}" in out
    assert "Rule:      statistical: ε=0.02, slice ε=0.1 (slices of ≥ 3 queries), α=0.05," in (
        out
    )
    assert "multiplicity holm, INCONCLUSIVE → accept" in out
    md = render(d, "markdown")
    assert "### Evidence" in md
    assert f"- **Aggregate**: {escape_markdown(ev.statement, 1000)}" in md
    assert f"- **Power**: {power}" in md
    assert "- **Rule**: statistical: ε=0.02, slice ε=0.1" in md
    assert "INCONCLUSIVE → accept" in md
    # the aggregate interval and the test, as numbers
    assert f"95% interval {ev.lower:+.3f} to {ev.upper:+.3f}" in md


def test_stat_noise_line(stat_pass):
    noise = NoiseFloor(
        repeats=3, per_query_sd=0.01, null_delta=0.0, null_lower=-0.004, null_upper=0.004,
        deterministic=False, statement="Scorer noise: rescoring the baseline moves it by ±0.004.",
    )
    d = stat_pass.model_copy(update={"noise": noise})
    out, _ = _wide_human(d)
    assert "Noise:     Scorer noise: rescoring the baseline moves it by ±0.004." in out
    assert "- **Scorer noise**: Scorer noise: rescoring" in render(d, "markdown")
    assert "Noise:" not in _wide_human(stat_pass)[0]
    assert "Scorer noise" not in render(stat_pass, "markdown")


def test_stat_pass_prints_its_statement_once(stat_pass):
    d = stat_pass
    body = d.evidence.statement.removeprefix("PASS: ")
    assert body in d.reason  # gate.py's PASS headline is the statement itself
    out, _ = _wide_human(d)
    assert out.count(body) == 1
    md = render(d, "markdown")
    assert md.count(escape_markdown(body, 1000)) == 1
    assert "Failed" not in md and "Not settled" not in md


# ---- no sentence twice -------------------------------------------------------


@pytest.mark.parametrize("name", ["stat_fail", "stat_pass", "stat_inconclusive", "stat_unsettled"])
def test_stat_no_sentence_printed_twice(name, request):
    d = request.getfixturevalue(name)
    out, _ = _wide_human(d)
    md = render(d, "markdown")
    for sentence in _sentences(d):
        assert out.count(sentence) <= 1, sentence
        assert md.count(escape_markdown(sentence, 1000)) <= 1, sentence
    # and no line of the human report is printed twice
    lines = [line.strip() for line in out.splitlines() if len(line.strip()) > 40]
    assert len(lines) == len(set(lines))
    # the headline and every rule line appear once
    if d.reason and d.evidence.statement.partition(": ")[2] not in d.reason:
        assert out.count(d.reason) == 1
    for r in d.reasons:
        assert out.count(r) == 1, r


def test_stat_fail_lists_failing_rules_once(stat_fail):
    d = stat_fail
    refund = next(s for s in d.slice_attributions if s.slice_tag == "intent=refund")
    out, _ = _wide_human(d)
    assert f"Reason:    {d.reason}" in out
    assert "Failed:\n  • " + refund.evidence.statement in out
    md = render(d, "markdown")
    assert "- **Failed**:\n  - " + escape_markdown(refund.evidence.statement, 1000) in md
    assert "Rejected by" not in md


# ---- slice table -------------------------------------------------------------


def test_stat_slice_table_columns(stat_fail):
    d = stat_fail
    refund = next(s for s in d.slice_attributions if s.slice_tag == "intent=refund")
    md = render(d, "markdown")
    [table] = [t for t in _tables(md) if t[0].startswith("| slice |")]
    # slice first, the driver in its own cell, Δ and its interval in one cell that does not wrap
    assert table[0] == "| slice | | Δ (90% interval) | regressed | verdict |"
    assert all(_unescaped_pipes(r) == 6 for r in table)
    cells = _cells(table[2])
    assert cells[0] == "intent=refund" and cells[1] == "🎯\xa0driver"
    assert cells[2] == f"-1.000 ({_interval(refund.evidence)})".replace(" ", "\xa0")
    assert cells[3] == "12/12" and cells[4] == "FAIL"  # FAIL is in the verdict column: no "rejects" note
    # intent=other: no query changed, one line instead of a row that reads like a test result
    assert len(table) == 3 and "_1 slice unchanged (no query changed): intent=other._" in md
    # the p-values are in the folded statistics
    assert "adjusted 0.0001" in md[md.index("<details>"):]
    out, _ = _wide_human(d)
    line = next(x for x in out.splitlines() if "intent=refund   ← driver" in x)
    assert _interval(refund.evidence) in line and "FAIL" in line and "rejects" not in line
    assert (
        "Slice breakdown (most-regressed first; 90% interval, one-sided p, p adjusted by holm):"
        in out
    )
    assert "1 slice unchanged (no query changed): intent=other" in out


def test_stat_p_values_are_compact():
    from adaptergate.report.numbers import fmt_p as _fmt_p

    assert _fmt_p(3e-7) == "<0.0001"
    assert _fmt_p(0.00031) == "0.0003"
    assert _fmt_p(0.0342) == "0.034"
    assert _fmt_p(1.0) == "1.000"
    assert _fmt_p(math.nan) == "n/a"


def test_stat_too_small_slice(stat_inconclusive):
    d = stat_inconclusive
    tiny = next(s for s in d.slice_attributions if s.slice_tag == "intent=tiny")
    note = f"too small (needs ≥ {tiny.evidence.min_size})"
    md = render(d, "markdown")
    row = next(r for r in _slice_rows(md) if "intent=tiny" in r)
    assert note in row and _interval(tiny.evidence) in row.replace("\xa0", " ")
    # what broke says it, in words
    assert (f"- **intent=tiny** (driver, 100% of the drop): 2 of 3 queries that passed now fail (1.000 → 0.333);"
            f" too small to block on its own (a test needs ≥ {tiny.evidence.min_size} queries).") in md
    out, _ = _wide_human(d)
    line = next(x for x in out.splitlines() if "intent=tiny   ← driver" in x)
    assert note in line
    # the Not settled list says it can never get there at this size
    assert "too small to ever reach significance" in tiny.evidence.statement
    head = "Not settled (drop beyond slice ε, evidence inconclusive):\n  • "
    assert head + tiny.evidence.statement in out
    assert "### ⏳ Not settled\n\n- " + escape_markdown(tiny.evidence.statement, 1000) in md


def test_stat_inconclusive_says_what_would_settle_it(stat_inconclusive, stat_unsettled):
    for d in (stat_inconclusive, stat_unsettled):
        ev = d.evidence
        assert ev.verdict == "INCONCLUSIVE" and ev.n_needed
        more = ev.n_needed - d.holdout_size
        sentence = f"About {ev.n_needed:,} queries ({more:,} more) would settle it"
        assert sentence in ev.statement
        out, _ = _wide_human(d)
        assert out.count(sentence) == 1
        assert render(d, "markdown").count(sentence) == 1
    noisy = next(s for s in stat_unsettled.slice_attributions if s.slice_tag == "intent=noisy")
    settle = f"About {noisy.evidence.n_needed:,} queries"
    out, _ = _wide_human(stat_unsettled)
    assert f"  • {noisy.evidence.statement}" in out and settle in out
    md = render(stat_unsettled, "markdown")
    assert "### ⏳ Not settled" in md and settle in md
    assert "Reason:    REJECTED (INCONCLUSIVE)" in out
    assert "Policy --on-inconclusive reject: blocked." in out


def test_stat_without_slice_epsilon_has_no_slice_verdicts(tmp_path):
    rows = _rows({"intent=a": 20, "intent=b": 20})
    d = _stat_gate(tmp_path, rows, lambda q: 0.0 if q["id"] == "a0" else 1.0)
    md = render(d, "markdown")
    [table] = [t for t in _tables(md) if t[0].startswith("| slice |")]
    assert table[0] == "| slice | | Δ (90% interval) | regressed | p |"
    assert "slice ε off" in md and "multiplicity" not in md and "Not settled" not in md
    out, _ = _wide_human(d)
    assert "slices are not gated without --slice-epsilon" in out and "adj" not in out
    cases = _cases(_junit(d))
    assert all(c.find("skipped") is None for n, c in cases.items() if n != "aggregate")


def _many_slices(d: GateDecision, n: int) -> GateDecision:
    """``d`` plus ``n`` passing copies of its best slice under new tags (each with a query that improved)."""
    best = max(d.slice_attributions, key=lambda s: s.delta)
    extra = [
        best.model_copy(update={
            "slice_tag": f"topic=t{i:03d}", "delta": 0.01,
            "evidence": best.evidence.model_copy(update={"statement": f"topic=t{i:03d}: fine."}),
        })
        for i in range(n)
    ]
    return d.model_copy(update={"slice_attributions": [*extra, *d.slice_attributions]})


@pytest.mark.parametrize("fmt", ["markdown", "pr-comment"])
def test_stat_many_slices_show_fail_and_unsettled_first(stat_unsettled, stat_fail, fmt):
    d = _many_slices(stat_unsettled, 20)
    md = render(d, fmt)
    noisy_at = md.index("| intent=noisy |")
    assert "Failed or not settled (1):" in md
    # markdown and pr-comment alike: a fold for the other slices, one for the statistics
    assert md.count("<details>") == md.count("</details>") == 2
    folded = md.index("<summary>Show the other 20 slices</summary>")
    assert noisy_at < folded  # visible
    assert md.index("| topic=t000 |") > folded
    for table in _tables(md):
        assert all(_unescaped_pipes(r) == _unescaped_pipes(table[0]) <= 8 for r in table)
    assert sum("| intent=noisy |" in r for r in _slice_rows(md)) == 1  # listed once
    assert "_1 slice unchanged (no query changed): intent=steady._" in md
    d = _many_slices(stat_fail, 20)
    md = render(d, fmt)
    assert "Failed or not settled (1):" in md
    assert md.index("| intent=refund |") < md.index("| topic=t000 |")


def test_stat_few_slices_one_table(stat_unsettled):
    pr = render(stat_unsettled, "pr-comment")
    assert "slices</summary>" not in pr and "Failed or not settled" not in pr


def test_stat_pr_comment_stays_under_github_limit(stat_fail):
    refund = next(s for s in stat_fail.slice_attributions if s.slice_tag == "intent=refund")
    slices = [
        refund.model_copy(update={
            "slice_tag": "|" * 400 + str(i),
            "evidence": refund.evidence.model_copy(update={"statement": "|" * 900 + str(i)}),
        })
        for i in range(1000)
    ]
    reasons = [stat_fail.reasons[0], *(s.evidence.statement for s in slices)]
    d = stat_fail.model_copy(
        update={"slice_attributions": slices, "driver_slice_tag": None, "reasons": reasons}
    )
    pr = render(d, "pr-comment")
    assert len(pr) <= 65_000
    assert "more slices" in pr
    assert f"… and {1000 - STAT_LIST_LIMIT} more (see the slice breakdown)" in pr
    # what broke: fewer lines to make room, then a count
    assert re.search(r"\n- … and \d+ more slices \(see the slice table\)\.\n", pr)
    out, _ = _wide_human(d)
    failed = out[out.index("Failed:"):]
    assert failed.count("  • ") == STAT_LIST_LIMIT
    assert out[:out.index("Failed:")].count("  • ") == 6  # 5 slices that broke, then a count


# ---- junit -------------------------------------------------------------------


def test_stat_junit_fail(stat_fail):
    root = _junit(stat_fail)
    cases = _cases(root)
    agg = cases["aggregate"].find("failure")
    assert agg is not None and agg.get("type") == "aggregate"
    assert agg.get("message") == stat_fail.evidence.statement
    assert cases["slice:intent=refund"].find("failure") is not None
    assert cases["slice:intent=other"].find("failure") is None
    assert root.get("failures") == "2"
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["verdict"] == "REJECTED" and props["stat_verdict"] == "FAIL"
    assert props["decision_rule"] == "stat" and props["on_inconclusive"] == "accept"
    # slice statements belong to their testcases, not to the aggregate's text
    refund = next(s for s in stat_fail.slice_attributions if s.slice_tag == "intent=refund")
    assert refund.evidence.statement not in agg.text
    assert cases["slice:intent=refund"].find("failure").get("message") == refund.evidence.statement


def test_stat_junit_pass(stat_pass):
    root = _junit(stat_pass)
    assert root.get("failures") == "0" and root.get("skipped") == "0"
    for c in root.iter("testcase"):
        assert c.find("failure") is None and c.find("skipped") is None


def test_stat_junit_inconclusive_accept_is_skipped(stat_inconclusive):
    d = stat_inconclusive
    root = _junit(d)
    cases = _cases(root)
    assert root.get("failures") == "0"
    agg = cases["aggregate"].find("skipped")
    assert agg is not None and agg.get("message").startswith("INCONCLUSIVE: ")
    assert "would settle it" in agg.get("message")
    tiny = cases["slice:intent=tiny"].find("skipped")
    assert tiny is not None and tiny.get("message").startswith("INCONCLUSIVE: intent=tiny")
    assert "too small to ever reach significance" in tiny.get("message")
    assert int(root.get("skipped")) == len(root.findall(".//skipped")) == 2


def test_stat_junit_inconclusive_reject_fails_aggregate(stat_unsettled, stat_inconclusive):
    root = _junit(stat_unsettled)
    cases = _cases(root)
    agg = cases["aggregate"].find("failure")
    assert agg is not None and agg.get("type") == "inconclusive"
    assert cases["slice:intent=noisy"].find("skipped").get("message").startswith("INCONCLUSIVE: ")
    assert root.get("failures") == "1" and root.get("skipped") == "1"
    # the same evidence under policy accept: nothing fails
    d = stat_unsettled.model_copy(update={
        "accepted": True,
        "config": stat_unsettled.config.model_copy(update={"on_inconclusive": "accept"}),
    })
    assert _junit(d).get("failures") == "0"
    # aggregate PASS but a slice leaves the whole INCONCLUSIVE under policy reject:
    # the exit code is 1, so the aggregate testcase says why
    d = stat_inconclusive.model_copy(update={
        "accepted": False,
        "evidence": stat_inconclusive.evidence.model_copy(update={"verdict": "PASS"}),
        "config": stat_inconclusive.config.model_copy(update={"on_inconclusive": "reject"}),
    })
    agg = _cases(_junit(d))["aggregate"].find("failure")
    assert agg is not None and agg.get("type") == "inconclusive"


def test_stat_junit_strict(tmp_path):
    rows = _rows({"intent=a": 20, "intent=b": 20})
    d = _stat_gate(
        tmp_path, rows, lambda q: 0.0 if q["id"] == "a3" else 1.0, slice_epsilon=0.1, strict=True
    )
    assert d.verdict == "FAIL" and d.evidence.verdict != "FAIL"
    agg = _cases(_junit(d))["aggregate"].find("failure")
    assert agg is not None and agg.get("type") == "strict"
    assert agg.get("message").startswith("strict mode: 1 query")
    out, _ = _wide_human(d)
    assert "Failed:\n  • strict mode: 1 query" in out


# ---- escaping ----------------------------------------------------------------


def _breaks_e(q: dict) -> float:
    return 0.0 if q["id"].startswith("e") else 1.0


def test_stat_user_text_is_inert(tmp_path):
    rows = [{"id": f"e{i}", "prompt": "x", "slices": [EVIL.replace("\n", " ")]} for i in range(12)]
    rows += [{"id": f"o{i}", "prompt": "y", "slices": ["plain"]} for i in range(28)]
    d = _stat_gate(tmp_path, rows, _breaks_e, slice_epsilon=0.1)
    assert d.verdict == "FAIL"
    for fmt in ("markdown", "pr-comment"):
        md = render(d, fmt)
        _assert_inert_markdown(md)
        assert "&lt;img src=x onerror=alert(1)&gt;" in md
    root = _junit(d)
    names = [c.get("name") for c in root.iter("testcase")]
    assert "slice:" + EVIL.replace("\n", " ") in names
    tag = "[bold]x[/bold] [red]y \x1b[31mz"
    rows = [{"id": f"e{i}", "prompt": "x", "slices": [tag]} for i in range(12)]
    rows += [{"id": f"o{i}", "prompt": "y", "slices": ["plain"]} for i in range(28)]
    d = _stat_gate(tmp_path, rows, _breaks_e, slice_epsilon=0.1)
    out, _ = _wide_human(d)
    assert "\x1b" not in out
    assert "[bold]x[/bold] [red]y \\x1b[31mz: Δ=-1.000" in out  # the statement, literally


# --------------------------------------------------------------------------
# Failing examples (prompt, gold, both answers, word diff)
# --------------------------------------------------------------------------


def test_examples_are_the_worst_driver_queries_and_render_inert(tmp_path):
    rows = _rows({"intent=refund": 12, "intent=other": 28})
    rows[0]["prompt"] = EVIL + " and more" * 10  # longer than the table shows: in full in the fold
    rows[0]["gold"] = "start refund @team"
    drops = {f"refund{i}": 0.05 * i for i in range(12)}  # refund0 is the worst
    d = _stat_gate(tmp_path, rows, lambda q: drops.get(q["id"], 1.0), slice_epsilon=0.1)
    assert d.driver_slice_tag == "intent=refund"
    assert [e.query_id for e in d.examples] == ["refund0", "refund1", "refund2", "refund3", "refund4"]
    assert d.examples[0].line == 1 and d.examples[0].prompt == rows[0]["prompt"]
    d.examples[0].baseline_output = "start refund <b>now</b>"
    d.examples[0].candidate_output = "cancel order | @octocat"
    for fmt in ("markdown", "pr-comment"):
        md = render(d, fmt)
        assert "<img" not in md and "<b>" not in md and "@octocat" not in md and "@team" not in md
        assert "~~start refund &lt;b&gt;now&lt;/b&gt;~~ **cancel order &#124; @\u200boctocat**" in md
        assert "refund0" in md and "(line 1)" in md
        # the worst of them, open, in a table: query | prompt | expected | baseline | candidate
        table = next(t for t in _tables(md) if t[0].startswith("| query |"))
        assert table[0] == "| query | prompt | expected | baseline | candidate |"
        assert _cells(table[2]) == [
            "refund0", escape_markdown(rows[0]["prompt"], 80), "start refund @\u200bteam",
            "start refund &lt;b&gt;now&lt;/b&gt;",
            "**cancel order &#124; @\u200boctocat**",
        ]
        assert all(_unescaped_pipes(r) == 6 for r in table) and len(table) == 2 + 5
        assert md.index("| refund0 |") < md.index("### Slice breakdown") < md.index("<details>")
        # in full (prompt, both answers, a word diff) in the fold
        assert "### Failing queries (5, worst first)" in md[md.index("<details>"):]
    # the audit record keeps them (a few kilobytes)
    assert d.compact().examples == d.examples
