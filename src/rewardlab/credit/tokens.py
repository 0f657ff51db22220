"""Token-level credit: step, turn and span rewards placed on token positions through a
tokenizer's character offsets, as the per-token arrays and masks that trainers consume (verl's
``token_level_scores`` with ``response_mask``, OpenRLHF's per-token rewards, TRL's per-token
advantages), right-padded to one length by `pad`.

A token belongs to the span that contains its first character (as `implicit_prm` assigns tokens
to steps); a token with an empty span (special tokens, offset ``(0, 0)`` after the first) or
outside every span belongs to none and is masked out. A reward whose span holds no token cannot
be placed: it is listed in ``TokenCredit.unplaced``, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from rewardlab.core.types import TokenScores
from rewardlab.credit._groups import BoolArray, FloatArray, IntArray
from rewardlab.credit.steps import segment

Span = tuple[int, int]
Placement = Literal["last", "all", "spread"]


@dataclass(frozen=True)
class TokenCredit:
    """Per-token values and mask for one response; `unplaced` lists the spans (by index) whose
    reward no token could carry."""

    values: FloatArray
    mask: BoolArray
    unplaced: list[int] = field(default_factory=list)


def token_owner(offsets: Sequence[Span], spans: Sequence[Span], *, disjoint: bool = True) -> IntArray:
    """For each token, the index of the span holding its first character, or −1. Spans must be
    ordered and (with `disjoint`) must not overlap; without it, as for byte-level tokens that
    split one character, the last span starting at or before the character is taken."""
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    sp = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if len(sp) and ((sp[:, 1] < sp[:, 0]).any() or (sp[1:, 0] < sp[:-1, 0]).any()):
        raise ValueError("spans must be ordered")
    if disjoint and len(sp) and (sp[1:, 0] < sp[:-1, 1]).any():
        raise ValueError("spans must be ordered and must not overlap")
    idx = np.searchsorted(sp[:, 0], off[:, 0], side="right") - 1
    inside = (idx >= 0) & (off[:, 1] > off[:, 0])
    inside[inside] &= off[inside, 0] < sp[idx[inside], 1]
    return np.where(inside, idx, -1).astype(np.intp)  # type: ignore[no-any-return]


def spans_to_tokens(offsets: Sequence[Span], spans: Sequence[Span], values: Sequence[float], *,
                    place: Placement = "last", mask: npt.ArrayLike | None = None) -> TokenCredit:
    """Place one value per character span on the tokens.

    `place`: ``last`` puts a span's value on its last token (process rewards at step-end tokens,
    as PURE and PRIME do; MatchTIR's turn reward at the turn's last token), ``all`` copies it to
    every token of the span (advantages), ``spread`` divides it evenly (the sum is kept). `mask`
    (the trainer's response mask) removes tokens first, e.g. tool outputs. The result's mask is
    True on the tokens that belong to a span and pass `mask`."""
    vals = np.asarray(values, dtype=np.float64)
    if len(vals) != len(spans):
        raise ValueError(f"{len(vals)} values for {len(spans)} spans")
    if not np.isfinite(vals).all():
        raise ValueError("a span value is not finite")
    owner = token_owner(offsets, spans)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != owner.shape:
            raise ValueError(f"mask has {m.size} entries for {owner.size} tokens")
        owner = np.where(m, owner, -1)
    keep = owner >= 0
    out = np.zeros(len(owner))
    count = np.bincount(owner[keep], minlength=len(spans))
    unplaced = np.flatnonzero(count == 0).tolist()
    if place == "all":
        out[keep] = vals[owner[keep]]
    elif place == "spread":
        out[keep] = vals[owner[keep]] / count[owner[keep]]
    elif place == "last":
        pos = np.flatnonzero(keep)
        last = np.full(len(spans), -1)
        np.maximum.at(last, owner[pos], pos)
        placed = last >= 0
        out[last[placed]] = vals[placed]
    else:
        raise ValueError(f"place must be last, all or spread, not {place!r}")
    return TokenCredit(out, keep, unplaced)


def steps_to_tokens(text: str, offsets: Sequence[Span], step_values: Sequence[float], *,
                    by: str | re.Pattern[str] = "blank_lines", place: Placement = "last",
                    mask: npt.ArrayLike | None = None) -> TokenCredit:
    """Step rewards (one per step of `text`, split by `segment(text, by)`) on the tokens."""
    steps = segment(text, by)
    if len(steps) != len(step_values):
        raise ValueError(f"{len(step_values)} step values but the text has {len(steps)} steps")
    return spans_to_tokens(offsets, [(s.start, s.end) for s in steps], step_values, place=place, mask=mask)


def turn_runs(response_mask: npt.ArrayLike) -> list[tuple[int, int]]:
    """The turns of an agent response as token ranges ``[start, end)``: the maximal runs of
    ``response_mask == 1`` (tool outputs are masked out between them), as MatchTIR finds them."""
    m = np.asarray(response_mask, dtype=np.int8)
    edges = np.diff(np.concatenate([[0], (m != 0).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def turns_to_tokens(turn_values: Sequence[float], response_mask: npt.ArrayLike, *,
                    place: Placement = "all") -> TokenCredit:
    """One value per turn on the tokens of that turn (`turn_runs`); ``all`` (default: a turn's
    advantage on each of its tokens, as MatchTIR), ``last`` or ``spread``. A count mismatch
    between values and turns is an error."""
    runs = turn_runs(response_mask)
    if len(runs) != len(turn_values):
        raise ValueError(f"{len(turn_values)} turn values but the mask has {len(runs)} turns")
    n = len(np.asarray(response_mask))
    offsets = [(i, i + 1) for i in range(n)]  # token positions as unit spans
    return spans_to_tokens(offsets, runs, turn_values, place=place)


def reproject(tokens: TokenScores, offsets: Sequence[Span]) -> TokenCredit:
    """Per-token values of one tokenizer (`TokenScores` with offsets) moved onto another
    tokenizer's tokens of the same text: each value goes to the target token holding the last
    character of its source token, so the sum is kept. Source tokens without text are skipped
    only when their value is 0; otherwise they are reported in `unplaced`."""
    if tokens.offsets is None:
        raise ValueError(f"the token values of {tokens.tokenizer} carry no character offsets")
    src = np.asarray(tokens.offsets, dtype=np.int64).reshape(-1, 2)
    vals = np.asarray(tokens.values, dtype=np.float64)
    ends = [(int(b) - 1, int(b)) if b > a else (int(a), int(a)) for a, b in src]
    owner = token_owner(ends, list(offsets), disjoint=False) if len(offsets) else np.full(len(src), -1)
    out = np.zeros(len(offsets))
    ok = owner >= 0
    np.add.at(out, owner[ok], vals[ok])
    unplaced = [i for i in np.flatnonzero(~ok).tolist() if vals[i] != 0.0]
    tgt = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    return TokenCredit(out, tgt[:, 1] > tgt[:, 0], unplaced)


def pad(credits: Sequence[TokenCredit], length: int | None = None, *, side: Literal["right", "left"] = "right"
        ) -> tuple[FloatArray, BoolArray]:
    """A batch as ``[B, L]`` arrays (values, mask), padded with 0/False to `length` (default:
    the longest). Responses are right-padded in verl, OpenRLHF and TRL. Longer rows raise."""
    width = max((len(c.values) for c in credits), default=0) if length is None else length
    vals = np.zeros((len(credits), width))
    mask = np.zeros((len(credits), width), dtype=bool)
    for i, c in enumerate(credits):
        k = len(c.values)
        if k > width:
            raise ValueError(f"row {i} has {k} tokens, more than the length {width}")
        sl = slice(0, k) if side == "right" else slice(width - k, width)
        vals[i, sl] = c.values
        mask[i, sl] = c.mask
    return vals, mask
