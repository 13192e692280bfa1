"""Tests of adaptergate.metrics: built-in output-vs-gold metrics, the
``--metric`` grammar, and user metrics (``module:function``).

User metric modules are written into each test's tmp_path under names unique
to the test; the fixture restores ``sys.path`` and drops them from
``sys.modules`` afterwards (as in test_scoring.py).
"""

from __future__ import annotations

import importlib
import itertools
import math
import re
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergate.errors import ExitCode, InvalidInputError, ScorerError, exit_code_for
from adaptergate.metrics.builtin import BUILTINS, first_number
from adaptergate.metrics.gold import gold_of
from adaptergate.metrics.metric import Metric, build_metric
from adaptergate.metrics.spec import MetricSpec, parse_metric


def q(gold=None, qid="q1", **extra) -> dict:
    query = {"id": qid, "prompt": "p"}
    if gold is not None:
        query["gold"] = gold
    query.update(extra)
    return query


def score(spec: str, output: str, gold=None, **extra) -> float:
    return build_metric(spec)(output, q(gold, **extra))


def invalid(exc_info) -> None:
    assert isinstance(exc_info.value, InvalidInputError)
    assert exit_code_for(exc_info.value) == ExitCode.INVALID_INPUT == 2


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("text", "name", "options"),
    [
        ("exact", "exact", {}),
        ("  exact  ", "exact", {}),
        ("exact:casefold,strip_punct", "exact", {"casefold": True, "strip_punct": True}),
        ("exact: casefold , strip=off", "exact", {"casefold": True, "strip": False}),
        ("exact:nfkc=YES,collapse_ws=1", "exact", {"nfkc": True, "collapse_ws": True}),
        ("contains:casefold", "contains", {"casefold": True}),
        ("regex", "regex", {}),
        ("regex:i,s", "regex", {"i": True, "s": True}),
        ("json", "json", {}),
        ("numeric:rel=1e-3,abs=0", "numeric", {"rel": 1e-3, "abs": 0.0}),
        ("numeric:abs=0.5", "numeric", {"abs": 0.5}),
        ("sql", "sql", {}),
        ("sql:dialect=postgres", "sql", {"dialect": "postgres"}),
        ("my_eval:score", "my_eval:score", {}),
        ("pkg.sub.mod:fn_2", "pkg.sub.mod:fn_2", {}),
        ("evals.exact:casefold", "evals.exact:casefold", {}),
    ],
)
def test_parse_metric(text, name, options):
    spec = parse_metric(text)
    assert spec == MetricSpec(name, options)
    assert spec.builtin == (name in BUILTINS)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty metric"),
        ("   ", "empty metric"),
        ("exactly", "unknown metric"),
        ("Exact", "unknown metric"),
        ("exact:", "empty option list"),
        ("exact:casefold,,strip", "empty option"),
        ("exact:casefold,casefold", "given twice"),
        ("exact:strip=maybe", "true or false"),
        ("exact:Casefold", "bad option name"),
        ("exact:lower", "unknown option 'lower'"),
        ("json:loads", "cannot live in a module named 'json'"),
        ("json:indent=2", "options: none"),
        ("numeric:rel", "needs a value"),
        ("numeric:rel=abc", "finite number >= 0"),
        ("numeric:rel=-1", "finite number >= 0"),
        ("numeric:abs=inf", "finite number >= 0"),
        ("numeric:abs=nan", "finite number >= 0"),
        ("numeric:tol=1", "unknown option 'tol'"),
        ("regex:x", "unknown option 'x'"),
        ("sql:dialect=", "non-empty value"),
        ("sql:dialect", "needs a value"),
        ("mod:fn:extra", "module:function"),
        ("1mod:fn", "module:function"),
        ("mod:", "module:function"),
        (":fn", "module:function"),
        ("mod-x:fn", "module:function"),
        ("mod:fn()", "module:function"),
    ],
)
def test_bad_specs_exit_2(text, fragment):
    with pytest.raises(InvalidInputError) as exc_info:
        parse_metric(text)
    invalid(exc_info)
    assert fragment in str(exc_info.value)
    assert "\n" not in str(exc_info.value)
    with pytest.raises(InvalidInputError):
        build_metric(text)


def test_parse_metric_rejects_non_string():
    with pytest.raises(InvalidInputError):
        parse_metric(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("exact", "exact"),
        ("exact:strip", "exact"),
        ("exact:strip_punct,casefold", "exact:casefold,strip_punct"),
        ("exact:strip=no", "exact:strip=false"),
        ("exact:casefold=false", "exact"),
        ("numeric:rel=1e-9,abs=0", "numeric"),
        ("numeric:rel=1e-3", "numeric:rel=0.001"),
        ("sql:dialect=duckdb", "sql:dialect=duckdb"),
        ("my_eval:score", "my_eval:score"),
    ],
)
def test_canonical_string(text, canonical):
    assert str(parse_metric(text)) == canonical
    if not text.startswith(("sql", "my_eval")):  # those need sqlglot or an importable module
        assert str(build_metric(text)) == canonical


def test_build_from_metric_spec_validates_options():
    m = build_metric(MetricSpec("exact", {"casefold": True}))
    assert m.name == "exact" and m("FOO", q("foo")) == 1.0
    assert build_metric(MetricSpec("numeric", {"rel": 0, "abs": 1}))("10", q(11)) == 1.0
    for bad in (
        MetricSpec("exact", {"lower": True}),
        MetricSpec("exact", {"casefold": "perhaps"}),
        MetricSpec("numeric", {"rel": -1.0}),
        MetricSpec("numeric", {"abs": True}),
        MetricSpec("my_eval:score", {"x": 1}),
        MetricSpec("not a spec", {}),
    ):
        with pytest.raises(InvalidInputError) as exc_info:
            build_metric(bad)
        invalid(exc_info)


def test_metric_repr_and_name():
    m = build_metric("exact:casefold")
    assert m.name == "exact"
    assert str(m) == "exact:casefold"
    assert repr(m) == "Metric('exact:casefold')"
    assert m.spec == MetricSpec("exact", {"casefold": True})


# --------------------------------------------------------------------------- gold


def test_gold_of_aliases():
    assert gold_of({"id": "a", "gold": "x"}) == "x"
    assert gold_of({"id": "a", "expected_output": "y"}) == "y"
    assert gold_of({"id": "a", "gold": "x", "expected_output": "y"}) == "x"
    assert gold_of({"id": "a", "gold": None, "expected_output": "y"}) == "y"
    assert gold_of({"id": "a", "gold": ""}) == ""
    assert gold_of({"id": "a", "gold": 0}) == 0
    assert gold_of({"id": "a"}) is None


def test_expected_output_alias_is_scored():
    m = build_metric("exact")
    assert m("yes", {"id": "q", "expected_output": "yes"}) == 1.0


@pytest.mark.parametrize("spec", ["exact", "contains", "json", "numeric"])
def test_missing_gold_names_query(spec):
    m = build_metric(spec)
    assert m.needs_gold
    with pytest.raises(InvalidInputError) as exc_info:
        m("anything", {"id": "q-77", "prompt": "p"})
    invalid(exc_info)
    assert "'q-77'" in str(exc_info.value) and "no gold answer" in str(exc_info.value)


def test_missing_gold_uses_query_id_alias_or_keyword():
    m = build_metric("exact")
    with pytest.raises(InvalidInputError, match="'qq'"):
        m("x", {"question_id": "qq"})
    with pytest.raises(InvalidInputError, match="'from-wrapper'"):
        m("x", {"prompt": "p"}, query_id="from-wrapper")
    with pytest.raises(InvalidInputError, match=r"query '\?'"):
        m("x", {"prompt": "p"})


def test_check_golds_lists_every_problem():
    m = build_metric("numeric")
    queries = [q(1, "a"), q(None, "b"), q("seven", "c"), q([2, "3"], "d")]
    with pytest.raises(InvalidInputError) as exc_info:
        m.check_golds(queries)
    invalid(exc_info)
    assert "2 queries cannot be scored by metric numeric" in str(exc_info.value)
    assert len(exc_info.value.details) == 2
    assert "'b'" in exc_info.value.details[0] and "'c'" in exc_info.value.details[1]
    m.check_golds([q(1, "a"), q("2.5", "b")])
    m.check_gold(q(1, "a"))
    with pytest.raises(InvalidInputError, match="'wrapped'"):
        m.check_golds([{"prompt": "p"}], ids=["wrapped"])


def test_check_golds_caps_details():
    m = build_metric("exact")
    with pytest.raises(InvalidInputError) as exc_info:
        m.check_golds([{"id": f"q{i}"} for i in range(60)])
    assert len(exc_info.value.details) == 50
    assert "60 queries" in str(exc_info.value) and "first 50" in str(exc_info.value)


def test_output_must_be_text():
    with pytest.raises(TypeError):
        build_metric("exact")(None, q("x"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- exact


@pytest.mark.parametrize(
    ("spec", "output", "gold", "expected"),
    [
        ("exact", "Paris", "Paris", 1.0),
        ("exact", "  Paris\n", "Paris", 1.0),
        ("exact", "Paris", "  Paris ", 1.0),
        ("exact", "paris", "Paris", 0.0),
        ("exact", "Paris.", "Paris", 0.0),
        ("exact", "Par is", "Paris", 0.0),
        ("exact", "", "", 1.0),
        ("exact", "   ", "", 1.0),
        ("exact:strip=false", " Paris", "Paris", 0.0),
        ("exact:strip=false", "Paris", "Paris", 1.0),
        ("exact:casefold", "PARIS", "paris", 1.0),
        ("exact:casefold", "STRASSE", "straße", 1.0),
        ("exact:strip_punct", "Paris!", "Paris", 1.0),
        ("exact:strip_punct", "«Paris», ¿sí?", "Paris sí", 1.0),
        ("exact:strip_punct", "$5", "5", 0.0),  # a currency sign is a symbol, not punctuation
        ("exact:collapse_ws", "New   York\tCity", "New York City", 1.0),
        ("exact", "New  York", "New York", 0.0),
        ("exact:nfkc", "ｆｕｌｌ", "full", 1.0),
        ("exact:nfkc", "ﬁle", "file", 1.0),
        ("exact", "ﬁle", "file", 0.0),
        ("exact:casefold,strip_punct,collapse_ws", "  The  ANSWER: yes! ", "the answer yes", 1.0),
        ("exact", "42", 42, 1.0),
        ("exact", "2.5", 2.5, 1.0),
        ("exact", "true", True, 1.0),
        ("exact", "True", True, 0.0),
    ],
)
def test_exact(spec, output, gold, expected):
    assert score(spec, output, gold) == expected


def test_exact_list_gold_any_match():
    m = build_metric("exact:casefold")
    query = q(["NYC", "New York", "new york city"])
    assert m("new york", query) == 1.0
    assert m("nyc", query) == 1.0
    assert m("New York City", query) == 1.0
    assert m("York", query) == 0.0


@pytest.mark.parametrize("gold", [[], [None], [["a"]], [{"a": 1}], {"a": 1}])
def test_exact_bad_gold_shapes(gold):
    with pytest.raises(InvalidInputError) as exc_info:
        score("exact", "a", gold)
    invalid(exc_info)
    assert "'q1'" in str(exc_info.value)


def test_builtin_results_are_floats():
    for spec, out, gold in [("exact", "a", "a"), ("exact", "b", "a"), ("numeric", "1", 1), ("json", "1", "1")]:
        value = score(spec, out, gold)
        assert type(value) is float and value in (0.0, 1.0)


@pytest.mark.parametrize(
    ("spec", "flag"),
    [
        ("exact", True),
        ("exact:strip", True),
        ("exact:strip=false", True),
        ("exact:casefold", False),
        ("exact:collapse_ws", False),
        ("exact:strip_punct", False),
        ("exact:nfkc", False),
        ("exact:casefold=false,nfkc=false", True),
        ("contains", False),
        ("regex", False),
        ("json", False),
        ("numeric", False),
    ],
)
def test_exact_match_gold_flag(spec, flag):
    assert build_metric(spec).exact_match_gold is flag


def test_needs_gold_flags():
    assert build_metric("exact").needs_gold
    assert build_metric("contains").needs_gold
    assert build_metric("json").needs_gold
    assert build_metric("numeric").needs_gold
    assert not build_metric("regex").needs_gold  # a pattern field will do


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_exact_with_strip_is_reflexive(s):
    m = build_metric("exact")
    assert m(s, {"id": "h", "gold": s}) == 1.0
    assert m(s, {"id": "h", "gold": s.strip()}) == 1.0
    assert m(s, {"id": "h", "gold": [s + "x", s]}) == 1.0


_NORMALISERS = ["strip", "casefold", "collapse_ws", "strip_punct", "nfkc"]


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.sets(st.sampled_from(_NORMALISERS)))
def test_exact_never_raises_and_is_reflexive_for_any_options(a, b, chosen):
    spec = "exact" + (":" + ",".join(sorted(chosen)) if chosen else "")
    m = build_metric(spec)
    assert m(a, {"id": "h", "gold": a}) == 1.0
    assert m(a, {"id": "h", "gold": b}) in (0.0, 1.0)
    c = build_metric(spec.replace("exact", "contains", 1))
    try:
        c.check_gold({"id": "h", "gold": a})
    except InvalidInputError:  # only a gold answer that normalises to ""
        assert build_metric(spec)("", {"id": "h", "gold": a}) == 1.0
    else:
        assert c(b + a + b, {"id": "h", "gold": a}) in (0.0, 1.0)


# --------------------------------------------------------------------------- contains


@pytest.mark.parametrize(
    ("spec", "output", "gold", "expected"),
    [
        ("contains", "The answer is Paris.", "Paris", 1.0),
        ("contains", "The answer is paris.", "Paris", 0.0),
        ("contains:casefold", "The answer is paris.", "Paris", 1.0),
        ("contains", "The answer is Lyon.", "Paris", 0.0),
        ("contains", "x", " x ", 1.0),  # gold stripped
        ("contains:strip_punct,casefold", "It's: NEW-YORK!", "newyork", 1.0),
        ("contains:collapse_ws", "in  New \n York", "New York", 1.0),
        ("contains", "answer 42 units", 42, 1.0),
        ("contains", "A or B", ["C", "B"], 1.0),
        ("contains", "A or B", ["C", "D"], 0.0),
    ],
)
def test_contains(spec, output, gold, expected):
    assert score(spec, output, gold) == expected


@pytest.mark.parametrize(("spec", "gold"), [("contains", ""), ("contains", "   "), ("contains:strip_punct", "?!")])
def test_contains_empty_gold_is_an_error(spec, gold):
    with pytest.raises(InvalidInputError) as exc_info:
        score(spec, "anything", gold)
    invalid(exc_info)
    assert "would match any output" in str(exc_info.value)


# --------------------------------------------------------------------------- regex


@pytest.mark.parametrize(
    ("spec", "output", "gold", "extra", "expected"),
    [
        ("regex", "ORD-12345", r"ORD-\d{5}", {}, 1.0),
        ("regex", "ORD-1234", r"ORD-\d{5}", {}, 0.0),
        ("regex", "x ORD-12345", r"ORD-\d{5}", {}, 0.0),  # fullmatch, not search
        ("regex", "ORD-12345\n", r"ORD-\d{5}", {}, 1.0),  # output stripped by default
        ("regex:strip=false", "ORD-12345\n", r"ORD-\d{5}", {}, 0.0),
        ("regex", "ord-12345", r"ORD-\d{5}", {}, 0.0),
        ("regex:i", "ord-12345", r"ORD-\d{5}", {}, 1.0),
        ("regex", "a\nb", r"a.b", {}, 0.0),
        ("regex:s", "a\nb", r"a.b", {}, 1.0),
        ("regex", "yes", "no", {"pattern": "y.s"}, 1.0),  # pattern wins over gold
        ("regex", "no", "no", {"pattern": "y.s"}, 0.0),
        ("regex", "cat", ["dog", "c.t"], {}, 1.0),
        ("regex", "42", 42, {}, 1.0),
    ],
)
def test_regex(spec, output, gold, extra, expected):
    assert score(spec, output, gold, **extra) == expected


def test_regex_pattern_without_gold():
    m = build_metric("regex")
    assert m("2024-01-02", {"id": "d", "pattern": r"\d{4}-\d{2}-\d{2}"}) == 1.0
    with pytest.raises(InvalidInputError, match="neither a pattern nor a gold"):
        m("x", {"id": "d"})


@pytest.mark.parametrize("extra", [{"gold": "("}, {"pattern": "[a-"}, {"gold": ["ok", "*x"]}])
def test_invalid_regex_names_query(extra):
    m = build_metric("regex")
    with pytest.raises(InvalidInputError) as exc_info:
        m("x", {"id": "rx-9", **extra})
    invalid(exc_info)
    assert "'rx-9'" in str(exc_info.value) and "invalid regular expression" in str(exc_info.value)


def test_regex_non_string_pattern():
    with pytest.raises(InvalidInputError, match="pattern"):
        build_metric("regex")("x", {"id": "r", "pattern": 5})


# --------------------------------------------------------------------------- json


@pytest.mark.parametrize(
    ("output", "gold", "expected"),
    [
        ('{"a": 1, "b": [1, 2]}', {"b": [1, 2], "a": 1}, 1.0),
        ('{"b": [1, 2], "a": 1}', '{"a": 1, "b": [1, 2]}', 1.0),
        ('{"a": 1.0}', {"a": 1}, 1.0),
        ('{"a": 1}', {"a": 2}, 0.0),
        ('{"a": true}', {"a": 1}, 0.0),  # true is not 1
        ('{"a": 1}', {"a": True}, 0.0),
        ('{"a": false}', {"a": 0}, 0.0),
        ('{"a": null}', {"a": None}, 1.0),
        ('{"a": null}', {"a": 0}, 0.0),
        ('{"a": [2, 1]}', {"a": [1, 2]}, 0.0),  # list order matters
        ('{"a": 1, "b": 2}', {"a": 1}, 0.0),
        ('{"a": 1}', {"a": 1, "b": 2}, 0.0),
        ('[1, "x", {"k": []}]', [1, "x", {"k": []}], 1.0),
        ("[1]", [1, 2], 0.0),
        ('"1"', 1, 0.0),
        ("1", "1", 1.0),
        ('"text"', '"text"', 1.0),
        ("  \n {\"a\": 1}  \n", {"a": 1}, 1.0),
        ('```json\n{"a": 1}\n```', {"a": 1}, 1.0),
        ('```JSON\n{"a": 1}\n```', {"a": 1}, 1.0),
        ('  ```\n{"a": 1}\n```\n', {"a": 1}, 1.0),
        ('```json {"a": 1}```', {"a": 1}, 1.0),
        ('```json\n{"a": 1}\n', {"a": 1}, 1.0),  # generation stopped before the closing fence
        ('```json\n{"a": 1}\n```\nHope this helps!', {"a": 1}, 0.0),
        ('Here it is: {"a": 1}', {"a": 1}, 0.0),
        ('```python\n{"a": 1}\n```', {"a": 1}, 0.0),
        ('{"a": 1', {"a": 1}, 0.0),
        ("", {"a": 1}, 0.0),
        ("not json at all", {"a": 1}, 0.0),
        ("[" * 100_000, [1], 0.0),  # too deep to parse: a model failure, not a crash
    ],
)
def test_json(output, gold, expected):
    assert score("json", output, gold) == expected


def test_json_gold_fenced_string_and_deep_structures():
    assert score("json", '{"a": 1}', '```json\n{"a": 1}\n```') == 1.0
    deep_out = "[" * 500 + "]" * 500
    deep_gold: list = []
    for _ in range(499):
        deep_gold = [deep_gold]
    assert score("json", deep_out, deep_gold) == 1.0


def test_json_invalid_gold_string_is_an_error():
    with pytest.raises(InvalidInputError) as exc_info:
        score("json", '"a"', "plain text")
    invalid(exc_info)
    assert "'q1'" in str(exc_info.value) and "not valid JSON" in str(exc_info.value)


# --------------------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("42", 42.0),
        ("The answer is 42.", 42.0),
        ("-3", -3.0),
        ("+3", 3.0),
        ("\u22127", -7.0),
        ("3.25", 3.25),
        ("3.", 3.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("1.5E-3", 0.0015),
        ("2e", 2.0),
        ("2 eggs", 2.0),
        ("1,234", 1234.0),
        ("$1,234.50 total", 1234.5),
        ("1,234,567.8", 1234567.8),
        ("12,34", 12.0),
        ("1,2345", 1.0),
        ("1,2,3", 1.0),
        ("1234,567", 1234.0),
        ("50%", 50.0),
        ("x-5", 5.0),
        ("3-5", 3.0),
        ("2024-01-05", 2024.0),
        ("v1.2.3", 1.2),
        ("no digits here", None),
        ("", None),
        ("inf nan", None),
        ("1e999", math.inf),
    ],
)
def test_first_number(text, number):
    assert first_number(text) == number


@pytest.mark.parametrize(
    ("spec", "output", "gold", "expected"),
    [
        ("numeric", "42", 42, 1.0),
        ("numeric", "42.0", 42, 1.0),
        ("numeric", "The total is $1,234.50.", 1234.5, 1.0),
        ("numeric", "41", 42, 0.0),
        ("numeric", "42", "42", 1.0),
        ("numeric", "1234", " 1,234 ", 1.0),
        ("numeric", "-0.5", "-.5", 1.0),
        ("numeric", "1e-3", 0.001, 1.0),
        ("numeric", "0.1", 0.1000000000001, 1.0),  # default rel=1e-9
        ("numeric", "0.1", 0.1001, 0.0),
        ("numeric:rel=1e-3", "0.1", 0.10001, 1.0),
        ("numeric:rel=1e-3", "0.1", 0.11, 0.0),
        ("numeric:abs=0.5", "10", 10.4, 1.0),
        ("numeric:abs=0.5", "10", 10.6, 0.0),
        ("numeric:rel=0", "1", 1.0000001, 0.0),
        ("numeric", "0", 0, 1.0),
        ("numeric", "no number", 0, 0.0),
        ("numeric", "1e999", 1, 0.0),
        ("numeric", "first 3 then 4", 4, 0.0),
        ("numeric", "7", [6, "7"], 1.0),
        ("numeric", "8", [6, "7"], 0.0),
    ],
)
def test_numeric(spec, output, gold, expected):
    assert score(spec, output, gold) == expected


@pytest.mark.parametrize("gold", ["seven", "4 apples", "1e999", True, "", [None]])
def test_numeric_bad_gold(gold):
    with pytest.raises(InvalidInputError) as exc_info:
        score("numeric", "7", gold)
    invalid(exc_info)
    assert "'q1'" in str(exc_info.value)


# --------------------------------------------------------------------------- sql


def test_sql_missing_sqlglot_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sqlglot", None)  # import sqlglot now fails
    parse_metric("sql")  # parsing the spec needs no sqlglot
    with pytest.raises(InvalidInputError) as exc_info:
        build_metric("sql:dialect=postgres")
    invalid(exc_info)
    assert str(exc_info.value) == "metric 'sql' needs sqlglot: pip install 'adaptergate[sql]'"


@pytest.fixture
def sqlglot():
    return pytest.importorskip("sqlglot")


@pytest.mark.parametrize(
    ("spec", "output", "gold", "expected"),
    [
        ("sql", "SELECT a FROM t", "SELECT a FROM t", 1.0),
        ("sql", "select A\n  from T;", "SELECT a FROM t", 1.0),
        ("sql", "SELECT a FROM t -- the answer", "SELECT a FROM t", 1.0),
        ("sql", "```sql\nSELECT a FROM t\n```", "SELECT a FROM t", 1.0),
        ("sql", "SELECT a b FROM t", "SELECT a AS b FROM t", 1.0),
        ("sql", "SELECT b FROM t", "SELECT a FROM t", 0.0),
        ("sql", "SELECT a, b FROM t", "SELECT b, a FROM t", 0.0),
        ("sql", "SELECT a FROM t WHERE n = 'Bob'", "SELECT a FROM t WHERE n = 'bob'", 0.0),
        ('sql', 'SELECT "A" FROM t', "SELECT a FROM t", 0.0),  # quoted identifiers keep their case
        ("sql", "SELECT a FROM t; SELECT 1", "SELECT a FROM t", 0.0),
        ("sql", "", "SELECT a FROM t", 0.0),
        ("sql", "SELECT FROM WHERE (", "SELECT a FROM t", 0.0),
        ("sql", "SELECT 2", ["SELECT 1", "select 2"], 1.0),
        ("sql:dialect=postgres", "SELECT a::INT FROM t", "SELECT CAST(a AS INT) FROM t", 1.0),
    ],
)
def test_sql(sqlglot, spec, output, gold, expected):
    assert score(spec, output, gold) == expected


def test_sql_bad_gold_and_dialect(sqlglot):
    with pytest.raises(InvalidInputError, match="'q1'.*not one SQL statement"):
        score("sql", "SELECT 1", "SELECT 1; SELECT 2")
    with pytest.raises(InvalidInputError, match="expected SQL text"):
        score("sql", "SELECT 1", 1)
    with pytest.raises(InvalidInputError, match="unknown SQL dialect") as exc_info:
        build_metric("sql:dialect=no_such_dialect")
    invalid(exc_info)


# --------------------------------------------------------------------------- user metrics


class UserMetrics:
    def __init__(self, root, prefix):
        self.root = root
        self.prefix = prefix
        self._n = itertools.count()

    def build(self, source: str, func: str = "metric") -> Metric:
        name = f"{self.prefix}_{next(self._n)}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        return build_metric(f"{name}:{func}", search_path=self.root)


@pytest.fixture
def user(tmp_path, monkeypatch, request):
    monkeypatch.setattr(sys, "path", list(sys.path))
    prefix = "agmt_" + re.sub(r"\W", "_", request.node.name)
    yield UserMetrics(tmp_path, prefix)
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]
    sys.path_importer_cache.pop(str(tmp_path), None)


def test_user_metric_scores(user):
    m = user.build(
        """
        def metric(output, query):
            return 0.5 if output == query.get("gold") else 0
        """
    )
    assert not m.needs_gold and not m.exact_match_gold
    assert m("a", {"id": "x", "gold": "a"}) == 0.5
    assert m("b", {"id": "x", "gold": "a"}) == 0.0
    assert type(m("b", {"id": "x", "gold": "a"})) is float
    m.check_golds([{"id": "x"}])  # user metrics decide for themselves


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("return float('nan')", "NaN"),
        ("return float('inf')", "an infinite value"),
        ("return 1.5", "1.5, outside [0, 1]"),
        ("return -0.1", "-0.1, outside [0, 1]"),
        ("return '1'", "a str ('1'), not a number"),
        ("return None", "a NoneType (None), not a number"),
        ("return [1]", "not a number"),
    ],
)
def test_user_metric_bad_values_exit_3(user, body, fragment):
    m = user.build(f"def metric(output, query):\n    {body}\n")
    with pytest.raises(ScorerError) as exc_info:
        m("x", {"id": "uq-3"})
    assert exit_code_for(exc_info.value) == ExitCode.EVALUATION_FAILED == 3
    assert fragment in str(exc_info.value) and "'uq-3'" in str(exc_info.value)
    assert "\n" not in str(exc_info.value)


def test_user_metric_accepts_bool_and_numpy(user):
    m = user.build(
        """
        import numpy as np
        def metric(output, query):
            return {"b": True, "n": np.float32(0.25), "i": np.int64(1)}[output]
        """
    )
    assert m("b", {"id": "x"}) == 1.0
    assert m("n", {"id": "x"}) == 0.25
    assert m("i", {"id": "x"}) == 1.0


def test_user_metric_exception_exit_3(user):
    m = user.build(
        """
        def metric(output, query):
            raise ValueError("bad gold\\nsecond line")
        """
    )
    with pytest.raises(ScorerError) as exc_info:
        m("x", {"prompt": "p"}, query_id="wrapped-1")
    err = exc_info.value
    assert exit_code_for(err) == 3
    assert "ValueError: bad gold" in str(err) and "'wrapped-1'" in str(err)
    assert "\n" not in str(err) and "second line" not in str(err)
    assert err.traceback_text and "ValueError" in err.traceback_text


def test_user_metric_import_problems(user, tmp_path):
    with pytest.raises(InvalidInputError) as exc_info:
        build_metric("agmt_no_such_module_xyz:metric", search_path=tmp_path)
    invalid(exc_info)
    assert "agmt_no_such_module_xyz" in str(exc_info.value)
    with pytest.raises(InvalidInputError, match="has no attribute 'nope'"):
        user.build("def metric(o, q):\n    return 1\n", func="nope")
    with pytest.raises(ScorerError) as exc_info:
        user.build("raise RuntimeError('broken at import')\n")
    assert exit_code_for(exc_info.value) == 3 and "broken at import" in str(exc_info.value)


# ---------------------------------------------------------------- the seam


def test_a_registered_metric_is_chosen_by_name_with_its_options():
    from adaptergate.metrics import METRICS, build_metric, metric_info, register_metric
    from adaptergate.metrics.gold import gold_of
    from adaptergate.metrics.metric import Metric

    def first_word(spec, opts):
        def prepare(query, qid):
            return str(gold_of(query)).split()[0].lower()

        def compare(output, word):
            words = output.split()
            return bool(words) and (words[0].lower() if opts["casefold"] else words[0]) == word

        return Metric(spec, needs_gold=True, prepare=prepare, compare=compare)

    register_metric("first_word", first_word, options={"casefold": ("bool", True)})
    try:
        metric = build_metric("first_word")
        assert metric("Start the refund now", {"gold": "start refund"}, query_id="q1") == 1.0
        assert metric("cancel order", {"gold": "start refund"}, query_id="q2") == 0.0
        strict = build_metric("first_word:casefold=false")
        assert strict("Start", {"gold": "start refund"}, query_id="q3") == 0.0
        info = metric_info("first_word:casefold=false")
        assert info.name == "first_word" and not info.needs_both_answers
    finally:
        METRICS.pop("first_word")


def test_metric_info_says_what_each_metric_needs():
    from adaptergate.metrics import metric_info

    assert metric_info("judge").needs_both_answers and metric_info(" judge ").needs_model
    assert not metric_info("exact:casefold").needs_both_answers
    user = metric_info("my_metrics:score")
    assert user.builder is None and not user.needs_both_answers
    with pytest.raises(TypeError):
        metric_info(None)
