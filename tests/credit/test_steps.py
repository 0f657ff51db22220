"""Step credit: segmentation with offsets, aggregation, PURE min-form, Clip/Delta, PRIME."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewardlab.core.types import Score, TokenScores
from rewardlab.credit import steps
from rewardlab.models.implicit import split_steps

SOLUTION = "Let x be the number.\n\nThen 2x = 8.\n\n\n\nSo x = 4.\n\n"


def _covers(text: str, parts: list[steps.Step]) -> None:
    assert "".join(p.text for p in parts) == text
    assert all(text[p.start:p.end] == p.text for p in parts)
    assert all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))


def test_blank_lines_match_implicit_prm_steps() -> None:
    parts = steps.segment(SOLUTION)
    _covers(SOLUTION, parts)
    assert [p.start for p in parts] == split_steps(SOLUTION)
    assert [p.text.strip() for p in parts] == ["Let x be the number.", "Then 2x = 8.", "So x = 4."]


def test_step_labels_keep_the_preamble_in_the_first_step() -> None:
    text = "We solve it.\nStep 1: add.\n**Step 2.** multiply\n## step 3) done\nno step 4 here: prose"
    parts = steps.segment(text, "step_label")
    _covers(text, parts)
    assert [p.text.split("\n")[0] for p in parts] == ["We solve it.", "**Step 2.** multiply", "## step 3) done"]
    assert parts[0].text == "We solve it.\nStep 1: add.\n"
    # a label at the very start opens the first step
    assert [p.text for p in steps.segment("Step 1: a\nStep 2: b", "step_label")] == ["Step 1: a\n", "Step 2: b"]


def test_custom_pattern_and_degenerate_texts() -> None:
    text = "- first\n- second\n- third"
    parts = steps.segment(text, r"(?m)^- ")
    _covers(text, parts)
    assert len(parts) == 3
    assert len(steps.segment(text, re.compile("NOPE"))) == 1
    assert steps.segment("   \n\n ") == [] and steps.segment("") == []


def test_aggregate() -> None:
    r = [0.9, 0.5, 0.8]
    assert steps.aggregate(r, "min") == 0.5
    assert steps.aggregate(r, "product") == pytest.approx(0.36)
    assert steps.aggregate(r, "last") == 0.8
    assert steps.aggregate(r, "mean") == pytest.approx(2.2 / 3)
    with pytest.raises(ValueError, match="no step rewards"):
        steps.aggregate([])
    with pytest.raises(ValueError, match="not finite"):
        steps.aggregate([0.5, float("nan")])
    with pytest.raises(ValueError, match="how must be"):
        steps.aggregate(r, "max")  # type: ignore[arg-type]


def test_pure_weights_by_hand() -> None:
    # softmax(-r / T) with T = 1: exp(-1), exp(0), exp(-0.5) over their sum 1.974410
    w = steps.pure_weights([1.0, 0.0, 0.5], temperature=1.0)
    assert w == pytest.approx([0.186324, 0.506480, 0.307196], abs=1e-6)
    assert steps.pure_min_form([1.0, 0.0, 0.5], 1.0) == pytest.approx([0.186324, 0.0, 0.153598], abs=1e-6)
    assert steps.pure_weights([0.3, 0.3]).tolist() == [0.5, 0.5]
    # T = 0.1 (PURE's default): the sum is close to the min
    assert steps.pure_min_form([0.5, -0.5]).sum() == pytest.approx(-0.5, abs=1e-3)


def test_pure_min_form_cannot_be_padded_with_good_steps() -> None:
    one_bad = [0.9, -0.8]
    padded = [0.9] * 50 + [-0.8]  # the policy adds fifty confident-looking steps
    # a plain sum would pay 44.2 for the padding; the min-form sum stays at the worst step
    assert sum(padded) > 44
    assert steps.pure_min_form(padded).sum() == pytest.approx(min(padded), abs=1e-4)
    assert steps.pure_min_form(one_bad).sum() == pytest.approx(-0.8, abs=1e-4)


def test_pure_weights_are_stable_for_extreme_rewards() -> None:
    w = steps.pure_weights([1e6, -1e6], 1e-3)
    assert np.isfinite(w).all() and w.tolist() == [0.0, 1.0]


def test_clip_and_delta_by_hand() -> None:
    r = [0.9, 0.4, 0.7]
    assert steps.clip_shaping(r, eta=0.5) == pytest.approx([0.0, -0.1, 0.0])
    d = steps.delta_shaping(r)
    assert d == pytest.approx([0.5, -0.3, 0.0])
    assert d.sum() == pytest.approx(r[0] - r[-1])  # the return telescopes to r_0 - r_K


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_extra_steps_never_earn_more_under_clip_or_delta(r: list[float], extra: list[float]) -> None:
    assert steps.clip_shaping(r + extra, 0.5).sum() <= steps.clip_shaping(r, 0.5).sum() + 1e-12
    # Delta's return is bounded by the range of a step reward, however long the chain
    assert abs(steps.delta_shaping(r + extra).sum()) <= 1.0 + 1e-12


def test_prime_advantages_by_hand() -> None:
    # one group of two: token rewards [1, 1] and [0]; accuracy 1 and 0; coefficients 1
    out = steps.prime_advantages([[1.0, 1.0], [0.0]], [1.0, 0.0], ["p", "p"], dpo_coef=1, gt_coef=1)
    # n = 2: r' = 2r - (1 + 0); acc' = 2acc - 1 at the last token -> [1, 1 + 1], [-1 - 1]
    assert out.returns[0].tolist() == [3.0, 2.0] and out.returns[1].tolist() == [-2.0]
    s = math.sqrt(7 + 1e-8)  # returns 3, 2, -2: mean 1, unbiased variance 14/2
    assert np.concatenate(out.values) == pytest.approx([2 / s, 1 / s, -3 / s])


def test_prime_reads_implicit_scores_and_excludes_failures() -> None:
    good = Score.of(2.0, tokens=TokenScores(tokenizer="t", values=[1.0, 1.0], offsets=[(0, 1), (1, 2)]))
    zero = Score.of(0.0, tokens=TokenScores(tokenizer="t", values=[0.0], offsets=[(0, 1)]))
    failed = Score.error("model crashed")
    with_failure = steps.prime_advantages([good, failed, zero], [1.0, 1.0, 0.0], [0, 0, 0], dpo_coef=1, gt_coef=1)
    assert with_failure.mask.tolist() == [True, False, True]
    assert with_failure.values[1].size == 0
    clean = steps.prime_advantages([[1.0, 1.0], [0.0]], [1.0, 0.0], [0, 0], dpo_coef=1, gt_coef=1)
    assert np.concatenate(with_failure.values) == pytest.approx(np.concatenate(clean.values))


def test_prime_group_of_one_has_no_baseline_signal() -> None:
    out = steps.prime_advantages([[0.3, 0.2], [1.0], [0.0]], [1.0, 1.0, 0.0], [0, 1, 1], dpo_coef=1, gt_coef=1)
    assert out.returns[0].tolist() == [0.0, 0.0]
    assert all(np.isfinite(v).all() for v in out.values)


def test_step_rewards_fail_closed() -> None:
    assert steps.step_rewards(Score.of(0.1, steps=[0.1, 0.2])) == [0.1, 0.2]
    with pytest.raises(ValueError, match="no step rewards"):
        steps.step_rewards(Score.of(1.0))
    with pytest.raises(ValueError, match="error: judge down"):
        steps.step_rewards(Score.error("judge down"))
