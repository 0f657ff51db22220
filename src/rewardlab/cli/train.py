"""`rewardlab train ...`: training learned rewards from the command line, one subcommand per
kind of learned reward. Heavy packages load only when a subcommand runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rewardlab.cli.common import QuietOpt, err, fail

train_app = typer.Typer(help="Train a learned reward.", no_args_is_help=True,
                        pretty_exceptions_enable=False, add_completion=False)


@train_app.callback()
def _train() -> None:
    """Train a learned reward (a group, so each kind of reward is its own subcommand)."""


@train_app.command("embedding-rm")
def embedding_rm_cmd(
    pairs: Annotated[Path, typer.Argument(
        help="JSONL (.gz ok) or Parquet: chosen/rejected (whole HH dialogues, or with a prompt "
             "column, or message lists); with --objective regression: prompt/response/rating")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to save the model in")],
    model: Annotated[str | None, typer.Option(
        help="local sentence-transformers model directory [default: bundled all-MiniLM-L6-v2]")] = None,
    objective: Annotated[str, typer.Option(help="bt (preference pairs) or regression (ratings)")] = "bt",
    head: Annotated[str, typer.Option(help="linear or mlp")] = "linear",
    hidden: Annotated[int, typer.Option(help="MLP hidden units")] = 64,
    dropout: Annotated[float, typer.Option(help="dropout on the head's inputs (and hidden layer)")] = 0.0,
    ensemble: Annotated[int, typer.Option("--ensemble", "-k", help="heads, on bootstrap resamples")] = 1,
    epochs: Annotated[int, typer.Option()] = 20,
    batch_size: Annotated[int, typer.Option(help="pairs per optimiser step")] = 64,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW (decoupled) weight decay")] = 30.0,
    margin: Annotated[float, typer.Option(help="Bradley-Terry margin added to every pair")] = 0.0,
    val_fraction: Annotated[float, typer.Option(help="held-out share for validation")] = 0.1,
    seed: Annotated[int, typer.Option()] = 0,
    prompt_chars: Annotated[int, typer.Option(help="embed the prompt's last N characters")] = 500,
    aggregate: Annotated[str, typer.Option(help="score value over heads: mean, min or lcb")] = "mean",
    cache: Annotated[Path | None, typer.Option(
        help="embedding cache (SQLite) [default: ~/.cache/rewardlab/embeddings.sqlite]")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not cache embeddings")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda... [default: cuda if present]")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train an embedding reward model; DIR then serves as reward `embedding_rm(path=DIR)`."""
    from rewardlab.models.embedding import (
        Embedder,
        TrainConfig,
        read_pairs,
        read_rated,
        train_embedding_rm,
    )

    config = TrainConfig(objective=objective, head=head, hidden=hidden,  # type: ignore[arg-type]
                         dropout=dropout, ensemble=ensemble, epochs=epochs, batch_size=batch_size,
                         lr=lr, weight_decay=weight_decay, margin=margin,
                         val_fraction=val_fraction, seed=seed, prompt_chars=prompt_chars,
                         aggregate=aggregate)  # type: ignore[arg-type]
    try:
        config.check()
        reader = read_pairs if objective == "bt" else read_rated
        data, problems = reader(pairs)
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    for p in problems[:5]:
        err.print(f"[yellow]skipped {escape(str(pairs))}:{escape(p)}")
    if len(problems) > 5:
        err.print(f"[yellow]... and {len(problems) - 5} more unreadable rows")
    if not data:
        raise fail(f"no usable rows in {pairs}")
    try:
        embedder = Embedder(model, device=device,
                            cache=False if no_cache else (cache if cache else True))
    except (FileNotFoundError, ImportError) as exc:
        raise fail(str(exc)) from None
    what = "pairs" if objective == "bt" else "rated responses"
    err.print(f"{len(data)} {what} from {pairs}; embedding model {embedder.path}")

    columns = [TextColumn("[bold]{task.description:<6}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, disable=quiet) as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        try:
            rm = train_embedding_rm(data, config, embedder=embedder, progress=report)
        except ValueError as exc:
            raise fail(str(exc)) from None
    rm.save(out)
    embedder.close()
    r = rm.report
    assert r is not None
    lines = [f"trained {config.ensemble} {config.head} head(s) on {r.train_size} {what} "
             f"(embedding {r.seconds_embed:.1f}s, training {r.seconds_train:.1f}s)"]
    if r.train_accuracy is not None:
        lines.append(f"train accuracy      {r.train_accuracy:.4f}")
    if r.val_accuracy is not None:
        lines.append(f"validation accuracy {r.val_accuracy:.4f} on {r.val_size} held-out pairs")
    if r.val_rmse is not None:
        pearson = "n/a" if r.val_pearson is None else f"{r.val_pearson:.4f}"
        lines.append(f"validation RMSE {r.val_rmse:.4f}, Pearson r {pearson} on {r.val_size} rows")
    lines.append(f"saved to {out}; use it as: {{reward: embedding_rm, params: {{path: {out}}}}}")
    typer.echo("\n".join(lines))
