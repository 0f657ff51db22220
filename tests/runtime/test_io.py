"""`io` rewards: concurrency cap, requests-per-minute limit, retries with backoff, timeouts."""

from __future__ import annotations

import asyncio
import time

import rewardlab as rl
from rewardlab import Sample, Status, reward

STATE = {"active": 0, "peak": 0, "calls": 0}


@reward(kind="io", register=False, max_concurrency=3, retries=2, timeout=1.0)
async def remote(response_text: str) -> float:
    """1.0 after a short wait; "flaky" fails twice then succeeds; "down" always fails."""
    STATE["calls"] += 1
    STATE["active"] += 1
    STATE["peak"] = max(STATE["peak"], STATE["active"])
    try:
        await asyncio.sleep(0.05)
        if response_text == "down":
            raise ConnectionError("service unavailable")
        if response_text == "hang":
            await asyncio.sleep(30)
        if response_text.startswith("flaky") and STATE["calls"] % 3 != 0:
            raise ConnectionError("try again")
        return 1.0
    finally:
        STATE["active"] -= 1


def test_concurrency_cap_and_parallelism() -> None:
    STATE.update(active=0, peak=0, calls=3)  # calls % 3 == 0: no flaky failures here
    out = rl.score([Sample(response="ok") for _ in range(12)], remote())
    assert all(s.ok for s in out)
    assert STATE["peak"] == 3  # ran concurrently, never more than the cap at once


def test_retries_then_error_with_reason() -> None:
    STATE.update(active=0, peak=0, calls=0)
    down, hang = rl.score([Sample(response="down"), Sample(response="hang")], remote())
    assert down.status is Status.error and "after 3 attempt(s)" in down.reason
    assert "ConnectionError" in down.reason
    assert hang.status is Status.error and "timeout" in hang.reason
    assert STATE["calls"] == 6


def test_flaky_call_succeeds_on_retry() -> None:
    STATE.update(active=0, peak=0, calls=1)
    [s] = rl.score([Sample(response="flaky")], remote())
    assert s.ok and STATE["calls"] == 3


def test_requests_per_minute_limit_spaces_calls() -> None:
    STATE.update(active=0, peak=0, calls=3)
    spec = {"reward": {"reward": "tests.runtime.test_io:remote", "rpm": 600, "retries": 0}}
    t0 = time.monotonic()
    out = rl.score([Sample(response="ok") for _ in range(6)], spec)
    assert all(s.ok for s in out)
    # 600/min means one start every 0.1 s: six starts cannot fit in less than 0.5 s
    assert time.monotonic() - t0 >= 5 * 0.1 - 0.01


class _RateLimited(Exception):
    retry_after = 0.4


TRIES: list[float] = []


@reward(kind="io", register=False, retries=1, timeout=5.0)
async def rate_limited_once(response_text: str) -> float:
    """Fails with a Retry-After of 0.4 s the first time, then 1.0."""
    TRIES.append(time.monotonic())
    if len(TRIES) == 1:
        raise _RateLimited("429")
    return 1.0


def test_retry_waits_at_least_the_servers_retry_after() -> None:
    TRIES.clear()
    [s] = rl.score([Sample(response="x")], rate_limited_once())
    assert s.ok and len(TRIES) == 2
    assert TRIES[1] - TRIES[0] >= 0.4 - 0.01
