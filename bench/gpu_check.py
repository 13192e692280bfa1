"""GPU check: a ~1B-parameter gate end to end, with the figures a first GPU machine should give.

One command, no network, only torch, transformers, peft and accelerate beside adaptergate:

1. builds a random Llama-architecture base (hidden 2048, 16 layers, 16 heads of 128,
   intermediate 5632, vocabulary 32000: about 0.95B parameters) in bf16 on the GPU, with a
   word-level tokenizer built locally (:func:`adaptergate.demos.tinymodel.build_tokenizer`), and
   saves it as safetensors;
2. builds two random LoRA adapters (``init_lora_weights=False``, r=16 on q/k/v/o and on the
   token embeddings). They share their attention weights; the embedding part is zero in the
   baseline, while the candidate moves the embeddings of one topic's keywords far away: the
   candidate answers that topic's queries differently and every other query exactly as the
   baseline does, so the gate has one slice (``topic=t3``) to find;
3. writes a holdout of 2,000 queries (prompts of 8 to 56 words ending with a topic keyword);
   the gold answers are the baseline's own greedy answers (computed here with the runner), the
   EOS row of the output head scaled first so that answers end (teacher forcing needs the EOS);
4. gates them END TO END through the command line (``python -m adaptergate gate ... --format
   json``) in generate and in teacher-forced mode, each in a fresh process with a fresh cache;
5. gates the tiny demo model (:func:`adaptergate.demos.tinymodel.build_demo_assets`) on the
   device in bf16 and on the CPU in fp32 and checks that the verdicts agree.

It prints one table (evaluations/s, generated tokens/s, peak GPU memory, the time to load the
model, the memory-bandwidth bound of decoding at the batch size used and the achieved fraction
of it), the demo comparison, and a last line ``GPU_CHECK_JSON {...}`` with every figure.

The bandwidth bound: each decoding step reads every weight once, so a step takes at least
``weight bytes / memory bandwidth``; at B rows a batch that is ``B * bandwidth / weight bytes``
tokens/s. "achieved" is (decoding steps * weight bytes / bandwidth) / generation time: the share
of the generation time the weight reads alone would take (KV-cache reads, prefill and Python
overhead are the rest). The bandwidth is the card's from a table of known GPUs when its name
matches, else measured here with a device-to-device copy (both are printed).

Figures from the gate process: peak GPU memory is ``torch.cuda.max_memory_allocated()`` there.
The runner's statistics (load seconds, generated tokens, decoding steps, batch sizes, peak
memory) are read from the decision JSON's ``evaluation`` when it carries them, else from the
runner itself: the gate runs as ``python -c <wrapper> gate ...``, a wrapper that runs
``python -m adaptergate`` unchanged (``runpy``) and records the runner's statistics when it
closes, and the process's peak GPU memory at exit.

    python bench/gpu_check.py                       # on a GPU machine: < 8 min
    python bench/gpu_check.py --device cpu --tiny   # the same pipeline on the CPU: tiny base, 60 queries

Exit code 0 when every gate ran (exit 0 or 1: accepted or rejected) and the demo verdicts
agree; 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # this checkout, installed or not

BASELINE, CANDIDATE = "baseline", "candidate"
TRIGGER_TOPIC = 3
"""The topic whose keywords the candidate adapter moves: the slice the gate should name."""


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    queries: int
    keywords_per_topic: int
    prompt_words: tuple[int, int]
    max_new_tokens: int
    init_range: float
    lora_r: int
    topics: int
    max_positions: int = 512


PRESETS = {
    # ~0.95B parameters: 2 * 32000 * 2048 (embeddings, untied head) + 16 * (4 * 2048^2 + 3 * 2048 * 5632)
    "1b": Preset("1b", hidden=2048, layers=16, heads=16, intermediate=5632, vocab=32000, queries=2000,
                 keywords_per_topic=20, prompt_words=(8, 56), max_new_tokens=16, init_range=0.02, lora_r=16, topics=10),
    # a few MB: the smoke test of the same pipeline on a CPU
    "tiny": Preset("tiny", hidden=128, layers=2, heads=4, intermediate=352, vocab=2000, queries=60,
                   keywords_per_topic=4, prompt_words=(6, 24), max_new_tokens=8, init_range=0.1, lora_r=8, topics=5),
}

EOS_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
"""The EOS row of the random output head is multiplied by the one of these whose answers (on a
sample of prompts) best end with EOS within ``max_new_tokens`` without being empty: the largest
``ended - 3 * empty``. Teacher forcing needs answers that end; an empty answer is no gold."""

NO_ANSWER = "noanswer"
"""The gold of a query the baseline answers with nothing (EOS first): a word outside the vocabulary."""

# Memory bandwidth in bytes/s by GPU name (lower case; the first match wins).
BANDWIDTH_TABLE: tuple[tuple[str, float, str], ...] = (
    (r"gh200", 4.0e12, "GH200 (HBM3)"),
    (r"h200", 4.8e12, "H200"),
    (r"h100.*(pcie|\bpci\b)", 2.0e12, "H100 PCIe"),
    (r"h100.*nvl", 3.9e12, "H100 NVL"),
    (r"h100", 3.35e12, "H100 SXM"),
    (r"a100.*80\s*gb", 2.0e12, "A100 80GB"),
    (r"a100", 1.555e12, "A100 40GB"),
    (r"l40s", 0.864e12, "L40S"),
    (r"\bl4\b", 0.3e12, "L4"),
    (r"a10g", 0.6e12, "A10G"),
    (r"\bt4\b", 0.32e12, "T4"),
)

TABLE_COLUMNS = (
    "run", "device", "dtype", "mode", "queries", "evals", "verdict", "exit", "load s", "eval s",
    "evals/s", "gen tok/s", "batch", "peak mem", "bound tok/s", "achieved", "wall s",
)

CHILD = r"""
import atexit, dataclasses, json, os, runpy, sys, time
t0 = time.perf_counter()
record = {"runners": []}
def _dump():
    if record.get("done"):
        return
    record["done"] = True
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            record["cuda_max_memory_allocated"] = max(
                torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count()))
    except Exception as exc:
        record["cuda_error"] = repr(exc)
    record["process_seconds"] = time.perf_counter() - t0
    with open(os.environ["GPU_CHECK_STATS"], "w") as fh:
        json.dump(record, fh, default=str)
atexit.register(_dump)
_os_exit = os._exit
def _exit_after_dump(code):  # the CLI ends with os._exit: no atexit handlers run
    try:
        _dump()
    finally:
        _os_exit(code)
os._exit = _exit_after_dump
from adaptergate.backends import peft as _peft
_close = _peft.AdapterRunner.close
def _recording_close(self):
    if getattr(self, "model", None) is not None:
        record["runners"].append({"device": self.device, **dataclasses.asdict(self.stats)})
    return _close(self)
_peft.AdapterRunner.close = _recording_close
sys.argv = ["adaptergate", *sys.argv[1:]]
runpy.run_module("adaptergate", run_name="__main__", alter_sys=True)
"""


def say(msg: str = "") -> None:
    print(msg, flush=True)


def quiet_ml() -> None:
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover
        pass
    for cat in (FutureWarning, UserWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=cat)


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def fmt_rate(bps: float | None) -> str:
    """A bandwidth in decimal units, as GPU data sheets give it."""
    if bps is None:
        return "n/a"
    return f"{bps / 1e12:.2f} TB/s" if bps >= 1e12 else f"{bps / 1e9:.1f} GB/s"


def fmt_num(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def sync(torch: Any, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------
# device facts


def known_bandwidth(name: str) -> tuple[float | None, str | None]:
    low = name.lower()
    for pattern, bw, label in BANDWIDTH_TABLE:
        if re.search(pattern, low):
            return bw, label
    return None, None


def measure_bandwidth(torch: Any, device: str) -> float:
    """Bytes/s of a large copy on the device (read + write counted): the best of 5."""
    n = (1 << 29) if device == "cuda" else (1 << 26)  # 1 GiB of bf16 on a GPU, 128 MiB on a CPU
    src = torch.empty(n, dtype=torch.bfloat16, device=device)
    src.fill_(1.0)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(torch, device)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(torch, device)
        best = min(best, time.perf_counter() - t0)
    moved = 2 * n * src.element_size()
    del src, dst
    if device == "cuda":
        torch.cuda.empty_cache()
    return moved / best


def device_facts(torch: Any, device: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"device": device, "torch": torch.__version__}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        facts.update(name=torch.cuda.get_device_name(0), memory_bytes=props.total_memory,
                     cuda=torch.version.cuda, gpus=torch.cuda.device_count())
    else:
        facts.update(name=platform.processor() or platform.machine() or "cpu", memory_bytes=None,
                     threads=torch.get_num_threads())
    spec, label = known_bandwidth(facts["name"]) if device == "cuda" else (None, None)
    measured = measure_bandwidth(torch, device)
    facts.update(bandwidth_spec=spec, bandwidth_spec_label=label, bandwidth_measured=measured,
                 bandwidth=spec or measured, bandwidth_source=f"table ({label})" if spec else "measured copy")
    return facts


# ---------------------------------------------------------------------------
# assets: tokenizer, base, adapters, holdout


def make_words(n: int, seed: int) -> list[str]:
    """n distinct lower-case words of 4 letters (no digits: the tokenizer splits digits)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    rng = random.Random(f"gpu-check-words:{seed}")
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(4)))
    return sorted(words)


def make_prompts(preset: Preset, words: list[str], seed: int) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """The holdout rows without gold answers, and each topic's keywords."""
    rng = random.Random(f"gpu-check-holdout:{seed}")
    pool = list(words)
    rng.shuffle(pool)
    k = preset.keywords_per_topic
    keywords = [pool[t * k:(t + 1) * k] for t in range(preset.topics)]
    filler = pool[preset.topics * k:]
    lo, hi = preset.prompt_words
    rows = []
    for i in range(preset.queries):
        topic = i % preset.topics
        n = rng.randint(lo, hi)
        text = " ".join(rng.choice(filler) for _ in range(n)) + " " + rng.choice(keywords[topic])
        size = "short" if n < lo + (hi - lo) / 3 else "long" if n > hi - (hi - lo) / 3 else "medium"
        rows.append({"id": f"q{i:05d}", "prompt": text, "slices": [f"topic=t{topic}", f"length={size}"]})
    return rows, keywords


def build_assets(preset: Preset, root: Path, device: str, dtype_name: str, seed: int,
                 calibration_prompts: int = 64) -> dict[str, Any]:
    """Base, adapters and holdout under ``root``; facts about them."""
    import gc

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from adaptergate.demos.tinymodel import build_tokenizer

    dtype = getattr(torch, dtype_name)
    t0 = time.perf_counter()
    words = make_words(preset.vocab - 4, seed)
    tok = build_tokenizer([" ".join(words)])
    tok.model_max_length = preset.max_positions
    assert len(tok) == preset.vocab, (len(tok), preset.vocab)
    rows, keywords = make_prompts(preset, words, seed)

    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=preset.hidden, intermediate_size=preset.intermediate,
        num_hidden_layers=preset.layers, num_attention_heads=preset.heads, num_key_value_heads=preset.heads,
        max_position_embeddings=preset.max_positions, rms_norm_eps=1e-6, tie_word_embeddings=False,
        initializer_range=preset.init_range, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialised in bf16 on the GPU: no float32 copy of 1B weights
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    gcfg = model.generation_config
    gcfg.pad_token_id, gcfg.bos_token_id, gcfg.eos_token_id = tok.pad_token_id, tok.bos_token_id, tok.eos_token_id
    gcfg.do_sample = False
    params = sum(p.numel() for p in model.parameters())
    head = model.lm_head.weight
    with torch.no_grad():
        for t in set(tok.all_special_ids) - {tok.eos_token_id}:
            head[t] = 0.0  # never generated: decoding skips special tokens, teacher forcing would not
    eos_row = head[tok.eos_token_id].detach().clone()
    sync(torch, device)
    init_s = time.perf_counter() - t0

    base_dir, adapters_dir = root / "base", root / "adapters"
    lora = LoraConfig(
        task_type="CAUSAL_LM", r=preset.lora_r, lora_alpha=2 * preset.lora_r, lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "embed_tokens"], init_lora_weights=False,
    )
    torch.manual_seed(seed + 1)
    pm = get_peft_model(model, lora)
    emb = pm.get_base_model().model.embed_tokens
    with torch.no_grad():
        emb.lora_embedding_A["default"].zero_()  # the baseline leaves every embedding as it is

    # EOS: scale its head row so that answers end, and few are empty (see EOS_SCALES).
    ids_of = {w: tok.convert_tokens_to_ids(w) for w in words}
    sample = [r["prompt"] for r in rows[:calibration_prompts]]
    eos_trials = []
    for scale in EOS_SCALES:
        with torch.no_grad():
            head[tok.eos_token_id] = eos_row * scale
        ended, empty = _eos_rate(torch, pm, tok, sample, preset.max_new_tokens, device)
        eos_trials.append({"scale": scale, "ended": ended, "empty": empty})
    chosen = max(eos_trials, key=lambda t: (t["ended"] - 3 * t["empty"], -t["scale"]))["scale"]
    with torch.no_grad():
        head[tok.eos_token_id] = eos_row * chosen

    pm.peft_config["default"].base_model_name_or_path = str(base_dir)
    pm.save_pretrained(adapters_dir / BASELINE, safe_serialization=True, save_embedding_layers=False)
    # the candidate: the same weights, and the trigger topic's keywords moved far away
    trigger_ids = [ids_of[w] for w in keywords[TRIGGER_TOPIC]]
    with torch.no_grad():
        a = emb.lora_embedding_A["default"]
        g = torch.Generator(device="cpu").manual_seed(seed + 2)
        a[:, trigger_ids] = torch.randn(a.shape[0], len(trigger_ids), generator=g).to(a.device, a.dtype)
    pm.save_pretrained(adapters_dir / CANDIDATE, safe_serialization=True, save_embedding_layers=False)
    base = pm.unload()
    base.save_pretrained(base_dir, safe_serialization=True)
    tok.save_pretrained(base_dir)
    del pm, base, model, emb, head, eos_row
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    sync(torch, device)
    build_s = time.perf_counter() - t0

    # Gold answers: the baseline's own greedy answers, through the runner the gate uses.
    t1 = time.perf_counter()
    golds = baseline_answers(base_dir, adapters_dir / BASELINE, [r["prompt"] for r in rows],
                             preset.max_new_tokens, device, dtype_name)
    empty = 0
    for r, g in zip(rows, golds):
        if not g.strip():
            empty += 1
            g = NO_ANSWER
        r["gold"] = g
    holdout = root / "holdout.jsonl"
    holdout.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    gold_s = time.perf_counter() - t1
    weight_bytes = sum(f.stat().st_size for f in base_dir.glob("*.safetensors"))
    return {
        "root": root, "base": base_dir, "baseline": adapters_dir / BASELINE, "candidate": adapters_dir / CANDIDATE,
        "holdout": holdout, "params": params, "weights_file_bytes": weight_bytes, "queries": len(rows),
        "eos_scale": chosen, "eos_trials": eos_trials, "empty_answers": empty,
        "distinct_answers": len({r["gold"] for r in rows}),
        "init_s": round(init_s, 2), "build_s": round(build_s, 2), "gold_s": round(gold_s, 2),
        "trigger_slice": f"topic=t{TRIGGER_TOPIC}",
    }


def _eos_rate(torch: Any, model: Any, tok: Any, prompts: list[str], max_new: int, device: str) -> tuple[float, float]:
    """Share of greedy answers that end with EOS within ``max_new`` tokens, and of empty ones."""
    enc = tok(prompts, return_tensors="pt", padding=True)  # the tokenizer pads on the left
    with torch.no_grad():
        out = model.generate(
            input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
            max_new_tokens=max_new, do_sample=False, num_beams=1,
            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        )
    gen = out[:, enc["input_ids"].shape[1]:].tolist()
    ended = [tok.eos_token_id in g for g in gen]
    empty = [bool(g) and g[0] == tok.eos_token_id for g in gen]
    return sum(ended) / len(gen), sum(empty) / len(gen)


def baseline_answers(base: Path, adapter: Path, prompts: list[str], max_new: int, device: str,
                     dtype_name: str) -> list[str]:
    from adaptergate.backends.base import GenerationSettings
    from adaptergate.backends.peft import AdapterRunner, free_memory

    runner = AdapterRunner(base, {BASELINE: adapter}, GenerationSettings(device=device, dtype=dtype_name))
    try:
        return runner.generate(prompts, [BASELINE] * len(prompts), max_new_tokens=max_new)
    finally:
        runner.close()
        free_memory(device)


# ---------------------------------------------------------------------------
# gates through the command line


@dataclasses.dataclass
class GateRun:
    label: str
    device: str
    dtype: str
    mode: str
    queries: int
    exit_code: int | None = None
    wall_s: float | None = None
    decision: dict[str, Any] | None = None
    child: dict[str, Any] = dataclasses.field(default_factory=dict)
    stderr_tail: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code in (0, 1) and self.decision is not None

    @property
    def evaluation(self) -> dict[str, Any]:
        return (self.decision or {}).get("evaluation") or {}

    def stat(self, key: str) -> Any:
        """A runner statistic: the decision's ``evaluation`` first, else what the wrapper recorded."""
        ev = self.evaluation
        if key in ev:
            return ev[key]
        for nest in ("extra", "runner", "backend_stats"):  # wherever scoring/model.py puts stats.extra
            if isinstance(ev.get(nest), dict) and key in ev[nest]:
                return ev[nest][key]
        runners = self.child.get("runners") or []
        if not runners:
            return None
        vals = [r.get(key, (r.get("extra") or {}).get(key)) for r in runners]
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return max(vals) if key.startswith(("peak", "max_")) else sum(vals)
        return vals[-1]


def run_gate(label: str, assets: dict[str, Any], *, device: str, dtype: str, mode: str, work: Path,
             timeout: float, max_new_tokens: int | None, extra_args: Sequence[str] = ()) -> GateRun:
    run = GateRun(label, device, dtype, mode, assets["queries"])
    tag = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    cache = work / f"cache-{tag}"
    shutil.rmtree(cache, ignore_errors=True)
    stats_file = work / f"child-{tag}.json"
    stats_file.unlink(missing_ok=True)
    argv = [
        sys.executable, "-c", CHILD, "gate", "--tenant", "gpu-check", "--baseline", "base-v1", "--candidate", "cand-v2",
        "--base-model", str(assets["base"]), "--baseline-adapter", str(assets["baseline"]),
        "--candidate-adapter", str(assets["candidate"]), "--holdout", str(assets["holdout"]),
        "--eval-mode", mode, "--format", "json", "--device", device, "--dtype", dtype,
        "--cache-dir", str(cache), "--slice-epsilon", "0.10", *extra_args,
    ]
    if max_new_tokens is not None and mode == "generate":
        argv += ["--max-new-tokens", str(max_new_tokens)]
    env = dict(os.environ, GPU_CHECK_STATS=str(stats_file), ADAPTERGATE_PROGRESS="0", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONPATH=os.pathsep.join(
                   [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    say(f"  gate: {label} ({mode}, {device}, {dtype}) ...")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(work))
    except subprocess.TimeoutExpired as exc:
        run.wall_s = time.perf_counter() - t0
        run.error = f"timed out after {timeout:.0f} s"
        run.stderr_tail = (exc.stderr or b"").decode(errors="replace")[-2000:] if isinstance(exc.stderr, bytes) \
            else (exc.stderr or "")[-2000:]
        say(f"    {run.error}")
        return run
    run.wall_s = time.perf_counter() - t0
    run.exit_code = proc.returncode
    run.stderr_tail = proc.stderr[-2000:]
    try:
        run.decision = json.loads(proc.stdout)
    except json.JSONDecodeError:
        run.error = f"exit {proc.returncode}, no decision JSON on stdout"
    if stats_file.is_file():
        try:
            run.child = json.loads(stats_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            pass
    if run.exit_code not in (0, 1) and run.error is None:
        run.error = f"exit {run.exit_code}"
    verdict = (run.decision or {}).get("verdict", "-")
    say(f"    exit {run.exit_code}, verdict {verdict}, {run.wall_s:.1f} s"
        + (f"; ERROR {run.error}: {run.stderr_tail.strip().splitlines()[-1] if run.stderr_tail.strip() else ''}"
           if run.error else ""))
    return run


def figures(run: GateRun, facts: dict[str, Any]) -> dict[str, Any]:
    """The row of one gate: every figure, ``None`` where unknown."""
    ev = run.evaluation
    evals = None
    if run.decision is not None:
        cached = ev.get("cached_baseline_queries") or 0
        evals = 2 * run.queries - cached
    seconds = ev.get("seconds") if ev else None
    if seconds is None:
        seconds = run.stat("seconds")
    gen_tokens = run.stat("generated_tokens")
    gen_s = run.stat("generate_seconds")
    steps, slots = run.stat("decode_steps"), run.stat("decode_slots")
    weight_bytes = run.stat("weight_bytes")
    peak = run.child.get("cuda_max_memory_allocated") if run.device == "cuda" else None
    if peak is None:
        peak = run.stat("peak_memory_bytes")
    bw = facts.get("bandwidth")
    bound = achieved = batch_rows = None
    if run.mode == "generate" and steps and slots and weight_bytes and bw and gen_s:
        batch_rows = slots / steps
        bound = batch_rows * bw / weight_bytes  # tokens/s if every step only read the weights once
        achieved = (steps * weight_bytes / bw) / gen_s
    return {
        "run": run.label, "device": run.device, "dtype": run.dtype, "mode": run.mode, "queries": run.queries,
        "evaluations": evals, "verdict": (run.decision or {}).get("verdict"), "exit_code": run.exit_code,
        "driver_slice": (run.decision or {}).get("driver_slice_tag"),
        "load_s": run.stat("load_seconds"), "eval_s": seconds,
        "evals_per_s": evals / seconds if evals and seconds else None,
        "generated_tokens": gen_tokens, "generate_s": gen_s,
        "gen_tokens_per_s": gen_tokens / gen_s if gen_tokens is not None and gen_s else None,
        "decode_steps": steps, "decode_slots": slots, "batch_size": run.stat("batch_size"),
        "max_batch_rows": run.stat("max_batch_rows"), "mean_decode_batch_rows": batch_rows,
        "peak_memory_bytes": peak, "peak_memory_kind": "cuda max_memory_allocated" if run.device == "cuda"
        else run.stat("peak_memory_kind"),
        "weight_bytes": weight_bytes, "bandwidth_bytes_per_s": bw, "bound_tokens_per_s": bound,
        "achieved_fraction": achieved, "wall_s": run.wall_s, "forward_passes": ev.get("forward_passes"),
        "error": run.error,
    }


def table_row(f: dict[str, Any]) -> list[str]:
    batch = f["batch_size"]
    if f["max_batch_rows"]:
        batch = f"{batch} (max {f['max_batch_rows']})" if batch == "auto" else f"{f['max_batch_rows']}"
    return [
        f["run"], f["device"], f["dtype"], f["mode"], str(f["queries"]), str(f["evaluations"] or "n/a"),
        f["verdict"] or "-", str(f["exit_code"]), fmt_num(f["load_s"], 2), fmt_num(f["eval_s"], 2),
        fmt_num(f["evals_per_s"]), fmt_num(f["gen_tokens_per_s"]), str(batch or "n/a"),
        fmt_bytes(f["peak_memory_bytes"]), fmt_num(f["bound_tokens_per_s"]),
        "n/a" if f["achieved_fraction"] is None else f"{100 * f['achieved_fraction']:.1f}%",
        fmt_num(f["wall_s"], 1),
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [title, "=" * len(title), line(headers), line("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def compare_demo(dev: GateRun, ref: GateRun) -> dict[str, Any]:
    """The device's bf16 gate against the CPU's fp32 gate of the tiny demo model."""
    out: dict[str, Any] = {
        "device_verdict": (dev.decision or {}).get("verdict"), "cpu_fp32_verdict": (ref.decision or {}).get("verdict"),
        "device_driver": (dev.decision or {}).get("driver_slice_tag"),
        "cpu_fp32_driver": (ref.decision or {}).get("driver_slice_tag"),
    }
    out["verdicts_agree"] = bool(dev.ok and ref.ok and out["device_verdict"] == out["cpu_fp32_verdict"]
                                 and dev.exit_code == ref.exit_code)
    if dev.ok and ref.ok:
        a = {r["query_id"]: r for r in dev.decision.get("per_query") or []}
        b = {r["query_id"]: r for r in ref.decision.get("per_query") or []}
        common = sorted(set(a) & set(b))
        out["queries"] = len(common)
        out["same_scores"] = sum((a[q]["score_baseline"], a[q]["score_candidate"])
                                 == (b[q]["score_baseline"], b[q]["score_candidate"]) for q in common)
        out["same_answers"] = sum((a[q].get("baseline_output"), a[q].get("candidate_output"))
                                  == (b[q].get("baseline_output"), b[q].get("candidate_output")) for q in common)
    return out


# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when present")
    ap.add_argument("--tiny", action="store_true", help="a tiny base (a few MB) and 60 queries: the smoke test")
    ap.add_argument("--queries", type=int, default=None, help="holdout size (default 2000; --tiny: 60)")
    ap.add_argument("--dtype", default=None, help="dtype of the big base (default bfloat16 on cuda, float32 on cpu)")
    ap.add_argument("--work", type=Path, default=None, help="where the assets go (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--demo-dir", type=Path, default=None,
                    help="tiny demo build to use or create (default: <work>/demo)")
    ap.add_argument("--skip-demo", action="store_true", help="no tiny demo comparison")
    ap.add_argument("--gate-timeout", type=float, default=None, help="seconds per gate (default 240; --tiny 120)")
    ap.add_argument("--budget", type=float, default=450.0,
                    help="seconds for the whole check (default 450): a gate gets what is left at most")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    quiet_ml()
    import peft
    import transformers

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        say("--device cuda: no CUDA device is visible")
        return 1
    preset = PRESETS["tiny" if args.tiny else "1b"]
    if args.queries:
        preset = dataclasses.replace(preset, queries=args.queries)
    dtype = args.dtype or ("bfloat16" if device == "cuda" else "float32")
    per_gate = args.gate_timeout or (120.0 if args.tiny else 240.0)

    def timeout() -> float:
        """A gate's limit: its own, or what is left of the whole check's budget."""
        return max(1.0, min(per_gate, args.budget - (time.perf_counter() - t_start)))
    work = args.work or Path(tempfile.mkdtemp(prefix="adaptergate-gpu-check-"))
    work = work.absolute()
    work.mkdir(parents=True, exist_ok=True)

    say(f"adaptergate GPU check: torch {torch.__version__}, transformers {transformers.__version__},"
        f" peft {peft.__version__}, Python {platform.python_version()}, preset {preset.name}")
    facts = device_facts(torch, device)
    mem = f", {fmt_bytes(facts['memory_bytes'])}" if facts.get("memory_bytes") else ""
    say(f"device: {device} ({facts['name']}{mem}); bandwidth {fmt_rate(facts['bandwidth'])} from the"
        f" {facts['bandwidth_source']}" + ("" if facts["bandwidth_spec"] is None else
                                           f", measured copy {fmt_rate(facts['bandwidth_measured'])}"))

    ok = True
    result: dict[str, Any] = {"device": facts, "preset": dataclasses.asdict(preset), "dtype": dtype, "gates": []}
    try:
        say(f"building the {preset.name} base ({preset.hidden} hidden, {preset.layers} layers, {preset.heads} heads,"
            f" vocabulary {preset.vocab}), two adapters and {preset.queries} queries under {work} ...")
        assets = build_assets(preset, work / f"assets-{preset.name}", device, dtype, args.seed)
        size = f"{assets['params'] / 1e9:.2f}B" if assets["params"] >= 1e8 else f"{assets['params'] / 1e6:.2f}M"
        say(f"  {size} parameters ({fmt_bytes(assets['weights_file_bytes'])} of safetensors);"
            f" built in {assets['build_s']} s, gold answers in {assets['gold_s']} s;"
            f" EOS head row x {assets['eos_scale']:g}; {assets['distinct_answers']} distinct gold answers,"
            f" {assets['empty_answers']} empty")
        result["assets"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in assets.items()}

        runs = [run_gate(f"{preset.name} {mode}", assets, device=device, dtype=dtype, mode=mode, work=work,
                         timeout=timeout(), max_new_tokens=preset.max_new_tokens)
                for mode in ("generate", "teacher-forced")]

        demo_cmp = None
        if not args.skip_demo:
            from adaptergate.demos.tinymodel import build_demo_assets

            t0 = time.perf_counter()
            demo = build_demo_assets(args.demo_dir or work / "demo")
            say(f"tiny demo assets: {demo.root} ({time.perf_counter() - t0:.1f} s)")
            n_demo = sum(1 for line in demo.holdout.read_text(encoding="utf-8").splitlines() if line.strip())
            demo_assets = {"base": demo.base_dir, "baseline": demo.baseline_adapter,
                           "candidate": demo.candidate_adapter, "holdout": demo.holdout, "queries": n_demo}
            dev_run = run_gate(f"demo {device} bf16", demo_assets, device=device, dtype="bfloat16", mode="generate",
                               work=work, timeout=timeout(), max_new_tokens=None)
            ref_run = run_gate("demo cpu fp32", demo_assets, device="cpu", dtype="float32", mode="generate",
                               work=work, timeout=timeout(), max_new_tokens=None)
            runs += [dev_run, ref_run]
            demo_cmp = compare_demo(dev_run, ref_run)
            ok &= demo_cmp["verdicts_agree"]
            result["demo"] = demo_cmp

        rows = [figures(r, facts) for r in runs]
        result["gates"] = rows
        ok &= all(r.ok for r in runs)
        for r in runs:
            if not r.ok:
                say(f"FAILED: {r.label}: {r.error}\n{r.stderr_tail}")

        say()
        say(format_table(TABLE_COLUMNS, [table_row(f) for f in rows],
                         f"adaptergate gate on {facts['name']} ({device})"))
        say("evals: evaluations (queries x 2 adapters); eval s: the runner's time in the gate process;"
            " gen tok/s: generated tokens (to EOS) / generation time; peak mem: "
            + ("torch.cuda.max_memory_allocated in the gate process" if device == "cuda"
               else "the gate process's max RSS (CPU)")
            + f"; bound tok/s: batch rows x {fmt_rate(facts['bandwidth'])} / weight bytes (decoding reads every"
              " weight once a step); achieved: decoding steps x weight bytes / bandwidth / generation time.")
        if demo_cmp is not None:
            say()
            say(f"tiny demo, {device} bf16 vs cpu fp32: verdict {demo_cmp['device_verdict']} vs"
                f" {demo_cmp['cpu_fp32_verdict']} ({'AGREE' if demo_cmp['verdicts_agree'] else 'DISAGREE'});"
                f" driver slice {demo_cmp['device_driver']} vs {demo_cmp['cpu_fp32_driver']};"
                f" same scores on {demo_cmp.get('same_scores', 'n/a')}/{demo_cmp.get('queries', 'n/a')} queries,"
                f" same answers on {demo_cmp.get('same_answers', 'n/a')}")
        gen = next((f for f in rows if f["mode"] == "generate"), None)
        if gen and gen["verdict"]:
            found = next((r for r in runs if r.mode == "generate"), None)
            driver = (found.decision or {}).get("driver_slice_tag") if found else None
            say(f"{preset.name} gate: verdict {gen['verdict']}, driver slice {driver}"
                f" (the candidate was built to regress {assets['trigger_slice']})")
    except Exception as exc:  # noqa: BLE001 - the figures so far and the JSON line still come out
        import traceback

        traceback.print_exc()
        ok = False
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        total = time.perf_counter() - t_start
        result["total_s"] = round(total, 1)
        result["ok"] = bool(ok)
        if args.keep or args.work:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    say(f"total {total:.1f} s; {'OK' if ok else 'FAILED'}")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, default=str, indent=2) + "\n", encoding="utf-8")
    print("GPU_CHECK_JSON " + json.dumps(result, default=str, separators=(",", ":")), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
