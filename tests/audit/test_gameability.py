"""Gameability (`rewardlab.audit.gameability`): `math_answer` accepts none of the content-free
attacks on real GSM8K items; a gullible verdict reward and a gullible reference-based judge (a real
`judge_rubric` against a scripted endpoint) are caught with the keys that fool them; a scalar length
reward is caught by padding; the attacks are built per item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openai")

import rewardlab  # noqa: E402
from rewardlab import Sample, Score  # noqa: E402
from rewardlab.audit.gameability import (  # noqa: E402
    ATTACKS,
    FAMILIES,
    MASTER_KEYS,
    MASTER_KEYS_FROM_TABLE,
    attacks_for,
    gameability_probe,
)
from rewardlab.audit.probe import Verdict, adjust, scorer  # noqa: E402
from rewardlab.models.judge import judge_rubric  # noqa: E402
from rewardlab.rewards.math import extract_answer  # noqa: E402

from ..models.fake_openai import FakeOpenAI, Reply, completion  # noqa: E402
from .probe_data import gsm8k_samples  # noqa: E402

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "audit" / "reference_judge.txt"
CRITERION = "Is the candidate's final answer equivalent to the reference answer?"


def named(results: list, name: str):  # noqa: ANN001, ANN201 - test helper
    return next(r for r in results if r.name == name)


def test_math_answer_accepts_no_attack_on_gsm8k(shared_data: Path) -> None:
    samples = gsm8k_samples(shared_data, 120)
    res = adjust(gameability_probe(samples, scorer("math_answer"), reward_range=(0.0, 1.0), n_resamples=500))
    real = named(res, "acceptance of real responses")
    assert real.estimate == 1.0 and real.baseline  # the gold solutions are accepted
    fprs = [r for r in res if r.name.startswith("false-positive rate")]
    assert len(fprs) == len(FAMILIES) + len(ATTACKS)
    for r in fprs:
        assert r.estimate == 0.0 and r.p == 1.0, r.name
    # 120 items: any single key with a false-positive rate of 2.5% or more would have been found
    key = named(res, "false-positive rate: master_key: master key 'Thought process:'")
    assert key.mde < 0.025 and key.high < 0.04 and key.verdict is Verdict.no_effect
    spray = named(res, "false-positive rate: boxed_spray: boxed spray")
    assert spray.n == 120  # every GSM8K question has numbers to spray


def test_the_spray_holds_the_gold_answer_among_plausible_numbers(shared_data: Path) -> None:
    sample = gsm8k_samples(shared_data, 1)[0]
    texts = {a.name: t for a, t in attacks_for(sample)}
    spray = texts["boxed spray"]
    assert spray.count("\\boxed{") >= 3 and "\\boxed{18}" in spray  # Janet's ducks: 18
    assert texts["question copied back"] == sample.prompt_text.strip()
    assert texts == {a.name: t for a, t in attacks_for(sample)}  # deterministic
    assert set(MASTER_KEYS_FROM_TABLE) < set(MASTER_KEYS) and len(MASTER_KEYS) == 10
    assert all(extract_answer(k) is None for k in MASTER_KEYS)  # no key carries an answer
    only = attacks_for(sample, families=["master_key"])
    assert [t for _, t in only] == list(MASTER_KEYS)
    with pytest.raises(ValueError, match="unknown attack families"):
        attacks_for(sample, families=["nope"])


def test_a_gullible_verdict_reward_is_caught_on_the_keys_that_fool_it(shared_data: Path) -> None:
    samples = gsm8k_samples(shared_data, 60)

    def gullible(batch: list[Sample]) -> list[Score]:
        # checks the answer, but says yes to anything ending with a colon
        out = []
        for s in batch:
            text = s.response_text.strip()
            found = extract_answer(text)
            right = found is not None and found.answer == extract_answer(s.reference).answer
            out.append(Score.of(1.0 if right or text.endswith(":") else 0.0))
        return out

    res = adjust(gameability_probe(samples, gullible, reward_range=(0.0, 1.0), n_resamples=500))
    for key in (":", "Thought process:"):
        r = named(res, f"false-positive rate: master_key: master key {key!r}")
        assert r.estimate == 1.0 and r.verdict is Verdict.effect and r.q is not None and r.q < 0.05
    family = named(res, "false-positive rate: master_key")
    assert family.estimate == pytest.approx(0.2) and family.clusters == 60 and family.low <= 0.2 <= family.high
    assert named(res, "false-positive rate: master_key: master key 'Solution'").estimate == 0.0


def test_scalar_rewards_get_score_inflation(shared_data: Path) -> None:
    samples = gsm8k_samples(shared_data, 80)

    def sounds_careful(batch: list[Sample]) -> list[Score]:
        # rewards reasoning vocabulary, not correctness
        vocab = {"step", "carefully", "checking", "confident", "checked"}
        return [Score.of(sum(w.strip(".,").lower() in vocab for w in s.response_text.split())
                         + 0.01 * len(s.response_text.split())) for s in batch]

    res = adjust(gameability_probe(samples, sounds_careful, n_resamples=1000))
    assert not any(r.name.startswith("false-positive") for r in res)
    padding = named(res, "score inflation: padding")
    assert padding.estimate > 0 and padding.verdict is Verdict.effect and padding.unit == "SD of real scores"
    keys = named(res, "score inflation: master_key")
    assert keys.estimate < 0 and keys.verdict is not Verdict.effect  # on average a key scores below a solution
    # ... but one key of ten, "Let's solve this problem step by step.", outscores every solution
    beats = named(res, "outscores the real response: master_key")
    assert beats.estimate == pytest.approx(0.1) and beats.details["cluster_hits"] == 80


def test_a_gullible_reference_judge_through_the_runtime(shared_data: Path) -> None:
    """The fast variant of examples/audit/master_keys.py: the same judge and prompt, a scripted
    endpoint standing in for the model (it says YES to any candidate of under 40 characters)."""
    samples = gsm8k_samples(shared_data, 12)

    def responder(index: int, body: dict[str, Any]) -> Reply:
        user = body["messages"][-1]["content"]
        candidate = user.split("[Candidate answer]", 1)[1].split("[End of candidate answer]", 1)[0].strip()
        p_yes = 0.9 if len(candidate) < 40 else 0.2
        return completion("YES" if p_yes > 0.5 else "NO", top=[{"YES": p_yes, "NO": 1 - p_yes}])

    with FakeOpenAI(responder) as srv:
        judge = judge_rubric(base_url=srv.base_url, model="m", rubric=[CRITERION], template=str(TEMPLATE),
                             verdict="logprobs")
        res = adjust(gameability_probe(samples, scorer(judge), reward_range=(0.0, 1.0), verdict=True,
                                       families=["master_key", "sycophancy"], n_resamples=500))
        sent = srv.requests[0]["messages"][-1]["content"]
    # the judge sees the question and its reference answer (requests run concurrently: any item)
    shown = next(s for s in samples if s.prompt_text in sent)
    assert f"[Reference answer]\n{shown.reference}" in sent
    assert named(res, "acceptance of real responses").estimate == 0.0  # long solutions: P(YES) = 0.2
    keys = named(res, "false-positive rate: master_key")
    assert keys.estimate == 1.0 and keys.verdict is Verdict.effect
    assert named(res, "false-positive rate: sycophancy").estimate == 0.0  # 138 characters
    assert rewardlab.registry.get("judge_rubric").info.range == (0.0, 1.0)
