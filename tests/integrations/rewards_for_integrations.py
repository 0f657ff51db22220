"""A reward that fails on demand, for the adapter tests."""

from __future__ import annotations

import os

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
