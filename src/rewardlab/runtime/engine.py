"""The scoring engine: runs configured rewards over batches, each by its kind, through the
cache. One async implementation; the sync entry points drive it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rewardlab.core.reward import TIMED_KINDS, Reward, check_timeout, inject, to_score, untimed_message
from rewardlab.core.types import Cost, Sample, Score
from rewardlab.runtime import forksafe, mainmodule
from rewardlab.runtime.aio import IOLimits, Limited
from rewardlab.runtime.cache import CacheError, ScoreCache, UnhashableSample, sample_hash

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

    def __post_init__(self) -> None:
        if self.timeout is not None:
            self.timeout = check_timeout(self.timeout)

    def check(self, reward: Reward) -> None:
        """Refuse settings the reward's kind cannot honour (a timeout on `inline`/`model`)."""
        if self.timeout is not None and reward.info.kind not in TIMED_KINDS:
            raise ValueError(untimed_message(reward.name, reward.info.kind))


class CacheWarning(UserWarning):
    """The score cache could not be used; the run goes on without it."""


def warn_cache(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


class Runtime:
    """Holds the process pool, the cache and the statistics of the runs made through it.

    `workers` sizes the process pool (default: the core count); `cache` is a SQLite path (or
    None for no cache); `timeout` (seconds, positive) overrides the per-sample timeout of every
    reward that can be timed out: `cpu` and `io` rewards (`inline` and `model` rewards run in
    this process and are never interrupted; declare a reward ``kind="cpu"`` to time it out);
    `memory_mb` caps each pool worker's address space. When the cache file cannot be opened,
    read or written, `on_cache_error` gets a message naming the file (default: a
    `CacheWarning`) and the runtime goes on without the cache; `cache_error` keeps the message.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        cache: str | Path | ScoreCache | None = None,
        timeout: float | None = None,
        memory_mb: int | None = 4096,
        on_cache_error: Callable[[str], None] | None = None,
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or workers < 1):
            raise ValueError(f"workers must be a positive integer, not {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        self.timeout = None if timeout is None else check_timeout(timeout)
        self.memory_mb = memory_mb
        self.on_cache_error = on_cache_error or warn_cache
        self.cache_error: str | None = None
        self.cache: ScoreCache | None = None
        if isinstance(cache, str | Path):
            try:
                self.cache = ScoreCache(cache)
            except CacheError as exc:
                self._drop_cache(exc)
        else:
            self.cache = cache
        self.stats = RunStats()
        self._pool: ProcessPool | None = None
        self._pool_lock = threading.Lock()
        forksafe.track(self)

    def _after_fork_in_child(self) -> None:
        # the pool and the cache reset themselves; a lock held by a parent thread would never
        # be released here
        self._pool_lock = threading.Lock()

    @property
    def pool(self) -> ProcessPool:
        with self._pool_lock:
            if self._pool is None:
                from rewardlab.runtime.pool import ProcessPool

                self._pool = ProcessPool(self.workers, self.memory_mb)
            return self._pool

    def _drop_cache(self, exc: CacheError) -> None:
        """Go on without the cache, saying so once."""
        cache, self.cache = self.cache, None
        if cache is not None:
            try:
                cache.close()
            except Exception:  # noqa: BLE001 - already failing; the message says why
                pass
        self.cache_error = f"{exc}; continuing without the cache"
        self.on_cache_error(self.cache_error)

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
        mainmodule.check_not_importing()
        options = options or LeafOptions()
        options.check(reward)
        label = label or reward.name
        if not samples:
            return []
        out: list[Score | None] = [None] * len(samples)
        todo = list(range(len(samples)))
        hashes: list[str | None] = []
        if self.cache is not None:
            hashes = [_hash_or_none(s) for s in samples]
            try:
                hits = self.cache.get_many(reward.fingerprint, [h for h in hashes if h])
            except CacheError as exc:
                self._drop_cache(exc)
                hits = {}
            todo = []
            for i, h in enumerate(hashes):
                hit = hits.get(h) if h else None
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
                try:
                    self.cache.put_many(reward.fingerprint,
                                        [(h, out[i]) for i in todo if (h := hashes[i])])  # type: ignore[misc]
                except CacheError as exc:
                    self._drop_cache(exc)
        return out  # type: ignore[return-value]

    async def _compute(
        self, reward: Reward, samples: list[Sample], options: LeafOptions
    ) -> list[Score]:
        info = reward.info
        timeout = self.timeout or options.timeout or info.timeout  # used by cpu and io only
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


def _hash_or_none(sample: Sample) -> str | None:
    """The sample's cache key, or None for a sample that cannot be hashed (scored, not cached)."""
    try:
        return sample_hash(sample)
    except (UnhashableSample, ValueError, TypeError, RecursionError):
        return None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when this thread already runs an
    event loop (then it runs on a helper thread with its own loop)."""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:  # (outside the except block: errors are not chained to this probe)
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
