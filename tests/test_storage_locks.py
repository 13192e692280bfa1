"""Where the write locks live: under the cache directory, never beside the user's data.

Lock files beside a holdout or an audit log (``h.jsonl.lock``, ``audit.jsonl.lock``,
``adaptergate.json.lock``) showed up as untracked files in a holdouts repository.
They now live in ``<cache>/locks``; processes still exclude each other (8 processes
x 50 appends lose nothing), and an unusable cache directory falls back to the lock
file beside the target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaptergate.storage import LOCKS_SUBDIR, atomic_write, file_lock, lock_path, locked_append

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ADAPTERGATE_CACHE", str(root))
    return root


def test_lock_file_lives_in_the_cache(tmp_path, cache, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    target = data / "h.jsonl"
    where = lock_path(target)
    assert where.parent == cache / LOCKS_SUBDIR and where.name.endswith("-h.jsonl.lock")
    # the same file by another name (relative, through a symlink) takes the same lock
    monkeypatch.chdir(data)
    assert lock_path(Path("h.jsonl")) == where
    (tmp_path / "link").symlink_to(data)
    assert lock_path(tmp_path / "link" / "h.jsonl") == where
    assert lock_path(data / "other.jsonl") != where


def test_writers_leave_nothing_beside_the_file(tmp_path, cache):
    from adaptergate.pipeline.settings import write_tenant_settings

    data = tmp_path / "data"
    locked_append(data / "audit.jsonl", ['{"a": 1}'])
    atomic_write(data / "h.jsonl", [b'{"id": "q1"}\n'])
    write_tenant_settings(data / "adaptergate.json", "acme", {"epsilon": 0.03}, {"how": "test"})
    with file_lock(data / "x.jsonl"):
        pass
    assert sorted(p.name for p in data.iterdir()) == ["adaptergate.json", "audit.jsonl", "h.jsonl"]
    assert any((cache / LOCKS_SUBDIR).iterdir())


def test_cli_holdout_import_leaves_no_lock_file(tmp_path, cache, capsys):
    from adaptergate.cli import main

    src = tmp_path / "new.jsonl"
    src.write_text(json.dumps({"id": "q1", "prompt": "hi", "slices": ["intent=a"]}) + "\n", encoding="utf-8")
    repo = tmp_path / "holdouts"
    repo.mkdir()
    code = main(["holdout", "import", "--tenant", "acme", "--holdout", str(repo / "h.jsonl"),
                 "--from-jsonl", str(src)])
    capsys.readouterr()
    assert code == 0
    assert [p.name for p in repo.iterdir()] == ["h.jsonl"]


def test_unusable_cache_falls_back_beside_the_file(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("ADAPTERGATE_CACHE", str(blocker))  # <cache>/locks cannot be created
    target = tmp_path / "audit.jsonl"
    assert lock_path(target) == tmp_path / "audit.jsonl.lock"
    locked_append(target, ['{"a": 1}', '{"a": 2}'])
    assert target.read_text().splitlines() == ['{"a": 1}', '{"a": 2}']


_WORKER = r'''
import sys, time
from pathlib import Path
from adaptergate.storage import locked_append
target, name, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
Path(f"{go}.{name}").touch()
while not go.exists():
    time.sleep(0.005)
for i in range(count):
    locked_append(target, ['{"w": "%s", "i": %d, "pad": "%s"}' % (name, i, "x" * 2000)])
'''


def test_eight_processes_append_without_loss(tmp_path, cache):
    target = tmp_path / "data" / "audit.jsonl"
    script = tmp_path / "worker.py"
    script.write_text(_WORKER, encoding="utf-8")
    go = tmp_path / "go"
    env = {**os.environ, "ADAPTERGATE_CACHE": str(cache),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    n_workers, count = 8, 50
    procs = [subprocess.Popen([sys.executable, str(script), str(target), f"w{k}", str(count), str(go)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for k in range(n_workers)]
    try:
        deadline = time.monotonic() + 60
        while not all(Path(f"{go}.w{k}").exists() for k in range(n_workers)):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    lines = target.read_text(encoding="utf-8").splitlines()
    recs = [json.loads(line) for line in lines]  # every line whole
    assert len(recs) == n_workers * count == 400
    for k in range(n_workers):
        assert [r["i"] for r in recs if r["w"] == f"w{k}"] == list(range(count))
    assert [p.name for p in target.parent.iterdir()] == ["audit.jsonl"]
