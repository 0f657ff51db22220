"""The isolating process pool: hard timeouts from any caller, crashes contained."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import rewardlab as rl
from rewardlab import Sample, Status
from rewardlab.runtime.pool import ProcessPool
from tests.runtime.rewards_for_tests import misbehave, pid_of_worker


def _samples(*texts: str) -> list[Sample]:
    return [Sample(response=t) for t in texts]


@pytest.fixture(scope="module")
def pool():
    with ProcessPool(workers=2, memory_mb=1024) as p:
        yield p


def test_timeout_from_main_thread(pool: ProcessPool) -> None:
    t0 = time.monotonic()
    scores = pool.run(misbehave(), _samples("ok", "sleep", "ok"), timeout=0.5)
    assert [s.status for s in scores] == [Status.ok, Status.error, Status.ok]
    assert "timeout" in scores[1].reason
    assert time.monotonic() - t0 < 10


def test_timeout_of_busy_loop_from_worker_thread(pool: ProcessPool) -> None:
    box: dict[str, list] = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "scores", pool.run(misbehave(), _samples("spin", "ok"), timeout=0.5)))
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert [s.status for s in box["scores"]] == [Status.error, Status.ok]


def test_timeout_inside_running_event_loop() -> None:
    async def main() -> list[rl.Score]:
        # the async API from inside a loop, and the sync API from inside a loop
        a = await rl.ascore(_samples("sleep", "ok"), misbehave(), workers=1, timeout=0.5)
        b = rl.score(_samples("ok", "sleep"), misbehave(), workers=1, timeout=0.5)
        return a + b

    scores = asyncio.run(main())
    assert [s.status for s in scores] == [Status.error, Status.ok, Status.ok, Status.error]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("segfault", "SIGSEGV"), ("exit", "exited with code 0"), ("allocate", "MemoryError"),
     ("raise", "RuntimeError: boom")],
)
def test_crashes_become_errors_and_pool_keeps_serving(pool: ProcessPool, text: str,
                                                      reason: str) -> None:
    scores = pool.run(misbehave(), _samples("ok", text, "ok", "ok"), timeout=5)
    assert [s.status for s in scores] == [Status.ok, Status.error, Status.ok, Status.ok]
    assert reason in scores[1].reason
    again = pool.map(misbehave(), _samples(*["ok"] * 20), timeout=5)
    assert all(s.ok and s.value == 1.0 for s in again)


def test_worker_is_replaced_after_a_crash(pool: ProcessPool) -> None:
    before = {s.value for s in pool.map(pid_of_worker(), _samples(*["x"] * 8), timeout=5)}
    restarts = pool.restarts
    pool.run(misbehave(), _samples("segfault"), timeout=5)
    assert pool.restarts == restarts + 1
    after = {s.value for s in pool.map(pid_of_worker(), _samples(*["x"] * 8), timeout=5)}
    assert after and after != before


def test_many_threads_share_the_pool(pool: ProcessPool) -> None:
    results: list[list[rl.Score]] = []
    lock = threading.Lock()

    def work(texts: list[str]) -> None:
        out = pool.run(misbehave(), _samples(*texts), timeout=0.5)
        with lock:
            results.append(out)

    threads = [threading.Thread(target=work, args=(["ok", "sleep" if i % 2 else "ok", "ok"],))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6
    errors = sum(s.status is Status.error for r in results for s in r)
    assert errors == 3


def test_loading_a_reward_is_not_charged_to_a_samples_timeout() -> None:
    # the reward's module takes 2 s to import in the worker; each sample has 0.5 s
    with ProcessPool(workers=1, memory_mb=1024) as fresh:
        from tests.runtime.rewards_slow_import import after_slow_import

        scores = fresh.run(after_slow_import(), _samples("a", "b"), timeout=0.5)
    assert [s.status for s in scores] == [Status.ok, Status.ok], scores
