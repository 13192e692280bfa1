"""What a pull request promotes: the manifest at the head against the manifest at the base ref.

:func:`plan_manifest_gate` reads both manifests (the base one with ``git
show``), lists every tenant with what changed, verifies each promotion before
anything is scored (weights hash, declared base, version order, rollback
flag; all problems at once, exit 2) and turns each tenant whose adapter moved
into a :class:`~adaptergate.pipeline.job.GateJob`: the base ref's adapter is the
baseline, the head's is the candidate, both named by version.

:func:`run_manifest_gate` runs the jobs and applies each tenant's approval
bands. Rollbacks and first adapters of new tenants are verified but not
scored: a rollback is an emergency that the gate must not hold up, and a new
tenant has no production adapter to compare with (both are marked for a
human review).

**Policy comes from the trusted side.** The manifest at the head is the
content under review: it contributes only what it proposes (each tenant's
adapter entry: version, location, sha256, card, and the base model the
adapter runs on). Everything that decides *how* a tenant is judged — its
gate settings, approval bands, holdout (path and content) and judge
criteria — is read from the base ref. A pull request that changes any of
them is still gated under the base's policy, its report says what it
changes, and a candidate that passes needs a human review.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from adaptergate.errors import AdaptergateError, InvalidInputError, exit_code_for
from adaptergate.gitrepo import GitRepo
from adaptergate.pipeline.job import GateJob
from adaptergate.manifest.model import (
    Manifest,
    ManifestGate,
    is_yaml,
    TenantChange,
    TenantEntry,
    Verified,
    diff_manifests,
    hub_adapter_dir,
    load_manifest,
    parse_manifest,
    raise_problems,
    resolve,
    verify_change,
)
from adaptergate.models import SETTING_NAMES, GateDecision, PolicyChange, PolicyReview
from adaptergate.pipeline.options import MANIFEST_OVERRIDES, GateOptions, build_job, judge_settings
from adaptergate.trust import BaseTree


__all__ = ["ManifestOutcome", "ManifestPlan", "TenantOutcome", "plan_manifest_gate", "run_manifest_gate"]


# --------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------


@dataclass
class TenantPlan:
    change: TenantChange
    verified: Verified | None = None
    job: GateJob | None = None
    note: str = ""
    policy: PolicyReview | None = None
    """What the pull request changes in the tenant's gate policy (judged by the base's)."""
    holdout_changed: bool = False
    """The holdout's content differs from the base's: its line numbers are not the checkout's."""


@dataclass
class ManifestPlan:
    manifest_path: Path
    base_ref: str | None
    base_commit: str | None
    tenants: list[TenantPlan]
    workdir: Path | None = None
    """Temporary directory holding baseline adapters extracted from the base ref."""
    base_tree: BaseTree | None = None
    """The base ref's files (holdouts, criteria) where the pull request changed them."""

    def add_changes(self, changes: list[PolicyChange]) -> None:
        """Changes the pull request made to files every scored tenant's policy reads (the
        workflow's scorer or metric module, its judge criteria): each such tenant needs a review."""
        for p in self.tenants:
            if p.job is not None and p.policy is not None:
                p.policy.changes.extend(changes)
                p.note = p.policy.headline(p.change.tenant)

    def cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if self.base_tree is not None:
            self.base_tree.cleanup()


def _sha256(path: Path) -> str | None:
    """The file's sha256, or None where there is no such file."""
    from adaptergate.backends.files import file_sha256

    return file_sha256(path) if path.is_file() else None


def _baseline_dir(
    entry: TenantEntry, tenant: str, root: Path, repo: GitRepo | None, ref: str | None, workdir: Path,
) -> Path:
    """The base ref's adapter: in the working tree when its bytes are still there, else from git
    (a Hub adapter: its pinned revision, from the Hub cache or downloaded)."""
    a = entry.adapter
    if a.hf_repo is not None:
        assert a.revision is not None
        snap, why = hub_adapter_dir(a.hf_repo, a.revision)
        if snap is None:
            raise InvalidInputError(f"tenant {tenant}: baseline adapter {a.version} ({a.location}): {why}")
        got = _sha256(snap / "adapter_model.safetensors")
        if got != a.sha256:
            raise InvalidInputError(
                f"tenant {tenant}: baseline adapter {a.version} ({a.location}): sha256 {got}, expected {a.sha256}"
            )
        return snap
    assert a.path is not None
    here = resolve(root, a.path, f"tenant {tenant}: baseline adapter.path")
    assert here is not None
    if _sha256(here / "adapter_model.safetensors") == entry.adapter.sha256:
        return here
    if repo is not None and ref is not None:
        if repo.contains(here):
            dest = repo.export(ref, repo.relative(here), workdir / tenant / "baseline")
            if dest is not None and _sha256(dest / "adapter_model.safetensors") == entry.adapter.sha256:
                return dest
    raise InvalidInputError(
        f"tenant {tenant}: baseline adapter {entry.adapter.version} at {entry.adapter.path} is not in the"
        f" working tree nor at {ref or 'the base ref'} with sha256 {entry.adapter.sha256}"
        " (Git LFS files must be fetched)"
    )


@dataclass(frozen=True)
class WorkflowRules:
    """What a workflow keeps to itself when the manifest is content under review (the Action).

    The judge's server and API key are the workflow's business: a manifest
    that names a judge ``url`` (without the workflow naming the judge) or an
    ``api_key_env`` is refused, so no manifest can send a secret to a host of
    its choosing. (``module:function`` metrics are held back by the process's
    :class:`~adaptergate.scoring.scorers.CodePolicy`.)
    """

    judge_from_workflow: bool = True


def _job(tenant: str, policy: TenantEntry, head: TenantEntry, root: Path, baseline_dir: Path,
         candidate_dir: Path, holdout: Path, holdout_label: Path, overrides: GateOptions,
         audit_log: Path | None, replay_path: Path | None, cache_dir: Path | None,
         criteria: Path | None, rules: WorkflowRules | None, review: PolicyReview | None) -> GateJob:
    """The tenant's job: ``policy`` (the base ref's entry) says how it is judged, ``head`` what;
    ``overrides`` (the command line's or the workflow's options) win over the policy."""
    from adaptergate.metrics import metric_info

    g = policy.gate
    base_dir = resolve(root, head.base_model.path, f"tenant {tenant}: base_model.path")
    judge = g.judge.model_dump(exclude_none=True) if g.judge is not None else {}
    if isinstance(judge.get("criteria"), str):
        judge["criteria"] = criteria
    if isinstance(judge.get("model"), str):
        judge["model"] = resolve(root, judge["model"], f"tenant {tenant}: gate.judge.model")
    if rules is not None and rules.judge_from_workflow:
        if "api_key_env" in judge:
            raise InvalidInputError(
                f"tenant {tenant}: gate.judge.api_key_env: a manifest cannot choose which environment variable"
                " is sent as the judge's API key; the workflow names it (input judge-api-key-env)"
            )
        if "url" in judge and overrides.judge_url is None and overrides.judge_model is None:
            raise InvalidInputError(
                f"tenant {tenant}: gate.judge.url: a manifest cannot choose the host the gate sends answers"
                " (and the judge's API key) to; the workflow names the judge server (input judge-url)"
            )
    if overrides.judge_model is not None or overrides.judge_url is not None:
        for key in ("model", "url", "name"):  # a judge named on the command line replaces the manifest's
            judge.pop(key, None)
    manifest_opts = GateOptions(
        tenant=tenant, holdout=holdout, candidate=adapter_id(head), baseline=adapter_id(policy),
        base_model=str(base_dir) if base_dir is not None else head.base_model.id,
        baseline_adapter=baseline_dir, candidate_adapter=candidate_dir,
        metric=g.metric, eval_mode=g.eval_mode, max_new_tokens=g.max_new_tokens, backend=g.backend,
        base_sha256=head.base_model.sha256, cache_dir=cache_dir, audit_log=audit_log, replay_path=replay_path,
        **{name: getattr(g, name) for name in SETTING_NAMES if name in ManifestGate.model_fields},
        **{f"judge_{k}": v for k, v in judge.items()},
        extra={"approval": policy.approval, "policy": review, "holdout_label": str(holdout_label),
               "criteria_source": "gate.judge.criteria"},
    )
    opts = overrides.over(manifest_opts, only=MANIFEST_OVERRIDES)
    if opts.metric is not None and metric_info(opts.metric).needs_both_answers:  # the judge
        try:
            judge_settings(opts)
        except AdaptergateError as exc:
            raise InvalidInputError(f"tenant {tenant}: gate.judge: {exc.message}") from None
    return build_job(opts)


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}", v))
        return out
    return {prefix: value}


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def _policy(entry: TenantEntry) -> dict[str, Any]:
    return {
        **_flat("gate", entry.gate.model_dump(mode="json", exclude_none=True)),
        **_flat("approval", entry.approval.model_dump(mode="json", exclude_none=True) if entry.approval else {}),
        **_flat("base_model", entry.base_model.model_dump(mode="json", exclude_none=True)),
        "holdout": entry.holdout,
    }


def policy_changes(base: TenantEntry, head: TenantEntry) -> list[PolicyChange]:
    """The settings the head entry changes in how the tenant is judged (gate, approval,
    holdout path; a new base model, which the candidate needs, is gated but reported for
    review); file contents are compared separately."""
    before, after = _policy(base), _policy(head)
    return [
        PolicyChange(kind="setting", what=key, before=_shown(before.get(key)), after=_shown(after.get(key)))
        for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)
    ]


def adapter_id(entry: TenantEntry) -> str:
    """How a manifest adapter is named in decisions: its version with the weights' hash as
    semver build metadata (``1.4.0+9f2c04a1b3d7``), so a version number proposed twice
    with different weights (a rejected PR, then another) never names two adapters."""
    return f"{entry.adapter.version}+{entry.adapter.sha256[:12]}"


def plan_manifest_gate(
    manifest_path: Path,
    base_ref: str | None,
    *,
    tenants: list[str] | None = None,
    overrides: GateOptions | None = None,
    audit_log: Path | None = None,
    replay_path: Path | None = None,
    cache_dir: Path | None = None,
    base_manifest: Manifest | None = None,
    rules: WorkflowRules | None = None,
) -> ManifestPlan:
    """Diff the manifests, verify every moved adapter (exit 2 on any problem), build the jobs.

    ``base_manifest`` replaces reading the base ref (tests, or a manifest
    given as a file); ``tenants`` limits the plan to those tenants; ``rules``
    are the workflow's limits on what a manifest may choose (the Action).
    """
    head = load_manifest(manifest_path)
    root = manifest_path.parent.resolve()
    repo: GitRepo | None = None
    commit: str | None = None
    if base_manifest is None and base_ref is not None:
        repo = GitRepo(manifest_path, why=" (--base-ref reads the manifest at that commit)")
        commit = repo.resolve_ref(base_ref)
        blob = repo.show(commit, repo.relative(manifest_path))
        base_manifest = (
            parse_manifest(blob.decode("utf-8", "replace"), f"{manifest_path} at {base_ref}",
                           yaml_format=is_yaml(manifest_path.name))
            if blob is not None else None
        )
    changes = diff_manifests(base_manifest, head)
    if tenants:
        unknown = sorted(set(tenants) - {c.tenant for c in changes})
        if unknown:
            raise InvalidInputError(f"{manifest_path}: no tenant {', '.join(map(repr, unknown))}")
        changes = [c for c in changes if c.tenant in tenants]

    plans = [TenantPlan(change=c) for c in changes]
    for p in plans:
        if p.change.needs_gate:
            p.verified = verify_change(p.change, root)
    raise_problems([p.verified for p in plans if p.verified is not None])

    workdir = Path(tempfile.mkdtemp(prefix="adaptergate-baselines-"))
    tree = BaseTree.open(repo.top, commit, label=f"{base_ref} ({commit[:7]})") if repo is not None and commit \
        else BaseTree(root=root, commit=None)
    plan = ManifestPlan(manifest_path=manifest_path, base_ref=base_ref, base_commit=commit, tenants=plans,
                        workdir=workdir, base_tree=tree)
    try:
        for p in plans:
            _plan_tenant(p, root, repo, commit, workdir, tree, overrides or GateOptions(), audit_log, replay_path,
                         cache_dir, rules)
    except BaseException:
        plan.cleanup()
        raise
    return plan


def _plan_tenant(p: TenantPlan, root: Path, repo: GitRepo | None, commit: str | None, workdir: Path,
                 tree: BaseTree, overrides: GateOptions, audit_log: Path | None, replay_path: Path | None,
                 cache_dir: Path | None, rules: WorkflowRules | None) -> None:
    c = p.change
    if c.base is not None and c.head is not None:
        p.policy = _review(c.tenant, c.base, c.head, root, tree)
    if c.kind == "promotion":
        assert c.base is not None and c.head is not None and p.verified is not None
        assert p.verified.adapter_dir is not None
        baseline = _baseline_dir(c.base, c.tenant, root, repo, commit, workdir)
        holdout_here = resolve(root, c.base.holdout, f"tenant {c.tenant}: holdout")
        assert holdout_here is not None
        holdout = tree.pin_file(holdout_here, "holdout")
        p.holdout_changed = holdout.changed
        criteria = _criteria_file(c.tenant, c.base, root, tree)
        p.job = _job(c.tenant, c.base, c.head, root, baseline, p.verified.adapter_dir, holdout.path, holdout_here,
                     overrides, audit_log, replay_path, cache_dir, criteria, rules, p.policy)
    elif c.kind == "rollback":
        assert c.head is not None and c.head.rollback is not None
        p.note = (f"rollback from {c.head.rollback.from_version}: {c.head.rollback.reason}"
                  " — verified, not scored (a rollback is not held up by the gate)")
    elif c.kind == "new":
        p.note = "new tenant: verified; no production adapter to compare with — needs a human review"
    elif c.kind == "metadata":
        p.note = "metadata only (" + ", ".join(c.fields) + "): nothing to score"
    elif c.kind == "removed":
        p.note = "removed from the manifest"
    if p.policy is not None and p.policy.needs_review:
        p.note = (p.note + " — " if p.note else "") + p.policy.headline(c.tenant)


def _criteria_file(tenant: str, policy: TenantEntry, root: Path, tree: BaseTree) -> Path | None:
    judge = policy.gate.judge
    if judge is None or not isinstance(judge.criteria, str):
        return None
    here = resolve(root, judge.criteria, f"tenant {tenant}: gate.judge.criteria")
    assert here is not None
    return tree.pin_file(here, "judge criteria").path


def _review(tenant: str, base: TenantEntry, head: TenantEntry, root: Path, tree: BaseTree) -> PolicyReview:
    """What ``head`` changes in the tenant's policy: settings, and the content of the files
    the base's policy reads (holdout, judge criteria)."""
    changes = policy_changes(base, head)
    files = [("holdout", base.holdout)]
    if base.gate.judge is not None and isinstance(base.gate.judge.criteria, str):
        files.append(("judge criteria", base.gate.judge.criteria))
    for what, rel in files:
        here = resolve(root, rel, f"tenant {tenant}: {'holdout' if what == 'holdout' else 'gate.judge.criteria'}")
        assert here is not None
        pinned = tree.pin_file(here, what)
        if pinned.change is not None:
            changes.append(pinned.change)
    return PolicyReview(source=tree.label or "base", changes=changes)


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

Status = Literal["accepted", "review", "rejected", "error", "skipped"]


@dataclass
class TenantOutcome:
    tenant: str
    kind: str
    status: Status
    base_version: str | None
    head_version: str | None
    decision: GateDecision | None = None
    approval: str | None = None  # approve | review | reject (None: no bands)
    note: str = ""
    error: str | None = None
    exit_code: int = 0
    policy: PolicyReview | None = None
    """What the pull request changes in the tenant's gate policy (it was judged by the base's)."""

    @property
    def conclusion(self) -> str:
        """The check run's conclusion for this tenant."""
        if self.status == "accepted":
            d = self.decision
            return "neutral" if d is not None and d.verdict == "INCONCLUSIVE" else "success"
        if self.status == "review":
            return "action_required"
        if self.status == "skipped":
            return "skipped"
        return "failure"


@dataclass
class ManifestOutcome:
    plan: ManifestPlan
    tenants: list[TenantOutcome] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """3 if any evaluation failed, else 1 if any tenant was rejected, else 0."""
        codes = [t.exit_code for t in self.tenants]
        if 3 in codes:
            return 3
        if 2 in codes:
            return 2
        return 1 if 1 in codes else 0

    @property
    def gated(self) -> list[TenantOutcome]:
        return [t for t in self.tenants if t.status != "skipped"]


def _outcome_for(plan: TenantPlan, decision: GateDecision) -> TenantOutcome:
    """The tenant's row; the job already applied the approval bands to the decision."""
    c = plan.change
    head = c.head
    assert head is not None
    out = TenantOutcome(
        tenant=c.tenant, kind=c.kind, status="accepted" if decision.accepted else "rejected",
        base_version=c.base.adapter.version if c.base else None, head_version=head.adapter.version,
        decision=decision, approval=decision.approval, exit_code=0 if decision.accepted else 1,
    )
    bands = c.base.approval if c.base is not None else head.approval  # the trusted side's bands
    score = decision.score_candidate
    notes = []
    if bands is not None and decision.accepted and bands.band(score) == "review":
        notes.append(f"score {score:.3f} is between the floor and the auto-approve"
                     f" threshold {bands.auto_approve:.3f}: needs a human review")
    elif bands is not None and not decision.accepted and score < (bands.floor or 0.0):
        notes.append(f"score {score:.3f} is below the tenant's floor {bands.floor:.3f}")
    if plan.policy is not None and plan.policy.needs_review:
        notes.insert(0, plan.policy.headline(c.tenant))
    if decision.approval == "review":
        out.status = "review"
    out.note = "; ".join(notes)
    return out


def _gate_tenant(p: TenantPlan, run: Callable[[GateJob], GateDecision]) -> TenantOutcome:
    out = _gate_tenant_outcome(p, run)
    out.policy = p.policy
    return out


def _gate_tenant_outcome(p: TenantPlan, run: Callable[[GateJob], GateDecision]) -> TenantOutcome:
    c = p.change
    base_v = c.base.adapter.version if c.base else None
    head_v = c.head.adapter.version if c.head else None
    if p.job is None:
        policy_changed = p.policy is not None and p.policy.needs_review
        status: Status = "review" if c.kind in ("rollback", "new") or policy_changed else "skipped"
        return TenantOutcome(
            tenant=c.tenant, kind=c.kind, status=status, base_version=base_v, head_version=head_v,
            note=p.note, approval="review" if status == "review" else None,
        )
    try:
        decision = run(p.job)
    except AdaptergateError as exc:
        return TenantOutcome(
            tenant=c.tenant, kind=c.kind, status="error", base_version=base_v, head_version=head_v,
            error=exc.message, exit_code=int(exc.exit_code),
        )
    except Exception as exc:  # noqa: BLE001 - one tenant's crash is reported, the others still run
        return TenantOutcome(
            tenant=c.tenant, kind=c.kind, status="error", base_version=base_v, head_version=head_v,
            error=f"internal error: {type(exc).__name__}: {exc}", exit_code=int(exit_code_for(exc)),
        )
    return _outcome_for(p, decision)


def run_manifest_gate(
    plan: ManifestPlan, *, run: Callable[[GateJob], GateDecision] | None = None,
) -> ManifestOutcome:
    """Gate every planned tenant; one tenant's failure does not stop the others.

    Tenants on the same base model share one loaded copy of it, or one vLLM engine
    (:func:`adaptergate.backends.base.shared_models`).
    """
    from adaptergate.backends.base import shared_models
    from adaptergate.pipeline.job import run_job

    run = run or run_job
    result = ManifestOutcome(plan=plan)
    with shared_models():
        result.tenants.extend(_gate_tenant(p, run) for p in plan.tenants)
    return result

