"""User text made inert: for Markdown, XML and a terminal.

Everything a user controls (tenant, adapter and query ids, slice tags,
pattern n-grams, reasons, warnings) passes through here before it reaches
Markdown (:func:`escape_markdown`, the templates' ``md`` filter), XML
(:func:`escape_xml`, the ``xml`` filter) or a rich console
(:func:`rich_text`): a holdout file must never be able to inject HTML, break
a table, @-mention someone, link an issue, a pull request, a commit or a URL
on GitHub, or restyle a terminal. Reports never show a secret this process
holds (:func:`scrubbed`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any
from urllib.parse import quote

import markupsafe
from rich.markup import escape as rich_escape

from adaptergate.trust import plain_line

__all__ = [
    "MD_LONG_TEXT_LIMIT",
    "MD_VALUE_LIMIT",
    "WORD_JOINER",
    "break_references",
    "escape_markdown",
    "escape_xml",
    "marker_value",
    "plain_line",
    "report_marker",
    "rich_text",
    "safe_url",
    "scrubbed",
]

MD_VALUE_LIMIT = 200
"""User text longer than this is cut (then ``…``) in reports."""

MD_LONG_TEXT_LIMIT = 1000
"""Limit for reasons and warning messages, which are sentences."""

_MARKER_PREFIX = "<!-- adaptergate:report tenant="

_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")
# Bidi overrides/isolates can make text read differently from what it is.
_BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_MD_SPECIAL = re.compile(r"[&<>|\\`*_\[\]#~!$]|@(?=\w)")
_MD_LINE_START = re.compile(r"^(\d{0,9})((?<=\d)[.)](?=\s|$)|(?<!\d)[-+=])")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;"}

WORD_JOINER = "\u2060"
"""Invisible, and no line break opportunity: splits a GitHub reference without showing."""

# GitHub turns these into links after rendering, in the HTML's text (entities and
# backslash escapes are decoded by then): an invisible word joiner inside each
# keeps the text as it reads while no pattern matches any more.
_GH_REFERENCES = re.compile(
    r"#(?=[0-9A-Za-z])"  # #5328, owner/repo#3
    r"|(?<![0-9A-Za-z])GH(?=-\d)"  # GH-12
    r"|(?<=[A-Za-z]):(?=//)"  # http://, https://, ftp:// ...
    r"|(?<![0-9A-Za-z.])www(?=\.)",  # www.example.com
    re.IGNORECASE,
)
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{7,40}(?![0-9A-Za-z])")
"""A word GitHub may link as a commit SHA (7-40 hex digits)."""


def _break_hex(match: re.Match[str]) -> str:
    run = match.group(0)
    # pieces of at most 6 digits: none of them can name a commit
    return WORD_JOINER.join(run[i:i + 6] for i in range(0, len(run), 6))


def break_references(text: str) -> str:
    """``text`` with an invisible word joiner inside every issue or pull-request reference
    (``#5328``, ``GH-12``, ``owner/repo#3``), URL scheme or ``www.`` and 7-40 hex digit
    run (a commit SHA), so GitHub links none of them (``@`` mentions: :func:`escape_markdown`)."""
    text = _GH_REFERENCES.sub(lambda m: m.group(0) + WORD_JOINER, text)
    return _HEX_RUN.sub(_break_hex, text)


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
    characters are backslash-escaped, ``@name`` cannot mention anyone,
    ``#123``, ``GH-12``, ``owner/repo#3``, commit SHAs and bare URLs link
    nothing (:func:`break_references`), and the value is cut to ``limit``
    characters. Never put the result in a code span: entities would show
    literally there.
    """
    text = break_references(_cap(_one_line(_to_text(value)).strip(), limit))
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
    return f"{_MARKER_PREFIX}{marker_value(tenant_id)} -->"


def marker_value(value: Any) -> str:
    """A value percent-encoded for the report marker (the ``marker`` filter)."""
    return quote(_to_text(value), safe="")


def safe_url(url: str | None) -> str | None:
    """An http(s) URL that cannot break out of a Markdown link (else None)."""
    if not url or not url.startswith(("https://", "http://")):
        return None
    return quote(url, safe=":/?#[]@!$&'*+,;=%-._~").replace("(", "%28").replace(")", "%29")


def rich_text(value: Any, limit: int | None = None) -> str:
    """User text safe for rich: no markup, no terminal escapes, one line."""
    return rich_escape(plain_line(value, limit))


def scrubbed(fn):
    """Reports never show a secret this process holds (see :func:`adaptergate.trust.scrub`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from adaptergate.trust import scrub

        return scrub(fn(*args, **kwargs))

    return wrapper
