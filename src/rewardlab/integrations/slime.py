"""slime's custom reward functions (``slime/rollout/rm_hub/__init__.py``):
``--custom-rm-path rewardlab.integrations.slime.reward`` awaits ``reward(args, sample)`` once
per sample; with ``--group-rm``, ``--custom-rm-path rewardlab.integrations.slime.group_reward``
awaits ``group_reward(args, samples)`` once per group and takes one reward per sample, in order.

The spec comes from the ``REWARDLAB_SPEC`` environment variable (a registered reward name, a spec
file or YAML text; ``REWARDLAB_FALLBACK`` sets the fallback, default 0.0); a registered reward
also has a path of its own, ``rewardlab.integrations.slime.<name>`` (e.g. ``...slime.math_answer``);
or a file of yours holds ``reward = make_reward("spec.yaml")`` (``make_group_reward`` for groups).

A slime `Sample` gives its ``prompt`` (text or chat messages), ``response`` (the generated text
only), ``label`` (the reference) and ``metadata``. What slime gets: a float, the spec's value when
the score is ok (in the spec's range, higher is better). slime has no skip encoding, so a score
that is not ok (error, abstain, timeout) gets `fallback`. With ``as_dict=True`` the reward is
instead the flat dict ``score`` / components / ``rewardlab_ok`` (same keys for every sample, never
None; slime then needs ``--reward-key score``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError

from rewardlab.api import SpecLike
from rewardlab.core.registry import registry
from rewardlab.core.types import Sample, Score
from rewardlab.integrations.common import batcher, check_fallback, record, record_keys, resolve, value
from rewardlab.runtime.engine import Runtime

Single = Callable[[Any, Any], Awaitable[float | dict[str, float]]]
Group = Callable[[Any, Sequence[Any]], Awaitable[list[float] | list[dict[str, float]]]]


def to_sample(sample: Any) -> Sample:
    """The rewardlab `Sample` of a slime sample (`ValueError` when its fields cannot make one)."""
    prompt = getattr(sample, "prompt", "")
    meta = getattr(sample, "metadata", None)
    try:
        return Sample(prompt=prompt if isinstance(prompt, str | list) else "",
                      response=getattr(sample, "response", "") or "", reference=getattr(sample, "label", None),
                      metadata=dict(meta) if isinstance(meta, dict) else {})
    except ValidationError as exc:
        raise ValueError(f"a slime sample rewardlab cannot read: {exc.errors()[0]['msg']}") from None


async def _score(spec: Any, samples: Sequence[Any], runtime: Runtime | None) -> list[Score]:
    bat = batcher(spec, runtime)

    async def one(s: Any) -> Score:
        try:
            return await bat.score(to_sample(s))
        except ValueError as exc:
            return Score.error(str(exc))

    return list(await asyncio.gather(*(one(s) for s in samples)))


def make_reward(spec: SpecLike, *, fallback: float = 0.0, as_dict: bool = False,
                runtime: Runtime | None = None) -> Single:
    """slime's single-sample reward ``async fn(args, sample)`` for `spec` (see the module doc),
    scored on `runtime` (default: the current Runtime)."""
    built, fb = resolve(spec), check_fallback(fallback)
    keys = record_keys(built)

    async def reward(args: Any, sample: Any) -> float | dict[str, float]:
        (score,) = await _score(built, [sample], runtime)
        return record(score, keys, fb) if as_dict else value(score, fb)

    return reward


def make_group_reward(spec: SpecLike, *, fallback: float = 0.0, as_dict: bool = False,
                      runtime: Runtime | None = None) -> Group:
    """slime's group reward ``async fn(args, samples)`` (``--group-rm``) for `spec`: one reward per
    sample, in order, the group scored in one Runtime batch."""
    built, fb = resolve(spec), check_fallback(fallback)
    keys = record_keys(built)

    async def group_reward(args: Any, samples: Sequence[Any]) -> list[Any]:
        scores = await _score(built, list(samples), runtime)
        return [record(s, keys, fb) if as_dict else value(s, fb) for s in scores]

    return group_reward


def _env_spec() -> tuple[str, float]:
    spec = os.environ.get("REWARDLAB_SPEC")
    if not spec:
        raise ValueError("REWARDLAB_SPEC is not set: name the reward or spec file slime scores with")
    return spec, float(os.environ.get("REWARDLAB_FALLBACK", "0.0"))


async def reward(args: Any, sample: Any) -> float | dict[str, float]:
    """``--custom-rm-path rewardlab.integrations.slime.reward``: the spec of ``REWARDLAB_SPEC``."""
    spec, fb = _env_spec()
    return await make_reward(spec, fallback=fb)(args, sample)


async def group_reward(args: Any, samples: Sequence[Any]) -> list[Any]:
    """``--group-rm --custom-rm-path rewardlab.integrations.slime.group_reward``: the spec of
    ``REWARDLAB_SPEC``."""
    spec, fb = _env_spec()
    return await make_group_reward(spec, fallback=fb)(args, samples)


def __getattr__(name: str) -> Single:
    """``rewardlab.integrations.slime.<registered reward name>``: that reward, defaults and all."""
    if not name.startswith("_") and name in registry:
        return make_reward(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
