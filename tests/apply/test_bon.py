"""Best-of-N selection: by reward and ensembles, majority and weighted majority vote over
normalised answers, self-certainty; fail-closed and deterministic, and degenerate responses a
policy would try do not win."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest

from rewardlab import Runtime, Score, build
from rewardlab.apply.bon import best_of_n, certainty, same_answer, select
from rewardlab.apply.groups import ensemble_score, group_candidates, score_groups
from tests.apply.rollouts import candidates, group_of, qwen_rows, rm_prob, rm_score


@pytest.fixture(scope="module")
def qwen_groups(shared_data: Path) -> list:
    """Qwen2.5-Math best-of-8 on 100 MATH problems, scored by the reward model's probability."""
    groups = group_candidates(candidates(qwen_rows(shared_data)))
    with Runtime(workers=1) as rt:
        score_groups(groups, rm_prob(), runtime=rt)
    return groups


def _correct(sels: list) -> int:
    return sum(bool(s.chosen is not None and s.chosen.row["correct"]) for s in sels)


def test_real_groups_are_the_prompts(qwen_groups: list) -> None:
    assert len(qwen_groups) == 100
    assert {len(g.candidates) for g in qwen_groups} == {8}
    assert all(len({c.row["problem"] for c in g.candidates}) == 1 for g in qwen_groups)


def test_majority_vote_matches_the_files_own_majority(qwen_groups: list) -> None:
    # the file carries the answer its own evaluation extracted from each response: a majority vote
    # over rewardlab's extraction and normalisation must find an equivalent winning answer
    sels = best_of_n(qwen_groups, "majority")
    agree = 0
    for g, s in zip(qwen_groups, sels, strict=True):
        counts = Counter(c.row["qwen_pred"] for c in g.candidates)
        top, n_top = counts.most_common(1)[0]
        tied = [a for a, n in counts.items() if n == n_top]
        agree += any(same_answer(a, s.answer) for a in tied) if s.answer else 0
        assert s.votes and s.votes[s.answer] == max(s.votes.values())
    assert agree >= 98


def test_selection_beats_the_first_sample_on_real_rollouts(qwen_groups: list) -> None:
    first = sum(bool(g.candidates[0].row["correct"]) for g in qwen_groups)
    oracle = sum(any(c.row["correct"] for c in g.candidates) for g in qwen_groups)
    by_reward = _correct(best_of_n(qwen_groups, "reward"))
    weighted = _correct(best_of_n(qwen_groups, "weighted_majority"))
    majority = _correct(best_of_n(qwen_groups, "majority"))
    assert first < by_reward <= oracle
    assert first < weighted <= oracle
    assert first < majority <= oracle


def test_reward_selection_takes_the_argmax(qwen_groups: list) -> None:
    for s, g in zip(best_of_n(qwen_groups, "reward"), qwen_groups, strict=True):
        assert s.chosen is not None
        assert s.chosen.value == max(c.value for c in g.candidates)
        assert s.chosen.row["rm_score"] == max(c.row["rm_score"] for c in g.candidates)


def test_equivalent_answers_vote_together() -> None:
    g = group_of([r"So $\boxed{1/2}$.", "0.5", r"The answer is \frac12.", r"\boxed{1/3}", r"\boxed{\frac{1}{3}}"])
    s = select(g, "majority")
    assert s.chosen is g.candidates[0]
    assert sorted(s.votes.values()) == [2.0, 3.0]


def test_weighted_vote_can_overrule_the_count() -> None:
    g = group_of([r"\boxed{1/2}", "0.5", r"\boxed{1/3}"], [0.1, 0.2, 0.9])
    assert select(g, "majority").answer == "1/2"
    s = select(g, "weighted_majority")
    assert s.chosen is g.candidates[2]
    assert s.votes[s.answer] == pytest.approx(0.9)


def test_a_spray_of_boxes_votes_for_its_tuple_not_for_each_box() -> None:
    # a naive "any box counts" vote would give 12 three votes; each spray is one (tuple) answer
    g = group_of([r"\boxed{420}", r"\boxed{420}", r"\boxed{12}",
                  r"\boxed{12}, \boxed{5}", r"\boxed{12}\boxed{9}\boxed{7}"])
    s = select(g, "majority")
    assert s.answer == "420"
    assert s.votes["420"] == 2 and s.votes["12"] == 1


def test_answer_spam_and_empty_responses_get_one_vote_or_none() -> None:
    g = group_of([r"\boxed{7}", r"\boxed{7}", "42 " * 200, "", "   "], [0.6, 0.6, 1.0, 1.0, 1.0])
    for method in ("majority", "weighted_majority"):
        s = select(g, method)  # type: ignore[arg-type]
        assert s.answer == "7", method
        assert s.votes.get("42", 0) <= 1.0
        assert len(s.votes) == 2  # the empty responses cast no vote


def test_pasting_the_question_back_casts_no_vote(shared_data: Path) -> None:
    import json

    # GSM8K questions whose last number is their answer: a response that pastes the question back
    # would vote for it by the last-number fallback; as math_answer reads it, it gives no answer
    qs = [json.loads(line) for line in (shared_data / "verifiable" / "gsm8k_test.jsonl").open()]
    hits = 0
    for q in qs:
        gold = q["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        numbers = re.findall(r"\d+(?:\.\d+)?", q["question"].replace(",", ""))
        if not numbers or numbers[-1] != gold:
            continue
        hits += 1
        g = group_of([q["question"], q["question"], f"#### {float(gold) + 1:g}"], prompt=q["question"])
        s = select(g, "majority")
        assert len(s.votes) == 1 and s.chosen is g.candidates[2], q["question"]
    assert hits >= 20


def test_non_ok_scores_never_win_or_vote() -> None:
    err = Score.error("judge timed out")
    g = group_of([r"\boxed{9}", r"\boxed{9}", r"\boxed{9}", r"\boxed{4}"], [err, err, err, 0.2])
    assert select(g, "reward").chosen is g.candidates[3]
    assert select(g, "majority").answer == "4"  # the error-scored three do not vote
    assert select(g, "weighted_majority").answer == "4"


def test_a_group_without_ok_scores_selects_nothing_and_says_why() -> None:
    g = group_of(["a", "b", "c"], [Score.error("timeout"), Score.abstain("no answer found"), Score.error("timeout")])
    for method in ("reward", "majority", "weighted_majority"):
        s = select(g, method)  # type: ignore[arg-type]
        assert s.chosen is None and s.eligible == 0
        assert "2 error (timeout)" in (s.reason or "") and "1 abstain (no answer found)" in (s.reason or "")


def test_ties_go_to_the_first_read() -> None:
    g = group_of(["x", "y", "z"], [0.5, 0.9, 0.9])
    assert select(g, "reward").chosen is g.candidates[1]
    g = group_of([r"\boxed{3}", r"\boxed{5}", r"\boxed{5}", r"\boxed{3}"])
    assert select(g, "majority").chosen is g.candidates[0]  # equal counts: the answer seen first
    g = group_of([r"\boxed{3}", r"\boxed{5}", r"\boxed{5}", r"\boxed{3}"], [0.2, 0.3, 0.1, 0.4])
    s = select(g, "majority")  # equal counts: the answer with the best single score, then its best candidate
    assert s.answer == "3" and s.chosen is g.candidates[3]


def test_lower_is_better_selects_the_minimum() -> None:
    g = group_of(["x", "y", "z"], [3.0, 1.0, 2.0])
    assert select(g, "reward", higher=False).chosen is g.candidates[1]


def test_weighted_vote_refuses_negative_weights() -> None:
    g = group_of([r"\boxed{1}", r"\boxed{2}"], [-1.0, 0.5])
    s = select(g, "weighted_majority")
    assert s.chosen is None and "non-negative" in (s.reason or "")


def test_methods_that_need_a_reward_refuse_unscored_groups() -> None:
    with pytest.raises(ValueError, match="needs scored"):
        select(group_of(["a"]), "reward")
    with pytest.raises(ValueError, match="higher-is-better"):
        select(group_of(["a"], [1.0]), "weighted_majority", higher=False)


def test_ensemble_reductions() -> None:
    members = [Score.of(1.0), Score.of(0.0), Score.of(0.5)]
    std = math.sqrt(((0.5) ** 2 + (0.5) ** 2) / 3)
    assert ensemble_score(members, "mean").value == pytest.approx(0.5)
    assert ensemble_score(members, "min").value == 0.0
    assert ensemble_score(members, "mean_minus_std", 0.5).value == pytest.approx(0.5 - 0.5 * std)
    broken = ensemble_score([Score.of(1.0), Score.error("judge down")], "mean")
    assert not broken.ok and "member 1 is error: judge down" in (broken.reason or "")


def test_several_rewards_and_an_ensemble_spec_give_member_values() -> None:
    # the boxed answer is right, the last number is not: the two math verifiers disagree
    rows = [{"prompt": "2+2?", "response": r"It is \boxed{4}, not 5", "answer": "4"},
            {"prompt": "2+2?", "response": r"\boxed{4}", "answer": "4"}]
    last = build({"reward": {"reward": "math_answer", "params": {"extract_order": ["last_number"]}}})
    with Runtime(workers=1) as rt:
        g1 = score_groups(group_candidates(candidates(rows)), [build("math_answer"), last], runtime=rt,
                          reduce="min")
        spec = build({"reward": {"ensemble": [{"reward": "math_answer"},
                                              {"reward": "math_answer", "params": {"extract_order": ["last_number"]}}],
                                 "reduce": "min"}})
        g2 = score_groups(group_candidates(candidates(rows)), spec, runtime=rt)
    for g in (g1, g2):
        a, b = g[0].candidates
        assert a.members == (1.0, 0.0) and b.members == (1.0, 1.0)
        assert a.value == 0.0 and b.value == 1.0
        assert select(g[0], "reward").chosen is b  # worst-case ensemble: the disputed one loses


def test_uncertainty_weighted_ensemble_prefers_agreement(qwen_groups: list, shared_data: Path) -> None:
    rows = qwen_rows(shared_data, problems=20)
    with Runtime(workers=1) as rt:
        mean = score_groups(group_candidates(candidates(rows)), [rm_prob(), build("math_answer")], runtime=rt)
        uwo = score_groups(group_candidates(candidates(rows)), [rm_prob(), build("math_answer")], runtime=rt,
                           reduce="mean_minus_std", lam=1.0)
    for gm, gu in zip(mean, uwo, strict=True):
        for cm, cu in zip(gm.candidates, gu.candidates, strict=True):
            spread = abs(cm.members[0] - cm.members[1]) / 2  # population std of two values
            assert cu.value == pytest.approx(cm.value - spread)


def test_self_certainty_from_top_k_logprobs() -> None:
    peaked = [{"a": math.log(0.9), "b": math.log(0.1)}] * 3
    flat = [{"a": math.log(0.5), "b": math.log(0.5)}] * 3
    value, kind = certainty({"logprobs": peaked})
    # KL(uniform || p) over the two tokens, computed directly
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kind == "self_certainty_topk" and value == pytest.approx(expected)
    assert certainty({"logprobs": flat})[0] == pytest.approx(0.0, abs=1e-12)
    openai = {"content": [{"token": "a", "logprob": -0.1,
                           "top_logprobs": [{"token": "a", "logprob": math.log(0.9)},
                                            {"token": "b", "logprob": math.log(0.1)}]}] * 2}
    assert certainty({"logprobs": openai})[0] == pytest.approx(expected)
    no_tops = {"content": [{"token": "a", "logprob": -0.2, "top_logprobs": []},
                           {"token": "b", "logprob": -0.4}]}
    assert certainty({"logprobs": no_tops}) == (pytest.approx(-0.3), "mean_logprob")
    g = group_of(["flat", "peaked"], rows=[{"logprobs": flat}, {"logprobs": peaked}])
    s = select(g, "self_certainty")
    assert s.chosen is g.candidates[1] and s.certainty == pytest.approx(expected)


def test_self_certainty_from_sampled_logprobs_and_its_abstentions() -> None:
    assert certainty({"logprobs": [-0.5, -1.5]}) == (pytest.approx(-1.0), "mean_logprob")
    assert certainty({})[0] is None
    assert "mixes" in certainty({"logprobs": [[-0.1, -2.0], -0.3]})[1]
    assert certainty({"logprobs": [-math.inf]})[0] is None
    g = group_of(["a", "b"], rows=[{}, {"text": "no logprobs"}])
    s = select(g, "self_certainty")
    assert s.chosen is None and "no per-token log-probabilities" in (s.reason or "")
    g = group_of(["a", "b"], rows=[{"logprobs": [-0.1]}, {"logprobs": [[-0.1, -3.0]]}])
    assert "different kinds" in (select(g, "self_certainty").reason or "")


def test_rm_score_reward_reads_the_rows(shared_data: Path) -> None:
    rows = qwen_rows(shared_data, problems=1)
    with Runtime(workers=1) as rt:
        (g,) = score_groups(group_candidates(candidates(rows)), rm_score(), runtime=rt)
    assert [c.value for c in g.candidates] == [r["rm_score"] for r in rows]
