"""The position probe (`rewardlab.audit.position.position_probe`): `judge_pairwise` against a scripted
endpoint on preference pairs, a fair judge and one that always prefers the first slot; MT-Bench's
consistency / biased-to-first / biased-to-second and the conservative tie rule."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("openai")

from rewardlab import PreferencePair, Sample, Score  # noqa: E402
from rewardlab.audit.position import position_probe  # noqa: E402
from rewardlab.audit.probe import Verdict, adjust, scorer  # noqa: E402
from rewardlab.models.judge import judge_pairwise  # noqa: E402

from ..models.fake_openai import FakeOpenAI, Reply, completion  # noqa: E402

PAIRS = [PreferencePair(id=str(i), prompt=f"Question {i}?", chosen=f"Good answer {i}.", rejected=f"Poor answer {i}.")
         for i in range(40)]


def shown_first(body: dict[str, Any]) -> str:
    text = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
    return text.split("[Response A]", 1)[1].split("[End of response A]", 1)[0].strip()


def named(results: list, name: str):  # noqa: ANN001, ANN201 - test helper
    return next(r for r in results if r.name == name)


def probe(responder: Any) -> list:  # noqa: ANN401
    with FakeOpenAI(responder) as srv:
        judge = judge_pairwise(base_url=srv.base_url, model="m", against="rejected", verdict="logprobs")
        return adjust(position_probe(PAIRS, scorer(judge), n_resamples=1000))


def test_a_fair_judge_is_consistent_and_unbiased() -> None:
    def fair(index: int, body: dict[str, Any]) -> Reply:
        a_good = shown_first(body).startswith("Good")
        return completion("A" if a_good else "B", top=[{"A": 0.9, "B": 0.1} if a_good else {"A": 0.1, "B": 0.9}])

    res = probe(fair)
    bias = named(res, "position bias: biased-to-first minus biased-to-second")
    assert bias.estimate == 0 and bias.p == 1.0 and bias.verdict is Verdict.underpowered  # 40 pairs: MDE > 5%
    assert named(res, "consistency").estimate == 1.0
    assert named(res, "accuracy under the conservative tie rule").estimate == 1.0
    assert named(res, "first-slot preference minus 0.5").estimate == pytest.approx(0.0)


def test_a_first_slot_judge_is_caught() -> None:
    # slot A wins whatever it shows, on every other pair; the rest judged fairly
    def biased(index: int, body: dict[str, Any]) -> Reply:
        first = shown_first(body)
        number = int(first.rstrip(".").split()[-1])
        if number % 2 == 0:
            return completion("A", top=[{"A": 0.8, "B": 0.2}])
        a_good = first.startswith("Good")
        return completion("A" if a_good else "B", top=[{"A": 0.9, "B": 0.1} if a_good else {"A": 0.1, "B": 0.9}])

    res = probe(biased)
    bias = named(res, "position bias: biased-to-first minus biased-to-second")
    assert bias.estimate == pytest.approx(0.5) and bias.details["biased_to_first"] == 20
    assert bias.verdict is Verdict.effect and bias.low <= 0.5 <= bias.high
    assert named(res, "biased to first").estimate == pytest.approx(0.5)
    assert named(res, "biased to second").estimate == 0.0
    assert named(res, "consistency").estimate == pytest.approx(0.5)
    # conservative rule: the 20 inconsistent pairs are ties: (20 + 20/2) / 40
    assert named(res, "accuracy under the conservative tie rule").estimate == pytest.approx(0.75)
    assert named(res, "first-slot preference minus 0.5").verdict is Verdict.effect


def test_a_reward_without_both_orders_is_not_computed() -> None:
    def pointwise(batch: list[Sample]) -> list[Score]:
        return [Score.of(1.0) for _ in batch]

    res = position_probe(PAIRS[:5], pointwise)
    assert len(res) == 1 and res[0].verdict is Verdict.not_computed and "both orders" in res[0].note
