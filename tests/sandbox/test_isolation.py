"""One sandboxed program must not fail others (each slot has its own bounded scratch space), and a
server that was killed leaves nothing behind once the next one starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rewardlab.sandbox import Limits, Sandbox, StdioJob
from rewardlab.sandbox.limits import JAIL_PREFIX

SCRATCH_MB = 48
# Writes 16 MB files (the per-file limit) until the disk is full, says so, then waits to be killed.
FILL = (
    "import os, sys, time\n"
    "block = b'x' * (1 << 20)\n"
    "n = 0\n"
    "try:\n"
    "    while True:\n"
    "        with open(f'fill{n}', 'wb') as fh:\n"
    "            for _ in range(16):\n"
    "                fh.write(block)\n"
    "        n += 1\n"
    "except OSError as exc:\n"
    "    print('full', exc.errno, flush=True)\n"
    "while True:\n"
    "    time.sleep(1)\n"
)
# A correct program that needs some disk: writes 8 MB, reads it back, prints the sum of the input.
NEEDS_DISK = (
    "data = bytes(range(256)) * 32768\n"
    "with open('work.bin', 'wb') as fh:\n"
    "    fh.write(data)\n"
    "with open('work.bin', 'rb') as fh:\n"
    "    assert fh.read() == data\n"
    "print(sum(map(int, input().split())))\n"
)


def _root_isolation(sandbox: Sandbox) -> dict[str, object]:
    report = sandbox.isolation
    if not (report["root"] and report["jail"]):
        pytest.skip(f"needs root with a jail (isolation here: {report})")
    return report


@pytest.fixture()
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(workers=4, tmp_mb=SCRATCH_MB)
    yield sb
    sb.close()


def _full_file_system(server_pid: int) -> bool:
    """Whether a file system under the server's /tmp (as the host sees it through /proc) is
    full: observed progress of the filling program, no sleep."""
    root = Path(f"/proc/{server_pid}/root/tmp")
    candidates = [root, *[p for p in root.iterdir() if p.is_dir()]]
    for path in candidates:
        st = os.statvfs(path)
        if st.f_blocks and st.f_bavail * st.f_frsize < (1 << 20):
            return True
    return False


def test_a_program_filling_its_disk_fails_alone(sandbox: Sandbox) -> None:
    report = _root_isolation(sandbox)
    assert report["scratch_per_slot"]
    slow = Limits(timeout=120.0, file_size_mb=16)
    hog = sandbox.submit(StdioJob(FILL, "", slow))
    pid = sandbox._proc.pid  # type: ignore[union-attr]  # noqa: SLF001 - the server's view
    deadline = time.monotonic() + 60
    while not _full_file_system(pid):  # wait until the hog has filled its disk
        assert not hog.done(), hog.result()
        assert time.monotonic() < deadline, "the filling program never filled a disk"
        time.sleep(0.02)
    results = sandbox.run_many([StdioJob(NEEDS_DISK, f"{i} {i + 1}\n", Limits(timeout=30.0))
                                for i in range(3)])
    for i, result in enumerate(results):
        assert (result.status, result.exit_code) == ("exited", 0), result
        assert result.stdout == f"{2 * i + 1}\n".encode()
    hog.cancel()  # kills the hog; its slot serves again
    assert sandbox.run(StdioJob(NEEDS_DISK, "2 3\n", Limits(timeout=30.0))).stdout == b"5\n"


def test_scratch_space_is_bounded_and_reclaimed(sandbox: Sandbox) -> None:
    _root_isolation(sandbox)
    fill_and_exit = FILL.replace("while True:\n    time.sleep(1)\n", "")
    for _ in range(2):  # the second run finds its slot's disk empty again
        result = sandbox.run(StdioJob(fill_and_exit, "", Limits(timeout=60.0)))
        assert result.stdout.startswith(b"full 28"), result  # ENOSPC, at the slot's bound


def _jails() -> set[str]:
    tmp = Path("/tmp")
    return {str(p) for p in tmp.iterdir() if p.name.startswith(JAIL_PREFIX)}


STARTER = (
    "import sys\n"
    "from rewardlab.sandbox import Sandbox\n"
    "sb = Sandbox(workers=1)\n"
    "print(sb.isolation['jail'], sb._proc.pid, flush=True)\n"
    "sys.stdin.read()\n"
)


def _start_elsewhere() -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen([sys.executable, "-c", STARTER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    jail, server = proc.stdout.readline().split()
    return proc, jail, int(server)


def _wait_gone(pid: int) -> None:
    """Until process `pid` has exited (gone, or a zombie its parent has not reaped yet)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state == b"Z":
            return
        assert time.monotonic() < deadline, f"process {pid} still there"
        time.sleep(0.02)


@pytest.mark.parametrize("how", ["kill -9 the server", "SIGTERM the caller"])
def test_jails_of_killed_servers_are_removed_at_the_next_start(how: str) -> None:
    with Sandbox(workers=1) as live:
        live_jail = live.isolation["jail"]
        if not live_jail:
            pytest.skip("no jail without root")
        proc, jail, server = _start_elsewhere()
        try:
            if how.startswith("kill -9"):  # the caller lives on (and reaps the server)
                os.kill(server, signal.SIGKILL)
            else:  # the caller dies without cleaning up; its server stops by itself
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            _wait_gone(server)
            assert jail in _jails()  # left behind, empty
            with Sandbox(workers=1) as fresh:
                fresh.run(StdioJob("pass"))
                assert jail not in _jails()
                assert live_jail in _jails()  # a running server's jail is left alone
                assert fresh.isolation["jail"] in _jails()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert live.run(StdioJob("print(1)")).stdout == b"1\n"  # and it still serves
