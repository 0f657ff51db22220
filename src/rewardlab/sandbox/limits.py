"""Resource limits for one sandboxed run, and the operating-system isolation of the fork server.

`Limits` says what one run may use. Inside the forked child, `apply_rlimits` turns it into
``setrlimit`` calls (CPU time, address space, processes, file size, open files, no core files).

`prepare_isolation` runs once, in the first stage of the fork server, before the server
re-executes itself as a clean interpreter (it needs ``ctypes`` for ``unshare``/``mount``/``prctl``,
and the process that forks sandboxed programs must never have ``ctypes`` loaded: calls through a
loaded ``ctypes`` function object are not audited). As root it:

- unshares the network namespace (only a down loopback device: no network at all), the IPC
  namespace and the mount namespace;
- builds a minimal read-only root ("jail") that holds only ``/usr``, ``/etc``, the ``/lib*`` and
  ``/bin`` links, the Python installation and its site-packages, a tiny ``/dev`` (null, zero,
  full, random, urandom, a size-capped ``/dev/shm``) and, under ``/tmp``, one size-capped
  ``noexec`` scratch file system per parallel slot for its programs' working directories (a
  program that fills its disk fails alone). There is no ``/proc``, ``/sys``, ``/home``,
  ``/root`` or project tree: a program cannot read data sets or expected outputs from disk, nor
  write outside its working directory;
- makes the server a child subreaper (escaped grandchildren come back to it) and sets
  ``no_new_privs`` (no set-uid binary can regain privileges).

Each program then runs under a uid of its own (one per parallel slot, in a range derived from
the server's pid), so it cannot signal, trace or read other programs or the server, its
``RLIMIT_NPROC`` counts exactly its own processes, and everything it started can be killed by
uid; a per-slot cgroup (``pids``) tells the server cheaply whether a run left anything behind.
``/etc`` is visible read-only (world-readable files only, as any unprivileged user sees them).

Without root (or where ``unshare`` is refused) the namespaces, the jail and the per-slot uids are
not available. What still holds: the resource limits (``RLIMIT_NPROC`` then counts all of the
user's processes), a new session and process group per run killed whole at the end, the
wall-clock deadlines, the output caps, the scrubbed environment, a private working directory,
and in assert mode the verdict channel and the audit hook. What does not: programs run as the
caller's user, so they can read and write whatever that user can, use the network, signal the
user's other processes, and a process that leaves its process group (``setsid``) survives the
run. `rewardlab.sandbox.Sandbox.isolation` reports what was enforced; run as root (for example
in a container) for full isolation.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use.

    `timeout` is wall-clock seconds per step: loading the program and each assert test get
    `timeout` each (the server restarts the clock after every verdict), a stdin/stdout run gets
    `timeout` in all. `total_timeout` caps a whole run (default: `timeout` x (tests + 1)).
    `cpu_seconds` is the CPU-time limit of the run (default: the whole wall budget).
    `memory_mb` caps the address space, `processes` the number of processes and threads,
    `file_size_mb` any file written, `open_files` the descriptors, `output_bytes` what may be
    written to stdout and stderr together (the run is killed beyond it).
    """

    timeout: float = 5.0
    total_timeout: float | None = None
    cpu_seconds: float | None = None
    memory_mb: int = 1024
    processes: int = 32
    file_size_mb: int = 16
    open_files: int = 64
    output_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be at least 64, got {self.memory_mb!r}")
        if self.processes < 2:
            raise ValueError("processes must be at least 2 (the program and the harness thread)")

    def budget(self, steps: int) -> float:
        """The wall-clock budget of a run of `steps` timed steps."""
        if self.total_timeout is not None:
            return self.total_timeout
        return self.timeout * max(1, steps)

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


def apply_rlimits(limits: dict[str, Any], cpu_seconds: float) -> None:
    """Set the resource limits of the calling (child) process."""
    mb = 1024 * 1024
    cpu = max(1, math.ceil(cpu_seconds))
    settings = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, limits["memory_mb"] * mb, limits["memory_mb"] * mb),
        (resource.RLIMIT_NPROC, limits["processes"], limits["processes"]),
        (resource.RLIMIT_FSIZE, limits["file_size_mb"] * mb, limits["file_size_mb"] * mb),
        (resource.RLIMIT_NOFILE, limits["open_files"], limits["open_files"]),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for what, soft, hard in settings:
        _, current_hard = resource.getrlimit(what)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(what, (soft, hard))


# -- first-stage isolation (root only; uses ctypes, then the server re-executes itself) ------

_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36

JAIL_PREFIX = ".rewardlab-jail-"  # + the server's pid: an empty directory on the host; its
# contents exist only in the server's own mount namespace
SCRATCH = "/tmp/s{slot}"  # each slot's scratch file system, inside the jail


def _alive(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie has: its namespaces are gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def remove_stale_jails(parent: str | None = None) -> list[str]:
    """Remove the (empty) jail directories of fork servers that are gone (killed with
    ``kill -9``, or whose caller died), named ``JAIL_PREFIX<pid>-...``: a directory whose server
    still runs, or that holds anything, is left alone. Returns the paths removed."""
    parent = parent or tempfile.gettempdir()
    removed = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return removed
    for entry in entries:
        if not entry.startswith(JAIL_PREFIX):
            continue
        pid_text = entry[len(JAIL_PREFIX):].partition("-")[0]
        if not pid_text.isdigit():
            continue
        if _alive(int(pid_text)):
            continue  # that server runs (or the pid is someone else's now: left for later)
        path = os.path.join(parent, entry)
        try:
            os.rmdir(path)  # only ever an empty directory
        except OSError:
            continue
        removed.append(path)
    return removed


def _python_paths() -> list[str]:
    """Directories a forked interpreter may import from: the installation and site-packages."""
    paths = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and (
            "site-packages" in entry or "dist-packages" in entry
        ):
            paths.add(entry)
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)})
    out: list[str] = []
    for p in real:  # drop paths inside another kept path
        if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in real):
            out.append(p)
    return out


def prepare_isolation(*, network: bool, tmp_mb: int, shm_mb: int,
                      slots: int = 1) -> dict[str, Any]:
    """Isolate the calling process (the fork server's first stage) as far as privileges allow.

    Returns the report of what was done; ``jail`` is the directory to ``chroot`` into (after
    the second stage has imported what it needs), or None. In the jail each of the `slots`
    gets its own scratch file system of `tmp_mb` MB at ``SCRATCH`` (its programs' working
    directories), so a program that fills its disk fails alone; ``scratch_per_slot`` says so.
    """
    import ctypes

    report: dict[str, Any] = {
        "root": os.geteuid() == 0,
        "uid_per_slot": False,
        "network_namespace": False,
        "ipc_namespace": False,
        "jail": None,
        "subreaper": False,
        "no_new_privs": False,
        "scratch_per_slot": False,
        "notes": [],
    }
    libc = ctypes.CDLL(None, use_errno=True)

    def call(name: str, *args: Any) -> None:
        fn = getattr(libc, name)
        if fn(*args) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{name}: {os.strerror(err)}")

    for option, key in ((_PR_SET_CHILD_SUBREAPER, "subreaper"),
                        (_PR_SET_NO_NEW_PRIVS, "no_new_privs")):
        try:
            call("prctl", option, 1, 0, 0, 0)
            report[key] = True
        except OSError as exc:
            report["notes"].append(f"prctl {key}: {exc}")
    if os.geteuid() != 0:
        report["notes"].append("not root: no namespaces, no jail, programs run as the caller")
        return report
    report["uid_per_slot"] = True
    flags = _CLONE_NEWNS | _CLONE_NEWIPC | (0 if network else _CLONE_NEWNET)
    try:
        call("unshare", flags)
    except OSError as exc:
        report["notes"].append(f"unshare: {exc}")
        try:  # a network namespace alone is still worth having
            if not network:
                call("unshare", _CLONE_NEWNET)
                report["network_namespace"] = True
        except OSError as exc2:
            report["notes"].append(f"unshare(net): {exc2}")
        return report
    report["network_namespace"] = not network
    report["ipc_namespace"] = True

    def mount(src: str | None, target: str, fstype: str | None, mflags: int,
              data: str | None = None) -> None:
        call("mount", src.encode() if src else None, target.encode(),
             fstype.encode() if fstype else None, ctypes.c_ulong(mflags),
             data.encode() if data else None)

    def bind_ro(src: str, dst: str) -> None:
        if os.path.isdir(src):
            os.makedirs(dst, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
            with open(dst, "a"):
                pass
        mount(src, dst, None, _MS_BIND | _MS_REC)
        mount(None, dst, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)

    try:
        mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        # The jail is a tmpfs on an empty host directory, visible only in this namespace. It
        # must not shadow anything: the interpreter, a virtualenv or the package may live in
        # /tmp. The client removes the empty directory when the server stops.
        remove_stale_jails()
        jail = tempfile.mkdtemp(prefix=f"{JAIL_PREFIX}{os.getpid()}-")
        os.chmod(jail, 0o755)
        mount("tmpfs", jail, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=8m")
        old_umask = os.umask(0o022)
        try:
            for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/usr", "/etc"):
                if os.path.islink(top):
                    os.symlink(os.readlink(top), jail + top)
                elif os.path.isdir(top):
                    bind_ro(top, jail + top)
            # /tmp first: an installation under /tmp (a virtualenv, a checkout) is then bound
            # read-only inside it, at its own path. Programs cannot write /tmp itself (0711):
            # each slot's working directories are on a file system of their own.
            os.mkdir(jail + "/tmp")
            mount("tmpfs", jail + "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                  "mode=0711,size=4m")
            for slot in range(slots):
                scratch = jail + SCRATCH.format(slot=slot)
                os.mkdir(scratch, 0o711)
                mount("tmpfs", scratch, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                      f"mode=0711,size={tmp_mb}m")
            for path in _python_paths():
                if not path.startswith(("/usr/", "/etc/")) and os.path.isdir(path):
                    bind_ro(path, jail + path)
            dev = jail + "/dev"
            os.makedirs(dev, mode=0o755)
            mount("tmpfs", dev, "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=0755,size=64k")
            for name in ("null", "zero", "full", "random", "urandom"):
                if os.path.exists("/dev/" + name):
                    with open(f"{dev}/{name}", "a"):
                        pass
                    mount("/dev/" + name, f"{dev}/{name}", None, _MS_BIND)
            os.mkdir(dev + "/shm")
            mount("tmpfs", dev + "/shm", "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                  f"mode=1777,size={shm_mb}m")
            mount(None, dev, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NOEXEC)
            mount(None, jail, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
        finally:
            os.umask(old_umask)
        report["jail"] = jail
        report["scratch_per_slot"] = True
    except OSError as exc:
        report["notes"].append(f"jail: {exc}")
    return report
