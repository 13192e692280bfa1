"""``adaptergate data check``: schema compliance, lengths, duplicates, diversity, contamination."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergate.cli.app import main
from adaptergate.holdout.datacheck import check_data, normalise, record_text

SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["prompt", "completion"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 40},
        "completion": {"type": "string"},
        # prefixItems and dependentRequired exist only since draft 2019-09/2020-12
        "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        "email": {"type": "string", "format": "email"},
    },
    "dependentRequired": {"email": ["pair"]},
}


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_jsonl(path, rows):
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_json(capsys, *args):
    code, out, err = run(["data", "check", *args, "--json"], capsys)
    return code, json.loads(out), err


def words(n, seed):
    rng = random.Random(seed)
    return [rng.choice("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
                       "november oscar papa quebec romeo sierra tango uniform victor whiskey xray "
                       "yankee zulu refund order charge card account".split()) + str(i)
            for i in range(n)]


# ----------------------------------------------------------------- schema


@pytest.fixture
def schema_file(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA_2020_12), encoding="utf-8")
    return path


@pytest.fixture
def mixed_file(tmp_path):
    return write_jsonl(tmp_path / "data.jsonl", [
        {"prompt": "Refund my order 123!", "completion": "ok"},          # 1 valid
        {"prompt": "hello", "completion": "x", "pair": ["a", 2]},        # 2 valid
        "",                                                               # 3 blank: skipped
        "[1, 2]",                                                         # 4 not an object
        "not json at all",                                                # 5 not an object
        {"prompt": "hi", "completion": "x", "pair": ["a", "b"]},          # 6 prefixItems
        {"prompt": "hi", "completion": "x", "email": "a@b.example"},      # 7 dependentRequired
        {"completion": 5},                                                # 8 required + type
        {"prompt": "p", "completion": "c", "pair": ["a", 1, "extra"]},    # 9 items: false
        {"prompt": "fine", "completion": "yes"},                          # 10 valid
    ])


def test_schema_compliance_and_problem_lines(schema_file, mixed_file, capsys):
    code, rep, _ = check_json(capsys, mixed_file, "--schema", schema_file)
    assert code == 1  # any record that violates the schema fails the check
    assert rep["records"] == 9 and rep["objects"] == 7 and rep["valid"] == 3
    assert rep["compliance"] == pytest.approx(3 / 9, abs=1e-6)
    assert rep["problems"] == [
        "line 4: not a JSON object (got an array)",
        "line 5: not a JSON object (invalid JSON: Expecting value)",
        "line 6: $.pair[1]: 'b' is not of type 'integer'",
        "line 7: $: 'pair' is a dependency of 'email'",
        "line 8: $: 'prompt' is a required property",
        "line 8: $.completion: 5 is not of type 'string'",
        "line 9: $.pair: Expected at most 2 items but found 1 extra: 'extra'",
    ]
    assert rep["problem_counts"] == {"not_object": 2, "type": 2, "dependentRequired": 1,
                                     "items": 1, "required": 1}
    assert rep["problems_total"] == 7


def test_format_is_checked_and_max_problems_caps_the_list(schema_file, tmp_path, capsys):
    f = write_jsonl(tmp_path / "f.jsonl", [{"prompt": "x", "completion": "y", "email": "no-at-sign",
                                            "pair": ["a", 1]}] * 3)
    code, rep, _ = check_json(capsys, f, "--schema", schema_file, "--max-problems", "2")
    assert code == 1
    assert rep["problems"] == ["line 1: $.email: 'no-at-sign' is not a 'email'"] + [
        "line 2: $.email: 'no-at-sign' is not a 'email'"]
    assert rep["problems_total"] == 3 and rep["problem_counts"] == {"format": 3}


def test_any_schema_violation_fails_unless_fail_under_lowers_the_bar(schema_file, tmp_path, capsys):
    half = write_jsonl(tmp_path / "half.jsonl", [{"prompt": "ok", "completion": "y"}, {"completion": 5}] * 4)
    code, rep, err = check_json(capsys, half, "--schema", schema_file)
    assert code == 1 and rep["verdict"]["ok"] is False and rep["fail_under"] == 1.0
    assert "4 of 8 records violate the schema (compliance 50.00%); --fail-under RATE accepts a lower rate" in err
    code, out, _ = run(["data", "check", half, "--schema", schema_file], capsys)
    assert code == 1 and "FAIL: 4 of 8 records violate the schema" in out and "\nOK" not in out
    code, rep, _ = check_json(capsys, half, "--schema", schema_file, "--fail-under", "0.5")
    assert code == 0 and rep["verdict"]["ok"] is True and rep["fail_under"] == 0.5
    good = write_jsonl(tmp_path / "good.jsonl", [{"prompt": "ok", "completion": "y"}] * 3)
    code, rep, _ = check_json(capsys, good, "--schema", schema_file)
    assert code == 0 and rep["compliance"] == 1.0
    code, rep, _ = check_json(capsys, half)  # no schema: nothing to violate
    assert code == 0 and rep["fail_under"] is None


def test_fail_under_exits_1_with_a_headline(schema_file, mixed_file, capsys):
    code, rep, err = check_json(capsys, mixed_file, "--schema", schema_file, "--fail-under", "0.9")
    assert code == 1 and rep["verdict"]["ok"] is False
    assert "schema compliance 33.33% is below --fail-under 0.9" in err
    code, _rep, _ = check_json(capsys, mixed_file, "--schema", schema_file, "--fail-under", "0.3")
    assert code == 0


@pytest.mark.parametrize("schema_text, expected", [
    ('{"type": "nope"}', "invalid schema"),
    ('{"properties": {"a": {"minLength": -1}}}', "invalid schema"),
    ('{"type": ', "is not valid JSON"),
    ("[1, 2]", "must be a JSON object or a boolean"),
])
def test_bad_schema_is_exit_2_in_one_line(tmp_path, mixed_file, capsys, schema_text, expected):
    schema = tmp_path / "bad.json"
    schema.write_text(schema_text, encoding="utf-8")
    code, out, err = run(["data", "check", mixed_file, "--schema", schema], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("adaptergate: error: ") and expected in lines[0]
    assert "Traceback" not in err


def test_unresolvable_ref_is_exit_2(tmp_path, mixed_file, capsys):
    schema = tmp_path / "ref.json"
    schema.write_text('{"$ref": "https://example.invalid/nothing.json"}', encoding="utf-8")
    code, _out, err = run(["data", "check", mixed_file, "--schema", schema], capsys)
    assert code == 2 and "cannot be resolved" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, expected", [
    (["missing.jsonl"], "file not found"),
    (["{f}", "--schema", "missing.json"], "schema file not found"),
    (["{f}", "--holdout", "missing.jsonl"], "holdout file not found"),
    (["{f}", "--fail-under", "1.5"], "--fail-under must be a rate between 0 and 1"),
    (["{d}"], "is a directory"),
])
def test_unusable_input_is_exit_2(tmp_path, mixed_file, capsys, args, expected):
    argv = [a.format(f=mixed_file, d=tmp_path) if "{" in a else str(tmp_path / a) if "missing" in a else a
            for a in args]
    code, out, err = run(["data", "check", *argv], capsys)
    assert code == 2 and out == ""
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_without_schema_only_non_objects_are_invalid(mixed_file, capsys):
    code, rep, _ = check_json(capsys, mixed_file)
    assert code == 0
    assert rep["valid"] == 7 and rep["compliance"] == pytest.approx(7 / 9, abs=1e-6)
    assert rep["problems"] == ["line 4: not a JSON object (got an array)",
                               "line 5: not a JSON object (invalid JSON: Expecting value)"]
    assert rep["contamination"] is None
    assert set(rep) >= {"records", "valid", "compliance", "problems", "problem_counts", "lengths",
                        "duplicates", "diversity", "contamination"}
    assert set(rep["duplicates"]) >= {"exact", "normalised", "near", "examples"}
    assert set(rep["diversity"]) >= {"distinct_1", "distinct_2", "ttr"}


# ------------------------------------------------------------ text shapes


@pytest.mark.parametrize("obj, text", [
    ({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                   {"role": "assistant", "content": [{"type": "text", "text": "A"}]}]}, "S\nU\nA"),
    ({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "R"}]}, "Q\nR"),
    ({"prompt": "P", "completion": "C"}, "P\nC"),
    ({"instruction": "I", "input": "", "output": "O"}, "I\nO"),
    ({"id": "q1", "question": "Q", "expected_output": "E", "slices": ["a=b"]}, "Q\nE"),
    ({"query_id": "q1", "tenant_id": "t", "payload": {"id": "q1", "prompt": "P", "gold": "G"}}, "P\nG"),
    ({"text": "T"}, "T"),
    ({"unrelated": 1}, ""),
])
def test_record_text_shapes(obj, text):
    assert record_text(obj) == text


def test_normalise():
    assert normalise("Refund my order 123!") == normalise("refund my  ORDER 123") == "refund my order 123"
    assert normalise("Ｆｕｌｌ\u200bwidth — don't!") == "fullwidth dont"


# ---------------------------------------------------------------- lengths


def test_length_stats_on_a_tiny_file(tmp_path, capsys):
    f = write_jsonl(tmp_path / "t.jsonl", [{"text": "a"}, {"text": "bb cc"}, {"text": "ddd eee fff"}])
    code, rep, _ = check_json(capsys, f)
    assert code == 0
    assert rep["lengths"]["characters"] == {"min": 1, "p5": 1.4, "median": 5.0, "p95": 10.4, "max": 11,
                                            "mean": 5.67}
    assert rep["lengths"]["tokens"] == {"min": 1, "p5": 1.1, "median": 2.0, "p95": 2.9, "max": 3, "mean": 2.0}
    assert rep["diversity"] == {"distinct_1": 1.0, "distinct_2": 1.0, "ttr": 1.0, "tokens": 6}


def test_diversity_counts_repeats(tmp_path, capsys):
    f = write_jsonl(tmp_path / "t.jsonl", [{"text": "a b a b"}, {"text": "a b a b"}])
    _code, rep, _ = check_json(capsys, f)
    # 8 tokens, 2 types; 6 bigrams, 2 distinct (a b, b a); each record: 2 types / 4 tokens
    assert rep["diversity"] == {"distinct_1": 0.25, "distinct_2": pytest.approx(1 / 3, abs=1e-6),
                                "ttr": 0.5, "tokens": 8}


def test_short_texts_only(tmp_path, capsys):
    f = write_jsonl(tmp_path / "s.jsonl", [{"text": "0"}, {"text": "0 0"}, {"text": "0, 0!"}, {"text": "x"}])
    _code, rep, _ = check_json(capsys, f)
    d = rep["duplicates"]
    assert (d["exact"], d["normalised"], d["near"]) == (0, 1, 1)
    assert rep["lengths"]["tokens"]["max"] == 2


def test_empty_file(tmp_path, capsys):
    f = tmp_path / "empty.jsonl"
    f.write_text("\n\n", encoding="utf-8")
    code, rep, _ = check_json(capsys, f)
    assert code == 0 and rep["records"] == 0 and rep["compliance"] is None
    assert rep["lengths"]["characters"]["median"] is None and rep["duplicates"]["near"] == 0


# -------------------------------------------------------------- duplicates


def test_exact_normalised_and_near_duplicates(tmp_path, capsys):
    base = words(30, 1)
    tail_changed = base[:-1] + ["different"]          # Jaccard 25/27 on word 5-shingles
    long_base = words(60, 2)
    mid_changed = long_base[:30] + ["changed"] + long_base[31:]  # 51/61 = 0.84
    f = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "Refund my order 123!", "completion": "ok"},     # 1
        {"prompt": "Refund my order 123!", "completion": "ok"},     # 2 exact of 1
        {"completion": "ok", "prompt": "refund my ORDER 123"},      # 3 normalised of 1
        {"text": " ".join(base)},                                   # 4
        {"text": " ".join(tail_changed)},                           # 5 near of 4
        {"text": " ".join(long_base)},                              # 6
        {"text": " ".join(mid_changed)},                            # 7 near of 6
        {"text": " ".join(words(30, 3))},                           # 8 unrelated
    ])
    code, rep, _ = check_json(capsys, f)
    assert code == 0
    d = rep["duplicates"]
    assert (d["exact"], d["normalised"], d["near"]) == (1, 2, 4)
    assert d["exact_rate"] == pytest.approx(1 / 8, abs=1e-6) and d["near_rate"] == 0.5
    by_kind = {(e["kind"], tuple(e["lines"])) for e in d["examples"]}
    assert by_kind >= {("exact", (1, 2)), ("normalised", (1, 3)), ("near", (4, 5)), ("near", (6, 7))}
    assert not any(8 in e["lines"] for e in d["examples"])
    near = {tuple(e["lines"]): e["jaccard"] for e in d["examples"] if e["kind"] == "near"}
    assert near[(4, 5)] == pytest.approx(25 / 27, abs=1e-4)
    assert near[(6, 7)] == pytest.approx(51 / 61, abs=1e-4)


def test_near_duplicates_match_brute_force(tmp_path, capsys):
    rng = random.Random(11)
    texts = [words(rng.randint(40, 90), 100 + i) for i in range(240)]
    for i in range(0, 240, 8):  # plant variants: a word or two changed, dropped or added
        t = list(texts[i])
        for _ in range(rng.randint(1, 2)):
            op, at = rng.choice("cda"), rng.randrange(len(t))
            if op == "c":
                t[at] = "zz" + str(at)
            elif op == "d" and len(t) > 6:
                del t[at]
            else:
                t.insert(at, "new" + str(at))
        texts.insert(i + 1 + rng.randint(0, 5), t)
    f = write_jsonl(tmp_path / "n.jsonl", [{"text": " ".join(t)} for t in texts])

    def shingles(t):
        return {tuple(t[i:i + 5]) for i in range(len(t) - 4)} if len(t) >= 5 else {tuple(t)}

    sets = [shingles(t) for t in texts]
    expected = {}
    for j in range(len(texts)):
        for i in range(j):
            jac = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
            if jac >= 0.8:
                expected.setdefault(j + 1, (i + 1, jac))
    assert len(expected) >= 10, len(expected)
    _code, rep, _ = check_json(capsys, f, "--max-problems", "0")
    assert rep["duplicates"]["near"] == len(expected)
    for ex in rep["duplicates"]["examples"]:
        a, b = ex["lines"]
        jac = len(sets[a - 1] & sets[b - 1]) / len(sets[a - 1] | sets[b - 1])
        assert ex["jaccard"] == pytest.approx(jac, abs=1e-4) and jac >= 0.8


def test_one_word_changed_mid_text_of_30_words_is_below_threshold(tmp_path, capsys):
    # five shingles contain the changed word: Jaccard 21/31 = 0.68 < 0.8
    base = words(30, 4)
    f = write_jsonl(tmp_path / "d.jsonl", [{"text": " ".join(base)},
                                           {"text": " ".join(base[:15] + ["other"] + base[16:])}])
    _code, rep, _ = check_json(capsys, f)
    assert rep["duplicates"]["near"] == 0


def test_human_report_keeps_user_text_inert(tmp_path, schema_file, capsys):
    f = write_jsonl(tmp_path / "h.jsonl", [{"prompt": "[bold red]x[/bold red]" * 3, "completion": "y"},
                                           {"prompt": "[link=http://e.x]z[/link]\nline", "completion": "y"},
                                           {"prompt": "[bold red]x[/bold red]" * 3, "completion": "y"}])
    code, out, _ = run(["data", "check", f, "--schema", schema_file], capsys)
    assert code == 1
    assert "'[bold red]x[/bold red][bold red]x[/bold red][bold red]x[/bold red]' is too long" in out
    assert "line 3 repeats line 1 (exact)" in out and "OK" not in out
    assert "FAIL: 2 of 3 records violate the schema (compliance 33.33%)" in out


# ----------------------------------------------------------- contamination


def chat(user, answer, system=None):
    msgs = [{"role": "system", "content": system}] if system else []
    return {"messages": msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


@pytest.fixture
def holdout(tmp_path):
    long_prompt = " ".join(words(40, 7))
    return write_jsonl(tmp_path / "holdout.jsonl", [
        {"id": "billing_1", "prompt": "Why was I charged twice for order 52445?", "gold": "escalate_billing",
         "slices": ["intent=billing_dispute"]},
        {"id": "billing_2", "prompt": "I want to dispute a charge on my card", "gold": "escalate_billing",
         "slices": ["intent=billing_dispute"]},
        {"id": "long_1", "prompt": long_prompt, "gold": "route_x", "slices": ["intent=x"]},
        {"id": "pw_1", "prompt": "How do I change my password?", "gold": "reset_password", "slices": []},
    ])


def test_contamination_exact_normalised_and_near_exit_1(tmp_path, holdout, capsys):
    long_words = words(40, 7)
    train = write_jsonl(tmp_path / "train.jsonl", [
        chat("Why was I charged twice for order 52445?", "something else", system="You are a bot."),  # 1 exact
        chat("i want to DISPUTE a charge, on my card!!", "escalate"),                                # 2 normalised
        chat("What are your opening hours?", "nine to five"),                                         # 3 clean
        chat(" ".join(long_words[:-1] + ["changed"]), "route_x"),                                     # 4 near
        {"prompt": "How do I change my password?", "completion": "reset_password"},                   # 5 exact
    ])
    code, rep, err = check_json(capsys, train, "--holdout", holdout)
    assert code == 1
    con = rep["contamination"]
    assert con["rows"] == 4 and con["rate"] == 0.8 and con["holdout_queries"] == 4 and con["holdout_hit"] == 4
    pairs = {(p["line"], p["holdout_id"], p["kind"]) for p in con["pairs"]}
    assert pairs == {(1, "billing_1", "exact"), (2, "billing_2", "normalised"), (4, "long_1", "near"),
                     (5, "pw_1", "exact")}
    assert all(p["holdout"] == str(holdout) for p in con["pairs"])
    assert {p["holdout_id"]: p["holdout_line"] for p in con["pairs"]}["long_1"] == 3
    assert "training data overlaps the holdout: 4 rows — the gate's verdict would be optimistic" in err

    code, out, _ = run(["data", "check", train, "--holdout", holdout], capsys)
    assert code == 1
    assert "line 1 <-> billing_1" in out and "line 2 <-> billing_2" in out and "normalised" in out
    assert "FAIL: training data overlaps the holdout: 4 rows" in out


def test_contamination_on_prompt_plus_gold_and_repeatable_holdouts(tmp_path, holdout, capsys):
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "o1", "question": "Where is my parcel?",
                                                    "expected_output": "track"}])
    train = write_jsonl(tmp_path / "train.jsonl", [
        {"text": "Where is my parcel?\ntrack"},  # the prompt and gold, as one text
        chat("Something new entirely here", "x"),
    ])
    code, rep, _ = check_json(capsys, train, "--holdout", holdout, "--holdout", other)
    assert code == 1
    assert [(p["line"], p["holdout_id"], p["holdout"]) for p in rep["contamination"]["pairs"]] == [
        (1, "o1", str(other))]
    assert [h["queries"] for h in rep["contamination"]["holdouts"]] == [4, 1]


def test_no_contamination_exit_0(tmp_path, holdout, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", [
        chat("What are your opening hours?", "nine to five"),
        chat("Can I pay with a gift card?", "yes"),
        chat(" ".join(words(40, 8)), "route_y"),
    ])
    code, rep, err = check_json(capsys, train, "--holdout", holdout)
    assert code == 0 and err == ""
    assert rep["contamination"]["rows"] == 0 and rep["contamination"]["pairs"] == []
    code, out, _ = run(["data", "check", train, "--holdout", holdout], capsys)
    assert code == 0 and "0 training rows" in out and "OK" in out


# ------------------------------------------------------------- invariants

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
_record = st.fixed_dictionaries({"prompt": _text, "completion": _text})


@settings(max_examples=40, deadline=None)
@given(st.lists(_record, min_size=1, max_size=12))
def test_a_file_concatenated_with_itself_is_at_least_half_duplicates(tmp_path_factory, rows):
    f = write_jsonl(tmp_path_factory.mktemp("h") / "twice.jsonl", rows + rows)
    d = check_data(f)["duplicates"]
    assert d["exact_rate"] >= 0.5
    no_text = sum(1 for r in rows + rows if not normalise(record_text(r)))
    assert d["near"] >= d["normalised"] >= d["exact"] - no_text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalisation_is_idempotent(text):
    once = normalise(text)
    assert normalise(once) == once
    assert once == once.strip() and "  " not in once
