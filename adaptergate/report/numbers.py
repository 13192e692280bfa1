"""Numbers in reports: signed deltas, scores, percentages, p-values ("n/a" when not finite)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["NBSP", "finite", "fmt_num", "fmt_p", "fmt_pct", "fmt_score", "fmt_signed", "plural"]


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_signed(x: Any, digits: int = 3) -> str:
    return f"{x:+.{digits}f}" if finite(x) else "n/a"


def fmt_score(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if finite(x) else "n/a"


def fmt_pct(x: Any) -> str:
    return f"{x * 100:.0f}%" if finite(x) else "n/a"


def fmt_num(x: Any) -> str:
    return f"{x:g}" if finite(x) else "n/a"


def fmt_p(x: Any) -> str:
    """A p-value, compact: ``<0.0001``, ``0.0003``, ``0.034``."""
    if not finite(x):
        return "n/a"
    if x < 1e-4:
        return "<0.0001"
    return f"{x:.4f}" if x < 0.01 else f"{x:.3f}"


NBSP = "\u00a0"
"""A non-breaking space: keeps a number and its interval on one line in a table cell."""


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``1 query``, ``2 queries``, ``1 tenant``, ``3 tenants`` (the count and the word)."""
    word = singular if n == 1 else (plural_form or singular + "s")
    return f"{n:,} {word}"
