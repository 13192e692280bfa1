"""adaptergate: gate per-tenant LoRA adapter promotion on held-out queries.

The public Python API is what ``__all__`` lists; everything else is
implementation, organised by stage (``holdout`` → ``scoring`` (``backends``,
``metrics``) → ``decide`` → ``report`` → ``publish``, with ``pipeline``
wiring a job through them)::

    import adaptergate

    decision = adaptergate.run_gate(
        tenant="acme", holdout="holdouts/acme.jsonl",
        candidate="v19", baseline="v18", scorer="my_scorer:score",
        slice_epsilon=0.10,
    )
    if not decision.accepted:
        print(decision.reason, decision.driver_slice_tag, decision.rejected_by)

``run_gate`` takes the command line's options by name (``base_model=``,
``baseline_adapter=``, ``backend=``, ``epsilon=`` …: the fields of
:class:`GateOptions`), or a :class:`GateJob` built with :func:`build_job`.
Errors are :class:`AdaptergateError` subclasses; :func:`exit_code_for` maps
any exception to the CLI's exit code.

``import adaptergate`` stays light: names are imported on first use, and the
ML stack (torch, transformers, peft, vLLM) only by the backend that scores a
gate.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "1.0.0.dev0"

_LAZY: dict[str, str] = {
    # the job and its result
    "GateJob": "adaptergate.pipeline.job",
    "GateOptions": "adaptergate.pipeline.options",
    "build_job": "adaptergate.pipeline.options",
    "GateDecision": "adaptergate.models",
    "GateConfig": "adaptergate.models",
    "Rejection": "adaptergate.models",
    # holdouts
    "load_holdout": "adaptergate.holdout.store",
    # seams
    "register_backend": "adaptergate.backends.base",
    "register_publisher": "adaptergate.publish.base",
    "register_metric": "adaptergate.metrics.base",
    # errors and exit codes
    "AdaptergateError": "adaptergate.errors",
    "InvalidInputError": "adaptergate.errors",
    "UsageError": "adaptergate.errors",
    "HoldoutError": "adaptergate.errors",
    "EvaluationError": "adaptergate.errors",
    "ScorerError": "adaptergate.errors",
    "StorageError": "adaptergate.errors",
    "ExitCode": "adaptergate.errors",
    "exit_code_for": "adaptergate.errors",
}

__all__ = ["__version__", "run_gate", *_LAZY]

def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adaptergate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def run_gate(job: Any = None, /, *, progress: Any = None, **options: Any) -> Any:
    """Run one gate and return its :class:`GateDecision` (``accepted``, ``reason``,
    ``rejected_by``, the driver slice, per-query rows …).

    ``job``: a :class:`GateJob` or :class:`GateOptions`; or none, and the options as keywords
    (paths may be strings). ``progress``: called with the number of rows evaluated so far's
    increments while a model scores. Nothing is printed or posted; the audit log and replay
    buffer are written when the options name them, as on the command line.
    """
    from pathlib import Path

    from adaptergate.pipeline.job import GateJob, run_job
    from adaptergate.pipeline.options import GateOptions, build_job

    if job is not None and options:
        raise TypeError("run_gate takes a job or options, not both")
    if isinstance(job, GateJob):
        return run_job(job, progress=progress)
    if job is None:
        hints = {f: t for f, t in GateOptions.__annotations__.items()}
        unknown = sorted(set(options) - set(GateOptions.names()))
        if unknown:
            raise TypeError(f"run_gate got unknown options: {', '.join(unknown)}")
        for key, value in list(options.items()):
            if isinstance(value, str) and "Path" in str(hints.get(key, "")):
                options[key] = Path(value)
            elif key == "stop" and isinstance(value, list):
                options[key] = tuple(value)
        job = GateOptions(**options)
    if not isinstance(job, GateOptions):
        raise TypeError(f"run_gate takes a GateJob or GateOptions, got {type(job).__name__}")
    return run_job(build_job(job), progress=progress)
