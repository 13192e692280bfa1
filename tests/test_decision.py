"""The decision core: 0.5.4's threshold rule, driver choice, overlap, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergate.decide.rules import build_slice_index, decide_threshold, excess_drop, ordered_mean
from adaptergate.models import GateConfig


def _decide(b, c, slices=None, **cfg):
    b = np.asarray(b, dtype=float)
    c = np.asarray(c, dtype=float)
    index = build_slice_index(slices if slices is not None else [()] * len(b))
    return index, decide_threshold(b, c, index, GateConfig(**cfg))


def test_aggregate_rule_boundary_is_inclusive():
    # 49/50 passes vs 50/50: Δ = 0.98 - 1.0, just beyond -0.02 in floating point,
    # exactly as 0.5.4 computes it.
    b = [1.0] * 50
    c = [1.0] * 49 + [0.0]
    _, core = _decide(b, c, epsilon=0.02)
    assert core.delta == 0.98 - 1.0
    assert core.accepted is (0.98 - 1.0 >= -0.02)
    _, core = _decide(b, c, epsilon=0.021)
    assert core.accepted


def test_ordered_mean_accumulates_left_to_right():
    vals = np.array([0.1] * 10 + [1e16, -1e16])
    total = 0.0
    for v in vals:
        total += v
    assert ordered_mean(vals) == total / vals.size


def test_strict_mode_with_continuous_pass_threshold():
    b = [0.9, 0.8, 0.95] + [0.5] * 20
    c = [0.9, 0.8, 0.65] + [0.5] * 20
    _, core = _decide(b, c, epsilon=0.5, strict=True, pass_threshold=0.7)
    assert list(core.strict_violations) == [2]
    assert not core.accepted
    # 0.5.4's rule (threshold 1.0): nothing scored 1.0 on the baseline -> no violation.
    _, core = _decide(b, c, epsilon=0.5, strict=True)
    assert core.strict_violations.size == 0 and core.accepted


def test_slice_min_size_blocks_tiny_slices():
    n = 40
    b = [1.0] * n
    c = [1.0] * n
    c[0] = 0.0
    slices = [("intent=tiny",) if i == 0 else ("intent=big",) for i in range(n)]
    index, core = _decide(b, c, slices, epsilon=0.5, slice_epsilon=0.1, slice_min_size=3)
    tiny = index.tags.index("intent=tiny")
    assert core.stats.delta[tiny] == -1.0
    assert not core.stats.eligible[tiny] and not core.stats.violates[tiny]
    assert core.accepted
    # ... and a 1-query slice is never the driver, however bad its mean.
    assert core.driver is None


def _refund_inside_english(n=300, broken=10):
    """intent=refund (10 queries, all broken) sits inside lang=en (250 queries)."""
    b = np.ones(n)
    c = np.ones(n)
    slices = []
    for i in range(n):
        tags = ["lang=en" if i < 250 else "lang=es"]
        if i < broken:
            tags.append("intent=refund")
            c[i] = 0.0
        else:
            tags.append(f"intent=other{i % 5}")
        slices.append(tuple(tags))
    # some noise elsewhere in English so lang=en's net drop exceeds refund's
    for i in range(20, 30):
        c[i] = 0.0
    for i in range(260, 268):
        c[i] = 0.0
    return b, c, slices


def test_driver_is_the_broken_slice_not_the_big_one_containing_it():
    b, c, slices = _refund_inside_english()
    index, core = _decide(b, c, slices, epsilon=0.5, slice_epsilon=0.5)
    en, refund = index.tags.index("lang=en"), index.tags.index("intent=refund")
    # lang=en loses more score in total than intent=refund ...
    assert -core.stats.contribution[en] > -core.stats.contribution[refund]
    # ... but refund carries far more than its size share of the drop.
    assert index.tags[core.driver] == "intent=refund"
    ex = excess_drop(core.stats, index.n_queries, core.delta)
    assert ex[refund] == ex.max()


def test_overlap_explained_by_driver():
    n = 100
    b = np.ones(n)
    c = np.ones(n)
    slices = []
    for i in range(n):
        tags = ["lang=de" if i < 30 else "lang=en"]
        tags.append("intent=refund" if i < 10 else "intent=status")
        slices.append(tuple(tags))
        if i < 10:
            c[i] = 0.0
    index, core = _decide(b, c, slices, epsilon=0.5)
    assert index.tags[core.driver] == "intent=refund"
    de = index.tags.index("lang=de")
    assert core.stats.delta[de] < 0
    assert core.overlap.explained[de]  # lang=de's drop is all refund queries
    assert core.overlap.n_outside[de] == 20 and core.overlap.delta_outside[de] == 0.0
    # German status queries break too: now lang=de is the better explanation
    # (20 of its 30 queries broke) and refund, wholly inside it, is explained.
    c2 = c.copy()
    c2[15:25] = 0.0
    index, core = _decide(b, c2, slices, epsilon=0.9)
    assert index.tags[core.driver] == "lang=de"
    assert core.overlap.explained[index.tags.index("intent=refund")]
    # intent=status has an independent drop outside German queries? No: all its
    # broken queries are German too, so it is explained as well.
    assert core.overlap.explained[index.tags.index("intent=status")]
    c3 = c2.copy()
    c3[50:60] = 0.0  # English status queries break: status is no longer explained
    index, core = _decide(b, c3, slices, epsilon=0.9, slice_epsilon=0.1)
    status = index.tags.index("intent=status")
    assert index.tags[core.driver] != "intent=status"
    assert not core.overlap.explained[status] and core.overlap.delta_outside[status] < 0


def test_driver_tie_break_is_deterministic():
    n = 40
    b = np.ones(n)
    c = np.ones(n)
    c[0:5] = 0.0
    c[5:10] = 0.0
    slices = [("k=b",) if i < 5 else ("k=a",) if i < 10 else ("k=c",) for i in range(n)]
    index, core = _decide(b, c, slices, epsilon=0.9)
    assert index.tags[core.driver] == "k=a"
    # the same data in another order of first appearance gives the same driver
    order = list(range(5, 10)) + list(range(0, 5)) + list(range(10, n))
    index2, core2 = _decide(b[order], c[order], [slices[i] for i in order], epsilon=0.9)
    assert index2.tags[core2.driver] == "k=a"


def test_slice_order_most_regressed_first_ties_by_name():
    b = np.ones(6)
    c = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    slices = [("z=1",), ("z=1",), ("a=1",), ("a=1",), ("m=1",), ("m=1",)]
    index, core = _decide(b, c, slices, epsilon=1.0, min_holdout_size=1)
    assert [index.tags[i] for i in core.stats.order] == ["a=1", "z=1", "m=1"]


# ------------------------------------------------------------ invariants

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
TAGS = ["intent=a", "intent=b", "lang=en", "lang=de", "difficulty=hard"]


@st.composite
def holdouts(draw, min_size=1, max_size=60):
    n = draw(st.integers(min_size, max_size))
    b = draw(st.lists(scores, min_size=n, max_size=n))
    c = draw(st.lists(scores, min_size=n, max_size=n))
    slices = draw(st.lists(st.lists(st.sampled_from(TAGS), max_size=3, unique=True).map(tuple), min_size=n, max_size=n))
    return np.array(b), np.array(c), slices


configs = st.builds(
    GateConfig,
    epsilon=st.sampled_from([0.0, 0.02, 0.1]),
    slice_epsilon=st.sampled_from([None, 0.0, 0.1]),
    slice_min_size=st.integers(1, 5),
    strict=st.booleans(),
    pass_threshold=st.sampled_from([0.5, 1.0]),
)


@settings(max_examples=150, deadline=None)
@given(holdouts(), configs)
def test_identical_adapters_never_reject(h, config):
    b, _, slices = h
    index = build_slice_index(slices)
    core = decide_threshold(b, b.copy(), index, config)
    assert core.accepted and core.driver is None and core.delta == 0.0


@settings(max_examples=150, deadline=None)
@given(holdouts(), configs, st.lists(st.sampled_from(TAGS), max_size=3, unique=True))
def test_adding_a_regressed_query_never_turns_reject_into_accept(h, config, tags):
    b, c, slices = h
    index = build_slice_index(slices)
    before = decide_threshold(b, c, index, config)
    b2 = np.append(b, 1.0)
    c2 = np.append(c, 0.0)
    slices2 = slices + [tuple(tags)]
    after = decide_threshold(b2, c2, build_slice_index(slices2), config)
    if not before.accepted:
        assert not after.accepted


@settings(max_examples=100, deadline=None)
@given(holdouts())
def test_slice_sums_match_a_plain_loop(h):
    b, c, slices = h
    index = build_slice_index(slices)
    core = decide_threshold(b, c, index, GateConfig(epsilon=1.0))
    for ti, tag in enumerate(index.tags):
        rows = [i for i, s in enumerate(slices) if tag in s]
        mb = sum(b[i] for i in rows) / len(rows)
        mc = sum(c[i] for i in rows) / len(rows)
        assert core.stats.n[ti] == len(rows)
        assert core.stats.delta[ti] == pytest.approx(mc - mb, abs=1e-12)
        assert core.stats.n_regressed[ti] == sum(1 for i in rows if c[i] - b[i] < 0)


def test_mismatched_arrays_are_a_programming_error():
    index = build_slice_index([()] * 3)
    with pytest.raises(ValueError):
        decide_threshold(np.ones(3), np.ones(2), index, GateConfig())
