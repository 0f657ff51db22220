"""Family settings declared once and spliced into each reward's keyword parameters
(`rewardlab.core.settings`): the reward lists them flat with their defaults, validates them
through the settings class, and fingerprints and hides what the fields' metadata say."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import pytest

from rewardlab.core.reward import reward
from rewardlab.core.settings import names, pick, secret, splice, unfingerprinted
from rewardlab.core.types import Sample


@dataclass(frozen=True)
class Limits:
    budget: int = 3
    token: str | None = field(default=None, metadata={"fingerprint": False, "secret": True})
    rate: float | None = field(default=None, metadata={"fingerprint": False})

    def __post_init__(self) -> None:
        if not (isinstance(self.budget, int) and self.budget > 0):
            raise ValueError(f"budget must be a positive integer, got {self.budget!r}")


@reward(register=False)
@splice(Limits)
def shorter_than_budget(response_text: str, *, words: bool = True, **settings: Any) -> float:
    """1 if the response has at most `budget` words (or characters), else 0; higher is better."""
    limits = Limits(**settings)
    size = len(response_text.split()) if words else len(response_text)
    return float(size <= limits.budget)


def test_settings_become_keyword_parameters_after_the_rewards_own() -> None:
    params = list(inspect.signature(shorter_than_budget.fn).parameters)
    assert params == ["response_text", "words", "budget", "token", "rate"]
    assert shorter_than_budget.params == {"words": True, "budget": 3, "token": None, "rate": None}
    assert names(Limits) == ("budget", "token", "rate")
    assert unfingerprinted(Limits) == {"token", "rate"} and secret(Limits) == {"token"}


def test_spliced_settings_reach_the_function_and_change_the_fingerprint() -> None:
    two = shorter_than_budget(budget=2)
    s = [Sample(response="one two three"), Sample(response="one two")]
    assert [x.value for x in two.score_local(s)] == [0.0, 1.0]
    assert [x.value for x in shorter_than_budget().score_local(s)] == [1.0, 1.0]
    assert two.fingerprint != shorter_than_budget().fingerprint
    with pytest.raises(ValueError, match="no parameter 'budgte'"):
        shorter_than_budget(budgte=2)


def test_the_settings_validator_runs_on_every_call() -> None:
    [bad] = shorter_than_budget(budget=0).score_local([Sample(response="x")])
    assert bad.status.value == "error" and "budget must be a positive integer" in (bad.reason or "")
    with pytest.raises(ValueError, match="budget"):
        pick(Limits, {"budget": -1, "words": False})
    assert pick(Limits, {"budget": 5, "words": False}) == Limits(budget=5)


def test_splice_refuses_what_it_cannot_splice() -> None:
    @dataclass(frozen=True)
    class NoDefault:
        needed: int

    with pytest.raises(TypeError, match="plain default"):
        splice(NoDefault)

    def no_kwargs(response_text: str, *, words: bool = True) -> float:
        return 0.0

    def clash(response_text: str, *, budget: int = 1, **settings: Any) -> float:
        return 0.0

    with pytest.raises(TypeError, match="must take"):
        splice(Limits)(no_kwargs)
    with pytest.raises(TypeError, match="redeclares"):
        splice(Limits)(clash)
