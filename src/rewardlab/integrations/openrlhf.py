"""OpenRLHF's Python reward function (``--reward.remote_url reward.py``; OpenRLHF loads
``reward_func`` from the file and calls it through ``asyncio.to_thread`` with one sample per
call, ``_fetch_rewards_via_func``). The file is one line::

    from rewardlab.integrations.openrlhf import reward_func

configured by the environment of the trainer's processes: ``REWARDLAB_SPEC`` (a registered reward
name, a spec file or YAML text; required), ``REWARDLAB_RESPONSE_AFTER`` (the marker the response
follows, e.g. ``<|im_start|>assistant\\n``, used when a query does not contain its prompt),
``REWARDLAB_SPECIAL`` (the policy's special tokens, separated by ``|``: the response ends at the
first, so a turn the policy forges after its end-of-turn token is not graded),
``REWARDLAB_STRIP`` (strings removed from the response, separated by ``|``) and
``REWARDLAB_FALLBACK`` (default 0.0). Or build one with its settings in the file::

    from rewardlab.integrations.openrlhf import make_reward_func
    reward_func = make_reward_func("spec.yaml", response_after="<|im_start|>assistant\\n")

A query is the decoded prompt and response, chat template included; the response is recovered
from it as rewardlab's server does (`rewardlab.serve.openrlhf.QuerySplitter`: the text after the
prompt, ending at the first special token given in `special`).

What OpenRLHF gets: ``{"rewards": [float], "scores": [float], "extra_logs": {key: [float]}}``,
one entry per query. OpenRLHF has no skip encoding and a missing reward crashes the step, so a
score that is not ok (error, abstain, timeout, a query whose response cannot be recovered) sends
`fallback` in ``rewards`` and ``scores`` (so ``--algo.dynamic_filtering_range`` sees it too);
``extra_logs`` carries every component of the spec (`fallback` where missing) and
``rewardlab_ok`` (1.0 or 0.0), the same keys on every call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from rewardlab.api import SpecLike
from rewardlab.core.types import Score
from rewardlab.integrations.common import batcher, check_fallback, resolve
from rewardlab.runtime.engine import Runtime
from rewardlab.serve.openrlhf import QuerySplitter, Unsplittable, reply
from rewardlab.serve.specinfo import component_keys

RewardFunc = Callable[..., dict[str, Any]]


def make_reward_func(spec: SpecLike, *, fallback: float = 0.0, response_after: str | None = None,
                     strip: Sequence[str] = (), special: Sequence[str] = (), max_batch: int = 64,
                     max_wait: float = 0.005, runtime: Runtime | None = None) -> RewardFunc:
    """An OpenRLHF ``reward_func(queries, prompts, labels, **kwargs)`` for `spec` (see the
    module doc), scored on `runtime` (default: the current Runtime). Concurrent calls from
    OpenRLHF's threads are batched into one Runtime batch."""
    built = resolve(spec)
    keys = component_keys(built)
    fb = check_fallback(fallback)
    splitter = QuerySplitter(response_after=response_after, strip=tuple(strip), special=tuple(special))

    def reward_func(queries: Sequence[str], prompts: Sequence[str] | None = None,
                    labels: Sequence[Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        n = len(queries)
        prompts = list(prompts) if prompts is not None else [None] * n  # type: ignore[list-item]
        labels = list(labels) if labels is not None else [None] * n
        if len(prompts) != n or len(labels) != n:
            raise ValueError(f"{n} queries, {len(prompts)} prompts and {len(labels)} labels: one each per sample")
        bat = batcher(built, runtime, max_batch=max_batch, max_wait=max_wait)
        waits: list[Any] = []
        scores: list[Score | None] = []
        for q, p, lab in zip(queries, prompts, labels, strict=True):
            try:
                sample = splitter.sample(q, p, lab)
            except Unsplittable as exc:
                scores.append(Score.error(f"unsplittable query: {exc}"))
                continue
            scores.append(None)
            waits.append(bat.submit_threadsafe(sample))
        done = iter([w.result() for w in waits])
        return reply([s if s is not None else next(done) for s in scores], keys, fb)

    return reward_func


def reward_func(queries: Sequence[str], prompts: Sequence[str] | None = None,
                labels: Sequence[Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's ``reward_func`` configured by the ``REWARDLAB_*`` environment variables (see
    the module doc)."""
    spec = os.environ.get("REWARDLAB_SPEC")
    if not spec:
        raise ValueError("REWARDLAB_SPEC is not set: name the reward or spec file the trainer scores with")
    strip = tuple(s for s in os.environ.get("REWARDLAB_STRIP", "").split("|") if s)
    special = tuple(s for s in os.environ.get("REWARDLAB_SPECIAL", "").split("|") if s)
    fn = make_reward_func(spec, fallback=float(os.environ.get("REWARDLAB_FALLBACK", "0.0")),
                          response_after=os.environ.get("REWARDLAB_RESPONSE_AFTER") or None, strip=strip,
                          special=special)
    return fn(queries, prompts, labels, **kwargs)
