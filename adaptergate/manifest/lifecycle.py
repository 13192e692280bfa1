"""The manifest's lifecycle: validate, show, history, export, promote, roll back.

Pure-ish functions behind ``adaptergate manifest …``, ``adaptergate promote``
and ``adaptergate rollback``: they read and write the tenant manifest
(:mod:`adaptergate.manifest.model`) and the manifest's git history, and return
plain data; the CLI prints it. Every problem is an
:class:`~adaptergate.errors.InvalidInputError` (exit 2) with one line.

``promote`` is the edit a bot commits in a pull request: new weights for a
tenant, the version bumped, the card filled in. The gate then checks that
pull request (``diff_manifests`` sees a promotion). ``rollback`` writes an
earlier entry of the tenant back, found in the manifest's git history, with
a ``rollback`` block naming the version it leaves.

History comes from ``git log --follow`` of the manifest file and the file's
text at each commit (``git cat-file --batch``), so it needs git and a
repository; everything else works on a plain directory.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.gitrepo import GitRepo, error_line
from adaptergate.manifest.model import (
    AdapterCard,
    AdapterRef,
    BaseModelRef,
    Manifest,
    ManifestGate,
    ManifestProblem,
    Rollback,
    TenantChange,
    TenantEntry,
    default_hub_cache,
    diff_manifests,
    dump_manifest,
    hub_snapshot,
    load_manifest,
    manifest_json_schema,
    parse_manifest,
    parse_version,
    read_card,
    resolve,
    verify_change,
)

__all__ = [
    "DEFAULT_MANIFEST",
    "VLLM_MAX_LORA_RANKS",
    "ExportedAdapter",
    "HistoryEvent",
    "PromotionResult",
    "Revision",
    "RollbackResult",
    "ValidationReport",
    "default_hub_cache",
    "describe_entry",
    "export_adapters",
    "manifest_revisions",
    "hub_snapshot",
    "promote",
    "rollback",
    "schema_text",
    "shell_line",
    "show_entries",
    "tenant_history",
    "validate_manifest",
    "vllm_args",
    "vllm_max_lora_rank",
]

DEFAULT_MANIFEST = "adaptergate.yaml"
WEIGHTS_FILE = "adapter_model.safetensors"

VLLM_MAX_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM's ``--max-lora-rank`` accepts (``MaxLoRARanks`` in vllm/config/lora.py)."""

Bump = Literal["major", "minor", "patch"]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _short(sha: str | None, n: int = 12) -> str:
    return sha[:n] if sha else "-"


def _problems_error(problems: list[ManifestProblem], what: str) -> InvalidInputError:
    """One problem: its line. Several: a count, then one line each."""
    if len(problems) == 1:
        return InvalidInputError(str(problems[0]))
    return InvalidInputError(f"{what}: {len(problems)} problems", details=[str(p) for p in problems])


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX separators), as a manifest stores it."""
    try:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return path.resolve().as_posix()


# --------------------------------------------------------------------------
# validate / show / schema
# --------------------------------------------------------------------------


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
        raise _problems_error(problems, f"manifest {path}")
    return report


def schema_text() -> str:
    """The manifest's JSON Schema, as committed in ``schemas/manifest.schema.json``."""
    return json.dumps(manifest_json_schema(), indent=2, ensure_ascii=False) + "\n"


def show_entries(manifest: Manifest, tenant: str | None = None) -> dict[str, Any]:
    """The entries (all, or one tenant's) as JSON-ready dicts, keyed by tenant."""
    names = [tenant] if tenant is not None else list(manifest.tenants)
    return {t: manifest.entry(t).model_dump(mode="json", exclude_none=True) for t in names}


def _fmt_num(x: float | int | None) -> str:
    return "-" if x is None else f"{x:g}"


def describe_entry(tenant: str, entry: TenantEntry) -> list[str]:
    """A readable summary of one tenant's entry, a few lines."""
    a, b = entry.adapter, entry.base_model
    name = f" (served as {a.name})" if a.name and a.name != tenant else ""
    lines = [f"{tenant}: {a.version}  {a.location}  sha256 {_short(a.sha256)}{name}"]
    base = b.id
    extra = [f"revision {_short(b.revision)}" if b.revision else "", f"path {b.path}" if b.path else "",
             f"sha256 {_short(b.sha256)}" if b.sha256 else ""]
    extra = [e for e in extra if e]
    lines.append(f"  base:     {base}" + (f" ({', '.join(extra)})" if extra else ""))
    lines.append(f"  holdout:  {entry.holdout}")
    gate = entry.gate.model_dump(exclude_none=True)
    lines.append("  gate:     " + (" ".join(f"{k}={v}" for k, v in gate.items()) if gate else "defaults"))
    ap = entry.approval
    if ap is not None and (ap.floor is not None or ap.auto_approve is not None):
        bands = []
        if ap.floor is not None:
            bands.append(f"reject < {_fmt_num(ap.floor)}")
        if ap.auto_approve is not None:
            lo = f"{_fmt_num(ap.floor)} <= " if ap.floor is not None else ""
            bands.append(f"{lo}review < {_fmt_num(ap.auto_approve)}")
            bands.append(f"approve >= {_fmt_num(ap.auto_approve)}")
        else:
            bands.append(f"approve >= {_fmt_num(ap.floor)}")
        lines.append("  approval: " + "; ".join(bands))
    else:
        lines.append("  approval: approve every passing gate")
    card = entry.card
    if card is not None:
        bits = [f"{k}={v}" for k, v in (("task", card.task), ("domain", card.domain),
                                         ("language", card.language)) if v]
        t = card.training
        if t is not None:
            bits += [f"{k}={_fmt_num(v) if isinstance(v, (int, float)) else v}"
                     for k, v in (("rank", t.rank), ("alpha", t.alpha), ("dataset", t.dataset),
                                  ("dataset_size", t.dataset_size)) if v is not None]
        p = card.provenance
        if p is not None:
            bits += [f"{k}={v}" for k, v in (("creator", p.creator), ("parent", p.parent),
                                             ("data_source", p.data_source)) if v]
            if p.created_at is not None:
                bits.append(f"created={p.created_at.isoformat()}")
        lines.append("  card:     " + (" ".join(bits) if bits else "(empty)"))
    if entry.rollback is not None:
        r = entry.rollback
        who = f" by {r.by}" if r.by else ""
        when = f" at {r.at.isoformat()}" if r.at else ""
        lines.append(f"  rollback: from {r.from_version}{who}{when}: {r.reason}")
    if entry.description:
        lines.append(f"  note:     {entry.description}")
    return lines


# --------------------------------------------------------------------------
# git history of the manifest
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Revision:
    """The manifest as one commit has it (``manifest`` None: missing or unreadable there)."""

    commit: str
    short: str
    date: str
    author: str
    subject: str
    manifest: Manifest | None


def manifest_revisions(path: Path) -> list[Revision]:
    """Every commit that touched the manifest file (following renames), newest first."""
    repo = GitRepo(path, why=" (history and rollback read its git log)")
    res = repo.run("log", "--follow", "--no-color", "-z", "--name-only",
                   "--format=%x1e%H%x1f%h%x1f%aI%x1f%an%x1f%s", "--", repo.relative(path), check=False)
    if res.returncode != 0:
        msg = error_line(res)
        if "does not have any commits" in msg:
            return []
        raise InvalidInputError(f"git log of {path} failed: {msg}")
    heads: list[tuple[list[str], str]] = []
    for chunk in res.stdout.decode("utf-8", "replace").split("\x1e"):
        if not chunk.strip("\x00\n"):
            continue
        parts = chunk.split("\x00")
        fields = parts[0].split("\x1f")
        names = [p.strip("\n") for p in parts[1:] if p.strip("\n")]
        if len(fields) != 5 or not names:
            continue
        heads.append((fields, names[0]))
    if not heads:
        return []
    batch = "".join(f"{f[0]}:{name}\n" for f, name in heads).encode("utf-8")
    blobs = _parse_batch(repo.run("cat-file", "--batch", stdin=batch).stdout, len(heads))
    out: list[Revision] = []
    for (fields, name), blob in zip(heads, blobs):
        manifest = None
        if blob is not None:
            try:
                manifest = parse_manifest(blob.decode("utf-8"), name)
            except (InvalidInputError, UnicodeDecodeError):
                manifest = None  # a commit with a broken manifest is no state of any tenant
        out.append(Revision(commit=fields[0], short=fields[1], date=fields[2], author=fields[3],
                            subject=fields[4], manifest=manifest))
    return out


def _parse_batch(data: bytes, n: int) -> list[bytes | None]:
    """The objects of ``git cat-file --batch`` output (None: missing)."""
    out: list[bytes | None] = []
    pos = 0
    for _ in range(n):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        header = data[pos:nl].decode("utf-8", "replace").split()
        pos = nl + 1
        if len(header) != 3 or header[-1] == "missing":
            out.append(None)
            continue
        size = int(header[2])
        out.append(data[pos:pos + size] if header[1] == "blob" else None)
        pos += size + 1
    out.extend([None] * (n - len(out)))
    return out


# --------------------------------------------------------------------------
# audit log: the gate's decision for a candidate version
# --------------------------------------------------------------------------


def _same_version(a: str, b: str) -> bool:
    if a.strip() == b.strip():
        return True
    try:
        return parse_version(a) == parse_version(b)
    except (ValueError, TypeError):
        return False


def _decisions(audit_log: Path | None, tenant: str) -> list[Any]:
    if audit_log is None:
        return []
    from adaptergate.pipeline.ledger import AuditLog

    if not audit_log.is_file():
        raise InvalidInputError(f"audit log {audit_log} not found")
    return [d for d in AuditLog(audit_log).decisions() if d.tenant_id == tenant]


def _decision_for(decisions: list[Any], version: str) -> dict[str, Any] | None:
    """The newest decision whose candidate is ``version`` (the gate names candidates by version)."""
    found = [d for d in decisions if _same_version(str(d.candidate_id), version)]
    if not found:
        return None
    d = found[-1]  # the log is append-only: the last is the newest
    return {"verdict": d.verdict, "accepted": d.accepted, "timestamp": d.timestamp,
            "baseline": d.baseline_id, "delta": d.delta, "reason": d.reason}


# --------------------------------------------------------------------------
# history
# --------------------------------------------------------------------------


@dataclass
class HistoryEvent:
    """One commit that changed a tenant's adapter (or base)."""

    commit: str
    short: str
    date: str
    author: str
    subject: str
    kind: str
    """new, promotion, rollback or removed."""
    version_before: str | None
    version_after: str | None
    sha256_before: str | None
    sha256_after: str | None
    rollback_reason: str | None = None
    decision: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tenant_history(path: Path, tenant: str, *, audit_log: Path | None = None,
                   limit: int | None = None) -> list[HistoryEvent]:
    """Commits where ``tenant``'s adapter version or weights changed, newest first."""
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    revisions = [r for r in manifest_revisions(path) if r.manifest is not None]
    if not any(tenant in r.manifest.tenants for r in revisions if r.manifest is not None):
        known = sorted({t for r in revisions if r.manifest is not None for t in r.manifest.tenants})
        raise InvalidInputError(f"no tenant {tenant!r} in any commit of {path}"
                                f" (tenants: {', '.join(known) or 'none'})")
    decisions = _decisions(audit_log, tenant)
    events: list[HistoryEvent] = []
    before: Manifest | None = None
    for rev in reversed(revisions):  # oldest first
        assert rev.manifest is not None
        changes = [c for c in diff_manifests(before, rev.manifest) if c.tenant == tenant]
        before = rev.manifest
        if not changes or changes[0].kind in ("unchanged", "metadata"):
            continue
        c = changes[0]
        a, b = c.base, c.head
        ev = HistoryEvent(
            commit=rev.commit, short=rev.short, date=rev.date, author=rev.author, subject=rev.subject,
            kind=c.kind, version_before=a.adapter.version if a else None,
            version_after=b.adapter.version if b else None,
            sha256_before=a.adapter.sha256 if a else None, sha256_after=b.adapter.sha256 if b else None,
            rollback_reason=b.rollback.reason if b is not None and b.rollback is not None else None,
        )
        if b is not None and audit_log is not None:
            ev.decision = _decision_for(decisions, b.adapter.version)
        events.append(ev)
    events.reverse()
    return events[:limit] if limit is not None else events


# --------------------------------------------------------------------------
# export for serving
# --------------------------------------------------------------------------


@dataclass
class ExportedAdapter:
    tenant: str
    name: str
    path: str
    version: str
    sha256: str
    rank: int
    base_model: str
    hf_repo: str | None = None
    revision: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "name": self.name, "path": self.path, "version": self.version,
                "sha256": self.sha256, "rank": self.rank, "base_model": self.base_model}


def _config_rank(adapter_dir: Path) -> int | None:
    try:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    return _max_rank(cfg)


def _max_rank(cfg: Mapping[str, Any]) -> int | None:
    r = cfg.get("r", 8)  # PEFT's default when absent
    ranks = [r] if type(r) is int and r > 0 else []
    pattern = cfg.get("rank_pattern") or {}
    if isinstance(pattern, dict):
        ranks += [v for v in pattern.values() if type(v) is int and v > 0]
    return max(ranks) if ranks else None


def export_adapters(manifest: Manifest, root: Path, tenants: Iterable[str] | None = None, *,
                    base_model: str | None = None, verify: bool = True,
                    hub_cache: Path | None = None) -> tuple[list[ExportedAdapter], list[str]]:
    """The adapters to serve, with absolute paths and ranks; and notes for the user.

    Local adapters are verified (weights present, sha256 as pinned, declared
    base) unless ``verify`` is off. A Hub adapter is exported at the Hub
    cache's snapshot directory of its pinned revision (``--lora-modules``
    has no revision field), which ``huggingface-cli download`` fills.
    """
    names = list(dict.fromkeys(tenants)) if tenants else list(manifest.tenants)
    cache = hub_cache if hub_cache is not None else default_hub_cache()
    out: list[ExportedAdapter] = []
    notes: list[str] = []
    problems: list[ManifestProblem] = []
    for t in names:
        entry = manifest.entry(t)
        if base_model is not None and entry.base_model.id != base_model:
            if tenants:
                raise InvalidInputError(f"tenant {t} runs on {entry.base_model.id}, not {base_model}")
            continue
        a = entry.adapter
        rank: int | None = None
        if a.path is not None:
            adapter_dir = resolve(root, a.path)
            assert adapter_dir is not None
            if verify:
                v = verify_change(TenantChange(t, "unchanged", None, entry), root, check_base_hash=False)
                problems.extend(v.problems)
                rank = v.rank
            if rank is None:
                rank = _config_rank(adapter_dir)
            path = str(adapter_dir.resolve())
        else:
            assert a.hf_repo is not None and a.revision is not None
            snap = hub_snapshot(cache, a.hf_repo, a.revision)
            path = str(snap)
            weights = snap / WEIGHTS_FILE
            if weights.is_file():
                rank = _config_rank(snap)
                if verify:
                    from adaptergate.backends.adapters import file_sha256

                    sha = file_sha256(weights)
                    if sha != a.sha256:
                        problems.append(ManifestProblem(t, "adapter.sha256", a.sha256, f"{sha} ({weights})"))
        if rank is None and entry.card is not None and entry.card.training is not None:
            rank = entry.card.training.rank
        fetch = (f"huggingface-cli download {a.hf_repo} --revision {a.revision}" if a.hf_repo is not None
                 and not Path(path, WEIGHTS_FILE).is_file() else None)
        if rank is None:
            why = f"unknown ({a.hf_repo}@{_short(a.revision)} is not in {cache}: {fetch})" if fetch else "unknown"
            problems.append(ManifestProblem(t, "rank", "adapter_config.json r (or card.training.rank)", why))
            continue
        if fetch:
            notes.append(f"{t}: {a.hf_repo}@{_short(a.revision)} is not in the Hub cache {cache}; fetch it"
                         f" before serving: {fetch}")
        out.append(ExportedAdapter(tenant=t, name=a.name or t, path=path, version=a.version,
                                   sha256=a.sha256, rank=rank, base_model=entry.base_model.id,
                                   hf_repo=a.hf_repo, revision=a.revision))
    if problems:
        raise _problems_error(problems, "export")
    seen: dict[str, str] = {}
    for e in out:
        if e.name in seen:
            raise InvalidInputError(f"tenants {seen[e.name]} and {e.tenant} are both served as {e.name!r}"
                                    " (adapter.name): vLLM needs one name per adapter")
        seen[e.name] = e.tenant
    return out, notes


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds ``rank``."""
    for allowed in VLLM_MAX_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise InvalidInputError(f"LoRA rank {rank} is above the largest --max-lora-rank vLLM accepts"
                            f" ({VLLM_MAX_LORA_RANKS[-1]})")


def _lora_module(e: ExportedAdapter) -> str:
    # vLLM reads an item with '=' and no ',' as name=path, anything else as JSON.
    if e.hf_repo is None and "=" not in e.name + e.path and "," not in e.name + e.path and e.name:
        return f"{e.name}={e.path}"
    return json.dumps({"name": e.name, "path": e.path, "base_model_name": e.base_model},
                      separators=(",", ":"), ensure_ascii=False)


def vllm_args(adapters: list[ExportedAdapter], *, max_loras: int | None = None) -> list[str]:
    """``vllm serve`` arguments for the adapters (one base model)."""
    if not adapters:
        raise InvalidInputError("no adapters to export")
    bases = sorted({e.base_model for e in adapters})
    if len(bases) > 1:
        by = "; ".join(f"{b}: {', '.join(e.tenant for e in adapters if e.base_model == b)}" for b in bases)
        raise InvalidInputError(f"the adapters are on {len(bases)} base models ({by}); vLLM serves one:"
                                " choose with --base-model or --tenant")
    if max_loras is not None and max_loras < 1:
        raise UsageError("--max-loras must be at least 1")
    rank = vllm_max_lora_rank(max(e.rank for e in adapters))
    return ["--enable-lora", "--max-loras", str(max_loras or len(adapters)), "--max-lora-rank", str(rank),
            "--lora-modules", *[_lora_module(e) for e in adapters]]


def shell_line(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


# --------------------------------------------------------------------------
# promote
# --------------------------------------------------------------------------


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


def _lora_facts(adapter_dir: Path) -> dict[str, Any]:
    """Check ``adapter_dir`` is a PEFT LoRA directory; its training facts and sha256."""
    from adaptergate.backends.adapters import file_sha256, read_safetensors_header

    if not adapter_dir.exists():
        raise InvalidInputError(f"adapter {adapter_dir} does not exist")
    if not adapter_dir.is_dir():
        raise InvalidInputError(f"adapter {adapter_dir} is not a directory (expected a PEFT adapter directory)")
    cfg_path = adapter_dir / "adapter_config.json"
    from adaptergate.trust import json_loads_bounded

    try:
        cfg = json_loads_bounded(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"adapter {adapter_dir}: no adapter_config.json (is this a PEFT adapter"
                                " directory?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"adapter {adapter_dir}: cannot read adapter_config.json ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"adapter {adapter_dir}: adapter_config.json is not valid JSON: {exc.msg}"
                                f" (line {exc.lineno})") from None
    except ValueError as exc:  # nested too deeply, a number too long
        raise InvalidInputError(f"adapter {adapter_dir}: adapter_config.json is not valid JSON: {exc}") from None
    what = f"adapter {adapter_dir}: adapter_config.json"
    if not isinstance(cfg, dict):
        raise InvalidInputError(f"{what} is not a JSON object")
    peft_type = cfg.get("peft_type", "LORA")
    if not isinstance(peft_type, str) or peft_type.upper() != "LORA":
        raise InvalidInputError(f"{what}: peft_type {peft_type!r} is not LORA")
    r = cfg.get("r")
    if type(r) is not int or r < 1:
        raise InvalidInputError(f"{what}: r must be a positive integer, got {r!r}")
    alpha = cfg.get("lora_alpha")
    if type(alpha) not in (int, float):
        raise InvalidInputError(f"{what}: lora_alpha must be a number, got {alpha!r}")
    dropout = cfg.get("lora_dropout", 0.0)
    if type(dropout) not in (int, float) or not 0 <= dropout < 1:
        raise InvalidInputError(f"{what}: lora_dropout must be a number in [0, 1), got {dropout!r}")
    targets = cfg.get("target_modules")
    if isinstance(targets, str) and targets:
        target_list = [targets]
    elif isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets):
        target_list = list(targets)
    else:
        raise InvalidInputError(f"{what}: target_modules must be a list of module names or a regex,"
                                f" got {targets!r}")
    rank = _max_rank(cfg)
    weights = adapter_dir / WEIGHTS_FILE
    if not weights.is_file():
        extra = " (only adapter_model.bin: a pickle; save it with safe_serialization)" if (
            adapter_dir / "adapter_model.bin").exists() else ""
        raise InvalidInputError(f"adapter {adapter_dir}: no {WEIGHTS_FILE}{extra}")
    tensors = read_safetensors_header(weights)
    if not any(".lora_" in k for k in tensors):
        raise InvalidInputError(f"adapter {adapter_dir}: {WEIGHTS_FILE} holds no LoRA tensors"
                                " (no lora_A / lora_B names)")
    base = cfg.get("base_model_name_or_path")
    return {"rank": rank, "alpha": float(alpha), "dropout": float(dropout), "target_modules": target_list,
            "sha256": file_sha256(weights), "declared_base": base if isinstance(base, str) else None}


def _read_card_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"card {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"card {path}: cannot read it ({exc})") from None
    try:
        from adaptergate.trust import json_loads_bounded, yaml_loads_bounded

        if path.name.lower().endswith((".yaml", ".yml")):
            data = yaml_loads_bounded(text)
        else:
            data = json_loads_bounded(text)
    except Exception as exc:  # yaml.YAMLError / YamlRefusal / JSONDecodeError / ValueError (too deep)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"card {path}: not valid {'YAML' if path.suffix != '.json' else 'JSON'}:"
                                f" {first}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"card {path}: expected a JSON object")
    try:  # validate now so a bad field names this file
        return AdapterCard.model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        raise InvalidInputError(f"card {path}: {loc}: {str(e['msg']).removeprefix('Value error, ')}") from None


def _merge(into: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        elif v is not None:
            into[k] = _merge({}, v) if isinstance(v, Mapping) else v
    return into


def _build_card(*, previous: TenantEntry | None, sidecar: AdapterCard | None, card_file: dict[str, Any] | None,
                facts: dict[str, Any], base_id: str, parent: str | None, flags: dict[str, Any],
                creator: str | None, now: datetime) -> AdapterCard:
    data: dict[str, Any] = {}
    if previous is not None and previous.card is not None:  # the tenant's task does not change by itself
        data.update({k: v for k, v in (("task", previous.card.task), ("domain", previous.card.domain),
                                       ("language", previous.card.language)) if v})
    if sidecar is not None:
        _merge(data, sidecar.model_dump(mode="json", exclude_none=True))
    if card_file:
        _merge(data, card_file)
    _merge(data, {k: flags[k] for k in ("task", "domain", "language") if flags.get(k) is not None})
    training = data.setdefault("training", {})
    # adapter_config.json is the truth about the adapter's shape
    training.update(rank=facts["rank"], alpha=facts["alpha"], dropout=facts["dropout"],
                    target_modules=facts["target_modules"])
    if flags.get("dataset") is not None:
        training["dataset"] = flags["dataset"]
    if flags.get("dataset_size") is not None:
        training["dataset_size"] = flags["dataset_size"]
    prov = data.setdefault("provenance", {})
    if flags.get("creator") is not None:
        prov["creator"] = flags["creator"]
    elif not prov.get("creator") and creator:
        prov["creator"] = creator
    if flags.get("data_source") is not None:
        prov["data_source"] = flags["data_source"]
    prov.setdefault("created_at", now.isoformat())
    if parent is not None:
        prov.setdefault("parent", parent)
    data.setdefault("base_model", base_id)
    try:
        return AdapterCard.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        raise InvalidInputError(f"adapter card: {loc}: {str(e['msg']).removeprefix('Value error, ')}") from None


def _known_versions(path: Path, tenant: str) -> list[str]:
    """Versions the tenant has had in the manifest's git history (best effort: none outside git)."""
    try:
        revisions = manifest_revisions(path)
    except InvalidInputError:
        return []
    return [r.manifest.tenants[tenant].adapter.version for r in revisions
            if r.manifest is not None and tenant in r.manifest.tenants]


def _default_actor(environ: Mapping[str, str]) -> str | None:
    return environ.get("GITHUB_ACTOR") or environ.get("USER") or environ.get("USERNAME") or None


def _parse_version_arg(value: str, what: str) -> Any:
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
    """Point ``tenant`` at the adapter in ``adapter_dir`` under a higher version; write the manifest."""
    env = os.environ if environ is None else environ
    now = now or _utc_now()
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

    facts = _lora_facts(adapter_dir)

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
        new_v = _parse_version_arg(version, "--version")
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
                                f" (sha256 {_short(facts['sha256'])}): nothing to promote")

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
    if holdout is not None:
        if not holdout.is_file():
            raise InvalidInputError(f"holdout {holdout} not found")
        holdout_text = _relative(holdout, root)
    else:
        assert current is not None
        holdout_text = current.holdout

    card_data = _read_card_file(card_file) if card_file is not None else None
    card = _build_card(
        previous=current, sidecar=read_card(adapter_dir), card_file=card_data, facts=facts, base_id=base.id,
        parent=current.adapter.version if current else None,
        flags={"task": task, "domain": domain, "language": language, "dataset": dataset,
               "dataset_size": dataset_size, "creator": creator, "data_source": data_source},
        creator=_default_actor(env), now=now,
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
        raise _problems_error(problems, f"promote {tenant}")

    if not dry_run:
        tenants = dict(manifest.tenants)
        tenants[tenant] = entry
        dump_manifest(manifest.model_copy(update={"tenants": tenants}), manifest_path)
    return PromotionResult(
        tenant=tenant, old_version=current.adapter.version if current else None, new_version=new_version,
        old_sha256=current.adapter.sha256 if current else None, new_sha256=facts["sha256"], path=rel,
        manifest_path=manifest_path, entry=entry, written=not dry_run, created_manifest=created and not dry_run,
    )


# --------------------------------------------------------------------------
# rollback
# --------------------------------------------------------------------------


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
    from adaptergate.backends.adapters import file_sha256

    env = os.environ if environ is None else environ
    if not reason.strip():
        raise UsageError("--reason must say why (it is recorded in the manifest)")
    manifest = load_manifest(manifest_path)
    root = manifest_path.parent
    current = manifest.entry(tenant, str(manifest_path))
    cur_v = parse_version(current.adapter.version)
    want = _parse_version_arg(to, "--to") if to is not None else None
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
    decisions = _decisions(audit_log, tenant)

    def accepted(v: str) -> bool:
        d = _decision_for(decisions, v)
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
                             at=now or _utc_now(), by=by or _default_actor(env)),
    })
    problems = verify_change(TenantChange(tenant, "rollback", current, entry), root,
                             check_base_hash=False).problems
    if problems:
        raise _problems_error(problems, f"rollback {tenant}")
    if not dry_run:
        tenants = dict(manifest.tenants)
        tenants[tenant] = entry
        dump_manifest(manifest.model_copy(update={"tenants": tenants}), manifest_path)
    return RollbackResult(tenant=tenant, old_version=current.adapter.version, new_version=old.adapter.version,
                          commit=rev.commit, path=old.adapter.location, sha256=old.adapter.sha256,
                          manifest_path=manifest_path, entry=entry, written=not dry_run)

