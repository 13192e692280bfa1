"""Checking the manifest: every tenant's files against their pins, and the manifest's JSON Schema.

Every problem is an :class:`~adaptergate.errors.InvalidInputError` (exit 2)
with one line (several problems: a count, then one line each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from adaptergate.errors import InvalidInputError
from adaptergate.manifest.model import (
    ManifestProblem,
    TenantChange,
    load_manifest,
    manifest_json_schema,
    resolve,
    verify_change,
)

__all__ = ["DEFAULT_MANIFEST", "ValidationReport", "problems_error", "schema_text", "validate_manifest"]


DEFAULT_MANIFEST = "adaptergate.yaml"


def problems_error(problems: list[ManifestProblem], what: str) -> InvalidInputError:
    """One problem: its line. Several: a count, then one line each."""
    if len(problems) == 1:
        return InvalidInputError(str(problems[0]))
    return InvalidInputError(f"{what}: {len(problems)} problems", details=[str(p) for p in problems])


@dataclass
class ValidationReport:
    path: Path
    tenants: int
    checked: int
    hub: list[str] = field(default_factory=list)
    """Tenants whose adapter is on the Hub (hf_repo): their bytes are not checked here."""


def validate_manifest(path: Path, *, check_base_hash: bool = False) -> ValidationReport:
    """Parse the manifest and check every tenant's files; raise one line per problem.

    For a local adapter: the weights exist and their sha256 is the
    manifest's, the adapter's declared base is the manifest's base (and the
    base's sha256 when ``check_base_hash``), the holdout file exists.
    """
    manifest = load_manifest(path)
    root = path.parent
    problems: list[ManifestProblem] = []
    report = ValidationReport(path=path, tenants=len(manifest.tenants), checked=0)
    for tenant, entry in manifest.tenants.items():
        holdout = resolve(root, entry.holdout)
        if holdout is None or not holdout.is_file():
            problems.append(ManifestProblem(tenant, "holdout", f"{holdout} to exist", "no such file"))
        if entry.adapter.path is None:
            report.hub.append(tenant)
            continue
        change = TenantChange(tenant, "unchanged", None, entry)
        problems.extend(verify_change(change, root, check_base_hash=check_base_hash).problems)
        report.checked += 1
    if problems:
        raise problems_error(problems, f"manifest {path}")
    return report


def schema_text() -> str:
    """The manifest's JSON Schema, as committed in ``schemas/manifest.schema.json``."""
    return json.dumps(manifest_json_schema(), indent=2, ensure_ascii=False) + "\n"
