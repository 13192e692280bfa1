"""Per-tenant gate settings kept in a JSON file (``--config``).

::

    {"schema_version": 1,
     "tenants": {"acme": {"epsilon": 0.031, "slice_epsilon": 0.18,
                           "calibration": {...how they were derived...}}}}

``adaptergate calibrate --write`` fills it; ``adaptergate gate --config``
reads it. A value given on the command line wins over the file, and the file
wins over the built-in defaults (:func:`with_defaults`: the defaults that depend
on the rule, such as slice gating under the statistical rule).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from adaptergate.errors import InvalidInputError
from adaptergate.models import DEFAULT_SLICE_EPSILON, SETTING_NAMES, SLICE_GATING_OFF, GateConfig
from adaptergate.storage import atomic_write, file_lock

CONFIG_SCHEMA_VERSION = 1

TenantSettings = create_model(
    "TenantSettings",
    __config__=ConfigDict(extra="forbid"),
    __doc__="One tenant's entry: any decision setting (:data:`~adaptergate.models.SETTING_NAMES`),"
    " and how calibrate derived them.",
    **{name: (GateConfig.model_fields[name].annotation | None, None) for name in SETTING_NAMES},
    calibration=(dict[str, Any] | None, None),
)


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = CONFIG_SCHEMA_VERSION
    tenants: dict[str, TenantSettings] = Field(default_factory=dict)


def read_config(path: Path) -> ConfigFile:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read config {path}: {exc}") from None
    try:
        return ConfigFile.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        raise InvalidInputError(f"{path}: {loc}: {err['msg']}") from None


def tenant_settings(path: Path | None, tenant: str) -> dict[str, Any]:
    """The settings the file holds for ``tenant`` (empty when none)."""
    if path is None:
        return {}
    cfg = read_config(path)
    t = cfg.tenants.get(tenant)
    if t is None:
        return {}
    return {k: v for k, v in t.model_dump().items() if k in SETTING_NAMES and v is not None}


def write_tenant_settings(path: Path, tenant: str, values: dict[str, Any], calibration: dict[str, Any]) -> None:
    """Merge ``values`` into the tenant's entry, atomically and under a lock."""
    with file_lock(path):
        cfg = read_config(path) if path.exists() else ConfigFile()
        current = cfg.tenants.get(tenant, TenantSettings())
        cfg.tenants[tenant] = current.model_copy(update={**values, "calibration": calibration})
        text = cfg.model_dump_json(indent=2, exclude_none=True) + "\n"
        atomic_write(path, [text.encode("utf-8")], locked=True)


def with_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (given and settings-file values, by name) with the defaults that depend on
    the decision rule filled in, ready for :class:`~adaptergate.models.GateConfig`.

    Under the statistical rule (the default) slices are gated at
    :data:`~adaptergate.models.DEFAULT_SLICE_EPSILON` unless a slice margin was given;
    ``slice_epsilon`` ``"off"`` gates the aggregate only. The threshold rule
    (``--decision threshold``, ``ADAPTERGATE_DECISION=threshold``) keeps adaptergate
    0.5.4's defaults exactly: no slice gating unless a margin is given.
    """
    out = dict(settings)
    rule = out.get("decision") or GateConfig.model_fields["decision"].default
    value = out.get("slice_epsilon")
    if isinstance(value, str) and value.strip().lower() == SLICE_GATING_OFF:
        out["slice_epsilon"] = None
    elif value is None and rule == "stat":
        out["slice_epsilon"] = DEFAULT_SLICE_EPSILON
    return out
