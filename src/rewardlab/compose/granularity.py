"""The finer values (`steps`, `turns`, `tokens`) of composite and transformed scores.

A composite's finer values are the same linear combination of its children's finer values as
its value is of their values; the rule, and when finer values are dropped instead, is stated in
`rewardlab.compose.nodes`. What is dropped is said in ``details["dropped"]`` (one line each).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.core.types import Score, Status, TokenScores

KINDS = ("steps", "turns", "tokens")
_UNIT = {"steps": "step", "turns": "turn", "tokens": "token"}


@dataclass
class Finer:
    """The finer values of a score being built, and what was dropped (and why)."""

    steps: list[float] | None = None
    turns: list[float] | None = None
    tokens: TokenScores | None = None
    dropped: list[str] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        """The `Score` fields: steps, turns and tokens."""
        return {"steps": self.steps, "turns": self.turns, "tokens": self.tokens}


def carried(score: Score) -> list[str]:
    """The kinds of finer values an ok score carries (a failed score's are no credit)."""
    if score.status is not Status.ok:
        return []
    return [k for k in KINDS if getattr(score, k) is not None]


def any_finer(scores: Sequence[Score]) -> bool:
    """Whether any of `scores` carries finer values (the common case is none: skip the work)."""
    return any(s.steps is not None or s.turns is not None or s.tokens is not None for s in scores)


def linear(labels: Sequence[str], scores: Sequence[Score], values: Sequence[float | None],
           coefs: Sequence[float | None], why: str) -> Finer:
    """The finer values of a composite whose value is ``sum_i coefs[i] * values[i]``.

    `values[i]` is what child i contributed to the value (its own value or a fallback; None when
    it was skipped); `coefs[i]` its coefficient, or None when the child's value does not enter
    the value linearly (`why` says so in the note for each finer value it carries). A child with
    finer values contributes ``coef * its finer values``, aligned unit by unit; a contributing
    child without them (a sequence-level reward, or a fallback) contributes ``coef * value`` to
    the last unit. With no child carrying a kind, the composite has none of that kind.
    """
    out = Finer()
    held = [carried(sc) for sc in scores]
    parts = [i for i, (v, c) in enumerate(zip(values, coefs, strict=True)) if v is not None and c is not None]
    for i, label in enumerate(labels):
        if i not in parts:
            out.dropped.extend(f"{kind} of {label}: {why}" for kind in held[i])
    for kind in KINDS:
        carriers = [i for i in parts if kind in held[i]]
        if not carriers:
            continue
        outcome = math.fsum(coefs[i] * values[i] for i in parts if i not in carriers)  # type: ignore[operator]
        lists = [_values(scores[i], kind) for i in carriers]
        problem = _misaligned(kind, [labels[i] for i in carriers], [scores[i] for i in carriers])
        if problem is None and not lists[0] and len(carriers) < len(parts):
            problem = f"{kind}: no {_UNIT[kind]} to carry the value of the children without {kind}"
        if problem is None:
            weights = [coefs[i] for i in carriers]
            combined = [weights[0] * v for v in lists[0]]  # type: ignore[operator]
            for c, vals in zip(weights[1:], lists[1:], strict=True):
                combined = [a + c * v for a, v in zip(combined, vals, strict=True)]  # type: ignore[operator]
            if combined:
                combined[-1] += outcome
            if all(map(math.isfinite, combined)):
                _set(out, kind, combined, scores[carriers[0]])
                continue
            problem = f"{kind}: a combined value is not finite"
        out.dropped.append(problem)
    return out


def _values(score: Score, kind: str) -> list[float]:
    if kind == "tokens":
        assert score.tokens is not None
        return score.tokens.values
    return getattr(score, kind)  # type: ignore[no-any-return]


def _set(out: Finer, kind: str, values: list[float], template: Score) -> None:
    if kind == "tokens":
        assert template.tokens is not None
        out.tokens = TokenScores(tokenizer=template.tokens.tokenizer, values=values,
                                 offsets=template.tokens.offsets)
    else:
        setattr(out, kind, values)


def _misaligned(kind: str, labels: Sequence[str], scores: Sequence[Score]) -> str | None:
    """Why the children's finer values of `kind` cannot be combined unit by unit, or None."""
    if kind == "tokens":
        toks = [s.tokens for s in scores]
        names = {t.tokenizer for t in toks if t is not None}
        if len(names) > 1:
            return "tokens: children use different tokenizers (" + ", ".join(
                f"{label}: {t.tokenizer}" for label, t in zip(labels, toks, strict=True) if t is not None) + ")"
        first = toks[0]
        assert first is not None
        if any(t is not None and t.offsets != first.offsets for t in toks[1:]):
            return "tokens: children's token offsets differ (the tokenizer saw different text)"
    lengths = [len(_values(s, kind)) for s in scores]
    if len(set(lengths)) > 1:
        return f"{kind}: children have different numbers of {_UNIT[kind]}s (" + ", ".join(
            f"{label}: {n}" for label, n in zip(labels, lengths, strict=True)) + ")"
    return None


def stale(score: Score, why: str) -> Finer:
    """No finer values: those `score` carries no longer describe the value (`why`)."""
    return Finer(dropped=[f"{kind}: {why}" for kind in carried(score)])
