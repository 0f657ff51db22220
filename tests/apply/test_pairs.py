"""Preference pairs for DPO: strategies, the margin, the filters, and TRL's format."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from rewardlab import Message, Runtime, Sample, Score, build
from rewardlab.apply.groups import Candidate, Group, group_candidates, score_groups
from rewardlab.apply.pairs import Filters, build_pairs, to_trl
from tests.apply.rollouts import candidates, group_of, qwen_rows, rm_score


@pytest.fixture(scope="module")
def rm_groups(shared_data: Path) -> list[Group]:
    """Qwen2.5-Math best-of-8 on 100 MATH problems, scored by the reward model (BT logits)."""
    with Runtime(workers=1) as rt:
        return score_groups(group_candidates(candidates(qwen_rows(shared_data))), rm_score(), runtime=rt)


def _distinct_values(g: Group) -> list[float]:
    """The scores of a group's distinct response texts, each text's first read."""
    first: dict[str, float] = {}
    for c in g.candidates:
        first.setdefault(c.sample.response_text, c.value)
    return list(first.values())


def test_the_real_file_repeats_texts_with_different_scores(rm_groups: list[Group]) -> None:
    # why pairs count a text once: the reward model scored some identical responses differently
    seen: dict[str, set[float]] = {}
    for g in rm_groups:
        for c in g.candidates:
            seen.setdefault(c.sample.response_text, set()).add(c.value)
    assert any(len(v) > 1 for v in seen.values())


def test_best_vs_worst_on_real_rollouts(rm_groups: list[Group]) -> None:
    out = build_pairs(rm_groups, "best_vs_worst")
    assert len(out.pairs) + out.dropped["fewer than 2 distinct ok responses"] == 100
    assert len(out.pairs) >= 95 and set(out.dropped) <= {"fewer than 2 distinct ok responses"}
    by_key = {g.key: g for g in rm_groups}
    for p in out.pairs:
        values = _distinct_values(by_key[p.group])
        assert p.chosen.value == max(values) and p.rejected.value == min(values)
        assert p.margin == pytest.approx(max(values) - min(values)) and p.margin > 0


def test_best_vs_second_and_best_vs_random(rm_groups: list[Group]) -> None:
    second = build_pairs(rm_groups, "best_vs_second")
    by_key = {g.key: g for g in rm_groups}
    for p in second.pairs:
        assert p.rejected.value == sorted(_distinct_values(by_key[p.group]), reverse=True)[1]
    a = build_pairs(rm_groups, "best_vs_random", seed=7)
    b = build_pairs(rm_groups, "best_vs_random", seed=7)
    c = build_pairs(rm_groups, "best_vs_random", seed=8)
    assert [p.rejected.index for p in a.pairs] == [p.rejected.index for p in b.pairs]  # reproducible
    assert [p.rejected.index for p in a.pairs] != [p.rejected.index for p in c.pairs]
    # a group's draw does not depend on the other groups
    alone = build_pairs(rm_groups[5:6], "best_vs_random", seed=7)
    assert alone.pairs[0].rejected.index == next(p for p in a.pairs if p.group == rm_groups[5].key).rejected.index
    assert all(p.rejected is not p.chosen and p.margin > 0 for p in a.pairs)


def test_equal_rewards_give_no_pair(shared_data: Path) -> None:
    # a 0/1 verifier: every problem the policy always (or never) solves has no preference
    rows = qwen_rows(shared_data, problems=30)
    with Runtime(workers=1) as rt:
        groups = score_groups(group_candidates(candidates(rows)), build("math_answer"), runtime=rt)
    out = build_pairs(groups, "best_vs_worst")
    mixed = [g for g in groups if len({c.value for c in g.candidates}) > 1]
    assert len(out.pairs) == len(mixed) < len(groups)
    assert out.dropped["equal rewards"] == len(groups) - len(mixed)
    for p in out.pairs:
        assert (p.chosen.value, p.rejected.value, p.margin) == (1.0, 0.0, 1.0)
        assert p.chosen.row["correct"] and not p.rejected.row["correct"]


def test_margin_filters(rm_groups: list[Group]) -> None:
    all_pairs = build_pairs(rm_groups, "best_vs_second").pairs
    kept = build_pairs(rm_groups, "best_vs_second", Filters(min_margin=1.0))
    assert len(kept.pairs) == sum(p.margin > 1.0 for p in all_pairs)
    assert kept.dropped["margin below min_margin"] == len(all_pairs) - len(kept.pairs)
    std_kept = build_pairs(rm_groups, "best_vs_second", Filters(min_margin_std=1.0))
    by_key = {g.key: g for g in rm_groups}
    expected = sum(p.margin > statistics.pstdev(_distinct_values(by_key[p.group])) for p in all_pairs)
    assert len(std_kept.pairs) == expected and 0 < expected < len(all_pairs)
    bt = build_pairs(rm_groups, "best_vs_worst", Filters(min_confidence=0.9))
    assert bt.pairs and all(1 / (1 + math.exp(-p.margin)) >= 0.9 for p in bt.pairs)
    worst = build_pairs(rm_groups, "best_vs_worst").pairs
    assert bt.dropped["Bradley-Terry confidence below min_confidence"] == len(worst) - len(bt.pairs) > 0


def test_length_matched_pairs(rm_groups: list[Group]) -> None:
    out = build_pairs(rm_groups, "best_vs_worst", Filters(max_length_diff=200))
    assert out.pairs and out.dropped["lengths differ by more than max_length_diff"] > 0
    for p in out.pairs:
        assert abs(len(p.chosen.sample.response_text) - len(p.rejected.sample.response_text)) <= 200


def test_ensemble_agreement(shared_data: Path) -> None:
    rows = qwen_rows(shared_data, problems=60)
    with Runtime(workers=1) as rt:
        groups = score_groups(group_candidates(candidates(rows)), [rm_score(), build("math_answer")], runtime=rt)
    out = build_pairs(groups, "best_vs_worst", Filters(ensemble_agree=True))
    assert out.pairs and out.dropped["not every ensemble member prefers chosen"] > 0
    for p in out.pairs:
        assert all(w > lo for w, lo in zip(p.chosen.members, p.rejected.members, strict=True))
        assert p.chosen.row["correct"] and not p.rejected.row["correct"]
    single = [Group("p", [Candidate(0, Sample(response="a"), Score.of(1.0)), Candidate(1, Sample(response="b"),
                                                                                  Score.of(0.0))])]
    with pytest.raises(ValueError, match="ensemble agreement needs"):
        build_pairs(single, filters=Filters(ensemble_agree=True))


def test_duplicates_and_copies_are_dropped() -> None:
    # the same group twice (the same prompt read twice): the second pair repeats the first
    g = group_of(["right", "wrong", "wrong"], [1.0, 0.0, 0.0])
    out = build_pairs([g, group_of(["right", "wrong"], [1.0, 0.0])])
    assert len(out.pairs) == 1 and out.dropped["duplicate pair"] == 1
    assert len(build_pairs([g, group_of(["right", "wrong"], [1.0, 0.0])], filters=Filters(dedupe=False)).pairs) == 2
    # a response copied verbatim counts once: best-vs-second never pairs a text with itself
    copies = group_of(["same", "same", "other"], [0.9, 0.9, 0.1])
    p = build_pairs([copies], "best_vs_second").pairs[0]
    assert (p.chosen.sample.response, p.rejected.sample.response) == ("same", "other")


def test_degenerate_responses_do_not_become_chosen() -> None:
    # empty, spam and box-spray responses the verifier cannot score (or scores as errors) never enter
    g = group_of(["", "7 " * 300, r"\boxed{1}\boxed{2}\boxed{7}", r"\boxed{7}", r"\boxed{8}"],
                 [Score.error("judge: empty output"), Score.error("judge: unparseable"), Score.abstain("no answer"),
                  0.8, 0.3])
    p = build_pairs([g]).pairs[0]
    assert (p.chosen.sample.response, p.rejected.sample.response) == (r"\boxed{7}", r"\boxed{8}")
    alone = build_pairs([group_of(["", "x"], [Score.error("e"), 1.0])])
    assert not alone.pairs and alone.dropped["fewer than 2 distinct ok responses"] == 1
    none = build_pairs([group_of(["", "x"], [Score.error("e"), Score.error("e")])])
    assert none.dropped["no ok score in the group"] == 1


def test_ties_and_lower_is_better() -> None:
    g = group_of(["a", "b", "c", "d"], [0.9, 0.9, 0.1, 0.1])
    p = build_pairs([g]).pairs[0]
    assert (p.chosen.sample.response, p.rejected.sample.response) == ("a", "c")  # first read among equals
    p = build_pairs([g], higher=False).pairs[0]
    assert (p.chosen.sample.response, p.rejected.sample.response, p.margin) == ("c", "a", pytest.approx(0.8))


def test_trl_text_format(rm_groups: list[Group]) -> None:
    from trl.data_utils import is_conversational

    row = to_trl(build_pairs(rm_groups[:1]).pairs[0])
    assert isinstance(row["prompt"], str) and isinstance(row["chosen"], str) and isinstance(row["rejected"], str)
    assert row["prompt"] == rm_groups[0].key and row["margin"] > 0
    assert row["score_chosen"] - row["score_rejected"] == pytest.approx(row["margin"])
    assert not is_conversational(row)


def test_trl_conversational_format_from_messages() -> None:
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    prompt = [Message(role="system", content="Be brief."), Message(role="user", content="2+2?")]
    g = Group("k", [Candidate(0, Sample(prompt=prompt, response=[Message(role="assistant", content="4")]),
                              Score.of(1.0)),
                    Candidate(1, Sample(prompt=prompt, response=[Message(role="assistant", content="5")]),
                              Score.of(0.0))])
    row = to_trl(build_pairs([g]).pairs[0])
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "4"}]
    assert row["rejected"] == [{"role": "assistant", "content": "5"}]
    assert is_conversational(row)

    class Template:  # what maybe_apply_chat_template asks of a tokenizer
        def apply_chat_template(self, messages: list, tokenize: bool = False, add_generation_prompt: bool = False,
                                continue_final_message: bool = False, **kw: object) -> str:
            return "".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt
                                                                               else "")

    out = maybe_apply_chat_template(row, Template())  # type: ignore[arg-type]
    assert out["chosen"].endswith("4") and out["rejected"].endswith("5")
