"""Position consistency of pairwise judges: does the verdict follow the response or the slot?

`judge_pairwise` asks each comparison in both orders and records, per sample, whether the two
orders agree (``details["consistent"]``) and each order's preference for the first slot
(``details["orders"][i]["first_slot_preference"]``); `position_report` sums these over a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rewardlab.core.types import Score

__all__ = ["PositionReport", "position_report"]


@dataclass(frozen=True)
class PositionReport:
    """Position consistency of pairwise verdicts over a batch.

    `compared`: ok scores judged in both orders; `inconsistent`: those whose two orders prefer
    different responses; `rate`: inconsistent / compared (None when nothing was compared);
    `first_slot_preference`: mean preference for whichever response was shown first, over all
    orders (0.5 means no position bias)."""

    compared: int
    inconsistent: int
    rate: float | None
    first_slot_preference: float | None


def position_report(scores: Sequence[Score]) -> PositionReport:
    """How often `judge_pairwise` changed its mind when the two responses swapped places."""
    compared = inconsistent = 0
    firsts: list[float] = []
    for s in scores:
        if not s.ok or not s.details:
            continue
        for order in s.details.get("orders", []):
            if "first_slot_preference" in order:
                firsts.append(float(order["first_slot_preference"]))
        if "consistent" in s.details:
            compared += 1
            inconsistent += not s.details["consistent"]
    return PositionReport(
        compared=compared,
        inconsistent=inconsistent,
        rate=inconsistent / compared if compared else None,
        first_slot_preference=sum(firsts) / len(firsts) if firsts else None,
    )
