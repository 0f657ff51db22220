"""The reward contract.

A plain function is a reward. `@reward(...)` declares what its score means (range, direction,
granularity) and how it runs (`kind`):

- ``inline``: cheap, pure Python, called in the caller's process (no timeout isolation);
- ``cpu``: run in the isolating process pool with a hard wall-clock timeout;
- ``io``: an ``async`` (or blocking) call to a remote service, run concurrently with limits;
- ``model``: batched, in-process (the function takes a list of samples).

Parameters of the function named after sample fields are injected per sample: ``sample``,
``prompt``, ``response`` (alias ``completion``), ``reference``, ``metadata``, ``trajectory``,
``prompt_text``, ``response_text``. Keyword-only parameters are the reward's parameters, so the
decorated object is a factory: ``exact_match(normalize=False)`` is a configured `Reward`.
"""

from __future__ import annotations

import inspect
import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal

from rewardlab.core.fingerprint import code_hash, fingerprint_of, identity
from rewardlab.core.types import Cost, Sample, Score, Status

Kind = Literal["inline", "cpu", "io", "model"]
Direction = Literal["higher", "lower"]
Granularity = Literal["sequence", "step", "turn", "token"]

INJECTABLE = {
    "sample",
    "prompt",
    "response",
    "completion",
    "reference",
    "metadata",
    "trajectory",
    "prompt_text",
    "response_text",
}


def inject(sample: Sample, name: str) -> Any:
    """The value of an injectable argument for one sample."""
    if name == "sample":
        return sample
    if name == "completion":
        return sample.response
    return getattr(sample, name)


TIMED_KINDS = ("cpu", "io")


def check_timeout(value: Any, what: str = "timeout") -> float:
    """`value` as seconds, if it is a positive finite number; else a ValueError saying so."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive, finite number of seconds, not {value!r}")
    return float(value)


def untimed_message(name: str, kind: str) -> str:
    """Why a timeout cannot apply to an `inline` or `model` reward, and what to do instead."""
    return (f"reward {name!r} is kind={kind!r}: it runs in the caller's process, where a call "
            f"cannot be stopped, so it cannot have a timeout. Timeouts apply to kind='cpu' "
            f"(a worker process, killed when the time is up) and kind='io' rewards; declare the "
            f"reward with @reward(kind='cpu') to give it a hard timeout, or drop the timeout")


@dataclass(frozen=True)
class RewardInfo:
    """What a reward's score means and how it runs."""

    name: str
    description: str
    range: tuple[float, float] = (0.0, 1.0)
    direction: Direction = "higher"
    granularity: Granularity = "sequence"
    kind: Kind = "inline"
    version: str = "1"
    timeout: float = 30.0
    batch_size: int = 64
    max_concurrency: int = 8
    retries: int = 2
    range_fn: Callable[[dict[str, Any]], tuple[float, float]] | None = None
    resource: str | Callable[[dict[str, Any]], str] | None = None

    def describe(self) -> str:
        lo, hi = self.range
        better = "higher is better" if self.direction == "higher" else "lower is better"
        return f"[{lo:g}, {hi:g}], {better}, per {self.granularity}"


def _resolve(module: str, qualname: str, name: str) -> RewardDef:
    import importlib

    obj: Any = importlib.import_module(module)
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        obj = None
    if isinstance(obj, RewardDef):
        return obj
    from rewardlab.core.registry import registry

    return registry.get(name)


def to_score(out: Any, info: RewardInfo, seconds: float = 0.0) -> Score:
    """Turn what a reward function returned into a `Score` (costing `seconds` when it does not
    say), failing closed on anything odd: None, NaN, a non-number, a value out of range."""
    lo, hi = info.range
    if not isinstance(out, int | float | Score) and out is not None:
        out = _plain_number(out)
    if isinstance(out, int | float):  # bool included
        try:
            value = float(out)
        except OverflowError:
            return Score.error(f"reward returned an integer too large for a float ({_digits(out)})")
        if not math.isfinite(value):
            return Score.error(f"reward returned a non-finite value {out!r}")
        if lo <= value <= hi:
            return Score.fast_ok(value, seconds)
        score = Score(value=value)
    elif isinstance(out, Score):
        score = out
    elif out is None:
        return Score.error("reward returned None (return Score.abstain(reason) to abstain)")
    else:
        return Score.error(f"reward returned {type(out).__name__}, expected a number or Score")
    if score.status is Status.ok:
        tol = 1e-9 * max(1.0, abs(lo), abs(hi))
        assert score.value is not None
        if not (lo - tol <= score.value <= hi + tol):
            return Score.error(
                f"value {score.value:g} outside the declared range [{lo:g}, {hi:g}] of {info.name}"
            )
    if score.cost is None:
        score.cost = Cost(seconds=seconds)
    return score


def _plain_number(out: Any) -> Any:
    """A numpy scalar (or 0-d array) or another real number as a Python number; anything
    else unchanged."""
    if type(out).__module__ == "numpy" and getattr(out, "shape", None) == () and hasattr(out, "item"):
        return out.item()
    if isinstance(out, numbers.Real):
        try:
            return float(out)
        except (OverflowError, ValueError, TypeError):
            return out
    return out


def _digits(n: int) -> str:
    try:
        return f"{len(str(abs(n)))} digits"
    except ValueError:  # beyond the int-to-str limit
        return f"about {int(abs(n).bit_length() * 0.30103)} digits"


class RewardDef:
    """A reward family: the decorated function plus what it means. Calling it with
    parameters gives a configured `Reward`."""

    def __init__(self, fn: Callable[..., Any], info: RewardInfo, batched: bool) -> None:
        self.fn = fn
        self.info = info
        self.batched = batched
        self.is_async = inspect.iscoroutinefunction(fn)
        sig = inspect.signature(fn)
        self.inputs: list[str] = []
        self.params: dict[str, Any] = {}
        self.required: set[str] = set()
        for p in sig.parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                self.params[p.name] = None if p.default is inspect.Parameter.empty else p.default
                if p.default is inspect.Parameter.empty:
                    self.required.add(p.name)
            elif batched:
                self.inputs.append(p.name)
            elif p.name in INJECTABLE:
                self.inputs.append(p.name)
            else:
                raise TypeError(
                    f"reward {info.name}: parameter {p.name!r} is neither an injectable field "
                    f"({', '.join(sorted(INJECTABLE))}) nor keyword-only"
                )
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", info.name)
        self.__wrapped__ = fn

    def __call__(self, **params: Any) -> Reward:
        return Reward(self, params)

    @cached_property
    def code_hash(self) -> str:
        """A hash of the function's code (see `rewardlab.core.fingerprint`)."""
        return code_hash(self.fn)

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to worker processes by reference: the worker re-imports the defining module.
        return (_resolve, (self.fn.__module__, self.fn.__qualname__, self.info.name))

    def __repr__(self) -> str:
        return f"<reward {self.info.name} {self.info.describe()}>"


class Reward:
    """A configured reward: a family with its parameters bound. Callable on one sample or a
    batch (then run through a default runtime); composition and the engine use `score_local`."""

    def __init__(self, definition: RewardDef, params: dict[str, Any] | None = None) -> None:
        params = dict(params or {})
        unknown = set(params) - set(definition.params)
        if unknown:
            known = ", ".join(sorted(definition.params)) or "none"
            raise ValueError(
                f"reward {definition.info.name!r} has no parameter {sorted(unknown)[0]!r} "
                f"(parameters: {known})"
            )
        missing = definition.required - set(params)
        if missing:
            raise ValueError(
                f"reward {definition.info.name!r} needs parameter {sorted(missing)[0]!r}"
            )
        self.definition = definition
        self.params = {**definition.params, **params}
        self.info = definition.info
        if self.info.range_fn is not None:  # a range that depends on the parameters
            lo, hi = self.info.range_fn(self.params)  # may reject bad parameters (ValueError)
            self.info = replace(self.info, range=(float(lo), float(hi)))
        self.fingerprint = fingerprint_of(
            {"name": self.info.name, "version": self.info.version, "params": self.params,
             "fn": identity(definition.fn), "code": definition.code_hash}
        )

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def resource(self) -> str:
        """What this reward's `io` calls are limited by: the endpoint or service it declares
        (``@reward(resource=...)``, a name or a function of the parameters), else the configured
        reward itself. A Runtime keeps one set of concurrency and rate limits per resource,
        shared by every leaf and batch that uses it."""
        declared = self.info.resource
        if callable(declared):
            return str(declared(self.params))
        return declared or f"reward:{self.info.name}:{self.fingerprint}"

    def score_local(self, samples: Sequence[Sample]) -> list[Score]:
        """Score in this process, no isolation (used by workers and for `inline`/`model`)."""
        d = self.definition
        if d.batched:
            return self._score_batched(samples)
        if d.is_async:
            raise TypeError(f"reward {self.name} is async; run it through the runtime")
        fn, inputs, params, info = d.fn, d.inputs, self.params, self.info
        out: list[Score] = []
        clock = time.perf_counter
        for s in samples:
            t0 = clock()
            try:
                result = fn(*[inject(s, n) for n in inputs], **params)
            except (Exception, SystemExit) as exc:  # fail closed: the error becomes the score
                score = Score.error(_raised(exc), cost=Cost(seconds=clock() - t0))
            else:
                score = to_score(result, info, clock() - t0)
            out.append(score)
        return out

    def _score_batched(self, samples: Sequence[Sample]) -> list[Score]:
        d = self.definition
        t0 = time.perf_counter()
        try:
            results = d.fn(list(samples), **self.params)
            count = len(results)
        except (Exception, SystemExit) as exc:  # fail closed: the whole batch reports the error
            return [Score.error(_raised(exc)) for _ in samples]
        if count != len(samples):
            msg = f"batched reward returned {len(results)} results for {len(samples)} samples"
            return [Score.error(msg) for _ in samples]
        each = (time.perf_counter() - t0) / max(1, len(samples))
        return [to_score(r, self.info, each) for r in results]

    def __call__(self, samples: Sample | Sequence[Sample]) -> Score | list[Score]:
        """Score one sample (a `Score`) or a batch (a list) through the current Runtime (the
        process-wide default unless one is active), so a `cpu` reward called in a loop reuses
        one process pool."""
        if _default_scorer is None:
            raise RuntimeError("no scorer is installed: import rewardlab first")
        if isinstance(samples, Sample):
            return _default_scorer(self, [samples])[0]
        return _default_scorer(self, list(samples))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.info.name}({args})"


_default_scorer: Callable[[Reward, list[Sample]], list[Score]] | None = None


def set_default_scorer(scorer: Callable[[Reward, list[Sample]], list[Score]]) -> None:
    """Install what `Reward.__call__` scores through (the runtime installs its own on import;
    the core never imports the layers above it)."""
    global _default_scorer
    _default_scorer = scorer


def _raised(exc: BaseException) -> str:
    """The reason of an error score for an exception a reward raised."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}"


def reward(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    range: tuple[float, float] | Callable[[dict[str, Any]], tuple[float, float]] = (0.0, 1.0),  # noqa: A002
    direction: Direction = "higher",
    granularity: Granularity = "sequence",
    kind: Kind = "inline",
    version: str = "1",
    timeout: float = 30.0,
    batch_size: int = 64,
    max_concurrency: int = 8,
    retries: int = 2,
    resource: str | Callable[[dict[str, Any]], str] | None = None,
    batched: bool | None = None,
    register: bool = True,
) -> Any:
    """Declare a reward. Use bare (`@reward`) or with options (`@reward(kind="cpu", ...)`).

    `range` may be a function of the parameters (a dict) returning (lo, hi); it is called when
    the reward is configured and may raise `ValueError` to reject parameters.
    `batched` (default: true for `kind="model"`) means the function takes ``samples`` (a list)
    and returns one result per sample. `resource` names what an `io` reward's limits belong to
    (an endpoint, a service; a string or a function of the parameters): leaves sharing it share
    one concurrency and rate limit. The first line of the docstring is the description
    shown by `rewardlab list`; say there what the score means.
    """

    def wrap(f: Callable[..., Any]) -> RewardDef:
        check_timeout(timeout, f"the timeout of reward {name or f.__name__!r}")
        doc = (inspect.getdoc(f) or "").strip().splitlines()
        range_fn = range if callable(range) else None
        if range_fn is None:
            lo, hi = range  # type: ignore[misc]
        else:
            defaults = {p.name: p.default for p in inspect.signature(f).parameters.values()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY}
            try:
                lo, hi = range_fn(defaults)
            except (ValueError, TypeError):  # defaults incomplete: the listing says unbounded
                lo, hi = -math.inf, math.inf
        info = RewardInfo(
            name=name or f.__name__,
            description=doc[0] if doc else "",
            range=(float(lo), float(hi)),
            range_fn=range_fn,
            direction=direction,
            granularity=granularity,
            kind=kind,
            version=version,
            timeout=timeout,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            retries=retries,
            resource=resource,
        )
        definition = RewardDef(f, info, batched if batched is not None else kind == "model")
        if register:
            from rewardlab.core.registry import registry

            registry.add(definition)
        return definition

    return wrap(fn) if fn is not None else wrap
