"""Rejection sampling (RAFT, Dong et al. 2023): keep the best responses of each prompt group for
supervised fine-tuning.

Per group, the candidates with an ``ok`` score at or beyond `threshold` (at least it, or at
most it for a lower-is-better reward) are ranked by score and the first `top_k` kept, or the
first ``ceil(top_fraction * group size)``. ``top_k=1`` without a threshold is OpenRLHF's
rejection-sampling processor (the argmax per prompt). Ties are broken by input order (the row
read first ranks first), so a run is reproducible. Non-ok candidates are never kept; a group
that keeps nothing says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rewardlab.apply.groups import Candidate, Group


@dataclass
class Kept:
    """What one group kept: the candidates in rank order (best first), the group's size, how
    many had an ok score, and why nothing was kept (None when something was)."""

    group: str
    kept: list[Candidate] = field(default_factory=list)
    n: int = 0
    ok: int = 0
    reason: str | None = None


def ranked(cands: Sequence[Candidate], higher: bool = True) -> list[Candidate]:
    """The ok candidates, best first; equal scores in input order."""
    ok = [(i, c) for i, c in enumerate(cands) if c.ok]
    ok.sort(key=lambda t: ((-t[1].value) if higher else t[1].value, t[0]))
    return [c for _, c in ok]


def keep_top(group: Group, *, top_k: int | None = 1, top_fraction: float | None = None,
             threshold: float | None = None, higher: bool = True) -> Kept:
    """The kept candidates of one group (see the module docstring). Give `top_k` or
    `top_fraction` (in (0, 1]), not both."""
    if (top_k is None) == (top_fraction is None):
        raise ValueError("give exactly one of top_k and top_fraction")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    if top_fraction is not None and not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], not {top_fraction}")
    if threshold is not None and not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, not {threshold}")
    out = Kept(group.key, n=len(group.candidates))
    order = ranked(group.candidates, higher)
    out.ok = len(order)
    if not order:
        out.reason = f"no ok score in the group ({group.failures()})"
        return out
    if threshold is not None:
        order = [c for c in order if (c.value >= threshold if higher else c.value <= threshold)]
        if not order:
            out.reason = f"no ok score {'>=' if higher else '<='} threshold {threshold:g}"
            return out
    k = top_k if top_k is not None else max(1, math.ceil((top_fraction or 1.0) * out.n))
    out.kept = order[:k]
    return out


def rejection_sample(groups: Sequence[Group], *, top_k: int | None = 1, top_fraction: float | None = None,
                     threshold: float | None = None, higher: bool = True) -> list[Kept]:
    """`keep_top` over every group, in order."""
    return [keep_top(g, top_k=top_k, top_fraction=top_fraction, threshold=threshold, higher=higher)
            for g in groups]
