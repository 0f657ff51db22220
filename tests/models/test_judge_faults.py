"""LLM judges against a scripted local endpoint: rate limits, server errors, garbage, hangs,
unparseable verdicts. Every fault ends as retries and then an error score, never a value."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("openai")

import rewardlab  # noqa: E402
from rewardlab import Runtime, Sample, Score  # noqa: E402
from rewardlab.models._judge_client import Endpoint, JudgeRequestError, TokenBudget, chat  # noqa: E402
from rewardlab.models.judge import judge_score  # noqa: E402

from .fake_openai import FakeOpenAI, Reply, completion  # noqa: E402

SAMPLES = [
    Sample(prompt="What is the capital of France?", response="Paris.", reference="Paris"),
    Sample(prompt="Name a prime number above 10.", response="11", reference="13"),
]


def run_spec(srv: FakeOpenAI, samples: list[Sample], *, retries: int = 2, timeout: float = 5.0,
             **params: Any) -> list[Score]:
    spec = {
        "reward": {
            "reward": params.pop("name", "judge_score"),
            "params": {"base_url": srv.base_url, "model": "judge-model", **params},
            "retries": retries,
            "timeout": timeout,
        }
    }
    return rewardlab.score(samples, spec)


def always(reply: Reply) -> Callable[[int, dict[str, Any]], Reply]:
    return lambda index, body: reply


def assert_all_errors(scores: list[Score]) -> None:
    for s in scores:
        assert s.status.value == "error" and s.value is None and s.reason


@pytest.mark.parametrize(
    ("reply", "reason_part"),
    [
        (Reply(status=429, json_body={"error": {"message": "rate limited"}}), "HTTP 429"),
        (Reply(status=500, json_body={"error": {"message": "internal"}}), "HTTP 500"),
        (Reply(status=503, raw=b"upstream down", content_type="text/plain"), "HTTP 503"),
        (Reply(raw=b"<html>proxy error</html>", content_type="text/html"), "malformed"),
        (Reply(raw=b"{not json", content_type="application/json"), "unreadable"),
        (Reply(json_body={"object": "chat.completion", "data": []}), "malformed"),
        (Reply(json_body={"choices": [{"message": {"role": "assistant"}}]}), "without message"),
    ],
    ids=["429", "500", "503-text", "html", "bad-json", "wrong-schema", "no-content"],
)
def test_retryable_faults_are_retried_then_error(reply: Reply, reason_part: str) -> None:
    with FakeOpenAI(always(reply)) as srv:
        scores = run_spec(srv, SAMPLES[:1], retries=2)
    assert_all_errors(scores)
    assert len(srv.requests) == 3  # one try and two retries
    assert "failed after 3 attempt(s)" in scores[0].reason
    assert reason_part in scores[0].reason


def test_client_error_is_not_retried() -> None:
    reply = Reply(status=400, json_body={"error": {"message": "bad model"}})
    with FakeOpenAI(always(reply)) as srv:
        scores = run_spec(srv, SAMPLES, retries=3)
    assert_all_errors(scores)
    assert len(srv.requests) == len(SAMPLES)
    assert all("HTTP 400" in s.reason and "bad model" in s.reason for s in scores)


def test_hang_times_out_then_retries_then_error() -> None:
    with FakeOpenAI(always(Reply(hang=True))) as srv:
        scores = run_spec(srv, SAMPLES[:1], retries=1, timeout=0.5)
    assert_all_errors(scores)
    assert len(srv.requests) == 2
    assert "timeout" in scores[0].reason


def test_rate_limit_then_success_scores_after_retry() -> None:
    def responder(index: int, body: dict[str, Any]) -> Reply:
        if index < 2:
            return Reply(status=429, json_body={"error": {"message": "slow down"}},
                         headers={"Retry-After": "0"})
        return completion("Accurate and concise. [[9]]")

    with FakeOpenAI(responder) as srv:
        scores = run_spec(srv, SAMPLES[:1], retries=3)
    assert len(srv.requests) == 3
    assert scores[0].ok
    assert scores[0].value == pytest.approx((9 - 1) / 9)
    assert scores[0].details["raw_score"] == 9


@pytest.mark.parametrize(
    "text",
    ["I would rate this response highly.", "Rating: [[3]] ... on reflection [[7]]", "[[11]]",
     "[[ten]]", ""],
    ids=["no-verdict", "conflicting", "out-of-scale", "not-a-number", "empty"],
)
def test_unparseable_verdict_is_reasked_then_error_with_raw_text(text: str) -> None:
    with FakeOpenAI(always(completion(text))) as srv:
        scores = run_spec(srv, SAMPLES[:1], parse_retries=2)
    assert_all_errors(scores)
    assert len(srv.requests) == 3  # the first answer and two re-asks
    s = scores[0]
    assert "unparseable judge verdict" in s.reason
    assert s.details["texts"] == [text] * 3
    assert s.cost is not None and s.cost.input_tokens == 3 * 40


def test_missing_logprobs_is_an_error_with_reason() -> None:
    with FakeOpenAI(always(completion("7"))) as srv:
        scores = run_spec(srv, SAMPLES[:1], verdict="logprobs", min_score=1, max_score=9)
    assert_all_errors(scores)
    assert "no log-probs" in scores[0].reason
    assert srv.requests[0]["logprobs"] is True and srv.requests[0]["top_logprobs"] == 20


def test_logprobs_without_a_verdict_token_is_an_error() -> None:
    top = [{"The": 0.6, "I": 0.3, "This": 0.1}]
    with FakeOpenAI(always(completion("The", top=top))) as srv:
        scores = run_spec(srv, SAMPLES[:1], verdict="logprobs", min_score=1, max_score=5,
                          parse_retries=1)
    assert_all_errors(scores)
    assert len(srv.requests) == 2
    assert "no verdict token" in scores[0].reason
    assert scores[0].details["texts"] == ["The", "The"]


def test_errors_are_not_cached_and_recover(tmp_path: Any) -> None:
    state = {"down": True}

    def responder(index: int, body: dict[str, Any]) -> Reply:
        if state["down"]:
            return Reply(status=502, json_body={"error": {"message": "bad gateway"}})
        return completion("Fine. [[6]]")

    with FakeOpenAI(responder) as srv:
        reward = judge_score(model="judge-model", base_url=srv.base_url)
        with Runtime(cache=tmp_path / "scores.db") as rt:
            first = rewardlab.score(SAMPLES, reward, runtime=rt)
            assert_all_errors(first)
            state["down"] = False
            second = rewardlab.score(SAMPLES, reward, runtime=rt)
            n = len(srv.requests)
            third = rewardlab.score(SAMPLES, reward, runtime=rt)
    assert all(s.ok for s in second)
    assert [s.value for s in third] == [s.value for s in second]
    assert len(srv.requests) == n  # the third run came from the cache
    assert rt.stats.cache_hits == len(SAMPLES)


def test_retry_after_header_is_read() -> None:
    reply = Reply(status=429, json_body={"error": {"message": "wait"}},
                  headers={"Retry-After": "7"})
    with FakeOpenAI(always(reply)) as srv:
        endpoint = Endpoint(srv.base_url, "judge-model")

        async def go() -> JudgeRequestError:
            with pytest.raises(JudgeRequestError) as info:
                await chat(endpoint, [{"role": "user", "content": "hi"}], max_tokens=4,
                           temperature=0.0)
            return info.value

        err = asyncio.run(go())
    assert err.retryable and err.status == 429 and err.retry_after == 7.0


def test_token_budget_holds_back_requests_over_the_limit() -> None:
    async def go() -> bool:
        budget = TokenBudget(tpm=1000)
        await budget.acquire(600)
        await budget.acquire(300)  # 900 within the minute: admitted
        try:
            await asyncio.wait_for(budget.acquire(300), 0.3)  # 1200 > 1000: must wait
        except TimeoutError:
            return True
        return False

    assert asyncio.run(go())


def test_api_key_is_sent_but_never_stored_or_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REWARDLAB_JUDGE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(always(completion("[[5]]"))) as srv:
        keyed = judge_score(model="judge-model", base_url=srv.base_url, api_key="sk-secret-1")
        other = judge_score(model="judge-model", base_url=srv.base_url, api_key="sk-secret-2")
        scores = rewardlab.score(SAMPLES[:1], keyed)
        monkeypatch.setenv("REWARDLAB_JUDGE_API_KEY", "sk-from-env")
        rewardlab.score(SAMPLES[:1], judge_score(model="judge-model", base_url=srv.base_url))
    assert srv.headers[0]["authorization"] == "Bearer sk-secret-1"
    assert srv.headers[1]["authorization"] == "Bearer sk-from-env"
    assert keyed.fingerprint == other.fingerprint
    assert "sk-secret" not in repr(keyed)
    assert "sk-secret" not in scores[0].model_dump_json()
