"""Advantage estimators: the worked examples of the reference notes, hand-computed cases, the
degenerate-case table, and properties over random groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.core.types import Score
from rewardlab.credit import advantages as adv

R = [1, 0, 0, 1]
ONE = [0, 0, 0, 0]


# -- worked examples (scoring-rules section 6: R = [1, 0, 0, 1]) -------------------------------

def test_grpo_verl_epsilon() -> None:
    out = adv.grpo(R, ONE, convention="verl")
    assert out.values == pytest.approx([0.8660, -0.8660, -0.8660, 0.8660], abs=5e-5)
    assert out.values[0] == pytest.approx(0.5 / (math.sqrt(1 / 3) + 1e-6))


def test_grpo_trl_epsilon() -> None:
    out = adv.grpo(R, ONE, convention="trl")
    assert out.values == pytest.approx([0.86588, -0.86588, -0.86588, 0.86588], abs=5e-6)
    assert out.convention == "trl"


def test_dr_grpo() -> None:
    assert adv.dr_grpo(R, ONE).values.tolist() == [0.5, -0.5, -0.5, 0.5]


def test_rloo() -> None:
    assert adv.rloo(R, ONE).values == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])
    # the leave-one-out form: 1 - mean(0, 0, 1) = 2/3
    assert adv.rloo(R, ONE).values[0] == pytest.approx(1 - 1 / 3)


def test_reinforce_pp_whitens_over_the_batch_not_the_group() -> None:
    # two groups with different spreads: group-z-scoring would give both ±0.87, whitening does not
    r = [1.0, 0.0, 10.0, 0.0]
    out = adv.reinforce_pp(r, [0, 0, 1, 1])
    x = np.array(r)
    assert out.values == pytest.approx((x - x.mean()) / math.sqrt(x.var(ddof=1) + 1e-8))
    opr = adv.reinforce_pp(r, convention="openrlhf")
    assert opr.values == pytest.approx((x - x.mean()) / x.std())


def test_reinforce_pp_token_weighting_equals_per_token_whitening() -> None:
    r, lens = [1.0, 0.0, 0.5], [3, 1, 2]
    tokens = np.repeat(r, lens)  # every token of rollout i carries R_i (gamma = 1, no KL)
    white = (tokens - tokens.mean()) / math.sqrt(tokens.var(ddof=1) + 1e-8)
    out = adv.reinforce_pp(r, lengths=lens)
    assert np.repeat(out.values, lens) == pytest.approx(white)


def test_reinforce_pp_baseline_subtracts_the_group_mean_first() -> None:
    r, g = [1.0, 0.0, 3.0, 5.0], [0, 0, 1, 1]
    centred = np.array([0.5, -0.5, -1.0, 1.0])
    want = (centred - centred.mean()) / math.sqrt(centred.var(ddof=1) + 1e-8)
    assert adv.reinforce_pp_baseline(r, g).values == pytest.approx(want)
    with pytest.raises(ValueError, match="needs group labels"):
        adv.reinforce_pp(r, baseline=True)


def test_grpo_batch_scaling_uses_the_batch_std() -> None:
    r, g = [1.0, 0.0, 4.0, 2.0], [0, 0, 1, 1]
    s = np.std(r, ddof=1)
    out = adv.grpo(r, g, scale="batch")
    assert out.values == pytest.approx([0.5 / (s + 1e-4), -0.5 / (s + 1e-4), 1 / (s + 1e-4), -1 / (s + 1e-4)])


def test_conventions_are_overridable_and_unknown_ones_refused() -> None:
    assert adv.grpo(R, ONE, eps=0.0).values[0] == pytest.approx(0.5 / math.sqrt(1 / 3))
    assert adv.grpo(R, ONE, eps=0.0, ddof=0).values[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="known: trl, verl"):
        adv.grpo(R, ONE, convention="openrlhf")
    with pytest.raises(ValueError, match="known: verl, openrlhf"):
        adv.reinforce_pp(R, convention="trl")


# -- hand-computed GRPO-λ, Pref-GRPO, gated rewards --------------------------------------------

def test_grpo_lambda_switches_the_top_groups_to_the_length_reward() -> None:
    # group a: 2 of 3 correct (rho 2/3); group b: 1 of 3 (rho 1/3); fraction 0.5 switches a only
    r = [1, 1, 0, 0, 1, 0]
    lens = [10, 20, 30, 5, 50, 9]
    g = ["a", "a", "a", "b", "b", "b"]
    out = adv.grpo_lambda(r, lens, g, fraction=0.5)
    # a: lambda = 0.5 - (len - 10)/20 = [0.5, 0, -0.5]; the wrong one gets min(0, -0.5)
    assert out.rewards.tolist() == [0.5, 0.0, -0.5, 0.0, 1.0, 0.0]
    sa, sb = 0.5, math.sqrt(1 / 3)  # Bessel stds of the two groups
    assert out.values == pytest.approx([0.5 / (sa + 1e-4), 0.0, -0.5 / (sa + 1e-4),
                                        (-1 / 3) / (sb + 1e-4), (2 / 3) / (sb + 1e-4), (-1 / 3) / (sb + 1e-4)])
    everything = adv.grpo_lambda(r, lens, g, fraction=1.0)
    assert everything.rewards.tolist()[3:] == [0.0, 0.5 - (50 - 5) / 45, 0.0]  # the long correct one pays
    assert adv.grpo_lambda(r, lens, g, fraction=0.0).rewards.tolist() == [1, 1, 0, 0, 1, 0]


def test_kimi_length_reward_equal_lengths_give_zero() -> None:
    assert adv.kimi_length_reward([True, False], [7, 7], [0, 0]).tolist() == [0.0, 0.0]
    # a wrong short answer is not rewarded for being short
    assert adv.kimi_length_reward([False, True], [1, 3], [0, 0]).tolist() == [0.0, -0.5]


def test_pref_grpo_win_rates_from_a_pairwise_judge() -> None:
    calls: list[tuple[str, str]] = []

    def longer_wins(a: str, b: str) -> float:
        calls.append((a, b))
        return 0.5 if len(a) == len(b) else float(len(a) > len(b))

    out = adv.pref_grpo(["aaa", "a", "bb", "cc", "x"], [0, 0, 0, 0, 1], longer_wins)
    # win rates: aaa 3/3, a 0/3, bb (1 + 0.5)/3, cc (1 + 0.5)/3
    assert out.rewards[:4] == pytest.approx([1.0, 0.0, 0.5, 0.5])
    assert len(calls) == 6  # G(G-1)/2 for the group of four, none for the group of one
    assert out.tolist()[4] is None  # a group of one has no win rate
    both = adv.pref_grpo(["aaa", "a"], [0, 0], longer_wins, both_orders=True)
    assert both.rewards.tolist() == [1.0, 0.0] and len(calls) == 8


def test_pref_grpo_averages_both_orders_and_refuses_bad_probabilities() -> None:
    # the judge is position-biased: the first response always wins; both orders cancel it
    out = adv.pref_grpo(["x", "y"], [0, 0], lambda a, b: 1.0, both_orders=True)
    assert out.rewards.tolist() == [0.5, 0.5] and out.values.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        adv.pref_grpo(["x", "y"], [0, 0], lambda a, b: 2.0)


def test_gated_lower_channel_counts_only_past_the_gate() -> None:
    c = [[1.0, 0.5, 0.3],   # both gates open: 1.8
         [0.2, 0.7, 0.9],   # first gate shut: only the first channel
         [1.0, 0.1, 0.9],   # second gate shut
         [np.nan, 1.0, 1.0],  # the first channel is needed: unscorable
         [0.0, np.nan, 1.0]]  # gated off before the missing channel: scorable
    total, valid = adv.gated(c, [0.5, 0.4])
    assert total.tolist() == pytest.approx([1.8, 0.2, 1.1, 0.0, 0.0])
    assert valid.tolist() == [True, True, True, False, True]


def test_a_policy_cannot_farm_the_low_priority_channel() -> None:
    # maximal style reward, failing the task: gets nothing from style
    total, _ = adv.gated([[0.0, 100.0]], [1.0])
    assert total.tolist() == [0.0]


# -- degenerate-case table ---------------------------------------------------------------------

@pytest.mark.parametrize("est", [adv.grpo, adv.dr_grpo, adv.rloo])
def test_group_of_one(est) -> None:  # type: ignore[no-untyped-def]
    trl = est([0.7, 1.0, 0.0], [0, 1, 1])
    assert trl.values[0] == 0.0 and trl.mask[0]
    assert trl.counts["singleton_groups"] == 1 and "1 groups with one scorable rollout" in trl.notes
    assert est([0.7, 1.0, 0.0], [0, 1, 1], convention="verl").values[0] == 0.7
    assert est([0.7], [0], singleton="raw").values.tolist() == [0.7]


def test_reinforce_pp_baseline_group_of_one() -> None:
    verl = adv.reinforce_pp_baseline([0.7, 1.0, 0.0], [0, 1, 1])
    opr = adv.reinforce_pp_baseline([0.7, 1.0, 0.0], [0, 1, 1], convention="openrlhf")
    assert verl.values[0] > 0 and opr.values[0] == 0.0  # raw 0.7 vs 0, the batch mean, before whitening


@pytest.mark.parametrize("convention", ["trl", "verl"])
@pytest.mark.parametrize("est", [adv.grpo, adv.dr_grpo, adv.rloo])
def test_all_equal_group_is_exactly_zero(est, convention) -> None:  # type: ignore[no-untyped-def]
    # 0.1 three times: the float mean is not 0.1, and (r - mean)/eps would not be 0
    out = est([0.1, 0.1, 0.1, 1.0, 0.0], [0, 0, 0, 1, 1], convention=convention)
    assert out.values[:3].tolist() == [0.0, 0.0, 0.0]
    assert out.counts["constant_groups"] == 1
    assert adv.dapo_keep([0.1, 0.1, 0.1, 1.0, 0.0, 0.3], [0, 0, 0, 1, 1, 2]).tolist() == [
        False, False, False, True, True, True]


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), Score.error("judge timed out"),
                                 Score.abstain("no answer")])
@pytest.mark.parametrize("est", [adv.grpo, adv.dr_grpo, adv.rloo, adv.reinforce_pp_baseline])
def test_unscorable_is_excluded_from_the_baseline(est, bad) -> None:  # type: ignore[no-untyped-def]
    with_bad = est([1.0, 0.0, bad, 0.0], [0, 0, 0, 0])
    without = est([1.0, 0.0, 0.0], [0, 0, 0])
    assert with_bad.mask.tolist() == [True, True, False, True]
    assert with_bad.values[2] == 0.0 and with_bad.tolist()[2] is None
    assert with_bad.values[[0, 1, 3]] == pytest.approx(without.values)
    assert not np.isnan(with_bad.values).any()
    assert with_bad.counts["unscorable"] == 1


def test_scores_are_read_by_status() -> None:
    out = adv.grpo([Score.of(1.0), Score.of(0.0), Score.error("crash")], ["p", "p", "p"])
    assert out.tolist()[:2] == pytest.approx([0.5 / (math.sqrt(0.5) + 1e-4), -0.5 / (math.sqrt(0.5) + 1e-4)])
    assert out.tolist()[2] is None


def test_a_group_with_no_scorable_reward_gets_no_nan() -> None:
    out = adv.grpo([None, None, 1.0, 0.0], [0, 0, 1, 1])
    assert out.mask.tolist() == [False, False, True, True] and not np.isnan(out.values).any()
    assert adv.dapo_keep([None, None, 1.0, 0.0], [0, 0, 1, 1]).tolist() == [False, False, True, True]
    assert adv.rloo([None], [0]).tolist() == [None]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="3 rewards but 2 group labels"):
        adv.grpo([1, 0, 1], [0, 0])


# -- properties --------------------------------------------------------------------------------

def _loop_grpo(r: list[float], g: list[int], eps: float) -> list[float]:
    """GRPO written the obvious way, one group at a time."""
    out = [0.0] * len(r)
    for key in set(g):
        idx = [i for i, x in enumerate(g) if x == key]
        vals = np.array([r[i] for i in idx])
        if len(vals) < 2 or vals.max() == vals.min():
            continue
        for i, v in zip(idx, vals, strict=True):
            out[i] = (v - vals.mean()) / (vals.std(ddof=1) + eps)
    return out


rewards_and_groups = st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=n, max_size=n),
    st.lists(st.integers(0, 5), min_size=n, max_size=n)))


@settings(max_examples=200, deadline=None)
@given(rewards_and_groups)
def test_group_centred_advantages_sum_to_zero(rg: tuple[list[float], list[int]]) -> None:
    r, g = rg
    for est in (adv.grpo, adv.dr_grpo, adv.rloo):
        out = est(r, g)
        for key in set(g):
            members = [i for i, x in enumerate(g) if x == key]
            scale = max(1.0, max(abs(r[i]) for i in members))
            total = sum(out.values[i] for i in members)
            assert abs(total) <= 1e-9 * scale * len(members) / (1e-4 if est is adv.grpo else 1)


@settings(max_examples=200, deadline=None)
@given(rewards_and_groups, st.floats(0.01, 1000), st.floats(-50, 50))
def test_affine_rescaling_leaves_z_scores_unchanged(rg: tuple[list[float], list[int]], c: float,
                                                    shift: float) -> None:
    r, g = rg
    base = adv.grpo(r, g, eps=0.0)
    moved = adv.grpo([c * x + shift for x in r], g, eps=0.0)
    # groups that are constant stay constant only up to rounding: compare the others
    spread = [max(r[i] for i, x in enumerate(g) if x == k) - min(r[i] for i, x in enumerate(g) if x == k)
              for k in g]
    keep = np.array(spread) > 1e-6
    assert moved.values[keep] == pytest.approx(base.values[keep], rel=1e-6, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(rewards_and_groups)
def test_vectorised_grpo_matches_the_loop(rg: tuple[list[float], list[int]]) -> None:
    r, g = rg
    assert adv.grpo(r, g).values == pytest.approx(_loop_grpo(r, g, 1e-4), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("labels", [
    [5, 3, 5, 9], [-1, 7, -1, 8], [10**12, 3, 10**12, 4], [True, False, True, 2], ["b", "a", "b", "c"],
    [("x", 1), ("y", 1), ("x", 1), ("z", 0)], [2.5, 1.0, 2.5, 0.0]])
def test_group_labels_of_any_kind(labels: list[object]) -> None:
    from rewardlab.credit._groups import group_ids

    gid, n = group_ids(labels if not isinstance(labels[0], int | float) else np.array(labels))
    assert n == 3 and gid[0] == gid[2] and len({gid[0], gid[1], gid[3]}) == 3
    assert adv.dr_grpo([1.0, 5.0, 0.0, 2.0], labels).values.tolist() == [0.5, 0.0, -0.5, 0.0]
