"""The adapter card a promotion writes: the previous entry's, the adapter's sidecar, a card file and flags, merged.

``adapter_config.json`` is the truth about the adapter's shape: its facts
(:func:`adaptergate.manifest.facts.lora_facts`) override any card's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adaptergate.errors import InvalidInputError
from adaptergate.manifest.model import AdapterCard, TenantEntry

__all__ = ["build_card", "read_card_file"]


def read_card_file(path: Path) -> dict[str, Any]:
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


def build_card(*, previous: TenantEntry | None, sidecar: AdapterCard | None, card_file: dict[str, Any] | None,
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
