"""The scoring engine: runs configured rewards over batches, each by its kind, through the
cache. One async implementation; the sync entry points drive it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rewardlab.core.reward import Reward, inject, to_score
from rewardlab.core.types import Cost, Sample, Score
from rewardlab.runtime.aio import IOLimits, Limited
from rewardlab.runtime.cache import ScoreCache, sample_hash

if TYPE_CHECKING:
    from rewardlab.runtime.pool import ProcessPool

T = TypeVar("T")


@dataclass
class RunStats:
    """What a run did: cache hits, samples computed, per-reward status counts, latencies."""

    cache_hits: int = 0
    computed: int = 0
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def record(self, label: str, scores: Sequence[Score], computed: bool) -> None:
        counter = self.statuses.setdefault(label, Counter())
        for s in scores:
            counter[s.status.value] += 1
            if computed and s.cost is not None:
                self.latencies.append(s.cost.seconds)


@dataclass
class LeafOptions:
    """Per-leaf execution settings from a spec (None: the reward's declared default)."""

    timeout: float | None = None
    max_concurrency: int | None = None
    rpm: float | None = None
    retries: int | None = None
    batch_size: int | None = None


class Runtime:
    """Holds the process pool, the cache and the statistics of the runs made through it.

    `workers` sizes the process pool (default: the core count); `cache` is a SQLite path (or
    None for no cache); `timeout` overrides every reward's per-sample timeout; `memory_mb` caps
    each pool worker's address space.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        cache: str | Path | ScoreCache | None = None,
        timeout: float | None = None,
        memory_mb: int | None = 4096,
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.timeout = timeout
        self.memory_mb = memory_mb
        if isinstance(cache, str | Path):
            cache = ScoreCache(cache)
        self.cache = cache
        self.stats = RunStats()
        self._pool: ProcessPool | None = None
        self._pool_lock = threading.Lock()
        self._limiters: dict[tuple[str, int], Limited] = {}

    @property
    def pool(self) -> ProcessPool:
        with self._pool_lock:
            if self._pool is None:
                from rewardlab.runtime.pool import ProcessPool

                self._pool = ProcessPool(self.workers, self.memory_mb)
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- leaves --------------------------------------------------------------------------------
    async def score_leaf(
        self,
        reward: Reward,
        samples: Sequence[Sample],
        options: LeafOptions | None = None,
        label: str | None = None,
    ) -> list[Score]:
        """Scores of one configured reward on a batch, from the cache where possible."""
        options = options or LeafOptions()
        label = label or reward.name
        if not samples:
            return []
        out: list[Score | None] = [None] * len(samples)
        todo = list(range(len(samples)))
        hashes: list[str] = []
        if self.cache is not None:
            hashes = [sample_hash(s) for s in samples]
            hits = self.cache.get_many(reward.fingerprint, hashes)
            todo = []
            for i, h in enumerate(hashes):
                hit = hits.get(h)
                if hit is None:
                    todo.append(i)
                else:
                    out[i] = hit
            cached = [out[i] for i in range(len(samples)) if out[i] is not None]
            self.stats.cache_hits += len(cached)
            self.stats.record(label, cached, computed=False)  # type: ignore[arg-type]
        if todo:
            batch = [samples[i] for i in todo]
            fresh = await self._compute(reward, batch, options)
            self.stats.computed += len(fresh)
            self.stats.record(label, fresh, computed=True)
            for i, s in zip(todo, fresh, strict=True):
                out[i] = s
            if self.cache is not None:
                self.cache.put_many(reward.fingerprint, [(hashes[i], out[i]) for i in todo])  # type: ignore[misc]
        return out  # type: ignore[return-value]

    async def _compute(
        self, reward: Reward, samples: list[Sample], options: LeafOptions
    ) -> list[Score]:
        info = reward.info
        timeout = self.timeout or options.timeout or info.timeout
        if info.kind == "inline" and not reward.definition.batched:
            return reward.score_local(samples)
        if info.kind == "inline":  # a batched reward may take a while: keep the loop free
            return await asyncio.to_thread(reward.score_local, samples)
        if info.kind == "cpu":
            return await asyncio.to_thread(self.pool.map, reward, samples, timeout)
        if info.kind == "model":
            size = options.batch_size or info.batch_size
            out: list[Score] = []
            for i in range(0, len(samples), size):
                out.extend(await asyncio.to_thread(reward.score_local, samples[i : i + size]))
            return out
        return await self._compute_io(reward, samples, options, timeout)

    async def _compute_io(
        self, reward: Reward, samples: list[Sample], options: LeafOptions, timeout: float
    ) -> list[Score]:
        info = reward.info
        limits = IOLimits(
            max_concurrency=options.max_concurrency or info.max_concurrency,
            rpm=options.rpm,
            timeout=timeout,
            retries=info.retries if options.retries is None else options.retries,
        )
        limited = Limited(limits)
        d = reward.definition

        async def one(sample: Sample) -> Score:
            t0 = time.perf_counter()
            try:
                result = await limited.call(
                    d.fn, *[inject(sample, n) for n in d.inputs], **reward.params
                )
            except Exception as exc:  # retries exhausted: an error score with the reason
                return Score.error(str(exc), cost=Cost(seconds=time.perf_counter() - t0))
            return to_score(result, info, time.perf_counter() - t0)

        return list(await asyncio.gather(*(one(s) for s in samples)))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when this thread already runs an
    event loop (then it runs on a helper thread with its own loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="rewardlab-sync")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
