"""Reading verdicts: strictly from text, or as probabilities from verdict-token log-probs,
and combining several sampled verdicts by vote."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_STRIP = " \t\r\n[]*\"'`.:()_#"


class Unparseable(ValueError):
    """The judge's answer holds no usable verdict (the reason says why)."""


@dataclass(frozen=True)
class VerdictFormat:
    """How to read one kind of verdict.

    Text: `pattern` (one capture group) must match, and every match must agree. A group that
    is a key of `labels` (compared upper-case) takes that value; otherwise, when `numeric`
    gives bounds, the group is read as a number within them. Log-probs: the first generated
    token that is not blank or punctuation is looked up among `labels` in the top log-probs,
    and the value is the probability-weighted label value.
    """

    pattern: re.Pattern[str]
    labels: dict[str, float]
    numeric: tuple[float, float] | None = None

    def parse_text(self, text: str) -> float:
        found = [m.group(1).strip() for m in self.pattern.finditer(text)]
        if not found:
            raise Unparseable(f"no verdict matching {self.pattern.pattern!r} in the judge output")
        values = {self._value(f) for f in found}
        if len(values) > 1:
            raise Unparseable(f"conflicting verdicts in the judge output: {sorted(set(found))}")
        return values.pop()

    def _value(self, token: str) -> float:
        label = token.upper()
        if label in self.labels:
            return self.labels[label]
        if self.numeric is not None:
            try:
                value = float(token)
            except ValueError:
                raise Unparseable(f"verdict {token!r} is not a number") from None
            lo, hi = self.numeric
            if not (math.isfinite(value) and lo <= value <= hi):
                raise Unparseable(f"verdict {token} is outside the scale [{lo:g}, {hi:g}]")
            return value
        raise Unparseable(f"verdict {token!r} is none of {sorted(self.labels)}")

    def from_logprobs(
        self, top: Sequence[tuple[str, Sequence[tuple[str, float]]]]
    ) -> tuple[float, dict[str, float], float]:
        """(value, normalised label probabilities, probability mass on the labels)."""
        for position, (sampled, entries) in enumerate(top):
            if not sampled.strip(_STRIP):
                continue
            mass: dict[str, float] = {}
            for token, logprob in entries:
                label = token.strip(_STRIP).upper()
                if label in self.labels and math.isfinite(logprob):
                    mass[label] = mass.get(label, 0.0) + math.exp(logprob)
            total = sum(mass.values())
            if total <= 0.0:
                shown = [t for t, _ in entries[:5]]
                raise Unparseable(
                    f"no verdict token ({', '.join(sorted(self.labels))}) among the top "
                    f"log-probs at output position {position} (top tokens: {shown})"
                )
            probs = {label: mass.get(label, 0.0) / total for label in self.labels}
            value = sum(self.labels[label] * p for label, p in probs.items())
            return value, probs, min(1.0, total)
        raise Unparseable("the judge output holds no verdict token")


def bracketed(alternatives: str) -> re.Pattern[str]:
    """``[[X]]`` where X matches `alternatives` (case-insensitive)."""
    return re.compile(r"\[\[\s*(" + alternatives + r")\s*\]\]", re.IGNORECASE)


YES_NO = VerdictFormat(bracketed("yes|no"), {"YES": 1.0, "NO": 0.0})


def vote(values: Sequence[float], how: str) -> float:
    """Combine sampled verdicts: `mean`, or `majority` (the most frequent value; a tie between
    the most frequent values is their mean)."""
    if not values:
        raise ValueError("no verdicts to combine")
    if how == "mean" or len(values) == 1:
        return sum(values) / len(values)
    counts = Counter(values)
    top = max(counts.values())
    modes = [v for v, c in counts.items() if c == top]
    return sum(modes) / len(modes)
