#!/usr/bin/env python
"""Render adaptergate's GitHub reports the way GitHub shows them, and screenshot them.

For each case (a rejection, an acceptance, an INCONCLUSIVE verdict, a silent
collapse, hostile user text, a two-tenant manifest) this writes, under --out:

* ``<case>.<surface>.md``: the Markdown adaptergate posts (surface: ``comment``,
  the pull-request comment; ``check-run``, the check run's summary, its title
  above it; ``step-summary``, the job's step summary);
* ``<case>.<surface>.html``: that Markdown rendered as GitHub-flavoured Markdown
  (``cmark-gfm`` when it is installed, else the Python ``markdown-it-py``) in a
  page styled like a GitHub comment, 830 px wide. GitHub's own autolinker
  (``#123``, ``GH-12``, ``owner/repo#3``, ``@user``, commit SHAs, bare URLs) is
  imitated on the text, so a reference that would link on GitHub shows as a
  link here, and is counted;
* ``<case>.<surface>.png``: a headless Chromium screenshot of the page (with
  ``--open``, also ``….open.png`` with every ``<details>`` opened).

The decisions come from the real gate: the bundled mock-scorer example
(``adaptergate.run_gate``), the demos' in-process scorers, and, when torch,
transformers and peft are installed, the tiny demo model with two real LoRA
adapters (built once, about 15 s on two cores; ``--no-model`` skips it).

    python scripts/render_reports.py --out /tmp/adaptergate-reports
    python scripts/render_reports.py --out out --cases rejection,manifest --open --no-model

Exit status: 0; 1 when a rendered page holds a reference GitHub would link in
user text (listed on stderr); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

WIDTH = 830
"""GitHub's comment column, in CSS pixels."""

HEAD_SHA = "3f2c9a1e8b7d6c5f4a3b2c1d0e9f8a7b6c5d4e3f"
"""The pull request's head commit the reports are for (made up: the pages link to it)."""

REPO = "https://github.com/acme/adapters"
LINKS = {
    "run": f"{REPO}/actions/runs/4242",
    "check_run": f"{REPO}/runs/777",
    "artifact": f"{REPO}/actions/runs/4242/artifacts/99",
    "repository": REPO,
}

CASES = ("rejection", "rejection-mock", "acceptance", "inconclusive", "silent-collapse", "hostile", "manifest")
SURFACES = ("comment", "check-run", "step-summary")

# --------------------------------------------------------------------------
# Decisions, from the real gate
# --------------------------------------------------------------------------


def _mock(candidate: str, baseline: str, **options: Any) -> Any:
    import adaptergate
    from adaptergate.examples import EXAMPLE_HOLDOUT, EXAMPLE_SCORER, EXAMPLE_TENANT

    return adaptergate.run_gate(tenant=EXAMPLE_TENANT, holdout=EXAMPLE_HOLDOUT, candidate=candidate,
                                baseline=baseline, scorer=EXAMPLE_SCORER, **options)


def rejection_mock() -> Any:
    """The bundled example: adapter_bad_v19 vs adapter_good_v18 rejects on intent=billing_dispute."""
    from adaptergate.examples import EXAMPLE_BASELINE, EXAMPLE_CANDIDATE

    return _mock(EXAMPLE_CANDIDATE, EXAMPLE_BASELINE, slice_epsilon=0.10)


def acceptance() -> Any:
    return _mock("adapter_good_v20", "adapter_good_v18", slice_epsilon=0.10)


def inconclusive() -> Any:
    return _mock("adapter_v22", "adapter_v20", slice_epsilon=0.10)


def silent_collapse() -> Any:
    """``adaptergate demo silent``'s data under the Action's defaults (no slice ε): 12 of 300
    queries, a whole slice, go 1.0 → 0.0 while the aggregate stays within ε=0.05."""
    from adaptergate.demos.catalog import _holdout_rows, _score
    from adaptergate.models import GateConfig
    from adaptergate.pipeline.gate import GateRequest, run_gate
    from adaptergate.scoring.scorers import Scorer

    work = Path(tempfile.mkdtemp(prefix="adaptergate-render-"))
    holdout = work / "holdout.jsonl"
    holdout.write_text("".join(json.dumps(r) + "\n" for r in _holdout_rows()), encoding="utf-8")
    scorer = Scorer(spec="demo:score", single=_score)
    try:
        return run_gate(GateRequest(tenant="demo", candidate="candidate_v2", baseline="production_v1",
                                    holdout_path=holdout, scorer_spec=scorer.spec,
                                    config=GateConfig(epsilon=0.05)), scorer=scorer)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def model_rejection(cache: Path) -> Any:
    """The tiny demo model: a real base model and two real LoRA adapters; the candidate answers
    refund prompts with "cancel order"."""
    from adaptergate.demos.tinymodel import build_demo_assets
    from adaptergate.models import GateConfig
    from adaptergate.pipeline.gate import GateRequest, run_gate
    from adaptergate.scoring.model import ModelInputs

    assets = build_demo_assets(cache_dir=cache)
    return run_gate(GateRequest(
        tenant="demo", candidate=assets.candidate_adapter.name, baseline=assets.baseline_adapter.name,
        holdout_path=assets.holdout, scorer_spec="", config=GateConfig(slice_epsilon=0.10),
        model=ModelInputs(base_model=str(assets.base_dir), baseline_adapter=assets.baseline_adapter,
                          candidate_adapter=assets.candidate_adapter, metric="exact",
                          cache_dir=assets.root / "cache"),
    ))


HOSTILE = {
    "id": "#5328",
    "prompt": "see GH-12 and acme/adapters#3, fixed in a5c3785ed8d6a35868bc169f07e40e889087fd2e by @octocat"
              " — https://evil.example/x or www.evil.example",
    "answer": "cancel order @here #1 https://t.co/x",
    "tag": "intent=refund owner/repo#7 @team",
}


def hostile(decision: Any) -> Any:
    """``decision`` with user text (ids, prompts, answers, slice tags) that GitHub would link."""
    driver = decision.driver_slice
    tag = HOSTILE["tag"]
    slices = [s.model_copy(update={"slice_tag": tag}) if driver is not None and s.slice_tag == driver.slice_tag
              else s for s in decision.slice_attributions]
    examples = [
        e.model_copy(update={
            "query_id": f"{HOSTILE['id']}-{i}" if i else HOSTILE["id"], "prompt": HOSTILE["prompt"],
            "candidate_output": HOSTILE["answer"] if e.candidate_output is not None else None,
        })
        for i, e in enumerate(decision.examples)
    ]
    ids = {str(q) for q in (driver.regressed_query_ids if driver is not None else [])}
    rows = [
        {**r, "candidate_output": HOSTILE["answer"]} if str(r["query_id"]) in ids and r.get("candidate_output")
        else r for r in decision.per_query
    ]
    return decision.model_copy(update={
        "tenant_id": "acme @octocat #12", "candidate_id": "v2 (deadbeef1234)",
        "slice_attributions": slices, "driver_slice_tag": tag if driver is not None else None,
        "examples": examples, "per_query": rows,
    })


def manifest(rejected: Any, accepted: Any) -> Any:
    """Two tenants from real decisions: one rejected, one accepted although INCONCLUSIVE."""
    from adaptergate.manifest.discovery import ManifestOutcome, ManifestPlan, TenantOutcome

    plan = ManifestPlan(manifest_path=Path("adaptergate.yaml"), base_ref="main", base_commit=None, tenants=[])
    return ManifestOutcome(plan=plan, tenants=[
        TenantOutcome(tenant=rejected.tenant_id, kind="promotion", status="rejected", base_version="1.0.0",
                      head_version="1.1.0", decision=rejected, exit_code=1),
        TenantOutcome(tenant="globex", kind="promotion", status="accepted", base_version="2.3.0",
                      head_version="2.4.0", decision=accepted.model_copy(update={"tenant_id": "globex"})),
        TenantOutcome(tenant="initech", kind="metadata", status="skipped", base_version="0.9.0",
                      head_version="0.9.0"),
    ])


# --------------------------------------------------------------------------
# Markdown, as each surface gets it
# --------------------------------------------------------------------------


@dataclass
class Page:
    name: str
    markdown: str
    title: str | None = None
    """A check run's title (GitHub shows it above the summary)."""


def decision_pages(case: str, decision: Any) -> list[Page]:
    from adaptergate.publish.report import check_title
    from adaptergate.report import render

    common = {"links": LINKS, "head_sha": HEAD_SHA}
    return [
        Page(f"{case}.comment", render(decision, "pr-comment", target="pr-comment", **common)),
        # the check run is posted first: its own summary has no link to it
        Page(f"{case}.check-run", render(decision, "markdown", target="check-run",
                                         links={k: v for k, v in LINKS.items() if k != "check_run"},
                                         head_sha=HEAD_SHA), title=check_title(decision)),
        Page(f"{case}.step-summary", render(decision, "markdown", target="step-summary",
                                            links={"run": LINKS["run"]}, head_sha=HEAD_SHA)),
    ]


def manifest_pages(outcome: Any) -> list[Page]:
    from adaptergate.publish.report import check_title
    from adaptergate.report import render, render_manifest

    pages = [
        Page("manifest.comment", render_manifest(outcome, "pr-comment", manifest_name="adaptergate.yaml",
                                                 links=LINKS, head_sha=HEAD_SHA)),
        Page("manifest.step-summary", render_manifest(outcome, "markdown", manifest_name="adaptergate.yaml",
                                                      links={"run": LINKS["run"]}, head_sha=HEAD_SHA)),
    ]
    for t in outcome.gated:  # one check run per tenant whose adapter moved
        pages.append(Page(f"manifest.check-run-{t.tenant}",
                          render(t.decision, "markdown", target="check-run", links=LINKS, head_sha=HEAD_SHA),
                          title=check_title(t.decision)))
    return pages


# --------------------------------------------------------------------------
# GitHub-flavoured Markdown to HTML, GitHub's autolinker imitated
# --------------------------------------------------------------------------


def gfm_renderer(choice: str = "auto") -> tuple[str, Callable[[str], str]]:
    """(name, markdown -> HTML): cmark-gfm (GitHub's own parser) when installed, else markdown-it-py."""
    exe = shutil.which("cmark-gfm")
    if choice in ("auto", "cmark-gfm") and exe:
        def cmark(text: str) -> str:
            args = [exe, "--unsafe", "-e", "table", "-e", "strikethrough", "-e", "autolink", "-e", "tasklist"]
            return subprocess.run(args, input=text, capture_output=True, text=True, check=True).stdout
        return "cmark-gfm", cmark
    if choice == "cmark-gfm":
        raise SystemExit("cmark-gfm is not installed (apt-get install cmark-gfm), try --renderer markdown-it")
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        raise SystemExit("no GFM renderer: install cmark-gfm (apt) or markdown-it-py (pip)") from None
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    return "markdown-it-py", md.render


# What GitHub links in text after rendering (entities decoded), outside links and code.
GITHUB_REFERENCES = re.compile(
    r"(?P<url>\b(?:https?|ftp)://[^\s<]+|\bwww\.[^\s<]+)"
    r"|(?P<mention>(?<![\w`])@[A-Za-z0-9][A-Za-z0-9-]*(?:/[A-Za-z0-9_.-]+)?)"
    r"|(?P<issue>(?:\b[\w.-]+/[\w.-]+)?(?<![\w&])#\d+\b|\bGH-\d+\b)"
    r"|(?P<sha>\b[0-9a-f]{7,40}\b)"
)
_SPLIT = re.compile(r"(<[^>]*>)")


def autolink_like_github(page_html: str) -> tuple[str, list[str]]:
    """``page_html`` with what GitHub would turn into links marked as links (class ``gh-autolink``),
    and the list of them. Text inside ``a``, ``code`` and ``pre`` is left alone, as GitHub does."""
    found: list[str] = []
    out: list[str] = []
    depth = 0
    for part in _SPLIT.split(page_html):
        if part.startswith("<"):
            name = re.match(r"</?\s*([a-zA-Z0-9]+)", part)
            if name and name.group(1).lower() in ("a", "code", "pre"):
                depth += -1 if part.startswith("</") else (0 if part.endswith("/>") else 1)
            out.append(part)
            continue
        if depth > 0 or not part:
            out.append(part)
            continue
        text = html.unescape(part)
        pieces, last = [], 0
        for m in GITHUB_REFERENCES.finditer(text):
            if m.lastgroup == "sha" and not re.search(r"\d", m.group(0)):
                continue  # a hex word without a digit ("defaced") is English
            found.append(f"{m.lastgroup}: {m.group(0)}")
            pieces += [html.escape(text[last:m.start()], quote=False),
                       f'<a class="gh-autolink" href="#">{html.escape(m.group(0), quote=False)}</a>']
            last = m.end()
        pieces.append(html.escape(text[last:], quote=False))
        out.append("".join(pieces))
    return "".join(out), found


CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI","DejaVu Sans",Helvetica,Arial,sans-serif,
 "Apple Color Emoji","Segoe UI Emoji","Noto Color Emoji";font-size:14px;line-height:1.5;color:#1f2328;margin:0;background:#fff}
.comment{width:%(width)dpx;box-sizing:border-box;margin:16px;border:1px solid #d1d9e0;border-radius:6px}
.comment-header{background:#f6f8fa;border-bottom:1px solid #d1d9e0;padding:8px 16px;color:#59636e;font-size:13px}
.markdown-body{padding:16px;word-wrap:break-word}
.markdown-body>*:first-child{margin-top:0!important}
h1,h2,h3,h4{margin-top:24px;margin-bottom:16px;font-weight:600;line-height:1.25}
h2{font-size:1.5em;border-bottom:1px solid #d1d9e0b3;padding-bottom:.3em}
h3{font-size:1.25em} h4{font-size:1em}
p,ul,ol,table,blockquote,details{margin-top:0;margin-bottom:16px}
ul,ol{padding-left:2em} li+li{margin-top:.25em}
table{border-spacing:0;border-collapse:collapse;display:block;width:max-content;max-width:100%%;overflow:auto}
td,th{border:1px solid #d1d9e0;padding:6px 13px} th{font-weight:600} tr:nth-child(2n){background:#f6f8fa}
blockquote{border-left:.25em solid #d1d9e0;padding:0 1em;color:#59636e;margin-left:0}
.markdown-alert{border-left:.25em solid #9a6700;padding:.5em 1em;margin-bottom:16px;color:inherit}
.markdown-alert-title{color:#9a6700;font-weight:500}
code{font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"DejaVu Sans Mono",monospace;background:#818b981f;
 padding:.2em .4em;border-radius:6px;font-size:85%%}
a{color:#0969da;text-decoration:none} a.gh-autolink{color:#cf222e;text-decoration:underline wavy}
summary{cursor:pointer} hr{border:0;height:.25em;background:#d1d9e0;margin:24px 0}
del{color:#59636e}
.check-title{font-size:16px;font-weight:600;margin:0 0 4px 0;color:#1f2328}
"""

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>%(title)s</title><style>%(css)s</style></head>
<body><div class="comment"><div class="comment-header">%(header)s</div><div class="markdown-body">%(body)s</div></div>
<script>
if (location.hash === "#open") document.querySelectorAll("details").forEach(d => d.open = true);
document.body.setAttribute("data-height", Math.ceil(document.querySelector(".comment").getBoundingClientRect().bottom + 16));
</script></body></html>
"""


def github_alerts(body: str) -> str:
    """GitHub's ``> [!WARNING]`` alert, which cmark-gfm leaves a plain quote."""
    return re.sub(r"<blockquote>\s*<p>\[!(WARNING|NOTE|CAUTION|IMPORTANT|TIP)\]\s*",
                  lambda m: f'<blockquote class="markdown-alert"><p><span class="markdown-alert-title">'
                            f'⚠ {m.group(1).title()}</span><br>', body)


def to_html(page: Page, render_md: Callable[[str], str], renderer: str) -> tuple[str, list[str]]:
    text = page.markdown
    body = github_alerts(render_md(text))  # the marker is an HTML comment: invisible, as on GitHub
    body, found = autolink_like_github(body)
    kind = page.name.split(".", 1)[1]
    header = f"{html.escape(page.name)} · {len(text):,} characters · rendered with {renderer}"
    if page.title is not None:
        body = f'<p class="check-title">{html.escape(page.title)}</p>' + body
        header += " · check run: title, then summary"
    elif kind == "comment":
        header += " · pull-request comment"
    return PAGE % {"title": html.escape(page.name), "css": CSS % {"width": WIDTH}, "header": header,
                   "body": body}, found


# --------------------------------------------------------------------------
# Screenshots
# --------------------------------------------------------------------------


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


def _chrome_args(exe: str, profile: str) -> list[str]:
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}"]


def page_height(exe: str, url: str, profile: str) -> int:
    dom = subprocess.run([*_chrome_args(exe, profile), "--virtual-time-budget=2000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-height="(\d+)"', dom)
    return max(200, min(int(m.group(1)), 16_000)) if m else 2000


def screenshot(exe: str, html_path: Path, png: Path, *, open_details: bool = False) -> None:
    url = html_path.resolve().as_uri() + ("#open" if open_details else "")
    with tempfile.TemporaryDirectory(prefix="adaptergate-chromium-") as profile:
        height = page_height(exe, url, profile)
        subprocess.run([*_chrome_args(exe, profile), "--virtual-time-budget=2000",
                        f"--window-size={WIDTH + 32},{height}", f"--screenshot={png}", url],
                       capture_output=True, timeout=120, check=True)


# --------------------------------------------------------------------------


def build_pages(cases: list[str], *, model: bool, model_cache: Path) -> list[Page]:
    decisions: dict[str, Any] = {}

    def rejection() -> Any:
        if "rejection" not in decisions:
            decisions["rejection"] = None
            if model:
                try:
                    decisions["rejection"] = model_rejection(model_cache)
                except Exception as exc:  # noqa: BLE001 - say why, fall back to the mock example
                    print(f"the demo model is not available ({type(exc).__name__}: {exc});"
                          " the rejection is the mock-scorer example", file=sys.stderr)
            if decisions["rejection"] is None:
                decisions["rejection"] = rejection_mock()
        return decisions["rejection"]

    makers: dict[str, Callable[[], Any]] = {
        "rejection": rejection, "rejection-mock": rejection_mock, "acceptance": acceptance,
        "inconclusive": inconclusive, "silent-collapse": silent_collapse, "hostile": lambda: hostile(rejection()),
    }
    pages: list[Page] = []
    for case in cases:
        if case == "manifest":
            pages += manifest_pages(manifest(rejection(), inconclusive()))
        else:
            pages += decision_pages(case, makers[case]())
    return pages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "adaptergate-reports")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    ap.add_argument("--renderer", choices=("auto", "cmark-gfm", "markdown-it"), default="auto")
    ap.add_argument("--no-model", action="store_true", help="do not build the tiny demo model (mock rejection)")
    ap.add_argument("--model-cache", type=Path, default=None,
                    help="where the tiny demo model is built (default: adaptergate's cache)")
    ap.add_argument("--no-screenshots", action="store_true", help="write Markdown and HTML only")
    ap.add_argument("--open", action="store_true", help="also screenshot each page with every <details> open")
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        ap.error(f"unknown case(s): {', '.join(unknown)}")
    os.environ.setdefault("ADAPTERGATE_PROGRESS", "0")
    if args.model_cache is None:
        from adaptergate.demos.tinymodel import default_cache_dir

        args.model_cache = default_cache_dir()
    renderer, render_md = gfm_renderer(args.renderer)
    exe = None if args.no_screenshots else chromium()
    if not args.no_screenshots and exe is None:
        print("no Chromium found: writing Markdown and HTML only", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    leaks = 0
    for page in build_pages(cases, model=not args.no_model, model_cache=args.model_cache):
        md_path = args.out / f"{page.name}.md"
        md_path.write_text(page.markdown, encoding="utf-8")
        doc, found = to_html(page, render_md, renderer)
        html_path = args.out / f"{page.name}.html"
        html_path.write_text(doc, encoding="utf-8")
        shots = ""
        if exe is not None:
            screenshot(exe, html_path, args.out / f"{page.name}.png")
            shots = f" {page.name}.png"
            if args.open:
                screenshot(exe, html_path, args.out / f"{page.name}.open.png", open_details=True)
                shots += f" {page.name}.open.png"
        print(f"{page.name}: {len(page.markdown):,} characters;{shots or ' (no screenshot)'}")
        for ref in found:
            leaks += 1
            print(f"  would link on GitHub: {ref}", file=sys.stderr)
    print(f"written to {args.out} (GFM: {renderer})")
    return 1 if leaks else 0


if __name__ == "__main__":
    sys.exit(main())
