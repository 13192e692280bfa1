"""A recipe's measured record: gate-verified applications counted with a Wilson interval.

A recipe's record for a rejection counts its verified applications whose
driver slice tag is the rejection's, else those whose driver slice has the
same key (``intent=*``), else all of them: the most specific level with at
least :data:`MIN_MEASURED` (3). Its success rate (outcome accepted) gets a 95%
Wilson score interval; with that many applications the recipe is *measured*
(how a measured record ranks: :mod:`adaptergate.recipes.ranking`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from adaptergate.recipes.model import VerifiedApplication, slice_key

__all__ = ["MIN_MEASURED", "RecipeEfficacy", "efficacy_for", "wilson_interval"]


Z_95 = 1.959963984540054
"""Two-sided 95% normal quantile."""


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    ``(0, 1)`` for ``n == 0``. Same values as
    ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return (low, high)


MIN_MEASURED = 3
"""Matching gate-verified applications a recipe needs before its measured
success rate ranks it (below that: 0.5.4's order)."""

MatchLevel = Literal["driver", "key", "any"]


class RecipeEfficacy(BaseModel):
    """A recipe's gate-verified record for one rejection's slice signature.

    ``level`` is which applications count: those whose driver slice tag is
    this rejection's (``driver``), else those whose driver slice has the same
    key (``key``: ``intent=*``), else all of the recipe's (``any``): the most
    specific level with at least ``min_measured`` applications, else the most
    specific one with any (``None``: none at all).
    """

    recipe_id: str
    level: MatchLevel | None = None
    scope: str = Field("", description="What `level` means here: 'driver slice intent=x', 'intent=* slices'.")
    n: int = 0
    successes: int = 0
    ci_low: float = 0.0
    ci_high: float = 1.0
    mean_driver_improvement: float | None = None
    n_driver_improvement: int = 0
    min_measured: int = MIN_MEASURED
    n_verified_total: int = Field(0, description="The recipe's gate-verified applications, any slice.")

    @property
    def measured(self) -> bool:
        """Enough matching applications to rank by the interval."""
        return self.n >= self.min_measured

    @property
    def rate(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def discouraged(self) -> bool:
        """Measured, and the record argues against it: no success yet, or a
        95% interval entirely below one success in two."""
        return self.measured and (self.successes == 0 or self.ci_high < 0.5)

    def summary(self) -> str:
        """``4/5 succeeded, 95% CI 0.38–0.96 on driver slice intent=x; …``"""
        text = f"{self.successes}/{self.n} succeeded, 95% CI {self.ci_low:.2f}–{self.ci_high:.2f} on {self.scope}"
        if self.mean_driver_improvement is not None:
            text += f"; driver-slice Δ moved {self.mean_driver_improvement:+.3f} on average"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level, "scope": self.scope, "n": self.n, "successes": self.successes,
            "success_rate": self.rate, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "ci_method": "wilson_95", "mean_driver_improvement": self.mean_driver_improvement,
            "n_driver_improvement": self.n_driver_improvement, "measured": self.measured,
            "min_measured": self.min_measured, "n_verified_total": self.n_verified_total,
        }


def efficacy_for(
    recipe_id: str,
    applications: list[VerifiedApplication],
    driver_slice_tag: str,
    *,
    min_measured: int = MIN_MEASURED,
) -> RecipeEfficacy:
    """The record of ``recipe_id`` for a rejection whose driver slice is ``driver_slice_tag``."""
    mine = [a for a in applications if a.recipe_id == recipe_id]
    key = slice_key(driver_slice_tag)
    levels: list[tuple[MatchLevel, str, list[VerifiedApplication]]] = [
        ("driver", f"driver slice {driver_slice_tag}", [a for a in mine if a.driver_slice_tag == driver_slice_tag]),
        ("key", f"{key}=* slices" if "=" in driver_slice_tag else f"{key} slices",
         [a for a in mine if a.driver_slice_key == key]),
        ("any", "any slice", mine),
    ]
    chosen = next((lv for lv in levels if len(lv[2]) >= min_measured), None)
    if chosen is None:
        chosen = next((lv for lv in levels if lv[2]), None)
    if chosen is None:
        return RecipeEfficacy(recipe_id=recipe_id, min_measured=min_measured)
    level, scope, apps = chosen
    successes = sum(1 for a in apps if a.accepted)
    low, high = wilson_interval(successes, len(apps))
    improvements = [x for x in (a.driver_improvement for a in apps) if x is not None]
    return RecipeEfficacy(
        recipe_id=recipe_id, level=level, scope=scope, n=len(apps), successes=successes, ci_low=low,
        ci_high=high, mean_driver_improvement=sum(improvements) / len(improvements) if improvements else None,
        n_driver_improvement=len(improvements), min_measured=min_measured, n_verified_total=len(mine),
    )
