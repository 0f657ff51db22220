"""Step-level credit: splitting a response into reasoning steps, aggregating process rewards,
PURE's min-form weights, Clip and Delta shaping, and PRIME's implicit-PRM advantages.

Sources (scoring-rules reference, section 6): PURE (Cheng et al. 2025,
``CJReinforce/PURE: openrlhf/utils/utils.py``), Gao et al. 2024 (arXiv 2410.15115, Clip and
Delta), PRIME (verl ``recipe/prime/prime_core_algos.py: compute_rloo_advantage_return``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rewardlab.core.types import Score
from rewardlab.credit._groups import BoolArray, FloatArray, as_rewards, group_ids
from rewardlab.credit.advantages import Groups, Rewards
from rewardlab.models.implicit import split_steps

STEP_LABEL = re.compile(r"(?im)^[ \t#>*_]*step[ \t]*\d+[ \t*_]*[:.)]")
"""``Step 1:``, ``**Step 2.**``, ``## Step 3)`` at the start of a line (case-insensitive)."""


@dataclass(frozen=True)
class Step:
    """One step of a response: its text is ``response[start:end]``."""

    start: int
    end: int
    text: str


def segment(text: str, by: Literal["blank_lines", "step_label"] | str | re.Pattern[str] = "blank_lines"
            ) -> list[Step]:
    """The steps of `text`, contiguous and covering it from its first character to its last.

    `by`: ``blank_lines`` splits on ``"\\n\\n"`` exactly as `implicit_prm` and PURE do (blank
    pieces join the step before, a separator belongs to the step it ends); ``step_label`` starts
    a step at each ``Step k:`` line (`STEP_LABEL`); any other string or compiled pattern is a
    regex whose matches start steps. Text before the first marker belongs to the first step;
    text without a marker is one step. Empty or blank text has no step.

    >>> [s.text for s in segment("Step 1: x = 2.\\nStep 2: so 4.", "step_label")]
    ['Step 1: x = 2.\\n', 'Step 2: so 4.']
    """
    if not text.strip():
        return []
    if by == "blank_lines":
        starts = split_steps(text, "\n\n")
    else:
        pattern = STEP_LABEL if by == "step_label" else (by if isinstance(by, re.Pattern) else re.compile(by))
        marks = sorted({m.start() for m in pattern.finditer(text)})
        starts = [0, *[m for m in marks[1:] if m > 0]]  # the first marker's step starts at 0
    ends = [*starts[1:], len(text)]
    return [Step(a, b, text[a:b]) for a, b in zip(starts, ends, strict=True)]


def aggregate(rewards: Sequence[float], how: Literal["min", "product", "last", "mean"] = "min") -> float:
    """One outcome from step rewards: ``min`` (a chain is as good as its weakest step; the
    usual PRM rule), ``product`` (every step right, for probabilities in [0, 1]), ``last``, or
    ``mean``. Raises on no steps or a non-finite reward (never a silent value)."""
    r = np.asarray(rewards, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no step rewards to aggregate")
    if not np.isfinite(r).all():
        raise ValueError("a step reward is not finite")
    if how == "min":
        return float(r.min())
    if how == "product":
        return float(np.prod(r))
    if how == "last":
        return float(r[-1])
    if how == "mean":
        return float(r.mean())
    raise ValueError(f"aggregate: how must be min, product, last or mean, not {how!r}")


def pure_weights(rewards: Sequence[float], temperature: float = 0.1) -> FloatArray:
    """PURE's min-form weights ``softmax_k(−r_k / T)`` over all steps of a response (T = 0.1 in
    PURE): most weight on the worst step. Computed stably (max subtracted)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = -np.asarray(rewards, dtype=np.float64) / temperature
    if z.size == 0:
        return z
    e = np.exp(z - z.max())
    return e / e.sum()  # type: ignore[no-any-return]


def pure_min_form(rewards: Sequence[float], temperature: float = 0.1) -> FloatArray:
    """PURE's step rewards ``w_k · r_k`` (`pure_weights`): their sum tends to ``min_k r_k`` as T
    falls, so a policy cannot raise its return by adding good-looking steps."""
    return pure_weights(rewards, temperature) * np.asarray(rewards, dtype=np.float64)  # type: ignore[no-any-return]


def clip_shaping(rewards: Sequence[float], eta: float = 0.0) -> FloatArray:
    """Gao et al.'s Clip: ``min(r_k − η, 0)`` for process rewards in [0, 1]; every step can only
    cost, so a longer chain never earns more from the PRM."""
    return np.minimum(np.asarray(rewards, dtype=np.float64) - eta, 0.0)  # type: ignore[no-any-return]


def delta_shaping(rewards: Sequence[float]) -> FloatArray:
    """Gao et al.'s Delta: ``r_k − r_{k+1}`` for k < K and 0 for the last step, so the return from
    step t telescopes to ``r_t − r_K``: bounded however many steps there are."""
    r = np.asarray(rewards, dtype=np.float64)
    out = np.zeros_like(r)
    out[:-1] = r[:-1] - r[1:]
    return out


@dataclass(frozen=True)
class TokenAdvantages:
    """Per-token advantages of a batch: `values[i]` for rollout i (empty where `mask[i]` is
    False: the rollout had no usable reward), and the returns they were whitened from."""

    values: list[FloatArray]
    returns: list[FloatArray]
    mask: BoolArray


def _token_lists(token_rewards: Sequence[Sequence[float] | Score | None]) -> tuple[list[FloatArray], BoolArray]:
    arrays: list[FloatArray] = []
    ok = np.ones(len(token_rewards), dtype=bool)
    for i, t in enumerate(token_rewards):
        if isinstance(t, Score):
            t = t.tokens.values if t.ok and t.tokens is not None else None
        a = np.asarray([] if t is None else t, dtype=np.float64)
        if t is None or a.size == 0 or not np.isfinite(a).all():
            ok[i] = False
            a = np.zeros(0)
        arrays.append(a)
    return arrays, ok


def prime_advantages(token_rewards: Sequence[Sequence[float] | Score | None], accuracy: Rewards, groups: Groups,
                     *, dpo_coef: float = 5.0, gt_coef: float = 5.0, eps: float = 1e-8) -> TokenAdvantages:
    """PRIME's advantages from implicit process rewards (the per-token values of
    `implicit_prm`/`implicit_dpo` scores, β·log-ratio) and the outcome accuracy.

    Each source is RLOO-baselined within its group, ``r'_t = r_t·n/(n−1) − Σ_j mean_j/(n−1)``
    (mean_j: rollout j's mean token reward; for accuracy, which sits on the last token, its
    value); they are summed with `dpo_coef` and `gt_coef` (PRIME's defaults, 5 and 5), turned
    into returns (reverse cumulative sum, γ=1) and whitened over every token of the batch
    (verl's ``masked_whiten``: unbiased variance, ``rsqrt(var + eps)``). A rollout without
    token rewards or accuracy is left out (n counts the others); a group of one gets a zero
    baseline-corrected reward (PRIME divides by zero there)."""
    arrays, ok = _token_lists(token_rewards)
    acc, acc_ok = as_rewards(accuracy)
    gid, n_groups = group_ids(groups)
    if not len(arrays) == len(acc) == len(gid):
        raise ValueError(f"{len(arrays)} token lists, {len(acc)} accuracies, {len(gid)} group labels")
    ok &= acc_ok
    lens = np.array([a.size if k else 0 for a, k in zip(arrays, ok, strict=True)], dtype=np.intp)
    flat = np.concatenate([a for a, k in zip(arrays, ok, strict=True) if k]) if ok.any() else np.zeros(0)
    owner = np.repeat(np.arange(len(arrays)), lens)
    w = ok.astype(np.float64)
    n = np.bincount(gid, weights=w, minlength=n_groups)[gid]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(ok, np.bincount(owner, weights=flat, minlength=len(arrays)) / np.maximum(lens, 1), 0.0)
    factor = np.divide(n, n - 1, out=np.zeros_like(n), where=n > 1)
    base = np.divide(np.bincount(gid, weights=means * w, minlength=n_groups)[gid], n - 1,
                     out=np.zeros_like(n), where=n > 1)
    implicit = np.where(n[owner] > 1, flat * factor[owner] - base[owner], 0.0)
    acc_sum = np.bincount(gid, weights=np.where(ok, acc, 0.0), minlength=n_groups)[gid]
    acc_rloo = np.where(n > 1, acc * factor - np.divide(acc_sum, n - 1, out=np.zeros_like(n), where=n > 1), 0.0)
    reward = dpo_coef * implicit
    ends = np.cumsum(lens)
    last = ends[ok] - 1
    reward[last] += gt_coef * acc_rloo[ok]
    suffix = np.cumsum(reward[::-1])[::-1]  # sum from t to the end of the batch
    after = np.append(suffix, 0.0)[ends]  # the sum after each rollout's last token
    returns = suffix - after[owner]
    total = returns.size
    if total > 1:
        mean = returns.mean()
        var = ((returns - mean) ** 2).sum() / (total - 1)
        adv = (returns - mean) / np.sqrt(var + eps)
    else:
        adv = np.zeros_like(returns)
    starts = ends - lens
    values = [adv[a:b] if k else np.zeros(0) for a, b, k in zip(starts, ends, ok, strict=True)]
    rets = [returns[a:b] if k else np.zeros(0) for a, b, k in zip(starts, ends, ok, strict=True)]
    return TokenAdvantages(values, rets, ok)


def step_rewards(score: Score) -> list[float]:
    """The per-step rewards of an ok score (a process reward such as `implicit_prm`); raises
    when the score failed or carries no steps, so a missing step reward is never read as 0."""
    if not score.ok:
        raise ValueError(f"the score is {score.status.value}: {score.reason}")
    if score.steps is None:
        raise ValueError("the score carries no step rewards (the reward is not step-level)")
    return list(score.steps)
