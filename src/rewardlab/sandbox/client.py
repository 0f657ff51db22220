"""Running programs in the sandbox from the caller's process: jobs, results, and `Sandbox`,
the handle on one fork server.

A `Sandbox` starts its fork server lazily, keeps it warm, and runs up to `workers` programs at
once (default: the core count). It is thread-safe: `submit` returns a
`concurrent.futures.Future`, `arun` awaits one from asyncio, `run_many` runs a batch in parallel.
Every limit is enforced by the server, so a result always arrives; if the server itself dies,
pending futures fail with `SandboxError` and the next call starts a new server.
"""

from __future__ import annotations

import atexit
import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rewardlab.sandbox.harness import compile_tests
from rewardlab.sandbox.limits import JAIL_PREFIX, Limits
from rewardlab.sandbox.server import HEADER, pop_messages, send_message

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Started as ``python -s -c BOOT``: loads the server without running the package __init__ files
# (rewardlab's imports the whole library, this package's the client and threading), so the fork
# server stays small, and a forked child has no threading state to reinitialise.
_BOOT = (
    "import sys, types\n"
    f"for name, path in (('rewardlab', {os.path.join(_PACKAGE_DIR, 'rewardlab')!r}),\n"
    f"                   ('rewardlab.sandbox', {os.path.join(_PACKAGE_DIR, 'rewardlab', 'sandbox')!r})):\n"
    "    m = types.ModuleType(name)\n"
    "    m.__path__ = [path]\n"
    "    sys.modules[name] = m\n"
    "from rewardlab.sandbox.server import main\n"
    "main(sys.argv[1:])\n"
)

_RETRY_START_AFTER = 30.0  # seconds a failed server start is reported without a new attempt

_CLEANUP = (
    "import os, signal, sys\n"
    "for uid in map(int, sys.argv[1:]):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        try:\n"
    "            os.setgroups([]); os.setresgid(uid, uid, uid); os.setresuid(uid, uid, uid)\n"
    "            if os.getuid() == uid and os.geteuid() == uid and uid != 0:\n"
    "                os.kill(-1, signal.SIGKILL)\n"
    "        except OSError:\n"
    "            pass\n"
    "        os._exit(0)\n"
    "    os.waitpid(pid, 0)\n"
)


def _uid_base(server_pid: int) -> int:
    """The first slot uid of the server with this pid (as `server.Server` computes it)."""
    return 1_000_000_000 + (server_pid % 4_194_304) * 64


class SandboxError(RuntimeError):
    """The sandbox itself failed (the server could not start or died), not the program."""


@dataclass(frozen=True)
class AssertJob:
    """Run `program`, then each test (Python source) against its namespace, with a verdict each.

    `setup` runs (in the tests' namespace) before the tests. With `entry_point`, that function of
    the program is bound to the name `candidate` (default: the entry point's own name) for the
    tests. `expose` lists program names the tests may use even if they shadow a builtin (the
    entry point always may). `strict` refuses values whose classes override comparison or
    arithmetic (see `rewardlab.sandbox.harness`). `stop_after_fail` skips the tests after the
    first failure. A test passes only if it ran an assertion that held (trivially true ones do
    not count); one that ends normally without running any is reported ``no_assertion``.
    """

    program: str
    tests: Sequence[str]
    setup: str = ""
    entry_point: str | None = None
    candidate: str | None = None
    expose: Sequence[str] = ()
    strict: bool = True
    stop_after_fail: bool = False
    limits: Limits = field(default_factory=Limits)

    def to_wire(self) -> dict[str, Any]:
        same = ((self.entry_point, self.candidate),) if self.entry_point and self.candidate else ()
        names = tuple(sorted({*self.expose, *([self.entry_point] if self.entry_point else [])}))
        compiled = _compiled_tests(self.setup, tuple(self.tests), self.strict, same, names)
        return {
            "mode": "assert",
            "program": self.program,
            **compiled,
            "entry_point": self.entry_point,
            "candidate": self.candidate,
            "expose": list(self.expose),
            "strict": self.strict,
            "stop_after_fail": self.stop_after_fail,
            "limits": self.limits.to_wire(),
            "budget": self.limits.budget(len(self.tests) + 1),
        }


@functools.lru_cache(maxsize=4096)
def _compiled_tests(setup: str, tests: tuple[str, ...], strict: bool,
                    same: tuple[tuple[str, str], ...], names: tuple[str, ...]) -> dict[str, Any]:
    return compile_tests(setup, tests, strict, same, names)


@dataclass(frozen=True)
class StdioJob:
    """Run `program` as ``__main__`` with `stdin` as its input; the caller judges the output."""

    program: str
    stdin: str | bytes = b""
    limits: Limits = field(default_factory=Limits)

    def to_wire(self) -> dict[str, Any]:
        data = self.stdin.encode() if isinstance(self.stdin, str) else bytes(self.stdin)
        return {
            "mode": "stdio",
            "program": self.program,
            "stdin": data,
            "limits": self.limits.to_wire(),
            "budget": self.limits.budget(1),
        }


Job = AssertJob | StdioJob


@dataclass(frozen=True)
class TestOutcome:
    """The verdict of one assert test: `passed`, the seconds it took, and why it failed.
    `no_assertion`: the test ended normally without running an assertion (not a pass)."""

    passed: bool
    seconds: float
    message: str
    no_assertion: bool = False


@dataclass(frozen=True)
class RunResult:
    """What happened to one run.

    `status`: ``exited`` (the run ended by itself; for assert jobs `completed` says whether the
    harness got through), ``timeout``, ``cpu_limit``, ``output_limit``, ``signaled`` (killed by
    a signal: a crash, or a memory limit hit in C code), ``tampered`` (the verdict channel was
    forged or the program modified what the tests use), ``cancelled``, ``setup_error`` (the
    sandbox could not start the run). `tests` holds the verdicts received, in order.
    """

    status: str
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    wall: float = 0.0
    cpu: float = 0.0
    load: dict[str, Any] | None = None
    tests: tuple[TestOutcome, ...] = ()
    completed: bool = False

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RunResult:
        return cls(
            status=data["status"],
            reason=data.get("reason") or "",
            exit_code=data.get("exit_code"),
            signal=data.get("signal"),
            stdout=data.get("stdout") or b"",
            stderr=data.get("stderr") or b"",
            wall=float(data.get("wall") or 0.0),
            cpu=float(data.get("cpu") or 0.0),
            load=data.get("load"),
            tests=tuple(TestOutcome(bool(t["passed"]), float(t["seconds"]), t["message"],
                                    bool(t.get("no_assertion")))
                        for t in data.get("tests") or ()),
            completed=bool(data.get("completed")),
        )

    @property
    def loaded(self) -> bool:
        """Whether the program's module ran to the end (assert jobs)."""
        return bool(self.load and self.load.get("ok"))

    def why_not_run(self) -> str:
        """Why a test without a verdict has none."""
        if self.status == "tampered":
            return f"tampered: {self.reason}"
        if self.load is not None and not self.load.get("ok"):
            return f"the program failed to load: {self.load.get('message')}"
        if self.status != "exited":
            return f"{self.status}: {self.reason}"
        if self.completed:
            return "skipped after an earlier failure"
        return self.reason or "the run ended before this test"

    def verdicts(self, n: int) -> list[TestOutcome]:
        """One outcome for each of `n` tests; tests without a verdict failed, with the reason.
        A tampered run fails every test."""
        if self.status == "tampered":
            why = self.why_not_run()
            return [TestOutcome(False, 0.0, why) for _ in range(n)]
        out = list(self.tests[:n])
        why = self.why_not_run()
        out.extend(TestOutcome(False, 0.0, why) for _ in range(n - len(out)))
        return out


class Sandbox:
    """A fork server and the client side of its protocol.

    `workers` programs run at once (default: the core count). `network=True` keeps the host
    network (default: an empty network namespace when root). `preload` names extra modules the
    server imports once so that programs find them warm. `tmp_mb` sizes each slot's scratch
    file system (the working directory of the program running in that slot: one that fills it
    fails alone; with root only), `shm_mb` the jail's ``/dev/shm``. Starting a server removes
    the jail directories that servers killed without cleaning up left behind.
    """

    def __init__(self, workers: int | None = None, *, network: bool = False,
                 preload: Sequence[str] = (), tmp_mb: int = 256, shm_mb: int = 64,
                 start_timeout: float = 60.0) -> None:
        self.workers = max(1, min(64, workers or os.cpu_count() or 1))
        self.network = network
        self.preload = list(preload)
        self.tmp_mb = tmp_mb
        self.shm_mb = shm_mb
        self.start_timeout = start_timeout
        self._start_failure: tuple[float, str] | None = None
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._pending: dict[int, Future[RunResult]] = {}
        self._next_id = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._report: dict[str, Any] | None = None
        self._error: str | None = None
        self._closed = False
        self._pid = os.getpid()

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def isolation(self) -> dict[str, Any]:
        """What the server enforces (starts it if needed): root, uid_per_slot,
        network_namespace, ipc_namespace, jail, scratch_per_slot, subreaper, no_new_privs,
        notes."""
        with self._lock:
            self._ensure_started()
            assert self._report is not None
            return dict(self._report)

    @property
    def slot_uids(self) -> list[int]:
        """The uids the running server's slots use (empty when it runs programs as the
        caller): every process with one of these uids belongs to a run."""
        with self._lock:
            self._ensure_started()
            assert self._report is not None and self._proc is not None
            if not self._report.get("uid_per_slot"):
                return []
            base = _uid_base(self._proc.pid)
            return [base + slot for slot in range(self.workers)]

    def _ensure_started(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._pid != os.getpid():
            raise SandboxError("a Sandbox cannot be used from a forked child; make a new one")
        if self._proc is not None and self._error is None:
            return
        failed = self._start_failure
        if failed is not None and time.monotonic() - failed[0] < _RETRY_START_AFTER:
            raise SandboxError(failed[1])  # fail fast: every waiting sample errors at once
        try:
            self._start()
        except SandboxError as exc:
            self._start_failure = (time.monotonic(), str(exc))
            raise
        self._start_failure = None

    def _start(self) -> None:
        self._stop_server()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config = {
            "fd": child.fileno(), "workers": self.workers, "network": self.network,
            "preload": self.preload, "tmp_mb": self.tmp_mb, "shm_mb": self.shm_mb,
            "boot": _BOOT,
        }
        import json

        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict",
               "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-s", "-c", _BOOT, "stage1", json.dumps(config)],
                pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as exc:
            parent.close()
            child.close()
            raise SandboxError(f"could not start the sandbox server: {exc}") from exc
        child.close()
        self._proc, self._sock = proc, parent
        self._ready.clear()
        self._error = None
        self._report = None
        reader = threading.Thread(target=self._read_loop, args=(parent, proc),
                                  name="rewardlab-sandbox", daemon=True)
        self._reader = reader
        reader.start()
        if not self._ready.wait(self.start_timeout) or self._report is None:
            error = self._error or f"no answer within {self.start_timeout:g}s"
            self._stop_server()
            raise SandboxError(f"the sandbox server did not start: {error}")

    def _read_loop(self, sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        buf = bytearray()
        error = "the sandbox server closed the connection"
        try:
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                for message in pop_messages(buf):
                    if message[0] == "ready":
                        self._report = message[1]
                        self._ready.set()
                    elif message[0] == "done":
                        fut = self._pending.pop(message[1], None)
                        if fut is not None and not fut.done():
                            fut.set_result(RunResult.from_wire(message[2]))
        except OSError as exc:
            error = f"the connection to the sandbox server failed: {exc}"
        code = proc.poll()
        if code is not None:
            error += f" (server exit code {code})"
        with self._lock:
            if self._sock is sock:
                self._error = error
        self._ready.set()
        self._fail_pending(error, sock)

    def _fail_pending(self, error: str, sock: socket.socket) -> None:
        with self._lock:
            if self._sock is not sock and self._sock is not None:
                return
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(SandboxError(error))

    def _stop_server(self) -> None:
        proc, sock = self._proc, self._sock
        self._proc = self._sock = None
        report = self._report
        if sock is not None:
            try:
                with self._send_lock:
                    send_message(sock, ("stop",))
            except OSError:
                pass
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, None) and report and report.get("uid_per_slot"):
                self._cleanup_uids(proc.pid)
            jail = (report or {}).get("jail")
            if jail and os.path.basename(jail).startswith(JAIL_PREFIX):
                try:
                    os.rmdir(jail)  # empty on the host; its tmpfs lived in the server's namespace
                except OSError:
                    pass
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _cleanup_uids(self, server_pid: int) -> None:
        """After the server died abnormally: kill whatever its slots' uids left running."""
        base = _uid_base(server_pid)
        uids = [str(base + slot) for slot in range(self.workers)]
        subprocess.run([sys.executable, "-s", "-c", _CLEANUP, *uids], check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=60)

    def close(self) -> None:
        """Stop the server (killing what runs) and refuse further jobs."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._pid == os.getpid():
                self._stop_server()
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(SandboxError("the sandbox was closed"))

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------------
    def submit(self, job: Job) -> Future[RunResult]:
        """Queue a job; the future gets its `RunResult` (or `SandboxError`)."""
        wire = job.to_wire()
        fut: Future[RunResult] = Future()
        with self._lock:
            self._ensure_started()
            sock = self._sock
            assert sock is not None
            self._next_id += 1
            job_id = self._next_id
            self._pending[job_id] = fut
        fut.add_done_callback(lambda f: self._on_done(f, job_id, sock))
        try:
            with self._send_lock:
                send_message(sock, ("run", job_id, wire))
        except OSError as exc:
            with self._lock:
                self._pending.pop(job_id, None)
                self._error = self._error or f"could not send to the sandbox server: {exc}"
            if not fut.done():
                fut.set_exception(SandboxError(f"could not send to the sandbox server: {exc}"))
        return fut

    def _on_done(self, fut: Future[RunResult], job_id: int, sock: socket.socket) -> None:
        if not fut.cancelled():
            return
        with self._lock:
            self._pending.pop(job_id, None)
        try:
            with self._send_lock:
                send_message(sock, ("cancel", job_id))
        except OSError:
            pass

    def run(self, job: Job) -> RunResult:
        """Run one job and wait for its result."""
        return self.submit(job).result()

    def run_many(self, jobs: Sequence[Job]) -> list[RunResult]:
        """Run jobs in parallel (up to `workers` at once); results in order."""
        futures = [self.submit(job) for job in jobs]
        return [f.result() for f in futures]

    async def arun(self, job: Job) -> RunResult:
        """Run one job from asyncio; cancelling the awaiting task cancels (kills) the run."""
        import asyncio

        return await asyncio.wrap_future(self.submit(job))


_default: Sandbox | None = None
_default_lock = threading.Lock()
_default_options: dict[str, Any] = {}


def configure(**options: Any) -> None:
    """Options (as for `Sandbox`) of the sandboxes the code rewards use (each Runtime starts its
    own with them) and of `default_sandbox`; call before the first use, or the process-wide one
    is replaced. ``REWARDLAB_SANDBOX_WORKERS`` sets the
    default worker count."""
    global _default
    with _default_lock:
        _default_options.clear()
        _default_options.update(options)
        old, _default = _default, None
    if old is not None:
        old.close()


def configured_sandbox() -> Sandbox:
    """A new sandbox with the options given to `configure` (``REWARDLAB_SANDBOX_WORKERS`` sets
    the default worker count). A Runtime starts one with this for its code rewards."""
    with _default_lock:
        options = dict(_default_options)
    env_workers = os.environ.get("REWARDLAB_SANDBOX_WORKERS")
    if "workers" not in options and env_workers:
        options["workers"] = int(env_workers)
    return Sandbox(**options)


def default_sandbox() -> Sandbox:
    """A process-wide sandbox for direct use (started on first use, closed at exit, one per
    process). The code rewards use their Runtime's sandbox instead."""
    global _default
    with _default_lock:
        current = _default
    if current is None or current._pid != os.getpid() or current._closed:
        fresh = configured_sandbox()
        with _default_lock:
            current, _default = _default, fresh
        if current is not None and current._pid == os.getpid() and not current._closed:
            current.close()
        return fresh
    return current


def _close_default() -> None:
    sandbox = _default
    if sandbox is not None and sandbox._pid == os.getpid():
        sandbox.close()


atexit.register(_close_default)

__all__ = [
    "AssertJob",
    "HEADER",
    "Job",
    "RunResult",
    "Sandbox",
    "SandboxError",
    "StdioJob",
    "TestOutcome",
    "configure",
    "configured_sandbox",
    "default_sandbox",
]
