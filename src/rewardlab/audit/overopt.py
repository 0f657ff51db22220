"""Over-optimisation: how the gold score of best-of-n selection under a proxy reward moves as n grows.

For each prompt with m candidate responses scored by k proxy rewards and a gold reward, best-of-n
picks the candidate the proxy objective ranks highest among n drawn at random. Its expected score is
computed exactly with the unbiased best-of-n estimator (Gao et al. 2022 as implemented in
tlc4418/llm_optimization ``src/bon/bon_sampling.py: unbiased_sampler``): with the m candidates sorted
ascending by the proxy objective and s_(i) the score (gold or proxy) of the i-th,

    E[score of BoN_n] = sum_{i=n..m} C(i-1, n-1) / C(m, n) * s_(i)

i.e. the average over all C(m, n) subsets of n candidates, without sampling noise. Candidates tied
on the proxy are broken uniformly at random (their scores are averaged). The x-axis is
KL_bon = log n - (n-1)/n (Gao et al. 2022), the analytic KL of best-of-n from the sampling policy.

Scales: every reward, and each proxy objective, is put on one common scale by the rank-based inverse
normal transform over all scored candidates, Phi^-1((rank - 3/8) / (N + 1/4)) (Blom; tied values share
their average rank). Best-of-n depends only on the order of the selector, which the transform keeps;
it makes every curve read in standard-normal units, whatever the reward's range, and keeps a few
extreme scores from setting the scale (a heavy-tailed proxy's z-scores would). A curve's value
at n is the mean over prompts of the *gain* E[BoN_n] - E[BoN_1] (E[BoN_1] is the prompt's mean);
the *gap* is the proxy gain minus the gold gain: how far the proxy's own view of its selection runs
ahead of the gold reward. Positive gold gain: the selection helps by the gold reward; a gold gain
that peaks and falls as n grows is over-optimisation.

Proxy objectives (Coste et al. 2023, "Reward Model Ensembles Help Mitigate Overoptimization", over
members put on the common scale first, as reward-bench's ``analysis/run_ensemble_offline.py``
z-scores them):
``single`` (each proxy alone; its curve is the average of the k single-proxy curves, per prompt),
``mean`` (mean of the members), ``worst`` (min over members, WCO) and ``uwo`` (uncertainty-weighted,
mean - lam * std over members, population std, as the spec's ``ensemble`` node; lam = 1 by default).

Candidates whose proxy or gold score is not ok are dropped (counted, with reasons); a prompt with
fewer than n usable candidates does not count at that n (`Point.prompts` says how many did).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import gammaln, ndtri
from scipy.stats import rankdata

from rewardlab.audit.stats import CI, bootstrap_ci, paired_bootstrap_diff
from rewardlab.core.types import Sample, Score

__all__ = [
    "ENSEMBLES", "Curve", "Overopt", "Point", "PromptScores", "best_of_n", "bon_weights", "default_ns",
    "kl_bon", "normal_scores", "overoptimisation", "score_prompts",
]

ENSEMBLES = ("mean", "worst", "uwo")


def kl_bon(n: int) -> float:
    """KL_bon = log n - (n-1)/n, the KL divergence of best-of-n from the sampling policy (Gao et al.
    2022; an analytic upper bound, Beirami et al. 2024). 0 at n = 1, in nats.

    >>> [round(kl_bon(n), 4) for n in (1, 2, 4, 8, 16, 64, 256)]
    [0.0, 0.1931, 0.6363, 1.2044, 1.8351, 3.1745, 4.5491]
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    return math.log(n) - (n - 1) / n


def bon_weights(m: int, n: int) -> np.ndarray:
    """The probability that the i-th smallest of m candidates (i = 1..m, ascending) is the largest
    of n drawn without replacement: C(i-1, n-1) / C(m, n), computed in log space. Sums to 1."""
    if not 1 <= n <= m:
        raise ValueError(f"best-of-{n} needs 1 <= n <= m (m = {m})")
    i = np.arange(1, m + 1, dtype=float)
    w = np.zeros(m)
    top = i >= n
    log_c = gammaln(i[top]) - gammaln(n) - gammaln(i[top] - n + 1)
    log_total = gammaln(m + 1) - gammaln(n + 1) - gammaln(m - n + 1)
    w[top] = np.exp(log_c - log_total)
    return w


def best_of_n(selector: Sequence[float], targets: Sequence[float] | np.ndarray, n: int) -> np.ndarray | float:
    """The expected `targets` of the candidate that `selector` ranks highest among n drawn at random
    from these m candidates (all subsets equally likely, ties broken uniformly at random): the
    unbiased best-of-n estimator. `targets` is one value per candidate, or an (m, T) array (T
    targets at once); returns a float or T floats."""
    sel = np.asarray(selector, dtype=float)
    tgt = np.asarray(targets, dtype=float)
    one = tgt.ndim == 1
    tgt = tgt.reshape(len(sel), -1)
    if len(tgt) != len(sel):
        raise ValueError(f"{len(sel)} selector values but {len(tgt)} targets")
    order = np.argsort(sel, kind="stable")
    s_sorted, t_sorted = sel[order], tgt[order]
    # ties on the selector: each tied candidate is equally likely to be kept, so use the tie group's mean
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(s_sorted)])
    group_means = np.add.reduceat(t_sorted, starts, axis=0) / sizes[:, None]
    t_sorted = np.repeat(group_means, sizes, axis=0)
    out = bon_weights(len(sel), n) @ t_sorted
    return float(out[0]) if one else out


def default_ns(m: int) -> list[int]:
    """Powers of two up to the smallest usable group size `m` (and m itself)."""
    ns = [1]
    while ns[-1] * 2 <= m:
        ns.append(ns[-1] * 2)
    if ns[-1] != m:
        ns.append(m)
    return ns


# -- scoring ----------------------------------------------------------------------------------------

@dataclass
class PromptScores:
    """The usable candidates of one prompt: `proxies` (m, k) member values, `gold` (m,)."""

    key: str
    proxies: np.ndarray
    gold: np.ndarray


@dataclass
class Dropped:
    """Candidates left out because a score was not ok: count and the first reasons."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, why: str) -> None:
        self.count += 1
        if len(self.reasons) < 5:
            self.reasons.append(why)


Scorer = Callable[[Any, list[Sample]], Sequence[Score]]


def score_prompts(groups: Sequence[tuple[str, Sequence[Sample]]], proxies: Sequence[Any], gold: Any,
                  score: Scorer, labels: Sequence[str] | None = None) -> tuple[list[PromptScores], Dropped]:
    """Score every candidate of `groups` ((key, samples) per prompt) with each proxy and the gold
    reward: one ``score(spec, samples)`` batch per reward over all samples (e.g. a `Runtime`'s
    ``lambda spec, batch: rt.score(spec, batch).scores``). A candidate with any score not ok is
    dropped and counted."""
    flat = [s for _, ss in groups for s in ss]
    names = list(labels or [f"proxy{i}" for i in range(len(proxies))])
    per = [list(score(p, flat)) for p in proxies]
    gold_scores = list(score(gold, flat))
    for name, got in [*zip(names, per, strict=True), ("gold", gold_scores)]:
        if len(got) != len(flat):
            raise ValueError(f"{name}: {len(got)} scores for {len(flat)} samples")
    out: list[PromptScores] = []
    dropped = Dropped()
    at = 0
    for key, samples in groups:
        rows, golds = [], []
        for j in range(at, at + len(samples)):
            bad = [(nm, s[j]) for nm, s in [*zip(names, per, strict=True), ("gold", gold_scores)] if not s[j].ok]
            if bad:
                nm, s = bad[0]
                dropped.add(f"{key[:60]!r}: {nm} {s.status.value}: {s.reason}")
                continue
            rows.append([float(s[j].value) for s in per])  # type: ignore[arg-type]
            golds.append(float(gold_scores[j].value))  # type: ignore[arg-type]
        at += len(samples)
        if rows:
            out.append(PromptScores(key, np.asarray(rows, dtype=float).reshape(len(rows), len(proxies)),
                                    np.asarray(golds, dtype=float)))
    return out, dropped


# -- curves -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One n of a curve. `proxy` / `gold`: mean over prompts of E[BoN_n] (normal scores); `*_gain`: mean
    of E[BoN_n] - E[BoN_1] with a bootstrap CI over prompts; `gap`: proxy gain - gold gain, with CI.
    `gold_vs_single` / `gap_vs_single`: this objective's gold gain / gap minus the single proxies'
    (paired over prompts; None for single proxies). A negative `gap_vs_single` narrows the gap."""

    n: int
    kl: float
    prompts: int
    proxy: float
    gold: float
    proxy_gain: CI
    gold_gain: CI
    gap: CI
    gold_vs_single: CI | None = None
    gap_vs_single: CI | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "kl_bon": self.kl, "prompts": self.prompts, "proxy": self.proxy,
                               "gold": self.gold, "proxy_gain": self.proxy_gain.to_dict(),
                               "gold_gain": self.gold_gain.to_dict(), "gap": self.gap.to_dict()}
        if self.gold_vs_single is not None:
            out["gold_vs_single"] = self.gold_vs_single.to_dict()
        if self.gap_vs_single is not None:
            out["gap_vs_single"] = self.gap_vs_single.to_dict()
        return out


@dataclass(frozen=True)
class Curve:
    """Best-of-n under one proxy objective: ``proxy:<label>`` (one proxy), ``single`` (the average
    of the single-proxy curves), ``mean``, ``worst`` or ``uwo``."""

    objective: str
    points: tuple[Point, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "points": [p.to_dict() for p in self.points]}


@dataclass(frozen=True)
class Overopt:
    """What `overoptimisation` measured: the curves, the sizes, and what was left out."""

    curves: tuple[Curve, ...]
    ns: tuple[int, ...]
    prompts: int
    candidates: int
    members: tuple[str, ...]
    lam: float
    dropped: int = 0
    dropped_reasons: tuple[str, ...] = ()

    def curve(self, objective: str) -> Curve:
        for c in self.curves:
            if c.objective == objective:
                return c
        raise KeyError(objective)

    def to_dict(self) -> dict[str, Any]:
        return {"ns": list(self.ns), "kl_bon": [kl_bon(n) for n in self.ns], "prompts": self.prompts,
                "candidates": self.candidates, "members": list(self.members), "lam": self.lam,
                "dropped": self.dropped, "dropped_reasons": list(self.dropped_reasons),
                "curves": [c.to_dict() for c in self.curves]}


def normal_scores(x: np.ndarray, what: str = "the reward") -> np.ndarray:
    """Blom's rank-based inverse normal transform of `x` (ties share their average rank): the same
    order, on a standard-normal scale."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2 or np.all(x == x[0]):
        raise ValueError(f"{what} gives the same value to every candidate: nothing to select with")
    return ndtri((rankdata(x) - 0.375) / (len(x) + 0.25))


def _common_scale(parts: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    """`normal_scores` over the pooled values of every prompt, split back per prompt."""
    pooled = normal_scores(np.concatenate(parts), what)
    return np.split(pooled, np.cumsum([len(p) for p in parts])[:-1])


def _objective(z: np.ndarray, name: str, lam: float) -> np.ndarray:
    """One proxy objective per candidate from member values (m, k) on the common scale."""
    if name == "mean":
        return z.mean(axis=1)
    if name == "worst":
        return z.min(axis=1)
    if name == "uwo":
        return z.mean(axis=1) - lam * z.std(axis=1)
    raise ValueError(f"unknown ensemble objective {name!r} (known: {', '.join(ENSEMBLES)})")


def overoptimisation(prompts: Sequence[PromptScores], *, ns: Sequence[int] | None = None,
                     ensembles: Sequence[str] = ENSEMBLES, lam: float = 1.0, labels: Sequence[str] | None = None,
                     n_resamples: int = 2000, level: float = 0.95, seed: int = 0, dropped: Dropped | None = None
                     ) -> Overopt:
    """Best-of-n curves of the single proxies and of the `ensembles` objectives (see the module
    docstring), at each n of `ns` (default: powers of two up to the smallest prompt's candidate
    count). CIs: bootstrap over prompts (EVAL's `rewardlab.audit.stats`, percentile)."""
    usable = [p for p in prompts if len(p.gold) >= 1]
    if not usable:
        raise ValueError("no prompt has a usable candidate")
    k = usable[0].proxies.shape[1]
    if any(p.proxies.shape != (len(p.gold), k) for p in usable):
        raise ValueError("every prompt needs one value per candidate for each of the same proxies")
    if k < 2 and ensembles:
        raise ValueError("an ensemble objective needs at least two proxies")
    for e in ensembles:
        if e not in ENSEMBLES:
            raise ValueError(f"unknown ensemble objective {e!r} (known: {', '.join(ENSEMBLES)})")
    names = list(labels or [f"proxy{i}" for i in range(k)])
    sizes = [len(p.gold) for p in usable]
    ns = sorted(set(ns or default_ns(max(sizes))))
    if ns[0] != 1:
        ns = [1, *ns]  # gains are measured from best-of-1
    if ns[-1] > max(sizes):
        raise ValueError(f"best-of-{ns[-1]} needs {ns[-1]} candidates; the largest prompt has {max(sizes)}")

    members = [_common_scale([p.proxies[:, j] for p in usable], f"proxy {names[j]}") for j in range(k)]
    zp = [np.stack([members[j][i] for j in range(k)], axis=1) for i in range(len(usable))]
    zg = _common_scale([p.gold for p in usable], "the gold reward")
    objectives: dict[str, list[np.ndarray]] = {f"proxy:{names[j]}": members[j] for j in range(k)}
    for e in ensembles:
        objectives[e] = _common_scale([_objective(z, e, lam) for z in zp], f"the {e} ensemble")

    # expected (proxy, gold) score of BoN_n per objective, prompt and n; NaN where the prompt is too small
    exp: dict[str, np.ndarray] = {}
    for name, sel in objectives.items():
        arr = np.full((len(usable), len(ns), 2), np.nan)
        for i, (s, g) in enumerate(zip(sel, zg, strict=True)):
            targets = np.stack([s, g], axis=1)
            for a, n in enumerate(ns):
                if n <= len(g):
                    arr[i, a] = best_of_n(s, targets, n)
        exp[name] = arr
    if k > 1:
        exp["single"] = np.mean([exp[f"proxy:{nm}"] for nm in names], axis=0)
    order = [f"proxy:{nm}" for nm in names] + (["single"] if k > 1 else []) + list(ensembles)

    def ci(x: np.ndarray) -> CI:
        return bootstrap_ci("mean", x, n_resamples=n_resamples, level=level, method="percentile", seed=seed)

    curves = []
    for name in order:
        arr = exp[name]
        gains = arr - arr[:, :1, :]
        points = []
        for a, n in enumerate(ns):
            ok = ~np.isnan(arr[:, a, 0])
            pg, gg = gains[ok, a, 0], gains[ok, a, 1]
            vs = vs_gap = None
            if name in ensembles and k > 1:
                base = exp["single"] - exp["single"][:, :1, :]
                vs = paired_bootstrap_diff(gg, base[ok, a, 1], n_resamples=n_resamples, level=level,
                                           method="percentile", seed=seed)
                vs_gap = paired_bootstrap_diff(pg - gg, base[ok, a, 0] - base[ok, a, 1], n_resamples=n_resamples,
                                               level=level, method="percentile", seed=seed)
            points.append(Point(n, kl_bon(n), int(ok.sum()), float(np.mean(arr[ok, a, 0])),
                                float(np.mean(arr[ok, a, 1])), ci(pg), ci(gg), ci(pg - gg), vs, vs_gap))
        curves.append(Curve(name, tuple(points)))
    d = dropped or Dropped()
    return Overopt(tuple(curves), tuple(ns), len(usable), int(sum(sizes)), tuple(names), lam,
                   d.count, tuple(d.reasons))


# -- report -----------------------------------------------------------------------------------------

def _ci_text(ci: CI | None) -> str:
    if ci is None:
        return "—"
    return f"{ci.estimate:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]"


def add_to_report(rep: Any, res: Overopt) -> None:
    """Tables and plots of `res` in a `rewardlab.audit.report.Report` (and the whole result in its JSON)."""
    from rewardlab.audit.report import new_figure

    rep.heading("Over-optimisation: best-of-n under a proxy, scored by the gold reward")
    rep.text(f"{res.prompts} prompts, {res.candidates} candidates scored by {len(res.members)} prox"
             f"{'y' if len(res.members) == 1 else 'ies'} ({', '.join(res.members)}) and the gold reward; "
             f"{res.dropped} candidates dropped (a score not ok). Scores are on a rank-normal common scale "
             "(standard-normal units); a gain is E[best-of-n] minus E[best-of-1] per prompt, averaged over "
             "prompts, with a 95% bootstrap CI over prompts; the gap is the proxy gain minus the gold gain. "
             f"Ensembles: mean, worst (min) and uwo (mean - {res.lam:g} x std) over the proxies.")
    if res.dropped_reasons:
        rep.text("First dropped: " + "; ".join(res.dropped_reasons))
    rep.table("KL_bon = log n - (n-1)/n", ["n", "KL_bon"], [[n, round(kl_bon(n), 4)] for n in res.ns])
    rows = []
    for c in res.curves:
        for p in c.points:
            rows.append([c.objective, p.n, round(p.kl, 4), p.prompts, _ci_text(p.proxy_gain), _ci_text(p.gold_gain),
                         _ci_text(p.gap), _ci_text(p.gold_vs_single), _ci_text(p.gap_vs_single)])
    rep.table("Best-of-n curves", ["objective", "n", "KL_bon", "prompts", "proxy gain", "gold gain", "gap",
                                   "gold gain vs single", "gap vs single"], rows)

    shown = [c for c in res.curves if not c.objective.startswith("proxy:") or len(res.members) == 1]
    fig = new_figure(11, 4.2)
    ax1, ax2 = fig.subplots(1, 2)
    base = res.curve("single") if len(res.members) > 1 else res.curves[0]
    kl = [p.kl for p in base.points]
    ax1.plot(kl, [p.proxy_gain.estimate for p in base.points], "o--", label="proxy (its own score)")
    ax1.plot(kl, [p.gold_gain.estimate for p in base.points], "o-", label="gold")
    ax1.fill_between(kl, [p.gold_gain.low for p in base.points], [p.gold_gain.high for p in base.points], alpha=0.2)
    ax1.set_title(f"{base.objective}: proxy vs gold")
    for c in shown:
        ax2.plot([p.kl for p in c.points], [p.gold_gain.estimate for p in c.points], "o-", label=c.objective)
        ax2.fill_between([p.kl for p in c.points], [p.gold_gain.low for p in c.points],
                         [p.gold_gain.high for p in c.points], alpha=0.12)
    ax2.set_title("gold gain by proxy objective")
    for ax in (ax1, ax2):
        ax.set_xlabel("KL_bon = log n - (n-1)/n (nats)")
        ax.set_ylabel("gain over best-of-1 (normal units)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.legend(fontsize=8)
    rep.figure("Best-of-n: gold and proxy gain against KL_bon", fig,
               caption="bands: 95% bootstrap CI over prompts of the gold gain")
    fig2 = new_figure(6.4, 4.0)
    ax = fig2.subplots()
    for c in shown:
        ax.plot([p.kl for p in c.points], [p.gap.estimate for p in c.points], "o-", label=c.objective)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("KL_bon (nats)")
    ax.set_ylabel("proxy gain - gold gain")
    ax.set_title("over-optimisation gap")
    ax.legend(fontsize=8)
    rep.figure("Proxy-gold gap against KL_bon", fig2)
    rep.add_data("overopt", res.to_dict())
