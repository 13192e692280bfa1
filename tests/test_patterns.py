"""Tests of :mod:`adaptergate.decide.patterns` (failure patterns contrasted with passing queries)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptergate.models import FailurePattern
from adaptergate.decide.patterns import STOPWORDS, _pct, find_failure_pattern, query_text

REPO = Path(__file__).resolve().parents[1]


def _toks(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _contains(text: str | None, ngram: str) -> bool:
    """Independent recount: does ``ngram`` occur as a contiguous token run of ``text``?"""
    if not text or not text.strip():
        return False
    want = ngram.split(" ")
    have = _toks(text)
    return any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1))


def _ngrams(p: FailurePattern | None) -> list[str]:
    return [] if p is None else [t.ngram for t in p.terms]


# --- query_text --------------------------------------------------------------


def test_query_text_key_order_and_blank_skipping() -> None:
    assert query_text({"query": "q", "text": "t", "question": "qq", "prompt": "p"}) == "p"
    assert query_text({"query": "q", "text": "t", "question": "qq"}) == "qq"
    assert query_text({"query": "q", "text": "t"}) == "t"
    assert query_text({"query": "q"}) == "q"
    assert query_text({"prompt": "   ", "question": 7, "text": None, "query": "last"}) == "last"
    assert query_text({"prompt": "", "id": 3}) is None
    assert query_text({}) is None


# --- contrast ----------------------------------------------------------------


def test_word_in_every_query_is_not_the_pattern() -> None:
    failing = [f"invoice {i} refund status" for i in range(10, 20)]
    passing = [f"invoice download pdf {i}" for i in range(40)]
    p = find_failure_pattern(failing, passing)
    assert p is not None
    assert "invoice" not in _ngrams(p)
    assert _ngrams(p) == ["refund status"]
    t = p.terms[0]
    assert (t.n_failing, t.failing_total, t.n_passing, t.passing_total) == (10, 10, 0, 40)


def test_only_shared_word_gives_no_pattern() -> None:
    failing = [f"invoice for customer{i}" for i in range(5)]
    passing = [f"invoice for client{i}" for i in range(5)]
    assert find_failure_pattern(failing, passing) is None


def test_phrase_only_in_failing_reported_with_exact_counts() -> None:
    failing = [
        "cancel my subscription order_id 1",
        "please cancel subscription order_id now",
        "cancel subscription order_id",
        "order_id status",
        "where is the parcel",
    ]
    passing = ["where is the parcel", "track my parcel", "order_id lookup"] + ["hello"] * 7
    p = find_failure_pattern(failing, passing)
    assert p is not None
    by = {t.ngram: t for t in p.terms}
    assert "cancel subscription order_id" not in by  # only 2 failing texts: below 50%
    assert by["order_id"].n_failing == 4 and by["order_id"].n_passing == 1
    # "subscription order_id" (3/5, none passing) would win its tie with "cancel" on
    # length, but it overlaps the already selected "order_id".
    assert _ngrams(p) == ["order_id", "cancel", "subscription"]
    assert [(t.n_failing, t.failing_total, t.n_passing, t.passing_total) for t in p.terms] == [
        (4, 5, 1, 10),
        (3, 5, 0, 10),
        (3, 5, 0, 10),
    ]
    assert p.failing_total == 5 and p.passing_total == 10 and p.passing_sampled_from is None


def test_summary_exact_for_fixed_case() -> None:
    failing = [
        "refund status for order_id",
        "refund status please",
        "check refund status",
        "refund order_id today",
    ]
    passing = (
        ["refund policy"] * 120
        + ["refund status"]
        + ["status update"]
        + ["password reset help"] * 78
    )
    p = find_failure_pattern(failing, passing)
    assert p is not None
    # "refund" is in 4/4 failing but also in 121/200 passing: not a contrast.
    assert _ngrams(p) == ["refund status", "order_id"]
    assert p.summary == (
        '"refund status" in 3/4 failing vs <1% of passing queries; '
        '"order_id" in 2/4 failing vs 0% of passing queries'
    )


def test_summary_rounded_percent_and_thousands() -> None:
    failing = ["reset token expired"] * 1200 + ["login page"] * 800
    passing = ["reset token expired"] * 124 + ["other words"] * 876
    p = find_failure_pattern(failing, passing, max_terms=1)
    assert p is not None
    assert p.summary == '"reset token expired" in 1,200/2,000 failing vs 12% of passing queries'


def test_partial_coverage_never_claims_all() -> None:
    failing = ["refund order_id"] * 6 + ["refund"] * 4
    passing = ["shipping time"] * 10
    p = find_failure_pattern(failing, passing)
    assert p is not None
    by = {t.ngram: t for t in p.terms}
    assert by["refund"].n_failing == 10
    # "order_id" alone ties with "refund order_id" on contrast and count; the longer wins.
    assert "refund order_id" not in by or by["refund order_id"].n_failing == 6
    assert _ngrams(p) == ["refund", "order_id"]
    assert by["order_id"].n_failing == 6 and by["order_id"].failing_total == 10
    assert '"order_id" in 6/10 failing' in p.summary
    assert '"refund" in 10/10 failing' in p.summary
    assert "all" not in p.summary.lower().split()


def test_no_passing_queries() -> None:
    p = find_failure_pattern(["disk quota exceeded"] * 3, [None, "  "])
    assert p is not None
    assert p.passing_total == 0
    assert p.summary == '"disk quota exceeded" in 3/3 failing (no passing queries to compare)'


def test_margin_boundaries() -> None:
    base = ["zzz"] * 10
    # failing 6/10 vs passing 4/10: difference 0.2 < 0.25 -> dropped
    assert find_failure_pattern(["alpha"] * 6 + base[:4], ["alpha"] * 4 + base[:6]) is None
    # failing 10/10 vs passing 6/10: difference 0.4 but ratio < 2 -> dropped
    assert find_failure_pattern(["alpha"] * 10, ["alpha"] * 6 + base[:4]) is None
    # failing 5/10 vs passing 1/4: difference exactly 0.25, ratio exactly 2 -> kept
    p = find_failure_pattern(["alpha"] * 5 + ["beta"] * 5, ["alpha"] + ["gamma"] * 3)
    assert p is not None and _ngrams(p) == ["beta", "alpha"]
    assert p.terms[1].n_passing == 1 and p.terms[1].passing_total == 4


def test_coverage_threshold() -> None:
    failing = ["timeout error"] * 4 + [f"misc{i}" for i in range(6)]
    assert find_failure_pattern(failing, ["ok"]) is None
    p = find_failure_pattern(failing, ["ok"], min_coverage=0.4)
    assert p is not None and _ngrams(p) == ["timeout error"]
    # 0.3 * 10 is 3.0000000000000004 in floats: the threshold must still be 3
    p3 = find_failure_pattern(["aa"] * 3 + ["bb"] * 7, ["cc"], min_coverage=0.3, max_terms=3)
    assert p3 is not None and "aa" in _ngrams(p3)
    # min_failing wins over a small coverage
    assert find_failure_pattern(["aa"] * 2 + ["bb"] * 8, [], min_coverage=0.1, min_failing=3) == (
        find_failure_pattern(["bb"] * 8 + ["aa"] * 2, [], min_coverage=0.1, min_failing=3)
    )
    assert "aa" not in _ngrams(
        find_failure_pattern(["aa"] * 2 + ["bb"] * 8, [], min_coverage=0.1, min_failing=3)
    )


def test_too_few_failing_texts() -> None:
    assert find_failure_pattern(["refund now", "refund now", None, ""], []) is None
    assert find_failure_pattern(["refund now"] * 3, []) is not None


def test_stopwords_and_single_chars_excluded() -> None:
    failing = ["what is the status of x"] * 5
    p = find_failure_pattern(failing, ["hello"] * 5)
    assert p is not None
    assert _ngrams(p) == ["status"]
    for gram in _ngrams(find_failure_pattern(["the refund of my order"] * 4, [])):
        words = gram.split()
        assert words[0] not in STOPWORDS and words[-1] not in STOPWORDS
    # a stopword may sit inside a trigram
    assert _ngrams(find_failure_pattern(["refund of order"] * 4, [])) == ["refund of order"]


def test_ties_resolved_by_string() -> None:
    failing = ["alpha beta gamma delta", "delta gamma beta alpha", "beta delta alpha gamma"]
    p = find_failure_pattern(failing, ["epsilon"])
    assert _ngrams(p) == ["alpha", "beta", "delta"]


def test_max_terms_and_validation() -> None:
    failing = ["alpha beta gamma delta", "delta gamma beta alpha", "beta delta alpha gamma"]
    assert _ngrams(find_failure_pattern(failing, [], max_terms=1)) == ["alpha"]
    for kwargs in (
        {"max_terms": 0},
        {"min_failing": 0},
        {"min_coverage": 1.5},
        {"min_coverage": float("nan")},
        {"max_passing": 0},
    ):
        with pytest.raises(ValueError):
            find_failure_pattern(failing, [], **kwargs)


def test_pct_formatting() -> None:
    assert _pct(0, 10) == "0%"
    assert _pct(0, 0) == "0%"
    assert _pct(1, 101) == "<1%"
    assert _pct(1, 100) == "1%"
    assert _pct(1, 8) == "13%"  # 12.5 rounds half up
    assert _pct(3, 40) == "8%"  # 7.5
    assert _pct(999, 1000) == ">99%"
    assert _pct(5, 5) == "100%"


# --- sampling ----------------------------------------------------------------


def test_sampling_sets_sampled_from_and_says_so() -> None:
    failing = ["gpu oom error"] * 5
    passing = [f"query number {i}" for i in range(990)] + ["gpu oom error"] * 10
    p = find_failure_pattern(failing, passing, max_passing=100)
    assert p is not None
    assert p.passing_sampled_from == 1000
    assert p.passing_total == 100
    assert all(t.passing_total == 100 for t in p.terms)
    assert p.summary.endswith("(passing rates from a sample of 100 of 1,000)")
    # the sample is order independent
    q = find_failure_pattern(failing, list(reversed(passing)), max_passing=100)
    assert q == p
    # not sampled when at or under the limit
    r = find_failure_pattern(failing, passing, max_passing=1000)
    assert r is not None and r.passing_sampled_from is None and "sample" not in r.summary
    assert r.terms[0].n_passing == 10 and r.passing_total == 1000


def test_blank_passing_texts_ignored_in_totals() -> None:
    p = find_failure_pattern(["gpu oom"] * 3, ["ok", None, "", "   ", "fine"])
    assert p is not None and p.passing_total == 2


# --- determinism -------------------------------------------------------------

_SCRIPT = """
from adaptergate.decide.patterns import find_failure_pattern
failing = ["alpha beta gamma delta", "delta gamma beta alpha", "beta delta alpha gamma",
           "omega zeta", "zeta omega alpha"]
passing = ["beta gamma x", "gamma delta y", "zeta z", "omega w"] * 3
for kw in ({}, {"max_terms": 5}, {"min_coverage": 0.3}):
    p = find_failure_pattern(failing, passing, **kw)
    print(p.model_dump_json() if p else None)
"""


def test_independent_of_pythonhashseed() -> None:
    outputs = []
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        res = subprocess.run(
            [sys.executable, "-c", _SCRIPT], env=env, cwd=REPO, capture_output=True,
            text=True, check=True, timeout=60,
        )
        outputs.append(res.stdout)
    assert "None" not in outputs[0].split("\n")[0]
    assert outputs[0] == outputs[1] == outputs[2]


# --- properties --------------------------------------------------------------

_VOCAB = ["refund", "order_id", "status", "the", "of", "my", "x", "cancel", "invoice", "gpu"]
_text = st.one_of(
    st.none(),
    st.just(""),
    st.lists(st.sampled_from(_VOCAB), min_size=1, max_size=6).map(" ".join),
    st.lists(st.sampled_from(_VOCAB), min_size=1, max_size=6).map(lambda w: "  ".join(w).upper()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    failing=st.lists(_text, min_size=0, max_size=14),
    passing=st.lists(_text, min_size=0, max_size=14),
    max_passing=st.sampled_from([3, 50_000]),
    data=st.data(),
)
def test_permutation_invariance(
    failing: list[str | None], passing: list[str | None], max_passing: int, data: st.DataObject
) -> None:
    p = find_failure_pattern(failing, passing, max_passing=max_passing)
    f2 = data.draw(st.permutations(failing))
    p2 = data.draw(st.permutations(passing))
    assert find_failure_pattern(f2, p2, max_passing=max_passing) == p


@settings(max_examples=80, deadline=None)
@given(
    failing=st.lists(_text, min_size=3, max_size=14),
    passing=st.lists(_text, min_size=0, max_size=14),
    min_coverage=st.sampled_from([0.3, 0.5, 0.8]),
)
def test_counts_consistent_with_independent_recount(
    failing: list[str | None], passing: list[str | None], min_coverage: float
) -> None:
    p = find_failure_pattern(failing, passing, min_coverage=min_coverage)
    fail_present = [t for t in failing if t and t.strip()]
    pass_present = [t for t in passing if t and t.strip()]
    if p is None:
        return
    assert p.failing_total == len(fail_present) >= 3
    assert p.passing_total == len(pass_present)
    assert 1 <= len(p.terms) <= 3
    need = max(2, math.ceil(round(min_coverage * len(fail_present), 9)))
    for t in p.terms:
        assert 0 < t.n_failing <= t.failing_total == p.failing_total
        assert 0 <= t.n_passing <= t.passing_total == p.passing_total
        assert t.n_failing == sum(_contains(x, t.ngram) for x in fail_present)
        assert t.n_passing == sum(_contains(x, t.ngram) for x in pass_present)
        assert t.n_failing >= need
        f_rate = t.n_failing / t.failing_total
        assert f_rate - t.passing_rate >= 0.25 - 1e-12 and f_rate >= 2 * t.passing_rate
        words = t.ngram.split(" ")
        assert 1 <= len(words) <= 3
        assert words[0] not in STOPWORDS and words[-1] not in STOPWORDS
        assert len(words[0]) > 1 and len(words[-1]) > 1
        assert f'"{t.ngram}" in {t.n_failing}/{t.failing_total} failing' in p.summary
    grams = _ngrams(p)
    assert len(set(grams)) == len(grams)
    for i, a in enumerate(grams):
        for b in grams[i + 1 :]:
            assert f" {a} " not in f" {b} " and f" {b} " not in f" {a} "
    if "all" in p.summary.lower().split():
        pytest.fail(f"summary claims 'all': {p.summary}")


# --- scale (no timing: speed is measured by bench/, never asserted) ---------


def test_large_passing_side_counts_exactly() -> None:
    words = [f"w{i}" for i in range(2000)] + ["refund", "order", "the", "my"]
    n = len(words)
    passing = [" ".join(words[(i * 7 + j * 131) % n] for j in range(12)) for i in range(100_000)]
    failing = [f"{passing[i]} refund for my order_id" for i in range(20)]
    p = find_failure_pattern(failing, passing, max_passing=200_000)
    assert p is not None and p.passing_total == 100_000 and p.passing_sampled_from is None
    assert "order_id" in _ngrams(p) or "refund" in " ".join(_ngrams(p))
