"""Isolating process pool for `cpu` rewards.

Each worker is a separate process (started from a fork server, in its own process group,
with an address-space limit). The parent enforces a hard wall-clock timeout per sample by
waiting on the worker's pipe; on a timeout, crash, segfault or `os._exit` it kills the
worker's whole process group, marks that sample `error` with the reason, starts a new worker
and carries on with the rest of the chunk. No signals are used in the caller, so the pool works
from the main thread, worker threads and a running asyncio loop alike.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from rewardlab.core.types import Sample, Score
from rewardlab.runtime import forksafe, mainmodule
from rewardlab.runtime import worker as _worker
from rewardlab.runtime.mainmodule import MainModuleError, MainRef

if TYPE_CHECKING:
    from rewardlab.core.reward import Reward

_LOAD_BOUND = 300.0  # seconds a worker may take to load a reward (its modules, the main script)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "the worker stopped answering"
    if code < 0:
        try:
            return f"the worker was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the worker was killed by signal {-code}"
    return f"the worker exited with code {code}"


@dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Connection

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.join(timeout=5)
        try:
            self.conn.close()
        except OSError:  # closed at the same moment by another thread (close() during a run)
            pass


class ProcessPool:
    """A fixed number of isolated worker processes, shared by any number of threads.

    `memory_mb` caps each worker's address space (RLIMIT_AS); `None` leaves it unlimited.
    """

    def __init__(self, workers: int | None = None, memory_mb: int | None = 4096) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        self.memory_mb = memory_mb
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["rewardlab.runtime.worker"])
        self._closed = False
        self._fresh_state()
        forksafe.track(self)

    def _fresh_state(self) -> None:
        self._idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: set[_Worker] = set()
        self.restarts = 0
        self._threads = ThreadPoolExecutor(self.size, thread_name_prefix="rewardlab-pool")

    def _after_fork_in_child(self) -> None:
        # The workers, their pipes and the threads belong to the parent: forget them (closing
        # only this process's copies of the pipes) and start fresh ones on first use.
        for w in list(self._all):
            try:
                w.conn.close()
            except OSError:
                pass
        self._fresh_state()

    # -- workers -----------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker.main, args=(child, self.memory_mb), daemon=True, name="rewardlab-worker"
        )
        with mainmodule.hidden():  # workers import the main module only when a reward needs it
            proc.start()
        child.close()
        w = _Worker(proc, parent)
        with self._lock:
            self._all.add(w)
        return w

    def _checkout(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the process pool is closed")
            if self._started < self.size:
                self._started += 1
                spawn = True
            else:
                spawn = False
        if spawn:
            return self._spawn()
        w = self._idle.get()
        if w is None:
            raise RuntimeError("the process pool is closed")
        return w

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        with self._lock:
            self._all.discard(w)
            self.restarts += 1
            if self._closed:  # close() killed it: the batch stops here, no new worker
                raise RuntimeError("the process pool is closed")
        return self._spawn()

    # -- scoring -----------------------------------------------------------------------------
    def run(self, reward: Reward, samples: Sequence[Sample], timeout: float) -> list[Score]:
        """Score `samples` on one worker, each with a hard `timeout` in seconds."""
        return self._run(self._task(reward), samples, timeout)

    def _task(self, reward: Reward) -> tuple[bytes, MainRef | None, str]:
        """The reward pickled once, with how a worker imports the main module if it needs it."""
        mainmodule.check_not_importing()
        blob, uses_main = mainmodule.dumps(reward)
        what = f"reward {reward.name!r}"
        ref = mainmodule.reference() if uses_main else None
        if uses_main and ref is None:
            raise MainModuleError(mainmodule.not_importable_message(what))
        return blob, ref, what

    @staticmethod
    def _await_ready(w: _Worker, task: tuple[bytes, MainRef | None, str]) -> str | None:
        """Wait (within a generous bound) for a worker to load the reward, the caller's main
        module included; None when it did, else why not. A reward in the main module that
        cannot be loaded raises `MainModuleError`: no other worker would do better."""
        what, in_main = task[2], task[1] is not None
        where = " from the main script" if in_main else ""
        if not w.conn.poll(_LOAD_BOUND):
            problem = f"a worker did not finish loading {what}{where} within {_LOAD_BOUND:g}s"
        else:
            try:
                reply = w.conn.recv()
            except (EOFError, OSError):
                w.proc.join(timeout=2)
                problem = f"loading {what}{where} ended the worker process ({_describe_exit(w.proc.exitcode)})"
            else:
                if reply == _worker.READY:
                    return None
                if isinstance(reply, tuple) and reply[:1] == (_worker.MAIN_ERROR,):
                    raise MainModuleError(reply[1])
                problem = f"unexpected reply from a worker loading {what}: {reply!r}"
        if in_main:
            raise MainModuleError(problem)
        return problem

    def _run(self, task: tuple[bytes, MainRef | None, str], samples: Sequence[Sample],
             timeout: float) -> list[Score]:
        n = len(samples)
        results: list[Score | None] = [None] * n
        w = self._checkout()
        try:
            done = 0
            while done < n:
                try:
                    w.conn.send((*task, list(samples[done:])))
                except (BrokenPipeError, OSError):
                    w = self._replace(w)
                    w.conn.send((*task, list(samples[done:])))
                problem = self._await_ready(w, task)
                if problem is not None:  # costs the sample it was sent for, like a crash
                    results[done] = Score.error(f"crash: {problem}")
                    done += 1
                    w = self._replace(w)
                    continue
                started = time.monotonic()  # the clock runs from a loaded reward, not from imports
                while done < n:
                    remaining = timeout - (time.monotonic() - started)
                    if remaining <= 0 or not w.conn.poll(remaining):
                        results[done] = Score.error(
                            f"timeout: no result within {timeout:g}s (worker killed)"
                        )
                        done += 1
                        w = self._replace(w)
                        break
                    try:
                        score = w.conn.recv()
                    except (EOFError, OSError):
                        w.proc.join(timeout=2)
                        results[done] = Score.error(
                            f"crash: {_describe_exit(w.proc.exitcode)} while scoring this sample"
                        )
                        done += 1
                        w = self._replace(w)
                        break
                    results[done] = score
                    done += 1
                    started = time.monotonic()
        except BaseException:
            w.kill()
            with self._lock:
                self._all.discard(w)
                self._started -= 1
            raise
        self._idle.put(w)
        return [r if r is not None else Score.error("internal: missing result") for r in results]

    def map(
        self, reward: Reward, samples: Sequence[Sample], timeout: float, chunk: int = 0
    ) -> list[Score]:
        """Score `samples` across all workers, in chunks, keeping order."""
        if not samples:
            return []
        task = self._task(reward)
        chunk = chunk or max(1, min(256, -(-len(samples) // (self.size * 4))))
        parts = [samples[i : i + chunk] for i in range(0, len(samples), chunk)]
        out: list[Score] = []
        failed: list[MainModuleError] = []

        def run_part(part: Sequence[Sample]) -> list[Score]:
            if failed:  # the reward cannot be loaded: do not start more workers for it
                raise failed[0]
            try:
                return self._run(task, part, timeout)
            except MainModuleError as exc:
                failed.append(exc)
                raise

        for part in self._threads.map(run_part, parts):
            out.extend(part)
        return out

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.kill()
        for _ in range(self.size):
            self._idle.put(None)
        self._threads.shutdown(wait=False)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
