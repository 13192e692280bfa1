"""Options become a :class:`~adaptergate.pipeline.job.GateJob` here, and only here.

Every front end speaks :class:`GateOptions`: the CLI's ``gate`` (its
parameters carry these names), the GitHub Action (its inputs are these names
in kebab case, read generically by :func:`options_from_strings`), a manifest
tenant (its ``gate`` block and adapter entry, under the command line's or the
workflow's options: :meth:`GateOptions.over`) and ``recipes verify`` (the
rejection's settings under the command line's). :func:`build_job` checks
that the options fit together — each misfit one usage line — and builds the
job. A new option is a field here, a parameter of the command and an input of
``action.yml``; nothing else learns its name.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from adaptergate.errors import UsageError
from adaptergate.models import SETTING_NAMES

__all__ = [
    "BOOL_SPELLINGS",
    "GateOptions",
    "JUDGE_OPTIONS",
    "MANIFEST_OVERRIDES",
    "build_job",
    "cli_flag",
    "judge_settings",
    "options_from_strings",
    "parse_bool",
]

Decision = Literal["stat", "threshold"]
EvalMode = Literal["auto", "generate", "teacher-forced"]
Backend = Literal["peft", "vllm", "openai"]
SERVER_OPTIONS = ("server_url", "server_api_key_env", "server_concurrency")


@dataclass(frozen=True)
class GateOptions:
    """Everything a caller may say about one gate. ``None`` means "not given" (the settings
    file, then the built-in default decide), so options can be layered with :meth:`over`."""

    # what is gated
    tenant: str | None = None
    holdout: Path | None = None
    candidate: str | None = None
    baseline: str | None = None
    scorer: str | None = None
    # real adapters
    base_model: str | None = None
    baseline_adapter: Path | None = None
    candidate_adapter: Path | None = None
    metric: str | None = None
    eval_mode: EvalMode | None = None
    max_new_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    chat_template: bool | None = None
    batch_size: int | None = None
    dtype: str | None = None
    device: str | None = None
    quantize: str | None = None
    allow_pickle: bool | None = None
    trust_remote_code: bool | None = None
    base_sha256: str | None = None
    cache_dir: Path | None = None
    # the model backend (adaptergate.backends): PEFT here, vLLM here, or a server the team runs
    backend: Backend | None = None
    server_url: str | None = None
    server_api_key_env: str | None = None
    server_concurrency: int | None = None
    tensor_parallel_size: int | None = None
    parity_sample: int | None = None
    # the judge (metric "judge")
    judge_criteria: Path | list[dict[str, Any]] | None = None
    judge_model: Path | None = None
    judge_url: str | None = None
    judge_name: str | None = None
    judge_api_key_env: str | None = None
    judge_pairwise: bool | None = None
    judge_retries: int | None = None
    judge_reasoning_tokens: int | None = None
    judge_concurrency: int | None = None
    # decision settings (models.SETTING_NAMES)
    decision: Decision | None = None
    alpha: float | None = None
    on_inconclusive: Literal["accept", "reject"] | None = None
    multiplicity: Literal["holm", "bh"] | None = None
    epsilon: float | None = None
    slice_epsilon: float | Literal["off"] | None = None
    """A slice margin, or ``"off"`` (aggregate only); not given: 0.10 under the stat rule, none
    under the threshold rule (:func:`adaptergate.pipeline.settings.with_defaults`)."""
    slice_min_size: int | None = None
    min_holdout_size: int | None = None
    strict: bool | None = None
    pass_threshold: float | None = None
    # the run
    config: Path | None = None
    sample: int | None = None
    sample_seed: str | None = None
    repeats: int | None = None
    require_calibration: bool | None = None
    max_line_bytes: int | None = None
    audit_log: Path | None = None
    replay_path: Path | None = None
    rows_out: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Job fields that no front end sets as an option (approval bands, policy review, labels)."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "extra")

    @classmethod
    def pick(cls, values: dict[str, Any]) -> "GateOptions":
        """The options among ``values`` (a command's parameters), unknown names ignored."""
        known = set(cls.names())
        return cls(**{k: v for k, v in values.items() if k in known})

    def given(self) -> dict[str, Any]:
        """The options that were given (not None, not an empty tuple)."""
        return {n: v for n in self.names() if (v := getattr(self, n)) is not None and v != ()}

    def over(self, base: "GateOptions", only: tuple[str, ...] | None = None) -> "GateOptions":
        """``base`` with the options given here winning (all of them, or those in ``only``)."""
        mine = {k: v for k, v in self.given().items() if only is None or k in only}
        return dataclasses.replace(base, **mine, extra={**base.extra, **self.extra})

    def replace(self, **changes: Any) -> "GateOptions":
        return dataclasses.replace(self, **changes)

    @property
    def judge_given(self) -> list[str]:
        """The judge options given, as option names (``judge-url``)."""
        return [n.replace("_", "-") for n in JUDGE_OPTIONS if getattr(self, n) not in (None, False)]


JUDGE_OPTIONS: tuple[str, ...] = tuple(n for n in GateOptions.names() if n.startswith("judge_"))

MANIFEST_OVERRIDES: tuple[str, ...] = (
    *(n for n in SETTING_NAMES if n not in ("strict", "pass_threshold")),
    "metric", "eval_mode", "max_new_tokens", "batch_size", "dtype", "device", "quantize", "trust_remote_code",
    "backend", *SERVER_OPTIONS, "tensor_parallel_size", "parity_sample", *JUDGE_OPTIONS,
)
"""What a command line or a workflow may set over a manifest tenant's policy (``strict`` and
``pass_threshold`` have approval bands instead; files and adapters are the manifest's)."""


# --------------------------------------------------------------------------
# Strings (Action inputs) -> options
# --------------------------------------------------------------------------


def _kind(annotation: Any) -> tuple[type | None, tuple[str, ...] | None]:
    """(scalar type, Literal choices) of an optional field annotation: ``Literal[...]`` alone is
    (str, choices); a number that also takes words (``float | Literal["off"]``) is (float, choices)."""
    hint = annotation
    args = [a for a in get_args(hint) if a is not type(None)] if get_origin(hint) in (typing.Union, types.UnionType) else [hint]
    choices = tuple(c for a in args if get_origin(a) is Literal for c in get_args(a)) or None
    for a in args:
        if a in (bool, int, float, Path) or (a is str and choices is None):
            return a, choices
        if get_origin(a) is tuple:
            return tuple, choices
    return str, choices


_HINTS = typing.get_type_hints(GateOptions)

BOOL_SPELLINGS: dict[str, bool] = {
    "true": True, "false": False,  # YAML 1.2 (true, True, TRUE: any case here), @actions/core's getBooleanInput
    "yes": True, "no": False, "on": True, "off": False, "1": True, "0": False,  # what 0.5.4 and earlier inputs took
}
"""Every spelling of a switch a front end takes (Action inputs, ``comment``, the settings file),
matched case-insensitively, after surrounding whitespace is stripped."""


def parse_bool(text: str) -> bool | None:
    """The switch ``text`` spells (:data:`BOOL_SPELLINGS`), or None when it is not one. The one
    boolean parser: Action inputs, options given as strings and ``comment: true|false|on-failure``."""
    return BOOL_SPELLINGS.get(text.strip().lower())


def options_from_strings(raw: dict[str, str], *, label: str = "input '{}'",
                         path: Any = None) -> GateOptions:
    """Options from string values keyed by option name (the Action's inputs): empty means not
    given; numbers, booleans (YAML 1.2 spellings), choices and lists (one per line) are
    converted, a bad value is one usage line naming ``label``; ``path(name, value)`` turns a
    path value into a :class:`Path` (the Action confines it to the workspace)."""
    out: dict[str, Any] = {}
    for name in GateOptions.names():
        text = (raw.get(name) or "").strip()
        if not text:
            continue
        kind, choices = _kind(_HINTS[name])
        shown = label.format(name.replace("_", "-"))
        if choices is not None and text.lower() in choices:
            out[name] = text.lower()
        elif choices is not None and kind not in (int, float):
            raise UsageError(f"{shown} must be one of {', '.join(choices)}, got {text!r}")
        elif kind is bool:
            flag = parse_bool(text)
            if flag is None:
                raise UsageError(f"{shown} must be true or false, got {text!r}")
            out[name] = flag
        elif kind in (int, float):
            try:
                out[name] = kind(text)
            except ValueError:
                what = 'a whole number' if kind is int else 'a number'
                if choices:
                    what += " or " + " or ".join(choices)
                raise UsageError(f"{shown} must be {what}, got {text!r}") from None
        elif kind is tuple:
            out[name] = tuple(ln.strip() for ln in text.splitlines() if ln.strip())
        elif kind is Path:
            out[name] = path(name, text) if path is not None else Path(text)
        else:
            out[name] = text
    return GateOptions(**out)


# --------------------------------------------------------------------------
# Options -> job
# --------------------------------------------------------------------------


def judge_settings(o: GateOptions, *, source: str = "gate.judge.criteria") -> Any:
    """The :class:`~adaptergate.metrics.judge.JudgeSettings` the judge options describe."""
    from adaptergate.metrics.judge import JudgeSettings

    given = {n[len("judge_"):]: getattr(o, n) for n in JUDGE_OPTIONS if getattr(o, n) is not None}
    return JudgeSettings.from_options(**given, criteria_source=source)


def cli_flag(name: str) -> str:
    """How a usage error names an option on the command line: ``--base-model``."""
    return f"--{name}"


def build_job(o: GateOptions, *, flag: Any = cli_flag) -> Any:
    """The :class:`~adaptergate.pipeline.job.GateJob` the options describe; options that do not
    fit together are one usage line each, naming them with ``flag`` (``--base-model`` on the
    command line, ``input 'base-model'`` in the Action)."""
    from adaptergate.metrics import metric_info
    from adaptergate.pipeline.job import GateJob
    from adaptergate.scoring.model import ModelInputs

    if o.tenant is None:
        raise UsageError(f"Missing option '{flag('tenant')}'" if flag is cli_flag else f"{flag('tenant')} is required")
    if o.holdout is None:
        raise UsageError(f"Missing option '{flag('holdout')}'" if flag is cli_flag else f"{flag('holdout')} is required")
    judge = None
    if o.metric is not None and metric_info(o.metric).needs_both_answers:  # the judge
        if o.base_model is None:
            raise UsageError(f"{flag('metric')} judge scores generated answers: it needs {flag('base-model')}"
                             " and both adapters")
        judge = judge_settings(o, source=o.extra.get("criteria_source", "(inline)"))
    elif o.judge_given:
        raise UsageError(f"{flag(o.judge_given[0])} goes with {flag('metric')} judge")
    if o.trust_remote_code and o.base_model is None:
        raise UsageError(f"{flag('trust-remote-code')} goes with {flag('base-model')} (or --manifest):"
                         " a scorer loads no model files")
    from adaptergate.backends.base import backend_names

    backend = o.backend or "peft"
    if backend not in backend_names():
        raise UsageError(f"{flag('backend')} must be one of {', '.join(backend_names())}, got {backend!r}")
    if o.base_model is None:
        for name in ("backend", *SERVER_OPTIONS, "tensor_parallel_size", "parity_sample"):
            if getattr(o, name) is not None and not (name == "backend" and backend == "peft"):
                raise UsageError(f"{flag(name.replace('_', '-'))} goes with {flag('base-model')} (or --manifest):"
                                 " a scorer uses no model backend")
    elif backend == "openai":
        if not o.server_url:
            raise UsageError(f"{flag('backend')} openai needs {flag('server-url')} (an OpenAI-compatible server)")
    else:
        given = [n for n in SERVER_OPTIONS if getattr(o, n) is not None]
        if given:
            raise UsageError(f"{flag(given[0].replace('_', '-'))} goes with {flag('backend')} openai")
    if o.tensor_parallel_size is not None and o.tensor_parallel_size > 1 and backend != "vllm":
        raise UsageError(f"{flag('tensor-parallel-size')} goes with {flag('backend')} vllm")
    if o.parity_sample is not None and backend == "peft":
        raise UsageError(f"{flag('parity-sample')} compares a serving backend with PEFT: it goes with"
                         f" {flag('backend')} vllm or openai")
    model = None
    if o.base_model is not None:
        if o.baseline_adapter is None or o.candidate_adapter is None:
            raise UsageError(f"{flag('base-model')} needs {flag('baseline-adapter')} and {flag('candidate-adapter')}")
        model = ModelInputs(
            base_model=o.base_model, baseline_adapter=o.baseline_adapter, candidate_adapter=o.candidate_adapter,
            metric=o.metric or "exact", mode=o.eval_mode or "auto", max_new_tokens=o.max_new_tokens,
            stop=tuple(o.stop or ()), chat_template=bool(o.chat_template), batch_size=o.batch_size or 16,
            dtype=o.dtype, device=o.device, quantize=o.quantize, allow_pickle=bool(o.allow_pickle),
            base_sha256=o.base_sha256, cache_dir=o.cache_dir, judge=judge,
            trust_remote_code=bool(o.trust_remote_code), backend=backend,
            server_url=o.server_url, server_api_key_env=o.server_api_key_env,
            server_concurrency=o.server_concurrency, tensor_parallel_size=o.tensor_parallel_size,
            parity_sample=o.parity_sample,
        )
    job_fields = {f.name for f in dataclasses.fields(GateJob)}
    extra = {k: v for k, v in o.extra.items() if k in job_fields}
    return GateJob(
        tenant=o.tenant, holdout_path=o.holdout, candidate=o.candidate, baseline=o.baseline,
        scorer_spec=o.scorer, model=model,
        settings={name: getattr(o, name) for name in SETTING_NAMES},
        config_path=o.config,
        require_calibration=True if o.require_calibration is None else o.require_calibration,
        sample=o.sample, sample_seed=o.sample_seed, repeats=o.repeats or 1,
        **({"max_line_bytes": o.max_line_bytes} if o.max_line_bytes is not None else {}),
        audit_log=o.audit_log, replay_path=o.replay_path, rows_out=o.rows_out, **extra,
    )
