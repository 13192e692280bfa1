"""The scorer contract: ``--scorer module:function``.

A scorer is adaptergate 0.5.4's callable ``score(adapter_id, query) -> float``
returning a score in ``[0, 1]`` for one query (``query`` is the holdout line
as the user wrote it). When the scorer's module also defines
``<function>_batch(adapter_id, queries) -> list[float]`` (``score_batch`` for
``score``), or the function has a ``batch`` attribute, the batch form is
used instead: one call per adapter.

Every returned value is checked — NaN, infinities, values outside
``[0, 1]``, strings and other non-numbers end the run naming the query. A
scorer that raises, or whose module fails to import, ends the run with one
line; the traceback is kept for the audit log and ``--debug``.
"""

from __future__ import annotations

import importlib
import numbers
import re
import sys
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from itertools import islice, repeat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import math

import numpy as np

from adaptergate.errors import InvalidInputError, ScorerError

_SPEC_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Scorer:
    spec: str
    single: Callable[[str, dict[str, Any]], Any]
    batch: Callable[[str, list[dict[str, Any]]], Any] | None = None

    @property
    def mode(self) -> str:
        return "batch" if self.batch is not None else "per-query"


def _format_tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class CodePolicy:
    """Which ``module:function`` specs may be imported, and from where.

    The GitHub Action sets one (:func:`restrict_code`): only the modules its
    workflow names (inputs ``scorer`` and ``metric``) are importable, each
    from a directory that holds that module alone (a copy of the pull
    request's base version), so nothing in the checkout is ever on
    ``sys.path``. The CLI sets none: the current directory is importable, as
    in 0.5.4, because its user chose the files.
    """

    roots: Mapping[str, Path | None]
    """Top-level module name -> the directory holding only it (None: an installed package)."""

    def root_for(self, spec: str, module_name: str) -> Path | None:
        top = module_name.split(".", 1)[0]
        if top not in self.roots:
            raise InvalidInputError(
                f"{spec}: not named by the workflow — the Action imports only the module:function specs"
                " its workflow names (inputs scorer and metric), never one chosen by content under review"
            )
        return self.roots[top]


_code_policy: CodePolicy | None = None


def restrict_code(policy: CodePolicy | None) -> None:
    """Set (or with None lift) the process's :class:`CodePolicy`."""
    global _code_policy
    _code_policy = policy


def code_policy() -> CodePolicy | None:
    return _code_policy


def load_scorer(spec: str, *, search_path: Path | None = None) -> Scorer:
    """Import ``module:function``; the current directory is importable, as in 0.5.4
    (unless a :class:`CodePolicy` is in force: then only what it names, from where it says)."""
    spec = spec.strip()
    if not _SPEC_RE.match(spec):
        raise InvalidInputError(
            f"--scorer must be 'module:function' (e.g. my_eval:score), got {spec!r}"
        )
    module_name, func_name = spec.split(":", 1)
    if _code_policy is not None:
        trusted = _code_policy.root_for(spec, module_name)
        root = str(trusted) if trusted is not None else "no directory of the checkout"
        if trusted is not None and str(trusted) not in sys.path:
            sys.path.insert(0, str(trusted))  # it holds this one module only
    else:
        root = str(search_path or Path.cwd())
        if root not in sys.path:
            sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise InvalidInputError(
                f"cannot import scorer module {module_name!r}: no module named {missing!r}"
                f" (looked in {root} and the installed packages)"
            ) from None
        raise ScorerError(
            f"scorer module {module_name!r} failed to import: {_one_line(exc)}",
            traceback_text=_format_tb(exc),
        ) from exc
    except BaseException as exc:  # SyntaxError, anything raised at import time
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise ScorerError(
            f"scorer module {module_name!r} failed to import: {_one_line(exc)}",
            traceback_text=_format_tb(exc),
        ) from exc
    func = getattr(module, func_name, None)
    if func is None:
        raise InvalidInputError(f"scorer module {module_name!r} has no attribute {func_name!r}")
    if not callable(func):
        raise InvalidInputError(f"scorer {spec!r} is not callable")
    batch = getattr(module, f"{func_name}_batch", None)
    if not callable(batch):
        batch = getattr(func, "batch", None)
    return Scorer(spec=spec, single=func, batch=batch if callable(batch) else None)


def _bad_value(value: Any) -> str | None:
    """Why ``value`` is not a usable score, or None when it is."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Real):
        return None
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "fiub":
        return None
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"a {type(value).__name__} ({shown}), not a number"


def _require_number(value: Any, name: str, query_id: str, adapter_id: str) -> None:
    """Raise the one-line ScorerError for a value that is not a number (the slow path)."""
    why = _bad_value(value)
    if why:
        raise ScorerError(f"scorer {name} returned {why} for query {query_id!r} (adapter {adapter_id!r})")


def _check(values: np.ndarray, ids: Sequence[str], scorer: Scorer, adapter_id: str) -> np.ndarray:
    bad = ~np.isfinite(values) | (values < 0.0) | (values > 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        v = float(values[i])
        what = "NaN" if math.isnan(v) else ("an infinite value" if math.isinf(v) else f"{v!r}, outside [0, 1]")
        more = int(bad.sum()) - 1
        raise ScorerError(
            f"scorer {scorer.spec} returned {what} for query {ids[i]!r} (adapter {adapter_id!r})"
            + (f"; {more} more such values" if more else "")
        )
    return values


def score_all(
    scorer: Scorer,
    adapter_id: str,
    payloads: Sequence[dict[str, Any]],
    ids: Sequence[str],
    *,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Score every query for one adapter; a float64 vector in holdout order."""
    n = len(payloads)
    if scorer.batch is not None:
        name = scorer.spec.split(":")[0] + ":" + getattr(scorer.batch, "__name__", "batch")
        try:
            raw = scorer.batch(adapter_id, list(payloads))
        except Exception as exc:
            raise ScorerError(
                f"scorer {name} raised {_one_line(exc)} (adapter {adapter_id!r})",
                traceback_text=_format_tb(exc),
            ) from exc
        if isinstance(raw, np.ndarray) and raw.ndim == 1 and raw.dtype.kind in "fiub":
            values = raw.astype(np.float64)
        else:
            try:
                seq = list(raw)
            except TypeError:
                raise ScorerError(
                    f"scorer {name} returned {type(raw).__name__}, not a list of scores"
                ) from None
            if len(seq) != n:
                raise ScorerError(
                    f"scorer {name} returned {len(seq)} scores for {n} queries (adapter {adapter_id!r})"
                )
            values = np.empty(n, dtype=np.float64)
            for i, v in enumerate(seq):
                if type(v) is not float and type(v) is not int:
                    _require_number(v, name, ids[i], adapter_id)
                values[i] = v
        if values.shape != (n,):
            raise ScorerError(
                f"scorer {name} returned {values.size} scores for {n} queries (adapter {adapter_id!r})"
            )
        if progress:
            progress(n)
        return _check(values, ids, scorer, adapter_id)

    values = np.empty(n, dtype=np.float64)
    func = scorer.single
    step = max(1, n // 100)
    queries = iter(payloads)
    for start in range(0, n, step):
        # One C-level loop per 1% of the queries: the scorer's results are appended as
        # they come, so on a failure the ones before it are at hand.
        k = min(step, n - start)
        got: list[Any] = []
        try:
            deque(map(got.append, map(func, repeat(adapter_id, k), islice(queries, k))), maxlen=0)
        except Exception as exc:
            _set_numbers(values, start, got, ids, scorer.spec, adapter_id)  # an earlier bad value first
            raise ScorerError(
                f"scorer {scorer.spec} raised {_one_line(exc)} on query {ids[start + len(got)]!r}"
                f" (adapter {adapter_id!r})",
                traceback_text=_format_tb(exc),
            ) from exc
        _set_numbers(values, start, got, ids, scorer.spec, adapter_id)
        if progress:
            progress(k)
    return _check(values, ids, scorer, adapter_id)


def _set_numbers(
    values: np.ndarray, start: int, got: list[Any], ids: Sequence[str], name: str, adapter_id: str
) -> None:
    """``values[start:start + len(got)] = got``, each a number, or the error naming the first that is not."""
    if set(map(type, got)) <= {float, int}:
        try:
            values[start:start + len(got)] = got
            return
        except OverflowError:  # an integer past int64: converted one by one, as Python does
            pass
    for j, v in enumerate(got):
        if type(v) is not float and type(v) is not int:
            _require_number(v, name, ids[start + j], adapter_id)
        values[start + j] = v
