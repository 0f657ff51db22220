"""audit.stats: golden values from the reference notes (McNemar of reward-bench issue #269, Wilson,
Cohen's kappa, Kendall tau-b), the bootstrap against scipy.stats.bootstrap, clustering, strata,
the BCa fallback, Benjamini-Hochberg and the minimum-detectable-effect formulas."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats as st

from rewardlab.audit import stats
from rewardlab.audit.stats import (
    CI,
    agreement,
    benjamini_hochberg,
    bootstrap_ci,
    cohen_kappa,
    mcnemar,
    mde_mean_diff,
    mde_paired_proportions,
    mde_proportion,
    paired_bootstrap_diff,
    weighted_mean,
    wilson_ci,
)


def test_docstring_examples() -> None:
    result = doctest.testmod(stats, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0


# -- McNemar: reward-bench issue #269 (scoring-rules §5) -------------------------------------------

def test_mcnemar_golden_39_26() -> None:
    m = mcnemar(39, 26)
    assert (m.b, m.c) == (39, 26)
    assert round(m.p_exact, 4) == 0.1360
    assert round(m.p_midp, 4) == 0.1089
    assert round(m.p_chi2_cc, 4) == 0.1366


@pytest.mark.parametrize(("b", "c", "p"), [(30, 23, 0.410), (29, 27, 0.894), (4, 3, 1.000)])
def test_mcnemar_golden_exact(b: int, c: int, p: float) -> None:
    assert round(mcnemar(b, c).p_exact, 3) == p


def test_mcnemar_is_symmetric_and_matches_binomtest() -> None:
    for b, c in [(0, 5), (12, 3), (100, 130)]:
        m, r = mcnemar(b, c), mcnemar(c, b)
        assert m.p_exact == r.p_exact and m.p_midp == r.p_midp
        assert m.p_exact == pytest.approx(st.binomtest(min(b, c), b + c, 0.5).pvalue)
        assert m.p_midp < m.p_exact


def test_mcnemar_without_discordant_items() -> None:
    m = mcnemar(0, 0)
    assert (m.p_exact, m.p_midp, m.p_chi2_cc) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        mcnemar(-1, 2)


# -- Wilson ----------------------------------------------------------------------------------------

def test_wilson_golden_and_edges() -> None:
    lo, hi = wilson_ci(70, 100)
    assert (round(lo, 3), round(hi, 3)) == (0.604, 0.781)
    lo, hi = wilson_ci(0, 20)
    assert lo == 0 and 0.1 < hi < 0.2
    lo, hi = wilson_ci(20, 20)
    assert hi == pytest.approx(1) and 0.8 < lo < 0.9
    with pytest.raises(ValueError):
        wilson_ci(0, 0)
    with pytest.raises(ValueError):
        wilson_ci(5, 3)


# -- bootstrap -------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["percentile", "basic", "bca"])
def test_bootstrap_agrees_with_scipy(method: str) -> None:
    rng = np.random.default_rng(3)
    x = (rng.random(300) < 0.63).astype(float)
    ours = bootstrap_ci("mean", x, n_resamples=20_000, method=method, seed=1)  # type: ignore[arg-type]
    ref = st.bootstrap((x,), np.mean, n_resamples=20_000, method=method, rng=2).confidence_interval
    assert ours.method == method
    assert ours.estimate == pytest.approx(x.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.006)
    assert ours.high == pytest.approx(ref.high, abs=0.006)


def test_bootstrap_is_reproducible_by_seed() -> None:
    x = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 10
    assert bootstrap_ci("mean", x, seed=5) == bootstrap_ci("mean", x, seed=5)
    assert bootstrap_ci("mean", x, seed=5, n_resamples=500) != bootstrap_ci("mean", x, seed=6, n_resamples=500)


def test_bca_degenerate_falls_back_to_percentile() -> None:
    ci = bootstrap_ci("mean", [1.0] * 50, n_resamples=1000)
    assert ci.method == "percentile" and "BCa degenerate" in ci.note
    assert (ci.low, ci.estimate, ci.high) == (1.0, 1.0, 1.0)


def test_clusters_move_together() -> None:
    """Each prompt's items duplicated 4 times: clustering by prompt gives the interval of the
    100 distinct prompts; ignoring the clusters gives one half as wide (4x the items)."""
    rng = np.random.default_rng(0)
    base = (rng.random(100) < 0.6).astype(float)
    x = np.repeat(base, 4)
    prompts = np.repeat(np.arange(100), 4)
    flat = bootstrap_ci("mean", x, method="percentile", n_resamples=4000)
    clustered = bootstrap_ci("mean", x, clusters=prompts, method="percentile", n_resamples=4000)
    distinct = bootstrap_ci("mean", base, method="percentile", n_resamples=4000)
    width = lambda c: c.high - c.low  # noqa: E731
    assert width(clustered) == pytest.approx(width(distinct), rel=0.15)
    assert width(clustered) == pytest.approx(2 * width(flat), rel=0.2)


def test_resample_weights_keep_strata_and_clusters() -> None:
    clusters = ["a", "a", "b", "c", "c", "c", "d"]
    strata = ["s", "s", "s", "t", "t", "t", "t"]
    units = stats._units(len(clusters), clusters, strata)
    w = stats.resample_weights(units, 500, np.random.default_rng(0))
    assert w.shape == (500, 7)
    # items of one cluster share a weight; each stratum keeps its number of clusters
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 3] == w[:, 5])
    assert np.all(w[:, 0] + w[:, 2] == 2)  # stratum s: clusters a, b; 2 draws
    assert np.all(w[:, 3] + w[:, 6] == 2)  # stratum t: clusters c, d
    with pytest.raises(ValueError, match="nested"):
        stats._units(3, ["a", "a", "b"], ["s", "t", "t"])


def test_stratified_weighted_score_has_fixed_weights() -> None:
    """A score with fixed per-subset weights: a stratified bootstrap keeps every subset's size, so a
    subset of 100% stays 100% in every resample and the spread comes from the other subset only."""
    x = np.array([1.0] * 20 + [1, 0] * 40)
    subset = np.array(["easy"] * 20 + ["hard"] * 80)

    def score(data: np.ndarray, w: np.ndarray) -> np.ndarray:
        easy, hard = subset == "easy", subset == "hard"
        return 0.5 * weighted_mean(data[easy], w[:, easy]) + 0.5 * weighted_mean(data[hard], w[:, hard])

    ci = bootstrap_ci(score, x, strata=subset, method="percentile", n_resamples=4000)
    assert ci.estimate == pytest.approx(0.75)
    hard_only = bootstrap_ci("mean", x[20:], method="percentile", n_resamples=4000)
    assert ci.high - ci.low == pytest.approx(0.5 * (hard_only.high - hard_only.low), rel=0.15)


def test_paired_difference_ci_and_pvalue() -> None:
    rng = np.random.default_rng(1)
    a = (rng.random(500) < 0.7).astype(float)
    b = a.copy()
    flip = rng.choice(500, 60, replace=False)
    b[flip[:45]] = 0  # B loses 45 of A's right answers
    b[flip[45:]] = 1
    ci = paired_bootstrap_diff(a, b, n_resamples=5000)
    assert ci.estimate == pytest.approx(a.mean() - b.mean())
    assert ci.low < ci.estimate < ci.high
    assert ci.p_value is not None and ci.p_value < 0.05
    same = paired_bootstrap_diff(a, a, n_resamples=500)
    assert same.estimate == 0 and same.p_value == 1.0
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap_diff(a, b[:10])


def test_paired_difference_is_narrower_than_unpaired() -> None:
    """Pairing removes the shared item difficulty: the paired CI is much narrower than the
    difference of two independent intervals."""
    rng = np.random.default_rng(2)
    a = (rng.random(800) < 0.65).astype(float)
    b = a.copy()
    b[rng.choice(800, 40, replace=False)] = 0
    paired = paired_bootstrap_diff(a, b, method="percentile", n_resamples=3000)
    ca = bootstrap_ci("mean", a, method="percentile", n_resamples=3000)
    assert paired.high - paired.low < 0.5 * (ca.high - ca.low)


def test_bootstrap_many_equals_one_at_a_time() -> None:
    """Several statistics from one set of resamples: each interval is what bootstrap_ci gives alone with
    the same seed, and the differences carry a p-value."""
    rng = np.random.default_rng(4)
    a = (rng.random(400) < 0.7).astype(float)
    b = (rng.random(400) < 0.6).astype(float)
    clusters = np.repeat(np.arange(200), 2)
    many = stats.bootstrap_many({"a": lambda w: weighted_mean(a, w), "b": lambda w: weighted_mean(b, w),
                                 "d": lambda w: weighted_mean(a, w) - weighted_mean(b, w)}, 400,
                                clusters=clusters, n_resamples=3000, seed=9, differences={"d"})
    assert many["a"] == bootstrap_ci("mean", a, clusters=clusters, n_resamples=3000, seed=9)
    assert many["b"] == bootstrap_ci("mean", b, clusters=clusters, n_resamples=3000, seed=9)
    alone = paired_bootstrap_diff(a, b, clusters=clusters, n_resamples=3000, seed=9)
    assert many["d"] == alone and many["d"].p_value is not None and many["a"].p_value is None


def test_ci_to_dict_is_json_ready() -> None:
    ci = CI(0.5, math.nan, 0.7, "percentile", note="x")
    assert ci.to_dict()["ci"] == [None, 0.7] and ci.as_list()[1] == 0.7


# -- agreement --------------------------------------------------------------------------------------

def test_kappa_golden() -> None:
    a = [int(c) for c in "11001011"]
    b = [int(c) for c in "10001011"]
    assert cohen_kappa(a, b) == pytest.approx(0.75)
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))


def test_weighted_kappa_stat_and_its_interval() -> None:
    a = [int(c) for c in "11001011"] * 25
    b = [int(c) for c in "10001011"] * 25
    stat = stats.weighted_kappa_stat(a, b)
    assert stat(None, np.ones((1, len(a))))[0] == pytest.approx(0.75)
    ci = bootstrap_ci(stat, np.arange(len(a)), n_resamples=2000)
    assert ci.estimate == pytest.approx(0.75) and ci.low < 0.75 < ci.high


def test_spearman_interval() -> None:
    lo, hi = stats.spearman_ci(0.5, 100)
    z = st.norm.ppf(0.975) * math.sqrt(1.06 / 97)
    assert (lo, hi) == pytest.approx((math.tanh(math.atanh(0.5) - z), math.tanh(math.atanh(0.5) + z)))
    assert all(math.isnan(x) for x in stats.spearman_ci(0.5, 3))


def test_agreement_golden_kendall_and_signs() -> None:
    out = agreement([1, 2, 2, 3], [1, 3, 2, 2])
    assert round(out["kendall_tau_b"], 2) == 0.40
    assert out["pearson"] == pytest.approx(st.pearsonr([1, 2, 2, 3], [1, 3, 2, 2])[0])
    margins_a = [0.5, -1.0, 2.0, 0.0, 1.0, -0.3]
    margins_b = [0.1, -2.0, -1.0, 0.0, 3.0, 0.2]
    out = agreement(margins_a, margins_b)
    assert out["pairwise_agreement"] == pytest.approx(4 / 6)
    assert out["cohen_kappa"] == pytest.approx(cohen_kappa(np.sign(margins_a).tolist(), np.sign(margins_b).tolist()))
    assert out["n"] == 6
    const = agreement([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert math.isnan(const["pearson"]) and const["pairwise_agreement"] == 1.0


# -- Benjamini-Hochberg -----------------------------------------------------------------------------

def test_benjamini_hochberg_matches_definition() -> None:
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    q = benjamini_hochberg(p)
    m = len(p)
    for i in range(m):
        expected = min(1.0, min(p[j] * m / (j + 1) for j in range(i, m)))
        assert q[i] == pytest.approx(expected)
    assert all(qi >= pi for qi, pi in zip(q, p, strict=True))
    shuffled = benjamini_hochberg([p[3], p[0], math.nan, p[1]])
    assert math.isnan(shuffled[2]) and shuffled[1] == pytest.approx(p[0] * 3)


# -- minimum detectable effects -----------------------------------------------------------------------

def test_mde_formulas() -> None:
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert mde_proportion(400) == pytest.approx(z * math.sqrt(0.25 / 400))
    assert mde_proportion(400, design_effect=2) == pytest.approx(z * math.sqrt(0.5 / 400))
    assert mde_paired_proportions(1000, 0.1) == pytest.approx(z * math.sqrt(0.1 / 1000))
    assert mde_mean_diff(2.0, 50, 50) == pytest.approx(z * 2 * math.sqrt(2 / 50))
    assert mde_proportion(0) == math.inf


def test_mde_proportion_has_its_power() -> None:
    """An effect of size MDE is found about 80% of the time (simulated binomial tests)."""
    n = 400
    delta = mde_proportion(n)
    rng = np.random.default_rng(0)
    k = rng.binomial(n, 0.5 + delta, size=4000)
    z = (k / n - 0.5) / math.sqrt(0.25 / n)
    power = float(np.mean(np.abs(z) > st.norm.ppf(0.975)))
    assert 0.75 < power < 0.85
