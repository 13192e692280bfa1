"""Reports: the decision rendered for terminals, Markdown (PR comment, check run, step summary), JSON and JUnit, from Jinja templates shipped here.

Modules, one job each:

* :mod:`~adaptergate.report.escape` — user text made inert (Markdown, XML, terminal), the report marker;
* :mod:`~adaptergate.report.numbers` — numbers as reports print them;
* :mod:`~adaptergate.report.environment` — the Jinja environment and ``templates/``;
* :mod:`~adaptergate.report.rejections` — which rules rejected, from ``decision.rejected_by``
  (inferred from the prose only for records written before it existed);
* :mod:`~adaptergate.report.view` — the view of a decision the templates and the console read
  (verdict and icon, slice table, worst queries, the commit and links);
* :mod:`~adaptergate.report.lead` — what broke, in words: the lines every report leads with;
* :mod:`~adaptergate.report.formats` — the formats by name (json, markdown, pr-comment, junit) and :func:`render`;
* :mod:`~adaptergate.report.console` — :func:`print_human`, the terminal report;
* :mod:`~adaptergate.report.manifest` — :func:`render_manifest`, the report of a manifest gate.

``report`` depends on the models, the decision's wording and (lazily) the
recipes; never on the pipeline, the front ends or publishing.
"""

from adaptergate.report.console import print_human
from adaptergate.report.environment import TEMPLATE_DIR, get_environment, template_dirs
from adaptergate.report.escape import (
    MD_LONG_TEXT_LIMIT,
    MD_VALUE_LIMIT,
    escape_markdown,
    escape_xml,
    plain_line,
    report_marker,
    rich_text,
)
from adaptergate.report.formats import FORMATS, PR_COMMENT_MAX_CHARS, RENDER_FORMATS, RenderOptions, ReportFormat, render
from adaptergate.report.manifest import render_manifest
from adaptergate.report.rejections import infer_rejections_from_prose, rejections
from adaptergate.report.view import STAT_LIST_LIMIT

__all__ = [
    "FORMATS",
    "MD_LONG_TEXT_LIMIT",
    "MD_VALUE_LIMIT",
    "PR_COMMENT_MAX_CHARS",
    "RENDER_FORMATS",
    "RenderOptions",
    "ReportFormat",
    "STAT_LIST_LIMIT",
    "TEMPLATE_DIR",
    "escape_markdown",
    "escape_xml",
    "get_environment",
    "infer_rejections_from_prose",
    "plain_line",
    "print_human",
    "rejections",
    "render",
    "render_manifest",
    "report_marker",
    "rich_text",
    "template_dirs",
]
