r"""Reward hacking attempts against `math_answer`: answers a policy would try to get reward
without solving the problem. None may score 1 against any gold answer.

Each probe is tried against every gold (numbers, tuples, sets, intervals, matrices,
equations, units, percentages, expressions, text) through every path that can answer
"equal":

- `math_answer` on full responses (boxed, "the answer is", ``<answer>`` tags), in a batch
  with the symbolic path in worker processes; the probe must also score a plain 0, never an
  error or abstain (a sample the trainer drops is a way out of a negative reward);
- `verify` on the bare answer, in process and through the worker pool;
- the fast path alone (`fast_check`), the symbolic comparator (the fast comparator first,
  sympy for what it leaves), and sympy alone on every scalar pair (no exact arithmetic or
  float refutation in front of it).
"""

from __future__ import annotations

import pytest

from rewardlab.core.types import Sample, Status
from rewardlab.rewards._math_compare import FastComparator, equal
from rewardlab.rewards._math_parse import MathLimit, MathParseError, normalize, parse_answer
from rewardlab.rewards._math_probes import BIG, GOLDS, PROBES, SEVERAL_BOXES, responses
from rewardlab.rewards._math_symbolic import SymbolicComparator, sympy_equal, to_sympy
from rewardlab.rewards.math import close_symbolic_pool, fast_check, math_answer, verify

PROBE_IDS = [p[0] for p in PROBES]
GENEROUS = 60.0  # seconds per symbolic pair: these tests are about verdicts, not time


@pytest.fixture(scope="module", autouse=True)
def _stop_pool():
    yield
    close_symbolic_pool()


def test_there_are_enough_probes_and_golds():
    assert len(PROBES) >= 40 and len(set(PROBE_IDS)) == len(PROBES)
    assert len(GOLDS) >= 10


@pytest.mark.parametrize(("name", "answer"), PROBES, ids=PROBE_IDS)
def test_verify_never_calls_a_probe_equal(name, answer):
    for gold in GOLDS:
        verdict = verify(gold=gold, prediction=answer, isolate=False)
        assert verdict.equal is not True, (name, gold, verdict)
        assert verdict.equal is False, (name, gold, verdict)  # decided: not equal, never undecided


@pytest.mark.parametrize(("name", "answer"), PROBES, ids=PROBE_IDS)
def test_fast_path_never_calls_a_probe_equal(name, answer):
    for gold in GOLDS:
        result, _ = fast_check(gold, answer, 1e-9)
        assert result is not True, (name, gold)


class _SympyOnly(FastComparator):
    """Every scalar pair decided by sympy alone (no exact arithmetic or float refutation)."""

    def scalar(self, gold, pred):
        return sympy_equal(to_sympy(gold), to_sympy(pred), self.tolerance)

    def proportional(self, gold, pred):
        return SymbolicComparator(self.tolerance).proportional(gold, pred)


@pytest.mark.parametrize(("name", "answer"), PROBES, ids=PROBE_IDS)
def test_symbolic_path_never_calls_a_probe_equal(name, answer):
    try:
        pred = parse_answer(normalize(answer))
    except (MathParseError, MathLimit):
        pytest.skip("the probe does not parse: the symbolic path never sees it")
    checked = 0
    for gold in GOLDS:
        g = parse_answer(normalize(gold))
        for cmp in (SymbolicComparator(1e-9), _SympyOnly(1e-9)):
            try:
                result = equal(g, pred, cmp)
            except MathLimit:
                continue  # a limit is reported as not equal by the reward
            assert result is not True, (name, gold, type(cmp).__name__)
            checked += 1
    assert checked > 0


def test_math_answer_scores_every_probe_zero_in_every_form():
    samples = [Sample(response=r, reference=gold)
               for _, answer in PROBES for r in responses(answer) for gold in GOLDS]
    scores = math_answer(timeout=GENEROUS).score_local(samples)
    paid = [(s.response, s.reference, sc.value) for s, sc in zip(samples, scores, strict=True)
            if sc.value]
    assert not paid
    not_ok = [(s.response, s.reference, sc.status, sc.reason)
              for s, sc in zip(samples, scores, strict=True) if sc.status is not Status.ok]
    assert not not_ok  # a probe never gets its sample dropped
    assert {(sc.details or {}).get("path") for sc in scores} == {"fast", "symbolic"}


def test_probes_through_the_worker_pool():
    """`verify` with the symbolic path in worker processes (as the reward runs it)."""
    for name, answer in PROBES:
        for gold in ("42", r"\frac{\sqrt{3}}{2}", "y = 2x + 1", r"50\%"):
            verdict = verify(gold=gold, prediction=answer, timeout=GENEROUS)
            assert verdict.equal is False, (name, gold, verdict)


@pytest.mark.parametrize("response", SEVERAL_BOXES)
def test_several_boxed_candidates_do_not_pay(response):
    for gold in ("42", "41", "43"):
        sc = math_answer().score_local([Sample(response=response, reference=gold)])[0]
        assert sc.status is Status.ok and sc.value == 0.0, (response, gold, sc)


def test_limits_the_response_hits_score_zero_with_the_reason():
    cases = [
        (r"\boxed{" + ", ".join(str(i) for i in range(200)) + "}", "more than"),
        (r"\boxed{" + "(" * 200 + "1" + ")" * 200 + "}", "nested"),
        (r"\boxed{2^{10^{9}}}", "too large"),
        (r"\boxed{" + "1+" * 1500 + "1}", "longer than"),
    ]
    for response, why in cases:
        sc = math_answer().score_local([Sample(response=response, reference="42")])[0]
        assert sc.status is Status.ok and sc.value == 0.0, (response[:40], sc)
        assert why in sc.reason, (response[:40], sc.reason)


def test_no_answer_is_wrong_not_skipped():
    for response in ("", "I don't know.", "This problem is too hard to solve.", "<answer></answer>",
                     r"\boxed{}"):
        sc = math_answer().score_local([Sample(response=response, reference="42")])[0]
        assert sc.status is Status.ok and sc.value == 0.0 and sc.reason == "no answer found", sc


def test_honest_answers_still_pay():
    """The probes fail because they are not answers, not because the comparison got blind."""
    cases = [
        (r"e^{1000}", r"\exp(1000)"), (r"\pi \cdot 10^{400}", r"10^{400}\pi"),
        (rf"\sqrt{{{BIG}}}", rf"\sqrt{{{BIG}}}"), (r"10^{-400}", r"\frac{1}{10^{400}}"),
        ("42", r"\boxed{\boxed{42}}"), (r"(-\infty, 3]", r"x \le 3"),
        ("y = 2x + 1", "y = 1 + 2x"), ("42", r"x = 42 = 42"), ("42", r"\boxed{42} or \boxed{42.0}"),
    ]
    for gold, answer in cases:
        sc = math_answer().score_local([Sample(response=f"\\boxed{{{answer}}}"
                                               if "boxed" not in answer else answer,
                                               reference=gold)])[0]
        assert sc.value == 1.0, (gold, answer, sc)


SLOW = r"\frac{(x+y)^{200}}{(x-y)^{100}} + \sin(z)^{50}"  # sympy works on this for minutes


@pytest.mark.slow
def test_an_answer_that_exhausts_the_symbolic_time_limit_scores_zero():
    """Forcing a timeout must not get the sample dropped: a pair that times out again on a
    warm worker, right after a check of the same reference passed, is the answer's failure.
    (The limit leaves a fresh worker ample time to import sympy; the answer needs minutes.)"""
    sc = math_answer(timeout=10.0).score_local([Sample(response=f"\\boxed{{{SLOW}}}",
                                                      reference="x^2 + 1")])[0]
    assert sc.status is Status.ok and sc.value == 0.0, sc
    assert sc.reason.startswith("limit: timeout") and "warm worker" in sc.reason


@pytest.mark.parametrize(("name", "answer"), PROBES, ids=PROBE_IDS)
def test_rounded_comparison_never_calls_a_probe_equal(name, answer):
    """With `precision` (rounded comparison) too. The gold 0 is left out, since values below
    the rounding unit (``10^{-400}``) do round to it, as a rounded comparison means."""
    for gold in GOLDS:
        if gold == "0":
            continue
        for precision in (2, 6):
            verdict = verify(gold=gold, prediction=answer, isolate=False, precision=precision)
            assert verdict.equal is False, (name, gold, precision, verdict)


def _gsm8k(shared_data) -> list[dict[str, str]]:
    import json

    with (shared_data / "verifiable" / "gsm8k_test.jsonl").open() as f:
        return [json.loads(line) for line in f]


def test_pasting_the_question_back_earns_nothing(shared_data):
    """On GSM8K test, 28 of 1,319 questions end on a number equal to the gold answer: a response
    that copies the question back (whole, re-spaced, re-cased, or as its last sentence) would earn
    1 through the last-number fallback if copied numbers counted as answers."""
    rows = _gsm8k(shared_data)
    last_sentence = [r["question"].replace("?", ".").split(". ")[-1] for r in rows]
    attacks = {
        "copied": [r["question"] for r in rows],
        "respaced": ["  ".join(r["question"].upper().split()) for r in rows],
        "tail": last_sentence,
        "wrapped": [f"Let me restate the problem. {r['question']} Let me think." for r in rows],
    }
    check = math_answer()
    for name, texts in attacks.items():
        scores = check.score_local([Sample(prompt=r["question"], response=resp, reference=r["answer"])
                                    for r, resp in zip(rows, texts, strict=True)])
        paid = [i for i, s in enumerate(scores) if s.value == 1.0]
        assert paid == [], (name, paid[:5])


def test_answers_that_reuse_the_questions_words_still_pay(shared_data):
    """Only numbers sitting in a run of words copied from the question are skipped: a worked answer
    that restates quantities and ends on its own result keeps its reward."""
    rows = _gsm8k(shared_data)[:200]
    check = math_answer()
    samples = []
    for r in rows:
        gold = r["answer"].split("####")[-1].strip()
        samples.append(Sample(prompt=r["question"], reference=r["answer"],
                              response=f"Restating: {r['question']} Working it out step by step gives {gold}."))
        samples.append(Sample(prompt=r["question"], reference=r["answer"],
                              response=f"{r['question']}\nSo the total comes to {gold}"))
    scores = check.score_local(samples)
    assert [s.value for s in scores] == [1.0] * len(samples)
