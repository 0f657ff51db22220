"""Robustness of a reward to meaning-preserving rewrites (reWordBench-style, Wu et al., EMNLP 2025,
arXiv 2503.11751): each rewrite of `rewardlab.audit.rewrites` is applied to the chosen and the
rejected response alike; a reward that ranks by content keeps its accuracy and its rankings.

Per rewrite, over the pairs it changed (a rewrite that does not apply to a pair, e.g. no list to
reorder, leaves it out):

- accuracy drop = accuracy on the original pairs − on the rewritten pairs, against "the rewrite
  does not change accuracy": McNemar's exact test when every pair is its own item, else the
  paired cluster bootstrap; CI by the paired cluster bootstrap (when no pair changed correctness,
  ±the Wilson upper bound of the share of pairs that could have changed);
- rank flips: the share of pairs (both sides scored before and after) whose preferred side
  changed, against "no pair flips" (tolerance 0 by default).

Everything, originals and every rewrite, is scored in one batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rewardlab.audit.length import expand
from rewardlab.audit.probe import ProbeResult, Scorer, rate_result
from rewardlab.audit.rewrites import REWRITES, apply_rewrite, get_rewrite
from rewardlab.core.types import Message, PreferencePair, PreferenceSet, Sample, Score

__all__ = ["mde_drop", "rewrite_sample", "robustness_probe"]


def rewrite_sample(sample: Sample, rewrite: str, seed: int = 0) -> Sample:
    """`sample` with its response rewritten: the text, or the last assistant message of a
    conversation (other turns and the prompt unchanged)."""
    response = sample.response
    if isinstance(response, str):
        return sample.model_copy(update={"response": apply_rewrite(rewrite, response, seed)})
    messages = list(response)
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, Message) and m.role == "assistant" and isinstance(m.content, str):
            messages[i] = m.model_copy(update={"content": apply_rewrite(rewrite, m.content, seed)})
            break
    return sample.model_copy(update={"response": messages})


def _sign(a: Score, b: Score) -> int | None:
    if not (a.ok and b.ok and a.value is not None and b.value is not None):
        return None
    return (a.value > b.value) - (a.value < b.value)


def mde_drop(n: int, discordant: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest accuracy drop over n pairs that McNemar's test detects with `power`: the normal
    approximation (`rewardlab.audit.stats.mde_paired_proportions`) at the observed discordant
    share, and never below the exact floor for a reward that changed nothing: the smallest share
    d of pairs turned wrong for which P(Binomial(n, d) reaches McNemar's critical count) >= power."""
    from scipy.optimize import brentq
    from scipy.stats import binom

    from rewardlab.audit.stats import mcnemar, mde_paired_proportions

    if n <= 0:
        return float("inf")
    k = next((b for b in range(1, n + 1) if mcnemar(b, 0).p_exact < alpha), None)
    if k is None:
        return float("inf")
    floor = float(brentq(lambda d: binom.sf(k - 1, n, d) - power, 1e-12, 1.0)) if k > 1 \
        else 1 - (1 - power) ** (1 / n)
    return max(floor, mde_paired_proportions(n, discordant, alpha=alpha, power=power))


def robustness_probe(
    items: Iterable[PreferencePair | PreferenceSet],
    score: Scorer,
    *,
    rewrites: Sequence[str] | None = None,
    min_drop: float = 0.05,
    min_flips: float = 0.05,
    tolerance: float = 0.0,
    level: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    n_resamples: int = 4000,
    seed: int = 0,
    reference_key: str = "reference",
) -> list[ProbeResult]:
    """Accuracy drop and rank flips per rewrite (all registered ones when `rewrites` is None),
    judged against `min_drop` and `min_flips`; see the module docstring. `reference_key`: see
    `rewardlab.audit.length.expand`."""
    from rewardlab.audit.stats import mcnemar, paired_bootstrap_diff, wilson_ci

    names = [get_rewrite(r).name for r in (rewrites if rewrites is not None else list(REWRITES))]
    ex = expand(items, reference_key)
    n_samples = len(ex.samples)
    batch = list(ex.samples)
    for name in names:
        batch.extend(rewrite_sample(s, name, seed) for s in ex.samples)
    scores = list(score(batch)) if batch else []
    if len(scores) != len(batch):
        raise ValueError(f"the scorer returned {len(scores)} scores for {len(batch)} samples")
    orig = scores[:n_samples]
    common: dict[str, Any] = dict(level=level, alpha=alpha, power=power)
    results: list[ProbeResult] = []
    for k, name in enumerate(names):
        off = (k + 1) * n_samples
        new = scores[off: off + n_samples]
        texts = batch[off: off + n_samples]
        applied = [i for i, (c, r) in enumerate(ex.pairs)
                   if texts[c].response != ex.samples[c].response or texts[r].response != ex.samples[r].response]
        clusters = [ex.clusters[i] for i in applied]
        before = [_sign(orig[ex.pairs[i][0]], orig[ex.pairs[i][1]]) == 1 for i in applied]
        after = [_sign(new[ex.pairs[i][0]], new[ex.pairs[i][1]]) == 1 for i in applied]
        n, m = len(applied), len(set(clusters))
        label = f"accuracy drop: {name}"
        null = "the rewrite does not change accuracy"
        if not n:
            results.append(ProbeResult(probe="robustness", name=label, estimate=None, low=None, high=None, null=null,
                                       p=None, mde=None, n=0, clusters=0, note="the rewrite changed no pair",
                                       **common))
            continue
        b = sum(x and not y for x, y in zip(before, after, strict=True))  # right before, wrong after
        c = sum(y and not x for x, y in zip(before, after, strict=True))
        drop = (b - c) / n
        if b + c == 0:
            upper = wilson_ci(0, m, level)[1]
            low, high, method, p_boot = -upper, upper, "wilson bound on the discordant share", 1.0
        else:
            ci = paired_bootstrap_diff([float(x) for x in before], [float(y) for y in after], clusters=clusters,
                                       n_resamples=n_resamples, level=level, seed=seed)
            low, high, method, p_boot = ci.low, ci.high, ci.method, ci.p_value
        p = mcnemar(b, c).p_exact if m == n else p_boot
        results.append(ProbeResult(
            probe="robustness", name=label, estimate=drop, low=low, high=high, null=null, p=p,
            mde=mde_drop(m, (b + c) / n, alpha=alpha, power=power), n=n, clusters=m, unit="accuracy",
            min_effect=min_drop, ci_method=method,
            details={"accuracy_before": sum(before) / n, "accuracy_after": sum(after) / n, "b": b, "c": c,
                     "rewrite": name, "family": get_rewrite(name).family}, **common))
        flips = []
        flip_clusters = []
        for i in applied:
            s0 = _sign(orig[ex.pairs[i][0]], orig[ex.pairs[i][1]])
            s1 = _sign(new[ex.pairs[i][0]], new[ex.pairs[i][1]])
            if s0 is not None and s1 is not None:
                flips.append(s0 != s1)
                flip_clusters.append(ex.clusters[i])
        results.append(rate_result(
            "robustness", f"rank flips: {name}", flips, clusters=flip_clusters, tolerance=tolerance,
            min_effect=min_flips, what="flip rate", unit="share of pairs", n_resamples=n_resamples, seed=seed,
            details={"rewrite": name}, **common))
    return results
