"""bench/gpu_check.py's CPU smoke mode, and the runner's GPU batching paths run on the CPU.

``python bench/gpu_check.py --device cpu --tiny`` is the GPU check's whole pipeline (build a base,
two adapters and a holdout; gate them through the command line in generate and teacher-forced
mode; gate the tiny demo model in bf16 and fp32) on a base of a few MB: CI runs it here. The
runner's GPU-only choices (one adapter per batch, batches sized from free memory, logits of the
gold positions only, an out-of-memory batch split in two) are forced on the CPU below and must
give the answers of the CPU path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "gpu_check.py"
COLUMNS = (
    "run", "device", "dtype", "mode", "queries", "evals", "verdict", "exit", "load s", "eval s",
    "evals/s", "gen tok/s", "batch", "peak mem", "bound tok/s", "achieved", "wall s",
)


def test_cpu_smoke_mode_prints_the_table_and_the_json_line(demo_assets, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--demo-dir", str(demo_assets.root),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()

    header = next(i for i, line in enumerate(lines) if line.startswith("run "))
    assert _columns(lines[header]) == list(COLUMNS)
    assert set(lines[header + 1]) <= {"-", " "}
    rows = lines[header + 2: header + 6]
    assert [r.split()[0] + " " + r.split()[1] for r in rows] == [
        "tiny generate", "tiny teacher-forced", "demo cpu", "demo cpu"]

    assert lines[-1].startswith("GPU_CHECK_JSON ")
    result = json.loads(lines[-1][len("GPU_CHECK_JSON "):])
    assert result["ok"] is True
    gates = result["gates"]
    assert [g["mode"] for g in gates] == ["generate", "teacher-forced", "generate", "generate"]
    assert all(g["exit_code"] in (0, 1) and g["error"] is None for g in gates)
    for g in gates:  # the runner's statistics reach the figures
        assert g["evaluations"] == 2 * g["queries"]
        assert g["load_s"] is not None and g["eval_s"] > 0 and g["evals_per_s"] > 0
        assert g["peak_memory_bytes"] and g["weight_bytes"]
    gen = gates[0]
    assert gen["generated_tokens"] > 0 and gen["gen_tokens_per_s"] > 0
    assert gen["bound_tokens_per_s"] > 0 and 0 < gen["achieved_fraction"]
    # the candidate was built to answer the trigger topic differently, and nothing else
    assert gen["driver_slice"] == result["assets"]["trigger_slice"] == "topic=t3"
    assert result["demo"]["verdicts_agree"] is True
    assert result["demo"]["device_verdict"] == "FAIL"


def _columns(line: str) -> list[str]:
    """The header's column names (separated by two or more spaces)."""
    import re

    return [c for c in re.split(r"\s{2,}", line.strip()) if c]


# ---------------------------------------------------------------------------
# the GPU batching paths, forced on the CPU


@pytest.fixture(scope="module")
def runner_pair(demo_assets):
    from adaptergate.backends.base import GenerationSettings
    from adaptergate.backends.peft import AdapterRunner

    adapters = {"b": demo_assets.baseline_adapter, "c": demo_assets.candidate_adapter}
    cpu = AdapterRunner(demo_assets.base_dir, adapters, GenerationSettings(batch_size=8, threads=1))
    gpu_like = AdapterRunner(demo_assets.base_dir, adapters, GenerationSettings(threads=1))  # batch size 16: auto
    gpu_like.group_by_adapter = True
    gpu_like.size_from_memory = True
    gpu_like._keep_logits = True
    gpu_like._memory_budget = lambda: 3_000_000  # a few rows per batch, more for short rows
    yield cpu, gpu_like
    cpu.close()
    gpu_like.close()


def _rows(demo_assets, n):
    from adaptergate.holdout.store import load_holdout

    h = load_holdout(demo_assets.holdout)
    payloads = h.payloads[:n]
    names = ["b", "c", "c", "b"] * (n // 4)
    return [p["prompt"] for p in payloads], [p["gold"] for p in payloads], names


def test_gpu_batching_gives_the_cpu_answers(demo_assets, runner_pair):
    cpu, gpu_like = runner_pair
    prompts, golds, names = _rows(demo_assets, 48)
    want_text = cpu.generate(prompts, names, max_new_tokens=6)
    want_tf = cpu.teacher_forced(prompts, golds, names)
    got_text = gpu_like.generate(prompts, names, max_new_tokens=6)
    got_tf = gpu_like.teacher_forced(prompts, golds, names)
    assert got_text == want_text
    assert got_tf[0] == want_tf[0] and set(want_tf[0]) == {True, False}
    assert got_tf[1] == pytest.approx(want_tf[1], abs=1e-4)  # logits of the gold positions only
    extra = gpu_like.stats.extra
    assert extra["batch_size"] == "auto" and 1 < extra["max_batch_rows"] < 48
    assert gpu_like.stats.mixed_batch_fallbacks == 0
    for key in ("load_seconds", "weight_bytes", "generated_tokens", "decode_steps", "decode_slots",
                "generate_seconds", "teacher_forced_seconds", "peak_memory_bytes"):
        assert extra[key], key
    assert extra["generated_tokens"] == gpu_like.stats.generated_tokens


def test_auto_batches_are_one_adapter_sorted_and_within_the_budget(runner_pair):
    from adaptergate.backends.peft import AUTO_MAX_ROWS

    _, gpu_like = runner_pair
    lengths = [5 + (7 * i) % 40 for i in range(2000)]
    adapters = ["b" if i % 3 else "c" for i in range(2000)]
    budget = 3_000_000
    per_token, per_square, per_logit = gpu_like._bytes_per_token()
    batches = gpu_like._plan(lengths, adapters, new_tokens=8, logit_positions=1)
    assert sorted(i for b in batches for i in b) == list(range(2000))
    for b in batches:
        assert len({adapters[i] for i in b}) == 1
        assert [lengths[i] for i in b] == sorted(lengths[i] for i in b)
        width = max(lengths[i] for i in b) + 8
        need = len(b) * (width * per_token + width * width * per_square + per_logit)
        assert len(b) == 1 or need <= budget
        assert len(b) <= AUTO_MAX_ROWS
    sizes = [len(b) for b in batches]
    assert max(sizes) > min(sizes)  # short rows share bigger batches


def test_an_out_of_memory_batch_is_split_in_two(runner_pair):
    import torch

    _, gpu_like = runner_pair
    seen: list[list[int]] = []

    def run(batch):
        if len(batch) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        seen.append(batch)

    gpu_like.on_gpu = True  # only the out-of-memory handling looks at it here
    try:
        gpu_like._run_batch(list(range(10)), run)
    finally:
        gpu_like.on_gpu = False
        gpu_like._budget_scale = 1.0
    assert [i for b in seen for i in b] == list(range(10))
    assert gpu_like.stats.extra["oom_splits"] == 3  # 10 -> 5 + 5 -> (2 + 3) + (2 + 3)

    def broken(batch):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        gpu_like._run_batch(list(range(10)), broken)
