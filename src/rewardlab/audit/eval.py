"""Evaluating rewards on preference data: accuracy with confidence intervals, per subset, rolled up
by a benchmark's scheme, and paired comparisons between rewards on the same items.

`evaluate(items, rewards, scheme=...)` scores every response of every item with each reward (one
batch per reward through the Runtime) and returns an `Evaluation`; `Evaluation.to_json()` is what
``rewardlab eval --json`` writes. Its shape (every number a fraction in [0, 1] unless said; every
``ci`` a ``[low, high]`` list at ``level``, with ``ci_method`` saying how it was computed)::

    {
      "scheme": "plain" | "rewardbench" | "rewardbench2",
      "score_label": what "accuracy" means under the scheme,
      "level": 0.95, "n_resamples": 10000, "seed": 0,
      "items": rows read, "units": pairs (plain, rewardbench) or items (rewardbench2),
      "unknown_subsets": [subsets outside RewardBench's sections (rewardbench scheme)],
      "rewards": {
        NAME: {
          "spec": the spec as given, "fingerprint": the reward's fingerprint,
          "accuracy": the scheme's score, "ci": [low, high], "ci_method": ...,
          "n": units, "ties": units the reward tied, "unscored": units with a non-ok score,
          "reasons": why, for the first unscored units,
          "pairs": {"n", "correct", "ties", "unscored", "accuracy", "ci", "ci_method"}  (every
                    chosen/rejected pair, pooled),
          "sections": {SECTION: {"accuracy", "ci", "ci_method"}}   (rewardbench scheme),
          "ties_terms": {"ref_acc", "tied_acc", "cp", "cph", "margin"}   (rewardbench2, Ties),
          "subsets": {SUBSET: {"accuracy", "ci", "ci_method", "n", "ties", "unscored"}}
        }
      },
      "data": {"path", "rows", "unreadable", "layouts", "flagged"}   (written by ``rewardlab eval``),
      "comparisons": [
        {"a": NAME, "b": NAME, "diff": accuracy(a) − accuracy(b), "diff_ci": [low, high],
         "diff_method": ..., "diff_p": paired-bootstrap two-sided p,
         "mcnemar_b": units a got right and b wrong, "mcnemar_c": the reverse,
         "mcnemar_p": exact McNemar p, "mcnemar_midp": mid-p,
         "agreement": {"n", "pearson", "spearman", "kendall_tau_b", "pairwise_agreement", "cohen_kappa",
                       "ci": {"pairwise_agreement": [low, high], "cohen_kappa": [low, high],
                              "spearman": [low, high]}}}
      ]
    }

How the figures are made:

- A pair is right when the chosen response scores strictly above the rejected one; ties and pairs
  with a non-ok score count as wrong and are reported apart. A set (one chosen, several rejected)
  counts as one pair per (chosen, rejected) under the pair schemes and as one best-of-n item under
  rewardbench2 (see `rewardlab.audit.aggregate`).
- One accuracy over independent 0/1 units: the Wilson interval. Composite scores, and accuracies
  over units that share a prompt (several pairs of one prompt), use a bootstrap that resamples
  items: clustered by prompt (all units of one prompt move together; the Ties subset by prompt
  number), stratified by subset for the weighted schemes; BCa, falling back to percentile when it
  degenerates (``ci_method`` says), and for an accuracy whose resamples are all equal (e.g. 100%) to
  Wilson over the prompts (``ci_note`` says).
- Comparisons: McNemar on the units each reward got right (the rewardbench2 best-of-n items count
  as right only when won outright; Ties items are left out; with prompts holding several units
  the test treats them as independent), and a paired bootstrap of the difference of the scheme's
  score (the same resampled items for both). Agreement: over each unit's margin (chosen minus the
  best rejected score) where both rewards scored it: correlations of the margins, the share of
  units where both prefer the same side (``pairwise_agreement``, a tie being its own side) and its
  chance-corrected Cohen's kappa; intervals for the agreement (as an accuracy), kappa (bootstrap)
  and Spearman (Fisher z).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import combinations
from typing import Any

import numpy as np

from rewardlab.audit.aggregate import TIES_SUBSET, Rollup, TiesItem, best_of_n, parse_ties_id, rollup, ties_score
from rewardlab.audit.pairs import compare
from rewardlab.audit.stats import (
    CI,
    WStat,
    agreement,
    bootstrap_many,
    mcnemar,
    spearman_ci,
    weighted_kappa_stat,
    weighted_mean,
    wilson_ci,
)
from rewardlab.core.types import PreferencePair, PreferenceSet, Sample, Score

__all__ = ["Evaluation", "ItemScores", "RewardResult", "Units", "evaluate", "score_items", "units_of"]

Preference = PreferencePair | PreferenceSet
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class ItemScores:
    """The scores of one item's chosen and rejected responses, in the item's order."""

    chosen: tuple[Score, ...]
    rejected: tuple[Score, ...]


def score_items(items: Sequence[Preference], spec: Any, *, runtime: Any = None) -> list[ItemScores]:
    """Score every response of every item with `spec` in one batch (each response of a set
    once) through `rewardlab.score`."""
    from rewardlab.api import score

    samples: list[Sample] = []
    spans: list[tuple[int, int, int]] = []  # (start, n chosen, n rejected)
    for item in items:
        start = len(samples)
        if isinstance(item, PreferenceSet):
            samples.extend(item.samples())
            spans.append((start, len(item.chosen), len(item.rejected)))
        else:
            samples.extend(item.samples())
            spans.append((start, 1, 1))
    scores = list(score(samples, spec, runtime=runtime)) if samples else []
    if len(scores) != len(samples):
        raise ValueError(f"the reward returned {len(scores)} scores for {len(samples)} responses")
    return [ItemScores(tuple(scores[s:s + k]), tuple(scores[s + k:s + k + r])) for s, k, r in spans]


# -- units ----------------------------------------------------------------------------------------

def _prompt_key(item: Preference) -> str:
    prompt = item.prompt if isinstance(item.prompt, str) else [m.model_dump(mode="json") for m in item.prompt]
    return hashlib.sha1(json.dumps(prompt, sort_keys=True).encode()).hexdigest()


def _subset(item: Preference) -> str:
    return item.subset or item.category or UNLABELLED


@dataclass
class Units:
    """How items become the units the statistics count: pairs (plain, rewardbench) or items
    (rewardbench2), with each unit's item, subset and cluster (prompt)."""

    scheme: str
    item: np.ndarray
    subset: np.ndarray
    cluster: np.ndarray
    ties_index: np.ndarray  # units of the Ties subset (rewardbench2)
    pair_of_unit: list[tuple[int, int]]  # (chosen index, rejected index) per unit (pair schemes)

    @property
    def n(self) -> int:
        return len(self.item)

    @property
    def clustered(self) -> bool:
        """Some prompt holds more than one unit."""
        return len(np.unique(self.cluster)) < self.n


def units_of(items: Sequence[Preference], scheme: str) -> Units:
    """The units of `items` under `scheme`."""
    item_idx: list[int] = []
    subsets: list[str] = []
    clusters: list[str] = []
    pairs: list[tuple[int, int]] = []
    ties_index: list[int] = []
    for i, it in enumerate(items):
        sub = _subset(it)
        key = f"{sub}\x00{_prompt_key(it)}"
        if scheme == "rewardbench2":
            parsed = parse_ties_id(it.id) if sub == TIES_SUBSET else None
            if sub == TIES_SUBSET:
                if parsed is None:
                    raise ValueError(f"item {i}: a Ties item needs an id 'ref:N' or 'tied:N', got {it.id!r}")
                ties_index.append(len(item_idx))
                key = f"{sub}\x00{parsed[1]}"  # the ref and tied items of one prompt move together
            item_idx.append(i)
            subsets.append(sub)
            clusters.append(key)
            continue
        k, r = (len(it.chosen), len(it.rejected)) if isinstance(it, PreferenceSet) else (1, 1)
        for a in range(k):
            for b in range(r):
                item_idx.append(i)
                subsets.append(sub)
                clusters.append(key)
                pairs.append((a, b))
    return Units(scheme, np.asarray(item_idx, dtype=int), np.asarray(subsets, dtype=object),
                 np.asarray(clusters, dtype=object), np.asarray(ties_index, dtype=int), pairs)


@dataclass
class _UnitValues:
    values: np.ndarray  # result per unit in [0, 1]
    correct: np.ndarray  # right outright (for McNemar)
    tie: np.ndarray
    unscored: np.ndarray
    margin: np.ndarray  # chosen minus best rejected score (NaN when unscored)
    ties_items: list[TiesItem]
    reasons: list[str]


def _value(s: Score) -> float | None:
    return s.value if s.ok and s.value is not None else None


def _unit_values(units: Units, items: Sequence[Preference], scored: Sequence[ItemScores]) -> _UnitValues:
    n = units.n
    values, correct, tie, unscored = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    margin = np.full(n, math.nan)
    reasons: list[str] = []
    ties_items: list[TiesItem] = []
    if units.scheme != "rewardbench2":
        chosen = [scored[i].chosen[a] for i, (a, _) in zip(units.item, units.pair_of_unit, strict=True)]
        rejected = [scored[i].rejected[b] for i, (_, b) in zip(units.item, units.pair_of_unit, strict=True)]
        acc = compare(chosen, rejected)  # the pair rule of rewardlab.audit.pairs
        for u, m in enumerate(acc.margins):
            if m is None:
                unscored[u] = True
            else:
                margin[u] = m
                correct[u] = m > 0
                tie[u] = m == 0
        values = correct.astype(float)
        return _UnitValues(values, correct, tie, unscored, margin, [], list(acc.reasons))
    ties_set = set(units.ties_index.tolist())
    for u, i in enumerate(units.item):
        sc = scored[i]
        vals = [_value(s) for s in (*sc.chosen, *sc.rejected)]
        failed = any(v is None for v in vals)
        if failed:
            unscored[u] = True
            bad = next(s for s in (*sc.chosen, *sc.rejected) if _value(s) is None)
            if len(reasons) < 5:
                reasons.append(f"item {i}: {bad.status.value}: {bad.reason}")
        if u in ties_set:
            kind, prompt = parse_ties_id(items[i].id)  # type: ignore[misc]
            k = len(sc.chosen)
            got = [0.0 if v is None else v for v in vals]
            t = TiesItem(prompt, kind, tuple(got[:k]), tuple(got[k:]), failed)
            ties_items.append(t)
            if not failed:
                margin[u] = t.gap
                tie[u] = t.gap == 0
            continue
        if failed:
            continue  # counts 0: a reward that cannot score an item has not ranked it
        first = [vals[0], *vals[len(sc.chosen):]]  # the first correct response, then the rejected ones
        values[u] = best_of_n(first)  # type: ignore[arg-type]
        correct[u] = values[u] == 1.0
        tie[u] = 0 < values[u] < 1
        margin[u] = first[0] - max(first[1:])  # type: ignore[operator,type-var]
    return _UnitValues(values, correct, tie, unscored, margin, ties_items, reasons)


# -- results --------------------------------------------------------------------------------------

def _ci_fields(ci: CI) -> dict[str, Any]:
    return {"accuracy": ci.estimate, "ci": [ci.low, ci.high], "ci_method": ci.method,
            **({"ci_note": ci.note} if ci.note else {})}


@dataclass
class RewardResult:
    """One reward's figures (see the module docstring for their meaning)."""

    name: str
    spec: str
    fingerprint: str
    score: CI
    n: int
    ties: int
    unscored: int
    reasons: list[str]
    pairs: dict[str, Any]
    subsets: dict[str, dict[str, Any]]
    sections: dict[str, CI] = field(default_factory=dict)
    ties_terms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spec": self.spec, "fingerprint": self.fingerprint, **_ci_fields(self.score),
                               "n": self.n, "ties": self.ties, "unscored": self.unscored,
                               "reasons": self.reasons, "pairs": self.pairs}
        if self.sections:
            out["sections"] = {k: _ci_fields(v) for k, v in self.sections.items()}
        if self.ties_terms:
            out["ties_terms"] = self.ties_terms
        out["subsets"] = self.subsets
        return out


@dataclass
class Evaluation:
    """What `evaluate` found: each reward's figures and each pair of rewards' comparison."""

    scheme: str
    score_label: str
    level: float
    n_resamples: int
    seed: int
    items: int
    units: int
    rewards: dict[str, RewardResult]
    comparisons: list[dict[str, Any]]
    unknown_subsets: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Every figure, as strict-JSON data (NaN as null); the shape is in the module docstring."""
        from rewardlab.audit.report import jsonable

        return jsonable({
            "scheme": self.scheme, "score_label": self.score_label, "level": self.level,
            "n_resamples": self.n_resamples, "seed": self.seed, "items": self.items, "units": self.units,
            "unknown_subsets": self.unknown_subsets,
            "rewards": {k: v.to_json() for k, v in self.rewards.items()},
            "comparisons": self.comparisons,
        })


def _masked_mean(x: np.ndarray, mask: np.ndarray, w: np.ndarray) -> np.ndarray:
    wm = w * mask.astype(w.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (wm @ x.astype(w.dtype)) / wm.sum(axis=1).astype(float)


class _Intervals:
    """The intervals of statistics over one set of units, the bootstrapped ones computed in one
    pass (`bootstrap_many`: the same resamples for every statistic, so comparisons are paired)."""

    def __init__(self, clusters: np.ndarray, strata: np.ndarray | None, *, n_resamples: int, level: float,
                 seed: int) -> None:
        self.clusters, self.strata = clusters, strata
        self.n_resamples, self.level, self.seed = n_resamples, level, seed
        self.stats: dict[str, WStat] = {}
        self.shares: dict[str, int] = {}  # bootstrapped 0/1 shares: their number of clusters
        self.differences: set[str] = set()
        self.fixed: dict[str, CI] = {}

    def proportion(self, key: str, values: np.ndarray, mask: np.ndarray | None = None) -> None:
        """A share over the units (where `mask`): Wilson for independent 0/1 units, else the bootstrap."""
        if mask is not None and mask.all():
            mask = None
        sel = values if mask is None else values[mask]
        clusters = self.clusters if mask is None else self.clusters[mask]
        binary = len(sel) > 0 and bool(np.all((sel == 0) | (sel == 1)))
        if binary and len(np.unique(clusters)) == len(sel):
            k = int(sel.sum())
            lo, hi = wilson_ci(k, len(sel), self.level)
            self.fixed[key] = CI(k / len(sel), lo, hi, "wilson", self.level)
            return
        if binary:
            self.shares[key] = len(np.unique(clusters))
        if mask is None:
            self.stats[key] = lambda w: weighted_mean(values, w)
        else:
            m = mask.astype(float)
            self.stats[key] = lambda w: _masked_mean(values, m, w)

    def stat(self, key: str, fn: WStat, *, difference: bool = False) -> None:
        self.stats[key] = fn
        if difference:
            self.differences.add(key)

    def run(self) -> dict[str, CI]:
        many = bootstrap_many(self.stats, len(self.clusters), clusters=self.clusters.tolist(),
                              strata=None if self.strata is None else self.strata.tolist(),
                              n_resamples=self.n_resamples, level=self.level, seed=self.seed,
                              differences=self.differences)
        for key, n_clusters in self.shares.items():
            ci = many[key]
            if ci.low == ci.high:  # every resample alike (e.g. 100%): Wilson over the prompts, not a point
                k = round(ci.estimate * n_clusters)
                lo, hi = wilson_ci(k, n_clusters, self.level)
                many[key] = CI(ci.estimate, min(lo, ci.estimate), max(hi, ci.estimate), "wilson", self.level,
                               note=f"bootstrap degenerate (every resample equal): Wilson over the {n_clusters} "
                                    "prompts")
        return {**self.fixed, **many}


def _spec_text(spec: Any) -> str:
    return spec if isinstance(spec, str) else repr(spec)


def evaluate(items: Sequence[Preference], rewards: Mapping[str, Any], *, scheme: str = "plain",
             prior_sets: bool = False, n_resamples: int = 10_000, level: float = 0.95, seed: int = 0,
             runtime: Any = None, scores: Mapping[str, Sequence[ItemScores]] | None = None) -> Evaluation:
    """Evaluate each reward (name -> spec: a reward name, spec file, YAML text, or built spec)
    on `items` under `scheme` ("plain", "rewardbench", "rewardbench2"; `prior_sets`: the
    RewardBench paper's weighted score). `scores`: already-computed item scores by reward name
    (those rewards are not scored again). Every reward's items are scored in one batch; every
    interval over all items comes from one set of resamples."""
    from rewardlab.api import build

    if not items:
        raise ValueError("no preference items to evaluate")
    if not rewards:
        raise ValueError("no reward to evaluate")
    units = units_of(items, scheme)
    if units.n == 0:
        raise ValueError("the items hold no pairs")
    uvs: dict[str, _UnitValues] = {}
    rolls: dict[str, Rollup] = {}
    fingerprints: dict[str, str] = {}
    for name, spec in rewards.items():
        built = build(spec)
        fingerprints[name] = built.fingerprint
        scored = list(scores[name]) if scores and name in scores else score_items(items, built, runtime=runtime)
        uvs[name] = _unit_values(units, items, scored)
        rolls[name] = rollup(scheme, units.subset.tolist(), prior_sets=prior_sets, ties=uvs[name].ties_items,
                             ties_index=units.ties_index.tolist())
    opts = {"n_resamples": n_resamples, "level": level, "seed": seed}
    whole = _Intervals(units.cluster, None if scheme == "plain" else units.subset, **opts)
    sections: dict[str, list[str]] = {}
    for name, uv in uvs.items():
        roll = rolls[name]
        if scheme == "plain":
            whole.proportion(f"{name}/score", uv.values)
        else:
            whole.stat(f"{name}/score", partial(roll.stat, uv.values))
        sections[name] = [k.removeprefix("section:") for k in roll.estimate(uv.values) if k.startswith("section:")]
        for sec in sections[name]:
            whole.stat(f"{name}/section:{sec}",
                       lambda w, r=roll, v=uv.values, k=f"section:{sec}": r.parts(v, w)[k])
        if scheme == "rewardbench":  # plain: the pairs are the units of the score; rewardbench2: no pairs
            whole.proportion(f"{name}/pairs", uv.correct.astype(float))
    pairs_of = list(combinations(uvs, 2))
    for a, b in pairs_of:
        ua, ub, ra, rb = uvs[a], uvs[b], rolls[a], rolls[b]
        # each reward's own rollup: the Ties terms of rewardbench2 depend on each reward's raw scores
        whole.stat(f"{a}|{b}/diff", lambda w, ra=ra, rb=rb, va=ua.values, vb=ub.values: ra.stat(va, w) - rb.stat(vb, w),
                   difference=True)
        both = np.isfinite(ua.margin) & np.isfinite(ub.margin)
        if both.any():
            sa, sb = np.sign(ua.margin[both]), np.sign(ub.margin[both])
            whole.proportion(f"{a}|{b}/same", np.where(both, np.sign(ua.margin) == np.sign(ub.margin), 0).astype(float),
                             both)
            kappa = weighted_kappa_stat(sa.tolist(), sb.tolist())
            whole.stat(f"{a}|{b}/kappa", (lambda w, k=kappa: k(None, w)) if both.all() else
                       (lambda w, k=kappa, m=both: k(None, w[:, m])))
    cis = whole.run()
    sub_cis = _subset_intervals(units, uvs, scheme, cis, **opts)
    results: dict[str, RewardResult] = {}
    for name, uv in uvs.items():
        ties_terms: dict[str, float] = {}
        if uv.ties_items:
            ties_terms = {k: v for k, v in ties_score(uv.ties_items).items() if k != "score"}
        pairs: dict[str, Any] = {}
        if scheme != "rewardbench2":
            pairs = {"n": units.n, "correct": int(uv.correct.sum()), "ties": int(uv.tie.sum()),
                     "unscored": int(uv.unscored.sum()),
                     **_ci_fields(cis[f"{name}/pairs" if scheme == "rewardbench" else f"{name}/score"])}
        subsets = {sub: {**_ci_fields(sub_cis[sub][name]), "n": int(np.sum(units.subset == sub)),
                         "ties": int(uv.tie[units.subset == sub].sum()),
                         "unscored": int(uv.unscored[units.subset == sub].sum())} for sub in sub_cis}
        results[name] = RewardResult(name, _spec_text(rewards[name]), fingerprints[name], cis[f"{name}/score"],
                                     units.n, int(uv.tie.sum()), int(uv.unscored.sum()), uv.reasons, pairs, subsets,
                                     {s: cis[f"{name}/section:{s}"] for s in sections[name]}, ties_terms)
    comparisons = [_comparison(a, b, units, uvs[a], uvs[b], cis, level) for a, b in pairs_of]
    first = next(iter(rolls.values()))
    return Evaluation(scheme, first.label, level, n_resamples, seed, len(items), units.n, results, comparisons,
                      first.unknown_subsets)


def _subset_intervals(units: Units, uvs: Mapping[str, _UnitValues], scheme: str, whole: Mapping[str, CI], *,
                      n_resamples: int, level: float, seed: int) -> dict[str, dict[str, CI]]:
    """Each subset's interval for each reward (one bootstrap pass per subset, over its own units)."""
    out: dict[str, dict[str, CI]] = {}
    for sub in dict.fromkeys(units.subset.tolist()):
        mask = units.subset == sub
        if scheme == "plain" and mask.all():  # one subset holding every unit: it is the score
            out[sub] = {name: whole[f"{name}/score"] for name in uvs}
            continue
        iv = _Intervals(units.cluster[mask], None, n_resamples=n_resamples, level=level, seed=seed)
        for name, uv in uvs.items():
            if scheme == "rewardbench2" and sub == TIES_SUBSET:
                roll = rollup("rewardbench2", [TIES_SUBSET] * int(mask.sum()), ties=uv.ties_items,
                              ties_index=range(int(mask.sum())))
                iv.stat(name, partial(roll.stat, uv.values[mask]))
            else:
                iv.proportion(name, uv.values[mask])
        out[sub] = iv.run()
    return out


def _comparison(a: str, b: str, units: Units, ua: _UnitValues, ub: _UnitValues, cis: Mapping[str, CI],
                level: float) -> dict[str, Any]:
    keep = np.ones(units.n, bool)
    keep[units.ties_index] = False
    ca, cb = ua.correct[keep], ub.correct[keep]
    mc = mcnemar(int(np.sum(ca & ~cb)), int(np.sum(~ca & cb)))
    diff = cis[f"{a}|{b}/diff"]
    both = np.isfinite(ua.margin) & np.isfinite(ub.margin)
    ag: dict[str, Any] = agreement(ua.margin[both].tolist(), ub.margin[both].tolist())
    ag["ci"] = {}
    if f"{a}|{b}/same" in cis:
        same = cis[f"{a}|{b}/same"]
        ag["ci"]["pairwise_agreement"] = [same.low, same.high]
        if math.isfinite(ag["cohen_kappa"]):
            kappa = cis[f"{a}|{b}/kappa"]
            ag["ci"]["cohen_kappa"] = [kappa.low, kappa.high]
        ag["ci"]["spearman"] = list(spearman_ci(ag["spearman"], int(both.sum()), level))
    return {"a": a, "b": b, "diff": diff.estimate, "diff_ci": [diff.low, diff.high], "diff_method": diff.method,
            "diff_p": diff.p_value, "mcnemar_b": mc.b, "mcnemar_c": mc.c, "mcnemar_p": mc.p_exact,
            "mcnemar_midp": mc.p_midp, "agreement": ag}
