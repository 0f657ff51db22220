"""A tiny scripted OpenAI-compatible HTTP server on 127.0.0.1, for fault tests.

Each request to ``/v1/chat/completions`` is answered by a `responder(index, body)` that returns
a `Reply`; the server records every request body so tests can count attempts.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """What to answer: a status with a JSON or raw body, or `hang` (never answer)."""

    status: int = 200
    json_body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


def completion(
    text: str,
    *,
    top: list[dict[str, float]] | None = None,
    prompt_tokens: int = 40,
    completion_tokens: int = 7,
) -> Reply:
    """A well-formed chat completion answering `text`; `top` gives, per generated token
    position, the top log-probabilities as {token: probability}."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
    }
    if top is not None:
        content = []
        for position in top:
            best = max(position, key=lambda t: position[t])
            content.append({
                "token": best,
                "logprob": math.log(position[best]),
                "bytes": None,
                "top_logprobs": [
                    {"token": t, "logprob": math.log(p), "bytes": None} for t, p in position.items()
                ],
            })
        choice["logprobs"] = {"content": content}
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return Reply(json_body=body)


class FakeOpenAI:
    """Run with ``with FakeOpenAI(responder) as srv:``; `srv.base_url` ends in ``/v1``."""

    def __init__(self, responder: Callable[[int, dict[str, Any]], Reply]) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                try:
                    parsed = json.loads(body) if body else {}
                except json.JSONDecodeError:
                    parsed = {"_raw": body.decode("latin-1")}
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(parsed)
                    self.headers.append(headers)
                reply = self.responder(index, parsed)
                if reply.hang:
                    await asyncio.sleep(3600)
                payload = reply.raw
                if payload is None:
                    payload = json.dumps(reply.json_body).encode()
                out = [f"HTTP/1.1 {reply.status} X", f"Content-Type: {reply.content_type}",
                       f"Content-Length: {len(payload)}"]
                out += [f"{k}: {v}" for k, v in reply.headers.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
