"""Rewards of each kind for the runtime tests (module level: specs and workers import them)."""

from __future__ import annotations

import time

from rewardlab.core.reward import reward
from rewardlab.core.types import Sample

STUCK_SECONDS = 300.0


@reward(kind="io", register=False, timeout=1.0, retries=0)
def blocking_io(response_text: str) -> float:
    """1.0, after blocking for five minutes when the response is "stuck" (a hung remote call)."""
    if response_text == "stuck":
        time.sleep(STUCK_SECONDS)
    return 1.0


@reward(kind="model", register=False)
def batch_model(samples: list[Sample]) -> list[float]:
    """A batched in-process reward: 1.0 per sample."""
    return [1.0 for _ in samples]


@reward(kind="cpu", register=False, timeout=5.0)
def cpu_one(response_text: str) -> float:
    """1.0, computed in a worker process."""
    return 1.0
