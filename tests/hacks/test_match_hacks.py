"""Reward-hacking attempts on `exact_match`, the bundled math example and `cosine_length`.

Each test is an answer a policy would try for reward without the right answer: drop a sign, a
decimal point or a bracket, flip an exponent, or answer nothing against a reference that
normalises away. None may score as correct.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import rewardlab
from rewardlab.core.types import Score, Status
from rewardlab.rewards.length import cosine_length
from rewardlab.rewards.match import exact_match, normalize_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "math_format.yaml"


def _em(response: str, reference: object) -> object:
    return exact_match.fn(response, reference)


@pytest.mark.parametrize(("response", "gold"), [
    ("42", "-42"),            # sign dropped
    ("-42", "42"),            # sign added
    ("4.2", "42"),            # decimal point added
    ("42", "4.2"),            # decimal point dropped
    ("5", ".5"),              # a leading decimal point dropped
    ("[1, 3)", "(1, 3]"),     # brackets swapped
    ("(1, 3)", "[1, 3]"),     # open for closed
    ("1e5", "1e-5"),          # exponent sign dropped
    ("12", "1/2"),            # fraction bar dropped
    ("x2", "x^2"),            # power dropped
])
def test_a_changed_sign_point_bracket_or_operator_is_not_a_match(response: str, gold: str) -> None:
    assert _em(response, gold) == 0.0
    assert _em(f"<answer>{response}</answer>", gold) == 0.0


def test_a_unicode_minus_is_still_a_minus() -> None:
    assert _em("-42", "\u221242") == 1.0
    assert _em("42", "\u221242") == 0.0


@pytest.mark.parametrize("gold", ["...", "  ", "?!", "", ["", "."]])
def test_a_reference_that_normalises_to_nothing_is_an_error_never_a_match(gold: object) -> None:
    for response in ("", " ", "<answer></answer>", "the", "."):
        score = _em(response, gold)
        assert isinstance(score, Score) and score.status is Status.error, (response, gold)
        assert "empty after normalisation" in (score.reason or "")


@pytest.mark.parametrize("letter", ["A", "a", "An", "The"])
def test_a_multiple_choice_letter_or_lone_article_is_an_answer_not_nothing(letter: str) -> None:
    """Gold ``A`` used to normalise to "" and match an empty answer."""
    assert normalize_text(letter) == letter.lower()
    assert _em(f"<answer>{letter}</answer>", letter) == 1.0
    for empty in ("", "<answer></answer>", "<answer> . </answer>", "B"):
        assert _em(empty, letter) == 0.0


def test_math500_answers_corrupted_by_a_policy_do_not_match(shared_data: Path) -> None:
    """Every MATH-500 answer with a sign, a decimal point or interval brackets, corrupted the
    way the old normalisation ignored: none of the corruptions may match its gold."""
    rows = [json.loads(line) for line in
            (shared_data / "verifiable" / "math500_test.jsonl").read_text().splitlines()]
    attempts: list[tuple[str, str]] = []
    for r in rows:
        gold = r["answer"]
        if "-" in gold:
            attempts.append((gold.replace("-", ""), gold))
        if re.search(r"\d\.\d", gold):
            attempts.append((gold.replace(".", ""), gold))
        if gold[:1] in "([" and gold[-1:] in ")]" and "," in gold:
            swap = {"(": "[", "[": "(", ")": "]", "]": ")"}
            attempts.append((swap[gold[0]] + gold[1:-1] + swap[gold[-1]], gold))
    assert len(attempts) >= 40
    fooled = [(p, g) for p, g in attempts if _em(p, g) == 1.0]
    assert fooled == []
    # and each gold still matches itself
    assert all(_em(g, g) == 1.0 for _, g in attempts)


def _example_rows(answer: str, gold: str) -> list[dict[str, str]]:
    return [{"prompt": "q", "completion": f"<think>\nwork\n</think>\n<answer>{answer}</answer>",
             "solution": gold}]


@pytest.mark.parametrize(("answer", "gold"), [("42", "-42"), ("4.2", "42"), ("(1, 3)", "[1, 3]")])
def test_bundled_example_does_not_pay_for_a_wrong_answer(answer: str, gold: str) -> None:
    """The spec of the README's first command: a well-formed wrong answer earns only the format
    bonus (0.1), never the 1.0 for correctness."""
    scores = rewardlab.score(_example_rows(answer, gold), str(EXAMPLE))
    assert scores[0].ok and scores[0].value == pytest.approx(0.1)
    right = rewardlab.score(_example_rows(gold, gold), str(EXAMPLE))
    assert right[0].value == pytest.approx(1.1)


def test_bundled_example_compares_values() -> None:
    """A math grader, not a string grader: 1/2 and 0.5 are the same answer."""
    scores = rewardlab.score(_example_rows("0.5", "\\frac{1}{2}"), str(EXAMPLE))
    assert scores[0].value == pytest.approx(1.1)


@pytest.mark.parametrize(("answer", "gold"), [("42", "-42"), ("4.2", "42"), ("1e5", "1e-5")])
def test_cosine_length_does_not_count_a_corrupted_answer_as_correct(answer: str, gold: str) -> None:
    score = cosine_length.fn(f"<answer>{answer}</answer>", gold, {})
    assert score.ok and score.details["correct"] is False and score.value < 0


@pytest.mark.parametrize(("response", "gold"), [
    ("U.S.A.", "USA"), ("1,000", "1000"), ("The Eiffel Tower.", "eiffel tower"),
    ("**42**", "42"), ("$42$", "42"), ("don't", "dont"), ("(1,3]", "(1, 3]"),
    ("<answer> -4.5 </answer>", "-4.5"), ("\u221242", "-42"), ("Yes!", "yes"),
])
def test_honest_spellings_of_the_answer_still_match(response: str, gold: str) -> None:
    """The stricter normalisation still forgives case, spacing, prose punctuation, markup,
    thousands separators and abbreviation dots."""
    assert _em(response, gold) == 1.0
