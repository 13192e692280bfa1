"""No code from model files: ``auto_map`` is refused unless ``--trust-remote-code`` on the command line.

A base (or judge) model arrives in the pull request under review. Its
``config.json`` / ``tokenizer_config.json`` can name Python files in the
model directory (``auto_map``) that transformers imports when
``trust_remote_code`` is set, and asks about on stdin when it is left
undecided. The hostile copies below carry an ``evil_model.py`` whose import
writes a marker file: the marker must never appear unless the command line
asked for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from adaptergate.cli.app import main  # noqa: E402
from adaptergate.errors import InvalidInputError  # noqa: E402
from adaptergate.backends.peft import check_no_remote_code  # noqa: E402
from test_manifest_gate import repo  # noqa: E402,F401 - the manifest repository fixture

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
EVIL_CONFIG_MAP = {"AutoModelForCausalLM": "evil_model.EvilForCausalLM", "AutoConfig": "evil_model.EvilConfig"}
EVIL_TOKENIZER_MAP = {"AutoTokenizer": ["evil_model.EvilTokenizer", None]}


def _hostile(src: Path, dest: Path, marker: Path, file: str = "config.json") -> Path:
    """A copy of the base whose ``file`` asks for ``evil_model.py``; importing that writes ``marker``."""
    shutil.copytree(src, dest)
    return _make_hostile(dest, marker, file)


def _make_hostile(dest: Path, marker: Path, file: str = "config.json") -> Path:
    doc = json.loads((dest / file).read_text(encoding="utf-8"))
    doc["auto_map"] = EVIL_CONFIG_MAP if file == "config.json" else EVIL_TOKENIZER_MAP
    (dest / file).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    (dest / "evil_model.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('the model code ran')\n"
        "from transformers import LlamaConfig as EvilConfig, LlamaForCausalLM as EvilForCausalLM\n"
        "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n",
        encoding="utf-8",
    )
    return dest


def _gate_argv(assets, base: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "gate", "--tenant", "demo", "--holdout", str(assets.holdout), "--base-model", str(base),
        "--baseline-adapter", str(assets.baseline_adapter), "--candidate-adapter", str(assets.candidate_adapter),
        "--slice-epsilon", "0.10", "--cache-dir", str(cache), "--format", "json", *extra,
    ]


def _subprocess_gate(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``python -m adaptergate`` with no stdin: a transformers prompt would read EOF and fail (exit 3)."""
    env = dict(os.environ)
    env.update({
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ADAPTERGATE_PROGRESS": "0",
        "HF_MODULES_CACHE": str(tmp_path / "hf-modules"),  # where transformers would copy model code to
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    })
    env.pop("ADAPTERGATE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "adaptergate", *argv], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("file", ["config.json", "tokenizer_config.json"])
def test_auto_map_in_the_base_is_exit_2_without_a_prompt(demo_assets, tmp_path, file):
    marker = tmp_path / "marker"
    base = _hostile(demo_assets.base_dir, tmp_path / "hostile-base", marker, file)
    proc = _subprocess_gate(_gate_argv(demo_assets, base, tmp_path / "cache"), tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""  # --format json prints nothing on an error: stdout stays parseable-or-empty
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    (line,) = lines
    assert line.startswith(f"adaptergate: error: base model {base}: {file} asks to run the model's own Python code")
    assert "auto_map" in line and "--trust-remote-code" in line
    assert "Traceback" not in proc.stderr and "custom code" not in proc.stderr  # no transformers prompt
    assert not marker.exists()


def test_a_hostile_judge_model_is_refused_before_the_base_loads(demo_assets, tmp_path, capsys, monkeypatch):
    from adaptergate.backends import peft as runner_mod
    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    loads: list = []
    monkeypatch.setattr(runner_mod, "load_causal_lm", lambda *a, **k: loads.append(a) or pytest.fail("loaded"))
    marker = tmp_path / "marker"
    judge = _hostile(demo_assets.base_dir, tmp_path / "hostile-judge", marker)
    code = main(_gate_argv(demo_assets, demo_assets.base_dir, tmp_path / "cache",
                           "--metric", "judge", "--judge-model", str(judge)))
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip() == (
        f"adaptergate: error: judge model {judge}: config.json asks to run the model's own Python code"
        " (auto_map); adaptergate does not run code from model files unless you pass --trust-remote-code"
        " on the command line"
    )
    assert loads == [] and not marker.exists()


def test_the_action_cannot_trust_remote_code(demo_assets, tmp_path):
    """No Action input turns it on: action.yml declares none, and an INPUT_ variable of that name is not read."""
    from test_action import _action_inputs, run_action

    assert not [name for name in _action_inputs() if "remote" in name or "trust" in name]

    marker = tmp_path / "marker"
    ws = tmp_path / "workspace"
    ws.mkdir()
    _hostile(demo_assets.base_dir, ws / "base", marker)
    shutil.copytree(demo_assets.baseline_adapter, ws / "adapters" / "v1")
    shutil.copytree(demo_assets.candidate_adapter, ws / "adapters" / "v2")
    shutil.copy(demo_assets.holdout, ws / "holdout.jsonl")
    run = run_action(ws, None, {
        "tenant": "demo", "holdout": "holdout.jsonl", "base-model": "base", "baseline-adapter": "adapters/v1",
        "candidate-adapter": "adapters/v2", "slice-epsilon": "0.1", "cache-dir": str(tmp_path / "cache"),
        "github-token": "",
    }, event={}, event_name="workflow_dispatch", base_with={}, extra_env={
        "INPUT_TRUST-REMOTE-CODE": "true", "INPUT_TRUST_REMOTE_CODE": "true",
        "ADAPTERGATE_PROGRESS": "0", "HF_MODULES_CACHE": str(tmp_path / "hf-modules"),
    })
    assert run.code == 2, run.stdout + run.stderr
    assert "config.json asks to run the model's own Python code (auto_map)" in run.stdout + run.stderr
    assert not marker.exists()


def test_manifest_gate_refuses_model_code_and_only_the_command_line_lifts_it(repo, tmp_path, capsys, monkeypatch):  # noqa: F811
    """A manifest cannot ask for model code; ``gate --manifest --trust-remote-code`` reaches every tenant."""
    import adaptergate.scoring.model as ms
    from test_manifest_gate import git

    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    root, marker = repo["root"], tmp_path / "marker"
    _make_hostile(root / "models" / "tiny-llama", marker)  # config.json only: the weights' sha256 is unchanged
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "a base that brings its own code")
    seen: list[bool] = []
    real = ms.score_with_adapters

    def spy(inputs, *args, **kwargs):
        seen.append(inputs.trust_remote_code)
        if inputs.trust_remote_code:  # stop before the model code would run in this process
            raise InvalidInputError("spy: stopped before loading")
        return real(inputs, *args, **kwargs)

    monkeypatch.setattr(ms, "score_with_adapters", spy)
    argv = ["gate", "--manifest", str(root / "adaptergate.yaml"), "--base-ref", repo["base"], "--format", "json",
            "--cache-dir", str(tmp_path / "cache")]
    code = main(argv)
    doc = json.loads(capsys.readouterr().out)
    acme = next(t for t in doc["tenants"] if t["tenant"] == "acme")
    assert code == 2 and acme["status"] == "error", acme
    assert "config.json asks to run the model's own Python code (auto_map)" in acme["error"]
    assert seen == [False] and not marker.exists()

    code = main([*argv, "--trust-remote-code"])
    acme = next(t for t in json.loads(capsys.readouterr().out)["tenants"] if t["tenant"] == "acme")
    assert seen == [False, True] and acme["error"].endswith("spy: stopped before loading")
    assert not marker.exists()


def test_the_check_reads_json_only_and_fails_closed(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "auto_map": {}}))
    check_no_remote_code(d, what="base model")  # an empty auto_map names no code
    check_no_remote_code("org/not-a-local-dir", what="base model")  # a hub id: the loader refuses by itself
    (d / "tokenizer_config.json").write_text('{"auto_map": {"AutoTokenizer": ["x.Tok", null]}')  # torn
    with pytest.raises(InvalidInputError, match=r"^base model .*: tokenizer_config.json is not valid JSON"):
        check_no_remote_code(d, what="base model")
    (d / "tokenizer_config.json").write_text(json.dumps({"auto_map": EVIL_TOKENIZER_MAP}))
    with pytest.raises(InvalidInputError, match=r"tokenizer_config.json asks to run the model's own Python code"):
        check_no_remote_code(d, what="base model")
    check_no_remote_code(d, what="base model", trust_remote_code=True)


def test_trust_remote_code_needs_a_model(capsys):
    from adaptergate.examples import EXAMPLE_HOLDOUT

    code = main(["gate", "--tenant", "acme", "--candidate", "adapter_bad_v19", "--baseline", "adapter_good_v18",
                 "--holdout", str(EXAMPLE_HOLDOUT), "--scorer", "adaptergate.examples.mock_scorer:score",
                 "--trust-remote-code"])
    assert code == 2
    assert "--trust-remote-code goes with --base-model" in capsys.readouterr().err


# --------------------------------------------------------------------------- what the loaders are told


@pytest.fixture
def load_calls(monkeypatch):
    """Every transformers / PEFT load, as (loader, trust_remote_code or 'absent'); the real load still runs."""
    import transformers
    from peft import PeftModel

    calls: list[tuple[str, object]] = []

    def spy(name, real):
        def wrapper(*args, **kwargs):
            calls.append((name, kwargs.get("trust_remote_code", "absent")))
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        spy("AutoTokenizer", transformers.AutoTokenizer.from_pretrained))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        spy("AutoModelForCausalLM", transformers.AutoModelForCausalLM.from_pretrained))
    monkeypatch.setattr(PeftModel, "from_pretrained", spy("PeftModel.from_pretrained", PeftModel.from_pretrained))
    monkeypatch.setattr(PeftModel, "load_adapter", spy("PeftModel.load_adapter", PeftModel.load_adapter))
    return calls


def test_loaders_get_false_by_default_and_true_only_with_the_flag(demo_assets, tmp_path, capsys, monkeypatch,
                                                                  load_calls):
    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    argv = _gate_argv(demo_assets, demo_assets.base_dir, tmp_path / "c1", "--sample", "24",
                      "--min-holdout-size", "10")
    assert main(argv) in (0, 1), capsys.readouterr().err
    capsys.readouterr()
    names = {name for name, _ in load_calls}
    assert {"AutoTokenizer", "AutoModelForCausalLM", "PeftModel.from_pretrained", "PeftModel.load_adapter"} <= names
    assert all(value is False for _, value in load_calls), load_calls

    load_calls.clear()
    argv[argv.index("--cache-dir") + 1] = str(tmp_path / "c2")
    assert main([*argv, "--trust-remote-code"]) in (0, 1), capsys.readouterr().err
    capsys.readouterr()
    told = dict(load_calls)
    assert told["AutoTokenizer"] is True and told["AutoModelForCausalLM"] is True
    # adapters are weights and a config, never code: PEFT is told False whatever the flag says
    assert all(v is False for n, v in load_calls if n.startswith("PeftModel")), load_calls


def test_the_local_judge_loader_is_told_false(demo_assets, load_calls):
    from adaptergate.metrics.judge import JudgeSettings, LocalJudgeFactory
    from adaptergate.backends.base import GenerationSettings

    judge = LocalJudgeFactory(JudgeSettings(model=demo_assets.base_dir), GenerationSettings(threads=1))()
    assert judge.model is not None
    assert sorted(load_calls) == [("AutoModelForCausalLM", False), ("AutoTokenizer", False)]


def test_with_the_flag_the_model_code_really_runs(demo_assets, tmp_path):
    """The refusal above is the check, not an accident: the flag lets transformers import evil_model.py."""
    marker = tmp_path / "marker"
    base = _hostile(demo_assets.base_dir, tmp_path / "hostile-base", marker)
    argv = _gate_argv(demo_assets, base, tmp_path / "cache", "--sample", "24", "--min-holdout-size", "10",
                      "--trust-remote-code")
    proc = _subprocess_gate(argv, tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(proc.stdout)["evaluation"]["base_model"] == str(base)
    assert marker.read_text() == "the model code ran"
