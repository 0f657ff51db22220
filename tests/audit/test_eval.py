"""audit.eval: accuracy with intervals on real HH-RLHF pairs (length baselines), ties and failed scores
counted as wrong and reported, clustering by prompt, the RewardBench and RewardBench 2 roll-ups end to end
from files, paired comparisons, and the JSON shape."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rewardlab import Sample, reward
from rewardlab.api import build
from rewardlab.audit.eval import evaluate
from rewardlab.audit.stats import mcnemar, wilson_ci
from rewardlab.core.types import PreferencePair
from rewardlab.io.preferences import read_preferences
from tests.audit.test_aggregate import BEAVER, BO4, GOLDEN_MEAN, GOLDEN_SECTIONS, SIZES

HH = "preference/hh_rlhf_harmless_base_test.jsonl.gz"
SHORTER = build("response_length", prefer="shorter")


@reward(register=False, range=(-math.inf, math.inf))
def number(sample: Sample) -> float:
    """The response read as a number: lets a test set every response's score."""
    return float(sample.response_text)


@reward(register=False, range=(0, 1))
def says_win(sample: Sample) -> float:
    """1 for a response "win", else 0."""
    return float(sample.response_text == "win")


@reward(register=False, range=(0, 0))
def constant(sample: Sample) -> float:
    """The same score for everything: a reward that ranks nothing."""
    return 0.0


@reward(register=False, range=(0, 1))
def fails_on_x(sample: Sample) -> float:
    """Raises on responses containing "x" (an error score), else 1 for "win"."""
    if "x" in sample.response_text:
        raise RuntimeError("cannot score x")
    return float(sample.response_text.startswith("win"))


@pytest.fixture(scope="module")
def hh(shared_data: Path) -> list:
    return read_preferences(shared_data / HH).items


def test_length_baselines_on_hh_rlhf(hh: list) -> None:
    ev = evaluate(hh, {"longest": "response_length", "shortest": SHORTER}, n_resamples=2000)
    # what the reward must find, counted here straight from the pairs
    lc = np.array([len(p.chosen) for p in hh])
    lr = np.array([len(p.rejected) for p in hh])
    longest, shortest = ev.rewards["longest"], ev.rewards["shortest"]
    assert longest.n == shortest.n == len(hh) == 2312
    assert longest.score.estimate == pytest.approx(np.mean(lc > lr))
    assert shortest.score.estimate == pytest.approx(np.mean(lc < lr))
    assert longest.ties == shortest.ties == int(np.sum(lc == lr)) > 0  # equal lengths: wrong for both
    assert longest.pairs["correct"] + shortest.pairs["correct"] + longest.ties == 2312
    for r in (longest, shortest):
        assert r.score.low < r.score.estimate < r.score.high
        # two prompts repeat, so the interval is a clustered bootstrap; it is close to Wilson's
        lo, hi = wilson_ci(r.pairs["correct"], r.n)
        assert r.score.low == pytest.approx(lo, abs=0.006) and r.score.high == pytest.approx(hi, abs=0.006)
    cmp = ev.comparisons[0]
    expected = mcnemar(int(np.sum(lc > lr)), int(np.sum(lc < lr)))
    assert (cmp["mcnemar_b"], cmp["mcnemar_c"]) == (expected.b, expected.c)
    assert cmp["mcnemar_p"] == expected.p_exact < 1e-5
    assert cmp["diff"] == pytest.approx(longest.score.estimate - shortest.score.estimate)
    assert cmp["diff_ci"][0] < cmp["diff"] < cmp["diff_ci"][1] < 0
    assert cmp["agreement"]["spearman"] == pytest.approx(-1.0)
    assert cmp["agreement"]["cohen_kappa"] < -0.9


def test_ties_count_as_wrong_and_are_reported() -> None:
    items = [PreferencePair(prompt="q", chosen="3", rejected="3"), PreferencePair(prompt="r", chosen="2", rejected="1"),
             PreferencePair(prompt="s", chosen="1", rejected="2"), PreferencePair(prompt="t", chosen="5", rejected="5")]
    ev = evaluate(items, {"n": number}, n_resamples=500)
    r = ev.rewards["n"]
    assert r.score.estimate == 0.25 and r.ties == 2 and r.pairs["correct"] == 1
    assert r.score.method == "wilson"  # independent 0/1 pairs
    assert (r.score.low, r.score.high) == pytest.approx(wilson_ci(1, 4))


def test_a_constant_reward_scores_zero_not_chance() -> None:
    """A reward that ranks nothing ties every pair: 0% (not the 50% a coin would get), all ties."""
    items = [PreferencePair(prompt=f"q{i}", chosen="win", rejected="lose") for i in range(30)]
    r = evaluate(items, {"c": constant}, n_resamples=500).rewards["c"]
    assert r.score.estimate == 0.0 and r.ties == 30 and r.score.high < 0.15


def test_failed_scores_count_as_wrong_with_reasons() -> None:
    items = [PreferencePair(prompt=f"q{i}", chosen="win" + ("x" if i < 3 else ""), rejected="lose") for i in range(10)]
    r = evaluate(items, {"f": fails_on_x}, n_resamples=500).rewards["f"]
    assert r.unscored == 3 and r.pairs["correct"] == 7 and r.score.estimate == 0.7
    assert r.reasons and "cannot score x" in r.reasons[0]


@reward(register=False, range=(-math.inf, math.inf))
def nan_for_win(sample: Sample) -> float:
    """NaN for "win" (a reward that breaks on the chosen side), else 0."""
    return math.nan if sample.response_text == "win" else 0.0


def test_a_non_finite_score_never_wins_a_pair() -> None:
    """A NaN is an error score, not a value that compares false both ways: the pair is unscored and wrong."""
    items = [PreferencePair(prompt=f"q{i}", chosen="win", rejected="lose") for i in range(5)]
    r = evaluate(items, {"n": nan_for_win}, n_resamples=300).rewards["n"]
    assert r.score.estimate == 0.0 and r.unscored == 5 and r.ties == 0
    assert "non-finite" in r.reasons[0]


def test_pairs_of_one_prompt_are_resampled_together() -> None:
    """A set (one chosen, three rejected) gives three pairs of one prompt, right or wrong together here:
    the interval is a bootstrap over the 60 prompts (as wide as Wilson's over 60), not Wilson over 180
    pairs."""
    rows = [{"prompt": f"q{i}", "chosen": ["0" if i % 3 == 0 else "3"], "rejected": ["1", "2", "0.5"]}
            for i in range(60)]
    items = [read_preferences_row(r) for r in rows]
    r = evaluate(items, {"n": number}, n_resamples=4000).rewards["n"]
    assert r.n == 180 and r.score.estimate == pytest.approx(2 / 3)
    assert r.score.method in ("bca", "percentile")
    pairs_lo, pairs_hi = wilson_ci(120, 180)
    prompts_lo, prompts_hi = wilson_ci(40, 60)
    width = r.score.high - r.score.low
    assert width > 1.4 * (pairs_hi - pairs_lo)
    assert width == pytest.approx(prompts_hi - prompts_lo, rel=0.2)


def test_a_perfect_reward_on_sets_gets_an_interval_not_a_point() -> None:
    """100% over pairs that share prompts: every resample is 100%, so the bootstrap collapses; the interval
    is Wilson over the prompts instead, and says so."""
    rows = [{"prompt": f"q{i}", "chosen": ["3"], "rejected": ["1", "2"]} for i in range(40)]
    r = evaluate([read_preferences_row(x) for x in rows], {"n": number}, n_resamples=500).rewards["n"]
    assert r.score.estimate == 1.0 and r.score.method == "wilson" and "40 prompts" in r.score.note
    assert (r.score.low, r.score.high) == pytest.approx(wilson_ci(40, 40))


def read_preferences_row(row: dict) -> PreferencePair:
    from rewardlab.io.preferences import preference_from_row

    return preference_from_row(row)[0]  # type: ignore[return-value]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rewardbench_scheme_from_a_file_equals_golden(tmp_path: Path) -> None:
    """Per-item results with the README's subset accuracies, read from a file and scored by a reward:
    the sections and the 4-section mean are the golden values."""
    rows = []
    for subset, acc in BEAVER.items():
        n = SIZES[subset]
        k = round(acc * n)
        for i in range(n):
            right = i < k
            rows.append({"id": f"{subset}-{i}", "subset": subset, "prompt": f"{subset} {i}",
                         "chosen": "win" if right else "lose", "rejected": "lose" if right else "win"})
    items = read_preferences(_write(tmp_path / "rb.jsonl", rows)).items
    ev = evaluate(items, {"w": says_win}, scheme="rewardbench", n_resamples=300)
    r = ev.rewards["w"]
    assert {k: round(v.estimate, 6) for k, v in r.sections.items()} == GOLDEN_SECTIONS
    assert round(r.score.estimate, 6) == GOLDEN_MEAN
    assert r.score.low < GOLDEN_MEAN < r.score.high
    assert r.subsets["math-prm"]["n"] == 447
    assert "4 sections" in ev.score_label and ev.unknown_subsets == []


def test_rewardbench2_scheme_from_a_file(tmp_path: Path) -> None:
    """RewardBench 2 rows (chosen a list, rejected a list; Ties ids ref:N / tied:N): the best-of-4 worked
    example as the Math subset and the Ties worked example, scored by a reward reading the numbers."""
    rows = [{"id": str(i), "subset": "Math", "prompt": f"m{i}", "chosen": [str(s[0])],
             "rejected": [str(x) for x in s[1:]]} for i, s in enumerate(BO4)]
    rows += [
        {"id": "ref:1", "subset": "Ties", "prompt": "t1", "chosen": ["3"], "rejected": ["1", "0.5", "0.2"]},
        {"id": "ref:2", "subset": "Ties", "prompt": "t2", "chosen": ["1"], "rejected": ["1.5", "0.1", "0"]},
        {"id": "tied:1", "subset": "Ties", "prompt": "t1", "chosen": ["2", "2.5", "2.2"], "rejected": ["1", "0"]},
        {"id": "tied:2", "subset": "Ties", "prompt": "t2", "chosen": ["1", "3", "2"], "rejected": ["0.5", "1.2"]},
    ]
    items = read_preferences(_write(tmp_path / "rb2.jsonl", rows)).items
    ev = evaluate(items, {"n": number}, scheme="rewardbench2", n_resamples=300)
    r = ev.rewards["n"]
    assert round(r.subsets["Math"]["accuracy"], 4) == 0.4583
    assert r.subsets["Math"]["ties"] == 2  # items 2 and 4 share the top
    assert round(r.subsets["Ties"]["accuracy"], 5) == 0.49957
    assert r.ties_terms["cp"] == 0.5 and round(r.ties_terms["margin"], 4) == -0.0433
    assert r.score.estimate == pytest.approx((r.subsets["Math"]["accuracy"] + r.subsets["Ties"]["accuracy"]) / 2)


def test_rewardbench2_comparison_uses_each_rewards_ties_terms(tmp_path: Path) -> None:
    rows = [{"id": "ref:1", "subset": "Ties", "prompt": "t1", "chosen": ["3"], "rejected": ["1", "0.5"]},
            {"id": "tied:1", "subset": "Ties", "prompt": "t1", "chosen": ["2", "2.5"], "rejected": ["1", "0"]},
            {"id": "a", "subset": "Math", "prompt": "m", "chosen": ["2"], "rejected": ["1", "0", "0"]}]
    items = read_preferences(_write(tmp_path / "t.jsonl", rows)).items
    ev = evaluate(items, {"n": number, "c": constant}, scheme="rewardbench2", n_resamples=200)
    cmp = ev.comparisons[0]
    assert cmp["diff"] == pytest.approx(ev.rewards["n"].score.estimate - ev.rewards["c"].score.estimate)
    assert ev.rewards["c"].subsets["Math"]["accuracy"] == 0.25  # a four-way tie at the top: 1/4


def test_a_ties_item_without_its_id_is_refused(tmp_path: Path) -> None:
    rows = [{"id": "7", "subset": "Ties", "prompt": "t", "chosen": ["1"], "rejected": ["0"]}]
    items = read_preferences(_write(tmp_path / "bad.jsonl", rows)).items
    with pytest.raises(ValueError, match="ref:N"):
        evaluate(items, {"n": number}, scheme="rewardbench2")


def test_json_shape_is_strict_and_complete(hh: list) -> None:
    ev = evaluate(hh[:200], {"longest": "response_length", "shortest": SHORTER}, n_resamples=300)
    doc = ev.to_json()
    text = json.dumps(doc, allow_nan=False)  # strict JSON
    assert json.loads(text) == doc
    r = doc["rewards"]["longest"]
    assert {"accuracy", "ci", "ci_method", "n", "ties", "unscored", "subsets", "pairs", "fingerprint"} <= set(r)
    assert len(r["ci"]) == 2 and r["ci"][0] <= r["accuracy"] <= r["ci"][1]
    sub = r["subsets"]["unlabelled"]
    assert {"accuracy", "ci", "n", "ties", "unscored"} <= set(sub)
    cmp = doc["comparisons"][0]
    assert {"mcnemar_p", "mcnemar_midp", "diff_ci", "diff_p", "agreement"} <= set(cmp)
    assert set(cmp["agreement"]["ci"]) == {"pairwise_agreement", "cohen_kappa", "spearman"}
    assert doc["scheme"] == "plain" and doc["n_resamples"] == 300 and doc["units"] == 200


def test_same_seed_same_figures(hh: list) -> None:
    a = evaluate(hh[:300], {"l": "response_length"}, n_resamples=300, seed=3).to_json()
    b = evaluate(hh[:300], {"l": "response_length"}, n_resamples=300, seed=3).to_json()
    assert a == b


def test_no_items_or_rewards_is_an_error() -> None:
    with pytest.raises(ValueError, match="no preference items"):
        evaluate([], {"n": number})
    with pytest.raises(ValueError, match="no reward"):
        evaluate([PreferencePair(prompt="q", chosen="1", rejected="0")], {})
