"""A local base model directory, read without loading it: config, weight headers, and its sha256.

Weights are ``model.safetensors`` or the shards of its index; pickle weights
are refused unless allowed, and then only hashed. The size of each JSON file
read is bounded (:data:`MAX_BASE_JSON_BYTES`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptergate.backends.files import fail, file_sha256, normalise_sha, pickle_refusal, read_json
from adaptergate.backends.safetensors import TensorInfo, read_safetensors_header

__all__ = ["MAX_BASE_JSON_BYTES", "BaseInfo", "check_base_hash", "inspect_base", "text_config"]


MAX_BASE_JSON_BYTES = 64 << 20
"""Largest ``config.json`` or ``model.safetensors.index.json`` of a base model
read (64 MiB; the index of a model with 100,000 tensors is about 10 MB)."""

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_NOT_WEIGHTS = frozenset({"training_args.bin", "optimizer.pt", "scheduler.pt"})


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
    unknown_shapes: str = "the base model's weights are pickles"
    """Why shapes are not known, when they are not (said in the adapters' warnings)."""


def served_base(name: str) -> BaseInfo:
    """A base model a server serves by name (``--backend openai`` without a local copy): nothing of
    it is known here, so adapters are checked on their own (config, ranks, weights' format and
    hash) and the server vouches for the base (its ``/v1/models``)."""
    text = str(name).strip()
    if not text:
        raise fail("--base-model is empty")
    return BaseInfo(
        path=Path(text), config={}, weights={}, files=[],
        sha256="served:" + hashlib.sha256(text.encode("utf-8")).hexdigest(), model_type="unknown",
        num_layers=None, shapes_known=False,
        unknown_shapes=f"the base model {text} is on the server, not here",
    )


def _looks_like_path(text: str) -> bool:
    return (
        os.path.isabs(text)
        or text.startswith((".", "~"))
        or text.count("/") > 1
        or os.sep != "/" and os.sep in text
    )


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    sub = config.get("text_config")
    return sub if isinstance(sub, dict) else {}


def _num_layers(config: Mapping[str, Any], weights: Mapping[str, TensorInfo]) -> int | None:
    for cfg in (config, text_config(config)):
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
        raise fail(f"base model {directory}: index names a file outside the directory: {name!r}")
    return directory / name


def _index_shards(index_path: Path) -> tuple[dict[str, str], list[Path]]:
    index = read_json(index_path, "base model", MAX_BASE_JSON_BYTES)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise fail(f"base model: {index_path} has no valid weight_map")
    shards = sorted({_inside(index_path.parent, v) for v in weight_map.values()}, key=lambda p: str(p))
    for shard in shards:
        if not shard.is_file():
            raise fail(f"base model: shard {shard.name} listed in {index_path.name} is missing from {index_path.parent}")
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
            raise fail(f"base model {text} is a file; expected a model directory with config.json")
        if _looks_like_path(text):
            raise fail(f"base model directory {text} does not exist")
        raise fail(
            f"base model {text!r} is not a local directory; adapter checks need the model files: "
            f"set HF_HUB_OFFLINE=0 and download it first (huggingface-cli download {text} "
            "--local-dir DIR), then pass DIR"
        )
    config = read_json(path / "config.json", f"base model {path}", MAX_BASE_JSON_BYTES)

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
                    raise fail(f"base model {path}: tensor {name} appears in more than one shard")
                weights[name] = info
        missing = sorted(n for n in weight_map if n not in weights)
        if missing:
            raise fail(
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
                raise fail(f"base model: {pickle_refusal(files[0], path)}")
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
            raise fail(
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
        model_type=str(config.get("model_type") or text_config(config).get("model_type") or "unknown"),
        num_layers=_num_layers(config, weights),
        file_hashes=hashes,
        shapes_known=shapes_known,
        warnings=warnings,
    )


def check_base_hash(base: BaseInfo, expected: str) -> None:
    """Raise :class:`InvalidInputError` unless the base model's sha256 is ``expected``."""
    want = normalise_sha(expected, "the base model")
    if base.sha256 != want:
        raise fail(f"base model sha256 is {base.sha256}, expected {want} ({base.path})")
