"""Meaning-preserving rewrites (`rewardlab.audit.rewrites`): each keeps the final answer that
rewardlab's math extraction reads from real solutions (MATH-500, GSM8K), actually changes the
text it applies to, and is deterministic for a seed; the registry is open."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rewardlab.audit.rewrites import (
    REWRITES,
    UnknownRewriteError,
    apply_rewrite,
    get_rewrite,
    rewrite,
    rewrite_names,
)
from rewardlab.rewards.math import extract_answer

BULLETS = "Pack these:\n- a tent\n- a stove\n- a map\n- water\n\nThen go.\nThe answer is 4."


def solutions(shared_data: Path) -> list[str]:
    base = shared_data / "verifiable"
    math500 = [json.loads(line)["solution"] for line in (base / "math500_test.jsonl").open()][:150]
    gsm8k = [json.loads(line)["answer"] for line in (base / "gsm8k_test.jsonl").open()][:150]
    return math500 + gsm8k + [BULLETS, "The answer is 3.5.", "So x = 4.\nThe final answer is $\\frac{1}{2}$"]


def answer(text: str) -> str | None:
    found = extract_answer(text)
    return None if found is None else found.answer


@pytest.mark.parametrize("name", [n for n in REWRITES if n != "shuffle_bullets"])
def test_each_rewrite_keeps_the_final_answer_and_changes_the_text(name: str, shared_data: Path) -> None:
    texts = solutions(shared_data)
    changed = 0
    for text in texts:
        out = apply_rewrite(name, text, seed=3)
        assert answer(out) == answer(text), (name, text[-120:], out[-120:])
        changed += out != text
    # every rewrite applies to a good share of real solutions (the answer-format ones to one kind)
    assert changed >= 0.3 * len(texts), (name, changed)


def test_shuffle_bullets_reorders_unordered_items_only() -> None:
    out = apply_rewrite("shuffle_bullets", BULLETS, seed=0)
    assert out != BULLETS
    assert sorted(out.split("\n")) == sorted(BULLETS.split("\n"))  # same lines, new order
    assert answer(out) == "4"
    numbered = "Steps:\n1. mix\n2. bake\n3. cool"
    assert apply_rewrite("shuffle_bullets", numbered) == numbered
    assert apply_rewrite("shuffle_bullets", "- only one item") == "- only one item"


def test_rewrites_are_deterministic_for_a_seed_and_vary_with_it() -> None:
    for name in REWRITES:
        assert apply_rewrite(name, BULLETS, seed=7) == apply_rewrite(name, BULLETS, seed=7)
    seen = {apply_rewrite("shuffle_bullets", BULLETS, seed=s) for s in range(12)}
    assert len(seen) > 1  # the random choices follow the seed


def test_math_and_code_spans_are_left_alone() -> None:
    text = "Let $X = \\frac{A}{B}$, see `Foo.Bar`.\n```\nX = 1, Y = 2.\n```\nSo Y is 2."
    low = apply_rewrite("lowercase", text)
    assert "$X = \\frac{A}{B}$" in low and "`Foo.Bar`" in low and "X = 1, Y = 2." in low
    assert low.startswith("let ") and low.endswith("so y is 2.")
    spaced = apply_rewrite("space_before_punctuation", text)
    assert "X = 1, Y = 2." in spaced and spaced.endswith("is 2 .") and "3.5" in \
        apply_rewrite("space_before_punctuation", "It costs 3.5, not 4.")


def test_answer_format_rewrites_go_both_ways() -> None:
    boxed = "Adding gives $\\boxed{\\frac{3}{4}}$."
    stated = apply_rewrite("boxed_to_answer_is", boxed)
    assert "\\boxed" not in stated and "The answer is $\\frac{3}{4}$." in stated
    assert answer(stated) == answer(boxed) == "\\frac{3}{4}"
    back = apply_rewrite("answer_to_boxed", "Work.\n#### 1,200")
    assert back.endswith("$\\boxed{1,200}$.") and answer(back) == answer("Work.\n#### 1,200")


def test_the_registry_is_open_and_names_are_checked() -> None:
    @rewrite("test_reverse_words", family="test")
    def reverse_words(text: str, rng: random.Random) -> str:
        """Words in reverse order (not meaning-preserving: only to test the registry)."""
        return " ".join(reversed(text.split(" ")))

    try:
        assert "test_reverse_words" in rewrite_names()
        rw = get_rewrite("test_reverse_words")
        assert rw.family == "test" and rw.description.startswith("Words in reverse order")
        assert rw("a b c") == "c b a"
        with pytest.raises(ValueError, match="already registered"):
            rewrite("test_reverse_words", family="test")(reverse_words)
    finally:
        REWRITES.pop("test_reverse_words", None)
    with pytest.raises(UnknownRewriteError, match="unknown rewrite 'nope'"):
        apply_rewrite("nope", "x")
