"""`rewardlab audit overopt`: best-of-n curves of proxy rewards against a gold reward, a thin layer over
`rewardlab.audit.overopt` (scoring through one Runtime, one batch per reward)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rewardlab.apply.groups import load_rollouts
from rewardlab.audit.report import jsonable
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
from rewardlab.runtime.engine import Runtime


def parse_ns(text: str | None) -> list[int] | None:
    """``"1,2,4"`` as [1, 2, 4]; None for the default."""
    if not text:
        return None
    try:
        ns = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise fail(f"--n takes comma-separated integers, not {text!r}") from None
    if not ns or min(ns) < 1:
        raise fail("--n values must be at least 1")
    return ns


def labels_of(specs: list[str]) -> list[str]:
    """Short unique labels for the spec arguments (file stem or reward name)."""
    out: list[str] = []
    for s in specs:
        base = Path(s).stem if s.endswith((".yaml", ".yml", ".toml")) else s.rsplit(":", 1)[-1]
        label = base
        i = 2
        while label in out:
            label = f"{base}#{i}"
            i += 1
        out.append(label)
    return out


def spec_scorer(rt: Runtime) -> Any:
    """``score(spec, samples)`` on `rt`, oriented so that higher is better (a lower-is-better reward's
    values are negated; its status and reason are kept)."""

    def score(spec: Any, samples: list[Any]) -> list[Any]:
        scores = rt.score(spec, samples).scores
        if spec.root.direction == "lower":
            return [s.model_copy(update={"value": -s.value}) if s.value is not None else s for s in scores]
        return scores

    return score


def input_hash(path: Path) -> dict[str, str]:
    from rewardlab.audit.report import file_sha256

    if path.is_file():
        return {str(path): file_sha256(path)}
    return {str(p): file_sha256(p) for p in sorted(path.rglob("*")) if p.is_file()}


def overopt_cmd(
    rollouts: Annotated[Path, typer.Argument(help="rollouts (several responses per prompt): JSONL, Parquet, "
                                                  "or an HF dataset directory")],
    proxy: Annotated[list[str], typer.Option("--proxy", help="proxy reward: spec file or reward name; "
                                                             "repeat for an ensemble")],
    gold: Annotated[str, typer.Option("--gold", help="gold reward: spec file or reward name")],
    ensemble: Annotated[str, typer.Option(help="ensemble objectives over the proxies: any of mean,worst,uwo; "
                                               "'none' for single proxies only")] = "mean,worst,uwo",
    lam: Annotated[float, typer.Option("--lambda", help="uwo: mean - lambda * std over the proxies")] = 1.0,
    n: Annotated[str | None, typer.Option("--n", help="comma-separated n [default: 1, 2, 4, ... up to the "
                                                      "largest group]")] = None,
    group_by: Annotated[str, typer.Option(help="group rows by 'prompt' or a metadata field")] = "prompt",
    map_: MapOpt = None,
    split: SplitOpt = None,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples for the CIs")] = 2000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="write FILE.html (plots, tables) and "
                                                                 "FILE.json beside it")] = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Over-optimisation: the gold score of best-of-n under each proxy (and ensembles of them) as n
    grows, against KL_bon = log n - (n-1)/n, with the unbiased best-of-n estimator over every
    prompt's responses. A response with a proxy or gold score that is not ok is left out (counted)."""
    from rewardlab.audit.overopt import ENSEMBLES, add_to_report, overoptimisation, score_prompts

    ens = [] if ensemble.strip().lower() in ("", "none") else [e.strip() for e in ensemble.split(",") if e.strip()]
    bad = [e for e in ens if e not in ENSEMBLES]
    if bad:
        raise fail(f"--ensemble takes {', '.join(ENSEMBLES)} or none, not {', '.join(bad)}")
    if ens and len(proxy) < 2:
        raise fail("an ensemble needs two or more --proxy rewards (or --ensemble none)")
    ns = parse_ns(n)
    if report is not None and report.suffix == ".json":
        raise fail("--report takes the HTML path (the JSON is written beside it)")
    proxy_specs = [load_reward(p, None) for p in proxy]
    gold_spec = load_reward(gold, None)
    labels = labels_of(proxy)
    mapping = key_values(map_, "map")

    def malformed(where: str, why: str) -> None:
        err.print(f"[yellow]skipped {escape(str(rollouts))}:{where}:[/yellow] {escape(why)}")

    with failures_as_exit():
        data = load_rollouts(rollouts, by=group_by, mapping=mapping, split=split, on_malformed=malformed)
    if not data.groups:
        raise fail(f"no usable row in {rollouts} ({data.rows_in} read, {len(data.malformed)} malformed)", EXIT_FAILED)
    groups = [(g.key, [c.sample for c in g.candidates]) for g in data.groups]
    with command_runtime(cache, no_cache, workers, timeout) as rt, failures_as_exit():
        err.print(f"scoring {data.candidates} responses of {len(groups)} groups with {len(proxy)} prox"
                  f"{'y' if len(proxy) == 1 else 'ies'} and the gold reward")
        prompts, dropped = score_prompts(groups, proxy_specs, gold_spec, spec_scorer(rt), labels)
    with failures_as_exit():
        res = overoptimisation(prompts, ns=ns, ensembles=ens, lam=lam, labels=labels, n_resamples=resamples,
                               seed=seed, dropped=dropped)
    if report is not None:
        from rewardlab.audit.report import Report

        fps = {f"proxy {lb}": s.fingerprint for lb, s in zip(labels, proxy_specs, strict=True)}
        fps["gold"] = gold_spec.fingerprint
        with failures_as_exit():
            rep = Report(f"Over-optimisation audit of {', '.join(labels)} against {labels_of([gold])[0]}",
                         fingerprints=fps, data_hash=input_hash(rollouts))
            add_to_report(rep, res)
            html_path, json_path = rep.write(report)
        err.print(f"report: {escape(str(html_path))} (data: {escape(str(json_path))})")
    if json_out:
        typer.echo(json.dumps(jsonable(res.to_dict()), indent=1, allow_nan=False))
        return
    _print(res)


def _print(res: Any) -> None:
    typer.echo(f"{res.prompts} prompts, {res.candidates} responses, {res.dropped} dropped (score not ok); "
               "gains over best-of-1 in rank-normal units, 95% CI over prompts")
    typer.echo(f"{'objective':<22} {'n':>5} {'KL_bon':>7} {'proxy gain':>11} {'gold gain':>24} {'gap':>24}")
    for c in res.curves:
        for p in c.points:
            g, d = p.gold_gain, p.gap
            typer.echo(f"{c.objective:<22} {p.n:>5} {p.kl:>7.4f} {p.proxy_gain.estimate:>+11.3f} "
                       f"{g.estimate:>+8.3f} [{g.low:+.3f},{g.high:+.3f}] "
                       f"{d.estimate:>+8.3f} [{d.low:+.3f},{d.high:+.3f}]")
