"""Determinism (`rewardlab.audit.determinism`): a reward that depends on its batch is caught by the
batch-size variants, a noisy one by the repeated call, a pure one passes every variant; leaf
options are restored after the probe."""

from __future__ import annotations

import random

import pytest

import rewardlab
from rewardlab import Runtime, Sample
from rewardlab.audit.determinism import determinism_probe
from rewardlab.audit.probe import Verdict

RNG = random.Random(0)  # the noisy reward's draws: reseeded by the test that uses it
SAMPLES = [Sample(prompt=f"q{i}", response="word " * (1 + i % 17)) for i in range(200)]


@rewardlab.reward(range=(-1e9, 1e9), kind="model", register=False)
def centred(samples: list[Sample]) -> list[float]:
    """Length minus the batch's mean length: depends on what else is in the batch."""
    lengths = [len(s.response_text) for s in samples]
    mean = sum(lengths) / len(lengths)
    return [v - mean for v in lengths]


@rewardlab.reward(range=(-1e9, 1e9), register=False)
def noisy(response_text: str) -> float:
    """Length plus fresh noise on one call in ten per sample."""
    return len(response_text) + (RNG.random() if RNG.random() < 0.1 else 0.0)


@rewardlab.reward(range=(0, 1e9), kind="model", register=False)
def pure(samples: list[Sample]) -> list[float]:
    """Length of each response alone."""
    return [float(len(s.response_text)) for s in samples]


def by_name(results: list) -> dict:  # noqa: ANN001 - test helper
    return {r.name.removeprefix("changed scores: "): r for r in results}


def test_a_batch_dependent_model_reward_is_caught() -> None:
    res = by_name(determinism_probe(SAMPLES, centred, batch_sizes=(1, 7)))
    assert res["batch size 1"].estimate > 0.9 and res["batch size 1"].verdict is Verdict.effect
    assert res["batch size 7"].verdict is Verdict.effect
    # 200 samples run in chunks of 64: another order puts them in other chunks
    assert res["reversed order"].verdict is Verdict.effect
    # 60 samples are one chunk, whose mean does not depend on the order
    small = by_name(determinism_probe(SAMPLES[:60], centred, batch_sizes=(60,)))
    assert small["reversed order"].estimate == 0 and small["shuffled order"].estimate == 0
    assert small["batch size 60"].estimate == 0


def test_a_noisy_reward_is_caught_and_a_pure_one_passes() -> None:
    RNG.seed(1)
    with Runtime() as rt:  # no score cache: every call recomputes
        res = by_name(determinism_probe(SAMPLES, noisy, runtime=rt))
        assert set(res) == {"repeated call", "reversed order", "shuffled order"}  # not a model reward
        # P(changed) = 1 - 0.9^2 = 0.19 per sample
        assert res["repeated call"].verdict is Verdict.effect
        assert res["repeated call"].low < 0.19 < res["repeated call"].high
        clean = by_name(determinism_probe(SAMPLES, pure, runtime=rt, batch_sizes=(1, 3)))
    assert set(clean) == {"repeated call", "reversed order", "shuffled order", "batch size 1", "batch size 3"}
    for r in clean.values():
        assert r.estimate == 0 and r.verdict is Verdict.no_effect and r.mde < 0.01


def test_leaf_options_are_restored() -> None:
    spec = rewardlab.build(pure)
    leaf = next(iter(spec.root.leaves()))
    before = leaf.options
    determinism_probe(SAMPLES[:20], spec, batch_sizes=(2,))
    assert leaf.options is before and leaf.options.batch_size is None
    with pytest.raises(ValueError):
        determinism_probe(SAMPLES[:5], spec, batch_sizes=(0,))
    assert leaf.options is before


@rewardlab.reward(range=(-1e9, 1e9), kind="model", register=False)
def padded(samples: list[Sample], *, padding_side: str = "right") -> list[float]:
    """Length, off by one for a left-padded batch: depends on the padding side."""
    return [len(s.response_text) + (1.0 if padding_side == "left" else 0.0) for s in samples]


def test_the_padding_side_of_a_model_reward_is_varied_and_restored() -> None:
    spec = rewardlab.build(padded)
    leaf = next(iter(spec.root.leaves()))
    res = by_name(determinism_probe(SAMPLES[:50], spec, batch_sizes=(5,)))
    assert res["padding side right"].estimate == 0
    assert res["padding side left"].estimate == 1.0 and res["padding side left"].verdict is Verdict.effect
    assert leaf.reward.params["padding_side"] == "right"  # the configured reward is back
    assert "padding side left" not in by_name(determinism_probe(SAMPLES[:10], pure))
