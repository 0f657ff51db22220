"""Rejection sampling (RAFT): the top-k or top fraction of each group, above a threshold, never a
non-ok score, ties in input order."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardlab import Runtime, Score, build
from rewardlab.apply.groups import group_candidates, score_groups
from rewardlab.apply.rejection import keep_top, rejection_sample
from tests.apply.rollouts import candidates, group_of, qwen_rows, rm_score


def test_raft_on_real_rollouts_keeps_the_best_correct_responses(shared_data: Path) -> None:
    rows = qwen_rows(shared_data, problems=40)
    with Runtime(workers=1) as rt:
        groups = score_groups(group_candidates(candidates(rows)), build("math_answer"), runtime=rt)
    kept = rejection_sample(groups, top_k=2, threshold=1.0)
    for k, g in zip(kept, groups, strict=True):
        n_right = sum(c.value == 1.0 for c in g.candidates)
        assert len(k.kept) == min(2, n_right)
        assert all(c.value == 1.0 for c in k.kept)
        # the verifier agrees with the file's own correctness label on what it keeps
        assert all(c.row["correct"] for c in k.kept)
        if n_right == 0:
            assert k.reason == "no ok score >= threshold 1"
        else:
            assert k.kept == [c for c in g.candidates if c.value == 1.0][:2]  # ties: input order
    assert any(k.reason for k in kept)  # some problems have no right answer among the 8


def test_top_k_by_a_reward_model(shared_data: Path) -> None:
    rows = qwen_rows(shared_data, problems=10)
    with Runtime(workers=1) as rt:
        groups = score_groups(group_candidates(candidates(rows)), rm_score(), runtime=rt)
    for k, g in zip(rejection_sample(groups, top_k=3), groups, strict=True):
        assert [c.value for c in k.kept] == sorted((c.value for c in g.candidates), reverse=True)[:3]


def test_top_fraction_and_lower_is_better() -> None:
    g = group_of(list("abcdefgh"), [0.1, 0.8, 0.3, 0.8, 0.5, 0.2, 0.9, 0.4])
    k = keep_top(g, top_k=None, top_fraction=0.25)
    assert [c.sample.response for c in k.kept] == ["g", "b"]
    k = keep_top(g, top_k=None, top_fraction=0.3)  # ceil(0.3 * 8) = 3; the tie in input order
    assert [c.sample.response for c in k.kept] == ["g", "b", "d"]
    k = keep_top(g, top_k=2, higher=False, threshold=0.25)
    assert [c.sample.response for c in k.kept] == ["a", "f"]


def test_non_ok_is_never_kept_and_empty_groups_say_why() -> None:
    g = group_of(["a", "b", "c"], [Score.error("sandbox crashed"), 0.2, Score.abstain("no reference answer")])
    k = keep_top(g, top_k=3)
    assert [c.sample.response for c in k.kept] == ["b"] and k.ok == 1
    g = group_of(["a", "b"], [Score.error("sandbox crashed"), Score.error("sandbox crashed")])
    k = keep_top(g, top_k=1)
    assert k.kept == [] and k.reason == "no ok score in the group (2 error (sandbox crashed))"


def test_bad_arguments() -> None:
    g = group_of(["a"], [1.0])
    for kw in ({"top_k": 0}, {"top_k": None, "top_fraction": 0.0}, {"top_k": 1, "top_fraction": 0.5},
               {"top_k": 1, "threshold": float("nan")}):
        with pytest.raises(ValueError):
            keep_top(g, **kw)  # type: ignore[arg-type]
