"""The structure of what a reviewer sees: the comment, the check run, the step summary, a manifest.

What broke leads (the driver slice and a broken answer within the first 1,500
characters), no table is wider than 7 columns, slices the driver explains are
said to be so and not listed as failures, unchanged slices are one line, the
numbers do not contradict themselves, the head commit and the candidate are
named, verdicts and icons agree across reports, and user text never links,
mentions or cross-references anything on GitHub.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from adaptergate.decide import wording
from adaptergate.models import Evidence, GateConfig, GateDecision
from adaptergate.pipeline.gate import GateRequest, run_gate
from adaptergate.publish.report import check_title
from adaptergate.report import escape_markdown, print_human, render, render_manifest
from adaptergate.scoring.scorers import Scorer

ROOT = Path(__file__).resolve().parent.parent
HEAD = "3f2c9a1e8b7d6c5f4a3b2c1d0e9f8a7b6c5d4e3f"
LINKS = {
    "run": "https://github.com/acme/adapters/actions/runs/4242",
    "check_run": "https://github.com/acme/adapters/runs/777",
    "artifact": "https://github.com/acme/adapters/actions/runs/4242/artifacts/99",
    "repository": "https://github.com/acme/adapters",
}


# --------------------------------------------------------------------------
# Decisions from the real gate
# --------------------------------------------------------------------------


def _gate(tmp_path: Path, rows: list[dict], candidate, baseline=lambda q: 1.0, **cfg) -> GateDecision:
    path = tmp_path / "holdout.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    fns = {"cand": candidate, "base": baseline}
    cfg.setdefault("min_holdout_size", 10)
    return run_gate(
        GateRequest(tenant="acme", candidate="cand", baseline="base", holdout_path=path, scorer_spec="t:s",
                    config=GateConfig(**cfg)),
        scorer=Scorer(spec="t:s", single=lambda adapter, q: fns[adapter](q)),
    )


INTENTS = ("refund", "cancel", "invoice", "order_status", "password_reset", "shipping")
ANSWERS = {"refund": "start refund", "cancel": "cancel order", "invoice": "send invoice",
           "order_status": "lookup order", "password_reset": "reset password", "shipping": "shipping info"}


def _support_rows() -> list[dict]:
    """The demo's shape: 6 intents × 24 queries, two thirds English, a third Spanish."""
    return [
        {"id": f"{intent}-{i:02d}", "prompt": f"Q: {intent.replace('_', ' ')} question {i} A:",
         "gold": ANSWERS[intent], "slices": [f"intent={intent}", "lang=es" if i % 3 == 0 else "lang=en"]}
        for intent in INTENTS for i in range(24)
    ]


def _with_answers(d: GateDecision, broken: str = "refund") -> GateDecision:
    """``d`` with what the adapters answered (as a model gate records it): the candidate says
    "cancel order" where it broke, both give the expected answer elsewhere."""
    def answers(qid: str, regressed: bool) -> tuple[str, str]:
        right = ANSWERS[qid.rsplit("-", 1)[0]]
        return right, ("cancel order" if regressed else right)

    rows = []
    for r in d.per_query:
        b, c = answers(str(r["query_id"]), r["delta"] < 0)
        rows.append({**r, "baseline_output": b, "candidate_output": c})
    examples = [e.model_copy(update=dict(zip(("baseline_output", "candidate_output"),
                                             answers(str(e.query_id), True)))) for e in d.examples]
    return d.model_copy(update={"per_query": rows, "examples": examples})


@pytest.fixture
def rejection(tmp_path) -> GateDecision:
    """The refund intent breaks (every query now answers "cancel order"); lang=en and lang=es drop
    only through it."""
    d = _gate(tmp_path, _support_rows(), lambda q: 0.0 if q["id"].startswith("refund") else 1.0,
              slice_epsilon=0.1)
    assert not d.accepted and d.driver_slice_tag == "intent=refund"
    explained = {s.slice_tag for s in d.slice_attributions if s.explained_by_driver}
    assert {"lang=en", "lang=es"} <= explained
    return _with_answers(d)


@pytest.fixture
def mock_rejection() -> GateDecision:
    """The bundled example: adapter_bad_v19 vs adapter_good_v18 (a scorer: no answers)."""
    import adaptergate
    from adaptergate.examples import (
        EXAMPLE_BASELINE, EXAMPLE_CANDIDATE, EXAMPLE_HOLDOUT, EXAMPLE_SCORER, EXAMPLE_TENANT,
    )

    d = adaptergate.run_gate(tenant=EXAMPLE_TENANT, holdout=EXAMPLE_HOLDOUT, candidate=EXAMPLE_CANDIDATE,
                             baseline=EXAMPLE_BASELINE, scorer=EXAMPLE_SCORER, slice_epsilon=0.1)
    assert not d.accepted and d.driver_slice_tag == "intent=billing_dispute"
    return d


@pytest.fixture
def inconclusive(tmp_path) -> GateDecision:
    rows = [{"id": f"q{i}", "prompt": "p", "slices": [f"topic={i % 4}"]} for i in range(40)]
    d = _gate(tmp_path, rows, lambda q: 0.0 if q["id"] == "q1" else 1.0, slice_epsilon=0.1)
    assert d.accepted and d.verdict == "INCONCLUSIVE"
    return d


@pytest.fixture
def silent_collapse(tmp_path) -> GateDecision:
    """``adaptergate demo silent``'s data without slice gating: a 12-query slice goes 1.0 → 0.0,
    the aggregate stays within ε."""
    from adaptergate.demos.catalog import _holdout_rows, _score

    d = _gate(tmp_path, _holdout_rows(), lambda q: _score("candidate_v2", q), epsilon=0.05, min_holdout_size=20)
    assert d.accepted and d.config.slice_epsilon is None
    return d


def _surfaces(d: GateDecision) -> dict[str, str]:
    """The comment, the check run's summary and the step summary, as the Action renders them."""
    return {
        "comment": render(d, "pr-comment", target="pr-comment", links=LINKS, head_sha=HEAD),
        "check-run": render(d, "markdown", target="check-run", links=LINKS, head_sha=HEAD),
        "step-summary": render(d, "markdown", target="step-summary", links={"run": LINKS["run"]}, head_sha=HEAD),
        "markdown": render(d, "markdown"),
    }


def _tables(md: str) -> list[list[str]]:
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


def _columns(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def _manifest(rejected: GateDecision, accepted: GateDecision):
    from adaptergate.manifest.discovery import ManifestOutcome, ManifestPlan, TenantOutcome

    plan = ManifestPlan(manifest_path=Path("adaptergate.yaml"), base_ref="main", base_commit=None, tenants=[])
    return ManifestOutcome(plan=plan, tenants=[
        TenantOutcome(tenant="acme", kind="promotion", status="rejected", base_version="1.0.0",
                      head_version="1.1.0", decision=rejected, exit_code=1),
        TenantOutcome(tenant="globex", kind="promotion", status="accepted", base_version="2.3.0",
                      head_version="2.4.0", decision=accepted.model_copy(update={"tenant_id": "globex"})),
        TenantOutcome(tenant="initech", kind="metadata", status="skipped", base_version="0.9.0",
                      head_version="0.9.0"),
    ])


# --------------------------------------------------------------------------
# Lead with the breakage
# --------------------------------------------------------------------------


def test_a_rejection_leads_with_the_driver_and_the_broken_answer(rejection):
    for name, md in _surfaces(rejection).items():
        head = md[:1500]
        assert "**intent=refund** (driver, 100% of the drop): 24 of 24 queries now answer" in head, name
        assert "“cancel order” instead of “start refund”" in head, name
        # then the worst examples, open: query | prompt | baseline | candidate
        assert "| refund-00 | Q: refund question 0 A: | start refund | **cancel order** |" in md, name
        assert md.index("| refund-00 |") < md.index("### Slice breakdown") < md.index("<summary>Statistics")


def test_a_scorer_rejection_says_how_many_queries_broke(mock_rejection):
    md = render(mock_rejection, "pr-comment", links=LINKS, head_sha=HEAD)
    head = md[:1500]
    assert "**intent=billing\\_dispute** (driver, 37% of the drop): 12 of 12 queries scored lower" in head
    assert "| billing\\_7 | Charge on my statement does not match order 80239 | escalate\\_billing |" in md
    # every slice failed here: five lines, then a count
    assert "- … and 4 more slices (see the slice table)." in head


def test_the_statistics_are_folded(rejection):
    for md in _surfaces(rejection).values():
        fold = md[md.index("<summary>Statistics"):md.rindex("</details>")]
        for what in ("- **Tenant**:", "### Evidence", "- **Power**:", "- **Rule**:", "- **Failed**:",
                     "### 🎯 Driver slice: intent=refund"):
            assert what in fold, what
            assert md.index(what) > md.index("<summary>Statistics")


def test_slices_explained_by_the_driver_are_not_failures(rejection):
    md = render(rejection, "markdown")
    failed = md[md.index("- **Failed**:"):md.index("- **Explained by the driver**")]
    assert "intent=refund: Δ=-1.000" in failed
    assert "lang=en" not in failed and "lang=es" not in failed
    explained = md[md.index("- **Explained by the driver**"):md.index("### Evidence")]
    assert "lang=en: Δ=" in explained and "lang=es: Δ=" in explained
    assert "- lang=en, lang=es: dropped only through **intent=refund** (explained by the driver" in md[:1500]
    # the table marks them so
    assert "| lang=en | explained by driver |" in md and "| lang=es | explained by driver |" in md
    out = Console(record=True, width=2000, force_terminal=False, color_system=None)
    print_human(rejection, console=out, err_console=Console(record=True, force_terminal=False))
    text = out.export_text()
    failed = text[text.index("Failed:"):text.index("Explained by the driver")]
    assert "lang=en" not in failed and "lang=es" not in failed


def test_a_silent_collapse_is_named_whatever_the_verdict(silent_collapse):
    d = silent_collapse
    for md in _surfaces(d).values():
        body = md.split("\n", 1)[1] if md.startswith("<!--") else md
        assert body.startswith("## ⚠️ adaptergate gate: **ACCEPTED · ")
        assert body.splitlines()[0].endswith(" — intent=gdpr\\_erasure collapsed")
        assert ("**intent=gdpr\\_erasure** (driver, 100% of the drop): 12 of 12 queries that passed now fail"
                " (1.000 → 0.000); slices are not gated (no slice ε), so it did not block.") in md[:1500]
    title = check_title(d)
    assert title.startswith("ACCEPTED") and "slice intent=gdpr_erasure collapsed 1.000 → 0.000" in title


def test_an_acceptance_says_nothing_broke(tmp_path):
    rows = [{"id": f"q{i}", "prompt": "p", "slices": [f"topic={i % 4}"]} for i in range(200)]
    d = _gate(tmp_path, rows, lambda q: 1.0, baseline=lambda q: 0.0 if q["id"] in ("q1", "q2") else 1.0,
              slice_epsilon=0.1)
    assert d.accepted and d.verdict == "PASS"
    md = render(d, "pr-comment")
    assert "## ✅ adaptergate gate: **ACCEPTED · PASS**\n\n- No query regressed; 2 improved.\n" in md
    assert "Worst failing" not in md


# --------------------------------------------------------------------------
# A table that fits
# --------------------------------------------------------------------------


def test_no_table_is_wider_than_seven_columns(rejection, mock_rejection, inconclusive, silent_collapse, tmp_path):
    threshold = _gate(tmp_path, _support_rows(), lambda q: 0.0 if q["id"].startswith("refund") else 1.0,
                      decision="threshold", slice_epsilon=0.1)
    reports = []
    for d in (rejection, mock_rejection, inconclusive, silent_collapse, threshold):
        reports += _surfaces(d).values()
    outcome = _manifest(rejection, inconclusive)
    reports += [render_manifest(outcome, fmt, links=LINKS, head_sha=HEAD) for fmt in ("markdown", "pr-comment")]
    n = 0
    for md in reports:
        for table in _tables(md):
            n += 1
            widths = {_columns(row) for row in table}
            assert len(widths) == 1 and widths.pop() <= 7, table[0]
    assert n >= 20


def test_the_slice_table_leads_with_the_slice_and_keeps_its_interval_on_one_line(rejection):
    md = render(rejection, "markdown")
    [table] = [t for t in _tables(md) if t[0].startswith("| slice |")]
    assert table[0] == "| slice | | Δ (90% interval) | regressed | verdict |"
    driver = table[2]
    assert driver.startswith("| intent=refund | 🎯\xa0driver | -1.000\xa0(") and "| 24/24 | FAIL |" in driver
    delta = driver.split("|")[3].strip()
    assert " " not in delta  # non-breaking spaces only: the cell does not wrap


def test_unchanged_slices_are_one_line_not_inconclusive_rows(rejection):
    md = render(rejection, "markdown")
    assert ("_5 slices unchanged (no query changed): intent=cancel, intent=invoice, intent=order\\_status,"
            " intent=password\\_reset, intent=shipping._") in md
    rows = [r for t in _tables(md) if t[0].startswith("| slice |") for r in t[2:]]
    assert len(rows) == 3 and not any("INCONCLUSIVE" in r or "1.000 |" in r for r in rows)


def test_the_terminal_slice_table_lines_up(rejection):
    out = Console(record=True, width=100, force_terminal=False, color_system=None)
    print_human(rejection, console=out, err_console=Console(record=True, force_terminal=False))
    text = out.export_text()
    lines = text[text.index("Slice breakdown"):].splitlines()
    header, rows = lines[1], lines[3:6]
    for column in ("Δ (90% interval)", "verdict"):  # left-justified
        at = header.index(column)
        assert all(row[at - 1] == " " and row[at] != " " for row in rows), column
    end = header.index("regressed") + len("regressed")  # right-justified
    assert all(row[end - 1] != " " and row[end] == " " for row in rows)
    assert lines[6].startswith("  5 slices unchanged (no query changed): intent=cancel, intent=invoice,")
    assert all(len(row) > 100 for row in rows)  # wider than this console: not cut, not wrapped


# --------------------------------------------------------------------------
# Traceability
# --------------------------------------------------------------------------


def test_reports_name_the_commit_and_link_the_check_run_and_the_artifact(rejection):
    d = rejection.model_copy(update={"evaluation": {"candidate_adapter_sha256": "1ee4709976966d23" + "0" * 48}})
    s = _surfaces(d)
    commit = f"commit [`3f2c9a1`](https://github.com/acme/adapters/commit/{HEAD})"
    for name in ("comment", "check-run", "step-summary"):  # the step summary: from the run's URL
        assert commit in s[name][:1500], name
        assert "candidate **cand** (sha256 `1ee470997696`) vs baseline **base**" in s[name]
    assert s["comment"].rstrip().endswith(
        f"· [check run]({LINKS['check_run']}) · [report artifact]({LINKS['artifact']})"
        f" · [workflow run]({LINKS['run']})_")
    # the check run's own summary does not link to itself
    assert s["check-run"].rstrip().endswith(
        f"1.0.0.dev0 · [report artifact]({LINKS['artifact']}) · [workflow run]({LINKS['run']})_")
    assert "commit" not in render(d, "markdown").split("\n\n", 3)[2]  # no SHA given: none shown
    # a SHA that is not one, or a URL that is not http(s), is not shown
    md = render(d, "markdown", head_sha="not-a-sha", links={"check_run": "javascript:alert(1)"})
    assert "not-a-sha" not in md and "javascript" not in md


# --------------------------------------------------------------------------
# Numbers and words that agree
# --------------------------------------------------------------------------


def _ev(**kw) -> Evidence:
    base = dict(verdict="INCONCLUSIVE", estimate=-0.01, lower=-0.05, upper=0.02, level=0.95, method="paired t",
                p_value=0.3, alpha=0.05)
    return Evidence(**{**base, **kw})


def test_no_count_of_queries_that_are_already_there():
    assert wording.settle_phrase(_ev(n_needed=137), 144) == ""
    assert wording.settle_phrase(_ev(n_needed=144), 144) == ""
    assert "About 200 queries (56 more) would settle it" in wording.settle_phrase(_ev(n_needed=200), 144)
    # a record written before the fix: the sentence is not shown
    old = "INCONCLUSIVE: Δ=-0.010. About 137 queries (0 more) would settle it, if the observed difference holds."
    from adaptergate.report.view import clean_statement

    assert clean_statement(old) == "INCONCLUSIVE: Δ=-0.010."


def test_no_power_sentence_that_says_nothing():
    assert wording.power_statement(_ev(mde=0.0), 300) == ""
    assert wording.power_statement(_ev(mde=0.0004), 300) == ""
    assert "a drop of 0.087 or more" in wording.power_statement(_ev(mde=0.087), 144)


def test_verdicts_and_icons_agree_across_reports(inconclusive, rejection):
    outcome = _manifest(rejection, inconclusive)
    md = render_manifest(outcome, "pr-comment", manifest_name="adaptergate.yaml", links=LINKS, head_sha=HEAD)
    single = render(inconclusive, "pr-comment")
    assert "## ⚠️ adaptergate gate: **ACCEPTED · INCONCLUSIVE**" in single
    assert "| globex | promotion | 2.3.0 → 2.4.0 | ⚠️ accepted (INCONCLUSIVE) |" in md
    assert "### ⚠️ globex: ACCEPTED · INCONCLUSIVE" in md
    assert "| acme | promotion | 1.0.0 → 1.1.0 | 🚫 rejected (FAIL) |" in md and "### 🚫 acme: REJECTED · FAIL" in md
    assert "✅" not in md
    assert md.splitlines()[1] == "## 🚫 adaptergate: **REJECTED**"
    assert ("2 tenants changed adapters: 1 accepted, 1 rejected; 1 without an adapter change."
            " Commit [`3f2c9a1`]") in md
    assert "(s)" not in md


def test_manifest_headings_nest_and_failing_queries_fold(inconclusive, rejection):
    outcome = _manifest(rejection, inconclusive)
    md = render_manifest(outcome, "markdown")
    headings = re.findall(r"^(#+) ", md, re.M)
    assert headings[0] == "##" and headings.count("##") == 1
    sections = md.split("\n### ")[1:]
    assert len(sections) == 2
    for section in sections:
        assert not re.search(r"^#{1,3} ", section, re.M)  # no H2 or H3 inside a tenant's H3
        assert "\n#### Slice breakdown" in section
    acme = sections[0]
    assert acme.index("<summary>Worst failing queries (5)</summary>") < acme.index("| refund-00 |")
    assert md.count("<details>") == md.count("</details>")


def test_plurals():
    from adaptergate.report.manifest import _summary_line
    from adaptergate.manifest.discovery import ManifestOutcome, ManifestPlan, TenantOutcome

    def outcome(*statuses):
        plan = ManifestPlan(manifest_path=Path("m.yaml"), base_ref=None, base_commit=None, tenants=[])
        return ManifestOutcome(plan=plan, tenants=[
            TenantOutcome(tenant=f"t{i}", kind="promotion", status=s, base_version=None, head_version="1")
            for i, s in enumerate(statuses)])

    assert _summary_line(outcome("review")) == "1 tenant changed its adapter: 1 needs review."
    assert _summary_line(outcome("review", "review", "skipped")) == (
        "2 tenants changed adapters: 2 need review; 1 without an adapter change.")


# --------------------------------------------------------------------------
# Inert user text
# --------------------------------------------------------------------------

HOSTILE = ("#5328 GH-12 acme/adapters#3 a5c3785ed8d6a35868bc169f07e40e889087fd2e deadbee @octocat @acme/team"
           " https://evil.example/x http://evil.example www.evil.example")

# what GitHub turns into links, mentions and cross-references in a comment's text
REFERENCES = re.compile(
    r"(?<![\w&])#\d|\bGH-\d|[\w.-]+/[\w.-]+#\d|@[A-Za-z0-9]|\b[0-9a-fA-F]{7,40}\b|://|\bwww\.", re.I)


def _hostile(d: GateDecision) -> GateDecision:
    driver = d.driver_slice
    tag = "intent=refund " + HOSTILE
    slices = [s.model_copy(update={"slice_tag": tag}) if s.slice_tag == driver.slice_tag else s
              for s in d.slice_attributions]
    rows = [{**r, "candidate_output": HOSTILE} if r["delta"] < 0 else r for r in d.per_query]
    examples = [e.model_copy(update={"query_id": f"#5328-{i}", "prompt": HOSTILE, "gold": HOSTILE,
                                     "candidate_output": HOSTILE, "baseline_output": "GH-12"})
                for i, e in enumerate(d.examples)]
    return d.model_copy(update={
        "tenant_id": "acme " + HOSTILE, "candidate_id": "v2 " + HOSTILE, "baseline_id": HOSTILE,
        "slice_attributions": slices, "driver_slice_tag": tag, "per_query": rows, "examples": examples,
    })


def _user_text(md: str) -> str:
    """``md`` without what adaptergate writes itself: the marker, its own links, code spans."""
    md = re.sub(r"^<!-- adaptergate:report .* -->$", "", md, flags=re.M)
    md = re.sub(r"\[[^\]]*\]\((https?://[^)]*)\)", "", md)
    return re.sub(r"`[^`]*`", "", md)


def test_escape_markdown_breaks_every_github_reference():
    for text in ("#5328", "GH-12", "gh-12", "acme/adapters#3", "a5c3785ed8d6a35868bc169f07e40e889087fd2e",
                 "deadbee", "1234567", "@octocat", "@acme/team", "https://x.example", "http://x",
                 "ftp://x", "www.example.com", "WWW.example.com"):
        out = escape_markdown(text)
        assert not REFERENCES.search(out), (text, out)
        # what is shown is the text itself (invisible joiners aside)
        shown = re.sub(r"\\(.)", r"\1", out.replace("\u2060", "").replace("\u200b", ""))
        assert shown == text
    # what looks like nothing GitHub links is left alone
    for text in ("order 52445", "Q: refund me", "a.b", "C# and F#", "version 1.2.3"):
        assert "\u2060" not in escape_markdown(text), text


def test_user_text_never_links_mentions_or_references(rejection, mock_rejection):
    from markdown_it import MarkdownIt

    html_of = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render
    for d in (_hostile(rejection), _hostile(mock_rejection)):
        reports = list(_surfaces(d).values())
        reports += [render_manifest(_manifest(d, d), fmt, links=LINKS, head_sha=HEAD)
                    for fmt in ("markdown", "pr-comment")]
        for md in reports:
            assert "5328" in md and "octocat" in md  # the text is there…
            leaks = REFERENCES.findall(_user_text(md))
            assert not leaks, leaks  # …and links nothing
            links = re.findall(r'href="([^"]*)"', html_of(md))
            assert all(h.startswith("https://github.com/acme/adapters/") for h in links), links
            for table in _tables(md):
                assert len({_columns(r) for r in table}) == 1


def test_the_render_script_renders_every_case(tmp_path):
    """scripts/render_reports.py: every case and surface, as Markdown and HTML (no screenshots
    here), with no reference GitHub would link in user text."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_reports.py"), "--out", str(tmp_path), "--no-model",
         "--no-screenshots", "--renderer", "markdown-it"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {p.name for p in tmp_path.iterdir()}
    for case in ("rejection", "rejection-mock", "acceptance", "inconclusive", "silent-collapse", "hostile"):
        for surface in ("comment", "check-run", "step-summary"):
            assert f"{case}.{surface}.md" in names and f"{case}.{surface}.html" in names
    assert {"manifest.comment.html", "manifest.step-summary.html"} <= names
    hostile = (tmp_path / "hostile.comment.html").read_text(encoding="utf-8")
    assert 'class="gh-autolink"' not in hostile and "5328" in hostile
