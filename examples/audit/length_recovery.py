"""How much of a learned reward model's ranking does a length-only reward recover? Measured on HH-RLHF.

1. HH-RLHF harmless-base pairs are split by prompt (seeded) into two disjoint halves: no prompt of the
   evaluation half is seen in training. An embedding reward model (a linear Bradley-Terry head on
   all-MiniLM-L6-v2 embeddings, as ``rewardlab train embedding-rm``) trains on the first half.
2. On the evaluation half, three rewards are scored through one Runtime (one batch each): the embedding RM
   and the two length baselines, ``response_length`` (longest wins) and its negation (shortest wins).
3. `rewardlab.audit.eval.evaluate` gives each reward's accuracy with its interval and every paired
   comparison (McNemar, paired bootstrap of the difference, agreement with intervals). What a length-only
   reward recovers of the RM's ranking is read from the agreement of each length baseline with the RM:
   - ``pairwise_agreement``: the share of pairs on which the length baseline prefers the same response as
     the RM (a tie its own side), with its interval; Cohen's kappa corrects it for chance (0: no more
     than chance, 1: the RM's decisions are the length's);
   - Spearman of the margins (RM chosen − rejected against length chosen − rejected), Fisher-z interval;
   - over single responses: Spearman of the RM's score with the response's length (responses of one
     prompt are not independent: the interval is a lower bound on the uncertainty);
   - the RM's accuracy on the pairs where the chosen response is the longer one and where it is the
     shorter one (Wilson): an RM driven by length is right on the first and wrong on the second.
4. The report (HTML with the tables and plot, JSON beside it), the plot as a PNG, the evaluation half as a
   JSONL file and the RM's spec file go to ``--out``, with the equivalent ``rewardlab eval`` command.

Run (about 3-6 minutes on 2 CPU cores, most of it embedding):

    python examples/audit/length_recovery.py ../shared/data/preference/hh_rlhf_harmless_base_test.jsonl.gz \\
        --out /tmp/length_recovery

What it measures is reported as it comes out, whichever way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.api import build
from rewardlab.audit.eval import Evaluation, evaluate, score_items
from rewardlab.audit.report import Report, command_line, file_sha256
from rewardlab.audit.stats import spearman_ci, wilson_ci
from rewardlab.core.types import PreferencePair
from rewardlab.io.preferences import preference_from_row, preference_rows
from rewardlab.models.embedding import Embedder, TrainConfig, train_embedding_rm
from rewardlab.runtime.engine import Runtime

LENGTH = {"longest": "response_length", "shortest": "response_length(prefer=shorter)"}


@dataclass(frozen=True)
class Setup:
    """Sizes of a run (the defaults are the full example; the test suite runs a small one)."""

    train_pairs: int | None = None  # cap on the training half (None: all of it)
    eval_pairs: int | None = None  # cap on the evaluation half
    epochs: int = 20
    seed: int = 0
    resamples: int = 10_000


def _prompt_key(item: PreferencePair) -> str:
    return hashlib.sha1(json.dumps(item.prompt if isinstance(item.prompt, str) else
                                   [m.model_dump(mode="json") for m in item.prompt]).encode()).hexdigest()


def split(items: list[PreferencePair], setup: Setup) -> tuple[list[int], list[int]]:
    """Disjoint (train, eval) item indices: prompts shuffled (seeded), half of them to each side, so that
    a prompt with several pairs lies wholly on one side."""
    by_prompt: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_prompt.setdefault(_prompt_key(it), []).append(i)
    groups = list(by_prompt.values())
    random.Random(setup.seed).shuffle(groups)
    half = len(groups) // 2
    train = [i for g in groups[:half] for i in g]
    held = [i for g in groups[half:] for i in g]
    if setup.train_pairs is not None:
        train = train[:setup.train_pairs]
    if setup.eval_pairs is not None:
        held = held[:setup.eval_pairs]
    return train, held


def _read(data: Path) -> tuple[list[PreferencePair], list[dict[str, Any]]]:
    items, rows = [], []
    for row in preference_rows(data):
        if row.data is None:
            continue
        item = preference_from_row(row.data)[0]
        if isinstance(item, PreferencePair):
            items.append(item)
            rows.append(row.data)
    return items, rows


def recovery(ev: Evaluation, rm: str, rm_margins: np.ndarray, len_margins: np.ndarray, rm_scores: np.ndarray,
             lengths: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """What each length baseline recovers of the RM's ranking (see the module docstring), with intervals.
    `rm_margins`, `len_margins`: per pair, chosen minus rejected (RM score; characters); `rm_scores`,
    `lengths`: per response."""
    out: dict[str, Any] = {}
    for name in LENGTH:
        cmp = next(c for c in ev.comparisons if {c["a"], c["b"]} == {rm, name})
        ag = cmp["agreement"]
        out[name] = {"pairwise_agreement": ag["pairwise_agreement"],
                     "pairwise_agreement_ci": ag["ci"]["pairwise_agreement"],
                     "cohen_kappa": ag["cohen_kappa"], "cohen_kappa_ci": ag["ci"].get("cohen_kappa"),
                     "spearman_margins": ag["spearman"], "spearman_margins_ci": ag["ci"]["spearman"],
                     "accuracy_diff_rm_minus_length": cmp["diff"] if cmp["a"] == rm else -cmp["diff"],
                     "mcnemar_p": cmp["mcnemar_p"]}
    from scipy.stats import spearmanr

    rho = float(spearmanr(rm_scores, lengths)[0])
    out["spearman_score_length"] = rho
    out["spearman_score_length_ci"] = list(spearman_ci(rho, len(lengths), level))
    right = rm_margins > 0
    for side, mask in (("chosen_longer", len_margins > 0), ("chosen_shorter", len_margins < 0)):
        k, n = int(np.sum(right & mask)), int(np.sum(mask))
        out[f"rm_accuracy_{side}"] = {"accuracy": k / n if n else None, "n": n,
                                      "ci": list(wilson_ci(k, n, level)) if n else [None, None]}
    return out


def run(data: Path, out: Path, setup: Setup, log: Any = print) -> dict[str, Any]:
    """Train, score, evaluate and write the report; returns the figures and facts about the run."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    items, rows = _read(data)
    train_i, eval_i = split(items, setup)
    assert not {_prompt_key(items[i]) for i in train_i} & {_prompt_key(items[i]) for i in eval_i}
    embedder = Embedder(cache=out / "embeddings.sqlite")
    rm = train_embedding_rm([items[i] for i in train_i], TrainConfig(epochs=setup.epochs, seed=setup.seed),
                            embedder=embedder)
    embedder.close()
    assert rm.report is not None
    log(f"trained the embedding RM on {len(train_i)} pairs (validation accuracy {rm.report.val_accuracy:.3f})")
    model_dir = rm.save(out / "rm")
    spec_path = out / "rm.yaml"
    spec_path.write_text(f"reward:\n  reward: embedding_rm\n  params:\n    path: {json.dumps(str(model_dir))}\n")
    eval_path = out / "eval_pairs.jsonl"
    eval_path.write_text("".join(json.dumps(rows[i]) + "\n" for i in eval_i))
    held = [items[i] for i in eval_i]
    specs = {"embedding_rm": build(spec_path), "longest": build("response_length"),
             "shortest": build("response_length", prefer="shorter")}
    with Runtime(workers=1, cache=None) as rt:
        scored = {name: score_items(held, spec, runtime=rt) for name, spec in specs.items()}
    ev = evaluate(held, specs, n_resamples=setup.resamples, seed=setup.seed, scores=scored)

    def margins(name: str) -> np.ndarray:
        return np.array([(s.chosen[0].value or np.nan) - (s.rejected[0].value or np.nan) for s in scored[name]])

    rm_scores = np.array([s.value for it in scored["embedding_rm"] for s in (it.chosen[0], it.rejected[0])],
                         dtype=float)
    lengths = np.array([s.value for it in scored["longest"] for s in (it.chosen[0], it.rejected[0])], dtype=float)
    rec = recovery(ev, "embedding_rm", margins("embedding_rm"), margins("longest"), rm_scores, lengths)
    cli = command_line(["eval", str(eval_path), "-r", f"embedding_rm={spec_path}",
                        *[a for k, v in LENGTH.items() for a in ("-r", f"{k}={v}")],
                        "--resamples", str(setup.resamples), "--report", str(out / "eval_report.html")])
    doc = ev.to_json()
    rep = Report("Length recovery: how much of an embedding RM's ranking a length-only reward recovers (HH-RLHF)",
                 command=command_line(sys.argv[1:], prog=f"python {Path(__file__).name}") if __name__ == "__main__"
                 else f"length_recovery.run({data}, {out}, {setup})",
                 fingerprints={k: v["fingerprint"] for k, v in doc["rewards"].items()},
                 data_hash={str(data): file_sha256(data), str(eval_path): file_sha256(eval_path)})
    rep.text(f"The embedding RM trained on {len(train_i)} pairs; evaluated with the length baselines on "
             f"{len(eval_i)} pairs whose prompts it never saw. Intervals at 95%, {setup.resamples} bootstrap "
             f"resamples. The same evaluation from the command line: {cli}")
    rep.table("Accuracy (ties count as wrong)", ["reward", "accuracy", "low", "high", "method", "ties"],
              [[k, v["accuracy"], v["ci"][0], v["ci"][1], v["ci_method"], v["ties"]]
               for k, v in doc["rewards"].items()])
    rep.table("What each length baseline recovers of the RM's ranking",
              ["length reward", "agreement", "low", "high", "kappa", "kappa low", "kappa high", "Spearman (margins)",
               "low", "high", "RM − length accuracy", "McNemar p"],
              [[k, r["pairwise_agreement"], *r["pairwise_agreement_ci"], r["cohen_kappa"], *(r["cohen_kappa_ci"] or
                [None, None]), r["spearman_margins"], *r["spearman_margins_ci"], r["accuracy_diff_rm_minus_length"],
                r["mcnemar_p"]] for k, r in rec.items() if k in LENGTH])
    rep.table("The RM against length", ["figure", "value", "low", "high", "n"],
              [["Spearman(RM score, length) over responses", rec["spearman_score_length"],
                *rec["spearman_score_length_ci"], len(lengths)],
               *[[f"RM accuracy, {side.replace('_', ' ')}", r["accuracy"], *r["ci"], r["n"]]
                 for side, r in ((s, rec[f"rm_accuracy_{s}"]) for s in ("chosen_longer", "chosen_shorter"))]])
    fig = _plot(doc, rec, margins("embedding_rm"), margins("longest"))
    rep.figure("Accuracy, agreement with the RM, and the RM's margin against the length margin", fig)
    fig.savefig(out / "length_recovery.png", dpi=110)
    rep.add_data("evaluation", doc)
    rep.add_data("recovery", rec)
    html, js = rep.write(out / "length_recovery.html")
    return {"seconds": time.perf_counter() - t0, "train": train_i, "eval": eval_i, "evaluation": doc,
            "recovery": rec, "html": html, "json": js, "png": out / "length_recovery.png", "cli": cli,
            "eval_path": eval_path, "spec_path": spec_path, "val_accuracy": rm.report.val_accuracy}


def _plot(doc: dict[str, Any], rec: dict[str, Any], rm_margin: np.ndarray, len_margin: np.ndarray) -> Any:
    from rewardlab.audit.report import new_figure

    fig = new_figure(11, 4)
    ax1, ax2 = fig.subplots(1, 2)
    names = list(doc["rewards"])
    acc = [doc["rewards"][n]["accuracy"] for n in names]
    err = [[a - doc["rewards"][n]["ci"][0] for a, n in zip(acc, names, strict=True)],
           [doc["rewards"][n]["ci"][1] - a for a, n in zip(acc, names, strict=True)]]
    ax1.errorbar(range(len(names)), acc, yerr=err, fmt="o", capsize=5, label="accuracy")
    agr = [rec[n]["pairwise_agreement"] for n in LENGTH]
    agr_err = [[a - rec[n]["pairwise_agreement_ci"][0] for a, n in zip(agr, LENGTH, strict=True)],
               [rec[n]["pairwise_agreement_ci"][1] - a for a, n in zip(agr, LENGTH, strict=True)]]
    pos = [names.index(n) + 0.15 for n in LENGTH]
    ax1.errorbar(pos, agr, yerr=agr_err, fmt="s", capsize=5, color="tab:orange", label="agreement with the RM")
    ax1.set_xticks(range(len(names)), names)
    ax1.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax1.set_ylabel("share of pairs (95% CI)")
    ax1.legend(fontsize=8)
    keep = np.isfinite(rm_margin) & np.isfinite(len_margin)
    ax2.scatter(np.sign(len_margin[keep]) * np.log1p(np.abs(len_margin[keep])), rm_margin[keep], s=6, alpha=0.4)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.axvline(0, color="grey", lw=0.8)
    ax2.set_xlabel("length margin, chosen − rejected (signed log1p of characters)")
    ax2.set_ylabel("RM margin, chosen − rejected")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("data", type=Path, help="HH-RLHF pairs (JSONL, .gz ok)")
    ap.add_argument("--out", type=Path, default=Path("length_recovery_out"))
    ap.add_argument("--train-pairs", type=int, default=None)
    ap.add_argument("--eval-pairs", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=Setup.epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resamples", type=int, default=Setup.resamples)
    a = ap.parse_args()
    facts = run(a.data, a.out, Setup(a.train_pairs, a.eval_pairs, a.epochs, a.seed, a.resamples))
    doc, rec = facts["evaluation"], facts["recovery"]
    for name, r in doc["rewards"].items():
        print(f"{name:<13} accuracy {r['accuracy']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] ({r['ci_method']}), "
              f"ties {r['ties']}")
    for name in LENGTH:
        r = rec[name]
        print(f"{name:<13} agrees with the RM on {r['pairwise_agreement']:.3f} "
              f"[{r['pairwise_agreement_ci'][0]:.3f}, {r['pairwise_agreement_ci'][1]:.3f}] of pairs, kappa "
              f"{r['cohen_kappa']:.3f}, Spearman of margins {r['spearman_margins']:.3f}; RM − length accuracy "
              f"{r['accuracy_diff_rm_minus_length']:+.3f} (McNemar p {r['mcnemar_p']:.2g})")
    lo, hi = rec["spearman_score_length_ci"]
    print(f"Spearman(RM score, length) over responses {rec['spearman_score_length']:.3f} [{lo:.3f}, {hi:.3f}]")
    for side in ("chosen_longer", "chosen_shorter"):
        r = rec[f"rm_accuracy_{side}"]
        print(f"RM accuracy where the {side.replace('_', ' ')}: {r['accuracy']:.3f} "
              f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] (n={r['n']})")
    print(f"{facts['seconds']:.0f} s; report {facts['html']}, plot {facts['png']}")
    print(f"the same evaluation from the command line:\n  {facts['cli']}")


if __name__ == "__main__":
    main()
