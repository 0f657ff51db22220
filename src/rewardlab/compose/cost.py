"""Adding up what scores cost (wall seconds, judge tokens, money)."""

from __future__ import annotations

from collections.abc import Iterable

from rewardlab.core.types import Cost, Score


def total_cost(scores: Iterable[Score]) -> Cost | None:
    """The sum of the costs of `scores`, field by field; None when none of them has a cost.

    Every score counts, whatever its status: a child that failed, abstained or was skipped by a
    composite still spent what its cost says."""
    seconds = usd = 0.0
    input_tokens = output_tokens = 0
    found = False
    for s in scores:
        c = s.cost
        if c is None:
            continue
        found = True
        seconds += c.seconds
        input_tokens += c.input_tokens
        output_tokens += c.output_tokens
        usd += c.usd
    if not found:
        return None
    return Cost(seconds=seconds, input_tokens=input_tokens, output_tokens=output_tokens, usd=usd)
