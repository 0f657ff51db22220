"""Group bookkeeping shared by the estimators: dense group ids and masked per-group statistics,
computed with `np.bincount` over a flat array (no Python loop per group)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardlab.core.types import Score

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


def group_ids(groups: Sequence[Hashable] | npt.ArrayLike) -> tuple[IntArray, int]:
    """Dense ids 0..n_groups-1 for `groups` (any hashable labels: prompt texts, uids, ints) and
    the number of groups. Integer labels keep their order (small non-negative ones are mapped by
    `np.bincount` without sorting, others through `np.unique`); other labels go through a dict,
    in order of first appearance."""
    arr = np.asarray(groups) if not isinstance(groups, np.ndarray) else groups
    if arr.ndim == 1 and arr.dtype.kind in "iub":
        if arr.size and arr.min() >= 0 and arr.max() < 4 * arr.size + 1024:  # small labels: no sort
            labels = arr.astype(np.intp)
            present = np.bincount(labels) > 0
            dense = np.cumsum(present) - 1
            return dense[labels].astype(np.intp, copy=False), int(present.sum())
        uniq, inv = np.unique(arr, return_inverse=True)
        return inv.astype(np.intp, copy=False), len(uniq)
    seen: dict[Any, int] = {}
    ids = np.fromiter((seen.setdefault(g, len(seen)) for g in list(groups)),  # type: ignore[arg-type]
                      dtype=np.intp, count=len(groups))  # type: ignore[arg-type]
    return ids, len(seen)


def as_rewards(rewards: Sequence[float | None | Score] | npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    """Rewards as a float array and the mask of scorable ones.

    A reward is unscorable when it is None, NaN or infinite, or a `Score` whose status is not
    ``ok``; its slot in the array holds 0.0 (never NaN) and the mask says to leave it out."""
    if isinstance(rewards, np.ndarray) and rewards.dtype.kind == "f":
        values = rewards.astype(np.float64, copy=True)
    else:
        seq = list(rewards)  # type: ignore[arg-type]
        values = np.array([_value(r) for r in seq], dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"rewards must be one-dimensional, got shape {values.shape}")
    valid = np.isfinite(values)
    values[~valid] = 0.0
    return values, valid


def _value(r: float | None | Score) -> float:
    if isinstance(r, Score):
        return r.value if r.ok and r.value is not None else np.nan
    return np.nan if r is None else float(r)


@dataclass(frozen=True)
class GroupStats:
    """Per-group statistics of the scorable rewards (index by group id; `at(x)` spreads a
    per-group array back onto the samples)."""

    gid: IntArray
    count: FloatArray  # scorable members per group
    mean: FloatArray  # 0 for a group with no scorable member
    sq: FloatArray  # sum of squared deviations from the mean

    def at(self, per_group: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return per_group[self.gid]

    def std(self, ddof: int) -> FloatArray:
        """Standard deviation with `ddof` (0 population, 1 Bessel); 0 where undefined."""
        denom = self.count - ddof
        out = np.zeros_like(self.sq)
        np.divide(self.sq, denom, out=out, where=denom > 0)
        return np.sqrt(out)


def group_stats(values: FloatArray, valid: BoolArray, gid: IntArray, n_groups: int) -> GroupStats:
    w = valid.astype(np.float64)
    count = np.bincount(gid, weights=w, minlength=n_groups)
    total = np.bincount(gid, weights=values * w, minlength=n_groups)
    mean = np.zeros(n_groups)
    np.divide(total, count, out=mean, where=count > 0)
    dev = (values - mean[gid]) * w
    sq = np.bincount(gid, weights=dev * dev, minlength=n_groups)
    return GroupStats(gid, count, mean, sq)


def constant_groups(values: FloatArray, valid: BoolArray, st: GroupStats, n_groups: int) -> BoolArray:
    """Per group: at least two scorable rewards, all exactly equal (their float mean may not be,
    so such groups are told apart here rather than by a zero std)."""
    hi = np.full(n_groups, -np.inf)
    lo = np.full(n_groups, np.inf)
    np.maximum.at(hi, st.gid[valid], values[valid])
    np.minimum.at(lo, st.gid[valid], values[valid])
    return (st.count > 1) & (hi == lo)  # type: ignore[no-any-return]
