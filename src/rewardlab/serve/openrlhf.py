"""OpenRLHF's remote-reward protocol (``POST /get_reward``; OpenRLHF's `serve_rm` and the
client in ``openrlhf/utils/agent.py``): ``{"query": [str], "prompts": [str], "labels": [...]}``
in, ``{"rewards": [float], "scores": [float], "extra_logs": {name: [float]}}`` out.

How the response is recovered from a query (``query = decode(prompt_ids + response_ids)``, the
chat template and special tokens included):

1. with a ``response_after`` marker (e.g. ``"<|im_start|>assistant\\n"``): the text after the
   marker's *last* occurrence in the query (a multi-turn prompt holds the marker once per
   earlier assistant turn, and those turns must not be graded as the response); a query without
   the marker is an error;
2. else with a prompt: the text after the prompt's first occurrence in the query (the prompt
   is a prefix, perhaps after a BOS token); a query that does not contain its prompt is an
   error — the whole query is never graded, as it holds the prompt;
3. no marker and no prompt: an error.

Then every string in `strip` (e.g. ``"<|im_end|>"``, ``"</s>"``) is removed from the response.
A label ``""`` (OpenRLHF's value when the dataset has no label column) means no reference.

Every sample gets a number: a score that is not ``ok`` sends `fallback` in `rewards` and
`scores`; `extra_logs` has the same keys for every sample of every request: each component of
the spec (a component a score lacks is sent as `fallback`) and ``rewardlab_ok`` (1.0 for an ok
score, else 0.0), so the share of fallbacks shows in the trainer's logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.core.types import Sample, Score

OK_KEY = "rewardlab_ok"


class Unsplittable(ValueError):
    """The response cannot be told apart from the prompt in a query."""


@dataclass(frozen=True)
class QuerySplitter:
    """Recovers the response from an OpenRLHF query (see the module doc)."""

    response_after: str | None = None
    strip: tuple[str, ...] = field(default_factory=tuple)

    def response(self, query: str, prompt: str | None) -> str:
        if self.response_after:
            at = query.rfind(self.response_after)
            if at < 0:
                raise Unsplittable(f"the query does not contain the marker {self.response_after!r}")
            text = query[at + len(self.response_after):]
        elif prompt:
            at = query.find(prompt)
            if at < 0:
                raise Unsplittable("the query does not contain its prompt (and no --response-after marker is set)")
            text = query[at + len(prompt):]
        else:
            raise Unsplittable("no prompt to strip from the query and no --response-after marker is set")
        for token in self.strip:
            text = text.replace(token, "")
        return text

    def sample(self, query: str, prompt: str | None, label: Any) -> Sample:
        response = self.response(query, prompt)
        reference = None if label is None or label == "" else label
        return Sample.from_text(prompt or "", response, reference)


def _number(v: float | None, fallback: float) -> float:
    return fallback if v is None or not math.isfinite(v) else float(v)


def reply(scores: Sequence[Score], keys: Sequence[str], fallback: float) -> dict[str, Any]:
    """The ``/get_reward`` answer for `scores` (one per query, in order)."""
    rewards = [_number(s.value if s.ok else None, fallback) for s in scores]
    logs: dict[str, list[float]] = {k: [_number(s.components.get(k), fallback) for s in scores] for k in keys}
    logs[OK_KEY] = [1.0 if s.ok else 0.0 for s in scores]
    return {"rewards": rewards, "scores": list(rewards), "extra_logs": logs}
