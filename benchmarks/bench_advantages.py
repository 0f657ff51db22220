"""Advantages for a million rollouts in groups of 16: `rewardlab.credit.advantages` against a
plain numpy loop written the obvious way (a dict from group to its indices, then numpy's mean
and std per group, as trainers' reference code does), in the same run.

Rewards are 0/1 correctness with a per-prompt success rate, so some groups are all-equal (the
degenerate case both sides must send to exactly 0); every result is checked against the loop's.
Each figure is the best of `--repeats` timed calls; the loop runs once per repeat too.

    python -m benchmarks.bench_advantages
    python -m benchmarks.bench_advantages --rollouts 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from rewardlab.credit import advantages as adv


def loop_grpo(rewards: np.ndarray, groups: np.ndarray, eps: float = 1e-4, scale: bool = True) -> np.ndarray:
    """GRPO (TRL's ε and Bessel std) one group at a time."""
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    out = np.zeros(len(rewards))
    for idx in members.values():
        r = rewards[idx]
        if len(r) < 2 or r.max() == r.min():
            continue
        a = r - r.mean()
        out[idx] = a / (r.std(ddof=1) + eps) if scale else a
    return out


def loop_rloo(rewards: np.ndarray, groups: np.ndarray) -> np.ndarray:
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        members.setdefault(g, []).append(i)
    out = np.zeros(len(rewards))
    for idx in members.values():
        r = rewards[idx]
        if len(r) < 2:
            continue
        out[idx] = r - (r.sum() - r) / (len(r) - 1)
    return out


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run (16,000 rollouts, one repeat)")
    ap.add_argument("--rollouts", type=int, default=1_000_000)
    ap.add_argument("--group-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.rollouts, args.repeats = 16_000, 1

    rng = np.random.default_rng(args.seed)
    n_groups = args.rollouts // args.group_size
    n = n_groups * args.group_size
    p = rng.uniform(0, 1, n_groups) ** 2  # per-prompt success rate: many hard prompts, all-zero groups
    rewards = (rng.uniform(0, 1, n) < np.repeat(p, args.group_size)).astype(np.float64)
    gid = np.repeat(np.arange(n_groups), args.group_size)
    perm = rng.permutation(n)  # rollouts arrive interleaved, as in a batch file
    rewards, gid = rewards[perm], gid[perm]
    prompts = np.array([f"prompt {g}" for g in gid.tolist()], dtype=object)
    load = os.getloadavg()
    print(f"{n:,} rollouts, {n_groups:,} groups of {args.group_size}, best of {args.repeats}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores")

    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("grpo (trl), int group ids", lambda: adv.grpo(rewards, gid).values, lambda: loop_grpo(rewards, gid)),
        ("grpo (trl), prompt strings", lambda: adv.grpo(rewards, prompts).values,
         lambda: loop_grpo(rewards, prompts)),
        ("dr_grpo, int group ids", lambda: adv.dr_grpo(rewards, gid).values,
         lambda: loop_grpo(rewards, gid, scale=False)),
        ("rloo (trl), int group ids", lambda: adv.rloo(rewards, gid).values, lambda: loop_rloo(rewards, gid)),
    ]
    print(f"{'estimator':<30} {'rewardlab s':>12} {'loop s':>9} {'speed-up':>9} {'max |diff|':>11}")
    for name, ours, loop in cases:
        t_ours, a = best(ours, args.repeats)
        t_loop, b = best(loop, args.repeats)
        diff = float(np.max(np.abs(a - b)))
        assert np.allclose(a, b, rtol=1e-9, atol=1e-9), f"{name}: results differ by {diff}"
        print(f"{name:<30} {t_ours:>12.3f} {t_loop:>9.3f} {t_loop / t_ours:>8.1f}x {diff:>11.1e}")


if __name__ == "__main__":
    main()
