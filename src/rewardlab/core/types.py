"""The data model: what goes into a reward (`Sample`) and what comes out (`Score`)."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_M = TypeVar("_M", bound=BaseModel)


def _unchecked(cls: type[_M], fields: dict[str, Any]) -> _M:
    """An instance from a complete, already valid field dict, skipping validation: for the
    per-sample hot paths only (pydantic's `model_construct` costs more than validating)."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", fields)
    object.__setattr__(obj, "__pydantic_fields_set__", set(fields))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class Message(BaseModel):
    """One chat message, OpenAI style. Unknown keys are kept."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The message content as plain text (multi-part content joined)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if isinstance(part, dict):
                parts.append(str(part.get("text", "")))
            else:
                parts.append(str(part))
        return "".join(parts)


class Turn(BaseModel):
    """One turn of an agent trajectory: assistant text, tool calls, or a tool result."""

    model_config = ConfigDict(extra="allow")

    role: str = "assistant"
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_result: Any = None


Conversation = list[Message]


def _as_text(value: str | list[Message] | None, *, last_assistant: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if last_assistant:
        for msg in reversed(value):
            if msg.role == "assistant":
                return msg.text
        return value[-1].text if value else ""
    return "\n".join(f"{m.role}: {m.text}" for m in value)


class Sample(BaseModel):
    """A rollout to score.

    `prompt` and `response` are text or chat messages; `reference` is whatever the reward
    compares against (gold answer, reference text, tests, expected calls, gold SQL...);
    `metadata` is free; `trajectory` holds the turns of an agent episode.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    prompt: str | list[Message] = ""
    response: str | list[Message] = ""
    reference: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    trajectory: list[Turn] | None = None

    @classmethod
    def from_text(cls, prompt: str, response: str, reference: Any = None,
                  metadata: dict[str, Any] | None = None, id: str | None = None) -> Sample:
        """A text sample, built without validation (the arguments' types are the contract)."""
        return _unchecked(cls, {"id": id, "prompt": prompt, "response": response,
                                "reference": reference, "metadata": metadata or {},
                                "trajectory": None})

    @property
    def prompt_text(self) -> str:
        """The prompt as text; a conversation is rendered `role: content` per line."""
        return _as_text(self.prompt, last_assistant=False)

    @property
    def response_text(self) -> str:
        """The response as text; for a conversation, the last assistant message."""
        return _as_text(self.response, last_assistant=True)


_MAX_DEPTH = 64
_JSON_SCALARS = (str, int, float, bool, type(None))


def json_safe(value: Any, depth: int = 0, *, max_depth: int = _MAX_DEPTH, text: Callable[[Any], str] = repr,
              finite: bool = False, _seen: tuple[int, ...] = ()) -> Any:
    """`value` as JSON-able data (dicts with string keys, lists, strings, numbers, booleans,
    None): numpy arrays and scalars become lists and numbers, bytes ``{"base64": ...}``, sets
    sorted lists, models their fields, other objects `text(obj)` (their `repr` by default);
    a container holding itself becomes ``"<cycle>"`` and nesting deeper than `max_depth` levels
    is cut with a marker. With `finite`, NaN and infinities become None (JSON has no such
    numbers)."""
    if isinstance(value, _JSON_SCALARS):
        if finite and isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    if depth >= max_depth:
        return f"<nested deeper than {max_depth} levels>"
    if id(value) in _seen:
        return "<cycle>"
    seen = _seen + (id(value),)

    def inner(v: Any) -> Any:
        return json_safe(v, depth + 1, max_depth=max_depth, text=text, finite=finite, _seen=seen)

    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else _text(k, text): inner(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [inner(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((inner(v) for v in value), key=repr)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if hasattr(value, "dtype") and hasattr(value, "tolist"):  # numpy arrays and scalars
        return inner(value.tolist())
    if isinstance(value, BaseModel):
        return inner(dict(value))
    return _text(value, text)


def _text(value: Any, text: Callable[[Any], str] = repr) -> str:
    try:
        return text(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ or __str__ still gets a description
        return f"<{type(value).__name__} object>"


class Status(StrEnum):
    """Whether a score could be computed: `ok`, `abstain` (the reward does not apply), `error`."""

    ok = "ok"
    abstain = "abstain"
    error = "error"


class Cost(BaseModel):
    """What computing a score cost: wall seconds, tokens and money (for judges)."""

    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(seconds=self.seconds + other.seconds, input_tokens=self.input_tokens + other.input_tokens,
                    output_tokens=self.output_tokens + other.output_tokens, usd=self.usd + other.usd)


def total_cost(scores: Iterable[Score]) -> Cost | None:
    """The sum of the costs of `scores`, field by field; None when none of them has a cost.
    Every score counts, whatever its status: a failed or skipped one still spent its cost."""
    costs = [s.cost for s in scores if s.cost is not None]
    return sum(costs[1:], costs[0]) if costs else None


class TokenScores(BaseModel):
    """Per-token values, with the tokenizer that defined the tokens and each token's
    character span in the response text, so another tokenizer can re-project them."""

    tokenizer: str
    values: list[float]
    offsets: list[tuple[int, int]] | None = None


class Score(BaseModel):
    """The result of a reward on one sample.

    `value` is set exactly when `status` is `ok` (and is then finite); otherwise `reason` says
    why not. `components` holds the named parts of a composite reward (a part that could not be
    computed is `None`). `steps`, `turns` and `tokens` carry finer-grained credit when a reward
    gives it; `details` carries reward-specific evidence (e.g. per-test results).
    """

    model_config = ConfigDict(extra="forbid")

    value: float | None = None
    status: Status = Status.ok
    reason: str | None = None
    components: dict[str, float | None] = Field(default_factory=dict)
    steps: list[float] | None = None
    turns: list[float] | None = None
    tokens: TokenScores | None = None
    details: dict[str, Any] | None = None
    cost: Cost | None = None

    @field_validator("details", mode="before")
    @classmethod
    def _json_details(cls, value: Any) -> Any:
        return json_safe(value) if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _check(self) -> Score:
        if self.status is Status.ok:
            if self.value is None or not math.isfinite(self.value):
                raise ValueError(f"an ok score needs a finite value, got {self.value!r}")
        else:
            if self.value is not None:
                raise ValueError("a non-ok score carries no value")
            if not self.reason:
                raise ValueError(f"a score with status {self.status.value} needs a reason")
        return self

    @property
    def ok(self) -> bool:
        return self.status is Status.ok

    @classmethod
    def of(cls, value: float, **kw: Any) -> Score:
        """An ok score."""
        return cls(value=float(value), **kw)

    @classmethod
    def fast_ok(cls, value: float, seconds: float) -> Score:
        """An ok score for a finite float `value` that took `seconds`, built without
        validation (the engine's hot path; the caller checks finiteness)."""
        cost = _unchecked(Cost, {"seconds": seconds, "input_tokens": 0, "output_tokens": 0,
                                 "usd": 0.0})
        return _unchecked(cls, {"value": value, "status": Status.ok, "reason": None,
                                "components": {}, "steps": None, "turns": None, "tokens": None,
                                "details": None, "cost": cost})

    @classmethod
    def error(cls, reason: str, **kw: Any) -> Score:
        """A score that could not be computed, with why."""
        return cls(status=Status.error, reason=reason, **kw)

    @classmethod
    def abstain(cls, reason: str, **kw: Any) -> Score:
        """The reward does not apply to this sample (e.g. no answer could be extracted)."""
        return cls(status=Status.abstain, reason=reason, **kw)


Response = str | list[Message]
"""A response: text, or chat messages (the turns after the prompt)."""


def _same(a: Response | None, b: Response | None) -> bool:
    """Two prompts or responses with the same content (text, or messages field by field)."""
    if isinstance(a, list) and isinstance(b, list):
        return [m.model_dump() for m in a] == [m.model_dump() for m in b]
    return a == b


def _is_conversation(value: Any) -> bool:
    """A non-empty list of chat messages (one response), as opposed to a list of responses."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, Message) or (isinstance(m, Mapping) and "role" in m) for m in value)


def _labelled(metadata: dict[str, Any], subset: str | None, category: str | None) -> dict[str, Any]:
    labels = {k: v for k, v in (("subset", subset), ("category", category)) if v is not None}
    return {**metadata, **labels}


class PreferencePair(BaseModel):
    """A prompt with a preferred (`chosen`) and a dispreferred (`rejected`) response.

    `rejected_prompt` is set only when the rejected response continues a different conversation
    (whole-dialogue data whose earlier turns differ); `margin` is how much the chosen response
    should win by, in reward units, when the data says; `metadata` keeps the row's other
    columns. `identical` tells a pair whose two sides are the same (kept, but it can only tie).
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    prompt: str | list[Message] = ""
    chosen: Response
    rejected: Response
    rejected_prompt: str | list[Message] | None = None
    margin: float | None = None
    subset: str | None = None
    category: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("margin")
    @classmethod
    def _finite_margin(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"margin must be finite, got {value!r}")
        return value

    @property
    def prompt_of_rejected(self) -> str | list[Message]:
        """The prompt the rejected response answers."""
        return self.prompt if self.rejected_prompt is None else self.rejected_prompt

    @property
    def identical(self) -> bool:
        """The chosen and rejected responses are the same, to the same prompt."""
        return _same(self.chosen, self.rejected) and _same(self.prompt, self.prompt_of_rejected)

    def samples(self) -> tuple[Sample, Sample]:
        """The chosen and the rejected response as `Sample`s (with this pair's id and
        metadata), ready to score."""
        meta = _labelled(self.metadata, self.subset, self.category)
        return (Sample(id=self.id, prompt=self.prompt, response=self.chosen, metadata=meta),
                Sample(id=self.id, prompt=self.prompt_of_rejected, response=self.rejected,
                       metadata=meta))


class PreferenceSet(BaseModel):
    """A prompt with preferred responses (`chosen`, usually one) and several dispreferred ones
    (`rejected`), as in RewardBench 2 (whose Ties subset has several correct responses).

    `chosen` and `rejected` are lists of responses; a single response (text or one
    conversation) given for either is taken as a list of one. Every chosen response is
    preferred to every rejected one.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    prompt: str | list[Message] = ""
    chosen: list[Response] = Field(min_length=1)
    rejected: list[Response] = Field(min_length=1)
    subset: str | None = None
    category: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("chosen", "rejected", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) or _is_conversation(value) else value

    @property
    def identical(self) -> bool:
        """Some rejected response is the same as a chosen one."""
        return any(_same(c, r) for c in self.chosen for r in self.rejected)

    def pairs(self) -> list[PreferencePair]:
        """One `PreferencePair` per (chosen, rejected) combination, ids ``ID:j`` (one chosen
        response) or ``ID:i:j``."""
        one = len(self.chosen) == 1
        return [
            PreferencePair(
                id=None if self.id is None else (f"{self.id}:{j}" if one else f"{self.id}:{i}:{j}"),
                prompt=self.prompt,
                chosen=c,
                rejected=r,
                subset=self.subset,
                category=self.category,
                metadata=self.metadata,
            )
            for i, c in enumerate(self.chosen)
            for j, r in enumerate(self.rejected)
        ]

    def samples(self) -> list[Sample]:
        """Every response as a `Sample`, chosen first then rejected (the order RewardBench 2
        scores them in), each with this set's id and metadata."""
        meta = _labelled(self.metadata, self.subset, self.category)
        return [Sample(id=self.id, prompt=self.prompt, response=r, metadata=meta)
                for r in [*self.chosen, *self.rejected]]
