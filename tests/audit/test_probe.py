"""The result every probe returns (`rewardlab.audit.probe`): verdicts that tell "no effect" from
"underpowered", one Benjamini-Hochberg correction per run, and the shared statistics (rates
against a tolerance with exact MDEs, means with cluster-bootstrap CIs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from rewardlab import Sample, Score
from rewardlab.audit.probe import (
    ProbeResult,
    Verdict,
    adjust,
    bootstrap_p,
    mde_rate,
    mean_result,
    rate_result,
    scorer,
)


def result(**kw: object) -> ProbeResult:
    base: dict[str, object] = dict(probe="t", name="x", estimate=0.1, low=0.0, high=0.2, null="x = 0", p=0.5,
                                   mde=0.04, n=100, clusters=100, min_effect=0.05)
    base.update(kw)
    return ProbeResult(**base)  # type: ignore[arg-type]


def test_verdicts_tell_no_effect_from_underpowered() -> None:
    assert result(p=0.001).verdict is Verdict.effect
    assert result(p=0.5, mde=0.04).verdict is Verdict.no_effect  # could have found 0.05
    assert result(p=0.5, mde=0.2).verdict is Verdict.underpowered  # could not
    assert result(p=0.5, mde=None).verdict is Verdict.underpowered  # unknown power is not "clean"
    assert result(p=0.001, baseline=True).verdict is Verdict.baseline
    assert result(estimate=None).verdict is Verdict.not_computed
    assert result(estimate=math.nan).estimate is None  # NaN is "not measured"
    assert result(p=0.01, q=0.2).verdict is Verdict.no_effect  # q decides once corrected
    with pytest.raises(ValueError, match="outside"):
        result(p=1.5)
    row = result(p=0.001).row()
    assert {"probe", "estimate", "ci_low", "ci_high", "p", "q", "mde", "verdict", "null", "n"} <= set(row)
    assert row["verdict"] == "effect"


def test_adjust_corrects_the_tests_of_a_run_once_and_skips_baselines() -> None:
    runs = [result(p=0.01), result(p=0.04), result(p=0.03, baseline=True), result(p=0.03), result(p=None),
            result(p=0.2)]
    out = adjust(runs)
    # BH over the 4 tests (0.01, 0.04, 0.03, 0.2): q = 0.04, 0.0533, 0.0533, 0.2
    assert [r.q for r in out] == pytest.approx([0.04, 0.16 / 3, None, 0.16 / 3, None, 0.2])
    assert [r.verdict for r in out][:2] == [Verdict.effect, Verdict.no_effect]
    assert out[2].q is None and out[2].verdict is Verdict.baseline


def test_mde_rate_is_exact() -> None:
    # p0 = 0: one positive rejects; P(at least one in n at the MDE) = power
    m = mde_rate(20)
    assert 1 - (1 - m) ** 20 == pytest.approx(0.8)
    # p0 > 0: the power of the exact one-sided test at the MDE is 0.8
    n, p0 = 200, 0.05
    m = mde_rate(n, p0)
    k = next(k for k in range(n + 1) if binom.sf(k - 1, n, p0) <= 0.05)
    assert binom.sf(k - 1, n, m) == pytest.approx(0.8, abs=1e-6) and m > p0
    assert mde_rate(0) == math.inf and mde_rate(3, 0.5) == math.inf  # 3 items cannot reject 0.5


def test_rate_result_none_found_is_clean_only_with_enough_items() -> None:
    few = rate_result("g", "fpr", [False] * 20, min_effect=0.05)
    assert few.estimate == 0 and few.p == 1.0 and few.low == 0.0 and 0.15 < few.high < 0.17  # Wilson
    assert few.mde == pytest.approx(1 - 0.2 ** (1 / 20)) and few.verdict is Verdict.underpowered
    many = rate_result("g", "fpr", [False] * 100, min_effect=0.05)
    assert many.mde < 0.05 and many.verdict is Verdict.no_effect
    one = rate_result("g", "fpr", [True] + [False] * 99)
    assert one.p == 0.0 and one.verdict is Verdict.effect and one.estimate == 0.01


def test_rate_result_counts_clusters_not_items() -> None:
    # 10 prompts x 5 keys; every key fools the reward on prompt 0 only: one independent event
    hits = [c == 0 for c in range(10) for _ in range(5)]
    clusters = [c for c in range(10) for _ in range(5)]
    r = rate_result("g", "fpr", hits, clusters=clusters, tolerance=0.02)
    assert r.n == 50 and r.clusters == 10 and r.details["cluster_hits"] == 1
    # null per cluster: 5 x 0.02 = 0.1; P(Binomial(10, 0.1) >= 1)
    assert r.p == pytest.approx(1 - 0.9 ** 10)
    assert r.ci_method == "cluster bootstrap percentile" and r.low <= 0.1 <= r.high


def test_mean_result_ci_p_and_mde() -> None:
    rng = np.random.default_rng(0)
    shifted = rng.normal(0.5, 1.0, 200)
    r = mean_result("x", "shift", shifted, n_resamples=2000)
    assert r.low < 0.5 < r.high and r.p < 0.01 and r.verdict is Verdict.effect
    assert r.mde == pytest.approx(2.8 / math.sqrt(200), rel=0.15)  # (1.96 + 0.84)·sd/sqrt(n)
    null = mean_result("x", "none", rng.normal(0, 1.0, 200), n_resamples=2000, min_effect=0.3)
    assert null.p > 0.01 and null.verdict in (Verdict.no_effect, Verdict.effect)
    # clustered: 20 clusters of 10 identical values carry the information of 20 items, not 200
    per_cluster = rng.normal(0, 1.0, 20)
    clustered = mean_result("x", "c", np.repeat(per_cluster, 10), clusters=np.repeat(np.arange(20), 10),
                            n_resamples=2000)
    naive = mean_result("x", "c", np.repeat(per_cluster, 10), n_resamples=2000)
    assert clustered.high - clustered.low > 2.5 * (naive.high - naive.low)
    flat = mean_result("x", "flat", [0.0] * 30)
    assert flat.p == 1.0 and flat.mde is None and flat.verdict is Verdict.underpowered


def test_bootstrap_p_sides() -> None:
    v = np.linspace(-1, 3, 401)  # P(<= 0) = 0.25
    assert bootstrap_p(v) == pytest.approx(0.5, abs=0.01)
    assert bootstrap_p(v, alternative="greater") == pytest.approx(0.25, abs=0.01)
    assert bootstrap_p(v, alternative="less") == pytest.approx(0.75, abs=0.01)


def test_scorer_is_one_batch_through_the_api() -> None:
    calls: list[int] = []

    def length(samples: list[Sample]) -> list[Score]:
        calls.append(len(samples))
        return [Score.of(float(len(s.response_text))) for s in samples]

    from rewardlab import reward

    rw = reward(length, kind="model", range=(0, 1e9), register=False)
    run = scorer(rw)
    out = run([Sample(prompt="p", response="ab"), Sample(prompt="p", response="abc")])
    assert [s.value for s in out] == [2.0, 3.0] and calls == [2]
    assert run([]) == []
