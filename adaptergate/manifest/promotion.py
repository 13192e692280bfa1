"""``adaptergate promote``: point a tenant at new weights under a higher version, with its card filled in.

This is the edit a bot commits in a pull request; the gate then checks that
pull request (``diff_manifests`` sees a promotion). A version number is never
reused: the new version is above every version the tenant has had in the
manifest's git history.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.manifest.cards import build_card, read_card_file
from adaptergate.manifest.display import short_sha
from adaptergate.manifest.facts import lora_facts
from adaptergate.manifest.history import manifest_revisions
from adaptergate.manifest.model import (
    AdapterRef,
    BaseModelRef,
    Manifest,
    ManifestGate,
    TenantChange,
    TenantEntry,
    dump_manifest,
    load_manifest,
    parse_version,
    read_card,
    resolve,
    verify_change,
)
from adaptergate.manifest.validation import problems_error

__all__ = ["Bump", "PromotionResult", "default_actor", "parse_version_arg", "promote", "utc_now"]


Bump = Literal["major", "minor", "patch"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators), as a manifest stores it."""
    try:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return path.resolve().as_posix()


@dataclass
class PromotionResult:
    tenant: str
    old_version: str | None
    new_version: str
    old_sha256: str | None
    new_sha256: str
    path: str
    manifest_path: Path
    entry: TenantEntry
    written: bool
    created_manifest: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "old_version": self.old_version, "new_version": self.new_version,
                "old_sha256": self.old_sha256, "new_sha256": self.new_sha256, "path": self.path,
                "manifest": str(self.manifest_path), "written": self.written}


def _known_versions(path: Path, tenant: str) -> list[str]:
    """Versions the tenant has had in the manifest's git history (best effort: none outside git)."""
    try:
        revisions = manifest_revisions(path)
    except InvalidInputError:
        return []
    return [r.manifest.tenants[tenant].adapter.version for r in revisions
            if r.manifest is not None and tenant in r.manifest.tenants]


def default_actor(environ: Mapping[str, str]) -> str | None:
    return environ.get("GITHUB_ACTOR") or environ.get("USER") or environ.get("USERNAME") or None


def parse_version_arg(value: str, what: str) -> Any:
    try:
        return parse_version(value)
    except (ValueError, TypeError):
        raise UsageError(f"{what} {value!r} is not a semantic version like 1.4.0") from None


def promote(
    manifest_path: Path,
    tenant: str,
    adapter_dir: Path,
    *,
    bump: Bump | None = None,
    version: str | None = None,
    base_model: str | None = None,
    base_model_path: Path | None = None,
    holdout: Path | None = None,
    card_file: Path | None = None,
    creator: str | None = None,
    data_source: str | None = None,
    dataset: str | None = None,
    dataset_size: int | None = None,
    task: str | None = None,
    domain: str | None = None,
    language: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> PromotionResult:
    """Point ``tenant`` at the adapter in ``adapter_dir`` under a higher version; write the manifest.

    ``base_model_path``: the base's local directory, stored as ``base_model.path`` (relative
    to the manifest); an adapter whose ``adapter_config.json`` names its base by that
    directory (the path it was trained from) then matches the manifest's base."""
    env = os.environ if environ is None else environ
    now = now or utc_now()
    if not tenant or tenant != tenant.strip():
        raise UsageError(f"--tenant {tenant!r}: give a tenant name without surrounding spaces")
    if version is not None and bump is not None:
        raise UsageError("give --version or --bump, not both")
    if dataset_size is not None and dataset_size < 0:
        raise UsageError("--dataset-size must be >= 0")
    created = not manifest_path.exists()
    if created:
        if not manifest_path.parent.is_dir():
            raise InvalidInputError(f"manifest {manifest_path} not found (and its directory does not exist)")
        manifest = Manifest()
    else:
        manifest = load_manifest(manifest_path)
    root = manifest_path.parent
    current = manifest.tenants.get(tenant)
    if current is None and (base_model is None or holdout is None):
        raise UsageError(f"tenant {tenant} is new in {manifest_path}: --base-model and --holdout are required")

    facts = lora_facts(adapter_dir)

    # the version: above the current one, and above any the tenant ever had (a rolled-back
    # version's number is never reused for other weights)
    history = _known_versions(manifest_path, tenant) if not created else []
    floor_text: str | None = None
    floor = None
    for v in ([current.adapter.version] if current else []) + (
            [current.rollback.from_version] if current and current.rollback else []) + history:
        try:
            pv = parse_version(v)
        except (ValueError, TypeError):
            continue
        if floor is None or pv > floor:
            floor, floor_text = pv, v
    if version is not None:
        new_v = parse_version_arg(version, "--version")
    elif floor is None:
        new_v = parse_version("1.0.0")
    else:
        part = bump or "minor"
        new_v = {"major": floor.bump_major, "minor": floor.bump_minor, "patch": floor.bump_patch}[part]()
    if floor is not None and new_v <= floor:
        had = "is at" if current is not None and floor_text == current.adapter.version else "has had"
        raise InvalidInputError(f"version {new_v} does not increase: tenant {tenant} {had} {floor_text}")
    new_version = str(new_v)

    if current is not None and facts["sha256"] == current.adapter.sha256:
        raise InvalidInputError(f"adapter {adapter_dir}: its weights are version {current.adapter.version}'s"
                                f" (sha256 {short_sha(facts['sha256'])}): nothing to promote")

    if current is not None and current.adapter.path is not None:
        cur_dir = resolve(root, current.adapter.path)
        if cur_dir is not None and cur_dir.resolve() == adapter_dir.resolve():
            raise InvalidInputError(f"adapter {adapter_dir} is version {current.adapter.version}'s directory: put"
                                    " the new adapter in a directory of its own (a rollback needs the old weights)")

    if base_model is not None and (current is None or base_model != current.base_model.id):
        base = BaseModelRef(id=base_model)
    else:
        assert current is not None
        base = current.base_model
    if base_model_path is not None:
        if not base_model_path.is_dir():
            raise InvalidInputError(f"--base-model-path {base_model_path}: not a directory (the base model's files)")
        base = base.model_copy(update={"path": _relative(base_model_path, root)})
    if holdout is not None:
        if not holdout.is_file():
            raise InvalidInputError(f"holdout {holdout} not found")
        holdout_text = _relative(holdout, root)
    else:
        assert current is not None
        holdout_text = current.holdout

    card_data = read_card_file(card_file) if card_file is not None else None
    card = build_card(
        previous=current, sidecar=read_card(adapter_dir), card_file=card_data, facts=facts, base_id=base.id,
        parent=current.adapter.version if current else None,
        flags={"task": task, "domain": domain, "language": language, "dataset": dataset,
               "dataset_size": dataset_size, "creator": creator, "data_source": data_source},
        creator=default_actor(env), now=now,
    )
    rel = _relative(adapter_dir, root)
    try:
        entry = TenantEntry(
            adapter=AdapterRef(version=new_version, path=rel, sha256=facts["sha256"],
                               name=current.adapter.name if current else None),
            base_model=base, holdout=holdout_text,
            gate=current.gate.model_copy() if current else ManifestGate(),
            approval=current.approval if current else None, card=card, rollback=None,
            description=current.description if current else None,
        )
    except ValidationError as exc:
        e = exc.errors()[0]
        raise InvalidInputError(f"tenant {tenant}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}") from None

    change = TenantChange(tenant, "new" if current is None else "promotion", current, entry)
    problems = verify_change(change, root, check_base_hash=False).problems
    if problems:
        error = problems_error(problems, f"promote {tenant}")
        if base.path is None and any(p.field == "base_model" for p in problems):
            error.message += (" — if the adapter names its base by a local directory, give that directory as"
                              " --base-model-path (stored as base_model.path)")
            error.args = (error.message,)
        raise error

    if not dry_run:
        tenants = dict(manifest.tenants)
        tenants[tenant] = entry
        dump_manifest(manifest.model_copy(update={"tenants": tenants}), manifest_path)
    return PromotionResult(
        tenant=tenant, old_version=current.adapter.version if current else None, new_version=new_version,
        old_sha256=current.adapter.sha256 if current else None, new_sha256=facts["sha256"], path=rel,
        manifest_path=manifest_path, entry=entry, written=not dry_run, created_manifest=created and not dry_run,
    )
