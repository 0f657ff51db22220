"""Statistics for auditing rewards: confidence intervals, paired tests, agreement, multiple testing
and minimum detectable effects. NumPy and SciPy only.

- `wilson_ci`: the Wilson score interval of one proportion (an accuracy); defined at 0% and 100%.
- `bootstrap_ci`: a vectorised bootstrap of any statistic written over resample weights, with
  resampling by cluster (e.g. every pair of one prompt, or every judgement of one item, moves
  together) and within strata (e.g. subsets, whose weights are fixed by a benchmark's formula).
  BCa by default; when BCa degenerates (every resample equal, an infinite bias correction, a
  jackknife with no spread) it falls back to the percentile interval and says so in `CI.method`.
- `mcnemar`: two rewards on the same items, exact binomial and mid-p McNemar tests.
- `paired_bootstrap_diff`: the bootstrap CI and p-value of the difference of a statistic between
  two rewards scored on the same items (items resampled jointly).
- `agreement`: Pearson, Spearman, Kendall tau-b, decision agreement and Cohen's kappa.
- `benjamini_hochberg`: q-values for a family of p-values.
- `mde_proportion`, `mde_paired_proportions`, `mde_mean_diff`: the smallest effect an audit of n
  items could detect (normal approximation; formulas in each docstring).

How a statistic is written (`Stat`): ``stat(data, w)`` gets the data as given (an array whose
first axis is the items, or a tuple of such arrays) and `w`, a float array of shape (B, n)
holding how many times each item is drawn in each of B resamples; it returns B values. It is
called with ``w = ones((1, n))`` for the estimate. `weighted_mean` is the statistic of an
accuracy; ``stat="mean"`` names it. Writing statistics over weights lets one matrix product
evaluate thousands of resamples, including clustered ones whose resampled sizes vary.

Sources: SciPy's ``scipy.stats.bootstrap`` (the BCa formulas: Efron & Tibshirani 1993, §14.3);
McNemar's mid-p from Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91;
Benjamini & Hochberg (1995).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as _st
from scipy.special import ndtr, ndtri

__all__ = [
    "CI",
    "McNemar",
    "Stat",
    "WStat",
    "agreement",
    "benjamini_hochberg",
    "bootstrap_ci",
    "bootstrap_distribution",
    "bootstrap_many",
    "cohen_kappa",
    "mcnemar",
    "mde_mean_diff",
    "mde_paired_proportions",
    "mde_proportion",
    "paired_bootstrap_diff",
    "resample_weights",
    "spearman_ci",
    "weighted_kappa_stat",
    "weighted_mean",
    "wilson_ci",
]

Stat = Callable[[Any, np.ndarray], np.ndarray]
Method = Literal["bca", "percentile", "basic"]

_CHUNK_CELLS = 4_000_000  # resample-weight cells per block (B_block x n): bounds memory at ~32 MB
_MAX_JACKKNIFE = 5_000  # above this many units, BCa's jackknife deletes groups of units


@dataclass(frozen=True)
class CI:
    """A point estimate with a confidence interval [`low`, `high`] at `level`.

    `method`: how the interval was computed, the one actually used ("wilson", "bca",
    "percentile", "basic"; "percentile" when BCa degenerated, with the reason in `note`).
    `p_value`: for a difference, the bootstrap two-sided p-value against "no difference"
    (None otherwise). `n_resamples`: 0 for a closed-form interval."""

    estimate: float
    low: float
    high: float
    method: str
    level: float = 0.95
    n_resamples: int = 0
    p_value: float | None = None
    note: str = ""

    def as_list(self) -> list[float]:
        """``[low, high]``."""
        return [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        out: dict[str, Any] = {"estimate": _num(self.estimate), "ci": [_num(self.low), _num(self.high)],
                               "method": self.method, "level": self.level, "n_resamples": self.n_resamples}
        if self.p_value is not None:
            out["p_value"] = _num(self.p_value)
        if self.note:
            out["note"] = self.note
        return out


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# -- one proportion -------------------------------------------------------------------------------

def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the proportion k/n (e.g. an accuracy), as (low, high) in [0, 1].

    >>> tuple(round(x, 3) for x in wilson_ci(70, 100))
    (0.604, 0.781)
    """
    if n <= 0:
        raise ValueError("a proportion of no items has no interval")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, n], got k={k}, n={n}")
    ci = _st.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


# -- bootstrap ------------------------------------------------------------------------------------

def weighted_mean(data: Any, w: np.ndarray) -> np.ndarray:
    """The mean of `data` (items on axis 0) under resample weights `w` (B, n): B values (the products
    in the weights' precision; the weights' sums, whole counts, are exact in it)."""
    x = np.asarray(data, dtype=w.dtype)
    return (w @ x) / w.sum(axis=1).astype(float)


def _stat(stat: Stat | str) -> Stat:
    if callable(stat):
        return stat
    if stat == "mean":
        return weighted_mean
    raise ValueError(f"unknown statistic {stat!r} (give a callable or 'mean')")


def _n_items(data: Any) -> int:
    arrays = data if isinstance(data, tuple) else (data,)
    sizes = {len(a) for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"the arrays of data must have the same number of items, got {sorted(sizes)}")
    return sizes.pop()


@dataclass(frozen=True)
class _Units:
    """The resampling units (items, or clusters of items) and their strata."""

    of_item: np.ndarray  # unit index of each item
    strata: list[np.ndarray]  # the unit indices of each stratum
    count: int

    @property
    def identity(self) -> bool:
        """Each item is its own unit, in order."""
        return self.count == len(self.of_item) and bool(np.all(self.of_item == np.arange(self.count)))


def _units(n: int, clusters: Sequence[Any] | None, strata: Sequence[Any] | None) -> _Units:
    if clusters is not None and len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster labels for {n} items")
    if strata is not None and len(strata) != n:
        raise ValueError(f"{len(strata)} stratum labels for {n} items")
    if clusters is None:
        of_item = np.arange(n)
    else:
        _, of_item = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    count = int(of_item.max()) + 1 if n else 0
    if strata is None:
        return _Units(of_item, [np.arange(count)], count)
    _, s_item = np.unique(np.asarray(strata, dtype=object).astype(str), return_inverse=True)
    s_unit = np.full(count, -1)
    for u, s in zip(of_item, s_item, strict=True):
        if s_unit[u] not in (-1, s):
            raise ValueError("a cluster spans two strata: clusters must be nested in strata")
        s_unit[u] = s
    return _Units(of_item, [np.flatnonzero(s_unit == s) for s in range(int(s_item.max()) + 1)], count)


def resample_weights(units: _Units, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, n) item weights: how many times each item is drawn, units drawn with replacement
    within each stratum (each stratum keeps its number of units). float32 (counts are exact in it,
    and it halves the memory a matrix product reads): a statistic should multiply them with data of
    the same dtype (`weighted_mean` does)."""
    rows = np.arange(size)[:, None]

    def draw(m: int) -> np.ndarray:
        draws = rng.integers(0, m, size=(size, m)) + rows * m
        return np.bincount(draws.ravel(), minlength=size * m).reshape(size, m)

    if len(units.strata) == 1:  # no strata: the units are 0..count-1 in order
        counts = draw(units.count).astype(np.float32)
    else:
        counts = np.zeros((size, units.count), dtype=np.float32)
        for members in units.strata:
            counts[:, members] = draw(len(members))
    if units.identity:
        return counts
    return counts[:, units.of_item]


WStat = Callable[[np.ndarray], np.ndarray]
"""A statistic of resample weights alone (its data bound in): (B, n) weights -> B values."""


def _blocks(units: _Units, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The resample weights, block by block (the same `seed` gives the same blocks)."""
    n = len(units.of_item)
    rng = np.random.default_rng(seed)
    block = max(1, _CHUNK_CELLS // max(n, units.count))
    for start in range(0, n_resamples, block):
        yield resample_weights(units, min(block, n_resamples - start), rng)


def _jackknife_blocks(units: _Units, seed: int) -> Iterator[np.ndarray]:
    """Leave-one-unit-out weights (leave-one-group-out above `_MAX_JACKKNIFE` units, the units split
    at random into that many groups), block by block."""
    n = len(units.of_item)
    group = np.arange(units.count)
    if units.count > _MAX_JACKKNIFE:
        group = np.random.default_rng(seed + 1).permutation(units.count) % _MAX_JACKKNIFE
    n_groups = int(group.max()) + 1
    of_item = group[units.of_item]
    block = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_groups, block):
        gs = np.arange(start, min(start + block, n_groups))
        yield (of_item[None, :] != gs[:, None]).astype(np.float32)


def _distributions(stats: Mapping[str, WStat], units: _Units, n_resamples: int,
                   seed: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    ones = np.ones((1, len(units.of_item)))
    estimates = {k: float(np.asarray(f(ones), dtype=float)[0]) for k, f in stats.items()}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in stats}
    for w in _blocks(units, n_resamples, seed):
        for k, f in stats.items():
            parts[k].append(np.asarray(f(w), dtype=float))
    return estimates, {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}


def bootstrap_distribution(stat: Stat | str, data: Any, *, clusters: Sequence[Any] | None = None,
                           strata: Sequence[Any] | None = None, n_resamples: int = 10_000,
                           seed: int = 0) -> tuple[float, np.ndarray]:
    """The estimate and the `n_resamples` bootstrap values of `stat` (see `bootstrap_ci`)."""
    fn = _stat(stat)
    n = _n_items(data)
    if n == 0:
        raise ValueError("no items to resample")
    est, values = _distributions({"s": lambda w: fn(data, w)}, _units(n, clusters, strata), n_resamples, seed)
    return est["s"], values["s"]


def _bca(estimate: float, values: np.ndarray, jack: Callable[[], np.ndarray],
         level: float) -> tuple[float, float] | str:
    """BCa bounds, or the reason BCa degenerates here. `jack` gives the jackknife values."""
    if np.ptp(values) == 0:
        return "every resample gave the same value"
    # share of resamples below the estimate, ties counted half (as scipy.stats.bootstrap does)
    below = float(np.mean(values < estimate) + np.mean(values <= estimate)) / 2
    if below in (0.0, 1.0):
        return "the estimate lies outside the resampled values (infinite bias correction)"
    z0 = ndtri(below)
    j = jack()
    j = j[np.isfinite(j)]
    if len(j) < 2:
        return "too few jackknife values"
    d = j.mean() - j
    denom = 6.0 * float(np.sum(d**2)) ** 1.5
    if denom == 0 or not np.isfinite(denom):
        return "the jackknife values have no spread (no acceleration)"
    a = float(np.sum(d**3)) / denom
    alpha = (1 - level) / 2
    bounds = []
    for z in (ndtri(alpha), ndtri(1 - alpha)):
        q = float(ndtr(z0 + (z0 + z) / (1 - a * (z0 + z))))
        if not np.isfinite(q):
            return "the adjusted percentile is not finite"
        bounds.append(float(np.quantile(values, q)))
    return bounds[0], bounds[1]


def _interval(estimate: float, values: np.ndarray, jack: Callable[[], np.ndarray], level: float,
              method: Method) -> tuple[float, float, str, str]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise ValueError("the statistic is not finite on any resample")
    alpha = (1 - level) / 2
    note = ""
    if method == "bca":
        got = _bca(estimate, values, jack, level)
        if not isinstance(got, str):
            return got[0], got[1], "bca", ""
        note = f"BCa degenerate ({got}): percentile interval"
        method = "percentile"
    lo, hi = (float(q) for q in np.quantile(values, [alpha, 1 - alpha]))
    if method == "basic":
        return 2 * estimate - hi, 2 * estimate - lo, "basic", note
    if method != "percentile":
        raise ValueError(f"unknown method {method!r} (bca, percentile or basic)")
    return lo, hi, "percentile", note


def _p_value(values: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference": 2·min(P*(Δ ≤ 0), P*(Δ ≥ 0)), capped at 1, each
    share counted as (1 + count)/(B + 1) so that B resamples never give p = 0."""
    finite = values[np.isfinite(values)]
    b = len(finite)
    return min(1.0, 2 * min((1 + int(np.sum(finite <= 0))) / (b + 1), (1 + int(np.sum(finite >= 0))) / (b + 1)))


def bootstrap_many(stats: Mapping[str, WStat], n_items: int, *, clusters: Sequence[Any] | None = None,
                   strata: Sequence[Any] | None = None, n_resamples: int = 10_000, level: float = 0.95,
                   method: Method = "bca", seed: int = 0, differences: Collection[str] = ()) -> dict[str, CI]:
    """Bootstrap CIs of several statistics of the same `n_items` items from one set of resamples (and
    one jackknife): each resample's weights are drawn once and every statistic is evaluated on them.
    Each statistic is a `WStat` (weights -> values, its data bound in). The statistics named in
    `differences` are differences against 0 and get a `p_value`. Resampling and methods as in
    `bootstrap_ci`; each interval equals what `bootstrap_ci` gives for that statistic alone with
    the same seed.
    """
    if n_items <= 0:
        raise ValueError("no items to resample")
    if not stats:
        return {}
    units = _units(n_items, clusters, strata)
    estimates, values = _distributions(stats, units, n_resamples, seed)
    jack_cache: dict[str, np.ndarray] = {}

    def jack_of(name: str) -> Callable[[], np.ndarray]:
        def get() -> np.ndarray:
            if not jack_cache:  # one jackknife pass for every statistic, on first need
                parts: dict[str, list[np.ndarray]] = {k: [] for k in stats}
                for w in _jackknife_blocks(units, seed):
                    for k, f in stats.items():
                        parts[k].append(np.asarray(f(w), dtype=float))
                jack_cache.update({k: np.concatenate(v) for k, v in parts.items()})
            return jack_cache[name]
        return get

    out: dict[str, CI] = {}
    for name in stats:
        lo, hi, used, note = _interval(estimates[name], values[name], jack_of(name), level, method)
        p = _p_value(values[name]) if name in differences else None
        out[name] = CI(estimates[name], lo, hi, used, level, n_resamples, p, note)
    return out


def bootstrap_ci(stat: Stat | str, data: Any, *, clusters: Sequence[Any] | None = None,
                 strata: Sequence[Any] | None = None, n_resamples: int = 10_000, level: float = 0.95,
                 method: Method = "bca", seed: int = 0) -> CI:
    """Bootstrap CI of ``stat(data, w)`` (see the module docstring for how `stat` is written).

    `clusters`: a label per item; items with the same label are resampled together (e.g. the
    prompt, when a prompt has several pairs). `strata`: a label per item; each stratum is
    resampled on its own and keeps its size (clusters must be nested in strata). `method`:
    "bca" (falls back to "percentile" when degenerate; `CI.method` and `CI.note` say so),
    "percentile" or "basic". The same `seed` gives the same interval.

    >>> x = [1] * 70 + [0] * 30
    >>> ci = bootstrap_ci("mean", x, n_resamples=2000)
    >>> ci.method, round(ci.estimate, 2), 0.58 < ci.low < 0.62, 0.77 < ci.high < 0.80
    ('bca', 0.7, True, True)
    """
    fn = _stat(stat)
    return bootstrap_many({"s": lambda w: fn(data, w)}, _n_items(data), clusters=clusters, strata=strata,
                          n_resamples=n_resamples, level=level, method=method, seed=seed)["s"]


def paired_bootstrap_diff(a: Any, b: Any, *, stat: Stat | str = "mean", clusters: Sequence[Any] | None = None,
                          strata: Sequence[Any] | None = None, n_resamples: int = 10_000,
                          level: float = 0.95, method: Method = "bca", seed: int = 0,
                          stat_b: Stat | str | None = None) -> CI:
    """CI of ``stat(a) - stat(b)`` for two rewards on the same items (e.g. per-item correctness
    of reward A and of reward B): every resample draws the same items for both. `p_value` is
    the two-sided bootstrap p-value against no difference, 2·min(P*(Δ ≤ 0), P*(Δ ≥ 0)) capped at 1,
    each share counted as (1 + count)/(B + 1) so that B resamples never give p = 0.
    `stat_b`: the statistic for B when it is not `stat` (e.g. a score whose terms depend on each
    reward's own raw scores).

    >>> ci = paired_bootstrap_diff([1, 1, 1, 0] * 25, [1, 0, 1, 0] * 25, n_resamples=2000)
    >>> round(ci.estimate, 2), ci.low > 0, ci.p_value < 0.01
    (0.25, True, True)
    """
    fn = _stat(stat)
    fn_b = fn if stat_b is None else _stat(stat_b)
    if _n_items(a) != _n_items(b):
        raise ValueError(f"{_n_items(a)} items for A but {_n_items(b)} for B: a paired comparison needs the same items")

    def diff(w: np.ndarray) -> np.ndarray:
        return np.asarray(fn(a, w), dtype=float) - np.asarray(fn_b(b, w), dtype=float)

    return bootstrap_many({"d": diff}, _n_items(a), clusters=clusters, strata=strata, n_resamples=n_resamples,
                          level=level, method=method, seed=seed, differences={"d"})["d"]


# -- paired tests ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two rewards on the same items. `b`: items A got right and B wrong;
    `c`: items A got wrong and B right. `p_exact`: two-sided exact binomial p-value; `p_midp`:
    the mid-p version (less conservative, close to nominal size); `p_chi2_cc`: the chi-square
    test with continuity correction. All are 1 when there are no discordant items."""

    p_exact: float
    p_midp: float
    b: int
    c: int
    p_chi2_cc: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"b": self.b, "c": self.c, "p_exact": self.p_exact, "p_midp": self.p_midp,
                "p_chi2_cc": self.p_chi2_cc}


def mcnemar(b: int, c: int) -> McNemar:
    """McNemar's test from the discordant counts.

    exact = min(1, 2·P(X ≤ k)), mid-p = 2·P(X ≤ k) − P(X = k), with X ~ Binomial(b + c, 1/2)
    and k = min(b, c); chi²-cc = P(χ²₁ ≥ (|b − c| − 1)² / (b + c)).

    >>> m = mcnemar(39, 26)
    >>> round(m.p_exact, 4), round(m.p_midp, 4), round(m.p_chi2_cc, 4)
    (0.136, 0.1089, 0.1366)
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts cannot be negative")
    n = b + c
    if n == 0:
        return McNemar(1.0, 1.0, b, c, 1.0)
    k = min(b, c)
    cdf = float(_st.binom.cdf(k, n, 0.5))
    pmf = float(_st.binom.pmf(k, n, 0.5))
    chi2 = (abs(b - c) - 1) ** 2 / n if abs(b - c) >= 1 else 0.0
    return McNemar(min(1.0, 2 * cdf), min(1.0, 2 * cdf - pmf), int(b), int(c), float(_st.chi2.sf(chi2, 1)))


# -- agreement ------------------------------------------------------------------------------------

def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two labellings of the same items: (p_o − p_e) / (1 − p_e), with p_o the
    observed agreement and p_e = Σ_c p_A(c)·p_B(c). 1 = perfect, 0 = chance; NaN when both
    labellings are one and the same constant (p_e = 1).

    >>> cohen_kappa([1, 1, 0, 0, 1, 0, 1, 1], [1, 0, 0, 0, 1, 0, 1, 1])
    0.75
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} labels against {len(b)}")
    if not len(a):
        return math.nan
    labels = sorted(set(a) | set(b), key=repr)
    ia = np.array([labels.index(x) for x in a])
    ib = np.array([labels.index(x) for x in b])
    po = float(np.mean(ia == ib))
    pe = float(np.sum(np.bincount(ia, minlength=len(labels)) * np.bincount(ib, minlength=len(labels)))) / len(a) ** 2
    return math.nan if pe == 1 else (po - pe) / (1 - pe)


def agreement(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """How two rewards agree on the same items, from their values (e.g. each pair's margin,
    chosen minus rejected score).

    `pearson`, `spearman`, `kendall_tau_b` (correlations in [-1, 1]) of the values;
    `pairwise_agreement`: the share of items both place on the same side of 0 (for margins: both
    prefer the same response, or both tie); `cohen_kappa`: that agreement corrected for chance,
    over the labels sign(value) ∈ {-1, 0, 1}; `n`. A correlation of a constant is NaN.

    >>> round(agreement([1, 2, 2, 3], [1, 3, 2, 2])["kendall_tau_b"], 4)
    0.4
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError("agreement needs two 1-d sequences of the same length")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    out: dict[str, float] = {"n": float(len(xa))}
    varied = len(xa) > 1 and np.ptp(xa) > 0 and np.ptp(ya) > 0
    out["pearson"] = float(_st.pearsonr(xa, ya)[0]) if varied else math.nan
    out["spearman"] = float(_st.spearmanr(xa, ya)[0]) if varied else math.nan
    out["kendall_tau_b"] = float(_st.kendalltau(xa, ya)[0]) if varied else math.nan
    sx, sy = np.sign(xa), np.sign(ya)
    out["pairwise_agreement"] = float(np.mean(sx == sy)) if len(xa) else math.nan
    out["cohen_kappa"] = cohen_kappa(sx.tolist(), sy.tolist())
    return out


def spearman_ci(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a Spearman correlation `rho` over n items, through Fisher's z with the
    variance 1.06/(n − 3) of Fieller, Hartley & Pearson (1957): tanh(atanh(rho) ± z·sqrt(1.06/(n − 3))).
    (NaN, NaN) for n ≤ 3 or a NaN rho.

    >>> tuple(round(x, 3) for x in spearman_ci(0.5, 100))
    (0.331, 0.638)
    """
    if n <= 3 or not math.isfinite(rho):
        return math.nan, math.nan
    z = math.atanh(max(-0.999999, min(0.999999, rho)))
    half = float(ndtri(1 - (1 - level) / 2)) * math.sqrt(1.06 / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


def weighted_kappa_stat(a: Sequence[Any], b: Sequence[Any]) -> Stat:
    """Cohen's kappa of two labellings as a statistic over resample weights (for `bootstrap_ci`;
    its data argument is ignored, pass the item indices)."""
    labels = sorted(set(a) | set(b), key=repr)
    ia = np.array([labels.index(x) for x in a])
    ib = np.array([labels.index(x) for x in b])
    agree = (ia == ib).astype(float)
    one_a = np.stack([(ia == c).astype(float) for c in range(len(labels))], axis=1)
    one_b = np.stack([(ib == c).astype(float) for c in range(len(labels))], axis=1)

    def stat(_: Any, w: np.ndarray) -> np.ndarray:
        total = w.sum(axis=1).astype(float)
        po = (w @ agree.astype(w.dtype)) / total
        pe = np.sum((w @ one_a.astype(w.dtype)).astype(float) * (w @ one_b.astype(w.dtype)), axis=1) / total**2
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pe < 1, (po - pe) / (1 - pe), np.nan)

    return stat


# -- multiple testing -----------------------------------------------------------------------------

def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg q-values (false-discovery-rate adjusted p-values), in input order:
    q_(i) = min_{j ≥ i} p_(j)·m/j over the sorted p-values, capped at 1. NaN p-values stay NaN
    and do not count in m.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.2])
    [0.04, 0.05333333333333334, 0.05333333333333334, 0.2]
    """
    p = np.asarray(pvalues, dtype=float)
    q = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return q.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q.tolist()


# -- minimum detectable effects -------------------------------------------------------------------

def _z(alpha: float, power: float, two_sided: bool) -> float:
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power must be in (0, 1)")
    return float(ndtri(1 - alpha / 2) if two_sided else ndtri(1 - alpha)) + float(ndtri(power))


def mde_proportion(n: int, p0: float = 0.5, *, alpha: float = 0.05, power: float = 0.8,
                   two_sided: bool = True, design_effect: float = 1.0) -> float:
    """Smallest |p − p0| a test of one proportion over n items detects with the given power:
    (z_{1−α/2} + z_{power})·sqrt(deff·p0(1 − p0)/n) (normal approximation, the null's variance;
    `design_effect` > 1 inflates the variance for clustered items).

    >>> round(mde_proportion(1000), 4)
    0.0443
    """
    if n <= 0:
        return math.inf
    return _z(alpha, power, two_sided) * math.sqrt(design_effect * p0 * (1 - p0) / n)


def mde_paired_proportions(n: int, discordant: float, *, alpha: float = 0.05, power: float = 0.8,
                           two_sided: bool = True) -> float:
    """Smallest accuracy difference between two rewards on the same n items that McNemar's test
    detects with the given power, given the share of discordant items (b + c)/n:
    (z_{1−α/2} + z_{power})·sqrt(discordant/n) (normal approximation; the variance of the paired
    difference under the null is discordant/n).

    >>> round(mde_paired_proportions(2312, 0.2), 4)
    0.0261
    """
    if n <= 0:
        return math.inf
    return _z(alpha, power, two_sided) * math.sqrt(max(discordant, 0.0) / n)


def mde_mean_diff(sd: float, n: int, n_b: int | None = None, *, alpha: float = 0.05, power: float = 0.8,
                  two_sided: bool = True) -> float:
    """Smallest difference of means detectable with the given power (normal approximation).
    Paired (`n_b` None; `sd` = standard deviation of the per-item differences):
    (z_{1−α/2} + z_{power})·sd/sqrt(n). Two independent groups of n and n_b with common `sd`:
    (z_{1−α/2} + z_{power})·sd·sqrt(1/n + 1/n_b).

    >>> round(mde_mean_diff(1.0, 100), 4)
    0.2802
    """
    if n <= 0 or (n_b is not None and n_b <= 0):
        return math.inf
    scale = math.sqrt(1 / n) if n_b is None else math.sqrt(1 / n + 1 / n_b)
    return _z(alpha, power, two_sided) * sd * scale
