"""The request and response bodies of the reward server, as its OpenAPI schema states them
(``GET /openapi.json``): what each endpoint takes, what it answers, and the error answers
(401, 413, 422, 429, 503) with their bodies and headers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Message = dict[str, Any]


class ScoreRequest(BaseModel):
    samples: list[dict[str, Any]] = Field(
        description="rows in any layout `rewardlab score` reads (`prompt`/`response`/`reference`, "
                    "`prompt`/`completion`, `messages`, verl's `data_source`/`reward_model`, ...); "
                    "a row that is not a sample is a 422 naming its index")


class SlimeRequest(BaseModel):
    prompt: str | list[Message] = Field("", description="the prompt: text or chat messages")
    response: str = Field(description="the response to score")
    label: Any = Field(None, description="the reference (gold answer, tests, ...); null or \"\" for none")


class RewardRequest(BaseModel):
    query: list[str] = Field(description="prompt + response, as OpenRLHF decodes them (chat template and "
                                         "special tokens included)")
    prompts: list[str] | None = Field(None, description="the prompt of each query (as many as queries)")
    labels: list[Any] | None = Field(None, description="the reference of each query (as many as queries); "
                                                       "\"\" for none")


class CostOut(BaseModel):
    seconds: float
    input_tokens: int
    output_tokens: int
    usd: float


class TokensOut(BaseModel):
    tokenizer: str
    values: list[float | None]
    offsets: list[list[int]] | None = None


class ScoreOut(BaseModel):
    """One sample's score: `value` is a number when `status` is ``ok``, else null with a `reason`;
    range and direction are the served spec's (``GET /v1/spec``)."""

    value: float | None
    status: Literal["ok", "abstain", "error"]
    reason: str | None
    components: dict[str, float | None]
    steps: list[float | None] | None = None
    turns: list[float | None] | None = None
    tokens: TokensOut | None = None
    cost: CostOut | None


class ScoreResponse(BaseModel):
    scores: list[ScoreOut] = Field(description="one score per sample, in order")
    fingerprint: str = Field(description="the served spec's fingerprint")


class RewardResponse(BaseModel):
    rewards: list[float] = Field(description="one reward per query (the fallback where the score is not ok)")
    scores: list[float] = Field(description="the same numbers as `rewards`")
    extra_logs: dict[str, list[float]] = Field(
        description="per query: each component of the spec, and `rewardlab_ok` (1 ok, 0 fallback)")


class Health(BaseModel):
    status: Literal["alive"]


class Readiness(BaseModel):
    ready: bool
    warmup: str | None = Field(description="the warm-up score's status (and reason), or why it failed")


class ComponentInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    node: str
    reward: str | None
    range: list[float | None]
    direction: str | None


class SpecInfo(ComponentInfo):
    fingerprint: str
    description: str | None
    label: str
    components: list[ComponentInfo]
    fallback: float
    extra_logs: list[str]


class Detail(BaseModel):
    detail: Any = Field(description="what was wrong")


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": Detail, "description": description}
    if headers:
        out["headers"] = headers
    return out


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
WWW_AUTH = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}

LIMITS: dict[int | str, dict[str, Any]] = {
    400: _error("a malformed request (a bad Content-Length, a body that is not JSON)"),
    401: _error("the server requires a bearer token and the request has none or a wrong one", WWW_AUTH),
    413: _error("the request body (or its number of samples) is over the limit"),
    422: _error("a body that does not match the request schema, or a row that is not a sample"),
    429: _error("the queue is full: retry after Retry-After seconds", RETRY_AFTER),
}
