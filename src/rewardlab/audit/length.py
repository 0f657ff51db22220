"""Length bias of a reward on preference pairs: does it reward length rather than content?

Diagnostics after Singhal et al., "A Long Way to Go: Investigating Length Correlations in RLHF"
(COLM 2024, arXiv 2310.03716), and RewardBench's content-blind "pick the longest / shortest"
rulers (allenai/reward-bench issues #267, #268):

- correlation of the reward with response length, Pearson and Spearman (Pearson of the ranks),
  over every scored response, with a bootstrap over pairs (a pair's two responses move together);
- the reward's accuracy on pairs whose chosen response is the longer one versus the shorter one,
  and their gap (a length-biased reward is right more often when the chosen one is longer);
- baselines in every report: the reward's own accuracy, the accuracy of "longest wins" and of
  "shortest wins" per subset, and of the paper's length-only reward
  ``R*(y) = 1 − |len(y)/L − 1|`` with L the median response length of the data (label-free).

Length is counted in characters of the response text unless `length` says otherwise (e.g. a
tokenizer's token count). Ties in length count as wrong for the rulers, as ties in score do for
rewards; a pair whose score is not ok counts as wrong (see `rewardlab.audit.pairs`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rewardlab.audit.probe import ProbeResult, Scorer, rate_result, stat_result
from rewardlab.core.types import PreferencePair, PreferenceSet, Sample, Score

__all__ = ["ExpandedPairs", "expand", "length_only_reward", "length_probe"]


@dataclass(frozen=True)
class ExpandedPairs:
    """Preference items as pairs ready to score: `samples` (each response once), per pair the
    indices of its chosen and rejected sample, its cluster (the item it came from) and subset."""

    samples: list[Sample]
    pairs: list[tuple[int, int]]
    clusters: list[int]
    subsets: list[str]


def expand(items: Iterable[PreferencePair | PreferenceSet], reference_key: str = "reference") -> ExpandedPairs:
    """Every (chosen, rejected) combination of the items; a set's pairs share one cluster. A
    reference in an item's ``metadata[reference_key]`` (e.g. the gold answer a verifier needs)
    becomes its samples' `reference`."""
    samples: list[Sample] = []
    pairs: list[tuple[int, int]] = []
    clusters: list[int] = []
    subsets: list[str] = []
    for k, item in enumerate(items):
        start = len(samples)
        reference = item.metadata.get(reference_key)
        if isinstance(item, PreferenceSet):
            samples.extend(item.samples())
            n_chosen = len(item.chosen)
            new = [(start + i, start + n_chosen + j) for i in range(n_chosen) for j in range(len(item.rejected))]
        else:
            samples.extend(item.samples())
            new = [(start, start + 1)]
        if reference is not None:
            samples[start:] = [s.model_copy(update={"reference": reference}) for s in samples[start:]]
        pairs.extend(new)
        clusters.extend([k] * len(new))
        subsets.extend([item.subset or "all"] * len(new))
    return ExpandedPairs(samples, pairs, clusters, subsets)


def length_only_reward(length: float, target: float) -> float:
    """The length-only reward of "A Long Way to Go": ``1 − |length/target − 1|`` (1 at the
    target length, falling linearly either side; higher is better)."""
    return 1.0 - abs(length / target - 1.0)


def _weighted_pearson(data: tuple[np.ndarray, np.ndarray], w: np.ndarray) -> np.ndarray:
    x, y = data
    s = w.sum(axis=1)
    mx, my = (w @ x) / s, (w @ y) / s
    cov = (w @ (x * y)) / s - mx * my
    vx = (w @ (x * x)) / s - mx * mx
    vy = (w @ (y * y)) / s - my * my
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(vx * vy)


def _gap(data: tuple[np.ndarray, np.ndarray, np.ndarray], w: np.ndarray) -> np.ndarray:
    """Accuracy on pairs whose chosen response is longer minus on those where it is shorter."""
    correct, longer, shorter = data
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ (correct * longer)) / (w @ longer) - (w @ (correct * shorter)) / (w @ shorter)


def _correlation(name: str, x: np.ndarray, y: np.ndarray, clusters: list[int], *, min_effect: float,
                 level: float, alpha: float, power: float, n_resamples: int, seed: int) -> ProbeResult:
    from scipy.special import ndtri

    from rewardlab.audit.probe import bootstrap_p
    from rewardlab.audit.stats import bootstrap_ci, bootstrap_distribution

    m = len(set(clusters))
    base = dict(probe="length", name=name, null="correlation = 0", unit="correlation", min_effect=min_effect,
                level=level, alpha=alpha, power=power)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return ProbeResult(estimate=None, low=None, high=None, p=None, mde=None, n=len(x), clusters=m,
                           note="fewer than 3 scored responses, or a constant reward or length",
                           **base)  # type: ignore[arg-type]
    data = (x, y)
    ci = bootstrap_ci(_weighted_pearson, data, clusters=clusters, n_resamples=n_resamples, level=level, seed=seed)
    _, values = bootstrap_distribution(_weighted_pearson, data, clusters=clusters, n_resamples=n_resamples,
                                       seed=seed)
    z = float(ndtri(1 - alpha / 2) + ndtri(power))
    mde = math.tanh(z / math.sqrt(m - 3)) if m > 3 else None  # Fisher z over the independent clusters
    return ProbeResult(estimate=ci.estimate, low=ci.low, high=ci.high, p=bootstrap_p(values), mde=mde, n=len(x),
                       clusters=m, ci_method=ci.method, note=ci.note, **base)  # type: ignore[arg-type]


def length_probe(
    items: Iterable[PreferencePair | PreferenceSet],
    score: Scorer,
    *,
    length: Callable[[str], float] = len,
    min_correlation: float = 0.1,
    min_gap: float = 0.1,
    level: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    n_resamples: int = 4000,
    seed: int = 0,
    scored: Sequence[Score] | None = None,
    reference_key: str = "reference",
) -> list[ProbeResult]:
    """Length-bias results for `items` scored by `score` (one batch; or pass the `scored` scores
    of `expand(items).samples`). Tests: Pearson and Spearman correlation with length (judged
    against `min_correlation`), the accuracy gap chosen-longer minus chosen-shorter (against
    `min_gap`); baselines: the reward's accuracy, longest-wins and shortest-wins per subset and
    overall, and the length-only reward. `reference_key`: see `expand`."""
    ex = expand(items, reference_key)
    scores = list(scored) if scored is not None else list(score(ex.samples)) if ex.samples else []
    if len(scores) != len(ex.samples):
        raise ValueError(f"the scorer returned {len(scores)} scores for {len(ex.samples)} samples")
    lengths = [float(length(s.response_text)) for s in ex.samples]
    cluster_of_sample = [0] * len(ex.samples)
    for (c, r), k in zip(ex.pairs, ex.clusters, strict=True):
        cluster_of_sample[c] = cluster_of_sample[r] = k
    common = dict(level=level, alpha=alpha, power=power, n_resamples=n_resamples, seed=seed)
    ok = [i for i, s in enumerate(scores) if s.ok and s.value is not None]
    x = np.array([scores[i].value for i in ok], dtype=float)
    y = np.array([lengths[i] for i in ok], dtype=float)
    cl = [cluster_of_sample[i] for i in ok]
    from scipy.stats import rankdata

    results = [
        _correlation("Pearson correlation of reward and length", x, y, cl, min_effect=min_correlation,
                     **common),  # type: ignore[arg-type]
        _correlation("Spearman correlation of reward and length", rankdata(x) if len(x) else x,
                     rankdata(y) if len(y) else y, cl, min_effect=min_correlation, **common),  # type: ignore[arg-type]
    ]

    def right(c: int, r: int) -> bool:
        a, b = scores[c], scores[r]
        return bool(a.ok and b.ok and a.value is not None and b.value is not None and a.value > b.value)

    correct = [right(c, r) for c, r in ex.pairs]
    longer = [lengths[c] > lengths[r] for c, r in ex.pairs]
    shorter = [lengths[c] < lengths[r] for c, r in ex.pairs]
    n_long, n_short = sum(longer), sum(shorter)
    if n_long and n_short:
        gap = stat_result("length", "accuracy gap: chosen longer minus chosen shorter", _gap,
                          tuple(np.asarray(v, dtype=float) for v in (correct, longer, shorter)), len(correct),
                          clusters=ex.clusters, null_text="accuracy does not depend on which response is longer",
                          min_effect=min_gap, unit="accuracy difference",
                          details={"pairs_chosen_longer": n_long, "pairs_chosen_shorter": n_short},
                          **common)  # type: ignore[arg-type]
    else:
        gap = ProbeResult(probe="length", name="accuracy gap: chosen longer minus chosen shorter", estimate=None,
                          low=None, high=None, null="accuracy does not depend on which response is longer", p=None,
                          mde=None, n=len(ex.pairs), clusters=len(set(ex.clusters)),
                          note="needs pairs with the chosen response longer and pairs with it shorter")
    results.append(gap)
    for label, mask in (("chosen longer", longer), ("chosen shorter", shorter)):
        results.append(rate_result("length", f"accuracy when the {label}", [c for c, m_ in zip(correct, mask,
                                   strict=True) if m_], clusters=[k for k, m_ in zip(ex.clusters, mask, strict=True)
                                                                 if m_], baseline=True, what="accuracy",
                                   unit="accuracy", **common))  # type: ignore[arg-type]
    results.append(rate_result("length", "reward accuracy", correct, clusters=ex.clusters, baseline=True,
                               what="accuracy", unit="accuracy", **common))  # type: ignore[arg-type]
    target = statistics.median(lengths) if lengths else 0.0
    lengths_only = [length_only_reward(v, target) if target > 0 else 0.0 for v in lengths]
    results.append(rate_result(
        "length", "length-only reward accuracy (A Long Way to Go)", [lengths_only[c] > lengths_only[r]
                                                                     for c, r in ex.pairs],
        clusters=ex.clusters, baseline=True, what="accuracy", unit="accuracy",
        details={"target_length": target}, **common))  # type: ignore[arg-type]
    for subset in ["all", *sorted(set(ex.subsets) - {"all"})] if len(set(ex.subsets)) > 1 else ["all"]:
        keep = [i for i, s in enumerate(ex.subsets) if subset == "all" or s == subset]
        label = "" if subset == "all" else f" [{subset}]"
        for ruler, wins in (("longest wins", longer), ("shortest wins", shorter)):
            results.append(rate_result(
                "length", f"{ruler} accuracy{label}", [wins[i] for i in keep], clusters=[ex.clusters[i] for i in keep],
                baseline=True, what="accuracy", unit="accuracy", **common))  # type: ignore[arg-type]
    return results
