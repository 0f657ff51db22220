"""Requests to an OpenAI-compatible chat endpoint, with failures sorted into retryable and
final ones, an optional tokens-per-minute budget, and usage accounting.

The `openai` package is imported on first use, so importing this module needs no extra.
Clients and token budgets are kept per event loop and closed when that loop shuts its tasks
down; judges run on their Runtime's own loop, so both live as long as the Runtime.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rewardlab.runtime.aio import CallFailed, PerLoop

ENV_BASE_URL = ("REWARDLAB_JUDGE_BASE_URL", "OPENAI_BASE_URL")
ENV_MODEL = ("REWARDLAB_JUDGE_MODEL",)
ENV_API_KEY = ("REWARDLAB_JUDGE_API_KEY", "OPENAI_API_KEY")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_NO_KEY = "no-key"  # local servers (vLLM, llama.cpp, Ollama) accept any key


def from_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


class JudgeRequestError(CallFailed):
    """A request that failed. `retryable` tells the runtime whether to try again;
    `retry_after` is the server's requested wait in seconds (from a 429), if any."""


@dataclass
class Reply:
    """One completion: its text, per-position top log-probs (if asked and given), usage."""

    text: str
    top_logprobs: list[tuple[str, list[tuple[str, float]]]] | None
    input_tokens: int
    output_tokens: int


@dataclass
class Endpoint:
    """Where and how to send requests. The key is never part of a fingerprint or message."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    tpm: float | None = None

    def key(self) -> str:
        return self.api_key or from_env(ENV_API_KEY) or _NO_KEY


class TokenBudget:
    """At most `tpm` tokens (prompt estimate plus completion limit, corrected by the usage
    the server reports) start in any 60 s window. A request larger than the budget runs alone."""

    def __init__(self, tpm: float) -> None:
        self.tpm = tpm
        self._spent: deque[list[float]] = deque()  # [start time, tokens]
        self._lock = asyncio.Lock()

    async def acquire(self, estimate: float) -> list[float]:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._spent and now - self._spent[0][0] >= 60.0:
                    self._spent.popleft()
                used = sum(t for _, t in self._spent)
                if not self._spent or used + estimate <= self.tpm:
                    entry = [now, estimate]
                    self._spent.append(entry)
                    return entry
                await asyncio.sleep(60.0 - (now - self._spent[0][0]) + 0.01)


class _LoopState:
    """One loop's judge clients and token budgets."""

    def __init__(self) -> None:
        self.clients: dict[tuple[str, str], Any] = {}
        self.budgets: dict[tuple[str, str, float], TokenBudget] = {}

    async def aclose(self) -> None:
        clients = list(self.clients.values())
        self.clients.clear()
        for client in clients:
            await client.close()


STATE: PerLoop[_LoopState] = PerLoop(_LoopState, _LoopState.aclose, "rewardlab-judge-clients")


def _client(endpoint: Endpoint) -> Any:
    try:
        import openai
    except ImportError as exc:  # a missing extra is a final error, not a retry
        raise JudgeRequestError(
            "LLM judges need the openai package: pip install 'rewardlab[judge]'", retryable=False
        ) from exc
    state = STATE.get()
    key = endpoint.key()
    ident = (endpoint.base_url, hashlib.sha256(key.encode()).hexdigest())
    client = state.clients.get(ident)
    if client is None:
        # retries and timeouts belong to the rewardlab runtime, so the client makes one try
        client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=key, max_retries=0,
                                    timeout=None)
        state.clients[ident] = client
    return client


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _status_error(exc: Any) -> JudgeRequestError:
    status = int(exc.status_code)
    retryable = status in (408, 409, 429) or status >= 500
    message = str(getattr(exc, "message", "") or "")[:300]
    return JudgeRequestError(
        f"judge endpoint answered HTTP {status}: {message}",
        retryable=retryable,
        status=status,
        retry_after=_retry_after(getattr(exc.response, "headers", None)),
    )


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _parse(resp: Any, want_logprobs: bool) -> Reply:
    """Check the response's shape; a malformed one is a retryable error."""
    choices = _field(resp, "choices")
    if not isinstance(choices, list) or not choices:
        got = type(resp).__name__ if not isinstance(resp, str) else f"text {resp[:80]!r}"
        raise JudgeRequestError(f"judge endpoint sent a malformed completion ({got})",
                                retryable=True)
    message = _field(choices[0], "message")
    text = _field(message, "content")
    if not isinstance(text, str):
        raise JudgeRequestError("judge endpoint sent a completion without message text",
                                retryable=True)
    top: list[tuple[str, list[tuple[str, float]]]] | None = None
    if want_logprobs:
        content = _field(_field(choices[0], "logprobs"), "content")
        if isinstance(content, list) and content:
            top = []
            for pos in content:
                entries = [
                    (str(_field(e, "token")), float(_field(e, "logprob")))
                    for e in (_field(pos, "top_logprobs") or [])
                    if isinstance(_field(e, "logprob"), int | float)
                ]
                top.append((str(_field(pos, "token")), entries))
    usage = _field(resp, "usage")
    tin = _field(usage, "prompt_tokens") if usage is not None else None
    tout = _field(usage, "completion_tokens") if usage is not None else None
    return Reply(text, top, int(tin or 0), int(tout or 0))


async def chat(
    endpoint: Endpoint,
    messages: list[dict[str, str]],
    *,
    max_tokens: int,
    temperature: float,
    seed: int | None = None,
    top_logprobs: int | None = None,
    extra_body: dict[str, Any] | None = None,
) -> Reply:
    """One chat completion. Raises `JudgeRequestError` (retryable for 408/409/429/5xx,
    connection failures and malformed bodies; final for other 4xx)."""
    import openai  # checked by _client

    client = _client(endpoint)
    kwargs: dict[str, Any] = {
        "model": endpoint.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if seed is not None:
        kwargs["seed"] = seed
    if top_logprobs is not None:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = top_logprobs
    if extra_body:
        kwargs["extra_body"] = extra_body
    entry: list[float] | None = None
    if endpoint.tpm:
        state = STATE.get()
        bkey = (endpoint.base_url, endpoint.model, endpoint.tpm)
        budget = state.budgets.get(bkey)
        if budget is None:
            budget = state.budgets[bkey] = TokenBudget(endpoint.tpm)
        chars = sum(len(m["content"]) for m in messages)
        entry = await budget.acquire(chars / 4 + max_tokens)
    try:
        resp = await client.chat.completions.create(**kwargs)
    except openai.APIStatusError as exc:
        raise _status_error(exc) from None
    except openai.APIConnectionError as exc:
        kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "connection failed"
        raise JudgeRequestError(f"judge endpoint {kind}: {exc}", retryable=True) from None
    except (openai.APIError, ValueError) as exc:  # undecodable or invalid body
        raise JudgeRequestError(
            f"judge endpoint sent an unreadable response ({type(exc).__name__}: "
            f"{str(exc)[:200]})", retryable=True) from None
    reply = _parse(resp, top_logprobs is not None)
    if entry is not None and (reply.input_tokens or reply.output_tokens):
        entry[1] = reply.input_tokens + reply.output_tokens
    return reply
