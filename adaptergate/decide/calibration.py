"""Scorer noise and epsilon calibration.

A non-deterministic scorer (sampling, an LLM judge) gives a query a
different score on every run. ``--repeats K`` scores each adapter K times and
gates on the per-query means; :func:`noise_floor` measures the spread across
repeats and runs the baseline against itself (its first two repeats), which
is the change the gate would see between two identical adapters.

:func:`suggest_margins` turns the holdout's size and that noise into the
smallest epsilon / slice epsilon the holdout can resolve: the drop the
statistical rule detects 80% of the time at the configured alpha. Asking for
a smaller margin than that makes verdicts INCONCLUSIVE by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adaptergate.models import NoiseFloor
from adaptergate.decide.stats import binary_paired, continuous_paired, norm_ppf


def noise_floor(base_runs: np.ndarray, cand_runs: np.ndarray | None, alpha: float) -> NoiseFloor:
    """Noise of the scorer from ``(K, n)`` score matrices (K >= 2 repeats)."""
    runs = [base_runs] + ([cand_runs] if cand_runs is not None else [])
    k = base_runs.shape[0]
    var = np.concatenate([r.var(axis=0, ddof=1) for r in runs]) if k > 1 else np.zeros(1)
    sd = float(np.sqrt(var.mean()))
    first, second = base_runs[0], base_runs[1] if k > 1 else base_runs[0]
    d = second - first
    n = np.array([d.size], dtype=np.float64)
    binary = bool(np.all((first == 0) | (first == 1)) and np.all((second == 0) | (second == 1)))
    if binary:
        both = np.array([np.sum((first == 1) & (second == 1))])
        drop = np.array([np.sum((first == 1) & (second == 0))])
        gain = np.array([np.sum((first == 0) & (second == 1))])
        ps = binary_paired(n, both, drop, gain, alpha)
    else:
        ps = continuous_paired(n, np.array([d.sum()]), np.array([(d * d).sum()]), alpha)
    deterministic = bool(sd == 0.0)
    lvl = round((1 - 2 * alpha) * 100)
    if deterministic:
        text = f"Scorer is deterministic: {k} repeats gave identical scores (no noise floor)."
    else:
        text = (
            f"Scorer noise: a query's score varies by sd {sd:.3f} across {k} repeats; the baseline"
            f" scored against itself moved Δ={ps.delta[0]:+.3f} ({lvl}% interval {ps.lower[0]:+.3f} to"
            f" {ps.upper[0]:+.3f}). Gating on the mean of {k} repeats divides that noise by √{k}."
        )
    return NoiseFloor(
        repeats=k, per_query_sd=sd, null_delta=float(ps.delta[0]), null_lower=float(ps.lower[0]),
        null_upper=float(ps.upper[0]), deterministic=deterministic, statement=text,
    )


@dataclass(frozen=True)
class Suggestion:
    epsilon: float
    slice_epsilon: float | None
    sd_difference: float
    n: int
    median_slice: int | None
    smallest_slice: int | None
    n_slices: int
    basis: str


def _round_up(x: float, step: float = 0.005) -> float:
    return float(min(1.0, np.ceil(x / step - 1e-9) * step))


def suggest_margins(
    n: int, slice_sizes: list[int], *, noise_sd: float, repeats: int, churn: float,
    score_sd: float, binary: bool, alpha: float, power: float = 0.8, slice_min_size: int = 3,
) -> Suggestion:
    """Smallest margins the holdout can resolve for equal-quality adapters.

    The per-query difference between two adapters of equal quality has
    variance from the scorer's noise (``2 * noise_sd**2 / repeats`` after
    averaging) plus real churn: the fraction ``churn`` of queries whose
    outcome changes between versions (for 0/1 scores a change is ±1; for
    continuous scores it is taken as two score standard deviations).
    """
    change = 1.0 if binary else 2.0 * score_sd
    var_d = 2.0 * noise_sd**2 / max(repeats, 1) + churn * change**2
    sd_d = float(np.sqrt(max(var_d, 1e-12)))
    eligible = sorted(s for s in slice_sizes if s >= slice_min_size)
    a_agg = alpha / 2 if eligible else alpha
    z = norm_ppf(1 - a_agg) + norm_ppf(power)
    eps = _round_up(z * sd_d / np.sqrt(max(n, 1)))
    slice_eps = None
    median = smallest = None
    if eligible:
        median = eligible[len(eligible) // 2]
        smallest = eligible[0]
        a_s = alpha / 2 / len(eligible)
        zs = norm_ppf(1 - a_s) + norm_ppf(power)
        slice_eps = _round_up(zs * sd_d / np.sqrt(median))
    basis = (
        f"n={n}, per-query sd of a difference {sd_d:.3f} (noise sd {noise_sd:.3f} over {repeats}"
        f" repeat(s), churn {churn:g}), alpha={alpha:g}, power={power:g}"
        + (f", {len(eligible)} eligible slices, median size {median}" if eligible else "")
    )
    return Suggestion(eps, slice_eps, sd_d, n, median, smallest, len(eligible), basis)


@dataclass(frozen=True)
class CalibrationReport:
    tenant: str
    baseline: str
    suggestion: Suggestion
    noise: NoiseFloor

    def to_dict(self) -> dict:
        s = self.suggestion
        return {
            "tenant": self.tenant,
            "baseline": self.baseline,
            "epsilon": s.epsilon,
            "slice_epsilon": s.slice_epsilon,
            "basis": s.basis,
            "holdout_size": s.n,
            "eligible_slices": s.n_slices,
            "median_slice_size": s.median_slice,
            "smallest_slice_size": s.smallest_slice,
            "sd_difference": s.sd_difference,
            "noise": self.noise.model_dump(),
        }


def run_calibration(
    *, tenant: str, holdout_path, scorer_spec: str, baseline: str, repeats: int, churn: float,
    alpha: float, power: float, slice_min_size: int, max_line_bytes: int,
) -> CalibrationReport:
    """Score the baseline ``repeats`` times and suggest margins for this tenant."""
    from adaptergate.decide.rules import build_slice_index
    from adaptergate.errors import InvalidInputError, UsageError
    from adaptergate.holdout.store import load_holdout
    from adaptergate.scoring.scorers import load_scorer, score_all

    if repeats < 2:
        raise UsageError("calibrate needs --repeats >= 2 to measure the scorer's noise")
    if not 0.0 <= churn <= 1.0:
        raise UsageError(f"--churn must be within [0, 1], got {churn}")
    if not 0.0 < power < 1.0:
        raise UsageError(f"--power must be within (0, 1), got {power}")
    if not 0.0 < alpha < 0.5:
        raise UsageError(f"--alpha must be within (0, 0.5), got {alpha}")
    holdout = load_holdout(holdout_path, tenant=tenant, max_line_bytes=max_line_bytes)
    if len(holdout) == 0:
        raise InvalidInputError(f"holdout {holdout_path} is empty")
    scorer = load_scorer(scorer_spec)
    runs = np.stack([score_all(scorer, baseline, holdout.payloads, holdout.ids) for _ in range(repeats)])
    noise = noise_floor(runs, None, alpha)
    means = runs.mean(axis=0)
    binary = bool(np.all((runs == 0) | (runs == 1)))
    index = build_slice_index(holdout.slices)
    sizes = index.sizes.tolist()
    suggestion = suggest_margins(
        len(holdout), sizes, noise_sd=noise.per_query_sd, repeats=repeats, churn=churn,
        score_sd=float(means.std()), binary=binary, alpha=alpha, power=power, slice_min_size=slice_min_size,
    )
    return CalibrationReport(tenant, baseline, suggestion, noise)
