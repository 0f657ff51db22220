"""`rewardlab bon`: best-of-N selection (or rejection sampling) per prompt group, a thin layer over
`rewardlab.apply.bon` and `rewardlab.apply.rejection`. Also what `rewardlab pairs` shares with it:
reading, grouping and scoring a rollout file with a progress bar."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from rewardlab.apply.bon import METHODS, NEEDS_REWARD, best_of_n
from rewardlab.apply.groups import REDUCERS, Group, Rollouts, higher_is_better, load_rollouts, score_groups, write_rows
from rewardlab.apply.rejection import rejection_sample
from rewardlab.apply.scorefile import output_row
from rewardlab.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    CacheOpt,
    MapOpt,
    NoCacheOpt,
    QuietOpt,
    SplitOpt,
    SummaryJsonOpt,
    Terminated,
    TimeoutOpt,
    WorkersOpt,
    command_runtime,
    err,
    fail,
    key_values,
    load_reward,
)
from rewardlab.io.files import InputError

_SHOWN = 10  # groups without a selection listed by line, the rest only counted


@contextmanager
def failures_as_exit() -> Iterator[None]:
    """Turn the run's failures into the CLI's exit codes and messages (as `rewardlab score`)."""
    try:
        yield
    except (FileNotFoundError, InputError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise fail(f"{exc.strerror or exc}{where}", EXIT_FAILED) from None
    except (KeyboardInterrupt, Terminated) as exc:
        raise fail("interrupted; nothing was written",
                   EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED) from None


def load_specs(rewards: list[str] | None, param: list[str] | None) -> list[Any]:
    """The specs of the ``-r`` options (``-p`` only with a single named reward)."""
    rewards = rewards or []
    if param and len(rewards) != 1:
        raise fail("-p/--param configures a single named reward; put several rewards' parameters in spec files")
    return [load_reward(r, param) for r in rewards]


def read_and_score(input: Path, specs: list[Any], *, group_by: str, map_: list[str] | None, split: str | None,
                   reduce: str, lam: float, cache: Path | None, no_cache: bool, workers: int | None,
                   timeout: float | None, chunk_size: int, quiet: bool) -> Rollouts:
    """Read and group the rollouts (bad rows reported with their line, the run goes on), then
    score every candidate with the specs (an ensemble when several) through one Runtime."""
    mapping = key_values(map_, "map")
    if reduce not in REDUCERS:
        raise fail(f"--ensemble must be one of {', '.join(REDUCERS)}, not {reduce!r}")

    def malformed(where: str, why: str) -> None:
        err.print(f"[yellow]skipped {escape(str(input))}:{where}:[/yellow] {escape(why)}")

    with failures_as_exit():
        rollouts = load_rollouts(input, by=group_by, mapping=mapping, split=split, on_malformed=malformed)
    if not rollouts.groups:
        raise fail(f"no usable row in {input} ({rollouts.rows_in} read, {len(rollouts.malformed)} malformed)",
                   EXIT_FAILED)
    if not specs:
        return rollouts
    columns = [TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TimeElapsedColumn()]
    with command_runtime(cache, no_cache, workers, timeout) as rt, failures_as_exit(), \
            Progress(*columns, console=err, disable=quiet) as progress:
        task = progress.add_task("score", total=rollouts.candidates)
        advance: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
        score_groups(rollouts.groups, specs, runtime=rt, reduce=reduce, lam=lam,  # type: ignore[arg-type]
                     chunk_size=chunk_size, on_progress=advance)
    return rollouts


def first_line(group: Group) -> str:
    return group.candidates[0].where if group.candidates else "?"


def report_unselected(unselected: list[tuple[Group, str]], what: str) -> None:
    """The groups that gave nothing: counts by reason, and the first few by line."""
    if not unselected:
        return
    counts = Counter(why.split(" (", 1)[0] for _, why in unselected)
    err.print(f"[yellow]{len(unselected)} groups {what}:[/yellow] "
              + escape("; ".join(f"{n} {why}" for why, n in counts.most_common())))
    for g, why in unselected[:_SHOWN]:
        err.print(f"  group at {escape(first_line(g))}: {escape(why)}")
    if len(unselected) > _SHOWN:
        err.print(f"  ... and {len(unselected) - _SHOWN} more")


def _mean(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.4g}" if xs else "n/a"


def bon_cmd(
    input: Annotated[Path, typer.Argument(help="rollouts: JSONL, Parquet, or an HF dataset directory")],
    output: Annotated[Path, typer.Option("--output", "-o", help="output: JSONL, or Parquet by extension")],
    reward: Annotated[list[str] | None, typer.Option(
        "--reward", "-r", help="spec file or reward name; repeat for an ensemble")] = None,
    select: Annotated[str, typer.Option(help="reward | majority | weighted_majority | self_certainty")] = "reward",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE for a named reward")] = None,
    ensemble: Annotated[str, typer.Option(help="several -r: mean | min | mean_minus_std")] = "mean",
    lam: Annotated[float, typer.Option("--lambda", help="lambda of mean_minus_std")] = 1.0,
    group_by: Annotated[str, typer.Option(help="group rows by 'prompt' or a metadata field")] = "prompt",
    top_k: Annotated[int | None, typer.Option(help="keep the best K per group (rejection sampling)")] = None,
    top_fraction: Annotated[float | None, typer.Option(help="keep the best fraction of each group")] = None,
    threshold: Annotated[float | None, typer.Option(help="keep only scores at least this good")] = None,
    extract_order: Annotated[str | None, typer.Option(
        help="votes: answer extractors by precedence, comma-separated (default: rewardlab's math order)")] = None,
    logprobs_field: Annotated[str, typer.Option(help="self_certainty: the per-token log-probabilities")] = "logprobs",
    map_: MapOpt = None,
    split: SplitOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = None,
    chunk_size: Annotated[int, typer.Option(help="samples per scoring batch")] = 2048,
    summary_json: SummaryJsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Best-of-N per prompt group: by a reward (or an ensemble of several), majority vote or
    reward-weighted majority vote over the final answers, or self-certainty. With --top-k,
    --top-fraction or --threshold, keep the best responses of each group (rejection sampling,
    RAFT).

    A response whose score is not ok is never selected; a group with nothing to select is
    reported with the reason. Ties go to the row read first. Output rows are the selected input
    rows with the reward columns of `rewardlab score` and bon_* columns.
    """
    if select not in METHODS:
        raise fail(f"--select must be one of {', '.join(METHODS)}, not {select!r}")
    raft = top_k is not None or top_fraction is not None or threshold is not None
    if raft and select != "reward":
        raise fail("--top-k/--top-fraction/--threshold keep responses by reward: use them with --select reward")
    if top_k is not None and top_fraction is not None:
        raise fail("give --top-k or --top-fraction, not both")
    if (select in NEEDS_REWARD or raft) and not reward:
        raise fail(f"--select {select} needs a reward (-r)")
    order = tuple(x.strip() for x in extract_order.split(",")) if extract_order else None
    specs = load_specs(reward, param)
    with failures_as_exit():
        higher = higher_is_better(specs)
    rollouts = read_and_score(input, specs, group_by=group_by, map_=map_, split=split, reduce=ensemble, lam=lam,
                              cache=cache, no_cache=no_cache, workers=workers, timeout=timeout,
                              chunk_size=chunk_size, quiet=quiet)
    rows: list[dict[str, Any]] = []
    unselected: list[tuple[Group, str]] = []
    chosen_values: list[float] = []
    with failures_as_exit():
        if raft:
            kept = rejection_sample(rollouts.groups, top_k=top_k if top_fraction is None else None,
                                    top_fraction=top_fraction, threshold=threshold, higher=higher)
            for g, k in zip(rollouts.groups, kept, strict=True):
                if k.reason:
                    unselected.append((g, k.reason))
                for rank, c in enumerate(k.kept, start=1):
                    assert c.score is not None
                    chosen_values.append(c.value)
                    rows.append({**output_row(c.row, c.index, c.score), "bon_method": "rejection",
                                 "bon_rank": rank, "bon_group_size": k.n, "bon_eligible": k.ok})
        else:
            kw: dict[str, Any] = {"extract_order": order} if order else {}
            sels = best_of_n(rollouts.groups, select, higher=higher, logprobs_field=logprobs_field,  # type: ignore[arg-type]
                             **kw)
            for g, s in zip(rollouts.groups, sels, strict=True):
                if s.chosen is None:
                    unselected.append((g, s.reason or "nothing selected"))
                    continue
                c = s.chosen
                row = dict(c.row)
                if c.score is not None:
                    row = output_row(c.row, c.index, c.score)
                    if c.ok:
                        chosen_values.append(c.value)
                else:
                    row = {"_row": c.index, **row}
                row.update(bon_method=select, bon_group_size=s.n, bon_eligible=s.eligible)
                if s.answer is not None:
                    row.update(bon_answer=s.answer, bon_votes=s.votes[s.answer],
                               bon_vote_share=s.votes[s.answer] / (sum(s.votes.values()) or 1.0))
                if s.certainty is not None:
                    row["bon_certainty"] = s.certainty
                rows.append(row)
        write_rows(output, rows)
    all_ok = [c.value for g in rollouts.groups for c in g.candidates if c.ok]
    summary = {
        "rows_in": rollouts.rows_in, "malformed": len(rollouts.malformed), "groups": len(rollouts.groups),
        "candidates": rollouts.candidates, "ok": len(all_ok), "selected": len(rows),
        "groups_without_selection": len(unselected),
        "reasons": dict(Counter(why.split(" (", 1)[0] for _, why in unselected)),
        "mean_reward_selected": statistics.fmean(chosen_values) if chosen_values else None,
        "mean_reward_all": statistics.fmean(all_ok) if all_ok else None,
    }
    mode = " (rejection sampling)" if raft else ""
    err.print(f"[bold]bon[/bold] {select}{mode}: {len(rows)} rows from {len(rollouts.groups)} groups "
              f"({rollouts.candidates} candidates, {len(all_ok)} ok) -> {escape(str(output))}")
    if specs:
        err.print(f"reward   mean {_mean(chosen_values)} selected vs {_mean(all_ok)} over all ok candidates")
    err.print(f"rows     {rollouts.rows_in} read, {len(rollouts.malformed)} malformed")
    report_unselected(unselected, "without a selection")
    if summary_json:
        try:
            summary_json.write_text(json.dumps(summary, indent=2))
        except OSError as exc:
            raise fail(f"cannot write --summary-json {summary_json}: {exc.strerror or exc}", EXIT_FAILED) from None
    if not rows:
        raise fail("no group gave a selection; see the reasons above", EXIT_FAILED)
