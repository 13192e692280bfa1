"""The recipe library: repair recipes for a rejected adapter, and their track record.

A :class:`Recipe` is a typed intervention for fixing a regressed adapter
("decay the LoRA learning rate", "prune recent replay labels"), usually
derived from a paper it cites. A :class:`RecipeApplication` is one use of a
recipe on one adapter, with the measured before/after scores. Given a
rejected :class:`~adaptergate.models.GateDecision`, :func:`recommend` picks
the recipes whose ``applies_when`` matches the decision's driver slice and
ranks them by the efficacy observed in past applications.

File formats are adaptergate 0.5.4's, read and written unchanged:

* ``recipes.jsonl``: one :class:`Recipe` per line (0.5.4's dataclass fields,
  in its order). Rewritten whole (atomically) when a recipe is added.
* ``applications.jsonl``: append-only, one :class:`RecipeApplication` per
  line. Tenants are stored only as ``tenant_hash`` (SHA-256 of the tenant id,
  first 16 hex digits, as 0.5.4 does); a raw ``tenant_id`` given to
  :class:`RecipeApplication` is hashed and never written.

Lines are serialized exactly as 0.5.4 serialized them (``json.dumps`` with its
default separators and ASCII escapes), so a file written here is
byte-identical to the one 0.5.4 would have written.

Matching (as 0.5.4): a recipe applies to a driver slice when its
``applies_when.slice_tag_contains`` is empty or one of its substrings occurs
in the driver's slice tag (case-insensitive), and the slice's drop
``abs(delta)`` is at least ``applies_when.min_slice_regression_pp`` (on the
0-1 score scale, despite the name; default 0).

Ranking: recipes with completed applications first, by mean observed delta
(descending), then by number of completed uses. Recipes without evidence
follow, by match quality: targeted recipes (a ``slice_tag_contains``
substring matched) before catch-all ones, then the higher regression
threshold the slice cleared (a recipe meant for severe drops fits a severe
drop better), and finally ``recipe_id`` so the order never depends on the
file order.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adaptergate.errors import InvalidInputError
from adaptergate.models import GateDecision
from adaptergate.storage import atomic_write, file_lock, locked_append

__all__ = [
    "DEFAULT_APPLICATIONS_NAME",
    "Recipe",
    "RecipeApplication",
    "RecipeRecommendation",
    "RecipeStore",
    "hash_tenant",
    "print_recommendations",
    "read_decision",
    "recommend",
    "seed_recipes_bytes",
]

DEFAULT_APPLICATIONS_NAME = "applications.jsonl"
"""0.5.4 keeps the application log beside the recipes file under this name."""

MIN_USES_FOR_RANGE = 3

HONESTY_NOTE = (
    "Note: no prior applications have been logged for any matching recipe. The ranking below"
    " reflects slice matching only, not observed efficacy. To make the ranking empirical, log"
    " recipe outcomes via RecipeStore.add_application(...) after running a recipe."
)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def hash_tenant(tenant_id: str) -> str:
    """Anonymize a tenant id: SHA-256 hex digest, first 16 characters (0.5.4's)."""
    return hashlib.sha256(tenant_id.encode("utf-8")).hexdigest()[:16]


def _dumps_054(record: dict[str, Any]) -> str:
    """One line as 0.5.4 wrote it: ``json.dumps(asdict(obj), default=str)``."""
    return json.dumps(record, default=str)


def _finite_or_none(value: float | None, name: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class Recipe(BaseModel):
    """A typed repair intervention. Fields and their order are 0.5.4's.

    ``applies_when`` keys understood by the matcher:

    * ``slice_tag_contains``: substrings; the recipe applies when the driver
      slice tag contains any of them (case-insensitive). Empty: any slice.
    * ``min_slice_regression_pp``: the driver slice must have dropped by at
      least this much (0-1 score scale). Default 0.

    Other keys (0.5.4 documents ``intervention_for``) are kept but not used
    for matching, as in 0.5.4. Unknown top-level fields are kept too, so a
    rewrite never loses data.
    """

    model_config = ConfigDict(extra="allow")

    recipe_id: str = Field(min_length=1)
    name: str
    intervention_type: str
    description: str
    source_paper_arxiv: str | None = None
    source_paper_title: str | None = None
    applies_when: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: str = Field(default_factory=_utc_now)

    @field_validator("applies_when")
    @classmethod
    def _check_applies_when(cls, v: dict[str, Any]) -> dict[str, Any]:
        contains = v.get("slice_tag_contains")
        if contains is not None and not isinstance(contains, str):
            if not isinstance(contains, list) or not all(isinstance(c, str) for c in contains):
                raise ValueError("slice_tag_contains must be a list of strings")
        threshold = v.get("min_slice_regression_pp")
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
                raise ValueError("min_slice_regression_pp must be a number")
            if not math.isfinite(threshold):
                raise ValueError("min_slice_regression_pp must be finite")
        return v

    @property
    def slice_tag_contains(self) -> list[str]:
        """The substrings of ``applies_when`` (a lone string counts as one)."""
        raw = self.applies_when.get("slice_tag_contains") or []
        return [raw] if isinstance(raw, str) else list(raw)

    @property
    def min_slice_regression(self) -> float:
        raw = self.applies_when.get("min_slice_regression_pp")
        return 0.0 if raw is None else float(raw)

    def match_terms(self, driver_slice_tag: str, driver_delta: float) -> list[str] | None:
        """The ``slice_tag_contains`` substrings found in the tag (``[]`` for a
        catch-all recipe), or ``None`` when the recipe does not apply."""
        contains = self.slice_tag_contains
        tag = driver_slice_tag.lower()
        found = [c for c in contains if c.lower() in tag]
        if contains and not found:
            return None
        if abs(driver_delta) < self.min_slice_regression:
            return None
        return found

    def matches(self, driver_slice_tag: str, driver_delta: float) -> bool:
        """True when the recipe applies to this driver slice (0.5.4's test)."""
        return self.match_terms(driver_slice_tag, driver_delta) is not None

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """One line, byte-identical to 0.5.4's ``Recipe.to_json()``."""
        return _dumps_054(self.to_record())


class RecipeApplication(BaseModel):
    """One use of one recipe on one adapter. Fields and order are 0.5.4's.

    Pass ``tenant_id=`` instead of ``tenant_hash=`` to have it hashed: the
    raw id is dropped before anything is stored.
    """

    model_config = ConfigDict(extra="allow")

    application_id: str = Field(min_length=1)
    recipe_id: str = Field(min_length=1)
    tenant_hash: str
    pre_decision_score: float
    post_decision_score: float | None = None
    observed_delta: float | None = None
    driver_slice_tag: str | None = None
    slice_match_signature: list[str] = Field(default_factory=list)
    applied_at: str = Field(default_factory=_utc_now)
    completed_at: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _hash_tenant_id(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "tenant_id" in data:
            data = dict(data)
            tenant_id = data.pop("tenant_id")
            if not isinstance(tenant_id, str):
                raise ValueError("tenant_id must be a string")
            hashed = hash_tenant(tenant_id)
            if data.get("tenant_hash") not in (None, hashed):
                raise ValueError("tenant_hash does not match tenant_id")
            data["tenant_hash"] = hashed
        return data

    @field_validator("pre_decision_score")
    @classmethod
    def _pre_finite(cls, v: float) -> float:
        return _finite_or_none(v, "pre_decision_score")  # type: ignore[return-value]

    @field_validator("post_decision_score", "observed_delta")
    @classmethod
    def _opt_finite(cls, v: float | None, info: Any) -> float | None:
        return _finite_or_none(v, info.field_name)

    @classmethod
    def new(
        cls,
        *,
        recipe_id: str,
        tenant_id: str,
        pre_decision_score: float,
        post_decision_score: float | None = None,
        driver_slice_tag: str | None = None,
        slice_match_signature: list[str] | None = None,
        application_id: str | None = None,
    ) -> "RecipeApplication":
        """A new application; completed at once when the post score is known."""
        app = cls(
            application_id=application_id or uuid.uuid4().hex,
            recipe_id=recipe_id,
            tenant_id=tenant_id,
            pre_decision_score=pre_decision_score,
            driver_slice_tag=driver_slice_tag,
            slice_match_signature=list(slice_match_signature or []),
        )
        return app if post_decision_score is None else app.completed(post_decision_score)

    @property
    def pending(self) -> bool:
        """Not yet re-evaluated: no ``observed_delta`` (what the ranking uses)."""
        return self.observed_delta is None

    def completed(self, post_decision_score: float, *, completed_at: str | None = None) -> "RecipeApplication":
        """A copy with the post score, ``observed_delta = post - pre`` and a completion time."""
        return self.model_validate({
            **self.to_record(),
            "post_decision_score": post_decision_score,
            "observed_delta": post_decision_score - self.pre_decision_score,
            "completed_at": completed_at or _utc_now(),
        })

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """One line, byte-identical to 0.5.4's ``RecipeApplication.to_json()``."""
        return _dumps_054(self.to_record())


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

    @property
    def targeted(self) -> bool:
        return bool(self.match_terms)

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


# ---------------------------------------------------------------------------
# Reading JSONL
# ---------------------------------------------------------------------------


def _read_text(path: Path, what: str) -> str | None:
    """The file as text, or ``None`` when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InvalidInputError(f"cannot read {what} {path}: it is a directory") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {path} is not valid UTF-8 (byte {exc.start})") from None


def _jsonl_objects(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise InvalidInputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "record"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    if exc.error_count() > 3:
        parts.append(f"... and {exc.error_count() - 3} more")
    return "; ".join(parts)


def _load_recipes(path: Path) -> dict[str, Recipe] | None:
    text = _read_text(path, "recipes file")
    if text is None:
        return None
    out: dict[str, Recipe] = {}
    for lineno, obj in _jsonl_objects(path, text):
        try:
            recipe = Recipe.model_validate(obj)
        except ValidationError as exc:
            raise InvalidInputError(f"{path}:{lineno}: not a valid recipe ({_short(exc)})") from None
        out[recipe.recipe_id] = recipe  # a repeated id replaces the earlier one, as in 0.5.4
    return out


def _load_applications(path: Path) -> list[RecipeApplication]:
    text = _read_text(path, "applications file")
    if text is None:
        return []
    out: list[RecipeApplication] = []
    for lineno, obj in _jsonl_objects(path, text):
        try:
            out.append(RecipeApplication.model_validate(obj))
        except ValidationError as exc:
            raise InvalidInputError(
                f"{path}:{lineno}: not a valid recipe application ({_short(exc)})"
            ) from None
    return out


# ---------------------------------------------------------------------------
# Store
# ---------------------------------------------------------------------------


class RecipeStore:
    """The recipe library and the application log, both JSONL (0.5.4's files).

    ``applications_path`` defaults to ``applications.jsonl`` beside the
    recipes file, where 0.5.4's CLI looks. Missing files read as empty;
    :attr:`recipes_file_exists` tells the two apart.

    The application log is append-only. Appending a record whose
    ``application_id`` is already logged (see :meth:`complete_application`)
    supersedes the earlier one: the latest record of an id counts.
    """

    def __init__(
        self, recipes_path: str | os.PathLike[str], applications_path: str | os.PathLike[str] | None = None
    ) -> None:
        self.recipes_path = Path(recipes_path)
        self.applications_path = (
            Path(applications_path)
            if applications_path is not None
            else self.recipes_path.with_name(DEFAULT_APPLICATIONS_NAME)
        )
        self.reload()

    def __repr__(self) -> str:
        return f"RecipeStore({str(self.recipes_path)!r}, {str(self.applications_path)!r})"

    def reload(self) -> None:
        """Re-read the recipes; the application log is re-read on next use."""
        loaded = _load_recipes(self.recipes_path)
        self.recipes_file_exists = loaded is not None
        self._recipes: dict[str, Recipe] = loaded or {}
        self._log_cache: list[RecipeApplication] | None = None  # read on first use

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


def seed_recipes_bytes() -> bytes:
    """The bundled seed library (0.5.4's seven recipes), byte for byte."""
    try:
        return (resources.files("adaptergate") / "data" / "seed_recipes.jsonl").read_bytes()
    except (FileNotFoundError, OSError) as exc:  # a broken installation
        raise InvalidInputError(f"the bundled seed recipes are missing from this installation ({exc})") from None


# ---------------------------------------------------------------------------
# Recommending
# ---------------------------------------------------------------------------


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
) -> list[RecipeRecommendation]:
    """Recipes for a rejected decision's driver slice, best first (at most ``top_k``).

    Empty when the decision was accepted or has no driver slice. See the
    module docstring for the matching and the ranking.
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if not isinstance(decision, GateDecision):
        try:
            decision = GateDecision.model_validate(decision)
        except ValidationError as exc:
            raise InvalidInputError(f"not a valid gate decision ({_short(exc)})") from None
    if decision.accepted:
        return []
    driver = decision.driver_slice
    if driver is None:
        return []
    by_recipe: dict[str, list[RecipeApplication]] = {}
    for app in store.applications():
        by_recipe.setdefault(app.recipe_id, []).append(app)
    recs = []
    for recipe in store.list_recipes():
        terms = recipe.match_terms(driver.slice_tag, driver.delta)
        if terms is None:
            continue
        recs.append(_recommendation(
            recipe, terms, driver.slice_tag, by_recipe.get(recipe.recipe_id, []), min_uses_for_ci
        ))
    recs.sort(key=_rank_key)
    return recs[:top_k]


# ---------------------------------------------------------------------------
# recommend-cmd helpers: reading the decision, printing the result
# ---------------------------------------------------------------------------


def _is_decision_record(obj: dict[str, Any]) -> bool:
    # 0.5.4's audit lines have no "kind"; ours are "decision" or "error".
    return obj.get("kind", "decision") == "decision"


def read_decision(path: str | os.PathLike[str], line: int = -1) -> GateDecision:
    """The gate decision to recommend for, from a decision file or an audit log.

    ``path`` holds either one JSON object (a decision, also pretty-printed, as
    ``gate --format json`` writes it) or JSON Lines (an audit log: 0.5.4's or
    ours). ``line`` picks among the *decision records* only, 0-based,
    negative from the end (``-1``: the newest); records of failed runs
    (``"kind": "error"``) are skipped and not counted. For a 0.5.4 audit log,
    which holds only decisions, this is 0.5.4's ``--line``.
    """
    p = Path(path)
    text = _read_text(p, "decision file")
    if text is None:
        raise InvalidInputError(f"decision file not found: {p}")
    if not text.strip():
        raise InvalidInputError(f"decision file {p} is empty")
    records: list[tuple[int | None, dict[str, Any]]]
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        records = list(_jsonl_objects(p, text))
    else:
        if not isinstance(whole, dict):
            raise InvalidInputError(
                f"{p}: expected a gate decision (a JSON object) or an audit log (JSON Lines),"
                f" got a JSON {type(whole).__name__}"
            )
        records = [(None, whole)]
    decisions = [(n, obj) for n, obj in records if _is_decision_record(obj)]
    if not decisions:
        raise InvalidInputError(
            f"{p} holds no gate decision ({len(records)} record(s), none of kind 'decision')"
        )
    idx = line if line >= 0 else len(decisions) + line
    if not 0 <= idx < len(decisions):
        raise InvalidInputError(
            f"--line {line} is out of range: {p} holds {len(decisions)} decision record(s)"
            " (--line counts decision records only: 0 = first, -1 = last)"
        )
    lineno, obj = decisions[idx]
    try:
        return GateDecision.model_validate(obj)
    except ValidationError as exc:
        where = f"{p}:{lineno}" if lineno is not None else str(p)
        raise InvalidInputError(f"{where}: not a valid gate decision ({_short(exc)})") from None


def _evidence_label(r: RecipeRecommendation) -> str:
    if r.expected_efficacy is None:
        label = "no prior applications"
    else:
        label = f"avg Δ={r.expected_efficacy:+.3f} over n={r.n_uses}"
        if r.efficacy_range_low is not None and r.efficacy_range_high is not None:
            label += f", range {r.efficacy_range_low:+.3f}..{r.efficacy_range_high:+.3f}"
    if r.n_pending:
        label += f"; {r.n_pending} pending"
    return label


def print_recommendations(
    decision: GateDecision,
    recs: list[RecipeRecommendation],
    *,
    console: Any,
    err_console: Any,
    store: RecipeStore | None = None,
) -> None:
    """0.5.4's human output of ``recommend-cmd`` (the honesty note goes to stderr)."""
    from rich.text import Text

    def out(text: str, style: str | None = None) -> None:
        console.print(Text(text, style=style or ""), highlight=False)

    if not recs:
        if decision.accepted:
            out("Decision was ACCEPTED — no repair recipe needed.", "green")
        elif decision.driver_slice is None:
            out(
                "No driver slice on this decision — add slice tags to your held-out queries to"
                " enable recipe matching.", "yellow",
            )
        elif store is not None and len(store) == 0:
            out(
                f"The recipe library {store.recipes_path} is empty. Run adaptergate recipes seed"
                f" --recipes {store.recipes_path} to populate it.", "yellow",
            )
        else:
            out(f"No recipes in the library match driver slice `{decision.driver_slice.slice_tag}`.", "yellow")
        return
    driver = decision.driver_slice
    if driver is not None:
        console.rule(Text(f"Recipes for driver slice: {driver.slice_tag}", style="bold magenta"))
    if all(r.n_uses == 0 for r in recs):
        err_console.print(Text(HONESTY_NOTE), highlight=False)
    for i, r in enumerate(recs, 1):
        line = Text()
        line.append(f"\n{i}. {r.recipe.name}", style="bold cyan")
        line.append(f"   [{_evidence_label(r)}]")
        console.print(line, highlight=False)
        out(f"   id: {r.recipe.recipe_id}")
        out(f"   intervention: {r.recipe.intervention_type}")
        if r.recipe.source_paper_arxiv:
            out(f"   source: arXiv {r.recipe.source_paper_arxiv}")
        out(f"   {r.recipe.description}")
