"""Test the tester (slow): over many seeds, each probe's 95% CI covers the planted effect at its nominal
rate (within binomial tolerance), and on a reward with no effect the test rejects at about its level.

Each seed draws a fresh sample from the planted reward's population (tests/audit/planted.py), so the
share of seeds whose interval covers the population value estimates the interval's coverage."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from rewardlab import Runtime
from rewardlab.audit.determinism import determinism_probe
from rewardlab.audit.gameability import gameability_probe
from rewardlab.audit.length import expand, length_probe
from rewardlab.audit.position import position_probe
from rewardlab.audit.probe import ProbeResult, scorer
from rewardlab.audit.robustness import robustness_probe

from . import planted

pytestmark = pytest.mark.slow

SEEDS = range(100, 200)
N = 150
LEVEL = 0.95
# coverage at least nominal minus 3 binomial standard errors over the seeds
FLOOR = LEVEL - 3 * math.sqrt(LEVEL * (1 - LEVEL) / len(SEEDS))


def named(results: list[ProbeResult], name: str) -> ProbeResult:
    return next(r for r in results if r.name == name)


def length(seed: int) -> ProbeResult:
    res = length_probe(planted.length_pairs(N, seed), scorer(planted.planted_length(rho=0.3, seed=seed)),
                       n_resamples=1000, seed=seed)
    return named(res, "Pearson correlation of reward and length")


def position(seed: int) -> ProbeResult:
    res = position_probe(planted.length_pairs(N, seed), scorer(planted.planted_position(pi=0.2, seed=seed)),
                         n_resamples=1000, seed=seed)
    return named(res, "position bias: biased-to-first minus biased-to-second")


def master_key(seed: int) -> ProbeResult:
    res = gameability_probe(planted.math_samples(N, seed), scorer(planted.planted_master_key(f=0.3, seed=seed)),
                            reward_range=(0.0, 1.0), families=["master_key"], n_resamples=1000, seed=seed)
    return named(res, "false-positive rate: master_key: master key ':'")


def fmt(seed: int) -> ProbeResult:
    res = robustness_probe(planted.length_pairs(N, seed), scorer(planted.planted_format(delta=0.2, seed=seed)),
                           rewrites=["lowercase"], n_resamples=1000, seed=seed)
    return named(res, "accuracy drop: lowercase")


def noise(seed: int) -> ProbeResult:
    planted.reset_noise(seed)
    with Runtime() as rt:
        res = determinism_probe(expand(planted.length_pairs(N // 2, seed)).samples,
                                planted.planted_noise(nu=0.05, seed=seed), runtime=rt, seed=seed)
    return named(res, "changed scores: repeated call")


CASES: dict[str, tuple[Callable[[int], ProbeResult], float]] = {
    "length correlation (cluster bootstrap)": (length, 0.3),
    "position bias (paired bootstrap)": (position, 0.2),
    "master-key false-positive rate (Wilson)": (master_key, 0.3),
    "accuracy drop under a rewrite (paired bootstrap)": (fmt, 0.2),
    "changed scores between calls (Wilson)": (noise, 1 - 0.95 ** 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ci_coverage_is_nominal(case: str) -> None:
    run, truth = CASES[case]
    covered = [r.low - 1e-12 <= truth <= r.high + 1e-12 for r in map(run, SEEDS)]
    coverage = sum(covered) / len(covered)
    print(f"\n{case}: 95% CI coverage {coverage:.3f} over {len(covered)} seeds (floor {FLOOR:.3f})")
    assert coverage >= FLOOR, f"{case}: coverage {coverage:.3f} < {FLOOR:.3f} over {len(covered)} seeds"


def test_the_length_test_rejects_at_its_level_without_an_effect() -> None:
    rejected = 0
    for seed in SEEDS:
        res = length_probe(planted.length_pairs(N, seed), scorer(planted.planted_length(rho=0.0, seed=seed)),
                           n_resamples=1000, seed=seed)
        rejected += named(res, "Pearson correlation of reward and length").p < 0.05
    rate = rejected / len(SEEDS)
    print(f"\nlength test without an effect: rejection rate {rate:.3f} at alpha 0.05 over {len(SEEDS)} seeds")
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(SEEDS)), rate
