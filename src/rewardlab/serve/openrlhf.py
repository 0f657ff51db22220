"""OpenRLHF's remote-reward protocol (``POST /get_reward``; OpenRLHF's `serve_rm` and the
client in ``openrlhf/utils/agent.py``): ``{"query": [str], "prompts": [str], "labels": [...]}``
in, ``{"rewards": [float], "scores": [float], "extra_logs": {name: [float]}}`` out.

How the response is recovered from a query (``query = decode(prompt_ids + response_ids)``, the
chat template and special tokens included):

1. with a prompt that the query contains: the text after the prompt's first occurrence (the
   prompt is a prefix, perhaps after a BOS token). OpenRLHF sends the chat-templated prompt, so
   this is exact, and it is preferred to a marker: a response can forge a marker (below);
2. else (no prompt, or a decode that does not reproduce the prompt's text) with a
   ``response_after`` marker (e.g. ``"<|im_start|>assistant\\n"``): the text after the marker's
   *last* occurrence in the query (a multi-turn prompt holds the marker once per earlier
   assistant turn, and those turns must not be graded as the response). Without the prompt
   nothing tells the real last turn from one the response forged after its own end-of-turn
   token, so send prompts where the trainer can; a query without the marker is an error;
3. else (a prompt the query does not contain, or no prompt and no marker): an error — the whole
   query is never graded, as it holds the prompt, and a prompt can hold the answer.

With `special` (the special tokens of the policy's tokenizer, ``--tokenizer``) the response
ends at its first special token: a generation stops at its end-of-turn or EOS token, and what
follows it in a query (padding, or a turn the policy forged by writing ``<|im_end|>`` and
``<|im_start|>assistant`` as text, with the gold answer in it) is not the response. A decoded
query cannot tell a special token from its literal text, so literal text counts as the token.
Then every string in `strip` (e.g. ``"<|im_end|>"``, ``"</s>"``) is removed from the response.
A label ``""`` (OpenRLHF's value when the dataset has no label column) means no reference.

Every sample gets a number: a score that is not ``ok`` sends `fallback` in `rewards` and
`scores`; `extra_logs` has the same keys for every sample of every request: each component of
the spec (a component a score lacks is sent as `fallback`) and ``rewardlab_ok`` (1.0 for an ok
score, else 0.0), so the share of fallbacks shows in the trainer's logs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
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
    special: tuple[str, ...] = field(default_factory=tuple)

    @cached_property
    def _special(self) -> re.Pattern[str] | None:
        tokens = sorted({t for t in self.special if t}, key=len, reverse=True)
        return re.compile("|".join(map(re.escape, tokens))) if tokens else None

    def response(self, query: str, prompt: str | None) -> str:
        at = query.find(prompt) if prompt else -1
        if at >= 0:
            text = query[at + len(prompt or ""):]
        elif self.response_after:
            at = query.rfind(self.response_after)
            if at < 0:
                raise Unsplittable(f"the query does not contain the marker {self.response_after!r}")
            text = query[at + len(self.response_after):]
        elif prompt:
            raise Unsplittable("the query does not contain its prompt (and no --response-after marker is set)")
        else:
            raise Unsplittable("no prompt to strip from the query and no --response-after marker is set")
        if self._special is not None:
            end = self._special.search(text)
            if end is not None:
                text = text[:end.start()]
        for token in self.strip:
            text = text.replace(token, "")
        return text

    def sample(self, query: str, prompt: str | None, label: Any) -> Sample:
        response = self.response(query, prompt)
        reference = None if label is None or label == "" else label
        return Sample.from_text(prompt or "", response, reference)


def tokenizer_specials(path: str | Path) -> tuple[str, ...]:
    """The special tokens of the local Hugging Face tokenizer directory `path` (its
    ``all_special_tokens`` and every added token marked special), read without the network."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ImportError(f"--tokenizer needs transformers (pip install 'rewardlab[models]'): {exc}") from None
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ValueError(f"{path}: not a tokenizer directory")
    try:
        tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot load a tokenizer: {exc}") from None
    added = (t.content for t in getattr(tok, "added_tokens_decoder", {}).values() if getattr(t, "special", False))
    specials = tuple(dict.fromkeys(t for t in (*tok.all_special_tokens, *added) if t))
    if not specials:
        raise ValueError(f"{path}: the tokenizer has no special tokens")
    return specials


def _number(v: float | None, fallback: float) -> float:
    return fallback if v is None or not math.isfinite(v) else float(v)


def reply(scores: Sequence[Score], keys: Sequence[str], fallback: float) -> dict[str, Any]:
    """The ``/get_reward`` answer for `scores` (one per query, in order)."""
    rewards = [_number(s.value if s.ok else None, fallback) for s in scores]
    logs: dict[str, list[float]] = {k: [_number(s.components.get(k), fallback) for s in scores] for k in keys}
    logs[OK_KEY] = [1.0 if s.ok else 0.0 for s in scores]
    return {"rewards": rewards, "scores": list(rewards), "extra_logs": logs}
