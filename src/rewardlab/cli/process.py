"""Process-level setup of the `rewardlab` command: a SIGTERM unwinds like Ctrl-C (closing the
runtimes in progress), and multiprocessing keeps its temporary files in a directory of our own."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from types import FrameType

from rewardlab.cli.common import RUNNING, Terminated

_MP_PREFIX = "rewardlab-mp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_mp_tempdir() -> None:
    """Keep multiprocessing's temporary directory (`pymp-*`) inside a per-process directory
    named with our pid, removed at exit; directories left by a killed run (whose pid is gone)
    are removed at the next start."""
    import multiprocessing.util as mp_util

    base = tempfile.gettempdir()
    uid = os.getuid()
    for entry in os.scandir(base):
        if not entry.name.startswith(_MP_PREFIX):
            continue
        pid = entry.name[len(_MP_PREFIX):]
        try:
            if pid.isdigit() and entry.is_dir(follow_symlinks=False) \
                    and entry.stat(follow_symlinks=False).st_uid == uid and not _pid_alive(int(pid)):
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            continue
    run_dir = os.path.join(base, f"{_MP_PREFIX}{os.getpid()}")
    if len(run_dir) > 60:  # multiprocessing's socket paths below it must stay under 108 bytes
        return
    os.mkdir(run_dir, 0o700)
    old = tempfile.tempdir
    tempfile.tempdir = run_dir
    try:
        mp_util.get_temp_dir()  # created now, under run_dir, and remembered by multiprocessing
    finally:
        tempfile.tempdir = old
    # multiprocessing removes its directory at priority -100; ours goes after it
    mp_util.Finalize(None, shutil.rmtree, args=(run_dir,), kwargs={"ignore_errors": True},
                     exitpriority=-200)


def _close_quietly(rt: object) -> None:
    try:
        rt.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001, S110 - shutting down; the main thread reports the interruption
        pass


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Close the runtimes in progress from other threads (the main thread may be inside one, and
    calls waiting on its workers then return), and unwind the main thread with `Terminated`."""
    for rt in list(RUNNING):
        threading.Thread(target=_close_quietly, args=(rt,), daemon=True).start()
    raise Terminated()
