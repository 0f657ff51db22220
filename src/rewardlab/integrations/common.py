"""What every trainer adapter shares: a spec resolved once per process, the per-sample batcher
that turns many concurrent one-sample calls into few Runtime batches, and the flat numeric
record (``score``, each component, ``rewardlab_ok``) that trainers without a skip encoding get.

The batcher lives on the Runtime's own event loop: a call from any loop or thread hands its
sample over with `asyncio.run_coroutine_threadsafe` and waits on a future of its own loop, so
no asyncio object is shared between loops."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.api import SpecLike, build
from rewardlab.compose.spec import Spec
from rewardlab.core.types import Sample, Score
from rewardlab.runtime.current import current_runtime
from rewardlab.runtime.engine import Runtime
from rewardlab.serve.specinfo import component_keys

OK_KEY = "rewardlab_ok"
SCORE_KEY = "score"

_specs: dict[str, Spec] = {}
_specs_lock = threading.Lock()


def resolve(spec: SpecLike) -> Spec:
    """`spec` built once per process when it is a name, a path, YAML text or a JSON-able dict
    (trainers pass the same configuration on every call), else built as given."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, str) or isinstance(spec, Mapping):
        try:
            key = spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True)
        except TypeError:
            return build(spec)
        with _specs_lock:
            found = _specs.get(key)
        if found is None:
            found = build(spec)
            with _specs_lock:
                _specs.setdefault(key, found)
        return found
    return build(spec)


def record_keys(spec: Spec) -> list[str]:
    """The keys of `record`: ``score``, every component key of `spec`, ``rewardlab_ok``."""
    keys = [SCORE_KEY, *component_keys(spec), OK_KEY]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a component of the spec is named like a record key ({SCORE_KEY!r}, {OK_KEY!r})")
    return keys


def number(value: float | None, fallback: float) -> float:
    """`value` as a finite float, else `fallback`."""
    return fallback if value is None or not math.isfinite(value) else float(value)


def value(score: Score, fallback: float) -> float:
    """The reward a trainer gets: the score's value when ok, else `fallback`."""
    return number(score.value if score.ok else None, fallback)


def record(score: Score, keys: Sequence[str], fallback: float) -> dict[str, float]:
    """A flat numeric dict with exactly `keys` (from `record_keys`): ``score`` (`value`), each
    component as computed (`fallback` where the score lacks it, e.g. the part that failed),
    ``rewardlab_ok`` (1.0 or 0.0). The same mapping as the server's ``/get_reward`` extra_logs."""
    out: dict[str, float] = {}
    for k in keys:
        if k == SCORE_KEY:
            out[k] = value(score, fallback)
        elif k == OK_KEY:
            out[k] = 1.0 if score.ok else 0.0
        else:
            out[k] = number(score.components.get(k), fallback)
    return out


def check_fallback(fallback: Any) -> float:
    if isinstance(fallback, bool) or not isinstance(fallback, int | float) or not math.isfinite(fallback):
        raise ValueError(f"fallback must be a finite number, not {fallback!r}")
    return float(fallback)


@dataclass
class Batcher:
    """Collects the samples of concurrent `score` calls for one spec on one Runtime and scores
    them in one `Runtime.ascore` per batch: a batch leaves when it holds `max_batch` samples or
    `max_wait` seconds after its first sample arrived. `batches` counts the batches scored."""

    runtime: Runtime
    spec: Spec
    max_batch: int = 64
    max_wait: float = 0.005
    batches: int = 0
    _pending: list[tuple[Sample, asyncio.Future[Score]]] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None
    _running: set[asyncio.Task[None]] = field(default_factory=set)  # a running batch is kept referenced

    async def score(self, sample: Sample) -> Score:
        """The score of `sample`, awaitable from any event loop."""
        loop = self.runtime.loop
        if asyncio.get_running_loop() is loop:
            return await self._submit(sample)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._submit(sample), loop))

    def submit_threadsafe(self, sample: Sample) -> concurrent.futures.Future[Score]:
        """The future score of `sample`, from a thread that is not the Runtime's loop (submit
        every sample of a call before waiting, so they share a batch)."""
        return asyncio.run_coroutine_threadsafe(self._submit(sample), self.runtime.loop)

    async def _submit(self, sample: Sample) -> Score:  # runs on the Runtime's loop
        future: asyncio.Future[Score] = asyncio.get_running_loop().create_future()
        self._pending.append((sample, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_wait, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            self.batches += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Sample, asyncio.Future[Score]]]) -> None:
        try:
            scores = (await self.runtime.ascore(self.spec, [s for s, _ in batch])).scores
        except Exception as exc:  # the Runtime itself failed: every sample is an error, with the reason
            scores = [Score.error(f"the runtime failed: {type(exc).__name__}: {exc}") for _ in batch]
        for (_, fut), sc in zip(batch, scores, strict=True):
            if not fut.done():
                fut.set_result(sc)


_runtimes: dict[tuple[Any, ...], Runtime] = {}


def runtime_for(cache: str | None = None, workers: int | None = None, timeout: float | None = None) -> Runtime:
    """The current Runtime when no option is set, else a process-wide Runtime made with these
    options on first use (its cache file, pool size, per-sample timeout) and closed at exit."""
    if cache is None and workers is None and timeout is None:
        return current_runtime()
    key = (cache, workers, timeout)
    with _specs_lock:
        rt = _runtimes.get(key)
        if rt is None or rt.closed:
            rt = _runtimes[key] = Runtime(cache=cache, workers=workers, timeout=timeout)
            atexit.register(rt.close)
        return rt


_batchers: dict[tuple[int, str], Batcher] = {}
_batchers_lock = threading.Lock()


def batcher(spec: Spec, runtime: Runtime | None = None, max_batch: int = 64, max_wait: float = 0.005) -> Batcher:
    """The batcher of `spec` on `runtime` (default: the current Runtime), made on first use."""
    rt = runtime or current_runtime()
    key = (id(rt), spec.fingerprint)
    with _batchers_lock:
        found = _batchers.get(key)
        if found is None or found.runtime is not rt or rt.closed:
            found = _batchers[key] = Batcher(rt, spec, max_batch=max_batch, max_wait=max_wait)
        else:
            found.max_batch, found.max_wait = max_batch, max_wait
        return found
