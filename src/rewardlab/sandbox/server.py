"""The fork server: a warm interpreter that forks one isolated child per program run.

Started by `rewardlab.sandbox.client.Sandbox` in two stages. Stage 1 isolates itself as far as
its privileges allow (`rewardlab.sandbox.limits.prepare_isolation`: namespaces, the read-only
jail, subreaper, no_new_privs) with ``ctypes``, then re-executes the interpreter, so that stage 2,
the process that forks programs, never has ``ctypes`` loaded. Stage 2 imports the harness and a
set of common standard modules (children inherit them, warm), enters the jail and serves.

The server is single-threaded: one ``selectors`` loop over the control socket and every running
child's stdout, stderr, verdict socket and pidfd. It runs at most `workers` children at once,
each in its own slot (its own uid when root). Limits are enforced from here, never by signals in
the caller: a per-step wall-clock deadline (reset by each assert verdict) and a total deadline,
an output cap, verdict checking; a run that breaks one is killed whole (its process group, and
every process of its slot's uid). Orphans come back to the server (it is a child subreaper) and
are reaped. The control protocol is length-prefixed ``marshal`` of plain tuples and dicts.
"""

from __future__ import annotations

import gc
import json
import marshal
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from collections import deque
from typing import Any

from rewardlab.sandbox import harness, limits

HEADER = struct.Struct("<I")
_CREDS = struct.Struct("3i")
_GRACE = 1.0  # seconds to wait for pipes to close after the leader exited

PRELOAD = (
    "abc", "array", "bisect", "cmath", "collections", "collections.abc", "contextlib", "copy",
    "dataclasses", "datetime", "decimal", "enum", "fractions", "functools", "hashlib", "heapq",
    "io", "itertools", "json", "math", "numbers", "operator", "random", "re",
    "statistics", "string", "struct", "textwrap", "time", "typing", "unicodedata",
)


def send_message(sock: socket.socket, message: Any) -> None:
    data = marshal.dumps(message)
    sock.sendall(HEADER.pack(len(data)) + data)


def pop_messages(buf: bytearray) -> list[Any]:
    """Decode the complete messages at the front of `buf` (removing them)."""
    out = []
    while len(buf) >= HEADER.size:
        (size,) = HEADER.unpack_from(buf)
        if len(buf) < HEADER.size + size:
            break
        out.append(marshal.loads(bytes(buf[HEADER.size: HEADER.size + size])))
        del buf[: HEADER.size + size]
    return out


class SlotGroups:
    """One cgroup per slot (the cgroup v1 ``pids`` hierarchy, else cgroup v2), to see whether a
    finished run left processes behind (cheap) and to kill them. Made before the server enters
    the jail; the directory descriptors stay open."""

    def __init__(self, workers: int) -> None:
        mount, own, kind = _cgroup_mount()
        self.kind = kind
        base = os.path.join(mount, own.lstrip("/"))
        _remove_stale_groups(base)
        self.name = f"rewardlab-{os.getpid()}"
        os.mkdir(os.path.join(base, self.name), 0o755)
        self.base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        self.dir_fd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.base_fd)
        self.slots: list[int] = []
        for slot in range(workers):
            os.mkdir(f"s{slot}", 0o755, dir_fd=self.dir_fd)
            fd = os.open(f"s{slot}", os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.dir_fd)
            self.slots.append(fd)
            if kind == "v1-pids":
                _write_file("pids.max", b"1024", fd)

    def procs(self, slot: int) -> list[int]:
        fd = os.open("cgroup.procs", os.O_RDONLY, dir_fd=self.slots[slot])
        try:
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
        finally:
            os.close(fd)
        return [int(x) for x in data.split()]

    def close(self) -> None:
        for slot, fd in enumerate(self.slots):
            os.close(fd)
            try:
                os.rmdir(f"s{slot}", dir_fd=self.dir_fd)
            except OSError:
                pass
        os.close(self.dir_fd)
        try:
            os.rmdir(self.name, dir_fd=self.base_fd)
        except OSError:
            pass
        os.close(self.base_fd)


def _remove_stale_groups(base: str) -> None:
    """Remove the (empty) slot cgroups of servers that died without cleaning up."""
    for entry in os.listdir(base):
        if not entry.startswith("rewardlab-") or not entry[10:].isdigit():
            continue
        try:
            os.kill(int(entry[10:]), 0)
            continue  # that server is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        path = os.path.join(base, entry)
        try:
            for slot in os.listdir(path):
                if slot.startswith("s") and slot[1:].isdigit():
                    os.rmdir(os.path.join(path, slot))
            os.rmdir(path)
        except OSError:
            continue  # still holds processes: left alone


def _write_file(name: str, data: bytes, dir_fd: int) -> None:
    fd = os.open(name, os.O_WRONLY, dir_fd=dir_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _cgroup_mount() -> tuple[str, str, str]:
    """(mount point, this process's cgroup path in it, kind) of a usable cgroup hierarchy."""
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            if tail[0] == "cgroup" and "pids" in tail[2].split(","):
                found.setdefault("v1-pids", fields[4])
            elif tail[0] == "cgroup2":
                found.setdefault("v2", fields[4])
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "pids" in controllers.split(","):
                own["v1-pids"] = path
            elif controllers == "":
                own["v2"] = path
    for kind in ("v1-pids", "v2"):
        if kind in found and kind in own:
            return found[kind], own[kind], kind
    raise OSError("no usable cgroup hierarchy")


class Warm:
    """A child forked ahead of its job, isolated and waiting for it on `job_w`."""

    def __init__(self, slot: int, uid: int | None, workdir: str, pid: int, job_w: int,
                 out_r: int, err_r: int, vsock: socket.socket) -> None:
        self.slot, self.uid, self.workdir, self.pid = slot, uid, workdir, pid
        self.job_w, self.out_r, self.err_r, self.vsock = job_w, out_r, err_r, vsock
        self.pidfd: int | None = None


class Run:
    """One running child, as the server sees it."""

    def __init__(self, job_id: int, job: dict[str, Any], slot: int, uid: int | None,
                 workdir: str) -> None:
        self.id = job_id
        self.mode: str = job["mode"]
        self.n_tests = len(job.get("test_code") or [])
        self.step: float = float(job["limits"]["timeout"])
        self.output_cap = int(job["limits"]["output_bytes"])
        self.slot = slot
        self.uid = uid
        self.workdir = workdir
        self.started = time.monotonic()
        self.deadline = self.started + (self.step if self.mode == "assert" else job["budget"])
        self.hard_deadline = self.started + float(job["budget"])
        self.pid = 0
        self.pidfd: int | None = None
        self.out_fd: int | None = None
        self.err_fd: int | None = None
        self.vsock: socket.socket | None = None
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.output_total = 0
        self.nonces: list[bytes] | None = None
        self.next = 0
        self.load: dict[str, Any] | None = None
        self.tests: list[dict[str, Any]] = []
        self.completed = False
        self.set_up = False  # the child reported that it is set up (the program may run)
        self.problem: tuple[str, str] | None = None  # (status, reason) set by the server
        self.status: int | None = None
        self.cpu = 0.0
        self.ended: float | None = None
        self.killed = False

    def set_problem(self, status: str, reason: str) -> None:
        if self.problem is None:
            self.problem = (status, reason)


class Server:
    def __init__(self, ctl: socket.socket, workers: int, report: dict[str, Any]) -> None:
        self.ctl = ctl
        self.workers = workers
        self.report = report
        self.uid_per_slot = bool(report.get("uid_per_slot"))
        # A uid range of our own (pids are unique among live servers): one uid per slot.
        self.base_uid = 1_000_000_000 + (os.getpid() % 4_194_304) * 64
        self.free = list(range(workers - 1, -1, -1))
        self.queue: deque[tuple[int, dict[str, Any]]] = deque()
        self.runs: dict[int, Run] = {}
        self.warm: dict[int, Warm] = {}
        self.by_pid: dict[int, Run | Warm] = {}
        self.sel = selectors.DefaultSelector()
        self.buf = bytearray()
        self.runner: Any = None
        if not report.get("ctypes_loaded"):
            priv = harness.private_namespace(harness.trusted_classes())
            sys.addaudithook(priv["audit"])  # disarmed here; armed in each child
            self.runner = priv["runner"]
        if report.get("jail"):
            self.work_root = "/tmp"
        else:
            self.work_root = os.path.abspath(tempfile.mkdtemp(prefix="rewardlab-sandbox-"))
            os.chmod(self.work_root, 0o711)
        self.seq = 0
        self.stopping = False
        self.reap_until = 0.0
        self.groups: SlotGroups | None = None
        if self.uid_per_slot:
            try:
                self.groups = SlotGroups(workers)
                if not self._join_works():
                    raise OSError("a child could not join its slot's cgroup")
                report["cgroup"] = self.groups.kind
            except OSError as exc:
                if self.groups is not None:
                    self.groups.close()
                    self.groups = None
                report["notes"].append(f"cgroups: {exc} (every run ends with a kill by uid)")

    def _join_works(self) -> bool:
        assert self.groups is not None
        pid = os.fork()
        if pid == 0:
            try:
                _write_file("cgroup.procs", b"0", self.groups.slots[0])
                os._exit(0 if os.getpid() in self.groups.procs(0) else 1)
            except BaseException:  # noqa: BLE001 - reported through the exit code
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

    # -- child side ---------------------------------------------------------------------------
    def scrub(self) -> None:
        """In a forked child: forget every job's data the server held (tests, inputs, nonces)."""
        for _, job in self.queue:
            job.clear()
        self.queue.clear()
        for run in self.runs.values():
            run.nonces = None
            run.stdout.clear()
            run.stderr.clear()
            run.tests.clear()
        self.buf.clear()
        self.runner = None

    # -- running ------------------------------------------------------------------------------
    def prefork(self, slot: int) -> None:
        """Fork the slot's next child now, so that a job only has to be handed over."""
        uid = self.base_uid + slot if self.uid_per_slot else None
        self.seq += 1
        if self.report.get("scratch_per_slot"):
            workdir = f"{limits.SCRATCH.format(slot=slot)}/w{self.seq}"
        else:
            workdir = f"{self.work_root}/w{slot}-{self.seq}"
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        job_r, job_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        vchild = child.detach()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            group = self.groups.slots[slot] if self.groups is not None else None
            harness.warm_child(job_r, out_w, err_w, vchild, workdir, uid, self.scrub,
                               self.runner, group)
        for fd in (job_r, out_w, err_w, vchild):
            os.close(fd)
        warm = Warm(slot, uid, workdir, pid, job_w, out_r, err_r, parent)
        try:
            warm.pidfd = os.pidfd_open(pid)
            self.sel.register(warm.pidfd, selectors.EVENT_READ, ("pid", warm))
        except (AttributeError, OSError):
            warm.pidfd = None
        self.warm[slot] = warm
        self.by_pid[pid] = warm

    def discard_warm(self, warm: Warm, kill: bool) -> None:
        """Forget a warm child (it died, or the server stops): close its ends, remove its
        working directory."""
        if self.warm.get(warm.slot) is warm:
            del self.warm[warm.slot]
        if self.by_pid.get(warm.pid) is warm:
            del self.by_pid[warm.pid]
        if warm.job_w < 0:
            return
        if kill:
            try:
                os.kill(warm.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (warm.job_w, warm.out_r, warm.err_r):
            os.close(fd)
        warm.job_w = -1
        warm.vsock.close()
        if warm.pidfd is not None:
            self.sel.unregister(warm.pidfd)
            os.close(warm.pidfd)
        remove_tree(warm.workdir)

    def start(self, job_id: int, job: dict[str, Any]) -> None:
        slot = self.free.pop()
        warm = self.warm.pop(slot, None)
        if warm is None:
            self.prefork(slot)
            warm = self.warm.pop(slot)
        run = Run(job_id, job, slot, warm.uid, warm.workdir)
        data = marshal.dumps(job)
        job.clear()
        run.pid = warm.pid
        run.out_fd, run.err_fd = warm.out_r, warm.err_r
        run.pidfd = warm.pidfd
        run.vsock = warm.vsock  # verdicts, or (stdio) the child's word that it is set up
        self.runs[job_id] = run
        self.by_pid[run.pid] = run
        for fd in (run.out_fd, run.err_fd):
            os.set_blocking(fd, False)
        self.sel.register(run.out_fd, selectors.EVENT_READ, ("out", run))
        self.sel.register(run.err_fd, selectors.EVENT_READ, ("err", run))
        if run.vsock is not None:
            run.vsock.setblocking(False)
            self.sel.register(run.vsock, selectors.EVENT_READ, ("verdict", run))
        if run.pidfd is not None:
            self.sel.modify(run.pidfd, selectors.EVENT_READ, ("pid", run))
        sent = 0
        try:
            while sent < len(data):
                sent += os.write(warm.job_w, data[sent: sent + 65536])
        except OSError as exc:
            run.set_problem("setup_error", f"the child did not take its job: {exc}")
            self.kill(run)
        finally:
            os.close(warm.job_w)
        del data  # the next child must not inherit this job
        if not self.stopping:  # the slot's next child gets ready while this one runs
            try:
                self.prefork(slot)
            except OSError:
                pass  # forked when the slot's next job comes

    def kill(self, run: Run) -> None:
        """Kill everything the run started: its process group, and every process of its uid."""
        if run.killed:
            return
        run.killed = True
        if run.pid:
            try:
                os.killpg(run.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if run.uid is not None:
            kill_uid(run.uid)
        # What was killed comes back to us (the subreaper) as zombies; no descriptor wakes us
        # for them, so poll for a moment to reap them promptly.
        self.reap_until = time.monotonic() + 1.0

    def sweep(self, run: Run) -> None:
        """After the leader exited: kill whatever the run left running (a cgroup tells cheaply
        whether there is anything; without one, kill by process group and uid every time)."""
        if self.groups is not None and not run.killed:
            warm = self.warm.get(run.slot)
            try:
                if not [p for p in self.groups.procs(run.slot) if warm is None or p != warm.pid]:
                    return
            except OSError:
                pass
        run.killed = False
        self.kill(run)

    def on_exit(self, run: Run, status: int, rusage: Any) -> None:
        run.status = status
        run.cpu = rusage.ru_utime + rusage.ru_stime
        run.ended = time.monotonic()
        self.by_pid.pop(run.pid, None)
        if run.pidfd is not None:
            self.sel.unregister(run.pidfd)
            os.close(run.pidfd)
            run.pidfd = None

    def reap(self) -> None:
        """Reap exited children: leaders (after killing what they left) and returned orphans."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or not info.si_pid:
                return
            run = self.by_pid.get(info.si_pid)
            if isinstance(run, Run):
                self.sweep(run)  # while the leader is a zombie, its pid cannot be reused
            try:
                _, status, rusage = os.wait4(info.si_pid, 0)
            except ChildProcessError:
                continue
            if isinstance(run, Run):
                self.on_exit(run, status, rusage)
            elif isinstance(run, Warm):  # died before getting a job: fork another later
                self.discard_warm(run, kill=False)

    def read_stream(self, run: Run, fd: int, is_err: bool) -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close_stream(run, fd)
                return
            run.output_total += len(chunk)
            target = run.stderr if is_err else run.stdout
            room = (16384 if is_err else run.output_cap) - len(target)
            if room > 0:
                target += chunk[:room]
            if run.output_total > run.output_cap:
                run.set_problem("output_limit",
                                f"the program wrote more than {run.output_cap} bytes")
                self.kill(run)
                return

    def close_stream(self, run: Run, fd: int) -> None:
        self.sel.unregister(fd)
        os.close(fd)
        if fd == run.out_fd:
            run.out_fd = None
        else:
            run.err_fd = None

    def read_verdicts(self, run: Run) -> None:
        sock = run.vsock
        assert sock is not None
        while True:
            try:
                data, anc, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(_CREDS.size))
            except BlockingIOError:
                return
            except OSError:
                data, anc = b"", []
            if not data and not anc:
                self.sel.unregister(sock)
                sock.close()
                run.vsock = None
                return
            sender = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    sender = _CREDS.unpack(payload[: _CREDS.size])[0]
            if sender != run.pid:
                self.tamper(run, "a verdict record came from another process")
                return
            if not self.record(run, data):
                return

    def tamper(self, run: Run, reason: str) -> None:
        run.set_problem("tampered", reason)
        self.kill(run)

    def record(self, run: Run, data: bytes) -> bool:
        """Check and store one verdict record; False (after killing the run) if it is forged."""
        if run.mode == "stdio":  # one record, before the program runs: the child is set up
            if data != b"S" or run.set_up:
                self.tamper(run, "an unexpected record on the control channel")
                return False
            run.set_up = True
            return True
        n = run.n_tests
        if run.nonces is None:
            if data[:1] != b"K" or len(data) != 1 + 16 * (n + 2):
                self.tamper(run, "the verdict channel did not start with the harness key")
                return False
            run.nonces = [data[1 + 16 * i: 17 + 16 * i] for i in range(n + 2)]
            run.set_up = True  # the harness runs: what follows is the program's doing
            return True
        nonce, kind, rest = data[:16], data[16:17], data[17:]
        if run.completed:
            self.tamper(run, "a verdict record after the end of the run")
            return False
        if kind == b"D" and nonce == run.nonces[n + 1] and run.next >= 1:
            run.completed = True
            return True
        if run.next > n or nonce != run.nonces[run.next] or len(rest) < 8:
            self.tamper(run, "a verdict record with a wrong or replayed nonce")
            return False
        (seconds,) = struct.unpack_from("<d", rest)
        message = rest[8:].decode("utf-8", "replace")
        now = time.monotonic()
        if run.next == 0:
            if kind not in (b"O", b"L"):
                self.tamper(run, "a malformed load record")
                return False
            run.load = {"ok": kind == b"O", "seconds": seconds, "message": message}
        else:
            if kind == b"T":
                self.tamper(run, message or "the harness saw the program tamper with the tests")
                return False
            if kind not in (b"P", b"F", b"N"):
                self.tamper(run, "a malformed test record")
                return False
            if kind == b"N":
                message = "the test ran no assertion"
            run.tests.append({"passed": kind == b"P", "seconds": seconds, "message": message,
                              "no_assertion": kind == b"N"})
        run.next += 1
        run.deadline = min(run.hard_deadline, now + run.step)
        return True

    def finish(self, run: Run) -> None:
        for fd in (run.out_fd, run.err_fd):
            if fd is not None:
                self.close_stream(run, fd)
        if run.vsock is not None:
            self.sel.unregister(run.vsock)
            run.vsock.close()
            run.vsock = None
        status_code = run.status if run.status is not None else 0
        exit_code = os.WEXITSTATUS(status_code) if os.WIFEXITED(status_code) else None
        sig = os.WTERMSIG(status_code) if os.WIFSIGNALED(status_code) else None
        if run.problem is not None:
            status, reason = run.problem
        elif exit_code == harness.EXIT_SETUP and not run.set_up:
            status, reason = "setup_error", "the sandbox could not set up the run"
        elif sig == signal.SIGXCPU:
            status, reason = "cpu_limit", "the program used up its CPU time"
        elif sig is not None:
            status, reason = "signaled", f"the program was killed by {_signame(sig)}"
        elif run.mode == "assert" and not run.completed:
            status, reason = "exited", f"the program ended the run (exit code {exit_code})"
        else:
            status, reason = "exited", ""
        result = {
            "status": status,
            "reason": reason,
            "exit_code": exit_code,
            "signal": sig,
            "stdout": bytes(run.stdout),
            "stderr": bytes(run.stderr),
            "wall": (run.ended or time.monotonic()) - run.started,
            "cpu": run.cpu,
            "load": run.load,
            "tests": run.tests,
            "completed": run.completed,
        }
        self.runs.pop(run.id, None)
        remove_tree(run.workdir)
        self.free.append(run.slot)
        self.reply(("done", run.id, result))

    # -- control ------------------------------------------------------------------------------
    def reply(self, message: Any) -> None:
        if self.stopping and self.ctl.fileno() < 0:
            return
        try:
            self.ctl.setblocking(True)
            send_message(self.ctl, message)
        except OSError:
            self.stopping = True
        finally:
            if self.ctl.fileno() >= 0:
                self.ctl.setblocking(False)

    def read_control(self) -> None:
        try:
            chunk = self.ctl.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.stopping = True
            return
        self.buf += chunk
        for message in pop_messages(self.buf):
            if message[0] == "run":
                self.queue.append((message[1], message[2]))
            elif message[0] == "cancel":
                self.cancel(message[1])
            elif message[0] == "stop":
                self.stopping = True

    def cancel(self, job_id: int) -> None:
        for i, (queued_id, job) in enumerate(self.queue):
            if queued_id == job_id:
                del self.queue[i]
                job.clear()
                self.reply(("done", job_id, {"status": "cancelled",
                                             "reason": "cancelled before it ran"}))
                return
        run = self.runs.get(job_id)
        if run is not None:
            run.set_problem("cancelled", "cancelled by the caller")
            self.kill(run)

    def check_deadlines(self) -> None:
        now = time.monotonic()
        for run in list(self.runs.values()):
            if run.ended is None and now >= run.deadline:
                if run.mode == "stdio":
                    run.set_problem("timeout", "the program went over the time limit")
                elif now >= run.hard_deadline:
                    run.set_problem("timeout", "the run went over its total time budget")
                elif run.next == 0:
                    run.set_problem("timeout", "loading the program went over the time limit")
                else:
                    run.set_problem("timeout", f"test {run.next} went over the time limit")
                self.kill(run)

    def next_timeout(self) -> float | None:
        if self.queue and self.free:
            return 0.0
        now = time.monotonic()
        if now < self.reap_until:
            return 0.01
        if not self.runs:
            return None
        soonest = min(
            (r.ended + _GRACE) if r.ended is not None else r.deadline for r in self.runs.values()
        )
        wait = max(0.0, soonest - now)
        if any(r.pidfd is None and r.ended is None for r in self.runs.values()):
            wait = min(wait, 0.005)
        return wait

    def serve(self) -> None:
        self.ctl.setblocking(False)
        self.sel.register(self.ctl, selectors.EVENT_READ, ("ctl", None))
        for slot in self.free:
            self.prefork(slot)
        while not (self.stopping and not self.runs):
            if self.stopping:
                for queued_id, job in self.queue:
                    job.clear()
                    self.reply(("done", queued_id,
                                {"status": "cancelled", "reason": "shutting down"}))
                self.queue.clear()
                for run in self.runs.values():
                    run.set_problem("cancelled", "the sandbox is shutting down")
                    self.kill(run)
            for key, _ in self.sel.select(self.next_timeout()):
                what, run = key.data
                if what == "ctl":
                    self.read_control()
                elif what == "pid":
                    pass  # reaped below
                elif not isinstance(run, Run) or run.id not in self.runs:
                    continue
                elif what == "verdict":
                    self.read_verdicts(run)
                else:
                    self.read_stream(run, key.fd, what == "err")
            self.reap()
            self.check_deadlines()
            now = time.monotonic()
            for run in list(self.runs.values()):
                if run.ended is None:
                    continue
                open_streams = run.out_fd is not None or run.err_fd is not None
                if run.vsock is not None:
                    self.read_verdicts(run)
                    open_streams = open_streams or run.vsock is not None
                if not open_streams or now - run.ended >= _GRACE:
                    self.finish(run)
            while self.queue and self.free and not self.stopping:
                job_id, job = self.queue.popleft()
                try:
                    self.start(job_id, job)
                except OSError as exc:
                    self.reply(("done", job_id, {
                        "status": "setup_error", "reason": f"could not start the run: {exc}"}))

    def shutdown(self) -> None:
        for warm in list(self.warm.values()):
            self.discard_warm(warm, kill=True)
        for run in list(self.runs.values()):
            self.kill(run)
        if self.uid_per_slot:
            for slot in range(self.workers):
                kill_uid(self.base_uid + slot)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # reap what was killed (we are its subreaper)
            self.reap()
            try:
                if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                    time.sleep(0.005)
            except ChildProcessError:
                break
        for run in list(self.runs.values()):
            remove_tree(run.workdir)
        if self.groups is not None:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and any(
                    self.groups.procs(slot) for slot in range(self.workers)):
                time.sleep(0.01)
                self.reap()
            self.groups.close()
        if not self.report.get("jail"):
            remove_tree(self.work_root)


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def kill_uid(uid: int) -> None:
    """Kill every process running as `uid` (from a child that has become exactly that uid)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            if os.getuid() == uid and os.geteuid() == uid and os.getuid() != 0:
                try:
                    os.kill(-1, signal.SIGKILL)
                except OSError:
                    pass
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def remove_tree(path: str) -> None:
    try:
        os.rmdir(path)  # most runs leave their working directory empty
        return
    except FileNotFoundError:
        return
    except OSError:
        pass

    def fix(func: Any, target: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(target) or target, 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=fix)


def main(argv: list[str]) -> None:
    """``stage1 CONFIG`` (isolate, then re-execute) or ``stage2 CONFIG`` (serve)."""
    stage, config = argv[0], json.loads(argv[1])
    if stage == "stage1":
        report = limits.prepare_isolation(network=config["network"], tmp_mb=config["tmp_mb"],
                                          shm_mb=config["shm_mb"], slots=config["workers"])
        config["report"] = report
        os.set_inheritable(config["fd"], True)
        os.execv(sys.executable, [sys.executable, "-s", "-c", config["boot"], "stage2",
                                  json.dumps(config)])
    ctl = socket.socket(fileno=config["fd"])
    report = config["report"]
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            report["notes"].append(f"preload {name}: not available")
    for name in config.get("preload", []):
        try:
            __import__(name)
        except Exception as exc:  # noqa: BLE001 - a user module that fails is reported
            report["notes"].append(f"preload {name}: {type(exc).__name__}: {exc}")
    if "threading" in sys.modules:
        report["notes"].append("threading is loaded in the fork server: slower forks")
    if "_ctypes" in sys.modules:
        report["ctypes_loaded"] = True
        report["notes"].append("ctypes is loaded in the fork server: assert runs will refuse")

    server = Server(ctl, config["workers"], report)
    os.environ.clear()
    os.environ.update(harness.SAFE_ENV)
    gc.freeze()  # children then leave the inherited objects alone (fewer copy-on-write faults)
    if report.get("jail"):
        os.chroot(report["jail"])
        os.chdir("/")
    else:
        os.chdir(server.work_root)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send_message(ctl, ("ready", report))
    try:
        server.serve()
    finally:
        server.shutdown()
