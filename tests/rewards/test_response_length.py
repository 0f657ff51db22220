"""response_length: the longest-wins / shortest-wins baseline reward (its length units, its declared
range under each preference, and what it rewards, which is why it is an audit baseline only)."""

from __future__ import annotations

import math

import pytest

from rewardlab import Sample
from rewardlab.rewards.length import response_length


def test_longer_and_shorter_are_negations() -> None:
    texts = ["", "a", "a much longer answer", "日本語"]
    longer, shorter = response_length(), response_length(prefer="shorter")
    for t in texts:
        assert longer(Sample(response=t)).value == len(t) == -shorter(Sample(response=t)).value


def test_units_and_length_key() -> None:
    assert response_length(unit="words")(Sample(response="two words")).value == 2.0
    s = Sample(response="x" * 50, metadata={"n_tokens": 12})
    got = response_length(length_key="n_tokens")(s)
    assert got.value == 12.0 and got.details == {"length": 12, "unit": "metadata:n_tokens"}
    assert not response_length(length_key="n_tokens")(Sample(response="x")).ok  # missing field: not 0


def test_declared_range_follows_the_preference() -> None:
    assert response_length().info.range == (0.0, math.inf)
    assert response_length(prefer="shorter").info.range == (-math.inf, 0.0)
    with pytest.raises(ValueError, match="prefer"):
        response_length(prefer="middle")


def test_padding_wins_which_is_why_it_is_only_a_baseline() -> None:
    """A policy maximises it by padding: the padded non-answer outscores the answer."""
    longer = response_length()
    assert longer(Sample(response="Paris.")).value < longer(Sample(response="I am not sure. " * 20)).value
