"""Find slice tags that look like one behaviour spelled two ways.

Holdout queries carry slice tags, usually ``key=value`` (``intent=refund``)
and sometimes bare (``billing_dispute``). When two authors spell one
behaviour differently the slice is split in two and each half looks smaller
and noisier than it is. :func:`find_duplicate_slices` reports such tags; it
never merges them, since only the customer knows whether they mean the same.

Four rules, each on normalised tags (key and value case-folded, ``-``, ``_``,
``.`` and whitespace runs read as one separator, outer whitespace stripped):

1. *same tag up to case/separators*: ``intent=billing-dispute`` and
   ``intent=Billing_Dispute``; all variants form one finding.
2. *bare tag beside key=value*: ``billing_dispute`` and
   ``intent=billing_dispute``.
3. *same value under two keys*: ``intent=refund_request`` and
   ``topic=refund_request``, only for values of at least
   :data:`MIN_VALUE_LEN` characters that contain a letter and are not in
   :data:`GENERIC_VALUES`. A key that enumerates the value as part of a
   numbered family (``value_0041``, ``value_0042``, ... under one key) does
   not count: that is a schema, not a duplicate.
4. *likely typo*: two values under the same key, both at least
   :data:`MIN_VALUE_LEN` and at most :data:`MAX_TYPO_VALUE_LEN` characters,
   one edit apart (insertion, deletion,
   substitution or adjacent transposition). Pairs that differ only in digits
   (``level1``/``level2``) or in a one-letter token (``plan_a``/``plan_b``)
   are systematic names and are not reported.

Rule 4 is near-linear: each value is indexed under itself and its
single-deletion variants, per key, in a dict; only values sharing a bucket are
compared, exactly. A bucket holding more than ``max_group`` distinct values is
a family of systematic names and is skipped; the same cap bounds rules 2 and 3.

Tags arrive in pull requests, so the whole check must stay linear in the
total tag bytes whatever they look like. Rule 4 only considers values of at
most :data:`MAX_TYPO_VALUE_LEN` characters: a value of ``n`` characters has
``n + 1`` variants of about ``n`` characters each, quadratic in ``n`` (twelve
400 KB values under one key would mean hundreds of gigabytes of variants),
and slice tags are short names. With the cap, a value costs at most
``MAX_TYPO_VALUE_LEN + 1`` short strings, so rule 4 is linear in the number
of values; rules 1 to 3 are linear in the tag bytes as they are. Holdout
validation refuses longer tags anyway
(:data:`adaptergate.holdout.store.MAX_SLICE_TAG_CHARS`); the cap here keeps the
function itself safe for any caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import combinations

from adaptergate.models import DuplicateSlices

__all__ = [
    "GENERIC_VALUES",
    "MAX_TYPO_VALUE_LEN",
    "MIN_VALUE_LEN",
    "REASON_BARE",
    "REASON_CASE",
    "duplicate_pairs",
    "find_duplicate_slices",
    "normalise_tag",
]

MIN_VALUE_LEN = 5
"""Shortest normalised value that rules 3 and 4 consider."""

MAX_TYPO_VALUE_LEN = 64
"""Longest normalised value that rule 4 (typos) considers.

Slice tags are short names (the longest value in the bundled holdouts has 17
characters); rule 4's cost per value grows with the square of its length, so
longer values are left out of it (rules 1 to 3 still see them).
"""

GENERIC_VALUES: frozenset[str] = frozenset(
    {
        "true", "false", "yes", "no", "none", "null", "other", "unknown",
        "default", "high", "medium", "low", "easy", "hard",
    }
)  # fmt: skip
"""Values too common to mean anything when shared by two keys (rule 3)."""

REASON_CASE = "same tag up to case/separators"
REASON_BARE = "bare tag beside key=value"

_SEP_RE = re.compile(r"[-_.\s]+")
_DIGITS_RE = re.compile(r"\d+")
_HAS_DIGIT = re.compile(r"\d").search

_Key = tuple[str | None, str]
"""A normalised tag: (key or None for a bare tag, value)."""


def _norm_part(text: str) -> str:
    return _SEP_RE.sub("_", text.strip().casefold())


def normalise_tag(tag: str) -> tuple[str | None, str]:
    """Split ``tag`` at its first ``=`` and normalise both sides.

    Returns ``(key, value)``; ``key`` is ``None`` for a bare tag.
    """
    key, sep, value = tag.strip().partition("=")
    if not sep:
        return None, _norm_part(key)
    return _norm_part(key), _norm_part(value)


def _strip_digits(text: str) -> str:
    return _DIGITS_RE.sub("", text)


def _neighbourhood(value: str) -> list[str]:
    """``value`` and its distinct single-deletion variants.

    ``n + 1`` strings of about ``n`` characters for a value of ``n``: callers
    only pass values of at most :data:`MAX_TYPO_VALUE_LEN` characters.
    """
    n = len(value)
    out = [value]
    out.extend(
        value[:i] + value[i + 1 :]
        for i in range(n)
        if i == n - 1 or value[i] != value[i + 1]
    )
    return out


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are exactly one edit apart (OSA distance 1)."""
    la, lb = len(a), len(b)
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        if len(diffs) == 2:
            i, j = diffs
            return j == i + 1 and a[i] == b[j] and a[j] == b[i]
        return False
    if abs(la - lb) != 1:
        return False
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def _systematic_pair(a: str, b: str) -> bool:
    """True when one-edit-apart ``a``, ``b`` read as intentional siblings.

    Either they differ only in digits (``t0001``/``t0002``, ``v``/``v2``) or
    in a single letter that stands alone as a token (``plan_a``/``plan_b``).
    """
    if _strip_digits(a) == _strip_digits(b):
        return True
    if len(a) != len(b):
        return False
    diffs = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diffs) != 1:
        return False
    i = diffs[0]
    if not (a[i].isalpha() and b[i].isalpha()):
        return False
    left_alone = i == 0 or not a[i - 1].isalpha()
    right_alone = i == len(a) - 1 or not a[i + 1].isalpha()
    return left_alone and right_alone


def _rule3_value_ok(value: str) -> bool:
    return (
        len(value) >= MIN_VALUE_LEN
        and any(ch.isalpha() for ch in value)
        and value not in GENERIC_VALUES
    )


def _typo_reason(key: str | None) -> str:
    if key is None:
        return "likely typo (one edit apart) among bare tags"
    return f"likely typo (one edit apart) within key {key}"


def find_duplicate_slices(tags: Iterable[str], *, max_group: int = 50) -> list[DuplicateSlices]:
    """Report slice tags that look like one behaviour spelled two ways.

    ``tags`` is read as a set. Each finding lists its tags sorted; findings
    are sorted by (first tag, reason) and no set of tags is reported twice.
    ``max_group`` caps a neighbourhood bucket (rule 4) and the number of
    spellings sharing one value (rules 2 and 3); larger groups are skipped.
    """
    if max_group < 2:
        raise ValueError(f"max_group must be at least 2, got {max_group}")

    # Normalised tag -> its raw spellings, built in sorted order so that
    # every dict below iterates deterministically.
    classes: dict[_Key, list[str]] = {}
    for raw in sorted(set(tags)):
        classes.setdefault(normalise_tag(raw), []).append(raw)

    found: dict[frozenset[str], DuplicateSlices] = {}

    def report(raws: Iterable[str], reason: str) -> None:
        members = sorted(set(raws))
        key = frozenset(members)
        if len(members) >= 2 and key not in found:
            found[key] = DuplicateSlices(tags=members, reason=reason)

    # Rule 1: one normalised tag, several spellings.
    for raws in classes.values():
        if len(raws) >= 2:
            report(raws, REASON_CASE)

    # Index by value for rules 2 and 3, by key for rule 4.
    bare: dict[str, list[str]] = {}
    keyed_by_value: dict[str, dict[str, list[str]]] = {}
    values_by_key: dict[str | None, list[str]] = {}
    for (key, value), raws in classes.items():
        if not value:
            continue
        if key is None:
            bare[value] = raws
        else:
            keyed_by_value.setdefault(value, {})[key] = raws
        values_by_key.setdefault(key, []).append(value)

    # Rule 2: bare tag beside key=tag.
    for value, bare_raws in bare.items():
        keyed = keyed_by_value.get(value)
        if keyed and len(keyed) + 1 <= max_group:
            report([*bare_raws, *(r for raws in keyed.values() for r in raws)], REASON_BARE)

    # Rule 3: one value under several keys, unless a key enumerates it.
    families: dict[str, dict[str, int]] = {}
    for key, values in values_by_key.items():
        if key is None:
            continue
        counts: dict[str, int] = {}
        for value in values:
            if _HAS_DIGIT(value):
                skeleton = _DIGITS_RE.sub("#", value)
                counts[skeleton] = counts.get(skeleton, 0) + 1
        families[key] = counts
    for value, keyed in keyed_by_value.items():
        if len(keyed) < 2 or not _rule3_value_ok(value):
            continue
        skeleton = _DIGITS_RE.sub("#", value)
        kept = [k for k in keyed if families[k].get(skeleton, 0) < 2]
        if 2 <= len(kept) <= max_group:
            kept.sort()
            raws = [r for k in kept for r in keyed[k]]
            report(raws, f"same value under keys {', '.join(kept)}")

    # Rule 4: one edit apart within a key, via single-deletion buckets;
    # values longer than MAX_TYPO_VALUE_LEN are left out (module docstring).
    for key, values in values_by_key.items():
        long_values = [v for v in values if MIN_VALUE_LEN <= len(v) <= MAX_TYPO_VALUE_LEN]
        if len(long_values) < 2:
            continue
        # Values equal once digits are removed are systematic siblings:
        # compare only across these groups inside a bucket.
        stripped = [_strip_digits(v) for v in long_values]
        first: dict[str, int] = {}
        buckets: dict[str, list[int]] = {}  # only variants shared by 2+ values
        for idx, value in enumerate(long_values):
            for variant in _neighbourhood(value):
                prev = first.setdefault(variant, idx)
                if prev != idx:
                    shared = buckets.get(variant)
                    if shared is None:
                        buckets[variant] = [prev, idx]
                    else:
                        shared.append(idx)
        seen: set[tuple[int, int]] = set()
        for members in buckets.values():
            if len(members) > max_group:
                continue
            if len({stripped[m] for m in members}) < 2:
                continue
            for i, j in combinations(members, 2):
                if stripped[i] == stripped[j] or (i, j) in seen:
                    continue
                seen.add((i, j))
                a, b = long_values[i], long_values[j]
                if _one_edit(a, b) and not _systematic_pair(a, b):
                    report([*classes[(key, a)], *classes[(key, b)]], _typo_reason(key))

    return sorted(found.values(), key=lambda f: (f.tags[0], f.reason, f.tags))


def duplicate_pairs(findings: Iterable[DuplicateSlices]) -> list[list[str]]:
    """Flatten findings into 0.5.4-style ``[a, b]`` pairs, sorted and unique.

    This fills the legacy ``suspected_duplicate_slices`` field.
    """
    pairs: set[tuple[str, str]] = set()
    for finding in findings:
        members = sorted(set(finding.tags))
        pairs.update(combinations(members, 2))
    return [list(pair) for pair in sorted(pairs)]
