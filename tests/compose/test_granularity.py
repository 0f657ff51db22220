"""Composites combine their children's steps, turns and tokens by the operation that makes their
value (or drop them with a note); transforms drop finer values their new value makes stale; no
finer value claims credit the composite's value does not have."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

import rewardlab as rl
from rewardlab import Sample, Score, Status
from rewardlab.compose.nodes import Ensemble, Gate, Leaf, Node, Penalty, Policies, WeightedSum
from rewardlab.compose.transforms import PAR, Clip, GroupZScore, Rank
from rewardlab.core.types import Turn
from rewardlab.rewards.tools import tool_call_match

from .rewards_for_composites import flag, priced, stepped, tokened, unit_stepped

SKIP = Policies(on_error="skip", on_abstain="skip")


def leaf(r: Any, label: str, weight: float = 1.0) -> Leaf:
    return Leaf(r, label=label, weight=weight)


def one(node: Node, response: str = "x yy zzz", **meta: Any) -> Score:
    [s] = rl.score([Sample(prompt="p", response=response, metadata=meta)], node)
    return s


def dropped(s: Score) -> list[str]:
    return list((s.details or {}).get("dropped", []))


# -- WeightedSum ------------------------------------------------------------------------------------

def test_weighted_sum_adds_aligned_steps_with_the_children_weights() -> None:
    node = WeightedSum([leaf(stepped(key="a"), "a", 2.0), leaf(stepped(key="b"), "b", 0.5)])
    s = one(node, a=[1.0, 0.5, -2.0], b=[4.0, 2.0, 0.0])
    assert s.value == 2.0  # 2 * -0.5 + 0.5 * 6
    assert s.steps == [4.0, 2.0, -4.0]  # 2 * a + 0.5 * b, step by step
    assert math.fsum(s.steps) == s.value
    assert s.turns is None and s.tokens is None and not dropped(s)


def test_a_sequence_level_child_is_credited_on_the_last_step() -> None:
    node = WeightedSum([leaf(stepped(key="a"), "a"), leaf(flag(), "fmt", 3.0)])
    s = one(node, a=[1.0, 0.5, -2.0], ok=0.5)
    assert s.value == 1.0
    assert s.steps == [1.0, 0.5, -0.5]  # 3 * 0.5 added where the sequence ends
    assert math.fsum(s.steps) == s.value


def test_a_fallback_child_is_credited_on_the_last_step() -> None:
    node = WeightedSum([leaf(stepped(key="a"), "a"), leaf(stepped(key="b"), "b", 2.0)],
                       policies=Policies(on_abstain=0.25))
    s = one(node, a=[1.0, 2.0])  # b abstains and counts as 0.25
    assert s.value == 3.5 and s.steps == [1.0, 2.5]


def test_a_skipped_child_rescales_steps_as_it_rescales_the_value() -> None:
    node = WeightedSum([leaf(stepped(key="a"), "a", 1.0), leaf(stepped(key="b"), "b", 3.0)], policies=SKIP)
    s = one(node, a=[1.0, 0.5])  # b abstains: a's weight re-normalises to 4
    assert s.value == 6.0 and s.steps == [4.0, 2.0]


def test_steps_of_different_lengths_are_dropped_with_a_note() -> None:
    node = WeightedSum([leaf(stepped(key="a"), "a"), leaf(stepped(key="b"), "b")])
    s = one(node, a=[1.0, 2.0, 3.0], b=[1.0, 1.0])
    assert s.value == 8.0 and s.steps is None
    assert dropped(s) == ["steps: children have different numbers of steps (a: 3, b: 2)"]


def test_tokens_combine_when_the_children_share_tokenizer_and_offsets() -> None:
    node = WeightedSum([leaf(tokened(key="t1"), "t1"), leaf(tokened(key="t2"), "t2", 2.0),
                        leaf(flag(), "fmt", 0.5)])
    s = one(node, t1=[1.0, 2.0, 4.0], t2=[0.5, 0.5, 1.0], ok=1.0)
    assert s.tokens is not None
    assert s.tokens.tokenizer == "ws" and s.tokens.offsets == [(0, 1), (2, 4), (5, 8)]
    assert s.tokens.values == [2.0, 3.0, 6.5]  # t1 + 2 * t2, and 0.5 * fmt on the last token
    assert math.fsum(s.tokens.values) == s.value == 11.5


def test_tokens_of_another_tokenizer_or_other_offsets_are_dropped_with_a_note() -> None:
    other = WeightedSum([leaf(tokened(key="t1"), "t1"), leaf(tokened(key="t2", tokenizer="bpe"), "t2")])
    s = one(other, t1=[1.0, 2.0, 4.0], t2=[1.0, 1.0, 1.0])
    assert s.value == 10.0 and s.tokens is None
    assert dropped(s) == ["tokens: children use different tokenizers (t1: ws, t2: bpe)"]
    shifted = WeightedSum([leaf(tokened(key="t1"), "t1"), leaf(tokened(key="t2", skip_first=True), "t2")])
    s = one(shifted, t1=[1.0, 2.0, 4.0], t2=[1.0, 1.0])
    assert s.value == 9.0 and s.tokens is None
    assert dropped(s) == ["tokens: children's token offsets differ (the tokenizer saw different text)"]


def _trajectory() -> list[Turn]:
    return [
        Turn(role="assistant", tool_calls=[
            {"type": "function", "function": {"name": "search", "arguments": '{"q": "paris"}'}}]),
        Turn(role="tool", tool_result={"hits": 3}),
        Turn(role="assistant", content='<tool_call>{"name": "book", "arguments": '
                                       '{"city": "Paris", "nights": 3}}</tool_call>'),
        Turn(role="tool", tool_result="ok"),
        Turn(role="assistant", content="Booked."),
    ]


_REF = [{"name": "search", "arguments": {"q": "Paris"}},
        {"name": "book", "arguments": {"city": "Paris", "nights": 2}}]


def test_tool_call_turns_are_weighted_and_a_sequence_reward_lands_on_the_last_turn() -> None:
    sample = Sample(response="Booked.", reference=_REF, trajectory=_trajectory(), metadata={"ok": 1.0})
    [alone] = rl.score([sample], tool_call_match())
    assert alone.turns is not None and len(alone.turns) == 3 and alone.turns[0] == 1.0
    node = WeightedSum([leaf(tool_call_match(), "calls", 2.0), leaf(flag(), "fmt", 0.5)])
    [s] = rl.score([sample], node)
    assert s.value == 2.0 * alone.value + 0.5  # type: ignore[operator]
    assert s.turns == [2.0 * alone.turns[0], 2.0 * alone.turns[1], 2.0 * alone.turns[2] + 0.5]
    assert s.details["children"]["calls"] == alone.details  # type: ignore[index]


# -- Ensemble, Penalty, Gate ------------------------------------------------------------------------

def test_mean_ensemble_averages_steps_other_reductions_drop_them() -> None:
    kids = [leaf(stepped(key="a"), "a"), leaf(stepped(key="b"), "b")]
    meta = {"a": [1.0, 2.0], "b": [3.0, 6.0]}
    s = one(Ensemble(kids, reduce="mean"), **meta)
    assert s.value == 6.0 and s.steps == [2.0, 4.0]
    for reduce in ("min", "max", "median", "mean_minus_std"):
        s = one(Ensemble(kids, reduce=reduce), **meta)  # type: ignore[arg-type]
        assert s.ok and s.steps is None
        assert dropped(s) == [f"steps of a: a {reduce} ensemble has no per-unit form",
                              f"steps of b: a {reduce} ensemble has no per-unit form"]


def test_penalty_scales_the_base_steps_and_drops_the_factor_steps() -> None:
    node = Penalty(leaf(stepped(key="a"), "base"), leaf(unit_stepped(), "len"))
    s = one(node, a=[1.0, 3.0], u=0.25, u_steps=[0.125, 0.125])
    assert s.value == 1.0 and s.steps == [0.25, 0.75]
    assert dropped(s) == ["steps of len: a penalty factor scales the whole sample and earns no credit of its own"]


def test_open_gate_passes_the_branch_steps_not_the_condition_steps() -> None:
    node = Gate(leaf(unit_stepped(), "cond"), leaf(stepped(key="a"), "then"), threshold=0.5)
    s = one(node, u=1.0, u_steps=[0.5, 0.5], a=[2.0, -1.0, 1.0])
    assert s.value == 2.0 and s.steps == [2.0, -1.0, 1.0]
    assert dropped(s) == ["steps of cond: a gate's condition opens it and earns no credit of its own"]


# -- thinking like the policy -----------------------------------------------------------------------

def test_a_closed_gate_lets_no_turn_or_step_credit_through() -> None:
    """A trajectory with one right call of two fails an exact-match gate. Its per-turn credit (1.0 on
    the right call's turn) must not reach the trainer: the gated value is `otherwise`."""
    sample = Sample(response="Booked.", reference=_REF, trajectory=_trajectory(),
                    metadata={"a": [5.0, 5.0, 5.0]})
    cond = tool_call_match(exact=True)
    [c] = rl.score([sample], cond)
    assert c.value == 0.0 and c.turns is not None and c.turns[0] == 1.0  # credit that could leak
    node = Gate(leaf(cond, "exact"), leaf(stepped(key="a"), "then"), threshold=1.0, otherwise=0.0)
    [s] = rl.score([sample], node)
    assert s.value == 0.0 and "gate closed" in (s.reason or "")
    assert s.turns is None and s.steps is None and s.tokens is None
    assert "then" not in s.components  # the branch was not computed


def test_a_zero_penalty_leaves_zero_credit_on_every_step() -> None:
    node = Penalty(leaf(stepped(key="a"), "base"), leaf(unit_stepped(), "len"))
    s = one(node, a=[4.0, 4.0], u=0.0, u_steps=[0.0, 0.0])
    assert s.value == 0.0 and s.steps == [0.0, 0.0]


def test_a_failed_composite_carries_no_finer_values() -> None:
    node = WeightedSum([leaf(stepped(key="a"), "a"), leaf(stepped(key="b"), "b")])
    s = one(node, a=[1.0, 2.0])  # b abstains and the policy propagates
    assert s.status is Status.abstain and s.value is None
    assert s.steps is None and s.turns is None and s.tokens is None


def _random_tree(rng: random.Random, n: int, depth: int = 0) -> tuple[Node, dict[str, Any]]:
    """A random sum / mean ensemble / penalty / open gate over step and sequence rewards of `n`
    steps, and the metadata that feeds it."""
    meta: dict[str, Any] = {}
    kind = rng.choice(["sum", "mean", "penalty", "gate"]) if depth < 3 else "leaf"
    if kind == "leaf" or (depth and rng.random() < 0.3):
        key = f"k{rng.randrange(10**9)}"
        if rng.random() < 0.7:
            meta[key] = [rng.uniform(-2, 2) for _ in range(n)]
            return leaf(stepped(key=key), key, rng.uniform(-2, 2)), meta
        meta[key] = rng.random()
        return leaf(flag(key=key), key, rng.uniform(-2, 2)), meta
    if kind == "penalty":
        base, m = _random_tree(rng, n, depth + 1)
        key = f"u{rng.randrange(10**9)}"
        meta.update(m, **{key: rng.random(), key + "_steps": [rng.random() for _ in range(n)]})
        return Penalty(base, leaf(unit_stepped(key=key), key), label=f"p{depth}{key}"), meta
    if kind == "gate":
        then, m = _random_tree(rng, n, depth + 1)
        key = f"g{rng.randrange(10**9)}"
        meta.update(m, **{key: 1.0, key + "_steps": [5.0] * n})  # an open gate whose condition has steps
        return Gate(leaf(unit_stepped(key=key), key), then, threshold=0.5, label=f"g{depth}{key}"), meta
    kids = []
    for _ in range(rng.randint(2, 4)):
        kid, m = _random_tree(rng, n, depth + 1)
        kids.append(kid)
        meta.update(m)
    if kind == "sum":
        return WeightedSum(kids, label=f"s{depth}{rng.randrange(10**9)}"), meta
    return Ensemble(kids, reduce="mean", label=f"e{depth}{rng.randrange(10**9)}"), meta


def test_steps_of_any_linear_tree_add_up_to_its_value() -> None:
    """When every leaf's steps add up to its value, the composite's add up to its own: no tree
    of sums, means, penalties and gates hands out per-step credit the value does not hold."""
    rng = random.Random(20261201)
    checked = 0
    for _ in range(60):
        n = rng.randint(1, 5)
        node, meta = _random_tree(rng, n)
        s = one(node, **meta)
        assert s.ok, s.reason
        if not any(isinstance(x, Leaf) and x.reward.name == "stepped" for x in node.walk()):
            continue
        assert s.steps is not None and len(s.steps) == n, s.details
        assert math.fsum(s.steps) == pytest.approx(s.value, rel=1e-9, abs=1e-9)
        checked += 1
    assert checked >= 30


# -- transforms -------------------------------------------------------------------------------------

def test_clip_keeps_finer_values_only_where_it_leaves_the_value_alone() -> None:
    node = Clip(leaf(tokened(), "t"), lo=-1.0, hi=1.0)
    inside = one(node, tok=[0.25, 0.25, 0.5])
    assert inside.value == 1.0 and inside.tokens is not None and inside.tokens.values == [0.25, 0.25, 0.5]
    capped = one(node, tok=[20.0, 20.0, 10.0])  # a policy that inflates tokens gains nothing past the cap
    assert capped.value == 1.0 and capped.tokens is None
    assert dropped(capped) == ["tokens: clip(t) clipped the value"]
    assert capped.components == {"t": 50.0}


def test_group_transforms_drop_stale_tokens_and_keep_cost() -> None:
    rows = [Sample(prompt="same", response="x yy zzz", metadata={"tok": [v, 0.0, 0.0]}) for v in (1.0, 2.0, 4.0)]
    for node in (GroupZScore(leaf(tokened(), "t")), Rank(leaf(tokened(), "t"))):
        scores = rl.score(rows, node)
        leaves = rl.score(rows, leaf(tokened(), "t"))
        for s, child in zip(scores, leaves, strict=True):
            assert s.ok and s.tokens is None
            assert dropped(s) == [f"tokens: {node.label} makes the value relative to its group (prompt)"]
            assert s.components["t"] == child.value
            assert s.cost is not None
        assert [s.value for s in scores] != [c.value for c in leaves]


def test_sigmoid_shaping_drops_steps_and_a_missing_reference_keeps_cost() -> None:
    s = one(PAR(leaf(stepped(key="a"), "a")), a=[1.0, 1.0])
    assert s.value == pytest.approx(1 / (1 + math.exp(-2.0))) and s.steps is None
    assert dropped(s) == ["steps: par does not map per-unit values to the new value"]
    p = {"v": 0.5, "seconds": 0.5, "input_tokens": 10, "output_tokens": 2, "usd": 0.25}
    missing = one(PAR(leaf(priced(), "judge"), ref_key="ref"), p=p)
    assert missing.status is Status.error and "ref" in (missing.reason or "")
    assert missing.cost is not None and missing.cost.input_tokens == 10 and missing.cost.usd == 0.25


def test_a_transform_keeps_a_composite_childs_notes_first() -> None:
    inner = WeightedSum([leaf(stepped(key="a"), "a"), leaf(stepped(key="b"), "b")], label="inner")
    s = one(PAR(inner), a=[1.0, 2.0], b=[1.0])
    assert s.steps is None
    assert dropped(s) == ["steps: children have different numbers of steps (a: 2, b: 1)"]
    s = one(PAR(inner), a=[1.0, 2.0], b=[1.0, 0.0])
    assert dropped(s) == ["steps: par does not map per-unit values to the new value"]


# -- details ----------------------------------------------------------------------------------------

def test_children_details_nest_under_their_labels() -> None:
    p = {"v": 0.5, "seconds": 0.5, "input_tokens": 10, "output_tokens": 2, "usd": 0.25}
    inner = WeightedSum([leaf(priced(), "j1"), leaf(flag(), "fmt")], label="inner")
    node = WeightedSum([inner, leaf(priced(), "j2"), leaf(priced(), "j2")])
    s = one(node, p=p, ok=1.0)
    assert s.details == {"children": {"inner": {"children": {"j1": {"raw": "[[0.5]]"}}},
                                      "j2": {"raw": "[[0.5]]"}, "j2#2": {"raw": "[[0.5]]"}}}
    failing = WeightedSum([leaf(priced(), "judge"), leaf(flag(), "fmt")])
    f = one(failing, p={**p, "v": None}, ok=1.0)
    assert f.status is Status.error and f.details == {"children": {"judge": {"attempts": 3}}}


def test_details_of_a_deep_tree_grow_with_its_size_and_stay_json() -> None:
    p = {"v": 0.5, "seconds": 0.5, "input_tokens": 10, "output_tokens": 2, "usd": 0.25}

    def chain(depth: int) -> Node:  # distinct judges (identical ones would be computed once)
        node: Node = leaf(priced(key="j0"), "j0")
        for d in range(1, depth + 1):
            node = WeightedSum([node, leaf(priced(key=f"j{d}"), f"j{d}")], label=f"s{d}")
        return node

    sizes = {}
    for depth in (8, 16, 32):
        s = one(chain(depth), **{f"j{d}": p for d in range(depth + 1)})
        assert s.cost is not None and s.cost.input_tokens == 10 * (depth + 1)
        text = json.dumps(s.details)
        assert text.count('"raw"') == min(depth + 1, 31)  # past json_safe's depth the rest is one marker
        sizes[depth] = len(text)
    assert sizes[16] < 2.2 * sizes[8]  # linear in the number of nodes
    assert "nested deeper than 64 levels" in json.dumps(one(chain(32), **{f"j{d}": p for d in range(33)}).details)
