"""Accuracy of a reward on preference pairs: how often it scores the chosen response strictly
above the rejected one.

Ties count as wrong (as in RewardBench: ``1 if chosen > rejected else 0``) and are reported
apart; so are pairs where either side's score is not ok (they count as wrong too: a reward that
fails on a pair has not ranked it). A `PreferenceSet` counts as one pair per (chosen, rejected)
combination.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rewardlab.core.types import PreferencePair, PreferenceSet, Sample, Score

__all__ = ["PairAccuracy", "Scorer", "compare", "pair_accuracy"]

Scorer = Callable[[list[Sample]], Sequence[Score]]
"""Scores a batch of samples, one `Score` per sample in order: e.g. an `EmbeddingRM`'s bound
``rm.score``, or ``lambda batch: rewardlab.score(batch, reward)``."""


@dataclass(frozen=True)
class PairAccuracy:
    """How a reward ranked preference pairs.

    `n`: pairs; `correct`: chosen scored strictly higher; `ties`: equal scores; `unscored`: a
    side's score was not ok; `margins`: chosen minus rejected score per pair, in order (None
    where unscored); `reasons`: why, for the first unscored pairs (up to 5)."""

    n: int
    correct: int
    ties: int
    unscored: int
    margins: tuple[float | None, ...]
    reasons: tuple[str, ...] = ()

    @property
    def accuracy(self) -> float | None:
        """correct / n in [0, 1], higher is better (ties and unscored pairs count as wrong);
        None for no pairs."""
        return self.correct / self.n if self.n else None

    @property
    def wrong(self) -> int:
        """Pairs where the rejected response scored strictly higher."""
        return self.n - self.correct - self.ties - self.unscored


def compare(chosen: Sequence[Score], rejected: Sequence[Score]) -> PairAccuracy:
    """Accuracy from the scores of each pair's chosen and rejected response (aligned lists)."""
    if len(chosen) != len(rejected):
        raise ValueError(f"{len(chosen)} chosen scores but {len(rejected)} rejected ones")
    correct = ties = 0
    margins: list[float | None] = []
    reasons: list[str] = []
    for c, r in zip(chosen, rejected, strict=True):
        if not (c.ok and r.ok):
            margins.append(None)
            bad = c if not c.ok else r
            if len(reasons) < 5:
                reasons.append(f"{'chosen' if bad is c else 'rejected'}: {bad.status.value}: {bad.reason}")
            continue
        assert c.value is not None and r.value is not None  # ok scores carry a value
        margin = c.value - r.value
        margins.append(margin)
        correct += c.value > r.value
        ties += c.value == r.value
    return PairAccuracy(n=len(chosen), correct=correct, ties=ties,
                        unscored=margins.count(None), margins=tuple(margins), reasons=tuple(reasons))


def pair_accuracy(score: Scorer, items: Iterable[PreferencePair | PreferenceSet]) -> PairAccuracy:
    """Accuracy of `score` on preference pairs and sets, all scored in one batch (each response
    of a set once). `margins` follow the pairs in order, a set's as in `PreferenceSet.pairs`."""
    samples: list[Sample] = []
    index: list[tuple[int, int]] = []  # (chosen sample, rejected sample) per pair
    for item in items:
        if isinstance(item, PreferenceSet):
            start = len(samples)
            samples.extend(item.samples())
            k = len(item.chosen)
            index.extend((start + i, start + k + j)
                         for i in range(k) for j in range(len(item.rejected)))
        else:
            samples.extend(item.samples())
            index.append((len(samples) - 2, len(samples) - 1))
    scores = list(score(samples)) if samples else []
    if len(scores) != len(samples):
        raise ValueError(f"the scorer returned {len(scores)} scores for {len(samples)} samples")
    return compare([scores[i] for i, _ in index], [scores[j] for _, j in index])
