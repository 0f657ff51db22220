"""Advantage estimators over groups of rollouts (the G responses to one prompt).

Every estimator takes a flat array of scalar rewards and a parallel array of group labels and
returns `Advantages`: one value per rollout, and a mask that is False for the rollouts that had
no reward (None, NaN, or a non-``ok`` `Score`). Such rollouts are left out of every statistic
(mean, std, baseline, group size) and get advantage 0.0, never NaN. The work is vectorised over
the whole batch (`np.bincount` per group), so a million rollouts take a fraction of a second.

Trainers disagree on the details; each estimator names the convention it follows by default and
takes ``convention=`` to follow another (sources: scoring-rules reference, section 6):

| estimator | trl | verl | openrlhf |
|---|---|---|---|
| `grpo` (default trl) | ε=1e-4, std ddof=1, group of one → 0 | ε=1e-6, ddof=1, group of one → R | — |
| `dr_grpo` (default trl) | R − mean, group of one → 0 | R − mean, group of one → R | — |
| `rloo` (default trl) | G/(G−1)·(R − mean), group of one → 0 | same, group of one → R | — |
| `reinforce_pp` (default verl) | — | whiten: unbiased var, rsqrt(var+1e-8) | population var, rsqrt(max(var, 1e-8)) |

Degenerate cases (the reference's table): a group of one gets 0 under ``trl`` (the recommended
default) and its raw reward under ``verl``, and is counted in ``Advantages.notes``; a group whose
scorable rewards are all equal gets exactly 0 (`dapo_keep` drops such groups); an unscorable
rollout is excluded from its group's statistics and gets 0 with ``mask`` False.

TRL: ``GRPOTrainer._generate_and_score_completions`` (nan-mean baseline, Bessel nanstd,
``scale_rewards`` group/batch/none) and ``RLOOTrainer``; verl: ``core_algos.compute_grpo_outcome_advantage``,
``compute_rloo_outcome_advantage``, ``compute_reinforce_plus_plus_*`` (``masked_whiten``);
OpenRLHF: ``experience_maker.compute_advantages_and_returns``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rewardlab.core.types import Score
from rewardlab.credit._groups import (
    BoolArray,
    FloatArray,
    GroupStats,
    as_rewards,
    constant_groups,
    group_ids,
    group_stats,
)

Rewards = Sequence[float | None | Score] | npt.ArrayLike
Groups = Sequence[Hashable] | npt.ArrayLike


@dataclass(frozen=True)
class Convention:
    """How a trainer computes a group-normalised advantage."""

    name: str
    eps: float  # added to the std before dividing
    ddof: int  # 1: Bessel-corrected std (torch.std, TRL's nanstd)
    singleton: Literal["zero", "raw"]  # a group of one: advantage 0, or its raw reward


CONVENTIONS: dict[str, Convention] = {
    "trl": Convention("trl", eps=1e-4, ddof=1, singleton="zero"),
    "verl": Convention("verl", eps=1e-6, ddof=1, singleton="raw"),
}
WHITENING: dict[str, Convention] = {  # REINFORCE++ global whitening (eps: the variance floor)
    "verl": Convention("verl", eps=1e-8, ddof=1, singleton="raw"),
    "openrlhf": Convention("openrlhf", eps=1e-8, ddof=0, singleton="zero"),
}


@dataclass(frozen=True)
class Advantages:
    """Advantages of a batch of rollouts.

    `values` holds one advantage per rollout (0.0 where `mask` is False); `mask` is True for the
    rollouts that had a reward; `rewards` are the rewards the advantages were computed from
    (after any reshaping, e.g. GRPO-λ's length penalty; 0.0 where masked); `notes` lists the
    degenerate cases met (groups of one, all-equal groups, unscorable rollouts), with counts
    in `counts`."""

    values: FloatArray
    mask: BoolArray
    rewards: FloatArray
    estimator: str
    convention: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        what = {"unscorable": "unscorable rollouts (excluded, advantage 0)",
                "singleton_groups": "groups with one scorable rollout",
                "constant_groups": "groups whose rewards are all equal (advantage 0)"}
        return [f"{n} {what[k]}" for k, n in self.counts.items() if n]

    def tolist(self) -> list[float | None]:
        """The advantages as floats, None for the rollouts without a reward."""
        return [float(v) if m else None for v, m in zip(self.values.tolist(), self.mask.tolist(), strict=True)]


def _convention(name: str | None, table: Mapping[str, Convention], default: str, estimator: str) -> Convention:
    name = default if name is None else name
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"{estimator}: unknown convention {name!r} (known: {', '.join(table)})") from None


def _prepare(rewards: Rewards, groups: Groups | None) -> tuple[FloatArray, BoolArray, GroupStats, int]:
    values, valid = as_rewards(rewards)
    if groups is None:
        gid, n = np.zeros(len(values), dtype=np.intp), 1
    else:
        gid, n = group_ids(groups)
        if len(gid) != len(values):
            raise ValueError(f"{len(values)} rewards but {len(gid)} group labels")
    return values, valid, group_stats(values, valid, gid, n), n


def _counts(valid: BoolArray, st: GroupStats, constant: BoolArray) -> dict[str, int]:
    return {"unscorable": int((~valid).sum()), "singleton_groups": int((st.count == 1).sum()),
            "constant_groups": int(constant.sum())}


def grpo(rewards: Rewards, groups: Groups, *, convention: str | None = None,
         scale: Literal["group", "batch", "none"] = "group", eps: float | None = None,
         ddof: int | None = None, singleton: Literal["zero", "raw"] | None = None) -> Advantages:
    """GRPO's advantage ``(R − mean_g) / (std + ε)``; higher is better than the group's mean.

    `scale`: ``group`` divides by the group's std, ``batch`` by the std of every scorable reward
    in the batch (TRL's ``scale_rewards="batch"``), ``none`` not at all (Dr. GRPO). `eps`, `ddof`
    and `singleton` override the convention's (default ``trl``: ε=1e-4, ddof=1, a group of one
    gets 0; ``verl``: ε=1e-6, a group of one gets its raw reward, as verl sets mean 0, std 1).

    >>> grpo([1, 0, 0, 1], [0, 0, 0, 0], convention="verl").values.round(4).tolist()
    [0.866, -0.866, -0.866, 0.866]
    """
    conv = _convention(convention, CONVENTIONS, "trl", "grpo")
    eps = conv.eps if eps is None else eps
    ddof = conv.ddof if ddof is None else ddof
    singleton = conv.singleton if singleton is None else singleton
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"grpo: scale must be group, batch or none, not {scale!r}")
    values, valid, st, n = _prepare(rewards, groups)
    constant = constant_groups(values, valid, st, n)
    centred = values - st.at(st.mean)
    if scale == "group":
        denom = st.at(st.std(ddof)) + eps
        adv = np.divide(centred, denom, out=np.zeros_like(centred), where=denom > 0)
    elif scale == "batch":
        k = int(valid.sum())
        std = float(np.std(values[valid], ddof=ddof)) if k > ddof else 0.0
        adv = centred / (std + eps) if std + eps > 0 else np.zeros_like(centred)
    else:
        adv = centred
    single = st.at(st.count == 1)
    adv = np.where(single, values if singleton == "raw" else 0.0, adv)
    adv = np.where(st.at(constant) | ~valid, 0.0, adv)
    name = {"group": "grpo", "batch": "grpo_batch", "none": "dr_grpo"}[scale]
    return Advantages(adv, valid, np.where(valid, values, 0.0), name, conv.name, _counts(valid, st, constant))


def dr_grpo(rewards: Rewards, groups: Groups, *, convention: str | None = None,
            singleton: Literal["zero", "raw"] | None = None) -> Advantages:
    """Dr. GRPO (Liu et al. 2025): ``R − mean_g``, no std division (verl's
    ``norm_adv_by_std_in_grpo=False``, TRL's ``scale_rewards="none"``).

    >>> dr_grpo([1, 0, 0, 1], [0, 0, 0, 0]).values.tolist()
    [0.5, -0.5, -0.5, 0.5]
    """
    return grpo(rewards, groups, convention=convention, scale="none", singleton=singleton)


def rloo(rewards: Rewards, groups: Groups, *, convention: str | None = None,
         singleton: Literal["zero", "raw"] | None = None, whiten: bool = False) -> Advantages:
    """RLOO (Ahmadian et al. 2024): ``R_i − mean of the other scorable rewards of the group``,
    i.e. ``G/(G−1)·(R_i − mean_g)``. A group of one gets 0 (``trl``) or its raw reward
    (``verl``). `whiten` then z-scores over the batch (TRL's ``normalize_advantages``, ε=1e-4).

    >>> rloo([1, 0, 0, 1], [0, 0, 0, 0]).values.round(4).tolist()
    [0.6667, -0.6667, -0.6667, 0.6667]
    """
    conv = _convention(convention, CONVENTIONS, "trl", "rloo")
    singleton = conv.singleton if singleton is None else singleton
    values, valid, st, n = _prepare(rewards, groups)
    constant = constant_groups(values, valid, st, n)
    g = st.at(st.count)
    factor = np.divide(g, g - 1, out=np.zeros_like(g), where=g > 1)
    adv = factor * (values - st.at(st.mean))
    adv = np.where(g == 1, values if singleton == "raw" else 0.0, adv)
    adv = np.where(st.at(constant) | ~valid, 0.0, adv)
    if whiten and valid.sum() > 1:
        m, s = adv[valid].mean(), adv[valid].std(ddof=1)
        adv = np.where(valid, (adv - m) / (s + 1e-4), 0.0)
    return Advantages(adv, valid, np.where(valid, values, 0.0), "rloo", conv.name, _counts(valid, st, constant))


def _whiten(x: FloatArray, weight: FloatArray, conv: Convention) -> FloatArray:
    """Global whitening of `x`, each entry counted `weight` times (its token count)."""
    total = weight.sum()
    if total <= conv.ddof:
        return np.zeros_like(x)
    mean = float((x * weight).sum() / total)
    var = float((weight * (x - mean) ** 2).sum() / (total - conv.ddof))
    if conv.name == "openrlhf":  # rstd = clamp(var, min=1e-8).rsqrt()
        return (x - mean) / math.sqrt(max(var, conv.eps))  # type: ignore[no-any-return]
    return (x - mean) / math.sqrt(var + conv.eps)  # type: ignore[no-any-return]  # verl masked_whiten


def reinforce_pp(rewards: Rewards, groups: Groups | None = None, *, convention: str | None = None,
                 lengths: npt.ArrayLike | None = None, baseline: bool = False) -> Advantages:
    """REINFORCE++ (Hu 2025): the outcome reward whitened over the whole batch, no per-group
    std. With `baseline` (REINFORCE++-baseline), the group mean is subtracted first (a group of
    one keeps its raw reward under ``verl``, gets 0 under ``openrlhf``).

    Trainers whiten per token: with γ=1 and no KL term every token of rollout i carries R_i, so
    give `lengths` (response tokens per rollout) to weight each rollout by its tokens exactly as
    they do; without it each rollout counts once. Default convention ``verl`` (unbiased
    variance, ``rsqrt(var + 1e-8)``); ``openrlhf`` uses the population variance floored at 1e-8.
    """
    conv = _convention(convention, WHITENING, "verl", "reinforce_pp")
    if baseline and groups is None:
        raise ValueError("reinforce_pp: the baseline variant needs group labels")
    values, valid, st, n = _prepare(rewards, groups)
    constant = constant_groups(values, valid, st, n)
    weight = valid.astype(np.float64)
    if lengths is not None:
        lens = np.asarray(lengths, dtype=np.float64)
        if lens.shape != values.shape or (lens < 0).any():
            raise ValueError("reinforce_pp: lengths must be one non-negative count per rollout")
        weight = weight * lens
    x = values
    if baseline:
        x = values - st.at(st.mean)
        x = np.where(st.at(st.count == 1), values if conv.singleton == "raw" else 0.0, x)
    adv = np.where(valid, _whiten(np.where(valid, x, 0.0), weight, conv), 0.0)
    name = "reinforce_pp_baseline" if baseline else "reinforce_pp"
    return Advantages(adv, valid, np.where(valid, values, 0.0), name, conv.name, _counts(valid, st, constant))


def reinforce_pp_baseline(rewards: Rewards, groups: Groups, *, convention: str | None = None,
                          lengths: npt.ArrayLike | None = None) -> Advantages:
    """REINFORCE++-baseline: group mean subtracted, then global whitening (see `reinforce_pp`)."""
    return reinforce_pp(rewards, groups, convention=convention, lengths=lengths, baseline=True)


def dapo_keep(rewards: Rewards, groups: Groups) -> BoolArray:
    """DAPO's dynamic-sampling filter, per rollout: keep a group iff its scorable rewards are
    not all equal, or it has exactly one (verl recipe ``dapo_ray_trainer``:
    ``np.std(vals) > 0 or len(vals) == 1``). A group with no scorable reward is dropped."""
    values, valid, st, n = _prepare(rewards, groups)
    keep = (st.count == 1) | ((st.count > 1) & ~constant_groups(values, valid, st, n))
    return st.at(keep)  # type: ignore[no-any-return]


def kimi_length_reward(correct: npt.ArrayLike, lengths: npt.ArrayLike, groups: Groups,
                       valid: npt.ArrayLike | None = None) -> FloatArray:
    """Kimi 1.5's length reward within each group: ``λ_i = 0.5 − (len_i − min)/(max − min)``
    (0 when all lengths are equal); a correct rollout gets λ_i, a wrong one min(0, λ_i)."""
    ok = np.asarray(correct, dtype=bool)
    lens = np.asarray(lengths, dtype=np.float64)
    vmask = np.ones(len(lens), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    gid, n = group_ids(groups)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, gid[vmask], lens[vmask])
    np.maximum.at(hi, gid[vmask], lens[vmask])
    span = (hi - lo)[gid]
    lam = np.zeros_like(lens)
    np.divide(lens - lo[gid], span, out=lam, where=span > 0)
    lam = np.where(span > 0, 0.5 - lam, 0.0)
    return np.where(ok, lam, np.minimum(0.0, lam))  # type: ignore[no-any-return]


def grpo_lambda(rewards: Rewards, lengths: npt.ArrayLike, groups: Groups, *, fraction: float,
                convention: str | None = None) -> Advantages:
    """GRPO-λ (Dai et al. 2025): the top `fraction` of groups by correctness ratio ρ (share of
    correct rollouts; a reward ≥ 0.5 counts as correct) get Kimi's length-penalised reward
    (`kimi_length_reward`), the others keep their 0/1 correctness, then GRPO. The number of
    groups switched is ``round(fraction × groups)`` (halves up); ties in ρ keep first-seen order.
    ``Advantages.rewards`` holds the rewards actually normalised."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"grpo_lambda: fraction must be in [0, 1], got {fraction}")
    values, valid, st, n = _prepare(rewards, groups)
    correct = valid & (values >= 0.5)
    rho = np.zeros(n)
    np.divide(np.bincount(st.gid, weights=correct.astype(np.float64), minlength=n), st.count,
              out=rho, where=st.count > 0)
    scorable = np.flatnonzero(st.count > 0)
    order = scorable[np.argsort(-rho[scorable], kind="stable")]
    top = np.zeros(n, dtype=bool)
    top[order[: int(math.floor(fraction * len(scorable) + 0.5))]] = True
    shaped = kimi_length_reward(correct, lengths, st.gid, valid)
    used = np.where(st.at(top), shaped, correct.astype(np.float64))
    out = grpo(np.where(valid, used, np.nan), st.gid, convention=convention)
    return Advantages(out.values, out.mask, out.rewards, "grpo_lambda", out.convention, out.counts)


Judge = Callable[[Any, Any], float | None]


def win_rates(prefs: npt.ArrayLike) -> FloatArray:
    """Win rate of each of G responses from a G×G preference matrix, ``prefs[i, j]`` = P(i ≻ j)
    (1, 0, 0.5 for a tie, or a probability; NaN where not judged; the diagonal is ignored).
    When both orders were judged they are averaged: ``(p_ij + 1 − p_ji) / 2``.
    ``R_i = mean over j ≠ i`` (Pref-GRPO); NaN for a response with no judged comparison."""
    p = np.asarray(prefs, dtype=np.float64)
    g = p.shape[0]
    if p.shape != (g, g):
        raise ValueError(f"prefs must be a square matrix, got shape {p.shape}")
    other = 1.0 - p.T
    seen = (~np.isnan(p)).astype(np.float64) + (~np.isnan(other))
    pair = np.where(seen > 0, (np.nan_to_num(p) + np.nan_to_num(other)) / np.maximum(seen, 1), np.nan)
    np.fill_diagonal(pair, np.nan)
    counts = (~np.isnan(pair)).sum(axis=1)
    sums = np.nansum(pair, axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)  # type: ignore[no-any-return]


def pref_grpo(responses: Sequence[Any], groups: Groups, judge: Judge, *, both_orders: bool = False,
              convention: str | None = None) -> Advantages:
    """Pref-GRPO (arXiv 2508.20751): each response's win rate against the other responses of its
    group under a pairwise `judge` (``judge(a, b)`` = P(a ≻ b), 0.5 a tie, None when it cannot
    tell), then GRPO. G(G−1)/2 judge calls per group, G(G−1) with `both_orders`. A group of one
    has no win rate (unscorable, mask False)."""
    gid, n = group_ids(groups)
    if len(gid) != len(responses):
        raise ValueError(f"{len(responses)} responses but {len(gid)} group labels")
    rates = np.full(len(gid), np.nan)
    members: list[list[int]] = [[] for _ in range(n)]
    for i, g in enumerate(gid.tolist()):
        members[g].append(i)
    for idx in members:
        k = len(idx)
        if k < 2:
            continue
        p = np.full((k, k), np.nan)
        for a in range(k):
            for b in range(a + 1, k):
                p[a, b] = _judged(judge(responses[idx[a]], responses[idx[b]]))
                if both_orders:
                    p[b, a] = _judged(judge(responses[idx[b]], responses[idx[a]]))
        rates[idx] = win_rates(p)
    out = grpo(rates, gid, convention=convention)
    return Advantages(out.values, out.mask, out.rewards, "pref_grpo", out.convention, out.counts)


def _judged(p: float | None) -> float:
    if p is None or not math.isfinite(p):
        return math.nan
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a pairwise judge returns P(a ≻ b) in [0, 1], got {p}")
    return float(p)


def gated(channels: npt.ArrayLike, thresholds: Sequence[float]) -> tuple[FloatArray, BoolArray]:
    """Gated reward accumulation (G-RA, Sun et al. 2025), channels in priority order (columns of
    an n×K array, highest first): channel k counts only when every higher-priority channel meets
    its threshold (``≥ thresholds[k-1]``); the reward is the sum of the counted channels.

    Returns the rewards and the mask of scorable ones: a rollout is unscorable when a channel it
    needs (the first, or one whose gates are all open) or a gating channel is NaN."""
    c = np.asarray(channels, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != len(thresholds) + 1:
        raise ValueError(f"gated: need an n×K array and K−1 thresholds, got {c.shape} and {len(thresholds)}")
    open_ = np.ones(c.shape[0], dtype=bool)
    total = np.zeros(c.shape[0])
    valid = np.ones(c.shape[0], dtype=bool)
    for k in range(c.shape[1]):
        col = c[:, k]
        valid &= ~(open_ & np.isnan(col))
        total += np.where(open_ & ~np.isnan(col), col, 0.0)
        if k < len(thresholds):
            open_ = open_ & ~np.isnan(col) & (col >= thresholds[k])
    return np.where(valid, total, 0.0), valid


# The estimators the `advantage` spec op finds by name (through the ``rewardlab.advantages``
# entry-point group): each takes (rewards, groups, convention=None) and returns `Advantages`.
ESTIMATORS: dict[str, Callable[..., Advantages]] = {
    "grpo": grpo,
    "grpo_batch": lambda r, g, convention=None: grpo(r, g, convention=convention, scale="batch"),
    "dr_grpo": dr_grpo,
    "rloo": rloo,
    "reinforce_pp": lambda r, g, convention=None: reinforce_pp(r, None, convention=convention),
    "reinforce_pp_baseline": reinforce_pp_baseline,
}
ESTIMATOR_CONVENTIONS: dict[str, tuple[str, ...]] = {
    name: tuple(WHITENING if name.startswith("reinforce_pp") else CONVENTIONS) for name in ESTIMATORS
}
UNGROUPED = frozenset({"reinforce_pp"})  # whitened over the batch: the groups play no part
