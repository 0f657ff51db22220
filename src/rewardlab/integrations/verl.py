"""verl's custom reward function (verl 0.9, the Reward Loop's per-sample form,
``verl/experimental/reward_loop/reward_manager/naive.py::NaiveRewardManager.run_single``)::

    reward.custom_reward_function.path=pkg://rewardlab.integrations.verl
    +reward.custom_reward_function.reward_kwargs.spec=examples/math_format.yaml

verl awaits `compute_score` once per sample, one asyncio task per sample, and merges
``reward_kwargs`` into every call (``verl/trainer/ppo/reward.py::get_custom_reward_fn``): `spec`
(a registered reward name, a spec file, YAML text or a dict), optional `fallback` (default 0.0),
`max_batch` and `max_wait` (the micro-batching of concurrent calls into one Runtime batch), and
`cache` (a SQLite file), `workers`, `timeout` for a Runtime of the adapter's own (without them, the
current Runtime scores: the process-wide default, no cache).

`solution_str` is the decoded response only; the prompt reaches the reward only when the dataset
stored it in ``extra_info["question"]`` (verl's GSM8K preprocessing does). `ground_truth` is the
reference.

What verl gets: a dict with ``score`` (the spec's value, in the spec's range, higher is better,
when the score is ok), one float per component of the spec, and ``rewardlab_ok`` (1.0 or 0.0).
verl has no way to skip a sample and takes the keys of the first sample's dict for the whole
batch (``RewardLoopManager.compute_rm_score``), so every sample gets the same keys and never
None: a score that is not ok (error, abstain, timeout) sends `fallback` for ``score`` and for each
component it lacks (the components that were computed keep their values), with ``rewardlab_ok``
0.0 (its mean is the share of samples scored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rewardlab.api import SpecLike
from rewardlab.core.types import Sample
from rewardlab.integrations.common import batcher, check_fallback, record, record_keys, resolve, runtime_for


def _metadata(data_source: Any, extra_info: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"data_source": data_source}
    if isinstance(extra_info, Mapping):
        try:  # verl merges non-JSON fields in (tool_extra_fields); keep extra_info only when it is plain data
            meta["extra_info"] = json.loads(json.dumps(dict(extra_info)))
        except (TypeError, ValueError):
            pass
    return meta


def to_sample(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None) -> Sample:
    """The `Sample` of one verl call: the response is `solution_str`, the reference
    `ground_truth`, the prompt ``extra_info["question"]`` when the dataset stored it."""
    question = extra_info.get("question") if isinstance(extra_info, Mapping) else None
    prompt = question if isinstance(question, str) else ""
    return Sample.from_text(prompt, solution_str if isinstance(solution_str, str) else str(solution_str),
                            ground_truth, _metadata(data_source, extra_info))


async def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, *,
                        spec: SpecLike | None = None, fallback: float = 0.0, max_batch: int = 64,
                        max_wait: float = 0.005, cache: str | None = None, workers: int | None = None,
                        timeout: float | None = None, **kwargs: Any) -> dict[str, float]:
    """The reward of one verl sample (see the module doc): ``score``, the spec's components and
    ``rewardlab_ok``. Other keyword arguments verl passes (``reward_router_address``,
    ``reward_model_tokenizer``) are ignored."""
    if spec is None:
        raise ValueError("no spec: set +reward.custom_reward_function.reward_kwargs.spec=<name, file or YAML>")
    built = resolve(spec)
    keys = record_keys(built)
    fb = check_fallback(fallback)
    rt = runtime_for(cache, workers, timeout)
    score = await batcher(built, rt, max_batch=max_batch, max_wait=max_wait).score(
        to_sample(data_source, solution_str, ground_truth, extra_info))
    return record(score, keys, fb)
