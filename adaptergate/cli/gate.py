"""``adaptergate gate``: one tenant's candidate against its baseline, or with
``--manifest`` every tenant whose adapter changed since ``--base-ref``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from adaptergate.cli.common import MAX_LINE_OPT, Format, _console, _emit, _progress, count_records
from adaptergate.errors import ExitCode, UsageError


def register(app: typer.Typer) -> None:
    app.command()(gate)


def _slice_epsilon(value: Optional[str]) -> Any:
    """``--slice-epsilon``: a number, or ``off`` (aggregate only)."""
    from adaptergate.models import SLICE_GATING_OFF

    if value is None:
        return None
    text = value.strip().lower()
    if text == SLICE_GATING_OFF:
        return SLICE_GATING_OFF
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number or 'off'") from None


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
    backend: Optional[str] = typer.Option(
        None, "--backend", metavar="peft|vllm|openai",
        help="What scores the adapters: peft (this process, default), vllm (vLLM's engine in this process)"
        " or openai (an OpenAI-compatible multi-LoRA server: --server-url).",
    ),
    server_url: Optional[str] = typer.Option(
        None, "--server-url", help="--backend openai: the server's base URL (e.g. http://10.0.0.5:8000).",
    ),
    server_api_key_env: Optional[str] = typer.Option(
        None, "--server-api-key-env", metavar="VAR", help="Environment variable holding the server's API key.",
    ),
    server_concurrency: Optional[int] = typer.Option(
        None, "--server-concurrency", min=1, help="Requests in flight to the server [default: 8].",
    ),
    tensor_parallel_size: Optional[int] = typer.Option(
        None, "--tensor-parallel-size", min=1, help="--backend vllm: GPUs one engine spans.",
    ),
    parity_sample: Optional[int] = typer.Option(
        None, "--parity-sample", min=1, metavar="N",
        help="Also answer N queries with PEFT and report agreement with the serving backend.",
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
    slice_epsilon: Optional[str] = typer.Option(
        None, "--slice-epsilon", metavar="E|off", callback=_slice_epsilon,
        help="Max acceptable drop within any slice (the silent-regression net); 'off' gates the aggregate"
        " only. [default: 0.10 with --decision stat; off with --decision threshold, as in 0.5.4]",
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
    """Evaluate a candidate adapter against the baseline.

    Exit 0 accepted, 1 rejected, 2 invalid input or usage, 3 evaluation failed.
    """
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
    with _job_progress(job) as tick:
        decision = run_job(job, progress=tick)
    _emit(decision, fmt, show_failures=show_failures, staleness_threshold_days=staleness_threshold_days,
          recipes=recipes_path)
    raise typer.Exit(int(ExitCode.ACCEPTED if decision.accepted else ExitCode.REJECTED))


def _job_progress(job: Any) -> _progress:
    """The progress bar of one gate job (stderr, on a terminal), with its total known up front:
    the holdout's queries (or ``--sample``) × the adapters scored × ``--repeats``. A model gate
    says "loading the model" until the first answer; its total counts the baseline's rows too,
    which the result cache may answer without scoring."""

    def total() -> int | None:
        n = count_records(job.holdout_path)
        if n is None:
            return None
        if job.sample is not None:
            n = min(n, job.sample)
        adapters = 2 if job.model is not None or job.baseline is not None else 1
        return n * adapters * (job.repeats if job.model is None else 1)

    return _progress(enabled=True, total=total,
                     starting="loading the model" if job.model is not None else "scoring")


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
            with _job_progress(job) as tick:
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
        from adaptergate.report import render_manifest

        sys.stdout.write(render_manifest(outcome, fmt.value, show_failures=show_failures,
                                         manifest_name=manifest.name))
    return outcome.exit_code
