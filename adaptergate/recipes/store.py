"""The recipe store: the recipes file and the application logs on disk (0.5.4's files, and the verified log)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from adaptergate.errors import InvalidInputError
from adaptergate.models import GateDecision
from adaptergate.recipes.efficacy import MIN_MEASURED, RecipeEfficacy, efficacy_for
from adaptergate.recipes.jsonl import brief_error, jsonl_objects, read_text
from adaptergate.recipes.model import Recipe, RecipeApplication, VerifiedApplication
from adaptergate.recipes.verification import build_verified_application
from adaptergate.storage import atomic_write, file_lock, locked_append

__all__ = ["DEFAULT_APPLICATIONS_NAME", "RecipeStore", "seed_recipes_bytes"]


DEFAULT_APPLICATIONS_NAME = "applications.jsonl"
"""0.5.4 keeps the application log beside the recipes file under this name."""


def _load_recipes(path: Path) -> dict[str, Recipe] | None:
    text = read_text(path, "recipes file")
    if text is None:
        return None
    out: dict[str, Recipe] = {}
    for lineno, obj in jsonl_objects(path, text):
        try:
            recipe = Recipe.model_validate(obj)
        except ValidationError as exc:
            raise InvalidInputError(f"{path}:{lineno}: not a valid recipe ({brief_error(exc)})") from None
        out[recipe.recipe_id] = recipe  # a repeated id replaces the earlier one, as in 0.5.4
    return out


_M = TypeVar("_M", bound=BaseModel)


def _load_models(path: Path, model: type[_M], file_what: str, row_what: str) -> list[_M]:
    """Every line of an append-only JSONL file as ``model``; a bad line is one
    exit-2 line naming it, a torn last line is skipped with a warning."""
    text = read_text(path, file_what, torn_tail_ok=True)
    if text is None:
        return []
    out: list[_M] = []
    for lineno, obj in jsonl_objects(path, text):
        try:
            out.append(model.model_validate(obj))
        except ValidationError as exc:
            raise InvalidInputError(f"{path}:{lineno}: not a valid {row_what} ({brief_error(exc)})") from None
    return out


def _load_applications(path: Path) -> list[RecipeApplication]:
    return _load_models(path, RecipeApplication, "applications file", "recipe application")


def _load_verified(path: Path) -> list[VerifiedApplication]:
    return _load_models(path, VerifiedApplication, "verified applications file", "verified recipe application")


class RecipeStore:
    """The recipe library and the application log, both JSONL (0.5.4's files).

    ``applications_path`` defaults to ``applications.jsonl`` beside the
    recipes file, where 0.5.4's CLI looks. Missing files read as empty;
    :attr:`recipes_file_exists` tells the two apart.

    The application log is append-only. Appending a record whose
    ``application_id`` is already logged (see :meth:`complete_application`)
    supersedes the earlier one: the latest record of an id counts.

    Gate-verified applications (:meth:`log_outcome`) go to ``verified_path``
    (default: ``<applications stem>.verified.jsonl`` beside the application
    log, ``applications.verified.jsonl``), one :class:`VerifiedApplication`
    a line, and their 0.5.4-shaped summary to the application log, so 0.5.4
    can still read that file.
    """

    def __init__(
        self,
        recipes_path: str | os.PathLike[str],
        applications_path: str | os.PathLike[str] | None = None,
        verified_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.recipes_path = Path(recipes_path)
        self.applications_path = (
            Path(applications_path)
            if applications_path is not None
            else self.recipes_path.with_name(DEFAULT_APPLICATIONS_NAME)
        )
        self.verified_path = (
            Path(verified_path)
            if verified_path is not None
            else self.applications_path.with_name(f"{self.applications_path.stem}.verified.jsonl")
        )
        self.reload()

    def __repr__(self) -> str:
        return f"RecipeStore({str(self.recipes_path)!r}, {str(self.applications_path)!r})"

    def reload(self) -> None:
        """Re-read the recipes; the application logs are re-read on next use."""
        loaded = _load_recipes(self.recipes_path)
        self.recipes_file_exists = loaded is not None
        self._recipes: dict[str, Recipe] = loaded or {}
        self._log_cache: list[RecipeApplication] | None = None  # read on first use
        self._verified_cache: list[VerifiedApplication] | None = None

    @property
    def _log(self) -> list[RecipeApplication]:
        if self._log_cache is None:
            self._log_cache = _load_applications(self.applications_path)
        return self._log_cache

    # -- recipes -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._recipes)

    def __contains__(self, recipe_id: object) -> bool:
        return recipe_id in self._recipes

    def get_recipe(self, recipe_id: str) -> Recipe | None:
        return self._recipes.get(recipe_id)

    def list_recipes(self) -> list[Recipe]:
        """Recipes in file order."""
        return list(self._recipes.values())

    def add_recipe(self, recipe: Recipe) -> None:
        """Add or replace a recipe; the file is rewritten atomically.

        The file is re-read under its lock first, so recipes another process
        added since this store was loaded are kept.
        """
        with file_lock(self.recipes_path):
            current = _load_recipes(self.recipes_path) or {}
            current[recipe.recipe_id] = recipe
            atomic_write(
                self.recipes_path,
                ((r.to_json() + "\n").encode("utf-8") for r in current.values()),
                locked=True,
            )
        self._recipes = current
        self.recipes_file_exists = True

    # -- applications ----------------------------------------------------------

    def add_application(self, app: RecipeApplication) -> None:
        """Append one application to the log."""
        locked_append(self.applications_path, [app.to_json()])
        if self._log_cache is not None:
            self._log_cache.append(app)

    def log_application(
        self,
        *,
        recipe_id: str,
        tenant_id: str,
        pre_decision_score: float,
        post_decision_score: float | None = None,
        driver_slice_tag: str | None = None,
        slice_match_signature: list[str] | None = None,
        application_id: str | None = None,
    ) -> RecipeApplication:
        """Create (tenant id hashed) and append an application."""
        app = RecipeApplication.new(
            recipe_id=recipe_id, tenant_id=tenant_id, pre_decision_score=pre_decision_score,
            post_decision_score=post_decision_score, driver_slice_tag=driver_slice_tag,
            slice_match_signature=slice_match_signature, application_id=application_id,
        )
        self.add_application(app)
        return app

    def complete_application(self, application_id: str, post_decision_score: float) -> RecipeApplication:
        """Record the outcome of a pending application (appends its completed copy)."""
        current = {a.application_id: a for a in self._log}.get(application_id)
        if current is None:
            raise KeyError(f"no application {application_id!r} in {self.applications_path}")
        done = current.completed(post_decision_score)
        self.add_application(done)
        return done

    def applications(self) -> list[RecipeApplication]:
        """The latest record of each application id, in first-logged order."""
        latest: dict[str, RecipeApplication] = {}
        for a in self._log:
            latest[a.application_id] = a
        return list(latest.values())

    def all_applications(self) -> Iterator[RecipeApplication]:
        return iter(self.applications())

    def applications_for(self, recipe_id: str) -> list[RecipeApplication]:
        return [a for a in self.applications() if a.recipe_id == recipe_id]

    def n_applications(self) -> int:
        return len(self.applications())

    # -- gate-verified applications ----------------------------------------

    def verified_applications(self) -> list[VerifiedApplication]:
        """Every gate-verified application, oldest first."""
        if self._verified_cache is None:
            self._verified_cache = _load_verified(self.verified_path)
        return list(self._verified_cache)

    def efficacy(
        self, recipe_id: str, driver_slice_tag: str, *, min_measured: int = MIN_MEASURED
    ) -> RecipeEfficacy:
        """The verified record of ``recipe_id`` for a rejection driven by ``driver_slice_tag``."""
        return efficacy_for(recipe_id, self.verified_applications(), driver_slice_tag, min_measured=min_measured)

    def log_outcome(
        self,
        *,
        recipe_id: str,
        decision: GateDecision,
        outcome: GateDecision,
        note: str | None = None,
        application_id: str | None = None,
    ) -> VerifiedApplication:
        """Record that ``recipe_id`` was applied to the rejection ``decision`` and
        the gate then decided ``outcome``.

        Checked first (:func:`check_application`): the recipe is in the
        library, the decision is a rejection with a driver slice, both are for
        the same tenant, and the outcome is newer. The same (recipe, decision,
        outcome) logged twice is refused. Raises :class:`InvalidInputError`.
        """
        if recipe_id not in self:
            where = "" if self.recipes_file_exists else " (the file does not exist)"
            raise InvalidInputError(f"no recipe with id {recipe_id!r} in {self.recipes_path}{where}")
        app = build_verified_application(
            recipe_id=recipe_id, decision=decision, outcome=outcome, note=note, application_id=application_id
        )
        with file_lock(self.verified_path):
            existing = _load_verified(self.verified_path)
            dup = next((a for a in existing if a.identity == app.identity), None)
            if dup is not None:
                raise InvalidInputError(
                    f"already logged: application {dup.application_id} records {recipe_id} for this"
                    f" rejection ({decision.candidate_id} at {decision.timestamp}) and this outcome"
                    f" ({outcome.candidate_id} at {outcome.timestamp})"
                )
            locked_append(self.verified_path, [app.to_json()], locked=True)
        self._verified_cache = [*existing, app]
        self.add_application(app.legacy())
        return app


def seed_recipes_bytes() -> bytes:
    """The bundled seed library (0.5.4's seven recipes), byte for byte."""
    try:
        return (resources.files("adaptergate") / "data" / "seed_recipes.jsonl").read_bytes()
    except (FileNotFoundError, OSError) as exc:  # a broken installation
        raise InvalidInputError(f"the bundled seed recipes are missing from this installation ({exc})") from None
