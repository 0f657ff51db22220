"""Position consistency of pairwise judges (`rewardlab.audit.position`): the report over scores
made by `judge_pairwise` against a scripted endpoint, and its edge cases."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("openai")

import rewardlab  # noqa: E402
from rewardlab import Sample, Score  # noqa: E402
from rewardlab.audit.position import PositionReport, position_report  # noqa: E402
from rewardlab.models.judge import judge_pairwise  # noqa: E402

from ..models.fake_openai import FakeOpenAI, Reply, completion  # noqa: E402

SAMPLES = [
    Sample(prompt="Capital of France?", response="Paris.", metadata={"alt": "Lyon."}),
    Sample(prompt="Capital of Peru?", response="Quito.", metadata={"alt": "Lima."}),
    Sample(prompt="Capital of Japan?", response="Tokyo.", metadata={"alt": "Osaka."}),
    Sample(prompt="Capital of Italy?", response="Milan.", metadata={"alt": "Rome."}),
]
RIGHT = {"Paris.", "Lima.", "Tokyo.", "Rome."}


def shown_first(body: dict[str, Any]) -> str:
    text = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
    return text.split("[Response A]", 1)[1].split("[End of response A]", 1)[0].strip()


def judged(responder: Any) -> list[Score]:
    with FakeOpenAI(responder) as srv:
        return rewardlab.score(SAMPLES, judge_pairwise(base_url=srv.base_url, model="m",
                                                       against="alt", verdict="logprobs"))


def test_a_judge_that_follows_content_is_consistent_and_unbiased() -> None:
    def fair(index: int, body: dict[str, Any]) -> Reply:
        a_right = shown_first(body) in RIGHT
        return completion("A" if a_right else "B", top=[{"A": 0.9, "B": 0.1} if a_right
                                                          else {"A": 0.1, "B": 0.9}])

    scores = judged(fair)
    assert [s.value for s in scores] == pytest.approx([0.9, 0.1, 0.9, 0.1])
    report = position_report(scores)
    assert report == PositionReport(compared=4, inconsistent=0, rate=0.0,
                                    first_slot_preference=pytest.approx(0.5))


def test_a_judge_that_follows_the_slot_is_caught() -> None:
    # P(B) = 0.7 whatever is shown: biased to the second slot, so every sample disagrees
    # with itself across the two orders
    scores = judged(lambda i, b: completion("B", top=[{"A": 0.3, "B": 0.7}]))
    report = position_report(scores)
    assert report.compared == 4 and report.inconsistent == 4 and report.rate == 1.0
    assert report.first_slot_preference == pytest.approx(0.3)


def test_half_biased_judge_gives_a_partial_rate() -> None:
    # right on France and Japan in both orders; always slot A on Peru and Italy
    def mixed(index: int, body: dict[str, Any]) -> Reply:
        first = shown_first(body)
        if first in {"Paris.", "Lyon.", "Tokyo.", "Osaka."}:
            a_right = first in RIGHT
            return completion("A", top=[{"A": 0.8, "B": 0.2} if a_right else {"A": 0.2, "B": 0.8}])
        return completion("A", top=[{"A": 0.8, "B": 0.2}])

    report = position_report(judged(mixed))
    assert report.compared == 4 and report.inconsistent == 2 and report.rate == 0.5
    # 4 fair orders average 0.5; 4 always-first orders prefer slot A at 0.8
    assert report.first_slot_preference == pytest.approx((0.5 * 4 + 0.8 * 4) / 8)


def test_scores_without_both_orders_or_not_ok_are_not_compared() -> None:
    one_order = Score.of(0.8, details={"orders": [{"response_slot": "A", "first_slot_preference": 0.8}]})
    failed = Score.error("judge unreachable", details={"orders": [{"response_slot": "A", "error": "x"}]})
    unrelated = Score.of(1.0)
    report = position_report([one_order, failed, unrelated])
    assert report.compared == 0 and report.inconsistent == 0 and report.rate is None
    assert report.first_slot_preference == pytest.approx(0.8)  # the one order seen still counts
    empty = position_report([])
    assert empty.rate is None and empty.first_slot_preference is None
