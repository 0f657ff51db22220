"""A composite's cost is the sum of what its children spent: failed, skipped and gating children
included, on ok and failed composite scores alike; a transform passes its child's cost on."""

from __future__ import annotations

from typing import Any

import pytest

import rewardlab as rl
from rewardlab import Sample, Score, Status
from rewardlab.compose.nodes import Ensemble, Gate, Leaf, Node, Penalty, Policies, WeightedSum
from rewardlab.compose.transforms import Clip, GroupZScore, LogSigmoid
from rewardlab.core.types import Cost, total_cost

from .rewards_for_composites import priced

A = {"v": 0.5, "seconds": 0.5, "input_tokens": 100, "output_tokens": 8, "usd": 0.25}
B = {"v": 1.0, "seconds": 0.25, "input_tokens": 30, "output_tokens": 2, "usd": 0.125}
C = {"v": 0.0, "seconds": 2.0, "input_tokens": 1, "output_tokens": 1, "usd": 0.5}
DOWN = {**B, "v": None}  # a judge outage that still spent B's cost


def judge(key: str, weight: float = 1.0) -> Leaf:
    return Leaf(priced(key=key), label=key, weight=weight)


def one(node: Node, **meta: Any) -> Score:
    [s] = rl.score([Sample(prompt="p", response="r", metadata=meta)], node)
    return s


def cost(*specs: dict[str, Any]) -> Cost:
    return Cost(seconds=sum(s["seconds"] for s in specs), input_tokens=sum(s["input_tokens"] for s in specs),
                output_tokens=sum(s["output_tokens"] for s in specs), usd=sum(s["usd"] for s in specs))


def test_total_cost_adds_field_by_field_and_is_none_without_costs() -> None:
    assert total_cost([]) is None and total_cost([Score.of(1.0)]) is None
    got = total_cost([Score.of(1.0, cost=Cost(seconds=1.0, input_tokens=2)), Score.of(0.0),
                      Score.error("down", cost=Cost(output_tokens=3, usd=0.5))])
    assert got == Cost(seconds=1.0, input_tokens=2, output_tokens=3, usd=0.5)


def test_sum_ensemble_and_penalty_add_their_children_costs() -> None:
    meta = {"a": A, "b": B, "c": C}
    for node in (WeightedSum([judge("a", 2.0), judge("b"), judge("c")]),
                 Ensemble([judge("a"), judge("b"), judge("c")], reduce="median"),
                 WeightedSum([Penalty(judge("a"), judge("b")), judge("c")])):
        s = one(node, **meta)
        assert s.ok and s.cost == cost(A, B, C), type(node).__name__


def test_failed_and_skipped_children_still_count() -> None:
    kids = [judge("a"), judge("b")]
    failed = one(WeightedSum(kids), a=A, b=DOWN)
    assert failed.status is Status.error and failed.value is None
    assert failed.cost == cost(A, B)
    skipped = one(WeightedSum(kids, policies=Policies(on_error="skip")), a=A, b=DOWN)
    assert skipped.ok and skipped.value == 1.0 and skipped.cost == cost(A, B)
    fallback = one(WeightedSum(kids, policies=Policies(on_error=0.0)), a=A, b=DOWN)
    assert fallback.ok and fallback.value == 0.5 and fallback.cost == cost(A, B)
    nothing = one(WeightedSum(kids, policies=Policies(on_error="skip")), a={**A, "v": None}, b=DOWN)
    assert nothing.status is Status.error and nothing.cost == cost(A, B)


def test_a_gate_costs_its_condition_and_its_branch_only_when_computed() -> None:
    gate = Gate(judge("a"), judge("b"), threshold=0.5)
    opened = one(gate, a=A, b=B)
    assert opened.value == 1.0 and opened.cost == cost(A, B)
    closed = one(gate, a={**A, "v": 0.25}, b=B)
    assert closed.value == 0.0 and closed.cost == cost(A)
    cond_down = one(gate, a={**A, "v": None}, b=B)
    assert cond_down.status is Status.error and cond_down.cost == cost(A)
    branch_down = one(gate, a=A, b=DOWN)
    assert branch_down.status is Status.error and branch_down.cost == cost(A, B)


def test_nested_composites_and_transforms_pass_the_whole_cost_up() -> None:
    inner = Gate(judge("a"), Clip(judge("b"), lo=0.0, hi=0.5), threshold=0.5, label="inner")
    node = LogSigmoid(WeightedSum([inner, judge("c")]))
    s = one(node, a=A, b=B, c=C)
    assert s.ok and s.cost == cost(A, B, C)
    rows = [Sample(prompt="g", response="r", metadata={"a": {**A, "v": v}}) for v in (0.0, 0.5, 1.0)]
    z = rl.score(rows, GroupZScore(judge("a")))
    assert [s.cost for s in z] == [cost(A)] * 3


def test_a_real_judge_cost_reaches_the_composite() -> None:
    pytest.importorskip("openai")
    from rewardlab.models.judge import judge_score
    from rewardlab.rewards.match import exact_match
    from tests.models.fake_openai import FakeOpenAI, completion

    with FakeOpenAI(lambda i, b: completion("Right. [[5]]", prompt_tokens=120, completion_tokens=9)) as srv:
        j = judge_score(base_url=srv.base_url, model="m", min_score=1, max_score=5,
                        price_input_per_m=2.0, price_output_per_m=10.0)
        node = WeightedSum([Leaf(j, label="judge"), Leaf(exact_match(), label="exact")])
        [s] = rl.score([Sample(prompt="2+2?", response="4", reference="4")], node)
    assert s.ok and s.value == 2.0 and s.cost is not None
    assert (s.cost.input_tokens, s.cost.output_tokens) == (120, 9)
    assert s.cost.usd == pytest.approx((120 * 2.0 + 9 * 10.0) / 1e6)
    assert s.cost.seconds > 0
    assert s.details["children"]["judge"]["raw_score"] == 5  # type: ignore[index]
