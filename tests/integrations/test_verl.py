"""`rewardlab.integrations.verl.compute_score` called the way verl 0.9's Reward Loop calls it
(facts and sources in ../shared/reference/trainer-contracts.md, section 2):

- ``NaiveRewardManager.run_single`` (``verl/experimental/reward_loop/reward_manager/naive.py``)
  awaits ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=)`` per sample,
  with ``reward_kwargs`` merged in and overriding (``verl/trainer/ppo/reward.py::_call_with_kwargs_async``);
- ``RewardLoopWorker.compute_score_batch`` runs one asyncio task per sample;
- ``solution_str`` is the decoded response only (no prompt); ``ground_truth`` comes from
  ``reward_model.ground_truth``; the GSM8K preprocessing puts the question in ``extra_info``;
- ``RewardLoopManager.compute_rm_score`` takes the keys of sample 0's dict for the batch and
  builds ``np.array([info[key] for info in infos])`` (a key missing later is a KeyError).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from rewardlab import Runtime
from rewardlab.integrations.common import batcher, resolve, runtime_for
from rewardlab.integrations.verl import compute_score
from tests.integrations.conftest import COMPOSITE, WITH_FAULTY, wrong


def verl_row(r: dict[str, Any], response: str) -> dict[str, Any]:
    """What run_single passes for one row of verl's GSM8K parquet (make_map_fn)."""
    return {"data_source": "openai/gsm8k", "solution_str": response, "ground_truth": r["gold"],
            "extra_info": {"split": "test", "index": 0, "question": r["question"], "num_turns": 2,
                           "rollout_reward_scores": {}, "tool_extra_fields": {"handle": object()}}}


async def verl_batch(calls: list[dict[str, Any]], reward_kwargs: dict[str, Any]) -> dict[str, np.ndarray]:
    """One task per sample, then the extra-info arrays built from the keys of sample 0."""
    infos = await asyncio.gather(*(compute_score(**{**c, **reward_kwargs}) for c in calls))
    scores = [info["score"] for info in infos]
    keys = list(infos[0])
    out = {k: np.array([info[k] for info in infos]) for k in keys}
    assert all(set(info) == set(keys) for info in infos)
    out["__reward__"] = np.asarray(scores, dtype=np.float32)  # GDPO-style cast: no None allowed
    return out


def test_math_answer_on_gsm8k(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    calls = [verl_row(r, f"So the answer is \\boxed{{{r['gold']}}}.") for r in gsm8k]
    calls += [verl_row(r, f"So the answer is \\boxed{{{wrong(r['gold'])}}}.") for r in gsm8k]
    out = asyncio.run(verl_batch(calls, {"spec": "math_answer"}))
    n = len(gsm8k)
    assert out["score"].tolist() == [1.0] * n + [0.0] * n
    assert out["rewardlab_ok"].tolist() == [1.0] * (2 * n)
    assert sorted(k for k in out if not k.startswith("__")) == ["rewardlab_ok", "score"]


def test_composite_keys_are_the_same_when_the_first_sample_fails(runtime: Runtime,
                                                                 gsm8k: list[dict[str, Any]]) -> None:
    r = gsm8k[0]
    calls = [verl_row(r, "no structure, no answer"),  # sample 0: not ok for the gate's math part
             verl_row(r, f"<think>add them</think><answer>{r['gold']}</answer>"),
             verl_row(r, f"<think>add them</think><answer>{wrong(r['gold'])}</answer>")]
    out = asyncio.run(verl_batch(calls, {"spec": COMPOSITE}))
    assert set(out) - {"__reward__"} == {"score", "correct", "correct/think_answer_format", "correct/math_answer",
                                         "format_bonus", "rewardlab_ok"}
    assert out["score"][1] == 1.1 and out["correct/math_answer"][1] == 1.0 and out["format_bonus"][1] == 1.0
    assert out["score"][2] == 0.1 and out["correct/math_answer"][2] == 0.0
    assert out["score"][0] == 0.0 and out["format_bonus"][0] == 0.0


def test_a_crashing_reward_gets_the_fallback_never_an_exception(runtime: Runtime,
                                                                gsm8k: list[dict[str, Any]]) -> None:
    r = gsm8k[1]
    calls = [verl_row(r, "crash"), verl_row(r, f"\\boxed{{{r['gold']}}}"), verl_row(r, "raise"),
             verl_row(r, f"\\boxed{{{r['gold']}}}")]
    out = asyncio.run(verl_batch(calls, {"spec": WITH_FAULTY, "fallback": -1.0}))
    assert out["rewardlab_ok"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert out["score"].tolist() == [-1.0, 2.0, -1.0, 2.0]
    assert out["alive"].tolist() == [-1.0, 1.0, -1.0, 1.0] and out["correct"].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_concurrent_calls_share_runtime_batches(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    # a batch leaves when full: 64 concurrent calls with max_batch=8 and a long window make 8 batches
    kwargs = {"spec": "math_answer", "max_batch": 8, "max_wait": 60.0}
    b = batcher(resolve("math_answer"), runtime, max_batch=8, max_wait=60.0)
    before = b.batches
    calls = [verl_row(r, f"\\boxed{{{r['gold']}}}") for r in gsm8k] * 8
    out = asyncio.run(verl_batch(calls, kwargs))
    assert out["score"].tolist() == [1.0] * 64
    assert b.batches - before == 8


def test_calls_from_many_event_loops(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    # verl's reward workers each run their own loop; one process may see several, one after another
    # and at once: each call awaits a future of its own loop
    results: dict[int, list[float]] = {}

    def worker(i: int) -> None:
        with runtime.active():
            calls = [verl_row(r, f"\\boxed{{{r['gold'] if j % 2 == 0 else wrong(r['gold'])}}}")
                     for j, r in enumerate(gsm8k)]
            results[i] = asyncio.run(verl_batch(calls, {"spec": "math_answer"}))["score"].tolist()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    worker(3)  # and a fresh loop on this thread afterwards
    expected = [1.0 if j % 2 == 0 else 0.0 for j in range(len(gsm8k))]
    assert results == {i: expected for i in range(4)}


def test_the_policy_cannot_smuggle_the_answer(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    r = gsm8k[2]
    gold, bad = r["gold"], wrong(r["gold"])
    calls = [verl_row(r, f"<think>it is \\boxed{{{gold}}}</think>The answer is \\boxed{{{bad}}}."),
             verl_row(r, f"<think>The answer is \\boxed{{{gold}}}</think>"),  # only in the thinking
             verl_row(r, ""),  # an empty response (the question is in extra_info, never graded)
             verl_row(r, f"The answer is \\boxed{{{gold}}}.")]
    calls[2]["extra_info"]["question"] = f"{r['question']} (answer: \\boxed{{{gold}}})"
    out = asyncio.run(verl_batch(calls, {"spec": "math_answer"}))
    assert out["score"].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_extra_keyword_arguments_and_a_missing_extra_info(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    r = gsm8k[3]
    got = asyncio.run(compute_score("openai/gsm8k", f"\\boxed{{{r['gold']}}}", r["gold"], None,
                                    reward_router_address=None, reward_model_tokenizer=None, spec="math_answer"))
    assert got == {"score": 1.0, "rewardlab_ok": 1.0}


def test_a_cache_given_through_reward_kwargs(gsm8k: list[dict[str, Any]], tmp_path: Any) -> None:
    # +reward.custom_reward_function.reward_kwargs.cache=... : a Runtime of the adapter's own with that cache;
    # the second pass over the same rollouts is served from it
    kwargs = {"spec": "math_answer", "cache": str(tmp_path / "scores.db"), "workers": 1}
    calls = [verl_row(r, f"\\boxed{{{r['gold']}}}") for r in gsm8k]
    rt = runtime_for(kwargs["cache"], 1, None)
    try:
        first = asyncio.run(verl_batch(calls, kwargs))
        hits = rt.stats.cache_hits
        second = asyncio.run(verl_batch(calls, kwargs))
        assert first["score"].tolist() == second["score"].tolist() == [1.0] * len(gsm8k)
        assert rt.stats.cache_hits - hits == len(gsm8k)
    finally:
        rt.close()
