"""The loop run inside each pool worker process."""

from __future__ import annotations

import os
import pickle
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

from rewardlab.core.types import Cost, Score
from rewardlab.runtime.mainmodule import MainRef, load_in_worker

MAIN_ERROR = "main-module-error"  # first item of the reply that reports a main-module failure
READY = "reward-loaded"  # the first reply to every task: the reward (and its main module) is loaded


def main(conn: Connection, memory_mb: int | None) -> None:
    """Receive (pickled reward, main-module reference, samples) tasks; answer each with
    `READY` once the reward is loaded (so that no sample's timeout pays for imports), then
    one `Score` per sample, in order. A task whose reward lives in the caller's main module
    is answered with ``(MAIN_ERROR, message)`` instead when that module cannot be imported
    (then the worker stops)."""
    os.setsid()  # own process group: the parent kills it whole, children included
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    loaded: tuple[bytes, Any] | None = None
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        blob, main_ref, what, samples = task
        if main_ref is not None:  # the script's import is not charged to the first sample
            problem = _load_main(main_ref, what)
            if problem is not None:
                conn.send((MAIN_ERROR, problem))
                return
        if loaded is None or loaded[0] != blob:
            try:
                loaded = (blob, pickle.loads(blob))
            except Exception as exc:  # every sample of this task reports why
                conn.send(READY)
                reason = f"cannot load {what} in the worker: {type(exc).__name__}: {exc}"
                for _ in samples:
                    conn.send(Score.error(reason))
                loaded = None
                continue
        conn.send(READY)
        reward = loaded[1]
        for sample in samples:
            t0 = time.perf_counter()
            try:
                score = reward.score_local([sample])[0]
            except BaseException as exc:  # SystemExit, MemoryError...: the sample fails, not us
                score = Score.error(f"{type(exc).__name__}: {exc}")
            if score.cost is None:
                score.cost = Cost(seconds=time.perf_counter() - t0)
            conn.send(score)


def _load_main(ref: MainRef | None, what: str) -> str | None:
    return None if ref is None else load_in_worker(ref, what)
