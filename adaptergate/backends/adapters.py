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
request under review, so every read is bounded: the safetensors header
length (the safetensors library's own cap: :mod:`adaptergate.backends.safetensors`),
the size of a JSON file (:data:`MAX_ADAPTER_CONFIG_BYTES`,
:data:`adaptergate.backends.base_model.MAX_BASE_JSON_BYTES`),
the nesting of JSON (:data:`adaptergate.trust.MAX_JSON_DEPTH`), the number of entries of
``target_modules``, ``modules_to_save``, ``rank_pattern`` and
``alpha_pattern`` (:data:`MAX_CONFIG_ENTRIES`) and the length of each name in
them (:data:`MAX_NAME_CHARS`, :data:`MAX_REGEX_CHARS` for a
``target_modules`` regex). Crossing a bound is one exit-2 line naming the
file, like any other invalid input.

The base model is read by :mod:`adaptergate.backends.base_model`, safetensors
headers by :mod:`adaptergate.backends.safetensors`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptergate.backends.base_model import BaseInfo, text_config
from adaptergate.backends.files import fail, file_sha256, normalise_sha, pickle_refusal, read_json
from adaptergate.backends.safetensors import TensorInfo, read_safetensors_header, shape_text

__all__ = [
    "MAX_ADAPTER_CONFIG_BYTES",
    "MAX_CONFIG_ENTRIES",
    "MAX_NAME_CHARS",
    "MAX_REGEX_CHARS",
    "AdapterInfo",
    "validate_adapter",
]


MAX_ADAPTER_CONFIG_BYTES = 4 << 20
"""Largest ``adapter_config.json`` read (4 MiB; PEFT writes a few KB, a
per-module ``rank_pattern`` for a 70B model some 50 KB)."""

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


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _brief(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error line shows what it got, not 4 MB."""
    if isinstance(value, (list, dict)) and len(value) > 64:  # never repr a huge container
        return f"a {'list' if isinstance(value, list) else 'map'} of {len(value):,} entries"
    return _cut(repr(value), limit)


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
        tied = cfg.get("tie_word_embeddings", text_config(cfg).get("tie_word_embeddings", True))
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
        raise fail(
            f"{what}: adapter_config.json {field_name} has {len(value):,} entries, over the "
            f"{MAX_CONFIG_ENTRIES:,}-entry cap"
        )
    for name in value:
        if isinstance(name, str) and len(name) > MAX_NAME_CHARS:
            raise fail(
                f"{what}: adapter_config.json {field_name} has a name of {len(name):,} characters "
                f"({_brief(name, 40)}), over the {MAX_NAME_CHARS:,}-character cap"
            )


def _parse_config(cfg: dict[str, Any], what: str) -> dict[str, Any]:
    peft_type = cfg.get("peft_type")
    if not isinstance(peft_type, str):
        raise fail(f"{what}: adapter_config.json has no peft_type")
    if peft_type.upper() != "LORA":
        raise fail(
            f"{what}: peft_type {_cut(peft_type)} is not supported: adaptergate validates LoRA "
            "adapters (peft_type LORA) only"
        )
    task_type = cfg.get("task_type")
    if task_type is not None and task_type != "CAUSAL_LM":
        raise fail(
            f"{what}: task_type {_cut(str(task_type))} is not supported: adaptergate evaluates causal "
            "language models (task_type CAUSAL_LM)"
        )
    r = cfg.get("r", 8)  # PEFT's default when the field is absent
    if not _pos_int(r):
        raise fail(f"{what}: adapter_config.json r must be a positive integer, got {_brief(r)}")
    alpha = cfg.get("lora_alpha", 8)
    if type(alpha) not in (int, float) or not math.isfinite(alpha):
        raise fail(f"{what}: adapter_config.json lora_alpha must be a number, got {_brief(alpha)}")
    for field_name in ("target_modules", "modules_to_save", "rank_pattern", "alpha_pattern"):
        _check_names(cfg, field_name, what)
    targets = cfg.get("target_modules")
    if isinstance(targets, str):
        if len(targets) > MAX_REGEX_CHARS:
            raise fail(
                f"{what}: adapter_config.json target_modules is a regex of {len(targets):,} "
                f"characters, over the {MAX_REGEX_CHARS:,}-character cap"
            )
        try:
            re.compile(targets)
        except re.error as exc:
            raise fail(
                f"{what}: target_modules {_brief(targets)} is not a valid regex: {exc}"
            ) from None
        target_list = [targets]
    elif isinstance(targets, list) and all(isinstance(t, str) for t in targets):
        target_list = list(targets)
    elif targets is None and cfg.get("target_parameters"):
        target_list = []
    else:
        raise fail(
            f"{what}: adapter_config.json target_modules must be a list of module names or a "
            f"regex string, got {_brief(targets)}"
        )
    rank_pattern = cfg.get("rank_pattern") or {}
    if not isinstance(rank_pattern, dict) or not all(
        isinstance(k, str) and _pos_int(v) for k, v in rank_pattern.items()
    ):
        raise fail(f"{what}: adapter_config.json rank_pattern must map names to positive integers")
    patterns: list[tuple[str, re.Pattern[str], int]] = []
    for key, rank in rank_pattern.items():
        try:
            re.compile(key)
            patterns.append((key, re.compile(rf"(.*\.)?({key})$"), rank))
        except re.error as exc:
            raise fail(f"{what}: rank_pattern key {_brief(key)} is not a valid regex: {exc}") from None
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
        raise fail(f"{name} {text} does not exist")
    if not path.is_dir():
        raise fail(f"{name} {text} is not a directory (expected a PEFT adapter directory)")
    what = f"{name} {path}"
    if not (path / "adapter_config.json").is_file():
        raise fail(f"{what}: no adapter_config.json (is this a PEFT adapter directory?)")
    cfg = _parse_config(read_json(path / "adapter_config.json", what, MAX_ADAPTER_CONFIG_BYTES), what)

    st_file, bin_file = path / "adapter_model.safetensors", path / "adapter_model.bin"
    warnings: list[str] = []
    if not base.shapes_known:
        warnings.append(
            f"{what}: shapes not checked: {base.unknown_shapes}; only the "
            "adapter's own ranks were checked"
        )
    if st_file.is_file():
        weights_file = st_file
        if bin_file.exists():
            warnings.append(f"{what}: adapter_model.bin ignored: PEFT loads adapter_model.safetensors")
    elif bin_file.is_file():
        if not allow_pickle:
            raise fail(f"{what}: {pickle_refusal(bin_file, path)}")
        weights_file = bin_file
    else:
        raise fail(f"{what}: no adapter_model.safetensors")

    sha = file_sha256(weights_file)
    if expected_sha256 is not None:
        want = normalise_sha(expected_sha256, weights_file.name)
        if sha != want:
            raise fail(f"{name}: sha256 of {weights_file} is {sha}, expected {want}")

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
        raise fail(f"{what}: {weights_file.name} holds no LoRA tensors")

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
                    f"module {module}: {label} shape {shape_text(t.shape)} cannot apply to the base "
                    f"{short} weight {shape_text(w)}"
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
                        f"module {module}: {label} shape {shape_text(t.shape)} does not match the base "
                        f"{short} weight {shape_text(w)}: expected {shape_text(exp)}"
                    )
                    continue
            if axis is not None:
                if len(t.shape) <= axis:
                    problems.append(f"module {module}: {label} has an invalid shape {shape_text(t.shape)}")
                elif t.shape[axis] != rank:
                    problems.append(
                        f"module {module}: {label} has rank {t.shape[axis]} (shape "
                        f"{shape_text(t.shape)}) but {source} is {rank}"
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
                f"module {module}: saved {tname.rpartition('.')[2]} shape {shape_text(t.shape)} does "
                f"not match the base tensor {wname} {shape_text(base.weights[wname].shape)}"
            )

    for module, t in sorted(tokens.items()):
        wname = idx.tensor(module + ".weight") if base.shapes_known else None
        if base.shapes_known and wname is None:
            problems.append(idx.missing(module))
        elif wname is not None:
            w = base.weights[wname].shape
            if len(t.shape) != 2 or len(w) != 2 or t.shape[1] != w[1]:
                problems.append(
                    f"module {module}: trainable_tokens_delta shape {shape_text(t.shape)} does not "
                    f"match the base {module.rpartition('.')[2]} weight {shape_text(w)}"
                )

    if problems:
        first = f"{what}: {problems[0]}"
        if len(problems) > 1:
            first += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
        raise fail(first, details=[f"{what}: {p}" for p in problems])

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
