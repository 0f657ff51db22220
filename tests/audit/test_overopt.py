"""Over-optimisation: the KL_bon golden table, the unbiased best-of-n estimator against brute-force
enumeration of every subset, and the curves on planted proxies."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.special import comb

from rewardlab.audit.overopt import (
    PromptScores,
    best_of_n,
    bon_weights,
    default_ns,
    kl_bon,
    overoptimisation,
    score_prompts,
)
from rewardlab.core.types import Sample, Score

# Gao et al. 2022 (scoring-rules §4): KL_bon = log n - (n-1)/n, to 4 decimals
GOLDEN_KL = {1: 0.0, 2: 0.1931, 4: 0.6363, 8: 1.2044, 16: 1.8351, 64: 3.1745, 256: 4.5491}


@pytest.mark.parametrize(("n", "expected"), sorted(GOLDEN_KL.items()))
def test_kl_bon_golden_table(n: int, expected: float) -> None:
    assert round(kl_bon(n), 4) == expected


def test_kl_bon_rejects_n_below_one() -> None:
    with pytest.raises(ValueError):
        kl_bon(0)


def brute_force(selector: list[float], target: list[float], n: int) -> float:
    """Mean over all C(m, n) subsets of the target of the selector's best, ties shared equally."""
    total = 0.0
    subsets = list(itertools.combinations(range(len(selector)), n))
    for sub in subsets:
        best = max(selector[i] for i in sub)
        tied = [target[i] for i in sub if selector[i] == best]
        total += sum(tied) / len(tied)
    return total / len(subsets)


def test_hand_computed_case() -> None:
    # proxy ranks c > b > a; gold a=3, b=1, c=2. Best-of-2 over {ab, ac, bc}: b, c, c -> (1 + 2 + 2) / 3
    assert best_of_n([0.1, 0.5, 0.9], [3.0, 1.0, 2.0], 2) == pytest.approx(5 / 3)
    assert best_of_n([0.1, 0.5, 0.9], [3.0, 1.0, 2.0], 1) == pytest.approx(2.0)  # the mean
    assert best_of_n([0.1, 0.5, 0.9], [3.0, 1.0, 2.0], 3) == pytest.approx(2.0)  # always c


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_over_all_subsets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 9))
    # few distinct proxy values, so ties occur
    selector = [float(v) for v in rng.integers(0, 4, size=m)]
    target = [float(v) for v in rng.normal(size=m)]
    for n in range(1, m + 1):
        assert best_of_n(selector, target, n) == pytest.approx(brute_force(selector, target, n), abs=1e-12)


def test_weights_are_the_order_statistic_probabilities() -> None:
    for m, n in [(5, 1), (5, 3), (12, 12), (40, 7)]:
        w = bon_weights(m, n)
        exact = [comb(i - 1, n - 1, exact=True) / comb(m, n, exact=True) for i in range(1, m + 1)]
        assert w == pytest.approx(exact, rel=1e-9)
        assert w.sum() == pytest.approx(1.0)
    assert bon_weights(5000, 256).sum() == pytest.approx(1.0)  # log space: no overflow
    with pytest.raises(ValueError):
        bon_weights(3, 4)


def test_several_targets_at_once() -> None:
    sel = [0.3, 0.1, 0.2, 0.2]
    t = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]])
    both = best_of_n(sel, t, 2)
    assert both == pytest.approx([best_of_n(sel, t[:, 0], 2), best_of_n(sel, t[:, 1], 2)])


def test_default_ns() -> None:
    assert default_ns(1) == [1]
    assert default_ns(8) == [1, 2, 4, 8]
    assert default_ns(12) == [1, 2, 4, 8, 12]


def _planted(seed: int = 0, prompts: int = 60, m: int = 32, k: int = 4) -> list[PromptScores]:
    """Gold = true quality q. Each proxy = q + its own heavy-tailed error: selecting hard on one proxy
    picks its errors (over-optimisation); errors independent across proxies, so ensembles cancel them."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(prompts):
        q = rng.normal(size=m)
        err = rng.standard_t(df=1.5, size=(m, k))
        out.append(PromptScores(f"p{i}", q[:, None] + err, q))
    return out


def test_planted_overoptimisation_and_ensembles_narrow_the_gap() -> None:
    res = overoptimisation(_planted(), ns=[1, 2, 4, 8, 16, 32], n_resamples=500)
    assert res.ns == (1, 2, 4, 8, 16, 32) and res.prompts == 60 and res.candidates == 60 * 32
    single = res.curve("single")
    first, last = single.points[0], single.points[-1]
    assert first.proxy_gain.estimate == pytest.approx(0.0) and first.gold_gain.estimate == pytest.approx(0.0)
    assert last.kl == pytest.approx(kl_bon(32))
    # the single proxy's own gain runs ahead of the gold gain, significantly, and more so as n grows
    assert last.gap.low > 0 and last.gap.estimate > single.points[2].gap.estimate
    # and the gold gain peaks, then falls: selecting harder on one proxy buys its errors
    assert max(p.gold_gain.estimate for p in single.points) > last.gold_gain.estimate
    for name in ("mean", "worst", "uwo"):
        end = res.curve(name).points[-1]
        assert end.gap.estimate < last.gap.estimate, name
        assert end.gold_vs_single is not None and end.gold_vs_single.low > 0, name  # more gold than one proxy
        assert end.gap_vs_single is not None and end.gap_vs_single.high < 0, name  # a narrower gap, paired
        assert end.gap_vs_single.estimate == pytest.approx(end.gap.estimate - last.gap.estimate)


def test_a_proxy_equal_to_gold_has_no_gap() -> None:
    rng = np.random.default_rng(1)
    ps = []
    for i in range(20):
        q = rng.normal(size=10)
        ps.append(PromptScores(f"p{i}", np.stack([q, 2 * q + 1], axis=1), q))
    res = overoptimisation(ps, n_resamples=200)
    for c in res.curves:
        for p in c.points:
            assert p.gap.estimate == pytest.approx(0.0, abs=1e-9), (c.objective, p.n)
            assert p.gold_gain.estimate >= 0


def test_prompts_too_small_for_n_are_left_out_and_counted() -> None:
    rng = np.random.default_rng(2)
    ps = [PromptScores(f"p{i}", rng.normal(size=(m, 2)), rng.normal(size=m)) for i, m in enumerate([4, 4, 8, 8, 8])]
    res = overoptimisation(ps, ns=[1, 4, 8], n_resamples=100)
    assert [p.prompts for p in res.curve("mean").points] == [5, 5, 3]
    with pytest.raises(ValueError, match="best-of-16 needs 16"):
        overoptimisation(ps, ns=[16])


def test_constant_proxy_is_refused() -> None:
    ps = [PromptScores("p", np.ones((4, 2)), np.arange(4.0))]
    with pytest.raises(ValueError, match="same value to every candidate"):
        overoptimisation(ps)


def test_score_prompts_drops_candidates_that_are_not_ok() -> None:
    groups = [("a", [Sample(prompt="a", response="x"), Sample(prompt="a", response="yy"),
                      Sample(prompt="a", response="zzz")]), ("b", [Sample(prompt="b", response="q")])]

    def score(spec: str, batch: list[Sample]) -> list[Score]:
        out = []
        for s in batch:
            if spec == "gold" and s.response_text == "yy":
                out.append(Score.error("judge timed out"))
            else:
                out.append(Score.of(float(len(s.response_text)) * (2 if spec == "p1" else 1)))
        return out

    calls: list[tuple[str, int]] = []

    def counting(spec: str, batch: list[Sample]) -> list[Score]:
        calls.append((spec, len(batch)))
        return score(spec, batch)

    got, dropped = score_prompts(groups, ["p0", "p1"], "gold", counting)
    assert calls == [("p0", 4), ("p1", 4), ("gold", 4)]  # one batch per reward
    assert [g.key for g in got] == ["a", "b"]
    assert got[0].proxies.tolist() == [[1.0, 2.0], [3.0, 6.0]] and got[0].gold.tolist() == [1.0, 3.0]
    assert dropped.count == 1 and "gold error: judge timed out" in dropped.reasons[0]
    assert math.isfinite(got[1].gold[0])
