"""Over-optimisation of a learned reward, measured: best-of-n under embedding reward models trained on one
half of HH-RLHF (the proxies), scored by one trained on the other, disjoint half (the gold reward).

1. HH-RLHF harmless-base pairs are shuffled (seeded) into three disjoint parts: `eval_prompts` dialogues whose
   prompts get candidate responses, then two equal halves of the rest: one trains the proxies, the other the
   gold reward model (a linear Bradley-Terry head on all-MiniLM-L6-v2 embeddings, as
   ``rewardlab train embedding-rm``).
2. Proxies: `members` models, each trained on a bootstrap resample of the proxy half (different data per
   member, as an ensemble needs diverse members); each alone is a "single proxy".
3. Candidates per prompt: its own chosen and rejected responses plus responses drawn from the other held-out
   dialogues (`candidates` in all), written as a rollout file.
4. Every candidate is scored through one Runtime (one batch per reward) and `rewardlab.audit.overopt` gives the
   best-of-n curves with the unbiased estimator against KL_bon = log n - (n-1)/n, for each single proxy and
   the mean, worst-case and uncertainty-weighted ensembles; the report (HTML with the plots, JSON beside it)
   and the plot as a PNG go to `--out`.

Run (about 2-3 minutes on 2 CPU cores):

    python examples/audit/overoptimisation.py ../shared/data/preference/hh_rlhf_harmless_base_test.jsonl.gz \\
        --out /tmp/overopt

It prints the same audit as a ``rewardlab audit overopt`` command over the files it wrote. What it measures is
reported as it comes out, whichever way.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardlab.api import build
from rewardlab.audit.overopt import Overopt, add_to_report, overoptimisation, score_prompts
from rewardlab.audit.pairs import pair_accuracy
from rewardlab.audit.report import Report, command_line, file_sha256
from rewardlab.core.types import PreferencePair, Sample
from rewardlab.models.embedding import Embedder, TrainConfig, read_pairs, train_embedding_rm
from rewardlab.runtime.engine import Runtime


@dataclass(frozen=True)
class Setup:
    """Sizes of a run (the defaults are the full example; the test suite runs a tiny one)."""

    eval_prompts: int = 200
    candidates: int = 32
    members: int = 4
    epochs: int = 20
    train_pairs: int | None = None  # cap on each half (None: the whole half)
    seed: int = 0
    resamples: int = 2000


def split(n: int, setup: Setup) -> tuple[list[int], list[int], list[int]]:
    """Disjoint (eval, proxy-half, gold-half) indices of n pairs, seeded."""
    order = list(range(n))
    random.Random(setup.seed).shuffle(order)
    held, rest = order[:setup.eval_prompts], order[setup.eval_prompts:]
    half = len(rest) // 2
    proxy, gold = rest[:half], rest[half:2 * half]
    if setup.train_pairs is not None:
        proxy, gold = proxy[:setup.train_pairs], gold[:setup.train_pairs]
    return held, proxy, gold


def candidate_rows(held: list[PreferencePair], setup: Setup) -> list[dict[str, Any]]:
    """Per held-out prompt: its chosen and rejected responses and responses of other held-out dialogues."""
    rng = random.Random(setup.seed + 1)
    sides = [p.samples() for p in held]
    pool = [(i, s.response_text) for i, (c, r) in enumerate(sides) for s in (c, r)]
    rows = []
    for i, (chosen, rejected) in enumerate(sides):
        others = [t for j, t in pool if j != i]
        picks = rng.sample(others, setup.candidates - 2)
        for kind, text in [("chosen", chosen.response_text), ("rejected", rejected.response_text),
                           *[("other", t) for t in picks]]:
            rows.append({"prompt": chosen.prompt_text, "response": text, "source": kind, "dialogue": i})
    return rows


def spec_file(path: Path, model_dir: Path) -> Path:
    """A spec scoring with the saved model in one batch per call (each distinct text embedded once)."""
    path.write_text(f"reward:\n  reward: embedding_rm\n  params: {{path: {json.dumps(str(model_dir))}}}\n"
                    "  batch_size: 100000\n")
    return path


def run(data: Path, out: Path, setup: Setup, log: Any = print) -> tuple[Overopt, dict[str, Any]]:
    """Train, score, measure and write the report; returns the result and facts about the run."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    pairs, _ = read_pairs(data)
    held_i, proxy_i, gold_i = split(len(pairs), setup)
    embedder = Embedder(cache=out / "embeddings.sqlite")
    cfg = TrainConfig(epochs=setup.epochs, seed=setup.seed)

    def train(idx: list[int], name: str, seed: int | None = None) -> Path:
        rm = train_embedding_rm([pairs[i] for i in idx], TrainConfig(**{**cfg.__dict__, "seed": seed or cfg.seed}),
                                embedder=embedder)
        assert rm.report is not None
        log(f"trained {name} on {len(idx)} pairs (validation accuracy on its own split: {rm.report.val_accuracy:.3f})")
        return rm.save(out / name)

    gold_dir = train(gold_i, "gold")
    rng = random.Random(setup.seed + 2)
    member_dirs = [train([rng.choice(proxy_i) for _ in proxy_i], f"proxy{j}", seed=setup.seed + j + 1)
                   for j in range(setup.members)]
    embedder.close()
    proxy_specs_paths = [spec_file(out / f"proxy{j}.yaml", d) for j, d in enumerate(member_dirs)]
    gold_spec_path = spec_file(out / "gold.yaml", gold_dir)

    held = [pairs[i] for i in held_i]
    rows = candidate_rows(held, setup)
    rollouts = out / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    groups: dict[str, list[Sample]] = {}
    for r in rows:
        groups.setdefault(r["prompt"], []).append(Sample(prompt=r["prompt"], response=r["response"]))
    proxy_specs = [build(p) for p in proxy_specs_paths]
    gold_spec = build(gold_spec_path)
    labels = [f"proxy{j}" for j in range(setup.members)]
    with Runtime(workers=1, cache=None) as rt:
        def score(spec: Any, batch: list[Sample]) -> list[Any]:
            return rt.score(spec, batch).scores

        prompts, dropped = score_prompts(list(groups.items()), proxy_specs, gold_spec, score, labels)
        # how each reward model ranks the held-out pairs (context: the gold reward is itself a learned model)
        accuracy = {name: pair_accuracy(lambda b, s=spec: score(s, b), held).accuracy
                    for name, spec in [*zip(labels, proxy_specs, strict=True), ("gold", gold_spec)]}
    res = overoptimisation(prompts, ensembles=("mean", "worst", "uwo"), labels=labels, dropped=dropped,
                           n_resamples=setup.resamples, seed=setup.seed)
    cli = command_line(["audit", "overopt", str(rollouts), *[a for p in proxy_specs_paths for a in ("--proxy", str(p))],
                        "--gold", str(gold_spec_path), "--report", str(out / "cli_report.html")])
    rep = Report("Over-optimisation: embedding RMs on disjoint halves of HH-RLHF harmless-base",
                 command=command_line(sys.argv[1:], prog=f"python {Path(__file__).name}") if __name__ == "__main__"
                 else f"overoptimisation.run({data}, {out}, {setup})",
                 fingerprints={**{lb: s.fingerprint for lb, s in zip(labels, proxy_specs, strict=True)},
                               "gold": gold_spec.fingerprint},
                 data_hash={str(data): file_sha256(data), str(rollouts): file_sha256(rollouts)})
    rep.text(f"Pairs: {len(held_i)} held-out dialogues give the prompts; the proxies train on bootstrap resamples "
             f"of {len(proxy_i)} pairs, the gold reward model on {len(gold_i)} other pairs (disjoint). Each prompt "
             f"has {setup.candidates} candidates: its chosen and rejected responses and "
             f"{setup.candidates - 2} responses of other held-out dialogues. The same audit from the command line: "
             f"{cli}")
    rep.table("Held-out pair accuracy of each reward model (chosen > rejected on the held-out dialogues)",
              ["model", "accuracy"], [[k, v] for k, v in accuracy.items()])
    add_to_report(rep, res)
    html, js = rep.write(out / "overoptimisation.html")
    _plot(res, out / "overoptimisation.png")
    facts = {"seconds": time.perf_counter() - t0, "held": held_i, "proxy_half": proxy_i, "gold_half": gold_i,
             "accuracy": accuracy, "html": html, "json": js, "png": out / "overoptimisation.png", "cli": cli}
    return res, facts


def _plot(res: Overopt, path: Path) -> None:
    from rewardlab.audit.report import new_figure

    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    single = res.curve("single")
    kl = [p.kl for p in single.points]
    ax.plot(kl, [p.proxy_gain.estimate for p in single.points], "k--", label="single proxy: its own score")
    for name in ("single", "mean", "worst", "uwo"):
        c = res.curve(name)
        ax.plot(kl, [p.gold_gain.estimate for p in c.points], "o-", label=f"{name}: gold score")
        ax.fill_between(kl, [p.gold_gain.low for p in c.points], [p.gold_gain.high for p in c.points], alpha=0.12)
    ax.set_xlabel("KL_bon = log n - (n-1)/n (nats)")
    ax.set_ylabel("gain over best-of-1 (rank-normal units)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def summary(res: Overopt) -> str:
    lines = [f"{'objective':<10} {'n':>4} {'KL_bon':>7} {'proxy gain':>11} {'gold gain [95% CI]':>26} "
             f"{'gap [95% CI]':>26}"]
    for c in res.curves:
        if c.objective.startswith("proxy:"):
            continue
        for p in c.points:
            g, d = p.gold_gain, p.gap
            lines.append(f"{c.objective:<10} {p.n:>4} {p.kl:>7.4f} {p.proxy_gain.estimate:>+11.3f} "
                         f"{g.estimate:>+8.3f} [{g.low:+.3f}, {g.high:+.3f}] {d.estimate:>+8.3f} "
                         f"[{d.low:+.3f}, {d.high:+.3f}]")
    for name in ("mean", "worst", "uwo"):
        p = res.curve(name).points[-1]
        if p.gold_vs_single is not None and p.gap_vs_single is not None:
            g, d = p.gold_vs_single, p.gap_vs_single
            lines.append(f"{name} minus single at n={p.n} (paired over prompts): gold gain {g.estimate:+.3f} "
                         f"[{g.low:+.3f}, {g.high:+.3f}], gap {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="HH-RLHF pairs (JSONL, .gz ok)")
    ap.add_argument("--out", type=Path, default=Path("overopt_out"))
    ap.add_argument("--eval-prompts", type=int, default=Setup.eval_prompts)
    ap.add_argument("--candidates", type=int, default=Setup.candidates)
    ap.add_argument("--members", type=int, default=Setup.members)
    ap.add_argument("--epochs", type=int, default=Setup.epochs)
    ap.add_argument("--train-pairs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    setup = Setup(a.eval_prompts, a.candidates, a.members, a.epochs, a.train_pairs, a.seed)
    res, facts = run(a.data, a.out, setup)
    print(summary(res))
    print(f"{res.prompts} prompts, {res.candidates} candidates, {res.dropped} dropped; "
          f"{facts['seconds']:.0f} s; report {facts['html']}, plot {facts['png']}")
    print(f"the same audit from the command line:\n  {facts['cli']}")


if __name__ == "__main__":
    main()
