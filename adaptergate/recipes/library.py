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

New here, beside them: ``applications.verified.jsonl`` (``<applications
stem>.verified.jsonl``), one :class:`VerifiedApplication` a line: an
application proven by two real gate decisions, the rejection it was applied
to and the gate run after applying it (``adaptergate recipes log`` /
``recipes verify``). Each is also summarised as a 0.5.4-shaped line in
``applications.jsonl`` (same ``application_id``), so 0.5.4 still reads that
file; what 0.5.4's fields cannot hold (the verdicts, the driver slice before
and after, candidate ids) lives only in the verified file.

Matching (as 0.5.4): a recipe applies to a driver slice when its
``applies_when.slice_tag_contains`` is empty or one of its substrings occurs
in the driver's slice tag (case-insensitive), and the slice's drop
``abs(delta)`` is at least ``applies_when.min_slice_regression_pp`` (on the
0-1 score scale, despite the name; default 0).

Ranking, 0.5.4's rule: recipes with completed applications first, by mean
observed delta (descending), then by number of completed uses. Recipes
without evidence follow, by match quality: targeted recipes (a
``slice_tag_contains`` substring matched) before catch-all ones, then the
higher regression threshold the slice cleared (a recipe meant for severe
drops fits a severe drop better), and finally ``recipe_id`` so the order
never depends on the file order.

Measured ranking, once verified applications exist: a recipe's record for a
rejection counts its verified applications whose driver slice tag is the
rejection's, else those whose driver slice has the same key (``intent=*``),
else all of them: the most specific level with at least ``MIN_MEASURED`` (3).
Its success rate (outcome accepted) gets a 95% Wilson score interval. A
recipe with such a record is *measured* and ranks by the interval's lower
bound (then the mean rise of the driver slice's delta, then n), ahead of
every recipe without one, which keep 0.5.4's order among themselves; except
a measured recipe whose record argues against it (no success, or the whole
interval below 0.5), which ranks after them. Without verified applications
the ranking and the output are 0.5.4's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.models import GateDecision
from adaptergate.storage import atomic_write, file_lock, locked_append, split_torn_tail, warn_torn_tail

__all__ = [
    "DEFAULT_APPLICATIONS_NAME",
    "MIN_MEASURED",
    "Recipe",
    "RecipeApplication",
    "RecipeEfficacy",
    "RecipeRecommendation",
    "RecipeStore",
    "ResolvedDecision",
    "VerifiedApplication",
    "arxiv_url",
    "build_verified_application",
    "check_application",
    "efficacy_for",
    "hash_tenant",
    "print_application",
    "print_recommendations",
    "read_decision",
    "recommend",
    "recommendations_for",
    "recommendations_json",
    "resolve_application_refs",
    "resolve_decision_ref",
    "seed_recipes_bytes",
    "slice_key",
    "wilson_interval",
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


def _hash_tenant_field(data: Any) -> Any:
    """Replace a raw ``tenant_id`` of a record being validated by its ``tenant_hash``."""
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
        return _hash_tenant_field(data)

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


# ---------------------------------------------------------------------------
# Gate-verified applications and their efficacy
# ---------------------------------------------------------------------------


def slice_key(tag: str) -> str:
    """The key of a ``key=value`` slice tag (``intent`` of ``intent=refund``); a
    tag without ``=`` is its own key."""
    return tag.split("=", 1)[0] if "=" in tag else tag


def _rejecting_slices(decision: GateDecision) -> list[str]:
    """The driver slice first, then every other slice that rejected on its own."""
    driver = decision.driver_slice
    tags = [driver.slice_tag] if driver is not None else []
    for s in decision.slice_attributions:
        if s.violates and not s.explained_by_driver and s.slice_tag not in tags:
            tags.append(s.slice_tag)
    return tags


def _slice_delta(decision: GateDecision, tag: str) -> float | None:
    for s in decision.slice_attributions:
        if s.slice_tag == tag:
            return s.delta
    return None


class VerifiedApplication(BaseModel):
    """One recipe application proven by two real gate decisions.

    The rejection it was applied to (``decision_*``) and the gate run after
    applying it (``outcome_*``). ``accepted`` is whether that later gate
    accepted: the success the efficacy interval counts. The slice signature
    of the rejection is its driver slice tag, that tag's key and the keys of
    every slice that rejected on its own. Tenants only as ``tenant_hash``.
    """

    model_config = ConfigDict(extra="allow")

    schema_version: int = 1
    application_id: str = Field(min_length=1)
    recipe_id: str = Field(min_length=1)
    tenant_hash: str
    driver_slice_tag: str
    driver_slice_key: str
    rejecting_slice_keys: list[str] = Field(default_factory=list)
    rejecting_slices: list[str] = Field(default_factory=list)
    decision_candidate_id: str
    decision_baseline_id: str | None = None
    decision_timestamp: str
    decision_verdict: str
    decision_score: float = Field(description="The rejected candidate's aggregate score.")
    decision_delta: float = Field(description="Its aggregate delta against the baseline.")
    decision_driver_delta: float = Field(description="The driver slice's delta in the rejection.")
    outcome_candidate_id: str
    outcome_baseline_id: str | None = None
    outcome_timestamp: str
    outcome_verdict: str
    outcome_score: float
    outcome_delta: float
    outcome_driver_delta: float | None = Field(
        None, description="The same slice's delta in the outcome; None when the outcome has no such slice."
    )
    accepted: bool = Field(description="The outcome gate accepted: the recipe worked.")
    logged_at: str = Field(default_factory=_utc_now)
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _hash_tenant_id(cls, data: Any) -> Any:
        return _hash_tenant_field(data)

    @field_validator("decision_score", "decision_delta", "decision_driver_delta", "outcome_score", "outcome_delta",
                     "outcome_driver_delta")
    @classmethod
    def _finite(cls, v: float | None, info: Any) -> float | None:
        return _finite_or_none(v, info.field_name)

    @property
    def driver_improvement(self) -> float | None:
        """How much the driver slice's delta rose from the rejection to the outcome."""
        if self.outcome_driver_delta is None:
            return None
        return self.outcome_driver_delta - self.decision_driver_delta

    @property
    def identity(self) -> tuple[str, str, str, str, str]:
        """What makes two records the same application (logged twice)."""
        return (self.recipe_id, self.decision_candidate_id, self.decision_timestamp,
                self.outcome_candidate_id, self.outcome_timestamp)

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_record(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    def legacy(self) -> RecipeApplication:
        """The 0.5.4-shaped line for ``applications.jsonl`` (same ``application_id``):
        aggregate candidate score before and after, ``applied_at`` = the rejection's time,
        ``completed_at`` = the outcome's."""
        return RecipeApplication(
            application_id=self.application_id, recipe_id=self.recipe_id, tenant_hash=self.tenant_hash,
            pre_decision_score=self.decision_score, post_decision_score=self.outcome_score,
            observed_delta=self.outcome_score - self.decision_score, driver_slice_tag=self.driver_slice_tag,
            slice_match_signature=list(self.rejecting_slices), applied_at=self.decision_timestamp,
            completed_at=self.outcome_timestamp,
        )


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


# ---------------------------------------------------------------------------
# Reading JSONL
# ---------------------------------------------------------------------------


def _read_data(path: Path, what: str) -> bytes | None:
    """The file's bytes, or ``None`` when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InvalidInputError(f"cannot read {what} {path}: it is a directory") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _without_torn_tail(path: Path, data: bytes) -> tuple[bytes, bool]:
    """``data`` less a torn last line, the start of a record that a failed
    write left without its newline (:func:`~adaptergate.storage.is_torn_fragment`),
    which is reported as a warning naming ``path:line``; and whether there was one."""
    body, torn_line = split_torn_tail(data)
    if torn_line is None:
        return data, False
    warn_torn_tail(path, torn_line, len(data) - len(body))
    return body, True


def _decode(path: Path, what: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{what} {path} is not valid UTF-8 (byte {exc.start})") from None


def _read_text(path: Path, what: str, *, torn_tail_ok: bool = False) -> str | None:
    """The file as text, or ``None`` when it does not exist.

    ``torn_tail_ok`` (the append-only files): a torn last line is dropped
    with a warning (:func:`_without_torn_tail`); the records before it are read.
    """
    data = _read_data(path, what)
    if data is None:
        return None
    if torn_tail_ok:
        data, _ = _without_torn_tail(path, data)
    return _decode(path, what, data)


def _jsonl_objects(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # Split on "\n" only: str.splitlines() would also split inside a record at
    # U+2028, U+0085 and the like, which JSON (ensure_ascii=False) leaves raw.
    for lineno, line in enumerate(text.split("\n"), start=1):
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


_M = TypeVar("_M", bound=BaseModel)


def _load_models(path: Path, model: type[_M], file_what: str, row_what: str) -> list[_M]:
    """Every line of an append-only JSONL file as ``model``; a bad line is one
    exit-2 line naming it, a torn last line is skipped with a warning."""
    text = _read_text(path, file_what, torn_tail_ok=True)
    if text is None:
        return []
    out: list[_M] = []
    for lineno, obj in _jsonl_objects(path, text):
        try:
            out.append(model.model_validate(obj))
        except ValidationError as exc:
            raise InvalidInputError(f"{path}:{lineno}: not a valid {row_what} ({_short(exc)})") from None
    return out


def _load_applications(path: Path) -> list[RecipeApplication]:
    return _load_models(path, RecipeApplication, "applications file", "recipe application")


def _load_verified(path: Path) -> list[VerifiedApplication]:
    return _load_models(path, VerifiedApplication, "verified applications file", "verified recipe application")


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
    min_measured: int = MIN_MEASURED,
) -> list[RecipeRecommendation]:
    """Recipes for a rejected decision's driver slice, best first (at most ``top_k``).

    Empty when the decision was accepted or has no driver slice. See the
    module docstring for the matching and the ranking; ``min_measured``
    matching gate-verified applications make a recipe's rank measured.
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
    decisions = _decision_records(p)
    idx = line if line >= 0 else len(decisions) + line
    if not 0 <= idx < len(decisions):
        raise InvalidInputError(
            f"--line {line} is out of range: {p} holds {len(decisions)} decision record(s)"
            " (--line counts decision records only: 0 = first, -1 = last)"
        )
    return _validate_decision(p, *decisions[idx])


def _decision_records(p: Path) -> list[tuple[int | None, dict[str, Any]]]:
    """The decision records of a decision file or an audit log, oldest first,
    as ``(line number or None for a single-object file, raw object)``."""
    data = _read_data(p, "decision file")
    if data is None:
        raise InvalidInputError(f"decision file not found: {p}")
    data, torn = _without_torn_tail(p, data)  # an audit log's last append may have failed
    text = _decode(p, "decision file", data)
    if not text.strip():
        if torn:
            raise InvalidInputError(f"decision file {p} holds no complete record (its only line is incomplete)")
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
    return decisions


def _validate_decision(p: Path, lineno: int | None, obj: dict[str, Any]) -> GateDecision:
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
    show_basis = any(r.efficacy is not None for r in recs)
    for i, r in enumerate(recs, 1):
        line = Text()
        line.append(f"\n{i}. {r.recipe.name}", style="bold cyan")
        line.append(f"   [{_evidence_label(r)}]")
        console.print(line, highlight=False)
        if show_basis:  # only once the library has gate-verified outcomes: 0.5.4's output otherwise
            out(f"   rank basis: {r.basis_text}")
        out(f"   id: {r.recipe.recipe_id}")
        out(f"   intervention: {r.recipe.intervention_type}")
        if r.recipe.source_paper_arxiv:
            out(f"   source: arXiv {r.recipe.source_paper_arxiv}")
        out(f"   {r.recipe.description}")


def recommendations_json(recs: list[RecipeRecommendation]) -> list[dict[str, Any]]:
    """``recommend-cmd --format json``: 0.5.4's objects, plus ``rank_basis``,
    ``rank_basis_text`` and ``verified`` once the library has gate-verified
    applications (so a library without them prints exactly what 0.5.4 did)."""
    if any(r.efficacy is not None for r in recs):
        return [r.to_json_dict() for r in recs]
    return [r.to_dict() for r in recs]


# ---------------------------------------------------------------------------
# Logging an application from two gate decisions (recipes log / verify)
# ---------------------------------------------------------------------------


def _parse_time(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def _when(d: GateDecision) -> str:
    return f"{d.candidate_id} at {d.timestamp}"


def check_rejection(decision: GateDecision) -> None:
    """Refuse (:class:`InvalidInputError`) a decision a recipe cannot be logged
    against: an acceptance, or a rejection without a driver slice."""
    if decision.accepted:
        raise InvalidInputError(
            f"the decision ({_when(decision)}) was accepted ({decision.verdict}): a recipe is logged"
            " against a rejection"
        )
    driver = decision.driver_slice
    if driver is None:
        raise InvalidInputError(
            f"the rejection ({_when(decision)}) has no driver slice: recipes are matched by driver"
            " slice, so its outcome could not inform a recommendation"
        )


def check_application(decision: GateDecision, outcome: GateDecision) -> None:
    """Refuse (:class:`InvalidInputError`) a pair that cannot be an application:
    the decision must be a rejection with a driver slice (:func:`check_rejection`),
    the outcome the same tenant's and strictly newer."""
    check_rejection(decision)
    if decision.tenant_id != outcome.tenant_id:
        raise InvalidInputError(
            f"the decision and the outcome are for different tenants ({decision.tenant_id!r} and"
            f" {outcome.tenant_id!r}): an outcome must re-gate the same tenant"
        )
    t_dec, t_out = _parse_time(decision.timestamp), _parse_time(outcome.timestamp)
    for d, t in ((decision, t_dec), (outcome, t_out)):
        if t is None:
            raise InvalidInputError(f"cannot read the timestamp {d.timestamp!r} of {d.candidate_id}'s decision")
    assert t_dec is not None and t_out is not None
    if t_out <= t_dec:
        raise InvalidInputError(
            f"the outcome ({_when(outcome)}) is not newer than the decision ({_when(decision)}):"
            " the outcome is the gate run after applying the recipe"
        )


def build_verified_application(
    *,
    recipe_id: str,
    decision: GateDecision,
    outcome: GateDecision,
    note: str | None = None,
    application_id: str | None = None,
) -> VerifiedApplication:
    """The application record of ``recipe_id`` from its rejection and its outcome (checked)."""
    check_application(decision, outcome)
    driver = decision.driver_slice
    assert driver is not None
    rejecting = _rejecting_slices(decision)
    return VerifiedApplication(
        application_id=application_id or uuid.uuid4().hex,
        recipe_id=recipe_id,
        tenant_id=decision.tenant_id,  # hashed by the model; never stored
        driver_slice_tag=driver.slice_tag,
        driver_slice_key=slice_key(driver.slice_tag),
        rejecting_slice_keys=sorted({slice_key(t) for t in rejecting}),
        rejecting_slices=rejecting,
        decision_candidate_id=decision.candidate_id,
        decision_baseline_id=decision.baseline_id,
        decision_timestamp=decision.timestamp,
        decision_verdict=decision.verdict,
        decision_score=decision.score_candidate,
        decision_delta=decision.delta,
        decision_driver_delta=driver.delta,
        outcome_candidate_id=outcome.candidate_id,
        outcome_baseline_id=outcome.baseline_id,
        outcome_timestamp=outcome.timestamp,
        outcome_verdict=outcome.verdict,
        outcome_score=outcome.score_candidate,
        outcome_delta=outcome.delta,
        outcome_driver_delta=_slice_delta(outcome, driver.slice_tag),
        accepted=outcome.accepted,
        note=note or None,
    )


def settings_of(decision: GateDecision) -> dict[str, Any]:
    """The decision settings a gate job needs to re-gate under ``decision``'s
    rules (:data:`adaptergate.models.SETTING_NAMES`). A 0.5.4 record, which has no
    ``config``, gives its threshold rule and epsilon."""
    from adaptergate.models import SETTING_NAMES

    if decision.config is None:
        return {"decision": "threshold" if decision.schema_version < 3 else decision.decision_rule,
                "epsilon": decision.epsilon}
    cfg = decision.config.model_dump()
    return {name: cfg[name] for name in SETTING_NAMES if name in cfg}


SELECTORS: tuple[str, ...] = ("@last", "@last-rejected", "@last-accepted")
REF_HELP = (
    "a decision JSON file (gate --format json), FILE:N (decision record N of an audit log: 0 = first,"
    " -1 = last), or @last, @last-rejected, @last-accepted with --audit-log"
)
_FILE_LINE = re.compile(r"(?s)(.+):(-?\d+)")


class ResolvedDecision(BaseModel):
    """A gate decision and where it was read (``file`` or ``file:line``)."""

    decision: GateDecision
    source: str


def _where_rec(p: Path, lineno: int | None) -> str:
    return f"{p}:{lineno}" if lineno is not None else str(p)


def resolve_decision_ref(
    ref: str,
    *,
    option: str = "--decision",
    audit_log: str | os.PathLike[str] | None = None,
    tenant: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> ResolvedDecision:
    """The gate decision a REF names (see :data:`REF_HELP`).

    ``@last`` / ``@last-rejected`` / ``@last-accepted``: the newest such
    decision record of ``audit_log`` for ``tenant`` (any tenant if None),
    optionally only among those strictly older than ``before`` or newer
    than ``after`` (timestamps). A file REF is checked against ``tenant``.
    """
    if ref.startswith("@"):
        if ref not in SELECTORS:
            raise UsageError(f"{option} {ref}: unknown selector; use {', '.join(SELECTORS)}")
        if audit_log is None:
            raise UsageError(f"{option} {ref} needs --audit-log FILE (the audit log to select from)")
        log = Path(audit_log)
        t_before = _parse_time(before) if before else None
        t_after = _parse_time(after) if after else None
        want = {"@last": None, "@last-rejected": False, "@last-accepted": True}[ref]
        for lineno, obj in reversed(_decision_records(log)):
            if tenant is not None and obj.get("tenant_id") != tenant:
                continue
            if want is not None and obj.get("accepted") is not want:
                continue
            if t_before is not None or t_after is not None:
                t = _parse_time(obj.get("timestamp")) if isinstance(obj.get("timestamp"), str) else None
                if t is None or (t_before is not None and t >= t_before) or (t_after is not None and t <= t_after):
                    continue
            return ResolvedDecision(decision=_validate_decision(log, lineno, obj), source=_where_rec(log, lineno))
        kind = {None: "", False: "rejected ", True: "accepted "}[want]
        scope = f" of tenant {tenant!r}" if tenant is not None else ""
        when = f" older than {before}" if before else (f" newer than {after}" if after else "")
        raise InvalidInputError(f"{option} {ref}: no {kind}decision{scope}{when} in {log}")
    path, index = Path(ref), -1
    if not path.exists():
        m = _FILE_LINE.fullmatch(ref)
        if m is None or not Path(m.group(1)).is_file():
            raise InvalidInputError(f"{option} {ref}: no such file; give {REF_HELP}")
        path, index = Path(m.group(1)), int(m.group(2))
    records = _decision_records(path)
    idx = index if index >= 0 else len(records) + index
    if not 0 <= idx < len(records):
        raise InvalidInputError(
            f"{option} {ref}: {path} holds {len(records)} decision record(s) (N counts decision records"
            " only: 0 = first, -1 = last)"
        )
    lineno, obj = records[idx]
    got = ResolvedDecision(decision=_validate_decision(path, lineno, obj), source=_where_rec(path, lineno))
    if tenant is not None and got.decision.tenant_id != tenant:
        raise InvalidInputError(
            f"{option} {ref} ({got.source}) is for tenant {got.decision.tenant_id!r}, not --tenant {tenant!r}"
        )
    return got


def resolve_application_refs(
    decision_ref: str,
    outcome_ref: str,
    *,
    audit_log: str | os.PathLike[str] | None = None,
    tenant: str | None = None,
) -> tuple[ResolvedDecision, ResolvedDecision]:
    """The rejection and the outcome of ``recipes log``.

    A selector takes its tenant (when ``tenant`` is None) and its time bound
    from the other REF: ``--decision @last-rejected --outcome @last`` is the
    newest decision and the newest rejection of the same tenant before it.
    """
    if decision_ref.startswith("@") or not outcome_ref.startswith("@"):
        outcome = resolve_decision_ref(outcome_ref, option="--outcome", audit_log=audit_log, tenant=tenant)
        decision = resolve_decision_ref(
            decision_ref, option="--decision", audit_log=audit_log,
            tenant=tenant if tenant is not None or not decision_ref.startswith("@") else outcome.decision.tenant_id,
            before=outcome.decision.timestamp if decision_ref.startswith("@") else None,
        )
    else:
        decision = resolve_decision_ref(decision_ref, option="--decision", audit_log=audit_log, tenant=tenant)
        outcome = resolve_decision_ref(
            outcome_ref, option="--outcome", audit_log=audit_log,
            tenant=tenant if tenant is not None else decision.decision.tenant_id,
            after=decision.decision.timestamp,
        )
    return decision, outcome


def print_application(app: VerifiedApplication, record: RecipeEfficacy, *, console: Any) -> None:
    """Human output of ``recipes log`` / ``recipes verify``: what was logged, and the recipe's record."""
    from rich.text import Text

    def out(text: str) -> None:
        console.print(Text(text), highlight=False)

    after = "—" if app.outcome_driver_delta is None else f"{app.outcome_driver_delta:+.3f}"
    out(f"Logged application {app.application_id} of {app.recipe_id} (tenant hash {app.tenant_hash}):")
    out(f"  rejection: {app.decision_candidate_id} at {app.decision_timestamp}: {app.decision_verdict},"
        f" score {app.decision_score:.3f} (Δ={app.decision_delta:+.3f})")
    out(f"  outcome:   {app.outcome_candidate_id} at {app.outcome_timestamp}: {app.outcome_verdict},"
        f" score {app.outcome_score:.3f} (Δ={app.outcome_delta:+.3f})")
    out(f"  driver slice {app.driver_slice_tag}: Δ {app.decision_driver_delta:+.3f} → {after}")
    if record.measured:
        text = "measured: " + record.summary()
    else:
        text = (f"{record.successes}/{record.n} succeeded on {record.scope} (it ranks recommendations from"
                f" {record.min_measured} matching applications on; until then its prior does)")
    out(f"Record of {app.recipe_id} for this slice: {text}")


def application_json(app: VerifiedApplication, record: RecipeEfficacy) -> dict[str, Any]:
    return {"application": app.to_record(), "record": record.to_dict()}


# ---------------------------------------------------------------------------
# Recommendations for a report ("What now?" in the PR comment)
# ---------------------------------------------------------------------------

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
    :func:`adaptergate.report.render.render` (``recommendations=``): ``recipe_id``,
    ``name``, ``intervention_type``, ``arxiv_id`` and ``arxiv_url`` (None unless
    the citation is a well-formed arXiv id), ``paper_title``, ``why`` (how it
    matches), ``record`` (its measured record, or "no record yet: …") and
    ``basis``. Empty for an accepted or driverless decision."""
    if not isinstance(decision, GateDecision):
        try:
            decision = GateDecision.model_validate(decision)
        except ValidationError as exc:
            raise InvalidInputError(f"not a valid gate decision ({_short(exc)})") from None
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
