"""The GitHub Action's runtime: the runner's contract in, a gate job, the verdict out.

The runner starts the container with the action's inputs as ``INPUT_<NAME>``
variables (:mod:`adaptergate.action.inputs`), the workspace, the event and the
files to append to (:mod:`adaptergate.action.context`).

:func:`main` parses the inputs into a :class:`~adaptergate.pipeline.job.GateJob`,
runs it, writes the reports, the outputs, the step summary and up to ten
log annotations on the failing queries' lines (:mod:`adaptergate.action.commands`),
then publishes the sticky pull-request comment and the check run
(:mod:`adaptergate.action.reporting`, :mod:`adaptergate.publish.report`). The exit
code is the verdict's (0 accepted, 1 rejected, 2 invalid input, 3 evaluation failed)
whatever happens while publishing: a GitHub outage never turns a rejection into a
success, nor the reverse.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from adaptergate.action.commands import (
    LOG_ANNOTATIONS,
    OUTPUT_NAMES,
    Log,
    log_annotations,
    write_outputs,
    write_summary,
)
from adaptergate.action.context import RunnerContext
from adaptergate.action.inputs import INPUT_NAMES, Inputs, TrustedInputs, base_tree, build_job, env_name
from adaptergate.action.reporting import (
    ActionSettings,
    LogNotes,
    publish_settings,
    start_publishing,
    target,
    report_links,
    write_reports,
)
from adaptergate.errors import AdaptergateError, ExitCode, UsageError, exit_code_for
from adaptergate.publish.report import md_line

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "RunnerContext", "env_name", "main"]


@dataclass
class _Run:
    """State shared by the two modes and the error path."""

    ctx: RunnerContext
    inputs: Inputs
    log: Log
    outputs: dict[str, str]
    settings: ActionSettings | None = None
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
        from adaptergate.publish.report import publish_error

        if run.publisher is None or run.settings is None:
            return
        outputs["check-run-url"] = publish_error(
            run.publisher, target(ctx), run.settings.publish, LogNotes(log), tenant=run.tenant, message=message,
            code=code, check_run=run.check_run,
        )

    def summary() -> None:
        write_summary(
            ctx.summary_file,
            f"## ❌ adaptergate could not decide (exit {code})\n\n"
            + md_line(message) + "".join(f"\n- {md_line(d)}" for d in details[:20]) + "\n",
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
    run.publisher, run.check_run = start_publishing(ctx, settings, run.tenant, log)
    run.tree = base_tree(ctx, inputs)
    built = build_job(ctx, inputs, run.tree)
    job = built.job
    if job.policy is not None and job.policy.needs_review:
        log.cmd("warning", job.policy.headline(job.tenant), title="adaptergate")
    decision = _gate(job, log)

    code = int(ExitCode.ACCEPTED if decision.accepted else ExitCode.REJECTED)
    from adaptergate.recipes import recommendations_from_file

    recs = recommendations_from_file(decision, settings.recipes)
    outputs = run.outputs
    # annotations point at lines of the checkout's holdout: not when the base's version was read
    holdout_rel = None if built.holdout_changed else ctx.relative(job.holdout_path)
    links, head_sha = report_links(ctx)
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
        written = write_reports(decision, settings.report_dir, settings.show_failures, recs,
                                links=links, head_sha=head_sha)
        outputs["report-path"] = ctx.relative(written["json"])

    def summary() -> None:
        from adaptergate.report import render

        write_summary(ctx.summary_file, render(
            decision, "markdown", show_failures=settings.show_failures, target="step-summary", links=links,
            recommendations=recs, head_sha=head_sha,
        ), log)

    def annotations() -> None:
        if not decision.accepted or decision.verdict == "INCONCLUSIVE":
            log_annotations(decision, holdout_rel, log)

    def publish() -> None:
        from adaptergate.publish.report import publish_decision

        if run.publisher is None:
            return
        published = publish_decision(
            run.publisher, target(ctx), settings.publish, decision, LogNotes(log), holdout_rel=holdout_rel,
            check_run=run.check_run, recommendations=recs,
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
    from adaptergate.report import render_manifest

    ctx, inputs, log = run.ctx, run.inputs, run.log
    run.settings = settings = publish_settings(ctx, inputs)
    base_ref = inputs.str("base-ref") or ctx.base_sha
    if base_ref is None and ctx.env.get("GITHUB_BASE_REF"):
        base_ref = "origin/" + ctx.env["GITHUB_BASE_REF"]
    if base_ref is None:
        raise UsageError(
            "input 'base-ref' is needed outside a pull request: the commit whose manifest is the baseline"
        )
    run.publisher, _ = start_publishing(ctx, settings, None, log)
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
    links, head_sha = report_links(ctx)
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
                write_reports(t.decision, settings.report_dir / t.tenant, settings.show_failures,
                              links=links, head_sha=head_sha)
        report = settings.report_dir / "manifest.json"
        atomic_write(report, [(outputs["tenants"] + "\n").encode("utf-8")], locked=True)
        atomic_write(settings.report_dir / "report.md", [render_manifest(
            outcome, "markdown", show_failures=settings.show_failures, manifest_name=name,
            recipes=settings.recipes, links=links, head_sha=head_sha,
        ).encode("utf-8")], locked=True)
        outputs["report-path"] = ctx.relative(report)

    def summary() -> None:
        write_summary(ctx.summary_file, render_manifest(
            outcome, "markdown", show_failures=settings.show_failures, manifest_name=name, links=links,
            recipes=settings.recipes, head_sha=head_sha,
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
        _publish_manifest(run, outcome, name)

    return code, [("write the reports", files), ("write the step summary", summary),
                  ("annotate the failing queries", annotations), ("publish on GitHub", publish)]




def _publish_manifest(run: _Run, outcome: Any, name: str) -> None:
    """One combined comment; one check run per tenant whose adapter moved."""
    from adaptergate.publish.report import publish_manifest

    assert run.settings is not None
    if run.publisher is None:
        return
    ctx = run.ctx
    published = publish_manifest(
        run.publisher, target(ctx), run.settings.publish, outcome, LogNotes(run.log), manifest_name=name,
        holdout_rel=lambda t: _holdout_rel(ctx, outcome, t),
    )
    run.outputs["comment-url"] = published.comment_url
    run.outputs["check-run-url"] = published.check_run_url


def _holdout_rel(ctx: RunnerContext, outcome: Any, t: Any) -> str | None:
    """The tenant's holdout as the repository names it; None when the gate read the base
    commit's version (its lines are not the checkout's, so nothing is annotated on them)."""
    plan = next((p for p in outcome.plan.tenants if p.change.tenant == t.tenant), None)
    if plan is not None and plan.holdout_changed:
        return None
    return ctx.relative(Path(t.decision.holdout_path or ""))


def _gate(job: Any, log: Log) -> Any:
    """Run the job; the human report goes inside its log group (``::group::`` … ``::endgroup::``,
    folded in the job log), printed between ``::stop-commands::`` markers so user text cannot
    issue commands. The group is closed whatever happens."""
    import io

    from rich.console import Console

    from adaptergate.pipeline.job import run_job
    from adaptergate.report import print_human

    log.cmd("group", f"adaptergate gate: tenant {job.tenant}")
    try:
        decision = run_job(job)
        buf = io.StringIO()
        console = Console(file=buf, width=120, no_color=True, emoji=False, highlight=False, soft_wrap=True)
        print_human(decision, console=console, err_console=console)
        log.untrusted(buf.getvalue())
    finally:
        log.line("::endgroup::")
    return decision
