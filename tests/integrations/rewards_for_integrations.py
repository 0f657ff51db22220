"""Rewards for the adapter tests: one that fails on demand, one that varies on any text, one that
crashes on the rows a dataset marks."""

from __future__ import annotations

import os
from typing import Any

from rewardlab import reward


@reward(kind="cpu", register=False, range=(0, 1), timeout=10.0)
def faulty(response_text: str) -> float:
    """1 for a non-empty response; a response saying "crash" kills its worker process, "raise"
    raises."""
    if "crash" in response_text:
        os._exit(3)
    if "raise" in response_text:
        raise RuntimeError("the reward raised")
    return float(bool(response_text))


@reward(kind="cpu", register=False, range=(0, 1))
def letters(response_text: str) -> float:
    """The fraction of letters in the response (0 for an empty one)."""
    if not response_text:
        return 0.0
    return sum(c.isalpha() for c in response_text) / len(response_text)


@reward(kind="cpu", register=False, range=(0, 1))
def crash_for_row(prompt_text: str, metadata: dict[str, Any]) -> float:
    """1 for every row but the one marked `crash`, where it raises."""
    if metadata.get("crash"):
        raise RuntimeError("crash for this row")
    return 1.0
