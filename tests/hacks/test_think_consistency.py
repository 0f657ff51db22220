"""One response, one reading: every family sees the same final text.

A policy trained on several rewards at once (a spec, or rewards switched between runs) gains
when one reward reads text that another does not: an answer written where the format check
treats it as thinking, a closing tag spelled ``</THINK>`` that one family honours and another
ignores, an unclosed ``<think>`` (in the response, or ending the prompt as a chat template
renders it) that hides an answer from one check and shows it to another.
Here the same adversarial wrappers go around each family's correct answer, and every family
must find the answer exactly when the wrapper leaves it in the final text
(`rewardlab.core.text`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rewardlab as rl
from rewardlab.core.text import final_text
from rewardlab.core.types import Sample, Status
from rewardlab.rewards.code import code_pass
from rewardlab.rewards.format import json_valid, regex_match, think_answer_format
from rewardlab.rewards.match import exact_match
from rewardlab.rewards.math import math_answer
from rewardlab.rewards.similarity import rouge_l
from rewardlab.rewards.sql import sql_execution
from rewardlab.rewards.tools import tool_call_match

FILLER = "nothing here"

# (wrapper, whether the answer {a} is in the final text)
WRAPPERS: list[tuple[str, bool]] = [
    ("{a}", True),
    ("<think>scratch</think>{a}", True),
    ("<think>scratch</THINK>{a}", True),                   # a closing tag in capitals
    ("<think>scratch</ think >{a}", True),                 # spaces inside the tag
    ("<think>x</think>{a}<think>second thoughts", True),   # thinking reopened after the answer
    ("<think>{a}</think>" + FILLER, False),                # the answer only in the thinking
    ("<think>{a}</THINK>" + FILLER, False),
    ("<THINK>{a}</Think>" + FILLER, False),
    ("<think>{a}", False),                                 # thinking never closed
    ("<think>x</think>" + FILLER + "<think>{a}", False),   # the answer in unclosed thinking
    ("<think>a<think>{a}</think>b</think>" + FILLER, False),   # nested thinking
    ("{a}</think>" + FILLER, False),                       # a prefilled <think>: all thinking
]

# A chat template that ends the prompt with <think>: the response begins inside the thinking.
PREFILLED = "<|im_start|>user\nSolve it.<|im_end|>\n<|im_start|>assistant\n<think>\n"
# (prompt, wrapper, whether the answer {a} is in the final text)
CASES: list[tuple[str, str, bool]] = [("Solve it.", w, shown) for w, shown in WRAPPERS] + [
    (PREFILLED, "scratch</think>{a}", True),
    (PREFILLED, "scratch</THINK>\n{a}", True),
    (PREFILLED, "{a}", False),                             # never closed: all thinking
    (PREFILLED, "{a}</think>" + FILLER, False),
    (PREFILLED, "scratch</think>" + FILLER + "<think>{a}", False),
    ("What does <think> mean in a chat template?", "{a}", True),   # not at the prompt's end
]


def _db(tmp: Path) -> str:
    path = tmp / "tiny.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT)")
        con.executemany("INSERT INTO city VALUES (?, ?)", [(1, "Paris"), (2, "Lyon")])
    return str(path)


# family: (reward factory, the correct answer written by the response, reference)
def _families(tmp: Path) -> dict[str, tuple[Callable[[], Any], str, Any]]:
    db = _db(tmp)
    return {
        "math_answer": (math_answer, r"The answer is $\boxed{4}$.", "4"),
        "exact_match": (exact_match, "<answer>Paris</answer>", "Paris"),
        "code_pass": (code_pass, "```python\ndef add(a, b):\n    return a + b\n```",
                      {"tests": ["assert add(1, 2) == 3"], "entry_point": "add"}),
        "sql_execution": (lambda: sql_execution(db_path=db),
                          "```sql\nSELECT name FROM city WHERE id = 1\n```",
                          "SELECT name FROM city WHERE id = 1"),
        "tool_call_match": (tool_call_match,
                            '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>',
                            [{"name": "f", "arguments": {"x": 1}}]),
        "json_valid": (json_valid, '```json\n{"answer": 4}\n```', None),
        "regex_match": (lambda: regex_match(pattern="FINAL-7", strip_think=True), "FINAL-7", None),
        "rouge_l": (rouge_l, "the quick brown fox jumps over the lazy dog",
                    "the quick brown fox jumps over the lazy dog"),
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, bool, Any]]]:
    """Per family: (prompt and response, answer in the final text, score) for every case."""
    out: dict[str, list[tuple[str, bool, Any]]] = {}
    for name, (make, answer, ref) in _families(tmp_path_factory.mktemp("db")).items():
        samples = [Sample(prompt=p, response=w.format(a=answer), reference=ref)
                   for p, w, _ in CASES]
        scores = rl.score(samples, make())
        out[name] = [(f"{s.prompt!r} -> {s.response!r}", shown, score)
                     for s, (_, _, shown), score in zip(samples, CASES, scores, strict=True)]
    return out


@pytest.mark.parametrize("family", ["math_answer", "exact_match", "code_pass", "sql_execution",
                                    "tool_call_match", "json_valid", "regex_match", "rouge_l"])
def test_every_family_reads_the_same_final_text(outcomes, family: str) -> None:
    for response, shown, score in outcomes[family]:
        assert score.status is Status.ok, (family, response, score.reason)
        assert score.value == (1.0 if shown else 0.0), (family, response, score)


def test_the_cases_mean_what_the_text_module_says() -> None:
    for prompt, wrapper, shown in CASES:
        assert ("ANSWER" in final_text(wrapper.format(a="ANSWER"), prompt)) is shown, wrapper


def test_the_format_check_never_passes_an_answer_the_graders_do_not_read() -> None:
    """Whenever the answer block is hidden from the graders, the think/answer format fails too
    (strict and lenient): a format bonus cannot be earned by an answer the graders skip."""
    for prompt, wrapper, shown in CASES:
        response = wrapper.format(a="<answer>4</answer>")
        for mode in ("strict", "lenient"):
            (s,) = think_answer_format(mode=mode).score_local([Sample(prompt=prompt,
                                                                      response=response)])
            assert s.ok
            if not shown:
                assert s.value == 0.0, (mode, response)
    strict = think_answer_format()
    # a variant spelling of a tag is a tag, so strict mode sees two closings, or a misspelling
    for response in ("<think>t</think><answer>wrong </THINK> 4</answer>",
                     "<think>t</THINK><answer>4</answer>",
                     "<think>t</think></ think><answer>4</answer>"):
        (s,) = strict.score_local([Sample(response=response)])
        assert s.value == 0.0, response
    (ok,) = strict.score_local([Sample(response="<think>t</think><answer>4</answer>")])
    assert ok.value == 1.0
    # the template's own <think> counts: the response continues the think block it opened
    (cont,) = strict.score_local([Sample(prompt=PREFILLED, response="t</think><answer>4</answer>")])
    assert cont.value == 1.0


def test_math_and_match_read_the_same_answer_tag() -> None:
    """An answer tag inside the thinking is not the answer; of several, the last counts; any
    spelling of the tag is the tag."""
    cases = {
        "<think><answer>5</answer></think><answer>4</answer>": True,
        "<answer>5</answer><answer>4</answer>": True,
        "<ANSWER>4</Answer>": True,
        "<answer>4</answer><think>on second thought <answer>5</answer>": True,
        "<answer>4</answer><answer>5</answer>": False,
        "<think><answer>4</answer></think><answer>5</answer>": False,
        "<think><answer>4</answer>": False,
    }
    samples = [Sample(response=r, reference="4") for r in cases]
    math_scores = math_answer().score_local(samples)
    match_scores = exact_match().score_local(samples)
    for (response, right), m, e in zip(cases.items(), math_scores, match_scores, strict=True):
        assert m.value == e.value == (1.0 if right else 0.0), (response, m, e)
