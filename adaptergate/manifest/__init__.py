"""Promotion as code: the tenant manifest, its verification, what a pull request promotes, and the lifecycle commands.

The manifest itself is :mod:`~adaptergate.manifest.model` (the schema, loading,
verification) and :mod:`~adaptergate.manifest.discovery` (what a pull request
promotes). The lifecycle behind ``adaptergate manifest …``, ``adaptergate
promote`` and ``adaptergate rollback`` reads and writes the manifest and its
git history and returns plain data (the CLI prints it), one job a module:
:mod:`~adaptergate.manifest.validation` (``manifest validate``, ``schema``),
:mod:`~adaptergate.manifest.display` (``manifest show``),
:mod:`~adaptergate.manifest.history` (``manifest history``: the git log),
:mod:`~adaptergate.manifest.export` (``manifest export``: vLLM arguments),
:mod:`~adaptergate.manifest.facts` (what is read of an adapter directory),
:mod:`~adaptergate.manifest.cards` (the card a promotion writes),
:mod:`~adaptergate.manifest.promotion` and :mod:`~adaptergate.manifest.rollback`.
Every problem is an :class:`~adaptergate.errors.InvalidInputError` (exit 2)
with one line. History needs git and a repository; everything else works on a
plain directory.
"""

from adaptergate.manifest.display import describe_entry, show_entries
from adaptergate.manifest.export import (
    VLLM_MAX_LORA_RANKS,
    ExportedAdapter,
    export_adapters,
    shell_line,
    vllm_args,
    vllm_max_lora_rank,
)
from adaptergate.manifest.history import HistoryEvent, Revision, manifest_revisions, tenant_history
from adaptergate.manifest.promotion import PromotionResult, promote
from adaptergate.manifest.rollback import RollbackResult, rollback
from adaptergate.manifest.validation import DEFAULT_MANIFEST, ValidationReport, schema_text, validate_manifest

__all__ = [
    "DEFAULT_MANIFEST",
    "VLLM_MAX_LORA_RANKS",
    "ExportedAdapter",
    "HistoryEvent",
    "PromotionResult",
    "Revision",
    "RollbackResult",
    "ValidationReport",
    "describe_entry",
    "export_adapters",
    "manifest_revisions",
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
