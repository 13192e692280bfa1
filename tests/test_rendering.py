"""Reports of a GateDecision: json, markdown, pr-comment, junit and human."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

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
from adaptergate.rendering import (
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


def test_templates_found_in_installed_wheel_layout(tmp_path, monkeypatch):
    import shutil

    import adaptergate

    pkg = tmp_path / "site-packages" / "adaptergate"
    shutil.copytree(template_dirs()[0], pkg / "templates")
    (pkg / "__init__.py").write_text("")
    monkeypatch.setattr(adaptergate, "__file__", str(pkg / "__init__.py"))
    get_environment.cache_clear()
    try:
        assert template_dirs() == [(pkg / "templates").resolve()]
        assert render(accepted_decision(), "markdown").startswith("## ✅")
    finally:
        monkeypatch.undo()
        get_environment.cache_clear()
    assert template_dirs() and get_environment() is get_environment()


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
    assert GateDecision.model_validate(data) == d
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
    assert md.startswith("## 🚫 adaptergate gate: **REJECTED**")
    assert "<!--" not in md and "<details>" not in md
    assert "- **Tenant**: acme" in md
    assert "adapter\\-v8" not in md and "adapter-v8 vs baseline adapter-v7" in md
    assert "0.924 → 0.353 (Δ=-0.571, ε=0.02)" in md
    assert "n=200" in md
    assert "14 regressed, 3 improved" in md
    assert "aggregate drop exceeds ε=0.02" in md
    assert "### 🎯 Driver slice: intent=refund" in md
    assert "(Δ=-0.750, 12/14 regressed)" in md
    assert "68% of the drop" in md
    assert "**Pattern**: “partial refund” in 9/12 failing vs 1/40 passing" in md
    assert "q\\-refund" not in md
    assert "q-refund-00, q-refund-01, q-refund-02, q-refund-03, q-refund-04 and 7 more" in md
    assert "| Δ | regressed | n | share of drop | slice | note |" in md
    assert "### ⚠️ Warnings" in md
    assert "holdout is small" in md
    assert "2 held-out queries had a malformed" in md
    assert "intent=refund ↔ intent=refunds (plural form)" in md
    assert "45 days (threshold: 30)" in md
    assert md.rstrip().endswith("_Generated by adaptergate 1.0.0.dev0_")
    assert md.endswith("\n")


def test_markdown_slice_table_sorted_with_notes():
    md = render(rejected_decision(), "markdown")
    rows = _table_rows(md)[2:]
    assert len(rows) == 30
    deltas = [float(r.split("|")[1]) for r in rows]
    assert deltas == sorted(deltas)
    first = rows[0]
    assert "intent=refund" in first and "rejects" in first and "68%" in first
    below = [r for r in rows if "below min size" in r]
    assert len(below) == 2  # t09, t19
    assert sum("explained by driver" in r for r in rows) == 1
    header = _unescaped_pipes(_table_rows(md)[0])
    assert all(_unescaped_pipes(r) == header for r in _table_rows(md))


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
    assert md.startswith("## ✅ adaptergate gate: **ACCEPTED**")
    assert "Driver slice" not in md
    assert "Warnings" not in md
    assert "0.900 → 0.910 (Δ=+0.010, ε=0.02)" in md
    rows = _table_rows(md)
    assert "intent=billing" in rows[2] and "intent=refund" in rows[3]


def test_markdown_without_baseline():
    md = render(accepted_decision(baseline_id=None), "markdown")
    assert "vs baseline _(none)_" in md
    out, _ = _human(accepted_decision(baseline_id=None))
    assert "Baseline:  (none)" in out
    root = _junit(accepted_decision(baseline_id=None))
    assert root.find("properties/property[@name='baseline']").get("value") == ""


def test_markdown_legacy_054_record():
    d = legacy_decision()
    assert d.driver_slice is not None
    md = render(d, "markdown")
    assert "REJECTED" in md
    assert "### 🎯 Driver slice: intent=cancel" in md
    assert "**Pattern**: cancel my subscription" in md
    assert "c1, c2, c3" in md
    assert "share" in md and "of the drop" not in md  # 0.5.4 had no share_of_drop
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
    assert "<details>" in pr and "</details>" in pr
    assert pr.count("<details>") == pr.count("</details>")
    # the slice table (30 > 15 slices) sits inside a details block
    start, end = pr.index("<details>"), pr.index("</details>")
    assert "| Δ | regressed |" in pr[start:end]
    # GitHub renders Markdown inside <details> only after a blank line
    assert re.search(r"</summary>\n\n", pr)
    # few slices: no details
    assert "<details>" not in render(accepted_decision(), "pr-comment")


def test_pr_comment_long_failing_id_list_folded():
    ids = [f"id{i}" for i in range(40)]
    d = rejected_decision(slice_attributions=[_driver(ids=ids)])
    pr = render(d, "pr-comment", show_failures=20)
    assert "<summary>Failing query IDs (20 of 40)</summary>" in pr
    assert "- id19\n" in pr and "id20" not in pr
    assert "and 20 more" in pr
    md = render(d, "markdown", show_failures=20)
    assert "<details>" not in md and "id19 and 20 more" in md


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
    rows = _table_rows(body)
    if rows:
        header = _unescaped_pipes(rows[0])
        for row in rows:
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
    rows = _table_rows(md)
    assert len(rows) == 4
    assert all(_unescaped_pipes(r) == 7 for r in rows)


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
        rows = _table_rows(md)
        assert len(rows) == 4
        assert all(_unescaped_pipes(r) == 7 for r in rows)
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
    assert "rejects" in out and "below min size" in out and "explained by driver" in out
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
