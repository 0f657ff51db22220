"""SIGTERM while requests are in flight: the server stops taking connections, answers every
request it had taken (scored, not failed), then exits 0 and leaves no worker behind."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi")

from tests.serve.server import Server, request, wait_until  # noqa: E402

GATED = "tests.serve.rewards_for_serve:gated"


def _refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=5):
            return False
    except OSError:
        return True


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (pool workers are children of multiprocessing's forkserver)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, parent in parents.items() if parent == p]
        out.extend(kids)
        todo.extend(kids)
    return out


def test_sigterm_during_load_loses_no_accepted_request(serve: Callable[..., Server], tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    server = serve(GATED, "-p", f"gate={gate}", "-p", f"started={started}", "--no-warmup", "--no-cache",
                   "--workers", "2", "--max-batch", "2", "--concurrent-batches", "1")
    n = 8
    results: list[Any] = [None] * n

    def call(i: int) -> None:
        if i % 2:
            results[i] = request("POST", server.url + "/get_reward", {"query": [f"Q:answer {i}"], "prompts": ["Q:"]})
        else:
            results[i] = request("POST", server.url + "/v1/score", {"samples": [{"response": f"answer {i}"}]})

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(n)]
    try:
        for t in threads:
            t.start()
        # every request has been taken (its handler is running) and one batch is at the reward
        wait_until(lambda: server.metric("rewardlab_inflight_requests") == n, "all requests to be taken")
        wait_until(started.exists, "the first batch to reach the reward")
        workers = _descendants(server.proc.pid)
        assert workers  # the pool's processes (and multiprocessing's helpers)
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: _refused(server.url), "the server to stop taking connections")
        assert server.proc.poll() is None  # still finishing what it took
    finally:
        gate.touch()
    for t in threads:
        t.join(120)
    for i, (status, _, body) in enumerate(results):
        assert status == 200, body
        if i % 2:
            assert body["rewards"] == [1.0] and body["extra_logs"]["rewardlab_ok"] == [1.0]
        else:
            assert body["scores"][0]["status"] == "ok" and body["scores"][0]["value"] == 1.0
    assert sorted(started.read_text().split("\n")[:-1]) == sorted(f"answer {i}" for i in range(n))
    assert server.proc.wait(120) == 0, server.errors()
    assert "stopped" in server.errors()
    wait_until(lambda: not any(_alive(pid) for pid in workers), "the server's child processes to exit")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
