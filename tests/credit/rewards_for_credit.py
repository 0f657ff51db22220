"""Rewards for the credit tests, importable by path from a CLI subprocess."""

from __future__ import annotations

from typing import Any

from rewardlab import Score, reward


@reward(name="credit_meta_value", range=(-10, 10))
def meta_value(metadata: dict[str, Any], *, key: str = "v") -> float | Score:
    """The number in metadata[key]; abstains when it is absent, errors when it is "bad"."""
    v = metadata.get(key)
    if v is None:
        return Score.abstain(f"no {key}")
    if v == "bad":
        return Score.error("bad value")
    return float(v)
