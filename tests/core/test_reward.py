"""The reward contract: declaration, injection, factories, fingerprints, the registry."""

from __future__ import annotations

import pytest

import rewardlab as rl
from rewardlab import Sample, Score, Status, reward
from rewardlab.core.registry import UnknownRewardError, registry


@reward(register=False, range=(0, 10))
def length_in_words(response_text: str, reference: str | None, *, scale: float = 1.0) -> float:
    """Words in the response times `scale`."""
    return len(response_text.split()) * scale


def test_injection_and_factory_parameters() -> None:
    r = length_in_words(scale=2.0)
    s = r.score_local([Sample(response="a b c"), Sample(response="")])
    assert [x.value for x in s] == [6.0, 0.0]
    assert r.info.description == "Words in the response times `scale`."


def test_fingerprint_changes_with_parameters_and_version() -> None:
    assert length_in_words().fingerprint == length_in_words(scale=1.0).fingerprint
    assert length_in_words().fingerprint != length_in_words(scale=2.0).fingerprint


def test_unknown_parameter_is_rejected() -> None:
    with pytest.raises(ValueError, match="has no parameter 'scal'"):
        length_in_words(scal=2)


def test_out_of_range_value_is_an_error_not_a_clamp() -> None:
    s = length_in_words(scale=5.0).score_local([Sample(response="a b c")])[0]
    assert s.status is Status.error and "outside the declared range" in s.reason


@reward(register=False)
def returns_odd_things(response_text: str) -> object:
    """Returns what the response names."""
    return {"none": None, "nan": float("nan"), "str": "1", "bool": True}[response_text]


@pytest.mark.parametrize(("text", "status"), [("none", Status.error), ("nan", Status.error),
                                              ("str", Status.error), ("bool", Status.ok)])
def test_return_values_fail_closed(text: str, status: Status) -> None:
    assert returns_odd_things().score_local([Sample(response=text)])[0].status is status


def test_exceptions_become_error_scores() -> None:
    s = returns_odd_things().score_local([Sample(response="missing")])[0]
    assert s.status is Status.error and s.reason.startswith("KeyError")


def test_non_injectable_positional_parameter_is_refused() -> None:
    with pytest.raises(TypeError, match="neither an injectable field"):
        reward(lambda answer: 1.0, register=False)


def test_registry_lookup_and_suggestion() -> None:
    assert registry.get("exact_match").info.name == "exact_match"
    with pytest.raises(UnknownRewardError, match="did you mean 'exact_match'"):
        registry.get("exact_macth")


def test_batched_model_reward_gets_lists() -> None:
    @reward(kind="model", register=False, range=(0, 100))
    def batch_len(samples: list[Sample]) -> list[float]:
        return [float(len(s.response_text)) for s in samples]

    out = rl.score([Sample(response="ab"), Sample(response="abcd")], batch_len())
    assert [s.value for s in out] == [2.0, 4.0]


def test_reward_object_is_callable_on_one_sample_and_on_a_batch() -> None:
    em = registry.get("exact_match")()
    assert em(Sample(response="Paris.", reference="paris")).value == 1.0
    assert [s.value for s in em([Sample(response="x", reference="y")])] == [0.0]
    assert isinstance(em(Sample(response="x")), Score)


def test_to_values_applies_the_chosen_policy() -> None:
    scores = [Score(value=0.5), Score.error("timeout"), Score.abstain("no answer")]
    nan = rl.to_values(scores)
    assert nan[0] == 0.5 and all(v != v for v in nan[1:])
    assert rl.to_values(scores, -1.0) == [0.5, -1.0, -1.0]
    with pytest.raises(rl.RewardUnavailableError, match="sample 1: error: timeout"):
        rl.to_values(scores, "raise")
