"""Numbers in reports: signed deltas, scores, percentages, p-values ("n/a" when not finite)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite", "fmt_num", "fmt_p", "fmt_pct", "fmt_score", "fmt_signed"]


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
