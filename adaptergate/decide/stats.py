"""Paired statistics for comparing two adapters on the same queries.

Pure functions over numpy arrays of per-group sufficient statistics, so the
aggregate and every slice are computed in one vectorised call.

* **0/1 scores** — the McNemar mid-p test on discordant pairs for the
  p-value of a drop, and Newcombe's hybrid score interval (Newcombe 1998,
  method 10; Wilson bounds combined with the paired correlation) for the
  difference of paired proportions. Both are valid at small n and with
  empty cells.
* **Continuous scores** — the paired t interval and test on per-query
  differences (scores are bounded, so the CLT applies quickly); with a
  ``cluster`` field, cluster-robust standard errors (sum the differences
  per cluster, G-1 degrees of freedom), as in Miller 2024, "Adding Error
  Bars to Evals".
* **Bootstrap** — :func:`paired_bootstrap_interval`, a seeded vectorised
  paired (cluster) bootstrap, for users who prefer it (``--ci bootstrap``).

Conventions: ``delta = candidate - baseline`` (negative = regression); the
interval is two-sided at level ``1 - 2*alpha``, so each bound is a one-sided
``1 - alpha`` confidence bound (the non-inferiority convention); ``p_drop``
is the one-sided p-value of "the candidate is worse". Everything is clamped
to the possible range ``[-1, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statistics import NormalDist

_NORMAL = NormalDist()
LARGE_DF = 1000
"""Above this many degrees of freedom Student's t is taken as the normal
distribution: their 95% quantiles differ by less than 0.1% (1.6464 vs 1.6449),
and scipy (0.2 s to import) is not needed for large holdouts."""


def _special():
    from scipy import special  # imported only when a small sample needs it

    return special


def _ndtr(x: np.ndarray) -> np.ndarray:
    from math import erfc, sqrt

    return np.vectorize(lambda v: 0.5 * erfc(-v / sqrt(2.0)), otypes=[np.float64])(x)


def _t_ppf(q: float, df: np.ndarray) -> np.ndarray:
    df = np.asarray(df, dtype=np.float64)
    if df.size and np.all(df > LARGE_DF):
        return np.full(df.shape, _NORMAL.inv_cdf(q))
    return _special().stdtrit(df, q)


def _t_cdf(df: np.ndarray, t: np.ndarray) -> np.ndarray:
    df = np.asarray(df, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if df.size and np.all(df > LARGE_DF):
        return _ndtr(np.where(np.isfinite(t), t, 0.0))
    return _special().stdtr(df, t)


@dataclass(frozen=True)
class PairedStats:
    """Per-group estimates; every array has one entry per group."""

    n: np.ndarray
    delta: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_drop: np.ndarray
    sd: np.ndarray
    """Standard deviation of one query's difference (for power statements)."""
    n_drop: np.ndarray | None
    """Binary only: queries that passed on the baseline and fail on the candidate."""
    n_gain: np.ndarray | None
    method: str
    df: np.ndarray | None = None


def _wilson(x: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (vectorised; n may be 0)."""
    n_safe = np.maximum(n, 1)
    p = x / n_safe
    z2 = z * z
    denom = 1.0 + z2 / n_safe
    centre = (p + z2 / (2 * n_safe)) / denom
    half = z * np.sqrt(p * (1 - p) / n_safe + z2 / (4 * n_safe * n_safe)) / denom
    lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return lo, hi


def _binom_sf(k: np.ndarray, m: np.ndarray) -> np.ndarray:
    """P(X > k) for X ~ Bin(m, 1/2), vectorised (1 for k < 0, 0 for k >= m)."""
    k = np.asarray(k).astype(np.int64)
    m = np.asarray(m).astype(np.int64)
    inside = (k >= 0) & (k < m)
    if not inside.any():
        return np.where(k < 0, 1.0, 0.0)
    sf = _special().bdtrc(np.where(inside, k, 0), np.where(inside, m, 1), 0.5)
    return np.where(k < 0, 1.0, np.where(k >= m, 0.0, sf))


def mcnemar_p_drop(n_drop: np.ndarray, n_gain: np.ndarray, *, mid_p: bool = True) -> np.ndarray:
    """One-sided McNemar p-value of a drop, conditional on the m discordant pairs.

    ``X ~ Bin(m, 1/2)`` counts the discordant pairs that went the candidate's
    way down. Exact: ``P(X >= n_drop)``. Mid-p (default):
    ``P(X > n_drop) + P(X = n_drop) / 2``, which removes the exact test's
    conservatism from discreteness; Fagerland, Lydersen & Laake (2013, BMC
    Med Res Methodol 13:91) found the McNemar mid-p test kept the nominal
    level in all the scenarios they studied, with more power than the exact one.
    """
    n_drop = np.asarray(n_drop)
    m = n_drop + np.asarray(n_gain)
    if mid_p:
        # P(X > k) + P(X = k) / 2, with P(X = k) = P(X > k - 1) - P(X > k)
        upper = _binom_sf(n_drop, m)
        p = upper + 0.5 * (_binom_sf(n_drop - 1, m) - upper)
    else:
        p = _binom_sf(n_drop - 1, m)
    return np.where(m > 0, np.minimum(p, 1.0), 1.0)


def mcnemar_p_min(m: np.ndarray, *, mid_p: bool = True) -> np.ndarray:
    """The smallest p-value :func:`mcnemar_p_drop` can give with m discordant pairs."""
    m = np.asarray(m, dtype=np.float64)
    return np.where(m > 0, np.power(0.5, m + (1.0 if mid_p else 0.0)), 1.0)


def binary_paired(
    n: np.ndarray, n_both: np.ndarray, n_drop: np.ndarray, n_gain: np.ndarray, alpha: float
) -> PairedStats:
    """Paired 0/1 outcomes per group.

    ``n_both``: passed on both; ``n_drop``: passed on baseline only;
    ``n_gain``: passed on candidate only; the rest failed on both.
    """
    n = np.asarray(n, dtype=np.float64)
    a = np.asarray(n_both, dtype=np.float64)
    b = np.asarray(n_drop, dtype=np.float64)
    c = np.asarray(n_gain, dtype=np.float64)
    d = n - a - b - c
    n_safe = np.maximum(n, 1)
    z = _NORMAL.inv_cdf(1 - alpha)
    p1 = (a + b) / n_safe  # baseline pass rate
    p2 = (a + c) / n_safe  # candidate pass rate
    delta = p2 - p1
    l1, u1 = _wilson(a + b, n, z)
    l2, u2 = _wilson(a + c, n, z)
    # Newcombe's correlation term for paired proportions (0 when undefined).
    prod = (a + b) * (c + d) * (a + c) * (b + d)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Newcombe's continuity-corrected numerator: ad-bc reduced by up to n/2
        # when positive (0 when it lies within [0, n/2]), unchanged when negative.
        num = a * d - b * c
        num = num - np.clip(num, 0.0, n / 2)
        phi = np.where(prod > 0, num / np.sqrt(np.where(prod > 0, prod, 1.0)), 0.0)
    dl = np.sqrt(np.maximum((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    du = np.sqrt(np.maximum((u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2, 0.0))
    lower = np.where(n > 0, np.clip(delta - dl, -1.0, 1.0), -1.0)
    upper = np.where(n > 0, np.clip(delta + du, -1.0, 1.0), 1.0)
    sd = np.sqrt(np.maximum((b + c) / n_safe - delta**2, 0.0))
    return PairedStats(
        n=n.astype(np.int64), delta=np.where(n > 0, delta, 0.0), lower=lower, upper=upper,
        p_drop=mcnemar_p_drop(b.astype(np.int64), c.astype(np.int64)), sd=sd,
        n_drop=b.astype(np.int64), n_gain=c.astype(np.int64), method="exact McNemar / Newcombe",
    )


def _t_from_moments(
    n: np.ndarray, mean: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ok = (df >= 1) & (n >= 2)
    df_safe = np.where(ok, df, 1)
    tq = _t_ppf(1 - alpha, df_safe)
    lower = np.where(ok, np.clip(mean - tq * se, -1.0, 1.0), -1.0)
    upper = np.where(ok, np.clip(mean + tq * se, -1.0, 1.0), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tstat = np.where(se > 0, mean / np.where(se > 0, se, 1.0), np.where(mean < 0, -np.inf, np.where(mean > 0, np.inf, 0.0)))
    # one-sided p of a drop: P(T <= t); exactly 0.5 when nothing moved at all
    p = np.where(np.isfinite(tstat), _t_cdf(df_safe, tstat), np.where(tstat < 0, 0.0, 1.0))
    p = np.where((se == 0) & (mean == 0), 1.0, p)
    return lower, upper, np.where(ok, p, 1.0)


def continuous_paired(n: np.ndarray, sum_d: np.ndarray, sum_d2: np.ndarray, alpha: float) -> PairedStats:
    """Paired t interval and one-sided test from per-group sums of d and d**2."""
    n = np.asarray(n, dtype=np.float64)
    n_safe = np.maximum(n, 1)
    mean = np.asarray(sum_d) / n_safe
    var = np.where(n > 1, (np.asarray(sum_d2) - n * mean**2) / np.maximum(n - 1, 1), 0.0)
    sd = np.sqrt(np.maximum(var, 0.0))
    se = sd / np.sqrt(n_safe)
    lower, upper, p = _t_from_moments(n, mean, se, n - 1, alpha)
    return PairedStats(
        n=n.astype(np.int64), delta=np.where(n > 0, mean, 0.0), lower=lower, upper=upper, p_drop=p,
        sd=sd, n_drop=None, n_gain=None, method="paired t", df=(n - 1).astype(np.int64),
    )


def clustered_paired(
    n: np.ndarray, sum_d: np.ndarray, g_groups: np.ndarray, g_n: np.ndarray, g_sum: np.ndarray,
    n_groups: int, alpha: float,
) -> PairedStats:
    """Cluster-robust paired interval and test.

    ``g_groups``/``g_n``/``g_sum`` describe (group, cluster) cells: the group
    index of each cell, its number of queries and its sum of differences.
    """
    n = np.asarray(n, dtype=np.float64)
    n_safe = np.maximum(n, 1)
    mean = np.asarray(sum_d) / n_safe
    resid = g_sum - g_n * mean[g_groups]
    ss = np.bincount(g_groups, weights=resid**2, minlength=n_groups)
    G = np.bincount(g_groups, minlength=n_groups).astype(np.float64)
    var_mean = np.where(G > 1, G / np.maximum(G - 1, 1) * ss / n_safe**2, 0.0)
    se = np.sqrt(var_mean)
    lower, upper, p = _t_from_moments(n, mean, se, G - 1, alpha)
    lower = np.where(G > 1, lower, -1.0)
    upper = np.where(G > 1, upper, 1.0)
    p = np.where(G > 1, p, 1.0)
    return PairedStats(
        n=n.astype(np.int64), delta=np.where(n > 0, mean, 0.0), lower=lower, upper=upper, p_drop=p,
        sd=se * np.sqrt(n_safe), n_drop=None, n_gain=None, method="cluster-robust t",
        df=(G - 1).astype(np.int64),
    )


def paired_bootstrap_interval(
    d: np.ndarray, alpha: float, *, clusters: np.ndarray | None = None, n_boot: int = 4000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Seeded paired (cluster) bootstrap: (lower, upper, one-sided p of a drop).

    Resamples queries (or whole clusters) with replacement; vectorised as a
    multinomial weight matrix, so ``n_boot`` resamples cost one matrix product.
    """
    d = np.asarray(d, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if clusters is None:
        units, n_units = d, d.size
        sizes = np.ones(d.size)
    else:
        _, inv = np.unique(clusters, return_inverse=True)
        n_units = int(inv.max()) + 1
        units = np.bincount(inv, weights=d, minlength=n_units)
        sizes = np.bincount(inv, minlength=n_units).astype(np.float64)
    if n_units < 2:
        return -1.0, 1.0, 1.0
    out = np.empty(n_boot)
    step = max(1, int(2_000_000 // max(n_units, 1)))
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        w = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=k).astype(np.float64)
        out[start:start + k] = (w @ units) / (w @ sizes)
    lo, hi = np.quantile(out, [alpha, 1 - alpha])
    p = float((np.count_nonzero(out >= 0.0) + 1) / (n_boot + 1))
    return float(max(lo, -1.0)), float(min(hi, 1.0)), p


# ------------------------------------------------------- multiple testing


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    adj_sorted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj_sorted, 1.0)
    return out


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false-discovery-rate control)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adj_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj_sorted, 1.0)
    return out


def tarone_bonferroni(p: np.ndarray, p_min: np.ndarray, alpha: float) -> tuple[np.ndarray, int]:
    """Tarone's (1990) modified Bonferroni adjustment for discrete tests.

    An exact test on few discordant pairs can never reach a small p-value
    (``p_min``: the smallest p it could produce). Such tests cannot cause a
    false rejection, so they need not share the error budget: with ``K`` the
    smallest k such that at most k tests have ``p_min <= alpha / k``, only
    those tests form the family and each is judged at ``alpha / K``.
    Returns adjusted p-values (``p * K`` inside the family, 1 outside) and K.
    """
    p = np.asarray(p, dtype=np.float64)
    p_min = np.asarray(p_min, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy(), 0
    k = 1
    while k < m and int(np.count_nonzero(p_min <= alpha / k)) > k:
        k += 1
    family = p_min <= alpha / k
    adj = np.where(family, np.minimum(p * k, 1.0), 1.0)
    return adj, k


# ------------------------------------------------------------------ power


def queries_needed(sd: float, gap: float, alpha: float, power: float = 0.8) -> float | None:
    """Queries needed for a one-sided test at ``alpha`` to resolve ``gap``.

    ``gap`` is the distance between the estimate and the margin it must
    clear; None when it cannot be resolved (no gap, or no spread measured).
    """
    if gap <= 0 or not np.isfinite(gap) or sd <= 0 or not np.isfinite(sd):
        return None
    z = _NORMAL.inv_cdf(1 - alpha) + _NORMAL.inv_cdf(power)
    return float(np.ceil((z * sd / gap) ** 2))


def min_exact_size(alpha: float, *, mid_p: bool = True) -> int:
    """Smallest slice whose McNemar p can fall strictly below ``alpha`` (every query discordant)."""
    if alpha <= 0:
        return 10**9
    # p_min(n) = 0.5 ** (n + mid_p) < alpha  <=>  n > log2(1/alpha) - mid_p
    return max(1, int(np.floor(-np.log2(alpha) - (1.0 if mid_p else 0.0))) + 1)


def norm_ppf(q: float) -> float:
    return _NORMAL.inv_cdf(q)
