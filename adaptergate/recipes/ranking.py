"""Recommending: the recipes that match a rejection's driver slice, best first.

Ranking, 0.5.4's rule: recipes with completed applications first, by mean
observed delta (descending), then by number of completed uses. Recipes
without evidence follow, by match quality: targeted recipes (a
``slice_tag_contains`` substring matched) before catch-all ones, then the
higher regression threshold the slice cleared (a recipe meant for severe
drops fits a severe drop better), and finally ``recipe_id`` so the order
never depends on the file order.

Measured ranking, once verified applications exist: a recipe with a measured
record (:mod:`adaptergate.recipes.efficacy`) ranks by its Wilson interval's
lower bound (then the mean rise of the driver slice's delta, then n), ahead
of every recipe without one, which keep 0.5.4's order among themselves;
except a measured recipe whose record argues against it (no success, or the
whole interval below 0.5), which ranks after them. Without verified
applications the ranking and the output are 0.5.4's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from adaptergate.errors import InvalidInputError
from adaptergate.models import GateDecision
from adaptergate.recipes.efficacy import MIN_MEASURED, RecipeEfficacy, efficacy_for
from adaptergate.recipes.jsonl import brief_error
from adaptergate.recipes.model import Recipe, RecipeApplication
from adaptergate.recipes.store import RecipeStore

__all__ = ["MIN_USES_FOR_RANGE", "RecipeRecommendation", "recommend"]


MIN_USES_FOR_RANGE = 3


class RecipeRecommendation(BaseModel):
    """A recipe picked for a decision, with its evidence and how it matched."""

    recipe: Recipe
    expected_efficacy: float | None = Field(
        None, description="Mean observed_delta of completed applications; None without any."
    )
    n_uses: int = Field(0, description="Completed applications behind expected_efficacy.")
    n_pending: int = 0
    efficacy_range_low: float | None = None
    efficacy_range_high: float | None = None
    range_method: str | None = Field(
        None, description="'normal_n_gte_3': mean +/- 1.96 standard errors, with n >= 3."
    )
    matched_slice_tags: list[str] = Field(default_factory=list)
    rationale: str = ""
    match_terms: list[str] = Field(
        default_factory=list,
        description="slice_tag_contains substrings found in the driver tag; [] for a catch-all recipe.",
    )
    match_threshold: float = Field(0.0, description="The recipe's min_slice_regression_pp the slice cleared.")
    efficacy: RecipeEfficacy | None = Field(
        None, description="The gate-verified record; None when the library has no verified application at all."
    )
    basis: Literal["measured", "logged", "prior"] = Field(
        "prior", description="What ranked it: the verified success interval, 0.5.4's logged Δ, or the prior."
    )
    basis_text: str = ""

    @property
    def targeted(self) -> bool:
        return bool(self.match_terms)

    def to_json_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` plus the ranking basis and the gate-verified record."""
        out = self.to_dict()
        out["rank_basis"] = self.basis
        out["rank_basis_text"] = self.basis_text
        out["verified"] = self.efficacy.to_dict() if self.efficacy is not None else None
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of 0.5.4's ``recommend-cmd --format json`` (same keys, same order)."""
        return {
            "recipe_id": self.recipe.recipe_id,
            "recipe_name": self.recipe.name,
            "intervention_type": self.recipe.intervention_type,
            "expected_efficacy": self.expected_efficacy,
            "n_uses": self.n_uses,
            "n_pending": self.n_pending,
            "efficacy_range_low": self.efficacy_range_low,
            "efficacy_range_high": self.efficacy_range_high,
            "range_method": self.range_method,
            "matched_slice_tags": list(self.matched_slice_tags),
            "rationale": self.rationale,
            "source_paper": self.recipe.source_paper_arxiv,
        }


def _normal_range(values: list[float], z: float = 1.96) -> tuple[float, float]:
    """``mean +/- z * sample_sd / sqrt(n)`` (0.5.4's approximation, same arithmetic).

    Wide and without a coverage guarantee at the small n of a young library,
    which is why it is called a range and not a confidence interval.
    """
    n = len(values)
    if n < 2:
        return (values[0], values[0])
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    se = math.sqrt(var / n)
    return (mean - z * se, mean + z * se)


def _recommendation(
    recipe: Recipe, terms: list[str], driver_tag: str, applications: list[RecipeApplication], min_uses: int
) -> RecipeRecommendation:
    deltas = [float(a.observed_delta) for a in applications if a.observed_delta is not None]
    n_pending = sum(1 for a in applications if a.observed_delta is None)
    mean = sum(deltas) / len(deltas) if deltas else None
    low = high = method = None
    if deltas and len(deltas) >= min_uses:
        low, high = _normal_range(deltas)
        method = f"normal_n_gte_{min_uses}"
    evidence = (
        f"avg observed Δ={mean:+.3f} over n={len(deltas)}" if mean is not None else "no prior applications yet"
    )
    return RecipeRecommendation(
        recipe=recipe,
        expected_efficacy=mean,
        n_uses=len(deltas),
        n_pending=n_pending,
        efficacy_range_low=low,
        efficacy_range_high=high,
        range_method=method,
        matched_slice_tags=[driver_tag],
        rationale=f"matches driver slice `{driver_tag}`; {evidence}",
        match_terms=terms,
        match_threshold=recipe.min_slice_regression,
    )


def _rank_key(r: RecipeRecommendation) -> tuple[Any, ...]:
    if r.n_uses > 0 and r.expected_efficacy is not None:
        evidence = (0, -r.expected_efficacy, -r.n_uses)
    else:
        evidence = (1, 0.0, 0)
    return (*evidence, 0 if r.targeted else 1, -r.match_threshold, r.recipe.recipe_id)


def recommend(
    decision: GateDecision | Mapping[str, Any],
    store: RecipeStore,
    top_k: int = 5,
    *,
    min_uses_for_ci: int = MIN_USES_FOR_RANGE,
    min_measured: int = MIN_MEASURED,
) -> list[RecipeRecommendation]:
    """Recipes for a rejected decision's driver slice, best first (at most ``top_k``).

    Empty when the decision was accepted or has no driver slice. See the
    module docstring for the ranking (the matching: :meth:`Recipe.match_terms`);
    ``min_measured`` matching gate-verified applications make a recipe's rank measured.
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if not isinstance(decision, GateDecision):
        try:
            decision = GateDecision.model_validate(decision)
        except ValidationError as exc:
            raise InvalidInputError(f"not a valid gate decision ({brief_error(exc)})") from None
    if decision.accepted:
        return []
    driver = decision.driver_slice
    if driver is None:
        return []
    by_recipe: dict[str, list[RecipeApplication]] = {}
    for app in store.applications():
        by_recipe.setdefault(app.recipe_id, []).append(app)
    verified = store.verified_applications()
    recs = []
    for recipe in store.list_recipes():
        terms = recipe.match_terms(driver.slice_tag, driver.delta)
        if terms is None:
            continue
        rec = _recommendation(
            recipe, terms, driver.slice_tag, by_recipe.get(recipe.recipe_id, []), min_uses_for_ci
        )
        if verified:
            rec.efficacy = efficacy_for(recipe.recipe_id, verified, driver.slice_tag, min_measured=min_measured)
        rec.basis, rec.basis_text = _basis(rec)
        recs.append(rec)
    recs.sort(key=_ranking_key)
    return recs[:top_k]


def _basis(r: RecipeRecommendation) -> tuple[Literal["measured", "logged", "prior"], str]:
    """What ranks ``r``, and the sentence that says so."""
    eff = r.efficacy
    if eff is not None and eff.measured:
        text = "measured: " + eff.summary()
        if eff.discouraged:
            text += " (ranked after the recipes without a record)"
        return "measured", text
    if eff is not None and eff.n:
        head = (f"{eff.successes}/{eff.n} succeeded on {eff.scope} so far, too few to rank"
                f" (needs {eff.min_measured})")
    else:
        head = "no record yet"
    if r.n_uses and r.expected_efficacy is not None:
        return "logged", f"{head}: ranked by logged Δ (avg {r.expected_efficacy:+.3f} over n={r.n_uses}, 0.5.4's rule)"
    return "prior", f"{head}: {'cited' if r.recipe.source_paper_arxiv else 'library'} prior"


def _ranking_key(r: RecipeRecommendation) -> tuple[Any, ...]:
    """Measured recipes by the Wilson lower bound, the others in 0.5.4's order
    between them and the measured recipes whose record argues against them."""
    eff = r.efficacy
    if eff is not None and eff.measured:
        imp = eff.mean_driver_improvement
        return (2 if eff.discouraged else 0, -eff.ci_low, -(imp if imp is not None else -math.inf), -eff.n,
                r.recipe.recipe_id)
    return (1, *_rank_key(r))
