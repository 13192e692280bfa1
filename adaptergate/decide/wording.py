"""Sentences an on-call engineer can paste into a chat.

Every statement says what was found, how sure we are, and what it is based
on: the estimate, its interval, the test and its p-value, and — when the
evidence is not enough — how many queries would settle it.
"""

from __future__ import annotations

import math

from adaptergate.models import Evidence


def _num(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def _p(p: float) -> str:
    if p < 1e-4:
        return "p<0.0001"
    return f"p={p:.4f}" if p < 0.01 else f"p={p:.3f}"


def _interval(ev: Evidence) -> str:
    return f"{round(ev.level * 100)}% interval {_num(ev.lower)} to {_num(ev.upper)}"


def _counts(ev: Evidence) -> str:
    if ev.n_drop is None or ev.n_gain is None:
        return ""
    return f"; {ev.n_drop} broke, {ev.n_gain} fixed"


def aggregate_statement(ev: Evidence, epsilon: float, n: int) -> str:
    conf = f"{(1 - ev.alpha) * 100:.3g}"
    base = f"Δ={_num(ev.estimate)} over {n:,} queries ({_interval(ev)}; {ev.method}, {_p(ev.p_value)}{_counts(ev)})"
    if ev.verdict == "FAIL":
        return (
            f"FAIL: the candidate is worse by {-ev.estimate:.3f}, beyond ε={epsilon:g}, and the drop is"
            f" significant ({_p(ev.p_value)} < {ev.alpha:g}). {base}."
        )
    if ev.verdict == "PASS":
        worst = max(-ev.lower, 0.0)
        return (
            f"PASS: with {conf}% confidence the candidate is at most {worst:.3f} worse (within ε={epsilon:g})."
            f" {base}."
        )
    settle = settle_phrase(ev, n)
    return (
        f"INCONCLUSIVE: the interval {_num(ev.lower)} to {_num(ev.upper)} straddles the margin −ε={-epsilon:g}."
        f" {base}.{settle}"
    )


def settle_phrase(ev: Evidence, n: int) -> str:
    if ev.never_significant and ev.min_size:
        return f" {n:,} queries can never reach significance here; at least {ev.min_size:,} are needed."
    if ev.n_needed is not None:
        more = ev.n_needed - n
        if more <= 0:
            # as many queries as the estimate asks for were run: a count would contradict itself
            return ""
        return (
            f" About {ev.n_needed:,} queries ({more:,} more) would settle it, if the observed"
            " difference holds."
        )
    return " The estimate sits on the margin: more queries alone will not settle it."


def power_statement(ev: Evidence, n: int) -> str:
    """The smallest drop this many queries detect 80% of the time; "" when that says nothing
    (no spread was observed: a deterministic scorer that scored both adapters alike)."""
    if ev.mde is None or not math.isfinite(ev.mde) or round(ev.mde, 3) <= 0:
        return ""
    return (
        f"With {n:,} queries and the spread observed, a drop of {ev.mde:.3f} or more is detected"
        " 80% of the time."
    )


def slice_statement(tag: str, ev: Evidence, n: int, slice_epsilon: float | None) -> str:
    adj = f", adjusted {_p(ev.p_adjusted).split('=')[-1] if ev.p_adjusted is not None else ''}"
    core = (
        f"{tag}: Δ={_num(ev.estimate)} on {n:,} queries ({_interval(ev)}; {_p(ev.p_value)}"
        f"{adj if ev.p_adjusted is not None else ''}{_counts(ev)})"
    )
    eps = f"{slice_epsilon:g}" if slice_epsilon is not None else "?"
    if ev.verdict == "FAIL":
        return f"{core}: FAIL, a significant drop beyond slice ε={eps}."
    if ev.never_significant and ev.min_size:
        return f"{core}: too small to ever reach significance; needs at least {ev.min_size:,} queries."
    if ev.verdict == "PASS":
        return f"{core}: PASS, within slice ε={eps}."
    if ev.verdict == "INCONCLUSIVE":
        return f"{core}: INCONCLUSIVE.{settle_phrase(ev, n)}"
    return core


def strict_statement(k: int, pass_threshold: float) -> str:
    return (
        f"strict mode: {k} quer{'y' if k == 1 else 'ies'} that passed on the baseline"
        f" (score ≥ {pass_threshold:g}) {'fails' if k == 1 else 'fail'} on the candidate"
    )


def word_diff(before: str | None, after: str | None) -> list[tuple[str, str]]:
    """A word-level diff: ``(op, words)`` with op ``=``, ``-`` (only before) or ``+`` (only after)."""
    import difflib

    sm = difflib.SequenceMatcher(a=(before or "").split(), b=(after or "").split(), autojunk=False)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            out.append(("=", " ".join(sm.a[i1:i2])))
        if op in ("delete", "replace"):
            out.append(("-", " ".join(sm.a[i1:i2])))
        if op in ("insert", "replace"):
            out.append(("+", " ".join(sm.b[j1:j2])))
    return out
