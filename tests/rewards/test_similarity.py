"""Reference similarity on real text: BLEU and chrF against sacrebleu, ROUGE-L against a
plain dynamic-programming LCS."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
import sacrebleu

import rewardlab
from rewardlab.core.registry import registry
from rewardlab.core.types import Sample, Status
from rewardlab.rewards.similarity import (
    bleu,
    chrf,
    lcs_length,
    rouge_l,
    rouge_l_scores,
    rouge_tokens,
)


def lcs_dp(a: list[str], b: list[str]) -> int:
    """Textbook O(|a| |b|) LCS, the reference for the bit-parallel one."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@pytest.fixture(scope="module")
def mt_bench_refs(shared_data: Path) -> list[str]:
    """GPT-4 reference answers of MT-Bench (first turn), those of 20 words or more."""
    path = shared_data / "judge" / "mt_bench" / "reference_answer_gpt-4.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    texts = [r["choices"][0]["turns"][0] for r in rows]
    return [t for t in texts if len(t.split()) >= 20]


@pytest.fixture(scope="module")
def arena_pairs(shared_data: Path) -> list[tuple[str, str]]:
    """(gpt-4-0314 answer, gpt-3.5-turbo-0125 answer) to the same Arena-Hard prompt."""
    base = shared_data / "judge" / "arena_hard_v0.1"

    def answers(name: str) -> dict[str, str]:
        out = {}
        for line in (base / name).read_text().splitlines():
            row = json.loads(line)
            out[row["uid"]] = row["messages"][-1]["content"]["answer"]
        return out

    a = answers("model_answer_gpt-4-0314.jsonl")
    b = answers("model_answer_gpt-3.5-turbo-0125.jsonl")
    return [(a[k], b[k]) for k in sorted(a) if k in b][:60]


REWARDS = [bleu(), chrf(), rouge_l(), chrf(word_order=2), bleu(tokenize="intl", lowercase=True)]


# -- identity and difference on real text ------------------------------------------------------


@pytest.mark.parametrize("r", REWARDS, ids=repr)
def test_text_against_itself_is_one_and_others_lower(r, mt_bench_refs):
    texts = mt_bench_refs
    assert len(texts) >= 20
    same = r.score_local([Sample(response=t, reference=t) for t in texts])
    assert all(s.ok and s.value == pytest.approx(1.0) for s in same)
    shifted = texts[1:] + texts[:1]
    other = r.score_local([Sample(response=t, reference=u)
                           for t, u in zip(texts, shifted, strict=True)])
    assert all(s.ok and 0.0 <= s.value < 0.6 for s in other)


@pytest.mark.parametrize("r", REWARDS[:3], ids=repr)
def test_answers_to_the_same_prompt_are_closer(r, arena_pairs):
    """Two models' answers to one prompt overlap more than answers to different prompts."""
    same = [Sample(response=a, reference=b) for a, b in arena_pairs]
    refs = [b for _, b in arena_pairs]
    cross = [Sample(response=a, reference=b)
             for (a, _), b in zip(arena_pairs, refs[1:] + refs[:1], strict=True)]
    mean_same = statistics.fmean(s.value for s in r.score_local(same))
    mean_cross = statistics.fmean(s.value for s in r.score_local(cross))
    assert mean_same > mean_cross + 0.02


# -- against sacrebleu itself ------------------------------------------------------------------


def test_bleu_matches_sacrebleu(arena_pairs):
    for hyp, ref in arena_pairs[:30]:
        ours = bleu().score_local([Sample(response=hyp, reference=ref)])[0]
        direct = sacrebleu.sentence_bleu(hyp, [ref])
        assert ours.value == pytest.approx(direct.score / 100, abs=1e-12)
        assert ours.details["ref_len"] == direct.ref_len
        if min(direct.counts) > 0:
            # every n-gram order matched: sentence BLEU is the one-segment corpus BLEU
            corpus = sacrebleu.corpus_bleu([hyp], [[ref]])
            assert ours.value == pytest.approx(corpus.score / 100, abs=1e-12)


def test_bleu_options_reach_sacrebleu(arena_pairs):
    hyp, ref = arena_pairs[0]
    ours = bleu(smooth_method="add-k", tokenize="char", lowercase=True)
    got = ours.score_local([Sample(response=hyp, reference=ref)])[0].value
    direct = sacrebleu.sentence_bleu(hyp, [ref], smooth_method="add-k", tokenize="char",
                                     lowercase=True)
    assert got == pytest.approx(direct.score / 100, abs=1e-12)


def test_chrf_matches_sacrebleu(arena_pairs):
    for hyp, ref in arena_pairs[:30]:
        for word_order in (0, 2):
            got = chrf(word_order=word_order).score_local(
                [Sample(response=hyp, reference=ref)])[0].value
            direct = sacrebleu.sentence_chrf(hyp, [ref], word_order=word_order).score / 100
            assert got == pytest.approx(direct, abs=1e-12)


def test_multiple_references(arena_pairs, mt_bench_refs):
    (hyp, ref), (_, other) = arena_pairs[0], arena_pairs[1]
    for r in (bleu(), chrf(), rouge_l()):
        # the hypothesis among the references: a perfect match
        both = r.score_local([Sample(response=hyp, reference=[other, hyp])])[0]
        assert both.value == pytest.approx(1.0)
    # BLEU pools the references as sacrebleu does
    got = bleu().score_local([Sample(response=hyp, reference=[ref, other])])[0].value
    assert got == pytest.approx(sacrebleu.sentence_bleu(hyp, [ref, other]).score / 100)
    # chrF and ROUGE-L take the best reference
    for r in (chrf(), rouge_l()):
        single = [r.score_local([Sample(response=hyp, reference=x)])[0].value
                  for x in (ref, other)]
        multi = r.score_local([Sample(response=hyp, reference=[ref, other])])[0]
        assert multi.value == pytest.approx(max(single))
    best = rouge_l().score_local([Sample(response=hyp, reference=[other, ref])])[0]
    assert best.details["best"] == 1


# -- ROUGE-L -----------------------------------------------------------------------------------


def test_rouge_tokens():
    assert rouge_tokens("The cat's __init__ costs $3.50 -- déjà vu!") == [
        "the", "cat", "s", "init", "costs", "3", "50", "déjà", "vu"]
    assert rouge_tokens("ABC def", lowercase=False) == ["ABC", "def"]


def test_lcs_bit_parallel_equals_dynamic_programming(mt_bench_refs):
    rng = random.Random(7)
    for _ in range(500):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        assert lcs_length(a, b) == lcs_dp(a, b)
    for t, u in zip(mt_bench_refs[:8], mt_bench_refs[1:9], strict=True):
        a, b = rouge_tokens(t), rouge_tokens(u)
        assert lcs_length(a, b) == lcs_dp(a, b) == lcs_length(b, a)


def test_rouge_l_by_hand():
    # hyp: the cat sat on the mat (6); ref: the cat is on the mat (6); LCS: the cat on the mat
    p, r, f = rouge_l_scores(rouge_tokens("The cat sat on the mat."),
                             rouge_tokens("the cat is on the mat"))
    assert (p, r, f) == pytest.approx((5 / 6, 5 / 6, 5 / 6))
    # hyp 3 tokens, ref 6, LCS 3: P = 1, R = 1/2, F1 = 2/3
    p, r, f = rouge_l_scores(["on", "the", "mat"], rouge_tokens("the cat is on the mat"))
    assert (p, r, f) == pytest.approx((1.0, 0.5, 2 / 3))
    sc = rouge_l().score_local([Sample(response="<think>the cat</think>on the mat",
                                       reference="the cat is on the mat")])[0]
    assert sc.value == pytest.approx(2 / 3)


# -- references, failures, registration --------------------------------------------------------


@pytest.mark.parametrize("r", REWARDS[:3], ids=repr)
def test_reference_handling(r):
    scores = r.score_local([
        Sample(response="anything"),
        Sample(response="anything", reference="   "),
        Sample(response="anything", reference=[]),
        Sample(response="anything", reference={"answer": "x"}),
        Sample(response="anything", reference=["fine", 3]),
        Sample(response="", reference="some reference text"),
    ])
    assert [s.status for s in scores[:5]] == [Status.abstain, Status.abstain, Status.abstain,
                                              Status.error, Status.error]
    assert scores[5].ok and scores[5].value == 0.0


def test_similarity_rewards_are_registered_with_meaning():
    for name in ("bleu", "chrf", "rouge_l"):
        info = registry.get(name).info
        assert info.range == (0.0, 1.0) and "[0, 1]" in info.description


def test_similarity_ensemble_spec(arena_pairs):
    spec = """
reward:
  ensemble:
    - bleu
    - chrf
    - {reward: rouge_l, label: rougeL}
  reduce: mean
"""
    samples = [Sample(response=a, reference=b) for a, b in arena_pairs[:10]]
    scores = rewardlab.score(samples, spec)
    for s in scores:
        parts = [s.components["bleu"], s.components["chrf"], s.components["rougeL"]]
        assert s.value == pytest.approx(statistics.fmean(parts))
        assert s.components["std"] == pytest.approx(statistics.pstdev(parts))
