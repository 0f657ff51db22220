"""Code-execution rewards on real HumanEval and MBPP data (canonical solutions pass, known-wrong
variants fail), stdin/stdout tests, the difficulty-weighted and efficiency rewards, and the
parsing around them."""

from __future__ import annotations

import ast
import gzip
import json
import math
from pathlib import Path
from typing import Any

import pytest

import rewardlab as rl
from rewardlab import Sample, Status
from rewardlab.core.registry import registry
from rewardlab.rewards import code as code_mod
from rewardlab.rewards.code import (
    CodeSuite,
    build_program,
    code_efficiency,
    code_pass,
    code_pass_fraction,
    code_pass_weighted,
    difficulty_weights,
    extract_code,
    outputs_match,
    parse_reference,
)
from rewardlab.sandbox import SandboxError
from rewardlab.sandbox.harness import quiet_parse

# One MBPP canonical solution computes for about 9 s (amicable numbers up to 9999): it is in the
# full run with a longer timeout, not in the fast subset.
SLOW_MBPP = {123}
# The tests of these MBPP tasks compare floats with rel_tol=0.001, so adding 1 to a result in
# the thousands is accepted: that mutant is not detectably wrong.
TOLERANT_MBPP = {82, 85}


@pytest.fixture(scope="module")
def humaneval(shared_data: Path) -> list[dict[str, Any]]:
    path = shared_data / "verifiable" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def mbpp(shared_data: Path) -> list[dict[str, Any]]:
    path = shared_data / "verifiable" / "mbpp_sanitized.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _returns_off_by_one(src: str, names: set[str] | None) -> str:
    """Every `return e` of the named top-level functions becomes `return e + 1`."""
    tree = quiet_parse(src)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and (names is None or node.name in names):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Return) and sub.value is not None:
                    sub.value = ast.BinOp(sub.value, ast.Add(), ast.Constant(1))
    return ast.unparse(tree)


def _bodies_replaced(src: str, body: list[ast.stmt]) -> str:
    tree = quiet_parse(src)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            node.body = body
    return ast.unparse(tree)


def _variants(he: list[dict[str, Any]], mb: list[dict[str, Any]]
              ) -> dict[str, list[tuple[Any, Sample]]]:
    """Canonical solutions and three known-wrong variants of each, as samples."""
    out: dict[str, list[tuple[Any, Sample]]] = {
        "canonical": [], "return None": [], "empty body": [], "off by one": []}
    for r in he:
        full = r["prompt"] + r["canonical_solution"]
        out["canonical"].append((r["task_id"], Sample(response=r["canonical_solution"],
                                                      reference=r)))
        out["return None"].append((r["task_id"], Sample(response="    return None\n",
                                                        reference=r)))
        out["empty body"].append((r["task_id"], Sample(response="    pass\n", reference=r)))
        off = _returns_off_by_one(full, {r["entry_point"]})
        out["off by one"].append((r["task_id"], Sample(response=f"```python\n{off}\n```",
                                                       reference=r)))
    for r in mb:
        out["canonical"].append((r["task_id"], Sample(response=r["code"], reference=r)))
        none_body = [ast.Return(ast.Constant(None))]
        out["return None"].append((r["task_id"], Sample(
            response=_bodies_replaced(r["code"], none_body), reference=r)))  # type: ignore[arg-type]
        out["empty body"].append((r["task_id"], Sample(
            response=_bodies_replaced(r["code"], [ast.Pass()]), reference=r)))
        if r["task_id"] not in TOLERANT_MBPP:
            out["off by one"].append((r["task_id"], Sample(
                response=_returns_off_by_one(r["code"], None), reference=r)))
    return out


def _check_variants(items: dict[str, list[tuple[Any, Sample]]], timeout: float) -> None:
    for kind, pairs in items.items():
        samples = [s for _, s in pairs]
        scores = rl.score(samples, code_pass(timeout=timeout, stop_on_fail=False))
        fractions = rl.score(samples, code_pass_fraction(timeout=timeout))
        assert all(s.ok for s in scores + fractions), kind
        if kind == "canonical":
            bad = [tid for (tid, _), s in zip(pairs, scores, strict=True) if s.value != 1.0]
            assert bad == [], f"canonical solutions failing: {bad}"
            assert all(f.value == 1.0 for f in fractions)
        else:
            bad = [tid for (tid, _), s in zip(pairs, scores, strict=True) if s.value != 0.0]
            assert bad == [], f"{kind} variants passing: {bad}"
            assert all(f.value is not None and f.value < 1.0 for f in fractions)


def test_humaneval_and_mbpp_subset(humaneval: list[dict[str, Any]],
                                   mbpp: list[dict[str, Any]]) -> None:
    he = humaneval[::8]
    mb = [r for r in mbpp[::16] if r["task_id"] not in SLOW_MBPP]
    _check_variants(_variants(he, mb), timeout=5.0)


@pytest.mark.slow
def test_every_humaneval_and_mbpp_solution(humaneval: list[dict[str, Any]],
                                           mbpp: list[dict[str, Any]]) -> None:
    _check_variants(_variants(humaneval, mbpp), timeout=30.0)


def test_details_hold_one_result_per_test(humaneval: list[dict[str, Any]]) -> None:
    task = humaneval[0]  # has_close_elements: seven asserts in check()
    wrong = "    return len(numbers) > 3\n"
    score = rl.score([Sample(response=wrong, reference=task)], code_pass_fraction())[0]
    details = score.details
    assert details is not None and details["mode"] == "assert"
    assert details["total"] == 7 == len(details["tests"])
    assert score.value == pytest.approx(details["passed"] / 7)
    assert 0 < details["passed"] < 7
    failing = [t for t in details["tests"] if not t["passed"]]
    assert all(t["message"] == "AssertionError" and t["test"].startswith("assert candidate(")
               for t in failing)


def test_program_extraction_and_prefix(humaneval: list[dict[str, Any]]) -> None:
    task = humaneval[2]  # truncate_number
    full = task["prompt"] + task["canonical_solution"]
    chatty = (f"<think>```python\nprint('draft')\n```</think>Here:\n```python\n{full}\n```\n"
              "Done.")
    as_body = task["canonical_solution"]
    scores = rl.score([Sample(response=r, reference=task) for r in (chatty, as_body, full)],
                      code_pass())
    assert [s.value for s in scores] == [1.0, 1.0, 1.0]
    fence_only = rl.score([Sample(response=as_body, reference=task)],
                          code_pass(extract="fence"))[0]
    assert fence_only.value == 0.0 and fence_only.details["run"]["status"] == "no_program"


def test_extract_code_and_build_program() -> None:
    text = "a\n```\nuntagged\n```\n```py\nfirst\n```\n```python\nlast\n```"
    assert extract_code(text) == "last\n"
    assert extract_code("```\nonly\n```") == "only\n"
    assert extract_code("no fences", extract="fence") is None
    assert extract_code("<think>x</think>body", extract="raw") == "body"
    suite = CodeSuite(mode="assert", tests=("assert f(1)",), entry_point="f",
                      prefix="def f(x):\n")
    assert build_program("    return x\n", suite) == "def f(x):\n    return x\n"
    assert build_program("def f(x):\n    return 1\n", suite).startswith("def f(x):\n\n\n")
    assert build_program("    return x\n", suite, "never") == "    return x\n"


# -- stdin / stdout -------------------------------------------------------------------------------

SUM_PROBLEM = {
    "inputs": ["3\n1 2 3\n", "1\n-5\n", "4\n10 20 30 40\n"],
    "outputs": ["6\n", "-5", "100\n\n"],
}


def test_stdio_tests_compare_outside_the_sandbox() -> None:
    right = "n = int(input())\nprint(sum(map(int, input().split())))\n"
    wrong = "n = int(input())\nprint(max(map(int, input().split())))\n"  # right once
    crash = "raise SystemExit('bad input')\n"
    samples = [Sample(response=p, reference=SUM_PROBLEM) for p in (right, wrong, crash)]
    fr = rl.score(samples, code_pass_fraction())
    assert [s.value for s in fr] == [1.0, pytest.approx(1 / 3), 0.0]
    assert fr[1].details["tests"][0]["message"] == "wrong answer"
    assert "exit code 1" in fr[2].details["tests"][0]["message"]
    apps = {"input_output": json.dumps({"inputs": SUM_PROBLEM["inputs"],
                                        "outputs": SUM_PROBLEM["outputs"]})}
    assert rl.score([Sample(response=right, reference=apps)], code_pass())[0].value == 1.0


def test_stop_on_fail_skips_remaining_stdio_runs() -> None:
    wrong = "print(0)\n"
    score = rl.score([Sample(response=wrong, reference=SUM_PROBLEM)], code_pass())[0]
    assert score.value == 0.0
    assert score.details["passed"] == 0 and score.details["skipped"] >= 1


def test_outputs_match_modes() -> None:
    assert outputs_match("1 2\n3  \n\n", "1 2\n3")
    assert not outputs_match("1  2\n3", "1 2\n3")
    assert outputs_match("1  2\n3", "1 2 3", compare="tokens")
    assert not outputs_match("1\n", "1", compare="exact")
    assert outputs_match("0.3333333\n", "0.333333333", float_tol=1e-6)
    assert not outputs_match("0.34\n", "0.333333333", float_tol=1e-6)
    assert not outputs_match("inf", "1e309", float_tol=1e-6)


# -- references -----------------------------------------------------------------------------------

def test_parse_reference_shapes(humaneval: list[dict[str, Any]],
                                mbpp: list[dict[str, Any]]) -> None:
    he = parse_reference(humaneval[0])
    assert he.mode == "assert" and he.entry_point == "has_close_elements"
    assert he.candidate == "candidate" and len(he.tests) == 7 and len(he.solutions) == 1
    mb = parse_reference(mbpp[0])
    assert len(mb.tests) == len(mbpp[0]["test_list"]) and mb.expose == ("similar_elements",)
    assert parse_reference(["assert f(1) == 1", "assert f(2) == 2"]).tests == (
        "assert f(1) == 1", "assert f(2) == 2")
    assert len(parse_reference("def helper():\n    pass\nassert f(1)\nassert f(2)\n").tests) == 2
    cases = parse_reference({"cases": [{"input": "1", "output": "2"}]})
    assert cases.mode == "stdio" and cases.outputs == ("2",)
    for bad in ({"inputs": ["1"], "outputs": []}, {"nothing": 1}, 5,
                {"tests": ["assert f(1)"], "weights": [1, 2]}):
        with pytest.raises(ValueError):
            parse_reference(bad)


def test_missing_and_unusable_references() -> None:
    samples = [Sample(response="x = 1", reference=None),
               Sample(response="x = 1", reference={"tests": "assert ("})]
    none, bad = rl.score(samples, code_pass())
    assert none.status is Status.abstain and "reference" in (none.reason or "")
    assert bad.status is Status.error and "unusable reference" in (bad.reason or "")


def test_sandbox_failure_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        async def arun(self, job: object) -> None:
            raise SandboxError("the sandbox server closed the connection")

    monkeypatch.setattr(code_mod, "runtime_sandbox", lambda: Broken())
    score = rl.score([Sample(response="def f(x): return x",
                             reference=["assert f(1) == 1"])], code_pass())[0]
    assert score.status is Status.error and "sandbox" in (score.reason or "")


# -- difficulty-weighted partial credit -------------------------------------------------------------

TRIPLE = ["assert f(1) == 2", "assert f(2) == 3", "assert f(-4) == -3"]
GOOD = "def f(x):\n    return x + 1\n"
POSITIVE_ONLY = "def f(x):\n    return x + 1 if x > 0 else 0\n"


def test_weighted_with_given_weights_and_pass_rates() -> None:
    given = {"tests": TRIPLE, "weights": [1, 1, 6]}
    rates = {"tests": TRIPLE, "pass_rates": [1.0, 1.0, 0.25]}
    samples = [Sample(response=POSITIVE_ONLY, reference=given),
               Sample(response=POSITIVE_ONLY, reference=rates),
               Sample(response=GOOD, reference=rates)]
    s = rl.score(samples, code_pass_weighted(partial=0.5, floor=0.1))
    assert s[0].value == pytest.approx(0.5 * 2 / 8)
    w = [0.1, 0.1, 0.1 + 0.75]
    assert s[1].value == pytest.approx(0.5 * (w[0] + w[1]) / sum(w))
    assert s[1].details["weights"] == pytest.approx(w)
    assert s[2].value == 1.0 and s[2].components["dense"] == pytest.approx(1.0)


def test_weighted_measures_difficulty_from_reference_solutions() -> None:
    # Of three reference solutions, all pass tests 1 and 2, one passes test 3: test 3 is hard.
    ref = {"tests": TRIPLE, "solutions": [GOOD, POSITIVE_ONLY, POSITIVE_ONLY]}
    only_hard = "def f(x):\n    return x + 1 if x < 0 else 0\n"
    s = rl.score([Sample(response=POSITIVE_ONLY, reference=ref),
                  Sample(response=only_hard, reference=ref)], code_pass_weighted())
    rates = [1.0, 1.0, 1 / 3]
    w = [0.1 + 1 - p for p in rates]
    assert s[0].details["weights_from"] == "pass rates of 3 reference solution(s)"
    assert s[0].value == pytest.approx(0.5 * (w[0] + w[1]) / sum(w))
    assert s[1].value == pytest.approx(0.5 * w[2] / sum(w))
    assert s[1].value > s[0].value  # the hard test is worth more than both easy ones
    frac = rl.score([Sample(response=POSITIVE_ONLY, reference=ref),
                     Sample(response=only_hard, reference=ref)], code_pass_fraction())
    assert frac[0].value > frac[1].value  # plain fractions order them the other way


def test_difficulty_weights_fallback_is_uniform() -> None:
    suite = parse_reference({"tests": TRIPLE})
    weights, source = difficulty_weights(suite, None, 0.1)
    assert weights == [1.0, 1.0, 1.0] and source.startswith("uniform")


# -- efficiency ---------------------------------------------------------------------------------------

SLOW = "import time\ndef f(x):\n    time.sleep(0.05)\n    return x + 1\n"


def test_efficiency_is_gated_on_passing_every_test() -> None:
    fast_ref = {"tests": TRIPLE, "runtime": 1e-9}
    slow_ref = {"tests": TRIPLE, "runtime": 1000.0}
    samples = [Sample(response=POSITIVE_ONLY, reference=fast_ref),
               Sample(response=SLOW, reference=fast_ref),
               Sample(response=GOOD, reference=slow_ref)]
    s = rl.score(samples, code_efficiency(bonus=0.2, max_speedup=4.0))
    assert s[0].value == 0.0 and s[0].details["efficiency"] is None
    # 3 x 50 ms against a 1 ms floor: over 4x slower, no bonus at all.
    assert s[1].value == pytest.approx(0.8) and s[1].components["efficiency"] == 0.0
    # far faster than a 1000 s baseline: the whole bonus.
    assert s[2].value == pytest.approx(1.0)
    assert s[2].details["efficiency"]["baseline"] == "given runtime"


def test_efficiency_measures_the_reference_solution_and_abstains_without_one() -> None:
    ref = {"tests": TRIPLE, "solution": SLOW}
    s = rl.score([Sample(response=GOOD, reference=ref),
                  Sample(response=GOOD, reference={"tests": TRIPLE})], code_efficiency())
    assert s[0].ok and s[0].details["efficiency"]["baseline"].startswith("fastest")
    assert s[0].details["efficiency"]["reference_seconds"] >= 0.15
    assert s[0].components["efficiency"] == 1.0  # >= 4x faster than 3 x 50 ms
    assert s[1].status is Status.abstain


def test_rewards_are_registered_with_their_meaning() -> None:
    for name in ("code_pass", "code_pass_fraction", "code_pass_weighted", "code_efficiency"):
        info = registry.get(name).info
        assert info.kind == "io" and info.range == (0.0, 1.0)
        assert info.description and not info.description.endswith(",")
    bad = rl.score([Sample(response="x", reference=TRIPLE)], code_pass_weighted(partial=1.5))[0]
    assert bad.status is Status.error and "partial" in (bad.reason or "")
    assert math.isfinite(code_pass().info.timeout)
