"""The data model: invariants and JSON round trips."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rewardlab import Cost, PreferencePair, PreferenceSet, Sample, Score, Status, TokenScores


def test_sample_round_trip_with_messages_and_trajectory() -> None:
    s = Sample(
        id="a",
        prompt=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}],
        response=[{"role": "assistant", "content": [{"type": "text", "text": "4"}]}],
        reference={"answer": 4},
        metadata={"data_source": "gsm8k"},
        trajectory=[{"role": "assistant", "tool_calls": [{"name": "calc"}]},
                    {"role": "tool", "tool_result": {"value": 4}}],
    )
    again = Sample.model_validate_json(s.model_dump_json())
    assert again == s
    assert again.response_text == "4"
    assert again.prompt_text == "system: be brief\nuser: 2+2?"


def test_score_invariants() -> None:
    with pytest.raises(ValidationError):
        Score(value=None)  # ok needs a value
    with pytest.raises(ValidationError):
        Score(value=float("nan"))
    with pytest.raises(ValidationError):
        Score(status=Status.error, reason="x", value=1.0)  # non-ok carries no value
    with pytest.raises(ValidationError):
        Score(status=Status.abstain)  # needs a reason
    s = Score(value=0.5, components={"a": 1.0, "b": None}, steps=[0.1, 0.2],
              tokens=TokenScores(tokenizer="t", values=[1.0], offsets=[(0, 2)]),
              cost=Cost(seconds=0.1, input_tokens=3))
    assert Score.model_validate_json(s.model_dump_json()) == s


def test_preference_set_expands_to_pairs() -> None:
    ps = PreferenceSet(id="p", prompt="q", chosen="good", rejected=["bad1", "bad2"], subset="math")
    pairs = ps.pairs()
    assert [p.rejected for p in pairs] == ["bad1", "bad2"]
    assert all(isinstance(p, PreferencePair) and p.chosen == "good" for p in pairs)
    assert PreferencePair.model_validate_json(pairs[0].model_dump_json()) == pairs[0]
