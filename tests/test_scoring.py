"""Tests of adaptergate.scoring.scorers: loading ``module:function`` scorers and scoring.

Each test writes small scorer modules into its own tmp_path under module
names unique to the test; the fixture restores ``sys.path`` and drops those
modules from ``sys.modules`` afterwards.
"""

from __future__ import annotations

import fractions
import importlib
import itertools
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from adaptergate.errors import ExitCode, InvalidInputError, ScorerError, exit_code_for
from adaptergate.scoring.scorers import Scorer, load_scorer, score_all

ADAPTER = "cand"


class Scorers:
    """Writes scorer modules under unique names and loads them."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.root = root
        self.prefix = prefix
        self._n = itertools.count()

    def write(self, source: str, name: str | None = None) -> str:
        name = name or f"{self.prefix}_{next(self._n)}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()
        return name

    def load(self, source: str, func: str = "score") -> tuple[Scorer, object]:
        name = self.write(source)
        scorer = load_scorer(f"{name}:{func}", search_path=self.root)
        return scorer, sys.modules[name]


@pytest.fixture
def scorers(tmp_path, monkeypatch, request):
    monkeypatch.setattr(sys, "path", list(sys.path))
    prefix = "agsc_" + re.sub(r"\W", "_", request.node.name)
    yield Scorers(tmp_path, prefix)
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]
    sys.path_importer_cache.pop(str(tmp_path), None)


def queries(n: int) -> tuple[list[dict], list[str]]:
    payloads = [{"id": f"q{i}", "prompt": f"p{i}", "gold": i % 3} for i in range(n)]
    return payloads, [p["id"] for p in payloads]


# A deterministic score shared by the per-query and batch forms.
SHARED = """
CALLS = []
BATCH_CALLS = []

def _value(adapter_id, query):
    return ((len(adapter_id) * 7 + query["gold"] * 13 + int(query["id"][1:])) % 11) / 10
"""

PER_QUERY = SHARED + """
def score(adapter_id, query):
    CALLS.append((adapter_id, query["id"]))
    return _value(adapter_id, query)
"""

BATCH_MODULE = PER_QUERY + """
def score_batch(adapter_id, queries):
    BATCH_CALLS.append((adapter_id, len(queries)))
    return [_value(adapter_id, q) for q in queries]
"""

BATCH_ATTRIBUTE = PER_QUERY + """
def _many(adapter_id, queries):
    BATCH_CALLS.append((adapter_id, len(queries)))
    return [_value(adapter_id, q) for q in queries]

score.batch = _many
"""


# ----------------------------------------------------------- batch vs single


def test_batch_form_used_once_per_adapter_and_matches_per_query(scorers):
    payloads, ids = queries(25)
    single, single_mod = scorers.load(PER_QUERY)
    batch, batch_mod = scorers.load(BATCH_MODULE)
    attr, attr_mod = scorers.load(BATCH_ATTRIBUTE)
    assert single.mode == "per-query" and single.batch is None
    assert batch.mode == "batch" and attr.mode == "batch"

    for adapter in ("base", "cand-v2"):
        a = score_all(single, adapter, payloads, ids)
        b = score_all(batch, adapter, payloads, ids)
        c = score_all(attr, adapter, payloads, ids)
        assert a.dtype == b.dtype == c.dtype == np.float64
        assert a.shape == (25,)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)

    assert batch_mod.BATCH_CALLS == [("base", 25), ("cand-v2", 25)]
    assert attr_mod.BATCH_CALLS == [("base", 25), ("cand-v2", 25)]
    assert batch_mod.CALLS == [] and attr_mod.CALLS == []  # per-query form never called
    assert single_mod.CALLS == [(ad, i) for ad in ("base", "cand-v2") for i in ids]


def test_non_callable_batch_names_fall_back_to_per_query(scorers):
    scorer, mod = scorers.load(PER_QUERY + "\nscore_batch = None\nscore.batch = 'yes'\n")
    assert scorer.mode == "per-query"
    payloads, ids = queries(3)
    score_all(scorer, ADAPTER, payloads, ids)
    assert len(mod.CALLS) == 3


def test_other_function_name_uses_its_own_batch(scorers):
    src = PER_QUERY + """
def judge(adapter_id, query):
    return 0.0

def judge_batch(adapter_id, queries):
    BATCH_CALLS.append(adapter_id)
    return [1.0] * len(queries)
"""
    name = scorers.write(src)
    s = load_scorer(f"{name}:judge", search_path=scorers.root)
    assert s.mode == "batch"
    payloads, ids = queries(4)
    assert score_all(s, ADAPTER, payloads, ids).tolist() == [1.0] * 4
    s2 = load_scorer(f"  {name}:score  ", search_path=scorers.root)  # spec is stripped
    assert s2.mode == "per-query" and s2.spec == f"{name}:score"


# ------------------------------------------------------------ return values

VALUE_MODULE = """
VALUES = {}

def score(adapter_id, query):
    return VALUES.get(query["id"], 0.5)
"""

RESULT_MODULE = """
RESULT = None

def score(adapter_id, query):
    raise AssertionError("the batch form must be used")

def score_batch(adapter_id, queries):
    return RESULT() if callable(RESULT) else RESULT
"""


@pytest.mark.parametrize(
    "value,expected",
    [
        (True, 1.0),
        (False, 0.0),
        (1, 1.0),
        (0, 0.0),
        (0.25, 0.25),
        (np.float64(0.25), 0.25),
        (np.float32(0.5), 0.5),
        (np.float16(0.5), 0.5),
        (np.int64(1), 1.0),
        (np.uint8(0), 0.0),
        (np.bool_(True), 1.0),
        (np.array(0.75), 0.75),
        (np.array(1), 1.0),
        (fractions.Fraction(1, 4), 0.25),
    ],
    ids=repr,
)
def test_per_query_accepted_returns(scorers, value, expected):
    scorer, mod = scorers.load(VALUE_MODULE)
    mod.VALUES["q1"] = value
    payloads, ids = queries(3)
    out = score_all(scorer, ADAPTER, payloads, ids)
    assert out.dtype == np.float64
    assert out.tolist() == [0.5, expected, 0.5]


@pytest.mark.parametrize(
    "result,expected",
    [
        ([True, 0, 0.5], [1.0, 0.0, 0.5]),
        ((1, 0.25, False), [1.0, 0.25, 0.0]),
        (np.array([0.5, 0.25, 1.0], dtype=np.float32), [0.5, 0.25, 1.0]),
        (np.array([1, 0, 1]), [1.0, 0.0, 1.0]),
        (np.array([True, False, True]), [1.0, 0.0, 1.0]),
        ([np.float64(0.1), np.int32(1), np.bool_(False)], [0.1, 1.0, 0.0]),
        (lambda: (v for v in [0.0, 0.5, 1.0]), [0.0, 0.5, 1.0]),
    ],
    ids=["list", "tuple", "f32-array", "int-array", "bool-array", "numpy-scalars", "generator"],
)
def test_batch_accepted_returns(scorers, result, expected):
    scorer, mod = scorers.load(RESULT_MODULE)
    mod.RESULT = result
    payloads, ids = queries(3)
    out = score_all(scorer, ADAPTER, payloads, ids)
    assert out.dtype == np.float64
    assert out.tolist() == pytest.approx(expected)


BAD_VALUES = [
    (float("nan"), "NaN"),
    (np.float64("nan"), "NaN"),
    (float("inf"), "infinite"),
    (float("-inf"), "infinite"),
    (-0.1, "outside [0, 1]"),
    (1.5, "outside [0, 1]"),
    (np.float32(1.5), "outside [0, 1]"),
    (2, "outside [0, 1]"),
    ("0.5", "not a number"),
    (None, "not a number"),
    ([0.5], "not a number"),
    ({"score": 0.5}, "not a number"),
    (complex(0.5, 0), "not a number"),
    (np.array([0.5]), "not a number"),
]


def _assert_names_query_and_adapter(err: ScorerError, needle: str) -> None:
    msg = str(err)
    assert needle in msg, msg
    assert "'q1'" in msg and f"'{ADAPTER}'" in msg, msg
    assert "q0" not in msg and "q2" not in msg
    assert "\n" not in msg
    assert exit_code_for(err) == ExitCode.EVALUATION_FAILED == 3


@pytest.mark.parametrize("value,needle", BAD_VALUES, ids=repr)
def test_per_query_bad_values_rejected(scorers, value, needle):
    scorer, mod = scorers.load(VALUE_MODULE)
    mod.VALUES["q1"] = value
    payloads, ids = queries(3)
    with pytest.raises(ScorerError) as ei:
        score_all(scorer, ADAPTER, payloads, ids)
    _assert_names_query_and_adapter(ei.value, needle)


@pytest.mark.parametrize("value,needle", BAD_VALUES, ids=repr)
def test_batch_bad_values_rejected(scorers, value, needle):
    scorer, mod = scorers.load(RESULT_MODULE)
    mod.RESULT = [0.5, value, 0.5]
    payloads, ids = queries(3)
    with pytest.raises(ScorerError) as ei:
        score_all(scorer, ADAPTER, payloads, ids)
    _assert_names_query_and_adapter(ei.value, needle)


def test_batch_bad_value_in_numpy_array_names_first_and_counts_rest(scorers):
    scorer, mod = scorers.load(RESULT_MODULE)
    mod.RESULT = np.array([0.5, np.nan, 1.5, -1.0])
    payloads, ids = queries(4)
    with pytest.raises(ScorerError) as ei:
        score_all(scorer, ADAPTER, payloads, ids)
    msg = str(ei.value)
    assert "NaN" in msg and "'q1'" in msg and f"'{ADAPTER}'" in msg
    assert "2 more such values" in msg


@pytest.mark.parametrize(
    "result",
    [
        [0.5, 0.5],
        [0.5] * 4,
        [],
        np.zeros(2),
        np.zeros(4),
        np.zeros((3, 1)),
        0.5,
        None,
    ],
    ids=["short", "long", "empty", "short-array", "long-array", "2d-array", "scalar", "none"],
)
def test_batch_wrong_length_or_shape_rejected(scorers, result):
    scorer, mod = scorers.load(RESULT_MODULE)
    mod.RESULT = result
    payloads, ids = queries(3)
    with pytest.raises(ScorerError) as ei:
        score_all(scorer, ADAPTER, payloads, ids)
    assert exit_code_for(ei.value) == 3
    assert "\n" not in str(ei.value)


def test_batch_wrong_length_message_counts(scorers):
    scorer, mod = scorers.load(RESULT_MODULE)
    mod.RESULT = [0.5, 0.5]
    payloads, ids = queries(3)
    with pytest.raises(ScorerError, match=r"returned 2 scores for 3 queries") as ei:
        score_all(scorer, ADAPTER, payloads, ids)
    assert f"'{ADAPTER}'" in str(ei.value)


def test_empty_holdout_scores_to_empty_vector(scorers):
    single, _ = scorers.load(VALUE_MODULE)
    batch, mod = scorers.load(RESULT_MODULE)
    mod.RESULT = []
    for s in (single, batch):
        out = score_all(s, ADAPTER, [], [])
        assert out.shape == (0,) and out.dtype == np.float64


# ------------------------------------------------------------ scorer raising

RAISING = """
def _lookup(query):
    raise ValueError("gold is missing\\nsecond line of detail")

def score(adapter_id, query):
    if query["id"] == "q1":
        _lookup(query)
    return 1.0
"""


def test_scorer_raising_gives_one_line_error_with_traceback(scorers):
    scorer, _ = scorers.load(RAISING)
    payloads, ids = queries(3)
    with pytest.raises(ScorerError) as ei:
        score_all(scorer, ADAPTER, payloads, ids)
    err = ei.value
    msg = str(err)
    assert "\n" not in msg
    assert "ValueError: gold is missing" in msg
    assert "second line" not in msg
    assert "'q1'" in msg and f"'{ADAPTER}'" in msg and scorer.spec in msg
    tb = err.traceback_text
    assert tb is not None
    assert tb.startswith("Traceback (most recent call last)")
    assert "_lookup" in tb and "second line of detail" in tb
    assert scorer.spec.split(":")[0] + ".py" in tb
    assert isinstance(err.__cause__, ValueError)
    assert exit_code_for(err) == 3


def test_batch_scorer_raising(scorers):
    src = """
def score(adapter_id, query):
    return 1.0

def score_batch(adapter_id, queries):
    return {}["no such key"]
"""
    scorer, _ = scorers.load(src)
    payloads, ids = queries(3)
    with pytest.raises(ScorerError) as ei:
        score_all(scorer, ADAPTER, payloads, ids)
    msg = str(ei.value)
    assert "KeyError" in msg and f"'{ADAPTER}'" in msg and "score_batch" in msg
    assert "\n" not in msg
    assert "Traceback" in ei.value.traceback_text and "no such key" in ei.value.traceback_text


def test_keyboard_interrupt_is_not_swallowed(scorers):
    scorer, _ = scorers.load("def score(a, q):\n    raise KeyboardInterrupt\n")
    payloads, ids = queries(2)
    with pytest.raises(KeyboardInterrupt):
        score_all(scorer, ADAPTER, payloads, ids)


# ----------------------------------------------------------- import failures


@pytest.mark.parametrize(
    "spec", ["nocolon", "a:", ":b", "a:b:c", "1mod:f", "", "   ", "mod:1f", "my-mod:f", "mod:f.g",
             "a b:f"],
)
def test_bad_spec_formats_are_invalid_input(scorers, spec):
    with pytest.raises(InvalidInputError, match="module:function") as ei:
        load_scorer(spec, search_path=scorers.root)
    assert exit_code_for(ei.value) == ExitCode.INVALID_INPUT == 2


def test_missing_module_is_invalid_input(scorers):
    for spec in (f"{scorers.prefix}_absent:score", f"{scorers.prefix}_nopkg.sub:score"):
        with pytest.raises(InvalidInputError, match="cannot import scorer module") as ei:
            load_scorer(spec, search_path=scorers.root)
        assert exit_code_for(ei.value) == 2
        assert str(scorers.root) in str(ei.value)


def test_missing_attribute_is_invalid_input(scorers):
    name = scorers.write("def other(a, q):\n    return 1.0\n")
    with pytest.raises(InvalidInputError, match="has no attribute 'score'") as ei:
        load_scorer(f"{name}:score", search_path=scorers.root)
    assert exit_code_for(ei.value) == 2


def test_non_callable_is_invalid_input(scorers):
    name = scorers.write("score = 0.5\n")
    with pytest.raises(InvalidInputError, match="not callable") as ei:
        load_scorer(f"{name}:score", search_path=scorers.root)
    assert exit_code_for(ei.value) == 2


@pytest.mark.parametrize(
    "source,needles",
    [
        ("raise RuntimeError('boom at import time')\n", ["RuntimeError", "boom at import time"]),
        ("def score(a, q:\n    return 1\n", ["SyntaxError"]),
        ("import agsc_dependency_that_is_not_installed_xyz\n\ndef score(a, q):\n    return 1.0\n",
         ["ModuleNotFoundError", "agsc_dependency_that_is_not_installed_xyz"]),
        ("from os import no_such_name_here\n", ["ImportError", "no_such_name_here"]),
        ("x = 1 / 0\n", ["ZeroDivisionError"]),
    ],
    ids=["raises", "syntax-error", "missing-dependency", "bad-from-import", "zero-division"],
)
def test_module_failing_at_import_is_scorer_error(scorers, source, needles):
    name = scorers.write(source)
    with pytest.raises(ScorerError) as ei:
        load_scorer(f"{name}:score", search_path=scorers.root)
    err = ei.value
    msg = str(err)
    assert "failed to import" in msg and repr(name) in msg
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg
    assert err.traceback_text and needles[0] in err.traceback_text
    assert exit_code_for(err) == ExitCode.EVALUATION_FAILED == 3
    assert name not in sys.modules


def test_scorer_is_found_on_search_path(scorers, tmp_path):
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    name = f"{scorers.prefix}_sub"
    (sub / f"{name}.py").write_text("def score(a, q):\n    return 1\n")
    importlib.invalidate_caches()
    with pytest.raises(InvalidInputError):
        load_scorer(f"{name}:score", search_path=tmp_path)
    scorer = load_scorer(f"{name}:score", search_path=sub)
    assert score_all(scorer, ADAPTER, *queries(2)).tolist() == [1.0, 1.0]


# ----------------------------------------------------------------- progress


@pytest.mark.parametrize("n", [0, 1, 7, 99, 100, 101, 250, 350, 1001])
def test_progress_total_equals_number_of_queries(scorers, n):
    single, _ = scorers.load(PER_QUERY)
    batch, _ = scorers.load(BATCH_MODULE)
    payloads, ids = queries(n)
    for s in (single, batch):
        ticks: list[int] = []
        score_all(s, ADAPTER, payloads, ids, progress=ticks.append)
        assert sum(ticks) == n, (s.mode, ticks)
        assert all(t >= 0 for t in ticks)
        if s.mode == "per-query":
            assert len(ticks) <= 200  # throttled: at most ~1% steps, not one per query


def test_per_query_errors_come_in_query_order_and_progress_in_one_percent_steps():
    """The per-query loop runs at C speed a 1% chunk at a time: a bad value before a raising
    query in the same chunk is still the error reported, and progress ticks every chunk."""
    payloads = [{"id": f"q{i}"} for i in range(300)]  # chunks of 3
    ids = [p["id"] for p in payloads]
    calls: list[str] = []

    def score(adapter_id, query):
        calls.append(query["id"])
        if query["id"] == "q4":
            return "0.5"
        if query["id"] == "q5":
            raise ValueError("boom")
        return 0.25

    with pytest.raises(ScorerError, match=r"returned a str \('0.5'\), not a number for query 'q4'"):
        score_all(Scorer("m:score", score), ADAPTER, payloads, ids)
    assert calls == ["q0", "q1", "q2", "q3", "q4", "q5"]  # never past the chunk of the failure

    def raising(adapter_id, query):
        if query["id"] == "q7":
            raise KeyError("u")
        return 1

    with pytest.raises(ScorerError, match=r"raised KeyError: 'u' on query 'q7'") as ei:
        score_all(Scorer("m:raising", raising), ADAPTER, payloads, ids)
    assert "KeyError" in ei.value.traceback_text and "raising" in ei.value.traceback_text
    ticks: list[int] = []
    mixed = [0.5, 1, True, np.float32(0.25), fractions.Fraction(1, 3)]
    got = score_all(Scorer("m:mixed", lambda a, q: mixed[int(q["id"][1:]) % 5]), ADAPTER, payloads, ids,
                    progress=ticks.append)
    assert ticks == [3] * 100
    assert got[:5].tolist() == [0.5, 1.0, 1.0, 0.25, float(fractions.Fraction(1, 3))]
