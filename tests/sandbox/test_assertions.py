"""What counts as a test and as a pass: assertions that ran, pytest-style and unittest tests run as
such, trivially true assertions left out; the standard-library code the audit hook lets through
(and the copies of it it does not); a program cannot pass itself off as a sandbox failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rewardlab.sandbox import AssertJob, Limits, Sandbox, StdioJob, split_tests
from rewardlab.sandbox.harness import trivial_assertion

FAST = Limits(timeout=5.0, memory_mb=512)
GOOD = "def f(x):\n    return x + 1\n"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(workers=2)
    yield sb
    sb.close()


def _expr(src: str) -> object:
    import ast

    node = ast.parse(src).body[0]
    assert isinstance(node, ast.Assert)
    return node.test


def test_trivially_true_assertions() -> None:
    for src in ("assert True", "assert 1", "assert 'x'", "assert len([1]) == 1",
                "assert f(1) == f(1)", "assert g(x) <= g(x)"):
        assert trivial_assertion(_expr(src)), src  # type: ignore[arg-type]
    for src in ("assert False", "assert f(1) == 2", "assert f(1) == f(2)", "assert f(x) != f(x)",
                "assert f(1) == f(1) == 2"):
        assert not trivial_assertion(_expr(src)), src  # type: ignore[arg-type]
    # the entry point and HumanEval's candidate are one function
    same = {"sort_third": "candidate"}
    assert trivial_assertion(_expr("assert candidate([1]) == sort_third([1])"), same)  # type: ignore[arg-type]
    # a program function that shadows a builtin is the program's
    assert not trivial_assertion(_expr("assert sum([1, 2]) == 3"), None, frozenset({"sum"}))  # type: ignore[arg-type]


def test_split_runs_pytest_functions_and_unittest_methods() -> None:
    src = ("import unittest\n\n"
           "def helper(x):\n    assert f(x) > x\n\n"
           "def test_direct():\n    assert f(1) == 2\n\n"
           "def test_through_helper():\n    helper(3)\n\n"
           "def test_needs_fixture(tmp_path):\n    assert f(1) == 2\n\n"
           "def test_checks_nothing():\n    pass\n\n"
           "class T(unittest.TestCase):\n"
           "    def test_a(self):\n        self.assertEqual(f(1), 2)\n"
           "    def test_b(self):\n        assert True\n\n"
           "if __name__ == '__main__':\n    unittest.main()\n")
    setup, tests, cand = split_tests(src)
    assert cand is None and "def test_direct" in setup and "unittest.main" not in setup
    assert tests == ["test_direct()", "test_through_helper()", "__rl_case__(T, 'test_a')"]


def test_split_leaves_out_what_checks_nothing() -> None:
    assert split_tests("# assert f(1) == 2\n")[1] == []
    assert split_tests("assert True\nx = 1\n")[1] == []
    check = "def check(candidate):\n    assert True\n    assert candidate(1) == 2\n    assert True\n"
    assert split_tests(check)[1] == []  # no entry point: check is never called
    _, tests, _ = split_tests(check, "f")
    assert len(tests) == 1 and "candidate(1) == 2" in tests[0]


def test_a_test_that_runs_no_assertion_is_reported(sandbox: Sandbox) -> None:
    tests = ["for y in f(0):\n    assert y > 0", "assert f(1) == [2]"]
    empty = sandbox.run(AssertJob("def f(x):\n    return []\n", tests, limits=FAST))
    assert [(t.passed, t.no_assertion) for t in empty.tests] == [(False, True), (False, False)]
    full = sandbox.run(AssertJob("def f(x):\n    return [x + 2]\n", tests, limits=FAST))
    assert [(t.passed, t.no_assertion) for t in full.tests] == [(True, False), (False, False)]


def test_unittest_and_pytest_tests_run_in_the_sandbox(sandbox: Sandbox) -> None:
    src = ("import unittest\n\n"
           "class T(unittest.TestCase):\n"
           "    def test_value(self):\n        self.assertEqual(f(1), 2)\n"
           "    def test_raises(self):\n        with self.assertRaises(TypeError):\n"
           "            f('a')\n\n"
           "def test_plain():\n    assert f(2) == 3\n")
    setup, tests, _ = split_tests(src)
    for program, want in ((GOOD, [True, True, True]), ("def f(x):\n    return 0\n",
                                                        [False, False, False])):
        result = sandbox.run(AssertJob(program, tests, setup=setup, limits=FAST))
        assert [t.passed for t in result.verdicts(len(tests))] == want, result


def test_library_code_that_rewrites_its_own_functions_loads(sandbox: Sandbox) -> None:
    prog = ("import collections, typing, asyncio\nfrom unittest import mock\n"
            "P = collections.namedtuple('P', 'a b', defaults=[0])\n"
            "class Q(typing.NamedTuple):\n    a: int\n    b: int = 5\n"
            "def f(x):\n    return P(x).b + Q(x).b - 5 + mock.Mock(return_value=x + 1)()\n")
    result = sandbox.run(AssertJob(prog, ["assert f(1) == 2"], limits=FAST))
    assert result.loaded and [t.passed for t in result.tests] == [True], result


def test_a_copy_of_the_allowed_library_code_cannot_rewrite_functions(sandbox: Sandbox) -> None:
    # the program compiles its own "namedtuple" under the library's file name to rewrite a
    # standard function the tests use
    prog = ("import collections, random\n"
            "src = 'def namedtuple(fn, code):\\n    fn.__code__ = code\\n'\n"
            "ns = {}\n"
            "exec(compile(src, collections.namedtuple.__code__.co_filename, 'exec'), ns)\n"
            "ns['namedtuple'](random.Random.choice, (lambda self, seq: 7).__code__)\n" + GOOD)
    result = sandbox.run(AssertJob(prog, ["assert random.choice([1]) == 1 and f(1) == 2"],
                                   limits=FAST))
    assert not result.loaded and "rewriting" in (result.load or {}).get("message", "")
    assert [t.passed for t in result.verdicts(1)] == [False]


def test_the_sandbox_setup_exit_code_is_the_programs_own(sandbox: Sandbox) -> None:
    for job in (StdioJob("import os\nos._exit(111)\n", "", FAST),
                AssertJob("import os\nos._exit(111)\n", ["assert f(1) == 2"], limits=FAST),
                AssertJob("import os\ndef f(x):\n    os._exit(111)\n", ["assert f(1) == 2"],
                          limits=FAST)):
        result = sandbox.run(job)
        assert result.status == "exited" and result.exit_code == 111, result
