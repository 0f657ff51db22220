"""Preference pairs for DPO from scored rollout groups.

Strategies (`STRATEGIES`, after RLHFlow Online-RLHF's ``choose_type``):

- ``best_vs_worst`` (``max_min``): chosen = the best-scored candidate, rejected = the worst;
- ``best_vs_second`` (``max_max``): rejected = the next best;
- ``best_vs_random`` (``max_random``): rejected = a candidate drawn uniformly among those scored
  strictly worse than the best, with a generator seeded by ``(seed, group key)``, so a run is
  reproducible and a group's draw does not depend on the other groups.

Only candidates with an ``ok`` score take part; identical response texts in a group count once
(the first read). Among equal scores the candidate read first is taken (for the best and for
the worst alike). A pair whose rewards are equal is always dropped (there is no preference); the
margin ``r_chosen - r_rejected`` (positive; for a lower-is-better reward the sign is turned) is
stored on every pair. `Filters` drop pairs by margin (absolute, or in units of the group's
reward std, population std over its ok candidates), Bradley-Terry confidence
``sigmoid(margin) >= tau`` (meaningful when rewards are BT logits, as reward-model outputs are),
agreement of every ensemble member, matched lengths (characters), and duplicates (a pair with
the same prompt, chosen and rejected texts as an earlier one). Every drop is counted by reason.

`to_trl` writes a pair in TRL's DPO format: ``prompt``, ``chosen``, ``rejected`` as text, or as
message lists (TRL's conversational format) when the input had messages.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardlab.apply.groups import Candidate, Group, response_length
from rewardlab.apply.rejection import ranked
from rewardlab.core.types import Message

Strategy = Literal["best_vs_worst", "best_vs_random", "best_vs_second"]
STRATEGIES: tuple[str, ...] = ("best_vs_worst", "best_vs_random", "best_vs_second")


@dataclass(frozen=True)
class Filters:
    """Which pairs to keep. `min_margin`: drop a pair whose margin is not above it (an equal
    pair is always dropped); `min_margin_std`: the same in units of the group's reward std;
    `min_confidence`: drop unless ``sigmoid(margin) >= min_confidence``; `ensemble_agree`: drop
    unless every ensemble member scores chosen strictly better than rejected; `max_length_diff`:
    drop when the responses differ in length by more characters than this; `dedupe`: drop a
    pair repeating an earlier pair's texts."""

    min_margin: float = 0.0
    min_margin_std: float | None = None
    min_confidence: float | None = None
    ensemble_agree: bool = False
    max_length_diff: int | None = None
    dedupe: bool = True

    def __post_init__(self) -> None:
        for name in ("min_margin", "min_margin_std", "min_confidence"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(v) or v < 0):
                raise ValueError(f"{name} must be a finite number >= 0, not {v}")
        if self.min_confidence is not None and not 0 <= self.min_confidence < 1:
            raise ValueError(f"min_confidence must be in [0, 1), not {self.min_confidence}")
        if self.max_length_diff is not None and self.max_length_diff < 0:
            raise ValueError(f"max_length_diff must be >= 0, not {self.max_length_diff}")


@dataclass
class Pair:
    """One preference pair of a group: chosen, rejected and the margin (> 0)."""

    group: str
    chosen: Candidate
    rejected: Candidate
    margin: float


@dataclass
class Pairs:
    """The pairs built, and how many groups or pairs were dropped, by reason."""

    pairs: list[Pair] = field(default_factory=list)
    groups: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


def _distinct(cands: Sequence[Candidate]) -> list[Candidate]:
    seen: set[str] = set()
    out = []
    for c in cands:
        t = c.sample.response_text
        if t not in seen:
            seen.add(t)
            out.append(c)
    return out


def _pick(order: list[Candidate], strategy: str, rng: random.Random, higher: bool) -> Candidate | None:
    """The rejected candidate for the best (`order[0]`) of a ranked group."""
    best = order[0]
    if strategy == "best_vs_second":
        return order[1]
    if strategy == "best_vs_worst":
        worst_value = order[-1].value
        return next(c for c in order if c.value == worst_value)  # the first read among the worst
    worse = [c for c in order[1:] if (c.value < best.value if higher else c.value > best.value)]
    if not worse:
        return None
    return worse[rng.randrange(len(worse))]


def _why_not(pair: Pair, std: float, f: Filters) -> str | None:
    """The filter that drops `pair`, or None."""
    if pair.margin <= f.min_margin:
        return "margin below min_margin"
    if f.min_margin_std is not None and pair.margin <= f.min_margin_std * std:
        return "margin below min_margin_std"
    if f.min_confidence is not None and 1 / (1 + math.exp(-pair.margin)) < f.min_confidence:
        return "Bradley-Terry confidence below min_confidence"
    if f.ensemble_agree:
        w, lo = pair.chosen.members, pair.rejected.members
        if not w or len(w) != len(lo) or any(a is None or b is None for a, b in zip(w, lo, strict=True)):
            return "ensemble members missing"
        if not all(a > b for a, b in zip(w, lo, strict=True)):  # type: ignore[operator]
            return "not every ensemble member prefers chosen"
    if f.max_length_diff is not None and abs(response_length(pair.chosen) - response_length(pair.rejected)) \
            > f.max_length_diff:
        return "lengths differ by more than max_length_diff"
    return None


def build_pairs(groups: Sequence[Group], strategy: Strategy = "best_vs_worst", filters: Filters | None = None,
                *, seed: int = 0, higher: bool = True) -> Pairs:
    """One pair per group by `strategy`, kept when it passes `filters` (see the module
    docstring); groups without a pair are counted by reason in `Pairs.dropped`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    f = filters or Filters()
    if f.ensemble_agree and not any(c.members for g in groups for c in g.candidates):
        raise ValueError("ensemble agreement needs ensemble scores: several rewards, or a spec whose root "
                         "is an ensemble")
    out = Pairs(groups=len(groups))
    seen: set[tuple[str, str, str]] = set()
    for g in groups:
        order = ranked(_distinct([c for c in g.candidates if c.ok]), higher)
        if not order:
            out.dropped["no ok score in the group"] += 1
            continue
        if len(order) < 2:
            out.dropped["fewer than 2 distinct ok responses"] += 1
            continue
        rejected = _pick(order, strategy, random.Random(f"{seed}\x00{g.key}"), higher)
        if rejected is None or rejected.value == order[0].value:
            out.dropped["equal rewards"] += 1
            continue
        sign = 1.0 if higher else -1.0
        pair = Pair(g.key, order[0], rejected, sign * (order[0].value - rejected.value))
        std = statistics.pstdev([c.value for c in order]) if len(order) > 1 else 0.0
        why = _why_not(pair, std, f)
        if why is None and f.dedupe:
            k = (g.key, pair.chosen.sample.response_text, pair.rejected.sample.response_text)
            if k in seen:
                why = "duplicate pair"
            seen.add(k)
        if why is not None:
            out.dropped[why] += 1
            continue
        out.pairs.append(pair)
    return out


def _messages(value: Any, role: str = "assistant") -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [m.model_dump(exclude_none=True) if isinstance(m, Message) else dict(m) for m in value]
    return [{"role": role, "content": value}]


def to_trl(pair: Pair) -> dict[str, Any]:
    """The pair as a TRL DPO row: ``prompt``, ``chosen``, ``rejected`` (texts; message lists when
    the prompt or a response is a conversation), plus ``margin``, ``score_chosen``,
    ``score_rejected`` and the input rows (``chosen_row``, ``rejected_row``)."""
    w, lo = pair.chosen.sample, pair.rejected.sample
    chat = any(isinstance(x, list) for x in (w.prompt, w.response, lo.response))
    row: dict[str, Any]
    if chat:
        row = {"prompt": _messages(w.prompt, "user"), "chosen": _messages(w.response),
               "rejected": _messages(lo.response)}
    else:
        row = {"prompt": w.prompt, "chosen": w.response, "rejected": lo.response}
    row.update(margin=pair.margin, score_chosen=pair.chosen.value, score_rejected=pair.rejected.value,
               chosen_row=pair.chosen.index, rejected_row=pair.rejected.index)
    return row
