"""The library's records: :class:`Recipe`, :class:`RecipeApplication` and :class:`VerifiedApplication`.

A :class:`Recipe` is a typed intervention for fixing a regressed adapter
("decay the LoRA learning rate", "prune recent replay labels"), usually
derived from a paper it cites. A :class:`RecipeApplication` is one use of a
recipe on one adapter, with the measured before/after scores.

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
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adaptergate.storage import utc_now

__all__ = ["Recipe", "RecipeApplication", "VerifiedApplication", "hash_tenant", "slice_key"]



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
    created_at: str = Field(default_factory=utc_now)

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
    applied_at: str = Field(default_factory=utc_now)
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
            "completed_at": completed_at or utc_now(),
        })

    def to_record(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """One line, byte-identical to 0.5.4's ``RecipeApplication.to_json()``."""
        return _dumps_054(self.to_record())


def slice_key(tag: str) -> str:
    """The key of a ``key=value`` slice tag (``intent`` of ``intent=refund``); a
    tag without ``=`` is its own key."""
    return tag.split("=", 1)[0] if "=" in tag else tag


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
    logged_at: str = Field(default_factory=utc_now)
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
