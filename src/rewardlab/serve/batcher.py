"""Dynamic micro-batching across requests: samples from concurrent requests wait in one bounded
queue and go to the Runtime together, in batches of at most `max_batch` samples. At most
`concurrent_batches` batches are scored at once; while all are busy the queue grows, and the
next batch leaves as soon as one finishes, with what has queued. When nothing is being scored a
batch leaves at once (a lone request pays no wait); when a batch is already being scored and a
slot is free, the next one waits until it is full or its oldest sample has waited `max_wait`
seconds. A request that would take the queue past `max_queue` samples is refused at once
(`QueueFull`); a request admitted is answered.

A spec that normalises within groups of samples (`group_zscore`, `rank`, `advantage`) is scored
one request at a time: a request is its own batch, never merged with another's samples (whose
groups could share a prompt) nor cut at `max_batch` (which would split a group). Its groups are
formed within the request, so a client sends every rollout of a group in one request."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewardlab.core.types import Sample, Score
from rewardlab.runtime.engine import Runtime
from rewardlab.serve.metrics import Metrics


class QueueFull(Exception):
    """The queue cannot take the request now (retry later)."""


class TooManySamples(Exception):
    """The request holds more samples than the queue can ever hold."""


@dataclass
class _Entry:
    sample: Sample
    future: asyncio.Future[Score]
    queued: float
    request: int = 0


class MicroBatcher:
    """Batches samples from concurrent `submit` calls into `runtime.ascore(spec, batch)` calls.
    Runs on the server's event loop; `start()` and `stop()` there."""

    def __init__(self, runtime: Runtime, spec: Any, metrics: Metrics, *, max_batch: int = 64,
                 max_wait: float = 0.005, max_queue: int = 4096, concurrent_batches: int = 2) -> None:
        for name, v in (("max_batch", max_batch), ("max_queue", max_queue),
                        ("concurrent_batches", concurrent_batches)):
            if v < 1:
                raise ValueError(f"{name} must be at least 1, not {v}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, not {max_wait}")
        self.runtime, self.spec, self.metrics = runtime, spec, metrics
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait, max_queue
        self.concurrent_batches = concurrent_batches
        # a group-normalising spec: one request per batch (see the module doc)
        self.per_request = any(n.needs_groups for n in spec.root.walk()) if hasattr(spec, "root") else False
        self._requests = 0
        self._queue: deque[_Entry] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrent_batches)
        self._batches: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Samples waiting for a batch."""
        return len(self._queue)

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._dispatch(), name="rewardlab-batcher")

    async def stop(self) -> None:
        """Finish the batches in flight, then stop (the server stops taking requests first)."""
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for e in self._queue:  # only when stopped with requests still waiting (not by the server)
            if not e.future.done():
                e.future.set_result(Score.error("the server stopped before this sample was scored"))
        self._queue.clear()

    async def submit(self, samples: Sequence[Sample], deadline: float | None = None) -> list[Score]:
        """The scores of `samples`, in order, once the batches holding them are scored; with a
        `deadline` (seconds), a sample not scored by then gets an error score saying so (it
        leaves the queue; a batch already being scored finishes, its score unused)."""
        n = len(samples)
        if n == 0:
            return []
        if n > self.max_queue:
            raise TooManySamples(f"{n} samples in one request; this server queues at most {self.max_queue}")
        if len(self._queue) + n > self.max_queue:
            raise QueueFull(f"the queue holds {len(self._queue)} of {self.max_queue} samples")
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        self._requests += 1
        entries = [_Entry(s, loop.create_future(), now, self._requests) for s in samples]
        self._queue.extend(entries)
        self.metrics.queue_depth.set(len(self._queue))
        self._wake.set()
        try:
            if deadline is None:
                return list(await asyncio.gather(*(e.future for e in entries)))
            await asyncio.wait([e.future for e in entries], timeout=deadline)
            out = []
            for e in entries:
                if e.future.done() and not e.future.cancelled():
                    out.append(e.future.result())
                else:
                    e.future.cancel()
                    out.append(Score.error(f"not scored within the request deadline of {deadline:g} s"))
            late = sum(not s.ok and e.future.cancelled() for s, e in zip(out, entries, strict=True))
            if late:
                self.metrics.deadline_exceeded.inc(late)
            return out
        except asyncio.CancelledError:
            for e in entries:
                e.future.cancel()  # a batch not yet sent skips them
            raise

    async def _dispatch(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self._slots.acquire()
            try:
                batch: list[_Entry] = []
                if self.per_request:
                    first = self._queue[0].request
                    while self._queue and self._queue[0].request == first:
                        e = self._queue.popleft()
                        if not e.future.done():
                            batch.append(e)
                else:
                    await self._fill()
                    while self._queue and len(batch) < self.max_batch:
                        e = self._queue.popleft()
                        if not e.future.done():
                            batch.append(e)
                self.metrics.queue_depth.set(len(self._queue))
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._score(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _fill(self) -> None:
        """Wait until a full batch is queued or the oldest sample has waited `max_wait` (no wait
        when nothing is being scored)."""
        if not self._batches:
            return
        deadline = self._queue[0].queued + self.max_wait
        while len(self._queue) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                return

    async def _score(self, batch: list[_Entry]) -> None:
        t0 = time.perf_counter()
        try:
            scored = await self.runtime.ascore(self.spec, [e.sample for e in batch])
            scores, stats = scored.scores, scored.stats
        except Exception as exc:  # noqa: BLE001 - every sample of the batch gets an error score saying why
            why = f"scoring failed: {type(exc).__name__}: {exc}"
            scores, stats = [Score.error(why) for _ in batch], None
            self.metrics.samples.labels("error").inc(len(batch))
        finally:
            self._slots.release()
        self.metrics.record_batch(len(batch), time.perf_counter() - t0, stats)
        for e, s in zip(batch, scores, strict=True):
            if not e.future.done():
                e.future.set_result(s)
