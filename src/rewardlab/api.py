"""The Python entry points: `score` and its async twin `ascore`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rewardlab.compose.nodes import Leaf, Node, Policies
from rewardlab.compose.spec import Spec, load_spec
from rewardlab.core.registry import registry
from rewardlab.core.reward import Reward, RewardDef, reward
from rewardlab.core.types import Sample, Score
from rewardlab.io.rows import to_sample
from rewardlab.runtime.current import current_runtime
from rewardlab.runtime.engine import Runtime, set_spec_builder

_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_NAME = re.compile(r"[A-Za-z_][\w-]*")
SpecLike = Spec | Node | Reward | RewardDef | Callable[..., Any] | str | Path | Mapping[str, Any]


def build(spec: SpecLike, **params: Any) -> Spec:
    """A `Spec` from a spec file, a YAML string, a dict, a reward (configured or not), a plain
    function (a reward with the defaults of `@reward`), or a registered reward name (with
    `params`)."""
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, Node):
        return Spec(spec, Policies())
    if _is_plain_function(spec):  # a plain function is a reward (declared with the defaults)
        spec = reward(spec, register=False)
    if isinstance(spec, RewardDef):
        spec = spec(**params)
    if isinstance(spec, Reward):
        return Spec(Leaf(spec, label=spec.name), Policies())
    if isinstance(spec, str) and _looks_like_name(spec):
        return build(registry.get(spec), **params)
    if params:
        raise ValueError("parameters are given with a single reward name, not with a spec")
    if isinstance(spec, Mapping):
        return load_spec(dict(spec))
    return load_spec(spec)


def _is_plain_function(obj: object) -> bool:
    return callable(obj) and not isinstance(obj, Spec | Node | Reward | RewardDef | str | Path | Mapping | type)


def _looks_like_name(text: str) -> bool:
    """A registered name or import path rather than a spec file or YAML text."""
    if text in registry or _IMPORT_PATH.fullmatch(text):
        return True
    return bool(_NAME.fullmatch(text)) and not Path(text).exists() \
        and not text.endswith((".yaml", ".yml", ".toml"))


def _samples(samples: Sequence[Sample | Mapping[str, Any]]) -> list[Sample]:
    return [s if isinstance(s, Sample) else to_sample(dict(s)) for s in samples]


set_spec_builder(build)


async def ascore(
    samples: Sequence[Sample | Mapping[str, Any]],
    spec: SpecLike,
    *,
    runtime: Runtime | None = None,
    **runtime_options: Any,
) -> list[Score]:
    """Score a batch with a reward or spec; one `Score` per sample, in order.

    Runs on `runtime` when given; else, with `runtime_options` (e.g. ``cache="scores.db"``,
    ``workers=4``), on a Runtime made for this call and closed after; else on the current
    Runtime (the process-wide default, long-lived: its pool and limits serve every call).
    """
    built = build(spec)
    items = _samples(samples)
    if runtime is None and runtime_options:
        with Runtime(**runtime_options) as rt:
            return (await rt.ascore(built, items)).scores
    return (await (runtime or current_runtime()).ascore(built, items)).scores


def score(
    samples: Sequence[Sample | Mapping[str, Any]],
    spec: SpecLike,
    *,
    runtime: Runtime | None = None,
    **runtime_options: Any,
) -> list[Score]:
    """Sync twin of `ascore`; safe to call from threads and from inside a running loop."""
    built = build(spec)
    items = _samples(samples)
    if runtime is None and runtime_options:
        with Runtime(**runtime_options) as rt:
            return rt.score(built, items).scores
    return (runtime or current_runtime()).score(built, items).scores


class RewardUnavailableError(RuntimeError):
    """Raised by `to_values(..., on_failure="raise")` for a score that is not `ok`."""


def to_values(scores: Sequence[Score], on_failure: str | float = "nan") -> list[float]:
    """The floats a trainer receives: `ok` values as they are; for the rest, the policy you
    choose: ``"nan"`` (drop them downstream), ``"raise"``, or an explicit number."""
    out: list[float] = []
    for i, s in enumerate(scores):
        if s.value is not None:
            out.append(s.value)
        elif on_failure == "raise":
            raise RewardUnavailableError(f"sample {i}: {s.status.value}: {s.reason}")
        elif on_failure == "nan":
            out.append(math.nan)
        elif isinstance(on_failure, int | float):
            out.append(float(on_failure))
        else:
            raise ValueError(f"on_failure must be 'nan', 'raise' or a number, not {on_failure!r}")
    return out
