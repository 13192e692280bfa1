"""What a new user runs into first: help text, progress, promote's messages, recipes, timing."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import adaptergate.cli.common as common
from adaptergate.cli import main
from adaptergate.examples import EXAMPLE_HOLDOUT, EXAMPLE_SCORER

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_gate_help_lists_every_exit_code(capsys):
    code, out, _ = run(["gate", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "Exit 0 accepted, 1 rejected, 2 invalid input or usage, 3 evaluation failed." in text


# ----------------------------------------------------------------- progress

GATE = ["gate", "--tenant", "acme", "--candidate", "adapter_bad_v19", "--baseline", "adapter_good_v18",
        "--holdout", EXAMPLE_HOLDOUT, "--scorer", EXAMPLE_SCORER, "--format", "json"]


def test_scorer_gate_shows_a_progress_bar_with_its_total_on_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("ADAPTERGATE_PROGRESS", raising=False)
    buf = io.StringIO()
    monkeypatch.setattr(common, "_err_console", lambda: Console(file=buf, force_terminal=True, width=120))
    code, out, _ = run(GATE, capsys)
    assert code == 1 and json.loads(out)["holdout_size"] == 48
    bar = ANSI.sub("", buf.getvalue())
    assert "scoring" in bar and "0/96" in bar and "96/96" in bar  # 48 queries x 2 adapters, known up front
    assert "/?" not in bar
    buf.truncate(0)
    run([*GATE, "--sample", "30", "--repeats", "2"], capsys)
    assert "120/120" in ANSI.sub("", buf.getvalue())  # 30 sampled x 2 adapters x 2 repeats


def test_no_progress_bar_off_a_terminal_or_when_turned_off(capsys, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(common, "_err_console", lambda: Console(file=buf, force_terminal=False))
    monkeypatch.delenv("ADAPTERGATE_PROGRESS", raising=False)
    run(GATE, capsys)
    assert buf.getvalue() == ""
    monkeypatch.setattr(common, "_err_console", lambda: Console(file=buf, force_terminal=True))
    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    run(GATE, capsys)
    assert buf.getvalue() == ""


def test_progress_before_the_first_evaluation_says_what_it_waits_for(monkeypatch):
    buf = io.StringIO()
    monkeypatch.delenv("ADAPTERGATE_PROGRESS", raising=False)
    monkeypatch.setattr(common, "_err_console", lambda: Console(file=buf, force_terminal=True, width=100))
    with common._progress(enabled=True, total=lambda: 10, starting="loading the model") as tick:
        tick.total(12)  # a pipeline that knows better (cached rows) may set the total
        tick(12)
        tick(1)  # more than announced: the total follows
    text = ANSI.sub("", buf.getvalue())
    assert "loading the model" in text and "0/10" in text and "13/13" in text and "scoring" in text


# ------------------------------------------------------------------ promote


def _adapter(d: Path, base: str, seed: int = 0) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from test_promotion import make_adapter
    finally:
        sys.path.pop(0)
    make_adapter(d, base=base, seed=seed)


def test_promote_names_the_roles_right_and_takes_the_base_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny-llama").mkdir(parents=True)
    (tmp_path / "h.jsonl").write_text('{"id": "q1", "prompt": "hi"}\n')
    # trained from a local directory: adapter_config.json names the base by its path
    _adapter(tmp_path / "adapters" / "a", base="/home/ci/.cache/adaptergate/demo-v1/base")
    code, _, err = run(["promote", "--tenant", "acme", "--adapter", "adapters/a", "--base-model", "tiny-llama",
                        "--holdout", "h.jsonl", "--manifest", "m.yaml"], capsys)
    assert code == 2
    line = " ".join(err.split())
    assert ("expected tiny-llama (the manifest's base model), got /home/ci/.cache/adaptergate/demo-v1/base"
            " (the adapter's declared base") in line
    assert "--base-model-path" in line
    # a new tenant whose adapter names the base directory it was trained from
    _adapter(tmp_path / "adapters" / "b", base=str((tmp_path / "models" / "tiny-llama").resolve()), seed=1)
    code, out, err = run(["promote", "--tenant", "acme", "--adapter", "adapters/b", "--base-model", "tiny-llama",
                          "--base-model-path", "models/tiny-llama", "--holdout", "h.jsonl", "--manifest", "m.yaml"],
                         capsys)
    assert code == 0, err
    import yaml

    entry = yaml.safe_load((tmp_path / "m.yaml").read_text())["tenants"]["acme"]
    assert entry["base_model"] == {"id": "tiny-llama", "path": "models/tiny-llama"}
    _adapter(tmp_path / "adapters" / "c", base="tiny-llama", seed=2)
    code, _, err = run(["promote", "--tenant", "acme", "--adapter", "adapters/c", "--base-model-path", "nowhere",
                        "--manifest", "m.yaml"], capsys)
    assert code == 2 and "--base-model-path nowhere: not a directory" in err


# ------------------------------------------------------------------ recipes


def test_recommend_points_cli_users_at_recipes_log(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    assert run([*GATE[:-2], "--audit-log", "audit.jsonl"], capsys)[0] == 1
    assert run(["recipes", "seed", "--recipes", "recipes.jsonl"], capsys)[0] == 0
    code, _, err = run(["recommend-cmd", "--decision", "audit.jsonl", "--recipes", "recipes.jsonl"], capsys)
    note = " ".join(err.split())
    assert code == 0 and "RecipeStore" not in note
    assert "adaptergate recipes log --recipe ID --recipes recipes.jsonl --decision @last-rejected" in note


# ------------------------------------------------------------------- timing


def test_run_seconds_counts_the_whole_process(tmp_path):
    """A command run as the process (the console script) counts from the process's start:
    interpreter start-up and imports included, as the user waited for them."""
    script = ("import time\n"
              "time.sleep(1.2)\n"
              "from adaptergate.cli.common import mark_run_start, run_seconds\n"
              "mark_run_start(whole_process=True)\n"
              "print(run_seconds())\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert float(out.stdout) >= 1.1


def test_run_seconds_in_process_counts_from_the_command(monkeypatch):
    common.mark_run_start(whole_process=False)
    assert 0 <= common.run_seconds() < 5


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start time from /proc (Linux)")
def test_process_age_is_known_on_linux():
    age = common._process_age()
    assert age is not None and age >= 0
