"""The metric spec: :class:`MetricSpec`, what ``--metric`` names (a registered
metric with typed options, or a user metric ``module:function``), parsed and
validated by :func:`parse_metric`.

Grammar of ``--metric``
-----------------------

::

    metric   = builtin [ ":" option { "," option } ]
             | "judge"
             | module ":" function
    builtin  = "exact" | "contains" | "regex" | "json" | "numeric" | "sql"
    option   = key [ "=" value ]          (a bare key means key=true)
    key      = letters, digits and "_"     (case-sensitive, lower case)
    value    = any text without ","        (surrounding spaces are ignored)
    boolean  = true | false | yes | no | on | off | 1 | 0   (any case)
    module   = identifier { "." identifier }   (as for --scorer)
    function = identifier

The text before the first ``:`` decides: a built-in name means a built-in
with options, so ``exact:casefold`` is never a user function ``casefold`` in
a module ``exact`` (a user metric's module cannot share a built-in's name;
put it in a package, e.g. ``evals.exact:score``). Anything else must be
``module:function``, imported exactly like ``--scorer`` (the current
directory, or ``search_path``, is importable). Options are validated: an
unknown option, a repeated option, a bad value, or a malformed spec is an
:class:`~adaptergate.errors.InvalidInputError` (exit 2).

The registered metrics and their options are in :data:`adaptergate.metrics.base.METRICS`
(the built-ins: :mod:`adaptergate.metrics.builtin`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adaptergate.errors import InvalidInputError
from adaptergate.metrics.base import METRICS, OptionTable
from adaptergate.scoring.scorers import _SPEC_RE

__all__ = ["MetricSpec", "checked_spec", "parse_metric", "resolved_options", "spec_error"]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_KEY_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def _option_table(name: str) -> OptionTable | None:
    """The options of a registered metric (None: not registered, or it takes none at all)."""
    info = METRICS.get(name)
    return None if info is None else info.options


@dataclass(frozen=True)
class MetricSpec:
    """A parsed ``--metric``: a built-in name with its explicitly given,
    typed options, or ``module:function`` (then ``options`` is empty)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return _option_table(self.name) is not None

    def __str__(self) -> str:
        """The canonical spec: options sorted, defaults left out."""
        table = _option_table(self.name) or {}
        parts = []
        for key in sorted(self.options):
            value = self.options[key]
            default = table[key][1] if key in table else object()
            if value == default and type(value) is type(default):
                continue
            if value is True:
                parts.append(key)
            elif value is False:
                parts.append(f"{key}=false")
            else:
                parts.append(f"{key}={value}")
        return self.name + (":" + ",".join(parts) if parts else "")


def spec_error(spec: str, why: str) -> InvalidInputError:
    """The error for a bad ``--metric`` (exit 2)."""
    return InvalidInputError(f"--metric {spec!r}: {why}")


def _coerce(spec: str, metric: str, key: str, kind: str, raw: Any) -> Any:
    """One option value, from spec text or an already typed value."""
    if kind == "bool":
        if type(raw) is bool:
            return raw
        if isinstance(raw, str):
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        raise spec_error(spec, f"option {key!r} of metric {metric!r} takes true or false, got {raw!r}")
    if kind == "tol":
        value: float | None
        if isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                value = None
        elif isinstance(raw, (int, float)) and type(raw) is not bool:
            value = float(raw)
        else:
            value = None
        if value is None or not math.isfinite(value) or value < 0:
            raise spec_error(
                spec, f"option {key!r} of metric {metric!r} takes a finite number >= 0, got {raw!r}"
            )
        return value
    # "str"
    if not isinstance(raw, str) or not raw.strip():
        raise spec_error(spec, f"option {key!r} of metric {metric!r} takes a non-empty value, got {raw!r}")
    return raw.strip()


def _unknown_option(spec: str, metric: str, key: str, bare: bool) -> InvalidInputError:
    table = _option_table(metric) or {}
    known = ", ".join(table) if table else "none"
    hint = ""
    if bare:  # perhaps meant as module:function
        hint = (
            f"; a user metric cannot live in a module named {metric!r}"
            f" (use a package path such as 'evals.{metric}:{key}')"
        )
    return spec_error(spec, f"unknown option {key!r} for metric {metric!r} (options: {known}){hint}")


def _validate(spec: str, name: str, raw_options: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    table = _option_table(name) or {}
    options: dict[str, Any] = {}
    for key, raw in raw_options:
        if key not in table:
            raise _unknown_option(spec, name, key, raw is None)
        if key in options:
            raise spec_error(spec, f"option {key!r} is given twice")
        kind = table[key][0]
        if raw is None:  # a bare flag
            if kind != "bool":
                raise spec_error(spec, f"option {key!r} of metric {name!r} needs a value ({key}=...)")
            raw = True
        options[key] = _coerce(spec, name, key, kind, raw)
    return options


def _names() -> tuple[list[str], list[str]]:
    """The registered metrics: those with options (the built-ins), then those without (the judge)."""
    with_options = [name for name, info in METRICS.items() if info.options is not None]
    return with_options, [name for name, info in METRICS.items() if info.options is None]


def parse_metric(spec: str) -> MetricSpec:
    """Parse ``--metric`` (grammar in the module docstring); a bad spec is an
    :class:`InvalidInputError`. User metrics are not imported here."""
    if not isinstance(spec, str):
        raise InvalidInputError(f"--metric must be a string, got {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise spec_error(spec, f"empty metric; use one of {', '.join(_names()[0])} or module:function")
    head, colon, rest = text.partition(":")
    head = head.strip()
    info = METRICS.get(head)
    if info is not None and info.options is None:
        if colon:
            raise spec_error(spec, f"metric {head!r} takes no options; configure it with {info.configured_by}")
        return MetricSpec(head, {})
    if info is not None:
        if not colon:
            return MetricSpec(head, {})
        tokens = rest.split(",")
        raw: list[tuple[str, Any]] = []
        for token in tokens:
            key, eq, value = token.partition("=")
            key = key.strip()
            if not key:
                raise spec_error(spec, "empty option" + (" list" if len(tokens) == 1 else ""))
            if not _KEY_RE.match(key):
                raise spec_error(spec, f"bad option name {key!r}")
            raw.append((key, value if eq else None))
        return MetricSpec(head, _validate(spec, head, raw))
    if _SPEC_RE.match(text):
        return MetricSpec(text, {})
    if colon:
        why = "expected a built-in with options or module:function (e.g. my_eval:score)"
    else:
        with_options, without = _names()
        why = f"unknown metric; built-ins: {', '.join([*with_options, *without])}; or module:function for your own"
    raise spec_error(spec, why)


def checked_spec(spec: MetricSpec) -> MetricSpec:
    """A registered metric's spec with its options validated again (a :class:`MetricSpec`
    built in code, not parsed); an unknown option or a bad value is an :class:`InvalidInputError`."""
    return MetricSpec(spec.name, _validate(spec.name, spec.name, spec.options.items()))


def resolved_options(spec: MetricSpec) -> dict[str, Any]:
    """Every option of a registered metric: the spec's, else the default."""
    table = _option_table(spec.name) or {}
    return {key: spec.options.get(key, default) for key, (_, default) in table.items()}
