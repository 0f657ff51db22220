"""Turn credit: per-turn rewards, discounted returns, MatchTIR's dual-level advantage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardlab.core.types import Sample, Score
from rewardlab.credit import turns
from rewardlab.rewards.tools import tool_call_match


def _z2(a: float, b: float) -> float:
    """verl's z-score of `a` in the pair (a, b): Bessel std |a - b|/sqrt(2), eps 1e-6."""
    return ((a - b) / 2) / (abs(a - b) / math.sqrt(2) + 1e-6)


def test_discounted_returns() -> None:
    assert turns.discounted_returns([0.5, 0.0, 0.2], 0.9).tolist() == pytest.approx([0.662, 0.18, 0.2])
    assert turns.discounted_returns([1.0, 1.0]).tolist() == [2.0, 1.0]
    assert turns.discounted_returns([]).tolist() == []


def test_matchtir_by_hand() -> None:
    a, b = [1.0, 0.0], [0.5, 0.0, 0.2]
    out = turns.matchtir_advantages([a, b], ["p", "p"], gamma=0.9)
    traj = _z2(1.0, 0.7)  # totals 1.0 and 0.7
    assert out.trajectory == pytest.approx([traj, -traj])
    # returns: a [1, 0], b [0.662, 0.18, 0.2]; turn 2 exists only in b: mean 0, std 1 (its raw return)
    assert out.per_turn[0] == pytest.approx([_z2(1.0, 0.662), _z2(0.0, 0.18)])
    assert out.per_turn[1] == pytest.approx([_z2(0.662, 1.0), _z2(0.18, 0.0), 0.2])
    assert out.values[0] == pytest.approx([(traj + _z2(1.0, 0.662)) / 2, (traj + _z2(0.0, 0.18)) / 2])
    assert out.values[1][2] == pytest.approx((-traj + 0.2) / 2)


def test_matchtir_groups_are_separate_and_equal_turns_get_zero() -> None:
    out = turns.matchtir_advantages([[1.0, 0.5], [1.0, 0.5], [0.0]], [0, 0, 1])
    assert [v.tolist() for v in out.values[:2]] == [[0.0, 0.0], [0.0, 0.0]]  # all equal: exactly 0
    assert out.values[2].tolist() == [0.0]  # a group of one (verl: raw, and its raw total is 0)


def test_matchtir_excludes_failed_scores() -> None:
    clean = turns.matchtir_advantages([[1.0, 0.0], [0.0, 0.0]], [0, 0])
    mixed = turns.matchtir_advantages([Score.of(1.0, turns=[1.0, 0.0]), Score.error("timeout"),
                                       Score.of(0.0, turns=[0.0, 0.0]), Score.of(1.0)], [0, 0, 0, 0])
    assert mixed.mask.tolist() == [True, False, True, False]
    assert mixed.values[1].size == 0 and mixed.values[3].size == 0
    for i, j in ((0, 0), (2, 1)):
        assert mixed.values[i] == pytest.approx(clean.values[j])


def test_matchtir_on_tool_call_turns() -> None:
    ref = [{"name": "get_weather", "arguments": {"city": "Paris"}},
           {"name": "get_weather", "arguments": {"city": "Tokyo"}}]

    def call(city: str) -> dict[str, str]:
        return {"role": "assistant",
                "content": f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}</tool_call>'}

    tool = {"role": "tool", "content": "sunny"}
    right = [call("Paris"), tool, call("Tokyo"), tool, {"role": "assistant", "content": "done"}]
    half = [call("Paris"), tool, call("Rome"), tool, {"role": "assistant", "content": "done"}]
    reward = tool_call_match()
    scores = [reward(Sample(response=r, reference=ref)) for r in (right, half)]
    assert [turns.turn_rewards(s) for s in scores] == [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    out = turns.matchtir_advantages(scores, ["q", "q"])
    assert out.values[0][0] > 0 > out.values[1][0]  # the trajectory level separates them
    assert out.values[0][1] > out.values[1][1]
    assert out.per_turn[0][2] == 0.0  # the final answer turns are alike


def test_turn_rewards_fail_closed() -> None:
    with pytest.raises(ValueError, match="no turn rewards"):
        turns.turn_rewards(Score.of(1.0))
    with pytest.raises(ValueError, match="abstain"):
        turns.turn_rewards(Score.abstain("no expected calls"))
    assert not np.isnan(turns.matchtir_advantages([None, [1.0]], [0, 0]).trajectory).any()
