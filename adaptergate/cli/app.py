"""The ``adaptergate`` command line: parse, call the package, exit.

Exit codes (see :mod:`adaptergate.errors`): 0 accepted, 1 rejected,
2 invalid input or usage, 3 evaluation failed. No traceback reaches the
console unless ``--debug`` (or ``ADAPTERGATE_DEBUG=1``) is given.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from adaptergate import __version__
from adaptergate.errors import (
    AdaptergateError,
    ExitCode,
    InvalidInputError,
    UsageError,
    exit_code_for,
)
from adaptergate.holdout.store import DEFAULT_MAX_LINE_BYTES

app = typer.Typer(
    help="adaptergate — gate per-tenant LoRA adapter promotion on held-out queries.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
holdout_app = typer.Typer(help="Manage a tenant's held-out queries.", no_args_is_help=True)
replay_app = typer.Typer(help="Inspect rejected updates.", no_args_is_help=True)
manifest_app = typer.Typer(
    help="Inspect the tenant adapter manifest: validate, show, history, export, schema.", no_args_is_help=True
)
demo_app = typer.Typer(
    help="Run the bundled demos, offline (the default builds a tiny model and two real LoRA adapters).",
    invoke_without_command=True,
)
app.add_typer(holdout_app, name="holdout")
app.add_typer(replay_app, name="replay")
app.add_typer(manifest_app, name="manifest")
app.add_typer(demo_app, name="demo")

_state: dict[str, Any] = {"debug": False}


def _console() -> Console:
    return Console(soft_wrap=True)


def _err_console() -> Console:
    return Console(stderr=True, soft_wrap=True)


class Format(str, Enum):
    human = "human"
    json = "json"
    pr_comment = "pr-comment"
    markdown = "markdown"
    junit = "junit"


MAX_LINE_OPT = typer.Option(
    DEFAULT_MAX_LINE_BYTES, "--max-line-bytes", min=1, help="Reject holdout lines longer than this."
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks for errors (also: ADAPTERGATE_DEBUG=1)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    if debug:
        _state["debug"] = True


# ------------------------------------------------------------------- gate


@app.command()
def gate(
    tenant: Optional[str] = typer.Option(
        None, help="Tenant / workspace identifier (with --manifest: only gate this tenant)."
    ),
    candidate: Optional[str] = typer.Option(
        None, help="Candidate adapter id (default with --candidate-adapter: its directory name)."
    ),
    baseline: Optional[str] = typer.Option(
        None, help="Baseline (production) adapter id. Omit only with --no-require-calibration."
    ),
    holdout: Optional[Path] = typer.Option(
        None, "--holdout", help="Path to the tenant's JSONL held-out set (required without --manifest)."
    ),
    manifest: Optional[Path] = typer.Option(
        None, "--manifest",
        help="Tenant adapter manifest: gate every tenant whose adapter changed since --base-ref.",
    ),
    base_ref: Optional[str] = typer.Option(
        None, "--base-ref", help="With --manifest: the git ref whose manifest holds the baselines (e.g. origin/main).",
    ),
    scorer: Optional[str] = typer.Option(
        None, "--scorer", help="Scorer as 'module:function' (or score real adapters with --base-model)."
    ),
    base_model: Optional[str] = typer.Option(
        None, "--base-model", help="Base model directory: load it with --baseline-adapter and --candidate-adapter."
    ),
    baseline_adapter: Optional[Path] = typer.Option(None, "--baseline-adapter", help="Production LoRA adapter dir."),
    candidate_adapter: Optional[Path] = typer.Option(None, "--candidate-adapter", help="Candidate LoRA adapter dir."),
    metric: Optional[str] = typer.Option(
        None, "--metric",
        help="Compare generated text with gold: exact[:opts], contains, regex, json, numeric[:abs=,rel=], sql,"
        " or module:function(output, query). [default: exact, or the manifest's]",
    ),
    eval_mode: Optional[str] = typer.Option(
        None, "--eval-mode",
        help="auto, generate, or teacher-forced (exact match in one forward pass). [default: auto]",
    ),
    max_new_tokens: Optional[int] = typer.Option(
        None, "--max-new-tokens", help="Default: the longest gold answer in tokens, plus EOS."
    ),
    stop: list[str] = typer.Option([], "--stop", help="Stop string (repeatable)."),
    chat_template: bool = typer.Option(False, "--chat-template", help="Wrap prompts in the tokenizer's chat template."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (default: bf16 on GPU)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when present)."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="4bit or 8bit (bitsandbytes, GPU)."),
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="Load pickle (.bin) adapter weights: this executes code from the file."
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code",
        help="Let transformers run the Python code a base or judge model ships (auto_map in config.json or"
        " tokenizer_config.json). Without it such a model is refused (exit 2). Command line only: the Action"
        " and manifests never set it.",
    ),
    base_sha256: Optional[str] = typer.Option(None, "--base-sha256", help="Expected sha256 of the base weights."),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", envvar="ADAPTERGATE_CACHE", help="Where baseline results are cached."
    ),
    judge_criteria: Optional[Path] = typer.Option(
        None, "--judge-criteria",
        help="--metric judge: JSON or YAML list of {name, weight, rubric} [default: accuracy x2, relevance x1.5,"
        " style x1, completeness x1.5, coherence x1].",
    ),
    judge_model: Optional[Path] = typer.Option(
        None, "--judge-model", help="--metric judge: a local causal LM directory as the judge (constrained decoding)."
    ),
    judge_url: Optional[str] = typer.Option(
        None, "--judge-url", help="--metric judge: an OpenAI-compatible server (/v1/chat/completions) as the judge."
    ),
    judge_name: Optional[str] = typer.Option(None, "--judge-name", help="Model name to ask --judge-url for."),
    judge_api_key_env: Optional[str] = typer.Option(
        None, "--judge-api-key-env", help="Environment variable holding the --judge-url API key [default: OPENAI_API_KEY]."
    ),
    judge_pairwise: bool = typer.Option(
        False, "--judge-pairwise", help="Judge both answers side by side (A/B order randomised per query)."
    ),
    judge_retries: Optional[int] = typer.Option(
        None, "--judge-retries", min=0, help="Repair requests after a malformed judge reply [default: 2]."
    ),
    judge_reasoning_tokens: Optional[int] = typer.Option(
        None, "--judge-reasoning-tokens", min=0, help="--judge-model: tokens of free reasoning [default: 48]."
    ),
    judge_concurrency: Optional[int] = typer.Option(
        None, "--judge-concurrency", min=1, help="--judge-url: requests in flight at once [default: 4]."
    ),
    epsilon: Optional[float] = typer.Option(None, help="Max acceptable aggregate score drop [default: 0.02]."),
    slice_epsilon: Optional[float] = typer.Option(
        None, "--slice-epsilon", help="Max acceptable drop within any slice (silent-regression net)."
    ),
    slice_min_size: Optional[int] = typer.Option(
        None, "--slice-min-size", help="Slices smaller than this cannot reject on their own [default: 3]."
    ),
    min_holdout_size: Optional[int] = typer.Option(
        None, "--min-holdout-size", help="Refuse to gate on fewer queries [default: 20]."
    ),
    sample: Optional[int] = typer.Option(None, "--sample", help="Gate on a deterministic sample of N queries."),
    sample_seed: Optional[str] = typer.Option(
        None, "--sample-seed", help="Seed for --sample (default: the candidate id, as in 0.5.4)."
    ),
    strict: Optional[bool] = typer.Option(
        None, "--strict/--no-strict",
        help="Also reject when a query that passed on the baseline fails on the candidate [default: off].",
    ),
    pass_threshold: Optional[float] = typer.Option(
        None, "--pass-threshold", help="A score >= this counts as a pass, for --strict [default: 1.0]."
    ),
    require_calibration: bool = typer.Option(
        True, "--require-calibration/--no-require-calibration", help="Refuse to gate without a baseline."
    ),
    decision: Optional[str] = typer.Option(
        None, "--decision", envvar="ADAPTERGATE_DECISION",
        help="stat (paired intervals, three-valued verdict) or threshold (adaptergate 0.5.4's rule)"
        " [default: stat; env ADAPTERGATE_DECISION].",
    ),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Family-wise error rate of the stat rule [default: 0.05]."),
    on_inconclusive: Optional[str] = typer.Option(
        None, "--on-inconclusive",
        help="What INCONCLUSIVE does to the exit code: accept (0) or reject (1) [default: accept].",
    ),
    multiplicity: Optional[str] = typer.Option(
        None, "--multiplicity",
        help="Slice adjustment: holm (family-wise error) or bh (false discovery rate) [default: holm].",
    ),
    repeats: int = typer.Option(
        1, "--repeats", min=1, help="Score each adapter K times (non-deterministic scorers); gate on the means."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", envvar="ADAPTERGATE_CONFIG",
        help="JSON file of per-tenant settings (written by 'adaptergate calibrate --write').",
    ),
    audit_log: Optional[Path] = typer.Option(None, "--audit-log", help="Append the decision to this JSONL audit log."),
    replay_path: Optional[Path] = typer.Option(
        None, "--replay-path", help="When rejected, append to this replay buffer."
    ),
    rows_out: Optional[Path] = typer.Option(
        None, "--rows-out", help="Write per-query scores to this JSONL file."
    ),
    output_format: Format = typer.Option(Format.human, "--format", "-f", help="Output format."),
    show_failures: int = typer.Option(5, "--show-failures", min=0, help="Failing query ids to preview."),
    staleness_threshold_days: int = typer.Option(
        30, "--staleness-threshold-days", help="Warn when the holdout has not been refreshed for this long."
    ),
    max_line_bytes: int = MAX_LINE_OPT,
    quiet: bool = typer.Option(False, "--quiet", help="Alias for --format json (0.5.4)."),
    recipes_path: Optional[Path] = typer.Option(
        None, "--recipes",
        help="Recipe library: a rejection's report ends with the recipes that fit it ('What now?').",
    ),
) -> None:
    """Evaluate a candidate adapter against the baseline. Exit 0 accepted, 1 rejected."""
    from adaptergate.pipeline.job import run_job
    from adaptergate.pipeline.options import MANIFEST_OVERRIDES, GateOptions, build_job

    # switches that are off unless given: off is "not given", so a manifest's own value stands
    opts = GateOptions.pick(locals()).replace(
        stop=tuple(stop), chat_template=chat_template or None, allow_pickle=allow_pickle or None,
        trust_remote_code=trust_remote_code or None, judge_pairwise=judge_pairwise or None,
    )
    fmt = Format.json if quiet else output_format
    if manifest is not None:
        for flag, value in (("--holdout", holdout), ("--scorer", scorer), ("--base-model", base_model),
                            ("--baseline-adapter", baseline_adapter), ("--candidate-adapter", candidate_adapter),
                            ("--candidate", candidate), ("--baseline", baseline), ("--config", config),
                            ("--rows-out", rows_out)):
            if value is not None:
                raise UsageError(f"{flag} does not go with --manifest: the manifest names each tenant's files")
        if base_ref is None:
            raise UsageError("--manifest needs --base-ref: the git ref whose manifest holds the baselines")
        if strict is not None or pass_threshold is not None:
            raise UsageError("--strict and --pass-threshold do not go with --manifest (use approval bands)")
        # the command line's options win over each tenant's policy; trust_remote_code only from here
        overrides = GateOptions().replace(**{k: v for k, v in opts.given().items() if k in MANIFEST_OVERRIDES})
        code = _gate_manifest(
            manifest, base_ref, tenant, fmt, show_failures=show_failures, overrides=overrides,
            audit_log=audit_log, replay_path=replay_path, cache_dir=cache_dir,
        )
        raise typer.Exit(code)
    if base_ref is not None:
        raise UsageError("--base-ref goes with --manifest")
    job = build_job(opts)
    with _progress(enabled=job.model is not None) as tick:
        decision = run_job(job, progress=tick)
    _emit(decision, fmt, show_failures=show_failures, staleness_threshold_days=staleness_threshold_days,
          recipes=recipes_path)
    raise typer.Exit(int(ExitCode.ACCEPTED if decision.accepted else ExitCode.REJECTED))


def _gate_manifest(
    manifest: Path, base_ref: str, tenant: Optional[str], fmt: Format, *, show_failures: int,
    overrides: Any, audit_log: Optional[Path], replay_path: Optional[Path], cache_dir: Optional[Path],
) -> int:
    """``gate --manifest``: every tenant whose adapter moved since ``base_ref``."""
    from adaptergate.manifest.discovery import plan_manifest_gate, run_manifest_gate
    from adaptergate.pipeline.job import run_job

    if fmt is Format.junit:
        raise UsageError("--format junit reports one gate; with --manifest use human, json, markdown or pr-comment")
    plan = plan_manifest_gate(
        manifest, base_ref, tenants=[tenant] if tenant else None, overrides=overrides,
        audit_log=audit_log, replay_path=replay_path, cache_dir=cache_dir,
    )
    try:
        def one(job: Any) -> Any:
            with _progress(enabled=True) as tick:
                return run_job(job, progress=tick)

        outcome = run_manifest_gate(plan, run=one)
    finally:
        plan.cleanup()
    if fmt is Format.json:
        doc = {
            "manifest": str(manifest), "base_ref": base_ref, "base_commit": plan.base_commit,
            "exit_code": outcome.exit_code,
            "tenants": [
                {"tenant": t.tenant, "change": t.kind, "status": t.status, "from": t.base_version,
                 "to": t.head_version, "approval": t.approval, "note": t.note or None, "error": t.error,
                 "decision": json.loads(t.decision.compact().to_json()) if t.decision is not None else None}
                for t in outcome.tenants
            ],
        }
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    elif fmt is Format.human:
        con = _console()
        con.print(f"{manifest} against {base_ref}:", markup=False, highlight=False)
        for t in outcome.tenants:
            version = f"{t.base_version or '—'} → {t.head_version or '—'}"
            line = f"  {t.tenant:<20} {t.kind:<10} {version:<20} {t.status}"
            extra = t.error or t.note
            con.print(line + (f"  ({extra})" if extra else ""), markup=False, highlight=False)
        for t in outcome.tenants:
            if t.decision is not None and t.status != "accepted":
                con.print("", markup=False)
                _emit(t.decision, Format.human, show_failures=show_failures, staleness_threshold_days=30)
    else:
        from adaptergate.report.render import render_manifest

        sys.stdout.write(render_manifest(outcome, fmt.value, show_failures=show_failures,
                                         manifest_name=manifest.name))
    return outcome.exit_code


class _progress:
    """A progress bar on stderr with queries/s while adapters are evaluated."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and os.environ.get("ADAPTERGATE_PROGRESS", "1") != "0"
        self.bar: Any = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        class _Rate(TextColumn):
            def render(self, task: Any) -> Any:
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.1f} evaluations/s" if speed else "")

        self.bar = Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), _Rate(""), TimeElapsedColumn(),
            console=_err_console(), transient=True,
        )
        self.bar.start()
        task = self.bar.add_task("scoring", total=None)
        return lambda k: self.bar.update(task, advance=k)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _emit(
    decision: Any, fmt: Format, *, show_failures: int, staleness_threshold_days: int,
    recipes: Optional[Path] = None,
) -> None:
    if fmt is Format.human:
        from adaptergate.report.render import print_human

        print_human(
            decision, console=_console(), err_console=_err_console(),
            show_failures=show_failures, staleness_threshold_days=staleness_threshold_days,
        )
        if recipes is not None and not decision.accepted:
            from adaptergate.recipes.library import RecipeStore, print_recommendations, recommend

            store = RecipeStore(recipes)
            _console().print("")
            print_recommendations(decision, recommend(decision, store, top_k=3), console=_console(),
                                  err_console=_err_console(), store=store)
        return
    if fmt is Format.json:
        sys.stdout.flush()
        out = sys.stdout.buffer
        out.write(decision.to_json_bytes(indent=2))
        out.write(b"\n")
    else:
        from adaptergate.recipes.library import recommendations_from_file
        from adaptergate.report.render import render

        text = render(
            decision, fmt.value, show_failures=show_failures, staleness_threshold_days=staleness_threshold_days,
            recommendations=recommendations_from_file(decision, recipes) if fmt is not Format.junit else None,
        )
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if fmt is Format.json:
        # Warnings go to stderr so they survive piping JSON into jq.
        err = _err_console()
        for w in decision.warnings:
            err.print(f"warning: {w.message}", markup=False, highlight=False)


# ---------------------------------------------------------------- holdout


def _problems_to_stderr(problems: list[Any], limit: int = 10) -> None:
    err = _err_console()
    for p in problems[:limit]:
        err.print(f"skipped {p}", markup=False, highlight=False)
    if len(problems) > limit:
        err.print(f"... and {len(problems) - limit} more skipped lines", markup=False, highlight=False)


@holdout_app.command("add")
def holdout_add(
    query_json: str = typer.Argument(..., help="The query as a JSON object."),
    tenant: str = typer.Option(...),
    holdout_path: Path = typer.Option(..., "--holdout"),
    accepted_by: Optional[str] = typer.Option(None, help="Adapter version this query was good with."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Add one query to the held-out set."""
    from adaptergate.holdout.store import add_query

    try:
        payload = json.loads(query_json)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"query is not valid JSON: {exc.msg} (column {exc.colno})") from None
    res = add_query(holdout_path, payload, tenant=tenant, accepted_by=accepted_by, max_line_bytes=max_line_bytes)
    out: dict[str, Any] = {"added": res.query_id if res.added else None, "size": res.size}
    if not res.added:
        out["unchanged"] = res.query_id
    typer.echo(json.dumps(out))


@holdout_app.command("import")
def holdout_import(
    tenant: str = typer.Option(...),
    holdout_path: Path = typer.Option(..., "--holdout"),
    from_jsonl: Path = typer.Option(..., "--from-jsonl", help="JSONL file of queries, one per line."),
    accepted_by: Optional[str] = typer.Option(None, help="Tag every imported query with this adapter."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Import queries in bulk. Exit 2 if any line was skipped (invalid or duplicate)."""
    from adaptergate.holdout.store import import_queries

    res = import_queries(
        holdout_path, from_jsonl, tenant=tenant, accepted_by=accepted_by, max_line_bytes=max_line_bytes
    )
    typer.echo(json.dumps({"imported": len(res.imported), "skipped": len(res.skipped), "size": res.size}))
    if res.skipped:
        _problems_to_stderr(res.skipped)
        raise typer.Exit(int(ExitCode.INVALID_INPUT))


@holdout_app.command("list")
def holdout_list(
    tenant: Optional[str] = typer.Option(None),
    holdout_path: Path = typer.Option(..., "--holdout"),
    full: bool = typer.Option(False, "--full", help="Print each query as stored, not a summary."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """List the queries, one JSON object per line."""
    h = _load_or_empty(holdout_path, tenant, max_line_bytes)
    out = sys.stdout
    for i, qid in enumerate(h.ids):
        if full:
            out.write(json.dumps(h.payloads[i], ensure_ascii=False) + "\n")
        else:
            out.write(json.dumps({
                "query_id": qid, "accepted_by": h.accepted_by[i] or h.payloads[i].get("accepted_by"),
                "added_at": h.added_at[i],
            }) + "\n")


def _load_or_empty(path: Path, tenant: Optional[str], max_line_bytes: int):
    from adaptergate.holdout.store import Holdout, load_holdout

    if not path.exists():
        return Holdout(path=path)
    return load_holdout(path, tenant=tenant, max_line_bytes=max_line_bytes)


@holdout_app.command("size")
def holdout_size(
    tenant: Optional[str] = typer.Option(None),
    holdout_path: Path = typer.Option(..., "--holdout"),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Print the number of queries."""
    typer.echo(str(len(_load_or_empty(holdout_path, tenant, max_line_bytes))))


@holdout_app.command("remove")
def holdout_remove(
    query_ids: list[str] = typer.Argument(..., help="Ids of the queries to remove."),
    tenant: Optional[str] = typer.Option(None),
    holdout_path: Path = typer.Option(..., "--holdout"),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Remove queries by id. Exit 2 if an id was not found."""
    from adaptergate.holdout.store import remove_queries

    if not holdout_path.exists():
        raise InvalidInputError(f"holdout file not found: {holdout_path}")
    removed, missing, size = remove_queries(holdout_path, query_ids, tenant=tenant, max_line_bytes=max_line_bytes)
    typer.echo(json.dumps({"removed": removed, "missing": missing, "size": size}))
    if missing:
        _err_console().print(
            f"not found in {holdout_path}: " + ", ".join(repr(m) for m in missing), markup=False
        )
        raise typer.Exit(int(ExitCode.INVALID_INPUT))


@holdout_app.command("validate")
def holdout_validate(
    holdout_path: Path = typer.Option(..., "--holdout"),
    tenant: Optional[str] = typer.Option(None),
    strict_tags: bool = typer.Option(
        False, "--strict-tags", help="Treat slice tags without '=' as errors, not warnings."
    ),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Check every line; list every problem with its line number. Exit 2 if any."""
    from adaptergate.holdout.store import load_holdout

    h = load_holdout(holdout_path, tenant=tenant, max_line_bytes=max_line_bytes, allow_bare_tags=not strict_tags)
    err = _err_console()
    for w in h.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False)
    typer.echo(json.dumps({"valid": True, "size": len(h), "warnings": len(h.warnings)}))


@holdout_app.command("stats")
def holdout_stats_cmd(
    holdout_path: Path = typer.Option(..., "--holdout"),
    tenant: Optional[str] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Size, slice coverage, gold coverage, staleness and suspected duplicate tags."""
    from adaptergate.holdout.store import holdout_stats, load_holdout
    from adaptergate.holdout.tags import find_duplicate_slices

    h = load_holdout(holdout_path, tenant=tenant, max_line_bytes=max_line_bytes)
    stats = holdout_stats(h)
    tags = sorted({t for tags in h.slices for t in tags})
    stats["suspected_duplicate_slices"] = [f.model_dump() for f in find_duplicate_slices(tags)]
    if as_json:
        typer.echo(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    con = _console()
    from rich.table import Table

    con.print(f"{stats['path']}: {stats['size']} queries ({stats['format']})", markup=False)
    con.print(
        f"prompt: {stats['with_prompt']}  gold: {stats['with_gold']}  untagged: {stats['untagged']}"
        f"  clusters: {stats['clusters']}  staleness: {stats['staleness_days']} days",
        markup=False,
    )
    table = Table("slice key", "value", "queries")
    for key, values in stats["slices_by_key"].items():
        for value, count in values.items():
            table.add_row(key, value, str(count))
    con.print(table)
    for f in stats["suspected_duplicate_slices"]:
        con.print(f"suspected duplicate: {' ~ '.join(f['tags'])} ({f['reason']})", markup=False)


# ----------------------------------------------------------------- replay


@replay_app.command("list")
def replay_list(
    tenant: str = typer.Option(...),
    replay_path: Path = typer.Option(..., "--replay-path", "--replay", help="The replay buffer JSONL."),
    n: int = typer.Option(10, help="Show the most recent N rejections."),
) -> None:
    """Recent rejected updates, oldest first, one JSON line each (index 1 = newest)."""
    from adaptergate.pipeline.ledger import ReplayBuffer

    records = ReplayBuffer(replay_path, tenant_id=tenant).recent(n)
    total = len(records)
    for pos, r in enumerate(records):
        typer.echo(json.dumps({
            "candidate": r.candidate_id, "baseline": r.baseline_id, "rejected_at": r.rejected_at,
            "delta": round(r.delta, 4), "reason": r.reason, "index": total - pos,
        }, ensure_ascii=False))


@replay_app.command("show")
def replay_show(
    tenant: str = typer.Option(...),
    replay_path: Path = typer.Option(..., "--replay-path", "--replay", help="The replay buffer JSONL."),
    audit_log: Optional[Path] = typer.Option(
        None, "--audit-log", help="Audit log (only needed for 0.5.4 records without an embedded decision)."
    ),
    index: int = typer.Option(1, "--index", "-i", help="1 = most recent rejection, 2 = the one before, ..."),
    show_failures: int = typer.Option(5, "--show-failures", min=0),
    output_format: Format = typer.Option(Format.human, "--format", "-f"),
) -> None:
    """Show one rejection in full: slices, driver, pattern, failing ids."""
    from adaptergate.pipeline.ledger import ReplayBuffer

    if index < 1:
        raise UsageError("--index must be >= 1 (1 = most recent)")
    record = ReplayBuffer(replay_path, tenant_id=tenant).get(index)
    decision = record.decision()
    _emit(decision, output_format, show_failures=show_failures, staleness_threshold_days=10**6)


# ----------------------------------------------------------------- review


@app.command()
def review(
    query_ids: list[str] = typer.Option(..., "--query", help="Query id to show (repeatable)."),
    rows_path: Optional[Path] = typer.Option(None, "--rows", help="Per-query rows written by 'gate --rows-out'."),
    decision_path: Optional[Path] = typer.Option(
        None, "--decision", help="A decision saved from 'gate --format json'."
    ),
    holdout_path: Optional[Path] = typer.Option(None, "--holdout", help="Show the prompt and gold answer too."),
) -> None:
    """Baseline and candidate answers side by side for a query, with a word diff."""
    from adaptergate.pipeline.ledger import read_rows
    from adaptergate.decide.wording import word_diff

    if (rows_path is None) == (decision_path is None):
        raise UsageError("give exactly one of --rows FILE or --decision FILE")
    if rows_path is not None:
        if not rows_path.exists():
            raise InvalidInputError(f"rows file not found: {rows_path}")
        rows = read_rows(rows_path)
    else:
        from adaptergate.recipes.library import read_decision

        rows = list(read_decision(decision_path, line=-1).per_query)  # type: ignore[arg-type]
    by_id = {str(r["query_id"]): r for r in rows}
    payloads: dict[str, dict] = {}
    if holdout_path is not None:
        from adaptergate.holdout.store import load_holdout

        h = load_holdout(holdout_path)
        payloads = dict(zip(h.ids, h.payloads))
    missing = [q for q in query_ids if q not in by_id]
    if missing:
        raise InvalidInputError("no such query in the rows: " + ", ".join(repr(m) for m in missing))
    con = _console()
    for qid in query_ids:
        r = by_id[qid]
        con.rule(f"query {qid}", characters="-")
        p = payloads.get(qid, {})
        from adaptergate.decide.patterns import query_text

        if p:
            con.print(f"prompt:    {query_text(p)}", markup=False, highlight=False)
            con.print(f"gold:      {p.get('gold', p.get('expected_output'))}", markup=False, highlight=False)
        con.print(f"score:     {r['score_baseline']:.3f} -> {r['score_candidate']:.3f} (Δ={r['delta']:+.3f})",
                  markup=False, highlight=False)
        b, c = r.get("baseline_output"), r.get("candidate_output")
        if b is None and c is None:
            con.print("(no generated outputs recorded: the gate ran with a --scorer, or the query did not regress"
                      " in teacher-forced mode)", markup=False, highlight=False)
            continue
        con.print(f"baseline:  {b}", markup=False, highlight=False)
        con.print(f"candidate: {c}", markup=False, highlight=False)
        marks = {"=": "{}", "-": "[-{}-]", "+": "{{+{}+}}"}
        diff = [marks[op].format(words) for op, words in word_diff(b, c)]
        con.print(f"diff:      {' '.join(x for x in diff if x)}", markup=False, highlight=False)


# --------------------------------------------------------------- manifest
# The tenant manifest's lifecycle (adaptergate.manifest.lifecycle does the work).

MANIFEST_OPT = typer.Option(
    Path("adaptergate.yaml"), "--manifest", envvar="ADAPTERGATE_MANIFEST",
    help="The tenant adapter manifest (YAML or JSON).",
)
AUDIT_OPT = typer.Option(None, "--audit-log", help="The gate's audit log: show its decision for each version.")


class ExportFormat(str, Enum):
    vllm = "vllm"
    json = "json"


class BumpPart(str, Enum):
    major = "major"
    minor = "minor"
    patch = "patch"


def _out(line: str) -> None:
    typer.echo(line)


@manifest_app.command("validate")
def manifest_validate(
    manifest: Path = MANIFEST_OPT,
    check_base_hash: bool = typer.Option(
        False, "--check-base-hash", help="Also hash each local base model against its sha256 (slow)."
    ),
) -> None:
    """Parse the manifest and check every tenant's files and weights' sha256. Exit 2 on any problem."""
    from adaptergate.manifest.lifecycle import validate_manifest

    report = validate_manifest(manifest, check_base_hash=check_base_hash)
    hub = f" ({len(report.hub)} on the Hub, not checked: {', '.join(report.hub)})" if report.hub else ""
    _out(f"manifest OK: {report.tenants} tenant{'s' if report.tenants != 1 else ''}{hub}")


@manifest_app.command("show")
def manifest_show(
    manifest: Path = MANIFEST_OPT,
    tenant: Optional[str] = typer.Option(None, help="Only this tenant."),
    as_json: bool = typer.Option(False, "--json", help="The entries as JSON."),
) -> None:
    """A readable summary of each tenant's entry."""
    from adaptergate.manifest.model import load_manifest
    from adaptergate.manifest.lifecycle import describe_entry, show_entries

    m = load_manifest(manifest)
    if as_json:
        _out(json.dumps(show_entries(m, tenant), indent=2, ensure_ascii=False))
        return
    names = [tenant] if tenant is not None else list(m.tenants)
    if not names:
        _out(f"{manifest}: no tenants")
    for i, t in enumerate(names):
        if i:
            _out("")
        for line in describe_entry(t, m.entry(t, str(manifest))):
            _out(line)


@manifest_app.command("history")
def manifest_history(
    tenant: str = typer.Option(..., help="The tenant whose promotions to list."),
    manifest: Path = MANIFEST_OPT,
    audit_log: Optional[Path] = AUDIT_OPT,
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the newest N changes."),
    as_json: bool = typer.Option(False, "--json", help="One JSON list."),
) -> None:
    """Each commit that changed the tenant's adapter, newest first (from the manifest's git log)."""
    from adaptergate.manifest.lifecycle import tenant_history

    events = tenant_history(manifest, tenant, audit_log=audit_log, limit=limit)
    if as_json:
        _out(json.dumps([e.to_json() for e in events], indent=2, ensure_ascii=False))
        return
    for e in events:
        change = f"{e.version_before or '-'} -> {e.version_after or '-'}"
        line = f"{e.date[:10]}  {e.short}  {e.kind:<9}  {change:<17}  {e.author}: {e.subject}"
        if e.rollback_reason:
            line += f"  [reason: {e.rollback_reason}]"
        if audit_log is not None and e.version_after is not None:
            d = e.decision
            line += f"  [gate: {d['verdict']} {d['timestamp'][:10]}]" if d else "  [gate: no decision]"
        _out(line)
    if not events:
        _out(f"no commit changed tenant {tenant}'s adapter")


@manifest_app.command("export")
def manifest_export(
    manifest: Path = MANIFEST_OPT,
    output_format: ExportFormat = typer.Option(ExportFormat.vllm, "--format", "-f"),
    tenants: Optional[list[str]] = typer.Option(None, "--tenant", help="Only these tenants (repeatable)."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Only tenants on this base model."),
    max_loras: Optional[int] = typer.Option(
        None, "--max-loras", help="vLLM --max-loras (default: the number of exported adapters)."
    ),
    hub_cache: Optional[Path] = typer.Option(
        None, "--hub-cache", help="Hugging Face hub cache of the serving host (for hf_repo adapters)."
    ),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check the weights' sha256 first."),
) -> None:
    """The promoted adapters for serving: vLLM arguments, or a JSON list."""
    from adaptergate.manifest.model import load_manifest
    from adaptergate.manifest.lifecycle import export_adapters, shell_line, vllm_args

    m = load_manifest(manifest)
    adapters, notes = export_adapters(m, manifest.parent, tenants, base_model=base_model, verify=verify,
                                      hub_cache=hub_cache)
    if output_format is ExportFormat.json:
        _out(json.dumps([a.to_json() for a in adapters], indent=2, ensure_ascii=False))
    else:
        _out(shell_line(vllm_args(adapters, max_loras=max_loras)))
    err = _err_console()
    for note in notes:
        err.print(f"note: {note}", markup=False, highlight=False)


@manifest_app.command("schema")
def manifest_schema() -> None:
    """Print the manifest's JSON Schema (committed as schemas/manifest.schema.json)."""
    from adaptergate.manifest.lifecycle import schema_text

    sys.stdout.write(schema_text())


def _sha_change(old: Optional[str], new: str) -> str:
    return f"{old[:12]} -> {new}" if old else new


@app.command()
def promote(
    tenant: str = typer.Option(..., help="The tenant to promote an adapter for."),
    adapter: Path = typer.Option(..., "--adapter", help="The PEFT LoRA adapter directory."),
    manifest: Path = MANIFEST_OPT,
    bump: Optional[BumpPart] = typer.Option(None, "--bump", help="Version part to bump (default: minor)."),
    version: Optional[str] = typer.Option(None, "--version", help="The new version (instead of --bump)."),
    base_model: Optional[str] = typer.Option(None, "--base-model", help="Base model id (required for a new tenant)."),
    holdout: Optional[Path] = typer.Option(None, "--holdout", help="Held-out JSONL (required for a new tenant)."),
    card: Optional[Path] = typer.Option(None, "--card", help="An adapter card (JSON or YAML) to merge."),
    creator: Optional[str] = typer.Option(None, "--creator", help="Who made it (default $GITHUB_ACTOR or $USER)."),
    data_source: Optional[str] = typer.Option(None, "--data-source", help="Where the training data came from."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Training dataset name."),
    dataset_size: Optional[int] = typer.Option(None, "--dataset-size", help="Training examples."),
    task: Optional[str] = typer.Option(None, "--task", help="The adapter's task (card)."),
    domain: Optional[str] = typer.Option(None, "--domain", help="The adapter's domain (card)."),
    language: Optional[str] = typer.Option(None, "--language", help="The adapter's language (card)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the change; do not write the manifest."),
    as_json: bool = typer.Option(False, "--json", help="Print the change as JSON."),
) -> None:
    """Point a tenant at a new adapter under a higher version (the edit a promotion PR commits)."""
    from adaptergate.manifest.lifecycle import promote as do_promote

    res = do_promote(
        manifest, tenant, adapter, bump=bump.value if bump else None, version=version, base_model=base_model,
        holdout=holdout, card_file=card, creator=creator, data_source=data_source, dataset=dataset,
        dataset_size=dataset_size, task=task, domain=domain, language=language, dry_run=dry_run,
    )
    if as_json:
        _out(json.dumps(res.to_json(), ensure_ascii=False))
        return
    head = f"{res.old_version} -> {res.new_version}" if res.old_version else f"new tenant at {res.new_version}"
    _out(f"{res.tenant}: {head}")
    _out(f"  adapter: {res.path}")
    _out(f"  sha256:  {_sha_change(res.old_sha256, res.new_sha256)}")
    if not res.written:
        _out(f"dry run: {manifest} not written")
    else:
        _out(f"{'created' if res.created_manifest else 'wrote'} {manifest}")


@app.command()
def rollback(
    tenant: str = typer.Option(..., help="The tenant to roll back."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the manifest)."),
    to: Optional[str] = typer.Option(None, "--to", help="The version to return to (default: the previous one)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who decided (default $GITHUB_ACTOR or $USER)."),
    manifest: Path = MANIFEST_OPT,
    audit_log: Optional[Path] = typer.Option(
        None, "--audit-log", help="Only versions with an accepted gate decision in this audit log qualify."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the change; do not write the manifest."),
    as_json: bool = typer.Option(False, "--json", help="Print the change as JSON."),
) -> None:
    """Write a tenant's earlier version (from the manifest's git history) back, flagged as a rollback."""
    from adaptergate.manifest.lifecycle import rollback as do_rollback

    res = do_rollback(manifest, tenant, reason=reason, to=to, by=by, audit_log=audit_log, dry_run=dry_run)
    if as_json:
        _out(json.dumps(res.to_json(), ensure_ascii=False))
        return
    _out(f"{res.tenant}: {res.old_version} -> {res.new_version} (rollback, from commit {res.commit[:12]})")
    _out(f"  adapter: {res.path}")
    _out(f"  sha256:  {res.sha256}")
    _out(f"dry run: {manifest} not written" if not res.written else f"wrote {manifest}")


# ------------------------------------------------------------------- data

data_app = typer.Typer(
    help="Check JSONL data (training data or a holdout): schema, lengths, duplicates, diversity,"
    " overlap with holdouts.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("check")
def data_check(
    file: Path = typer.Argument(
        ..., metavar="FILE", help="The JSONL file to check: training data or a holdout."
    ),
    schema: Optional[Path] = typer.Option(
        None, "--schema", metavar="SCHEMA", help="JSON Schema (draft 2020-12) every record must satisfy."
    ),
    holdouts: Optional[list[Path]] = typer.Option(
        None, "--holdout", metavar="HOLDOUT", help="Holdout JSONL that FILE must not overlap (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    max_problems: int = typer.Option(
        20, "--max-problems", metavar="N", help="List at most this many problems and pairs."
    ),
    fail_under: Optional[float] = typer.Option(
        None, "--fail-under", metavar="RATE", help="Exit 1 when schema compliance (0-1) is below this rate."
    ),
) -> None:
    """Validate JSONL records and report data quality. Exit 1 if FILE overlaps a holdout (or
    compliance is below --fail-under), 2 if a file or the schema is unusable."""
    from adaptergate.holdout.datacheck import check_data, exit_code, print_report

    report = check_data(
        file, schema=schema, holdouts=holdouts or (), max_problems=max_problems, fail_under=fail_under
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        err = _err_console()
        for reason in report["verdict"]["reasons"]:
            err.print(f"adaptergate: {reason}", markup=False, highlight=False)
    else:
        print_report(report, _console(), max_items=max_problems)
    code = exit_code(report)
    if code:
        raise typer.Exit(code)


# -------------------------------------------------------------- calibrate


@app.command()
def calibrate(
    tenant: str = typer.Option(...),
    holdout_path: Path = typer.Option(..., "--holdout"),
    scorer_spec: str = typer.Option(..., "--scorer"),
    baseline: str = typer.Option(..., help="The production adapter: scored --repeats times."),
    repeats: int = typer.Option(3, "--repeats", help="Scorer runs used to measure noise (>= 2)."),
    churn: float = typer.Option(
        0.10, "--churn",
        help="Fraction of queries whose outcome changes between two equal-quality adapter versions.",
    ),
    alpha: float = typer.Option(0.05, "--alpha"),
    power: float = typer.Option(0.8, "--power", help="Detection probability the margins are sized for."),
    slice_min_size: int = typer.Option(3, "--slice-min-size"),
    config_path: Optional[Path] = typer.Option(None, "--config", envvar="ADAPTERGATE_CONFIG"),
    write: bool = typer.Option(False, "--write", help="Write the suggestion into --config for this tenant."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Suggest --epsilon / --slice-epsilon from the holdout size and the scorer's measured noise."""
    from adaptergate.decide.calibration import run_calibration
    from adaptergate.pipeline.settings import write_tenant_settings

    if write and config_path is None:
        raise UsageError("--write needs --config FILE (the tenant settings file to update)")
    report = run_calibration(
        tenant=tenant, holdout_path=holdout_path, scorer_spec=scorer_spec, baseline=baseline,
        repeats=repeats, churn=churn, alpha=alpha, power=power, slice_min_size=slice_min_size,
        max_line_bytes=max_line_bytes,
    )
    data = report.to_dict()
    if write and config_path is not None:
        values = {"epsilon": report.suggestion.epsilon, "slice_epsilon": report.suggestion.slice_epsilon,
                  "alpha": alpha, "slice_min_size": slice_min_size}
        from datetime import datetime, timezone

        write_tenant_settings(config_path, tenant, values, {
            "calibrated_at": datetime.now(timezone.utc).isoformat(), "baseline": baseline,
            "basis": report.suggestion.basis, "noise": report.noise.statement,
        })
        data["written_to"] = str(config_path)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    con = _console()
    s = report.suggestion
    con.print(f"tenant {tenant}: {report.noise.statement}", markup=False, highlight=False)
    con.print(f"suggested --epsilon {s.epsilon:g}", markup=False, highlight=False)
    if s.slice_epsilon is not None:
        con.print(
            f"suggested --slice-epsilon {s.slice_epsilon:g} (median eligible slice: {s.median_slice} queries;"
            f" the smallest, {s.smallest_slice}, can only resolve larger drops)", markup=False, highlight=False,
        )
    con.print(f"basis: {s.basis}", markup=False, highlight=False)
    if write:
        con.print(f"written to {config_path} (adaptergate gate --config {config_path} uses it)", markup=False)


# ------------------------------------------------------------------- misc


@app.command()
def version() -> None:
    """Print the adaptergate version."""
    typer.echo(__version__)


@demo_app.callback()
def demo(ctx: typer.Context) -> None:
    """With no sub-command: the offline PEFT demo (tiny model, two real LoRA adapters)."""
    if ctx.invoked_subcommand is not None:
        return
    _demo_adapters()


def _demo_adapters() -> None:
    """Build (once, cached) a tiny Llama and two LoRA adapters, then gate them for real."""
    import time

    from adaptergate.pipeline.gate import GateRequest, run_gate
    from adaptergate.scoring.model import ModelInputs
    from adaptergate.models import GateConfig

    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise InvalidInputError(
            f"the demo loads real adapters and needs the ML stack ({exc.name} is missing):"
            " pip install torch==2.13.0 '.[peft]' — or run 'adaptergate demo mock' for the scorer-only example"
        ) from None
    from adaptergate.demos.tinymodel import build_demo_assets

    con, err = _console(), _err_console()
    t0 = time.perf_counter()
    assets = build_demo_assets(progress=lambda msg: err.print(f"[demo] {msg}", markup=False, highlight=False))
    err.print(f"[demo] model and adapters ready in {time.perf_counter() - t0:.1f} s ({assets.root})",
              markup=False, highlight=False)
    con.print(
        f"$ adaptergate gate --tenant demo --holdout {assets.holdout} --base-model {assets.base_dir}"
        f" --baseline-adapter {assets.baseline_adapter} --candidate-adapter {assets.candidate_adapter}"
        " --metric exact --slice-epsilon 0.10\n",
        markup=False, highlight=False,
    )
    request = GateRequest(
        tenant="demo", candidate=assets.candidate_adapter.name, baseline=assets.baseline_adapter.name,
        holdout_path=assets.holdout, scorer_spec="", config=GateConfig(slice_epsilon=0.10),
        model=ModelInputs(
            base_model=str(assets.base_dir), baseline_adapter=assets.baseline_adapter,
            candidate_adapter=assets.candidate_adapter, metric="exact", cache_dir=assets.root / "cache",
        ),
    )
    with _progress(enabled=True) as tick:
        decision = run_gate(request, progress=tick)
    _emit(decision, Format.human, show_failures=5, staleness_threshold_days=30)
    shown = [r for r in decision.per_query if r["delta"] < 0 and r.get("candidate_output") is not None][:3]
    if shown:
        con.print("\nWhat the adapters answered where the candidate regressed:", markup=False)
        for r in shown:
            con.print(
                f"  {r['query_id']}: baseline {r.get('baseline_output')!r} -> candidate {r.get('candidate_output')!r}",
                markup=False, highlight=False,
            )
    con.print(
        f"\n(the gate exited {1 if not decision.accepted else 0}: that is what CI sees; the demo itself"
        f" succeeded in {time.perf_counter() - t0:.1f} s)", markup=False, highlight=False,
    )


@demo_app.command("mock")
def demo_mock() -> None:
    """Gate the bundled example with the mock scorer (48 queries, no model)."""
    from adaptergate.examples import (
        EXAMPLE_BASELINE, EXAMPLE_CANDIDATE, EXAMPLE_HOLDOUT, EXAMPLE_SCORER, EXAMPLE_TENANT,
    )
    from adaptergate.pipeline.gate import GateRequest, run_gate
    from adaptergate.models import GateConfig

    con = _console()
    con.print(
        f"$ adaptergate gate --tenant {EXAMPLE_TENANT} --candidate {EXAMPLE_CANDIDATE}"
        f" --baseline {EXAMPLE_BASELINE} --holdout {EXAMPLE_HOLDOUT} --scorer {EXAMPLE_SCORER}"
        " --slice-epsilon 0.10\n",
        markup=False, highlight=False,
    )
    decision = run_gate(GateRequest(
        tenant=EXAMPLE_TENANT, candidate=EXAMPLE_CANDIDATE, baseline=EXAMPLE_BASELINE,
        holdout_path=EXAMPLE_HOLDOUT, scorer_spec=EXAMPLE_SCORER, config=GateConfig(slice_epsilon=0.10),
    ))
    _emit(decision, Format.human, show_failures=5, staleness_threshold_days=30)
    con.print(
        f"\n(the gate exited {1 if not decision.accepted else 0}: that is what CI sees; the demo"
        " itself succeeded)", markup=False, highlight=False,
    )


@demo_app.command("silent")
def demo_silent() -> None:
    """Silent slice collapse: aggregate-only accepts, --slice-epsilon rejects."""
    from adaptergate.demos.catalog import run_silent

    run_silent(_console())


@demo_app.command("classifier")
def demo_classifier() -> None:
    """Two numpy intent classifiers; the candidate learnt from contaminated refund labels."""
    from adaptergate.demos.catalog import run_classifier

    run_classifier(_console())


@demo_app.command("sql")
def demo_sql() -> None:
    """A generative (text-to-SQL) scorer; the candidate writes '= NULL' for 'IS NULL'."""
    from adaptergate.demos.catalog import run_sql

    run_sql(_console())


# --- recipe library (0.5.4's `recipes list|show|seed` and `recommend-cmd`) ---
# 0.5.4 exits 1 for "not found"-style outcomes (empty library, unknown recipe
# id, seed target exists); those keep exit 1 for compatibility. Unreadable or
# malformed files raise InvalidInputError (exit 2).

recipes_app = typer.Typer(help="Manage the recipe library (repair recipes for rejected adapters).",
                          no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")
RECIPES_OPT = typer.Option(..., "--recipes", help="The recipes JSONL file.")


class RecommendFormat(str, Enum):
    human = "human"
    json = "json"


def _compat_exit_1(message: str) -> None:
    _err_console().print(f"adaptergate: {message}", markup=False, highlight=False)
    raise typer.Exit(1)  # 0.5.4 exits 1 here: kept for compatibility


@recipes_app.command("list")
def recipes_list(recipes_path: Path = RECIPES_OPT) -> None:
    """One JSON line per recipe. Exit 1 if the library is empty or missing."""
    from adaptergate.recipes.library import RecipeStore

    store = RecipeStore(recipes_path)
    if len(store) == 0:
        _compat_exit_1(f"no recipes in {recipes_path}. Run adaptergate recipes seed --recipes"
                       f" {recipes_path} to populate it from the bundled seed library.")
    for r in store.list_recipes():
        typer.echo(json.dumps({"recipe_id": r.recipe_id, "name": r.name,
                               "intervention_type": r.intervention_type, "source_paper": r.source_paper_arxiv}))


@recipes_app.command("show")
def recipes_show(recipe_id: str = typer.Argument(..., help="Id of the recipe."),
                 recipes_path: Path = RECIPES_OPT) -> None:
    """Print one recipe as stored. Exit 1 if there is no recipe with that id."""
    from adaptergate.recipes.library import RecipeStore

    store = RecipeStore(recipes_path)
    recipe = store.get_recipe(recipe_id)
    if recipe is None:
        missing = "" if store.recipes_file_exists else " (the file does not exist)"
        _compat_exit_1(f"no recipe with id {recipe_id!r} in {recipes_path}{missing}.")
    typer.echo(recipe.to_json())


@recipes_app.command("seed")
def recipes_seed(
    recipes_path: Path = typer.Option(..., "--recipes", help="Where to write the seed recipes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing recipes file."),
) -> None:
    """Write the bundled seed library (7 recipes). Exit 1 if the file exists without --overwrite."""
    from adaptergate.recipes.library import seed_recipes_bytes
    from adaptergate.storage import atomic_write

    if recipes_path.is_dir():
        raise InvalidInputError(f"--recipes {recipes_path} is a directory")
    if recipes_path.exists() and not overwrite:
        _compat_exit_1(f"{recipes_path} already exists. Pass --overwrite to replace it.")
    data = seed_recipes_bytes()
    atomic_write(recipes_path, [data])
    n = sum(1 for line in data.decode("utf-8").splitlines() if line.strip())
    typer.echo(json.dumps({"seeded": str(recipes_path), "n_recipes": n}))


REF_HELP = (
    "A decision JSON file (gate --format json), FILE:N (decision record N of an audit log: 0 = first,"
    " -1 = last), or @last, @last-rejected, @last-accepted (with --audit-log)."
)
APPLICATIONS_OPT = typer.Option(
    None, "--applications", help="Application log (default: applications.jsonl beside --recipes)."
)
NOTE_OPT = typer.Option(None, "--note", help="Free text stored with the application.")


def _recipe_store(recipes_path: Path, applications_path: Optional[Path]) -> Any:
    from adaptergate.recipes.library import RecipeStore

    store = RecipeStore(recipes_path, applications_path)
    if not store.recipes_file_exists:
        raise InvalidInputError(f"recipes file not found: {recipes_path} (create it with"
                                f" adaptergate recipes seed --recipes {recipes_path})")
    return store


@recipes_app.command("log")
def recipes_log(
    recipe_id: str = typer.Option(..., "--recipe", help="Id of the recipe that was applied."),
    decision_ref: str = typer.Option(..., "--decision", help="The rejection it was applied to. " + REF_HELP),
    outcome_ref: str = typer.Option(
        ..., "--outcome", help="The gate decision after applying it (same forms). A selector takes its tenant"
        " and time bound from the other REF: --decision @last-rejected is the newest rejection before --outcome."
    ),
    audit_log: Optional[Path] = typer.Option(None, "--audit-log", help="The audit log @-selectors read."),
    tenant: Optional[str] = typer.Option(
        None, "--tenant", help="Select only this tenant's decisions; a decision file must be this tenant's."
    ),
    recipes_path: Path = RECIPES_OPT,
    applications_path: Optional[Path] = APPLICATIONS_OPT,
    note: Optional[str] = NOTE_OPT,
    output_format: RecommendFormat = typer.Option(RecommendFormat.human, "--format", "-f", help="human or json."),
) -> None:
    """Log an application of a recipe from two real gate decisions: the rejection and the later outcome."""
    from adaptergate.recipes.library import application_json, print_application, resolve_application_refs

    store = _recipe_store(recipes_path, applications_path)
    decision, outcome = resolve_application_refs(decision_ref, outcome_ref, audit_log=audit_log, tenant=tenant)
    app_ = store.log_outcome(recipe_id=recipe_id, decision=decision.decision, outcome=outcome.decision, note=note)
    record = store.efficacy(recipe_id, app_.driver_slice_tag)
    if output_format is RecommendFormat.json:
        typer.echo(json.dumps({**application_json(app_, record), "decision_source": decision.source,
                               "outcome_source": outcome.source}, indent=2, ensure_ascii=False))
        return
    print_application(app_, record, console=_console())


@recipes_app.command("verify")
def recipes_verify(
    recipe_id: str = typer.Option(..., "--recipe", help="Id of the recipe that was applied."),
    decision_ref: str = typer.Option(..., "--decision", help="The rejection it was applied to. " + REF_HELP),
    candidate: str = typer.Option(..., "--candidate", help="The adapter after applying the recipe."),
    holdout_path: Path = typer.Option(..., "--holdout", help="The tenant's JSONL held-out set."),
    scorer_spec: str = typer.Option(..., "--scorer", help="Scorer as 'module:function'."),
    audit_log: Path = typer.Option(
        ..., "--audit-log", help="Audit log: @-selectors read it, the new decision is appended to it."
    ),
    tenant: Optional[str] = typer.Option(
        None, "--tenant", help="Select only this tenant's decisions; a decision file must be this tenant's."
    ),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Default: the rejection's baseline."),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="Default: the rejection's."),
    slice_epsilon: Optional[float] = typer.Option(None, "--slice-epsilon", help="Default: the rejection's."),
    rule: Optional[str] = typer.Option(
        None, "--rule", help="Decision rule, stat or threshold (gate's --decision). Default: the rejection's."
    ),
    recipes_path: Path = RECIPES_OPT,
    applications_path: Optional[Path] = APPLICATIONS_OPT,
    note: Optional[str] = NOTE_OPT,
    output_format: RecommendFormat = typer.Option(RecommendFormat.human, "--format", "-f", help="human or json."),
) -> None:
    """Re-gate the adapter a recipe produced, under the rejection's settings, and log the outcome.

    Exit 0 accepted, 1 rejected (the new gate's verdict).
    """
    from adaptergate.pipeline.job import run_job
    from adaptergate.pipeline.options import GateOptions, build_job
    from adaptergate.recipes.library import (
        application_json, check_rejection, print_application, resolve_decision_ref, settings_of,
    )

    if rule is not None and rule not in ("stat", "threshold"):
        raise UsageError(f"--rule must be stat or threshold, got {rule!r}")
    store = _recipe_store(recipes_path, applications_path)
    if recipe_id not in store:
        raise InvalidInputError(f"no recipe with id {recipe_id!r} in {recipes_path}")
    resolved = resolve_decision_ref(decision_ref, option="--decision", audit_log=audit_log, tenant=tenant)
    rejection = resolved.decision
    check_rejection(rejection)
    given = {"epsilon": epsilon, "slice_epsilon": slice_epsilon, "decision": rule}
    settings = {**settings_of(rejection), **{k: v for k, v in given.items() if v is not None}}
    job = build_job(GateOptions(
        tenant=rejection.tenant_id, holdout=holdout_path, candidate=candidate,
        baseline=baseline if baseline is not None else rejection.baseline_id, scorer=scorer_spec,
        audit_log=audit_log, **settings,
    ))
    outcome = run_job(job)
    app_ = store.log_outcome(recipe_id=recipe_id, decision=rejection, outcome=outcome, note=note)
    record = store.efficacy(recipe_id, app_.driver_slice_tag)
    code = int(ExitCode.ACCEPTED if outcome.accepted else ExitCode.REJECTED)
    if output_format is RecommendFormat.json:
        typer.echo(json.dumps({
            "accepted": outcome.accepted, "verdict": outcome.verdict, "exit_code": code,
            "decision_source": resolved.source, "settings": settings,
            "outcome": json.loads(outcome.compact().to_json(indent=None)), **application_json(app_, record),
        }, indent=2, ensure_ascii=False))
        raise typer.Exit(code)
    con = _console()
    con.print(
        f"{outcome.verdict}: {outcome.candidate_id} vs {outcome.baseline_id}, score"
        f" {outcome.score_baseline:.3f} → {outcome.score_candidate:.3f} (Δ={outcome.delta:+.3f});"
        f" appended to {audit_log}", markup=False, highlight=False,
    )
    con.print("settings (the rejection's unless given): "
              + ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None), markup=False, highlight=False)
    print_application(app_, record, console=con)
    raise typer.Exit(code)


@app.command("recommend-cmd")
def recommend_cmd(
    decision_path: Path = typer.Option(..., "--decision", help="A gate decision JSON file or a JSONL audit log."),
    recipes_path: Path = RECIPES_OPT,
    applications_path: Optional[Path] = typer.Option(
        None, "--applications", help="Application log (default: applications.jsonl beside --recipes)."
    ),
    line: int = typer.Option(
        -1, "--line", help="Which decision record of an audit log: 0 = first, -1 = last (default)."
        " Counts decision records only; records of failed runs are skipped."
    ),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Maximum recommendations."),
    output_format: RecommendFormat = typer.Option(RecommendFormat.human, "--format", "-f", help="human or json."),
) -> None:
    """Recommend repair recipes for a rejected decision's driver slice, best first."""
    from adaptergate.recipes.library import (
        RecipeStore, print_recommendations, read_decision, recommend, recommendations_json,
    )

    decision = read_decision(decision_path, line=line)
    store = RecipeStore(recipes_path, applications_path)
    if not store.recipes_file_exists:
        raise InvalidInputError(f"recipes file not found: {recipes_path} (create it with"
                                f" adaptergate recipes seed --recipes {recipes_path})")
    recs = recommend(decision, store, top_k=top_k)
    if output_format is RecommendFormat.json:
        typer.echo(json.dumps(recommendations_json(recs), indent=2))
        return
    print_recommendations(decision, recs, console=_console(), err_console=_err_console(), store=store)


# ------------------------------------------------------------------- main


def _print_error(exc: BaseException, code: int) -> None:
    """The one error printer: one line (and the details), secrets scrubbed, control
    characters shown rather than obeyed; the traceback only with --debug."""
    from adaptergate.trust import inert, scrub

    err = _err_console()

    def say(text: str) -> None:
        err.print(scrub(inert(text, keep_newlines=True)), markup=False, highlight=False)

    if isinstance(exc, AdaptergateError):
        say(f"adaptergate: error: {exc.message}")
        for line in exc.details:
            say(f"  {line}")
        total = getattr(exc, "total", None)
        if total and total > len(exc.details):
            say(f"  ... and {total - len(exc.details)} more")
    else:
        say(f"adaptergate: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
    if _state["debug"]:
        tb = getattr(exc, "traceback_text", None) or "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)
        )
        say(tb)


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """Exception classes of the click that typer runs on.

    Recent typer vendors click (``typer._click``); older typer uses click
    itself. Collect the class of that name from both, whichever exist.
    """
    found: set[type[BaseException]] = set()
    for probe in (typer.BadParameter, typer.Exit, typer.Abort):
        found.update(c for c in probe.__mro__ if c.__name__ == name)
    try:
        import click.exceptions as ce  # type: ignore[import-not-found]

        if hasattr(ce, name):
            found.add(getattr(ce, name))
    except ImportError:
        pass
    return tuple(found)


_EXIT = _click_classes("Exit")
_ABORT = _click_classes("Abort")
_CLICK_ERROR = _click_classes("ClickException")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args or os.environ.get("ADAPTERGATE_DEBUG", "") not in ("", "0")
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click *returns* the code of an Exit raised
        # inside a command (the verdict) instead of raising it.
        rv = command.main(args=args, prog_name="adaptergate", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except _EXIT as exc:
        code = int(getattr(exc, "exit_code", 0) or 0)
    except _ABORT:
        _err_console().print("adaptergate: aborted", markup=False)
        code = 130
    except _CLICK_ERROR as exc:  # usage errors: bad option, missing option, bad value
        exc.show()  # type: ignore[attr-defined]
        code = int(ExitCode.INVALID_INPUT)
    except BrokenPipeError:
        code = 0
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        if isinstance(exc, SystemExit):
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            code = int(exit_code_for(exc))
            _print_error(exc, code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
    if argv is None:
        # Every file we write is complete and fsynced by now. Skip interpreter
        # teardown: freeing a million-query holdout object by object takes
        # seconds and changes nothing.
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
