"""``adaptergate rollback``: write a tenant's earlier entry back, found in the manifest's git history.

The entry written carries a ``rollback`` block naming the version it leaves
and why; with an audit log, only a version the gate accepted is a target.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.manifest.facts import WEIGHTS_FILE
from adaptergate.manifest.history import Revision, decision_for, manifest_revisions, tenant_decisions
from adaptergate.manifest.model import (
    Rollback,
    TenantChange,
    TenantEntry,
    dump_manifest,
    load_manifest,
    parse_version,
    resolve,
    verify_change,
)
from adaptergate.manifest.promotion import default_actor, parse_version_arg, utc_now
from adaptergate.manifest.validation import problems_error

__all__ = ["RollbackResult", "rollback"]


@dataclass
class RollbackResult:
    tenant: str
    old_version: str
    new_version: str
    commit: str
    """The commit whose entry was written back."""
    path: str
    sha256: str
    manifest_path: Path
    entry: TenantEntry
    written: bool

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "old_version": self.old_version, "new_version": self.new_version,
                "commit": self.commit, "path": self.path, "sha256": self.sha256,
                "manifest": str(self.manifest_path), "written": self.written}


def rollback(
    manifest_path: Path,
    tenant: str,
    *,
    reason: str,
    to: str | None = None,
    by: str | None = None,
    audit_log: Path | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> RollbackResult:
    """Write back the tenant's most recent earlier (accepted) version from the manifest's history."""
    from adaptergate.backends.files import file_sha256

    env = os.environ if environ is None else environ
    if not reason.strip():
        raise UsageError("--reason must say why (it is recorded in the manifest)")
    manifest = load_manifest(manifest_path)
    root = manifest_path.parent
    current = manifest.entry(tenant, str(manifest_path))
    cur_v = parse_version(current.adapter.version)
    want = parse_version_arg(to, "--to") if to is not None else None
    if want is not None and want >= cur_v:
        raise InvalidInputError(f"--to {to}: must be below tenant {tenant}'s current version"
                                f" {current.adapter.version}")

    # each earlier version once, with its newest committed entry
    candidates: dict[str, tuple[TenantEntry, Revision]] = {}
    for rev in manifest_revisions(manifest_path):
        if rev.manifest is None or tenant not in rev.manifest.tenants:
            continue
        e = rev.manifest.tenants[tenant]
        key = str(parse_version(e.adapter.version))
        if key not in candidates:
            candidates[key] = (e, rev)
    decisions = tenant_decisions(audit_log, tenant)

    def accepted(v: str) -> bool:
        d = decision_for(decisions, v)
        return d is not None and bool(d["accepted"])

    lower = {k: c for k, c in candidates.items() if parse_version(k) < cur_v}
    if want is not None:
        chosen = lower.get(str(want))
        if chosen is None:
            known = ", ".join(sorted(lower, key=parse_version)) or "none"
            raise InvalidInputError(f"--to {to}: tenant {tenant} never had that version in the history of"
                                    f" {manifest_path} (earlier versions: {known})")
        if audit_log is not None and not accepted(chosen[0].adapter.version):
            raise InvalidInputError(f"--to {to}: {audit_log} has no accepted gate decision for tenant {tenant}"
                                    f" version {chosen[0].adapter.version}")
    else:
        ordered = [c for c in lower.values()]  # dict order: newest commit first
        if audit_log is not None:
            ordered = [c for c in ordered if accepted(c[0].adapter.version)]
        if not ordered:
            extra = f" with an accepted gate decision in {audit_log}" if audit_log is not None else ""
            raise InvalidInputError(f"tenant {tenant} has no version below {current.adapter.version}{extra}"
                                    f" in the history of {manifest_path}: nothing to roll back to")
        chosen = ordered[0]
    old, rev = chosen

    if old.adapter.path is not None:
        adapter_dir = resolve(root, old.adapter.path)
        assert adapter_dir is not None
        weights = adapter_dir / WEIGHTS_FILE
        if not weights.is_file():
            raise InvalidInputError(f"cannot roll tenant {tenant} back to {old.adapter.version}: {weights}"
                                    f" is gone (pinned by commit {rev.short})")
        sha = file_sha256(weights)
        if sha != old.adapter.sha256:
            raise InvalidInputError(f"cannot roll tenant {tenant} back to {old.adapter.version}: sha256 of"
                                    f" {weights} is {sha}, commit {rev.short} pinned {old.adapter.sha256}")

    entry = current.model_copy(update={
        "adapter": old.adapter.model_copy(),
        "base_model": old.base_model.model_copy(),
        "card": old.card.model_copy(deep=True) if old.card is not None else None,
        "rollback": Rollback(from_version=current.adapter.version, reason=reason.strip(),
                             at=now or utc_now(), by=by or default_actor(env)),
    })
    problems = verify_change(TenantChange(tenant, "rollback", current, entry), root,
                             check_base_hash=False).problems
    if problems:
        raise problems_error(problems, f"rollback {tenant}")
    if not dry_run:
        tenants = dict(manifest.tenants)
        tenants[tenant] = entry
        dump_manifest(manifest.model_copy(update={"tenants": tenants}), manifest_path)
    return RollbackResult(tenant=tenant, old_version=current.adapter.version, new_version=old.adapter.version,
                          commit=rev.commit, path=old.adapter.location, sha256=old.adapter.sha256,
                          manifest_path=manifest_path, entry=entry, written=not dry_run)
