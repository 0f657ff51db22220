"""What every audit probe returns: one `ProbeResult` per measured effect.

A probe rewrites samples, scores them again through the Runtime (one batch per probe) and
measures how the reward moved. Each result carries the estimate with a confidence interval that
respects the clustering of the data (responses to one prompt are not independent), a p-value
against an explicitly named null, the q-value after one Benjamini-Hochberg correction across the
tests of a run (`adjust`), and the minimum detectable effect (MDE) at the sample size used, so
that "no effect found" is told apart from "this audit could not have found one":

- ``effect``: the null is rejected at ``q < alpha`` (``p`` when no correction was applied);
- ``no effect``: not rejected, and an effect of the size that matters (`min_effect`) was
  detectable: ``MDE <= min_effect``;
- ``underpowered``: not rejected, but the audit could not have found an effect of size
  `min_effect` (MDE above it, or unknown): more data is needed before calling the reward clean;
- ``baseline``: a reference figure (e.g. the accuracy of "pick the longest"), not a test of the
  reward; never corrected, never a finding;
- ``not computed``: nothing could be measured (no usable items); `note` says why.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from rewardlab.core.types import Sample, Score

__all__ = ["ProbeResult", "Scorer", "Verdict", "adjust", "bootstrap_p", "mde_rate", "mean_result", "rate_result",
           "scorer", "stat_result"]

Scorer = Callable[[list[Sample]], Sequence[Score]]
"""Scores a batch of samples, one `Score` per sample in order (see `scorer`)."""


def scorer(spec: Any, runtime: Any = None) -> Scorer:
    """A `Scorer` over the Python API: each call is one `rewardlab.score` batch of `spec` on
    `runtime` (the current Runtime when None)."""
    from rewardlab.api import build, score

    built = build(spec)

    def run(batch: list[Sample]) -> list[Score]:
        return score(batch, built, runtime=runtime) if batch else []

    return run


class Verdict(StrEnum):
    """What a result says about the reward (see the module docstring)."""

    effect = "effect"
    no_effect = "no effect"
    underpowered = "underpowered"
    baseline = "baseline"
    not_computed = "not computed"


@dataclass(frozen=True)
class ProbeResult:
    """One measured effect of a probe.

    `probe`: the probe family (``length``, ``robustness``, ``gameability``, ``position``,
    ``determinism``); `name`: the effect within it (e.g. ``accuracy drop: casing``);
    `estimate` in `unit`, with its `level` confidence interval [`low`, `high`] made by `ci_method`;
    `null`: the hypothesis `p` is computed against, in words; `q`: the Benjamini-Hochberg
    q-value across the run's tests (None until `adjust`); `mde`: the smallest effect (same unit,
    absolute) this audit would detect with probability `power` at level `alpha`, given `n`
    items in `clusters` independent clusters; `min_effect`: the smallest effect that matters,
    against which `mde` is judged; `baseline`: a reference figure, not a test of the reward;
    `details`: counts and per-item evidence a report may show; `note`: why something is missing.
    A baseline has no null, p or MDE.
    """

    probe: str
    name: str
    estimate: float | None
    low: float | None
    high: float | None
    null: str
    p: float | None
    mde: float | None
    n: int
    clusters: int
    unit: str = ""
    min_effect: float | None = None
    ci_method: str = ""
    level: float = 0.95
    alpha: float = 0.05
    power: float = 0.8
    q: float | None = None
    baseline: bool = False
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for what in ("estimate", "low", "high", "p", "q", "mde"):
            v = getattr(self, what)
            if v is not None and not math.isfinite(v):
                object.__setattr__(self, what, None)  # NaN / inf: not measured
        if self.p is not None and not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p-value {self.p!r} outside [0, 1]")

    @property
    def tested(self) -> bool:
        """A test of the reward (enters the Benjamini-Hochberg correction)."""
        return not self.baseline and self.p is not None and self.estimate is not None

    @property
    def verdict(self) -> Verdict:
        """``effect`` / ``no effect`` / ``underpowered`` / ``baseline`` / ``not computed``."""
        if self.estimate is None:
            return Verdict.not_computed
        if self.baseline:
            return Verdict.baseline
        if self.p is None:
            return Verdict.not_computed
        evidence = self.q if self.q is not None else self.p
        if evidence < self.alpha:
            return Verdict.effect
        if self.mde is not None and self.min_effect is not None and self.mde <= self.min_effect:
            return Verdict.no_effect
        return Verdict.underpowered

    def row(self) -> dict[str, Any]:
        """The result as one flat JSON-ready row (the CLI's and the report's table)."""
        return {
            "probe": self.probe, "name": self.name, "estimate": self.estimate,
            "ci_low": self.low, "ci_high": self.high, "level": self.level, "ci_method": self.ci_method,
            "unit": self.unit, "null": self.null, "p": self.p, "q": self.q, "mde": self.mde,
            "min_effect": self.min_effect, "n": self.n, "clusters": self.clusters,
            "verdict": self.verdict.value, "note": self.note, "details": self.details,
        }


def adjust(results: Sequence[ProbeResult]) -> list[ProbeResult]:
    """The results with `q` filled by one Benjamini-Hochberg correction over every test among
    them (baselines and results without a p-value keep ``q=None``), in the same order."""
    from rewardlab.audit.stats import benjamini_hochberg

    tested = [i for i, r in enumerate(results) if r.tested]
    qs = benjamini_hochberg([results[i].p for i in tested]) if tested else []
    out = list(results)
    for i, q in zip(tested, qs, strict=True):
        out[i] = replace(out[i], q=float(q))
    return out


# -- statistics shared by the probes (built on rewardlab.audit.stats) -------------------------------
def bootstrap_p(values: np.ndarray, null: float = 0.0, *, alternative: str = "two-sided") -> float:
    """The bootstrap p-value of an estimate against ``null`` from its resampled values:
    two-sided 2·min(P*(θ* ≤ null), P*(θ* ≥ null)), or one-sided P*(θ* ≤ null) for
    ``alternative="greater"`` (and P*(θ* ≥ null) for ``"less"``), capped at 1."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return math.nan
    below, above = float(np.mean(v <= null)), float(np.mean(v >= null))
    if alternative == "greater":
        return min(1.0, below)
    if alternative == "less":
        return min(1.0, above)
    return min(1.0, 2 * min(below, above))


def _rate_critical(n: int, p0: float, alpha: float) -> int:
    """The smallest count k with P(Binomial(n, p0) >= k) <= alpha (n + 1 when none)."""
    from scipy.stats import binom

    if p0 <= 0:
        return 1
    for k in range(n + 1):
        if binom.sf(k - 1, n, p0) <= alpha:
            return k
    return n + 1


def mde_rate(n: int, p0: float = 0.0, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest rate above `p0` that the exact one-sided binomial test of n independent items
    detects with probability `power` (exact, not a normal approximation): for ``p0 = 0``, where one
    positive rejects, it is ``1 − (1 − power)^(1/n)`` (about 1.6/n at 80% power).
    inf when n items cannot reject at all."""
    from scipy.optimize import brentq
    from scipy.stats import binom

    if n <= 0:
        return math.inf
    k = _rate_critical(n, p0, alpha)
    if k > n:
        return math.inf
    if k == 1:
        return 1 - (1 - power) ** (1 / n)
    return float(brentq(lambda r: binom.sf(k - 1, n, r) - power, p0, 1.0))


def _clustered(clusters: Sequence[Any] | None, n: int) -> tuple[list[Any], int]:
    labels = list(range(n)) if clusters is None else list(clusters)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} cluster labels for {n} items")
    return labels, len(set(labels))


def rate_result(probe: str, name: str, hits: Sequence[bool], *, clusters: Sequence[Any] | None = None,
                tolerance: float = 0.0, min_effect: float = 0.05, unit: str = "rate", what: str = "rate",
                level: float = 0.95, alpha: float = 0.05, power: float = 0.8, n_resamples: int = 4000,
                seed: int = 0, baseline: bool = False, details: dict[str, Any] | None = None) -> ProbeResult:
    """A rate that a trustworthy reward keeps at `tolerance` (default 0: a false positive, a rank
    flip, a changed score): the share of `hits`, against the null "rate <= tolerance".

    p: the exact one-sided binomial test over the independent clusters (a cluster counts as one
    hit when any of its items is one, so the test never treats correlated items as independent;
    the null rate of a cluster of s items is taken as s·tolerance, an upper bound);
    CI: Wilson over items when each item is its own cluster, else a cluster bootstrap (percentile),
    widened to the Wilson interval over the clusters when every resample is equal (0% or 100%);
    MDE: `mde_rate` over the clusters."""
    from scipy.stats import binom

    from rewardlab.audit.stats import bootstrap_distribution, wilson_ci

    flags = [bool(h) for h in hits]
    n = len(flags)
    base = dict(probe=probe, name=name, null=f"{what} <= {tolerance:g}", unit=unit, min_effect=min_effect,
                level=level, alpha=alpha, power=power, baseline=baseline, details=dict(details or {}))
    if n == 0:
        return ProbeResult(estimate=None, low=None, high=None, p=None, mde=None, n=0, clusters=0,
                           note="no items", **base)  # type: ignore[arg-type]
    labels, m = _clustered(clusters, n)
    k = sum(flags)
    estimate = k / n
    if m == n:
        low, high = wilson_ci(k, n, level)
        method = "wilson"
        cluster_hits = k
    else:
        any_hit: dict[Any, bool] = {}
        for lab, f in zip(labels, flags, strict=True):
            any_hit[lab] = any_hit.get(lab, False) or f
        cluster_hits = sum(any_hit.values())
        if 0 < k < n:
            _, values = bootstrap_distribution("mean", np.asarray(flags, dtype=float), clusters=labels,
                                               n_resamples=n_resamples, seed=seed)
            low, high = (float(x) for x in np.quantile(values, [(1 - level) / 2, (1 + level) / 2]))
            method = "cluster bootstrap percentile"
        else:  # 0% or 100%: every resample is equal; the interval over the clusters says how sure
            low, high = wilson_ci(0 if k == 0 else m, m, level)
            method = "wilson over clusters"
    # a cluster of s items, each a hit with probability <= tolerance, has one with probability <= s·tolerance
    size = max(Counter(labels).values())
    p0 = min(1.0, size * tolerance)
    p = (0.0 if cluster_hits else 1.0) if p0 <= 0 else float(binom.sf(cluster_hits - 1, m, p0))
    base["details"].update(hits=k, cluster_hits=cluster_hits)
    if baseline:  # a reference figure: no test, no null
        base["null"] = "-"
        return ProbeResult(estimate=estimate, low=low, high=high, p=None, mde=None, n=n, clusters=m, ci_method=method,
                           **base)  # type: ignore[arg-type]
    return ProbeResult(estimate=estimate, low=low, high=high, p=p, mde=mde_rate(m, p0, alpha=alpha, power=power),
                       n=n, clusters=m, ci_method=method, **base)  # type: ignore[arg-type]


def stat_result(probe: str, name: str, stat: Callable[[Any, np.ndarray], np.ndarray], data: Any, n: int, *,
                clusters: Sequence[Any] | None = None, null: float = 0.0, null_text: str = "statistic = 0",
                alternative: str = "two-sided", min_effect: float | None = None, unit: str = "",
                level: float = 0.95, alpha: float = 0.05, power: float = 0.8, n_resamples: int = 4000,
                seed: int = 0, baseline: bool = False, details: dict[str, Any] | None = None) -> ProbeResult:
    """A statistic of n items written over resample weights (``stat(data, w)``, see
    `rewardlab.audit.stats`) against ``statistic = null``: a cluster bootstrap CI (BCa, percentile
    when it degenerates), the bootstrap p-value (`bootstrap_p`), and the MDE
    (z_{1−α/2} + z_power)·SE with SE the bootstrap standard error over the clusters (None when every
    resample is equal: nothing can be said about what the audit could detect)."""
    from scipy.special import ndtri

    from rewardlab.audit.stats import bootstrap_ci, bootstrap_distribution

    base = dict(probe=probe, name=name, null=null_text, unit=unit, min_effect=min_effect, level=level,
                alpha=alpha, power=power, baseline=baseline, details=dict(details or {}))
    if n == 0:
        return ProbeResult(estimate=None, low=None, high=None, p=None, mde=None, n=0, clusters=0,
                           note="no items", **base)  # type: ignore[arg-type]
    labels, m = _clustered(clusters, n)
    estimate, boot = bootstrap_distribution(stat, data, clusters=labels, n_resamples=n_resamples, seed=seed)
    ci = bootstrap_ci(stat, data, clusters=labels, n_resamples=n_resamples, level=level, seed=seed)
    finite = boot[np.isfinite(boot)]
    se = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    two = alternative == "two-sided"
    z = float(ndtri(1 - alpha / 2) if two else ndtri(1 - alpha)) + float(ndtri(power))
    if se > 0:
        p = bootstrap_p(boot, null, alternative=alternative)
        mde: float | None = z * se
    else:  # every resample equal: the estimate is exact for these items
        p = 1.0 if estimate == null or (alternative == "greater" and estimate < null) \
            or (alternative == "less" and estimate > null) else 0.0
        mde = None
    if baseline:  # a reference figure: no test, no null
        base["null"] = "-"
        p, mde = None, None
    return ProbeResult(estimate=estimate, low=ci.low, high=ci.high, p=p, mde=mde, n=n, clusters=m,
                       ci_method=ci.method, note=ci.note, **base)  # type: ignore[arg-type]


def mean_result(probe: str, name: str, values: Sequence[float], *, clusters: Sequence[Any] | None = None,
                null: float = 0.0, null_text: str = "mean = 0", alternative: str = "two-sided",
                min_effect: float | None = None, unit: str = "", level: float = 0.95, alpha: float = 0.05,
                power: float = 0.8, n_resamples: int = 4000, seed: int = 0, baseline: bool = False,
                details: dict[str, Any] | None = None) -> ProbeResult:
    """The mean of per-item `values` (e.g. score differences) against ``mean = null``, as
    `stat_result` computes it."""
    from rewardlab.audit.stats import weighted_mean

    x = np.asarray([float(v) for v in values], dtype=float)
    return stat_result(probe, name, weighted_mean, x, len(x), clusters=clusters, null=null, null_text=null_text,
                       alternative=alternative, min_effect=min_effect, unit=unit, level=level, alpha=alpha,
                       power=power, n_resamples=n_resamples, seed=seed, baseline=baseline, details=details)
