"""A client for `rewardlab serve`: score batches on one or several reward servers.

>>> from rewardlab.client import RewardClient
>>> client = RewardClient(["http://gpu-a:8000", "http://gpu-b:8000/"], token="s3cret")
>>> client.urls
('http://gpu-a:8000', 'http://gpu-b:8000')
>>> "s3cret" in repr(client)
False

``client.score(samples)`` (sync) and ``await client.ascore(samples)`` return one `Score` per
sample, in order, as the server computed it (status, reason, components, steps, turns, tokens,
cost). A batch is cut into contiguous slices, one per server; each slice is retried on its
server with exponential backoff and jitter after a 429, a 5xx, or a refused, dropped or timed
out connection (waiting at least what ``Retry-After`` asks), then tried on the other servers
before the call fails with `RemoteError`. Any other 4xx is final and raised at once with the
server's message; an answer with the wrong number of scores is an error, never a silent 0, and a
malformed score becomes an error score. The wire protocol lives in `rewardlab.models.remote`,
which the ``remote`` reward shares. Needs `aiohttp` (the ``serve`` extra).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from rewardlab.core.types import Sample, Score
from rewardlab.models.remote import RemoteError, check_urls, post_scores, sample_row
from rewardlab.runtime.aio import run_sync

__all__ = ["RemoteError", "RewardClient"]


class RewardClient:
    """Scores samples on rewardlab servers at `urls` (one URL or several, to shard over).

    `timeout` bounds each request (seconds); `retries` is how many times a request is retried on
    its server after a retryable failure; `backoff` the first wait (doubling each retry, with
    jitter, at most `backoff_max`, and never shorter than the server's ``Retry-After``, itself
    capped at `max_retry_after`). `sleep` is how the client waits (``asyncio.sleep``)."""

    def __init__(self, urls: str | Sequence[str], token: str | None = None, *, timeout: float = 300.0,
                 retries: int = 4, backoff: float = 0.5, backoff_max: float = 30.0,
                 max_retry_after: float = 120.0,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.urls = check_urls(urls)
        if retries < 0 or backoff < 0 or backoff_max < 0 or max_retry_after < 0 or not timeout > 0:
            raise ValueError("timeout must be > 0 and retries, backoff, backoff_max, max_retry_after >= 0")
        self.token = token
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.backoff_max, self.max_retry_after = backoff_max, max_retry_after
        self.sleep = sleep
        self.fingerprints: dict[str, str] = {}  # the spec each server said it serves

    def __repr__(self) -> str:
        return f"RewardClient({list(self.urls)!r}, token={'***' if self.token else None})"

    def score(self, samples: Sequence[Sample | Mapping[str, Any]]) -> list[Score]:
        """Sync twin of `ascore` (it drives `ascore`); callable from inside a running loop too
        (then on a helper thread)."""
        return run_sync(self.ascore(samples))

    async def ascore(self, samples: Sequence[Sample | Mapping[str, Any]]) -> list[Score]:
        """One `Score` per sample (a `rewardlab.Sample` or a row dict), in input order."""
        import aiohttp

        rows = [sample_row(s) for s in samples]
        if not rows:
            return []
        n = min(len(self.urls), len(rows))
        bounds = [len(rows) * i // n for i in range(n + 1)]
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.ensure_future(self._shard(session, i, rows, bounds[i], bounds[i + 1]))
                     for i in range(n)]
            try:  # the first slice that fails ends the call: the others are cancelled, not left running
                await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        return [s for t in tasks for s in t.result()]

    async def _shard(self, session: Any, i: int, rows: list[dict[str, Any]], lo: int, hi: int) -> list[Score]:
        """Slice `i` (rows lo..hi-1) on its own server, then on each other server in turn."""
        last: RemoteError | None = None
        for url in self.urls[i:] + self.urls[:i]:
            try:
                return await self._retrying(session, url, rows[lo:hi])
            except RemoteError as exc:
                if not exc.retryable:
                    where = f" (in the slice of samples {lo} to {hi - 1}; indices above count from {lo})" if lo else ""
                    raise RemoteError(f"{exc}{where}", retryable=False, status=exc.status) from exc
                last = exc
        assert last is not None
        raise RemoteError(f"every server failed; last: {last}", retryable=True, status=last.status) from last

    async def _retrying(self, session: Any, url: str, rows: list[dict[str, Any]]) -> list[Score]:
        last: RemoteError | None = None
        for attempt in range(self.retries + 1):
            if last is not None:
                await self.sleep(self._delay(attempt, last))
            try:
                scores, served = await post_scores(session, url, rows, token=self.token, timeout=self.timeout)
            except RemoteError as exc:
                if not exc.retryable:
                    raise
                last = exc
                continue
            if served is not None:
                self.fingerprints[url] = served
            return scores
        assert last is not None
        raise last

    def _delay(self, attempt: int, last: RemoteError) -> float:
        """Exponential backoff with jitter (half to all of the step), at least the server's
        ``Retry-After`` (capped)."""
        step = min(self.backoff_max, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        return max(step, min(self.max_retry_after, last.retry_after or 0.0))
