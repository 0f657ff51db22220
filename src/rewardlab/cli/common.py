"""What the verbs of the `rewardlab` command share: the error console, failing with an exit
code, ``KEY=VALUE`` options, the Runtime of a scoring command (closed on exit and on SIGTERM),
and reading preference pairs.

Exit codes: 0 done; 1 the run failed (output, file system, nothing scorable); 2 a usage error
(bad option, unknown reward, unreadable input); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from rewardlab.api import build
from rewardlab.compose.spec import SpecError
from rewardlab.core.registry import UnknownRewardError

if TYPE_CHECKING:
    from rewardlab.io.preferences import PreferenceData
    from rewardlab.runtime.engine import Runtime

err = Console(stderr=True, soft_wrap=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

RUNNING: list[Runtime] = []  # the runtimes of the scoring in progress, closed on SIGTERM


# the options every scoring verb shares, declared once
MapOpt = Annotated[list[str] | None, typer.Option("--map", help="FIELD=PATH, e.g. response=output.text")]
SplitOpt = Annotated[str | None, typer.Option(help="split of an HF DatasetDict")]
CacheOpt = Annotated[Path | None, typer.Option(help="SQLite cache [default: ~/.cache/rewardlab/scores.db]")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="do not read or write the cache")]
WorkersOpt = Annotated[int | None, typer.Option(help="process-pool size [default: cores]")]
TimeoutOpt = Annotated[float | None, typer.Option(help="per-sample timeout (s) of cpu and io rewards")]
SummaryJsonOpt = Annotated[Path | None, typer.Option(help="also write the summary as JSON")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]


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


@contextmanager
def command_runtime(cache: Path | None, no_cache: bool, workers: int | None,
                    timeout: float | None) -> Iterator[Runtime]:
    """The Runtime of a scoring command, with the cache, pool and timeout options every verb
    shares (`cache` or the default cache, none with `no_cache`); an unusable cache or pool fails
    the command with the reason. It is closed when the block ends, and by a SIGTERM meanwhile."""
    from rewardlab.runtime.engine import Runtime

    try:
        rt = Runtime(workers=workers, timeout=timeout, cache=None if no_cache else (cache or default_cache()),
                     on_cache_error=lambda msg: err.print(f"[yellow]warning:[/yellow] {escape(msg)}"))
    except Exception as exc:  # noqa: BLE001 - e.g. an unusable cache: say what and stop
        raise fail(f"cannot start the runtime: {type(exc).__name__}: {exc}") from None
    RUNNING.append(rt)
    try:
        yield rt
    finally:
        if rt in RUNNING:
            RUNNING.remove(rt)
        rt.close()


def read_pairs(pairs: Path, split: str | None) -> PreferenceData:
    """Preference data for `eval` and `audit probes`: unreadable rows are reported (the run goes on);
    a file with none readable fails the command."""
    from rewardlab.io.files import InputError
    from rewardlab.io.preferences import read_preferences

    try:
        data = read_preferences(pairs, split)
    except (FileNotFoundError, InputError, ValueError) as exc:
        raise fail(str(exc)) from None
    for line in data.summary().splitlines()[1:]:
        err.print(f"[yellow]{escape(line)}[/yellow]")
    if not data.items:
        raise fail(f"no preference rows could be read from {pairs}", EXIT_FAILED)
    return data


def require_report_extra(report: Path | None) -> None:
    """With ``--report``, fail before scoring, not after, when the report extra is missing."""
    if report is None:
        return
    try:
        from rewardlab.audit.report import new_figure

        new_figure()
    except ImportError as exc:
        raise fail(str(exc)) from None
