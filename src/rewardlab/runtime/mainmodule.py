"""The caller's main module and the pool's workers.

multiprocessing's fork server and spawn start methods re-run the parent's main script in every
new process (as ``__mp_main__``), so a plain script without an ``if __name__ == "__main__":``
guard runs itself again in each worker. rewardlab's workers need the main module only to run a
reward defined there: workers start with the main module hidden, and import it only when a task
holds such a reward. A script that scores rewards at its top level while a worker imports it
would score everything again (and start workers from a worker): that import stops with
`UnguardedMainError`, and the caller gets a `MainModuleError` that says what to do.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import runpy
import sys
import threading
import types
from collections.abc import Iterator
from multiprocessing import process
from typing import Any

MainRef = tuple[str, str]  # ("module", dotted name) or ("path", absolute file path)

_start_lock = threading.Lock()
_importing = False
_GUARD = 'if __name__ == "__main__":'


class MainModuleError(RuntimeError):
    """A reward defined in the main module cannot run in a worker process (raised in the caller)."""


class UnguardedMainError(BaseException):
    """Raised inside a worker when the main script, imported there to find a reward, starts
    scoring. A BaseException so that a script's ``except Exception`` does not swallow it."""


def check_not_importing() -> None:
    """Refuse to score while this process imports the main script for a worker."""
    if _importing:
        raise UnguardedMainError("the main script scores rewards when it is imported")


@contextlib.contextmanager
def hidden() -> Iterator[None]:
    """Hide the main module from multiprocessing while a worker is started (so the worker does
    not re-run it). Serialised: concurrent starts must not restore each other's view."""
    main = sys.modules.get("__main__")
    with _start_lock:
        if main is None:
            yield
            return
        saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
        main.__spec__ = None
        main.__dict__.pop("__file__", None)
        try:
            yield
        finally:
            main.__dict__.pop("__file__", None)
            main.__dict__.update(saved)


def reference() -> MainRef | None:
    """How a worker can import this process's main module, or None when it cannot (an
    interactive session, ``python -c``, a script read from stdin)."""
    main = sys.modules.get("__main__")
    if main is None:
        return None
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name:
        return ("module", name)
    path = getattr(main, "__file__", None)
    if path is None:
        return None
    if not os.path.isabs(path) and process.ORIGINAL_DIR is not None:
        path = os.path.join(process.ORIGINAL_DIR, path)
    return ("path", os.path.normpath(path)) if os.path.isfile(path) else None


def _from_main(obj: Any) -> bool:
    if isinstance(obj, type | types.FunctionType):
        return getattr(obj, "__module__", None) == "__main__"
    if type(obj).__module__ == "__main__":
        return True
    fn = getattr(obj, "fn", None)  # a RewardDef is sent by reference to its function's module
    return isinstance(fn, types.FunctionType) and fn.__module__ == "__main__"


class _Probe(pickle.Pickler):
    """A pickler that notes whether anything it writes lives in the main module."""

    uses_main = False

    def persistent_id(self, obj: Any) -> None:
        if not self.uses_main and _from_main(obj):
            self.uses_main = True
        return None


def dumps(obj: Any) -> tuple[bytes, bool]:
    """`obj` pickled, and whether unpickling it needs the main module."""
    import io

    buf = io.BytesIO()
    probe = _Probe(buf, protocol=pickle.HIGHEST_PROTOCOL)
    probe.dump(obj)
    return buf.getvalue(), probe.uses_main


def not_importable_message(what: str) -> str:
    return (f"{what} is defined in the main module of an interactive session or `python -c` "
            f"(there is no script file a worker process could import); move it into a module "
            f"and import it from there")


def load_in_worker(ref: MainRef, what: str) -> str | None:
    """Import the caller's main module in this worker (once); None when done, else a message
    that says why it failed and what to do."""
    global _importing
    if getattr(sys.modules.get("__main__"), "__rewardlab_main__", False):
        return None
    kind, target = ref
    _importing = True
    try:
        if kind == "module":
            namespace = runpy.run_module(target, run_name="__mp_main__", alter_sys=True)
        else:
            namespace = runpy.run_path(target, run_name="__mp_main__")
    except UnguardedMainError:
        return (f"{what} is defined in the main script {target}, which a worker process imports "
                f"to run it, and that script scores rewards at its top level, so importing it "
                f"would run everything again in every worker. Put the script's top-level code "
                f"under `{_GUARD}`, or move the reward into a module the script imports.")
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, worker replaced
        return (f"{what} is defined in the main script {target}, and importing that script in a "
                f"worker process failed ({type(exc).__name__}: {exc}). Move the reward into a "
                f"module, or guard the script's top-level code with `{_GUARD}`.")
    finally:
        _importing = False
    module = types.ModuleType("__mp_main__")
    module.__dict__.update(namespace)
    module.__dict__["__rewardlab_main__"] = True
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    return None
