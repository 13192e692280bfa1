"""The ledger survives torn writes.

A full disk is simulated without mounts: the append runs in a child process
under ``RLIMIT_FSIZE`` (with ``SIGXFSZ`` ignored), so the write fails with
``EFBIG`` — at once, or after a short write. Every append-only file must keep
exactly its previous bytes and the failure must be a
:class:`~adaptergate.errors.StorageError` (exit code 3, one line).

Torn tails (a last line without its newline, cut mid-record) are read past
with a warning naming ``file:line``; appends remove them; a bad line in the
middle of a file is still an error.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from adaptergate.errors import InvalidInputError
from adaptergate.examples import EXAMPLE_HOLDOUT
from adaptergate.pipeline.ledger import AuditLog, ReplayBuffer, read_rows, write_rows
from adaptergate.models import GateDecision, QueryRow, SliceAttribution
from adaptergate.recipes import RecipeStore, read_decision, seed_recipes_bytes
from adaptergate.storage import is_torn_fragment, locked_append, split_torn_tail

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
MOCK = "adaptergate.examples.mock_scorer:score"
FIX054 = Path(__file__).parent / "fixtures" / "recipes054"
RECIPE = "online_lora_lr_decay_v1"


def make_decision(candidate_id: str, *, accepted: bool = False, seconds: int = 0, reason: str = "") -> GateDecision:
    rows = [
        QueryRow(query_id=f"q{i}", score_baseline=1.0, score_candidate=0.0 if i % 2 else 1.0,
                 delta=-1.0 if i % 2 else 0.0, line=i + 1)
        for i in range(3)
    ]
    slices = [
        SliceAttribution(slice_tag="intent=refund", n_total=2, n_regressed=2 if not accepted else 0,
                         score_baseline=1.0, score_candidate=0.0 if not accepted else 1.0,
                         delta=-1.0 if not accepted else 0.0,
                         regressed_query_ids=["q0", "q1"] if not accepted else []),
    ]
    return GateDecision(
        accepted=accepted, tenant_id="acme", candidate_id=candidate_id, baseline_id="base",
        holdout_size=3, score_baseline=1.0, score_candidate=0.5 if not accepted else 1.0,
        delta=-0.5 if not accepted else 0.0, epsilon=0.02,
        reason=reason or ("REJECTED: aggregate drop" if not accepted else "ACCEPTED"),
        timestamp=(T0 + timedelta(seconds=seconds)).isoformat(), per_query=rows,
        slice_attributions=slices, driver_slice_tag=None if accepted else "intent=refund",
    )


def store_in(tmp_path: Path) -> RecipeStore:
    recipes = tmp_path / "recipes.jsonl"
    if not recipes.exists():
        recipes.write_bytes(seed_recipes_bytes())
    return RecipeStore(recipes)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file of ``directory`` (lock files aside) and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file() and not p.name.endswith(".lock")}


def tear(path: Path, line: str, keep: float = 0.5) -> bytes:
    """Append the first ``keep`` of ``line`` (no newline), as a write that did not finish."""
    data = line.encode("utf-8")
    fragment = data[: max(1, int(len(data) * keep))]
    with path.open("ab") as fh:
        fh.write(fragment)
    return fragment


def torn_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "incomplete last line" in r.getMessage()]


# ---------------------------------------------------------------------------
# A full disk: the child process runs under RLIMIT_FSIZE
# ---------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    from adaptergate.errors import exit_code_for
    from adaptergate.pipeline.ledger import AuditLog, ReplayBuffer, write_rows
    from adaptergate.models import GateDecision
    from adaptergate.recipes import RecipeStore

    args = json.loads(sys.argv[1])
    tmp = Path(args["tmp"])
    decision = GateDecision.model_validate_json((tmp / "new_decision.json").read_text())
    outcome = GateDecision.model_validate_json((tmp / "new_outcome.json").read_text())
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (args["limit"], args["limit"]))
    try:
        exec(args["action"])
    except BaseException as exc:
        print(json.dumps({"type": type(exc).__name__, "message": str(exc),
                          "exit_code": int(exit_code_for(exc))}))
    else:
        print(json.dumps({"type": None}))
    """
)


def run_limited(tmp_path: Path, action: str, limit: int, decision: GateDecision, outcome: GateDecision) -> dict:
    (tmp_path / "new_decision.json").write_bytes(decision.to_json_bytes())
    (tmp_path / "new_outcome.json").write_bytes(outcome.to_json_bytes())
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps({"tmp": str(tmp_path), "limit": limit, "action": action})],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    for name in ("new_decision.json", "new_outcome.json"):
        (tmp_path / name).unlink()
    return json.loads(p.stdout.strip().splitlines()[-1])


def _audit_setup(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append(make_decision("c1"))
    return path


def _audit_check(path: Path) -> None:
    AuditLog(path).append(make_decision("c3", seconds=3))
    assert [d.candidate_id for d in AuditLog(path).decisions()] == ["c1", "c3"]


def _replay_setup(tmp_path: Path) -> Path:
    path = tmp_path / "replay.jsonl"
    ReplayBuffer(path, "acme").add(make_decision("c1"))
    return path


def _replay_check(path: Path) -> None:
    ReplayBuffer(path, "acme").add(make_decision("c3", seconds=3))
    assert [r.candidate_id for r in ReplayBuffer(path, "acme").records()] == ["c1", "c3"]


def _rotating_setup(tmp_path: Path) -> Path:
    path = tmp_path / "replay.jsonl"
    buf = ReplayBuffer(path, "acme", max_records=2)
    buf.add(make_decision("c0"))
    buf.add(make_decision("c1", seconds=1))  # the live file is full: the next add rotates
    return path


def _rotating_check(path: Path) -> None:
    buf = ReplayBuffer(path, "acme", max_records=2)
    buf.add(make_decision("c3", seconds=3))
    assert buf.rotated_path.exists()
    assert [r.candidate_id for r in buf.records()] == ["c0", "c1", "c3"]


def _rows_setup(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    write_rows(path, make_decision("c1"))
    return path


def _rows_check(path: Path) -> None:
    write_rows(path, make_decision("c3"))
    assert [r["query_id"] for r in read_rows(path)] == ["q0", "q1", "q2"]


def _applications_setup(tmp_path: Path) -> Path:
    store_in(tmp_path).log_application(recipe_id=RECIPE, tenant_id="acme", pre_decision_score=0.5,
                                       application_id="a1")
    return tmp_path / "applications.jsonl"


def _applications_check(path: Path) -> None:
    store = store_in(path.parent)
    store.log_application(recipe_id=RECIPE, tenant_id="acme", pre_decision_score=0.6, application_id="a3")
    assert [a.application_id for a in store_in(path.parent).applications()] == ["a1", "a3"]


def _verified_setup(tmp_path: Path) -> Path:
    store_in(tmp_path).log_outcome(recipe_id=RECIPE, decision=make_decision("c1"),
                                   outcome=make_decision("c2", accepted=True, seconds=2), application_id="v1")
    return tmp_path / "applications.verified.jsonl"


def _verified_check(path: Path) -> None:
    store = store_in(path.parent)
    store.log_outcome(recipe_id=RECIPE, decision=make_decision("c1"),
                      outcome=make_decision("c9", accepted=True, seconds=9), application_id="v3")
    fresh = store_in(path.parent)
    assert [a.application_id for a in fresh.verified_applications()] == ["v1", "v3"]
    assert [a.application_id for a in fresh.applications()] == ["v1", "v3"]


FULL_DISK_CASES = {
    # name: (setup, the append in the child, the file it appends to, a later append + read)
    "audit-decision": (_audit_setup, "AuditLog(tmp / 'audit.jsonl').append(decision)", _audit_check),
    "audit-error": (
        _audit_setup,
        "AuditLog(tmp / 'audit.jsonl').append_error(tenant_id='acme', candidate_id='c2', baseline_id='b',"
        " error='scorer raised KeyError', exit_code=3, traceback_text='Traceback ...' * 20)",
        _audit_check,
    ),
    "replay-add": (_replay_setup, "ReplayBuffer(tmp / 'replay.jsonl', 'acme').add(decision)", _replay_check),
    "replay-add-rotating": (
        _rotating_setup, "ReplayBuffer(tmp / 'replay.jsonl', 'acme', max_records=2).add(decision)", _rotating_check,
    ),
    "rows": (_rows_setup, "write_rows(tmp / 'rows.jsonl', decision)", _rows_check),
    "applications": (
        _applications_setup,
        "RecipeStore(tmp / 'recipes.jsonl').log_application(recipe_id='online_lora_lr_decay_v1',"
        " tenant_id='acme', pre_decision_score=0.4, application_id='a2')",
        _applications_check,
    ),
    "verified-applications": (
        _verified_setup,
        "RecipeStore(tmp / 'recipes.jsonl').log_outcome(recipe_id='online_lora_lr_decay_v1',"
        " decision=decision, outcome=outcome, application_id='v2')",
        _verified_check,
    ),
}


@pytest.mark.parametrize("short_write", [False, True], ids=["at-once", "short-write"])
@pytest.mark.parametrize("case", list(FULL_DISK_CASES))
def test_full_disk_leaves_every_file_as_it_was(tmp_path, case, short_write):
    setup, action, check = FULL_DISK_CASES[case]
    path = setup(tmp_path)
    before = snapshot(tmp_path)
    size = len(before[path.name])
    if case in ("rows", "replay-add-rotating"):
        # A new file is written beside the old one: it must not fit either.
        limit = 7 if short_write else 0
    else:
        limit = size + 7 if short_write else size
    got = run_limited(tmp_path, action, limit, make_decision("c2", seconds=2),
                      make_decision("c8", accepted=True, seconds=8))

    assert got["type"] == "StorageError", got
    assert got["exit_code"] == 3
    msg = got["message"]
    assert "\n" not in msg
    assert msg.startswith("cannot ") and str(path) in msg
    assert "File too large" in msg and msg.endswith("(the file was left as it was)")
    assert snapshot(tmp_path) == before  # same files, same bytes, no temp file left behind
    check(path)  # a later append and a later read work


def test_full_disk_on_a_new_file_creates_nothing(tmp_path):
    got = run_limited(tmp_path, "AuditLog(tmp / 'sub' / 'audit.jsonl').append(decision)", 0,
                      make_decision("c1"), make_decision("c2"))
    assert got["type"] == "StorageError" and "the file was not created" in got["message"]
    assert not (tmp_path / "sub" / "audit.jsonl").exists()
    AuditLog(tmp_path / "sub" / "audit.jsonl").append(make_decision("c1"))
    assert len(AuditLog(tmp_path / "sub" / "audit.jsonl").decisions()) == 1


def test_full_disk_after_a_torn_tail_keeps_the_complete_records(tmp_path):
    path = _audit_setup(tmp_path)
    complete = path.read_bytes()
    tear(path, json.dumps({"kind": "decision", "candidate_id": "lost"}))
    got = run_limited(tmp_path, "AuditLog(tmp / 'audit.jsonl').append(decision)", len(complete) + 5,
                      make_decision("c2"), make_decision("c3"))
    assert got["type"] == "StorageError"
    assert "an incomplete last line was removed" in got["message"]
    assert path.read_bytes() == complete
    _audit_check(path)


# ---------------------------------------------------------------------------
# Torn tails: readers
# ---------------------------------------------------------------------------


def test_is_torn_fragment_rule():
    assert is_torn_fragment(b'{"kind": "decision", "cand')
    assert is_torn_fragment(b'  {"a": "caf\xc3')  # cut inside a UTF-8 character
    assert is_torn_fragment(b"{")
    assert not is_torn_fragment(b'{"a": 1}')  # complete, only the newline is missing
    assert not is_torn_fragment(b'{"a": 1}  \r')
    assert not is_torn_fragment(b"   ")
    assert not is_torn_fragment(b"garbage")  # not the start of a record of ours
    assert not is_torn_fragment(b"[1, 2")
    assert split_torn_tail(b'{"a": 1}\n{"b"') == (b'{"a": 1}\n', 2)
    assert split_torn_tail(b'{"a": 1}\n{"b": 2}') == (b'{"a": 1}\n{"b": 2}', None)
    assert split_torn_tail(b'{"a": 1}\n{"b"\n') == (b'{"a": 1}\n{"b"\n', None)  # has its newline: not a tail


def _audit_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append(make_decision("c1"))
    AuditLog(path).append_error(tenant_id="acme", candidate_id="c2", baseline_id=None, error="boom",
                                exit_code=3, traceback_text=None)
    return path, json.dumps({"kind": "decision", **make_decision("c3").compact().model_dump(mode="json")})


def _replay_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "replay.jsonl"
    for i in range(2):
        ReplayBuffer(path, "acme").add(make_decision(f"c{i + 1}", seconds=i))
    return path, path.read_text().splitlines()[-1]


READERS = {
    "audit-records": (_audit_file, lambda p: [r["candidate_id"] for r in AuditLog(p).records()], ["c1", "c2"]),
    "audit-decisions": (_audit_file, lambda p: [d.candidate_id for d in AuditLog(p).decisions()], ["c1"]),
    "audit-find": (
        _audit_file, lambda p: [AuditLog(p).find("c1", make_decision("c1").timestamp).candidate_id], ["c1"],
    ),
    "decision-file": (_audit_file, lambda p: [read_decision(p).candidate_id], ["c1"]),
    "replay": (_replay_file, lambda p: [r.candidate_id for r in ReplayBuffer(p, "acme").records()], ["c1", "c2"]),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_readers_skip_a_torn_last_line_with_a_warning(tmp_path, caplog, reader):
    make, read, expected = READERS[reader]
    path, next_line = make(tmp_path)
    assert read(path) == expected
    tear(path, next_line)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert read(path) == expected
    (msg,) = torn_warnings(caplog)
    assert msg.startswith(f"warning: {path}:3: skipped an incomplete last line")


@pytest.mark.parametrize("reader", list(READERS))
def test_a_torn_line_in_the_middle_is_still_an_error(tmp_path, reader):
    make, read, _ = READERS[reader]
    path, next_line = make(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + next_line[: len(next_line) // 2] + "\n" + lines[1] + "\n")
    with pytest.raises(InvalidInputError, match=rf"{path.name}:2: not valid JSON"):
        read(path)


def test_skip_bad_also_skips_a_torn_line_in_the_middle(tmp_path):
    path, next_line = _audit_file(tmp_path)
    locked_append(path, [next_line[:40]])  # a fragment that does end with a newline
    AuditLog(path).append(make_decision("c4"))
    assert [d.candidate_id for d in AuditLog(path).decisions(skip_bad=True)] == ["c1", "c4"]


def test_a_complete_last_line_without_newline_is_read_normally(tmp_path, caplog):
    path, next_line = _audit_file(tmp_path)
    with path.open("a") as fh:
        fh.write(next_line)
    with caplog.at_level(logging.WARNING):
        assert [d.candidate_id for d in AuditLog(path).decisions()] == ["c1", "c3"]
        assert read_decision(path).candidate_id == "c3"
    assert torn_warnings(caplog) == []


def test_a_last_line_that_is_not_a_record_is_still_an_error(tmp_path):
    path, _ = _audit_file(tmp_path)
    with path.open("a") as fh:
        fh.write("garbage")
    with pytest.raises(InvalidInputError, match=r"audit\.jsonl:3: not valid JSON"):
        AuditLog(path).records()
    with pytest.raises(InvalidInputError, match=r"audit\.jsonl:3: not valid JSON"):
        read_decision(path)
    AuditLog(path).append(make_decision("c4"))  # kept, not truncated: it is not ours to drop
    assert path.read_text().splitlines()[2] == "garbage"


def test_torn_inside_a_multibyte_character(tmp_path, caplog):
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append(make_decision("c1"))
    line = json.dumps({"kind": "decision", "reason": "Δ dropped é"}, ensure_ascii=False)
    cut = line.encode("utf-8").index("é".encode("utf-8")) + 1
    with path.open("ab") as fh:
        fh.write(line.encode("utf-8")[:cut])
    with caplog.at_level(logging.WARNING):
        assert [d.candidate_id for d in AuditLog(path).decisions()] == ["c1"]
        assert read_decision(path).candidate_id == "c1"
    assert len(torn_warnings(caplog)) == 2


def test_a_decision_file_holding_only_a_torn_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    tear(path, json.dumps({"kind": "decision", **make_decision("c1").compact().model_dump(mode="json")}))
    with pytest.raises(InvalidInputError, match="holds no complete record"):
        read_decision(path)


def test_torn_rotated_replay_file(tmp_path, caplog):
    path = tmp_path / "replay.jsonl"
    buf = ReplayBuffer(path, "acme", max_records=2)
    for i in range(3):
        buf.add(make_decision(f"c{i}", seconds=i))
    assert len(buf.rotated_path.read_text().splitlines()) == 2
    tear(buf.rotated_path, path.read_text().splitlines()[0])
    with caplog.at_level(logging.WARNING):
        assert [r.candidate_id for r in buf.records()] == ["c0", "c1", "c2"]
    (msg,) = torn_warnings(caplog)
    assert f"{buf.rotated_path}:3: skipped" in msg


def test_torn_rows_file(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    write_rows(path, make_decision("c1"))
    tear(path, path.read_text().splitlines()[0])
    with caplog.at_level(logging.WARNING):
        assert [r["query_id"] for r in read_rows(path)] == ["q0", "q1", "q2"]
    (msg,) = torn_warnings(caplog)
    assert f"{path}:4: skipped" in msg
    text = path.read_text()
    path.write_text(text[:30] + "\n" + text)  # a torn line in the middle
    with pytest.raises(InvalidInputError, match=r"rows\.jsonl:1: not valid JSON"):
        read_rows(path)


@pytest.mark.parametrize("which", ["applications", "verified"])
def test_torn_recipe_application_logs(tmp_path, caplog, which):
    _verified_setup(tmp_path)
    store_in(tmp_path).log_application(recipe_id=RECIPE, tenant_id="acme", pre_decision_score=0.5,
                                       application_id="a1")
    path = tmp_path / ("applications.jsonl" if which == "applications" else "applications.verified.jsonl")
    n = len(path.read_text().splitlines())
    tear(path, path.read_text().splitlines()[0])
    with caplog.at_level(logging.WARNING):
        store = store_in(tmp_path)
        assert [a.application_id for a in store.applications()] == ["v1", "a1"]
        assert [a.application_id for a in store.verified_applications()] == ["v1"]
    (msg,) = torn_warnings(caplog)
    assert msg.startswith(f"warning: {path}:{n + 1}: skipped an incomplete last line")

    # A torn line in the middle is still an error naming it.
    lines = path.read_text().split("\n")
    path.write_text(lines[-1] + "\n" + "\n".join(lines[:-1]) + "\n")
    store = store_in(tmp_path)
    with pytest.raises(InvalidInputError, match=rf"{path.name}:1: not valid JSON"):
        store.applications() if which == "applications" else store.verified_applications()


def test_the_recipes_file_itself_stays_strict(tmp_path):
    # recipes.jsonl is rewritten atomically, never appended to: a cut last line is an error.
    recipes = tmp_path / "recipes.jsonl"
    data = seed_recipes_bytes()
    recipes.write_bytes(data[: len(data) - 40])
    with pytest.raises(InvalidInputError, match=r"recipes\.jsonl:\d+: not valid JSON"):
        RecipeStore(recipes)


def test_records_holding_unicode_line_separators_read_back(tmp_path):
    # json.dumps(ensure_ascii=False) leaves U+2028 and U+0085 raw: a reader
    # splitting with str.splitlines() would cut the record in two.
    store = store_in(tmp_path)
    note = "first\u2028second\x85third"
    store.log_outcome(recipe_id=RECIPE, decision=make_decision("c1"),
                      outcome=make_decision("c2", accepted=True, seconds=2), note=note, application_id="v1")
    assert [a.note for a in store_in(tmp_path).verified_applications()] == [note]
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append(make_decision("c0"))
    AuditLog(path).append(make_decision("c1", reason=f"REJECTED: {note}"))
    assert note in path.read_text(encoding="utf-8")  # raw, not escaped
    assert read_decision(path).reason == f"REJECTED: {note}"
    assert read_decision(path, line=0).candidate_id == "c0"


# ---------------------------------------------------------------------------
# Torn tails: appends
# ---------------------------------------------------------------------------

APPENDERS = {
    "audit": (_audit_file, lambda p, i: AuditLog(p).append(make_decision(f"n{i}", seconds=10 + i)),
              lambda p: [r["candidate_id"] for r in AuditLog(p).records()]),
    "replay": (_replay_file, lambda p, i: ReplayBuffer(p, "acme").add(make_decision(f"n{i}", seconds=10 + i)),
               lambda p: [r.candidate_id for r in ReplayBuffer(p, "acme").records()]),
}


@pytest.mark.parametrize("which", list(APPENDERS))
def test_append_after_a_torn_tail_keeps_every_complete_record(tmp_path, caplog, which):
    make, append, read = APPENDERS[which]
    path, next_line = make(tmp_path)
    complete = path.read_bytes()
    before = read(path)
    tear(path, next_line)
    with caplog.at_level(logging.WARNING):
        append(path, 1)
    (msg,) = torn_warnings(caplog)
    assert msg.startswith(f"warning: {path}:3: removed an incomplete last line")
    data = path.read_bytes()
    assert data.startswith(complete) and data.endswith(b"\n") and data.count(b"\n") == 3
    append(path, 2)
    assert read(path) == [*before, "n1", "n2"]


def test_append_after_torn_recipe_logs(tmp_path):
    _verified_setup(tmp_path)
    for name in ("applications.jsonl", "applications.verified.jsonl"):
        tear(tmp_path / name, (tmp_path / name).read_text().splitlines()[0])
    store_in(tmp_path).log_outcome(recipe_id=RECIPE, decision=make_decision("c1"),
                                   outcome=make_decision("c5", accepted=True, seconds=5), application_id="v2")
    store = store_in(tmp_path)
    assert [a.application_id for a in store.verified_applications()] == ["v1", "v2"]
    assert [a.application_id for a in store.applications()] == ["v1", "v2"]
    for name in ("applications.jsonl", "applications.verified.jsonl"):
        assert (tmp_path / name).read_bytes().count(b"\n") == 2


def test_a_torn_fragment_does_not_count_toward_rotation(tmp_path):
    path = tmp_path / "replay.jsonl"
    buf = ReplayBuffer(path, "acme", max_records=3)
    for i in range(2):
        buf.add(make_decision(f"c{i}", seconds=i))
    tear(path, path.read_text().splitlines()[0])
    buf.add(make_decision("c2", seconds=2))  # the third record: no rotation yet
    assert not buf.rotated_path.exists()
    assert len(path.read_text().splitlines()) == 3
    tear(path, path.read_text().splitlines()[0])
    buf.add(make_decision("c3", seconds=3))  # rotates: the fragment does not travel to .1
    assert buf.rotated_path.read_bytes().count(b"\n") == 3 and buf.rotated_path.read_bytes().endswith(b"\n")
    assert [r.candidate_id for r in buf.records()] == ["c0", "c1", "c2", "c3"]


# ---------------------------------------------------------------------------
# Through the command line
# ---------------------------------------------------------------------------


def cli(args, cwd: Path, *, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "ADAPTERGATE_PROGRESS": "0"}
    env.pop("ADAPTERGATE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "adaptergate", *map(str, args)], cwd=cwd, capture_output=True, text=True,
        env=env, timeout=300, preexec_fn=limit if fsize is not None else None,
    )


def gate(audit: Path, candidate: str = "adapter_bad_v19", *extra) -> list[str]:
    return ["gate", "--tenant", "acme", "--candidate", candidate, "--baseline", "adapter_good_v18",
            "--holdout", EXAMPLE_HOLDOUT, "--scorer", MOCK, "--audit-log", audit, "--format", "json", *extra]


def test_cli_replay_list_and_show_on_a_torn_buffer(tmp_path):
    path, next_line = _replay_file(tmp_path)
    tear(path, next_line)
    p = cli(["replay", "list", "--tenant", "acme", "--replay-path", path], tmp_path)
    assert p.returncode == 0, p.stderr
    assert [json.loads(x)["candidate"] for x in p.stdout.splitlines()] == ["c1", "c2"]
    (line,) = p.stderr.splitlines()
    assert line.startswith(f"warning: {path}:3: skipped an incomplete last line")
    p = cli(["replay", "show", "--tenant", "acme", "--replay-path", path, "--format", "json"], tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["candidate_id"] == "c2"
    assert f"warning: {path}:3: skipped" in p.stderr

    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + next_line[:30] + "\n" + lines[1] + "\n")
    p = cli(["replay", "list", "--tenant", "acme", "--replay-path", path], tmp_path)
    assert p.returncode == 2 and p.stdout == ""
    (line,) = p.stderr.splitlines()
    assert f"{path}:2: not valid JSON" in line


def test_cli_recommend_on_torn_audit_log_and_application_log(tmp_path):
    (tmp_path / "recipes.jsonl").write_bytes(seed_recipes_bytes())
    audit = tmp_path / "audit.jsonl"
    audit.write_bytes((FIX054 / "audit.jsonl").read_bytes())
    n = len(audit.read_text().splitlines())
    tear(audit, audit.read_text().splitlines()[0])
    apps = tmp_path / "applications.jsonl"
    apps.write_bytes((FIX054 / "applications.jsonl").read_bytes())
    tear(apps, apps.read_text().splitlines()[0])
    p = cli(["recommend-cmd", "--decision", audit, "--recipes", "recipes.jsonl", "--format", "json"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)
    assert f"warning: {audit}:{n + 1}: skipped an incomplete last line" in p.stderr
    # the application log is found beside --recipes, relative to the working directory
    assert "warning: applications.jsonl:7: skipped an incomplete last line" in p.stderr
    assert len(p.stderr.splitlines()) == 2
    assert "Traceback" not in p.stderr


def test_cli_gate_on_a_full_disk_exits_3_and_leaves_the_audit_log(tmp_path):
    audit = tmp_path / "audit.jsonl"
    p = cli(gate(audit), tmp_path)
    assert p.returncode == 1, p.stderr
    before = audit.read_bytes()
    for fsize in (len(before), len(before) + 10):
        p = cli(gate(audit, "adapter_bad_v21"), tmp_path, fsize=fsize)
        assert p.returncode == 3, p.stderr
        assert p.stdout == ""
        (line,) = p.stderr.splitlines()
        assert line == f"adaptergate: error: cannot append to {audit}: File too large (the file was left as it was)"
        assert audit.read_bytes() == before
    p = cli(gate(audit, "adapter_good_v20"), tmp_path)
    assert p.returncode == 0, p.stderr
    assert [d.candidate_id for d in AuditLog(audit).decisions()] == ["adapter_bad_v19", "adapter_good_v20"]


def test_cli_gate_replay_buffer_on_a_full_disk(tmp_path):
    audit, replay = tmp_path / "audit.jsonl", tmp_path / "replay.jsonl"
    assert cli(gate(audit, "adapter_bad_v19", "--replay-path", replay), tmp_path).returncode == 1
    replay_before = replay.read_bytes()
    # Room for a second audit record, not for a second replay record (a
    # replay record embeds the audit record, so it is the longer one): the
    # sizes after the second run, measured on a copy.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    shutil.copy(audit, scratch / audit.name)
    shutil.copy(replay, scratch / replay.name)
    assert cli(gate(scratch / audit.name, "adapter_bad_v21", "--replay-path", scratch / replay.name),
               tmp_path).returncode == 1
    fsize = (scratch / audit.name).stat().st_size + 16
    assert fsize < (scratch / replay.name).stat().st_size - 16
    p = cli(gate(audit, "adapter_bad_v21", "--replay-path", replay), tmp_path, fsize=fsize)
    assert p.returncode == 3 and p.stdout == ""
    (line,) = p.stderr.splitlines()
    assert line == f"adaptergate: error: cannot append to {replay}: File too large (the file was left as it was)"
    assert replay.read_bytes() == replay_before
    # The audit log, written first, has the run: exit 3 says the rest was not recorded.
    assert [d.candidate_id for d in AuditLog(audit).decisions()] == ["adapter_bad_v19", "adapter_bad_v21"]


def test_cli_gate_after_a_torn_audit_tail(tmp_path):
    audit = tmp_path / "audit.jsonl"
    assert cli(gate(audit), tmp_path).returncode == 1
    complete = audit.read_bytes()
    tear(audit, complete.decode().splitlines()[0])
    p = cli(gate(audit, "adapter_good_v20"), tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert any(line.startswith(f"warning: {audit}:2: removed an incomplete last line")
               for line in p.stderr.splitlines()), p.stderr
    assert audit.read_bytes().startswith(complete)
    assert [d.candidate_id for d in AuditLog(audit).decisions()] == ["adapter_bad_v19", "adapter_good_v20"]
