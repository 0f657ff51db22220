"""The ``remote`` reward: a spec leaf that asks another `rewardlab serve` (real servers on
127.0.0.1) or a scripted one (`tests.models.fake_openai.FakeOpenAI`, which answers any path) that
answers what a broken or hostile server would: values out of the declared range, the wrong
number of scores, malformed scores, another spec. Each must become an error score, never a number."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("aiohttp")

import rewardlab  # noqa: E402
from rewardlab import Sample, Score  # noqa: E402
from rewardlab.models.remote import remote  # noqa: E402
from tests.models.fake_openai import FakeOpenAI, Reply  # noqa: E402
from tests.serve.server import Server  # noqa: E402
from tests.serve.test_client import dead_url, forwarding  # noqa: E402

TOKEN = "remote-t0ken"
WRONG = "not-the-t0ken-9f3"
PROMPT = "What is 6 times 7?"


@pytest.fixture(scope="module")
def math_server(serve: Callable[..., Server]) -> Server:
    return serve("math_answer", "--no-cache", "--workers", "1")


@pytest.fixture(scope="module")
def guarded(serve: Callable[..., Server]) -> Server:
    return serve("math_answer", "--no-cache", "--workers", "1", "--token", TOKEN)


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[..., Server]]:
    """`serve(*args)` starts a ready `rewardlab serve`; all are stopped at module end."""
    started: list[Server] = []

    def start(*args: str) -> Server:
        s = Server(list(args))
        started.append(s)
        s.wait_ready()
        return s

    try:
        yield start
    finally:
        for s in started:
            s.stop()


def samples() -> list[Sample]:
    return [Sample(prompt=PROMPT, response="<think>6*7</think><answer>42</answer>", reference="42"),
            Sample(prompt=PROMPT, response="<think>6*7</think><answer>41</answer>", reference="42"),
            Sample(prompt=PROMPT, response="The answer is \\boxed{42}.", reference="42"),
            Sample(prompt=PROMPT, response="no idea", reference="42")]


def outcome(scores: list[Score]) -> list[tuple[str, float | None]]:
    return [(s.status.value, s.value) for s in scores]


def test_a_remote_leaf_composed_with_a_local_one(math_server: Server) -> None:
    spec = {"reward": {"sum": [
        {"reward": "remote", "params": {"url": math_server.url, "range": [0, 1]}, "label": "correct",
         "weight": 1.0},
        {"reward": "think_answer_format", "params": {"mode": "strict"}, "label": "format", "weight": 0.1},
    ]}}
    got = rewardlab.score(samples(), spec, workers=1)
    correct = rewardlab.score(samples(), "math_answer", workers=1)
    fmt = rewardlab.score(samples(), rewardlab.registry.get("think_answer_format")(mode="strict"), workers=1)
    for g, c, f in zip(got, correct, fmt, strict=True):
        assert g.components == pytest.approx({"correct": c.value, "format": f.value}), g
    assert [c.value for c in correct][:2] == [1.0, 0.0]  # the remote leaf tells right from wrong
    assert got[0].value == pytest.approx(1.1) and got[1].value == pytest.approx(0.1)


def test_the_remote_score_keeps_status_and_reason(math_server: Server) -> None:
    rm = remote(url=math_server.url, range=[0, 1])
    here = rewardlab.score(samples(), "math_answer", workers=1)
    there = rewardlab.score(samples(), rm, workers=1)
    assert [(s.status, s.value, s.reason) for s in there] == [(s.status, s.value, s.reason) for s in here]
    assert here[3].reason == "no answer found"  # "no idea": the remote score says why it is 0


def test_a_list_of_urls_spreads_calls_and_survives_a_dead_server(math_server: Server) -> None:
    rm = remote(url=[dead_url(), math_server.url], range=[0, 1])
    assert outcome(rewardlab.score(samples(), rm, workers=1)) == \
        outcome(rewardlab.score(samples(), "math_answer", workers=1))


def test_every_server_down_is_an_error_score() -> None:
    rm = remote(url=dead_url())
    with rewardlab.Runtime(workers=1) as rt:
        [s] = rt.score(rm, samples()[:1]).scores
    assert s.status.value == "error" and "ClientConnectorError" in (s.reason or ""), s.reason


def test_429_then_forwarded_is_scored(math_server: Server) -> None:
    busy = Reply(status=429, json_body={"detail": "queue full"}, headers={"Retry-After": "0"})
    with FakeOpenAI(forwarding(math_server, [busy])) as proxy:
        [s] = rewardlab.score(samples()[:1], remote(url=f"http://127.0.0.1:{proxy.port}", range=[0, 1]), workers=1)
        assert len(proxy.requests) == 2
    assert s.ok and s.value == 1.0


def test_the_token_is_sent_and_never_shown(guarded: Server) -> None:
    ok = remote(url=guarded.url, token=TOKEN, range=[0, 1])
    assert rewardlab.score(samples()[:1], ok, workers=1)[0].value == 1.0
    assert ok.fingerprint == remote(url=guarded.url, range=[0, 1]).fingerprint
    refused = rewardlab.score(samples()[:1], remote(url=guarded.url, token=WRONG, range=[0, 1]), workers=1)[0]
    assert refused.status.value == "error" and "401" in (refused.reason or "")
    assert TOKEN not in repr(ok) and WRONG not in (refused.reason or "")


def test_the_expected_fingerprint_is_checked(math_server: Server) -> None:
    served = rewardlab.build("math_answer").fingerprint
    right = remote(url=math_server.url, range=[0, 1], fingerprint=served)
    wrong = remote(url=math_server.url, range=[0, 1], fingerprint="0" * 24)
    assert right.fingerprint != wrong.fingerprint
    assert rewardlab.score(samples()[:1], right, workers=1)[0].value == 1.0
    s = rewardlab.score(samples()[:1], wrong, workers=1)[0]
    assert s.status.value == "error" and "not the expected" in (s.reason or "")


# -- what a policy could get from a broken or hostile server: errors, never numbers -------------
def test_values_out_of_the_declared_range_are_error_scores(math_server: Server) -> None:
    narrow = remote(url=math_server.url, range=[0, 0.5])  # the server's 1.0 for a right answer is out
    scores = rewardlab.score(samples()[:2], narrow, workers=1)
    assert scores[0].status.value == "error" and "outside the declared range" in (scores[0].reason or "")
    assert scores[1].ok and scores[1].value == 0.0


def scripted(answer: Callable[[dict[str, Any]], Any]) -> FakeOpenAI:
    return FakeOpenAI(lambda i, body: Reply(json_body=answer(body)))


@pytest.mark.parametrize("answer, reason", [
    (lambda body: {"scores": [{"value": 1e9, "status": "ok"}]}, "outside the declared range"),
    (lambda body: {"scores": [{"value": 1.0, "status": "ok"}] * 2}, "2 scores for 1 samples"),
    (lambda body: {"scores": []}, "0 scores for 1 samples"),
    (lambda body: {"result": 1.0}, "no list of scores"),
    (lambda body: {"scores": [{"value": "1", "status": "ok"}]}, "malformed"),
    (lambda body: {"scores": [{"value": None, "status": "ok"}]}, "malformed"),
], ids=["huge", "too-many", "none", "no-scores", "string", "null"])
def test_a_hostile_server_gets_error_scores(answer: Callable[[dict[str, Any]], Any], reason: str) -> None:
    with scripted(answer) as fake:
        rm = remote(url=f"http://127.0.0.1:{fake.port}", range=[0, 1])
        scores = rewardlab.score(samples(), rm, workers=1)
        assert len(fake.requests) == len(samples())  # final failures: not retried
    assert all(s.status.value == "error" and reason in (s.reason or "") for s in scores), scores
    assert all(s.value is None for s in scores)


def test_configuration_rejects_bad_params_and_sends_nothing() -> None:
    for bad, match in (({"url": "gpu:8000"}, "url must be"), ({"url": []}, "url must be"),
                       ({"url": "http://a", "range": [1, 0]}, "lo <= hi"),
                       ({"url": "http://a", "range": "wide"}, "pair"),
                       ({"url": "http://a", "direction": "up"}, "direction")):
        with pytest.raises(ValueError, match=match):
            remote(**bad)
    low = remote(url="http://a", direction="lower", range=[0, 10])
    assert low.info.direction == "lower" and low.info.range == (0.0, 10.0)
    assert low.fingerprint != remote(url="http://a", range=[0, 10]).fingerprint


def test_the_loops_session_is_reused_then_closed_with_the_loop() -> None:
    import asyncio

    from rewardlab.models import remote as module

    async def twice() -> tuple[Any, Any, Any]:
        return module._session(), module._session(), asyncio.get_running_loop()

    first, again, loop = asyncio.run(twice())
    assert first is again and first.closed  # asyncio.run cancelled the keeper, which closed it
    assert module.SESSIONS.of(loop) is None  # the loop's entry went with it
