"""Determinism of a reward: the same samples get the same scores whatever batch they run in.

`determinism_probe` scores the samples once as given (the reference), then under each variant:
the same call repeated, the samples in reversed and in shuffled order (scores mapped back), each
model leaf run in batches of other sizes (``batch_size``, as a spec's leaf option sets it), and,
for leaves with a ``padding_side`` parameter, each padding side. A sample's score changed when
its status changed or its value moved by more than `atol` + `rtol`·|value|. Per variant: the share
of samples whose score changed, against "no score changes" (exact test; tolerance 0).

Run it on a Runtime without a score cache: with a cache, the repeats read the stored scores.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from rewardlab.api import build
from rewardlab.audit.probe import ProbeResult, rate_result, scorer
from rewardlab.compose.nodes import Leaf
from rewardlab.compose.spec import Spec
from rewardlab.core.types import Sample, Score

__all__ = ["determinism_probe"]


def _changed(a: Score, b: Score, atol: float, rtol: float) -> bool:
    if a.status != b.status:
        return True
    if a.value is None or b.value is None:
        return a.value != b.value
    return abs(a.value - b.value) > atol + rtol * abs(a.value)


@contextmanager
def _batch_size(spec: Spec, size: int) -> Iterator[None]:
    """Every leaf of `spec` run in batches of `size` for the duration (its options restored after)."""
    leaves = [n for n in spec.root.walk() if isinstance(n, Leaf)]
    saved = [leaf.options for leaf in leaves]
    try:
        for leaf in leaves:
            leaf.options = replace(leaf.options, batch_size=size)
        yield
    finally:
        for leaf, options in zip(leaves, saved, strict=True):
            leaf.options = options


@contextmanager
def _padding(spec: Spec, side: str) -> Iterator[bool]:
    """Leaves with a ``padding_side`` parameter reconfigured to `side` (yields whether any was)."""
    leaves = [n for n in spec.root.walk() if isinstance(n, Leaf) and "padding_side" in n.reward.params]
    saved = [leaf.reward for leaf in leaves]
    try:
        for leaf in leaves:
            leaf.reward = leaf.reward.definition(**{**leaf.reward.params, "padding_side": side})
        yield bool(leaves)
    finally:
        for leaf, rw in zip(leaves, saved, strict=True):
            leaf.reward = rw


def determinism_probe(
    samples: Sequence[Sample],
    spec: Any,
    *,
    runtime: Any = None,
    batch_sizes: Sequence[int] = (1, 3),
    atol: float = 1e-6,
    rtol: float = 1e-6,
    min_rate: float = 0.01,
    level: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    seed: int = 0,
) -> list[ProbeResult]:
    """Per variant, the share of `samples` whose score changed (see the module docstring), judged
    against `min_rate`. `spec`: anything `rewardlab.build` takes; `runtime`: the Runtime to score on
    (the current one when None)."""
    bad = [b for b in batch_sizes if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad:
        raise ValueError(f"batch sizes must be positive integers, got {bad}")
    built = build(spec)
    run = scorer(built, runtime)
    items = list(samples)
    n = len(items)
    reference = list(run(items))
    variants: list[tuple[str, list[Score]]] = [("repeated call", list(run(items)))]
    backwards = list(run(items[::-1]))
    variants.append(("reversed order", backwards[::-1]))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    shuffled = list(run([items[i] for i in order]))
    back = [Score.error("unset")] * n
    for pos, i in enumerate(order):
        back[i] = shuffled[pos]
    variants.append(("shuffled order", back))
    has_model = any(isinstance(node, Leaf) and node.reward.info.kind == "model" for node in built.root.walk())
    if has_model:
        for size in batch_sizes:
            with _batch_size(built, size):
                variants.append((f"batch size {size}", list(run(items))))
    for side in ("left", "right"):
        with _padding(built, side) as any_leaf:
            if any_leaf:
                variants.append((f"padding side {side}", list(run(items))))
    results = []
    for label, got in variants:
        flags = [_changed(a, b, atol, rtol) for a, b in zip(reference, got, strict=True)]
        worst = max((abs(a.value - b.value) for a, b in zip(reference, got, strict=True)
                     if a.value is not None and b.value is not None), default=0.0)
        results.append(rate_result(
            "determinism", f"changed scores: {label}", flags, min_effect=min_rate, what="share of changed scores",
            unit="share of samples", level=level, alpha=alpha, power=power, seed=seed,
            details={"max_abs_difference": worst, "atol": atol, "rtol": rtol}))
    return results
