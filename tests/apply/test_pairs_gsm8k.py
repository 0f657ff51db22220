"""Pairs and best-of-N from GSM8K's real solutions scored by math_answer: the worked solution is
chosen over a wrong final answer, and responses a policy could try (empty, a copy of another
problem's solution, a spray of answers) never become chosen."""

from __future__ import annotations

import json
from pathlib import Path

from rewardlab import Runtime, build
from rewardlab.apply.bon import best_of_n
from rewardlab.apply.groups import group_candidates, score_groups
from rewardlab.apply.pairs import build_pairs, to_trl
from rewardlab.apply.rejection import rejection_sample
from tests.apply.rollouts import candidates


def _rows(shared_data: Path, n: int = 40) -> list[dict]:
    qs = [json.loads(line) for line in (shared_data / "verifiable" / "gsm8k_test.jsonl").open()][:n]
    rows = []
    for i, q in enumerate(qs):
        body, gold = q["answer"].rsplit("####", 1)
        wrong = str(int(gold.strip().replace(",", "")) + 1)
        # another problem's solution, with another final answer (two GSM8K problems can share one)
        other = next(o["answer"] for o in qs[i + 1:] + qs[:i] if o["answer"].rsplit("####", 1)[1] != gold)
        for kind, resp in (("empty", ""), ("other", other), ("wrong", f"{body}#### {wrong}"),
                           ("spray", " ".join(rf"\boxed{{{k}}}" for k in range(int(wrong) - 3, int(wrong) + 3))),
                           ("gold", q["answer"])):
            rows.append({"question": q["question"], "response": resp, "answer": q["answer"], "kind": kind})
    return rows


def test_gold_solution_is_chosen_and_degenerate_responses_are_not(shared_data: Path) -> None:
    rows = _rows(shared_data)
    with Runtime(workers=1) as rt:
        groups = score_groups(group_candidates(candidates(rows)), build("math_answer", no_answer="abstain"),
                              runtime=rt)
    assert len(groups) == 40
    for sel in best_of_n(groups, "reward"):
        assert sel.chosen is not None and sel.chosen.row["kind"] == "gold"
    for k in rejection_sample(groups, top_k=5, threshold=1.0):
        assert [c.row["kind"] for c in k.kept] == ["gold"]
    out = build_pairs(groups, "best_vs_worst")
    assert len(out.pairs) == 40
    for p in out.pairs:
        assert p.chosen.row["kind"] == "gold" and p.margin == 1.0
        # the empty response abstains: it is never the rejected side either (no score, no pair)
        assert p.rejected.row["kind"] == "other"  # the first read among the zero-scored
        row = to_trl(p)
        assert row["prompt"] == p.chosen.row["question"] and row["chosen"].endswith(p.chosen.row["answer"][-8:])
    rnd = build_pairs(groups, "best_vs_random", seed=1)
    assert {p.rejected.row["kind"] for p in rnd.pairs} <= {"other", "wrong", "spray"}
    assert len({p.rejected.row["kind"] for p in rnd.pairs}) > 1


def test_majority_vote_is_not_won_by_a_spray(shared_data: Path) -> None:
    # two sprays holding the gold number among others, one gold, one wrong: the gold answer wins 1 vote
    # to 1 only through the tie rule, never by counting each sprayed box
    qs = [json.loads(line) for line in (shared_data / "verifiable" / "gsm8k_test.jsonl").open()][:30]
    rows = []
    for q in qs:
        gold = q["answer"].rsplit("####", 1)[1].strip().replace(",", "")
        spray = " ".join(rf"\boxed{{{int(gold) + k}}}" for k in (-1, 0, 1))
        for resp in (spray, spray + r" \boxed{0}", q["answer"], q["answer"]):
            rows.append({"question": q["question"], "response": resp, "answer": q["answer"]})
    groups = group_candidates(candidates(rows))
    for s in best_of_n(groups, "majority"):
        assert s.answer is not None and s.votes[s.answer] == 2
        assert s.chosen is not None and "####" in s.chosen.sample.response_text
