"""Pair accuracy (`rewardlab.audit.pairs`): strict wins, ties and unscored pairs counted as wrong
and reported apart, sets expanded, on real HH-RLHF pairs and through the scoring API."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import rewardlab
from rewardlab import PreferencePair, PreferenceSet, Sample, Score
from rewardlab.audit.pairs import PairAccuracy, compare, pair_accuracy
from rewardlab.io.preferences import read_preferences

HH = Path("preference") / "hh_rlhf_harmless_base_test.jsonl.gz"


def length_scorer(batch: list[Sample]) -> list[Score]:
    return [Score.of(len(s.response_text)) for s in batch]


@pytest.fixture(scope="module")
def hh(shared_data: Path) -> list[PreferencePair]:
    return read_preferences(shared_data / HH).pairs()


def test_compare_counts_strict_wins_ties_and_unscored() -> None:
    chosen = [Score.of(2.0), Score.of(1.0), Score.of(0.5), Score.error("timeout"), Score.of(1.0)]
    rejected = [Score.of(1.0), Score.of(1.0), Score.of(0.7), Score.of(0.0), Score.abstain("no answer")]
    acc = compare(chosen, rejected)
    assert (acc.n, acc.correct, acc.ties, acc.unscored, acc.wrong) == (5, 1, 1, 2, 1)
    assert acc.accuracy == pytest.approx(1 / 5)  # a tie and an unscored pair count as wrong
    assert acc.margins == (1.0, 0.0, pytest.approx(-0.2), None, None)
    assert acc.reasons == ("chosen: error: timeout", "rejected: abstain: no answer")
    assert compare([], []).accuracy is None
    with pytest.raises(ValueError, match="2 chosen scores but 1"):
        compare([Score.of(1.0)] * 2, [Score.of(0.0)])


def test_longest_wins_on_hh_rlhf_matches_a_direct_count(hh: list[PreferencePair]) -> None:
    acc = pair_accuracy(length_scorer, hh)
    assert isinstance(acc, PairAccuracy) and acc.n == 2312 and acc.unscored == 0
    longer = sum(len(p.chosen) > len(p.rejected) for p in hh)  # type: ignore[arg-type]
    same = sum(len(p.chosen) == len(p.rejected) for p in hh)  # type: ignore[arg-type]
    assert (acc.correct, acc.ties) == (longer, same)
    assert acc.margins[0] == len(hh[0].chosen) - len(hh[0].rejected)  # type: ignore[arg-type]
    # on harmless-base the longer answer is usually the worse one
    assert acc.accuracy is not None and acc.accuracy < 0.5


def test_a_constant_reward_cannot_look_better_than_useless(hh: list[PreferencePair]) -> None:
    # a reward that gives every response the same score ties everywhere: 0 accuracy, not 0.5
    acc = pair_accuracy(lambda batch: [Score.of(0.7)] * len(batch), hh[:100])
    assert acc.accuracy == 0.0 and acc.ties == 100


def test_through_the_scoring_api_with_failures_reported(hh: list[PreferencePair]) -> None:
    @rewardlab.reward(name="test_words_unless_sorry", range=(0, math.inf), register=False)
    def words(response_text: str) -> Score:
        if "sorry" in response_text.lower():
            return Score.abstain("apology")
        return Score.of(len(response_text.split()))

    acc = pair_accuracy(lambda batch: rewardlab.score(batch, words), hh[:300])
    apologies = sum(("sorry" in p.chosen.lower()) or ("sorry" in p.rejected.lower())  # type: ignore[union-attr]
                    for p in hh[:300])
    assert acc.n == 300 and acc.unscored == apologies > 0
    assert all(r.endswith("abstain: apology") for r in acc.reasons) and len(acc.reasons) == 5
    assert acc.correct + acc.ties + acc.wrong + acc.unscored == 300


def test_sets_score_each_response_once_and_expand_to_pairs() -> None:
    # RewardBench 2's best-of-4 worked example, scores given per response
    scores = {"c1": 2.0, "r1a": 1.0, "r1b": 0.5, "r1c": 0.1,
              "c3": 0.5, "r3a": 0.9, "r3b": 0.1, "r3c": 0.0}
    calls: list[int] = []

    def scorer(batch: list[Sample]) -> list[Score]:
        calls.append(len(batch))
        return [Score.of(scores[s.response_text]) for s in batch]

    items = [PreferenceSet(id="1", prompt="p", chosen="c1", rejected=["r1a", "r1b", "r1c"]),
             PreferenceSet(id="3", prompt="p", chosen="c3", rejected=["r3a", "r3b", "r3c"]),
             PreferencePair(prompt="p", chosen="c1", rejected="c3")]
    acc = pair_accuracy(scorer, items)
    assert calls == [10]  # one batch: 4 + 4 responses of the sets, 2 of the pair
    assert (acc.n, acc.correct) == (7, 6)
    assert acc.margins == pytest.approx((1.0, 1.5, 1.9, -0.4, 0.4, 0.5, 1.5))


def test_a_scorer_that_drops_samples_is_refused() -> None:
    pair = PreferencePair(prompt="p", chosen="a", rejected="b")
    with pytest.raises(ValueError, match="returned 1 scores for 2 samples"):
        pair_accuracy(lambda batch: [Score.of(1.0)], [pair])
    assert pair_accuracy(length_scorer, []).n == 0
