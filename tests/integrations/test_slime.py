"""`rewardlab.integrations.slime` called the way slime's reward hub calls a ``--custom-rm-path``
function (``slime/rollout/rm_hub/__init__.py``; ../shared/reference/trainer-contracts.md,
section 4): ``await fn(args, sample)`` per sample, concurrently; with ``--group-rm``
``await fn(args, samples)`` returning one reward per sample in input order. A slime `Sample`
carries ``prompt``, ``response`` (the generated text only), ``label`` and ``metadata``."""

from __future__ import annotations

import asyncio
import importlib
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any

import pytest

from rewardlab import Runtime
from rewardlab.integrations.slime import make_group_reward, make_reward
from tests.integrations.conftest import COMPOSITE, WITH_FAULTY, wrong


@dataclass
class SlimeSample:
    """The fields of slime's `Sample` that a reward reads."""

    prompt: str | list[dict[str, str]]
    response: str
    label: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)


ARGS = Namespace(custom_rm_path="rewardlab.integrations.slime.math_answer", group_rm=False)


def load(path: str) -> Any:
    """How slime resolves ``--custom-rm-path pkg.module.fn``."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_single_form_on_gsm8k(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    fn = load("rewardlab.integrations.slime.math_answer")
    samples = [SlimeSample([{"role": "user", "content": r["question"]}], f"\\boxed{{{a}}}", r["gold"])
               for r in gsm8k for a in (r["gold"], wrong(r["gold"]))]

    async def rollout() -> list[Any]:
        return list(await asyncio.gather(*(fn(ARGS, s) for s in samples)))

    assert asyncio.run(rollout()) == [1.0, 0.0] * len(gsm8k)


def test_group_form_keeps_the_order_and_takes_empty_groups(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    fn = make_group_reward(COMPOSITE)
    r = gsm8k[0]
    group = [SlimeSample(r["question"], f"<think>sum</think><answer>{a}</answer>", r["gold"])
             for a in (r["gold"], wrong(r["gold"]), r["gold"])]
    group.append(SlimeSample(r["question"], f"<think>it is {r['gold']}</think>", r["gold"]))  # only in the thinking
    assert asyncio.run(fn(ARGS, group)) == [1.1, 0.1, 1.1, 0.0]
    assert asyncio.run(fn(ARGS, [])) == []


def test_a_crashing_reward_gets_the_fallback(runtime: Runtime, gsm8k: list[dict[str, Any]]) -> None:
    r = gsm8k[1]
    samples = [SlimeSample(r["question"], x, r["gold"]) for x in ("crash", f"\\boxed{{{r['gold']}}}", "raise")]
    single = make_reward(WITH_FAULTY, fallback=-1.0)
    group = make_group_reward(WITH_FAULTY, fallback=-1.0, as_dict=True)

    async def both() -> tuple[list[Any], list[Any]]:
        return list(await asyncio.gather(*(single(ARGS, s) for s in samples))), await group(ARGS, samples)

    values, dicts = asyncio.run(both())
    assert values == [-1.0, 2.0, -1.0]
    assert dicts == [{"score": -1.0, "alive": -1.0, "correct": 0.0, "rewardlab_ok": 0.0},
                     {"score": 2.0, "alive": 1.0, "correct": 1.0, "rewardlab_ok": 1.0},
                     {"score": -1.0, "alive": -1.0, "correct": 0.0, "rewardlab_ok": 0.0}]


def test_an_unreadable_sample_gets_the_fallback(runtime: Runtime) -> None:
    fn = make_reward("math_answer", fallback=-2.0)
    assert asyncio.run(fn(ARGS, SlimeSample("q", [{"role": 3}], "1"))) == -2.0  # type: ignore[arg-type]


def test_the_spec_from_the_environment(runtime: Runtime, gsm8k: list[dict[str, Any]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    reward = load("rewardlab.integrations.slime.reward")
    group_reward = load("rewardlab.integrations.slime.group_reward")
    r = gsm8k[2]
    s = SlimeSample(r["question"], f"\\boxed{{{r['gold']}}}", r["gold"])
    with pytest.raises(ValueError, match="REWARDLAB_SPEC"):
        asyncio.run(reward(ARGS, s))
    monkeypatch.setenv("REWARDLAB_SPEC", "math_answer")
    assert asyncio.run(reward(ARGS, s)) == 1.0
    assert asyncio.run(group_reward(ARGS, [s, s])) == [1.0, 1.0]
    with pytest.raises(AttributeError):
        load("rewardlab.integrations.slime.no_such_reward")
