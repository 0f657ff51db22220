"""Rewards used by the command-line tests."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rewardlab import reward
from rewardlab.core.types import Score


class Opaque:
    """An object with no JSON form."""

    def __str__(self) -> str:
        return "Opaque()"


@reward(register=False, range=(0, 1))
def odd_details(response_text: str) -> Score:
    """1 when the response is non-empty, with details a JSON writer cannot take as they are."""
    return Score.of(float(bool(response_text)),
                    details={"array": np.arange(3), "raw": b"\xff\x00", "obj": Opaque(),
                             "pair": {(1, 2): "tuple key"}, "big": 10**30})


def _wait(path: str, started: str) -> None:
    Path(started).touch()
    deadline = time.monotonic() + 120
    while not Path(path).exists():  # waits on an event the test makes happen, not on a duration
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


@reward(register=False, range=(0, 1))
def wait_for_file(response_text: str, *, path: str, started: str) -> float:
    """1 for a non-empty response, once `path` exists (touches `started` on its first call)."""
    _wait(path, started)
    return float(bool(response_text))


@reward(kind="cpu", register=False, range=(0, 1))
def wait_for_file_cpu(response_text: str, *, path: str, started: str) -> float:
    """`wait_for_file` on the process pool."""
    _wait(path, started)
    return float(bool(response_text))


@reward(register=False, range=(0, 1))
def length_fraction(response_text: str) -> float:
    """The response length over 20, capped at 1: values that differ inside a group."""
    return min(1.0, len(response_text) / 20)
