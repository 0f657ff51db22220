"""Execution: the isolating process pool, async limits, the cache and the engine."""

from rewardlab.runtime.cache import ScoreCache, sample_hash
from rewardlab.runtime.current import current_runtime, default_runtime
from rewardlab.runtime.engine import RunStats, Runtime, Scored

__all__ = ["RunStats", "Runtime", "ScoreCache", "Scored", "current_runtime", "default_runtime", "sample_hash"]
