"""Benchmark of the model runner (``adaptergate.backends.peft.AdapterRunner``).

Evaluates the same queries through the same loaded model, baseline AND
candidate adapter per query (2 evaluations per query), in four ways:

1. ``loop``: one query at a time, ``batch_size=1``, one adapter after the
   other (``model.set_adapter(name)``, then ``generate`` with a one-row list
   per query): the reference loop;
2. ``batched``: all baseline rows, then all candidate rows, ``batch_size=32``,
   every batch holding one adapter only;
3. ``mixed``: both adapters' rows interleaved in the same batches
   (PEFT ``adapter_names=``), ``batch_size=32``;
4. ``teacher-forced``: ``teacher_forced`` with the gold answers, mixed
   batches, ``batch_size=32``: one forward pass per batch.

It prints evaluations per second, the speed-up over (1), and checks that the
modes agree: (1), (2) and (3) must generate the same text row for row, and
(4)'s pass/fail must equal the exact match with the gold of greedy generation
under the runner's own rule (``max_new_tokens`` = longest gold in tokens + 1).
Exit code 1 when any of them differs.

Two models:

a. the tiny demo model (``adaptergate.demos.tinymodel.build_demo_assets``, built
   into ``bench/_work/demo`` on first use, about a minute), on its holdout;
b. a ~10.8M-parameter random Llama (hidden 384, 6 layers, 6 heads,
   intermediate 1024, the demo tokenizer's 220 tokens) with two random LoRA
   adapters (r=8 on q_proj, v_proj, ``init_lora_weights=False``), rebuilt
   deterministically into ``bench/_work/llama10m`` on every run. Only the
   demo holdout's prompts are used, 64 of them by default (loop (1) is slow);
   the golds are loop (1)'s outputs of each adapter. Two choices make the
   random model a usable teacher-forcing target: ``initializer_range`` 0.1
   (at the default 0.02 every answer is one token repeated) and the EOS row
   of the untied output head multiplied by ``--eos-scale`` (2), so that greedy
   answers stop after 0 to 8 tokens instead of never (teacher-forced exact
   match requires the EOS after the gold: with a head left as drawn every
   answer is cut at ``max_new_tokens`` and every row fails). The rows of
   ``<pad>``, ``<s>`` and ``<unk>`` are zeroed so that they are never
   generated: decoding skips special tokens, so an answer holding one would
   read as its gold while teacher forcing (rightly) fails it.

This is a benchmark script, not a test: nothing asserts on a timing. Results
go to ``bench/_work/runner_results.json``.

    python bench/bench_runner.py            # a few minutes on 2 slow cores (+1 min first demo build)
    python bench/bench_runner.py --quick    # fewer queries
    BENCH_THREADS=1 python bench/bench_runner.py
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as _dt
import json
import os
import platform
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # measure the checkout, installed or not

from _common import REPO_ROOT, WORK_DIR, print_table, write_json  # noqa: E402

TARGET_BATCHED_TINY = 15.0  # batched (2) and mixed (3) vs loop (1), tiny model
TARGET_TF_10M = 10.0  # teacher-forced (4) vs loop (1), 10M model
BASELINE, CANDIDATE = "baseline", "candidate"
MODES = ("loop", "batched", "mixed", "teacher-forced")
MODE_LABEL = {
    "loop": "(1) one at a time, bs=1",
    "batched": "(2) batched per adapter",
    "mixed": "(3) mixed-adapter batched",
    "teacher-forced": "(4) teacher-forced, mixed",
}

LLAMA10M_CONFIG: dict[str, Any] = {
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 6,
    "num_key_value_heads": 6,
    "intermediate_size": 1024,
    "max_position_embeddings": 128,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    # With the default 0.02 a random Llama answers every prompt with one token
    # repeated (the prompt's average dominates every step); 0.1 gives varied answers.
    "initializer_range": 0.1,
}
LORA10M: dict[str, Any] = {
    "r": 8, "lora_alpha": 16, "lora_dropout": 0.0,
    "target_modules": ["q_proj", "v_proj"], "init_lora_weights": False,
}
SEED_10M = 20240611


def say(msg: str) -> None:
    print(msg, flush=True)


def quiet_ml() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover
        pass
    for cat in (FutureWarning, UserWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=cat)


def load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def spread(n: int, k: int | None) -> list[int]:
    """k indices spread evenly over range(n) (all of them when k is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted({(i * n) // k for i in range(k)})


def read_holdout(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# the 10M random Llama


def build_llama10m(demo_base: Path, out: Path, eos_scale: float) -> dict[str, Any]:
    """Random base + two random LoRA adapters under ``out`` (rebuilt, deterministic); build facts."""
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(demo_base), local_files_only=True)
    tok.padding_side = "left"
    torch.manual_seed(SEED_10M)
    config = LlamaConfig(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, **LLAMA10M_CONFIG,
    )
    model = LlamaForCausalLM(config).eval()
    gc = model.generation_config
    gc.pad_token_id, gc.bos_token_id, gc.eos_token_id = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
    gc.do_sample = False
    params = sum(p.numel() for p in model.parameters())

    if out.exists():
        shutil.rmtree(out)
    base_dir = out / "base"
    adapters = {BASELINE: out / "adapters" / BASELINE, CANDIDATE: out / "adapters" / CANDIDATE}
    for k, (name, path) in enumerate(adapters.items()):
        torch.manual_seed(SEED_10M + 1 + k)
        pm = get_peft_model(copy.deepcopy(model), LoraConfig(task_type="CAUSAL_LM", **LORA10M))
        pm.peft_config["default"].base_model_name_or_path = str(base_dir)
        pm.save_pretrained(path, safe_serialization=True, save_embedding_layers=False)
        del pm

    # The output head (not touched by the adapters): see the module docstring.
    with torch.no_grad():
        head = model.lm_head.weight
        head[tok.eos_token_id] *= eos_scale
        for t in set(tok.all_special_ids) - {tok.eos_token_id}:
            head[t] = 0.0  # never the argmax: greedy decoding never emits <pad>, <s>, <unk>
    model.save_pretrained(base_dir, safe_serialization=True)
    tok.save_pretrained(base_dir)
    return {
        "dir": str(out), "params": params, "config": LLAMA10M_CONFIG, "lora": LORA10M,
        "seed": SEED_10M, "eos_scale": eos_scale,
        "build_s": round(time.perf_counter() - t0, 2),
        "base": base_dir, "adapters": adapters,
    }


# ---------------------------------------------------------------------------
# one model, four modes


@dataclasses.dataclass
class ModeResult:
    mode: str
    rows: int
    batch_size: int
    seconds: float
    batches: int
    generated_tokens: int
    fallbacks: int
    identical: bool | None = None
    repeats_consistent: bool = True
    differing_rows: int = 0
    examples: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def evals_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def timed(runner: Any, mode: str, rows: int, batch_size: int, fn: Callable[[], Any], repeat: int,
          outputs: Callable[[Any], Any] = lambda v: v) -> tuple[Any, ModeResult]:
    """Run ``fn`` ``repeat`` times; the fastest wall time counts, every run must give the same outputs."""
    s = runner.stats
    before = (s.forward_passes, s.generated_tokens, s.mixed_batch_fallbacks)
    walls: list[float] = []
    value: Any = None
    consistent = True
    for k in range(max(1, repeat)):
        t0 = time.perf_counter()
        v = fn()
        walls.append(time.perf_counter() - t0)
        if k == 0:
            value = v
        elif outputs(v) != outputs(value):
            consistent = False
    runs = len(walls)
    res = ModeResult(mode, rows, batch_size, min(walls), (s.forward_passes - before[0]) // runs,
                     (s.generated_tokens - before[1]) // runs, s.mixed_batch_fallbacks - before[2])
    res.repeats_consistent = consistent
    res.extra["all_walls_s"] = [round(w, 4) for w in walls]
    say(f"  {MODE_LABEL[mode]:<27} {rows} evaluations in {res.seconds:7.2f} s"
        f"  ({res.evals_per_s:8.1f} evals/s)" + (f", fastest of {runs}" if runs > 1 else "")
        + ("" if consistent else "  OUTPUTS CHANGED BETWEEN REPEATS"))
    return value, res


def compare(res: ModeResult, got: Sequence[Any], want: Sequence[Any], keys: Sequence[tuple[str, str]],
            want_name: str) -> None:
    diff = [j for j, (g, w) in enumerate(zip(got, want)) if g != w]
    res.identical = not diff and len(got) == len(want) and res.repeats_consistent
    res.differing_rows = len(diff) + abs(len(got) - len(want))
    res.examples = [{"query": keys[j][0], "adapter": keys[j][1], res.mode: got[j], want_name: want[j]}
                    for j in diff[:5]]


def run_model(label: str, base: Path, adapters: dict[str, Path], ids: Sequence[str], prompts: Sequence[str],
              golds: dict[str, Sequence[str]] | None, max_new_tokens: int, batch_size: int,
              threads: int, repeat: int, loop_note: str | None) -> dict[str, Any]:
    """All four modes on one loaded model. ``golds=None``: golds are loop (1)'s outputs."""
    from adaptergate.backends.base import GenerationSettings
    from adaptergate.backends.peft import AdapterRunner

    n = len(prompts)
    names = [BASELINE, CANDIDATE]
    # Canonical row order: query-major, adapters interleaved (the mixed batches' order).
    rows_p = [p for p in prompts for _ in names]
    rows_a = [a for _ in prompts for a in names]
    keys = [(ids[q], a) for q in range(n) for a in names]
    R = len(rows_p)

    t0 = time.perf_counter()
    runner = AdapterRunner(base, adapters, GenerationSettings(batch_size=1, threads=threads))
    load_s = time.perf_counter() - t0
    params = sum(p.numel() for p in runner.model.get_base_model().parameters())
    one = dataclasses.replace(runner.settings, batch_size=1)
    many = dataclasses.replace(runner.settings, batch_size=batch_size)
    say(f"\n[{label}] {params / 1e6:.2f}M parameters, {n} queries x 2 adapters = {R} evaluations,"
        f" max_new_tokens={max_new_tokens}, batch size {batch_size}, model load {load_s:.1f} s")
    if loop_note:
        say(f"  note: {loop_note}")

    # Warm-up (untimed): first-call costs of generate and of a plain forward.
    runner.settings = many
    warm_g = [golds[a][0] for a in names] if golds else ["x", "x"]
    runner.generate(rows_p[:2], rows_a[:2], max_new_tokens=max_new_tokens)
    runner.teacher_forced(rows_p[:2], warm_g, rows_a[:2])

    results: dict[str, ModeResult] = {}

    # (1) one query at a time, one adapter after the other.
    runner.settings = one

    def loop() -> list[str]:
        out: list[str] = [""] * R
        for k, name in enumerate(names):
            runner.model.set_adapter(name)
            for q in range(n):
                out[q * len(names) + k] = runner.generate([prompts[q]], [name], max_new_tokens=max_new_tokens)[0]
        runner.model.set_adapter(names[0])
        return out

    t1, results["loop"] = timed(runner, "loop", R, 1, loop, repeat)

    # (2) batched per adapter, no mixing.
    runner.settings = many

    def per_adapter() -> list[str]:
        out: list[str] = [""] * R
        for k, name in enumerate(names):
            texts = runner.generate(list(prompts), [name] * n, max_new_tokens=max_new_tokens)
            for q, t in enumerate(texts):
                out[q * len(names) + k] = t
        return out

    t2, results["batched"] = timed(runner, "batched", R, batch_size, per_adapter, repeat)

    # (3) mixed-adapter batches.
    t3, results["mixed"] = timed(
        runner, "mixed", R, batch_size,
        lambda: runner.generate(rows_p, rows_a, max_new_tokens=max_new_tokens), repeat)

    # (4) teacher-forced, mixed batches.
    if golds is None:
        gold_rows = list(t1)
        gold_source = "loop (1) outputs of each adapter"
    else:
        gold_rows = [golds[a][q] for q in range(n) for a in names]
        gold_source = "holdout gold answers"
    (passed, _logp), results["teacher-forced"] = timed(
        runner, "teacher-forced", R, batch_size,
        lambda: runner.teacher_forced(rows_p, gold_rows, rows_a), repeat, outputs=lambda v: v[0])

    # Checks.
    compare(results["loop"], t1, t1, keys, "loop")
    compare(results["batched"], t2, t1, keys, "loop")
    compare(results["mixed"], t3, t1, keys, "loop")
    gold_lens = [len(ids) for ids in runner.tokenizer(gold_rows, add_special_tokens=False)["input_ids"]]
    rule_tokens = max(gold_lens) + 1
    if rule_tokens == max_new_tokens:
        ref_texts, ref_note = t3, f"(3)'s texts (max_new_tokens {max_new_tokens} = longest gold + 1)"
    else:
        t_chk = time.perf_counter()
        ref_texts = runner.generate(rows_p, rows_a, max_new_tokens=rule_tokens)
        ref_note = (f"an extra untimed mixed generation at max_new_tokens {rule_tokens} = longest gold + 1"
                    f" (the runner's rule; (1)-(3) ran at {max_new_tokens}),"
                    f" {time.perf_counter() - t_chk:.1f} s")
    expected = [t == g for t, g in zip(ref_texts, gold_rows)]
    compare(results["teacher-forced"], passed, expected, keys, "greedy exact match")
    tf = results["teacher-forced"]
    tf.extra.update({
        "gold_source": gold_source, "reference": ref_note, "passed": sum(passed), "expected_passed": sum(expected),
        "gold_length_tokens": dict(sorted(Counter(gold_lens).items())),
    })
    for res in results.values():
        res.extra.setdefault("ratio_vs_loop", results["loop"].seconds / res.seconds if res.seconds > 0 else None)

    pass_by_adapter = {a: sum(p for p, ra in zip(passed, rows_a) if ra == a) for a in names}
    say(f"  teacher-forced golds: {gold_source}; gold lengths (tokens): "
        + ", ".join(f"{k}: {v}" for k, v in tf.extra["gold_length_tokens"].items()))
    say(f"  teacher-forced passes: {sum(passed)}/{R} ("
        + ", ".join(f"{a} {pass_by_adapter[a]}/{n}" for a in names)
        + f"); checked against {ref_note}")
    for res in results.values():
        for ex in res.examples:
            say(f"  DIFFERS ({res.mode}): {ex}")
    runner = None  # free the model before the next size
    return {
        "label": label, "params": params, "queries": n, "evaluations": R, "max_new_tokens": max_new_tokens,
        "batch_size": batch_size, "load_s": round(load_s, 2), "note": loop_note,
        "modes": {m: dataclasses.asdict(r) | {"evals_per_s": r.evals_per_s} for m, r in results.items()},
        "_results": results,
    }


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}x"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="fewer queries: 48 on the tiny model, 24 on the 10M model (unless given below)")
    ap.add_argument("--tiny-queries", type=int, default=None,
                    help="queries of the demo holdout on the tiny model (default: all 144; --quick: 48)")
    ap.add_argument("--llama-queries", type=int, default=None,
                    help="queries on the 10M model (default 64, to keep loop (1) short; --quick: 24)")
    ap.add_argument("--llama-max-new-tokens", type=int, default=8,
                    help="max_new_tokens on the 10M model (default 8)")
    ap.add_argument("--eos-scale", type=float, default=2.0,
                    help="10M model: the EOS row of the random output head is multiplied by this (default 2;"
                         " 1: left as drawn)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per mode, the fastest counts (default 3; --quick: 1)")
    ap.add_argument("--batch-size", type=int, default=32, help="batch size of modes (2)-(4) (default 32)")
    ap.add_argument("--models", default="tiny,10m", help="comma list of tiny,10m (default both)")
    ap.add_argument("--results", type=Path, default=WORK_DIR / "runner_results.json")
    args = ap.parse_args(argv)

    threads = int(os.environ.get("BENCH_THREADS", "2"))
    import torch

    torch.set_num_threads(threads)
    quiet_ml()
    import peft
    import transformers

    tiny_q = args.tiny_queries if args.tiny_queries is not None else (48 if args.quick else None)
    llama_q = args.llama_queries if args.llama_queries is not None else (24 if args.quick else 64)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    models = {m.strip().lower() for m in args.models.split(",") if m.strip()}

    say(f"adaptergate runner benchmark: torch {torch.__version__}, transformers {transformers.__version__},"
        f" peft {peft.__version__}, Python {platform.python_version()}")
    say(f"torch threads: {torch.get_num_threads()} (BENCH_THREADS={os.environ.get('BENCH_THREADS', 'unset, default 2')}),"
        f" interop {torch.get_num_interop_threads()}, {os.cpu_count()} CPUs visible"
        + (", --quick" if args.quick else "") + f", fastest of {repeat} run(s) per mode")
    say(f"load average before: {load_avg()} (other work on the machine skews every number)")

    from adaptergate.demos.tinymodel import build_demo_assets

    t0 = time.perf_counter()
    demo = build_demo_assets(WORK_DIR / "demo", progress=lambda m: say(f"  demo build: {m}"))
    say(f"demo assets: {demo.root} ({time.perf_counter() - t0:.1f} s, cached after the first build)")
    holdout = read_holdout(demo.holdout)

    meta = {
        "when": _dt.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
        "python": platform.python_version(), "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "repo": str(REPO_ROOT),
        "repeat": repeat, "load_avg_before": load_avg(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    report: dict[str, Any] = {"meta": meta, "models": {}, "targets": []}
    runs: dict[str, dict[str, Any]] = {}

    def save() -> None:
        clean = {"meta": meta, "targets": report["targets"],
                 "models": {k: {kk: vv for kk, vv in v.items() if kk != "_results"} for k, v in runs.items()}}
        write_json(args.results, clean)

    if "tiny" in models:
        rows = [holdout[i] for i in spread(len(holdout), tiny_q)]
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(demo.base_dir), local_files_only=True)
        longest = max(len(tok(r["gold"], add_special_tokens=False)["input_ids"]) for r in rows)
        golds = [r["gold"] for r in rows]
        runs["tiny"] = run_model(
            "tiny demo model", demo.base_dir,
            {BASELINE: demo.baseline_adapter, CANDIDATE: demo.candidate_adapter},
            [r["id"] for r in rows], [r["prompt"] for r in rows], {BASELINE: golds, CANDIDATE: golds},
            longest + 1, args.batch_size, threads, repeat,
            None if tiny_q is None or tiny_q >= len(holdout) else f"{len(rows)} of the {len(holdout)} holdout queries",
        )
        save()

    if "10m" in models:
        rows = [holdout[i] for i in spread(len(holdout), llama_q)]
        prompts = [r["prompt"] for r in rows]
        say("\nbuilding the random 10M Llama and its adapters ...")
        built = build_llama10m(demo.base_dir, WORK_DIR / "llama10m", args.eos_scale)
        say(f"  {built['params'] / 1e6:.2f}M parameters, built in {built['build_s']} s;"
            + f" initializer_range {LLAMA10M_CONFIG['initializer_range']}, EOS head row x {args.eos_scale:g},"
            " <pad>/<s>/<unk> head rows zeroed")
        runs["10m"] = run_model(
            "random 10M Llama", built["base"], built["adapters"], [r["id"] for r in rows], prompts, None,
            args.llama_max_new_tokens, args.batch_size, threads, repeat,
            f"limited to {len(rows)} of the {len(holdout)} holdout prompts (evenly spread) so that loop (1)"
            " stays short; every mode runs on these same queries",
        )
        runs["10m"]["build"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in built.items()
                                if k not in ("base", "adapters")}
        save()

    # Tables.
    table = []
    for key, run in runs.items():
        res: dict[str, ModeResult] = run["_results"]
        for m in MODES:
            r = res[m]
            if not r.repeats_consistent:
                ident = "no (repeats differ)"
            elif m == "loop":
                ident = "reference"
            else:
                ident = "yes" if r.identical else f"no ({r.differing_rows} row(s))"
            table.append([
                run["label"] if m == "loop" else "", MODE_LABEL[m], r.rows, r.batch_size,
                f"{r.seconds:.2f} s", f"{r.evals_per_s:.1f}", fmt_ratio(r.extra.get("ratio_vs_loop")),
                r.batches, r.fallbacks, ident,
            ])
    print_table(["model", "mode", "evals", "batch", "wall", "evals/s", "vs (1)", "calls", "fallbacks", "identical"],
                table, title=f"AdapterRunner: evaluations/s, {threads} torch thread(s)")
    print("identical: (2), (3) texts == (1) texts row for row; (4) pass/fail == exact match of greedy"
          " output with the gold.\ncalls: batches the runner ran (one generate/forward call each);"
          " fallbacks: mixed-adapter calls that failed and were split per adapter.")

    targets = []
    if "tiny" in runs:
        res = runs["tiny"]["_results"]
        for m in ("batched", "mixed"):
            x = res[m].extra["ratio_vs_loop"]
            targets.append({"target": f"tiny: {MODE_LABEL[m]} vs (1)", "goal": f">= {TARGET_BATCHED_TINY:g}x",
                            "measured": x, "met": x is not None and x >= TARGET_BATCHED_TINY})
    if "10m" in runs:
        x = runs["10m"]["_results"]["teacher-forced"].extra["ratio_vs_loop"]
        targets.append({"target": f"10M: {MODE_LABEL['teacher-forced']} vs (1)", "goal": f">= {TARGET_TF_10M:g}x",
                        "measured": x, "met": x is not None and x >= TARGET_TF_10M})
    all_identical = all(r.identical for run in runs.values() for r in run["_results"].values())
    print_table(["target", "goal", "measured", "status"],
                [[t["target"], t["goal"], fmt_ratio(t["measured"]), "MET" if t["met"] else "NOT MET"] for t in targets]
                + [["outputs identical across modes", "yes", "yes" if all_identical else "no",
                    "MET" if all_identical else "NOT MET"]],
                title="Targets")
    meta["load_avg_after"] = load_avg()
    say(f"load average after: {meta['load_avg_after']}")
    report["targets"] = targets + [{"target": "outputs identical across modes", "met": all_identical}]
    save()
    say(f"results: {args.results}")
    if not all_identical:
        say("outputs differ between modes: exit code 1")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
