"""`rewardlab score`: score a rollout file with a reward or spec (a thin layer over
`rewardlab.apply.scorefile.score_file`), with a progress bar and a summary on stderr."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rewardlab.apply.scorefile import score_file
from rewardlab.apply.summary import Summary
from rewardlab.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    RUNNING,
    CacheOpt,
    MapOpt,
    NoCacheOpt,
    QuietOpt,
    SplitOpt,
    SummaryJsonOpt,
    Terminated,
    TimeoutOpt,
    WorkersOpt,
    default_cache,
    err,
    fail,
    key_values,
    load_reward,
)
from rewardlab.io.files import InputError, count_rows
from rewardlab.io.output import OutputError
from rewardlab.runtime.engine import Runtime


def _print_summary(s: Summary, out: Path) -> None:
    """The run's summary on stderr: per-component statistics, statuses, rows, cache, latency, cost."""
    d = s.to_dict()
    t = Table(title=f"scored {s.scored} rows in {s.seconds:.2f}s -> {out}")
    t.add_column("component")
    for c in ("n", "mean", "std", "min", "max"):
        t.add_column(c, justify="right")
    for name, st in d["components"].items():
        t.add_row(name, str(st["n"]), *(f"{st[k]:.4g}" for k in ("mean", "std", "min", "max")))
    err.print(t)
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(d["statuses"].items())) or "none"
    p50, p99 = d["latency_p50_s"], d["latency_p99_s"]
    lat = f"p50 {p50 * 1e3:.3g} ms, p99 {p99 * 1e3:.3g} ms" if p50 is not None else "n/a"
    rate = f"{d['rows_per_s']:.0f} rows/s" if d["rows_per_s"] else "n/a"
    err.print(f"status   {statuses}")
    err.print(f"rows     {s.rows_in} read, {s.scored} scored, {s.resumed} already done, "
              f"{len(s.malformed)} malformed; {rate}")
    err.print(f"cache    {s.cache_hits} hits, {s.computed} computed")
    err.print(f"latency  {lat} per reward call")
    err.print(f"cost     {s.describe_cost()}")


def _check_summary_path(path: Path) -> None:
    """Refuse an unwritable --summary-json before scoring, not after."""
    if path.is_dir():
        raise fail(f"--summary-json {path} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise fail(f"--summary-json {path}: no directory {parent}")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise fail(f"--summary-json {path} is not writable")


def score_cmd(
    input: Annotated[Path, typer.Argument(help="JSONL, Parquet, or an HF dataset directory")],
    reward: Annotated[str, typer.Option("--reward", "-r", help="spec file, or a reward name")],
    output: Annotated[Path, typer.Option("--output", "-o", help="output JSONL (resumed if it exists)")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE for a named reward")] = None,
    map_: MapOpt = None,
    split: SplitOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = None,
    chunk_size: Annotated[int, typer.Option(help="rows per batch")] = 2048,
    summary_json: SummaryJsonOpt = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="start the output over instead of resuming it")] = False,
    quiet: QuietOpt = False,
    ray: Annotated[bool, typer.Option(
        "--ray", help="score with Ray Data actors (pip install 'rewardlab\\[ray]') on a local Ray, or on the "
                      "cluster of --ray-address")] = False,
    ray_address: Annotated[str | None, typer.Option(
        help="--ray on a running cluster: `auto` or `ray://HOST:PORT` (implies --ray)")] = None,
    ray_actors: Annotated[int | None, typer.Option(
        help="--ray: scoring actors (default: the cluster's CPUs minus one)")] = None,
    ray_cpus: Annotated[float | None, typer.Option(
        help="--ray: CPUs each actor reserves (default: 1); its pool has as many workers unless --workers")] = None,
) -> None:
    """Score a rollout file with a reward or spec. Resumable, cached, fail-closed.

    An existing output is resumed only when it was written by the same reward/spec, input,
    mapping and split (otherwise the command refuses; --overwrite starts it over). Only one
    run at a time writes an output. With --ray, Ray actors score the rows (see
    rewardlab.integrations.ray): the same output rows and summary, written in the order batches
    finish.
    """
    spec = load_reward(reward, param)
    mapping = key_values(map_, "map")
    if ray or ray_address is not None:
        _score_on_ray(input, spec, output, ray_address, mapping=mapping, split=split,
                      cache=None if no_cache else (cache or default_cache()), workers=workers, timeout=timeout,
                      chunk_size=chunk_size, summary_json=summary_json, overwrite=overwrite, quiet=quiet,
                      actors=ray_actors, cpus=ray_cpus)
        return
    if summary_json:
        _check_summary_path(summary_json)
    try:
        rt = Runtime(workers=workers, timeout=timeout,
                     cache=None if no_cache else (cache or default_cache()),
                     on_cache_error=lambda msg: err.print(f"[yellow]warning:[/yellow] {escape(msg)}"))
    except Exception as exc:  # noqa: BLE001 - e.g. an unusable cache: say what and stop
        raise fail(f"cannot start the runtime: {type(exc).__name__}: {exc}") from None

    def malformed(where: str, why: str) -> None:
        err.print(f"[yellow]skipped {escape(str(input))}:{where}:[/yellow] {escape(why)}")

    columns = [TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[rate]} rows/s"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    RUNNING.append(rt)
    try:
        total = count_rows(input) if input.is_file() and not quiet else None
        with Progress(*columns, console=err, disable=quiet, transient=False) as progress:
            task = progress.add_task("score", total=total, rate="-")

            def advance(n: int) -> None:
                progress.advance(task, n)
                t = progress.tasks[task]
                if t.speed:
                    progress.update(task, rate=f"{t.speed:,.0f}")

            summary = score_file(input, spec, output, mapping=mapping, split=split, runtime=rt,
                                 chunk_size=chunk_size, overwrite=overwrite, on_progress=advance,
                                 on_malformed=malformed)
    except OutputError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except (FileNotFoundError, InputError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise fail(f"{exc.strerror or exc}{where}", EXIT_FAILED) from None
    except (KeyboardInterrupt, Terminated) as exc:
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        raise fail("interrupted; the rows committed so far are kept: rerun the same command to resume",
                   code) from None
    finally:
        if rt in RUNNING:
            RUNNING.remove(rt)
        rt.close()
    _finish(summary, input, output, summary_json)


def _finish(summary: Summary, input: Path, output: Path, summary_json: Path | None) -> None:
    """The summary on stderr (and as JSON), then the exit rules for empty and malformed inputs."""
    _print_summary(summary, output)
    if summary_json:
        try:
            summary_json.write_text(json.dumps(summary.to_dict(), indent=2))
        except OSError as exc:
            raise fail(f"cannot write --summary-json {summary_json}: {exc.strerror or exc}",
                       EXIT_FAILED) from None
    if summary.rows_in == 0:
        err.print(f"[yellow]warning:[/yellow] {escape(str(input))} has no rows")
    elif summary.malformed and not summary.scored and not summary.resumed:
        raise fail(f"every row of {input} is malformed ({len(summary.malformed)} rows); nothing was scored",
                   EXIT_FAILED)


def _check_address(address: str | None) -> str | None:
    """The Ray address of ``--ray-address`` (None: start a local Ray)."""
    if address is None or address == "auto" or address.startswith("ray://") \
            or re.fullmatch(r"[\w.-]+:\d+", address):
        return address
    raise fail(f"--ray-address {address!r} is not a Ray address (auto, ray://HOST:PORT or HOST:PORT)")


def _score_on_ray(input: Path, spec: Any, output: Path, address: str | None, *, mapping: dict[str, Any],
                  split: str | None, cache: Path | None, workers: int | None, timeout: float | None,
                  chunk_size: int, summary_json: Path | None, overwrite: bool, quiet: bool,
                  actors: int | None, cpus: float | None) -> None:
    """`rewardlab score --ray`: the output and summary of a local run, scored by Ray actors."""
    where = _check_address(address)
    if split is not None:
        raise fail("--split reads an HF dataset directory; --ray reads a JSONL or Parquet file")
    if summary_json:
        _check_summary_path(summary_json)
    try:
        import ray as ray_

        from rewardlab.integrations import ray as on_ray
    except ImportError as exc:
        raise fail(f"--ray needs the ray extra (pip install 'rewardlab[ray]'): {exc}") from None

    def malformed(at: str, why: str) -> None:
        err.print(f"[yellow]skipped {escape(str(input))}:{at}:[/yellow] {escape(why)}")

    columns = [TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    started = False
    try:
        total = count_rows(input) if input.is_file() and not quiet else None
        started = on_ray.ray_init(where)
        with Progress(*columns, console=err, disable=quiet, transient=False) as progress:
            task = progress.add_task("score", total=total)
            summary = on_ray.score_file_ray(
                input, spec, output, mapping=mapping, rows_per_task=chunk_size, num_cpus=cpus,
                concurrency=actors, cache=cache, workers=workers, timeout=timeout, overwrite=overwrite,
                on_progress=lambda n: progress.advance(task, n), on_malformed=malformed)
    except OutputError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except (FileNotFoundError, InputError, ValueError) as exc:
        raise fail(str(exc)) from None
    except ConnectionError as exc:
        raise fail(f"cannot reach Ray at {address or 'a local Ray'}: {exc}", EXIT_FAILED) from None
    except OSError as exc:
        at = f" ({exc.filename})" if exc.filename else ""
        raise fail(f"{exc.strerror or exc}{at}", EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise fail("interrupted; the rows committed so far are kept: rerun the same command to resume",
                   EXIT_INTERRUPTED) from None
    finally:
        if started:
            ray_.shutdown()
    _finish(summary, input, output, summary_json)
