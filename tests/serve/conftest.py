"""Fixtures of the server tests (each test module skips itself without the serve extra)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.serve.server import Server


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[..., Server]]:
    """`serve(*args)` starts a ready server; every server started is stopped at module end."""
    started: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        s = Server(list(args), env)
        started.append(s)
        s.wait_ready()
        return s

    try:
        yield start
    finally:
        for s in started:
            s.stop()
