"""The summary of a scoring run: rows, statuses, component statistics, latency, cache use, cost."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rewardlab.core.types import Cost, Score


@dataclass
class Summary:
    """What a scoring run did."""

    rows_in: int = 0
    scored: int = 0
    resumed: int = 0
    malformed: list[tuple[str, str]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    components: dict[str, list[float]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    cache_hits: int = 0
    computed: int = 0
    seconds: float = 0.0
    spent: Cost = field(default_factory=Cost)

    def add(self, score: Score) -> None:
        self.statuses[score.status.value] += 1
        if score.value is not None:
            self.components.setdefault("reward", []).append(score.value)
        for k, v in score.components.items():
            if v is not None and math.isfinite(v):
                self.components.setdefault(k, []).append(v)

    def component_stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for k, vals in self.components.items():
            out[k] = {
                "n": len(vals),
                "mean": statistics.fmean(vals),
                "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0,
                "min": min(vals),
                "max": max(vals),
            }
        return out

    def spend(self, cost: Cost) -> None:
        """Count what scoring spent (the Runtime's statistics of a call: every computed leaf,
        failed ones included; scores served from the cache spend nothing)."""
        self.spent += cost

    def cost(self) -> dict[str, float | int]:
        """What the run spent: seconds of reward compute (summed over reward calls, so it can
        exceed the run's wall time), judge input and output tokens, usd. Scores served from the
        cache, and a leaf used twice in a spec, are not counted again."""
        return self.spent.model_dump()

    def describe_cost(self) -> str:
        """The summed cost in one line, e.g. ``12.3 s of reward compute, judge tokens 1,200 in /
        340 out, $0.0123``; tokens and money appear only when nonzero."""
        c = self.spent
        parts = [f"{c.seconds:.3g} s of reward compute"]
        if c.input_tokens or c.output_tokens:
            parts.append(f"judge tokens {c.input_tokens:,} in / {c.output_tokens:,} out")
        if c.usd:
            parts.append(f"${c.usd:.4g}")
        return ", ".join(parts)

    def latency(self, q: float) -> float | None:
        if not self.latencies:
            return None
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "scored": self.scored,
            "resumed": self.resumed,
            "malformed": len(self.malformed),
            "statuses": dict(self.statuses),
            "components": self.component_stats(),
            "latency_p50_s": self.latency(0.5),
            "latency_p99_s": self.latency(0.99),
            "cache_hits": self.cache_hits,
            "computed": self.computed,
            "seconds": self.seconds,
            "rows_per_s": self.scored / self.seconds if self.seconds else None,
            "cost": self.cost(),
        }
