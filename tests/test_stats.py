"""Tests of :mod:`adaptergate.decide.stats` and the statistical rule :func:`decide_stat`.

Three layers:

* known values -- published numbers where there are some, otherwise values
  computed independently here (plain ``math``, ``scipy``) from the published
  formulas;
* properties (hypothesis) -- mirror symmetry under swapping candidate and
  baseline, identical adapters never FAIL, a clearly regressed query never
  turns FAIL into PASS, intervals contain the estimate and stay in [-1, 1];
* one seeded type-I-error check of the whole slice-gated rule.

Conventions (see the module docstring of adaptergate.decide.stats): delta =
candidate - baseline; each bound is a one-sided 1-alpha bound, so the
interval is two-sided at 1-2*alpha.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from adaptergate.decide import stats as S
from adaptergate.decide.rules import build_slice_index, decide_stat
from adaptergate.models import GateConfig

PROPS = settings(
    max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _one(x) -> float:
    return float(np.asarray(x).reshape(-1)[0])


def _binary(a: int, b: int, c: int, d: int, alpha: float) -> S.PairedStats:
    """binary_paired for one table: a both pass, b drop, c gain, d both fail."""
    return S.binary_paired(
        np.array([a + b + c + d]), np.array([a]), np.array([b]), np.array([c]), alpha
    )


# ------------------------------------------------------------------ Newcombe


def _wilson_ref(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def _newcombe10_ref(a: int, b: int, c: int, d: int, alpha: float) -> tuple[float, float, float]:
    """Newcombe (1998, Stat Med 17:2635) method 10 for candidate - baseline.

    Written from the published recipe with plain ``math``: Wilson score
    limits (l1, u1) for the baseline pass rate p1 = (a+b)/n and (l2, u2) for
    the candidate's p2 = (a+c)/n, combined with the correlation estimate phi,
    whose numerator AD - BC is continuity-corrected: AD - BC - n/2 when that
    is positive, 0 when 0 <= AD - BC <= n/2, AD - BC when negative; phi = 0
    when a margin is empty. (This is the form in Fagerland, Lydersen & Laake
    2017, "Statistical Analysis of Contingency Tables", ch. 8, and in R's
    contingencytables::Newcombe_square_and_add_CI_paired_2x2 and
    biostatUZH::confIntPairedProportion.) ``alpha`` is one-sided.
    """
    n = a + b + c + d
    z = NormalDist().inv_cdf(1 - alpha)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson_ref(a + b, n, z)
    l2, u2 = _wilson_ref(a + c, n, z)
    prod = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if prod == 0:
        phi = 0.0
    else:
        num = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
        phi = num / math.sqrt(prod)
    delta = p2 - p1
    lo = delta - math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    hi = delta + math.sqrt((u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2)
    return delta, max(lo, -1.0), min(hi, 1.0)


def test_newcombe_published_cavo_2012():
    """Published 95% interval, Fagerland, Lydersen & Laake (2017) ch. 8.

    Cavo et al. (2012), complete response before/after consolidation:
    [[59, 6], [16, 80]]; the book (and the contingencytables package's own
    test) gives pi_1+ - pi_+1 = -0.0621, 95% CI -0.1186 to -0.0046 for the
    Newcombe square-and-add (method 10) interval. With "before" as the
    baseline: both 59, drop 6, gain 16, neither 80, and delta = +10/161, so
    the interval is mirrored: 0.0046 to 0.1186 (alpha = 0.025 one-sided).
    """
    r = _binary(59, 6, 16, 80, 0.025)
    assert _one(r.delta) == pytest.approx(10 / 161, abs=1e-12)
    assert _one(r.lower) == pytest.approx(0.0046, abs=6e-5)
    assert _one(r.upper) == pytest.approx(0.1186, abs=6e-5)
    # and from the other side: the table as published (baseline = "after")
    r = _binary(59, 16, 6, 80, 0.025)
    assert _one(r.lower) == pytest.approx(-0.1186, abs=6e-5)
    assert _one(r.upper) == pytest.approx(-0.0046, abs=6e-5)


def test_newcombe_negatively_correlated_table():
    """a=36, b=12, c=2, d=0 (n=50): AD - BC = -24 < 0, so phi needs no correction.

    Method 10 computed independently here (and by hand): delta = -0.2,
    95% interval -0.34043 to -0.05693.
    """
    r = _binary(36, 12, 2, 0, 0.025)
    assert _one(r.delta) == pytest.approx(-0.2, abs=1e-12)
    assert _one(r.lower) == pytest.approx(-0.3404276, abs=1e-6)
    assert _one(r.upper) == pytest.approx(-0.0569296, abs=1e-6)
    ref = _newcombe10_ref(36, 12, 2, 0, 0.025)
    assert (_one(r.lower), _one(r.upper)) == pytest.approx(ref[1:], abs=1e-12)


@pytest.mark.parametrize(
    "table",
    [
        (59, 6, 16, 80), (1, 1, 7, 12), (36, 12, 2, 0), (14, 5, 0, 22), (5, 0, 0, 5),
        (40, 3, 1, 6), (2, 9, 3, 30), (170, 12, 5, 13), (0, 4, 1, 7), (10, 0, 3, 0),
    ],
)
@pytest.mark.parametrize("alpha", [0.025, 0.05, 0.1])
def test_newcombe_matches_published_formula(table, alpha):
    a, b, c, d = table
    delta, lo, hi = _newcombe10_ref(a, b, c, d, alpha)
    r = _binary(a, b, c, d, alpha)
    assert _one(r.delta) == pytest.approx(delta, abs=1e-12)
    assert _one(r.lower) == pytest.approx(lo, abs=1e-9)
    assert _one(r.upper) == pytest.approx(hi, abs=1e-9)


@pytest.mark.parametrize(
    "table",
    [(0, 0, 0, 20), (20, 0, 0, 0), (10, 0, 0, 10), (80, 0, 0, 20), (0, 20, 0, 0),
     (0, 0, 20, 0), (0, 5, 0, 15), (15, 0, 5, 0), (0, 1, 0, 0), (1, 0, 0, 0)],
)
def test_newcombe_zero_cells_stay_in_range_and_are_not_degenerate(table):
    a, b, c, d = table
    r = _binary(a, b, c, d, 0.05)
    lo, hi, est = _one(r.lower), _one(r.upper), _one(r.delta)
    assert -1.0 <= lo <= est <= hi <= 1.0
    assert np.isfinite([lo, hi]).all()
    # a real interval, not a point: nothing is known exactly from finite data
    assert hi - lo > 0.01


def test_binary_paired_empty_group_is_uninformative():
    r = S.binary_paired(np.array([0, 10]), np.array([0, 5]), np.array([0, 2]), np.array([0, 1]), 0.05)
    assert (_one(r.lower[0]), _one(r.delta[0]), _one(r.upper[0])) == (-1.0, 0.0, 1.0)
    assert r.p_drop[0] == 1.0
    assert r.n_drop.tolist() == [0, 2] and r.n_gain.tolist() == [0, 1]


# ------------------------------------------------------------------ McNemar


def _midp_ref(b: int, m: int) -> float:
    gt = sum(math.comb(m, k) for k in range(b + 1, m + 1))
    return (gt + 0.5 * math.comb(m, b)) / 2**m


def test_mcnemar_exact_matches_scipy_binomtest_and_midp_matches_hand_sum():
    for m in range(1, 26):
        for b in range(m + 1):
            exact = _one(S.mcnemar_p_drop(np.array([b]), np.array([m - b]), mid_p=False))
            ref = sps.binomtest(b, m, 0.5, alternative="greater").pvalue
            assert exact == pytest.approx(ref, rel=1e-10, abs=1e-15), (b, m)
            mid = _one(S.mcnemar_p_drop(np.array([b]), np.array([m - b])))
            assert mid == pytest.approx(_midp_ref(b, m), rel=1e-10, abs=1e-15), (b, m)
            assert 0.0 < mid < exact <= 1.0 or (mid == exact == 1.0)


def test_mcnemar_known_numbers():
    # 12 drops, 2 gains: P(X >= 12 | 14) = (91 + 14 + 1) / 2**14; mid-p = (15 + 91/2) / 2**14
    assert _one(S.mcnemar_p_drop(12, 2, mid_p=False)) == pytest.approx(106 / 16384, rel=1e-12)
    assert _one(S.mcnemar_p_drop(12, 2)) == pytest.approx(60.5 / 16384, rel=1e-12)
    # the same p as binary_paired reports for the table (36, 12, 2, 0)
    assert _one(_binary(36, 12, 2, 0, 0.05).p_drop) == pytest.approx(60.5 / 16384, rel=1e-12)
    # no discordant pairs: no evidence at all
    assert _one(S.mcnemar_p_drop(0, 0)) == 1.0
    assert _one(S.mcnemar_p_drop(0, 0, mid_p=False)) == 1.0
    # all gains: mid-p = 1 - 0.5**(m+1)
    assert _one(S.mcnemar_p_drop(0, 3)) == pytest.approx(1 - 0.5**4)


def test_mcnemar_p_min_is_the_all_drops_p_value():
    for m in range(0, 30):
        for mid in (True, False):
            expected = _one(S.mcnemar_p_drop(np.array([m]), np.array([0]), mid_p=mid))
            assert _one(S.mcnemar_p_min(np.array([m]), mid_p=mid)) == pytest.approx(expected, rel=1e-12)
            # and no outcome with m discordant pairs gets below it
            ps = S.mcnemar_p_drop(np.arange(m + 1), m - np.arange(m + 1), mid_p=mid)
            assert ps.min() >= expected * (1 - 1e-12)


# ------------------------------------------------------------------ paired t


def _sums(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array([d.size]), np.array([d.sum()]), np.array([(d * d).sum()])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("alpha", [0.025, 0.05, 0.1])
def test_paired_t_matches_scipy(seed, alpha):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 200))
    base = rng.uniform(0.2, 0.9, n)
    cand = np.clip(base + rng.normal(-0.02, 0.1, n), 0, 1)
    d = cand - base
    r = S.continuous_paired(*_sums(d), alpha)
    p_ref = sps.ttest_rel(cand, base, alternative="less").pvalue
    lo_ref, hi_ref = sps.t.interval(1 - 2 * alpha, n - 1, loc=d.mean(), scale=sps.sem(d))
    assert _one(r.delta) == pytest.approx(d.mean(), abs=1e-12)
    assert _one(r.p_drop) == pytest.approx(p_ref, rel=1e-7, abs=1e-12)
    assert _one(r.lower) == pytest.approx(lo_ref, abs=1e-9)
    assert _one(r.upper) == pytest.approx(hi_ref, abs=1e-9)
    assert _one(r.sd) == pytest.approx(d.std(ddof=1), rel=1e-9)
    assert _one(r.df) == n - 1


def test_paired_t_degenerate_groups():
    # n = 0 and n = 1: no variance estimate, no evidence
    r = S.continuous_paired(np.array([0, 1]), np.array([0.0, -0.5]), np.array([0.0, 0.25]), 0.05)
    assert r.lower.tolist() == [-1.0, -1.0] and r.upper.tolist() == [1.0, 1.0]
    assert r.p_drop.tolist() == [1.0, 1.0]
    # nothing moved at all: p of a drop is 1, the interval is the point 0
    r = S.continuous_paired(np.array([10]), np.array([0.0]), np.array([0.0]), 0.05)
    assert _one(r.p_drop) == 1.0 and _one(r.lower) == 0.0 == _one(r.upper)
    # every query dropped by exactly 0.25 (dyadic: exact sums, zero variance)
    r = S.continuous_paired(np.array([8]), np.array([-2.0]), np.array([0.5]), 0.05)
    assert _one(r.p_drop) == 0.0 and _one(r.delta) == -0.25


# ------------------------------------------------------------------ clustered


def _cluster_cells(d: np.ndarray, clusters: np.ndarray):
    uniq, inv = np.unique(clusters, return_inverse=True)
    g_n = np.bincount(inv).astype(np.float64)
    g_sum = np.bincount(inv, weights=d)
    return np.zeros(uniq.size, dtype=np.int64), g_n, g_sum


def _clustered(d: np.ndarray, clusters: np.ndarray, alpha: float) -> S.PairedStats:
    g_groups, g_n, g_sum = _cluster_cells(d, clusters)
    return S.clustered_paired(np.array([d.size]), np.array([d.sum()]), g_groups, g_n, g_sum, 1, alpha)


@pytest.mark.parametrize("seed", range(4))
def test_clustered_with_singleton_clusters_equals_paired_t(seed):
    """Every query its own cluster: G = n, residuals d_i - mean, and

    var_CR = G/(G-1) * sum (d_i - mean)^2 / n^2 = n/(n-1) * (n-1) s^2 / n^2 = s^2 / n,

    i.e. the G/(G-1) small-sample factor exactly cancels the 1/n vs 1/(n-1)
    difference: the cluster-robust SE *equals* the ordinary paired-t SE, on
    the same n-1 degrees of freedom.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 120))
    d = np.clip(rng.normal(-0.03, 0.2, n), -1, 1)
    cr = _clustered(d, np.arange(n), 0.05)
    t = S.continuous_paired(*_sums(d), 0.05)
    for field in ("delta", "lower", "upper", "p_drop", "sd"):
        assert _one(getattr(cr, field)) == pytest.approx(_one(getattr(t, field)), rel=1e-9, abs=1e-12)
    assert _one(cr.df) == _one(t.df) == n - 1


def test_clustered_matches_hand_computed_sandwich():
    rng = np.random.default_rng(7)
    clusters = rng.integers(0, 9, 60)
    d = np.round(rng.normal(-0.05, 0.2, 60), 3)
    cr = _clustered(d, clusters, 0.05)
    mean = d.mean()
    G = np.unique(clusters).size
    resid = np.array([d[clusters == g].sum() - (clusters == g).sum() * mean for g in np.unique(clusters)])
    se = math.sqrt(G / (G - 1) * (resid**2).sum() / d.size**2)
    tq = sps.t.ppf(0.95, G - 1)
    assert _one(cr.lower) == pytest.approx(mean - tq * se, abs=1e-12)
    assert _one(cr.upper) == pytest.approx(mean + tq * se, abs=1e-12)
    assert _one(cr.p_drop) == pytest.approx(sps.t.cdf(mean / se, G - 1), rel=1e-9)
    assert _one(cr.df) == G - 1


@pytest.mark.parametrize("k", [2, 5])
def test_clustered_copies_widen_the_interval(k):
    """k perfectly correlated copies of G values.

    The cluster-robust analysis is the paired t on the G distinct values
    (resid_g = k (d_g - mean): var = G/(G-1) k^2 (G-1) s_G^2 / (kG)^2 = s_G^2/G,
    df = G-1), while the naive analysis believes it has kG queries:
    var ratio = (kG - 1)/(G - 1) ~ k.
    """
    rng = np.random.default_rng(k)
    G = 30
    dg = np.clip(rng.normal(-0.02, 0.2, G), -1, 1)
    d = np.repeat(dg, k)
    clusters = np.repeat(np.arange(G), k)
    cr = _clustered(d, clusters, 0.05)
    on_distinct = S.continuous_paired(*_sums(dg), 0.05)
    naive = S.continuous_paired(*_sums(d), 0.05)
    for field in ("lower", "upper", "p_drop"):
        assert _one(getattr(cr, field)) == pytest.approx(_one(getattr(on_distinct, field)), rel=1e-9, abs=1e-12)
    w_cr = _one(cr.upper) - _one(cr.lower)
    w_naive = _one(naive.upper) - _one(naive.lower)
    assert w_cr > w_naive * 1.2
    se_ratio = (w_cr / sps.t.ppf(0.95, G - 1)) / (w_naive / sps.t.ppf(0.95, k * G - 1))
    assert se_ratio == pytest.approx(math.sqrt((k * G - 1) / (G - 1)), rel=1e-9)


def test_clustered_single_cluster_is_uninformative():
    d = np.array([-0.5, -0.4, -0.6])
    cr = _clustered(d, np.zeros(3, dtype=int), 0.05)
    assert (_one(cr.lower), _one(cr.upper), _one(cr.p_drop)) == (-1.0, 1.0, 1.0)


def test_decide_stat_clusters_singletons_equal_unclustered():
    rng = np.random.default_rng(3)
    b = rng.uniform(0.3, 1.0, 80)
    c = np.clip(b + rng.normal(-0.01, 0.1, 80), 0, 1)
    idx = build_slice_index([["x"] if i % 2 else ["y"] for i in range(80)])
    cfg = GateConfig(slice_epsilon=0.1)
    plain = decide_stat(b, c, idx, cfg)
    clustered = decide_stat(b, c, idx, cfg, clusters=np.arange(80))
    for ev in ("aggregate", "slices"):
        p, q = getattr(plain, ev).paired, getattr(clustered, ev).paired
        np.testing.assert_allclose(p.lower, q.lower, atol=1e-12)
        np.testing.assert_allclose(p.upper, q.upper, atol=1e-12)
        np.testing.assert_allclose(p.p_drop, q.p_drop, atol=1e-12)
    assert plain.verdict == clustered.verdict


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_is_seeded_and_contains_the_mean():
    rng = np.random.default_rng(11)
    d = np.clip(rng.normal(-0.02, 0.15, 300), -1, 1)
    first = S.paired_bootstrap_interval(d, 0.05, seed=1)
    again = S.paired_bootstrap_interval(d, 0.05, seed=1)
    other = S.paired_bootstrap_interval(d, 0.05, seed=2)
    assert first == again
    assert first != other
    assert first[0] == pytest.approx(other[0], abs=0.01)
    assert first[1] == pytest.approx(other[1], abs=0.01)
    lo, hi, p = first
    assert -1.0 <= lo < d.mean() < hi <= 1.0
    assert 0.0 < p <= 1.0
    # close to the t interval at this size (percentile vs t: same first-order width)
    t = S.continuous_paired(*_sums(d), 0.05)
    assert lo == pytest.approx(_one(t.lower), abs=0.006)
    assert hi == pytest.approx(_one(t.upper), abs=0.006)


def test_bootstrap_p_value_tracks_direction():
    d_down = np.full(50, -0.1) + np.linspace(-0.01, 0.01, 50)
    d_up = -d_down
    assert S.paired_bootstrap_interval(d_down, 0.05)[2] < 0.01
    assert S.paired_bootstrap_interval(d_up, 0.05)[2] > 0.99


def test_cluster_bootstrap_wider_with_duplicated_clusters():
    rng = np.random.default_rng(5)
    dg = np.clip(rng.normal(0.0, 0.2, 40), -1, 1)
    d = np.repeat(dg, 5)
    clusters = np.repeat(np.arange(40), 5)
    lo_n, hi_n, _ = S.paired_bootstrap_interval(d, 0.05, n_boot=2000, seed=3)
    lo_c, hi_c, _ = S.paired_bootstrap_interval(d, 0.05, clusters=clusters, n_boot=2000, seed=3)
    assert (hi_c - lo_c) > 1.5 * (hi_n - lo_n)  # sqrt(5) ~ 2.2 in expectation
    assert lo_c < d.mean() < hi_c


def test_bootstrap_single_unit_is_uninformative():
    assert S.paired_bootstrap_interval(np.array([-0.3]), 0.05) == (-1.0, 1.0, 1.0)
    assert S.paired_bootstrap_interval(np.array([-0.3, 0.1]), 0.05, clusters=np.array([4, 4])) == (-1.0, 1.0, 1.0)


# ------------------------------------------------------------------ multiplicity


def test_holm_textbook_example():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(S.holm_adjust(p), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    np.testing.assert_allclose(
        S.holm_adjust(np.array([0.01, 0.02, 0.03, 0.04, 0.05])), [0.05, 0.08, 0.09, 0.09, 0.09], rtol=1e-12
    )
    np.testing.assert_allclose(S.holm_adjust(np.array([0.3, 0.6])), [0.6, 0.6])
    np.testing.assert_allclose(S.holm_adjust(np.array([0.7, 0.8])), [1.0, 1.0])


def test_bh_textbook_example():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04
    np.testing.assert_allclose(S.bh_adjust(p), [0.02, 0.04, 0.04, 0.02], rtol=1e-12)
    np.testing.assert_allclose(S.bh_adjust(np.array([0.01, 0.02, 0.03, 0.04, 0.05])), [0.05] * 5, rtol=1e-12)
    # a large p after small ones does not drag them up; step-up keeps monotonicity
    np.testing.assert_allclose(S.bh_adjust(np.array([0.001, 0.9, 0.012])), [0.003, 0.9, 0.018], rtol=1e-12)


def test_adjustments_of_nothing():
    assert S.holm_adjust(np.array([])).size == 0
    assert S.bh_adjust(np.array([])).size == 0
    adj, k = S.tarone_bonferroni(np.array([]), np.array([]), 0.05)
    assert adj.size == 0 and k == 0


@PROPS
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=30))
def test_holm_bh_properties(ps):
    p = np.array(ps)
    m = p.size
    holm, bh = S.holm_adjust(p), S.bh_adjust(p)
    for adj in (holm, bh):
        assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adj[order]) >= -1e-15)  # monotone in the raw p-values
    assert np.all(bh <= holm + 1e-15)
    assert np.all(holm <= np.minimum(m * p, 1.0) + 1e-15)  # never worse than Bonferroni
    np.testing.assert_allclose(bh, sps.false_discovery_control(p, method="bh"), rtol=1e-12, atol=1e-15)


def test_tarone_excludes_tests_that_cannot_reject():
    p = np.array([0.004, 0.02, 0.5, 0.25, 1.0])
    p_min = np.array([1e-6, 1e-6, 0.5, 0.25, 0.125])
    adj, k = S.tarone_bonferroni(p, p_min, 0.05)
    # k = 1: two tests have p_min <= 0.05 > 1;  k = 2: two tests have p_min <= 0.025 <= 2
    assert k == 2
    np.testing.assert_allclose(adj, [0.008, 0.04, 1.0, 1.0, 1.0])


def test_tarone_with_mcnemar_p_min_hand_example():
    # mid-p minima 0.5**(m+1): m = 1..6 -> 0.25 .. 0.0078125; m = 10 -> 0.00048828125
    m = np.array([1, 2, 3, 4, 5, 6, 10, 10])
    p_min = S.mcnemar_p_min(m)
    p = np.full(m.size, 0.001)
    adj, k = S.tarone_bonferroni(p, p_min, 0.05)
    # k=1: 5 minima <= 0.05; k=2: 4 <= 0.025; k=3: 4 <= 0.0167; k=4: 3 <= 0.0125 -> K = 4
    assert k == 4
    np.testing.assert_allclose(adj, [1, 1, 1, 1, 1, 0.004, 0.004, 0.004])


def test_tarone_reduces_to_bonferroni_when_every_test_counts():
    p = np.array([0.001, 0.01, 0.2, 0.6])
    adj, k = S.tarone_bonferroni(p, np.full(4, 1e-9), 0.05)
    assert k == 4
    np.testing.assert_allclose(adj, np.minimum(p * 4, 1.0))


@PROPS
@given(
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 12)), min_size=1, max_size=25),
    st.floats(0.001, 0.3),
)
def test_tarone_k_is_the_smallest_admissible(rows, alpha):
    p = np.array([r[0] for r in rows])
    p_min = S.mcnemar_p_min(np.array([r[1] for r in rows]))
    p = np.maximum(p, p_min)
    adj, k = S.tarone_bonferroni(p, p_min, alpha)
    m = p.size
    admissible = [kk for kk in range(1, m + 1) if np.count_nonzero(p_min <= alpha / kk) <= kk]
    assert k == admissible[0]
    family = p_min <= alpha / k
    np.testing.assert_allclose(adj[family], np.minimum(p[family] * k, 1.0))
    assert np.all(adj[~family] == 1.0)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    assert k <= m


# ------------------------------------------------------------------ power


def test_queries_needed_closed_form():
    # n = ceil(((z_{1-a} + z_power) * sd / gap)^2)
    # (1.644854 + 0.841621)^2 * 100 = 618.26 -> 619
    assert S.queries_needed(1.0, 0.1, 0.05) == 619
    # (1.959964 + 1.281552)^2 * 100 = 1050.74 -> 1051
    assert S.queries_needed(0.5, 0.05, 0.025, power=0.9) == 1051
    z = NormalDist().inv_cdf(0.99) + NormalDist().inv_cdf(0.8)
    assert S.queries_needed(0.3, 0.02, 0.01) == math.ceil((z * 0.3 / 0.02) ** 2)
    for sd, gap in [(1.0, 0.0), (1.0, -0.1), (0.0, 0.1), (1.0, float("inf")), (float("nan"), 0.1)]:
        assert S.queries_needed(sd, gap, 0.05) is None


def test_min_exact_size_closed_form():
    assert S.min_exact_size(0.05, mid_p=False) == 5  # 0.5**5 = 0.03125 <= 0.05 < 0.5**4
    assert S.min_exact_size(0.05) == 4  # mid-p: 0.5**5 <= 0.05 < 0.5**4 with one query fewer
    assert S.min_exact_size(0.01, mid_p=False) == 7  # 0.0078 <= 0.01 < 0.0156
    assert S.min_exact_size(0.01) == 6
    assert S.min_exact_size(0.0) == 10**9
    for alpha in np.concatenate([np.linspace(0.001, 0.49, 157), [0.0125, 0.025, 0.00625]]):
        for mid in (True, False):
            n = S.min_exact_size(float(alpha), mid_p=mid)
            assert _one(S.mcnemar_p_min(n, mid_p=mid)) <= alpha
            assert n == 1 or _one(S.mcnemar_p_min(n - 1, mid_p=mid)) > alpha


# ------------------------------------------------------------------ properties: mirror


counts = st.integers(0, 40)
alphas = st.floats(0.005, 0.25)


@PROPS
@given(counts, counts, counts, counts, alphas)
def test_binary_paired_mirror_and_ranges(a, b, c, d, alpha):
    n = a + b + c + d
    fwd = _binary(a, b, c, d, alpha)
    rev = _binary(a, c, b, d, alpha)
    assert _one(rev.delta) == pytest.approx(-_one(fwd.delta), abs=1e-12)
    assert _one(rev.lower) == pytest.approx(-_one(fwd.upper), abs=1e-12)
    assert _one(rev.upper) == pytest.approx(-_one(fwd.lower), abs=1e-12)
    for r in (fwd, rev):
        lo, est, hi, p = _one(r.lower), _one(r.delta), _one(r.upper), _one(r.p_drop)
        assert -1.0 <= lo <= est <= hi <= 1.0
        assert 0.0 <= p <= 1.0
        if n:
            assert hi - lo > 0  # never a point
    if b + c:
        # mid-p of a drop and of a gain: P(X > b) + P(X < b) + P(X = b) = 1
        assert _one(fwd.p_drop) + _one(rev.p_drop) == pytest.approx(1.0, abs=1e-12)


diffs = st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=0, max_size=60)


@PROPS
@given(diffs, alphas)
def test_continuous_paired_mirror_and_ranges(ds, alpha):
    d = np.array(ds, dtype=np.float64)
    n, s1, s2 = _sums(d)
    fwd = S.continuous_paired(n, s1, s2, alpha)
    rev = S.continuous_paired(n, -s1, s2, alpha)
    assert _one(rev.delta) == -_one(fwd.delta)
    assert _one(rev.lower) == pytest.approx(-_one(fwd.upper), abs=1e-12)
    assert _one(rev.upper) == pytest.approx(-_one(fwd.lower), abs=1e-12)
    for r in (fwd, rev):
        lo, est, hi, p = _one(r.lower), _one(r.delta), _one(r.upper), _one(r.p_drop)
        assert -1.0 <= lo <= est + 1e-12 and est <= hi + 1e-12 and hi <= 1.0
        assert 0.0 <= p <= 1.0


# ------------------------------------------------------------------ decide_stat properties

TAG_POOL = ["lang=en", "lang=de", "intent=refund", "intent=order", "long", "short", "vip"]

configs = st.builds(
    GateConfig,
    epsilon=st.sampled_from([0.0, 0.01, 0.02, 0.05, 0.1]),
    slice_epsilon=st.one_of(st.none(), st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.2])),
    slice_min_size=st.integers(1, 8),
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.2]),
    multiplicity=st.sampled_from(["holm", "bh"]),
    strict=st.booleans(),
)


@st.composite
def datasets(draw, min_size=1, max_size=60):
    n = draw(st.integers(min_size, max_size))
    binary = draw(st.booleans())
    if binary:
        score = st.sampled_from([0.0, 1.0])
    else:
        score = st.floats(0.0, 1.0, allow_nan=False).map(lambda x: round(x, 3))
    base = np.array(draw(st.lists(score, min_size=n, max_size=n)))
    cand = np.array(draw(st.lists(score, min_size=n, max_size=n)))
    slices = draw(st.lists(st.lists(st.sampled_from(TAG_POOL), max_size=3, unique=True), min_size=n, max_size=n))
    return base, cand, slices


def _evidence_ok(ev) -> None:
    pr = ev.paired
    assert np.all(pr.lower >= -1.0) and np.all(pr.upper <= 1.0)
    assert np.all(pr.lower <= pr.delta + 1e-12) and np.all(pr.delta <= pr.upper + 1e-12)
    assert np.all((pr.p_drop >= 0.0) & (pr.p_drop <= 1.0))
    assert np.all((ev.p_adjusted >= 0.0) & (ev.p_adjusted <= 1.0))


@PROPS
@given(datasets(), configs)
def test_decide_stat_mirror_of_the_aggregate(data, cfg):
    base, cand, slices = data
    idx = build_slice_index(slices)
    fwd = decide_stat(base, cand, idx, cfg).aggregate
    rev = decide_stat(cand, base, idx, cfg).aggregate
    _evidence_ok(fwd)
    _evidence_ok(rev)
    assert _one(rev.paired.delta) == pytest.approx(-_one(fwd.paired.delta), abs=1e-12)
    if _one(fwd.alpha_used) != _one(rev.alpha_used):
        # the graphical procedure hands the slices' alpha to the aggregate when
        # every eligible slice rejected, which happens in one direction only;
        # the mirror must then hold at a common level
        assert cfg.slice_epsilon is not None
        assert {_one(fwd.alpha_used), _one(rev.alpha_used)} == {cfg.alpha, cfg.alpha / 2}
        fwd_at = decide_stat(base, cand, idx, cfg.model_copy(update={"slice_epsilon": None, "alpha": _one(rev.alpha_used)})).aggregate
        assert _one(rev.paired.lower) == pytest.approx(-_one(fwd_at.paired.upper), abs=1e-12)
        assert _one(rev.paired.upper) == pytest.approx(-_one(fwd_at.paired.lower), abs=1e-12)
        return
    assert _one(rev.paired.lower) == pytest.approx(-_one(fwd.paired.upper), abs=1e-12)
    assert _one(rev.paired.upper) == pytest.approx(-_one(fwd.paired.lower), abs=1e-12)


def test_decide_stat_mirror_when_the_slices_hand_their_alpha_to_the_aggregate():
    """A drop of 0.08 inside a margin of 0.1, significant in the one all-query slice.

    Forward, the slice (margin 0) FAILs, so its alpha/2 passes to the
    aggregate, whose interval is then reported at alpha; in reverse nothing
    fails and the aggregate stays at alpha/2. At a common level the
    intervals mirror exactly.
    """
    n = 400
    b, c = np.ones(n), np.ones(n)
    c[:32] = 0.0
    idx = build_slice_index([["all"]] * n)
    cfg = GateConfig(epsilon=0.1, slice_epsilon=0.0, alpha=0.05)
    fwd = decide_stat(b, c, idx, cfg)
    rev = decide_stat(c, b, idx, cfg)
    assert fwd.verdict == "FAIL" and fwd.aggregate.verdict[0] != "FAIL"
    assert _one(fwd.aggregate.alpha_used) == 0.05 and _one(rev.aggregate.alpha_used) == 0.025
    at_rev = S.binary_paired(np.array([n]), np.array([n - 32]), np.array([32]), np.array([0]), 0.025)
    assert _one(rev.aggregate.paired.lower) == pytest.approx(-_one(at_rev.upper), abs=1e-12)
    assert _one(rev.aggregate.paired.upper) == pytest.approx(-_one(at_rev.lower), abs=1e-12)
    assert _one(at_rev.lower) < _one(fwd.aggregate.paired.lower)  # alpha/2 is wider than alpha


@PROPS
@given(datasets(), configs)
def test_decide_stat_slice_intervals_mirror(data, cfg):
    base, cand, slices = data
    idx = build_slice_index(slices)
    fwd = decide_stat(base, cand, idx, cfg).slices
    rev = decide_stat(cand, base, idx, cfg).slices
    _evidence_ok(fwd)
    _evidence_ok(rev)
    np.testing.assert_allclose(rev.paired.delta, -fwd.paired.delta, atol=1e-12)
    np.testing.assert_allclose(rev.paired.lower, -fwd.paired.upper, atol=1e-12)
    np.testing.assert_allclose(rev.paired.upper, -fwd.paired.lower, atol=1e-12)


@PROPS
@given(datasets(), configs)
def test_identical_adapters_never_fail(data, cfg):
    base, _, slices = data
    dec = decide_stat(base, base.copy(), build_slice_index(slices), cfg)
    assert dec.verdict != "FAIL"
    assert dec.aggregate.verdict[0] != "FAIL"
    assert not np.any(dec.slices.verdict == "FAIL")
    _evidence_ok(dec.aggregate)
    _evidence_ok(dec.slices)


@PROPS
@given(datasets(), configs, st.lists(st.sampled_from(TAG_POOL), max_size=3, unique=True), st.integers(0, 60))
def test_a_regressed_query_never_turns_fail_into_pass(data, cfg, new_tags, where):
    base, cand, slices = data
    before = decide_stat(base, cand, build_slice_index(slices), cfg)
    k = min(where, base.size)
    base2 = np.insert(base, k, 1.0)
    cand2 = np.insert(cand, k, 0.0)
    slices2 = slices[:k] + [list(new_tags)] + slices[k:]
    after = decide_stat(base2, cand2, build_slice_index(slices2), cfg)
    _evidence_ok(after.aggregate)
    _evidence_ok(after.slices)
    if before.verdict == "FAIL":
        assert after.verdict != "PASS"


@PROPS
@given(datasets(min_size=2), st.integers(1, 6), alphas)
def test_clustered_ranges(data, n_clusters, alpha):
    base, cand, slices = data
    clusters = np.arange(base.size) % n_clusters
    dec = decide_stat(base, cand, build_slice_index(slices), GateConfig(alpha=min(alpha, 0.49), slice_epsilon=0.05), clusters=clusters)
    _evidence_ok(dec.aggregate)
    _evidence_ok(dec.slices)
    assert dec.clustered


# ------------------------------------------------------------------ type I error


def test_slice_gated_rule_keeps_the_family_wise_error_rate():
    """300 null datasets: independent Bernoulli(0.8) baseline and candidate.

    N = 200 queries, each tagged with 1-2 of 20 slices (about 15 queries a
    slice); zero margins so that FAIL is exactly "a significant drop
    somewhere" and the alpha split, Tarone family and hand-over are all
    exercised. The overall FAIL rate must stay within a binomial tolerance
    of alpha = 0.05.
    """
    rng = np.random.default_rng(20240611)
    tags = np.array([f"s{i:02d}" for i in range(20)])
    cfg = GateConfig(epsilon=0.0, slice_epsilon=0.0, slice_min_size=5, alpha=0.05)
    reps, fails, slice_tested = 300, 0, 0
    for _ in range(reps):
        b = (rng.random(200) < 0.8).astype(np.float64)
        c = (rng.random(200) < 0.8).astype(np.float64)
        sizes = rng.integers(1, 3, 200)
        slices = [list(rng.choice(tags, size=int(s), replace=False)) for s in sizes]
        dec = decide_stat(b, c, build_slice_index(slices), cfg)
        fails += dec.verdict == "FAIL"
        slice_tested += bool(np.any(dec.slices.verdict != ""))
    assert slice_tested == reps  # slice gating was really on
    assert fails / reps <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
