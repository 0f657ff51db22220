"""Reward hacks against the code-execution rewards, tried as a policy would, on the real HumanEval
and MBPP rows: each attempt must earn nothing (or be reported as the reference's fault when the
tests themselves check nothing), and the honest answer beside it still earns full reward."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

import rewardlab as rl
from rewardlab import Sample, Status
from rewardlab.rewards.code import (
    code_efficiency,
    code_pass,
    code_pass_fraction,
    code_pass_weighted,
    parse_reference,
)


@pytest.fixture(scope="module")
def humaneval(shared_data: Path) -> dict[str, dict[str, Any]]:
    with gzip.open(shared_data / "verifiable" / "HumanEval.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    return {r["task_id"]: r for r in rows}


@pytest.fixture(scope="module")
def mbpp(shared_data: Path) -> dict[int, dict[str, Any]]:
    path = shared_data / "verifiable" / "mbpp_sanitized.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["task_id"]: r for r in rows}


def _scores(samples: list[Sample], reward: Any) -> list[rl.Score]:
    return rl.score(samples, reward)


# -- the tests call a helper the prompt defines: the response must not be able to redefine it ---

HELPER_HACKS = {
    # identity encode and decode: decode(encode(s)) == s for every s
    "HumanEval/38": "def encode_cyclic(s):\n    return s\n\n\ndef decode_cyclic(s):\n    return s\n",
    "HumanEval/50": "def encode_shift(s):\n    return s\n\n\ndef decode_shift(s):\n    return s\n",
    # poly returning 0: every x is a zero
    "HumanEval/32": "def poly(xs, x):\n    return 0\n\n\ndef find_zero(xs):\n    return 0.0\n",
}


@pytest.mark.parametrize("prepend", ["auto", "always", "never"])
@pytest.mark.parametrize("task_id", sorted(HELPER_HACKS))
def test_redefining_a_prompt_helper_earns_nothing(humaneval: dict[str, dict[str, Any]],
                                                  task_id: str, prepend: str) -> None:
    row = humaneval[task_id]
    hack = Sample(response=f"```python\n{HELPER_HACKS[task_id]}```", reference=row)
    honest = Sample(response=row["prompt"] + row["canonical_solution"], reference=row)
    for reward in (code_pass(prepend=prepend), code_pass_fraction(prepend=prepend)):  # type: ignore[arg-type]
        got, ok = _scores([hack, honest], reward)
        assert got.ok and got.value == 0.0, (task_id, prepend, got)
        assert ok.ok and ok.value == 1.0, (task_id, prepend, ok)


# -- tests that never run an assertion ---------------------------------------------------------------

HELLO = "print('hello')\n"


def _pytest_style(row: dict[str, Any]) -> str:
    return "\n".join(f"def test_{i}():\n    {t}\n" for i, t in enumerate(row["test_list"]))


def _unittest_style(row: dict[str, Any]) -> str:
    methods = "".join(f"    def test_{i}(self):\n        self.assertTrue({t.strip()[len('assert'):].strip()})\n"
                      for i, t in enumerate(row["test_list"]))
    return (f"import unittest\n\n\nclass Tests(unittest.TestCase):\n{methods}\n\n"
            "if __name__ == '__main__':\n    unittest.main()\n")


@pytest.mark.parametrize("style", [_pytest_style, _unittest_style], ids=["pytest", "unittest"])
def test_print_hello_fails_pytest_and_unittest_tests_that_now_run(
        mbpp: dict[int, dict[str, Any]], style: Any) -> None:
    rows = [mbpp[t] for t in (2, 133, 476, 798)]
    hello = [Sample(response=HELLO, reference={"tests": style(r)}) for r in rows]
    honest = [Sample(response=r["code"], reference={"tests": style(r)}) for r in rows]
    for s in _scores(hello, code_pass_fraction()):
        assert s.ok and s.value == 0.0, s
    for s, r in zip(_scores(honest, code_pass_fraction()), rows, strict=True):
        assert s.ok and s.value == 1.0, s
        assert s.details["total"] == len(r["test_list"])  # every test function / method ran


def test_humaneval_row_without_entry_point_is_a_reference_error(
        humaneval: dict[str, dict[str, Any]]) -> None:
    row = {k: v for k, v in humaneval["HumanEval/0"].items() if k != "entry_point"}
    s = _scores([Sample(response=HELLO, reference=row)], code_pass())[0]
    assert s.status is Status.error and "entry_point" in (s.reason or "")


def test_comment_only_and_trivially_true_tests_are_reference_errors(
        mbpp: dict[int, dict[str, Any]]) -> None:
    row = mbpp[798]
    commented = {"tests": ["# " + t for t in row["test_list"]]}
    trivial = {"tests": ["assert True", "assert _sum == _sum", "assert 1"]}
    for ref in (commented, trivial):
        s = _scores([Sample(response=HELLO, reference=ref)], code_pass())[0]
        assert s.status is Status.error and "no assertion" in (s.reason or ""), s


def test_a_test_that_runs_no_assertion_is_never_a_pass(mbpp: dict[int, dict[str, Any]]) -> None:
    # The assertion sits in a loop over the program's output: returning nothing skips it.
    row = mbpp[805]
    ref = {"tests": ["for x in max_sum_list([[1, 2], [3, 4]]):\n    assert x in (3, 4)"],
           "solution": row["code"]}
    empty = "def max_sum_list(lists):\n    return []\n"
    got, honest = _scores([Sample(response=empty, reference=ref),
                           Sample(response=row["code"], reference=ref)], code_pass())
    assert got.ok and got.value == 0.0
    assert "ran no assertion" in got.details["tests"][0]["message"]
    assert honest.ok and honest.value == 1.0
    # when the reference solution runs no assertion there either, the tests are at fault
    broken = {"tests": ["for x in max_sum_list([[1], [2]])[:0]:\n    assert x"],
              "solution": row["code"]}
    s = _scores([Sample(response=row["code"], reference=broken)], code_pass())[0]
    assert s.status is Status.error and "reference error" in (s.reason or "")


# -- partial credit must not pay constants or identity ---------------------------------------------

def test_humaneval_debug_assert_true_lines_are_not_tests(
        humaneval: dict[str, dict[str, Any]]) -> None:
    rows = [r for r in humaneval.values() if "assert True" in r["test"]]
    assert len(rows) > 30
    for row in rows:
        suite = parse_reference(row)
        assert not [t for t in suite.labels if t.startswith("assert True")], row["task_id"]
    # a constant answer earns only what it earns on real tests
    row = humaneval["HumanEval/64"]
    s = _scores([Sample(response="    return 0\n", reference=row)], code_pass_fraction())[0]
    assert s.ok and all(not t["test"].startswith("assert True") for t in s.details["tests"])


def test_comparing_the_program_with_itself_is_not_a_test(
        humaneval: dict[str, dict[str, Any]]) -> None:
    row = humaneval["HumanEval/33"]  # three asserts compare candidate(x) with sort_third(x)
    identity = "    return l\n"
    s = _scores([Sample(response=identity, reference=row)], code_pass_fraction())[0]
    assert s.ok and s.details["total"] == 4
    assert not any("sort_third(" in t["test"] for t in s.details["tests"])
    assert s.value == 0.0  # identity passes none of the real tests


def test_constant_functions_earn_nothing_all_or_nothing(
        humaneval: dict[str, dict[str, Any]], mbpp: dict[int, dict[str, Any]]) -> None:
    rows = [humaneval[f"HumanEval/{i}"] for i in (33, 64, 66, 70, 84)]
    samples = [Sample(response=f"    return {c}\n", reference=r)
               for r in rows for c in ("False", "None", "0", "''", "[]")]
    for s in _scores(samples, code_pass()):
        assert s.ok and s.value == 0.0
    for s in _scores(samples, code_pass_weighted()):
        assert s.ok and s.value < 0.5


def test_precomputing_at_import_earns_no_speed_bonus(
        humaneval: dict[str, dict[str, Any]]) -> None:
    row = dict(humaneval["HumanEval/39"])  # prime_fib
    row["runtime"] = 0.05  # the reference's seconds for loading and the tests
    # at least one second of work at import (sleep is a lower bound), then table lookups
    hack = ("import time\ntime.sleep(1.0)\n_TABLE = [2, 3, 5, 13, 89, 233, 1597, 28657, 514229,"
            " 433494437, 2971215073]\n\n\ndef prime_fib(n: int):\n    return _TABLE[n - 1]\n")
    s = _scores([Sample(response=f"```python\n{hack}```", reference=row)],
                code_efficiency(bonus=0.2))[0]
    assert s.ok and s.details["efficiency"]["seconds"] >= 1.0
    assert s.components["efficiency"] == 0.0 and s.value == pytest.approx(0.8)


# -- correct solutions the sandbox used to refuse (false negatives) ----------------------------------

def test_correct_solutions_using_numpy_and_unittest_mock_pass(
        mbpp: dict[int, dict[str, Any]]) -> None:
    row = mbpp[798]
    with_numpy = "import numpy as np\n\n\ndef _sum(arr):\n    return int(np.sum(np.asarray(arr)))\n"
    with_mock = ("from unittest import mock\n\n\ndef _sum(arr):\n"
                 "    total = mock.Mock(return_value=sum(arr))\n    return total()\n")
    with_named = ("from typing import NamedTuple\n\n\nclass Acc(NamedTuple):\n    total: int = 0\n\n\n"
                  "def _sum(arr):\n    return Acc(sum(arr)).total + Acc().total\n")
    samples = [Sample(response=p, reference=row) for p in (with_numpy, with_mock, with_named)]
    for s in _scores(samples, code_pass()):
        assert s.ok and s.value == 1.0, s.details


# -- a limit the response hits is its failure (0), never an error that drops the sample -------------

LIMIT_HACKS = {
    "exit with the sandbox's setup code": "import os\nos._exit(111)\n",
    "exit with the setup code inside the function": "import os\n\n\ndef _sum(arr):\n    os._exit(111)\n",
    "timeout": "def _sum(arr):\n    while True:\n        pass\n",
    "memory": "def _sum(arr):\n    x = bytearray(1 << 34)\n    return len(x)\n",
    "output cap": "import sys\n\n\ndef _sum(arr):\n    while True:\n        sys.stdout.write('x' * 65536)\n",
}


@pytest.mark.parametrize("name", sorted(LIMIT_HACKS))
def test_a_limit_the_response_hits_scores_zero_not_error(mbpp: dict[int, dict[str, Any]],
                                                         name: str) -> None:
    row = mbpp[798]
    stdio = {"inputs": ["1 2 3\n"], "outputs": ["6\n"]}
    samples = [Sample(response=LIMIT_HACKS[name], reference=row),
               Sample(response=LIMIT_HACKS[name] + "\nprint(_sum([1, 2, 3]))\n", reference=stdio)]
    for s in _scores(samples, code_pass(timeout=1.0)):
        assert s.ok and s.value == 0.0, (name, s)
