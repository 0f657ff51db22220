"""Fresh resources in a forked child.

Trainers fork data-loader and reward workers. A child inherits the parent's pools, executors,
locks and client objects, but not the threads and processes behind them: using them there
hangs (an executor whose threads do not exist) or fails (waiting on a process that is not the
child's). Modules that hold such state register a reset with `register`; every reset runs in
the child right after `os.fork()`, so the child starts fresh resources on first use. A reset
only drops references (it never closes or kills what the parent still uses).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from multiprocessing import forkserver
from typing import Any, Protocol

_resets: list[Callable[[], None]] = []
_objects: weakref.WeakSet[Any] = weakref.WeakSet()


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


def register(reset: Callable[[], None]) -> Callable[[], None]:
    """Run `reset` in every child forked after this call (usable as a decorator)."""
    _resets.append(reset)
    return reset


def track(obj: ForkAware) -> None:
    """Call `obj._after_fork_in_child()` in every forked child while `obj` is alive."""
    _objects.add(obj)


def _reset_forkserver() -> None:
    """The multiprocessing fork server started by the parent is not the child's: forget it
    so the child starts its own (waiting on the parent's server raises ChildProcessError).
    Nothing here imports: a fork can happen while another thread holds the import lock."""
    server = getattr(forkserver, "_forkserver", None)
    if server is None or getattr(server, "_forkserver_pid", None) is None:
        return
    alive = getattr(server, "_forkserver_alive_fd", None)
    if alive is not None:
        try:
            os.close(alive)  # the child's copy only: the parent keeps its server
        except OSError:
            pass
    server._forkserver_alive_fd = None
    server._forkserver_pid = None
    server._forkserver_address = None
    server._lock = threading.Lock()


def _after_fork_in_child() -> None:
    _reset_forkserver()
    for obj in list(_objects):
        obj._after_fork_in_child()
    for reset in list(_resets):
        reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
