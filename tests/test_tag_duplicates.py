"""Tests for adaptergate.holdout.tags: near-linear duplicate-slice detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergate.models import DuplicateSlices
from adaptergate.holdout.tags import (
    REASON_BARE,
    REASON_CASE,
    duplicate_pairs,
    find_duplicate_slices,
    normalise_tag,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _sets(findings: list[DuplicateSlices]) -> set[frozenset[str]]:
    return {frozenset(f.tags) for f in findings}


def _flagged_together(findings: list[DuplicateSlices], a: str, b: str) -> bool:
    return any(a in f.tags and b in f.tags for f in findings)


def _systematic_family(n_keys: int = 50, n_values: int = 101) -> list[str]:
    return [f"k{k:02d}=value_{v:04d}" for k in range(n_keys) for v in range(n_values)]


# --- normalisation -------------------------------------------------------


def test_normalise_tag_case_separators_and_whitespace() -> None:
    assert normalise_tag("  Intent = Billing-Dispute ") == ("intent", "billing_dispute")
    assert normalise_tag("intent=billing.dispute") == ("intent", "billing_dispute")
    assert normalise_tag("intent=billing -_ dispute") == ("intent", "billing_dispute")
    assert normalise_tag("Billing_Dispute") == (None, "billing_dispute")
    assert normalise_tag("expr=a=b") == ("expr", "a=b")


# --- rule 1: same tag up to case/separators -------------------------------


def test_case_and_separator_variants_flagged() -> None:
    findings = find_duplicate_slices(["intent=billing-dispute", "intent=Billing_Dispute"])
    assert [(f.tags, f.reason) for f in findings] == [
        (["intent=Billing_Dispute", "intent=billing-dispute"], REASON_CASE)
    ]


def test_three_variants_form_one_finding() -> None:
    tags = ["intent=billing-dispute", "intent=Billing_Dispute", "INTENT=billing dispute"]
    findings = find_duplicate_slices(tags)
    assert len(findings) == 1
    assert findings[0].tags == sorted(tags)
    assert findings[0].reason == REASON_CASE


def test_distinct_tags_not_flagged_as_case_variants() -> None:
    assert find_duplicate_slices(["intent=billing_dispute", "intent=shipping_delay"]) == []


# --- rule 2: bare tag beside key=value ------------------------------------


def test_bare_beside_keyed_flagged() -> None:
    findings = find_duplicate_slices(["billing_dispute", "intent=billing_dispute"])
    assert [(f.tags, f.reason) for f in findings] == [
        (["billing_dispute", "intent=billing_dispute"], REASON_BARE)
    ]


def test_bare_beside_keyed_up_to_case() -> None:
    findings = find_duplicate_slices(["Billing-Dispute", "intent=billing_dispute"])
    assert _flagged_together(findings, "Billing-Dispute", "intent=billing_dispute")


def test_bare_tag_with_other_value_not_flagged() -> None:
    assert find_duplicate_slices(["billing_dispute", "intent=shipping_delay"]) == []


def test_bare_tag_as_substring_not_flagged() -> None:
    # 0.5.4 flagged any containment; only an equal value counts now.
    assert find_duplicate_slices(["refund", "intent=refund_request"]) == []


# --- rule 3: same value under two keys ------------------------------------


def test_same_value_under_two_keys_flagged() -> None:
    findings = find_duplicate_slices(["intent=refund_request", "topic=refund_request"])
    assert [(f.tags, f.reason) for f in findings] == [
        (["intent=refund_request", "topic=refund_request"], "same value under keys intent, topic")
    ]


def test_short_value_under_two_keys_not_flagged() -> None:
    assert find_duplicate_slices(["lang=en", "language=en"]) == []


@pytest.mark.parametrize("value", ["12345", "2024-01-31", "true", "Unknown", "medium", "default"])
def test_numeric_or_generic_value_under_two_keys_not_flagged(value: str) -> None:
    assert find_duplicate_slices([f"a={value}", f"b={value}"]) == []


def test_value_enumerated_by_a_key_does_not_count() -> None:
    tags = ["run=batch_01", "run=batch_02", "run=batch_03", "origin=batch_02"]
    assert find_duplicate_slices(tags) == []


# --- rule 4: likely typo within one key -----------------------------------


@pytest.mark.parametrize(
    "other",
    [
        "intent=refund_requst",  # deletion
        "intent=refund_requests",  # insertion
        "intent=refund_rexuest",  # substitution
        "intent=refund_reqeust",  # adjacent transposition
        "intent=refundrequest",  # dropped separator
    ],
)
def test_typo_within_key_flagged(other: str) -> None:
    findings = find_duplicate_slices(["intent=refund_request", other])
    assert len(findings) == 1
    assert findings[0].tags == sorted(["intent=refund_request", other])
    assert findings[0].reason.startswith("likely typo")
    assert "intent" in findings[0].reason


def test_typo_among_bare_tags_flagged() -> None:
    findings = find_duplicate_slices(["billing_dispute", "billing_dispte"])
    assert _flagged_together(findings, "billing_dispute", "billing_dispte")


def test_typo_across_keys_not_flagged() -> None:
    assert find_duplicate_slices(["intent=refund_request", "topic=refund_requst"]) == []


def test_two_edits_not_flagged() -> None:
    assert find_duplicate_slices(["intent=refund_request", "intent=refund_rqst"]) == []


def test_short_values_never_flagged() -> None:
    assert find_duplicate_slices(["lang=de", "lang=en"]) == []
    assert find_duplicate_slices(["lang=en", "lang=eng"]) == []
    assert find_duplicate_slices(["tier=gold", "tier=golf"]) == []


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("tier=level1", "tier=level2"),
        ("v=t0001", "v=t0002"),
        ("v=t001", "v=t0001"),
        ("model=refund_v2", "model=refund_v"),
        ("ckpt=step_100", "ckpt=step_1000"),
    ],
)
def test_digit_only_differences_not_flagged(a: str, b: str) -> None:
    assert find_duplicate_slices([a, b]) == []


def test_single_letter_token_siblings_not_flagged() -> None:
    assert find_duplicate_slices(["arm=plan_a", "arm=plan_b"]) == []


def test_letter_for_digit_typo_flagged() -> None:
    findings = find_duplicate_slices(["tier=level1", "tier=levell"])
    assert _flagged_together(findings, "tier=level1", "tier=levell")


def test_bucket_larger_than_max_group_skipped() -> None:
    # 26 one-letter extensions of one value share a single-deletion bucket.
    letters = "abcdefghijklmnopqrstuvwxyz"
    tags = ["intent=refund_request"] + [f"intent=refund_request{c}" for c in letters]
    assert find_duplicate_slices(tags, max_group=50) != []
    assert find_duplicate_slices(tags, max_group=10) == []


def test_max_group_must_be_at_least_two() -> None:
    with pytest.raises(ValueError):
        find_duplicate_slices(["a=b"], max_group=1)


# --- combinations, dedup, input handling -----------------------------------


def test_mixed_realistic_set() -> None:
    tags = [
        "intent=refund_request",
        "intent=refund_requst",
        "topic=refund_request",
        "billing_dispute",
        "intent=billing_dispute",
        "intent=Billing-Dispute",
        "lang=en",
        "lang=de",
        "language=en",
        "tier=level1",
        "tier=level2",
    ]
    findings = find_duplicate_slices(tags)
    assert [(f.tags, f.reason) for f in findings] == [
        (["billing_dispute", "intent=Billing-Dispute", "intent=billing_dispute"], REASON_BARE),
        (["intent=Billing-Dispute", "intent=billing_dispute"], REASON_CASE),
        (
            ["intent=refund_request", "intent=refund_requst"],
            "likely typo (one edit apart) within key intent",
        ),
        (["intent=refund_request", "topic=refund_request"], "same value under keys intent, topic"),
    ]


def test_duplicate_inputs_ignored_and_generators_accepted() -> None:
    once = find_duplicate_slices(["intent=refund_request", "intent=refund_requst"])
    twice = find_duplicate_slices(t for t in ["intent=refund_request", "intent=refund_requst"] * 3)
    assert once == twice


@pytest.mark.parametrize("tags", [[], ["intent=refund"], ["", " ", "="]])
def test_trivial_inputs(tags: list[str]) -> None:
    for finding in find_duplicate_slices(tags):
        assert len(finding.tags) >= 2


def test_systematic_family_produces_no_findings() -> None:
    tags = _systematic_family()
    assert len(set(tags)) == 5050
    assert find_duplicate_slices(tags) == []


def test_systematic_family_does_not_hide_real_duplicates() -> None:
    tags = _systematic_family() + ["intent=refund_request", "intent=refund_requst"]
    findings = find_duplicate_slices(tags)
    assert [f.tags for f in findings] == [["intent=refund_request", "intent=refund_requst"]]


# --- legacy pairs ----------------------------------------------------------


def test_duplicate_pairs_flattens_sorted_unique() -> None:
    findings = [
        DuplicateSlices(tags=["b", "a", "c"], reason="x"),
        DuplicateSlices(tags=["a", "b"], reason="y"),
        DuplicateSlices(tags=["d", "e"], reason="z"),
    ]
    assert duplicate_pairs(findings) == [["a", "b"], ["a", "c"], ["b", "c"], ["d", "e"]]


def test_duplicate_pairs_empty() -> None:
    assert duplicate_pairs([]) == []


# --- invariants and determinism --------------------------------------------

_KEYS = st.sampled_from(["intent", "Intent", "topic", "lang", "tier", ""])
_VALUES = st.sampled_from(
    [
        "refund_request",
        "Refund-Request",
        "refund_requst",
        "refund request",
        "billing_dispute",
        "billing.dispute",
        "level1",
        "level2",
        "levell",
        "en",
        "de",
        "true",
        "plan_a",
        "plan_b",
    ]
)
_TAGS = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", _KEYS, _VALUES),
    _VALUES,
    st.text(alphabet="abcde_-=. ", min_size=0, max_size=9),
)


def _check_invariants(tags: list[str], findings: list[DuplicateSlices]) -> None:
    inputs = set(tags)
    seen: set[frozenset[str]] = set()
    for finding in findings:
        assert finding.tags == sorted(set(finding.tags))
        assert len(finding.tags) >= 2
        assert set(finding.tags) <= inputs
        assert finding.reason
        key = frozenset(finding.tags)
        assert key not in seen
        seen.add(key)
    order = [(f.tags[0], f.reason) for f in findings]
    assert order == sorted(order)


@settings(max_examples=200, deadline=None)
@given(st.lists(_TAGS, max_size=25), st.randoms(use_true_random=False))
def test_independent_of_input_order(tags: list[str], rnd) -> None:  # type: ignore[no-untyped-def]
    expected = find_duplicate_slices(tags)
    shuffled = list(tags) + list(tags[:3])
    rnd.shuffle(shuffled)
    assert find_duplicate_slices(shuffled) == expected
    _check_invariants(tags, expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(_TAGS, max_size=25))
def test_pairs_cover_every_finding(tags: list[str]) -> None:
    findings = find_duplicate_slices(tags)
    pairs = duplicate_pairs(findings)
    assert pairs == sorted(pairs)
    assert len({tuple(p) for p in pairs}) == len(pairs)
    assert all(a < b for a, b in pairs)
    for finding in findings:
        assert [finding.tags[0], finding.tags[1]] in pairs


def test_independent_of_hash_seed() -> None:
    script = (
        "import json, sys\n"
        "from adaptergate.holdout.tags import find_duplicate_slices\n"
        "tags = json.loads(sys.stdin.read())\n"
        "print(json.dumps([f.model_dump() for f in find_duplicate_slices(tags)]))\n"
    )
    tags = [
        "intent=refund_request", "intent=refund_requst", "topic=refund_request",
        "billing_dispute", "intent=Billing-Dispute", "intent=billing_dispute",
        "tier=level1", "tier=levell", "lang=de", "lang=en",
    ]  # fmt: skip
    outputs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        proc = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(tags),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert json.loads(outputs[0])
