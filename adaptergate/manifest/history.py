"""The manifest's git history: its revisions, a tenant's promotions and rollbacks, and the gate's decisions on them.

History comes from ``git log --follow`` of the manifest file and the file's
text at each commit (``git cat-file --batch``), so it needs git and a
repository; a version's gate decision comes from the audit log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.gitrepo import GitRepo, error_line
from adaptergate.manifest.model import Manifest, diff_manifests, parse_manifest, parse_version

__all__ = [
    "HistoryEvent",
    "Revision",
    "decision_for",
    "manifest_revisions",
    "tenant_decisions",
    "tenant_history",
]


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


def _same_version(a: str, b: str) -> bool:
    if a.strip() == b.strip():
        return True
    try:
        return parse_version(a) == parse_version(b)
    except (ValueError, TypeError):
        return False


def tenant_decisions(audit_log: Path | None, tenant: str) -> list[Any]:
    if audit_log is None:
        return []
    from adaptergate.pipeline.ledger import AuditLog

    if not audit_log.is_file():
        raise InvalidInputError(f"audit log {audit_log} not found")
    return [d for d in AuditLog(audit_log).decisions() if d.tenant_id == tenant]


def decision_for(decisions: list[Any], version: str) -> dict[str, Any] | None:
    """The newest decision whose candidate is ``version`` (the gate names candidates by version)."""
    found = [d for d in decisions if _same_version(str(d.candidate_id), version)]
    if not found:
        return None
    d = found[-1]  # the log is append-only: the last is the newest
    return {"verdict": d.verdict, "accepted": d.accepted, "timestamp": d.timestamp,
            "baseline": d.baseline_id, "delta": d.delta, "reason": d.reason}


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
    decisions = tenant_decisions(audit_log, tenant)
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
            ev.decision = decision_for(decisions, b.adapter.version)
        events.append(ev)
    events.reverse()
    return events[:limit] if limit is not None else events
