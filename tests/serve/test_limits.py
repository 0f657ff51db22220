"""Backpressure and limits: a full queue answers 429 with Retry-After (made deterministic by a
reward that waits on a gate file, so the queue provably fills), a body over the limit 413, a
request without the bearer token 401; every request admitted is answered."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi")

from tests.serve.server import Server, request, wait_until  # noqa: E402

GATED = "tests.serve.rewards_for_serve:gated"


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []
    t = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    t.start()
    return t, box


def test_full_queue_answers_429(serve: Callable[..., Server], tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    server = serve(GATED, "-p", f"gate={gate}", "-p", f"started={started}", "--no-warmup", "--no-cache",
                   "--workers", "1", "--max-batch", "1", "--concurrent-batches", "1", "--max-queue", "1")

    def one(text: str) -> Callable[[], Any]:
        return lambda: request("POST", server.url + "/v1/score", {"samples": [{"prompt": "p", "response": text}]})

    try:
        first, first_out = in_thread(one("first"))  # taken at once: the only batch slot, blocked
        wait_until(lambda: started.exists() and started.read_text() == "first\n", "the first sample to start")
        second, second_out = in_thread(one("second"))  # waits in the queue (one sample fits)
        wait_until(lambda: server.metric("rewardlab_queue_depth") == 1, "the second sample to queue")
        status, headers, body = one("third")()
        assert status == 429 and int(headers["retry-after"]) >= 1, body
        assert "queue" in body["detail"]
        # more samples than the queue can ever hold: refused for good, not "retry later"
        status, _, body = request("POST", server.url + "/v1/score",
                                  {"samples": [{"response": "a"}, {"response": "b"}]})
        assert status == 413 and "at most 1" in body["detail"]
    finally:
        gate.touch()
    for t in (first, second):
        t.join(120)
    assert first_out[0][0] == 200 and first_out[0][2]["scores"][0]["value"] == 1.0
    assert second_out[0][0] == 200 and second_out[0][2]["scores"][0]["value"] == 1.0
    assert started.read_text().split() == ["first", "second"]  # the refused sample never reached the reward
    assert server.metric("rewardlab_requests_total", endpoint="/v1/score", code="429") == 1
    assert server.metric("rewardlab_requests_total", endpoint="/v1/score", code="200") == 2


def test_body_limit_answers_413(serve: Callable[..., Server]) -> None:
    server = serve("math_answer", "--no-cache", "--workers", "1", "--max-body-bytes", "2000")
    small = {"samples": [{"prompt": "1+1?", "response": "\\boxed{2}", "reference": "2"}]}
    assert request("POST", server.url + "/v1/score", small)[0] == 200
    big = {"samples": [{"prompt": "x" * 3000, "response": "\\boxed{2}", "reference": "2"}]}
    status, _, body = request("POST", server.url + "/v1/score", big)
    assert status == 413 and "2000 bytes" in body["detail"]
    status, _, body = request("POST", server.url + "/get_reward", {"query": ["y" * 5000]})
    assert status == 413
    assert server.metric("rewardlab_requests_total", endpoint="/get_reward", code="413") == 1


@pytest.mark.parametrize("how", ["option", "environment"])
def test_token_answers_401(serve: Callable[..., Server], how: str) -> None:
    if how == "option":
        server = serve("math_answer", "--no-cache", "--workers", "1", "--token", "s3cret")
    else:
        server = serve("math_answer", "--no-cache", "--workers", "1", env={"REWARDLAB_TOKEN": "s3cret"})
    payload = {"query": ["Q:\\boxed{2}"], "prompts": ["Q:"], "labels": ["2"]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        status, hdrs, body = request("POST", server.url + "/get_reward", payload, headers=headers)
        assert status == 401 and hdrs["www-authenticate"] == "Bearer", body
        assert request("GET", server.url + "/v1/spec", headers=headers)[0] == 401
    status, _, body = request("POST", server.url + "/get_reward", payload, headers={"Authorization": "Bearer s3cret"})
    assert status == 200 and body["rewards"] == [1.0]
    for open_path in ("/health", "/ready", "/metrics"):  # probes and scrapers need no token
        assert request("GET", server.url + open_path, raw=True)[0] == 200
    assert server.metric("rewardlab_requests_total", endpoint="/get_reward", code="401") == 3
    assert any(line == "  token       required" for line in server.lines)


def test_chunked_body_over_the_limit_answers_413(serve: Callable[..., Server]) -> None:
    """A body sent without Content-Length is counted as it is read."""
    server = serve("math_answer", "--no-cache", "--workers", "1", "--max-body-bytes", "1000")
    parts = urlsplit(server.url)
    body = json.dumps({"samples": [{"prompt": "z" * 5000, "response": "\\boxed{1}", "reference": "1"}]}).encode()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("POST", "/v1/score", body=iter([body[:500], body[500:]]),
                     headers={"content-type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413, response.read()
    finally:
        conn.close()


def test_ready_only_after_warm_up(tmp_path: Path) -> None:
    """/health answers while the warm-up runs; /ready is 503 until it is done, then 200."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    server = Server([GATED, "-p", f"gate={gate}", "-p", f"started={started}", "--no-cache", "--workers", "1"])
    try:
        wait_until(started.exists, "the warm-up sample to reach the reward")
        wait_until(lambda: bool(server.url), "the address")

        def answers() -> bool:
            try:
                return request("GET", server.url + "/health")[0] == 200
            except OSError:
                return False  # not listening yet

        wait_until(answers, "/health to answer")
        status, _, body = request("GET", server.url + "/ready")
        assert status == 503 and body == {"ready": False, "warmup": None}
        assert not server.ready.is_set()
        gate.touch()
        server.wait_ready()
    finally:
        gate.touch()
        server.stop()


def test_request_deadline_answers_with_error_scores(serve: Callable[..., Server], tmp_path: Path) -> None:
    """A sample not scored within --deadline is an error score in a 200 (the gate stays shut
    until the reply is in, so the deadline provably passed); the server goes on scoring."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    server = serve(GATED, "-p", f"gate={gate}", "-p", f"started={started}", "--no-warmup", "--no-cache",
                   "--workers", "1", "--max-batch", "1", "--concurrent-batches", "1", "--deadline", "0.5",
                   "--fallback", "-2")
    try:
        status, _, body = request("POST", server.url + "/get_reward",
                                  {"query": ["Q:one", "Q:two"], "prompts": ["Q:", "Q:"]})
        assert status == 200, body
        assert body["rewards"] == [-2.0, -2.0] and body["extra_logs"]["rewardlab_ok"] == [0.0, 0.0]
        status, _, body = request("POST", server.url + "/v1/score", {"samples": [{"response": "three"}]})
        assert status == 200 and body["scores"][0]["status"] == "error"
        assert "deadline of 0.5 s" in body["scores"][0]["reason"]
    finally:
        gate.touch()
    assert server.metric("rewardlab_deadline_exceeded_total") == 3
    wait_until(lambda: server.metric("rewardlab_batch_size_count") == 1, "the first batch to finish")
    assert started.read_text().split() == ["one"]  # the samples still queued never reached the reward
    status, _, body = request("POST", server.url + "/v1/score", {"samples": [{"response": "four"}]})
    assert status == 200 and body["scores"][0]["value"] == 1.0
