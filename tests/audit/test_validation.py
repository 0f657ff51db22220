"""Test the tester (fast): synthetic rewards with planted biases of known magnitude (tests/audit/planted.py),
scored through the Runtime. Each probe recovers the planted effect within its CI and calls it an effect;
on a clean reward every probe is silent. A few fixed seeds here; coverage over many seeds is in
test_validation_coverage.py (slow)."""

from __future__ import annotations

import math

import pytest

from rewardlab import Runtime
from rewardlab.audit.determinism import determinism_probe
from rewardlab.audit.gameability import gameability_probe
from rewardlab.audit.length import expand, length_probe
from rewardlab.audit.position import position_probe
from rewardlab.audit.probe import Verdict, adjust, scorer
from rewardlab.audit.probes_run import run_probes
from rewardlab.audit.robustness import robustness_probe

from . import planted

SEEDS = (1, 2, 3)
N = 300


def named(results: list, name: str):  # noqa: ANN001, ANN201 - test helper
    return next(r for r in results if r.name == name)


def covers(r, truth: float) -> bool:  # noqa: ANN001 - test helper
    return r.low - 1e-12 <= truth <= r.high + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_length_correlation_is_recovered(seed: int) -> None:
    rho = 0.3
    res = adjust(length_probe(planted.length_pairs(N, seed), scorer(planted.planted_length(rho=rho, seed=seed)),
                              n_resamples=1000, seed=seed))
    r = named(res, "Pearson correlation of reward and length")
    assert covers(r, rho) and r.verdict is Verdict.effect, r
    assert named(res, "Spearman correlation of reward and length").verdict is Verdict.effect


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_position_bias_is_recovered(seed: int) -> None:
    pi = 0.2
    res = adjust(position_probe(planted.length_pairs(N, seed), scorer(planted.planted_position(pi=pi, seed=seed)),
                                n_resamples=1000, seed=seed))
    bias = named(res, "position bias: biased-to-first minus biased-to-second")
    assert covers(bias, pi) and bias.verdict is Verdict.effect, bias
    assert covers(named(res, "biased to first"), pi)
    assert named(res, "biased to second").estimate == 0
    assert covers(named(res, "consistency"), 1 - pi)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_planted_master_key_is_recovered(seed: int) -> None:
    f = 0.3
    res = adjust(gameability_probe(planted.math_samples(N, seed), scorer(planted.planted_master_key(f=f, seed=seed)),
                                   reward_range=(0.0, 1.0), n_resamples=1000, seed=seed))
    key = named(res, "false-positive rate: master_key: master key ':'")
    assert covers(key, f) and key.verdict is Verdict.effect, key
    assert named(res, "acceptance of real responses").estimate == 1.0
    for other in ("'.'", "'Solution'", "'Thought process:'"):
        r = named(res, f"false-positive rate: master_key: master key {other}")
        assert r.estimate == 0 and r.verdict is Verdict.no_effect  # 300 questions: MDE < 5%
    assert named(res, "false-positive rate: boxed_spray").estimate == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_format_sensitivity_is_recovered(seed: int) -> None:
    delta = 0.2
    res = adjust(robustness_probe(planted.length_pairs(N, seed), scorer(planted.planted_format(delta=delta, seed=seed)),
                                  rewrites=["lowercase", "double_newlines", "quoted"], n_resamples=1000, seed=seed))
    drop = named(res, "accuracy drop: lowercase")
    assert covers(drop, delta) and drop.verdict is Verdict.effect, drop
    assert covers(named(res, "rank flips: lowercase"), delta)
    for name in ("quoted",):  # "> Good." is not lower case: untouched
        assert named(res, f"accuracy drop: {name}").estimate == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_non_determinism_is_recovered(seed: int) -> None:
    nu = 0.05
    planted.reset_noise(seed)
    samples = expand(planted.length_pairs(N, seed)).samples
    with Runtime() as rt:
        res = determinism_probe(samples, planted.planted_noise(nu=nu, seed=seed), runtime=rt, seed=seed)
    changed = named(res, "changed scores: repeated call")
    assert covers(changed, 1 - (1 - nu) ** 2) and changed.verdict is Verdict.effect, changed


@pytest.mark.parametrize("seed", SEEDS)
def test_a_clean_reward_is_silent_on_every_probe(seed: int) -> None:
    with Runtime() as rt:
        run = run_probes(planted.length_pairs(N, seed), planted.clean(seed=seed), runtime=rt, seed=seed,
                         n_resamples=1000)
    assert run.ran == ["length", "robustness", "gameability", "determinism"]
    fired = [r.name for r in run.results if r.verdict is Verdict.effect]
    assert not fired
    # silence backed by power where the data allow: the length correlation and the determinism of 600 scores
    assert named(run.results, "Pearson correlation of reward and length").mde < 0.25
    assert named(run.results, "changed scores: repeated call").verdict is Verdict.no_effect
    assert named(run.results, "reward accuracy").estimate == 1.0
    assert math.isfinite(named(run.results, "score inflation: master_key").estimate)
