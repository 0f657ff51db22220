"""`rewardlab.integrations.verifiers` plugged into a verifiers v1 task the way verifiers does it
(../shared/reference/trainer-contracts.md, section 4): ``TaskConfig.rewards.<name>.fn`` is resolved
by ``verifiers/v1/utils/loaders.py::plugged_fn`` (``pkg.module:function`` → import, then
`getattr`), the hook's arguments are injected by name from ``{"task", "trace", "runtime"}``
(``verifiers/v1/utils/decorators.py::invoke``) and all hooks are awaited with `asyncio.gather`;
a reward returns a float or a mapping of floats."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from types import SimpleNamespace
from typing import Any

import pytest

from rewardlab import Runtime
from rewardlab.integrations.verifiers import RewardUnavailable, make_reward
from tests.integrations.conftest import COMPOSITE, WITH_FAULTY, wrong


def plugged(path: str) -> Any:
    module, _, attr = path.rpartition(":")
    return getattr(importlib.import_module(module), attr)


def invoke(fn: Any, task: Any, trace: Any) -> Any:
    """Call `fn` with the arguments its signature names, as verifiers injects them."""
    offered = {"task": task, "trace": trace, "runtime": object()}
    return fn(**{n: offered[n] for n in inspect.signature(fn).parameters if n in offered})


def rollout(question: str, answer: str, response: str) -> tuple[Any, Any]:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": response}]
    return SimpleNamespace(answer=answer), SimpleNamespace(messages=messages, last_message=messages[-1])


def test_registered_reward_on_gsm8k(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    fn = plugged("rewardlab.integrations.verifiers:math_answer")
    cases = [rollout(r["question"], r["gold"], f"The answer is \\boxed{{{a}}}.")
             for r in gsm8k for a in (r["gold"], wrong(r["gold"]))]

    async def hooks() -> list[Any]:
        return list(await asyncio.gather(*(invoke(fn, t, tr) for t, tr in cases)))

    assert asyncio.run(hooks()) == [1.0, 0.0] * len(gsm8k)


def test_components_mapping(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    fn = make_reward(COMPOSITE, components=True)
    r = gsm8k[0]
    parts = [{"type": "text", "text": f"<think>add</think><answer>{r['gold']}</answer>"}]
    task, trace = rollout(r["question"], r["gold"], "")
    trace.messages[-1] = trace.last_message = {"role": "assistant", "content": parts}  # content parts
    assert asyncio.run(invoke(fn, task, trace)) == {"correct": 1.0, "format_bonus": 1.0}
    task, trace = rollout(r["question"], r["gold"], f"<think>it is {r['gold']}</think>")  # only in the thinking
    assert asyncio.run(invoke(fn, task, trace)) == {"correct": 0.0, "format_bonus": 0.0}


def test_a_failed_reward_gets_the_fallback_or_raises(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    r = gsm8k[1]
    task, trace = rollout(r["question"], r["gold"], "crash")
    assert asyncio.run(invoke(make_reward(WITH_FAULTY, fallback=-1.0), task, trace)) == -1.0
    assert asyncio.run(invoke(make_reward(WITH_FAULTY, fallback=-1.0, components=True), task, trace)) == {
        "alive": -1.0, "correct": 0.0}
    with pytest.raises(RewardUnavailable, match="error"):
        asyncio.run(invoke(make_reward(WITH_FAULTY, fallback=None), task, trace))
    task, trace = rollout(r["question"], r["gold"], f"\\boxed{{{r['gold']}}}")
    assert asyncio.run(invoke(make_reward(WITH_FAULTY, fallback=None), task, trace)) == 2.0


def test_reference_field_and_unknown_names(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    r = gsm8k[2]
    fn = make_reward("math_answer", reference="gold")
    task = {"gold": r["gold"], "answer": wrong(r["gold"])}
    trace = SimpleNamespace(messages=[{"role": "user", "content": r["question"]},
                                      {"role": "assistant", "content": f"\\boxed{{{r['gold']}}}"}], last_message=None)
    assert asyncio.run(invoke(fn, task, trace)) == 1.0
    with pytest.raises(AttributeError):
        plugged("rewardlab.integrations.verifiers:no_such_reward")
    with pytest.raises(ValueError, match="components"):
        make_reward("math_answer", components=True)
