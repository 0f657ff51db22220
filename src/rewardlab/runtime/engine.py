"""The Runtime: the long-lived scorer every front end calls.

A `Runtime` owns every resource a reward needs — the isolating process pool (also used by the
symbolic-math path), an event loop of its own (in a thread) on which `io` rewards run with one
`Gate` of limits per endpoint, the judge clients bound to that loop, the sandbox server and
loaded models (`resource`) — and the cache. `score(spec, samples)` / `ascore` score a spec on a
batch and return the scores with the call's statistics; identical leaves (same fingerprint and
options) in one call are computed once per sample. `close()` releases everything; a forked
child gets fresh resources. One async implementation; the sync entry point drives it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rewardlab.core.reward import (
    TIMED_KINDS,
    Reward,
    check_timeout,
    inject,
    set_default_scorer,
    to_score,
    untimed_message,
)
from rewardlab.core.types import Cost, Sample, Score
from rewardlab.runtime import current, forksafe, mainmodule
from rewardlab.runtime.aio import Gate, IOLimits, Limited, run_sync
from rewardlab.runtime.cache import CacheError, ScoreCache, UnhashableSample, sample_hash

if TYPE_CHECKING:
    from rewardlab.runtime.pool import ProcessPool

T = TypeVar("T")


@dataclass
class RunStats:
    """What a run did: cache hits, samples computed, status counts per reward (by label) and of
    the final scores, per-sample latencies and the cost of what was computed (cache hits cost
    nothing)."""

    cache_hits: int = 0
    computed: int = 0
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    final: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    seconds: float = 0.0

    def add(self, label: str, tally: _Tally) -> None:
        self.statuses.setdefault(label, Counter()).update(tally.statuses)
        if tally.computed:
            self.computed += tally.count
            self.latencies += tally.latencies
            self.cost += tally.cost
        else:
            self.cache_hits += tally.count

    def to_dict(self) -> dict[str, Any]:
        return {"cache_hits": self.cache_hits, "computed": self.computed,
                "statuses": {k: dict(v) for k, v in self.statuses.items()},
                "final": dict(self.final), "cost": self.cost.model_dump(), "seconds": self.seconds}


@dataclass
class _Tally:
    """One leaf's batch, counted once for every `RunStats` it goes to."""

    count: int
    computed: bool
    statuses: Counter[str]
    latencies: list[float]
    cost: Cost

    @classmethod
    def of(cls, scores: Sequence[Score], computed: bool) -> _Tally:
        statuses: Counter[str] = Counter(s.status.value for s in scores)
        costs = [s.cost for s in scores if s.cost is not None] if computed else []
        latencies = [c.seconds for c in costs]
        cost = Cost(seconds=sum(latencies), input_tokens=sum(c.input_tokens for c in costs),
                    output_tokens=sum(c.output_tokens for c in costs), usd=sum(c.usd for c in costs))
        return cls(len(scores), computed, statuses, latencies, cost)


@dataclass
class Scored:
    """The result of `Runtime.score`: one `Score` per sample, in order, and what the call did."""

    scores: list[Score]
    stats: RunStats


class Scorable(Protocol):
    """A spec's graph: anything that scores a batch through a Runtime (a compose node)."""

    async def run(self, samples: Sequence[Sample], rt: Runtime) -> list[Score]: ...


_builder: Callable[[Any], Any] | None = None


def set_spec_builder(builder: Callable[[Any], Any]) -> None:
    """Install what turns a spec file, YAML text, dict or name into a spec for `Runtime.score`
    (the composition layer installs it; the runtime never imports the layers above it)."""
    global _builder
    _builder = builder


def _graph(spec: Any) -> Scorable | Reward:
    """What to run for a spec: a configured reward as it is; a built spec's root node; a node;
    else whatever the installed builder makes of it."""
    if isinstance(spec, Reward):
        return spec
    root = getattr(spec, "root", None)
    if root is not None and hasattr(root, "run"):
        return root  # type: ignore[no-any-return]
    if hasattr(spec, "run") and not isinstance(spec, type):
        return spec  # type: ignore[no-any-return]
    if _builder is None:
        raise TypeError(f"cannot score {type(spec).__name__}: import rewardlab to build specs")
    return _graph(_builder(spec))


# a batch scored from inside a reward, on a loop of its own: its io limits are its own
_private_gates: ContextVar[bool] = ContextVar("rewardlab_private_gates", default=False)

# per call: the statistics, and for each leaf the spec holds more than once, its score of each
# sample (by identity), computed by whichever comes first
_call: ContextVar[tuple[RunStats, dict[Hashable, dict[int, asyncio.Future[Score]]]] | None] = (
    ContextVar("rewardlab_call", default=None)
)


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

    def result_key(self) -> tuple[Any, ...]:
        """The settings that can change a score (limits on concurrency and rate cannot)."""
        return (self.timeout, self.retries, self.batch_size)

    def check(self, reward: Reward) -> None:
        """Refuse settings the reward's kind cannot honour (a timeout on `inline`/`model`)."""
        if self.timeout is not None and reward.info.kind not in TIMED_KINDS:
            raise ValueError(untimed_message(reward.name, reward.info.kind))


class CacheWarning(UserWarning):
    """The score cache could not be used; the run goes on without it."""


def warn_cache(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


class Runtime:
    """The long-lived scorer: owns the process pool, its event loop and the per-endpoint limits
    of `io` rewards, the sandbox server and loaded models, the cache, and the statistics of the
    runs made through it (`stats`, cumulative).

    `workers` sizes the process pool (default: the core count); `cache` is a SQLite path (or
    None for no cache); `timeout` (seconds, positive) overrides the per-sample timeout of every
    reward that can be timed out: `cpu` and `io` rewards (`inline` and `model` rewards run in
    this process and are never interrupted; declare a reward ``kind="cpu"`` to time it out);
    `memory_mb` caps each pool worker's address space. When the cache file cannot be opened,
    read or written, `on_cache_error` gets a message naming the file (default: a
    `CacheWarning`) and the runtime goes on without the cache; `cache_error` keeps the message.

    The limits of an `io` endpoint (`max_concurrency`, `rpm`; the strictest declared) and a
    judge's token budget hold across every batch, chunk and call made through one Runtime.
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
        self.closed = False
        self._pool: ProcessPool | None = None
        self._fresh()
        forksafe.track(self)

    def _fresh(self) -> None:
        self._pool_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._gates: dict[str, Gate] = {}
        self._resources: dict[Hashable, tuple[Any, Callable[[Any], None] | None]] = {}
        self._resource_locks: dict[Hashable, threading.Lock] = {}

    def _after_fork_in_child(self) -> None:
        # The pool and the cache reset themselves. The loop thread, the sandbox server and the
        # models belong to the parent: forget them (never close them) and start fresh ones on
        # first use; a lock held by a parent thread would never be released here.
        self._fresh()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this Runtime is closed")

    @property
    def pool(self) -> ProcessPool:
        """The isolating process pool (`workers` processes), started on first use."""
        with self._pool_lock:
            self._check_open()
            if self._pool is None:
                from rewardlab.runtime.pool import ProcessPool

                self._pool = ProcessPool(self.workers, self.memory_mb)
            return self._pool

    def restart_pool(self) -> None:
        """Stop the pool's workers; the next use starts new ones."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The Runtime's own event loop (running in a daemon thread), started on first use."""
        with self._pool_lock:
            self._check_open()
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="rewardlab-runtime", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def resource(self, key: Hashable, make: Callable[[], T],
                 close: Callable[[T], None] | None = None) -> T:
        """The resource under `key`, made by `make()` on first use and kept (with `close`, called
        by `Runtime.close()`) for the life of the Runtime: a sandbox server, a loaded model."""
        with self._pool_lock:
            self._check_open()
            found = self._resources.get(key)
            if found is not None:
                return found[0]  # type: ignore[no-any-return]
            lock = self._resource_locks.setdefault(key, threading.Lock())
        with lock:  # one load per key; others wait for it
            with self._pool_lock:
                found = self._resources.get(key)
                if found is not None:
                    return found[0]  # type: ignore[no-any-return]
            value = make()
            with self._pool_lock:
                if self.closed:
                    if close is not None:
                        close(value)
                    self._check_open()
                self._resources[key] = (value, close)  # type: ignore[assignment]
            return value

    def gate(self, key: str, max_concurrency: int, rpm: float | None) -> Gate:
        """The limits of endpoint `key` (made on the Runtime's loop; the strictest declared
        limits hold)."""
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = Gate(max_concurrency, rpm)
        else:
            gate.tighten(max_concurrency, rpm)
        return gate

    @contextlib.contextmanager
    def active(self) -> Iterator[Runtime]:
        """Make this the Runtime that rewards called in this context use (for their pool,
        sandbox and models), instead of the process-wide default."""
        token = current._active.set(self)
        try:
            yield self
        finally:
            current._active.reset(token)

    # -- one way in ----------------------------------------------------------------------------
    def score(self, spec: Any, samples: Sequence[Sample]) -> Scored:
        """Score `spec` (a `Spec`, a node, a configured reward, or anything `rewardlab.build`
        takes) on a batch: the scores in order and the call's statistics. Safe from any thread
        and from inside another event loop (which it blocks until the batch is scored)."""
        loop = self.loop
        if threading.current_thread() is self._loop_thread:
            # a reward that calls another reward: this loop is busy running the caller, so the
            # inner batch runs on a loop of its own (with private io limits: a Gate lives on one
            # loop), sharing the pool, sandbox and models
            return run_sync(self._ascore(spec, samples, nested=True))
        future = asyncio.run_coroutine_threadsafe(self._ascore(spec, samples), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # an interrupted caller (Ctrl-C, SIGTERM) stops the batch
            raise

    async def ascore(self, spec: Any, samples: Sequence[Sample]) -> Scored:
        """Async twin of `score`, awaitable from any event loop."""
        loop = self.loop
        if asyncio.get_running_loop() is loop:
            return await self._ascore(spec, samples)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._ascore(spec, samples), loop))

    async def _ascore(self, spec: Any, samples: Sequence[Sample], nested: bool = False) -> Scored:
        graph = _graph(spec)
        stats = RunStats()
        token = _call.set((stats, {key: {} for key in _repeated_leaves(graph)}))
        active = current._active.set(self)
        private = _private_gates.set(nested)
        t0 = time.perf_counter()
        try:
            if isinstance(graph, Reward):
                scores = await self.score_leaf(graph, samples)
            else:
                scores = await graph.run(samples, self)
        finally:
            _call.reset(token)
            current._active.reset(active)
            _private_gates.reset(private)
        stats.seconds = time.perf_counter() - t0
        stats.final.update(s.status.value for s in scores)
        return Scored(scores, stats)

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
        """Release everything this Runtime started: stop its calls in flight, the pool's worker
        processes, its event loop (closing the judge clients bound to it), the sandbox server
        and the loaded models; close the cache. Idempotent."""
        with self._pool_lock:
            if self.closed:
                return
            self.closed = True
            loop, thread = self._loop, self._loop_thread
            resources = list(self._resources.values())
            self._resources.clear()
            pool, self._pool = self._pool, None
        stopping = None
        if loop is not None and loop.is_running():
            stopping = asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop)
        if pool is not None:
            pool.close()  # unblocks the threads waiting on workers
        if stopping is not None:
            with contextlib.suppress(concurrent.futures.TimeoutError, concurrent.futures.CancelledError,
                                     RuntimeError):
                stopping.result(timeout=10)
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()
        for value, close in reversed(resources):
            if close is not None:
                try:
                    close(value)
                except Exception as exc:  # noqa: BLE001 - the rest is still released; say why
                    warnings.warn(f"closing {type(value).__name__} failed: {exc}", RuntimeWarning,
                                  stacklevel=2)
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
        """Scores of one configured reward on a batch, from the cache where possible. Within
        one `score` call, a sample already scored (or being scored) by an identical leaf is not
        scored again."""
        mainmodule.check_not_importing()
        options = options or LeafOptions()
        options.check(reward)
        label = label or reward.name
        if not samples:
            return []
        call = _call.get()
        if call is None:
            return await self._score_leaf(reward, samples, options, label, None)
        stats, seen = call
        key = (reward.fingerprint, options.result_key())
        futures = seen.get(key)
        if futures is None:  # a leaf the spec holds once: nothing to share
            return await self._score_leaf(reward, samples, options, label, stats)
        loop = asyncio.get_running_loop()
        mine: list[int] = []
        waits: list[asyncio.Future[Score]] = []
        for i, s in enumerate(samples):
            f = futures.get(id(s))
            if f is None:
                f = futures[id(s)] = loop.create_future()
                mine.append(i)
            waits.append(f)
        if mine:
            try:
                scores = await self._score_leaf(reward, [samples[i] for i in mine], options, label, stats)
            except BaseException as exc:
                for i in mine:
                    if not waits[i].done():
                        waits[i].set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                        waits[i].exception()  # retrieved: whoever else waits on it re-raises it
                raise
            for i, sc in zip(mine, scores, strict=True):
                waits[i].set_result(sc)
        own = set(mine)
        out = []
        for i, f in enumerate(waits):
            sc = await f
            # a parent may amend its copy; the cost was spent once, by the first user
            out.append(sc if i in own else sc.model_copy(deep=True, update={"cost": Cost()}))
        return out

    async def _score_leaf(self, reward: Reward, samples: Sequence[Sample], options: LeafOptions,
                          label: str, call_stats: RunStats | None) -> list[Score]:
        stats = [self.stats] if call_stats is None else [self.stats, call_stats]
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
            tally = _Tally.of([sc for sc in out if sc is not None], computed=False)
            for st in stats:
                st.add(label, tally)
        if todo:
            batch = [samples[i] for i in todo]
            fresh = await self._compute(reward, batch, options)
            tally = _Tally.of(fresh, computed=True)
            for st in stats:
                st.add(label, tally)
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
        if _private_gates.get():
            gate = Gate(limits.max_concurrency, limits.rpm)
        else:
            gate = self.gate(reward.resource, limits.max_concurrency, limits.rpm)
        limited = Limited(limits, gate)
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


async def _cancel_tasks() -> None:
    """Cancel every other task on this loop and wait for them (a judge client's keeper closes
    its clients as it is cancelled)."""
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    await asyncio.get_running_loop().shutdown_asyncgens()


def _repeated_leaves(graph: Any) -> set[tuple[Any, ...]]:
    """The (fingerprint, result-affecting options) of leaves that a graph holds more than once."""
    seen: set[tuple[Any, ...]] = set()
    repeated: set[tuple[Any, ...]] = set()
    for node in getattr(graph, "walk", list)():
        reward, options = getattr(node, "reward", None), getattr(node, "options", None)
        if isinstance(reward, Reward) and isinstance(options, LeafOptions):
            key = (reward.fingerprint, options.result_key())
            (repeated if key in seen else seen).add(key)
    return repeated


def _score_with_current(reward: Reward, samples: list[Sample]) -> list[Score]:
    return current.current_runtime().score(reward, samples).scores


set_default_scorer(_score_with_current)


def _hash_or_none(sample: Sample) -> str | None:
    """The sample's cache key, or None for a sample that cannot be hashed (scored, not cached)."""
    try:
        return sample_hash(sample)
    except (UnhashableSample, ValueError, TypeError, RecursionError):
        return None
