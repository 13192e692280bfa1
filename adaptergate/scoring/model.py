"""Scoring with real adapters: validate, load once, evaluate both, cache the baseline.

``adaptergate gate --base-model B --baseline-adapter DIR --candidate-adapter DIR
--metric exact`` comes here instead of a user scorer:

1. both adapters are validated against the base without torch
   (:mod:`adaptergate.backends.adapters`): config, every LoRA tensor's shape, pickle
   weights refused, sha256 recorded;
2. the base is loaded once with both adapters attached (:mod:`adaptergate.backends.peft`);
3. baseline and candidate rows are evaluated in the same mixed-adapter
   batches — by greedy generation scored with the metric, or, for exact
   match against a gold answer, by teacher-forced scoring (identical
   verdicts, no decode loop);
4. baseline results are cached, keyed by (base sha256, baseline adapter
   sha256, query, metric, generation settings), so an unchanged baseline is
   not rescored on the next pull request.

``--metric judge`` (:mod:`adaptergate.metrics.judge`) always generates; the
generation cache then keeps the baseline's answers only, and an LLM judge
scores both adapters' answers with its own cache (an unchanged baseline's
answers are not judged again).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptergate.errors import EvaluationError, InvalidInputError
from adaptergate.storage import cache_root, locked_append

if TYPE_CHECKING:
    from adaptergate.metrics.judge import JudgeSettings

CACHE_VERSION = 1


@dataclass(frozen=True)
class ModelInputs:
    base_model: str
    baseline_adapter: Path
    candidate_adapter: Path
    metric: str = "exact"
    mode: str = "auto"  # auto | generate | teacher-forced
    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()
    chat_template: bool = False
    batch_size: int = 16
    dtype: str | None = None
    device: str | None = None
    quantize: str | None = None
    allow_pickle: bool = False
    base_sha256: str | None = None
    cache_dir: Path | None = None
    threads: int | None = None
    judge: JudgeSettings | None = None
    """The judge of ``metric="judge"`` (:class:`adaptergate.metrics.judge.JudgeSettings`)."""
    trust_remote_code: bool = False
    """Let transformers run Python code shipped with the base or judge model (``auto_map``). Only the
    command line's ``--trust-remote-code`` sets it: never the Action, never a manifest."""
    backend: str = "peft"
    """The model backend that scores the queries (:mod:`adaptergate.backends.base`)."""
    server_url: str | None = None
    """``backend="openai"``: the OpenAI-compatible server (the workflow's, never a manifest's)."""
    server_api_key_env: str | None = None
    """The environment variable holding the server's API key (read when the backend opens)."""
    server_concurrency: int | None = None
    tensor_parallel_size: int | None = None
    """``backend="vllm"``: GPUs one engine spans."""
    parity_sample: int | None = None
    """Score this many queries with PEFT too and report agreement with the serving backend."""


@dataclass
class ModelScores:
    baseline: np.ndarray
    candidate: np.ndarray
    baseline_outputs: list[str | None]
    candidate_outputs: list[str | None]
    mode: str
    cached_baseline: int
    info: dict[str, Any] = field(default_factory=dict)
    judge: Any = None
    """``metric="judge"``: the :class:`adaptergate.metrics.judge.JudgeOutcome` (per-criterion scores)."""


def default_cache_dir() -> Path:
    """Where results are cached without ``--cache-dir`` (:func:`adaptergate.storage.cache_root`)."""
    return cache_root()


def query_hash(payload: dict[str, Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:32]


def _cache_path(inputs: ModelInputs, base_sha: str, adapter_sha: str, mode: str, metric_key: str,
                *, engine: dict[str, Any] | None = None) -> Path:
    """Where a baseline's results are kept: keyed by everything its answers depend on. ``engine``
    is a serving backend's identity (name, version, dtype, quantisation): a PEFT result is never
    reused for vLLM, nor one engine version's for another (PEFT's key is unchanged since 0.5)."""
    key = json.dumps(
        {
            **({"engine": engine} if engine is not None else {}),
            "v": CACHE_VERSION, "base": base_sha, "adapter": adapter_sha, "metric": metric_key, "mode": mode,
            "max_new_tokens": inputs.max_new_tokens, "stop": list(inputs.stop),
            "chat_template": inputs.chat_template, "dtype": inputs.dtype, "quantize": inputs.quantize,
            # the model's own code may change its answers: never share results with a run without it
            **({"trust_remote_code": True} if inputs.trust_remote_code else {}),
        },
        sort_keys=True,
    ).encode("utf-8")
    root = inputs.cache_dir or default_cache_dir()
    return root / "results" / (hashlib.sha256(key).hexdigest()[:40] + ".jsonl")


def _read_cache(path: Path) -> dict[str, tuple[float, str | None]]:
    out: dict[str, tuple[float, str | None]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            # the judge metric caches answers only (score null): its scores live in the judge cache
            score = float("nan") if rec["score"] is None else float(rec["score"])
            out[rec["q"]] = (score, rec.get("output"))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line from a killed run: ignore it, it is rescored
    return out


def score_with_adapters(
    inputs: ModelInputs,
    payloads: list[dict[str, Any]],
    ids: list[str],
    *,
    progress: Callable[[int], None] | None = None,
) -> ModelScores:
    from adaptergate.backends.adapters import validate_adapter
    from adaptergate.backends.base_model import check_base_hash, inspect_base
    from adaptergate.metrics import build_metric, gold_of, metric_info
    from adaptergate.backends.base import auto_teacher_forcing, open_backend
    from adaptergate.backends.base_model import served_base
    from adaptergate.backends.peft import check_no_remote_code

    judging = metric_info(inputs.metric).needs_both_answers  # the judge scores both answers together
    if judging:
        if inputs.judge is None:
            raise InvalidInputError(
                "--metric judge needs a judge: --judge-model DIR (a local causal LM) or --judge-url URL"
                " with --judge-name (an OpenAI-compatible server)"
            )
        if inputs.mode == "teacher-forced":
            raise InvalidInputError("--metric judge scores generated answers: use --eval-mode generate or auto")
        metric = None
    else:
        metric = build_metric(inputs.metric)
    base_path = Path(inputs.base_model)
    local_base = inputs.backend != "openai" or base_path.is_dir()
    if local_base:
        # before anything is hashed or loaded: model files that ask to run their own code (auto_map)
        check_no_remote_code(inputs.base_model, what="base model", trust_remote_code=inputs.trust_remote_code)
    if inputs.judge is not None and inputs.judge.model is not None:
        check_no_remote_code(inputs.judge.model, what="judge model", trust_remote_code=inputs.trust_remote_code)
    if local_base:
        base = inspect_base(base_path, allow_pickle=inputs.allow_pickle)
        if inputs.base_sha256:
            check_base_hash(base, inputs.base_sha256)
    else:
        # a base the server serves by name: the server checks it is the one (GET /v1/models)
        base = served_base(inputs.base_model)
    b_info = validate_adapter(inputs.baseline_adapter, base, allow_pickle=inputs.allow_pickle, name="baseline adapter")
    c_info = validate_adapter(inputs.candidate_adapter, base, allow_pickle=inputs.allow_pickle, name="candidate adapter")

    if metric is not None:
        metric.check_golds(payloads, ids)  # every unusable gold at once, before any model is loaded
    golds: list[Any] = [gold_of(p) for p in payloads]
    if metric is not None and metric.exact_match_gold and metric.spec.options.get("strip", True):
        # the metric compares stripped text: force the stripped gold
        golds = [g.strip() if isinstance(g, str) else g for g in golds]
    mode = inputs.mode
    if mode not in ("auto", "generate", "teacher-forced"):
        raise InvalidInputError(f"--eval-mode must be auto, generate or teacher-forced, got {mode!r}")
    tf_ok = metric is not None and metric.exact_match_gold and all(isinstance(g, str) for g in golds) \
        and not inputs.stop
    if mode == "teacher-forced" and not tf_ok:
        raise InvalidInputError(
            "teacher-forced scoring is exact match against one gold string per query: use --metric exact"
            " (no normalisation options), string gold answers and no stop strings, or --eval-mode generate"
        )
    if judging:
        prompts_all = [_prompt_of(p, q) for p, q in zip(payloads, ids)]  # every prompt, before loading

    settings = generation_settings(inputs)
    # PEFT's adapter names are module-name parts: the user's ids ("1.4.0", "acme/v19")
    # may not be valid ones, so the runner knows the two adapters by role.
    baseline_name, candidate_name = "baseline", "candidate"
    runner = open_backend(
        inputs.backend, inputs.base_model if not local_base else base_path,
        {baseline_name: Path(inputs.baseline_adapter), candidate_name: Path(inputs.candidate_adapter)}, settings,
    )
    try:
        if mode == "auto":
            mode = "teacher-forced" if tf_ok and auto_teacher_forcing(runner) else "generate"
        elif mode == "teacher-forced" and not runner.supports_teacher_forcing:
            raise InvalidInputError(
                f"--eval-mode teacher-forced: the {inputs.backend} backend cannot teacher-force these adapters"
                f" ({getattr(runner, 'teacher_forcing_note', 'no prompt log-probabilities')}); use --eval-mode generate"
            )
        engine = None if inputs.backend == "peft" else runner.identity()
        cache_path = _cache_path(inputs, base.sha256, b_info.sha256, mode, "judge" if judging else str(metric),
                                 engine=engine)
        cache = _read_cache(cache_path)
        hashes = [query_hash(p) for p in payloads]
        todo_base = [i for i, h in enumerate(hashes) if h not in cache]
        n = len(payloads)
        rows = todo_base + list(range(n))
        if callable(getattr(progress, "total", None)):
            progress.total(len(rows))  # what this run evaluates: cached baseline rows are not
        names = [baseline_name] * len(todo_base) + [candidate_name] * n
        prompts = [_prompt_of(payloads[i], ids[i]) for i in rows]
        outputs: list[str | None]
        if mode == "teacher-forced":
            with _naming_rows(ids, rows, names):
                passed, _ = runner.teacher_forced(prompts, [golds[i] for i in rows], names, progress=progress)
            scores = [1.0 if ok else 0.0 for ok in passed]
            outputs = [None] * len(rows)
        else:
            if inputs.max_new_tokens:
                max_new = inputs.max_new_tokens
            elif judging and any(g is None for g in golds):
                max_new = JUDGE_DEFAULT_MAX_NEW_TOKENS  # no gold answer to size the answers by
            else:
                max_new = _max_new_tokens(runner, golds)
            with _naming_rows(ids, rows, names):
                outputs = list(runner.generate(prompts, names, max_new_tokens=max_new, progress=progress))
            if metric is None:
                scores = [None] * len(rows)  # type: ignore[list-item]  # judged below, cached as answers only
            else:
                scores = [float(metric(out, payloads[i], query_id=ids[i])) for out, i in zip(outputs, rows)]

        base_scores = np.empty(n)
        base_out: list[str | None] = [None] * n
        for i, h in enumerate(hashes):
            if h in cache:
                base_scores[i], base_out[i] = cache[h]
        fresh = []
        for k, i in enumerate(todo_base):
            base_scores[i], base_out[i] = (float("nan") if scores[k] is None else scores[k]), outputs[k]
            fresh.append(json.dumps({"q": hashes[i], "score": scores[k], "output": outputs[k]}, ensure_ascii=False))
        if fresh:
            locked_append(cache_path, fresh)
        off = len(todo_base)
        cand_out = outputs[off:]
        judged = None
        if judging:
            judged, base_scores, cand_scores = _judge(
                inputs, settings, payloads, ids, prompts_all, golds, hashes, base_out, cand_out, runner, progress,
            )
        else:
            cand_scores = np.asarray(scores[off:], dtype=np.float64)

        if mode == "teacher-forced":
            # show what the adapters actually answer where the candidate regressed
            bad = [i for i in range(n) if cand_scores[i] < base_scores[i]]
            if bad:
                max_new = _max_new_tokens(runner, [golds[i] for i in bad])
                bad_names = [baseline_name] * len(bad) + [candidate_name] * len(bad)
                with _naming_rows(ids, bad * 2, bad_names):
                    texts = runner.generate(
                        [_prompt_of(payloads[i], ids[i]) for i in bad] * 2, bad_names, max_new_tokens=max_new,
                    )
                for k, i in enumerate(bad):
                    base_out[i] = texts[k]
                    cand_out[i] = texts[len(bad) + k]
        info = {
            "base_model": str(base_path), "base_sha256": base.sha256,
            "baseline_adapter_sha256": b_info.sha256, "candidate_adapter_sha256": c_info.sha256,
            "metric": "judge" if judging else str(metric), "mode": mode, "device": runner.device,
            "cached_baseline_queries": n - len(todo_base), "forward_passes": runner.stats.forward_passes,
            "seconds": round(runner.stats.seconds, 3), "backend": inputs.backend,
            "backend_stats": dict(runner.stats.extra),  # load time, peak memory, batch sizes, tokens
            **({"engine": engine, "load_seconds": runner.stats.extra.get("load_seconds")}
               if engine is not None else {}),
        }
        if inputs.parity_sample:
            from adaptergate.scoring.parity import gate_parity

            info["parity"] = gate_parity(
                inputs, runner, candidate_name, payloads, ids, golds, sample=inputs.parity_sample,
                settings=settings, progress=progress,
            ).summary()
        if judged is not None:
            st = judged.stats
            info["judge"] = {
                "judge": judged.judge, "backend": judged.backend, "pairwise": judged.pairwise,
                "judged": st.judged, "cached": st.cached, "repairs": st.repairs, "fallbacks": st.fallbacks,
                "calls": st.calls, "seconds": round(st.seconds, 3),
                "over_context": st.over_context, "context": st.context,
            }
        return ModelScores(
            baseline=base_scores, candidate=cand_scores, baseline_outputs=base_out, candidate_outputs=cand_out,
            mode=mode, cached_baseline=n - len(todo_base), info=info, judge=judged,
        )
    finally:
        runner.close()  # whatever happens: a shared base goes back clean


def generation_settings(inputs: ModelInputs) -> Any:
    """The :class:`~adaptergate.backends.base.GenerationSettings` of a job's model inputs: the
    token policy shared by every backend, and the chosen backend's own options."""
    from adaptergate.backends.base import GenerationSettings

    options: dict[str, Any] = {}
    if inputs.backend == "openai":
        api_key = None
        if inputs.server_api_key_env:
            from adaptergate.trust import register_secret

            api_key = os.environ.get(inputs.server_api_key_env, "").strip() or None
            if api_key is None:
                raise InvalidInputError(f"--server-api-key-env: ${inputs.server_api_key_env} is empty or unset")
            register_secret(api_key)
        options.update(server_url=inputs.server_url, api_key=api_key, concurrency=inputs.server_concurrency)
        for name, var in (("timeout", "ADAPTERGATE_SERVER_TIMEOUT"), ("retries", "ADAPTERGATE_SERVER_RETRIES"),
                          ("backoff", "ADAPTERGATE_SERVER_BACKOFF")):
            if os.environ.get(var):
                options[name] = os.environ[var]
    if inputs.backend == "vllm" and inputs.tensor_parallel_size:
        options["tensor_parallel_size"] = inputs.tensor_parallel_size
    return GenerationSettings(
        max_new_tokens=inputs.max_new_tokens, stop=inputs.stop, chat_template=inputs.chat_template,
        batch_size=inputs.batch_size, dtype=inputs.dtype, device=inputs.device, quantize=inputs.quantize,
        threads=inputs.threads, trust_remote_code=inputs.trust_remote_code, options=options,
    )


@contextmanager
def _naming_rows(ids: list[str], rows: list[int], roles: list[str]) -> Iterator[None]:
    """A backend's failure on one row (:class:`~adaptergate.backends.openai.RowError`) becomes
    an evaluation error naming the query and the adapter."""
    try:
        yield
    except EvaluationError as exc:
        row = getattr(exc, "row", None)
        if row is None or not 0 <= row < len(rows):
            raise
        raise EvaluationError(f"query {ids[rows[row]]!r} ({roles[row]} adapter): {exc.message}") from exc


JUDGE_DEFAULT_MAX_NEW_TOKENS = 256
"""``--metric judge`` without --max-new-tokens and without a gold answer on every query."""


def _judge(
    inputs: ModelInputs, gen: Any, payloads: list[dict[str, Any]], ids: list[str], prompts: list[str],
    golds: list[Any], hashes: list[str], base_out: list[str | None], cand_out: list[str | None],
    runner: Any, progress: Callable[[int], None] | None,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Judge both adapters' answers; the adapters' model is released first (room for a local judge)."""
    from adaptergate.metrics.judge import backend_factory, judge_answers
    from adaptergate.backends.base import drop_shared

    assert inputs.judge is not None
    runner.close()
    if inputs.judge.model:  # a local judge model needs the room
        drop_shared()
    outcome = judge_answers(
        inputs.judge, lambda i: (str(ids[i]), prompts[i], golds[i]), hashes, base_out, cand_out,
        cache_root=inputs.cache_dir or default_cache_dir(),
        backend_factory=backend_factory(inputs.judge, gen, allow_pickle=inputs.allow_pickle),
        progress=progress,
    )
    base_scores, cand_scores = outcome.scores()
    return outcome, base_scores, cand_scores


def _prompt_of(payload: dict[str, Any], qid: str) -> str:
    from adaptergate.holdout.store import query_text

    text = query_text(payload)
    if text is None:
        raise InvalidInputError(f"query {qid!r} has no prompt (prompt, question, text or query)")
    return text


def _max_new_tokens(runner: Any, golds: list[Any]) -> int:
    """Longest gold answer in tokens, plus one for EOS (plus a little room for near misses)."""
    texts = [g if isinstance(g, str) else json.dumps(g) for g in golds]
    if not texts:
        return 64
    return max(runner.count_tokens(texts)) + 1
