"""``schemas/holdout.schema.json`` accepts exactly the records adaptergate reads.

The schema is what ``adaptergate data check FILE --schema schemas/holdout.schema.json``
validates a holdout with (README, *Holdout and training-data checks*). A record is
valid under the schema exactly when :func:`adaptergate.holdout.store.normalize_query`
accepts it: checked on the bundled holdouts and on generated records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptergate.holdout.datacheck.schema import load_schema, validate_record
from adaptergate.holdout.store import MAX_SLICE_TAG_CHARS, normalize_query

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "schemas" / "holdout.schema.json"


@pytest.fixture(scope="module")
def validator():
    return load_schema(SCHEMA)


def reads(obj) -> bool:
    try:
        normalize_query(obj)
    except ValueError:
        return False
    return True


def schema_ok(validator, obj) -> bool:
    return not validate_record(validator, obj)


def test_schema_is_draft_2020_12_and_documents_the_fields():
    doc = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    props = doc["$defs"]["query"]["properties"] | doc["$defs"]["record"]["properties"]
    for name in ("id", "question_id", "query_id", "prompt", "question", "text", "query", "gold",
                 "expected_output", "slices", "cluster", "added_at", "tenant", "tenant_id"):
        assert props[name].get("description"), name
    assert doc["$defs"]["sliceTag"]["maxLength"] == MAX_SLICE_TAG_CHARS


def test_bundled_holdouts_are_valid(validator):
    files = [REPO / "adaptergate" / "examples" / "acme_holdout.jsonl",
             *sorted((REPO / "tests" / "fixtures" / "compat054").glob("*.jsonl"))]
    seen = 0
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                if reads(obj):
                    assert schema_ok(validator, obj), (path.name, line[:200], validate_record(validator, obj))
                    seen += 1
    assert seen > 100


CASES = [
    ({"id": "q1", "prompt": "hi", "gold": "x", "slices": ["intent=refund", "lang=en"]}, True),
    ({"question_id": 7, "question": "hi"}, True),
    ({"query_id": "a", "text": "t", "cluster": 3, "tenant": "acme", "added_at": "2026-01-01"}, True),
    ({"id": None, "question_id": "b"}, True),
    ({"prompt": "no id"}, False),
    ({"id": " "}, False),
    ({"id": True}, False),
    ({"id": 1.5}, False),
    ({"id": "q", "slices": "intent=refund"}, False),
    ({"id": "q", "slices": ["=refund"]}, False),
    ({"id": "q", "slices": ["bare"]}, True),
    ({"id": "q", "slices": [3]}, False),
    ({"id": "q", "slices": ["k=" + "v" * MAX_SLICE_TAG_CHARS]}, False),
    ({"id": "q", "prompt": 5}, False),
    ({"id": "q", "prompt": None, "question": 5}, False),
    ({"id": "q", "prompt": "p", "question": 5}, True),
    ({"id": "q", "tenant": 5}, False),
    ({"id": "q", "tenant": None, "tenant_id": 5}, False),
    ({"id": "q", "tenant": "a", "tenant_id": 5}, True),
    ({"id": "q", "cluster": [1]}, False),
    ({"id": "q", "added_at": 20260101}, False),
    # adaptergate 0.5.4's wrapped lines
    ({"query_id": "q1", "tenant_id": "acme", "payload": {"question": "hi", "slices": ["intent=a"]}}, True),
    ({"query_id": None, "tenant_id": "acme", "payload": {}}, False),
    ({"query_id": "q1", "tenant_id": 3, "payload": {}}, False),
    ({"query_id": "q1", "tenant_id": "acme", "payload": {"slices": "x"}}, False),
    ({"query_id": "q1", "tenant_id": "acme", "payload": "not an object"}, True),  # then an ordinary record
]


@pytest.mark.parametrize("obj, ok", CASES, ids=[json.dumps(c[0])[:60] for c in CASES])
def test_schema_agrees_with_the_reader(validator, obj, ok):
    assert reads(obj) is ok
    assert schema_ok(validator, obj) is ok, validate_record(validator, obj)


# Generated records: keys adaptergate looks at, values of every JSON type (no floats with a
# zero fraction: JSON Schema counts 2.0 as an integer, Python's json reads it as a float).
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([1.5, -0.25]),
    st.sampled_from(["", " ", "q1", "intent=refund", "=x", "bare", "k=" + "v" * 600, "hi\n"]),
)
_values = st.one_of(
    _scalars,
    st.lists(st.one_of(_scalars, st.sampled_from(["a=b", "lang=en"])), max_size=3),
    st.dictionaries(st.sampled_from(["question", "slices", "cluster", "prompt"]), _scalars, max_size=3),
)
_KEYS = ["id", "question_id", "query_id", "prompt", "question", "text", "query", "slices", "cluster",
         "tenant", "tenant_id", "added_at", "payload", "gold", "other"]


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_KEYS), _values, max_size=7))
def test_generated_records(validator, obj):
    assert schema_ok(validator, obj) is reads(obj), (obj, validate_record(validator, obj))


def test_data_check_with_the_shipped_schema(tmp_path, capsys):
    from adaptergate.cli import main

    f = tmp_path / "h.jsonl"
    f.write_text(json.dumps({"id": "q1", "prompt": "hi", "slices": ["intent=a"]}) + "\n"
                 + json.dumps({"id": "q2", "prompt": 5, "slices": "intent=a"}) + "\n", encoding="utf-8")
    code = main(["data", "check", str(f), "--schema", str(SCHEMA), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 1 and rep["valid"] == 1
    assert any(p.startswith("line 2: $.prompt") for p in rep["problems"])
    assert any(p.startswith("line 2: $.slices") for p in rep["problems"])
