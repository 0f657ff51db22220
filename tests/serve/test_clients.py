"""The trainers' own client patterns against the server: OpenRLHF's (an aiohttp POST of one
sample per request to /get_reward, many at once, as its agent executor does) and verl's (an
async `compute_score` that posts one sample to /v1/score); and proof that one-sample requests
are batched together (deterministic: they queue behind a gated batch, then leave full)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
aiohttp = pytest.importorskip("aiohttp")

from tests.serve.server import Server, wait_until  # noqa: E402

GATED = "tests.serve.rewards_for_serve:gated"


async def openrlhf_style(url: str, query: str, prompt: str, label: str) -> dict[str, Any]:
    """One sample per request, a session per request, 180 s total timeout, a few tries (the
    shape of OpenRLHF's remote-reward client)."""
    payload = {"query": [query], "prompts": [prompt], "labels": [label]}
    for attempt in range(5):
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
                async with session.post(url, json=payload) as response:
                    response.raise_for_status()
                    return await response.json()  # type: ignore[no-any-return]
        except aiohttp.ClientError:
            if attempt == 4:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def verl_style_compute_score(url: str, data_source: str, solution_str: str, ground_truth: str,
                                   extra_info: dict[str, Any] | None = None) -> float:
    """verl's custom reward function shape (async, one sample), posting a verl row."""
    row = {"data_source": data_source, "solution_str": solution_str,
           "reward_model": {"ground_truth": ground_truth}, "extra_info": extra_info or {}}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"samples": [row]}) as response:
            response.raise_for_status()
            score = (await response.json())["scores"][0]
    if score["status"] != "ok":
        raise RuntimeError(f"reward not available: {score['reason']}")
    return float(score["value"])


@pytest.fixture(scope="module")
def gsm8k(shared_data: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (shared_data / "verifiable" / "gsm8k_test.jsonl").read_text().splitlines()]
    return [(r["question"], r["answer"].split("####")[-1].strip().replace(",", "")) for r in rows[:32]]


def test_openrlhf_and_verl_clients(serve: Callable[..., Server], gsm8k: list[tuple[str, str]]) -> None:
    server = serve("math_answer", "--no-cache", "--workers", "1", "--strip", "<|im_end|>")

    async def main() -> tuple[list[dict[str, Any]], list[float]]:
        rewards = [openrlhf_style(server.url + "/get_reward", f"Q: {q}\nA: \\boxed{{{int(a) + i % 2}}}<|im_end|>",
                                  f"Q: {q}\nA:", a) for i, (q, a) in enumerate(gsm8k)]
        verl = [verl_style_compute_score(server.url + "/v1/score", "openai/gsm8k",
                                         f"#### so \\boxed{{{int(a) + i % 2}}}", a) for i, (_, a) in enumerate(gsm8k)]
        got = await asyncio.gather(asyncio.gather(*rewards), asyncio.gather(*verl))
        return list(got[0]), list(got[1])

    replies, values = asyncio.run(main())
    expected = [1.0 - i % 2 for i in range(len(gsm8k))]
    assert [r["rewards"][0] for r in replies] == expected
    assert all(set(r["extra_logs"]) == {"rewardlab_ok"} and r["extra_logs"]["rewardlab_ok"] == [1.0] for r in replies)
    assert values == expected
    assert server.metric("rewardlab_requests_total", endpoint="/get_reward", code="200") == len(gsm8k)


def test_one_sample_requests_are_batched_together(serve: Callable[..., Server], tmp_path: Path) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    server = serve(GATED, "-p", f"gate={gate}", "-p", f"started={started}", "--no-warmup", "--no-cache",
                   "--workers", "2", "--max-batch", "8", "--concurrent-batches", "1", "--max-wait-ms", "1")
    n = 24

    async def main() -> list[dict[str, Any]]:
        url = server.url + "/get_reward"
        first = asyncio.ensure_future(openrlhf_style(url, "Q:first", "Q:", ""))  # holds the only batch slot
        await asyncio.to_thread(wait_until, started.exists, "the first batch to reach the reward")
        rest = [asyncio.ensure_future(openrlhf_style(url, f"Q:r{i}", "Q:", "")) for i in range(n)]
        await asyncio.to_thread(wait_until, lambda: server.metric("rewardlab_queue_depth") == n,
                                "every request to queue")
        gate.touch()
        return list(await asyncio.gather(first, *rest))

    try:
        replies = asyncio.run(main())
    finally:
        gate.touch()
    assert all(r["rewards"] == [1.0] for r in replies)
    # 1 batch for the first request, then the 24 queued ones in full batches of 8
    assert server.metric("rewardlab_batch_size_count") == 1 + n // 8
    assert server.metric("rewardlab_batch_size_sum") == 1 + n
