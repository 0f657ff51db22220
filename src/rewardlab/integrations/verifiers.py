"""A verifiers (v1) reward plug-in, set in a task's configuration without subclassing
(``TaskConfig.rewards``, ``verifiers/v1/configs/task.py``; resolved by
``verifiers/v1/utils/loaders.py::plugged_fn``)::

    --env.taskset.task.rewards.correct.fn=rewardlab.integrations.verifiers:math_answer

Any registered reward name works after the colon. For a spec file, a file of yours holds
``correct = make_reward("spec.yaml")`` and the ``fn`` is ``path/to/file.py:correct``.

verifiers injects a hook's arguments by name (``verifiers/v1/utils/decorators.py::invoke``) and
runs the hooks with `asyncio.gather`, so the plug-in is ``async def (task, trace)``. The response
is the text of ``trace.last_message`` (else the last of ``trace.messages``), the prompt the text
of the messages before it, and the reference the task's field `reference` (default ``answer``).

What verifiers gets: a float, the spec's value when the score is ok (in the spec's range, higher
is better); with ``components=True`` a mapping of the spec's top-level components instead
(verifiers records each key with the function's weight; they are the components' own values, not
weighted by the spec). A score that is not ok (error, abstain, timeout) gets `fallback` (default
0.0; in the mapping, for each component the score lacks); with ``fallback=None`` it raises `RewardUnavailable` instead,
which verifiers reports as a task error and leaves the reward unset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from rewardlab.api import SpecLike
from rewardlab.core.registry import registry
from rewardlab.core.types import Sample, Score
from rewardlab.integrations.common import batcher, check_fallback, number, resolve, value
from rewardlab.runtime.engine import Runtime
from rewardlab.serve.specinfo import component_keys

Plugin = Callable[..., Awaitable[float | dict[str, float]]]


class RewardUnavailable(RuntimeError):
    """The reward could not be computed (its status and reason in the message)."""


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _text(message: Any) -> str:
    content = _get(message, "content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(str(_get(p, "text") or "") for p in content if _get(p, "type") in (None, "text"))
    return ""


def to_sample(task: Any, trace: Any, reference: str = "answer") -> Sample:
    """The rewardlab `Sample` of one verifiers rollout (see the module doc)."""
    messages = list(_get(trace, "messages") or [])
    last = _get(trace, "last_message")
    if last is None and messages:
        last = messages[-1]
    prompt_msgs = messages[:-1] if messages and (last is None or messages[-1] is last or messages[-1] == last) \
        else messages
    prompt = "\n".join(_text(m) for m in prompt_msgs)
    return Sample.from_text(prompt, _text(last) if last is not None else "", _get(task, reference))


def make_reward(spec: SpecLike, *, reference: str = "answer", fallback: float | None = 0.0,
                components: bool = False, runtime: Runtime | None = None) -> Plugin:
    """A verifiers reward plug-in ``async fn(task, trace)`` for `spec` (see the module doc),
    scored on `runtime` (default: the current Runtime)."""
    built = resolve(spec)
    fb = None if fallback is None else check_fallback(fallback)
    keys = [k for k in component_keys(built) if "/" not in k]
    if components and not keys:
        raise ValueError("components=True needs a spec with components (a composition), not a single reward")

    async def reward(task: Any, trace: Any) -> float | dict[str, float]:
        score: Score = await batcher(built, runtime).score(to_sample(task, trace, reference))
        if not score.ok and fb is None:
            raise RewardUnavailable(f"{score.status.value}: {score.reason}")
        fill = 0.0 if fb is None else fb
        if components:
            return {k: number(score.components.get(k), fill) for k in keys}
        return value(score, fill)

    return reward


def __getattr__(name: str) -> Plugin:
    """``rewardlab.integrations.verifiers:<registered reward name>``: that reward, defaults and all."""
    if not name.startswith("_") and name in registry:
        return make_reward(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
