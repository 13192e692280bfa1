"""Tests of adaptergate.holdout.store: the holdout store, on real files in tmp_path.

Covers the accepted line shapes (aliases, adaptergate 0.5.4's wrapped lines),
whole-file validation that reports every problem with its line number,
import/add/remove (linear, atomic, byte-preserving), 0.5.4's sampling rule,
staleness, stats, and the equivalence of ``normalize_query`` and ``Query``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import adaptergate.holdout.store as holdout_mod
from adaptergate.errors import ExitCode, HoldoutError, InvalidInputError, exit_code_for
from adaptergate.holdout.store import (
    Holdout,
    Query,
    add_query,
    holdout_stats,
    import_queries,
    load_holdout,
    normalize_query,
    remove_queries,
)

TENANT = "acme"


def write_lines(path: Path, lines: list[bytes | str], *, bom: bool = False) -> bytes:
    """Write ``lines`` joined by newlines (with a final newline); return the bytes."""
    raw = [ln.encode("utf-8") if isinstance(ln, str) else ln for ln in lines]
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(raw) + b"\n"
    path.write_bytes(data)
    return data


def jl(obj: object) -> str:
    return json.dumps(obj)


def wrapped_054(qid: str, payload: dict, *, tenant: str = TENANT,
                added_at: str = "2024-11-20T10:00:00+00:00", accepted_by: str | None = "v16") -> str:
    """A line exactly as adaptergate 0.5.4's HoldoutSet._flush wrote it."""
    return json.dumps(
        {
            "query_id": qid,
            "tenant_id": tenant,
            "payload": payload,
            "added_at": added_at,
            "accepted_by_adapter": accepted_by,
        }
    )


def problem_map(err: HoldoutError) -> dict[int | None, list[str]]:
    out: dict[int | None, list[str]] = {}
    for p in err.problems:
        out.setdefault(p.line, []).append(p.message)
    return out


def assert_problems(err: HoldoutError, expected: dict[int, str]) -> None:
    """Exactly one problem per expected line, each containing its substring."""
    got = problem_map(err)
    assert set(got) == set(expected), f"lines with problems: {sorted(got)} != {sorted(expected)}"
    for line, needle in expected.items():
        assert len(got[line]) == 1, (line, got[line])
        assert needle in got[line][0], (line, needle, got[line][0])


# ----------------------------------------------------------------- aliases


def test_aliases_int_ids_and_extra_fields(tmp_path):
    path = tmp_path / "h.jsonl"
    rows = [
        {"question_id": 7, "question": "Q7?", "expected_output": "A7", "difficulty": 3,
         "extra": {"k": [1, 2]}, "sql_db": "bird"},
        {"query_id": "x", "text": "T", "criteria": ["c1"]},
        {"id": "y", "query": "Q", "gold": 1},
        {"id": "z", "prompt": "P", "gold": {"answer": 42}, "slices": ["intent=refund", "lang=en"],
         "cluster": 5},
    ]
    write_lines(path, [jl(r) for r in rows])
    h = load_holdout(path)
    assert h.ids == ["7", "x", "y", "z"]
    assert all(type(i) is str for i in h.ids)
    # The scorer receives the line exactly as written, extra fields included.
    assert h.payloads == rows
    assert h.lines == [1, 2, 3, 4]
    assert h.slices == [(), (), (), ("intent=refund", "lang=en")]
    assert h.clusters == [None, None, None, "5"]
    assert h.wrapped is False
    assert h.warnings == []

    q = Query.model_validate(rows[0])
    assert (q.id, q.prompt, q.gold, q.difficulty) == ("7", "Q7?", "A7", 3)
    assert q.model_extra == {"extra": {"k": [1, 2]}, "sql_db": "bird"}
    q = Query.model_validate(rows[1])
    assert (q.id, q.prompt, q.gold, q.criteria) == ("x", "T", None, ["c1"])
    q = Query.model_validate(rows[2])
    assert (q.id, q.prompt, q.gold) == ("y", "Q", 1)
    q = Query.model_validate(rows[3])
    assert (q.id, q.prompt, q.gold, q.slices, q.cluster) == (
        "z", "P", {"answer": 42}, ["intent=refund", "lang=en"], "5"
    )


def test_alias_precedence_and_null_aliases_skipped():
    q = normalize_query({"id": "a", "question_id": "b", "query_id": "c"})
    assert q.id == "a"
    q = normalize_query({"id": None, "question_id": "b"})
    assert q.id == "b"
    m = Query.model_validate({"id": "a", "prompt": None, "question": "second", "text": "third"})
    assert m.prompt == "second"
    m = Query.model_validate({"id": "a", "gold": None, "expected_output": "E"})
    assert m.gold == "E"
    # Alias keys do not leak into the extras of the typed view.
    m = Query.model_validate({"question_id": 3, "text": "T", "expected_output": "E"})
    assert m.model_extra == {}


def test_duplicate_slice_tags_collapse_in_order():
    q = normalize_query({"id": "a", "slices": ["b=1", "a=2", "b=1"]})
    assert q.slices == ("b=1", "a=2")
    assert Query.model_validate({"id": "a", "slices": ["b=1", "a=2", "b=1"]}).slices == ["b=1", "a=2"]


# --------------------------------------------------------- 0.5.4 wrapped lines


def test_054_wrapped_lines_load_transparently(tmp_path):
    path = tmp_path / "h.jsonl"
    p1 = {"question_id": "q1", "question": "How many?", "slices": ["intent=count"]}
    p2 = {"question": "no id in payload", "db": "x"}  # 0.5.4 derived a hash id
    write_lines(
        path,
        [
            wrapped_054("q1", p1, added_at="2024-11-20T10:00:00+00:00", accepted_by="v16"),
            wrapped_054("3f2a9c", p2, added_at="2024-11-21T10:00:00+00:00", accepted_by=None),
        ],
    )
    h = load_holdout(path, tenant=TENANT)
    assert h.wrapped is True
    assert h.ids == ["q1", "3f2a9c"]
    assert h.payloads == [p1, p2]  # unwrapped: the scorer sees the 0.5.4 payload
    assert h.added_at == ["2024-11-20T10:00:00+00:00", "2024-11-21T10:00:00+00:00"]
    assert h.accepted_by == ["v16", None]
    assert h.slices == [("intent=count",), ()]

    q = normalize_query(json.loads(wrapped_054("q1", p1)))
    assert (q.id, q.tenant, q.accepted_by, q.wrapped) == ("q1", TENANT, "v16", True)
    assert Query.model_validate(json.loads(wrapped_054("q1", p1))).prompt == "How many?"

    # The tenant comes from tenant_id.
    with pytest.raises(HoldoutError) as ei:
        load_holdout(path, tenant="other")
    assert_problems(ei.value, {1: "tenant 'acme' does not match", 2: "tenant 'acme' does not match"})


def test_mixed_wrapped_and_plain_file_loads(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(
        path,
        [
            wrapped_054("q1", {"question_id": "q1", "question": "a"}),
            jl({"id": "q2", "prompt": "b", "tenant": TENANT}),
            wrapped_054("q3", {"question": "c"}),
        ],
    )
    h = load_holdout(path, tenant=TENANT)
    assert h.ids == ["q1", "q2", "q3"]
    assert h.payloads[1] == {"id": "q2", "prompt": "b", "tenant": TENANT}
    assert h.payloads[2] == {"question": "c"}
    assert h.accepted_by == ["v16", None, "v16"]
    assert h.wrapped is False  # not every line is wrapped


# -------------------------------------------------------- problems, all at once


def test_every_problem_reported_at_once_with_line_numbers(tmp_path):
    path = tmp_path / "h.jsonl"
    marker = b"Z" * 500
    lines = [
        b'{"id": "a", "prompt": "ok"}',                    # 1 valid
        b"{not json",                                      # 2
        b"[1, 2]",                                         # 3
        b'{"prompt": "no id here"}',                       # 4
        b'{"id": "   "}',                                  # 5
        b'{"id": "a", "prompt": "again"}',                 # 6 duplicate of 1
        b"",                                               # 7 blank: ignored
        b'{"id": "s1", "slices": "intent=refund"}',        # 8
        b'{"id": "s2", "slices": ["intent=x", 3]}',        # 9
        b'{"id": "t1", "tenant": "other"}',                # 10
        b'{"id": "u1", "prompt": "caf\xff"}',              # 11 invalid UTF-8
        b'{"id": "big", "prompt": "' + marker + b'"}',     # 12 oversized
        b"   \t",                                          # 13 whitespace only: ignored
        b'{"id": "b", "tenant": "acme"}',                  # 14 valid
        b'"just a string"',                                # 15
        b'{"id": 1.5}',                                    # 16
    ]
    write_lines(path, lines, bom=True)
    with pytest.raises(HoldoutError) as ei:
        load_holdout(path, tenant=TENANT, max_line_bytes=200)
    err = ei.value
    assert_problems(
        err,
        {
            2: "invalid JSON",
            3: "expected a JSON object, got array",
            4: "missing id",
            5: "id is empty",
            6: "duplicate id 'a' (first at line 1)",
            8: "slices must be a list of 'key=value' strings, got string",
            9: "slices[1] must be a string, got number",
            10: "tenant 'other' does not match --tenant 'acme'",
            11: "invalid UTF-8",
            12: "over the 200-byte cap",
            15: "expected a JSON object, got string",
            16: "id must be a string or an integer, got number",
        },
    )
    msgs = problem_map(err)
    assert 'write "slices": ["intent=refund"]' in msgs[8][0]
    # The oversized line is measured, never quoted.
    assert all("ZZZZ" not in p.message for p in err.problems)
    assert len(str(err)) < 300 and "ZZZZ" not in str(err)
    # Every problem names the file; problems come sorted by line.
    assert all(p.path == str(path) for p in err.problems)
    assert [p.line for p in err.problems] == sorted(p.line for p in err.problems)
    assert "12 problem(s)" in str(err)
    assert len(err.details) == 12 and err.details[0].startswith(f"{path}:2: ")
    assert exit_code_for(err) == ExitCode.INVALID_INPUT == 2


def test_every_problem_of_a_line_is_listed(tmp_path):
    """A line with bad slices that also repeats an id (or names another tenant) is reported
    for each; normalize_query (the Query model) still raises its first problem."""
    path = tmp_path / "h.jsonl"
    lines = [
        jl({"id": "a", "prompt": "ok"}),                                               # 1
        jl({"id": "a", "slices": "intent=refund"}),                                    # 2
        jl({"id": "b", "slices": ["x=1", 3, "=y"], "cluster": 1.5, "prompt": 7,
            "tenant": "other", "added_at": 5}),                                        # 3
        jl({"id": 2.5, "slices": ["bare"]}),                                           # 4
        jl({"id": "b", "prompt": "fine otherwise"}),                                   # 5
        jl({"id": "c"}),                                                               # 6 valid
    ]
    write_lines(path, lines)
    with pytest.raises(HoldoutError) as ei:
        load_holdout(path, tenant=TENANT, allow_bare_tags=False)
    got = problem_map(ei.value)
    assert got == {
        2: ["slices must be a list of 'key=value' strings, got string (write \"slices\": [\"intent=refund\"])",
            "duplicate id 'a' (first at line 1)"],
        3: ["added_at must be an ISO-8601 string, got number",
            "slices[1] must be a string, got number",
            "slice tag '=y' has an empty key",
            "cluster must be a string or an integer, got number",
            "prompt must be a string, got number",
            "tenant 'other' does not match --tenant 'acme'"],
        4: ["id must be a string or an integer, got number",
            "slice tag 'bare' is not 'key=value' (e.g. 'intent=bare')"],
        5: ["duplicate id 'b' (first at line 3)"],
    }
    assert ei.value.total == 11 and "11 problem(s)" in str(ei.value)
    # the Query model and normalize_query: the first problem, as before
    with pytest.raises(ValueError, match="^added_at must be"):
        normalize_query(json.loads(lines[2]))
    with pytest.raises(ValidationError, match="id must be a string or an integer"):
        Query.model_validate(json.loads(lines[3]))


def test_holdout_validate_lists_every_problem_of_a_line(tmp_path, capsys):
    from adaptergate.cli import main

    path = tmp_path / "h.jsonl"
    write_lines(path, [jl({"id": "a"}), jl({"id": "a", "slices": ["intent=x", None]})])
    assert main(["holdout", "validate", "--holdout", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: slices[1] must be a string, got null" in err
    assert f"{path}:2: duplicate id 'a' (first at line 1)" in err


def test_blank_lines_and_bom_tolerated(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, ["", jl({"id": "a"}), "", "  ", jl({"id": "b"}), "\r"], bom=True)
    h = load_holdout(path)
    assert h.ids == ["a", "b"]
    assert h.lines == [2, 5]


def test_crlf_lines_load(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(b'{"id": "a"}\r\n{"id": "b"}\r\n')
    assert load_holdout(path).ids == ["a", "b"]


def test_problem_list_is_capped_but_total_counted(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, ["{bad"] * 60)
    with pytest.raises(HoldoutError) as ei:
        load_holdout(path)
    err = ei.value
    assert len(err.problems) == holdout_mod.MAX_PROBLEMS_REPORTED == 50
    assert err.total == 60
    assert "60 problem(s) (first 50 shown)" in str(err)
    assert [p.line for p in err.problems] == list(range(1, 51))


def test_missing_file_and_directory_are_invalid_input(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        load_holdout(tmp_path / "nope.jsonl")
    with pytest.raises(InvalidInputError, match="directory"):
        load_holdout(tmp_path)


def test_empty_file_is_an_empty_holdout(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"")
    h = load_holdout(path)
    assert len(h) == 0 and h.wrapped is False


def test_invalid_lines_that_glue_into_valid_json_are_still_rejected(tmp_path):
    """Three lines, each invalid JSON on its own."""
    path = tmp_path / "h.jsonl"
    write_lines(path, ['{"id": "a", "x": "', '"}', '{"id": "b"}, {"id": "c"}'])
    with pytest.raises(HoldoutError) as ei:
        load_holdout(path)
    assert {p.line for p in ei.value.problems} == {1, 2, 3}


# ----------------------------------------------------------------- bare tags


def test_bare_tags_warn_by_default_and_fail_when_disallowed(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(
        path,
        [
            jl({"id": "a", "slices": ["refund", "lang=en"]}),
            jl({"id": "b", "slices": ["lang=fr"]}),
            jl({"id": "c", "slices": ["vip", "churn"]}),
        ],
    )
    h = load_holdout(path)
    assert h.ids == ["a", "b", "c"]
    assert h.slices[0] == ("refund", "lang=en")
    assert [(w.line, w.message) for w in h.warnings] == [
        (1, "slice tag 'refund' is not 'key=value'"),
        (3, "slice tag 'vip' is not 'key=value'"),
        (3, "slice tag 'churn' is not 'key=value'"),
    ]
    with pytest.raises(HoldoutError) as ei:
        load_holdout(path, allow_bare_tags=False)
    # every problem of a line is listed: both bare tags of line 3
    assert problem_map(ei.value) == {
        1: ["slice tag 'refund' is not 'key=value' (e.g. 'intent=refund')"],
        3: ["slice tag 'vip' is not 'key=value' (e.g. 'intent=vip')",
            "slice tag 'churn' is not 'key=value' (e.g. 'intent=churn')"],
    }


def test_slice_tag_with_empty_key_is_an_error():
    with pytest.raises(ValueError, match="empty key"):
        normalize_query({"id": "a", "slices": ["=refund"]})


# -------------------------------------------------------------------- import


class CountingAtomicWrite:
    def __init__(self, real):
        self.real = real
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture
def counting_write(monkeypatch):
    counter = CountingAtomicWrite(holdout_mod.atomic_write)
    monkeypatch.setattr(holdout_mod, "atomic_write", counter)
    return counter


def test_import_10000_rows_in_one_call_one_write(tmp_path, counting_write):
    path = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    n = 10_000
    write_lines(src, [jl({"id": f"q{i}", "prompt": f"p{i}", "slices": [f"k={i % 7}"]})
                      for i in range(n)])
    res = import_queries(path, src, tenant=TENANT, accepted_by="v3")
    assert counting_write.calls == 1
    assert res.skipped == []
    assert res.imported == [f"q{i}" for i in range(n)]
    assert res.size == n
    h = load_holdout(path, tenant=TENANT)
    assert h.ids == res.imported
    assert h.payloads[123]["prompt"] == "p123"
    assert h.payloads[123]["tenant"] == TENANT
    assert h.payloads[123]["accepted_by"] == "v3"
    assert h.accepted_by[0] is None  # plain lines carry accepted_by in the payload only
    assert all(h.added_at)


def test_import_skips_duplicates_and_invalid_lines_and_keeps_existing_bytes(tmp_path, counting_write):
    path = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    # Unusual but valid formatting that a re-serialisation would change.
    existing = write_lines(
        path,
        [
            '{"id":"e1",   "prompt":"caf\u00e9 \\u00e9",  "gold": 1.0}',
            '{ "question_id" : 2 , "question" : "two" }',
        ],
    )
    write_lines(
        src,
        [
            jl({"id": "n1", "prompt": "new one"}),              # 1 imported
            jl({"id": "e1", "prompt": "clash"}),                # 2 already in the holdout
            "{oops",                                            # 3 invalid JSON
            jl({"id": "n2", "slices": "intent=x"}),             # 4 slices as string
            jl({"id": "n1", "prompt": "repeat"}),               # 5 repeated in the source
            jl({"id": "n3", "tenant": "other"}),                # 6 tenant mismatch
            "",                                                 # 7 blank
            jl({"id": "n4", "slices": ["bare"]}),               # 8 bare tag: error on import
            jl({"question_id": 2, "question": "two"}),          # 9 id "2" already present
            jl({"id": "n5", "tenant": TENANT, "x": [1]}),       # 10 imported
        ],
    )
    res = import_queries(path, src, tenant=TENANT)
    assert res.imported == ["n1", "n5"]
    skipped = {p.line: p.message for p in res.skipped}
    assert set(skipped) == {2, 3, 4, 5, 6, 8, 9}
    assert len(res.skipped) == 7
    assert "duplicate id 'e1'" in skipped[2] and "already in" in skipped[2]
    assert "invalid JSON" in skipped[3]
    assert "slices must be a list" in skipped[4]
    assert "duplicate id 'n1'" in skipped[5] and "first at line 1" in skipped[5]
    assert "tenant 'other' does not match --tenant 'acme'" in skipped[6]
    assert "not 'key=value'" in skipped[8]
    assert "duplicate id '2'" in skipped[9]
    assert all(p.path == str(src) for p in res.skipped)
    assert [p.line for p in res.skipped] == sorted(skipped)
    assert res.size == 4
    assert counting_write.calls == 1

    data = path.read_bytes()
    assert data.startswith(existing)  # existing lines byte-for-byte
    new = [json.loads(x) for x in data[len(existing):].splitlines()]
    assert [r["id"] for r in new] == ["n1", "n5"]
    assert new[0]["prompt"] == "new one" and new[0]["tenant"] == TENANT and new[0]["added_at"]
    assert new[1]["x"] == [1]
    assert load_holdout(path, tenant=TENANT).ids == ["e1", "2", "n1", "n5"]


def test_import_nothing_valid_writes_nothing(tmp_path, counting_write):
    path = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    write_lines(src, ["{bad", jl({"id": ""})])
    res = import_queries(path, src, tenant=TENANT)
    assert res.imported == [] and res.size == 0
    assert [p.line for p in res.skipped] == [1, 2]
    assert counting_write.calls == 0
    assert not path.exists()


def test_import_oversized_source_line_skipped(tmp_path):
    path = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    write_lines(src, [jl({"id": "a"}), jl({"id": "b", "prompt": "Y" * 400}), jl({"id": "c"})])
    res = import_queries(path, src, tenant=TENANT, max_line_bytes=100)
    assert res.imported == ["a", "c"]
    assert [(p.line, "100-byte cap" in p.message) for p in res.skipped] == [(2, True)]
    assert "YYYY" not in res.skipped[0].message


def test_import_missing_source_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInputError, match="not found"):
        import_queries(tmp_path / "h.jsonl", tmp_path / "nope.jsonl", tenant=TENANT)


def test_import_into_invalid_holdout_refuses_and_keeps_it(tmp_path):
    path = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    before = write_lines(path, [jl({"id": "a"}), "{broken"])
    write_lines(src, [jl({"id": "b"})])
    with pytest.raises(HoldoutError):
        import_queries(path, src, tenant=TENANT)
    assert path.read_bytes() == before


def test_import_into_054_wrapped_file_keeps_it_wrapped(tmp_path):
    path = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    existing = write_lines(path, [wrapped_054("q1", {"question_id": "q1", "question": "a"})])
    write_lines(src, [jl({"question_id": "q2", "question": "b", "slices": ["intent=x"]}),
                      jl({"question_id": "q1", "question": "dup"})])
    res = import_queries(path, src, tenant=TENANT, accepted_by="v17")
    assert res.imported == ["q2"]
    assert [p.line for p in res.skipped] == [2]
    data = path.read_bytes()
    assert data.startswith(existing)
    rec = json.loads(data[len(existing):])
    assert set(rec) == {"query_id", "tenant_id", "payload", "added_at", "accepted_by_adapter"}
    assert rec["query_id"] == "q2"
    assert rec["tenant_id"] == TENANT
    assert rec["payload"] == {"question_id": "q2", "question": "b", "slices": ["intent=x"]}
    assert rec["accepted_by_adapter"] == "v17"
    datetime.fromisoformat(rec["added_at"])
    h = load_holdout(path, tenant=TENANT)
    assert h.wrapped is True
    assert h.ids == ["q1", "q2"]
    assert h.accepted_by == ["v16", "v17"]


def test_import_054_wrapped_source_into_plain_holdout_keeps_ids(tmp_path):
    path = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    write_lines(src, [wrapped_054("3f2a9c", {"question": "payload without an id"},
                                  added_at="2024-11-20T10:00:00+00:00")])
    res = import_queries(path, src, tenant=TENANT)
    assert res.imported == ["3f2a9c"]
    h = load_holdout(path, tenant=TENANT)  # raises: "missing id" on line 1
    assert h.ids == ["3f2a9c"]
    assert h.added_at == ["2024-11-20T10:00:00+00:00"]


# ---------------------------------------------------------------- atomicity


def test_failed_replace_leaves_original_bytes_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "h.jsonl"
    src = tmp_path / "src.jsonl"
    before = write_lines(path, [jl({"id": "a", "prompt": "keep me"}), jl({"id": "b"})])
    write_lines(src, [jl({"id": f"n{i}"}) for i in range(50)])

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr("adaptergate.storage.os.replace", boom)
    with pytest.raises(OSError, match="simulated"):
        import_queries(path, src, tenant=TENANT)
    monkeypatch.undo()

    assert path.read_bytes() == before
    leftovers = {p.name for p in tmp_path.iterdir()} - {"h.jsonl", "src.jsonl", "h.jsonl.lock"}
    assert leftovers == set()
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))
    # And the holdout still works afterwards.
    assert import_queries(path, src, tenant=TENANT).size == 52


# ----------------------------------------------------------------------- add


def test_add_query_new_noop_and_conflict(tmp_path):
    path = tmp_path / "sub" / "h.jsonl"
    q = {"id": "q1", "prompt": "p", "gold": "g", "slices": ["intent=a"]}
    res = add_query(path, q, tenant=TENANT, accepted_by="v2")
    assert (res.query_id, res.added, res.size) == ("q1", True, 1)
    rec = json.loads(path.read_bytes())
    assert rec["id"] == "q1" and rec["tenant"] == TENANT and rec["accepted_by"] == "v2"
    assert rec["added_at"]
    before = path.read_bytes()

    # Identical re-add (even with a different accepted_by): no-op, file untouched.
    res = add_query(path, dict(q), tenant=TENANT, accepted_by="v9")
    assert (res.query_id, res.added, res.size) == ("q1", False, 1)
    assert path.read_bytes() == before

    with pytest.raises(InvalidInputError, match="already exists") as ei:
        add_query(path, {**q, "gold": "different"}, tenant=TENANT)
    assert "line 1" in str(ei.value)
    assert path.read_bytes() == before

    res = add_query(path, {"question_id": 2, "question": "two"}, tenant=TENANT)
    assert (res.query_id, res.added, res.size) == ("2", True, 2)
    assert path.read_bytes().startswith(before)
    assert load_holdout(path, tenant=TENANT).ids == ["q1", "2"]


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "q1", "slices": "intent=refund"},
        {"id": "q1", "slices": ["intent=a", 1]},
        {"id": "q1", "slices": ["bare"]},
        {"prompt": "no id"},
        {"id": ""},
        {"id": "q1", "prompt": 5},
        "not an object",
        ["id", "q1"],
        {"id": "q1", "tenant": "other"},
    ],
)
def test_add_invalid_query_raises_and_leaves_no_file(tmp_path, payload):
    path = tmp_path / "h.jsonl"
    with pytest.raises(InvalidInputError) as ei:
        add_query(path, payload, tenant=TENANT)
    assert exit_code_for(ei.value) == 2
    assert "\n" not in str(ei.value)
    assert not path.exists()


def test_add_to_054_wrapped_file_stays_wrapped(tmp_path):
    path = tmp_path / "h.jsonl"
    p1 = {"question_id": "q1", "question": "a"}
    existing = write_lines(path, [wrapped_054("q1", p1)])
    assert add_query(path, dict(p1), tenant=TENANT).added is False
    assert path.read_bytes() == existing
    res = add_query(path, {"question_id": "q2", "question": "b"}, tenant=TENANT, accepted_by="v17")
    assert res.added and res.size == 2
    h = load_holdout(path, tenant=TENANT)
    assert h.wrapped and h.ids == ["q1", "q2"] and h.accepted_by == ["v16", "v17"]
    assert path.read_bytes().startswith(existing)


# -------------------------------------------------------------------- remove


def test_remove_queries_keeps_remaining_lines_byte_identical(tmp_path):
    path = tmp_path / "h.jsonl"
    lines = [
        '{"id":"a",  "prompt":"\u00e9"}',
        '{"id": "b"}',
        '{ "question_id": 3 }',
        '{"id": "d", "slices": ["k=v"]}',
    ]
    write_lines(path, lines)
    removed, missing, size = remove_queries(path, ["b", "zz", "3", "b"], tenant=TENANT)
    assert removed == ["b", "3"]
    assert missing == ["zz"]
    assert size == 2
    assert path.read_bytes() == (lines[0] + "\n" + lines[3] + "\n").encode("utf-8")


def test_remove_only_missing_ids_leaves_file_untouched(tmp_path, counting_write):
    path = tmp_path / "h.jsonl"
    before = write_lines(path, [jl({"id": "a"})], bom=True)
    assert remove_queries(path, ["x"]) == ([], ["x"], 1)
    assert counting_write.calls == 0
    assert path.read_bytes() == before


def test_remove_everything_leaves_an_empty_valid_file(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, [jl({"id": "a"}), jl({"id": "b"})])
    assert remove_queries(path, ["a", "b"]) == (["a", "b"], [], 0)
    assert path.read_bytes() == b""
    assert len(load_holdout(path)) == 0


# -------------------------------------------------------------------- sample


def _054_indices(seed: str, n_total: int, n: int) -> list[int]:
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    return rng.sample(range(n_total), n)


@pytest.mark.parametrize("seed,n", [("v17", 10), ("cand-2024-11-22", 1), ("é-unicode", 37), ("x", 0)])
def test_sample_matches_054_rule(tmp_path, seed, n):
    path = tmp_path / "h.jsonl"
    total = 40
    write_lines(path, [jl({"id": f"q{i:02d}", "prompt": str(i)}) for i in range(total)])
    h = load_holdout(path)
    s = h.sample(n, seed)
    want = _054_indices(seed, total, n)
    assert s.ids == [f"q{i:02d}" for i in want]
    assert s.payloads == [h.payloads[i] for i in want]
    assert s.lines == [i + 1 for i in want]
    assert len(s) == n
    # Deterministic.
    assert h.sample(n, seed).ids == s.ids


def test_sample_of_n_at_least_len_returns_everything(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, [jl({"id": f"q{i}"}) for i in range(5)])
    h = load_holdout(path)
    for n in (5, 6, 1000, None):
        s = h.sample(n, "seed")
        assert s.ids == h.ids
        assert s.payloads == h.payloads


# ----------------------------------------------------------------- staleness


def test_staleness_days_with_fixed_now(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(
        path,
        [
            jl({"id": "a", "added_at": "2025-01-01T00:00:00+00:00"}),
            jl({"id": "b", "added_at": "2025-02-01T00:00:00Z"}),
            jl({"id": "c", "added_at": "2025-01-15"}),
            jl({"id": "d"}),
        ],
    )
    h = load_holdout(path)
    now = datetime(2025, 2, 11, 12, 0, tzinfo=timezone.utc)
    assert h.staleness_days(now) == 10
    assert h.staleness_days(datetime(2025, 1, 20, tzinfo=timezone.utc)) == 0  # never negative


def test_staleness_days_none_without_added_at(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, [jl({"id": "a"}), jl({"id": "b"})])
    assert load_holdout(path).staleness_days(datetime(2025, 1, 1, tzinfo=timezone.utc)) is None
    assert Holdout(path=None).staleness_days() is None


def test_staleness_days_none_for_unparseable_stamp(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, [jl({"id": "a", "added_at": "last tuesday"})])
    assert load_holdout(path).staleness_days(datetime(2025, 1, 1, tzinfo=timezone.utc)) is None


def test_054_wrapped_staleness(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, [wrapped_054("q1", {"question": "a"}, added_at="2024-11-20T10:00:00.123456+00:00")])
    now = datetime(2024, 11, 30, 10, 0, 1, tzinfo=timezone.utc)
    assert load_holdout(path).staleness_days(now) == 10


# --------------------------------------------------------------------- stats


def test_holdout_stats_small_file(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(
        path,
        [
            jl({"id": "a", "prompt": "p", "gold": "g", "slices": ["intent=refund", "lang=en"],
                "cluster": "c1", "added_at": "2025-01-01T00:00:00+00:00"}),
            jl({"id": "b", "question": "p", "slices": ["intent=refund"], "cluster": 2,
                "added_at": "2025-01-03T00:00:00+00:00"}),
            jl({"id": "c", "expected_output": "g", "slices": ["vip"], "cluster": "c1"}),
            jl({"id": "d"}),
        ],
    )
    h = load_holdout(path)
    stats = holdout_stats(h)
    staleness = stats.pop("staleness_days")
    assert stats == {
        "path": str(path),
        "size": 4,
        "format": "jsonl",
        "with_prompt": 2,
        "with_gold": 2,
        "untagged": 1,
        "distinct_slices": 3,
        "slices_by_key": {"(bare)": {"vip": 1}, "intent": {"refund": 2}, "lang": {"en": 1}},
        "clusters": 2,
        "oldest_added_at": "2025-01-01T00:00:00+00:00",
        "newest_added_at": "2025-01-03T00:00:00+00:00",
    }
    assert isinstance(staleness, int) and staleness >= 0
    json.dumps(stats)  # serialisable for --json output


def test_holdout_stats_wrapped_and_empty(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, [wrapped_054("q1", {"question": "a", "expected_output": "b"})])
    stats = holdout_stats(load_holdout(path))
    assert stats["format"] == "adaptergate-0.5.4-wrapped"
    assert (stats["size"], stats["with_prompt"], stats["with_gold"], stats["untagged"]) == (1, 1, 1, 1)
    empty = holdout_stats(Holdout(path=None))
    assert empty["size"] == 0 and empty["path"] is None and empty["staleness_days"] is None


# ------------------------------------------- normalize_query == Query property

_ids = st.one_of(
    st.text(max_size=4),
    st.sampled_from(["", " ", "q1", "\t"]),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=4))
_tag = st.one_of(
    st.sampled_from(["intent=refund", "=x", "x=", "", " ", " =y", "bare", "a=b=c", "=", "k= "]),
    st.text(alphabet="ab= \t", max_size=5),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=2), max_size=2),
)
_slices = st.one_of(st.none(), st.text(max_size=6), st.integers(), st.lists(_tag, max_size=4),
                    st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1))
_prompt = st.one_of(_scalars, st.lists(st.text(max_size=2), max_size=2),
                    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
_json = st.recursive(_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=2), st.dictionaries(st.text(max_size=3), kids, max_size=2)), max_leaves=4)

_plain = st.fixed_dictionaries(
    {},
    optional={
        "id": _ids,
        "question_id": _ids,
        "query_id": _ids,
        "prompt": _prompt,
        "question": _prompt,
        "text": _prompt,
        "query": _prompt,
        "gold": _json,
        "expected_output": _json,
        "slices": _slices,
        "cluster": _scalars,
        "tenant": _scalars,
        "tenant_id": _scalars,
        "added_at": _scalars,
        "difficulty": _json,
        "criteria": _json,
        "extra_field": _json,
        "_private": _json,
    },
)
_wrapped = st.fixed_dictionaries(
    {"query_id": _ids, "tenant_id": _scalars, "payload": st.one_of(_plain, _scalars)},
    optional={"added_at": _scalars, "accepted_by_adapter": _scalars},
)
# Mostly-valid objects, so that both outcomes are well represented.
_good_id = st.one_of(st.text(alphabet="qx19-", min_size=1, max_size=4), st.integers())
_good_tag = st.sampled_from(["intent=refund", "lang=en", "k=", "a=b=c", "k= v"])
_mostly_valid = st.fixed_dictionaries(
    {"id": _good_id},
    optional={
        "prompt": st.one_of(st.text(max_size=3), st.none(), st.none(), _prompt),
        "slices": st.one_of(
            st.lists(_good_tag, max_size=3),
            st.lists(st.one_of(_good_tag, _good_tag, _good_tag, _tag), max_size=3),
            _slices,
        ),
        "cluster": st.one_of(st.text(max_size=2), st.integers(), _scalars),
        "tenant": st.one_of(st.text(max_size=2), _scalars),
        "added_at": st.one_of(st.just("2025-01-01T00:00:00Z"), _scalars),
        "gold": _json,
        "extra_field": _json,
    },
)
_mostly_valid_wrapped = st.fixed_dictionaries(
    {"query_id": _good_id, "tenant_id": st.one_of(st.text(max_size=2), st.none()),
     "payload": st.one_of(_mostly_valid, _plain)},
    optional={"added_at": st.one_of(st.just("2025-01-01T00:00:00Z"), _scalars),
              "accepted_by_adapter": _scalars},
)
_objects = st.one_of(_plain, _wrapped, _mostly_valid, _mostly_valid_wrapped, _scalars,
                     st.lists(_scalars, max_size=2))


def _check_equivalence(obj: object) -> None:
    try:
        q = normalize_query(obj, allow_bare_tags=False)
        n_err = None
    except ValueError as exc:
        q, n_err = None, exc
    try:
        m = Query.model_validate(obj)
        m_err = None
    except ValidationError as exc:
        m, m_err = None, exc
    assert (n_err is None) == (m_err is None), (obj, n_err, m_err)
    if q is not None and m is not None:
        assert m.id == q.id
        assert m.slices == list(q.slices)
        assert m.cluster == q.cluster
        assert m.tenant == q.tenant
        assert m.added_at == q.added_at


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_objects)
def test_normalize_query_and_query_model_agree(obj):
    _check_equivalence(obj)


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "a"},
        {"id": 1},
        {"id": True},
        {"id": 1.0},
        {"id": " "},
        {"id": "a", "slices": "x=y"},
        {"id": "a", "slices": ["x=y", None]},
        {"id": "a", "slices": ["bare"]},
        {"id": "a", "prompt": 3},
        {"id": "a", "cluster": 1.5},
        {"id": "a", "tenant": 3},
        {"id": "a", "added_at": 20240101},
        {"question_id": None, "query_id": "z"},
        {"query_id": "w", "tenant_id": "t", "payload": {"slices": ["a=b"]}},
        {"query_id": "w", "tenant_id": "t", "payload": {"slices": "a=b"}},
        {"query_id": "w", "tenant_id": "t", "payload": "not a dict"},
        [],
        None,
        "string",
    ],
)
def test_normalize_query_and_query_model_agree_examples(obj):
    _check_equivalence(obj)


# ------------------------------------------- fast columnar path == careful path

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adaptergate.holdout.store import _columns_fast  # noqa: E402

_values = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=4), st.booleans())
_tags = st.one_of(st.sampled_from(["intent=a", "lang=en", "=x", "bare", " =y", "k="]), st.integers(0, 2))
_rows = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.sampled_from(["q1", "q2", "q3", " "]), _values),
        "question_id": st.sampled_from(["q1", "q4"]),
        "query_id": _values,
        "prompt": _values,
        "question": _values,
        "slices": st.one_of(st.none(), st.text(max_size=3), st.lists(_tags, max_size=3)),
        "tenant": st.sampled_from(["acme", "globex", None]),
        "tenant_id": st.sampled_from(["acme", "globex"]),
        "cluster": _values,
        "added_at": _values,
        "payload": st.just({"x": 1}),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_rows, min_size=1, max_size=5), st.sampled_from([None, "acme"]))
def test_fast_path_agrees_with_the_careful_path(tmp_path_factory, rows, tenant):
    path = tmp_path_factory.mktemp("fast") / "h.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fast = _columns_fast([dict(r) for r in rows], tenant)
    try:
        careful = load_holdout(path, tenant=tenant, allow_bare_tags=False)
    except HoldoutError:
        careful = None
    if fast is None:
        return  # the fast path may always decline
    assert careful is not None, rows
    assert fast.ids == careful.ids
    assert [tuple(s) for s in fast.slices] == [tuple(s) for s in careful.slices]
    assert fast.payloads == careful.payloads
    assert fast.clusters == careful.clusters and fast.added_at == careful.added_at


_valid_rows = st.fixed_dictionaries(
    {"id": st.sampled_from(["q1", "q2", "q3", "q4", "q5", "q6"])},
    optional={
        "slices": st.one_of(st.none(), st.lists(st.sampled_from(["intent=a", "lang=en", "k=v", "bare"]), max_size=3)),
        "prompt": st.one_of(st.text(max_size=3), st.none(), st.integers(0, 1)),
        "tenant": st.sampled_from(["acme", "globex"]),
        "cluster": st.one_of(st.sampled_from(["c1", "c2"]), st.integers(0, 1)),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_valid_rows, min_size=1, max_size=6), st.sampled_from([None, "acme"]))
def test_fast_path_agrees_on_mostly_valid_files(tmp_path_factory, rows, tenant):
    test_fast_path_agrees_with_the_careful_path.hypothesis.inner_test(tmp_path_factory, rows, tenant)


def test_import_fast_path_writes_what_the_careful_path_writes(tmp_path, monkeypatch):
    """A clean source takes the columnar path; one bad line sends the same rows down the
    per-line path. The valid rows must be written identically either way."""
    import adaptergate.holdout.store as H

    monkeypatch.setattr(H, "_now", lambda: "2026-11-22T00:00:00+00:00")
    rows = [
        {"id": f"q{i}", "prompt": "café ☕" if i % 2 else "p", "slices": ["intent=a"], "x": [1, {"y": None}]}
        for i in range(20)
    ] + [{"question_id": "qq", "tenant_id": "acme", "added_at": "2026-01-01T00:00:00+00:00"}]
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(clean.read_text() + "{broken\n")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    ra = H.import_queries(a, clean, tenant="acme", accepted_by="v1")
    rb = H.import_queries(b, dirty, tenant="acme", accepted_by="v1")
    assert ra.imported == rb.imported and len(ra.imported) == 21
    assert not ra.skipped and len(rb.skipped) == 1
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(a.read_text().splitlines()[-1]) == {
        "question_id": "qq", "tenant_id": "acme", "added_at": "2026-01-01T00:00:00+00:00",
        "tenant": "acme", "accepted_by": "v1",
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(_rows, min_size=1, max_size=9), st.sampled_from([None, "acme"]))
def test_chunked_fast_path_agrees_with_the_careful_path(tmp_path_factory, monkeypatch, rows, tenant):
    """Chunks of two rows: a field, a tag or a repeated id that first shows up in a later chunk."""
    monkeypatch.setattr(holdout_mod, "_CHUNK", 2)
    path = tmp_path_factory.mktemp("chunks") / "h.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        careful = load_holdout(path, tenant=tenant, allow_bare_tags=False)
    except HoldoutError:
        careful = None
    fast = _columns_fast([dict(r) for r in rows], tenant)
    if fast is None:
        return  # the fast path may always decline
    assert careful is not None, rows
    assert fast.ids == careful.ids and fast.payloads == careful.payloads
    assert [tuple(s) for s in fast.slices] == [tuple(s) for s in careful.slices]
    assert fast.clusters == careful.clusters and fast.added_at == careful.added_at
    # the tag codes are what the slice index would make from the slices
    from adaptergate.decide.rules import build_slice_index

    index = build_slice_index(fast.slices)
    assert fast.tag_codes.tags == index.tags
    assert fast.tag_codes.codes.tolist() == index.tag_idx.tolist()
    assert fast.tag_codes.counts.tolist() == [len(s) for s in fast.slices]
    # load_holdout's own fast path (parse and check a chunk at a time) gives the same
    assert load_holdout(path, tenant=tenant, allow_bare_tags=False).ids == fast.ids


def test_an_id_repeated_in_a_later_chunk_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(holdout_mod, "_CHUNK", 3)
    path = tmp_path / "h.jsonl"
    write_lines(path, [jl({"id": f"q{i}", "slices": ["a=1"]}) for i in range(7)] + [jl({"id": "q1"})])
    with pytest.raises(HoldoutError) as ei:
        load_holdout(path)
    assert problem_map(ei.value) == {8: ["duplicate id 'q1' (first at line 2)"]}
    write_lines(path, [jl({"id": f"q{i}", "slices": ["a=1", f"b={i % 2}"]}) for i in range(8)])
    h = load_holdout(path)
    assert h.tag_codes is not None and h.tag_codes.tags == ["a=1", "b=0", "b=1"]
    assert h.tag_codes.codes.tolist() == [0, 1, 0, 2] * 4
