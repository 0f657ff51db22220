"""The loop run inside each pool worker process."""

from __future__ import annotations

import os
import resource
import time
from multiprocessing.connection import Connection

from rewardlab.core.types import Cost, Score


def main(conn: Connection, memory_mb: int | None) -> None:
    """Receive (reward, samples) tasks; send back one `Score` per sample, in order."""
    os.setsid()  # own process group: the parent kills it whole, children included
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        reward, samples = task
        for sample in samples:
            t0 = time.perf_counter()
            try:
                score = reward.score_local([sample])[0]
            except BaseException as exc:  # SystemExit, MemoryError...: the sample fails, not us
                score = Score.error(f"{type(exc).__name__}: {exc}")
            if score.cost is None:
                score.cost = Cost(seconds=time.perf_counter() - t0)
            conn.send(score)
