"""The sandbox against hostile programs: each attack is contained, scored as not passing, the
machine is left as it was (no stray process, no file written outside), and the server still
serves a correct program afterwards. Plus the sandbox's ordinary behaviour."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rewardlab.sandbox import (
    AssertJob,
    Limits,
    RunResult,
    Sandbox,
    SandboxError,
    StdioJob,
    harness,
    split_tests,
)

GOOD = "def f(x):\n    return x + 1\n"
WRONG = "def f(x):\n    return x\n"  # passes no test below
TESTS = ["assert f(1) == 2", "assert f(2) == 3", "assert f(-1) == 0"]
FAST = Limits(timeout=2.0, memory_mb=512)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(workers=2)
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def full_isolation(sandbox: Sandbox) -> dict[str, object]:
    report = sandbox.isolation
    if not (report["root"] and report["jail"] and report["network_namespace"]):
        pytest.skip(f"needs root with namespaces (isolation here: {report})")
    return report


def _uid_of(pid: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def stray_processes(sandbox: Sandbox, wait: float = 3.0) -> list[int]:
    """Processes still running under the sandbox's slot uids (after a short grace)."""
    uids = set(sandbox.slot_uids)
    deadline = time.monotonic() + wait
    while True:
        found = [int(p) for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) in uids]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def run_assert(sandbox: Sandbox, program: str, tests: list[str] | None = None,
               limits: Limits = FAST, **kw: object) -> RunResult:
    return sandbox.run(AssertJob(program, tests or TESTS, limits=limits, **kw))  # type: ignore[arg-type]


def passed(result: RunResult, n: int = len(TESTS)) -> list[bool]:
    return [v.passed for v in result.verdicts(n)]


# -- ordinary behaviour ----------------------------------------------------------------------

def test_assert_tests_each_get_a_verdict(sandbox: Sandbox) -> None:
    half = "def f(x):\n    return x + 1 if x > 0 else 7\n"
    result = run_assert(sandbox, half)
    assert result.status == "exited" and result.completed and result.loaded
    assert passed(result) == [True, True, False]
    assert result.tests[2].message == "AssertionError"


def test_stdio_program_reads_input_and_exit_codes_are_reported(sandbox: Sandbox) -> None:
    prog = "import sys\nn = int(input())\nprint(sum(map(int, sys.stdin.read().split())) * n)\n"
    result = sandbox.run(StdioJob(prog, "2\n1 2 3\n4\n", FAST))
    assert (result.status, result.exit_code, result.stdout) == ("exited", 0, b"20\n")
    crash = sandbox.run(StdioJob("raise KeyError('boom')", "", FAST))
    assert crash.exit_code == 1 and b"KeyError" in crash.stderr
    code = sandbox.run(StdioJob("import sys\nprint('x')\nsys.exit(3)", "", FAST))
    assert (code.exit_code, code.stdout) == (3, b"x\n")


def test_per_test_timeout_fails_that_test_and_the_rest(sandbox: Sandbox) -> None:
    prog = "def f(x):\n    while x == 2:\n        pass\n    return x + 1\n"
    result = run_assert(sandbox, prog, limits=Limits(timeout=1.0))
    assert result.status == "timeout"
    assert passed(result) == [True, False, False]
    assert "test 2" in result.reason


def test_stop_after_fail_skips_the_remaining_tests(sandbox: Sandbox) -> None:
    result = run_assert(sandbox, "def f(x):\n    return 0\n", stop_after_fail=True)
    assert result.completed and len(result.tests) == 1
    assert "skipped" in result.verdicts(3)[2].message


def test_common_library_code_works_under_the_audit_hook(sandbox: Sandbox) -> None:
    prog = (
        "import collections, dataclasses, typing, logging, re, enum, functools, heapq, json\n"
        "Point = collections.namedtuple('Point', 'x y')\n"
        "class Color(enum.Enum):\n    RED = 1\n"
        "@dataclasses.dataclass(eq=False)\nclass Box:\n    size: int\n"
        "T = typing.TypeVar('T')\n"
        "logging.getLogger('x').warning('hello %s', 1)\n"
        "@functools.lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n"
        "def f(x):\n"
        "    p = Point(x, 1)\n"
        "    return fib(10) - 55 + p.x + Box(1).size + heapq.nsmallest(1, [3, 1])[0] - 1 \\\n"
        "        + len(re.findall('a', 'aa')) - 2 + Color.RED.value - 1 + json.loads('1') - 1\n"
    )
    assert passed(run_assert(sandbox, prog)) == [True, True, True]


def test_deep_recursion_has_room(sandbox: Sandbox) -> None:
    prog = ("import sys\nsys.setrecursionlimit(20000)\n"
            "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
            "def f(x):\n    return depth(5000) - 5000 + x + 1\n")
    assert passed(run_assert(sandbox, prog)) == [True, True, True]


def test_humaneval_check_splits_into_one_test_per_assert() -> None:
    src = ("METADATA = {}\n\ndef check(candidate):\n    import math\n    x = 3\n"
           "    assert candidate(x) == 4\n    for i in range(2):\n        assert candidate(i) > i\n")
    setup, tests, cand = split_tests(src, "f")
    assert cand == "candidate" and "METADATA" in setup
    assert tests == ["import math\nx = 3\nassert candidate(x) == 4",
                     "for i in range(2):\n    assert candidate(i) > i"]
    flow = "def check(candidate):\n    if candidate(1) == 2:\n        return\n    assert False\n"
    assert split_tests(flow, "f")[1] == ["check(candidate)"]


def test_isolation_report_as_root(full_isolation: dict[str, object]) -> None:
    assert full_isolation["uid_per_slot"] and full_isolation["no_new_privs"]
    assert full_isolation["subreaper"]


def test_program_runs_as_its_own_uid_in_an_empty_private_directory(
        sandbox: Sandbox, full_isolation: dict[str, object]) -> None:
    prog = ("import json, os, tempfile\nprint(json.dumps([os.getuid(), os.getgid(), os.getcwd(),"
            " os.path.abspath(os.path.expanduser('~')), os.listdir('.'), sorted(os.environ),"
            " [os.path.exists(p) for p in ('/proc/self', '/work/shared', '/root/.ssh',"
            " '/work/main/src', '/sys/fs')]]))\n")
    result = sandbox.run(StdioJob(prog, "", FAST))
    uid, gid, cwd, home, listing, env, visible = json.loads(result.stdout)
    assert uid in sandbox.slot_uids and gid == uid
    assert cwd == home and listing == [] and cwd.startswith("/tmp/")
    assert "PATH" in env and not [k for k in env if k.startswith(("REWARDLAB", "PYTHONPATH"))]
    assert visible == [False] * 5


def test_environment_is_scrubbed(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARDLAB_TEST_SECRET", "hunter2")
    with Sandbox(workers=1) as fresh:
        result = fresh.run(StdioJob("import os\nprint(dict(os.environ))", "", FAST))
    assert b"hunter2" not in result.stdout and b"PATH" in result.stdout


# -- hostile programs: none may pass ---------------------------------------------------------

# Writes pass records for every remaining test with nonces stolen from the harness, then exits:
# it would pass everything if it could ever reach them.
FORGE = (
    "import os, struct\n"
    "def forge(scope):\n"
    "    if 'nonce' in scope and 'vfd' in scope:\n"
    "        nonce, fd = scope['nonce'], scope['vfd']\n"
    "        first = scope.get('i', 0) + 1\n"
    "        for j in range(first, len(nonce) - 1):\n"
    "            os.write(fd, nonce[j] + b'P' + struct.pack('<d', 0.0))\n"
    "        os.write(fd, nonce[-1] + b'D')\n"
    "        os._exit(0)\n"
)

HOSTILE_ASSERT = {
    "sys.exit(0) before the tests": "import sys\nsys.exit(0)\n" + WRONG,
    "os._exit(0) before the tests": "import os\nos._exit(0)\n" + WRONG,
    "os._exit(0) inside the function": "import os\ndef f(x):\n    os._exit(0)\n",
    "SystemExit inside the function": "def f(x):\n    raise SystemExit(0)\n",
    "override AssertionError": (
        "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n" + WRONG),
    "override builtins used by tests": (
        "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
        "def abs(x):\n    return 0\n" + WRONG),
    "always-equal object": (
        "class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
        "def f(x):\n    return A()\n"),
    "int subclass equal to anything": (
        "class A(int):\n    def __eq__(self, o):\n        return True\n"
        "    __hash__ = int.__hash__\ndef f(x):\n    return A(0)\n"),
    "custom metaclass": (
        "class M(type):\n    def __eq__(cls, o):\n        return True\n    __hash__ = type.__hash__\n"
        "class A(metaclass=M):\n    pass\ndef f(x):\n    return A\n"),
    "monkeypatch the runner module": (
        "import sys\nfor name, mod in list(sys.modules.items()):\n"
        "    if name.startswith('rewardlab'):\n"
        "        for attr in list(vars(mod)):\n"
        "            if callable(getattr(mod, attr)) and not attr.startswith('__'):\n"
        "                try:\n                    setattr(mod, attr, lambda *a, **k: None)\n"
        "                except Exception:\n                    pass\n" + WRONG),
    "monkeypatch os.write and exec": (
        "import os, builtins\nos.write = lambda fd, data: len(data)\n"
        "builtins.exec = lambda *a, **k: None\n" + WRONG),
    "print fake pass markers": (
        "print('PASSED ' * 20)\nimport sys\nsys.stdout.flush()\n"
        "print('{\"passed\": true}', file=sys.stderr)\nimport os\nos._exit(0)\n"),
    "write forged verdicts to every descriptor": (
        "import os\nfor fd in range(3, 64):\n    for data in (b'P' * 25, b'K' + b'0' * 80):\n"
        "        try:\n            os.write(fd, data)\n        except OSError:\n            pass\n"
        + WRONG),
    "fork so one universe passes": (
        "import os, time\ndef f(x):\n    if os.fork() == 0:\n        return x + 1\n"
        "    time.sleep(0.2)\n    return x\n"),
    "forge verdicts with nonces from the caller's frames": FORGE + (
        "import sys\ndef f(x):\n    frame = sys._getframe(1)\n    while frame is not None:\n"
        "        forge(frame.f_locals)\n        frame = frame.f_back\n    return x\n"),
    "forge verdicts with nonces from a traceback": FORGE + (
        "def f(x):\n    try:\n        raise ValueError\n    except ValueError as e:\n"
        "        frame = e.__traceback__.tb_frame\n    while frame is not None:\n"
        "        forge(frame.f_locals)\n        frame = frame.f_back\n    return x\n"),
    "forge verdicts with nonces found by gc": FORGE + (
        "import gc\ndef f(x):\n    for obj in gc.get_objects():\n"
        "        if type(obj) is list and len(obj) >= 3 and all("
        "type(b) is bytes and len(b) == 16 for b in obj):\n"
        "            forge({'nonce': obj, 'vfd': 3, 'i': 0})\n    return x\n"),
    "load ctypes": "import ctypes\n" + WRONG,
    "trace the harness": "import sys\nsys.settrace(lambda *a: None)\n" + WRONG,
    "craft bytecode": (
        "import marshal\nc = marshal.loads(marshal.dumps(compile('1', 's', 'eval')))\n" + WRONG),
    "signal handler frame walk": (
        "import signal\nsignal.signal(signal.SIGALRM, lambda s, fr: None)\n" + WRONG),
    "patch math used by the tests": "import math\nmath.isclose = lambda *a, **k: True\n" + WRONG,
    "give a test's module a lying class": (
        "import math, types\nclass Liar(types.ModuleType):\n"
        "    def __getattribute__(self, name):\n"
        "        return (lambda *a, **k: True) if name == 'isclose' else "
        "types.ModuleType.__getattribute__(self, name)\n"
        "math.__class__ = Liar\n" + WRONG),
    "patch a class of a test's module": (
        "import random\nrandom.Random.random = lambda self: 0.5\n" + WRONG),
    "rewrite a library function's defaults": (
        "import math\ndef g(a, b, *, rel_tol=1.0, abs_tol=1.0):\n    return True\n"
        "import copy\ncopy.deepcopy.__defaults__ = ({}, [])\n" + WRONG),
    "replace a test's module in sys.modules": (
        "import sys, types\nfake = types.ModuleType('math')\nfake.isclose = lambda *a, **k: True\n"
        "sys.modules['math'] = fake\nmath = fake\n" + WRONG),
    "read memory through /proc": (
        "data = open('/proc/self/mem', 'rb')\n" + WRONG),
    "read the data set from disk": (
        "open('/work/shared/data/verifiable/mbpp_sanitized.jsonl').read()\n" + WRONG),
}


HOSTILE_TESTS = [*TESTS, "import math\nassert math.isclose(f(0.5), 1.5)"]


@pytest.fixture(scope="module")
def hostile_assert_results(sandbox: Sandbox) -> dict[str, RunResult]:
    """Every hostile assert program, run as one batch (in parallel)."""
    jobs = [AssertJob(p, HOSTILE_TESTS, limits=FAST) for p in HOSTILE_ASSERT.values()]
    return dict(zip(HOSTILE_ASSERT, sandbox.run_many(jobs), strict=True))


@pytest.mark.parametrize("name", list(HOSTILE_ASSERT))
def test_hostile_assert_program_never_passes(sandbox: Sandbox, name: str,
                                             hostile_assert_results: dict[str, RunResult]
                                             ) -> None:
    result = hostile_assert_results[name]
    assert not any(passed(result, 4)), (name, result)
    assert stray_processes(sandbox) == []


def test_tampering_is_reported_as_such(sandbox: Sandbox) -> None:
    forged = run_assert(sandbox, HOSTILE_ASSERT["write forged verdicts to every descriptor"])
    assert forged.status == "tampered"
    universes = run_assert(sandbox, HOSTILE_ASSERT["fork so one universe passes"])
    assert universes.status == "tampered" and "another process" in universes.reason
    patched = run_assert(sandbox, "import math\nmath.isclose = None\n" + GOOD,
                         tests=["import math\nassert math.isclose(f(0.5), 1.5)"])
    assert patched.status == "tampered" and "math.isclose" in patched.reason
    cls = run_assert(sandbox, "import random\nrandom.Random.randint = None\n" + GOOD,
                     tests=["import random\nassert f(random.Random(1).randint(1, 1)) == 2"])
    assert cls.status == "tampered" and "random.Random.randint" in cls.reason


def test_hostile_tests_leave_the_harness_file_and_host_untouched(
        sandbox: Sandbox, full_isolation: dict[str, object], tmp_path: Path) -> None:
    harness_file = Path(harness.__file__)
    before = hashlib.sha256(harness_file.read_bytes()).hexdigest()
    target = tmp_path / "outside.txt"
    prog = (
        "import os, sys, glob\n"
        f"paths = [{str(harness_file)!r}, {str(target)!r}, '/tmp/escape.txt',"
        " '/usr/escape.txt', '../escape.txt']\n"
        "for p in paths:\n"
        "    try:\n        open(p, 'w').write('pwned')\n    except OSError:\n        pass\n"
        "    try:\n        os.remove(p)\n    except OSError:\n        pass\n"
        "for p in glob.glob('*') + glob.glob('/tmp/*'):\n"
        "    try:\n        os.remove(p)\n    except OSError:\n        pass\n" + WRONG
    )
    result = run_assert(sandbox, prog)
    assert not any(passed(result))
    assert hashlib.sha256(harness_file.read_bytes()).hexdigest() == before
    assert not target.exists() and not Path("/tmp/escape.txt").exists()
    good = run_assert(sandbox, GOOD)
    assert passed(good) == [True, True, True]


HOSTILE_RESOURCES = {
    "fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                 "        pass\n",
    "memory bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))\n",
    "one huge allocation": "x = bytearray(10**11)\n",
    "infinite output": "while True:\n    print('x' * 4096)\n",
    "infinite stderr": "import sys\nwhile True:\n    sys.stderr.write('y' * 4096)\n",
    "infinite loop": "while True:\n    pass\n",
    "sleep forever": "import time\ntime.sleep(3600)\n",
    "child that outlives the parent": (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(3600)\n    os._exit(0)\n"),
    "open a socket": (
        "import socket\ns = socket.create_connection(('1.1.1.1', 53), timeout=1)\n"
        "s.sendall(b'x')\n"),
    "fill the disk": "with open('big', 'wb') as fh:\n    while True:\n        fh.write(b'0' * 2**20)\n",
}


@pytest.fixture(scope="module")
def resource_results(sandbox: Sandbox) -> dict[tuple[str, str], RunResult]:
    """Every resource attack in both modes, run as one batch (in parallel)."""
    limits = Limits(timeout=1.0, memory_mb=256, processes=16, file_size_mb=8,
                    output_bytes=1 << 20)
    keys, jobs = [], []
    for name, program in HOSTILE_RESOURCES.items():
        keys += [(name, "assert"), (name, "stdio")]
        jobs += [AssertJob(program + WRONG, TESTS, limits=limits),
                 StdioJob(program + "print('ok')\n", "", limits)]
    return dict(zip(keys, sandbox.run_many(jobs), strict=True))


@pytest.mark.parametrize("name", list(HOSTILE_RESOURCES))
@pytest.mark.parametrize("mode", ["assert", "stdio"])
def test_resource_attacks_are_contained(sandbox: Sandbox, full_isolation: dict[str, object],
                                        resource_results: dict[tuple[str, str], RunResult],
                                        name: str, mode: str) -> None:
    result = resource_results[name, mode]
    if mode == "assert":
        assert not any(passed(result))
    else:
        finished = result.status == "exited" and result.exit_code == 0
        # The orphan's parent finishes normally: there only the orphan must be gone.
        assert not finished or name == "child that outlives the parent", result
    assert result.wall < 15  # contained by the limits, not by the caller
    assert stray_processes(sandbox) == []


def test_outliving_child_is_killed_even_after_a_passing_run(
        sandbox: Sandbox, full_isolation: dict[str, object]) -> None:
    prog = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)\n"
            + GOOD)
    assert passed(run_assert(sandbox, prog)) == [True, True, True]
    assert stray_processes(sandbox) == []


def test_stdio_expected_output_cannot_be_read_or_faked(
        sandbox: Sandbox, full_isolation: dict[str, object], tmp_path: Path) -> None:
    expected = tmp_path / "expected.txt"
    expected.write_text("42\n")
    prog = (f"try:\n    print(open({str(expected)!r}).read(), end='')\n"
            "except OSError as e:\n    print('PASS', e)\n")
    result = sandbox.run(StdioJob(prog, "", FAST))
    assert result.stdout != b"42\n" and b"PASS" in result.stdout


def test_network_is_unreachable(sandbox: Sandbox, full_isolation: dict[str, object]) -> None:
    prog = ("import socket\nprint([n for _, n in socket.if_nameindex()])\n"
            "try:\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
            "except OSError as e:\n    print(type(e).__name__)\n")
    out = sandbox.run(StdioJob(prog, "", FAST)).stdout.decode().split("\n")
    assert out[0] == "['lo']" and out[1] in ("ConnectionRefusedError", "OSError")


def test_pool_still_serves_after_a_hostile_batch(sandbox: Sandbox) -> None:
    jobs: list[AssertJob | StdioJob] = [
        AssertJob(p, TESTS, limits=Limits(timeout=1.0, memory_mb=256))
        for p in list(HOSTILE_ASSERT.values()) + list(HOSTILE_RESOURCES.values())]
    jobs += [AssertJob(GOOD, TESTS, limits=FAST) for _ in range(4)]
    results = sandbox.run_many(jobs)
    assert all(passed(r) == [True, True, True] for r in results[-4:])
    assert passed(sandbox.run(AssertJob(GOOD, TESTS, limits=FAST))) == [True, True, True]
    assert stray_processes(sandbox) == []


def test_cancelling_an_awaited_run_kills_it(sandbox: Sandbox) -> None:
    async def go() -> None:
        task = asyncio.ensure_future(sandbox.arun(StdioJob(
            "import time\ntime.sleep(3600)", "", Limits(timeout=60))))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert stray_processes(sandbox) == []
    assert sandbox.run(StdioJob("print(1)", "", FAST)).stdout == b"1\n"


def test_a_closed_sandbox_refuses_work() -> None:
    sb = Sandbox(workers=1)
    sb.close()
    with pytest.raises(SandboxError):
        sb.run(StdioJob("print(1)"))
