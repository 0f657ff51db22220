"""Length rewards: DAPO overlong penalty and cosine length scaling, at their boundary points."""

from __future__ import annotations

import math

import pytest

import rewardlab
from rewardlab.compose.spec import SpecError
from rewardlab.core.registry import registry
from rewardlab.core.types import Sample, Status
from rewardlab.rewards.length import (
    cosine_length,
    cosine_value,
    measure,
    overlong_penalty,
    overlong_value,
)


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


# -- DAPO ------------------------------------------------------------------------------------

# max_length 100, cache 20: free up to 80, then -(L - 80) / 20, -1 past 100 (worked by hand)
@pytest.mark.parametrize(("length", "expected"), [
    (0, 0.0), (79, 0.0), (80, 0.0), (81, -0.05), (85, -0.25), (90, -0.5), (99, -0.95),
    (100, -1.0), (101, -1.0), (10_000, -1.0),
])
def test_overlong_value_boundaries(length, expected):
    assert overlong_value(length, 100, 20) == pytest.approx(expected, abs=1e-12)


def test_overlong_value_paper_setting():
    # DAPO: L_max = 20480, L_cache = 4096, so the penalty starts after 16384 tokens
    assert overlong_value(16384, 20480, 4096) == 0.0
    assert overlong_value(16384 + 1024, 20480, 4096) == -0.25
    assert overlong_value(20480, 20480, 4096) == -1.0
    assert overlong_value(20481, 20480, 4096) == -1.0


def test_overlong_value_cache_equal_to_max():
    assert overlong_value(0, 10, 10) == 0.0
    assert overlong_value(5, 10, 10) == -0.5


@pytest.mark.parametrize(("max_length", "cache"), [(100, 0), (100, 101), (100, -5)])
def test_overlong_value_rejects_bad_windows(max_length, cache):
    with pytest.raises(ValueError):
        overlong_value(10, max_length, cache)


def test_overlong_penalty_reward_in_words_and_chars():
    r = overlong_penalty(max_length=100, cache_length=20, unit="words")
    scores = r.score_local([Sample(response=words(n)) for n in (80, 90, 120)])
    assert [s.value for s in scores] == [0.0, -0.5, -1.0]
    assert scores[1].details == {"length": 90, "unit": "words"}
    chars = overlong_penalty(max_length=10, cache_length=4, unit="chars")
    assert chars.score_local([Sample(response="abcdefgh")])[0].value == pytest.approx(-0.5)


def test_overlong_penalty_uses_the_trainers_length():
    r = overlong_penalty(max_length=100, cache_length=20, length_key="num_tokens")
    sc = r.score_local([Sample(response="short", metadata={"num_tokens": 95})])[0]
    assert sc.value == pytest.approx(-0.75) and sc.details["unit"] == "metadata:num_tokens"
    for meta in ({}, {"num_tokens": "many"}, {"num_tokens": -1}, {"num_tokens": 2.5}):
        bad = r.score_local([Sample(response="x", metadata=meta)])[0]
        assert bad.status is Status.error and "num_tokens" in bad.reason


def test_overlong_penalty_bad_config_fails_closed():
    sc = overlong_penalty(max_length=10, cache_length=20).score_local([Sample(response="x")])[0]
    assert sc.status is Status.error and "cache_length" in sc.reason
    sc = overlong_penalty(unit="tokens").score_local([Sample(response="x")])[0]
    assert sc.status is Status.error and "tokenizer" in sc.reason
    sc = overlong_penalty(tokenizer="/no/such/tokenizer").score_local([Sample(response="x")])[0]
    assert sc.status is Status.error


def test_tokens_from_a_local_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    corpus = [
        "The quick brown fox jumps over the lazy dog.",
        "Reinforcement learning rewards must fail closed.",
        "Seventeen plus twenty-five is forty-two.",
    ] * 20
    tok = tokenizers.Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120,
                                                        special_tokens=["[UNK]"]))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    text = "The lazy fox rewards forty-two quick dogs."
    expected = len(tok.encode(text, add_special_tokens=False).ids)
    assert expected != len(text.split())  # sub-word tokens, not words
    for where in (str(path), str(tmp_path)):  # the file, or a directory holding it
        n, unit = measure(text, {}, tokenizer=where)
        assert (n, unit) == (expected, f"tokens:{where}")
    r = overlong_penalty(max_length=expected, cache_length=expected, tokenizer=str(path))
    assert r.score_local([Sample(response=text)])[0].value == -1.0


# -- cosine ----------------------------------------------------------------------------------

PAPER = dict(r0_correct=2.0, rL_correct=1.0, r0_wrong=-10.0, rL_wrong=0.0, exceed=-10.0)


@pytest.mark.parametrize(("length", "correct", "expected"), [
    # r(t) = rL + (r0 - rL) * (1 + cos(pi t / L)) / 2 with L = 1200, worked by hand
    (0, True, 2.0),          # cos 0 = 1: r0
    (400, True, 1.75),       # cos(pi/3) = 1/2: rL + 3/4 (r0 - rL)
    (600, True, 1.5),        # cos(pi/2) = 0: midpoint
    (800, True, 1.25),       # cos(2pi/3) = -1/2: rL + 1/4 (r0 - rL)
    (1200, True, -10.0),     # at the limit: exceed
    (5000, True, -10.0),
    (0, False, -10.0),
    (400, False, -7.5),
    (600, False, -5.0),
    (800, False, -2.5),
    (1200, False, -10.0),
])
def test_cosine_value_at_boundary_points(length, correct, expected):
    got = cosine_value(length, correct, max_length=1200, **PAPER)
    assert got == pytest.approx(expected, abs=1e-12)


def test_cosine_value_shape():
    lengths = range(0, 1000, 50)
    right = [cosine_value(t, True, max_length=1000, **PAPER) for t in lengths]
    wrong = [cosine_value(t, False, max_length=1000, **PAPER) for t in lengths]
    assert right == sorted(right, reverse=True)  # shorter correct answers earn more
    assert wrong == sorted(wrong)                # longer wrong answers lose less
    assert cosine_value(999.999, True, max_length=1000, **PAPER) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        cosine_value(1, True, max_length=0, **PAPER)


def test_cosine_reward_defaults_are_the_paper_scaled_down():
    r = cosine_length(max_length=1200, unit="words")
    samples = [Sample(response=words(n), metadata={"correct": c})
               for n, c in ((0, True), (400, True), (600, False), (1200, False))]
    got = [s.value for s in r.score_local(samples)]
    want = [cosine_value(len(s.response_text.split()), s.metadata["correct"], max_length=1200,
                         **PAPER) / 10 for s in samples]
    assert got == pytest.approx(want, abs=1e-12)
    assert got == pytest.approx([0.2, 0.175, -0.5, -1.0], abs=1e-12)


def test_cosine_correctness_sources():
    r = cosine_length(max_length=100)
    right = "<think>\n17 + 25 = 42\n</think>\n<answer>42</answer>"
    wrong = "<think>\n17 + 25 = 32\n</think>\n<answer>32</answer>"
    s = r.score_local([
        Sample(response=right, reference="42"),
        Sample(response=wrong, reference="42"),
        Sample(response=wrong, reference="42", metadata={"correct": True}),  # metadata wins
        Sample(response=right, reference="42", metadata={"correct": 0}),
        Sample(response=right),
        Sample(response=right, metadata={"correct": "yes"}),
    ])
    assert [x.details["correct"] for x in s[:4]] == [True, False, True, False]
    assert [x.details["correct_from"] for x in s[:4]] == [
        "exact_match", "exact_match", "metadata:correct", "metadata:correct"]
    n = len(right)  # characters: the unit without a tokenizer
    assert s[0].details["unit"] == "chars"
    assert s[0].value == pytest.approx(0.1 + 0.1 * (1 + math.cos(math.pi * n / 100)) / 2)
    assert s[4].status is Status.abstain
    assert s[5].status is Status.error
    off = cosine_length(check_answer=False).score_local([Sample(response=right, reference="42")])
    assert off[0].status is Status.abstain and "check_answer" in off[0].reason


def test_cosine_range_follows_its_parameters():
    paper = cosine_length(**PAPER)
    assert paper.info.range == (-10.0, 2.0)
    sc = paper.score_local([Sample(response="x", metadata={"correct": True})])[0]
    assert sc.ok and 1.0 < sc.value <= 2.0
    with pytest.raises(ValueError, match="max_length must be positive"):
        cosine_length(max_length=0)


def test_length_rewards_are_registered_with_meaning():
    assert registry.get("overlong_penalty").info.range == (-1.0, 0.0)
    assert registry.get("cosine_length").info.range == (-1.0, 0.2)
    assert cosine_length().info.range == (-1.0, 0.2)
    assert registry.get("overlong_penalty").info.description.startswith("DAPO")


# -- in specs ---------------------------------------------------------------------------------

SPEC = """
reward:
  sum:
    - gate:
        when: {reward: think_answer_format, params: {mode: lenient}}
        then: {reward: exact_match}
      label: correct
    - reward: overlong_penalty
      params: {max_length: 32, cache_length: 8, unit: words}
      label: overlong
      weight: 0.5
on_abstain: 0.0
"""


def test_dapo_in_a_weighted_sum_spec():
    think = "<think>\n" + words(20) + "\n</think>\n"  # 22 whitespace-separated words
    samples = [
        Sample(prompt="q", response=think + "<answer>42</answer>", reference="42"),  # 23 words
        Sample(prompt="q", response=think.replace("w19", "w19 " + words(5))
               + "<answer>42</answer>", reference="42"),                               # 28 words
        Sample(prompt="q", response=words(40), reference="42"),                        # 40 words
        Sample(prompt="q", response=think + "<answer>42</answer>"),                    # abstains
    ]
    scores = rewardlab.score(samples, SPEC)
    # free up to 32 - 8 = 24 words. 23: no penalty; 28: -(28 - 24) / 8 = -0.5, times 0.5;
    # 40: past the limit, -1 times 0.5, and no tags so the gate is closed
    assert [s.value for s in scores[:3]] == pytest.approx([1.0, 1.0 - 0.25, -0.5])
    assert scores[1].components["overlong"] == pytest.approx(-0.5)
    # no reference: exact_match abstains (no value), and on_abstain makes it an explicit 0
    assert scores[3].ok and scores[3].value == 0.0
    assert scores[3].components["correct/exact_match"] is None


def test_dapo_cannot_be_a_multiplicative_penalty_factor():
    spec = {"reward": {"penalty": {"base": "exact_match", "factor": "overlong_penalty"}}}
    with pytest.raises(SpecError, match=r"\[0, 1\]"):
        rewardlab.score([Sample(response="x", reference="x")], spec)
