"""Another rewardlab server as a reward, and the wire protocol of ``POST /v1/score``.

``{reward: remote, params: {url: http://gpu-box:8000}}`` scores each sample by asking a
`rewardlab serve` process (say, a GPU box serving a reward model) and returns the score it
gives: value, status, reason and components as the server computed them. `url` may be a list:
samples are spread over the servers, and a server that fails is replaced by the next one.

The reward is ``kind="io"``: the Runtime runs many samples at once on its event loop (at most 64
by default, a server's default batch; a leaf's ``max_concurrency`` changes it), within the
limits of the reward's resource (its URLs, so every leaf calling the same servers shares one
concurrency limit), and retries a call that failed for a reason worth retrying (429, 5xx,
refused or dropped connection, timeout) with exponential backoff and jitter, waiting at least
what a 429's ``Retry-After`` asks. An ``io`` reward is called per sample (the reward contract
has no batched ``io`` kind), so batching is the Runtime's concurrency together with the
server's own micro-batching, which gathers concurrent requests into one batch. One HTTP session
per event loop keeps connections open between calls.

Configuration never touches the network, so the served spec's range and direction cannot be
read from its ``/v1/spec``: declare them with the ``range`` (default ``[-inf, inf]``) and
``direction`` (default ``higher``) params. A value outside `range` is an error score, never a
number. The fingerprint covers the URLs, `range`, `direction` and `fingerprint` — not the
token, which is never shown. The cache keys results by that fingerprint, and a URL may start
serving another spec: pass ``fingerprint=`` (the served spec's, printed by `rewardlab serve` and
given by ``/v1/spec``) to make an answer from any other spec an error and to key the cache by
the served spec.

The functions `sample_row`, `score_of` and `post_scores` speak the protocol for
`rewardlab.client.RewardClient` too. `aiohttp` (the ``serve`` extra) is imported on first use.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from rewardlab.core.registry import registry
from rewardlab.core.reward import Reward, RewardDef, fingerprint_of, reward
from rewardlab.core.types import Sample, Score
from rewardlab.runtime.aio import CallFailed, PerLoop

SCORE_PATH = "/v1/score"
_SCORE_FIELDS = frozenset(Score.model_fields)


class RemoteError(CallFailed):
    """A request to a rewardlab server that failed. `retryable` says whether trying again (or
    another server) may help; `retry_after` is the wait in seconds a 429 or 503 asked for."""


def check_urls(url: str | Sequence[str]) -> tuple[str, ...]:
    """The server URL(s) as a tuple, without a trailing slash; a ValueError for anything that is
    not one or more http(s) URLs."""
    urls = (url,) if isinstance(url, str) else tuple(url) if isinstance(url, Sequence) else ()
    if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
        raise ValueError(f"url must be an http(s) URL or a non-empty list of them, not {url!r}")
    return tuple(u.rstrip("/") for u in urls)


def sample_row(sample: Sample | Mapping[str, Any]) -> dict[str, Any]:
    """What is sent for one sample: a `Sample` as its JSON fields, a row (any layout the server
    reads, e.g. verl's or TRL's) as it is."""
    if isinstance(sample, Sample):
        return sample.model_dump(mode="json", exclude_none=True)
    if isinstance(sample, Mapping):
        return dict(sample)
    raise TypeError(f"a sample is a rewardlab.Sample or a dict, not {type(sample).__name__}")


def score_of(item: Any) -> Score:
    """One score of the server's answer as a `Score`; one that is malformed (an ok status
    without a finite value, a value with another status, a field of the wrong type) is an
    error score saying so, never a number (a string or boolean value is not read as one).
    Fields this version does not know are ignored."""
    if not isinstance(item, Mapping):
        return Score.error(f"the server sent a malformed score: {type(item).__name__}, not an object")
    try:
        known = {k: v for k, v in item.items() if k in _SCORE_FIELDS}
        return Score.model_validate_json(json.dumps(known), strict=True)  # "1" or true is no number
    except (TypeError, ValueError) as exc:  # NaN or infinity: json.dumps writes them, validation refuses
        if not isinstance(exc, ValidationError):
            return Score.error(f"the server sent a malformed score: {exc}")
        first = exc.errors()[0]
        return Score.error(f"the server sent a malformed score: {first.get('msg', exc)}")


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delay-seconds or an HTTP date), None if absent or
    unreadable (RFC 9110, section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message(text: str) -> str:
    """The server's own message from an error body (FastAPI's ``detail``), else the body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:500]


async def post_scores(session: Any, url: str, rows: list[dict[str, Any]], *, token: str | None = None,
                      timeout: float | None = None) -> tuple[list[Score], str | None]:
    """POST `rows` to ``url/v1/score`` on an `aiohttp.ClientSession`: the scores, in order, and
    the served spec's fingerprint. Raises `RemoteError`: retryable for 429, 5xx, a refused or
    dropped connection and a timeout; final for any other status (with the server's message) and
    for an answer that is not one score per row."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with session.post(url + SCORE_PATH, json={"samples": rows}, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            status, text = resp.status, await resp.text()
            wait = retry_after(resp.headers.get("Retry-After"))
    except (TimeoutError, aiohttp.ClientError) as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        raise RemoteError(f"{url}: {what}", retryable=True) from None
    if status != 200:
        retryable = status == 429 or status >= 500
        raise RemoteError(f"{url} answered {status}: {_message(text)}", retryable=retryable, status=status,
                          retry_after=wait if retryable else None)
    try:
        body = json.loads(text)
    except ValueError:
        raise RemoteError(f"{url} answered 200 with a body that is not JSON", retryable=False) from None
    scores = body.get("scores") if isinstance(body, dict) else None
    if not isinstance(scores, list) or len(scores) != len(rows):
        got = f"{len(scores)} scores" if isinstance(scores, list) else "no list of scores"
        raise RemoteError(f"{url} answered {got} for {len(rows)} samples", retryable=False)
    fingerprint = body.get("fingerprint")
    return [score_of(s) for s in scores], fingerprint if isinstance(fingerprint, str) else None


# -- the reward ----------------------------------------------------------------------------------
_DIRECTIONS = ("higher", "lower")
_turn = itertools.count()  # spreads calls over the servers of a list


class _Session:
    """One loop's HTTP session: its connections are reused across calls; closed with the loop."""

    def __init__(self) -> None:
        self.session: Any = None

    def get(self) -> Any:
        import aiohttp

        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        return self.session

    async def aclose(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()


SESSIONS: PerLoop[_Session] = PerLoop(_Session, _Session.aclose, "rewardlab-remote-session")


def _session() -> Any:
    """The running loop's `aiohttp.ClientSession`, made on first use."""
    return SESSIONS.get().get()


def _range(params: dict[str, Any]) -> tuple[float, float]:
    check_urls(params["url"])
    given = params["range"]
    try:
        lo, hi = (float(v) for v in given)
    except (TypeError, ValueError):
        raise ValueError(f"range must be a pair [lo, hi], not {given!r}") from None
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"range must be a pair [lo, hi] with lo <= hi, not {given!r}")
    if params["direction"] not in _DIRECTIONS:
        raise ValueError(f"direction must be 'higher' or 'lower', not {params['direction']!r}")
    return lo, hi


def _resource(params: dict[str, Any]) -> str:
    """What the reward's limits belong to: its servers (shared by every leaf calling them)."""
    return "remote:" + " ".join(check_urls(params["url"]))


class RemoteReward(Reward):
    """A configured remote reward: `direction` from its params; a fingerprint over the URLs,
    range, direction and expected fingerprint, not the token; the token never shown."""

    def __init__(self, definition: RewardDef, params: dict[str, Any] | None = None) -> None:
        super().__init__(definition, params)
        p = self.params
        p["url"] = list(check_urls(p["url"]))
        p["range"] = [*self.info.range]
        self.info = replace(self.info, direction=p["direction"])
        public = {k: v for k, v in p.items() if k != "token"}
        public["range"] = [repr(v) for v in p["range"]]  # -inf and inf as text
        self.fingerprint = fingerprint_of({"name": self.info.name, "version": self.info.version,
                                           "params": public})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={'***' if k == 'token' and v else repr(v)}" for k, v in self.params.items())
        return f"{self.info.name}({args})"


class _RemoteDef(RewardDef):
    def __call__(self, **params: Any) -> RemoteReward:
        return RemoteReward(self, params)


def _as_remote(fn: Any) -> _RemoteDef:
    plain = reward(fn, name="remote", kind="io", range=_range, timeout=120.0, retries=3,
                   max_concurrency=64, resource=_resource, register=False)
    definition = _RemoteDef(plain.fn, plain.info, batched=False)
    registry.add(definition)
    return definition


@_as_remote
async def remote(
    sample: Sample,
    *,
    url: str | list[str],
    token: str | None = None,
    range: tuple[float, float] | list[float] = (-math.inf, math.inf),  # noqa: A002
    direction: str = "higher",
    fingerprint: str | None = None,
) -> Score:
    """A remote rewardlab server's score, within params `range` (default [-inf, inf]); higher is better.

    Each sample is POSTed to ``<url>/v1/score`` and the server's score comes back with its
    status, reason and components; a value outside `range` is an error score. `url` is a URL
    or a list (calls are spread over them; a failing server is replaced by the next one).
    `token` is sent as ``Authorization: Bearer``; `direction` (``higher`` or ``lower``) is
    what the served spec means; `fingerprint`, when given, is the served spec's: an answer
    from another spec is an error. Configuration sends no request:

    >>> from rewardlab.models.remote import remote
    >>> rm = remote(url=["http://gpu-a:8000/", "http://gpu-b:8000"], token="s3cret", range=[-5, 5])
    >>> rm.params["url"]
    ['http://gpu-a:8000', 'http://gpu-b:8000']
    >>> rm.info.describe(), rm.resource
    ('[-5, 5], higher is better, per sequence', 'remote:http://gpu-a:8000 http://gpu-b:8000')
    >>> "s3cret" in repr(rm)
    False
    >>> rm.fingerprint == remote(url=["http://gpu-a:8000", "http://gpu-b:8000"], range=[-5, 5]).fingerprint
    True
    >>> rm.fingerprint == remote(url="http://gpu-a:8000", range=[-5, 5]).fingerprint
    False
    >>> remote(url="gpu-a:8000")
    Traceback (most recent call last):
    ...
    ValueError: url must be an http(s) URL or a non-empty list of them, not 'gpu-a:8000'
    """
    urls = check_urls(url)
    start = next(_turn) % len(urls)
    last: RemoteError | None = None
    session = _session()
    for u in urls[start:] + urls[:start]:
        try:
            scores, served = await post_scores(session, u, [sample_row(sample)], token=token)
        except RemoteError as exc:
            if not exc.retryable:
                raise
            last = exc
            continue
        if fingerprint is not None and served != fingerprint:
            raise RemoteError(f"{u} serves spec {served}, not the expected {fingerprint}", retryable=False)
        return scores[0]
    assert last is not None
    raise last  # retryable: the Runtime tries again after a backoff (at least its Retry-After)

