"""The tenant manifest's lifecycle: ``adaptergate manifest *``, ``promote`` and
``rollback`` (the modules of :mod:`adaptergate.manifest` do the work)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from adaptergate.cli.common import _err_console

manifest_app = typer.Typer(
    help="Inspect the tenant adapter manifest: validate, show, history, export, schema.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(manifest_app, name="manifest")
    app.command()(promote)
    app.command()(rollback)


MANIFEST_OPT = typer.Option(
    Path("adaptergate.yaml"), "--manifest", envvar="ADAPTERGATE_MANIFEST",
    help="The tenant adapter manifest (YAML or JSON).",
)
AUDIT_OPT = typer.Option(None, "--audit-log", help="The gate's audit log: show its decision for each version.")


class ExportFormat(str, Enum):
    vllm = "vllm"
    json = "json"


class BumpPart(str, Enum):
    major = "major"
    minor = "minor"
    patch = "patch"


def _out(line: str) -> None:
    typer.echo(line)


@manifest_app.command("validate")
def manifest_validate(
    manifest: Path = MANIFEST_OPT,
    check_base_hash: bool = typer.Option(
        False, "--check-base-hash", help="Also hash each local base model against its sha256 (slow)."
    ),
) -> None:
    """Parse the manifest and check every tenant's files and weights' sha256. Exit 2 on any problem."""
    from adaptergate.manifest import validate_manifest

    report = validate_manifest(manifest, check_base_hash=check_base_hash)
    hub = f" ({len(report.hub)} on the Hub, not checked: {', '.join(report.hub)})" if report.hub else ""
    _out(f"manifest OK: {report.tenants} tenant{'s' if report.tenants != 1 else ''}{hub}")


@manifest_app.command("show")
def manifest_show(
    manifest: Path = MANIFEST_OPT,
    tenant: Optional[str] = typer.Option(None, help="Only this tenant."),
    as_json: bool = typer.Option(False, "--json", help="The entries as JSON."),
) -> None:
    """A readable summary of each tenant's entry."""
    from adaptergate.manifest.model import load_manifest
    from adaptergate.manifest import describe_entry, show_entries

    m = load_manifest(manifest)
    if as_json:
        _out(json.dumps(show_entries(m, tenant), indent=2, ensure_ascii=False))
        return
    names = [tenant] if tenant is not None else list(m.tenants)
    if not names:
        _out(f"{manifest}: no tenants")
    for i, t in enumerate(names):
        if i:
            _out("")
        for line in describe_entry(t, m.entry(t, str(manifest))):
            _out(line)


@manifest_app.command("history")
def manifest_history(
    tenant: str = typer.Option(..., help="The tenant whose promotions to list."),
    manifest: Path = MANIFEST_OPT,
    audit_log: Optional[Path] = AUDIT_OPT,
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the newest N changes."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list."),
) -> None:
    """Each commit that changed the tenant's adapter, newest first (from the manifest's git log)."""
    from adaptergate.manifest import tenant_history

    events = tenant_history(manifest, tenant, audit_log=audit_log, limit=limit)
    if as_json:
        _out(json.dumps([e.to_json() for e in events], indent=2, ensure_ascii=False))
        return
    for e in events:
        change = f"{e.version_before or '-'} -> {e.version_after or '-'}"
        line = f"{e.date[:10]}  {e.short}  {e.kind:<9}  {change:<17}  {e.author}: {e.subject}"
        if e.rollback_reason:
            line += f"  [reason: {e.rollback_reason}]"
        if audit_log is not None and e.version_after is not None:
            d = e.decision
            line += f"  [gate: {d['verdict']} {d['timestamp'][:10]}]" if d else "  [gate: no decision]"
        _out(line)
    if not events:
        _out(f"no commit changed tenant {tenant}'s adapter")


@manifest_app.command("export")
def manifest_export(
    manifest: Path = MANIFEST_OPT,
    output_format: ExportFormat = typer.Option(ExportFormat.vllm, "--format", "-f"),
    tenants: Optional[list[str]] = typer.Option(None, "--tenant", help="Only these tenants (repeatable)."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Only tenants on this base model."),
    max_loras: Optional[int] = typer.Option(
        None, "--max-loras", help="vLLM --max-loras (default: the number of exported adapters)."
    ),
    hub_cache: Optional[Path] = typer.Option(
        None, "--hub-cache", help="Hugging Face hub cache of the serving host (for hf_repo adapters)."
    ),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check the weights' sha256 first."),
) -> None:
    """The promoted adapters for serving: vLLM arguments, or a JSON list."""
    from adaptergate.manifest.model import load_manifest
    from adaptergate.manifest import export_adapters, shell_line, vllm_args

    m = load_manifest(manifest)
    adapters, notes = export_adapters(m, manifest.parent, tenants, base_model=base_model, verify=verify,
                                      hub_cache=hub_cache)
    if output_format is ExportFormat.json:
        _out(json.dumps([a.to_json() for a in adapters], indent=2, ensure_ascii=False))
    else:
        _out(shell_line(vllm_args(adapters, max_loras=max_loras)))
    err = _err_console()
    for note in notes:
        err.print(f"note: {note}", markup=False, highlight=False)


@manifest_app.command("schema")
def manifest_schema() -> None:
    """Print the manifest's JSON Schema (committed as schemas/manifest.schema.json)."""
    from adaptergate.manifest import schema_text

    sys.stdout.write(schema_text())


def _sha_change(old: Optional[str], new: str) -> str:
    return f"{old[:12]} -> {new}" if old else new


def promote(
    tenant: str = typer.Option(..., help="The tenant to promote an adapter for."),
    adapter: Path = typer.Option(..., "--adapter", help="The PEFT LoRA adapter directory."),
    manifest: Path = MANIFEST_OPT,
    bump: Optional[BumpPart] = typer.Option(None, "--bump", help="Version part to bump (default: minor)."),
    version: Optional[str] = typer.Option(None, "--version", help="The new version (instead of --bump)."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Base model id (required for a new tenant)."),
    base_model_path: Optional[Path] = typer.Option(
        None, "--base-model-path", metavar="DIR",
        help="The base model's local directory, stored as base_model.path (relative to the manifest); the"
        " gate loads the base from it, and an adapter that names its base by that directory matches.",
    ),
    holdout: Optional[Path] = typer.Option(None, "--holdout", help="Held-out JSONL (required for a new tenant)."),
    card: Optional[Path] = typer.Option(None, "--card", help="An adapter card (JSON or YAML) to merge."),
    creator: Optional[str] = typer.Option(None, "--creator", help="Who made it (default $GITHUB_ACTOR or $USER)."),
    data_source: Optional[str] = typer.Option(None, "--data-source", help="Where the training data came from."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Training dataset name."),
    dataset_size: Optional[int] = typer.Option(None, "--dataset-size", help="Training examples."),
    task: Optional[str] = typer.Option(None, "--task", help="The adapter's task (card)."),
    domain: Optional[str] = typer.Option(None, "--domain", help="The adapter's domain (card)."),
    language: Optional[str] = typer.Option(None, "--language", help="The adapter's language (card)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the change; do not write the manifest."),
    as_json: bool = typer.Option(False, "--json", help="Print the change as JSON."),
) -> None:
    """Point a tenant at a new adapter under a higher version (the edit a promotion PR commits)."""
    from adaptergate.manifest import promote as do_promote

    res = do_promote(
        manifest, tenant, adapter, bump=bump.value if bump else None, version=version, base_model=base_model,
        base_model_path=base_model_path, holdout=holdout, card_file=card, creator=creator, data_source=data_source, dataset=dataset,
        dataset_size=dataset_size, task=task, domain=domain, language=language, dry_run=dry_run,
    )
    if as_json:
        _out(json.dumps(res.to_json(), ensure_ascii=False))
        return
    head = f"{res.old_version} -> {res.new_version}" if res.old_version else f"new tenant at {res.new_version}"
    _out(f"{res.tenant}: {head}")
    _out(f"  adapter: {res.path}")
    _out(f"  sha256:  {_sha_change(res.old_sha256, res.new_sha256)}")
    if not res.written:
        _out(f"dry run: {manifest} not written")
    else:
        _out(f"{'created' if res.created_manifest else 'wrote'} {manifest}")


def rollback(
    tenant: str = typer.Option(..., help="The tenant to roll back."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the manifest)."),
    to: Optional[str] = typer.Option(None, "--to", help="The version to return to (default: the previous one)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who decided (default $GITHUB_ACTOR or $USER)."),
    manifest: Path = MANIFEST_OPT,
    audit_log: Optional[Path] = typer.Option(
        None, "--audit-log", help="Only versions with an accepted gate decision in this audit log qualify."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the change; do not write the manifest."),
    as_json: bool = typer.Option(False, "--json", help="Print the change as JSON."),
) -> None:
    """Write a tenant's earlier version (from the manifest's git history) back, flagged as a rollback."""
    from adaptergate.manifest import rollback as do_rollback

    res = do_rollback(manifest, tenant, reason=reason, to=to, by=by, audit_log=audit_log, dry_run=dry_run)
    if as_json:
        _out(json.dumps(res.to_json(), ensure_ascii=False))
        return
    _out(f"{res.tenant}: {res.old_version} -> {res.new_version} (rollback, from commit {res.commit[:12]})")
    _out(f"  adapter: {res.path}")
    _out(f"  sha256:  {res.sha256}")
    _out(f"dry run: {manifest} not written" if not res.written else f"wrote {manifest}")
