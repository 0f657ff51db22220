"""Math answer verification: extraction, equivalence, the registered reward, real data, limits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import rewardlab
from rewardlab.core.registry import registry
from rewardlab.core.types import Sample, Status
from rewardlab.rewards import _math_symbolic
from rewardlab.rewards._math_compare import FastComparator, equal
from rewardlab.rewards._math_parse import MathParseError, normalize, parse_answer
from rewardlab.rewards._math_symbolic import sympy_equal, to_sympy
from rewardlab.rewards.math import (
    EXTRACTORS,
    close_symbolic_pool,
    extract_answer,
    fast_check,
    math_answer,
    verify,
)


def score(response: str, reference, **params):
    return math_answer(**params).score_local([Sample(response=response, reference=reference)])[0]


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module", autouse=True)
def _stop_pool():
    yield
    close_symbolic_pool()


# -- extraction ---------------------------------------------------------------------------------

EXTRACTION_CASES = [
    (r"So $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}", "boxed"),
    (r"\boxed{\left\{ 1, \sqrt{\frac{3}{4}} \right\}} done", r"\left\{ 1, \sqrt{\frac{3}{4}} \right\}",
     "boxed"),
    (r"first \boxed{1} then \fbox{7}", "7", "boxed"),
    (r"\boxed 5 is it", "5", "boxed"),
    (r"$x=\boxed{2}$ and $y=\boxed{3}$", "2, 3", "boxed"),
    (r"$\boxed{15\frac{39}{40}}$, or $\boxed{\frac{639}{40}}$", r"15\frac{39}{40}, \frac{639}{40}", "boxed"),
    (r"\boxed{\boxed{12}}", "12", "boxed"),  # nested boxes: the innermost
    (r"\boxed{(2,2)} \quad \text{and} \quad \boxed{(6,2)}", "(2,2), (6,2)", "boxed"),
    ("Janet makes 9 * 2 = 18.\n#### 18", "18", "gsm8k"),
    ("The answer is 42.", "42", "answer_is"),
    ("**Final Answer:** $3.5$ meters", "3.5", "answer_is"),
    ("so the answer is approximately $7.1$.", "7.1", "answer_is"),
    (r"the answer is $\$32,\!348$.", r"\$32,\!348", "answer_is"),
    ("<answer>\n  17 \n</answer>", "17", "answer_tag"),
    (r"<answer>The sum is \boxed{12}</answer>", "12", "answer_tag"),
    ("I bought 3 apples for $1,250.50 in total", "1,250.50", "last_number"),
    ("the ratio is 3/4", "3/4", "last_number"),
    ("it fell by -12 degrees", "-12", "last_number"),
    ("<think>maybe \\boxed{3}</think> The answer is 4", "4", "answer_is"),
    ("Final Answer: The largest $n$ is 34.", "34", "answer_is"),  # the value a sentence states
    ("Final Answer: Jane started growing Sphere 3 hours ago.", "3", "answer_is"),
    (r"so $\boxed{255}$ is the interest. The final answer is $10,455$.", "10,455", "answer_is"),
    (r"Therefore $x \geq 5$ is the solution.", r"x \geq 5", "last_math"),  # a complete expression
    (r"So the pair is $(7, 6)$.", "(7, 6)", "last_math"),
    (r"we get $5 \times 6 \times 4 = 120$", "120", "last_number"),  # a computation is no answer
    ("the code is AZYUK2A, and CO2 is 44", "44", "last_number"),  # never a digit inside a word
]


@pytest.mark.parametrize(("text", "answer", "method"), EXTRACTION_CASES)
def test_extraction(text, answer, method):
    found = extract_answer(text)
    assert found is not None
    assert (found.answer, found.method) == (answer, method)


def test_extraction_precedence_is_configurable():
    text = r"The answer is 7. Check: \boxed{8}" + "\n#### 9"
    assert extract_answer(text).answer == "8"  # default: box before #### and "answer is"
    assert extract_answer(text, extract_order=["gsm8k", "boxed"]).answer == "9"
    assert extract_answer(text, extract_order=["answer_is"]).answer == "7"
    assert extract_answer("no digits here", extract_order=EXTRACTORS) is None
    assert extract_answer("the code is AZYUK2A") is None
    assert extract_answer("<think>\\boxed{3}</think>", strip_think=False).answer == "3"
    assert extract_answer("<think>\\boxed{3}</think>") is None
    with pytest.raises(ValueError, match="unknown extractor"):
        extract_answer("1", extract_order=["boxd"])


# -- equivalence table (both directions) --------------------------------------------------------

EQUAL = [
    # integers, decimals, signs, thousands separators, scientific notation
    ("18", "18.00"), ("-7", "- 7"), ("1,000,000", "1000000"), (r"10,\!080", "10080"),
    ("1.5e3", "1500"), (r"1.5 \times 10^{3}", "1500"), (r"2.5\cdot10^{-2}", "0.025"),
    (".35625", "0.35625"),
    # fractions, mixed numbers, repeating decimals, percentages
    (r"\frac{1}{2}", "0.5"), (r"\dfrac{3}{4}", "3/4"), (r"\frac43", r"\tfrac{4}{3}"),
    (r"-\frac{35}{9}", r"\frac{-35}{9}"), (r"1\frac{4}{5}", r"\frac{9}{5}"),
    (r"0.\overline{3}", r"\frac13"), (r"50\%", "0.5"), ("25", "25%"),
    # units, currency, degrees, text around numbers
    ("18 dollars", "18"), (r"\$18.90", "18.9"), (r"5.4 \text{ cents}", "5.4"),
    (r"864 \mbox{ inches}^2", "864"), (r"90^\circ", "90"), (r"\frac{270}7\text{ degrees}", r"\frac{270}{7}"),
    # roots, pi, powers, products, LaTeX sizing
    (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}"), (r"2\sqrt{2}", r"\sqrt{8}"),
    (r"\sqrt[3]{27}", "3"), (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt3}"), (r"7\pi", r"\pi \cdot 7"),
    (r"2^{10}", "1024"), (r"\left( \frac{3}{2}, -13 \right)", "(1.5,-13)"),
    # symbolic expressions and complex numbers
    ("x^2+2x+1", "(x+1)^2"), ("(a+5)(b+2)", "ab+2a+5b+10"), (r"\sin^2 x + \cos^2 x", "1"),
    ("6 - 5i", "-5i+6"), (r"\frac{11+9a}{20}", r"\frac{11}{20}+\frac{9a}{20}"),
    # equations
    ("x=5", "5"), ("y = 2x + 3", "y=3+2x"), ("5x - 7y + 11z + 4 = 0", "-10x+14y-22z-8=0"),
    # intervals and inequalities
    ("(3,4]", r"3 < x \le 4"), (r"(2,\infty)", "x > 2"), (r"(-\infty, 0]", r"x \leq 0"),
    (r"x \in [-2,7]", "[-2,7]"), (r"(0,9) \cup (9,36)", r"(9,36)\cup(0,9)"),
    # sets, tuples, unordered lists, multiple answers, plus-minus
    (r"\{1,2,3\}", "3, 2, 1"), ("1,-2", "-2, 1"), (r"1 \pm \sqrt{19}", r"1-\sqrt{19}, 1+\sqrt{19}"),
    (r"\{1\pm\sqrt{5},-2\}", r"-2, 1+\sqrt5, 1-\sqrt5"), ("(6,31,-1)", "6, 31, -1"),
    ("2 and 3", "2, 3"),
    # matrices and vectors
    (r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}", r"\begin{bmatrix}-1&0\\0&-1\end{bmatrix}"),
    (r"\begin{pmatrix} 1/5 \\ -18/5 \end{pmatrix}", r"\left(0.2, -3.6\right)"),
    # text answers, multiple choice, bases
    (r"\text{Evelyn}", "evelyn"), (r"\text{(C)}", "C"), ("52_8", "52"), ("4210_{5}", "4210"),
    (r"\text{No}", r"\text{no}"), (r"\text{5 apples}", "5"), (r"\emptyset", r"\varnothing"),
    # functions, complex values, logarithms
    ("f(x) = x^2", "x^2"), (r"\pm 3", "-3, 3"), (r"\sqrt{-4}", "2i"), (r"e^{i\pi}", "-1"),
    (r"\log_2 8", "3"), (r"\ln(e^2)", "2"),
]

NOT_EQUAL = [
    ("18", "19"), ("1,000", "1,001"), (r"\frac{1}{2}", "0.51"), (r"\frac{1}{3}", "0.333333"),
    (r"\pi", "3.14"), (r"\sqrt{2}", "1.4142"), (r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt{2}}{2}"),
    ("x^2+2x+1", "(x+1)^3"), ("x^2-1", "(x-1)^2"), ("6-5i", "6+5i"), ("2k", "2j"),
    ("x=5", "x=6"), ("y=2x+3", "y=2x-3"), ("(3,4]", "[3,4]"), ("(3,4]", "(3,4)"),
    (r"(2,\infty)", "x < 2"), ("(1,2)", "(2,1)"), (r"\{1,2\}", r"\{1,2,3\}"), (r"\{1,2\}", "(1,2)"),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}2\\1\end{pmatrix}"),
    (r"\text{east}", r"\text{west}"), (r"\text{(C)}", "D"), ("3, 5, 7", "3, 5"),
    (r"1 \pm \sqrt{19}", r"1+\sqrt{19}"), ("90", r"\frac{\pi}{2}"), ("50%", "5"),
    (r"\sqrt{-4}", "-2i"), ("f(x) = x^2", "x^3"), (r"\text{yes}", r"\text{no}"), (r"\log_2 8", "4"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equivalent_both_directions(a, b):
    for gold, pred in ((a, b), (b, a)):
        verdict = verify(gold=gold, prediction=pred, isolate=False)
        assert verdict.equal is True, (gold, pred, verdict)


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_not_equivalent_both_directions(a, b):
    for gold, pred in ((a, b), (b, a)):
        verdict = verify(gold=gold, prediction=pred, isolate=False)
        assert verdict.equal is False, (gold, pred, verdict)


def test_fast_path_settles_plain_and_rational_answers_without_sympy():
    for gold, pred in [("18", "18.0"), (r"\frac{3}{4}", "0.75"), ("(1,2]", r"1 < x \le 2"),
                       ("72", "73"), (r"\frac{\sqrt3}{2}", r"\frac{\sqrt2}{2}")]:
        assert verify(gold=gold, prediction=pred).path == "fast"
    assert verify(gold="x^2+2x+1", prediction="(x+1)^2").path == "symbolic"


def test_tolerance_applies_to_irrational_values_only():
    assert verify(gold=r"\sqrt{2}", prediction="1.41421356237", isolate=False).equal is True
    assert verify(gold=r"\sqrt{2}", prediction="1.414", isolate=False).equal is False
    assert verify(gold=r"\sqrt{2}", prediction="1.414", tolerance=1e-3, isolate=False).equal
    assert verify(gold=r"\frac13", prediction="0.3333333333333", tolerance=1e-3).equal is False


def test_verify_is_keyword_only_and_reads_gold_forms():
    with pytest.raises(TypeError):
        verify("1", "1")  # type: ignore[misc]
    assert verify(gold=18, prediction="18").equal
    assert verify(gold="0.5", prediction=0.5).equal
    with pytest.raises(TypeError):
        verify(gold="1", prediction=True)
    assert verify(gold=0.25, prediction=r"\frac14").equal
    assert verify(gold="She sold 3 + 4 = 7\n#### 7", prediction="7").equal
    assert verify(gold=r"so $\boxed{\frac{1}{2}}$", prediction="0.5").equal
    assert verify(gold=["5", "x=5"], prediction="x = 5").equal
    assert verify(gold=["4", "6"], prediction="5").equal is False


# -- the registered reward ----------------------------------------------------------------------


def test_registered_with_its_meaning():
    info = registry.get("math_answer").info
    assert info.range == (0.0, 1.0) and info.direction == "higher"
    assert info.description.startswith("1 if the response's final answer equals")


def test_reward_scores_details_and_abstains():
    right = score(r"We get $\boxed{\dfrac{1}{2}}$.", "0.5")
    assert right.value == 1.0
    assert right.details == {"extracted": r"\dfrac{1}{2}", "extractor": "boxed", "gold": "0.5",
                             "path": "fast"}
    wrong = score("The answer is 19.", "Total: 9 + 9 = 18\n#### 18")
    assert wrong.value == 0.0 and wrong.details["gold"] == "18"
    none = score("I cannot solve this.", "18")  # in RL, not answering is wrong (not skipped)
    assert none.value == 0.0 and none.reason == "no answer found"
    kept_out = score("I cannot solve this.", "18", no_answer="abstain")
    assert kept_out.status is Status.abstain and kept_out.reason == "no answer found"
    assert score("42", None).status is Status.abstain
    assert score("42", {"answer": 42}).status is Status.error
    assert score(r"\boxed{(x+1)^2}", "x^2+2x+1").details["path"] == "symbolic"


def test_on_abstain_policy_through_a_spec():
    samples = [Sample(response="no idea", reference="3"), Sample(response="3", reference="3")]
    default = rewardlab.score(samples, {"reward": {"reward": "math_answer"}})
    assert [s.value for s in default] == [0.0, 1.0]
    abstaining = {"reward": "math_answer", "params": {"no_answer": "abstain"}}
    strict = rewardlab.score(samples, {"reward": abstaining})
    assert [s.status for s in strict] == [Status.abstain, Status.ok]
    spec = {"reward": {"sum": [abstaining]}, "on_abstain": 0.0}
    lenient = rewardlab.score(samples, spec)
    assert [s.value for s in lenient] == [0.0, 1.0]


# -- real data ----------------------------------------------------------------------------------


def _off_by_one(ans: str) -> str | None:
    m = re.search(r"\d+", ans)
    return None if m is None else ans[: m.start()] + str(int(m.group()) + 1) + ans[m.end():]


def test_math500_gold_matches_itself_and_the_boxed_solution(shared_data):
    data = rows(shared_data / "verifiable" / "math500_test.jsonl")
    for r in data:
        assert verify(gold=r["answer"], prediction=r["answer"]).equal is True
    samples = []
    for r in data:
        samples.append(Sample(response=r["solution"], reference=r["answer"]))
        samples.append(Sample(response=f"The answer is $\\boxed{{{r['answer']}}}$.",
                              reference=r["solution"]))
    scores = math_answer().score_local(samples)
    bad = [(s.reference, sc) for s, sc in zip(samples, scores, strict=True) if sc.value != 1.0]
    assert not bad


def test_math500_perturbed_answers_do_not_match(shared_data):
    data = rows(shared_data / "verifiable" / "math500_test.jsonl")
    samples = [Sample(response=f"So $\\boxed{{{_off_by_one(r['answer'])}}}$", reference=r["answer"])
               for r in data if _off_by_one(r["answer"]) is not None]
    assert len(samples) > 450
    scores = math_answer().score_local(samples)
    assert [s.status for s in scores].count(Status.ok) == len(samples)
    matched = [s.reference for s, sc in zip(samples, scores, strict=True) if sc.value != 0.0]
    assert not matched


def test_gsm8k_gold_matches_and_off_by_one_does_not(shared_data):
    data = rows(shared_data / "verifiable" / "gsm8k_test.jsonl")
    good, bad = [], []
    for r in data:
        gold = r["answer"].split("####")[-1].strip()
        value = int(gold.replace(",", ""))
        good.append(Sample(response=r["answer"], reference=r["answer"]))
        good.append(Sample(response=f"The answer is {value:,} dollars.", reference=gold))
        good.append(Sample(response=f"<think>try 1 + 1</think> So ${value}.", reference=value))
        bad.append(Sample(response=f"\\boxed{{{value + 1}}}", reference=r["answer"]))
        bad.append(Sample(response=f"The answer is {value - 1}.", reference=gold))
    assert all(s.value == 1.0 for s in math_answer().score_local(good))
    assert all(s.value == 0.0 for s in math_answer().score_local(bad))


# -- limits: pathological inputs cost at most their timeout, and the pool keeps serving ----------


def test_pathological_inputs_fail_closed_quickly():
    # a limit the response hits is the response's failure: 0 with the limit as the reason
    huge_power = score(r"\boxed{10^{10^{10}}+1}", "42")
    assert huge_power.value == 0.0 and "too large" in huge_power.reason
    assert score(r"\boxed{10^{10^{10}}}", r"10^{10^{10}}").value == 1.0  # same text: fast
    deep = score(r"\boxed{" + "{" * 3000 + "1" + "}" * 3000 + "}", "1")
    assert deep.value == 0.0 and "limit" in deep.reason
    nested = score(r"\boxed{" + r"\sqrt{" * 200 + "2" + "}" * 200 + "}", "2")
    assert nested.value == 0.0 and "nested" in nested.reason
    digits = score("9" * 1_000_000, "18")  # the last number is 20,000 digits long
    assert digits.value == 0.0 and "longer than" in digits.reason
    items = score(r"\boxed{" + ", ".join(str(i) for i in range(100)) + "}", "1, 2")
    assert items.value == 0.0 and "elements" in items.reason
    prose = score("so on and so forth " * 60_000 + "The answer is 18.", "18")
    assert prose.value == 1.0
    long_box = score(r"\boxed{" + "1+" * 500_000 + "1}", "18")  # longer than a box may be
    assert long_box.details["extractor"] == "last_number" and long_box.value == 0.0
    assert verify(gold="1", prediction="(" * 5000 + "1" + ")" * 5000).equal is False


def test_a_reference_past_a_limit_or_unparseable_is_a_data_problem():
    # the gold alone meets the limit: not the response's fault, so the sample abstains
    ref = score(r"\boxed{10^{10^{10}}+1}", r"10^{10^{10}}")
    assert ref.status is Status.abstain and ref.reason.startswith("bad reference")
    assert "too large" in ref.reason
    deep = verify(gold="(" * 5000 + "1" + ")" * 5000, prediction="1")
    assert deep.equal is None and deep.bad_reference
    broken = score(r"\boxed{3}", "1 + * 2")
    assert broken.status is Status.abstain and "cannot parse the reference" in broken.reason
    assert score(r"\boxed{1 + * 2}", "1 + * 2").value == 1.0  # the same text still matches
    # one usable gold among unusable ones decides
    assert verify(gold=["1 + * 2", "3"], prediction="3").equal is True
    assert verify(gold=["1 + * 2", "3"], prediction="4").equal is False


def test_symbolic_timeout_kills_the_worker_and_the_pool_keeps_serving():
    close_symbolic_pool()  # a fresh worker loads sympy before the clock starts
    heavy = r"\frac{(x+y)^{200}}{(x-y)^{100}} + \sin(z)^{50}"  # sympy works on this for minutes
    out = _math_symbolic.run_symbolic([("x^2+1", heavy)], tolerance=1e-9, timeout=0.5)
    assert out[0].value != 1.0 and "timeout" in out[0].reason
    slow = score(f"\\boxed{{{heavy}}}", "x^2+1", timeout=0.5)
    assert slow.value != 1.0 and "timeout" in slow.reason
    after = score(r"\boxed{(x+1)^2}", "x^2+2x+1", timeout=30)
    assert after.value == 1.0 and after.details["path"] == "symbolic"


class _SympyOnly(FastComparator):
    """Scalars decided by sympy alone (no exact arithmetic, no float refutation)."""

    def scalar(self, gold, pred):
        return sympy_equal(to_sympy(gold), to_sympy(pred), self.tolerance)


def test_fast_path_agrees_with_sympy_on_real_answers(shared_data):
    data = rows(shared_data / "verifiable" / "math500_test.jsonl")
    checked = 0
    for r in data:
        ans = r["answer"]
        for pred in (_off_by_one(ans), ans.replace(r"\frac", r"\dfrac"), f"-({ans})"):
            if pred is None or pred == ans:
                continue
            fast, reason = fast_check(ans, pred, 1e-9)
            if fast is None:
                continue
            try:
                g, p = parse_answer(normalize(ans)), parse_answer(normalize(pred))
            except MathParseError:
                continue  # compared as text by both paths
            assert equal(g, p, _SympyOnly(1e-9)) is fast, (ans, pred)
            checked += 1
    assert checked > 900


class _FakePool:
    """Stands in for the worker pool: each call answers with the next prepared scores."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def map(self, reward, samples, timeout):
        self.calls.append(("map", [s.response for s in samples]))
        return self.answers.pop(0)

    def run(self, reward, samples, timeout):
        self.calls.append(("run", [s.response for s in samples]))
        return self.answers.pop(0)


def test_a_timeout_is_the_answers_failure_only_when_it_recurs_on_a_warm_worker(monkeypatch):
    from rewardlab.core.types import Score

    timeout = Score.error("timeout: no result within 5s (worker killed)")
    warm_ok = Score.of(0.0)
    # fails again right after the same reference was checked in time: the answer's failure
    pool = _FakePool([timeout], [warm_ok, timeout])
    monkeypatch.setattr(_math_symbolic, "_get_pool", lambda: pool)
    out = _math_symbolic.run_symbolic([("x^2+1", "(x+y)^9")], tolerance=1e-9, timeout=5)
    assert out[0].status is Status.ok and out[0].value == 0.0 and "warm worker" in out[0].reason
    assert pool.calls == [("map", ["(x+y)^9"]), ("run", ["0", "(x+y)^9"])]
    # the warm-up itself fails: nothing can be said about the answer, the error stands
    pool = _FakePool([timeout], [timeout, Score.error("timeout: again")])
    monkeypatch.setattr(_math_symbolic, "_get_pool", lambda: pool)
    out = _math_symbolic.run_symbolic([("x^2+1", "(x+y)^9")], tolerance=1e-9, timeout=5)
    assert out[0].status is Status.error and out[0].reason.startswith("timeout")
    # passes on the retry: the retry's verdict
    pool = _FakePool([timeout], [warm_ok, Score.of(1.0)])
    monkeypatch.setattr(_math_symbolic, "_get_pool", lambda: pool)
    assert _math_symbolic.run_symbolic([("1", "1")], tolerance=1e-9, timeout=5)[0].value == 1.0
