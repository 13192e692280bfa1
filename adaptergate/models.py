"""Typed boundary models: gate configuration and the gate decision.

These pydantic models are what crosses a boundary: what the CLI and the
Action pass in, what the audit log, the replay buffer and ``--format json``
write out. Internals (scores, slice membership) are numpy arrays and plain
dataclasses; see :mod:`adaptergate.decide.rules`.

Reading compatibility: a decision written by adaptergate 0.5.4
(``schema_version`` 2) validates into :class:`GateDecision`; fields it lacks
take their defaults (``rejected_by`` is None: reports infer the rules from
such a record, see :func:`adaptergate.report.rejections.infer_rejections_from_prose`).
"""

from __future__ import annotations

import math

import orjson
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import NotRequired, TypedDict

SCHEMA_VERSION = 3
"""Serialized shape of :class:`GateDecision`. 0.5.4 wrote 2."""

OutputFormat = Literal["human", "json", "pr-comment", "markdown", "junit"]
OUTPUT_FORMATS: tuple[str, ...] = ("human", "json", "pr-comment", "markdown", "junit")


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


class GateConfig(BaseModel):
    """Every setting that influences a verdict. Recorded in each decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: float = Field(0.02, ge=0.0, le=1.0, description="Max tolerated aggregate drop.")
    slice_epsilon: float | None = Field(
        None, ge=0.0, le=1.0, description="Max tolerated drop within any eligible slice (None: slices are"
        " not gated). Gate jobs under the stat rule default to DEFAULT_SLICE_EPSILON when none is given"
        " (pipeline.settings.with_defaults)."
    )
    slice_min_size: int = Field(3, ge=1, description="Slices smaller than this cannot reject.")
    min_holdout_size: int = Field(20, ge=1, description="Refuse to gate on fewer queries.")
    strict: bool = Field(
        False, description="Also reject when any query that passed on baseline now fails."
    )
    pass_threshold: float = Field(
        1.0, ge=0.0, le=1.0, description="A score >= this counts as a pass (strict mode)."
    )
    require_calibration: bool = Field(True, description="Refuse to gate without a baseline.")
    sample: int | None = Field(None, ge=1, description="Gate on a deterministic sample of N.")
    sample_seed: str | None = Field(None, description="Seed of --sample (default: candidate id).")
    decision: Literal["stat", "threshold"] = Field(
        "stat", description="stat: paired intervals and tests; threshold: adaptergate 0.5.4's rule."
    )
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="Family-wise error rate of the stat rule.")
    on_inconclusive: Literal["accept", "reject"] = Field(
        "accept", description="What an INCONCLUSIVE verdict does to the exit code."
    )
    multiplicity: Literal["holm", "bh"] = Field(
        "holm", description="Slice adjustment: holm (family-wise) or bh (false discovery rate)."
    )

    @field_validator("epsilon", "pass_threshold")
    @classmethod
    def _check_finite(cls, v: float, info: Any) -> float:
        return _finite(v, info.field_name)

    @field_validator("slice_epsilon")
    @classmethod
    def _check_finite_opt(cls, v: float | None) -> float | None:
        return None if v is None else _finite(v, "slice_epsilon")


DEFAULT_SLICE_EPSILON = 0.10
"""The slice margin a gate job uses under the statistical rule when none is given (command line,
Action input, settings file, manifest): a slice collapsing inside a large holdout is never
accepted silently. The threshold rule keeps adaptergate 0.5.4's default (no slice gating)."""

SLICE_GATING_OFF = "off"
"""What ``--slice-epsilon`` (and the Action's ``slice-epsilon``) takes to gate the aggregate only."""


RUN_FIELDS: tuple[str, ...] = ("require_calibration", "sample", "sample_seed")
"""GateConfig fields that belong to one run (what to sample, whether a baseline is needed)."""

SETTING_NAMES: tuple[str, ...] = tuple(name for name in GateConfig.model_fields if name not in RUN_FIELDS)
"""The decision settings: what a tenant's settings file, a manifest's ``gate`` block, a
command line or an Action input may set (given > settings file > GateConfig's defaults)."""


class QueryRow(TypedDict):
    """One query's scores. Keys match adaptergate 0.5.4's ``per_query``.

    A plain dict (a TypedDict, validated on read): a decision over a million
    queries builds a million of these, and a dict costs a tenth of a model.
    ``line`` is the query's 1-based line in the holdout file.
    """

    query_id: Any
    score_baseline: float
    score_candidate: float
    delta: float
    line: NotRequired[int | None]
    baseline_output: NotRequired[str | None]
    candidate_output: NotRequired[str | None]
    judge_baseline: NotRequired[dict[str, int]]
    """``--metric judge``: the baseline answer's score (1-10) per criterion."""
    judge_candidate: NotRequired[dict[str, int]]


class PatternTerm(BaseModel):
    """An n-gram over-represented in failing queries, with honest counts."""

    ngram: str
    n_failing: int
    failing_total: int
    n_passing: int
    passing_total: int

    @property
    def passing_rate(self) -> float:
        return self.n_passing / self.passing_total if self.passing_total else 0.0


class FailurePattern(BaseModel):
    """What failing queries share that passing ones do not."""

    failing_total: int
    passing_total: int
    passing_sampled_from: int | None = Field(
        None, description="When passing queries were sampled: how many there were in all."
    )
    terms: list[PatternTerm] = Field(default_factory=list)
    summary: str = ""


class FailingExample(BaseModel):
    """One regressed query shown to a reviewer: what was asked, what each adapter said."""

    query_id: Any
    line: int | None = None
    prompt: str | None = None
    gold: Any = None
    score_baseline: float
    score_candidate: float
    baseline_output: str | None = None
    candidate_output: str | None = None
    judge_scores_baseline: dict[str, int] | None = Field(
        None, description="--metric judge: the baseline answer's criterion scores (1-10)."
    )
    judge_scores_candidate: dict[str, int] | None = Field(
        None, description="--metric judge: the candidate answer's criterion scores (1-10)."
    )
    judge_reasoning: str | None = Field(None, description="--metric judge: the judge's reasoning on the candidate.")
    judge_candidate_label: str | None = Field(
        None, description="--metric judge --judge-pairwise: 'A' or 'B', where the judge saw the candidate."
    )


class JudgeCriterionSummary(BaseModel):
    """One criterion of ``--metric judge``: mean scores (1-10) of both adapters' answers."""

    name: str
    weight: float
    rubric: str = ""
    baseline: float = Field(description="Mean score (1-10) of the baseline's answers.")
    candidate: float = Field(description="Mean score (1-10) of the candidate's answers.")
    delta: float = Field(description="candidate - baseline, on the 1-10 scale.")
    n_worse: int = Field(0, description="Queries whose candidate answer scored lower on this criterion.")
    n_better: int = Field(0, description="Queries whose candidate answer scored higher on this criterion.")


class JudgeSummary(BaseModel):
    """How ``--metric judge`` scored: the judge, the criteria and their per-criterion results.

    A query's score is the weighted mean of ``(s - 1) / 9`` over its criterion
    scores ``s`` (1-10): "pass at 70 / auto-approve at 85" on the usual 0-100
    scale are the approval bands ``floor: 0.70`` / ``auto_approve: 0.85``.
    """

    judge: str = Field(description="The judge: model directory and weights sha256, or model name and URL.")
    backend: str = Field(description="model (a local causal LM) or url (an OpenAI-compatible server).")
    pairwise: bool = False
    scale: str = "1-10"
    criteria: list[JudgeCriterionSummary] = Field(default_factory=list)
    n_judged: int = Field(0, description="Judgements made in this run.")
    n_cached: int = Field(0, description="Judgements taken from the cache.")
    n_repaired: int = Field(0, description="Malformed judge replies answered with a repair request.")
    n_candidate_first: int | None = Field(
        None, description="Pairwise: queries where the candidate was shown as answer A."
    )


class SliceAttribution(BaseModel):
    """Per-slice result. The first eight fields are 0.5.4's."""

    model_config = ConfigDict(extra="ignore")

    slice_tag: str
    n_total: int
    n_regressed: int
    score_baseline: float
    score_candidate: float
    delta: float
    regressed_query_ids: list[Any] = Field(
        default_factory=list,
        description="Ids of the slice's regressed queries: all for the driver slice, the first 1,000"
        " otherwise (n_regressed counts them all; per_query lists every query).",
    )
    pattern: str | None = None
    contribution: float = Field(
        0.0, description="Sum of the slice's per-query deltas divided by the holdout size."
    )
    share_of_drop: float | None = Field(
        None, description="Fraction of the aggregate net drop located in this slice."
    )
    eligible: bool = Field(True, description="n_total >= slice_min_size: may reject on its own.")
    violates: bool = Field(False, description="Exceeds slice_epsilon (and is eligible).")
    explained_by_driver: bool = Field(
        False, description="Outside its overlap with the driver slice it is within tolerance."
    )
    delta_outside_driver: float | None = None
    n_outside_driver: int | None = None
    failure_pattern: FailurePattern | None = None
    evidence: "Evidence | None" = None


class Evidence(BaseModel):
    """The paired statistics behind a verdict, for the aggregate or one slice."""

    verdict: str = Field(description="PASS, FAIL or INCONCLUSIVE ('' for a slice not tested).")
    estimate: float = Field(description="Mean per-query difference, candidate - baseline.")
    lower: float
    upper: float
    level: float = Field(description="Two-sided coverage of [lower, upper]; each bound is one-sided 1-alpha.")
    method: str
    p_value: float = Field(description="One-sided p-value of a drop.")
    p_adjusted: float | None = Field(None, description="Adjusted for the slice family (slices only).")
    alpha: float = Field(description="The level the p-value was judged at.")
    n_drop: int | None = Field(None, description="0/1 scores: passed on baseline, fail on candidate.")
    n_gain: int | None = Field(None, description="0/1 scores: failed on baseline, pass on candidate.")
    mde: float | None = Field(None, description="Smallest drop detected 80% of the time at this size.")
    n_needed: int | None = Field(None, description="Queries that would settle an INCONCLUSIVE verdict.")
    never_significant: bool = Field(False, description="Too small to ever reach significance.")
    min_size: int | None = Field(None, description="Size before significance is possible at all.")
    statement: str = ""


class NoiseFloor(BaseModel):
    """What rescoring the same adapters (``--repeats``) says about the scorer's noise."""

    repeats: int
    per_query_sd: float = Field(description="Pooled sd of one query's score across repeats.")
    null_delta: float = Field(description="Baseline vs itself (first two repeats): aggregate delta.")
    null_lower: float
    null_upper: float
    deterministic: bool
    statement: str = ""


class DuplicateSlices(BaseModel):
    """Two slice tags that look like one behaviour spelled two ways."""

    tags: list[str]
    reason: str


class GateWarning(BaseModel):
    code: str
    message: str


class PolicyChange(BaseModel):
    """One thing a pull request changes in how a candidate is judged.

    ``setting``: a gate setting or approval band (``gate.epsilon 0.02 → 1.0``);
    ``file``: a file the policy reads (holdout, settings file, judge criteria,
    scorer module, baseline adapter), with how the pull request changed it.
    """

    kind: Literal["setting", "file"]
    what: str
    before: str | None = None
    after: str | None = None

    def __str__(self) -> str:
        if self.kind == "setting":
            return f"{self.what} {self.before if self.before is not None else 'unset'} → " \
                   f"{self.after if self.after is not None else 'unset'}"
        return f"{self.what} {self.after or 'changed'}"


class PolicyReview(BaseModel):
    """What the content under review changed in its own gate, and where the policy came from.

    The gate always judges by the trusted side (``source``, the pull request's
    base commit); every change here takes effect only after merge, and a
    candidate that passes is marked for a human review.
    """

    source: str = Field(description="Where the policy was read: 'base commit 1a2b3c4'.")
    changes: list[PolicyChange] = Field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        return "; ".join(str(c) for c in self.changes)

    def headline(self, tenant: str) -> str:
        """The line a report leads with when the content under review changes its own gate."""
        return (f"This pull request changes the gate policy of {tenant}: {self.summary()}. It was gated under"
                f" the policy of {self.source}; the change takes effect after merge — review it.")


RejectionRule = Literal["aggregate", "slice", "strict", "inconclusive-policy", "approval-floor"]
"""The rules that can reject a candidate (see :class:`Rejection`)."""

REJECTION_RULES: tuple[str, ...] = ("aggregate", "slice", "strict", "inconclusive-policy", "approval-floor")


class ApprovalPolicy(BaseModel):
    """Approval bands on the candidate's aggregate score, applied after a passing gate.

    score < floor: reject; floor <= score < auto_approve: needs a human review;
    score >= auto_approve: approve.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    floor: float | None = Field(None, ge=0.0, le=1.0)
    auto_approve: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _order(self) -> "ApprovalPolicy":
        if self.floor is not None and self.auto_approve is not None and self.floor > self.auto_approve:
            raise ValueError(f"floor {self.floor} is above auto_approve {self.auto_approve}")
        return self

    def band(self, score: float) -> Literal["approve", "review", "reject"]:
        if self.floor is not None and score < self.floor:
            return "reject"
        if self.auto_approve is not None and score < self.auto_approve:
            return "review"
        return "approve"


class Rejection(BaseModel):
    """One rule that rejected a candidate, as data: which rule and what it concerns.

    * ``aggregate``: the whole holdout's mean dropped beyond ε (threshold), or
      significantly so (stat rule, FAIL);
    * ``slice``: eligible slices dropped beyond slice ε (``slices``: every one,
      most regressed first);
    * ``strict``: ``n_queries`` queries that passed on the baseline fail on the candidate;
    * ``inconclusive-policy``: the stat verdict is INCONCLUSIVE and ``--on-inconclusive
      reject`` blocks it (``slices``: the unsettled slices, whose drop exceeds slice ε);
    * ``approval-floor``: the gate passed, but the candidate's score is below the
      tenant's approval floor (manifest approval bands).

    ``lines`` are the sentences of the decision's ``reason`` / ``reasons`` that
    this rule wrote, for reports to quote; nothing reads the rule back out of them.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    rule: RejectionRule
    slices: list[str] = Field(default_factory=list, description="Slice tags the rule concerns.")
    n_queries: int | None = Field(None, description="strict: queries that passed on the baseline and fail now.")
    lines: list[str] = Field(default_factory=list, description="The reason lines this rule wrote.")


class GateDecision(BaseModel):
    """The full result of one gate run.

    ``--format json`` prints it whole; the audit log stores
    :meth:`compact` (no per-query rows).
    """

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    tool_version: str | None = None
    accepted: bool
    verdict: str = ""
    tenant_id: str
    candidate_id: str
    baseline_id: str | None
    holdout_size: int
    score_baseline: float
    score_candidate: float
    delta: float
    epsilon: float
    reason: str
    reasons: list[str] = Field(default_factory=list, description="Every rule that rejected.")
    rejected_by: list[Rejection] | None = Field(
        None,
        description="The rules that rejected, as data ([] when accepted). None: a record written before"
        " adaptergate recorded them (0.5.4, earlier 1.0 development records).",
    )
    timestamp: str
    holdout_path: str | None = None
    config: GateConfig | None = None
    n_regressed: int = 0
    n_improved: int = 0
    slice_attributions: list[SliceAttribution] = Field(default_factory=list)
    driver_slice_tag: str | None = None
    failure_pattern: FailurePattern | None = None
    malformed_slice_queries: int = 0
    suspected_duplicate_slices: list[list[str]] = Field(default_factory=list)
    duplicate_slice_details: list[DuplicateSlices] = Field(default_factory=list)
    staleness_days: int | None = None
    decision_rule: str = "threshold"
    evidence: Evidence | None = Field(None, description="The aggregate's statistics (stat rule).")
    binary_scores: bool | None = None
    noise: NoiseFloor | None = None
    evaluation: dict[str, Any] | None = Field(
        None, description="How scores were produced with real adapters: hashes, metric, mode, cache hits."
    )
    warnings: list[GateWarning] = Field(default_factory=list)
    approval: Literal["approve", "review", "reject"] | None = Field(
        None, description="The tenant's approval band (manifest), applied after the gate; None without bands."
    )
    policy: PolicyReview | None = Field(
        None, description="Pull requests: where the gate's policy came from and what the pull request changes in it.",
    )
    judge: JudgeSummary | None = Field(
        None, description="--metric judge: the judge and its per-criterion scores (null otherwise)."
    )
    examples: list[FailingExample] = Field(
        default_factory=list, description="A few regressed queries of the driver slice (else any), worst first."
    )
    per_query: list[QueryRow] = Field(
        default_factory=list, description="Per-query scores; last, so huge lists end the document."
    )

    @model_validator(mode="after")
    def _fill_verdict(self) -> "GateDecision":
        if not self.verdict:
            self.verdict = "ACCEPTED" if self.accepted else "REJECTED"
        return self

    @property
    def driver_slice(self) -> SliceAttribution | None:
        """The slice that carries the largest share of the drop.

        Records of 0.5.4 have no ``driver_slice_tag``: for them the driver is
        0.5.4's (the first attribution, when it regressed).
        """
        if self.driver_slice_tag is not None:
            for s in self.slice_attributions:
                if s.slice_tag == self.driver_slice_tag:
                    return s
            return None
        if self.schema_version < SCHEMA_VERSION and self.slice_attributions:
            first = self.slice_attributions[0]
            return first if first.delta < 0 else None
        return None

    @property
    def regressions(self) -> list[QueryRow]:
        return [q for q in self.per_query if q["delta"] < 0]

    @property
    def improvements(self) -> list[QueryRow]:
        return [q for q in self.per_query if q["delta"] > 0]

    def compact(self, *, max_ids_per_slice: int = 20) -> "GateDecision":
        """The record kept in the audit log and the replay buffer.

        Per-query rows are dropped (``--rows-out`` writes them to their own
        file) and failing-id lists are trimmed except for the driver slice,
        so a record stays a few kilobytes however large the holdout.
        """
        slices = [
            s
            if s.slice_tag == self.driver_slice_tag
            else s.model_copy(update={"regressed_query_ids": s.regressed_query_ids[:max_ids_per_slice]})
            for s in self.slice_attributions
        ]
        return self.model_copy(update={"per_query": [], "slice_attributions": slices})

    def to_json(self, indent: int | None = 2) -> str:
        """JSON with stable key order; per-query rows one per line."""
        return self.to_json_bytes(indent).decode("utf-8")

    def to_json_bytes(self, indent: int | None = 2) -> bytes:
        """UTF-8 JSON of the whole decision.

        pydantic serialises everything but the per-query rows; the rows (up to
        millions) go through one orjson call, one compact object per line.
        Everything stays bytes: gluing a million ASCII rows to a header that
        holds a "Δ" would widen the whole document to two bytes a character.
        """
        if not self.per_query:
            return self.model_dump_json(indent=indent).encode("utf-8")
        head = self.model_dump_json(indent=indent, exclude={"per_query"}).encode("utf-8")
        rows = orjson.dumps(self.per_query)[1:-1]
        if indent is None:
            return b"".join((head[:-1], b',"per_query":[', rows, b"]}"))
        # '},{"query_id"' cannot occur inside a JSON string (its quote would be
        # escaped), so this splits exactly between rows.
        rows = rows.replace(b'},{"query_id"', b'},\n    {"query_id"')
        return b"".join((head[:-2], b',\n  "per_query": [\n    ', rows, b"\n  ]\n}"))
