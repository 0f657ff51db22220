"""Code-execution rewards: run model-written Python against tests, in the sandbox.

Two kinds of tests, read from the sample's `reference`:

- **assert tests** (HumanEval / MBPP style): ``{"tests": [...] or "code", "entry_point": ...,
  "setup": ..., "prefix": ...}``. HumanEval rows work as they are (``test`` defining
  ``check(candidate)``, ``entry_point``, ``prompt`` as the prefix, ``canonical_solution``), and so
  do MBPP rows (``test_list``, ``test_setup_code``, ``code``). Each assert (or HumanEval
  ``check`` statement holding one) is one test with its own verdict.
- **stdin/stdout tests** (competitive programming): ``{"inputs": [...], "outputs": [...]}``, an
  APPS-style ``input_output`` (JSON text or dict), or ``{"cases": [{"input", "output"}]}``. Each
  input is a separate run; the output is compared here, outside the sandbox (``compare``:
  ``lines`` ignores trailing spaces and blank lines, ``tokens`` ignores all whitespace,
  ``exact``; ``float_tol`` accepts numbers within that absolute or relative tolerance).

Optional keys: ``weights`` (per test) or ``pass_rates`` (per test, the share of reference
solutions that pass it) for `code_pass_weighted`; ``solutions`` / ``solution`` (reference
programs: difficulty from how many pass each test, and the runtime baseline of
`code_efficiency`); ``runtime`` (the baseline in seconds, measured like the candidate's).

The program is the response's last fenced Python block (or the whole response when it has
none; ``extract``), read from the final text after any ``<think>`` block (`rewardlab.core.text`).
With a ``prefix`` (HumanEval's prompt) and ``prepend="auto"``, a response that is a body
continues the prefix, and a response that defines the entry point itself is appended after it
(so the prompt's helpers exist).

Every score's ``details`` holds the per-test results: ``tests`` (label, passed, seconds,
message), ``passed``, ``total``, the run status, and the program's stderr head.

How these rewards run, and why ``io``: a sample is one request (assert tests) or one request per
input (stdin/stdout) to the Runtime's sandbox (one per Runtime, closed with it), a warm
fork server that runs up to one program per core at once and enforces every limit itself (wall
clock per test, CPU, memory, processes, output). The rewards are async ``io``-kind rewards, so
the engine keeps many samples in flight (``max_concurrency``) and the server decides the
parallelism: nothing is parallel twice. As ``cpu``-kind rewards they would run inside the
engine's worker pool, whose every worker would need a fork server of its own (pools nested in
a pool, two sets of timeouts, fewer programs per core in flight). The engine's timeout (900 s)
is only a backstop; set the sandbox's size with ``rewardlab.sandbox.configure(workers=...)`` or
``REWARDLAB_SANDBOX_WORKERS``. Failures of the sandbox itself are ``error`` scores; everything
the program does (crash, timeout, exit, tampering) fails its tests.

`strict` (default on) refuses test values whose classes the program defined with their own
comparison or arithmetic ("always equal" objects); `stop_on_fail` (`code_pass`) skips the tests
after the first failure, which cannot change an all-or-nothing score.

What a policy cannot get paid for:

- **redefining what the tests use from the prompt**: the prompt's own definitions of the names
  the tests use (HumanEval's ``encode_cyclic``, ``encode_shift``, ``poly``; `prompt_helpers`) run
  in the tests' namespace, whatever the response defines (every ``prepend`` mode);
- **tests that check nothing**: a test passes only if an assertion ran in it and held (assert
  statements, ``self.assert*`` / ``assert_*`` calls, ``pytest.raises``). Pytest-style
  ``def test*()`` functions and ``unittest.TestCase`` methods are run as tests; trivially true
  asserts (``assert True``, an expression compared with itself, such as HumanEval/33's
  ``candidate(x) == sort_third(x)``) are not tests. A reference whose tests can run no assertion
  (comment-only, uncalled functions, a HumanEval ``check`` without ``entry_point``) is an error; a
  test that ran none is never a pass: the reference's fault (error) when the reference solutions
  run none there either, else the program's (the test fails);
- **work at import time**: `code_efficiency` times loading the program's module as well as the
  tests.

The three cases a trainer needs to know:

- **a response with no code** (nothing extractable, or an empty program) scores 0 (details
  ``run.status = "no_program"``);
- **a limit the response hits** (its wall-clock or CPU time, memory, output cap, a crash, its own
  ``exit``, even with the sandbox's own exit code) fails the tests it did not pass: 0 (or the
  partial credit it earned), status ok, with the reason in each test's message. A whole run is
  capped at `MAX_RUN_SECONDS`, and the engine's timeout is only a far backstop, so a slow
  program is timed out by the sandbox rather than turned into an error;
- **a failure that is not the response's fault** is an error with the reason: the sandbox
  itself (it cannot start, it died), an unusable reference (no tests, tests that do not parse
  or run no assertion); a sample without a reference abstains.
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardlab.core.reward import check_timeout, reward
from rewardlab.core.settings import splice
from rewardlab.core.text import after_think, last_fence, prompt_opens_think
from rewardlab.core.types import Score
from rewardlab.runtime.current import current_runtime
from rewardlab.sandbox import (
    AssertJob,
    Limits,
    RunResult,
    Sandbox,
    SandboxError,
    StdioJob,
    configured_sandbox,
    split_tests,
    test_label,
)
from rewardlab.sandbox.harness import quiet_parse

Extract = Literal["auto", "fence", "raw"]
Prepend = Literal["auto", "always", "never"]
Compare = Literal["lines", "tokens", "exact"]

_PY_TAGS = frozenset({"python", "py", "python3", "py3"})


class ReferenceFormatError(ValueError):
    """The reference holds no usable tests."""


# -- reading references ------------------------------------------------------------------------

@dataclass(frozen=True)
class CodeSuite:
    """Tests parsed from a reference. `tests` are test sources (assert mode) or inputs (stdio
    mode, with `outputs`)."""

    mode: Literal["assert", "stdio"]
    tests: tuple[str, ...]
    outputs: tuple[str, ...] = ()
    setup: str = ""
    entry_point: str | None = None
    candidate: str | None = None
    prefix: str = ""
    expose: tuple[str, ...] = ()
    weights: tuple[float, ...] | None = None
    pass_rates: tuple[float, ...] | None = None
    solutions: tuple[str, ...] = ()
    runtime: float | None = None
    labels: tuple[str, ...] = field(default=())


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _floats(value: Any, n: int, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    out = tuple(float(v) for v in value)
    if len(out) != n:
        raise ReferenceFormatError(f"{name} has {len(out)} entries for {n} tests")
    if any(not math.isfinite(v) or v < 0 for v in out):
        raise ReferenceFormatError(f"{name} must be finite and non-negative")
    return out


def _defined_names(code: str) -> set[str]:
    try:
        tree = quiet_parse(code)
    except SyntaxError:
        return set()
    return {n.name for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


def _stdio_cases(ref: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    if "input_output" in ref:
        io_spec = ref["input_output"]
        if isinstance(io_spec, str):
            io_spec = json.loads(io_spec)
        return _as_list(io_spec.get("inputs")), _as_list(io_spec.get("outputs"))
    if "inputs" in ref or "outputs" in ref:
        return _as_list(ref.get("inputs")), _as_list(ref.get("outputs"))
    if "cases" in ref:
        ins, outs = [], []
        for case in ref["cases"]:
            ins.append(case.get("input", case.get("stdin", "")))
            outs.append(case.get("output", case.get("stdout", "")))
        return ins, outs
    return None


def _text(value: Any) -> str:
    if isinstance(value, list):  # some data sets store lines
        return "\n".join(str(v) for v in value)
    return str(value)


_PARSED: OrderedDict[str, CodeSuite] = OrderedDict()
_PARSED_LOCK = threading.Lock()


def parse_reference(reference: Any, metadata: dict[str, Any] | None = None) -> CodeSuite:
    """The tests a reference describes (see the module docstring). Raises `ValueError` when it
    holds none, or they do not parse. Memoised: the samples of a group share a reference."""
    try:
        key = json.dumps([reference, (metadata or {}).get("entry_point")], sort_keys=True)
    except (TypeError, ValueError):
        return _parse_reference(reference, metadata)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
        if hit is not None:
            _PARSED.move_to_end(key)
            return hit
    suite = _parse_reference(reference, metadata)
    with _PARSED_LOCK:
        _PARSED[key] = suite
        while len(_PARSED) > 4096:
            _PARSED.popitem(last=False)
    return suite


def _parse_reference(reference: Any, metadata: dict[str, Any] | None) -> CodeSuite:
    metadata = metadata or {}
    ref: Any = reference
    if isinstance(ref, str):
        stripped = ref.strip()
        if stripped[:1] in "[{":
            try:
                ref = json.loads(stripped)
            except json.JSONDecodeError:
                pass
    if isinstance(ref, str):
        ref = {"tests": ref}
    elif isinstance(ref, list | tuple):
        ref = {"tests": list(ref)}
    if not isinstance(ref, dict):
        raise ReferenceFormatError(f"unsupported reference type {type(ref).__name__}")
    solutions = [str(s) for s in _as_list(ref.get("solutions"))]
    prefix = str(ref.get("prefix", ref.get("prompt", "")) or "")
    for key in ("solution", "code"):
        if ref.get(key):
            solutions.append(str(ref[key]))
    if ref.get("canonical_solution"):
        solutions.append(prefix + str(ref["canonical_solution"]))
    runtime = ref.get("runtime")
    runtime = float(runtime) if runtime is not None else None
    cases = _stdio_cases(ref)
    if cases is not None:
        ins, outs = cases
        if not ins or len(ins) != len(outs):
            raise ReferenceFormatError(f"stdin/stdout tests need as many outputs as inputs "
                                  f"({len(ins)} inputs, {len(outs)} outputs)")
        n = len(ins)
        inputs = tuple(_text(i) for i in ins)
        return CodeSuite(
            mode="stdio", tests=inputs, outputs=tuple(_text(o) for o in outs),
            weights=_floats(ref.get("weights"), n, "weights"),
            pass_rates=_floats(ref.get("pass_rates"), n, "pass_rates"),
            solutions=tuple(solutions), runtime=runtime,
            labels=tuple(f"input {i}: " + t[:60].replace("\n", "\\n")
                         for i, t in enumerate(inputs)),
        )
    raw = ref.get("tests", ref.get("test", ref.get("test_list")))
    if raw is None or raw == [] or raw == "":
        raise ReferenceFormatError("the reference has no tests (expected tests / test / test_list, "
                              "or inputs and outputs)")
    entry = ref.get("entry_point") or metadata.get("entry_point")
    setup = str(ref.get("setup", ref.get("test_setup_code", "")) or "")
    expose: set[str] = set()
    for sol in solutions:
        expose |= _defined_names(sol)
    names = tuple(sorted(expose))
    tests: list[str] = []
    candidate = None
    sources = [raw] if isinstance(raw, str) else [str(item) for item in raw]
    for item in sources:
        part_setup, part_tests, part_candidate = split_tests(item, entry, names)
        if part_setup.strip():
            setup = "\n".join(p for p in (setup, part_setup) if p.strip())
        tests.extend(part_tests)
        candidate = candidate or part_candidate
    if not tests:
        raise ReferenceFormatError(_no_tests_reason(sources, entry))
    helpers = prompt_helpers(prefix, entry, [setup, *tests])
    if helpers:
        setup = helpers + "\n" + setup
    n = len(tests)
    return CodeSuite(
        mode="assert", tests=tuple(tests), setup=setup, entry_point=entry, candidate=candidate,
        prefix=prefix, expose=tuple(sorted(expose)),
        weights=_floats(ref.get("weights"), n, "weights"),
        pass_rates=_floats(ref.get("pass_rates"), n, "pass_rates"),
        solutions=tuple(solutions), runtime=runtime,
        labels=tuple(test_label(t) for t in tests),
    )


def _no_tests_reason(sources: list[str], entry: str | None) -> str:
    defines_check = any("check" in _defined_names(s) for s in sources)
    if defines_check and not entry:
        return ("the tests define check(candidate) but the reference names no entry_point to "
                "pass to it: they would run no assertion")
    return ("the tests run no assertion that checks the program (module-level asserts, "
            "pytest-style test functions without arguments and unittest.TestCase methods run; "
            "trivially true asserts do not count)")


def _loaded_names(code: str) -> set[str]:
    try:
        tree = quiet_parse(code)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def prompt_helpers(prefix: str, entry_point: str | None, test_code: Sequence[str]) -> str:
    """The prompt's own definitions that the tests use (HumanEval's ``encode_cyclic``,
    ``encode_shift``, ``poly``), with what they use of the prompt and its imports, as source to
    run in the tests' namespace before the tests: a response that redefines them changes its
    own copies, never what the tests compute. Empty when the tests use none (or the prompt does
    not parse)."""
    if not prefix.strip():
        return ""
    tree = None
    for text in (prefix, prefix.rstrip() + "\n    pass\n"):
        try:
            tree = quiet_parse(text)
            break
        except SyntaxError:
            continue
    if tree is None:
        return ""
    defs: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defs[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    defs[t.id] = stmt
    defs.pop(entry_point or "", None)
    used = set().union(*(_loaded_names(code) for code in test_code))
    todo = [name for name in used if name in defs]
    needed: set[str] = set()
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        inner = {n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name)}
        todo.extend(inner & defs.keys() - needed)
    if not needed:
        return ""
    chosen = {id(defs[name]) for name in needed}
    keep = [s for s in tree.body
            if id(s) in chosen or isinstance(s, ast.Import | ast.ImportFrom)]
    return "\n".join(ast.unparse(s) for s in keep) + "\n"


# -- programs from responses -------------------------------------------------------------------

def extract_code(text: str, *, extract: Extract = "auto", strip_think: bool = True,
                 opened: bool = False) -> str | None:
    """The program in a response: the last fenced Python block (an untagged block if none is
    tagged), or the whole text (`extract="raw"`, or `"auto"` without fences). None when
    `extract="fence"` finds no block. With `strip_think`, only the final text counts (after
    the last ``</think>``, nothing after an unclosed ``<think>``, all of it thinking without a
    ``</think>`` when `opened`, its prompt having opened the think block; see
    `rewardlab.core.text`, which also defines the fences)."""
    if strip_think:
        text = after_think(text, opened=opened)
    if extract == "raw":
        return text
    fence = last_fence(text, _PY_TAGS)
    if fence is not None:
        return fence.body
    return None if extract == "fence" else text


def build_program(code: str, suite: CodeSuite, prepend: Prepend = "auto") -> str:
    """The program to run: `code`, with the suite's prefix before it when asked (`"auto"`: a
    body continues the prefix; a full definition of the entry point follows it)."""
    if not suite.prefix or prepend == "never":
        return code
    if prepend == "always":
        return suite.prefix + code
    if suite.entry_point and suite.entry_point in _defined_names(code):
        return suite.prefix.rstrip() + "\n\n\n" + code
    return suite.prefix + code


# -- running -----------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """Per-test results of one program."""

    passed: list[bool]
    seconds: list[float]
    messages: list[str]
    status: str
    reason: str
    stderr: str
    skipped: int = 0
    load_seconds: float = 0.0
    no_assertion: list[bool] = field(default_factory=list)

    @property
    def all_passed(self) -> bool:
        return bool(self.passed) and all(self.passed)

    @property
    def runtime(self) -> float:
        """Seconds of the program's own work: loading its module (top-level code included)
        and running the tests."""
        return self.load_seconds + sum(self.seconds)


def _normalize_lines(text: str, compare: Compare) -> list[str]:
    if compare == "exact":
        return [text]
    if compare == "tokens":
        return text.split()
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _same_token(a: str, b: str, tol: float | None) -> bool:
    if a == b:
        return True
    if tol is None:
        return False
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    return abs(x - y) <= tol or abs(x - y) <= tol * max(abs(x), abs(y))


def outputs_match(got: str, expected: str, *, compare: Compare = "lines",
                  float_tol: float | None = None) -> bool:
    """Whether a program's output matches the expected output."""
    a, b = _normalize_lines(got, compare), _normalize_lines(expected, compare)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if float_tol is None or compare == "exact":
            return False
        xs, ys = x.split(), y.split()
        if len(xs) != len(ys) or not all(_same_token(p, q, float_tol)
                                         for p, q in zip(xs, ys, strict=True)):
            return False
    return True


def _stdio_message(result: RunResult, ok: bool) -> str:
    if ok:
        return ""
    if result.status != "exited":
        return f"{result.status}: {result.reason}"
    if result.exit_code:
        tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return f"runtime error (exit code {result.exit_code}): {tail[0][:200]}"
    return "wrong answer"


@dataclass(frozen=True)
class RunOptions:
    timeout: float
    memory_mb: int
    strict: bool
    compare: Compare
    float_tol: float | None
    stop_on_fail: bool

    def limits(self, steps: int = 1) -> Limits:
        """The limits of one run of `steps` timed steps; its whole budget is capped at
        `MAX_RUN_SECONDS` (a program that uses it up fails its remaining tests)."""
        total = min(self.timeout * max(1, steps), max(self.timeout, MAX_RUN_SECONDS))
        return Limits(timeout=self.timeout, memory_mb=self.memory_mb, total_timeout=total)


def runtime_sandbox() -> Sandbox:
    """The current Runtime's sandbox server: started on first use, shared by every code reward
    scored through that Runtime, stopped by `Runtime.close()`."""
    return current_runtime().resource("sandbox", configured_sandbox, Sandbox.close)


async def evaluate(program: str, suite: CodeSuite, options: RunOptions) -> Evaluation:
    """Run `program` against `suite` in the default sandbox. Raises `SandboxError` when the
    sandbox itself fails."""
    sandbox = runtime_sandbox()
    n = len(suite.tests)
    if suite.mode == "assert":
        job = AssertJob(program=program, tests=suite.tests, setup=suite.setup,
                        entry_point=suite.entry_point, candidate=suite.candidate,
                        expose=suite.expose, strict=options.strict,
                        stop_after_fail=options.stop_on_fail, limits=options.limits(n + 1))
        result = await sandbox.arun(job)
        if result.status == "setup_error":
            raise SandboxError(result.reason)
        verdicts = result.verdicts(n)
        skipped = n - len(result.tests) if result.completed else 0
        return Evaluation(
            passed=[v.passed for v in verdicts], seconds=[v.seconds for v in verdicts],
            messages=[v.message for v in verdicts], status=result.status,
            reason=result.reason, stderr=result.stderr.decode("utf-8", "replace")[:1000],
            skipped=skipped, load_seconds=float((result.load or {}).get("seconds") or 0.0),
            no_assertion=[v.no_assertion for v in verdicts],
        )
    limits = options.limits()
    tasks = [asyncio.ensure_future(sandbox.arun(StdioJob(program, stdin, limits)))
             for stdin in suite.tests]
    passed = [False] * n
    seconds = [0.0] * n
    messages = ["skipped after an earlier failure"] * n
    stderr = ""
    failed = False
    skipped = 0
    try:
        for i, task in enumerate(tasks):
            if failed and options.stop_on_fail:
                task.cancel()
                skipped += 1
                continue
            result = await task
            if result.status == "setup_error":
                raise SandboxError(result.reason)
            got = result.stdout.decode("utf-8", "replace")
            ok = result.status == "exited" and result.exit_code == 0 and outputs_match(
                got, suite.outputs[i], compare=options.compare, float_tol=options.float_tol)
            passed[i], seconds[i] = ok, result.wall
            messages[i] = _stdio_message(result, ok)
            if not ok:
                failed = True
                if not stderr and result.stderr:
                    stderr = result.stderr.decode("utf-8", "replace")[:1000]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
    status = "exited" if not failed else "failed"
    return Evaluation(passed, seconds, messages, status, "", stderr, skipped)


# -- reference runs (difficulty and runtime baselines), memoised per process ---------------------

class _Memo:
    """Results of reference-solution runs, computed once per process (an LRU of futures, so
    concurrent samples sharing a reference wait for one computation)."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.items: OrderedDict[Any, Future[list[Evaluation]]] = OrderedDict()

    async def get(self, key: Any, solutions: Sequence[str], suite: CodeSuite,
                  options: RunOptions) -> list[Evaluation]:
        with self.lock:
            fut = self.items.get(key)
            owner = fut is None
            if owner:
                fut = Future()
                self.items[key] = fut
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
            else:
                self.items.move_to_end(key)
        assert fut is not None
        if owner:
            try:
                full = RunOptions(options.timeout, options.memory_mb, options.strict,
                                  options.compare, options.float_tol, stop_on_fail=False)
                results = list(await asyncio.gather(
                    *(evaluate(s, suite, full) for s in solutions)))
            except BaseException as exc:
                with self.lock:
                    self.items.pop(key, None)
                fut.set_exception(exc)
                raise
            fut.set_result(results)
            return results
        return await asyncio.wrap_future(fut)


_MEMO = _Memo()


def _memo_key(suite: CodeSuite, options: RunOptions) -> tuple[Any, ...]:
    return (suite, options.timeout, options.memory_mb, options.strict, options.compare,
            options.float_tol)


# -- shared front matter of the rewards ----------------------------------------------------------

def _details(suite: CodeSuite, ev: Evaluation, **extra: Any) -> dict[str, Any]:
    tests = [
        {"test": label, "passed": p, "seconds": round(s, 6), "message": m}
        for label, p, s, m in zip(suite.labels, ev.passed, ev.seconds, ev.messages, strict=True)
    ]
    out: dict[str, Any] = {
        "mode": suite.mode,
        "passed": sum(ev.passed),
        "total": len(ev.passed),
        "tests": tests,
        "run": {"status": ev.status, "reason": ev.reason},
    }
    if ev.skipped:
        out["skipped"] = ev.skipped
    if ev.stderr:
        out["stderr"] = ev.stderr
    out.update(extra)
    return out


async def _prepare_and_run(response_text: str, reference: Any, metadata: dict[str, Any],
                           settings: CodeSettings, options: RunOptions, prompt_text: str = ""
                           ) -> tuple[CodeSuite, Evaluation | None] | Score:
    """The suite and the candidate's evaluation, or the score to return straight away.
    The evaluation is None when the response holds no program (a score of 0 by the caller)."""
    if reference is None:
        return Score.abstain("no tests: the sample has no reference")
    try:
        suite = parse_reference(reference, metadata)
    except (ValueError, SyntaxError, TypeError, KeyError, AttributeError) as exc:
        return Score.error(f"unusable reference: {type(exc).__name__}: {exc}")
    code = extract_code(response_text, extract=settings.extract, strip_think=settings.strip_think,
                        opened=settings.strip_think and prompt_opens_think(prompt_text))
    if code is None or not code.strip():
        return suite, None
    program = build_program(code, suite, settings.prepend)
    try:
        ev = await evaluate(program, suite, options)
        problem = await _settle_no_assertion(suite, ev, options)
    except SandboxError as exc:
        return Score.error(f"sandbox: {exc}")
    return problem if problem is not None else (suite, ev)


async def _settle_no_assertion(suite: CodeSuite, ev: Evaluation, options: RunOptions
                               ) -> Score | None:
    """Tests the program got through without running an assertion are never passes. Whose
    fault it is: the tests' (a reference error) when the reference solutions also run no
    assertion there; otherwise the program's (the test fails). Without reference solutions it
    is the program's: every test holds an assertion that can run (`split_tests`), so one that
    did not run was skipped by what the program returned."""
    idx = [i for i, flag in enumerate(ev.no_assertion) if flag]
    if not idx:
        return None
    if suite.solutions:
        refs = await _MEMO.get(("reference", *_memo_key(suite, options)), suite.solutions,
                               suite, options)
        for i in idx:
            if all(r.no_assertion[i] for r in refs if len(r.no_assertion) > i):
                return Score.error(
                    f"reference error: test {i} ({suite.labels[i]}) runs no assertion, with the "
                    "response nor with the reference solution(s)")
        why = "the test ran no assertion with this program (it does with the reference solution)"
    else:
        why = "the test ran no assertion with this program"
    for i in idx:
        ev.messages[i] = why
    return None


def _no_program(suite: CodeSuite) -> Score:
    n = len(suite.tests)
    return Score.of(0.0, details={"mode": suite.mode, "passed": 0, "total": n, "tests": [],
                                  "run": {"status": "no_program",
                                          "reason": "the response holds no code"}})


@dataclass(frozen=True)
class CodeSettings:
    """The options every code reward takes, declared once and written flat among a reward's
    parameters (``code_pass(timeout=10, memory_mb=2048)``, or the same keys under ``params:``
    in a spec).

    `extract`: where the program is (``auto``: the last fenced Python block, else an untagged
    one, else the whole final text; ``fence``: a fenced block only; ``raw``: the whole final
    text); `strip_think`: read only the final text (`rewardlab.core.text`); `prepend`: how a
    HumanEval prefix joins the program (``auto``, ``always``, ``never``); `timeout`: wall
    seconds per test (and for loading the program); `memory_mb`: the address-space cap;
    `strict`: refuse test values of classes the program defined with their own comparison or
    arithmetic; `compare` / `float_tol`: how stdout is compared (see `outputs_match`).
    """

    extract: Extract = "auto"
    strip_think: bool = True
    prepend: Prepend = "auto"
    timeout: float = 5.0
    memory_mb: int = 1024
    strict: bool = True
    compare: Compare = "lines"
    float_tol: float | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("extract", ("auto", "fence", "raw")),
                              ("prepend", ("auto", "always", "never")),
                              ("compare", ("lines", "tokens", "exact"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                                 f"not {getattr(self, name)!r}")
        check_timeout(self.timeout)
        mem = self.memory_mb
        if isinstance(mem, bool) or not isinstance(mem, int | float) or mem != int(mem) or mem <= 0:
            raise ValueError(f"memory_mb must be a positive whole number of MiB, not {mem!r}")
        if self.float_tol is not None and not self.float_tol >= 0:
            raise ValueError("float_tol must be non-negative")

    def run_options(self, stop_on_fail: bool) -> RunOptions:
        return RunOptions(float(self.timeout), int(self.memory_mb), bool(self.strict),
                          self.compare, self.float_tol, bool(stop_on_fail))


with_code_settings = splice(CodeSettings)
"""Gives a code reward (which takes ``**settings``) every `CodeSettings` field as a keyword-only
parameter; it reads them back with ``CodeSettings(**settings)``."""


# The engine's timeout is a backstop only: the sandbox enforces every limit of a run, and a
# sample's wait in the sandbox's queue (behind other samples' programs) is not its program's time,
# so it must not turn a slow batch into errors.
_IO = {"kind": "io", "timeout": 86400.0, "max_concurrency": 64, "retries": 0, "resource": "sandbox"}
MAX_RUN_SECONDS = 300.0


# -- the rewards -------------------------------------------------------------------------------

@reward(range=(0, 1), **_IO)  # type: ignore[arg-type]
@with_code_settings
async def code_pass(response_text: str, reference: Any, metadata: dict[str, Any],
                    prompt_text: str = "", *,
                    stop_on_fail: bool = True, **settings: Any) -> Score:
    r"""1 if the program passes every test, else 0 (higher is better); per-test results in
    details.

    The shared options (`extract`, `strip_think`, `prepend`, `timeout` in wall seconds per
    test, `memory_mb`, `strict`, `compare`, `float_tol`) are `CodeSettings`. `stop_on_fail`
    skips the tests after the first failure (the score does not change; details then mark them
    skipped). Abstains without a reference; an unusable reference or a sandbox failure is an
    error.

    >>> from rewardlab import Sample
    >>> tests = {"tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"], "entry_point": "add"}
    >>> from rewardlab.rewards.code import code_pass
    >>> right = "```python\ndef add(a, b):\n    return a + b\n```"
    >>> score = code_pass(timeout=2)(Sample(response=right, reference=tests))
    >>> score.value, score.details["passed"], score.details["total"]
    (1.0, 2, 2)
    """
    s = CodeSettings(**settings)
    out = await _prepare_and_run(response_text, reference, metadata, s,
                                 s.run_options(stop_on_fail), prompt_text)
    if isinstance(out, Score):
        return out
    suite, ev = out
    if ev is None:
        return _no_program(suite)
    return Score.of(float(ev.all_passed), details=_details(suite, ev))


@reward(range=(0, 1), **_IO)  # type: ignore[arg-type]
@with_code_settings
async def code_pass_fraction(response_text: str, reference: Any, metadata: dict[str, Any],
                             prompt_text: str = "", **settings: Any) -> Score:
    r"""The fraction of tests the program passes, in [0, 1] (higher is better); per-test
    results in details. Options as `CodeSettings`.

    >>> from rewardlab import Sample
    >>> tests = {"tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"], "entry_point": "add"}
    >>> from rewardlab.rewards.code import code_pass_fraction
    >>> sign_lost = "```python\ndef add(a, b):\n    return abs(a) + b\n```"
    >>> score = code_pass_fraction(timeout=2)(Sample(response=sign_lost, reference=tests))
    >>> score.value, [t["passed"] for t in score.details["tests"]]
    (0.5, [True, False])
    """
    s = CodeSettings(**settings)
    out = await _prepare_and_run(response_text, reference, metadata, s, s.run_options(False),
                                 prompt_text)
    if isinstance(out, Score):
        return out
    suite, ev = out
    if ev is None:
        return _no_program(suite)
    return Score.of(sum(ev.passed) / len(ev.passed), details=_details(suite, ev))


def difficulty_weights(suite: CodeSuite, reference_passes: list[list[bool]] | None,
                       floor: float) -> tuple[list[float], str]:
    """Per-test weights and where they came from: given ``weights``; else ``floor + (1 - p)``
    with p the share of reference solutions passing the test (given ``pass_rates``, or measured
    from ``solutions``); else uniform."""
    n = len(suite.tests)
    if suite.weights is not None:
        return list(suite.weights), "given weights"
    rates: list[float] | None = None
    source = ""
    if suite.pass_rates is not None:
        rates, source = [min(1.0, p) for p in suite.pass_rates], "given pass rates"
    elif reference_passes:
        k = len(reference_passes)
        rates = [sum(r[j] for r in reference_passes) / k for j in range(n)]
        source = f"pass rates of {k} reference solution(s)"
    if rates is None:
        return [1.0] * n, "uniform (no weights, pass rates or reference solutions)"
    return [floor + (1.0 - p) for p in rates], source


@reward(range=(0, 1), **_IO)  # type: ignore[arg-type]
@with_code_settings
async def code_pass_weighted(response_text: str, reference: Any, metadata: dict[str, Any],
                             prompt_text: str = "", *,
                             partial: float = 0.5, floor: float = 0.1,
                             **settings: Any) -> Score:
    r"""Difficulty-weighted partial credit in [0, 1] (VeRPO-style, higher is better): 1 if all
    tests pass, else `partial` x the weighted share of tests passed.

    With test weights w_j and passes x_j in {0, 1}: dense = sum_j w_j x_j / sum_j w_j, and the
    score is 1 when every x_j = 1, else `partial` * dense (so any failure stays below
    `partial` < 1 and a full pass is always on top). Weights are the reference's ``weights``,
    else w_j = `floor` + (1 - p_j), where p_j is the share of reference solutions that pass test
    j (``pass_rates``, or measured by running ``solutions`` once per process): tests fewer
    solutions pass count more, and `floor` > 0 keeps every test counting. Without any of these
    the weights are uniform (said in details). Other options as `CodeSettings`.

    >>> from rewardlab import Sample
    >>> tests = {"tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"], "entry_point": "add",
    ...          "weights": [1.0, 3.0]}
    >>> from rewardlab.rewards.code import code_pass_weighted
    >>> sign_lost = "```python\ndef add(a, b):\n    return abs(a) + b\n```"
    >>> score = code_pass_weighted(timeout=2)(Sample(response=sign_lost, reference=tests))
    >>> score.value, score.components["dense"]
    (0.125, 0.25)
    """
    if not 0 < partial < 1:
        raise ValueError("partial must be in (0, 1)")
    if not floor > 0:
        raise ValueError("floor must be positive")
    s = CodeSettings(**settings)
    options = s.run_options(False)
    out = await _prepare_and_run(response_text, reference, metadata, s, options, prompt_text)
    if isinstance(out, Score):
        return out
    suite, ev = out
    ref_passes: list[list[bool]] | None = None
    if suite.weights is None and suite.pass_rates is None and suite.solutions:
        try:
            evs = await _MEMO.get(("reference", *_memo_key(suite, options)),
                                  suite.solutions, suite, options)
        except SandboxError as exc:
            return Score.error(f"sandbox: {exc}")
        ref_passes = [e.passed for e in evs]
    weights, source = difficulty_weights(suite, ref_passes, floor)
    total = sum(weights)
    if not total > 0:
        return Score.error("test weights sum to zero")
    if ev is None:
        return _no_program(suite)
    dense = sum(w for w, p in zip(weights, ev.passed, strict=True) if p) / total
    value = 1.0 if ev.all_passed else partial * dense
    return Score.of(value, components={"dense": dense},
                    details=_details(suite, ev, weights=[round(w, 6) for w in weights],
                                     weights_from=source))


@reward(range=(0, 1), **_IO)  # type: ignore[arg-type]
@with_code_settings
async def code_efficiency(response_text: str, reference: Any, metadata: dict[str, Any],
                          prompt_text: str = "", *,
                          bonus: float = 0.2, max_speedup: float = 4.0,
                          min_seconds: float = 1e-3, **settings: Any) -> Score:
    r"""Correctness with a runtime bonus (ACECode-style) in [0, 1], higher is better: 0 unless
    every test passes; then (1 - `bonus`) + `bonus` x e, where e rewards being faster than the
    reference solution.

    e = clip(1/2 + log2(t_ref / t) / (2 log2 `max_speedup`), 0, 1): 1/2 at the reference's
    speed, 1 at `max_speedup` times faster, 0 at that many times slower. t is the candidate's
    test time (sum over tests, measured by the harness for assert tests and by the server for
    stdin/stdout runs; both floored at `min_seconds` against timer noise); t_ref is the
    reference's ``runtime``, else the fastest reference solution that passes every test, timed
    the same way in the same sandbox (once per process). Abstains when a correct program has no
    baseline. Timings move with machine load: compare within one run. Other options as
    `CodeSettings`.

    With a reference runtime of 2 s, a correct program that runs in under half a second is at
    least 4 times faster (e = 1):

    >>> from rewardlab import Sample
    >>> tests = {"tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"], "entry_point": "add",
    ...          "runtime": 2.0}
    >>> from rewardlab.rewards.code import code_efficiency
    >>> right = "```python\ndef add(a, b):\n    return a + b\n```"
    >>> score = code_efficiency(timeout=2)(Sample(response=right, reference=tests))
    >>> score.value, score.details["efficiency"]["baseline"]
    (1.0, 'given runtime')
    """
    if not 0 < bonus < 1:
        raise ValueError("bonus must be in (0, 1)")
    if not max_speedup > 1:
        raise ValueError("max_speedup must be greater than 1")
    s = CodeSettings(**settings)
    options = s.run_options(True)
    out = await _prepare_and_run(response_text, reference, metadata, s, options, prompt_text)
    if isinstance(out, Score):
        return out
    suite, ev = out
    if ev is None:
        return _no_program(suite)
    if not ev.all_passed:
        return Score.of(0.0, details=_details(suite, ev, efficiency=None))
    t = max(min_seconds, ev.runtime)
    if suite.runtime is not None:
        t_ref, source = max(min_seconds, suite.runtime), "given runtime"
    elif suite.solutions:
        try:
            evs = await _MEMO.get(("reference", *_memo_key(suite, options)),
                                  suite.solutions, suite, options)
        except SandboxError as exc:
            return Score.error(f"sandbox: {exc}")
        times = [e.runtime for e in evs if e.all_passed]
        if not times:
            return Score.abstain("no reference solution passes the tests: no runtime baseline")
        t_ref, source = max(min_seconds, min(times)), "fastest passing reference solution"
    else:
        return Score.abstain("no reference runtime or solution to compare the runtime with")
    e = min(1.0, max(0.0, 0.5 + math.log2(t_ref / t) / (2 * math.log2(max_speedup))))
    value = (1 - bonus) + bonus * e
    return Score.of(value, components={"efficiency": e},
                    details=_details(suite, ev, efficiency={
                        "seconds": t, "reference_seconds": t_ref, "speedup": t_ref / t,
                        "baseline": source}))
