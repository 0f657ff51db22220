"""The HTTP reward server: a FastAPI app serving one spec through one long-lived `Runtime`.

Endpoints:

- ``POST /v1/score``: ``{"samples": [row, ...]}`` (each row in any layout `rewardlab score` reads)
  -> ``{"scores": [...], "fingerprint"}``, one score per sample, in order: ``value`` (null unless
  ``status`` is ``ok``), ``status`` (``ok``/``abstain``/``error``), ``reason``, ``components``,
  ``steps``/``turns``/``tokens`` when the reward gives them, ``cost``. A sample that fails is a
  score with status ``error`` in a 200; a row that is not a sample is a 422 naming its index.
- ``POST /get_reward``: OpenRLHF's protocol (see `rewardlab.serve.openrlhf`).
- ``POST /slime``: slime's ``remote_rm`` protocol: ``{"prompt", "response", "label"}`` -> the
  reward as a bare JSON number (the fallback where the score is not ok).
- ``GET /health`` (the process answers), ``GET /ready`` (200 once warmed up: pool started, models
  loaded, sandbox up; 503 before), ``GET /v1/spec`` (what is served), ``GET /metrics``
  (Prometheus text, `rewardlab.serve.metrics`).

Limits: a full queue answers 429 with ``Retry-After``; a body over the limit 413; with a
deadline, a sample not scored in time is an error score in the 200 (the request is answered
before the client's own timeout, and no step fails for one slow sample); with a token,
a request without ``Authorization: Bearer <token>`` 401 (``/health``, ``/ready`` and ``/metrics``
stay open for probes and scrapers).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rewardlab.compose.spec import Spec
from rewardlab.core.types import Sample, Score, json_safe
from rewardlab.io.rows import to_sample
from rewardlab.runtime.engine import Runtime
from rewardlab.serve.batcher import MicroBatcher, QueueFull, TooManySamples
from rewardlab.serve.limits import BearerToken, BodyLimit
from rewardlab.serve.metrics import Metrics
from rewardlab.serve.openrlhf import QuerySplitter, Unsplittable, reply
from rewardlab.serve.schema import (
    LIMITS,
    Health,
    Readiness,
    RewardRequest,
    RewardResponse,
    ScoreRequest,
    ScoreResponse,
    SlimeRequest,
    SpecInfo,
)
from rewardlab.serve.specinfo import component_keys, describe

SCORING = frozenset({"/v1/score", "/get_reward", "/slime"})
OPEN = frozenset({"/health", "/ready", "/metrics"})
KNOWN = SCORING | OPEN | {"/v1/spec", "/docs", "/openapi.json"}


@dataclass
class ServeConfig:
    """How the server batches, limits and answers (the `rewardlab serve` options)."""

    max_batch: int = 64
    max_wait: float = 0.005
    max_queue: int = 4096
    concurrent_batches: int = 2
    max_body_bytes: int = 32 * 2**20
    fallback: float = 0.0
    token: str | None = None
    splitter: QuerySplitter = field(default_factory=QuerySplitter)
    warmup: bool = True
    retry_after: int = 1
    deadline: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "concurrent_batches", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.deadline is not None and not self.deadline > 0:
            raise ValueError(f"the request deadline must be > 0 seconds, not {self.deadline}")
        if self.max_wait < 0:
            raise ValueError(f"the maximum wait must be >= 0 seconds, not {self.max_wait}")


def score_json(s: Score) -> dict[str, Any]:
    """A score as the server sends it (finer values only when present; no NaN or infinity)."""
    out: dict[str, Any] = {"value": s.value, "status": s.status.value, "reason": s.reason,
                           "components": s.components}
    for name in ("steps", "turns", "tokens"):
        v = getattr(s, name)
        if v is not None:
            out[name] = v
    out["cost"] = s.cost
    return json_safe(out, finite=True)  # type: ignore[no-any-return]


class _Observed:
    """Counts every HTTP request by endpoint and code, times it, and tracks the scoring
    requests in flight (pure ASGI, outside every other layer, so 401/413 are counted)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in KNOWN else "other"
        code = 500
        scoring = endpoint in SCORING

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        t0 = time.perf_counter()
        if scoring:
            self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            if scoring:
                self.metrics.inflight.dec()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
            self.metrics.requests.labels(endpoint, str(code)).inc()


def _restarts(runtime: Runtime) -> int:
    pool = getattr(runtime, "_pool", None)  # the Runtime exposes no restart count of its own
    return int(getattr(pool, "restarts", 0) or 0)


def create_app(spec: Spec, runtime: Runtime, config: ServeConfig | None = None) -> FastAPI:
    """The server app for `spec` on `runtime` (which the caller owns and closes)."""
    from rewardlab import __version__

    cfg = config or ServeConfig()
    metrics = Metrics(spec.fingerprint, __version__, lambda: _restarts(runtime))
    keys = component_keys(spec)
    info = {**describe(spec), "fallback": cfg.fallback, "extra_logs": [*keys, "rewardlab_ok"]}
    state: dict[str, str | None] = {"warmup": None}  # the warm-up score's status (and reason)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = MicroBatcher(runtime, spec, metrics, max_batch=cfg.max_batch, max_wait=cfg.max_wait,
                               max_queue=cfg.max_queue, concurrent_batches=cfg.concurrent_batches)
        app.state.batcher = batcher
        app.state.ready = ready = asyncio.Event()
        batcher.start()

        async def warm_up() -> None:
            if cfg.warmup:  # loads models, starts the pool and the sandbox before the first request
                try:
                    out = await runtime.ascore(spec, [Sample.from_text("", "")])
                except Exception as exc:  # noqa: BLE001 - never ready; /ready and stderr say why
                    state["warmup"] = f"failed: {type(exc).__name__}: {exc}"
                    print(f"rewardlab serve: warm-up {state['warmup']}; not ready", file=sys.stderr, flush=True)
                    return
                s = out.scores[0]
                state["warmup"] = s.status.value + (f" ({s.reason})" if s.reason else "")
            ready.set()

        warming = asyncio.get_running_loop().create_task(warm_up())
        try:
            yield
        finally:
            warming.cancel()
            await asyncio.gather(warming, return_exceptions=True)
            await batcher.stop()

    app = FastAPI(title="rewardlab", summary=f"reward server for spec {spec.fingerprint}", lifespan=lifespan)
    app.state.info = info
    app.state.warmup = state

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming what is wrong; the echoed input made JSON-safe (a body may hold NaN or
        Infinity, which Python's JSON reader takes and no JSON answer may carry)."""
        return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()), finite=True)}, status_code=422)

    async def run(samples: list[Sample]) -> list[Score]:
        try:
            return await app.state.batcher.submit(samples, cfg.deadline)
        except QueueFull as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(cfg.retry_after)}) from None
        except TooManySamples as exc:
            raise HTTPException(413, str(exc)) from None

    @app.post("/v1/score", response_model=ScoreResponse, responses=LIMITS)
    async def score(body: ScoreRequest) -> JSONResponse:
        """Score samples: one score per sample, in order."""
        samples: list[Sample] = []
        for i, row in enumerate(body.samples):
            try:
                samples.append(to_sample(row))
            except (ValueError, TypeError) as exc:
                raise HTTPException(422, f"samples[{i}]: {exc}") from None
        scores = await run(samples)
        return JSONResponse({"scores": [score_json(s) for s in scores], "fingerprint": spec.fingerprint})

    @app.post("/get_reward", response_model=RewardResponse, responses=LIMITS)
    async def get_reward(body: RewardRequest) -> JSONResponse:
        """OpenRLHF's remote reward: a number for every query (the fallback where the score is not ok)."""
        n = len(body.query)
        for name in ("prompts", "labels"):
            given = getattr(body, name)
            if given is not None and len(given) != n:
                raise HTTPException(422, f"{name} has {len(given)} items for {n} queries")
        prompts = body.prompts or [None] * n
        labels = body.labels or [None] * n
        out: list[Score | None] = [None] * n
        todo: list[int] = []
        samples: list[Sample] = []
        for i, (q, p, lab) in enumerate(zip(body.query, prompts, labels, strict=True)):
            try:
                samples.append(cfg.splitter.sample(q, p, lab))
                todo.append(i)
            except Unsplittable as exc:
                out[i] = Score.error(str(exc))
        if n - len(todo):
            metrics.samples.labels("error").inc(n - len(todo))
        for i, s in zip(todo, await run(samples), strict=True):
            out[i] = s
        scores: list[Score] = out  # type: ignore[assignment]
        fell_back = sum(not s.ok for s in scores)
        if fell_back:
            metrics.fallbacks.inc(fell_back)
        return JSONResponse(reply(scores, keys, cfg.fallback))

    @app.post("/slime", response_model=float, responses=LIMITS)
    async def slime(body: SlimeRequest) -> JSONResponse:
        """slime's `remote_rm` (``--rm-type remote_rm --rm-url .../slime``): one sample in, the reward
        as a bare number out (the fallback where the score is not ok)."""
        row: dict[str, Any] = {"prompt": body.prompt, "response": body.response}
        if body.label is not None and body.label != "":
            row["reference"] = body.label
        try:
            sample = to_sample(row)
        except (ValueError, TypeError) as exc:
            raise HTTPException(422, str(exc)) from None
        s = (await run([sample]))[0]
        if not s.ok:
            metrics.fallbacks.inc()
        return JSONResponse(reply([s], (), cfg.fallback)["rewards"][0])

    @app.get("/health", response_model=Health)
    async def health() -> dict[str, str]:
        """The process answers."""
        return {"status": "alive"}

    @app.get("/ready", response_model=Readiness,
             responses={503: {"model": Readiness, "description": "not warmed up yet (or the warm-up failed)"}})
    async def ready() -> JSONResponse:
        """200 once warmed up (pool started, models loaded, sandbox up), else 503."""
        ev = getattr(app.state, "ready", None)
        if ev is None or not ev.is_set():
            return JSONResponse({"ready": False, "warmup": state["warmup"]}, status_code=503)
        return JSONResponse({"ready": True, "warmup": state["warmup"]})

    @app.get("/v1/spec", response_model=SpecInfo, responses={401: LIMITS[401]})
    async def spec_info() -> dict[str, Any]:
        """The served spec: fingerprint, description, components with ranges and directions,
        the fallback value and the extra_logs keys of /get_reward."""
        return info

    @app.get("/metrics", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "the Prometheus text format"}})
    async def metrics_text() -> Response:
        """Prometheus text exposition."""
        metrics.queue_depth.set(app.state.batcher.depth)
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    if cfg.token:
        app.add_middleware(BearerToken, token=cfg.token, open_paths=OPEN)
    app.add_middleware(_Observed, metrics=metrics)
    return app
