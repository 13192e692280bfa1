"""The GitHub Action's runtime: the runner's contract in, a gate job, the verdict out.

The runner starts the container with the action's inputs as ``INPUT_<NAME>``
variables (the name upper-cased, only spaces replaced, so ``base-model`` is
``INPUT_BASE-MODEL``), the workspace mounted at ``GITHUB_WORKSPACE``, the
triggering event at ``GITHUB_EVENT_PATH`` and two files to append to:
``GITHUB_OUTPUT`` (step outputs) and ``GITHUB_STEP_SUMMARY`` (the job page).

:func:`main` parses the inputs into a :class:`~adaptergate.pipeline.job.GateJob`,
runs it, writes the reports, the outputs, the step summary and up to ten
log annotations on the failing queries' lines, then publishes the sticky
pull-request comment and the check run. The exit code is the verdict's
(0 accepted, 1 rejected, 2 invalid input, 3 evaluation failed) whatever
happens while publishing: a GitHub outage never turns a rejection into a
success, nor the reverse.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from adaptergate.errors import AdaptergateError, ExitCode, UsageError, exit_code_for
from adaptergate.trust import inert, register_secret, scrub

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "RunnerContext", "env_name", "main"]

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
)
"""Every input action.yml declares (tests hold the two lists equal)."""

OUTPUT_NAMES: tuple[str, ...] = (
    "decision", "verdict", "delta", "driver-slice", "report-path", "comment-url", "check-run-url",
    "exit-code", "approval", "tenants",
)

STEP_SUMMARY_LIMIT = 1024 * 1024
"""GitHub refuses a step summary over 1 MiB (the whole job's summaries are dropped)."""

LOG_ANNOTATIONS = 10
"""The runner shows at most 10 error annotations per step; more are dropped."""

CHECK_ANNOTATIONS_MAX = 500
"""Failing queries annotated on the check run (10 requests of 50)."""

_log = logging.getLogger("adaptergate.action.runtime")


def env_name(name: str) -> str:
    """The variable the runner sets for input ``name`` (hyphens kept)."""
    return "INPUT_" + name.replace(" ", "_").upper()


# --------------------------------------------------------------------------
# The runner's contract
# --------------------------------------------------------------------------


@dataclass
class RunnerContext:
    """What the runner tells a container action, read once from the environment."""

    env: Mapping[str, str]
    workspace: Path
    event_name: str = ""
    event: dict[str, Any] = field(default_factory=dict)
    repository: str | None = None
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    sha: str | None = None
    run_id: str | None = None
    output_file: Path | None = None
    summary_file: Path | None = None
    debug: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RunnerContext":
        import json

        workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
        event: dict[str, Any] = {}
        path = env.get("GITHUB_EVENT_PATH")
        if path:
            try:
                loaded = json.loads(Path(path).read_text(encoding="utf-8"))
                event = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError) as exc:
                _log.warning("cannot read the event file %s: %s", path, exc)
        return cls(
            env=env,
            workspace=workspace,
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event=event,
            repository=env.get("GITHUB_REPOSITORY") or None,
            api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
            server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            sha=env.get("GITHUB_SHA") or None,
            run_id=env.get("GITHUB_RUN_ID") or None,
            output_file=Path(env["GITHUB_OUTPUT"]) if env.get("GITHUB_OUTPUT") else None,
            summary_file=Path(env["GITHUB_STEP_SUMMARY"]) if env.get("GITHUB_STEP_SUMMARY") else None,
            debug=env.get("RUNNER_DEBUG") == "1" or env.get("ADAPTERGATE_DEBUG", "") not in ("", "0"),
        )

    @property
    def pull_request(self) -> dict[str, Any] | None:
        pr = self.event.get("pull_request")
        return pr if isinstance(pr, dict) and isinstance(pr.get("number"), int) else None

    @property
    def head_sha(self) -> str | None:
        """The commit a check run belongs on: the PR head (GITHUB_SHA is the merge commit)."""
        pr = self.pull_request
        if pr is not None:
            sha = (pr.get("head") or {}).get("sha")
            if isinstance(sha, str) and sha:
                return sha
        return self.sha

    @property
    def base_sha(self) -> str | None:
        """The pull request's base commit (what a manifest change is compared with)."""
        pr = self.pull_request
        sha = ((pr or {}).get("base") or {}).get("sha")
        return sha if isinstance(sha, str) and sha else None

    @property
    def from_fork(self) -> bool:
        """A pull request whose head lives in another repository: its token is read-only."""
        pr = self.pull_request
        if pr is None:
            return False
        head_repo = (pr.get("head") or {}).get("repo")
        if not isinstance(head_repo, dict):
            return True  # the fork was deleted
        base = (
            ((pr.get("base") or {}).get("repo") or {}).get("full_name")
            or (self.event.get("repository") or {}).get("full_name")
            or self.repository
        )
        return head_repo.get("full_name") != base

    @property
    def run_url(self) -> str | None:
        if not (self.repository and self.run_id):
            return None
        return f"{self.server_url}/{quote(self.repository)}/actions/runs/{quote(self.run_id)}"

    def resolve(self, value: str) -> Path:
        """A path input: absolute as given, else relative to the workspace."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.workspace / p

    def path(self, value: str, what: str) -> Path:
        """A path input, confined: one that names a place inside the workspace must stay there
        once resolved (a symlink committed in the pull request cannot lead elsewhere); one the
        workflow points outside the workspace is the workflow's own location."""
        from adaptergate.trust import confine

        p = self.resolve(value)
        ws = self.workspace.resolve()
        lexical = Path(os.path.normpath(p))
        if lexical == ws or lexical.is_relative_to(ws) or lexical.is_relative_to(self.workspace):
            return confine(p, ws, f"input '{what}'")
        return p

    def relative(self, path: Path) -> str:
        """``path`` as the repository sees it (relative to the workspace when inside it)."""
        try:
            return path.resolve().relative_to(self.workspace.resolve()).as_posix()
        except ValueError:
            return path.as_posix()


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


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
        value = self.str(name)
        if value is None:
            return default
        low = value.lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise UsageError(f"input '{name}' must be true or false, got {value!r}")

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.str(name)
        if value is None:
            return default
        if value.lower() not in choices:
            raise UsageError(f"input '{name}' must be one of {', '.join(choices)}, got {value!r}")
        return value.lower()


@dataclass(frozen=True)
class PublishSettings:
    token: str | None
    comment: str  # on | off | on-failure
    check_run: bool
    check_name: str
    """A name, or a template with ``{tenant}``."""
    report_dir: Path
    show_failures: int
    recipes: Path | None = None
    """Recipe library: a rejected tenant's report ends with the recipes that fit."""

    def check_name_for(self, tenant: str) -> str:
        return self.check_name.replace("{tenant}", tenant)


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
    from adaptergate.metrics.core import BUILTINS, JUDGE, parse_metric

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


def publish_settings(ctx: RunnerContext, inputs: Inputs) -> PublishSettings:
    show = inputs.int("show-failures")
    return PublishSettings(
        token=inputs.str("github-token"),
        comment=inputs.choice("comment", ("on", "off", "on-failure"), "on") or "on",
        check_run=bool(inputs.bool("check-run", True)),
        check_name=inputs.str("check-name") or "adaptergate / {tenant}",
        report_dir=ctx.path(inputs.str("report-dir", "adaptergate-report") or "adaptergate-report", "report-dir"),
        show_failures=5 if show is None else max(0, show),
        recipes=_recipes_path(ctx, inputs),
    )


def _recipes_path(ctx: RunnerContext, inputs: Inputs) -> Path | None:
    value = inputs.str("recipes")
    if value is None:
        return None
    path = ctx.path(value, "recipes")
    if not path.is_file():
        raise UsageError(f"input 'recipes': {value} is not a file (create one with 'adaptergate recipes seed')")
    return path


# --------------------------------------------------------------------------
# Workflow commands and files
# --------------------------------------------------------------------------


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: Any) -> str:
    """One workflow command line (``::error file=…,line=…::message``), escaped and inert:
    control characters (ANSI, OSC, bidi overrides) are shown, never obeyed, and a newline
    cannot end the command and start another."""
    props = ",".join(
        f"{k}={_escape_property(inert(str(v)))}" for k, v in properties.items() if v is not None and v != ""
    )
    return f"::{name}{' ' + props if props else ''}::{_escape_data(inert(message, keep_newlines=True))}"


class Log:
    """The step log. User text is printed between ``::stop-commands::`` markers so a
    query that reads ``::add-mask::`` or ``::error::`` is shown, not obeyed; its control
    characters are made visible; registered secrets never appear (:func:`scrub`)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def line(self, text: str = "") -> None:
        self.stream.write(scrub(text) + "\n")
        self.stream.flush()

    def cmd(self, name: str, message: str = "", **properties: Any) -> None:
        self.line(command(name, message, **properties))

    def mask(self, secret: str | None) -> None:
        """Register a secret: the runner masks it in the log, :func:`scrub` everywhere else."""
        if secret and secret.strip():
            self.stream.write(command("add-mask", secret.strip()) + "\n")
            register_secret(secret)

    def untrusted(self, text: str) -> None:
        token = secrets.token_hex(16)
        self.line(f"::stop-commands::{token}")
        text = scrub(inert(text, keep_newlines=True))
        self.stream.write(text if text.endswith("\n") else text + "\n")
        self.line(f"::{token}::")


def _delimiter(value: str) -> str:
    while True:
        d = f"ghadelimiter_{secrets.token_hex(12)}"
        if d not in value:
            return d


def write_outputs(path: Path | None, values: Mapping[str, str], log: Log) -> None:
    """Append step outputs in the delimiter form (safe for any value, multi-line included)."""
    if path is None:
        log.line("(GITHUB_OUTPUT is not set: outputs not written)")
        return
    with path.open("a", encoding="utf-8") as f:
        for name, value in values.items():
            assert name in OUTPUT_NAMES, name
            d = _delimiter(value)
            f.write(f"{name}<<{d}\n{value}\n{d}\n")


def cap_utf8(text: str, limit: int, pointer: str) -> str:
    """``text`` within ``limit`` UTF-8 bytes, cut at a line with ``pointer`` appended."""
    from adaptergate.publish.github import truncate_markdown

    if len(text.encode("utf-8")) <= limit:
        return text
    # characters <= bytes: shrink the character budget until the bytes fit
    budget = limit
    while True:
        out = truncate_markdown(text, budget, pointer)
        size = len(out.encode("utf-8"))
        if size <= limit:
            return out
        budget -= max(1, (size - limit))


def write_summary(path: Path | None, text: str, log: Log) -> None:
    if path is None:
        return
    pointer = "_… the report is longer than GitHub's 1 MiB step-summary limit: the full report is" \
              " `report.md` in the report directory (upload it as an artifact)._"
    with path.open("a", encoding="utf-8") as f:
        f.write(cap_utf8(scrub(text), STEP_SUMMARY_LIMIT - 1024, pointer))
        f.write("\n")


# --------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------


def _failures(decision: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """Regressed queries with their message, most important first: the driver's worst, then by drop.

    Messages are made as they are taken (a caller wants 10 or 500 of maybe 100,000)."""
    driver = decision.driver_slice
    in_driver = {str(q) for q in driver.regressed_query_ids} if driver is not None else set()
    rows = [r for r in decision.per_query if r["delta"] < 0]
    rows.sort(key=lambda r: (str(r["query_id"]) not in in_driver, r["delta"]))
    for row in rows:
        msg = (
            f"query {row['query_id']} regressed: score {row['score_baseline']:.3f} → "
            f"{row['score_candidate']:.3f}"
        )
        if driver is not None and str(row["query_id"]) in in_driver:
            msg += f" (driver slice {driver.slice_tag})"
        b, c = row.get("baseline_output"), row.get("candidate_output")
        if b is not None or c is not None:
            msg += f"; baseline answered {str(b)[:200]!r}, candidate {str(c)[:200]!r}"
        yield row, msg


def log_annotations(decision: Any, holdout_rel: str | None, log: Log, limit: int = LOG_ANNOTATIONS) -> int:
    """``::error``/``::warning`` lines on the failing queries' lines of the holdout file
    (``holdout_rel`` None: not on lines, which are not the checkout's)."""
    level = "error" if not decision.accepted else "warning"
    shown = list(itertools.islice(_failures(decision), limit))
    for row, message in shown:
        log.cmd(level, message, file=holdout_rel, line=row.get("line") if holdout_rel else None,
                title=f"adaptergate / {decision.tenant_id}")
    return len(shown)


def check_annotations(
    decision: Any, holdout_rel: str | None, limit: int = CHECK_ANNOTATIONS_MAX,
) -> list[dict[str, Any]]:
    if holdout_rel is None:
        return []
    level = "failure" if not decision.accepted else "warning"
    out = []
    for row, message in _failures(decision):
        line = row.get("line")
        if not isinstance(line, int) or line < 1:
            continue
        ann: dict[str, Any] = {
            "path": holdout_rel, "start_line": line, "end_line": line, "annotation_level": level,
            "title": inert(f"Regressed query {row['query_id']}")[:255],
            "message": scrub(inert(message, keep_newlines=True))[:64_000],
        }
        b, c = row.get("baseline_output"), row.get("candidate_output")
        if b is not None or c is not None:
            ann["raw_details"] = scrub(inert(f"baseline:  {b}\ncandidate: {c}", keep_newlines=True))[:64_000]
        out.append(ann)
        if len(out) == limit:
            break
    return out


# --------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------


def check_conclusion(decision: Any) -> str:
    """success / failure; neutral when INCONCLUSIVE was accepted by policy; action_required
    when a passing candidate needs a human review (approval bands, or a pull request that
    changes its own gate policy)."""
    if not decision.accepted:
        return "failure"
    if decision.approval == "review":
        return "action_required"
    return "neutral" if decision.verdict == "INCONCLUSIVE" else "success"


def check_title(decision: Any) -> str:
    if decision.accepted and decision.approval == "review":
        policy = decision.policy
        why = "this pull request changes its own gate policy" if policy is not None and policy.needs_review \
            else "the score is between the floor and the auto-approve threshold"
        return inert(f"NEEDS REVIEW: {why} (Δ={decision.delta:+.3f} over {decision.holdout_size} queries)")[:255]
    head = "ACCEPTED" if decision.accepted else "REJECTED"
    if decision.verdict and decision.verdict not in ("ACCEPTED", "REJECTED"):
        head += f" · {decision.verdict}"
    title = f"{head}: Δ={decision.delta:+.3f} over {decision.holdout_size} queries"
    driver = decision.driver_slice
    if driver is not None and not decision.accepted:
        title += f", driver {driver.slice_tag}"
    return inert(title)[:255]


def _pointer(ctx: RunnerContext, where: str) -> str:
    link = f" ([workflow run]({ctx.run_url}))" if ctx.run_url else ""
    return f"_… {where} is cut here to fit GitHub's size limit: the full report is in the job's step summary{link}._"


def write_reports(
    decision: Any, directory: Path, show_failures: int, recommendations: list[dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """report.json (the whole decision, per-query rows included), report.md and junit.xml.

    Written atomically, without lock files: the directory belongs to this run.
    ``adaptergate review --decision report.json --query ID`` reads it back.
    """
    from adaptergate.report.render import render
    from adaptergate.storage import atomic_write

    files = {
        "json": directory / "report.json",
        "markdown": directory / "report.md",
        "junit": directory / "junit.xml",
    }
    contents = {
        "json": decision.to_json_bytes(indent=2) + b"\n",
        "markdown": render(decision, "markdown", show_failures=show_failures,
                           recommendations=recommendations).encode("utf-8"),
        "junit": render(decision, "junit", show_failures=show_failures).encode("utf-8"),
    }
    for key, path in files.items():
        atomic_write(path, [scrub(contents[key].decode("utf-8")).encode("utf-8")], locked=True)
    return files


# --------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------


@dataclass
class Published:
    comment_url: str = ""
    check_run_url: str = ""


def _publisher(ctx: RunnerContext, token: str):
    from adaptergate.publish.github import GitHubPublisher

    env = ctx.env
    return GitHubPublisher(
        token=token, repository=ctx.repository or "", api_url=ctx.api_url,
        retries=int(env.get("ADAPTERGATE_GITHUB_RETRIES", "5")),
        backoff=float(env.get("ADAPTERGATE_GITHUB_BACKOFF", "1.0")),
        secondary_rate_wait=float(env.get("ADAPTERGATE_GITHUB_SECONDARY_WAIT", "60")),
        spacing=env.get("ADAPTERGATE_GITHUB_SPACING") != "0",
    )


def _can_publish(ctx: RunnerContext, settings: PublishSettings, log: Log) -> bool:
    if not settings.token:
        log.line("No github-token: the report is in the step summary and the outputs only.")
        return False
    if not ctx.repository:
        log.line("GITHUB_REPOSITORY is not set: nothing is posted to GitHub.")
        return False
    # pull_request_target runs with a write token even for forks (the user chose it).
    if ctx.from_fork and ctx.event_name != "pull_request_target":
        log.cmd(
            "notice",
            "Pull request from a fork: its token is read-only, so no comment or check run is posted."
            " The verdict is this job's exit code; the report is in the step summary.",
        )
        return False
    return True


def _warn_publish(log: Log, what: str, exc: Any) -> None:
    hint = ""
    if getattr(exc, "read_only", False):
        hint = (
            " (the token may not write here: grant the job `permissions: pull-requests: write,"
            " checks: write`; pull requests from forks get a read-only token)"
        )
    log.cmd("warning", f"could not {what}: {exc.message}{hint}. The verdict stands (exit code).")


def _post_comment(
    ctx: RunnerContext, publisher: Any, log: Log, body: str, *, marker: str, create: bool,
) -> str:
    """Create or update the sticky comment (cut to GitHub's limit); its URL, or '' (warned)."""
    from adaptergate.publish.github import COMMENT_BODY_LIMIT, PublishError, truncate_markdown

    pr = ctx.pull_request
    assert pr is not None
    body = truncate_markdown(scrub(body), COMMENT_BODY_LIMIT - 100, _pointer(ctx, "This comment"))
    try:
        result = publisher.upsert_comment(pr["number"], body, marker=marker, create=create)
    except PublishError as exc:
        _warn_publish(log, "post the pull-request comment", exc)
        return ""
    if result is None:
        return ""
    log.line(f"Pull-request comment {result.action}: {result.url}")
    return result.url


def _post_check(
    ctx: RunnerContext, publisher: Any, log: Log, *, name: str, conclusion: str, title: str, summary: str,
    annotations: list[dict[str, Any]], external_id: str, run: Any = None,
) -> tuple[str, Any]:
    """Complete a check run on the head commit (summary cut to GitHub's limit).

    Returns its URL ('' when posting failed, warned) and the PublishError, if any.
    """
    from adaptergate.publish.github import CHECK_TEXT_LIMIT, PublishError, truncate_markdown

    summary = truncate_markdown(scrub(summary), CHECK_TEXT_LIMIT - 100, _pointer(ctx, "This summary"))
    try:
        result = publisher.finish_check_run(
            name=name, head_sha=ctx.head_sha, conclusion=conclusion, title=scrub(inert(title))[:255], summary=summary,
            annotations=annotations, run=run, details_url=ctx.run_url, external_id=external_id,
        )
    except PublishError as exc:
        _warn_publish(log, f"complete the check run {name!r}", exc)
        return "", exc
    log.line(f"Check run {name!r}: {conclusion} ({result.url})")
    return result.url, None


def publish_decision(
    ctx: RunnerContext, settings: PublishSettings, decision: Any, holdout_rel: str, log: Log,
    check_run: Any = None, publisher: Any = None, recommendations: list[dict[str, Any]] | None = None,
) -> Published:
    from adaptergate.report.render import render, report_marker

    out = Published()
    if publisher is None:
        return out
    links = {"run": ctx.run_url} if ctx.run_url else None
    if ctx.pull_request is not None and settings.comment != "off":
        body = render(decision, "pr-comment", show_failures=settings.show_failures, target="pr-comment",
                      links=links, recommendations=recommendations)
        out.comment_url = _post_comment(
            ctx, publisher, log, body, marker=report_marker(decision.tenant_id),
            create=settings.comment == "on" or not decision.accepted,
        )
    if settings.check_run and ctx.head_sha:
        conclusion = check_conclusion(decision)
        if conclusion == "action_required" and not ctx.run_url:
            conclusion = "neutral"  # GitHub wants a details_url with action_required
        out.check_run_url, _ = _post_check(
            ctx, publisher, log, name=settings.check_name_for(decision.tenant_id),
            conclusion=conclusion, title=check_title(decision),
            summary=render(decision, "markdown", show_failures=settings.show_failures, target="check-run",
                           links=links, recommendations=recommendations),
            annotations=check_annotations(decision, holdout_rel), external_id=decision.tenant_id, run=check_run,
        )
    return out


def _start_publishing(
    ctx: RunnerContext, settings: PublishSettings, tenant: str | None, log: Log
) -> tuple[Any, Any]:
    """The publisher and an in-progress check run; (None, None) when nothing can be posted.

    Never raises: publishing problems are warnings, the gate runs regardless.
    """
    from adaptergate.publish.github import PublishError

    if not _can_publish(ctx, settings, log):
        return None, None
    try:
        publisher = _publisher(ctx, settings.token or "")
    except Exception as exc:  # noqa: BLE001 - a broken client must not stop the gate
        log.cmd("warning", f"cannot talk to GitHub ({type(exc).__name__}: {exc}); nothing will be posted")
        return None, None
    check_run = None
    if settings.check_run and ctx.head_sha and tenant is not None:
        try:
            check_run = publisher.start_check_run(
                name=settings.check_name_for(tenant), head_sha=ctx.head_sha, details_url=ctx.run_url,
                external_id=tenant,
            )
        except PublishError as exc:
            _warn_publish(log, "create the check run", exc)
            if exc.read_only:
                return None, None
    return publisher, check_run


def _publish_error(
    ctx: RunnerContext, settings: PublishSettings | None, publisher: Any, check_run: Any, message: str,
    code: int, log: Log, tenant: str,
) -> str:
    """A check run that says the gate could not decide (exit 2 or 3)."""
    if publisher is None or settings is None or not settings.check_run or not ctx.head_sha:
        return ""
    what = "invalid input" if code == ExitCode.INVALID_INPUT else "evaluation failed"
    url, _ = _post_check(
        ctx, publisher, log, name=settings.check_name_for(tenant), conclusion="failure",
        title=f"adaptergate could not decide: {what}",
        summary=f"## ❌ adaptergate could not decide ({what}, exit {code})\n\n" + _md_line(message),
        annotations=[], external_id=tenant, run=check_run,
    )
    return url


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


@dataclass
class _Run:
    """State shared by the two modes and the error path."""

    ctx: RunnerContext
    inputs: Inputs
    log: Log
    outputs: dict[str, str]
    settings: PublishSettings | None = None
    publisher: Any = None
    check_run: Any = None
    tenant: str = "manifest"
    tree: Any = None
    """The pull request's base commit (its copies of files are removed once the gate ran)."""


Steps = list[tuple[str, Callable[[], None]]]


def _secrets(env: Mapping[str, str], inputs: Inputs) -> list[str]:
    """Every secret value this run holds: the GitHub token and the judge's API key."""
    values = [inputs.str("github-token") or ""]
    key_env = inputs.str("judge-api-key-env") or "OPENAI_API_KEY"
    values.append(env.get(key_env, ""))
    return [v for v in values if v.strip()]


def main(env: Mapping[str, str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the action; returns the exit code (the caller exits with it)."""
    env = dict(os.environ if env is None else env)
    log = Log(stdout or sys.stdout)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=log.stream)
    # PyGithub logs each retried request; our own warnings say what matters.
    logging.getLogger("github").setLevel(logging.ERROR)
    inputs = Inputs(env)
    for secret in _secrets(env, inputs):
        log.mask(secret)
    started = time.monotonic()
    # The workspace is never put on sys.path: it is content under review. Modules the
    # workflow names (scorer, metric) are imported alone, from the trusted side (trusted_code).
    run = _Run(ctx=RunnerContext(env=env, workspace=Path(env.get("GITHUB_WORKSPACE") or os.getcwd())),
               inputs=inputs, log=log, outputs={name: "" for name in OUTPUT_NAMES})
    try:
        run.ctx = ctx = RunnerContext.from_env(env)
        code, steps = _manifest_mode(run) if inputs.str("manifest") else _single_mode(run)
    except BaseException as exc:  # noqa: BLE001 - the one place the action turns errors into codes
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _failed(run, exc)
    finally:
        if run.tree is not None:
            run.tree.cleanup()
    # From here on the verdict is settled: nothing below may change the exit code.
    steps.append(("write the step outputs", lambda: write_outputs(ctx.output_file, run.outputs, log)))
    _settled(run, steps)
    verdict = f"{run.outputs['decision']} ({run.outputs['verdict']})" if run.outputs["decision"] else "could not decide"
    log.line(f"adaptergate: {verdict} in {time.monotonic() - started:.1f} s; exit {code}")
    return code


def _settled(run: _Run, steps: Steps) -> None:
    """Run the reporting steps of a settled run: each failure is a warning, never a new exit code."""
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - reporting must not change the verdict
            try:
                run.log.cmd("warning", f"could not {what}: {type(exc).__name__}: {exc}."
                                       " The verdict stands (exit code).")
                if run.ctx.debug:
                    run.log.untrusted(traceback.format_exc())
            except Exception:  # noqa: BLE001 - not even the log may change the exit code
                pass


def _failed(run: _Run, exc: BaseException) -> int:
    """Invalid input (2) or a failed evaluation (3): said in the log, the summary and the check run.

    Nothing here may raise: an unwritable GITHUB_OUTPUT or a GitHub outage is a warning,
    and the exit code stays 2 or 3."""
    ctx, log, outputs = run.ctx, run.log, run.outputs
    code = int(exit_code_for(exc))
    message = exc.message if isinstance(exc, AdaptergateError) else f"internal error: {type(exc).__name__}: {exc}"
    details = getattr(exc, "details", None) or []
    outputs["exit-code"] = str(code)

    def annotate() -> None:
        log.cmd("error", message + "".join(f"\n  {d}" for d in details[:10]), title="adaptergate")
        if ctx.debug:
            log.untrusted(getattr(exc, "traceback_text", None) or traceback.format_exc())

    def check_run() -> None:
        outputs["check-run-url"] = _publish_error(
            ctx, run.settings, run.publisher, run.check_run, message, code, log, run.tenant
        )

    def summary() -> None:
        write_summary(
            ctx.summary_file,
            f"## ❌ adaptergate could not decide (exit {code})\n\n"
            + _md_line(message) + "".join(f"\n- {_md_line(d)}" for d in details[:20]) + "\n",
            log,
        )

    _settled(run, [
        ("report the error", annotate),
        ("complete the check run", check_run),
        ("write the step outputs", lambda: write_outputs(ctx.output_file, outputs, log)),
        ("write the step summary", summary),
    ])
    return code


def _single_mode(run: _Run) -> tuple[int, Steps]:
    """One tenant, one holdout: the inputs name everything."""
    ctx, inputs, log = run.ctx, run.inputs, run.log
    run.tenant = inputs.required("tenant")
    run.settings = settings = publish_settings(ctx, inputs)
    # The check run goes up first (in progress while adapters are evaluated),
    # so even invalid input is reported on the pull request.
    run.publisher, run.check_run = _start_publishing(ctx, settings, run.tenant, log)
    run.tree = base_tree(ctx, inputs)
    built = build_job(ctx, inputs, run.tree)
    job = built.job
    if job.policy is not None and job.policy.needs_review:
        log.cmd("warning", job.policy.headline(job.tenant), title="adaptergate")
    decision = _gate(job, log)

    code = int(ExitCode.ACCEPTED if decision.accepted else ExitCode.REJECTED)
    from adaptergate.recipes.library import recommendations_from_file

    recs = recommendations_from_file(decision, settings.recipes)
    outputs = run.outputs
    # annotations point at lines of the checkout's holdout: not when the base's version was read
    holdout_rel = None if built.holdout_changed else ctx.relative(job.holdout_path)
    links = {"run": ctx.run_url} if ctx.run_url else None
    driver = decision.driver_slice
    outputs.update({
        "decision": "accepted" if decision.accepted else "rejected",
        "verdict": decision.verdict,
        "delta": f"{decision.delta:.6f}",
        "driver-slice": driver.slice_tag if driver is not None else "",
        "exit-code": str(code),
        "approval": decision.approval or "",
    })

    def files() -> None:
        written = write_reports(decision, settings.report_dir, settings.show_failures, recs)
        outputs["report-path"] = ctx.relative(written["json"])

    def summary() -> None:
        from adaptergate.report.render import render

        write_summary(ctx.summary_file, render(
            decision, "markdown", show_failures=settings.show_failures, target="step-summary", links=links,
            recommendations=recs,
        ), log)

    def annotations() -> None:
        if not decision.accepted or decision.verdict == "INCONCLUSIVE":
            log_annotations(decision, holdout_rel, log)

    def publish() -> None:
        published = publish_decision(
            ctx, settings, decision, holdout_rel, log, run.check_run, run.publisher, recommendations=recs,
        )
        outputs["comment-url"] = published.comment_url
        outputs["check-run-url"] = published.check_run_url

    return code, [("write the reports", files), ("write the step summary", summary),
                  ("annotate the failing queries", annotations), ("publish on GitHub", publish)]


ACTION_DEFAULTED = ("metric", "eval_mode", "batch_size", "stop", "chat_template", "allow_pickle")
"""Inputs whose action.yml default is not empty, or that say nothing about a manifest tenant:
in manifest mode those come from the manifest."""


def _manifest_mode(run: _Run) -> tuple[int, Steps]:
    """Every tenant whose adapter the pull request moved in the manifest."""
    import json as _json

    from adaptergate.manifest.discovery import plan_manifest_gate, run_manifest_gate
    from adaptergate.report.render import render_manifest

    ctx, inputs, log = run.ctx, run.inputs, run.log
    run.settings = settings = publish_settings(ctx, inputs)
    base_ref = inputs.str("base-ref") or ctx.base_sha
    if base_ref is None and ctx.env.get("GITHUB_BASE_REF"):
        base_ref = "origin/" + ctx.env["GITHUB_BASE_REF"]
    if base_ref is None:
        raise UsageError(
            "input 'base-ref' is needed outside a pull request: the commit whose manifest is the baseline"
        )
    run.publisher, _ = _start_publishing(ctx, settings, None, log)
    only = inputs.str("tenant")
    manifest = ctx.path(inputs.required("manifest"), "manifest")
    from adaptergate.manifest.discovery import WorkflowRules
    from adaptergate.trust import BaseTree

    from adaptergate.pipeline.options import MANIFEST_OVERRIDES

    run.tree = tree = BaseTree.open(ctx.workspace, base_ref)
    reader = TrustedInputs(ctx, inputs, tree)
    given = reader.options((*MANIFEST_OVERRIDES, "cache_dir", "audit_log", "replay_path"))
    overrides = given.replace(**{name: None for name in ACTION_DEFAULTED},
                              cache_dir=None, audit_log=None, replay_path=None)
    plan = plan_manifest_gate(
        manifest, base_ref, tenants=[only] if only else None, overrides=overrides,
        audit_log=given.audit_log, replay_path=given.replay_path, cache_dir=given.cache_dir,
        rules=WorkflowRules(judge_from_workflow=True),
    )
    try:
        if reader.changes:
            plan.add_changes(reader.changes)
        log.cmd("group", f"{ctx.relative(manifest)} against {base_ref}")
        log.untrusted("\n".join(
            f"{p.change.tenant}: {p.change.kind}" + (f" — {p.note}" if p.note else "") for p in plan.tenants
        ) or "no tenants")
        log.line("::endgroup::")
        outcome = run_manifest_gate(plan, run=lambda job: _gate(job, log))
    finally:
        plan.cleanup()

    code = outcome.exit_code
    outputs = run.outputs
    gated = outcome.gated
    links = {"run": ctx.run_url} if ctx.run_url else None
    rejected = [t for t in gated if t.status == "rejected"]
    review = [t for t in gated if t.status == "review"]
    outputs.update({
        "decision": "rejected" if code == ExitCode.REJECTED else ("accepted" if code == 0 else ""),
        "verdict": "REJECTED" if rejected else ("NEEDS REVIEW" if review else ("ACCEPTED" if code == 0 else "")),
        "approval": "reject" if code != 0 else ("review" if review else "approve"),
        "driver-slice": "\n".join(
            f"{t.tenant}: {t.decision.driver_slice_tag}" for t in rejected
            if t.decision is not None and t.decision.driver_slice_tag
        ),
        "exit-code": str(code),
        "tenants": _json.dumps([
            {"tenant": t.tenant, "change": t.kind, "status": t.status, "from": t.base_version,
             "to": t.head_version, "approval": t.approval,
             "delta": t.decision.delta if t.decision is not None else None}
            for t in outcome.tenants
        ]),
    })
    name = ctx.relative(manifest)

    def files() -> None:
        settings.report_dir.mkdir(parents=True, exist_ok=True)
        from adaptergate.storage import atomic_write

        for t in outcome.tenants:
            if t.decision is not None:
                write_reports(t.decision, settings.report_dir / t.tenant, settings.show_failures)
        report = settings.report_dir / "manifest.json"
        atomic_write(report, [(outputs["tenants"] + "\n").encode("utf-8")], locked=True)
        atomic_write(settings.report_dir / "report.md", [render_manifest(
            outcome, "markdown", show_failures=settings.show_failures, manifest_name=name,
            recipes=settings.recipes,
        ).encode("utf-8")], locked=True)
        outputs["report-path"] = ctx.relative(report)

    def summary() -> None:
        write_summary(ctx.summary_file, render_manifest(
            outcome, "markdown", show_failures=settings.show_failures, manifest_name=name, links=links,
            recipes=settings.recipes,
        ), log)

    def annotations() -> None:
        for t in gated:
            if t.status == "error":
                log.cmd("error", f"tenant {t.tenant}: {t.error}", title=f"adaptergate / {t.tenant}")
        budget = LOG_ANNOTATIONS
        for t in rejected:
            if t.decision is not None and budget > 0:
                budget -= log_annotations(t.decision, _holdout_rel(ctx, outcome, t), log, budget)

    def publish() -> None:
        _publish_manifest(run, outcome, name, links)

    return code, [("write the reports", files), ("write the step summary", summary),
                  ("annotate the failing queries", annotations), ("publish on GitHub", publish)]


def _publish_manifest(run: _Run, outcome: Any, name: str, links: dict[str, str] | None) -> None:
    """One combined comment; one check run per tenant whose adapter moved."""
    from adaptergate.recipes.library import recommendations_from_file
    from adaptergate.report.render import render, render_manifest, report_marker

    ctx, log, settings, publisher = run.ctx, run.log, run.settings, run.publisher
    assert settings is not None
    if publisher is None:
        return
    gated = outcome.gated
    if ctx.pull_request is not None and settings.comment != "off" and gated:
        body = render_manifest(outcome, "pr-comment", show_failures=settings.show_failures,
                               manifest_name=name, links=links, recipes=settings.recipes)
        run.outputs["comment-url"] = _post_comment(
            ctx, publisher, log, body, marker=report_marker(f"manifest:{name}"),
            create=settings.comment == "on" or outcome.exit_code != 0,
        )
    if not (settings.check_run and ctx.head_sha):
        return
    urls = []
    for t in gated:
        conclusion = t.conclusion
        if conclusion == "action_required" and not ctx.run_url:
            conclusion = "neutral"  # GitHub wants a details_url with action_required
        d = t.decision
        if d is not None:
            title = f"NEEDS REVIEW: {t.note}"[:255] if t.status == "review" else check_title(d)
            summary = render(d, "markdown", show_failures=settings.show_failures, target="check-run", links=links,
                             recommendations=recommendations_from_file(d, settings.recipes))
            annotations = check_annotations(d, _holdout_rel(run.ctx, outcome, t))
        else:
            title = {"review": "NEEDS REVIEW", "error": "could not decide"}.get(t.status, t.status)
            title = f"{title}: {t.error or t.note}"[:255]
            summary = _md_line(t.error or t.note)
            annotations = []
        url, error = _post_check(
            ctx, publisher, log, name=settings.check_name_for(t.tenant), conclusion=conclusion, title=title,
            summary=summary, annotations=annotations, external_id=t.tenant,
        )
        if url:
            urls.append(url)
        if error is not None and error.read_only:
            break
    run.outputs["check-run-url"] = "\n".join(urls)


def _holdout_rel(ctx: RunnerContext, outcome: Any, t: Any) -> str | None:
    """The tenant's holdout as the repository names it; None when the gate read the base
    commit's version (its lines are not the checkout's, so nothing is annotated on them)."""
    plan = next((p for p in outcome.plan.tenants if p.change.tenant == t.tenant), None)
    if plan is not None and plan.holdout_changed:
        return None
    return ctx.relative(Path(t.decision.holdout_path or ""))


def _md_line(text: str) -> str:
    from adaptergate.report.render import escape_markdown

    return escape_markdown(text, 2000)


def _gate(job: Any, log: Log) -> Any:
    """Run the job, with the human report in a log group (user text cannot issue commands)."""
    import io

    from rich.console import Console

    from adaptergate.pipeline.job import run_job
    from adaptergate.report.render import print_human

    log.cmd("group", f"adaptergate gate: tenant {job.tenant}")
    try:
        decision = run_job(job)
    finally:
        log.line("::endgroup::")
    buf = io.StringIO()
    console = Console(file=buf, width=120, no_color=True, emoji=False, highlight=False, soft_wrap=True)
    print_human(decision, console=console, err_console=console)
    log.untrusted(buf.getvalue())
    return decision
