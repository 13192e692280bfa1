"""The tenant adapter manifest: which adapter each tenant runs, where it came from.

A manifest is one YAML or JSON file in the adapters repository::

    schema_version: 1
    tenants:
      acme:
        adapter:
          version: 1.4.0
          path: adapters/acme/1.4.0          # or hf_repo + revision (a pinned commit)
          sha256: 9f2c…                       # of adapter_model.safetensors
        base_model: {id: meta-llama/Llama-3.1-8B, path: models/llama-3.1-8b, sha256: 51ab…}
        holdout: holdouts/acme.jsonl
        gate: {epsilon: 0.02, slice_epsilon: 0.10, metric: exact}
        approval: {floor: 0.70, auto_approve: 0.85}
        card: {task: support, language: en, training: {rank: 8, …}, provenance: {…}}

A pull request that changes a tenant's ``adapter`` is a promotion request;
:func:`diff_manifests` finds those tenants (a description edit is not one),
:func:`verify_change` checks them before anything is scored (weights hash,
declared base, version order, rollback flag).

Paths in a manifest are relative to the manifest's directory. The models here
are the boundary (pydantic); ``adaptergate manifest schema`` prints their JSON
Schema for editors (committed as ``schemas/manifest.schema.json``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adaptergate.errors import InvalidInputError
from adaptergate.models import ApprovalPolicy  # approval bands are decision policy: defined with the decision

__all__ = [
    "AdapterCard",
    "AdapterRef",
    "ApprovalPolicy",
    "BaseModelRef",
    "CARD_FILE",
    "Manifest",
    "ManifestGate",
    "Provenance",
    "Rollback",
    "TenantChange",
    "TenantEntry",
    "TrainingConfig",
    "diff_manifests",
    "dump_manifest",
    "load_manifest",
    "manifest_json_schema",
    "manifest_text",
    "is_yaml",
    "read_card",
    "verify_change",
    "write_card",
    "parse_manifest",
    "parse_version",
]

MANIFEST_SCHEMA_VERSION = 1
CARD_FILE = "adapter_card.json"
"""The metadata card's sidecar file, next to the adapter's weights."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HF_REPO = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def parse_version(value: str):
    """A semantic version (``semver.Version``); a ``v`` prefix is accepted."""
    import semver

    text = value.strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    return semver.Version.parse(text)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _sha(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v.startswith("sha256:"):
        v = v[len("sha256:"):]
    if not _SHA256.match(v):
        raise ValueError(f"must be 64 hex digits (a sha256), got {value!r}")
    return v


class AdapterRef(_Model):
    """Where a tenant's adapter lives and which bytes it is."""

    version: str = Field(description="Semantic version (MAJOR.MINOR.PATCH); must increase on promotion.")
    path: str | None = Field(None, description="Adapter directory, relative to the manifest's directory.")
    hf_repo: str | None = Field(None, description="Hugging Face repo id (with revision instead of path).")
    revision: str | None = Field(None, description="The Hub commit (40 hex digits) the adapter is pinned to.")
    sha256: str = Field(description="sha256 of adapter_model.safetensors.")
    name: str | None = Field(None, description="Name to serve it under (default: the tenant).")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)  # YAML reads 1.4 as a number
        if not isinstance(v, str):
            raise ValueError(f"must be a semantic version like 1.4.0, got {v!r}")
        try:
            parse_version(v)
        except (ValueError, TypeError):
            raise ValueError(f"must be a semantic version like 1.4.0, got {v!r}") from None
        return v.strip()

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, v: str) -> str:
        return _sha(v) or ""

    @model_validator(mode="after")
    def _location(self) -> "AdapterRef":
        if (self.path is None) == (self.hf_repo is None):
            raise ValueError("give exactly one of path or hf_repo")
        if self.hf_repo is not None and not _HF_REPO.match(self.hf_repo):
            raise ValueError(f"hf_repo must be a Hub repo id like owner/name, got {self.hf_repo!r}")
        if self.hf_repo is not None and (self.revision is None or not _COMMIT.match(self.revision)):
            raise ValueError("hf_repo needs revision pinned to a 40-hex commit (branches and tags move)")
        return self

    @property
    def location(self) -> str:
        return self.path if self.path is not None else f"{self.hf_repo}@{self.revision}"

    def identity(self) -> tuple[str, str, str]:
        """What makes it a different adapter (not its description)."""
        return (self.version, self.sha256, self.location)


class BaseModelRef(_Model):
    id: str = Field(description="Model id, e.g. meta-llama/Llama-3.1-8B.")
    revision: str | None = Field(None, description="Hub commit of the base weights.")
    path: str | None = Field(None, description="Local directory of the base, relative to the manifest.")
    sha256: str | None = Field(None, description="sha256 of the base weights (adaptergate's rule for shards).")

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, v: str | None) -> str | None:
        return _sha(v)

    def identity(self) -> tuple[str, str | None, str | None]:
        return (self.id, self.revision, self.sha256)


class ManifestJudge(_Model):
    """The judge of a tenant whose gate metric is ``judge`` (the CLI's ``--judge-*`` options).

    Paths are relative to the manifest. Judge options given on the command
    line or as Action inputs win over these (a judge server's URL is often
    the CI's business, not the tenant's).
    """

    criteria: str | list[dict[str, Any]] | None = Field(
        None, description="A criteria file (JSON or YAML) or the list of {name, weight, rubric} inline;"
        " default: accuracy x2, relevance x1.5, style x1, completeness x1.5, coherence x1.",
    )
    model: str | None = Field(None, description="A local causal LM directory as the judge.")
    url: str | None = Field(None, description="An OpenAI-compatible server (/v1/chat/completions).")
    name: str | None = Field(None, description="The model name to ask the url for.")
    api_key_env: str | None = Field(None, description="Environment variable holding the url's API key.")
    pairwise: bool | None = None
    retries: int | None = Field(None, ge=0)
    reasoning_tokens: int | None = Field(None, ge=0)
    concurrency: int | None = Field(None, ge=1)


class ManifestGate(_Model):
    """Gate settings for the tenant (the CLI's options; unset = the tool's default)."""

    epsilon: float | None = None
    slice_epsilon: float | Literal["off"] | None = Field(
        None, description="The slice margin, or 'off' (the aggregate only); unset: 0.10 under the stat rule.",
    )
    slice_min_size: int | None = None
    min_holdout_size: int | None = None
    metric: str | None = None
    eval_mode: Literal["auto", "generate", "teacher-forced"] | None = None
    decision: Literal["stat", "threshold"] | None = None
    alpha: float | None = None
    on_inconclusive: Literal["accept", "reject"] | None = None
    multiplicity: Literal["holm", "bh"] | None = None
    max_new_tokens: int | None = None
    backend: Literal["peft", "vllm", "openai"] | None = None
    """Which engine scores the tenant (the server's URL and key are the workflow's, never the manifest's)."""
    judge: ManifestJudge | None = None

    @field_validator("slice_epsilon", mode="before")
    @classmethod
    def _slice_off(cls, v: Any) -> Any:
        # YAML reads an unquoted `off` (or `no`, `false`) as false: that means off, never a margin of 0
        if v is False or (isinstance(v, str) and v.strip().lower() == "off"):
            return "off"
        if v is True:
            raise ValueError("must be a number or 'off', got true")
        return v


class TrainingConfig(_Model):
    rank: int | None = None
    alpha: float | None = None
    dropout: float | None = None
    target_modules: list[str] | None = None
    learning_rate: float | None = None
    epochs: float | None = None
    dataset: str | None = None
    dataset_size: int | None = None


class Provenance(_Model):
    creator: str | None = None
    data_source: str | None = None
    parent: str | None = Field(None, description="Version of the adapter this one was trained from.")
    created_at: datetime | None = None
    commit: str | None = Field(None, description="Training code commit.")


class AdapterCard(_Model):
    """The adapter's metadata card (also a sidecar ``adapter_card.json`` next to the weights)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    task: str | None = None
    domain: str | None = None
    language: str | None = None
    base_model: str | None = Field(None, description="The base the adapter was trained on.")
    training: TrainingConfig | None = None
    provenance: Provenance | None = None


class Rollback(_Model):
    """Present on an entry that moves a tenant back to an earlier version."""

    from_version: str

    @field_validator("from_version", mode="before")
    @classmethod
    def _from(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    reason: str = Field(min_length=1)
    at: datetime | None = None
    by: str | None = None


class TenantEntry(_Model):
    adapter: AdapterRef
    base_model: BaseModelRef
    holdout: str = Field(description="The tenant's held-out JSONL, relative to the manifest.")
    gate: ManifestGate = Field(default_factory=ManifestGate)
    approval: ApprovalPolicy | None = None
    card: AdapterCard | None = None
    rollback: Rollback | None = None
    description: str | None = None


class Manifest(_Model):
    schema_version: int = Field(MANIFEST_SCHEMA_VERSION, description="Manifest format version.")
    tenants: dict[str, TenantEntry] = Field(default_factory=dict)

    @field_validator("schema_version")
    @classmethod
    def _schema(cls, v: int) -> int:
        if v != MANIFEST_SCHEMA_VERSION:
            raise ValueError(f"this adaptergate reads schema_version {MANIFEST_SCHEMA_VERSION}, got {v}")
        return v

    def entry(self, tenant: str, source: str = "manifest") -> TenantEntry:
        try:
            return self.tenants[tenant]
        except KeyError:
            known = ", ".join(sorted(self.tenants)) or "none"
            raise InvalidInputError(f"{source}: no tenant {tenant!r} (tenants: {known})") from None


# --------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------


def is_yaml(name: str) -> bool:
    return name.lower().endswith((".yaml", ".yml"))


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _msg(err: Any) -> str:
    return str(err["msg"]).removeprefix("Value error, ")


MAX_MANIFEST_BYTES = 4 << 20
"""Largest manifest read (4 MiB, about 10,000 tenants). The manifest arrives in
the pull request; PyYAML's loader reads about 0.4 MB/s on a slow runner, so
the cap also bounds the time spent parsing it to seconds."""

MAX_CARD_BYTES = 1 << 20
"""Largest ``adapter_card.json`` read (1 MiB; a card is a few hundred bytes)."""


def parse_manifest(text: str, source: str, *, yaml_format: bool | None = None) -> Manifest:
    """Parse manifest text; a problem is one exit-2 line naming the field (all in details).

    Bounded (the manifest comes with the pull request): at most
    :data:`MAX_MANIFEST_BYTES`, no YAML aliases, nesting at most
    :data:`~adaptergate.trust.MAX_JSON_DEPTH` levels; ``!!python`` tags are
    refused. Crossing a bound is one exit-2 line (with the line for YAML).
    """
    from adaptergate.trust import YamlRefusal, json_loads_bounded, yaml_loads_bounded

    fmt_yaml = is_yaml(source) if yaml_format is None else yaml_format
    if len(text) > MAX_MANIFEST_BYTES:
        raise InvalidInputError(
            f"{source}: the manifest is larger than the {MAX_MANIFEST_BYTES:,}-byte cap"
        )
    try:
        if fmt_yaml:
            data = yaml_loads_bounded(text)
        else:
            data = json_loads_bounded(text)
    except YamlRefusal as exc:
        raise InvalidInputError(f"{source}: line {exc.line}: {exc.reason}") from None
    except RecursionError:  # not expected past the depth bound; never a crash
        kind = "YAML" if fmt_yaml else "JSON"
        raise InvalidInputError(f"{source}: not valid {kind}: nested too deeply") from None
    except Exception as exc:  # yaml.YAMLError / JSONDecodeError / ValueError (too deep)
        first = str(exc).strip().splitlines()
        raise InvalidInputError(f"{source}: not valid {'YAML' if fmt_yaml else 'JSON'}: "
                                + (" ".join(first[:3]) if first else type(exc).__name__)) from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{source}: expected a mapping with 'tenants', got {type(data).__name__}")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_loc(e['loc'])}: {_msg(e)}" for e in exc.errors()]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        # one problem is the message alone (as details it would print twice)
        raise InvalidInputError(f"{source}: {problems[0]}{more}",
                                details=problems if len(problems) > 1 else None) from None


def load_manifest(path: str | Path) -> Manifest:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)  # never more than the cap, whatever the file holds
        if len(raw) > MAX_MANIFEST_BYTES:
            raise InvalidInputError(
                f"{p}: the manifest is larger than the {MAX_MANIFEST_BYTES:,}-byte cap"
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"manifest {p} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"manifest {p}: cannot read it ({exc})") from None
    return parse_manifest(text, str(p))


def manifest_text(manifest: Manifest, *, yaml_format: bool) -> str:
    data = manifest.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
    for entry in data.get("tenants", {}).values():
        if entry.get("gate") == {}:
            del entry["gate"]
    if yaml_format:
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def dump_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write the manifest atomically, in the format its extension names."""
    from adaptergate.storage import atomic_write

    p = Path(path)
    # locked=True: no "<name>.lock" beside the manifest (it would be committed with it)
    atomic_write(p, [manifest_text(manifest, yaml_format=is_yaml(p.name)).encode("utf-8")], locked=True)


def manifest_json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/adaptergate/adaptergate/schemas/manifest.schema.json"
    schema["title"] = "adaptergate tenant adapter manifest"
    return schema


def read_card(adapter_dir: Path) -> AdapterCard | None:
    """The sidecar card next to the adapter, if there is one.

    Bounded like the manifest: at most :data:`MAX_CARD_BYTES`, nesting at most
    :data:`~adaptergate.trust.MAX_JSON_DEPTH` levels (one exit-2 line).
    """
    from adaptergate.trust import json_loads_bounded

    path = adapter_dir / CARD_FILE
    if not path.is_file():
        return None
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CARD_BYTES + 1)
        if len(raw) > MAX_CARD_BYTES:
            raise InvalidInputError(
                f"{path}: the card is larger than the {MAX_CARD_BYTES:,}-byte cap"
            )
        text = raw.decode("utf-8")
        try:
            json_loads_bounded(text)  # the nesting bound; pydantic reports syntax errors below
        except json.JSONDecodeError:
            pass
        return AdapterCard.model_validate_json(text)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise InvalidInputError(f"{path}: {_loc(e['loc'])}: {_msg(e)}") from None
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read the card ({exc})") from None


def write_card(adapter_dir: Path, card: AdapterCard) -> Path:
    from adaptergate.storage import atomic_write

    path = adapter_dir / CARD_FILE
    # locked=True: no lock file beside the card (it would be committed with the adapter)
    text = card.model_dump_json(indent=2, exclude_none=True) + "\n"
    atomic_write(path, [text.encode("utf-8")], locked=True)
    return path


# --------------------------------------------------------------------------
# What a change to the manifest means
# --------------------------------------------------------------------------


ChangeKind = Literal["promotion", "rollback", "new", "removed", "metadata", "unchanged"]


@dataclass(frozen=True)
class TenantChange:
    tenant: str
    kind: ChangeKind
    base: TenantEntry | None
    head: TenantEntry | None
    fields: tuple[str, ...] = ()
    """Top-level fields of the entry that differ (adapter, card, gate, …)."""

    @property
    def needs_gate(self) -> bool:
        return self.kind in ("promotion", "rollback", "new")


def _changed_fields(a: TenantEntry, b: TenantEntry) -> tuple[str, ...]:
    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    return tuple(k for k in da if da[k] != db.get(k))


def diff_manifests(base: Manifest | None, head: Manifest) -> list[TenantChange]:
    """Every tenant of either manifest with what changed for it, sorted by tenant.

    An adapter change (version, weights, location) or a base-model change is
    a promotion, or a rollback when the version went down; anything else
    (card, description, holdout path, settings) is ``metadata``: no scoring.
    """
    before = base.tenants if base is not None else {}
    out: list[TenantChange] = []
    for tenant in sorted(set(before) | set(head.tenants)):
        a, b = before.get(tenant), head.tenants.get(tenant)
        if a is None:
            out.append(TenantChange(tenant, "new", None, b, ("adapter",)))
            continue
        if b is None:
            out.append(TenantChange(tenant, "removed", a, None))
            continue
        fields = _changed_fields(a, b)
        moved = a.adapter.identity() != b.adapter.identity() or a.base_model.identity() != b.base_model.identity()
        if not moved:
            out.append(TenantChange(tenant, "metadata" if fields else "unchanged", a, b, fields))
            continue
        down = parse_version(b.adapter.version) < parse_version(a.adapter.version)
        out.append(TenantChange(tenant, "rollback" if down else "promotion", a, b, fields))
    return out


@dataclass
class ManifestProblem:
    tenant: str
    field: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"tenant {self.tenant}: {self.field}: expected {self.expected}, got {self.actual}"


@dataclass
class Verified:
    """What verification established about one tenant's head entry."""

    tenant: str
    adapter_dir: Path | None
    base_dir: Path | None
    rank: int | None = None
    problems: list[ManifestProblem] = field(default_factory=list)


def checkout_root(directory: Path) -> Path:
    """The repository holding ``directory`` (the nearest parent with ``.git``), else the directory."""
    d = directory.resolve()
    for parent in (d, *d.parents):
        if (parent / ".git").exists():
            return parent
    return d


def resolve(root: Path, value: str | None, what: str = "manifest path") -> Path | None:
    """A path from a manifest: relative to the manifest's directory ``root``, resolved
    (symlinks included), inside the manifest's repository — a manifest arrives in the pull
    request under review, so it may not name a file elsewhere. Else one exit-2 line."""
    from adaptergate.trust import confine

    if value is None:
        return None
    p = Path(value)
    if p.is_absolute() or value.startswith("~"):
        raise InvalidInputError(
            f"{what}: {value} is an absolute path: paths in a manifest are relative to it and stay inside"
            " the repository"
        )
    return confine(root / p, checkout_root(root), what)


def hub_snapshot(hub_cache: Path, repo: str, revision: str) -> Path:
    """Where ``huggingface-cli download REPO --revision REV`` puts that revision."""
    return hub_cache / f"models--{repo.replace('/', '--')}" / "snapshots" / revision


def default_hub_cache(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = Path(env["HF_HOME"]).expanduser() if env.get("HF_HOME") else Path(
        env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "huggingface"
    return home / "hub"


HUB_ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors", "adapter_card.json"]


def hub_adapter_dir(repo: str, revision: str, hub_cache: Path | None = None) -> tuple[Path | None, str]:
    """A Hub adapter at its pinned revision, on disk: ``(directory, "")`` or ``(None, why not)``.

    Taken from the Hub cache when that revision is there; otherwise downloaded
    into it (only the adapter's files), unless ``HF_HUB_OFFLINE`` is set.
    """
    cache = hub_cache if hub_cache is not None else default_hub_cache()
    snap = hub_snapshot(cache, repo, revision)
    if (snap / "adapter_model.safetensors").is_file():
        return snap, ""
    fetch = f"huggingface-cli download {repo} --revision {revision}"
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return None, f"not in the Hub cache {cache}, and HF_HUB_OFFLINE is set ({fetch})"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None, f"not in the Hub cache {cache} ({fetch}, or pip install 'adaptergate[peft]' to download it)"
    try:
        where = snapshot_download(repo_id=repo, revision=revision, cache_dir=str(cache),
                                  allow_patterns=HUB_ADAPTER_FILES)
    except Exception as exc:  # noqa: BLE001 - any hub failure is one line in the problem list
        first = (str(exc).strip().splitlines() or [""])[0]
        return None, f"cannot download it: {type(exc).__name__}: {first}"
    return Path(where), ""


def _declared_base_matches(declared: str, ref: BaseModelRef, base_dir: Path | None) -> bool:
    """Whether an adapter's declared base (adapter_config / card) names ``ref``."""
    d = declared.strip().rstrip("/")
    if not d:
        return True
    names = {ref.id.rstrip("/")}
    if ref.path:
        names.add(ref.path.rstrip("/"))
    if d in names:
        return True
    last = d.rsplit("/", 1)[-1]
    if last in {n.rsplit("/", 1)[-1] for n in names}:
        return True
    if base_dir is not None:
        try:
            return Path(d).resolve() == base_dir.resolve()
        except OSError:
            return False
    return False


def _base_named(ref: BaseModelRef) -> str:
    """The manifest's base model as a problem line names it: its id, and its path when given."""
    return ref.id if not ref.path else f"{ref.id} at {ref.path}"


def verify_change(change: TenantChange, root: Path, *, check_base_hash: bool = True) -> Verified:
    """Check the head entry of a promotion/rollback/new tenant before anything is scored.

    The weights' sha256 must match the manifest; the adapter's declared base
    (adapter_config.json, and the card) must be the manifest's base model,
    whose sha256 must match its weights when given; the version must
    increase unless the entry is flagged as a rollback, and a rollback must
    go down and name the version it leaves.
    """
    from adaptergate.backends.base_model import inspect_base
    from adaptergate.backends.files import file_sha256

    assert change.head is not None
    head, tenant = change.head, change.tenant
    out = Verified(tenant=tenant, adapter_dir=None, base_dir=None)
    probs = out.problems

    # version order
    if change.base is not None:
        old, new = parse_version(change.base.adapter.version), parse_version(head.adapter.version)
        if head.rollback is None and new <= old and change.kind != "metadata":
            probs.append(ManifestProblem(tenant, "adapter.version", f"a version above {change.base.adapter.version}"
                                 " (or a rollback entry)", head.adapter.version))
        if head.rollback is not None:
            if new >= old:
                probs.append(ManifestProblem(tenant, "rollback", f"a version below {change.base.adapter.version}",
                                     head.adapter.version))
            if head.rollback.from_version.lstrip("vV") != change.base.adapter.version.lstrip("vV"):
                probs.append(ManifestProblem(tenant, "rollback.from_version", change.base.adapter.version,
                                     head.rollback.from_version))

    # the bytes
    base_dir = resolve(root, head.base_model.path, f"tenant {tenant}: base_model.path")
    out.base_dir = base_dir
    if head.adapter.hf_repo is not None:
        assert head.adapter.revision is not None
        adapter_dir, why = hub_adapter_dir(head.adapter.hf_repo, head.adapter.revision)
        if adapter_dir is None:
            probs.append(ManifestProblem(tenant, "adapter.hf_repo", f"{head.adapter.location} on disk", why))
            return out
    else:
        adapter_dir = resolve(root, head.adapter.path, f"tenant {tenant}: adapter.path")
    assert adapter_dir is not None
    out.adapter_dir = adapter_dir
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        probs.append(ManifestProblem(tenant, "adapter.path", f"{weights} to exist", "no such file"))
        return out
    sha = file_sha256(weights)
    if sha != head.adapter.sha256:
        probs.append(ManifestProblem(tenant, "adapter.sha256", head.adapter.sha256, sha))

    cfg_path = adapter_dir / "adapter_config.json"
    declared = None
    try:
        from adaptergate.trust import json_loads_bounded

        cfg = json_loads_bounded(cfg_path.read_text(encoding="utf-8"))
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
        declared = cfg.get("base_model_name_or_path")
        out.rank = int(cfg["r"]) if isinstance(cfg.get("r"), int) else None
        ranks = cfg.get("rank_pattern") or {}
        if out.rank is not None and isinstance(ranks, dict) and ranks:
            out.rank = max([out.rank, *[int(v) for v in ranks.values() if isinstance(v, int)]])
    except (OSError, ValueError) as exc:
        probs.append(ManifestProblem(tenant, "adapter", f"a readable {cfg_path}", str(exc)))
    if isinstance(declared, str) and not _declared_base_matches(declared, head.base_model, base_dir):
        # expected: what the manifest says; got: what the adapter declares
        probs.append(ManifestProblem(tenant, "base_model", f"{_base_named(head.base_model)} (the manifest's base model)",
                             f"{declared} (the adapter's declared base, adapter_config.json"
                             " base_model_name_or_path)"))
    card = head.card or read_card(adapter_dir)
    if card is not None and card.base_model and not _declared_base_matches(card.base_model, head.base_model, base_dir):
        probs.append(ManifestProblem(tenant, "card.base_model", f"{_base_named(head.base_model)} (the manifest's"
                                     " base model)", f"{card.base_model} (the adapter card's)"))

    if check_base_hash and head.base_model.sha256 is not None:
        if base_dir is None or not base_dir.is_dir():
            probs.append(ManifestProblem(tenant, "base_model.path", "a local base directory to check sha256 against",
                                 str(base_dir) if base_dir else "none"))
        else:
            try:
                info = inspect_base(base_dir)
            except InvalidInputError as exc:
                probs.append(ManifestProblem(tenant, "base_model", "a readable base model", exc.message))
            else:
                if info.sha256 != head.base_model.sha256:
                    probs.append(ManifestProblem(tenant, "base_model.sha256", head.base_model.sha256, info.sha256))
    return out


def raise_problems(verified: list[Verified]) -> None:
    """Exit 2 with one line per problem (the first as the message)."""
    problems = [p for v in verified for p in v.problems]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInputError(f"{problems[0]}{more}", details=[str(p) for p in problems])
