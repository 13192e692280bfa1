"""The recipe library: paper-cited repairs for a broken slice, their recorded applications and measured efficacy.

A :class:`Recipe` is a typed intervention for fixing a regressed adapter,
usually derived from a paper it cites; a :class:`RecipeApplication` is one use
of it on one adapter, with the measured before/after scores. Given a rejected
:class:`~adaptergate.models.GateDecision`, :func:`recommend` picks the recipes
whose ``applies_when`` matches the decision's driver slice and ranks them by
the efficacy observed in past applications.

One job a module: :mod:`~adaptergate.recipes.model` (the records and their
0.5.4 file formats), :mod:`~adaptergate.recipes.jsonl` (reading JSONL files),
:mod:`~adaptergate.recipes.store` (:class:`RecipeStore`: the files on disk),
:mod:`~adaptergate.recipes.efficacy` (Wilson intervals, a recipe's record),
:mod:`~adaptergate.recipes.ranking` (:func:`recommend`),
:mod:`~adaptergate.recipes.suggestions` (recommendations as plain data for a
report), :mod:`~adaptergate.recipes.refs` (naming a gate decision),
:mod:`~adaptergate.recipes.verification` (checking an application's two
decisions) and :mod:`~adaptergate.recipes.printing` (the commands' output).
"""

from adaptergate.recipes.efficacy import MIN_MEASURED, RecipeEfficacy, efficacy_for, wilson_interval
from adaptergate.recipes.model import Recipe, RecipeApplication, VerifiedApplication, hash_tenant, slice_key
from adaptergate.recipes.printing import (
    application_json,
    print_application,
    print_recommendations,
    recommendations_json,
)
from adaptergate.recipes.ranking import RecipeRecommendation, recommend
from adaptergate.recipes.refs import (
    REF_HELP,
    SELECTORS,
    ResolvedDecision,
    read_decision,
    resolve_application_refs,
    resolve_decision_ref,
    settings_of,
)
from adaptergate.recipes.store import DEFAULT_APPLICATIONS_NAME, RecipeStore, seed_recipes_bytes
from adaptergate.recipes.suggestions import (
    arxiv_id,
    arxiv_url,
    recommendations_for,
    recommendations_from_file,
)
from adaptergate.recipes.verification import build_verified_application, check_application, check_rejection

__all__ = [
    "DEFAULT_APPLICATIONS_NAME",
    "MIN_MEASURED",
    "REF_HELP",
    "SELECTORS",
    "Recipe",
    "RecipeApplication",
    "RecipeEfficacy",
    "RecipeRecommendation",
    "RecipeStore",
    "ResolvedDecision",
    "VerifiedApplication",
    "application_json",
    "arxiv_id",
    "arxiv_url",
    "build_verified_application",
    "check_application",
    "check_rejection",
    "efficacy_for",
    "hash_tenant",
    "print_application",
    "print_recommendations",
    "read_decision",
    "recommend",
    "recommendations_for",
    "recommendations_from_file",
    "recommendations_json",
    "resolve_application_refs",
    "resolve_decision_ref",
    "seed_recipes_bytes",
    "settings_of",
    "slice_key",
    "wilson_interval",
]
