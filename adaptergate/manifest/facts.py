"""What the manifest records of a PEFT adapter directory, read without torch: its weights file, ranks and training facts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError

__all__ = ["WEIGHTS_FILE", "config_rank", "lora_facts", "max_rank"]


WEIGHTS_FILE = "adapter_model.safetensors"


def config_rank(adapter_dir: Path) -> int | None:
    try:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict):
        return None
    return max_rank(cfg)


def max_rank(cfg: Mapping[str, Any]) -> int | None:
    r = cfg.get("r", 8)  # PEFT's default when absent
    ranks = [r] if type(r) is int and r > 0 else []
    pattern = cfg.get("rank_pattern") or {}
    if isinstance(pattern, dict):
        ranks += [v for v in pattern.values() if type(v) is int and v > 0]
    return max(ranks) if ranks else None


def lora_facts(adapter_dir: Path) -> dict[str, Any]:
    """Check ``adapter_dir`` is a PEFT LoRA directory; its training facts and sha256."""
    from adaptergate.backends.files import file_sha256
    from adaptergate.backends.safetensors import read_safetensors_header

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
    rank = max_rank(cfg)
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
