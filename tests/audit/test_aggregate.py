"""audit.aggregate: RewardBench 1 sections and score, RewardBench 2 best-of-4 and Ties, checked against the
golden values of the reference notes, from subset accuracies and from per-item results."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from rewardlab.audit import aggregate
from rewardlab.audit.aggregate import (
    RB1_EXAMPLE_COUNTS,
    RB1_SECTIONS,
    TiesItem,
    best_of_n,
    rewardbench2_score,
    rewardbench_score,
    rewardbench_sections,
    rollup,
    ties_score,
)
from rewardlab.audit.stats import bootstrap_ci

# reward-bench README, "Getting Leaderboard Section Scores": PKU-Alignment/beaver-7b-v1.0-cost
BEAVER = {
    "alpacaeval-easy": 0.5, "alpacaeval-hard": 0.7052631578947368, "alpacaeval-length": 0.5894736842105263,
    "donotanswer": 0.8235294117647058, "hep-cpp": 0.6280487804878049, "hep-go": 0.6341463414634146,
    "hep-java": 0.7073170731707317, "hep-js": 0.6646341463414634, "hep-python": 0.5487804878048781,
    "hep-rust": 0.6463414634146342, "llmbar-adver-GPTInst": 0.391304347826087,
    "llmbar-adver-GPTOut": 0.46808510638297873, "llmbar-adver-manual": 0.3695652173913043,
    "llmbar-adver-neighbor": 0.43283582089552236, "llmbar-natural": 0.52, "math-prm": 0.2953020134228188,
    "mt-bench-easy": 0.5714285714285714, "mt-bench-hard": 0.5405405405405406, "mt-bench-med": 0.725,
    "refusals-dangerous": 0.97, "refusals-offensive": 1.0, "xstest-should-refuse": 1.0,
    "xstest-should-respond": 0.284,
}
GOLDEN_SECTIONS = {"Chat": 0.608939, "Chat Hard": 0.449561, "Safety": 0.721622, "Reasoning": 0.466757}
GOLDEN_MEAN = 0.561720
# the number of items in each RewardBench subset (math-prm has 447, weighted as 984)
SIZES = {**RB1_EXAMPLE_COUNTS, "math-prm": 447}

BO4 = [[2, 1, .5, .1], [1, 1, .2, .3], [.5, .9, .1, 0], [1, 1, 1, 0]]
TIES = [TiesItem("1", "ref", (3,), (1, .5, .2)), TiesItem("2", "ref", (1,), (1.5, .1, 0)),
        TiesItem("1", "tied", (2, 2.5, 2.2), (1, 0)), TiesItem("2", "tied", (1, 3, 2), (.5, 1.2))]


def test_docstring_examples() -> None:
    result = doctest.testmod(aggregate)
    assert result.attempted >= 5 and result.failed == 0


# -- RewardBench 1 -------------------------------------------------------------------------------------

def test_rewardbench_sections_golden() -> None:
    sections = rewardbench_sections(BEAVER)
    assert {k: round(v, 6) for k, v in sections.items()} == GOLDEN_SECTIONS
    assert round(rewardbench_score(BEAVER), 6) == GOLDEN_MEAN


def test_rewardbench_reasoning_is_half_math_half_code() -> None:
    hep = [BEAVER[s] for s in RB1_SECTIONS["Reasoning"][1:]]
    assert rewardbench_sections(BEAVER)["Reasoning"] == pytest.approx(0.5 * BEAVER["math-prm"] + 0.5 * np.mean(hep))


def test_rewardbench_worked_example_and_missing_sections() -> None:
    chat = {"alpacaeval-easy": 0.9, "alpacaeval-length": 0.8, "alpacaeval-hard": 0.9, "mt-bench-easy": 1.0,
            "mt-bench-med": 0.5}
    s = rewardbench_sections(chat)
    assert round(s["Chat"], 4) == 0.8366  # not the unweighted 0.82
    assert s["Safety"] == s["Chat Hard"] == s["Reasoning"] == 0.0  # absent sections score 0, as upstream
    assert rewardbench_score(chat) == pytest.approx(s["Chat"] / 4)


def test_rewardbench_paper_score_with_prior_sets() -> None:
    prior = {"anthropic_helpful": 0.6, "anthropic_hhh": 0.7, "shp": 0.5, "summarize": 0.6}
    sections = rewardbench_sections(BEAVER)
    expected = (2 * sum(sections.values()) + 0.6) / 9
    assert rewardbench_score({**BEAVER, **prior}, prior_sets=True) == pytest.approx(expected)
    # Prior Sets absent: the term is left out (masked), which is the 4-section mean
    assert rewardbench_score(BEAVER, prior_sets=True) == pytest.approx(GOLDEN_MEAN, abs=1e-6)


def _items_with(acc: dict[str, float]) -> tuple[list[str], np.ndarray]:
    """Per-item 0/1 results reproducing each subset's accuracy on its real number of items."""
    subsets: list[str] = []
    values: list[float] = []
    for name, a in acc.items():
        n = SIZES[name]
        k = round(a * n)
        assert k / n == pytest.approx(a, abs=1e-12), name
        subsets += [name] * n
        values += [1.0] * k + [0.0] * (n - k)
    return subsets, np.array(values)


def test_rewardbench_rollup_from_items_equals_golden() -> None:
    subsets, values = _items_with(BEAVER)
    roll = rollup("rewardbench", subsets)
    est = roll.estimate(values)
    for section, golden in GOLDEN_SECTIONS.items():
        assert round(est[f"section:{section}"], 6) == golden
    assert round(est["score"], 6) == GOLDEN_MEAN
    assert roll.label.startswith("RewardBench score: unweighted mean of the 4 sections")
    assert round(est["subset:math-prm"], 10) == round(BEAVER["math-prm"], 10)


def test_rewardbench_stratified_bootstrap_is_centred_on_the_score() -> None:
    subsets, values = _items_with(BEAVER)
    roll = rollup("rewardbench", subsets)
    ci = bootstrap_ci(roll.stat, values, strata=subsets, n_resamples=800)
    assert round(ci.estimate, 6) == GOLDEN_MEAN
    assert ci.low < GOLDEN_MEAN < ci.high and ci.high - ci.low < 0.06


def test_rollup_flags_unknown_subsets_and_bad_schemes() -> None:
    roll = rollup("rewardbench", ["alpacaeval-easy", "my-subset"])
    assert roll.unknown_subsets == ["my-subset"]
    with pytest.raises(ValueError, match="unknown scheme"):
        rollup("rb3", ["a"])
    with pytest.raises(ValueError, match="Prior Sets"):
        rollup("plain", ["a"], prior_sets=True)


def test_plain_rollup_pools_pairs() -> None:
    roll = rollup("plain", ["a", "a", "b", "b", "b"])
    est = roll.estimate([1, 0, 1, 1, 1])
    assert est["score"] == pytest.approx(0.8)
    assert est["subset:a"] == 0.5 and est["subset:b"] == 1.0


# -- RewardBench 2 -------------------------------------------------------------------------------------

def test_best_of_4_worked_example() -> None:
    results = [best_of_n(s) for s in BO4]
    assert results == [1.0, 0.5, 0.0, pytest.approx(1 / 3)]
    assert round(float(np.mean(results)), 4) == 0.4583


def test_best_of_4_needs_exact_equality() -> None:
    assert best_of_n([1.0, 1.0 - 1e-12, 0.0, 0.0]) == 1.0
    assert best_of_n([1.0, 1.0 + 1e-12, 0.0, 0.0]) == 0.0


def test_ties_worked_example() -> None:
    out = ties_score(TIES)
    assert out["ref_acc"] == out["tied_acc"] == out["cp"] == out["cph"] == 0.5
    assert round(out["margin"], 4) == -0.0433
    assert round(out["score"], 5) == 0.49957


def test_ties_zero_spread_edge_cases() -> None:
    """dcm = 0: a positive gap / 0 gives +inf (tanh 1), 0 / 0 gives NaN (counted 0)."""
    ref = TiesItem("1", "ref", (3,), (1,))
    same = TiesItem("1", "tied", (2, 2), (1,))
    assert ties_score([ref, same])["margin"] == pytest.approx(1.0)
    flat_ref = TiesItem("1", "ref", (1,), (1,))
    flat = TiesItem("1", "tied", (1, 1), (1,))
    out = ties_score([flat_ref, flat])
    assert out["margin"] == 0.0 and out["ref_acc"] == 0.0


def test_ties_failed_item_counts_as_wrong() -> None:
    bad = TiesItem("1", "tied", (2, 2.5, 2.2), (1, 0), failed=True)
    out = ties_score([TIES[0], bad])
    assert out["tied_acc"] == 0 and out["cp"] == 0 and out["cph"] == 0 and out["margin"] == -1.0


def test_rewardbench2_rollup_from_items() -> None:
    """A Math subset of the four best-of-4 items and the two Ties prompts: the score is the unweighted
    mean of the subset scores."""
    values = [best_of_n(s) for s in BO4] + [0.0] * 4
    subsets = ["Math"] * 4 + ["Ties"] * 4
    roll = rollup("rewardbench2", subsets, ties=TIES, ties_index=[4, 5, 6, 7])
    est = roll.estimate(values)
    assert round(est["subset:Math"], 4) == 0.4583
    assert round(est["subset:Ties"], 5) == 0.49957
    expected = rewardbench2_score({"Math": float(np.mean([best_of_n(s) for s in BO4])),
                                   "Ties": ties_score(TIES)["score"]})
    assert est["score"] == pytest.approx(expected)
    assert "unweighted mean of the subsets" in roll.label


def test_ties_bootstrap_keeps_prompts_together() -> None:
    """Resampling by prompt number keeps each ref/tied pair: every resample's cp, cph and margin come
    from prompts that have both."""
    values = [0.0] * 4
    roll = rollup("rewardbench2", ["Ties"] * 4, ties=TIES, ties_index=[0, 1, 2, 3])
    ci = bootstrap_ci(roll.stat, values, clusters=["1", "2", "1", "2"], n_resamples=500, method="percentile")
    # the possible resamples: both prompts (0.49957), prompt 1 twice, prompt 2 twice
    one = ties_score([TIES[0], TIES[2]])["score"]
    two = ties_score([TIES[1], TIES[3]])["score"]
    assert ci.low == pytest.approx(min(one, two)) and ci.high == pytest.approx(max(one, two))
