"""Robustness (`rewardlab.audit.robustness`): a casing-sensitive reward is caught by the casing
rewrite and not by whitespace ones; `math_answer` keeps its accuracy on real GSM8K pairs under the
answer-format rewrites; conversations are rewritten in their last assistant turn; the exact MDE floor."""

from __future__ import annotations

from pathlib import Path

import pytest
from scipy.stats import binom

import rewardlab
from rewardlab import Message, PreferencePair, Sample, Score
from rewardlab.audit.probe import Verdict, adjust
from rewardlab.audit.robustness import mde_drop, rewrite_sample, robustness_probe

from .probe_data import content, gsm8k_pairs, hh_pairs


def named(results: list, name: str):  # noqa: ANN001, ANN201 - test helper
    return next(r for r in results if r.name == name)


def shouty(batch: list[Sample]) -> list[Score]:
    """Counts capital letters (ranks by casing) plus words: a casing-sensitive reward."""
    return [Score.of(5.0 * sum(c.isupper() for c in s.response_text) + len(s.response_text.split()))
            for s in batch]


def test_a_casing_sensitive_reward_flips_under_lowercase_only(shared_data: Path) -> None:
    pairs = hh_pairs(shared_data, 200)
    res = adjust(robustness_probe(pairs, shouty, rewrites=["lowercase", "trailing_whitespace", "quoted"],
                                  n_resamples=1000))
    flips = named(res, "rank flips: lowercase")
    assert flips.estimate > 0.03 and flips.verdict is Verdict.effect and flips.low <= flips.estimate <= flips.high
    for name in ("trailing_whitespace", "quoted"):
        stable = named(res, f"rank flips: {name}")
        assert stable.estimate == 0 and stable.verdict is Verdict.no_effect  # 200 pairs: MDE < 5%
        drop = named(res, f"accuracy drop: {name}")
        assert drop.estimate == 0 and drop.p == 1.0 and drop.low < 0 < drop.high


def test_math_answer_keeps_its_accuracy_under_answer_format_rewrites(shared_data: Path) -> None:
    pairs = gsm8k_pairs(shared_data, 60)

    def run(batch: list[Sample]) -> list[Score]:
        return rewardlab.score([s.model_copy(update={"reference": s.metadata["reference"]}) for s in batch],
                               "math_answer")

    res = adjust(robustness_probe(pairs, run, rewrites=["answer_to_boxed", "trailing_whitespace", "quoted"],
                                  n_resamples=500))
    for r in res:
        assert r.estimate == 0 and r.verdict is not Verdict.effect, r
    boxed = named(res, "accuracy drop: answer_to_boxed")
    # (one pair ties: two consecutive GSM8K questions share their answer)
    assert boxed.n == 60 and boxed.details["accuracy_before"] == boxed.details["accuracy_after"] >= 0.95


def test_a_rewrite_that_changes_the_ranking_is_measured_with_its_size() -> None:
    # the reward follows content, but a block-quoted response reads as its opposite on every 4th pair
    pairs = [PreferencePair(id=str(i), prompt=f"q{i}", chosen=f"Good answer {i}.", rejected=f"Poor answer {i}.")
             for i in range(80)]

    def fragile(batch: list[Sample]) -> list[Score]:
        out = []
        for s in batch:
            v = content(s.response_text)
            if s.response_text.startswith(">") and int(s.prompt_text[1:]) % 4 == 0:
                v = 1.0 - v
            out.append(Score.of(v))
        return out

    res = robustness_probe(pairs, fragile, rewrites=["quoted"], n_resamples=1000)
    drop = named(res, "accuracy drop: quoted")
    assert drop.estimate == pytest.approx(0.25) and drop.details["b"] == 20 and drop.details["c"] == 0
    assert drop.p < 1e-5 and drop.low <= 0.25 <= drop.high
    assert named(res, "rank flips: quoted").estimate == pytest.approx(0.25)


def test_conversations_are_rewritten_in_their_last_assistant_turn() -> None:
    s = Sample(prompt="hi", response=[Message(role="assistant", content="First Part."),
                                      Message(role="user", content="More?"),
                                      Message(role="assistant", content="Second Part.")])
    out = rewrite_sample(s, "lowercase")
    assert [m.content for m in out.response] == ["First Part.", "More?", "second part."]
    assert rewrite_sample(Sample(prompt="p", response="Hello There."), "lowercase").response == "hello there."


def test_mde_drop_floor_is_exact() -> None:
    n = 100
    d = mde_drop(n, 0.0)
    # McNemar with c = 0 rejects at b >= 6 (2 * 0.5**6 < 0.05); at the floor, P(b >= 6) = 0.8
    assert binom.sf(5, n, d) == pytest.approx(0.8, abs=1e-6)
    assert mde_drop(n, 0.5) > d  # more discordance, less power
    assert mde_drop(3, 0.0) == float("inf")
