"""A reward that crashes its worker, hangs, or raises costs only its own sample: the request is
a 200 whose scores say `error` with the reason; OpenRLHF gets the fallback value and
`rewardlab_ok` 0 for it, and the samples beside it are scored as usual."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("fastapi")

from tests.serve.server import Server, request  # noqa: E402

FAULTY = "tests.serve.rewards_for_serve:faulty"


@pytest.fixture(scope="module")
def server(serve: Callable[..., Server]) -> Server:
    return serve(FAULTY, "--no-cache", "--workers", "2", "--timeout", "2", "--fallback", "-0.5")


def test_v1_score_failures_are_error_scores(server: Server) -> None:
    responses = ["fine", "crash now", "hang forever", "raise it", "also fine"]
    status, _, body = request("POST", server.url + "/v1/score",
                              {"samples": [{"prompt": "p", "response": r} for r in responses]})
    assert status == 200, body
    scores = body["scores"]
    assert [s["status"] for s in scores] == ["ok", "error", "error", "error", "ok"]
    assert [s["value"] for s in scores] == [1.0, None, None, None, 1.0]
    assert all(s["reason"] for s in scores[1:4])
    assert "time" in scores[2]["reason"].lower()  # the hang was stopped by the timeout
    assert "the reward raised" in scores[3]["reason"]
    assert server.metric("rewardlab_worker_restarts_total") >= 2  # the crash and the hang


def test_get_reward_failures_get_the_fallback(server: Server) -> None:
    queries = ["Q:fine", "Q:crash", "Q:hang", "Q:raise"]
    status, _, body = request("POST", server.url + "/get_reward",
                              {"query": queries, "prompts": ["Q:"] * 4, "labels": [""] * 4})
    assert status == 200, body
    assert body["rewards"] == [1.0, -0.5, -0.5, -0.5]
    assert body["scores"] == body["rewards"]
    assert body["extra_logs"] == {"rewardlab_ok": [1.0, 0.0, 0.0, 0.0]}
    assert server.metric("rewardlab_fallbacks_total") >= 3


def test_the_server_still_scores_after_failures(server: Server) -> None:
    status, _, body = request("POST", server.url + "/get_reward", {"query": ["Q:ok"], "prompts": ["Q:"]})
    assert status == 200 and body["rewards"] == [1.0] and body["extra_logs"]["rewardlab_ok"] == [1.0]
    assert request("GET", server.url + "/health")[0] == 200
