"""Execution: the isolating process pool, async limits, the cache and the engine."""

from rewardlab.runtime.cache import ScoreCache, sample_hash
from rewardlab.runtime.engine import RunStats, Runtime

__all__ = ["Runtime", "RunStats", "ScoreCache", "sample_hash"]
