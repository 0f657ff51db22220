"""Rewards used by the server tests: one that fails on demand, one that waits on a gate file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rewardlab import reward


@reward(kind="cpu", register=False, range=(0, 1), timeout=5.0)
def faulty(response_text: str) -> float:
    """1 for a non-empty response; a response saying "crash" kills its worker process, "hang"
    never returns, "raise" raises."""
    if "crash" in response_text:
        os._exit(3)
    if "hang" in response_text:
        while True:  # stopped from outside by the pool's timeout
            time.sleep(0.05)
    if "raise" in response_text:
        raise RuntimeError("the reward raised")
    return float(bool(response_text))


@reward(kind="cpu", register=False, range=(0, 1), timeout=120.0)
def gated(response_text: str, *, gate: str, started: str) -> float:
    """1 for a non-empty response, once the file `gate` exists; each call first appends a line
    to the file `started`, so a test can see how many samples reached the reward."""
    with open(started, "a") as f:
        f.write(response_text + "\n")
    deadline = time.monotonic() + 120
    while not Path(gate).exists():  # waits on an event the test makes happen, not on a duration
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} never appeared")
        time.sleep(0.01)
    return float(bool(response_text))
