"""The Jinja environment of the reports and the templates it loads.

Every textual report comes from a template in ``templates/`` (shipped inside
the package, in the wheel and a checkout alike):

* ``report.md.j2`` — ``markdown`` and ``pr-comment`` (also the check run and the step summary)
* ``junit.xml.j2`` — ``junit``
* ``manifest.md.j2`` — a manifest gate (:func:`adaptergate.report.manifest.render_manifest`)
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from adaptergate.errors import AdaptergateError
from adaptergate.report.escape import escape_markdown, escape_xml, marker_value
from adaptergate.report.numbers import fmt_num, fmt_pct, fmt_score, fmt_signed

__all__ = ["TEMPLATE_DIR", "get_environment", "template_dirs"]

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
        signed=fmt_signed,
        score=fmt_score,
        pct=fmt_pct,
        num=fmt_num,
        marker=marker_value,
    )
    return env
