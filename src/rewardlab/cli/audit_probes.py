"""`rewardlab audit probes PAIRS -r SPEC`: can this reward be trusted? Length bias, robustness to
meaning-preserving rewrites, gameability by content-free responses, judge position bias and
determinism, each result with a CI, a p-value against a named null, a q-value (one Benjamini-Hochberg
correction per run) and the minimum detectable effect (a thin layer over
`rewardlab.audit.probes_run.run_probes`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rewardlab.cli.common import (
    EXIT_FAILED,
    CacheOpt,
    NoCacheOpt,
    WorkersOpt,
    command_runtime,
    err,
    fail,
    load_reward,
    read_pairs,
    require_report_extra,
)

VERDICT_STYLE = {"effect": "red", "no effect": "green", "underpowered": "yellow", "baseline": "dim",
                 "not computed": "dim"}


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.2g}" if x != 0 and abs(x) < 10 ** -digits else f"{x:.{digits}f}"


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _print_table(out: Console, rows: Sequence[dict[str, Any]], level: float) -> None:
    pct = int(round(100 * level))
    t = Table(title=f"audit probes ({pct}% CIs; q: Benjamini-Hochberg over the run's tests)")
    for c in ("probe", "result", "estimate", f"{pct}% CI", "p", "q", "MDE", "n", "verdict"):
        t.add_column(c, justify="left" if c in ("probe", "result", "verdict") else "right",
                     no_wrap=c in ("probe", "verdict"))
    for r in rows:
        style = VERDICT_STYLE.get(r["verdict"], "")
        t.add_row(r["probe"], escape(r["name"]), _num(r["estimate"]), f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
                  "-" if r["verdict"] == "baseline" else _num(r["p"]), _num(r["q"]), _num(r["mde"]), str(r["n"]),
                  f"[{style}]{r['verdict']}[/{style}]" if style else r["verdict"])
    out.print(t)


def _write_report(path: Path, doc: dict[str, Any], pairs: Path) -> Path:
    from rewardlab.audit.report import Report, command_line, file_sha256, new_figure

    rep = Report(f"Audit probes: {pairs.name}", command=command_line(),
                 fingerprints={"reward": doc["settings"]["reward"]}, data_hash={str(pairs): file_sha256(pairs)})
    pct = int(round(100 * doc["settings"]["level"]))
    rep.text(f"{doc['settings']['items']} preference items; probes: {', '.join(doc['ran'])}; {pct}% intervals, "
             f"seed {doc['settings']['seed']}. Every test has a p-value against the null named beside it and a "
             "q-value from one Benjamini-Hochberg correction over the run; 'no effect' means the audit could "
             "have found an effect of the size that matters (MDE <= the smallest effect that matters), "
             "'underpowered' that it could not.")
    for probe, why in doc["skipped"].items():
        rep.text(f"Skipped {probe}: {why}.")
    columns = ["probe", "name", "estimate", "ci_low", "ci_high", "p", "q", "mde", "min_effect", "n", "clusters",
               "unit", "null", "verdict", "ci_method", "note"]
    rep.table("Results", columns, [[r[c] for c in columns] for r in doc["results"]])
    for probe in doc["ran"]:
        tested = [r for r in doc["results"] if r["probe"] == probe and r["verdict"] not in ("baseline", "not computed")]
        if not tested:
            continue
        fig = new_figure(7.0, 0.8 + 0.32 * len(tested))
        ax = fig.subplots()
        ys = list(range(len(tested)))
        est = [r["estimate"] for r in tested]
        lo = [r["estimate"] - (r["ci_low"] if r["ci_low"] is not None else r["estimate"]) for r in tested]
        hi = [(r["ci_high"] if r["ci_high"] is not None else r["estimate"]) - r["estimate"] for r in tested]
        colors = ["tab:red" if r["verdict"] == "effect" else "tab:green" if r["verdict"] == "no effect"
                  else "tab:orange" for r in tested]
        ax.errorbar(est, ys, xerr=[lo, hi], fmt="none", ecolor="grey", capsize=3, label=f"{pct}% CI")
        ax.scatter(est, ys, c=colors, zorder=3, label="estimate (red: effect, green: none, orange: underpowered)")
        mdes = [(r["mde"], y) for r, y in zip(tested, ys, strict=True) if r["mde"] is not None]
        if mdes:
            ax.scatter([m for m, _ in mdes], [y for _, y in mdes], marker="|", s=120, c="black", label="MDE")
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        # plot fonts lack some scripts (a master key in Japanese): ASCII escapes in tick labels
        ax.set_yticks(ys, [r["name"].encode("ascii", "backslashreplace").decode() for r in tested], fontsize=7)
        ax.invert_yaxis()
        ax.legend(fontsize=7, loc="best")
        rep.figure(f"{probe}: estimates with {pct}% CIs and MDEs", fig)
    rep.add_data("probes", doc)
    html_path, _ = rep.write(path)
    return html_path


def audit_probes_cmd(
    pairs: Annotated[Path, typer.Argument(
        help="preference data: JSONL (.gz ok), JSON, Parquet or an HF dataset directory (as `rewardlab eval` reads)")],
    reward: Annotated[str, typer.Option("--reward", "-r", help="spec file, or a reward name")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE reward parameter")] = None,
    probe: Annotated[str | None, typer.Option(
        help="comma-separated: length,robustness,gameability,position,determinism [default: all that apply]")] = None,
    rewrites: Annotated[str | None, typer.Option(help="comma-separated rewrites [default: all registered]")] = None,
    attacks: Annotated[str | None, typer.Option(help="comma-separated attack families [default: all]")] = None,
    verdict: Annotated[bool | None, typer.Option(
        "--verdict/--scalar", help="read the reward as a yes/no verdict or a scalar [default: from its values]"
    )] = None,
    threshold: Annotated[float, typer.Option(help="a verdict reward accepts at value >= this")] = 0.5,
    reference_key: Annotated[str, typer.Option(help="field with the reference answer (for verifiers)")] = "reference",
    limit: Annotated[int | None, typer.Option(help="audit the first N items only")] = None,
    seed: Annotated[int, typer.Option(help="seed of rewrites, attacks and bootstraps")] = 0,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples")] = 4000,
    level: Annotated[float, typer.Option(help="confidence level")] = 0.95,
    alpha: Annotated[float, typer.Option(help="significance level for the verdicts (on q-values)")] = 0.05,
    json_out: Annotated[Path | None, typer.Option("--json", help="write every result to this JSON file")] = None,
    report: Annotated[Path | None, typer.Option(
        help="write an HTML report (and its JSON beside it; needs the report extra)")] = None,
    split: Annotated[str | None, typer.Option(help="split of an HF dataset directory")] = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    timeout: Annotated[float | None, typer.Option(help="per-sample timeout in seconds")] = None,
) -> None:
    """Probe a reward on preference pairs: length bias, robustness, gameability, position bias, determinism.

    Every row: the probe, what it measures, the estimate with its CI (clustered by item), p against the
    named null, q after one Benjamini-Hochberg correction over the run, the minimum detectable effect
    and a verdict: effect / no effect (the audit could have found one) / underpowered (it could not) /
    baseline. Determinism always runs without the cache.
    """
    from rewardlab.audit.gameability import FAMILIES
    from rewardlab.audit.probes_run import PROBES, run_probes
    from rewardlab.audit.report import jsonable
    from rewardlab.audit.rewrites import REWRITES
    probes = _list(probe)
    for what, given, known in (("--probe", probes, PROBES), ("--rewrites", _list(rewrites), tuple(REWRITES)),
                               ("--attacks", _list(attacks), FAMILIES)):
        unknown = sorted(set(given or ()) - set(known))
        if unknown:
            raise fail(f"{what}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    if resamples < 100:
        raise fail("--resamples must be at least 100")
    if not 0.5 <= level < 1:
        raise fail("--level must be in [0.5, 1)")
    if not 0 < alpha < 1:
        raise fail("--alpha must be in (0, 1)")
    if limit is not None and limit < 1:
        raise fail("--limit must be positive")
    spec = load_reward(reward, param)
    data = read_pairs(pairs, split)
    items = list(data.items)[:limit] if limit else list(data.items)
    require_report_extra(report)
    with command_runtime(cache, no_cache, workers, timeout) as rt:
        try:
            run = run_probes(items, spec, probes=probes, runtime=rt, seed=seed, n_resamples=resamples,
                             level=level, alpha=alpha, rewrites=_list(rewrites), families=_list(attacks),
                             verdict=verdict, threshold=threshold, reference_key=reference_key)
        except ValueError as exc:
            raise fail(str(exc)) from None
    doc = run.to_json()
    doc["data"] = {"path": str(pairs), "rows": len(data.items), "audited": len(items),
                   "unreadable": len(data.problems)}
    for name, why in run.skipped.items():
        err.print(f"[yellow]skipped {name}:[/yellow] {escape(why)}")
    out = Console(soft_wrap=True)
    _print_table(out if out.is_terminal else Console(width=160), doc["results"], level)
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(jsonable(doc), indent=2, allow_nan=False))
        except OSError as exc:
            raise fail(f"cannot write --json {json_out}: {exc.strerror or exc}", EXIT_FAILED) from None
        err.print(f"results -> {escape(str(json_out))}")
    if report is not None:
        try:
            html_path = _write_report(report, doc, pairs)
        except OSError as exc:
            raise fail(f"cannot write --report {report}: {exc.strerror or exc}", EXIT_FAILED) from None
        err.print(f"report -> {escape(str(html_path))}")
