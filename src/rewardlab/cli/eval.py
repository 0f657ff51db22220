"""`rewardlab eval PAIRS -r SPEC [-r SPEC ...]`: accuracy of rewards on preference data with confidence
intervals, per subset, rolled up by a benchmark's scheme, and paired comparisons between the rewards (a
thin layer over `rewardlab.audit.eval.evaluate`; the JSON shape is documented there)."""

from __future__ import annotations

import json
import re
import sys
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

_LABELLED = re.compile(r"^([A-Za-z_][\w.-]*)=(.+)$", re.S)
_CALL = re.compile(r"^([A-Za-z_][\w.:-]*)\((.*)\)$", re.S)


def parse_reward(text: str) -> tuple[str, Any]:
    """(label, spec) of one ``-r`` value: ``[LABEL=]SPEC`` where SPEC is a reward name, a name with
    parameters ``name(key=value, ...)`` (values read as YAML), ``module:fn``, a spec file, or YAML text.
    The label defaults to SPEC as written."""
    label = None
    m = _LABELLED.match(text)
    if m:
        label, text = m.group(1), m.group(2)
    call = _CALL.match(text.strip())
    if call:
        name, args = call.group(1), call.group(2).strip()
        params = [a.strip() for a in args.split(",") if a.strip()] if args else []
        for p in params:
            if "=" not in p:
                raise fail(f"reward {text!r}: parameter {p!r} is not key=value")
        return label or text, load_reward(name, params)
    return label or text, load_reward(text, None)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(ci: list[float | None]) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def _p(p: float | None) -> str:
    return "-" if p is None else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def _print_tables(out: Console, doc: dict[str, Any]) -> None:
    level = int(round(100 * doc["level"]))
    t = Table(title=f"{doc['scheme']}: {doc['score_label']} (%, {level}% CI)")
    for c in ("reward", "accuracy", f"{level}% CI", "method", "n", "ties", "unscored"):
        t.add_column(c, justify="left" if c in ("reward", "method") else "right")
    for name, r in doc["rewards"].items():
        t.add_row(escape(name), _pct(r["accuracy"]), _ci(r["ci"]), r["ci_method"], str(r["n"]), str(r["ties"]),
                  str(r["unscored"]))
    out.print(t)
    first = next(iter(doc["rewards"].values()))
    if first.get("sections"):
        t = Table(title="sections (%)")
        t.add_column("reward")
        for s in first["sections"]:
            t.add_column(s, justify="right")
        for name, r in doc["rewards"].items():
            t.add_row(escape(name), *(f"{_pct(v['accuracy'])} {_ci(v['ci'])}" for v in r["sections"].values()))
        out.print(t)
    if len(first["subsets"]) > 1:
        t = Table(title="subsets (%)")
        t.add_column("subset")
        t.add_column("n", justify="right")
        for name in doc["rewards"]:
            t.add_column(escape(name), justify="right")
        for sub in first["subsets"]:
            cells = [f"{_pct(r['subsets'][sub]['accuracy'])} {_ci(r['subsets'][sub]['ci'])}"
                     for r in doc["rewards"].values()]
            t.add_row(escape(sub), str(first["subsets"][sub]["n"]), *cells)
        out.print(t)
    if doc["comparisons"]:
        t = Table(title="paired comparisons (difference in points, a − b)")
        for c in ("a", "b", "diff", f"{level}% CI", "p (bootstrap)", "McNemar b/c", "p exact", "mid-p", "kappa"):
            t.add_column(c, justify="left" if c in ("a", "b") else "right")
        for c in doc["comparisons"]:
            kappa = c["agreement"]["cohen_kappa"]
            t.add_row(escape(c["a"]), escape(c["b"]), _pct(c["diff"]), _ci(c["diff_ci"]), _p(c["diff_p"]),
                      f"{c['mcnemar_b']}/{c['mcnemar_c']}", _p(c["mcnemar_p"]), _p(c["mcnemar_midp"]),
                      "-" if kappa is None else f"{kappa:.3f}")
        out.print(t)


def _write_report(path: Path, doc: dict[str, Any], pairs: Path, fingerprints: dict[str, str]) -> Path:
    from rewardlab.audit.report import Report, file_sha256, new_figure

    level = int(round(100 * doc["level"]))
    rep = Report(f"Preference accuracy: {pairs.name}", fingerprints=fingerprints,
                 data_hash={str(pairs): file_sha256(pairs)})
    rep.text(f"Scheme {doc['scheme']}: {doc['score_label']}. {doc['items']} items, {doc['units']} units; "
             f"{level}% intervals ({doc['n_resamples']} bootstrap resamples where a bootstrap is used, seed "
             f"{doc['seed']}). Ties and unscored pairs count as wrong.")
    rows = [[name, r["accuracy"], r["ci"][0], r["ci"][1], r["ci_method"], r["n"], r["ties"], r["unscored"]]
            for name, r in doc["rewards"].items()]
    rep.table("Accuracy", ["reward", "accuracy", "low", "high", "method", "n", "ties", "unscored"], rows)
    fig = new_figure(6.4, 0.6 + 0.45 * len(rows))
    ax = fig.subplots()
    names = list(doc["rewards"])
    acc = [doc["rewards"][n]["accuracy"] for n in names]
    lo = [a - (doc["rewards"][n]["ci"][0] or a) for a, n in zip(acc, names, strict=True)]
    hi = [(doc["rewards"][n]["ci"][1] or a) - a for a, n in zip(acc, names, strict=True)]
    ax.errorbar(acc, range(len(names)), xerr=[lo, hi], fmt="o", capsize=4)
    ax.set_yticks(range(len(names)), names)
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"accuracy ({level}% CI)")
    ax.invert_yaxis()
    rep.figure("Accuracy with confidence intervals", fig, caption="dashed: chance on pairs (0.5)")
    first = next(iter(doc["rewards"].values()))
    if first.get("sections"):
        rep.table("Sections", ["reward", "section", "score", "low", "high", "method"],
                  [[n, s, v["accuracy"], v["ci"][0], v["ci"][1], v["ci_method"]]
                   for n, r in doc["rewards"].items() for s, v in r["sections"].items()])
    if len(first["subsets"]) > 1:
        rep.table("Subsets", ["reward", "subset", "accuracy", "low", "high", "method", "n", "ties", "unscored"],
                  [[n, s, v["accuracy"], v["ci"][0], v["ci"][1], v["ci_method"], v["n"], v["ties"], v["unscored"]]
                   for n, r in doc["rewards"].items() for s, v in r["subsets"].items()])
    if doc["comparisons"]:
        rep.table("Paired comparisons (a − b)",
                  ["a", "b", "diff", "low", "high", "p bootstrap", "McNemar b", "McNemar c", "p exact", "mid-p",
                   "kappa", "Spearman"],
                  [[c["a"], c["b"], c["diff"], c["diff_ci"][0], c["diff_ci"][1], c["diff_p"], c["mcnemar_b"],
                    c["mcnemar_c"], c["mcnemar_p"], c["mcnemar_midp"], c["agreement"]["cohen_kappa"],
                    c["agreement"]["spearman"]] for c in doc["comparisons"]])
    rep.add_data("evaluation", doc)
    html_path, _ = rep.write(path)
    return html_path


def eval_cmd(
    pairs: Annotated[Path, typer.Argument(
        help="preference data: JSONL (.gz ok), JSON, Parquet or an HF dataset directory; prompt/chosen/rejected "
             "as text or messages, HH-RLHF dialogues, or chosen with several rejected (RewardBench 2)")],
    reward: Annotated[list[str], typer.Option(
        "--reward", "-r", help="[LABEL=]SPEC: a reward name, name(key=value,...), module:fn, a spec file or YAML; "
                               "repeat to compare rewards")],
    scheme: Annotated[str, typer.Option(help="plain, rewardbench or rewardbench2")] = "plain",
    prior_sets: Annotated[bool, typer.Option(
        "--prior-sets", help="rewardbench: the paper's score (sections 2, Prior Sets 1) instead of the 4-section "
                             "mean")] = False,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples")] = 10_000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    level: Annotated[float, typer.Option(help="confidence level")] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", help="write every figure to this JSON file")] = None,
    report: Annotated[Path | None, typer.Option(
        help="write an HTML report (and its JSON beside it; needs the report extra)")] = None,
    split: Annotated[str | None, typer.Option(help="split of an HF dataset directory")] = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    workers: WorkersOpt = None,
    timeout: Annotated[float | None, typer.Option(help="per-sample timeout in seconds")] = None,
) -> None:
    """Accuracy of rewards on preference pairs, with confidence intervals and paired comparisons.

    A pair is right when the chosen response scores strictly higher; ties and failed scores count as
    wrong and are reported. With several rewards, every two are compared on the same items (McNemar
    exact and mid-p, a paired bootstrap of the difference, agreement). Prints tables on stdout;
    --json writes every figure (its shape: rewardlab.audit.eval).
    """
    from rewardlab.audit.aggregate import SCHEMES
    from rewardlab.audit.eval import evaluate
    if scheme not in SCHEMES:
        raise fail(f"--scheme must be one of {', '.join(SCHEMES)}, not {scheme!r}")
    if prior_sets and scheme != "rewardbench":
        raise fail("--prior-sets goes with --scheme rewardbench")
    if resamples < 100:
        raise fail("--resamples must be at least 100")
    if not 0.5 <= level < 1:
        raise fail("--level must be in [0.5, 1)")
    specs: dict[str, Any] = {}
    for text in reward:
        label, spec = parse_reward(text)
        if label in specs:
            raise fail(f"two rewards are labelled {label!r}: name them with LABEL=SPEC")
        specs[label] = spec
    data = read_pairs(pairs, split)
    require_report_extra(report)
    with command_runtime(cache, no_cache, workers, timeout) as rt:
        try:
            result = evaluate(data.items, specs, scheme=scheme, prior_sets=prior_sets, n_resamples=resamples,
                              level=level, seed=seed, runtime=rt)
        except ValueError as exc:
            raise fail(str(exc)) from None
    doc = result.to_json()
    doc["data"] = {"path": str(pairs), "rows": len(data.items), "unreadable": len(data.problems),
                   "layouts": dict(data.layouts), "flagged": {k: len(v) for k, v in data.flagged.items()}}
    if doc["unknown_subsets"]:
        err.print(f"[yellow]warning:[/yellow] subsets outside RewardBench's sections (reported, not in the "
                  f"score): {escape(', '.join(doc['unknown_subsets']))}")
    _print_tables(Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160), doc)
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(doc, indent=2, allow_nan=False))
        except OSError as exc:
            raise fail(f"cannot write --json {json_out}: {exc.strerror or exc}", EXIT_FAILED) from None
        err.print(f"figures -> {escape(str(json_out))}")
    if report is not None:
        try:
            html_path = _write_report(report, doc, pairs, {k: v["fingerprint"] for k, v in doc["rewards"].items()})
        except OSError as exc:
            raise fail(f"cannot write --report {report}: {exc.strerror or exc}", EXIT_FAILED) from None
        err.print(f"report -> {escape(str(html_path))}")

