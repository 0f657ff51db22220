"""rewardlab rewards as TRL reward functions (`GRPOTrainer` / `RLOOTrainer` ``reward_funcs``).

TRL (1.16) calls each reward function with keywords only: ``prompts``, ``completions``,
``completion_ids`` and, as ``**kwargs``, every other dataset column as a list with one value per
completion, plus ``trainer_state``, ``log_extra`` and ``log_metric`` (``environments`` too, for GRPO
with an environment factory). Prompts and completions are strings (standard format) or lists of
chat messages (conversational format). It expects one ``float | None`` per completion; ``None``
means "this function does not apply": TRL leaves it out of means and baselines and, when every
function gives ``None`` for a completion, forces its advantage to 0 (``trl/trainer/grpo_trainer.py``,
``_calculate_rewards`` and ``unscorable_mask``). So a score that is not ``ok`` (``abstain`` or
``error``) reaches TRL as ``None``, never as 0.

An object whose ``__call__`` is ``async def`` is run by TRL on its own event-loop thread
(``trl/trainer/utils.py::is_async_callable``); the batch is scored with ``await Runtime.ascore``,
so CPU-heavy rewards run in the Runtime's process pool and TRL's loop is never blocked. With
``client=`` (a `rewardlab.client.RewardClient`), the batch is scored on rewardlab servers instead
(``await client.ascore``), so the reward runs on other machines than the trainer.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from rewardlab.api import SpecLike, build
from rewardlab.compose.nodes import WeightedSum
from rewardlab.compose.spec import Spec
from rewardlab.core.types import Sample, Score, Status
from rewardlab.io.rows import to_sample
from rewardlab.runtime.current import current_runtime
from rewardlab.runtime.engine import Runtime

if TYPE_CHECKING:
    from rewardlab.client import RewardClient

# keyword arguments TRL adds to the dataset columns; they are not sample metadata
TRAINER_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})
STATUSES = tuple(s.value for s in Status)


class TRLReward:
    """A TRL reward function backed by a rewardlab spec, scored by a Runtime in this process or,
    given `client`, by the rewardlab servers it talks to (then `spec` is the server's and is not
    given here).

    Returns, per completion, the spec's value when its status is ``ok`` and ``None`` otherwise
    (TRL skips it). Range and direction are the spec's own (see ``rewardlab list``).

    When TRL passes ``log_metric``, each call logs, under ``rewardlab/<name>/``: the fraction of the
    batch with each status (``status/ok``, ``status/abstain``, ``status/error``, in [0, 1]) and, for
    a composite spec, the mean of each component over the completions where it has a value
    (``<component>/mean``). With ``log_extra``, the completions table gets a ``<name>/status``
    column (the status, and the reason when not ``ok``).

    A sample that fails on a server comes back as an error score (``None`` to TRL); a server that
    still cannot be reached after the client's retries raises `rewardlab.client.RemoteError`, so an
    outage stops the step instead of training on nothing.
    """

    def __init__(self, spec: SpecLike | None = None, *, reference: str | None = "solution",
                 runtime: Runtime | None = None, client: RewardClient | None = None, name: str | None = None,
                 log_metrics: bool = True, log_statuses: bool = True) -> None:
        if (spec is None) == (client is None):
            raise ValueError("give a spec (scored in this process) or a client (scored on its servers), not both")
        if client is not None and runtime is not None:
            raise ValueError("a client scores on its servers: runtime= does not apply")
        self.spec: Spec | None = build(spec) if spec is not None else None
        self.client = client
        self.reference = reference
        self.runtime = runtime
        self.log_metrics = log_metrics
        self.log_statuses = log_statuses
        # TRL names a reward by `__name__` (else its class name): one per instance, so two
        # adapters log under two names
        self.__name__ = name or (self.spec.root.label if self.spec is not None else "") or "rewardlab"
        self._warned_reference = False

    def __repr__(self) -> str:
        return f"TRLReward({self.__name__!r}, reference={self.reference!r})"

    async def __call__(self, prompts: Sequence[Any], completions: Sequence[Any],
                       completion_ids: Sequence[Any] | None = None, **kwargs: Any) -> list[float | None]:
        scores = await self.score(self.samples(prompts, completions, kwargs))
        log_metric = kwargs.get("log_metric")
        if self.log_metrics and callable(log_metric):
            for key, value in self.metrics(scores).items():
                log_metric(key, value)
        log_extra = kwargs.get("log_extra")
        if self.log_statuses and callable(log_extra):
            log_extra(f"{self.__name__}/status", [_status_text(s) for s in scores])
        return [s.value if s.status is Status.ok else None for s in scores]

    async def score(self, samples: list[Sample]) -> list[Score]:
        """One score per sample: on the client's servers, else on the Runtime."""
        if self.client is not None:
            return await self.client.ascore(samples)
        assert self.spec is not None
        rt = self.runtime or current_runtime()
        return (await rt.ascore(self.spec, samples)).scores

    def samples(self, prompts: Sequence[Any], completions: Sequence[Any],
                columns: Mapping[str, Any]) -> list[Sample]:
        """One `Sample` per completion: the prompt and completion (text or messages), the
        reference from the column named by `reference`, and the other dataset columns as metadata."""
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"{self.__name__}: {len(prompts)} prompts for {n} completions")
        data = {k: v for k, v in columns.items() if k not in TRAINER_KWARGS}
        for key, values in data.items():
            if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != n:
                raise ValueError(f"{self.__name__}: dataset column {key!r} must hold one value per completion ({n})")
        refs = data.pop(self.reference, None) if self.reference else None
        if self.reference and refs is None and not self._warned_reference:
            self._warned_reference = True
            warnings.warn(f"{self.__name__}: no dataset column {self.reference!r}; samples are scored without "
                          "a reference (rewards that need one abstain)", stacklevel=2)
        out = []
        for i in range(n):
            row: dict[str, Any] = {"prompt": prompts[i], "completion": completions[i],
                                   "metadata": {k: v[i] for k, v in data.items()}}
            if refs is not None and refs[i] is not None:
                row["reference"] = refs[i]
            out.append(to_sample(row))
        return out

    def metrics(self, scores: Sequence[Score]) -> dict[str, float]:
        """What one call logs through ``log_metric`` (see the class doc)."""
        prefix = f"rewardlab/{self.__name__}"
        counts = Counter(s.status.value for s in scores)
        n = max(len(scores), 1)
        out = {f"{prefix}/status/{st}": counts[st] / n for st in STATUSES}
        values: dict[str, list[float]] = {}
        for s in scores:
            for comp, v in s.components.items():
                if v is not None:
                    values.setdefault(comp, []).append(v)
        for comp, vs in values.items():
            out[f"{prefix}/{comp}/mean"] = sum(vs) / len(vs)
        return out


def _status_text(score: Score) -> str:
    return score.status.value if score.status is Status.ok else f"{score.status.value}: {score.reason}"


def trl_reward(spec: SpecLike | None = None, *, reference: str | None = "solution",
               runtime: Runtime | None = None, client: RewardClient | None = None, name: str | None = None,
               log_metrics: bool = True, log_statuses: bool = True) -> TRLReward:
    """One TRL reward function for a spec (a reward name, a spec file or dict, a reward...):
    ``GRPOTrainer(..., reward_funcs=[trl_reward("math_answer")])``, or for rewardlab servers:
    ``trl_reward(client=RewardClient("http://rm-host:8000"))``. `reference` names the dataset
    column holding the gold (``None``: no reference); `runtime` defaults to the current Runtime at
    each call; `name` is what TRL logs it under (default: the spec's root label, else
    ``rewardlab``)."""
    return TRLReward(spec, reference=reference, runtime=runtime, client=client, name=name,
                     log_metrics=log_metrics, log_statuses=log_statuses)


class TRLRewards(NamedTuple):
    """One reward function per top-level component and the weights for ``reward_weights``."""

    funcs: list[TRLReward]
    weights: list[float]


def trl_rewards(spec: SpecLike, *, reference: str | None = "solution", runtime: Runtime | None = None,
                **options: Any) -> TRLRewards:
    """Split a weighted-sum spec into one TRL reward function per top-level component, so TRL logs
    a curve per component: ``funcs, weights = trl_rewards(spec)`` then
    ``GRPOConfig(reward_weights=weights)``, ``GRPOTrainer(reward_funcs=funcs, ...)``.

    TRL sums ``weight * value`` over the functions that gave a value (`nansum`): a component that
    fails is left out of that completion's sum, not renormalised and not zeroed; the spec's own
    failure policies for the sum are not applied. A single reward gives one function of weight 1.
    Other roots (gate, penalty, ensemble) do not add up per component and raise `ValueError`:
    use `trl_reward` for them."""
    built = build(spec)
    root = built.root
    if isinstance(root, WeightedSum):
        children = list(root.children)
    elif not root.subnodes():
        children = [root]
    else:
        raise ValueError(f"trl_rewards splits a weighted sum or a single reward, not a {type(root).__name__}; "
                         "use trl_reward for this spec")
    names = [c.label for c in children]
    if len(set(names)) != len(names):
        raise ValueError(f"top-level components need distinct labels for TRL to log them apart: {names}")
    funcs = [TRLReward(Spec(c, built.policies), reference=reference, runtime=runtime, name=c.label, **options)
             for c in children]
    weights = [float(c.weight) if isinstance(root, WeightedSum) else 1.0 for c in children]
    return TRLRewards(funcs, weights)


__all__: list[str] = ["TRLReward", "TRLRewards", "trl_reward", "trl_rewards"]
