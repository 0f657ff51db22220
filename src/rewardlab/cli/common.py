"""What the verbs of the `rewardlab` command share: the error console, failing with an exit
code, ``KEY=VALUE`` options, and the runtimes a SIGTERM must close.

Exit codes: 0 done; 1 the run failed (output, file system, nothing scorable); 2 a usage error
(bad option, unknown reward, unreadable input); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from rewardlab.api import build
from rewardlab.compose.spec import SpecError
from rewardlab.core.registry import UnknownRewardError

if TYPE_CHECKING:
    from rewardlab.runtime.engine import Runtime

err = Console(stderr=True, soft_wrap=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

RUNNING: list[Runtime] = []  # the runtimes of the scoring in progress, closed on SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived: unwind (closing pools and files) and exit."""


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned `typer.Exit`."""
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def key_values(items: list[str] | None, what: str) -> dict[str, Any]:
    """``["k=v", ...]`` (repeated ``-p``/``--map`` options) as a dict; the value is everything after
    the first ``=`` and stays a string."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"{what} {item!r} is not KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def default_cache() -> Path:
    """`$REWARDLAB_CACHE`, else ~/.cache/rewardlab/scores.db."""
    env = os.environ.get("REWARDLAB_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rewardlab" / "scores.db"


def load_reward(reward: str, param: list[str] | None) -> Any:
    """The spec a verb serves or scores: a spec file or a reward name (with ``-p KEY=VALUE``,
    values read as YAML); any failure is a usage error naming the reward."""
    try:
        if param:
            return build(reward, **{k: yaml.safe_load(v) for k, v in key_values(param, "param").items()})
        return build(reward)
    except (SpecError, UnknownRewardError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    except RecursionError:
        raise fail(f"spec {reward}: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a reward module that raises on import: say which
        raise fail(f"cannot load reward {reward!r}: {type(exc).__name__}: {exc}") from None
