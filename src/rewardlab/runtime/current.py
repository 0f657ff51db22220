"""Which Runtime serves a call: the one scoring right now (set for the duration of a
`Runtime.score`, and by ``with runtime.active():``), else the process-wide default.

Rewards reach their long-lived resources (the process pool, the sandbox server, loaded models)
through `current_runtime()`, so one Runtime owns them and `Runtime.close()` releases them. The
default Runtime is made on first use, closed at interpreter exit, and gives a forked child fresh
resources.
"""

from __future__ import annotations

import atexit
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING

from rewardlab.runtime import forksafe

if TYPE_CHECKING:
    from rewardlab.runtime.engine import Runtime

_active: ContextVar[Runtime | None] = ContextVar("rewardlab_runtime", default=None)
_default: Runtime | None = None
_lock = threading.Lock()
_exit_hook: list[bool] = []


@forksafe.register
def _fresh_lock() -> None:  # a parent thread may have held it at the fork
    global _lock
    _lock = threading.Lock()


def current_runtime() -> Runtime:
    """The Runtime serving this call: the active one, else the process-wide default."""
    rt = _active.get()
    if rt is not None and not rt.closed:
        return rt
    return default_runtime()


def default_runtime() -> Runtime:
    """The process-wide Runtime (no cache, a pool of one worker per core), made on first use
    and closed at exit. A closed default is replaced by a new one on the next use."""
    global _default
    with _lock:
        if _default is None or _default.closed:
            from rewardlab.runtime.engine import Runtime

            _default = Runtime()
            if not _exit_hook:
                atexit.register(close_default_runtime)
                _exit_hook.append(True)
        return _default


def close_default_runtime() -> None:
    """Close the process-wide Runtime, if one was made (the next use makes a new one)."""
    global _default
    with _lock:
        rt, _default = _default, None
    if rt is not None:
        rt.close()
