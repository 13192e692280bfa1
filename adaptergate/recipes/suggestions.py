"""Recommendations as plain data for a report: "What now?" in the PR comment, with arXiv links."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adaptergate.errors import InvalidInputError
from adaptergate.models import GateDecision
from adaptergate.recipes.jsonl import brief_error
from adaptergate.recipes.ranking import RecipeRecommendation, recommend
from adaptergate.recipes.store import RecipeStore

__all__ = ["arxiv_id", "arxiv_url", "recommendations_for", "recommendations_from_file"]


_ARXIV_ID = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?")


def arxiv_id(value: Any) -> str | None:
    """A well-formed arXiv identifier (``2408.06133``, ``hep-th/9901001v2``;
    an ``arXiv:`` prefix is dropped), else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text[:6].lower() == "arxiv:":
        text = text[6:]
    return text if _ARXIV_ID.fullmatch(text) else None


def arxiv_url(value: Any) -> str | None:
    """``https://arxiv.org/abs/<id>`` for a well-formed id only (else None)."""
    ident = arxiv_id(value)
    return f"https://arxiv.org/abs/{ident}" if ident else None


def _why(r: RecipeRecommendation, tag: str, delta: float) -> str:
    if r.match_terms:
        terms = ", ".join(f"“{t}”" for t in r.match_terms)
        text = f"the driver slice {tag} contains {terms}"
    else:
        text = f"it applies to any slice; the driver slice is {tag}"
    if r.match_threshold > 0:
        text += f", and its drop of {abs(delta):.3f} clears the recipe's {r.match_threshold:.3f} threshold"
    return text


def recommendations_from_file(
    decision: GateDecision, recipes_path: str | os.PathLike[str] | None, k: int = 3
) -> list[dict[str, Any]] | None:
    """:func:`recommendations_for` with the library at ``recipes_path``; None without one.

    A missing library file is one exit-2 line, like every recipes command.
    """
    if recipes_path is None or decision.accepted:
        return None
    path = Path(recipes_path)
    if not path.is_file():
        raise InvalidInputError(f"recipe library {path} not found (create it with 'adaptergate recipes seed')")
    return recommendations_for(decision, RecipeStore(path), k=k)


def recommendations_for(
    decision: GateDecision | Mapping[str, Any], store: RecipeStore, k: int = 3
) -> list[dict[str, Any]]:
    """Up to ``k`` recipes for a rejected decision, as plain dicts for
    :func:`adaptergate.report.render` (``recommendations=``): ``recipe_id``,
    ``name``, ``intervention_type``, ``arxiv_id`` and ``arxiv_url`` (None unless
    the citation is a well-formed arXiv id), ``paper_title``, ``why`` (how it
    matches), ``record`` (its measured record, or "no record yet: …") and
    ``basis``. Empty for an accepted or driverless decision."""
    if not isinstance(decision, GateDecision):
        try:
            decision = GateDecision.model_validate(decision)
        except ValidationError as exc:
            raise InvalidInputError(f"not a valid gate decision ({brief_error(exc)})") from None
    if k <= 0:
        return []
    recs = recommend(decision, store, top_k=k)
    driver = decision.driver_slice
    if driver is None:
        return []
    return [
        {
            "recipe_id": r.recipe.recipe_id,
            "name": r.recipe.name or r.recipe.recipe_id,
            "intervention_type": r.recipe.intervention_type,
            "arxiv_id": arxiv_id(r.recipe.source_paper_arxiv),
            "arxiv_url": arxiv_url(r.recipe.source_paper_arxiv),
            "paper_title": r.recipe.source_paper_title,
            "why": _why(r, driver.slice_tag, driver.delta),
            "record": r.basis_text,
            "basis": r.basis,
        }
        for r in recs
    ]
