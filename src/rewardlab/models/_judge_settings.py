"""The settings every judge mode shares, declared once.

`JudgeSettings` lists them with their defaults and one validator; `with_settings` splices its
fields into a judge function's keyword parameters (`rewardlab.core.settings`), so users keep
writing them flat (``judge_score(model=..., base_url=..., votes=3)``, or the same keys under
``params:`` in a spec) and a new setting is one field here. A field marked ``fingerprint=False`` does not
change a verdict and stays out of the reward's fingerprint; one marked ``secret=True`` is
never shown.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardlab.core.settings import names, pick, secret, splice, unfingerprinted

Verdict = Literal["text", "logprobs"]
Vote = Literal["mean", "majority"]


@dataclass(frozen=True)
class JudgeSettings:
    """Where the judge is, how its verdict is read and voted, and what its tokens cost.

    `base_url` / `model` / `api_key`: the OpenAI-compatible endpoint (else from the
    environment); `template`: a prompt file replacing the packaged one; `verdict`: ``"text"``
    (strict ``[[...]]``) or ``"logprobs"`` (verdict-token probabilities); `use_reference`: show
    a string reference to the judge; `votes` sampled verdicts combined by `vote` (``"mean"`` or
    ``"majority"``), at least `min_votes` of them parsed; `temperature`, `max_tokens`,
    `top_logprobs`, `seed` (sample i uses seed + i) and `request_options` (extra request body)
    shape the request; `parse_retries`: re-asks after an unparseable answer; `verdict_pattern`:
    a regular expression with one group replacing ``[[...]]``; `price_input_per_m` /
    `price_output_per_m`: USD per million tokens, for ``Score.cost``; `tpm`: a tokens-per-minute
    budget for the endpoint.
    """

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False,
                                metadata={"fingerprint": False, "secret": True})
    template: str | None = None
    verdict: Verdict = "text"
    use_reference: bool = True
    votes: int = 1
    vote: Vote = "mean"
    min_votes: int | None = None
    temperature: float = 0.0
    max_tokens: int | None = None
    top_logprobs: int = 20
    seed: int | None = None
    parse_retries: int = 1
    verdict_pattern: str | None = None
    request_options: dict[str, Any] | None = None
    price_input_per_m: float = 0.0
    price_output_per_m: float = 0.0
    tpm: float | None = field(default=None, metadata={"fingerprint": False})

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def of(cls, params: dict[str, Any]) -> JudgeSettings:
        """The settings among a reward's parameters (the mode's own parameters are ignored)."""
        return pick(cls, params)

    def check(self) -> None:
        """Raise `ValueError` naming the first setting that cannot work."""
        if self.verdict not in ("text", "logprobs"):
            raise ValueError(f"verdict must be 'text' or 'logprobs', got {self.verdict!r}")
        if self.vote not in ("mean", "majority"):
            raise ValueError(f"vote must be 'mean' or 'majority', got {self.vote!r}")
        votes = self.votes
        if not _count(votes, 1):
            raise ValueError(f"votes must be a positive integer, got {votes!r}")
        if self.verdict == "logprobs" and votes != 1:
            raise ValueError("votes > 1 applies to text verdicts; log-prob verdicts are already "
                             "probabilities")
        if votes > 1 and not self.temperature > 0:
            raise ValueError("votes > 1 needs temperature > 0 (identical samples otherwise)")
        mv = self.min_votes
        if mv is not None and not (_count(mv, 1) and mv <= votes):
            raise ValueError(f"min_votes must be between 1 and votes ({votes}), got {mv!r}")
        if not _count(self.parse_retries, 0):
            raise ValueError(f"parse_retries must be a non-negative integer, got "
                             f"{self.parse_retries!r}")
        if self.max_tokens is not None and not _count(self.max_tokens, 1):
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not (_count(self.top_logprobs, 1) and self.top_logprobs <= 20):
            raise ValueError(f"top_logprobs must be between 1 and 20, got {self.top_logprobs!r}")
        for key in ("price_input_per_m", "price_output_per_m"):
            price = getattr(self, key)
            if not (_number(price) and math.isfinite(price) and price >= 0):
                raise ValueError(f"{key} must be a non-negative number, got {price!r}")
        if self.tpm is not None and not (_number(self.tpm) and self.tpm > 0):
            raise ValueError(f"tpm must be a positive number, got {self.tpm!r}")
        if self.verdict_pattern is not None:
            try:
                groups = re.compile(self.verdict_pattern).groups
            except (re.error, TypeError) as exc:
                raise ValueError(f"verdict_pattern is not a regular expression: {exc}") from None
            if groups != 1:
                raise ValueError("verdict_pattern needs exactly one capture group")


def _count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


SETTING_NAMES = names(JudgeSettings)
NOT_FINGERPRINTED = unfingerprinted(JudgeSettings)
"""Settings that do not change a verdict: kept out of a judge's fingerprint."""
SECRET = secret(JudgeSettings)
"""Settings never shown (in a repr or a message)."""

with_settings = splice(JudgeSettings)
"""Gives a judge function (which takes ``**settings``) every `JudgeSettings` field as a
keyword-only parameter after its own; it reads them back with ``JudgeSettings(**settings)``."""
