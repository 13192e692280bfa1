"""The action's inputs: ``INPUT_*`` variables, typed, and the gate job they describe.

The runner passes input ``name`` as ``INPUT_<NAME>`` (upper-cased, only spaces
replaced, so ``base-model`` is ``INPUT_BASE-MODEL``). In a pull request the
policy the gate judges by is read from the trusted side: :class:`TrustedInputs`
confines paths to the workspace and reads the policy files (holdout, settings
file, judge criteria, baseline adapter, base model, judge model) as the base
commit has them; :func:`trusted_code` imports the workflow-named code modules
(scorer, metric) alone and from the base commit. Every difference is a policy
change the report shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergate.action.context import RunnerContext
from adaptergate.errors import UsageError

__all__ = [
    "INPUT_NAMES", "Built", "Inputs", "TrustedInputs", "base_tree", "build_job", "env_name", "input_flag",
    "trusted_code",
]

INPUT_NAMES: tuple[str, ...] = (
    "tenant", "holdout",
    "scorer", "candidate", "baseline",
    "base-model", "baseline-adapter", "candidate-adapter", "metric", "eval-mode",
    "max-new-tokens", "batch-size", "stop", "chat-template",
    "dtype", "device", "quantize", "base-sha256", "allow-pickle", "cache-dir",
    "epsilon", "slice-epsilon", "slice-min-size", "min-holdout-size", "decision", "alpha",
    "on-inconclusive", "multiplicity", "repeats", "strict", "pass-threshold",
    "config", "sample", "sample-seed",
    "audit-log", "replay-path", "report-dir", "show-failures",
    "github-token", "comment", "check-run", "check-name",
    "manifest", "base-ref", "recipes",
    "judge-criteria", "judge-model", "judge-url", "judge-name", "judge-api-key-env", "judge-pairwise",
    "judge-retries",
    "backend", "server-url", "server-api-key-env", "server-concurrency", "tensor-parallel-size", "parity-sample",
)
"""Every input action.yml declares (tests hold the two lists equal)."""


def env_name(name: str) -> str:
    """The variable the runner sets for input ``name`` (hyphens kept)."""
    return "INPUT_" + name.replace(" ", "_").upper()


class Inputs:
    """Typed access to ``INPUT_*`` values; a bad value is one usage line naming the input."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str:
        assert name in INPUT_NAMES, name
        return self._env.get(env_name(name), "")

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name).strip()
        return value if value else default

    def required(self, name: str) -> str:
        value = self.str(name)
        if value is None:
            raise UsageError(f"input '{name}' is required")
        return value

    def lines(self, name: str) -> list[str]:
        return [ln.strip() for ln in self.raw(name).splitlines() if ln.strip()]

    def _convert(self, name: str, kind: Callable[[str], Any], what: str) -> Any:
        value = self.str(name)
        if value is None:
            return None
        try:
            return kind(value)
        except ValueError:
            raise UsageError(f"input '{name}' must be {what}, got {value!r}") from None

    def float(self, name: str) -> float | None:
        return self._convert(name, float, "a number")

    def int(self, name: str) -> int | None:
        return self._convert(name, int, "a whole number")

    def bool(self, name: str, default: bool | None = None) -> bool | None:
        """A switch: ``true``/``false`` in any case (YAML 1.2, as ``@actions/core``'s
        ``getBooleanInput`` takes them), and ``on``/``off``, ``yes``/``no``, ``1``/``0``
        (:func:`~adaptergate.pipeline.options.parse_bool`, the one parser)."""
        from adaptergate.pipeline.options import parse_bool

        value = self.str(name)
        if value is None:
            return default
        flag = parse_bool(value)
        if flag is None:
            raise UsageError(f"input '{name}' must be true or false, got {value!r}")
        return flag

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        """One of ``choices``. A switch with more choices (``on``, ``off`` among them, like
        ``comment``'s ``on``/``off``/``on-failure``) also takes every spelling of true and
        false (:meth:`bool`): ``true`` is ``on``, ``false`` is ``off``."""
        from adaptergate.pipeline.options import parse_bool

        value = self.str(name)
        if value is None:
            return default
        low = value.lower()
        if low in choices:
            return low
        switch = "on" in choices and "off" in choices
        flag = parse_bool(value) if switch else None
        if flag is not None:
            return "on" if flag else "off"
        if switch:
            others = [c for c in choices if c not in ("on", "off")]
            raise UsageError(f"input '{name}' must be true, false{''.join(f' or {c}' for c in others)}"
                             f" (on and off work too), got {value!r}")
        raise UsageError(f"input '{name}' must be one of {', '.join(choices)}, got {value!r}")



@dataclass
class Built:
    """A gate job and what the trusted side said about its inputs."""

    job: Any
    holdout_changed: bool = False
    """The holdout was read from the base commit: its lines are not the checkout's."""


def base_tree(ctx: RunnerContext, inputs: Inputs):
    """The pull request's base commit (policy files are read from it); inactive outside a PR."""
    from adaptergate.trust import BaseTree

    commit = inputs.str("base-ref") or ctx.base_sha
    if commit is None:
        return BaseTree(root=ctx.workspace.resolve(), commit=None)
    return BaseTree.open(ctx.workspace, commit)


def _metric_module(spec: str | None) -> str | None:
    """The module of a ``module:function`` metric (None for a built-in or the judge)."""
    if not spec:
        return None
    from adaptergate.metrics.base import JUDGE
    from adaptergate.metrics.builtin import BUILTINS
    from adaptergate.metrics.spec import parse_metric

    name = parse_metric(spec).name
    return None if name in BUILTINS or name == JUDGE else name.split(":", 1)[0]


def trusted_code(inputs: Inputs, tree: Any) -> list[Any]:
    """Restrict imports to the modules the workflow names (inputs scorer and metric), each
    from a directory that holds only it, as the base commit has it. Returns the changes the
    pull request made to them (the gate used the base versions)."""
    from adaptergate.scoring.scorers import CodePolicy, restrict_code

    roots: dict[str, Path | None] = {}
    changes = []
    scorer = inputs.str("scorer")
    modules = [("scorer", scorer.split(":", 1)[0] if scorer and ":" in scorer else None),
               ("metric", _metric_module(inputs.str("metric")))]
    for what, module in modules:
        if module is None:
            continue
        root, change = tree.pin_module(module, f"{what} module")
        roots[module.split(".", 1)[0]] = root
        if change is not None:
            changes.append(change)
    restrict_code(CodePolicy(roots=roots))
    return changes


class TrustedInputs:
    """The gate options the inputs give: paths confined to the workspace, and the policy files
    among them as the base commit has them (:class:`~adaptergate.trust.BaseTree`), each
    difference collected in ``changes`` (the workflow-named code modules' first)."""

    PINNED_FILES = {"holdout": "holdout", "config": "settings file", "judge_criteria": "judge criteria"}
    PINNED_DIRS = {"baseline_adapter": "baseline adapter", "judge_model": "judge model", "base_model": "base model"}

    def __init__(self, ctx: RunnerContext, inputs: Inputs, tree: Any) -> None:
        self.ctx, self.inputs, self.tree = ctx, inputs, tree
        self.changes = trusted_code(inputs, tree)
        self.holdout_changed = False

    def options(self, names: tuple[str, ...] | None = None) -> Any:
        """:class:`~adaptergate.pipeline.options.GateOptions` from the inputs (``names``: only those)."""
        from adaptergate.pipeline.options import GateOptions, options_from_strings

        wanted = [n for n in GateOptions.names() if n.replace("_", "-") in INPUT_NAMES
                  and (names is None or n in names)]
        raw = {n: self.inputs.raw(n.replace("_", "-")) for n in wanted}
        opts = options_from_strings(raw, path=lambda name, value: self.ctx.path(value, name.replace("_", "-")))
        base_model = opts.base_model
        if base_model is not None and self.ctx.resolve(base_model).exists():
            opts = opts.replace(base_model=str(self.pin(self.ctx.path(base_model, "base-model"), "base_model")))
        pinned = {name: self.pin(getattr(opts, name), name)
                  for name in (*self.PINNED_FILES, *self.PINNED_DIRS)
                  if name != "base_model" and isinstance(getattr(opts, name), Path)}
        if opts.cache_dir is not None:
            self.tree.refuse_tracked(opts.cache_dir, "input 'cache-dir'")
        return opts.replace(**pinned)

    def pin(self, path: Path, name: str) -> Path:
        """``path`` as the base commit has it (a copy where the pull request changed it)."""
        directory = name in self.PINNED_DIRS
        what = self.PINNED_DIRS.get(name) or self.PINNED_FILES[name]
        pin = self.tree.pin_dir(path, what) if directory else self.tree.pin_file(path, what)
        if pin.change is not None:
            self.changes.append(pin.change)
            self.holdout_changed = self.holdout_changed or name == "holdout"
        return pin.path


def input_flag(name: str) -> str:
    """How a usage error names an option in the Action: ``input 'base-model'``."""
    return f"input '{name}'"


def build_job(ctx: RunnerContext, inputs: Inputs, tree: Any = None) -> Built:
    """The gate job the inputs describe (paths confined to the workspace; in a pull request the
    holdout, settings file, baseline adapter, base model, judge criteria and judge model as the
    base commit has them, every difference a policy change the report shows)."""
    from adaptergate.models import PolicyReview
    from adaptergate.pipeline.options import build_job as job_from

    if tree is None:
        tree = base_tree(ctx, inputs)
    reader = TrustedInputs(ctx, inputs, tree)
    inputs.required("tenant")
    holdout_here = ctx.path(inputs.required("holdout"), "holdout")
    opts = reader.options()
    review = PolicyReview(source=tree.label, changes=reader.changes) if tree.active else None
    opts = opts.replace(extra={"policy": review,
                               **({"holdout_label": str(holdout_here)} if reader.holdout_changed else {})})
    return Built(job=job_from(opts, flag=input_flag), holdout_changed=reader.holdout_changed)
