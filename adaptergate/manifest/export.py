"""Export for serving: the manifest's adapters as ``vllm serve`` arguments (``--lora-modules``, ``--max-lora-rank``)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError, UsageError
from adaptergate.manifest.display import short_sha
from adaptergate.manifest.facts import WEIGHTS_FILE, config_rank
from adaptergate.manifest.model import (
    Manifest,
    ManifestProblem,
    TenantChange,
    default_hub_cache,
    hub_snapshot,
    resolve,
    verify_change,
)
from adaptergate.manifest.validation import problems_error

__all__ = [
    "VLLM_MAX_LORA_RANKS",
    "ExportedAdapter",
    "export_adapters",
    "shell_line",
    "vllm_args",
    "vllm_max_lora_rank",
]


VLLM_MAX_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM's ``--max-lora-rank`` accepts (``MaxLoRARanks`` in vllm/config/lora.py)."""


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
                rank = config_rank(adapter_dir)
            path = str(adapter_dir.resolve())
        else:
            assert a.hf_repo is not None and a.revision is not None
            snap = hub_snapshot(cache, a.hf_repo, a.revision)
            path = str(snap)
            weights = snap / WEIGHTS_FILE
            if weights.is_file():
                rank = config_rank(snap)
                if verify:
                    from adaptergate.backends.files import file_sha256

                    sha = file_sha256(weights)
                    if sha != a.sha256:
                        problems.append(ManifestProblem(t, "adapter.sha256", a.sha256, f"{sha} ({weights})"))
        if rank is None and entry.card is not None and entry.card.training is not None:
            rank = entry.card.training.rank
        fetch = (f"huggingface-cli download {a.hf_repo} --revision {a.revision}" if a.hf_repo is not None
                 and not Path(path, WEIGHTS_FILE).is_file() else None)
        if rank is None:
            why = f"unknown ({a.hf_repo}@{short_sha(a.revision)} is not in {cache}: {fetch})" if fetch else "unknown"
            problems.append(ManifestProblem(t, "rank", "adapter_config.json r (or card.training.rank)", why))
            continue
        if fetch:
            notes.append(f"{t}: {a.hf_repo}@{short_sha(a.revision)} is not in the Hub cache {cache}; fetch it"
                         f" before serving: {fetch}")
        out.append(ExportedAdapter(tenant=t, name=a.name or t, path=path, version=a.version,
                                   sha256=a.sha256, rank=rank, base_model=entry.base_model.id,
                                   hf_repo=a.hf_repo, revision=a.revision))
    if problems:
        raise problems_error(problems, "export")
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
