"""Length bias (`rewardlab.audit.length`): on real HH-RLHF pairs a length reward is caught by both
correlations and the accuracy gap, the content-blind rulers are reported as baselines (checked
against direct counts), a length-blind reward is not flagged, and sets share a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

import rewardlab
from rewardlab import PreferenceSet, Sample, Score
from rewardlab.audit.length import expand, length_only_reward, length_probe
from rewardlab.audit.probe import Verdict, adjust

from .probe_data import content, hh_pairs, synthetic_pairs, uniform


def by_length(batch: list[Sample]) -> list[Score]:
    return [Score.of(float(len(s.response_text))) for s in batch]


def named(results: list, name: str):  # noqa: ANN001, ANN201 - test helper
    return next(r for r in results if r.name == name)


def test_a_length_reward_on_hh_rlhf_is_caught(shared_data: Path) -> None:
    pairs = hh_pairs(shared_data, 150)
    res = adjust(length_probe(pairs, by_length, n_resamples=1000))
    for name in ("Pearson correlation of reward and length", "Spearman correlation of reward and length"):
        r = named(res, name)
        assert r.estimate == pytest.approx(1.0) and r.verdict is Verdict.effect and r.q is not None
    gap = named(res, "accuracy gap: chosen longer minus chosen shorter")
    assert gap.estimate == pytest.approx(1.0) and gap.verdict is Verdict.effect
    # the rulers, checked against direct counts
    longer = sum(len(p.chosen) > len(p.rejected) for p in pairs)
    shorter = sum(len(p.chosen) < len(p.rejected) for p in pairs)
    assert named(res, "longest wins accuracy").estimate == pytest.approx(longer / 150)
    assert named(res, "shortest wins accuracy").estimate == pytest.approx(shorter / 150)
    assert named(res, "reward accuracy").estimate == pytest.approx(longer / 150)  # it is the ruler
    for r in res:
        if "wins" in r.name or "accuracy when" in r.name or r.name == "reward accuracy":
            assert r.baseline and r.verdict is Verdict.baseline and r.q is None
            assert r.low <= r.estimate <= r.high


def test_a_length_blind_reward_is_not_flagged() -> None:
    pairs = synthetic_pairs(300, seed=1)

    def clean(batch: list[Sample]) -> list[Score]:
        return [Score.of(content(s.response_text) + 0.1 * uniform("noise", s.response_text)) for s in batch]

    res = adjust(length_probe(pairs, clean, n_resamples=1000))
    assert named(res, "reward accuracy").estimate == 1.0
    gap = named(res, "accuracy gap: chosen longer minus chosen shorter")
    assert gap.estimate == pytest.approx(0.0) and gap.verdict is not Verdict.effect
    for name in ("Pearson correlation of reward and length", "Spearman correlation of reward and length"):
        r = named(res, name)
        assert abs(r.estimate) < 0.15 and r.verdict is not Verdict.effect  # after the run's correction
        assert r.mde is not None and r.mde < 0.25  # 300 pairs could find a correlation of 0.25


def test_length_only_reward_of_a_long_way_to_go() -> None:
    assert length_only_reward(100, 100) == 1.0
    assert length_only_reward(150, 100) == pytest.approx(0.5)
    assert length_only_reward(50, 100) == pytest.approx(0.5)
    assert length_only_reward(300, 100) == pytest.approx(-1.0)


def test_sets_share_a_cluster_and_subsets_get_their_own_rulers() -> None:
    items = [PreferenceSet(id=f"s{i}", prompt=f"q{i}", chosen=["a" * (5 + i)],
                           rejected=["b" * (1 + i), "c" * (9 + i), "d" * (3 + i)],
                           subset="focus" if i % 2 else "math") for i in range(20)]
    ex = expand(items)
    assert len(ex.pairs) == 60 and len(set(ex.clusters)) == 20
    res = length_probe(items, by_length, n_resamples=500)
    corr = named(res, "Pearson correlation of reward and length")
    assert corr.n == 80 and corr.clusters == 20
    # per subset: chosen (5+i) beats 2 of 3 rejected on length
    assert named(res, "longest wins accuracy [focus]").estimate == pytest.approx(2 / 3)
    assert named(res, "shortest wins accuracy [math]").estimate == pytest.approx(1 / 3)


def test_through_the_scoring_api_in_one_batch(shared_data: Path) -> None:
    calls: list[int] = []

    @rewardlab.reward(range=(0, 1e9), kind="model", register=False)
    def words(samples: list[Sample]) -> list[float]:
        """Word count of the response (higher is longer)."""
        return [float(len(s.response_text.split())) for s in samples]

    def run(batch: list[Sample]) -> list[Score]:
        calls.append(len(batch))
        return rewardlab.score(batch, words)

    pairs = hh_pairs(shared_data, 40)
    res = length_probe(pairs, run, n_resamples=500)
    assert calls == [80]  # one batch: every response once
    assert named(res, "Spearman correlation of reward and length").estimate > 0.9
