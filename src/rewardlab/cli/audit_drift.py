"""`rewardlab audit drift`: the reward-hacking monitor for training logs, a thin layer over
`rewardlab.audit.drift` (scoring through one Runtime, one batch per reward)."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rewardlab.apply.groups import load_rollouts
from rewardlab.audit.report import jsonable
from rewardlab.cli.audit_overopt import input_hash, labels_of
from rewardlab.cli.bon import failures_as_exit
from rewardlab.cli.common import (
    EXIT_FAILED,
    CacheOpt,
    MapOpt,
    NoCacheOpt,
    SplitOpt,
    TimeoutOpt,
    WorkersOpt,
    command_runtime,
    err,
    fail,
    key_values,
    load_reward,
)
from rewardlab.core.types import Score
from rewardlab.io.rows import get_path


def _logged(rows: list[dict[str, Any]], col: str) -> list[Score]:
    """Scores from a column the log already holds: a finite number is ok, anything else an error."""
    out = []
    for r in rows:
        v = get_path(r, col)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out.append(Score.of(float(v)))
        else:
            out.append(Score.error(f"no finite number in column {col!r}"))
    return out


def drift_cmd(
    logs: Annotated[Path, typer.Argument(help="rollouts logged during training (a step column): JSONL, Parquet, "
                                              "or an HF dataset directory")],
    reward: Annotated[str | None, typer.Option("--reward", "-r", help="the training reward: spec file or "
                                                                      "reward name")] = None,
    check: Annotated[str | None, typer.Option("--check", help="the stricter check: spec file or reward name "
                                                              "(a verifier, a second reward model, a judge)")] = None,
    train_col: Annotated[str | None, typer.Option(help="read the training reward from this column instead "
                                                       "of -r")] = None,
    check_col: Annotated[str | None, typer.Option(help="read the check from this column instead of --check")] = None,
    step_col: Annotated[str, typer.Option(help="the column holding the training step")] = "step",
    group_by: Annotated[str, typer.Option(help="prompt groups for the zero-variance share: 'prompt' or a "
                                               "metadata field")] = "prompt",
    probe: Annotated[list[str] | None, typer.Option(
        "--probe", help="a detector reward: an ok score >= --probe-threshold is a hit; repeatable")] = None,
    probe_threshold: Annotated[float, typer.Option(help="hit threshold of --probe rewards")] = 0.5,
    builtin_probes: Annotated[bool, typer.Option(help="run the content_free and repetition probes")] = True,
    window: Annotated[int, typer.Option(help="steps per trailing window (and baseline steps)")] = 10,
    level: Annotated[float, typer.Option(help="confidence level of the slope intervals")] = 0.95,
    stall: Annotated[float, typer.Option(help="the check stalls when its slope is at most this times the "
                                              "training reward's")] = 0.25,
    persist: Annotated[int, typer.Option(help="consecutive alarming windows that raise the flag")] = 3,
    fail_on_flag: Annotated[bool, typer.Option(help="exit 1 when the flag is raised")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="write FILE.html (plots, tables) and "
                                                                 "FILE.json beside it")] = None,
    map_: MapOpt = None,
    split: SplitOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Reward-hacking monitor: per training step, the training reward against a stricter check (their
    divergence and correlation), response length, the share of prompt groups with zero reward
    variance and the probes' hit rates; flags the step where the training reward keeps rising while
    the check stalls or falls (the rule is printed with the result)."""
    from rewardlab.audit.drift import BUILTIN_PROBES, add_to_report, drift, reward_probe

    if (reward is None) == (train_col is None):
        raise fail("give the training reward as -r SPEC or --train-col COLUMN (one of them)")
    if (check is None) == (check_col is None):
        raise fail("give the check as --check SPEC or --check-col COLUMN (one of them)")
    if report is not None and report.suffix == ".json":
        raise fail("--report takes the HTML path (the JSON is written beside it)")
    train_spec = load_reward(reward, None) if reward else None
    check_spec = load_reward(check, None) if check else None
    for what, spec in (("training reward", train_spec), ("check", check_spec)):
        if spec is not None and spec.root.direction == "lower":
            raise fail(f"the {what} is lower-is-better: the monitor reads higher as better")
    probe_specs = [load_reward(p, None) for p in probe or []]
    probe_labels = labels_of(probe or [])
    mapping = key_values(map_, "map")

    def malformed(where: str, why: str) -> None:
        err.print(f"[yellow]skipped {escape(str(logs))}:{where}:[/yellow] {escape(why)}")

    with failures_as_exit():
        data = load_rollouts(logs, by=group_by, mapping=mapping, split=split, on_malformed=malformed)
    cands = sorted((c for g in data.groups for c in g.candidates), key=lambda c: c.index)
    keys = {id(c): g.key for g in data.groups for c in g.candidates}
    kept, steps = [], []
    for c in cands:
        st = get_path(c.row, step_col)
        if isinstance(st, bool) or not isinstance(st, int | float) or not math.isfinite(st) or st != int(st):
            malformed(c.where, f"no integer step in column {step_col!r}")
            continue
        kept.append(c)
        steps.append(int(st))
    if not kept:
        raise fail(f"no usable row in {logs} ({data.rows_in} read)", EXIT_FAILED)
    samples = [c.sample for c in kept]
    rows = [c.row for c in kept]
    probes: dict[str, list[bool | None]] = {}
    if builtin_probes:
        probes.update({name: [fn(s) for s in samples] for name, fn in BUILTIN_PROBES.items()})
    need_rt = train_spec is not None or check_spec is not None or probe_specs
    with (command_runtime(cache, no_cache, workers, timeout) if need_rt else nullcontext()) as rt, \
            failures_as_exit():
        train = rt.score(train_spec, samples).scores if train_spec and rt else _logged(rows, train_col or "")
        checked = rt.score(check_spec, samples).scores if check_spec and rt else _logged(rows, check_col or "")
        for label, spec in zip(probe_labels, probe_specs, strict=True):
            assert rt is not None
            probes[label] = reward_probe(rt.score(spec, samples).scores, probe_threshold)
    with failures_as_exit():
        res = drift(steps, samples, train, checked, groups=[keys[id(c)] for c in kept], probes=probes,
                    window=window, level=level, stall=stall, persist=persist)
    train_label = labels_of([reward])[0] if reward else train_col or ""
    check_label = labels_of([check])[0] if check else check_col or ""
    if report is not None:
        from rewardlab.audit.report import Report

        fps = {}
        if train_spec is not None:
            fps[f"training reward {train_label}"] = train_spec.fingerprint
        if check_spec is not None:
            fps[f"check {check_label}"] = check_spec.fingerprint
        fps.update({f"probe {lb}": s.fingerprint for lb, s in zip(probe_labels, probe_specs, strict=True)})
        with failures_as_exit():
            rep = Report(f"Reward-hacking monitor: {train_label} against {check_label}", fingerprints=fps,
                         data_hash=input_hash(logs))
            add_to_report(rep, res, train_label, check_label)
            html_path, json_path = rep.write(report)
        err.print(f"report: {escape(str(html_path))} (data: {escape(str(json_path))})")
    if json_out:
        typer.echo(json.dumps(jsonable(res.to_dict()), indent=1, allow_nan=False))
    else:
        _print(res, train_label, check_label)
    if res.flag and fail_on_flag:
        raise typer.Exit(EXIT_FAILED)


def _f(x: float | None, fmt: str = "+.3f") -> str:
    return "-" if x is None else format(x, fmt)


def _print(res: Any, train_label: str, check_label: str) -> None:
    if res.flag:
        f = res.flag
        typer.echo(f"FLAG: {train_label} keeps rising while {check_label} stalls or falls: onset at step {f.onset}, "
                   f"raised at step {f.detected_at}")
    else:
        typer.echo("no flag")
    typer.echo(f"rule: {res.rule}")
    names = list(res.steps[0].probes) if res.steps else []
    typer.echo(f"{'step':>6} {'rollouts':>8} {'train':>8} {'check':>8} {'diverg':>7} {'spearman':>8} {'length':>8} "
               f"{'zero-var':>8} " + " ".join(f"{n[:12]:>12}" for n in names))
    for s in res.steps:
        typer.echo(f"{s.step:>6} {s.rollouts:>8} {_f(s.train_mean, '.4g'):>8} {_f(s.check_mean, '.4g'):>8} "
                   f"{_f(s.divergence):>7} {_f(s.spearman):>8} {s.length_mean:>8.1f} "
                   f"{_f(s.zero_variance_share, '.3f'):>8} "
                   + " ".join(f"{_f(s.probes[n][0], '.3f'):>12}" for n in names))
