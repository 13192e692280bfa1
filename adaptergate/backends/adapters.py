"""Validate LoRA adapter directories against the base model, before anything loads.

The runner loads adapters with PEFT, which is forgiving in the wrong places:
it loads an adapter onto a base with one layer fewer without a word, drops
tensors whose names it does not recognise (the adapter then does nothing),
and ``adapter_model.bin`` is a pickle that executes code when loaded. This
module checks an adapter directory against the base model's weights without
importing torch: it reads ``config.json`` files and the JSON headers of
safetensors files (8-byte little-endian header length, then the header), and
never a pickle.

Every failure is an :class:`~adaptergate.errors.InvalidInputError` (exit 2)
whose message is one line naming the adapter, the module and the shapes; when
an adapter has several problems the first is the message and ``details`` lists
them all.

Adapters, their configs and sometimes the base model arrive in the pull
request under review, so every read here is bounded: the safetensors header
length (:data:`_MAX_HEADER`, the safetensors library's own cap), the size of
a JSON file (:data:`MAX_ADAPTER_CONFIG_BYTES`, :data:`MAX_BASE_JSON_BYTES`),
the nesting of JSON (:data:`adaptergate.trust.MAX_JSON_DEPTH`), the number of entries of
``target_modules``, ``modules_to_save``, ``rank_pattern`` and
``alpha_pattern`` (:data:`MAX_CONFIG_ENTRIES`) and the length of each name in
them (:data:`MAX_NAME_CHARS`, :data:`MAX_REGEX_CHARS` for a
``target_modules`` regex). Crossing a bound is one exit-2 line naming the
file, like any other invalid input.

Public API: :func:`read_safetensors_header`, :func:`inspect_base`,
:func:`validate_adapter`, :func:`check_base_hash`, :func:`file_sha256`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError
from adaptergate.trust import json_loads_bounded

__all__ = [
    "AdapterInfo",
    "BaseInfo",
    "MAX_ADAPTER_CONFIG_BYTES",
    "MAX_BASE_JSON_BYTES",
    "MAX_CONFIG_ENTRIES",
    "MAX_NAME_CHARS",
    "MAX_REGEX_CHARS",
    "TensorInfo",
    "check_base_hash",
    "file_sha256",
    "inspect_base",
    "read_safetensors_header",
    "validate_adapter",
]

_CHUNK = 1 << 20
_MAX_HEADER = 100_000_000  # the safetensors library refuses larger headers too

MAX_ADAPTER_CONFIG_BYTES = 4 << 20
"""Largest ``adapter_config.json`` read (4 MiB; PEFT writes a few KB, a
per-module ``rank_pattern`` for a 70B model some 50 KB)."""

MAX_BASE_JSON_BYTES = 64 << 20
"""Largest ``config.json`` or ``model.safetensors.index.json`` of a base model
read (64 MiB; the index of a model with 100,000 tensors is about 10 MB)."""

MAX_CONFIG_ENTRIES = 4096
"""Most entries in ``target_modules``, ``modules_to_save``, ``rank_pattern``
or ``alpha_pattern`` (PEFT matches every module of the model against each of
them when it loads the adapter: real configs hold a few names, or one entry per
adapted module, a few hundred)."""

MAX_NAME_CHARS = 1024
"""Longest module name or pattern key in those lists and maps."""

MAX_REGEX_CHARS = 65536
"""Longest ``target_modules`` given as one regex string (tools that list every
module as an alternation write a few KB)."""

_PEFT_PREFIX = "base_model.model."

# Bits per element of the safetensors dtypes (sub-byte float formats included).
_DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64,
    "F64": 64, "I64": 64, "U64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

# Model types whose projections are transformers' Conv1D: weights stored (in, out).
# PEFT switches fan_in_fan_out on for them even when the config says otherwise.
_CONV1D_MODEL_TYPES = frozenset({"gpt2", "openai-gpt", "imagegpt", "decision_transformer"})

# Names a tied input embedding goes by when the checkpoint has no lm_head.weight.
_EMBEDDING_SUFFIXES = (
    "embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight",
    "tok_embeddings.weight", "embeddings.weight",
)

_LORA_KINDS = ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector")
_LORA_RE = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_embedding_A|lora_embedding_B|lora_magnitude_vector|lora_A|lora_B)"
    r"(?P<rest>(?:\.[^.]+)*)$"
)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_NOT_WEIGHTS = frozenset({"training_args.bin", "optimizer.pt", "scheduler.pt"})


def _one_line(text: str) -> str:
    return " ".join(text.split("\n")).replace("\r", " ")


def _fail(message: str, details: list[str] | None = None) -> InvalidInputError:
    return InvalidInputError(_one_line(message), details=[_one_line(d) for d in details or []])


def _shape(shape: Iterable[int]) -> str:
    return str(tuple(shape))


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _brief(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error line shows what it got, not 4 MB."""
    if isinstance(value, (list, dict)) and len(value) > 64:  # never repr a huge container
        return f"a {'list' if isinstance(value, list) else 'map'} of {len(value):,} entries"
    return _cut(repr(value), limit)


def _pickle_refusal(file: Path, where: Path) -> str:
    return (
        f"refusing to load pickle weights {file.name} from {where}: loading a pickle executes "
        "code; pass --allow-pickle if you trust it"
    )


# ------------------------------------------------------------------ safetensors


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header describes it."""

    dtype: str
    shape: tuple[int, ...]


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors of a safetensors file, read from its header alone.

    The header is validated the way the safetensors library validates it
    (offsets contiguous, sizes consistent with dtype and shape, the data
    section exactly as long as the header says), so a file that passes here
    also loads there. Raises :class:`InvalidInputError` naming the file when
    it is missing, truncated or not a safetensors file.
    """
    path = Path(path)
    bad = f"{path} is not a valid safetensors file"
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise _fail(f"safetensors file {path} is truncated: {size} bytes, too short for a header")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER:
                raise _fail(f"{bad}: header length {n} exceeds {_MAX_HEADER} bytes")
            if n > size - 8:
                raise _fail(
                    f"safetensors file {path} is truncated: its header is {n} bytes but the file "
                    f"has {size - 8} after the length"
                )
            raw = fh.read(n)
    except FileNotFoundError:
        raise _fail(f"safetensors file not found: {path}") from None
    except IsADirectoryError:
        raise _fail(f"{bad}: it is a directory") from None
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) < n:
        raise _fail(f"safetensors file {path} is truncated: header cut short")
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise _fail(f"{bad}: the header is nested too deeply to parse") from None
    except MemoryError:
        raise _fail(f"{bad}: the header ({n} bytes) is too large to parse") from None
    except (UnicodeDecodeError, ValueError):
        raise _fail(f"{bad}: the header is not JSON") from None
    if not isinstance(header, dict):
        raise _fail(f"{bad}: the header is not a JSON object")

    data_len = size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise _fail(f"{bad}: entry {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str):
            raise _fail(f"{bad}: tensor {name!r} has no dtype")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise _fail(f"{bad}: tensor {name!r} has an invalid shape {shape!r}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]
        ):
            raise _fail(f"{bad}: tensor {name!r} has invalid data_offsets {offsets!r}")
        bits = _DTYPE_BITS.get(dtype)
        if bits is not None:
            nbits = math.prod(shape) * bits
            if nbits % 8 or nbits // 8 != offsets[1] - offsets[0]:
                raise _fail(
                    f"{bad}: tensor {name!r} ({dtype} {_shape(shape)}) spans "
                    f"{offsets[1] - offsets[0]} bytes"
                )
        tensors[name] = TensorInfo(dtype=dtype, shape=tuple(shape))
        spans.append((offsets[0], offsets[1], name))

    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise _fail(f"{bad}: tensor {name!r} data does not start where the previous one ends")
        end = stop
    if end > data_len:
        raise _fail(
            f"safetensors file {path} is truncated: its header describes {end} bytes of tensor "
            f"data but the file holds {data_len}"
        )
    if end < data_len:
        raise _fail(f"{bad}: {data_len - end} bytes after the last tensor")
    return tensors


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed in 1 MiB chunks."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def _normalise_sha(value: str, what: str) -> str:
    v = str(value).strip().lower()
    if v.startswith("sha256:"):
        v = v[len("sha256:"):]
    if not re.fullmatch(r"[0-9a-f]{64}", v):
        raise _fail(f"expected sha256 of {what} must be 64 hex digits, got {value!r}")
    return v


def _read_json(path: Path, what: str, max_bytes: int = MAX_BASE_JSON_BYTES) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise _fail(f"{what}: {path} is larger than the {max_bytes:,}-byte cap")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise _fail(f"{what}: {path.name} not found in {path.parent}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json_loads_bounded(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"{what}: {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except ValueError as exc:
        raise _fail(f"{what}: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _fail(f"{what}: {path} is not a JSON object")
    return data


# ------------------------------------------------------------------ base model


@dataclass(frozen=True)
class BaseInfo:
    """A local base model directory, as far as it can be known without loading it.

    ``sha256``: for a single weight file, that file's sha256 (what
    ``sha256sum model.safetensors`` prints, and the Hub's LFS oid); for a
    sharded model, the sha256 of the lines ``"<sha256>  <file name>\\n"`` in
    sorted name order (what ``sha256sum model-*.safetensors | sha256sum``
    prints). ``file_hashes`` has each file's own sha256.

    ``shapes_known`` is false when the weights are pickles (``allow_pickle``):
    ``weights`` is then empty and ``warnings`` says why.
    """

    path: Path
    config: dict
    weights: dict[str, TensorInfo]
    files: list[Path]
    sha256: str
    model_type: str
    num_layers: int | None
    file_hashes: dict[str, str] = field(default_factory=dict)
    shapes_known: bool = True
    warnings: list[str] = field(default_factory=list)


def _looks_like_path(text: str) -> bool:
    return (
        os.path.isabs(text)
        or text.startswith((".", "~"))
        or text.count("/") > 1
        or os.sep != "/" and os.sep in text
    )


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    sub = config.get("text_config")
    return sub if isinstance(sub, dict) else {}


def _num_layers(config: Mapping[str, Any], weights: Mapping[str, TensorInfo]) -> int | None:
    for cfg in (config, _text_config(config)):
        for key in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
            value = cfg.get(key)
            if type(value) is int and value >= 0:
                return value
    indices = {
        int(m.group(1))
        for name in weights
        if (m := re.search(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.", name))
    }
    return max(indices) + 1 if indices else None


def _inside(directory: Path, name: str) -> Path:
    candidate = (directory / name).resolve()
    if candidate != directory.resolve() and directory.resolve() not in candidate.parents:
        raise _fail(f"base model {directory}: index names a file outside the directory: {name!r}")
    return directory / name


def _index_shards(index_path: Path) -> tuple[dict[str, str], list[Path]]:
    index = _read_json(index_path, "base model")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise _fail(f"base model: {index_path} has no valid weight_map")
    shards = sorted({_inside(index_path.parent, v) for v in weight_map.values()}, key=lambda p: str(p))
    for shard in shards:
        if not shard.is_file():
            raise _fail(f"base model: shard {shard.name} listed in {index_path.name} is missing from {index_path.parent}")
    return weight_map, shards


def _hash_files(files: list[Path], root: Path) -> tuple[str, dict[str, str]]:
    names = {f: f.relative_to(root).as_posix() if f.is_relative_to(root) else f.name for f in files}
    ordered = sorted(files, key=lambda f: names[f])
    hashes = {names[f]: file_sha256(f) for f in ordered}
    if len(ordered) == 1:
        return next(iter(hashes.values())), hashes
    listing = "".join(f"{h}  {n}\n" for n, h in hashes.items())
    return hashlib.sha256(listing.encode("utf-8")).hexdigest(), hashes


def inspect_base(base: str | Path, *, allow_pickle: bool = False) -> BaseInfo:
    """Read a local base model directory: ``config.json`` and the weight headers.

    Weights are ``model.safetensors`` or the shards of
    ``model.safetensors.index.json``. Pickle weights (``pytorch_model.bin`` or
    its sharded index) are refused unless ``allow_pickle``; then nothing of
    them is read except their bytes for the hash, and shapes cannot be
    checked (``shapes_known`` false, a line in ``warnings``).
    """
    text = str(base)
    path = Path(os.path.expanduser(text))
    if not path.is_dir():
        if path.exists():
            raise _fail(f"base model {text} is a file; expected a model directory with config.json")
        if _looks_like_path(text):
            raise _fail(f"base model directory {text} does not exist")
        raise _fail(
            f"base model {text!r} is not a local directory; adapter checks need the model files: "
            f"set HF_HUB_OFFLINE=0 and download it first (huggingface-cli download {text} "
            "--local-dir DIR), then pass DIR"
        )
    config = _read_json(path / "config.json", f"base model {path}")

    warnings: list[str] = []
    weights: dict[str, TensorInfo] = {}
    shapes_known = True
    single, index = path / "model.safetensors", path / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
        weights = read_safetensors_header(single)
    elif index.is_file():
        weight_map, files = _index_shards(index)
        for shard in files:
            for name, info in read_safetensors_header(shard).items():
                if name in weights:
                    raise _fail(f"base model {path}: tensor {name} appears in more than one shard")
                weights[name] = info
        missing = sorted(n for n in weight_map if n not in weights)
        if missing:
            raise _fail(
                f"base model {path}: {index.name} lists {len(missing)} tensor(s) not in the shards, "
                f"e.g. {missing[0]}"
            )
    else:
        pickle_single, pickle_index = path / "pytorch_model.bin", path / "pytorch_model.bin.index.json"
        if pickle_single.is_file() or pickle_index.is_file():
            if pickle_single.is_file():
                files = [pickle_single]
            else:
                files = _index_shards(pickle_index)[1]
            if not allow_pickle:
                raise _fail(f"base model: {_pickle_refusal(files[0], path)}")
            shapes_known = False
            warnings.append(
                f"base model {path} has pickle weights ({', '.join(f.name for f in files)}): "
                "adapter shapes cannot be checked against it without loading them"
            )
        else:
            others = sorted(
                p.name for p in path.iterdir()
                if p.name.endswith((".safetensors", *_PICKLE_SUFFIXES)) and p.name not in _NOT_WEIGHTS
            )
            found = f" (found {', '.join(others[:5])})" if others else ""
            raise _fail(
                f"base model {path} has no model.safetensors or model.safetensors.index.json{found}"
            )

    if shapes_known and isinstance(config.get("quantization_config"), dict):
        warnings.append(
            f"base model {path} is quantized: packed weights cannot be shape-checked, "
            "only the presence of each adapted module"
        )
    sha, hashes = _hash_files(files, path)
    return BaseInfo(
        path=path,
        config=config,
        weights=weights,
        files=files,
        sha256=sha,
        model_type=str(config.get("model_type") or _text_config(config).get("model_type") or "unknown"),
        num_layers=_num_layers(config, weights),
        file_hashes=hashes,
        shapes_known=shapes_known,
        warnings=warnings,
    )


def check_base_hash(base: BaseInfo, expected: str) -> None:
    """Raise :class:`InvalidInputError` unless the base model's sha256 is ``expected``."""
    want = _normalise_sha(expected, "the base model")
    if base.sha256 != want:
        raise _fail(f"base model sha256 is {base.sha256}, expected {want} ({base.path})")


class _BaseIndex:
    """Name lookups into a base model's weights, tolerant of the usual prefixes."""

    def __init__(self, base: BaseInfo) -> None:
        self.base = base
        self.weights = base.weights
        self.prefixes: dict[str, set[str]] = {}  # module path -> names of its children
        for name in self.weights:
            parts = name.split(".")
            for i in range(1, len(parts)):
                self.prefixes.setdefault(".".join(parts[:i]), set()).add(parts[i])
        cfg = base.config
        tied = cfg.get("tie_word_embeddings", _text_config(cfg).get("tie_word_embeddings", True))
        self.tied_embedding: str | None = None
        if tied is not False:
            self.tied_embedding = next(
                (n for suffix in _EMBEDDING_SUFFIXES for n in self.weights if n.endswith(suffix)), None
            )
        self.quantized = isinstance(cfg.get("quantization_config"), dict)
        self.conv1d = base.model_type in _CONV1D_MODEL_TYPES

    @staticmethod
    def _candidates(name: str) -> list[str]:
        out = [name]
        if "." in name:
            out.append(name.split(".", 1)[1])
        out.append("model." + name)
        return out

    def tensor(self, name: str) -> str | None:
        """The base tensor an adapter-side tensor name refers to."""
        for cand in self._candidates(name):
            if cand in self.weights:
                return cand
        module, _, leaf = name.rpartition(".")
        if leaf == "weight" and (module == "lm_head" or module.endswith(".lm_head")):
            return self.tied_embedding
        return None

    def module(self, module: str) -> str | None:
        """The base module path (with children) an adapter module path refers to."""
        for cand in self._candidates(module):
            if cand in self.prefixes:
                return cand
        if (module == "lm_head" or module.endswith(".lm_head")) and self.tied_embedding:
            return self.tied_embedding.rpartition(".")[0]
        return None

    def missing(self, module: str) -> str:
        """Why ``module`` is not in the base: the layer count, or what is there instead."""
        n = self.base.num_layers
        m = re.search(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)(?:\.|$)", module)
        if m and n is not None and int(m.group(1)) >= n:
            return f"module {module} is not in the base model (the base has {n} layers)"
        parent = module.rpartition(".")[0]
        base_parent = self.module(parent) if parent else None
        if base_parent is not None:
            kids = sorted(self.prefixes[base_parent], key=_natural)
            more = ", ..." if len(kids) > 8 else ""
            return (
                f"module {module} is not in the base model ({base_parent} has: "
                f"{', '.join(kids[:8])}{more})"
            )
        hint = f", {n} layers" if n is not None else ""
        return f"module {module} is not in the base model (model_type {self.base.model_type}{hint})"


# ------------------------------------------------------------------ adapters


@dataclass(frozen=True)
class AdapterInfo:
    """A validated LoRA adapter directory.

    ``modules``: the base modules that carry LoRA weights (natural order);
    ``saved_modules``: base modules whose weights the adapter carries whole
    (``modules_to_save``, embedding layers PEFT saved alongside their LoRA).
    ``shapes_checked``: every LoRA tensor was compared with its base weight;
    false for pickle weights (``allow_pickle``), pickle or quantized bases;
    ``warnings`` says why.
    """

    path: Path
    peft_type: str
    task_type: str | None
    r: int
    lora_alpha: float
    target_modules: list[str]
    weights_file: Path
    sha256: str
    base_model_name_or_path: str | None
    modules: list[str]
    shapes_checked: bool = True
    rank_pattern: dict[str, int] = field(default_factory=dict)
    saved_modules: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _LoraModule:
    tensors: dict[str, tuple[str, TensorInfo]] = field(default_factory=dict)  # "lora_A.weight" -> key


def _pos_int(value: Any) -> bool:
    return type(value) is int and value > 0


def _rank_for(
    module: str, r: int, patterns: list[tuple[str, re.Pattern[str], int]]
) -> tuple[int, str]:
    """PEFT's ``get_pattern_key``: the first pattern that matches the module path's end.

    ``patterns``: ``(key, re.compile(rf"(.*\\.)?({key})$"), rank)`` in
    ``rank_pattern`` order, compiled once by :func:`_parse_config` (``re``'s
    cache holds 512 patterns: a longer ``rank_pattern`` recompiled every key
    for every module).
    """
    for key, pattern, rank in patterns:
        if pattern.match(module):
            return rank, f"rank_pattern {key!r}"
    return r, "adapter_config.json r"


def _check_names(cfg: Mapping[str, Any], field_name: str, what: str) -> None:
    """Bound a list of names or a map keyed by names (``target_modules``, ``rank_pattern``, ...)."""
    value = cfg.get(field_name)
    if not isinstance(value, (list, dict)):
        return
    if len(value) > MAX_CONFIG_ENTRIES:
        raise _fail(
            f"{what}: adapter_config.json {field_name} has {len(value):,} entries, over the "
            f"{MAX_CONFIG_ENTRIES:,}-entry cap"
        )
    for name in value:
        if isinstance(name, str) and len(name) > MAX_NAME_CHARS:
            raise _fail(
                f"{what}: adapter_config.json {field_name} has a name of {len(name):,} characters "
                f"({_brief(name, 40)}), over the {MAX_NAME_CHARS:,}-character cap"
            )


def _parse_config(cfg: dict[str, Any], what: str) -> dict[str, Any]:
    peft_type = cfg.get("peft_type")
    if not isinstance(peft_type, str):
        raise _fail(f"{what}: adapter_config.json has no peft_type")
    if peft_type.upper() != "LORA":
        raise _fail(
            f"{what}: peft_type {_cut(peft_type)} is not supported: adaptergate validates LoRA "
            "adapters (peft_type LORA) only"
        )
    task_type = cfg.get("task_type")
    if task_type is not None and task_type != "CAUSAL_LM":
        raise _fail(
            f"{what}: task_type {_cut(str(task_type))} is not supported: adaptergate evaluates causal "
            "language models (task_type CAUSAL_LM)"
        )
    r = cfg.get("r", 8)  # PEFT's default when the field is absent
    if not _pos_int(r):
        raise _fail(f"{what}: adapter_config.json r must be a positive integer, got {_brief(r)}")
    alpha = cfg.get("lora_alpha", 8)
    if type(alpha) not in (int, float) or not math.isfinite(alpha):
        raise _fail(f"{what}: adapter_config.json lora_alpha must be a number, got {_brief(alpha)}")
    for field_name in ("target_modules", "modules_to_save", "rank_pattern", "alpha_pattern"):
        _check_names(cfg, field_name, what)
    targets = cfg.get("target_modules")
    if isinstance(targets, str):
        if len(targets) > MAX_REGEX_CHARS:
            raise _fail(
                f"{what}: adapter_config.json target_modules is a regex of {len(targets):,} "
                f"characters, over the {MAX_REGEX_CHARS:,}-character cap"
            )
        try:
            re.compile(targets)
        except re.error as exc:
            raise _fail(
                f"{what}: target_modules {_brief(targets)} is not a valid regex: {exc}"
            ) from None
        target_list = [targets]
    elif isinstance(targets, list) and all(isinstance(t, str) for t in targets):
        target_list = list(targets)
    elif targets is None and cfg.get("target_parameters"):
        target_list = []
    else:
        raise _fail(
            f"{what}: adapter_config.json target_modules must be a list of module names or a "
            f"regex string, got {_brief(targets)}"
        )
    rank_pattern = cfg.get("rank_pattern") or {}
    if not isinstance(rank_pattern, dict) or not all(
        isinstance(k, str) and _pos_int(v) for k, v in rank_pattern.items()
    ):
        raise _fail(f"{what}: adapter_config.json rank_pattern must map names to positive integers")
    patterns: list[tuple[str, re.Pattern[str], int]] = []
    for key, rank in rank_pattern.items():
        try:
            re.compile(key)
            patterns.append((key, re.compile(rf"(.*\.)?({key})$"), rank))
        except re.error as exc:
            raise _fail(f"{what}: rank_pattern key {_brief(key)} is not a valid regex: {exc}") from None
    base_name = cfg.get("base_model_name_or_path")
    return {
        "peft_type": "LORA",
        "task_type": task_type,
        "r": r,
        "lora_alpha": float(alpha),
        "target_modules": target_list,
        "target_is_regex": isinstance(targets, str),
        "rank_pattern": dict(rank_pattern),
        "rank_patterns": patterns,
        "fan_in_fan_out": cfg.get("fan_in_fan_out") is True,
        "base_model_name_or_path": base_name if isinstance(base_name, str) else None,
        "restricted": any(
            cfg.get(k) for k in ("layers_to_transform", "layers_pattern", "exclude_modules", "layer_replication")
        ),
    }


def _expected(kind: str, w: tuple[int, ...], rank: int, fan_in_fan_out: bool) -> tuple[int, ...] | None:
    """The shape a LoRA tensor must have for base weight shape ``w`` (None: not checkable)."""
    if kind in ("lora_embedding_A.", "lora_embedding_B."):
        if len(w) != 2:
            return None
        return (rank, w[0]) if kind == "lora_embedding_A." else (w[1], rank)
    if len(w) == 2:
        out_f, in_f = (w[1], w[0]) if fan_in_fan_out else (w[0], w[1])
        return {
            "lora_A.weight": (rank, in_f),
            "lora_B.weight": (out_f, rank),
            "lora_B.bias": (out_f,),
            "lora_magnitude_vector.": (out_f,),
        }.get(kind)
    if len(w) >= 3:  # convolutions: A (r, in, *kernel), B (out, r, 1, ...)
        return {
            "lora_A.weight": (rank, w[1], *w[2:]),
            "lora_B.weight": (w[0], rank, *([1] * (len(w) - 2))),
            "lora_B.bias": (w[0],),
        }.get(kind)
    return None


_LABEL = {
    "lora_A.weight": "lora_A", "lora_B.weight": "lora_B", "lora_B.bias": "lora_B bias",
    "lora_embedding_A.": "lora_embedding_A", "lora_embedding_B.": "lora_embedding_B",
    "lora_magnitude_vector.": "lora_magnitude_vector",
}
_RANK_AXIS = {"lora_A.weight": 0, "lora_B.weight": 1, "lora_embedding_A.": 0, "lora_embedding_B.": 1}


def _classify(rest: str, kind: str) -> str | None:
    """Canonical tensor slot (e.g. ``lora_A.weight``) from the key's tail, or None."""
    parts = [p for p in rest.split(".") if p]
    param = parts.pop() if parts and parts[-1] in ("weight", "bias") else ""
    if len(parts) > 1:  # at most one adapter name between kind and param
        return None
    slot = f"{kind}.{param}"
    allowed = {
        "lora_A": {"lora_A.weight"},
        "lora_B": {"lora_B.weight", "lora_B.bias"},
        "lora_embedding_A": {"lora_embedding_A."},
        "lora_embedding_B": {"lora_embedding_B."},
        "lora_magnitude_vector": {"lora_magnitude_vector.", "lora_magnitude_vector.weight"},
    }[kind]
    if slot == "lora_magnitude_vector.weight":
        slot = "lora_magnitude_vector."
    return slot if slot in allowed else None


def _strip_wrappers(name: str) -> str:
    """Drop PEFT's wrapper segments: ``x.modules_to_save.default.weight`` -> ``x.weight``."""
    name = re.sub(r"\.modules_to_save\.[^.]+(?=\.|$)", "", name)
    return re.sub(r"\.(?:original_module|base_layer)(?=\.|$)", "", name)


def validate_adapter(
    adapter_dir: str | Path,
    base: BaseInfo,
    *,
    allow_pickle: bool = False,
    name: str = "adapter",
    expected_sha256: str | None = None,
) -> AdapterInfo:
    """Check a PEFT LoRA adapter directory against ``base`` without loading either.

    Raises :class:`InvalidInputError` (one line naming ``name``, the module
    and the shapes; ``details`` lists every problem) when the adapter would
    not load, would load wrongly, or is a pickle and ``allow_pickle`` is off.
    """
    text = str(adapter_dir)
    path = Path(os.path.expanduser(text))
    if not path.exists():
        raise _fail(f"{name} {text} does not exist")
    if not path.is_dir():
        raise _fail(f"{name} {text} is not a directory (expected a PEFT adapter directory)")
    what = f"{name} {path}"
    if not (path / "adapter_config.json").is_file():
        raise _fail(f"{what}: no adapter_config.json (is this a PEFT adapter directory?)")
    cfg = _parse_config(_read_json(path / "adapter_config.json", what, MAX_ADAPTER_CONFIG_BYTES), what)

    st_file, bin_file = path / "adapter_model.safetensors", path / "adapter_model.bin"
    warnings: list[str] = []
    if not base.shapes_known:
        warnings.append(
            f"{what}: shapes not checked: the base model's weights are pickles; only the "
            "adapter's own ranks were checked"
        )
    if st_file.is_file():
        weights_file = st_file
        if bin_file.exists():
            warnings.append(f"{what}: adapter_model.bin ignored: PEFT loads adapter_model.safetensors")
    elif bin_file.is_file():
        if not allow_pickle:
            raise _fail(f"{what}: {_pickle_refusal(bin_file, path)}")
        weights_file = bin_file
    else:
        raise _fail(f"{what}: no adapter_model.safetensors")

    sha = file_sha256(weights_file)
    if expected_sha256 is not None:
        want = _normalise_sha(expected_sha256, weights_file.name)
        if sha != want:
            raise _fail(f"{name}: sha256 of {weights_file} is {sha}, expected {want}")

    info = dict(
        path=path,
        peft_type=cfg["peft_type"],
        task_type=cfg["task_type"],
        r=cfg["r"],
        lora_alpha=cfg["lora_alpha"],
        target_modules=cfg["target_modules"],
        weights_file=weights_file,
        sha256=sha,
        base_model_name_or_path=cfg["base_model_name_or_path"],
        rank_pattern=cfg["rank_pattern"],
    )
    if weights_file is bin_file:
        warnings.append(
            f"{what}: pickle weights {bin_file.name} allowed by --allow-pickle: their shapes "
            "cannot be checked without loading them"
        )
        return AdapterInfo(**info, modules=[], shapes_checked=False, warnings=warnings)

    tensors = read_safetensors_header(weights_file)
    problems: list[str] = []
    lora: dict[str, _LoraModule] = {}
    full: dict[str, TensorInfo] = {}  # base-side tensor name -> adapter tensor
    tokens: dict[str, TensorInfo] = {}  # module -> trainable_tokens_delta
    unprefixed = sorted((k for k in tensors if not k.startswith(_PEFT_PREFIX)), key=_natural)
    if unprefixed:
        problems.append(
            f"{len(unprefixed)} of {len(tensors)} tensors lack the {_PEFT_PREFIX} prefix PEFT "
            f"expects (e.g. {unprefixed[0]}): PEFT would skip them without an error"
        )
    for key, tinfo in tensors.items():
        if not key.startswith(_PEFT_PREFIX):
            continue
        rel = key[len(_PEFT_PREFIX):]
        m = _LORA_RE.match(rel)
        if m:
            slot = _classify(m.group("rest"), m.group("kind"))
            if slot is None:
                warnings.append(f"{what}: tensor {key} not recognised; not checked")
                continue
            mod = lora.setdefault(_strip_wrappers(m.group("module")), _LoraModule())
            mod.tensors[slot] = (key, tinfo)
        elif rel.endswith(".token_adapter.trainable_tokens_delta"):
            tokens[_strip_wrappers(rel[: -len(".token_adapter.trainable_tokens_delta")])] = tinfo
        else:
            full[_strip_wrappers(rel)] = tinfo

    if not lora and not full and not tokens and not problems:
        raise _fail(f"{what}: {weights_file.name} holds no LoRA tensors")

    idx = _BaseIndex(base)
    fan = cfg["fan_in_fan_out"] or idx.conv1d
    shapes_checked = base.shapes_known
    unchecked: list[str] = []
    found_base_modules: set[str] = set()

    for module in sorted(lora, key=_natural):
        slots = lora[module].tensors
        for a, b in (("lora_A.weight", "lora_B.weight"), ("lora_embedding_A.", "lora_embedding_B.")):
            if (a in slots) != (b in slots):
                have, lack = (a, b) if a in slots else (b, a)
                problems.append(
                    f"module {module} has {_LABEL[have]} but no {_LABEL[lack]}: "
                    "PEFT would leave it at its initial value"
                )
        wname: str | None = None
        if base.shapes_known:
            wname = idx.tensor(module + ".weight")
            if wname is None:
                base_module = idx.module(module)
                if base_module is None:
                    problems.append(idx.missing(module))
                    continue
                found_base_modules.add(base_module)
                unchecked.append(module)  # e.g. GPTQ qweight: present, shape unknown
            else:
                found_base_modules.add(wname[: -len(".weight")])
                if idx.quantized and base.weights[wname].dtype == "U8":
                    unchecked.append(module)
                    wname = None
        # after the base lookup: a module missing from the base costs no pattern matching
        rank, source = _rank_for(module, cfg["r"], cfg["rank_patterns"])
        w = base.weights[wname].shape if wname is not None else None
        short = module.rpartition(".")[2]
        is_embedding = "lora_embedding_A." in slots or "lora_embedding_B." in slots

        for slot in sorted(slots):
            key, t = slots[slot]
            label = _LABEL[slot]
            axis = _RANK_AXIS.get(slot)
            if slot == "lora_magnitude_vector." and is_embedding:
                continue  # DoRA on embeddings: not checked
            exp = _expected(slot, w, rank, fan) if w is not None else None
            if w is not None and exp is None and slot != "lora_magnitude_vector.":
                problems.append(
                    f"module {module}: {label} shape {_shape(t.shape)} cannot apply to the base "
                    f"{short} weight {_shape(w)}"
                )
                continue
            if exp is not None and t.shape != exp:
                rank_only = (
                    axis is not None
                    and len(t.shape) == len(exp)
                    and all(x == y for i, (x, y) in enumerate(zip(t.shape, exp)) if i != axis)
                )
                if not rank_only:
                    problems.append(
                        f"module {module}: {label} shape {_shape(t.shape)} does not match the base "
                        f"{short} weight {_shape(w)}: expected {_shape(exp)}"
                    )
                    continue
            if axis is not None:
                if len(t.shape) <= axis:
                    problems.append(f"module {module}: {label} has an invalid shape {_shape(t.shape)}")
                elif t.shape[axis] != rank:
                    problems.append(
                        f"module {module}: {label} has rank {t.shape[axis]} (shape "
                        f"{_shape(t.shape)}) but {source} is {rank}"
                    )

    for tname in sorted(full, key=_natural):
        t = full[tname]
        module = tname.rpartition(".")[0] or tname
        wname = idx.tensor(tname) if base.shapes_known else None
        if base.shapes_known and wname is None:
            problems.append(idx.missing(module) if idx.module(module) is None else
                            f"tensor {tname} is not in the base model")
            continue
        if wname is not None and base.weights[wname].shape != t.shape:
            problems.append(
                f"module {module}: saved {tname.rpartition('.')[2]} shape {_shape(t.shape)} does "
                f"not match the base tensor {wname} {_shape(base.weights[wname].shape)}"
            )

    for module, t in sorted(tokens.items()):
        wname = idx.tensor(module + ".weight") if base.shapes_known else None
        if base.shapes_known and wname is None:
            problems.append(idx.missing(module))
        elif wname is not None:
            w = base.weights[wname].shape
            if len(t.shape) != 2 or len(w) != 2 or t.shape[1] != w[1]:
                problems.append(
                    f"module {module}: trainable_tokens_delta shape {_shape(t.shape)} does not "
                    f"match the base {module.rpartition('.')[2]} weight {_shape(w)}"
                )

    if problems:
        first = f"{what}: {problems[0]}"
        if len(problems) > 1:
            first += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        raise _fail(first, details=[f"{what}: {p}" for p in problems])

    if unchecked:
        shapes_checked = False
        warnings.append(
            f"{what}: {len(unchecked)} module(s) could not be shape-checked against the base "
            f"(quantized or non-standard weights), e.g. {unchecked[0]}"
        )
    if base.shapes_known and not cfg["restricted"] and lora:
        uncovered = _uncovered_targets(cfg, base, found_base_modules, idx)
        if uncovered:
            warnings.append(
                f"{what}: target_modules match {len(uncovered)} base module(s) the adapter has no "
                f"weights for, e.g. {uncovered[0]} (the base has {base.num_layers} layers); PEFT "
                "leaves them unadapted: was the adapter trained on a different base?"
            )

    return AdapterInfo(
        **info,
        modules=sorted(lora, key=_natural),
        shapes_checked=shapes_checked,
        saved_modules=sorted({t.rpartition(".")[0] or t for t in full}, key=_natural),
        warnings=warnings,
    )


def _uncovered_targets(
    cfg: Mapping[str, Any], base: BaseInfo, found: set[str], idx: _BaseIndex
) -> list[str]:
    """Base modules ``target_modules`` names that the adapter carries no weights for.

    A name ``t`` targets ``mod`` when ``mod == t`` or ``mod`` ends with
    ``"." + t`` (PEFT's rule), i.e. when ``t`` is one of the dot-separated
    tails of ``mod``: each module looks its few tails up in a set, linear in
    modules plus names (comparing every module with every name was
    quadratic).
    """
    candidates = {
        n[: -len(".weight")]
        for n, t in base.weights.items()
        if n.endswith(".weight") and len(t.shape) >= 2
    }
    targets = cfg["target_modules"]
    out = []
    if cfg["target_is_regex"]:
        pattern = re.compile(targets[0])
        out = [mod for mod in candidates - found if pattern.fullmatch(mod) is not None]
    else:
        names = set(targets)
        for mod in candidates - found:
            parts = mod.split(".")
            if any(".".join(parts[i:]) in names for i in range(len(parts))):
                out.append(mod)
    return sorted(out, key=_natural)
