"""What runs inside each forked child: the program under test, and (for assert tests) the tests.

Two modes:

- **stdio**: the program runs as ``__main__`` with the test input on stdin; the server captures
  stdout and the caller compares it with the expected output. The expected output never enters
  the sandbox, so the verdict cannot be influenced from inside.
- **assert**: the program's module runs, then each test (an assert statement, or a group of
  statements ending in one) runs against the program's namespace, and the harness reports one
  verdict per test to the server over a private ``SOCK_SEQPACKET`` socket.

How the assert verdicts resist a hostile program:

- the server accepts a record only if the kernel says it came from the leader process
  (``SCM_CREDENTIALS``), so a forked child cannot report anything;
- every record carries a fresh random nonce that the harness generated before the program ran
  and handed to the server first; a record with a wrong nonce, out of order, or any stray
  write on the socket marks the whole run as tampered (a fail);
- the harness thread that holds the nonces and runs the tests is not the main thread (signal
  handlers run on the main thread and only see its frames), its code was compiled into a
  private namespace with a private copy of the builtins before the program ran, it keeps all
  it needs in local variables, and an audit hook, armed just before the program runs, refuses
  frame access (``sys._getframe``, ``tb_frame``, ``gi_frame``...), tracing and profiling,
  ``gc`` object walks, ``ctypes``, new code objects (``code.__new__`` and unverified
  ``marshal.loads``), new audit hooks and ``/proc`` access;
- the tests run in their own namespace: a copy of the program's globals without names that
  shadow builtins (unless they are the functions under test), with the real standard modules
  bound for names the tests use as modules, a private ``__import__`` that hands out the
  modules captured before the program ran, and a check before every test that neither those
  modules nor their classes were modified (attributes or ``__class__``); rewriting a
  function's code or defaults is refused;
- in strict mode (the default) every call result and every compared value in the tests is
  scanned: a value whose class was not defined before the program ran and overrides
  comparison, hashing, truthiness, arithmetic, container or attribute protocols (or has a
  custom metaclass) is refused, so an "always equal" object cannot pass ``assert f(x) == y``;
- a pass is only reported after the test's code returned normally having run at least one
  assertion that held (the trusted test code counts them in the private namespace; trivially
  true ones do not count), otherwise the test is reported as having run none; ``sys.exit``,
  ``os._exit``, a crash or a kill before a test's verdict leaves that test failed;
- the child tells the server that it is set up (the harness's key, or in stdin/stdout mode one
  record on a channel it closes) before the program runs, so a program that exits with the
  sandbox's own setup exit code is a failing program, not a sandbox error.

What the harness cannot stop inside one interpreter: a program that corrupts interpreter memory
without ``ctypes`` or crafted bytecode (for instance through a bug in a C extension) could forge
assert verdicts. The process, file-system, network and resource isolation holds regardless,
and stdin/stdout tests are judged entirely outside the sandbox.
"""

from __future__ import annotations

import _thread
import ast
import builtins
import collections
import copy
import fcntl
import marshal
import operator
import os
import signal
import struct
import sys
import tempfile
import textwrap
import time
import traceback
import types
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

from rewardlab.sandbox.limits import HEAPTYPE, apply_rlimits

# Exit codes of a child that failed before running the program (the server reports them).
EXIT_SETUP = 111

VAL = "__rl_val__"
CMP = "__rl_cmp__"
RAN = "__rl_ran__"  # counts an assert statement that passed
COUNTED = "__rl_counted__"  # counts an assertion call (``self.assertEqual``...) that returned
CASE = "__rl_case__"  # runs one unittest.TestCase method
_BUILTINS = frozenset(dir(builtins))

_OP_CODES: dict[type[ast.cmpop], int] = {
    ast.Eq: 0, ast.NotEq: 1, ast.Lt: 2, ast.LtE: 3, ast.Gt: 4, ast.GtE: 5,
    ast.Is: 6, ast.IsNot: 7, ast.In: 8, ast.NotIn: 9,
}

SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8", "USER": "sandbox", "LOGNAME": "sandbox",
            "HOME": ".", "TMPDIR": ".",
            # one program per core: numerical libraries must not start a thread per core
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# -- splitting test code into tests (used by the caller, before anything runs) ---------------

def quiet_parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse` without the syntax warnings data sets trigger (invalid escapes...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source, filename)


def _segment(source: str, node: ast.stmt) -> str:
    text = ast.get_source_segment(source, node, padded=True)
    if text is None:
        return ast.unparse(node)
    return textwrap.dedent(text)


def _assertion_call(node: ast.Call) -> bool:
    """A call that is an assertion: ``self.assertEqual(...)``, ``numpy.testing.assert_allclose``,
    ``pytest.raises(...)``..."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name.startswith("assert") or name in ("raises", "fail")


def _canonical(node: ast.AST, same: dict[str, str]) -> str:
    """`node`'s dump with the names in `same` renamed (two names for one function)."""
    if same:
        node = _Rename(same).visit(copy.deepcopy(node))
    return ast.dump(node)


class _Rename(ast.NodeTransformer):
    def __init__(self, same: dict[str, str]) -> None:
        self.same = same

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Name(self.same.get(node.id, node.id), node.ctx)


_REFLEXIVE = (ast.Eq, ast.Is, ast.LtE, ast.GtE)


def trivial_assertion(test: ast.expr, same: dict[str, str] | None = None,
                      program_names: frozenset[str] = frozenset()) -> bool:
    """Whether an assert's condition holds whatever the program does: it names nothing but
    builtins (``assert True``, ``assert len([1]) == 1``; a falsy literal such as ``assert False``
    is a real check: reaching it fails), or it compares an expression with itself
    (``assert f(x) == f(x)``; `same` maps other names of the function under test, such as
    HumanEval's entry point, to the candidate's name). `program_names` are names that belong to
    the program even where they shadow a builtin."""
    names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
    if not names - (_BUILTINS - program_names):
        try:
            return bool(ast.literal_eval(test))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return True
    if isinstance(test, ast.Compare):
        sides = [_canonical(s, same or {}) for s in (test.left, *test.comparators)]
        return all(isinstance(op, _REFLEXIVE) and a == b
                   for op, a, b in zip(test.ops, sides, sides[1:], strict=False))
    return False


def _checks(node: ast.AST, same: dict[str, str], program_names: frozenset[str]) -> bool:
    """Whether running `node` can run an assertion that depends on the program (a definition
    does not run its body)."""
    stack: list[ast.AST] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Assert) and not trivial_assertion(n.test, same, program_names):
            return True
        if isinstance(n, ast.Call) and _assertion_call(n):
            return True
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _top_level_flow(stmts: list[ast.stmt]) -> bool:
    """Whether a function body uses return/yield/nonlocal/await outside nested scopes (then its
    statements cannot run one by one at module level)."""
    stack: list[ast.AST] = list(stmts)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return | ast.Yield | ast.YieldFrom | ast.Nonlocal | ast.Await):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return False


def _group(source: str, stmts: list[ast.stmt], same: dict[str, str],
           program_names: frozenset[str]) -> list[str]:
    """One test per statement that runs an assertion; other statements join the next test
    (or the last one). No assertion, no test."""
    groups: list[str] = []
    pending: list[str] = []
    for stmt in stmts:
        pending.append(_segment(source, stmt))
        if _checks(stmt, same, program_names):
            groups.append("\n".join(pending))
            pending = []
    if pending and groups:
        groups[-1] += "\n" + "\n".join(pending)
    return groups


def _is_main_guard(stmt: ast.stmt) -> bool:
    """``if __name__ == "__main__": ...`` (``unittest.main()`` and the like: never run)."""
    return (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare)
            and any(isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(stmt.test)))


def _test_case_class(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ClassDef) and any(
        (isinstance(b, ast.Name) and b.id.endswith("TestCase"))
        or (isinstance(b, ast.Attribute) and b.attr.endswith("TestCase")) for b in stmt.bases)


def _runnable_test_function(stmt: ast.stmt) -> bool:
    """A pytest-style test: a top-level ``def test*()`` that needs no argument (fixtures are
    not supported)."""
    if not isinstance(stmt, ast.FunctionDef) or not stmt.name.startswith("test"):
        return False
    a = stmt.args
    required = len(a.posonlyargs) + len(a.args) - len(a.defaults)
    return required == 0 and all(d is not None for d in a.kw_defaults)


def _asserting_functions(stmts: list[ast.stmt], names: frozenset[str]) -> set[str]:
    """Names of the functions and methods among `stmts` that run an assertion, themselves or
    through another one they call (by name or as ``self.name``)."""
    defs: dict[str, ast.AST] = {}
    for stmt in stmts:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            defs[stmt.name] = stmt
        elif isinstance(stmt, ast.ClassDef):
            defs.update((m.name, m) for m in stmt.body
                        if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef))
    found = {name for name, node in defs.items()
             if any(_checks(s, {}, names) for s in node.body)}  # type: ignore[attr-defined]
    while True:
        more = {name for name, node in defs.items() if name not in found and _calls(node, found)}
        if not more:
            return found
        found |= more


def _calls(node: ast.AST, names: set[str]) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            if (isinstance(f, ast.Name) and f.id in names) or (
                    isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                    and f.value.id in ("self", "cls") and f.attr in names):
                return True
    return False


def split_tests(source: str, entry_point: str | None = None,
                program_names: tuple[str, ...] = ()) -> tuple[str, list[str], str | None]:
    """Split test code into ``(setup, tests, candidate_name)``; only tests that can run an
    assertion depending on the program are kept (the list is empty when there is none).

    HumanEval style (`entry_point` given and the code defines ``check(candidate)``): the module
    statements other than ``check`` are the setup, and each statement of ``check``'s body that
    can run an assertion is one test (statements before it run with it), with the check's
    parameter bound to the entry point. If the body cannot run statement by statement
    (``return``, ``yield``...), the whole check is one test. Otherwise: each module-level
    statement that can run an assertion is a test, leading definitions and imports are the
    setup, and so are pytest-style ``def test*()`` functions (each called as one test) and
    ``unittest.TestCase`` classes (each ``test*`` method run as one test). Trivially true
    assertions (`trivial_assertion`) make no test. Raises `SyntaxError` if the code does not
    parse.
    """
    tree = quiet_parse(source)
    names = frozenset(program_names) | ({entry_point} if entry_point else frozenset())
    checks = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"]
    if entry_point and len(checks) == 1:
        check = checks[0]
        args = check.args
        if (len(args.args) == 1 and not args.posonlyargs and not args.kwonlyargs
                and not args.vararg and not args.kwarg and not check.decorator_list):
            param = args.args[0].arg
            same = {entry_point: param}
            rest = [s for s in tree.body if s is not check]
            setup = "\n".join(_segment(source, s) for s in rest)
            if _top_level_flow(check.body):
                body_checks = any(_checks(s, same, names) for s in check.body)
                return source, [f"check({param})"] if body_checks else [], param
            return setup, _group(source, check.body, same, names), param
    setup_nodes: list[ast.stmt] = []
    body = [s for s in tree.body if not _is_main_guard(s)]
    while body and not _checks(body[0], {}, names) and isinstance(
            body[0], ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Import
            | ast.ImportFrom):
        setup_nodes.append(body.pop(0))
    hoisted = [s for s in body if _runnable_test_function(s) or _test_case_class(s)]
    body = [s for s in body if s not in hoisted]
    setup_nodes += hoisted
    setup = "\n".join(_segment(source, s) for s in setup_nodes)
    tests = _group(source, body, {}, names)
    asserting = _asserting_functions(setup_nodes, names)
    for stmt in setup_nodes:
        if _runnable_test_function(stmt) and stmt.name in asserting:  # type: ignore[union-attr]
            tests.append(f"{stmt.name}()")  # type: ignore[union-attr]
        elif isinstance(stmt, ast.ClassDef) and _test_case_class(stmt):
            for item in stmt.body:
                if (isinstance(item, ast.FunctionDef) and item.name.startswith("test")
                        and item.name in asserting):
                    tests.append(f"{CASE}({stmt.name}, {item.name!r})")
    return setup, tests, None


def _trivial_line(line: str) -> bool:
    try:
        stmt = quiet_parse(line).body[0]
    except (SyntaxError, IndexError):
        return False
    return isinstance(stmt, ast.Assert) and trivial_assertion(stmt.test)


def test_label(test: str, width: int = 120) -> str:
    """A short label for a test: its last assert line that is not trivially true (or its first
    line)."""
    lines = [ln.strip() for ln in test.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    pick = next((ln for ln in reversed(lines) if ln.startswith("assert") and not _trivial_line(ln)),
                lines[0])
    return pick if len(pick) <= width else pick[: width - 3] + "..."


# -- guarding test code ------------------------------------------------------------------------

class _Guard(ast.NodeTransformer):
    """Route every call result and every compared value of (trusted) test code through the
    value checks of the private namespace (the harness's own ``__rl_*`` calls excepted)."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id.startswith("__rl_"):
            return node
        return ast.copy_location(
            ast.Call(func=ast.Name(VAL, ast.Load()), args=[node], keywords=[]), node
        )

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops):
            return node
        codes = tuple(_OP_CODES[type(op)] for op in node.ops)
        return ast.copy_location(
            ast.Call(func=ast.Name(CMP, ast.Load()),
                     args=[node.left, ast.Tuple([ast.Constant(c) for c in codes], ast.Load()),
                           *node.comparators], keywords=[]),
            node,
        )


class _Count(ast.NodeTransformer):
    """Count the assertions of (trusted) test code that ran and held: a call to the counter
    after each assert statement that is not trivially true, and around each assertion call."""

    def __init__(self, same: dict[str, str], program_names: frozenset[str]) -> None:
        self.same = same
        self.program_names = program_names

    def visit_Assert(self, node: ast.Assert) -> Any:
        self.generic_visit(node)
        if trivial_assertion(node.test, self.same, self.program_names):
            return node
        tick = ast.Expr(ast.Call(func=ast.Name(RAN, ast.Load()), args=[], keywords=[]))
        return [node, ast.copy_location(tick, node)]

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if not _assertion_call(node):
            return node
        return ast.copy_location(
            ast.Call(func=ast.Name(COUNTED, ast.Load()), args=[node], keywords=[]), node)


def _compile_tree(tree: ast.Module, filename: str, strict: bool,
                  same: dict[str, str] | None = None,
                  program_names: frozenset[str] = frozenset()) -> types.CodeType:
    tree = _Count(same or {}, program_names).visit(tree)
    if strict:
        tree = _Guard().visit(tree)
    tree = ast.fix_missing_locations(tree)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(tree, filename, "exec", dont_inherit=True, optimize=0)


def compile_test(source: str, filename: str, strict: bool) -> types.CodeType:
    """Compile trusted test code, counting its assertions, guarded when `strict`."""
    return _compile_tree(quiet_parse(source, filename), filename, strict)


def _module_names(trees: list[ast.Module]) -> tuple[list[str], list[str]]:
    """Modules imported by the tests, and standard-module names they use as ``name.attr``."""
    imported: set[str] = set()
    attr_names: set[str] = set()
    stdlib = sys.stdlib_module_names
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module)
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id in stdlib):
                attr_names.add(node.value.id)
    return sorted(imported), sorted(attr_names)


def compile_tests(setup: str, tests: tuple[str, ...], strict: bool,
                  same: tuple[tuple[str, str], ...] = (),
                  program_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """Compile the (trusted) setup and tests, done by the caller: code objects travel to the
    server by ``marshal``. `same` pairs other names of the function under test with the
    candidate's name, `program_names` are the program's names that shadow builtins (both for
    `trivial_assertion`). Raises `SyntaxError` if the test code does not parse."""
    setup_tree = quiet_parse(setup, "<test setup>") if setup.strip() else None
    trees = [quiet_parse(t, f"<test {i}>") for i, t in enumerate(tests)]
    imported, attr_names = _module_names([*([setup_tree] if setup_tree else []), *trees])
    rename, names = dict(same), frozenset(program_names)
    return {
        "setup_code": (_compile_tree(setup_tree, "<test setup>", strict, rename, names)
                       if setup_tree is not None else None),
        "test_code": [_compile_tree(t, f"<test {i}>", strict, rename, names)
                      for i, t in enumerate(trees)],
        "imported": imported,
        "attr_names": attr_names,
    }


def prepare(program: str, imported: list[str], attr_names: list[str]) -> tuple[Any, ...]:
    """Trusted phase in the child, before the program runs: compile the program and capture
    the modules the tests use (and a snapshot of their contents). A `SyntaxError` of the
    program propagates: the program fails to load."""
    program_code = compile(program, "solution.py", "exec", dont_inherit=True, optimize=0)
    captured: dict[str, types.ModuleType] = {}
    for name in imported:
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            sub = ".".join(parts[:k])
            try:
                captured[sub] = __import__(sub, fromlist=["_"] if k > 1 else [])
            except Exception:  # noqa: BLE001 - a test importing a missing module fails later
                break
    bound: dict[str, types.ModuleType] = {}
    for name in attr_names:
        try:
            bound[name] = captured.get(name) or __import__(name)
        except Exception:  # noqa: BLE001 - not a module name after all
            continue
    mods = {id(m): m for m in [*captured.values(), *bound.values()]}
    snapshot: list[tuple[Any, type, dict[str, Any], str, bool]] = []
    for mod in mods.values():
        name = mod.__name__
        snapshot.append((mod, type(mod), dict(mod.__dict__), name, False))
        for key, value in list(mod.__dict__.items()):
            # the module's own Python classes: their attributes are as mutable as the module's
            if (isinstance(value, type) and type.__dict__["__flags__"].__get__(value) & HEAPTYPE
                    and getattr(value, "__module__", None) == name):
                snapshot.append((value, type(value), dict(vars(value)), f"{name}.{key}", True))
    return program_code, captured, bound, snapshot


def trusted_classes() -> tuple[type, ...]:
    """Classes defined by modules loaded before any program ran (so not by a program), plus the
    standard metaclasses: values of these classes are not refused by the strict checks."""
    out: dict[int, type] = {}
    for mod in list(sys.modules.values()):
        try:
            items = list(vars(mod).values())
        except TypeError:
            continue
        for obj in items:
            if isinstance(obj, type) and type.__dict__["__flags__"].__get__(obj) & HEAPTYPE:
                out[id(obj)] = obj
    import abc
    import enum

    for meta in (abc.ABCMeta, enum.EnumMeta):
        out[id(meta)] = meta
    return tuple(out.values())


# -- the private namespace: audit hook, value checks and the test runner ----------------------

PRIVATE_SOURCE = r'''
class Denied(ValueError):
    """Refused by the sandbox."""

class Refused(AssertionError):
    """A value refused by the strict checks."""

_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_DENY = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace",
    "sys.setprofile", "sys.addaudithook", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "code.__new__", "marshal.load", "sys.remote_exec",
})
_DENY_PREFIX = ("ctypes.", "cpython.", "_xxsubinterpreters.", "_interpreters.", "sys.monitoring")
_DENY_MODULES = frozenset({"ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_testbuffer",
                           "_testmultiphase", "_testsinglephase", "_testclinic",
                           "_xxsubinterpreters", "_xxinterpchannels", "_interpreters"})
_STATE = {"armed": False, "inner": False, "pyc": None}
_COUNT = [0]


def _called_from(allowed):
    """Whether the frame that raised the audited event runs one of the `allowed` code objects
    (by identity: a copy compiled by the program under the same names is not one)."""
    _STATE["inner"] = True
    try:
        code = _getframe(2).f_code
    except BaseException:
        return False
    finally:
        _STATE["inner"] = False
    for trusted in allowed:
        if code is trusted:
            return True
    return False


def _pyc_matches(path, data):
    """Whether `data` is the code part of the .pyc file at `path` (an import loading it)."""
    _STATE["inner"] = True
    try:
        fd = _os_open(path, 0)
        try:
            chunks = []
            while True:
                chunk = _os_read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            _os_close(fd)
        return b"".join(chunks)[16:] == bytes(data)
    except BaseException:
        return False
    finally:
        _STATE["inner"] = False


def _path_ok(path):
    if type(path) is bytes:
        path = path.decode("utf-8", "replace")
    if type(path) is int:
        return True
    if type(path) is not str:
        return False
    norm = "/" + path.strip("/")
    if norm == "/proc" or norm.startswith("/proc/") or "/proc/" in norm:
        return False
    base = norm.rsplit("/", 1)[-1]
    return base not in ("mem", "pagemap", "environ", "kcore")


def audit(event, args):
    if not _STATE["armed"] or _STATE["inner"]:
        return
    if event in _DENY or event.startswith(_DENY_PREFIX):
        if event == "code.__new__" and _called_from(_REWRITERS):
            return  # types.coroutine's code.replace
        raise Denied("sandbox: " + event + " is not allowed")
    if event == "object.__getattr__":
        # traceback.clear_frames (unittest's assertRaises) only clears the frames it reaches
        if args[1] in _FRAME_ATTRS and not _called_from(_FRAME_CLEARERS):
            raise Denied("sandbox: frame access is not allowed")
    elif event == "object.__setattr__" or event == "object.__delattr__":
        if args[1] in ("__code__", "__defaults__", "__kwdefaults__"):
            # allowed only from collections.namedtuple (the defaults of the __new__ it just
            # made) and types.coroutine (a flag added to a generator function's code)
            if not _called_from(_REWRITERS):
                raise Denied("sandbox: rewriting a function's " + args[1] + " is not allowed")
    elif event == "import":
        if args[0].partition(".")[0] in _DENY_MODULES:
            raise ImportError("sandbox: importing " + args[0] + " is not allowed")
    elif event == "open":
        path = args[0]
        if not _path_ok(path):
            raise PermissionError("sandbox: opening " + repr(path)[:200] + " is not allowed")
        if type(path) is str and path.endswith(".pyc"):
            _STATE["pyc"] = path
    elif event == "marshal.loads":
        pyc = _STATE["pyc"]
        _STATE["pyc"] = None
        if pyc is None or not _pyc_matches(pyc, args[0]):
            raise Denied("sandbox: marshal.loads outside an import is not allowed")


_SCALARS = frozenset(map(id, (int, float, complex, str, bytes, bool, type(None))))
_SEQS = frozenset(map(id, (list, tuple, set, frozenset)))
_DICT = id(dict)
_STATIC_CACHE = {}
_LIMIT = 2_000_000
_BASE_ITER = ((id(list), list.__iter__), (id(tuple), tuple.__iter__), (id(set), set.__iter__),
              (id(frozenset), frozenset.__iter__))


def _type_problem(t):
    """Why values of class `t` cannot be trusted in a comparison, or None."""
    mt = type(t)
    if mt is not type and id(mt) not in _TRUSTED_IDS:
        return "its class " + _TNAME(t) + " has a custom metaclass"
    if not _FLAGS(t) & _HEAPTYPE:
        return None
    for c in _MRO(t):
        if id(c) in _TRUSTED_IDS or not _FLAGS(c) & _HEAPTYPE:
            continue
        for key in _TDICT(c):
            if type(key) is not str:
                return "class " + _TNAME(c) + " has a non-string attribute name"
            if key in _PROTOCOL:
                return "class " + _TNAME(c) + " defines " + key
    return None


def suspicious(value):
    """Why `value` (searched through containers) cannot be trusted, or None."""
    stack = [value]
    seen = set()
    n = 0
    while stack:
        x = stack.pop()
        t = type(x)
        tid = id(t)
        if tid in _SCALARS:
            continue
        n += 1
        if n > _LIMIT:
            return "the value is too large to check"
        if tid in _SEQS or tid == _DICT:
            xid = id(x)
            if xid in seen:
                continue
            seen.add(xid)
            if tid == _DICT:
                items = [*dict.keys(x), *dict.values(x)]
            else:
                items = x
            if set(map(id, map(type, items))) <= _SCALARS:
                continue
            stack.extend(items)
            continue
        if not _FLAGS(t) & _HEAPTYPE and type(t) is type:
            problem = _STATIC_CACHE.get(tid, 0)
            if problem == 0:
                problem = _type_problem(t)
                _STATIC_CACHE[tid] = problem
        else:
            problem = _type_problem(t)
        if problem is not None:
            return problem
        mro_ids = set(map(id, _MRO(t)))
        if _DICT in mro_ids:
            xid = id(x)
            if xid not in seen:
                seen.add(xid)
                stack.extend(dict.keys(x))
                stack.extend(dict.values(x))
        else:
            for base_id, base_iter in _BASE_ITER:
                if base_id in mro_ids:
                    xid = id(x)
                    if xid not in seen:
                        seen.add(xid)
                        stack.extend(base_iter(x))
                    break
    return None


def rl_val(value):
    problem = suspicious(value)
    if problem is not None:
        raise Refused("value refused: " + problem)
    return value


def _contains(a, b):
    return a in b


def _not_contains(a, b):
    return a not in b


_OPS = (_op.eq, _op.ne, _op.lt, _op.le, _op.gt, _op.ge, _op.is_, _op.is_not, _contains,
        _not_contains)


def rl_cmp(left, codes, *rights):
    for v in (left, *rights):
        problem = suspicious(v)
        if problem is not None:
            raise Refused("compared value refused: " + problem)
    result = True
    a = left
    for code, b in zip(codes, rights):
        result = _OPS[code](a, b)
        if not result:
            return result
        a = b
    return result


def rl_ran():
    _COUNT[0] += 1


def rl_counted(value):
    _COUNT[0] += 1
    return value


def rl_case(cls, name):
    cls(name).debug()


def rl_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0:
        mod = _CAPTURED.get(name)
        if mod is not None:
            if fromlist:
                return mod
            return _CAPTURED.get(name.partition(".")[0], mod)
    return _real_import(name, globals, locals, fromlist, level)


def describe(exc):
    try:
        name = _TNAME(type(exc))
    except BaseException:
        name = "exception"
    try:
        text = str(exc)
    except BaseException:
        text = ""
    if type(text) is not str:
        text = ""
    msg = name + (": " + text if text else "")
    return msg[:500].encode("utf-8", "replace")


def _modified(snapshot):
    for obj, kind, saved, name, is_class in snapshot:
        if type(obj) is not kind:
            return name + ".__class__"
        current = _TDICT(obj) if is_class else _MDICT(obj)
        for key, value in saved.items():
            if current.get(key, _MISSING) is not value:
                return name + "." + str(key)
    return None


def runner(program, setup_code, codes, imported, attr_names, entry_point, candidate, expose,
           strict, stop_after_fail, vfd, done, prepare):
    write = _write
    perf = _perf
    pack = _pack
    try:
        n = len(codes)
        keys = _urandom(16 * (n + 2))
        nonce = [keys[16 * i: 16 * i + 16] for i in range(n + 2)]
        write(vfd, b"K" + keys)
        t0 = perf()
        try:
            prog_code, captured, bound, snapshot = prepare(program, imported, attr_names)
        except BaseException as exc:
            write(vfd, nonce[0] + b"L" + pack("<d", perf() - t0) + describe(exc))
            write(vfd, nonce[n + 1] + b"D")
            return
        program = prepare = None
        _CAPTURED.update(captured)
        builtins_copy = _BUILTINS_COPY
        builtins_copy["__import__"] = rl_import
        ns = {"__name__": "solution", "__builtins__": _builtins_module}
        _STATE["armed"] = True
        t0 = perf()
        try:
            _exec(prog_code, ns)
        except BaseException as exc:
            msg = describe(exc)
            exc = None
            write(vfd, nonce[0] + b"L" + pack("<d", perf() - t0) + msg)
            write(vfd, nonce[n + 1] + b"D")
            return
        write(vfd, nonce[0] + b"O" + pack("<d", perf() - t0))
        keep = set(expose)
        if entry_point:
            keep.add(entry_point)
        tns = {}
        for key, value in dict.items(ns):
            if type(key) is str and (key not in _BUILTIN_NAMES or key in keep):
                tns[key] = value
        tns.update(bound)
        tns["__builtins__"] = builtins_copy
        tns["__name__"] = "__tests__"
        tns[_VAL] = rl_val if strict else _identity
        tns[_CMP] = rl_cmp if strict else _plain_cmp
        tns[_RAN] = rl_ran
        tns[_COUNTED] = rl_counted
        tns[_CASE] = rl_case
        count = _COUNT
        failure = None
        if entry_point:
            if entry_point in ns:
                tns[candidate or entry_point] = ns[entry_point]
            else:
                failure = ("NameError: the program does not define " + entry_point).encode()
        if failure is None and setup_code is not None:
            try:
                _exec(setup_code, tns)
            except BaseException as exc:
                failure = b"test setup failed: " + describe(exc)
                exc = None
        for i in range(n):
            changed = _modified(snapshot)
            if changed is not None:
                write(vfd, nonce[i + 1] + b"T" + pack("<d", 0.0)
                      + ("the program modified " + changed).encode("utf-8", "replace")[:500])
                break
            if failure is not None:
                write(vfd, nonce[i + 1] + b"F" + pack("<d", 0.0) + failure)
                if stop_after_fail:
                    break
                continue
            count[0] = 0
            t0 = perf()
            try:
                _exec(codes[i], tns)
            except BaseException as exc:
                dt = perf() - t0
                msg = describe(exc)
                exc = None
                write(vfd, nonce[i + 1] + b"F" + pack("<d", dt) + msg)
                if stop_after_fail:
                    break
                continue
            dt = perf() - t0
            if count[0] > 0:
                write(vfd, nonce[i + 1] + b"P" + pack("<d", dt))
            else:  # ended normally without running an assertion: not a pass
                write(vfd, nonce[i + 1] + b"N" + pack("<d", dt))
                if stop_after_fail:
                    break
        write(vfd, nonce[n + 1] + b"D")
    except BaseException:
        pass
    finally:
        done.release()


def _identity(value):
    return value


def _plain_cmp(left, codes, *rights):
    result = True
    a = left
    for code, b in zip(codes, rights):
        result = _OPS[code](a, b)
        if not result:
            return result
        a = b
    return result
'''

_PRIVATE_CODE = compile(PRIVATE_SOURCE, "<rewardlab-harness>", "exec", dont_inherit=True)

PROTOCOL = frozenset({
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__bool__",
    "__len__", "__contains__", "__iter__", "__next__", "__reversed__", "__getitem__",
    "__getattr__", "__getattribute__", "__class__", "__instancecheck__", "__subclasscheck__",
    "__abs__", "__neg__", "__pos__", "__invert__", "__round__", "__trunc__", "__floor__",
    "__ceil__", "__int__", "__float__", "__complex__", "__index__", "__del__",
    *(f"__{p}{op}__" for op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod",
                                "divmod", "pow", "lshift", "rshift", "and", "or", "xor")
      for p in ("", "r", "i")),
})


def private_namespace(trusted: tuple[type, ...]) -> dict[str, Any]:
    """The private namespace holding the audit hook, the value checks and the runner, with its
    own copies of the builtins. Made once in the fork server (which never runs a program); a
    child drops every reference to it but the runner's before the program runs."""
    tget: Any = type.__dict__
    mget: Any = types.ModuleType.__dict__
    priv: dict[str, Any] = {
        "__builtins__": dict(builtins.__dict__),
        "__name__": "rewardlab-harness",
        "_TRUSTED": trusted,
        "_TRUSTED_IDS": frozenset(map(id, trusted)),
        "_PROTOCOL": PROTOCOL,
        "_HEAPTYPE": HEAPTYPE,
        "_FLAGS": tget["__flags__"].__get__,
        "_MRO": tget["__mro__"].__get__,
        "_TDICT": tget["__dict__"].__get__,
        "_TNAME": tget["__qualname__"].__get__,
        "_MDICT": mget["__dict__"].__get__,
        "_MISSING": object(),
        "_op": operator,
        "_os_open": os.open,
        "_os_read": os.read,
        "_os_close": os.close,
        "_write": os.write,
        "_urandom": os.urandom,
        "_perf": time.perf_counter,
        "_pack": struct.pack,
        "_exec": exec,
        "_real_import": builtins.__import__,
        "_builtins_module": builtins,
        "_BUILTINS_COPY": dict(builtins.__dict__),
        "_BUILTIN_NAMES": frozenset(builtins.__dict__),
        "_CAPTURED": {},
        "_VAL": VAL,
        "_CMP": CMP,
        "_RAN": RAN,
        "_COUNTED": COUNTED,
        "_CASE": CASE,
        "_getframe": sys._getframe,
        "_REWRITERS": (collections.namedtuple.__code__, types.coroutine.__code__),
        "_FRAME_CLEARERS": (traceback.clear_frames.__code__,),
    }
    exec(_PRIVATE_CODE, priv)
    return priv


# -- the child ------------------------------------------------------------------------------

def _place_fds(wanted: list[int]) -> None:
    """Put `wanted` at descriptors 0, 1, 2, ... and close every other descriptor."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in wanted]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=target < 3)
    os.closerange(len(wanted), 1 << 20)


def _stdio_stdin(data: bytes) -> int:
    fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def warm_child(job_fd: int, out_fd: int, err_fd: int, verdict_fd: int, workdir: str,
               uid: int | None, scrub: Callable[[], None], runner: Callable[..., None] | None,
               group_fd: int | None = None) -> NoReturn:
    """Entry point of a forked child. Never returns.

    Forked ahead of its job (a "warm" child): it isolates itself (cgroup, session, its own
    descriptors, working directory), forgets everything the server held, then waits for its
    job on `job_fd`
    (``marshal``; end of file without a job means exit), takes the slot's uid and the job's
    limits, and runs it. The job's contents go to
    the mode's runner in a list that is then cleared, so no frame of the main thread keeps the
    tests.
    """
    _exit = os._exit
    try:
        if group_fd is not None:  # join the slot's cgroup (the server lists what is left)
            fd = os.open("cgroup.procs", os.O_WRONLY, dir_fd=group_fd)
            os.write(fd, b"0")
            os.close(fd)
        os.setsid()
        # Keep only this child's own ends (other children's pipes must not stay open here):
        # 0 /dev/null, 1 stdout, 2 stderr, 3 verdicts, 4 the job.
        _place_fds([os.open(os.devnull, os.O_RDONLY), out_fd, err_fd, verdict_fd, job_fd])
        scrub()
        os.umask(0o077)
        os.chdir(workdir)  # HOME and TMPDIR are "." (set once in the server): the workdir
        tempfile.tempdir = workdir
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        sys.argv = ["solution.py"]
        chunks = []
        while chunk := os.read(4, 1 << 20):
            chunks.append(chunk)
        os.close(4)
        if not chunks:
            _exit(0)
        job = marshal.loads(b"".join(chunks))
        chunks.clear()
        mode = job["mode"]
        limits = job["limits"]
        if mode == "stdio":
            payload: list[Any] = [job["program"]]
            stdin_fd = _stdio_stdin(job.get("stdin") or b"")
            os.dup2(stdin_fd, 0)
            os.close(stdin_fd)
        else:
            payload = [job["program"], job["setup_code"], list(job["test_code"]),
                       list(job["imported"]), list(job["attr_names"]), job.get("entry_point"),
                       job.get("candidate"), list(job.get("expose") or []),
                       bool(job.get("strict", True)), bool(job.get("stop_after_fail", False))]
        budget = float(job["budget"])
        job.clear()
        del job
        if uid is not None:  # only now: an idle child is no process of the slot's uid
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            if os.getuid() != uid or os.geteuid() != uid or os.getgid() != uid:
                _exit(EXIT_SETUP)
        apply_rlimits(limits, limits.get("cpu_seconds") or budget)
        if mode == "stdio":
            # set up: from here on an exit code (even EXIT_SETUP) is the program's own
            os.write(3, b"S")
            os.close(3)
            _run_stdio(payload)
        if "_ctypes" in sys.modules or runner is None:  # ctypes must never be loaded here
            _exit(EXIT_SETUP)
        payload.append(runner)
        runner = None
        _run_asserts(payload)
    except BaseException:  # noqa: BLE001 - whatever happened, never return into the server
        pass
    _exit(EXIT_SETUP)


def _run_stdio(payload: list[Any]) -> NoReturn:
    _exit = os._exit
    program = payload[0]
    payload.clear()
    # The server's own (empty, UTF-8) std streams wrap descriptors 0-2, which now are the
    # input and the output pipes: reusing them saves building new ones in every child.
    out = sys.stdout = sys.__stdout__
    sys.stdin, sys.stderr = sys.__stdin__, sys.__stderr__
    code = 0
    try:
        compiled = compile(program, "solution.py", "exec", dont_inherit=True)
        exec(compiled, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as exc:
        arg = exc.code
        if arg is None:
            code = 0
        elif isinstance(arg, int):
            code = arg
        else:
            try:
                print(arg, file=sys.__stderr__)
            except BaseException:  # noqa: BLE001 - the exit code says enough
                pass
            code = 1
    except BaseException:  # noqa: BLE001 - reported like the interpreter does
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
        code = 1
    for stream in (sys.stdout, out):
        try:
            stream.flush()  # type: ignore[union-attr]
        except BaseException:  # noqa: BLE001 - a closed pipe: the output is what it is
            pass
    _exit(code & 0xFF)


def _run_asserts(payload: list[Any]) -> NoReturn:
    """Start the runner thread (it holds everything) and wait for it on the main thread."""
    _exit = os._exit
    runner = payload.pop()
    done = _thread.allocate_lock()
    done.acquire()
    _thread.stack_size(32 << 20)
    _thread.start_new_thread(runner, (*payload, 3, done, prepare))
    payload.clear()
    del runner
    acquire = done.acquire
    while True:
        try:
            if acquire():
                break
        except BaseException:  # noqa: BLE001 - an interrupt sent to the main thread
            continue
    _exit(0)
