"""`rewardlab pairs`: preference pairs for DPO from scored rollout groups, a thin layer over
`rewardlab.apply.pairs`."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rewardlab.apply.groups import higher_is_better, write_rows
from rewardlab.apply.pairs import STRATEGIES, Filters, build_pairs, to_trl
from rewardlab.cli.bon import failures_as_exit, load_specs, read_and_score
from rewardlab.cli.common import (
    EXIT_FAILED,
    CacheOpt,
    MapOpt,
    NoCacheOpt,
    QuietOpt,
    SplitOpt,
    SummaryJsonOpt,
    TimeoutOpt,
    WorkersOpt,
    err,
    fail,
)


def pairs_cmd(
    input: Annotated[Path, typer.Argument(help="rollouts: JSONL, Parquet, or an HF dataset directory")],
    reward: Annotated[list[str], typer.Option(
        "--reward", "-r", help="spec file or reward name; repeat for an ensemble")],
    output: Annotated[Path, typer.Option("--output", "-o", help="pairs: JSONL, or Parquet by extension")],
    strategy: Annotated[str, typer.Option(help="best_vs_worst | best_vs_random | best_vs_second")] = "best_vs_worst",
    seed: Annotated[int, typer.Option(help="seed of best_vs_random's draw")] = 0,
    min_margin: Annotated[float, typer.Option(help="drop pairs whose margin is not above this")] = 0.0,
    min_margin_std: Annotated[float | None, typer.Option(
        help="drop pairs whose margin is not above this many group reward stds")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        help="drop pairs with Bradley-Terry sigmoid(margin) below this")] = None,
    ensemble_agree: Annotated[bool, typer.Option(
        "--ensemble-agree", help="keep only pairs every ensemble member orders the same way")] = False,
    max_length_diff: Annotated[int | None, typer.Option(
        help="drop pairs whose responses differ in length by more characters")] = None,
    keep_duplicates: Annotated[bool, typer.Option("--keep-duplicates", help="do not drop repeated pairs")] = False,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE for a named reward")] = None,
    ensemble: Annotated[str, typer.Option(help="several -r: mean | min | mean_minus_std")] = "mean",
    lam: Annotated[float, typer.Option("--lambda", help="lambda of mean_minus_std")] = 1.0,
    group_by: Annotated[str, typer.Option(help="group rows by 'prompt' or a metadata field")] = "prompt",
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
    """Preference pairs for DPO from scored rollout groups, in TRL's DPO format.

    One pair per prompt group (best vs worst, vs a random worse one, or vs the second best) of
    responses with ok scores; pairs with equal rewards are dropped, and the filters drop pairs
    by margin, Bradley-Terry confidence, ensemble agreement, length difference and duplicates.
    Output rows: prompt, chosen, rejected (texts, or message lists when the input had
    messages), margin, score_chosen, score_rejected, chosen_row, rejected_row.
    """
    if strategy not in STRATEGIES:
        raise fail(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    with failures_as_exit():
        filters = Filters(min_margin=min_margin, min_margin_std=min_margin_std, min_confidence=min_confidence,
                          ensemble_agree=ensemble_agree, max_length_diff=max_length_diff,
                          dedupe=not keep_duplicates)
    specs = load_specs(reward, param)
    with failures_as_exit():
        higher = higher_is_better(specs)
    rollouts = read_and_score(input, specs, group_by=group_by, map_=map_, split=split, reduce=ensemble, lam=lam,
                              cache=cache, no_cache=no_cache, workers=workers, timeout=timeout,
                              chunk_size=chunk_size, quiet=quiet)
    with failures_as_exit():
        built = build_pairs(rollouts.groups, strategy, filters, seed=seed, higher=higher)  # type: ignore[arg-type]
        rows: list[dict[str, Any]] = [to_trl(p) for p in built.pairs]
        write_rows(output, rows)
    margins = [p.margin for p in built.pairs]
    summary = {
        "rows_in": rollouts.rows_in, "malformed": len(rollouts.malformed), "groups": built.groups,
        "candidates": rollouts.candidates, "pairs": len(rows), "dropped": dict(built.dropped),
        "mean_margin": statistics.fmean(margins) if margins else None,
    }
    err.print(f"[bold]pairs[/bold] {strategy}: {len(rows)} pairs from {built.groups} groups "
              f"({rollouts.candidates} candidates) -> {escape(str(output))}")
    if margins:
        err.print(f"margin   mean {statistics.fmean(margins):.4g}, min {min(margins):.4g}, max {max(margins):.4g}")
    if built.dropped:
        err.print("dropped  " + escape("; ".join(f"{n} {why}" for why, n in built.dropped.most_common())))
    err.print(f"rows     {rollouts.rows_in} read, {len(rollouts.malformed)} malformed")
    if summary_json:
        try:
            summary_json.write_text(json.dumps(summary, indent=2))
        except OSError as exc:
            raise fail(f"cannot write --summary-json {summary_json}: {exc.strerror or exc}", EXIT_FAILED) from None
    if not rows:
        raise fail("no pair passed; see the drop counts above", EXIT_FAILED)
