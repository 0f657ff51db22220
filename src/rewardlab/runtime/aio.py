"""Concurrency for `io` rewards: a concurrency cap and a requests-per-minute limit per endpoint
(a `Gate`, shared by every reward and batch using the endpoint), timeouts and retries with
exponential backoff (at least an exception's ``retry_after`` seconds, when it carries one). A
reward that returns a `Score` (even an error) is not retried: that is its verdict. An exception
or a timeout is retried, unless the exception has ``retryable = False``."""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Gate:
    """The limits of one endpoint: at most `max_concurrency` calls in flight and request starts
    spaced so that at most `rpm` start in any minute (a leaky bucket). Lives on one event loop
    (the Runtime's) for as long as the Runtime, so limits hold across batches and calls. When
    several rewards declare limits for the same endpoint, the strictest holds (`tighten`)."""

    def __init__(self, max_concurrency: int, rpm: float | None) -> None:
        self.max_concurrency = max_concurrency
        self.interval = 60.0 / rpm if rpm else 0.0
        self.in_flight = 0
        self.started = 0
        self._next = 0.0
        self._cond = asyncio.Condition()
        self._lock = asyncio.Lock()

    def tighten(self, max_concurrency: int, rpm: float | None) -> None:
        self.max_concurrency = min(self.max_concurrency, max_concurrency)
        if rpm:
            self.interval = max(self.interval, 60.0 / rpm)

    async def _rate(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)

    async def __aenter__(self) -> Gate:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.max_concurrency)
            self.in_flight += 1
        try:
            await self._rate()
        except BaseException:
            await self._leave()
            raise
        self.started += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._leave()

    async def _leave(self) -> None:
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify()


@dataclass
class IOLimits:
    max_concurrency: int = 8
    rpm: float | None = None
    timeout: float = 30.0
    retries: int = 2
    backoff: float = 0.5
    backoff_max: float = 20.0


class CallFailed(Exception):
    """A failed call to a service, saying how the retry loop should treat it: `retryable`
    (whether trying again may help), `retry_after` (the wait in seconds the service asked for,
    e.g. from a 429) and the HTTP `status`, when there is one."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class RetriesExhausted(Exception):
    def __init__(self, attempts: int, last: BaseException) -> None:
        kind = "timeout" if isinstance(last, TimeoutError) else type(last).__name__
        super().__init__(f"failed after {attempts} attempt(s); last: {kind}: {last}")


class RewardExited(Exception):
    """A reward call raised SystemExit (or another BaseException): an error for that call."""


class Limited:
    """Runs calls with one reward's timeout and retries, through its endpoint's `Gate` (a
    private one when none is given)."""

    def __init__(self, limits: IOLimits, gate: Gate | None = None) -> None:
        self.limits = limits
        self.gate = gate or Gate(limits.max_concurrency, limits.rpm)
        self.attempts = 0

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        lim = self.limits
        last: BaseException | None = None
        for attempt in range(lim.retries + 1):
            if attempt:
                delay = min(lim.backoff_max, lim.backoff * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2
                # a server's Retry-After (carried by the exception) is honoured, within bounds
                delay = max(delay, min(lim.backoff_max, getattr(last, "retry_after", None) or 0))
                await asyncio.sleep(delay)
            async with self.gate:
                self.attempts += 1
                try:
                    return await asyncio.wait_for(_invoke(fn, *args, **kwargs), lim.timeout)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # retried, then reported: never a silent value
                    last = exc
                    if getattr(exc, "retryable", True) is False:
                        break
        assert last is not None
        raise RetriesExhausted(attempt + 1, last)


async def _invoke(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args, **kwargs)
        result = await in_daemon_thread(fn, *args, **kwargs)
        if isinstance(result, Awaitable):
            return await result
        return result
    except (Exception, asyncio.CancelledError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # SystemExit and the like from a reward: that call fails
        raise RewardExited(f"{type(exc).__name__}: {exc}") from None


class PerLoop(Generic[T]):
    """One value per running event loop (a Runtime's loop, or one `asyncio.run`), made on first
    use there and closed by `aclose(value)` when that loop cancels its tasks (a Runtime's
    `close()`, the end of `asyncio.run`): HTTP clients and sessions whose connections must not
    outlive or cross their loop."""

    def __init__(self, make: Callable[[], T], aclose: Callable[[T], Awaitable[None]], name: str) -> None:
        self._make, self._aclose, self._name = make, aclose, name
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        self._keepers: set[asyncio.Task[None]] = set()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            value = self._values[loop] = self._make()
            keeper = loop.create_task(self._keep(value), name=self._name)
            self._keepers.add(keeper)
            keeper.add_done_callback(self._keepers.discard)
        return value

    def of(self, loop: asyncio.AbstractEventLoop) -> T | None:
        """The value of `loop`, if it has one (without making it)."""
        return self._values.get(loop)

    async def _keep(self, value: T) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self._values.pop(asyncio.get_running_loop(), None)
            await self._aclose(value)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code: with `asyncio.run` when this thread runs no
    event loop, else on a new loop in a helper thread (this thread's loop cannot be given up)."""
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


def in_daemon_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """Run a blocking call on its own daemon thread; the future completes with its result.

    Unlike `asyncio.to_thread` (whose executor is joined when the loop closes and again at
    interpreter exit), a call that never returns is abandoned once its caller stops waiting
    (a timeout): it costs its sample, never the run or the process's exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # cancelled by a timeout: nobody waits for this any more
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            outcome = (True, fn(*args, **kwargs))
        except Exception as exc:  # handed to the awaiting caller
            outcome = (False, exc)
        except BaseException as exc:  # SystemExit... in a reward: an error for this call only
            outcome = (False, RewardExited(f"{type(exc).__name__}: {exc}"))
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: the run ended without this call
            pass

    threading.Thread(target=target, name=f"rewardlab-io-{getattr(fn, '__name__', 'call')}",
                     daemon=True).start()
    return future
