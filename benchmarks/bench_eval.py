"""`rewardlab eval` on the 2,312 HH-RLHF harmless-base pairs with 10,000 bootstrap resamples, beside what a
user would otherwise write, in the same run.

The rewards are the two length baselines (longest wins, shortest wins), so the figures time the evaluation
rather than a model. Both sides start from the same per-response scores:

- rewardlab: `rewardlab.audit.eval.evaluate` on the scores: per reward the accuracy and its interval
  (a clustered BCa bootstrap here: two prompts repeat), ties, the pair view, and the paired comparison
  (McNemar exact and mid-p, paired BCa bootstrap of the difference, agreement with intervals);
- baseline: the per-item Python loop of RewardBench's ``run_rm.py`` (``1 if chosen > rejected else 0``),
  then ``scipy.stats.bootstrap`` (BCa, 10,000 resamples) per reward and once, paired, for the difference,
  and McNemar through ``scipy.stats.binomtest``: fewer figures (no clustering, no agreement intervals).

Also timed: the whole `rewardlab eval` command as a user runs it (reading the file, scoring through a
Runtime without cache, the statistics, the tables). Each figure is the best of `--repeats`.

    python -m benchmarks.bench_eval
    python -m benchmarks.bench_eval --resamples 2000 --repeats 1
    python -m benchmarks.run eval --quick
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as st

from rewardlab.api import build
from rewardlab.audit.eval import evaluate, score_items
from rewardlab.io.preferences import read_preferences
from rewardlab.runtime.engine import Runtime

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "preference" / "hh_rlhf_harmless_base_test.jsonl.gz"


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(best wall seconds, best CPU seconds of this process, the result) over `repeats` calls."""
    best, best_cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    return best, best_cpu, out


def baseline(scores: dict[str, list[Any]], resamples: int, seed: int) -> dict[str, Any]:
    """RewardBench's per-item loop, then scipy.stats.bootstrap per reward and paired, and McNemar."""
    results: dict[str, np.ndarray] = {}
    out: dict[str, Any] = {}
    for name, items in scores.items():
        res = []
        for it in items:  # run_rm.py: results = 1 if chosen > rejected else 0
            res.append(1 if it.chosen[0].value > it.rejected[0].value else 0)
        results[name] = np.array(res, dtype=float)
        ci = st.bootstrap((results[name],), np.mean, n_resamples=resamples, method="BCa", rng=seed).confidence_interval
        out[name] = (float(results[name].mean()), float(ci.low), float(ci.high))
    a, b = results.values()
    diff = st.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), paired=True,
                        n_resamples=resamples, method="BCa", rng=seed).confidence_interval
    nb, nc = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
    out["diff"] = (float(a.mean() - b.mean()), float(diff.low), float(diff.high))
    out["mcnemar_p"] = float(st.binomtest(min(nb, nc), nb + nc, 0.5).pvalue)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1,000 resamples, one repeat")
    a = ap.parse_args(argv)
    if a.quick:
        a.resamples, a.repeats = 1000, 1

    items = read_preferences(a.data).items
    specs = {"longest": build("response_length"), "shortest": build("response_length", prefer="shorter")}
    with Runtime(workers=1, cache=None) as rt:
        scores = {k: score_items(items, s, runtime=rt) for k, s in specs.items()}

    t_ours, c_ours, ev = best_of(lambda: evaluate(items, specs, n_resamples=a.resamples, seed=a.seed, scores=scores),
                         a.repeats)
    t_base, c_base, base = best_of(lambda: baseline(scores, a.resamples, a.seed), a.repeats)
    # the two agree on what both compute
    doc = ev.to_json()
    for name in specs:
        r = doc["rewards"][name]
        est, lo, hi = base[name]
        assert abs(r["accuracy"] - est) < 1e-12, name
        assert abs(r["ci"][0] - lo) < 0.01 and abs(r["ci"][1] - hi) < 0.01, (name, r["ci"], (lo, hi))
    cmp = doc["comparisons"][0]
    assert abs(cmp["mcnemar_p"] - base["mcnemar_p"]) < 1e-12
    assert abs(cmp["diff_ci"][0] - base["diff"][1]) < 0.01 and abs(cmp["diff_ci"][1] - base["diff"][2]) < 0.01

    def cli() -> None:
        from typer.testing import CliRunner

        from rewardlab.cli import app

        res = CliRunner().invoke(app, ["eval", str(a.data), "-r", "longest=response_length",
                                       "-r", "shortest=response_length(prefer=shorter)", "--no-cache", "--workers",
                                       "1", "--resamples", str(a.resamples), "--seed", str(a.seed)])
        assert res.exit_code == 0, res.output

    t_cli, c_cli, _ = best_of(cli, a.repeats)
    load = os.getloadavg()
    print(f"HH-RLHF pairs: {len(items)}; resamples: {a.resamples}; repeats: {a.repeats} (best of); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    for name in specs:
        r = doc["rewards"][name]
        print(f"  {name:<9} accuracy {r['accuracy']:.4f} CI [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}] ({r['ci_method']}); "
              f"scipy BCa [{base[name][1]:.4f}, {base[name][2]:.4f}]")
    print(f"  diff {cmp['diff']:+.4f} CI [{cmp['diff_ci'][0]:+.4f}, {cmp['diff_ci'][1]:+.4f}]; scipy paired BCa "
          f"[{base['diff'][1]:+.4f}, {base['diff'][2]:+.4f}]; McNemar p {cmp['mcnemar_p']:.3g}")
    print(f"{'':<52} {'wall s':>8} {'CPU s':>8}")
    print(f"{'evaluate (2 rewards, statistics on given scores)':<52} {t_ours:8.3f} {c_ours:8.3f}")
    print(f"{'per-item loop + scipy.stats.bootstrap + binomtest':<52} {t_base:8.3f} {c_base:8.3f}")
    print(f"{'ratio (baseline / rewardlab)':<52} {t_base / t_ours:7.2f}x {c_base / c_ours:7.2f}x")
    print(f"{'rewardlab eval command, end to end':<52} {t_cli:8.3f} {c_cli:8.3f}")
    print("(the command: reading the file, scoring through a Runtime without cache, the statistics, the tables;"
          " CPU s counts this process only)")


if __name__ == "__main__":
    main()
