"""`rewardlab.client.RewardClient` against real `rewardlab serve` processes on 127.0.0.1 (two, for
sharding) and a scripted server (`tests.models.fake_openai.FakeOpenAI`, which answers any path)
that fails on purpose — 429 with Retry-After, 503 — before forwarding to a real one. The client
waits through a recording `sleep`, so retries are checked by the waits asked for, not by time."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("aiohttp")

import rewardlab  # noqa: E402
from rewardlab import Sample, Score  # noqa: E402
from rewardlab.client import RemoteError, RewardClient  # noqa: E402
from rewardlab.models.remote import retry_after, score_of  # noqa: E402
from tests.models.fake_openai import FakeOpenAI, Reply  # noqa: E402
from tests.serve.server import ROOT, Server, request  # noqa: E402

SPEC = str(ROOT / "examples" / "math_format.yaml")
TOKEN = "t0ken-for-tests"


def rollouts() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (ROOT / "examples" / "rollouts.jsonl").read_text().splitlines()]


def dead_url() -> str:
    """A URL on which nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Waits:
    """A `sleep` for the client that records the waits asked for and returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def forwarding(target: Server, script: list[Reply]) -> Callable[[int, dict[str, Any]], Reply]:
    """A responder that answers with `script`'s replies first, then forwards to `target`."""

    def respond(index: int, body: dict[str, Any]) -> Reply:
        if index < len(script):
            return script[index]
        status, _, answer = request("POST", target.url + "/v1/score", body)
        return Reply(status=status, json_body=answer)

    return respond


@pytest.fixture(scope="module")
def servers(serve: Callable[..., Server]) -> tuple[Server, Server]:
    return (serve(SPEC, "--no-cache", "--workers", "1"), serve(SPEC, "--no-cache", "--workers", "1"))


@pytest.fixture(scope="module")
def guarded(serve: Callable[..., Server]) -> Server:
    return serve("math_answer", "--no-cache", "--workers", "1", "--token", TOKEN)


@pytest.fixture(scope="module")
def local() -> list[Score]:
    """The spec scored in this process: what every server must answer."""
    return rewardlab.score(rollouts(), SPEC, workers=1)


def outcome(scores: list[Score]) -> list[tuple[str, float | None, dict[str, float | None]]]:
    return [(s.status.value, s.value, dict(s.components)) for s in scores]


def test_a_batch_sharded_over_two_servers_comes_back_in_order(servers: tuple[Server, Server],
                                                              local: list[Score]) -> None:
    a, b = servers
    before = [s.metric("rewardlab_samples_total", status="ok") for s in servers]
    rows = rollouts()
    scores = RewardClient([a.url, b.url]).score(rows)
    assert outcome(scores) == outcome(local)
    assert len({s.value for s in scores}) > 1, "the rollouts must score differently for order to show"
    assert all(s.cost is not None for s in scores)
    after = [s.metric("rewardlab_samples_total", status="ok") for s in servers]
    half = len(rows) // 2  # contiguous slices: the first half on a, the rest on b
    assert [x - y for x, y in zip(after, before, strict=True)] == [half, len(rows) - half]


def test_samples_and_rows_give_the_same_scores_sync_and_async(servers: tuple[Server, Server],
                                                              local: list[Score]) -> None:
    rows = rollouts()
    samples = [Sample(prompt=r["prompt"], response=r["completion"], reference=r["solution"], id=r["id"])
               for r in rows]
    client = RewardClient([s.url for s in servers])
    assert outcome(asyncio.run(client.ascore(samples))) == outcome(local)
    assert set(client.fingerprints.values()) == {rewardlab.build(SPEC).fingerprint}

    async def inside_a_loop() -> list[Score]:
        return client.score(rows[:3])  # the sync call from a running loop (as in a trainer's loop)

    assert outcome(asyncio.run(inside_a_loop())) == outcome(local[:3])
    assert client.score([]) == []


def test_more_servers_than_samples(servers: tuple[Server, Server], local: list[Score]) -> None:
    client = RewardClient([servers[0].url, servers[1].url, servers[0].url])
    assert outcome(client.score(rollouts()[:2])) == outcome(local[:2])


def test_429_with_retry_after_is_waited_out_then_answered(servers: tuple[Server, Server],
                                                          local: list[Score]) -> None:
    busy = Reply(status=429, json_body={"detail": "queue full"}, headers={"Retry-After": "7"})
    with FakeOpenAI(forwarding(servers[0], [busy, busy])) as proxy:
        waits = Waits()
        scores = RewardClient(f"http://127.0.0.1:{proxy.port}", backoff=0.01, sleep=waits).score(rollouts())
        assert len(proxy.requests) == 3
    assert outcome(scores) == outcome(local)
    assert len(waits.asked) == 2 and all(w >= 7 for w in waits.asked), waits.asked


def test_503_is_retried_with_growing_jittered_backoff(servers: tuple[Server, Server], local: list[Score]) -> None:
    down = Reply(status=503, json_body={"detail": "not ready"})
    with FakeOpenAI(forwarding(servers[0], [down, down, down])) as proxy:
        waits = Waits()
        client = RewardClient(f"http://127.0.0.1:{proxy.port}", backoff=1.0, retries=3, sleep=waits)
        scores = client.score(rollouts())
    assert outcome(scores) == outcome(local)
    assert len(waits.asked) == 3
    for i, w in enumerate(waits.asked):  # backoff * 2**i, jittered to between half and all of it
        assert 2**i / 2 <= w <= 2**i, waits.asked


def test_a_refused_shard_is_retried_on_another_server(servers: tuple[Server, Server], local: list[Score]) -> None:
    waits = Waits()
    client = RewardClient([dead_url(), servers[1].url], retries=2, sleep=waits)
    assert outcome(client.score(rollouts())) == outcome(local)
    assert len(waits.asked) == 2  # the dead server's slice: its retries, then the other server


def test_every_server_down_raises_after_retries() -> None:
    waits = Waits()
    with pytest.raises(RemoteError, match="every server failed") as caught:
        RewardClient([dead_url(), dead_url()], retries=1, sleep=waits).score(rollouts()[:4])
    assert caught.value.retryable
    assert len(waits.asked) == 4  # two slices, each retried once on each of the two servers


def test_a_client_error_is_final_with_the_servers_message(servers: tuple[Server, Server]) -> None:
    waits = Waits()
    client = RewardClient([s.url for s in servers], sleep=waits)
    with pytest.raises(RemoteError, match=r"422: samples\[0\]: no response.*slice of samples 1 to 1") as caught:
        client.score([{"prompt": "p", "response": "r"}, {"no": "sample here"}])
    assert caught.value.status == 422 and not caught.value.retryable
    assert waits.asked == []


def test_a_bearer_token_is_sent_and_required(guarded: Server) -> None:
    row = {"prompt": "What is 6 times 7?", "response": "42", "reference": "42"}
    with pytest.raises(RemoteError, match="401") as caught:
        RewardClient(guarded.url, sleep=Waits()).score([row])
    assert not caught.value.retryable
    with pytest.raises(RemoteError, match="401"):
        RewardClient(guarded.url, token="wrong", sleep=Waits()).score([row])
    [ok] = RewardClient(guarded.url, token=TOKEN).score([row])
    assert ok.ok and ok.value == 1.0


# -- a server a policy might be scored by: anything but one well-formed score per sample fails --
def scripted(answer: Any) -> FakeOpenAI:
    return FakeOpenAI(lambda i, body: Reply(json_body=answer))


def test_a_wrong_number_of_scores_is_an_error_never_a_silent_zero() -> None:
    one = {"scores": [{"value": 1.0, "status": "ok", "reason": None, "components": {}}], "fingerprint": "x"}
    for answer in (one, {"scores": []}, {"fingerprint": "x"}, [1.0, 1.0]):
        with scripted(answer) as fake:
            waits = Waits()
            with pytest.raises(RemoteError, match="for 2 samples") as caught:
                RewardClient(f"http://127.0.0.1:{fake.port}", sleep=waits).score(rollouts()[:2])
            assert not caught.value.retryable and len(fake.requests) == 1 and waits.asked == []


def test_malformed_scores_become_error_scores() -> None:
    answer = {"scores": [{"value": None, "status": "ok"}, {"value": "1", "status": "ok"},
                         {"value": True, "status": "ok"}, {"value": 1.0, "status": "error"},
                         {"value": 0.25, "status": "ok", "components": {"a": 0.25}, "steps": [0.5, 0.0],
                          "turns": [1.0], "tokens": {"tokenizer": "t", "values": [0.1]},
                          "cost": {"seconds": 0.5}, "added_later": 1}]}
    with scripted(answer) as fake:
        scores = RewardClient(f"http://127.0.0.1:{fake.port}").score(rollouts()[:5])
    assert [s.status.value for s in scores] == ["error"] * 4 + ["ok"]
    assert all("malformed" in (s.reason or "") for s in scores[:4])
    last = scores[4]
    assert (last.value, last.components, last.steps, last.turns) == (0.25, {"a": 0.25}, [0.5, 0.0], [1.0])
    assert last.tokens is not None and last.tokens.values == [0.1] and last.cost is not None
    assert last.cost.seconds == 0.5


def test_a_body_that_is_not_json_is_an_error() -> None:
    with FakeOpenAI(lambda i, body: Reply(raw=b"<html>proxy error</html>", content_type="text/html")) as fake:
        with pytest.raises(RemoteError, match="not JSON"):
            RewardClient(f"http://127.0.0.1:{fake.port}", sleep=Waits()).score(rollouts()[:1])


def test_units() -> None:
    assert retry_after("3") == 3.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert score_of([1]).status.value == "error"
    client = RewardClient("http://a:1/", token="s3cret")
    assert client.urls == ("http://a:1",) and "s3cret" not in repr(client)
    for bad in ("a:1", [], ["http://a:1", 3]):
        with pytest.raises(ValueError, match="url must be"):
            RewardClient(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rewardlab.Sample or a dict"):
        client.score(["just text"])  # type: ignore[list-item]


def test_the_client_docstring_example_runs() -> None:
    import doctest

    import rewardlab.client as module

    test = doctest.DocTestParser().get_doctest(module.__doc__ or "", dict(vars(module)), module.__name__,
                                               str(Path(module.__file__ or "")), 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0 and test.examples
