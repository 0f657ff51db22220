"""Rewards that misbehave on purpose, for the runtime tests (module level: the pool imports them)."""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from rewardlab.core.reward import reward


@reward(kind="cpu", register=False, timeout=1.0)
def misbehave(response_text: str) -> float:
    """1 for "ok"; otherwise does what the response says: sleep, segfault, exit, allocate."""
    if response_text == "sleep":
        time.sleep(60)
    elif response_text == "segfault":
        ctypes.string_at(0)
    elif response_text == "exit":
        os._exit(0)
    elif response_text == "allocate":
        blob = bytearray(8 * 1024**3)  # far beyond the worker's memory limit
        return float(len(blob))
    elif response_text == "raise":
        raise RuntimeError("boom")
    elif response_text == "spin":
        while True:
            pass
    return 1.0


@reward(kind="cpu", register=False, range=(0, 2**31))
def pid_of_worker(response_text: str) -> float:
    """The worker's process id (to see workers replaced)."""
    return float(os.getpid())


@reward(kind="cpu", register=False, range=(0, 1e9))
def burn(response_text: str, *, n: int = 200_000) -> float:
    """A CPU-heavy reward: a sum of squares loop."""
    total = 0
    for i in range(n + len(response_text)):
        total += i * i % 7
    return float(total % 1000)


@reward(kind="cpu", register=False, range=(0, 1e9))
def gated(response_text: str, *, gate: str = "", n: int = 2_000) -> float:
    """For runs that a test interrupts at a point it chooses: burns a little CPU, then waits
    while the row number before the response's first ':' is above the number in the `gate` file.

    A run can therefore never finish before the test opens the gate, however fast the machine.
    """
    row = int(response_text.split(":", 1)[0])
    while gate:
        text = Path(gate).read_text().strip()
        if text and row <= int(text):
            break
        time.sleep(0.005)
    total = 0
    for i in range(n):
        total += i * i % 7
    return float(row + total % 1000)
