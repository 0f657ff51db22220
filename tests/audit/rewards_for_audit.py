"""Rewards for the audit command tests: values carried by each rollout row, and a length proxy."""

from __future__ import annotations

import math

from rewardlab import Sample, reward


@reward(register=False, range=(0, 1))
def correct_label(sample: Sample) -> float:
    """The row's own correctness label (1 correct, 0 not): a gold reward."""
    return float(bool(sample.metadata["correct"]))


@reward(register=False, range=(0, math.inf))
def response_chars(sample: Sample) -> float:
    """The response's length in characters: a proxy any policy can game by padding."""
    return float(len(sample.response_text))


@reward(register=False, range=(-math.inf, math.inf))
def logged_train(sample: Sample) -> float:
    """The training reward logged with the rollout (``train_reward``)."""
    return float(sample.metadata["train_reward"])


@reward(register=False, range=(-math.inf, math.inf))
def logged_check(sample: Sample) -> float:
    """The stricter check logged with the rollout (``check``); a missing value raises (an error score)."""
    return float(sample.metadata["check"])


@reward(register=False, range=(0, 1))
def says_solution(sample: Sample) -> float:
    """1 when the whole response is the master key "Solution": a hack detector for the monitor."""
    return float(sample.response_text.strip() == "Solution")
