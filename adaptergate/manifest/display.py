"""The manifest for people: a tenant's entry as JSON-ready data, or as a few readable lines."""

from __future__ import annotations

from typing import Any

from adaptergate.manifest.model import Manifest, TenantEntry

__all__ = ["describe_entry", "short_sha", "show_entries"]


def short_sha(sha: str | None, n: int = 12) -> str:
    return sha[:n] if sha else "-"


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
    lines = [f"{tenant}: {a.version}  {a.location}  sha256 {short_sha(a.sha256)}{name}"]
    base = b.id
    extra = [f"revision {short_sha(b.revision)}" if b.revision else "", f"path {b.path}" if b.path else "",
             f"sha256 {short_sha(b.sha256)}" if b.sha256 else ""]
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
