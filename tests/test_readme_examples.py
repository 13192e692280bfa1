"""Every offline shell example of README.md runs as written.

The ```bash blocks of the README are read; each command that starts with
``adaptergate`` (after ``&&``, or after ``VAR=value`` assignments) is either
run — in README order, in one temporary directory that holds the bundled
example files, the way a user following the README would — or listed in
:data:`SKIPPED` with the reason it cannot run here (a model, a GPU, a server, a
git repository with adapters). A command that is in neither fails the test, so a
new or changed example cannot drift unnoticed.

Commands are literal: no ``list|size`` alternatives, no ``ID`` or ``...`` to fill in
(an elided command is listed in :data:`SKIPPED`). What the README's prose says
happened before a command is :data:`BEFORE` (e.g. "after applying a recipe and
re-gating by hand").
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from adaptergate.cli import main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
EXAMPLE_HOLDOUT = REPO / "adaptergate" / "examples" / "acme_holdout.jsonl"

# README command (a distinctive part of it) -> why it is not run here. Each entry must match
# exactly one README command.
SKIPPED: dict[str, str] = {
    "adaptergate demo":
        "builds a tiny Llama and two LoRA adapters with torch (about 25 s): tests/test_tinymodel.py"
        " builds them and tests/test_model_gate.py gates them",
    "--base-model models/base --baseline-adapter adapters/v18 --candidate-adapter adapters/v19 --metric exact":
        "needs a base model and two LoRA adapters: tests/test_model_gate.py runs this command on the demo's"
        " tiny model",
    "gate --backend vllm":
        "needs vLLM and a model (a GPU for real sizes): tests/test_serving.py",
    "gate --backend openai":
        "needs an OpenAI-compatible server (network): tests/test_serving.py runs one locally",
    "--metric judge --judge-url":
        "needs a judge server and a model: tests/test_judge.py",
    "gate --manifest adaptergate.yaml --base-ref origin/main":
        "needs a git repository with a manifest and adapters: tests/test_manifest_gate.py",
    "gate --config adaptergate.json --tenant acme ...":
        "elided ('...'): the rest of the line is the gate command above; the settings file it reads is"
        " written by the calibrate command, which runs",
}

# README command (a distinctive part) -> commands run just before it: what the README's text
# around it says happened first.
BEFORE: dict[str, list[list[str]]] = {
    # "after applying a recipe and re-gating by hand": the re-gate of the repaired adapter
    "recipes log --recipe": [["gate", "--tenant", "acme", "--candidate", "adapter_v20", "--baseline",
                              "adapter_v18", "--holdout", "data/acme_holdout.jsonl", "--scorer", "my_eval:score",
                              "--audit-log", "data/audit.jsonl", "--replay-path", "data/rejected.jsonl"]],
}

# README command (a distinctive part) -> the exit codes that mean it worked (default: 0).
# A gate exits 1 when it rejects; the README's candidate adapter_v19 is worse than adapter_v18
# under the bundled mock scorer.
EXIT_CODES: dict[str, set[int]] = {
    "adaptergate gate": {0, 1},
    "recipes verify": {0, 1},
}


def readme_commands(text: str) -> list[str]:
    """The ``adaptergate`` commands of the README's bash blocks, continuation lines joined."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words = words[1:]  # VAR=value before the command
                if words and words[0] == "adaptergate":
                    out.append(" ".join(part.split("#")[0].split()) if "'" not in part else part.strip())
    return out


def _entry(table: dict, command: str) -> str | None:
    hits = [key for key in table if key in " ".join(command.split())]
    assert len(hits) <= 1, f"{command!r} matches several entries: {hits}"
    return hits[0] if hits else None


def argv_of(command: str) -> list[str]:
    """The argv a README command runs (``adaptergate`` and any ``VAR=value`` dropped)."""
    words = shlex.split(command, comments=True)
    while words and words[0] != "adaptergate":
        words = words[1:]
    words = words[1:]
    literal = [w for w in words if "|" in w and not w.startswith("{") or w in ("...", "ID") or w.startswith("[")]
    assert not literal, f"{command!r}: {literal} is not a literal command (write each alternative out)"
    return words


@pytest.fixture
def userdir(tmp_path, monkeypatch):
    """A directory as a user following the README has it: the bundled example holdout, a scorer
    module ``my_eval`` (the bundled mock scorer), the repository's schemas, a small training file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAPTERGATE_CACHE", str(tmp_path / ".cache"))
    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    monkeypatch.delenv("ADAPTERGATE_DECISION", raising=False)
    monkeypatch.delenv("ADAPTERGATE_CONFIG", raising=False)
    (tmp_path / "data").mkdir()
    shutil.copy(EXAMPLE_HOLDOUT, tmp_path / "data" / "acme_holdout.jsonl")
    shutil.copy(EXAMPLE_HOLDOUT, tmp_path / "h.jsonl")
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    (tmp_path / "my_eval.py").write_text(
        "from adaptergate.examples.mock_scorer import score, score_batch  # noqa: F401\n", encoding="utf-8")
    new = [{"id": f"new_{i}", "prompt": f"Where is my parcel number {i}?", "gold": "order_status",
            "slices": ["intent=order_status", "lang=en"], "tenant": "acme"} for i in range(3)]
    (tmp_path / "new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new), encoding="utf-8")
    (tmp_path / "train").mkdir()
    train = [{"messages": [{"role": "user", "content": f"How do I reset password number {i} on the app?"},
                           {"role": "assistant", "content": "Use the reset link."}]} for i in range(5)]
    (tmp_path / "train" / "acme-2026-11.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
    # a history for `replay show --index 2`: an earlier rejected candidate
    import sys

    sys.modules.pop("my_eval", None)
    assert main(["gate", "--tenant", "acme", "--candidate", "adapter_bad_v17", "--baseline", "adapter_v18",
                 "--holdout", "data/acme_holdout.jsonl", "--scorer", "my_eval:score",
                 "--audit-log", "data/audit.jsonl", "--replay-path", "data/rejected.jsonl",
                 "--format", "json"]) == 1
    return tmp_path


def test_readme_commands_are_all_classified():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) >= 20
    for key in SKIPPED:
        assert sum(key in " ".join(c.split()) for c in commands) == 1, f"SKIPPED entry {key!r} matches no command"
    for key in (*BEFORE, *EXIT_CODES):
        assert any(key in " ".join(c.split()) for c in commands), f"{key!r} matches no README command"


def test_readme_examples_run_as_written(userdir, capsys):
    commands = readme_commands(README.read_text(encoding="utf-8"))
    ran = 0
    for command in commands:
        if _entry(SKIPPED, command) is not None:
            continue
        before = _entry(BEFORE, command)
        for argv in BEFORE.get(before, []) if before else []:
            assert main(argv) in (0, 1), argv
        capsys.readouterr()
        allowed = EXIT_CODES.get(_entry(EXIT_CODES, command) or "", {0})
        code = main(argv_of(command))
        out, err = capsys.readouterr()
        assert code in allowed, f"README: {command}\nexit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-2000:]}"
        assert "Traceback" not in out + err and "error:" not in err, (command, err)
        ran += 1
    assert ran >= 18
    # what the commands made is what the README says they make
    assert json.loads((userdir / "adaptergate.json").read_text())["tenants"]["acme"]["epsilon"] > 0
    assert (userdir / "data" / "recipes.jsonl").is_file()
    applications = (userdir / "data" / "applications.verified.jsonl").read_text().splitlines()
    assert len(applications) == 2  # recipes log, then recipes verify
    assert all(json.loads(a)["recipe_id"] == "procl_slot_rebalance_v1" for a in applications)
    assert not [p for p in userdir.rglob("*.lock") if ".cache" not in p.parts]  # no lock files beside data
