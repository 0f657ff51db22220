"""Turn-level credit for agent trajectories: per-turn rewards, discounted turn returns and
MatchTIR's dual-level advantage.

MatchTIR (``CyberSculptor96/MatchTIR``, its modified verl ``compute_grpo_outcome_advantage``;
scoring-rules reference, section 6): ``A_traj`` is the GRPO z-score of the trajectory's summed
turn rewards; ``A_turn`` z-scores the discounted return ``G_j = r_j + γ·G_{j+1}`` (γ = 0.9)
across the group's rollouts **per turn index j**, with mean 0 and std 1 when only one rollout
has a turn j; a turn's advantage is ``(A_traj + A_turn_j) / 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rewardlab.core.types import Score
from rewardlab.credit._groups import BoolArray, FloatArray, constant_groups, group_ids, group_stats
from rewardlab.credit.advantages import Groups, grpo


def turn_rewards(score: Score) -> list[float]:
    """The per-turn rewards of an ok score (e.g. `tool_call_match` on a trajectory: the mean
    score of the calls made in each assistant turn); raises when the score failed or carries
    no turn values, so a missing turn reward is never read as 0."""
    if not score.ok:
        raise ValueError(f"the score is {score.status.value}: {score.reason}")
    if score.turns is None:
        raise ValueError("the score carries no turn rewards (the reward is not turn-level)")
    return list(score.turns)


def discounted_returns(rewards: Sequence[float], gamma: float = 1.0) -> FloatArray:
    """``G_j = r_j + γ·G_{j+1}`` for each turn j (G after the last turn is 0).

    >>> discounted_returns([1.0, 0.0, 1.0], 0.5).tolist()
    [1.25, 0.5, 1.0]
    """
    r = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(r)
    acc = 0.0
    for j in range(len(r) - 1, -1, -1):
        acc = r[j] + gamma * acc
        out[j] = acc
    return out


@dataclass(frozen=True)
class TurnAdvantages:
    """Per-turn advantages: `values[i][j]` for turn j of rollout i (empty where `mask[i]` is
    False: no turn rewards), with the two levels they average."""

    values: list[FloatArray]
    trajectory: FloatArray  # A_traj per rollout (0 where masked)
    per_turn: list[FloatArray]  # A_turn per rollout and turn
    mask: BoolArray


def _turn_lists(turns: Sequence[Sequence[float] | Score | None]) -> tuple[list[FloatArray], BoolArray]:
    out: list[FloatArray] = []
    ok = np.ones(len(turns), dtype=bool)
    for i, t in enumerate(turns):
        if isinstance(t, Score):
            t = t.turns if t.ok else None
        a = np.asarray([] if t is None else t, dtype=np.float64)
        if t is None or a.size == 0 or not np.isfinite(a).all():
            ok[i], a = False, np.zeros(0)
        out.append(a)
    return out, ok


def matchtir_advantages(turns: Sequence[Sequence[float] | Score | None], groups: Groups, *,
                        gamma: float = 0.9, eps: float = 1e-6) -> TurnAdvantages:
    """MatchTIR's dual-level advantage for each turn of each rollout (see the module docstring).
    Both levels follow verl, as MatchTIR does: Bessel std plus `eps`, and a group (or a turn
    index) with one rollout gets its raw value (mean 0, std 1). A rollout whose score failed or
    has no turns is left out of every statistic and gets no advantage (mask False)."""
    arrays, ok = _turn_lists(turns)
    gid, n_groups = group_ids(groups)
    if len(gid) != len(arrays):
        raise ValueError(f"{len(arrays)} turn lists but {len(gid)} group labels")
    totals = np.array([a.sum() if k else np.nan for a, k in zip(arrays, ok, strict=True)])
    traj = grpo(totals, gid, convention="verl", eps=eps)
    lens = np.array([a.size for a in arrays], dtype=np.intp)
    rets = np.concatenate([discounted_returns(a, gamma) for a in arrays]) if lens.sum() else np.zeros(0)
    owner = np.repeat(np.arange(len(arrays)), lens)
    index = np.concatenate([np.arange(k) for k in lens]) if lens.sum() else np.zeros(0, dtype=np.intp)
    max_turns = int(lens.max(initial=0)) + 1
    key = gid[owner] * max_turns + index  # one group per (prompt, turn index)
    kid, n_keys = group_ids(key)
    every = np.ones(rets.size, dtype=bool)
    st = group_stats(rets, every, kid, n_keys)
    flat = st.at(constant_groups(rets, every, st, n_keys))
    count = st.at(st.count)
    std = st.at(st.std(1))
    centred = rets - st.at(st.mean)
    per_turn = np.where(count > 1, np.divide(centred, std + eps, out=np.zeros_like(rets), where=std + eps > 0), rets)
    per_turn = np.where(flat, 0.0, per_turn)
    both = (traj.values[owner] + per_turn) / 2
    ends = np.cumsum(lens)
    starts = ends - lens
    return TurnAdvantages([both[a:b] for a, b in zip(starts, ends, strict=True)], traj.values,
                          [per_turn[a:b] for a, b in zip(starts, ends, strict=True)], ok)
