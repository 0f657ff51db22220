"""Composites over real token- and step-level rewards (implicit DPO, SimPO and PRIME rewards of
SmolLM2-135M on GSM8K solutions) keep finer values that add up to the composite's value."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import rewardlab as rl
from rewardlab import Sample
from rewardlab.compose.nodes import Ensemble, Leaf, WeightedSum
from tests.models.test_implicit import gsm8k, needs_models, policy_dir, ref_dir  # noqa: F401 - fixtures


def _with_reference(samples: list[Sample]) -> list[Sample]:
    """The samples with their final answer ("The answer is N") as the reference."""
    return [s.model_copy(update={"reference": s.response_text.rsplit("The answer is ", 1)[1].strip()})
            for s in samples]


@pytest.mark.slow
@needs_models
def test_token_and_step_rewards_combine_with_an_outcome_reward(policy_dir: Path, ref_dir: Path,  # noqa: F811
                                                               gsm8k: list[Sample]) -> None:  # noqa: F811
    from rewardlab.models.implicit import implicit_dpo, implicit_prm, simpo_likelihood
    from rewardlab.rewards.math import math_answer

    samples = _with_reference(gsm8k)
    dpo = Leaf(implicit_dpo(policy=str(policy_dir), ref=str(ref_dir), device="cpu"), label="dpo")
    prm = Leaf(implicit_prm(policy=str(policy_dir), ref=str(ref_dir), aggregate="sum", device="cpu"), label="prm")
    simpo = Leaf(simpo_likelihood(policy=str(policy_dir), device="cpu"), label="simpo")
    correct = Leaf(math_answer(), label="correct", weight=0.5)
    with rl.Runtime() as rt:
        alone = {leaf.label: rl.score(samples, leaf, runtime=rt) for leaf in (dpo, prm, simpo, correct)}
        summed = rl.score(samples, WeightedSum([dpo, prm, correct]), runtime=rt)
        mean = rl.score(samples, Ensemble([dpo, simpo]), runtime=rt)
    assert [s.value for s in alone["correct"]] == [1.0] * len(samples)
    for i, s in enumerate(summed):
        d, p = alone["dpo"][i], alone["prm"][i]
        assert s.ok and d.tokens is not None and p.tokens is not None and p.steps is not None
        assert s.tokens is not None and s.tokens.offsets == d.tokens.offsets == p.tokens.offsets
        # dpo's and prm's token values add up; the outcome reward lands on the last token
        both = [a + b for a, b in zip(d.tokens.values, p.tokens.values, strict=True)]
        assert s.tokens.values == pytest.approx([*both[:-1], both[-1] + 0.5], abs=1e-12)
        # per step, dpo (no steps) is sequence-level too: its value and the outcome land on the last step
        assert s.steps == pytest.approx([*p.steps[:-1], p.steps[-1] + d.value + 0.5], abs=1e-12)
        assert s.value == pytest.approx(d.value + p.value + 0.5, abs=1e-9)  # type: ignore[operator]
        assert math.fsum(s.tokens.values) == pytest.approx(s.value, abs=1e-6)
        assert math.fsum(s.steps) == pytest.approx(s.value, abs=1e-6)
    for i, s in enumerate(mean):
        d, m = alone["dpo"][i], alone["simpo"][i]
        assert d.tokens is not None and m.tokens is not None and m.tokens.offsets == d.tokens.offsets
        assert s.tokens is not None
        assert s.tokens.values == pytest.approx([(a + b) / 2 for a, b in
                                                 zip(d.tokens.values, m.tokens.values, strict=True)], abs=1e-12)
