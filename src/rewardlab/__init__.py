"""rewardlab: the reward layer for RL post-training of language models and agents."""

from rewardlab.api import RewardUnavailableError, ascore, build, score, to_values
from rewardlab.compose.spec import Spec, SpecError, load_spec
from rewardlab.core.registry import registry
from rewardlab.core.reward import Reward, RewardDef, reward
from rewardlab.core.types import (
    Cost,
    Message,
    PreferencePair,
    PreferenceSet,
    Sample,
    Score,
    Status,
    TokenScores,
    Turn,
)
from rewardlab.runtime.engine import Runtime, Scored

__version__ = "0.1.0"

__all__ = [
    "Cost",
    "Message",
    "PreferencePair",
    "PreferenceSet",
    "Reward",
    "RewardUnavailableError",
    "RewardDef",
    "Runtime",
    "Sample",
    "Score",
    "Scored",
    "Spec",
    "SpecError",
    "Status",
    "TokenScores",
    "Turn",
    "ascore",
    "build",
    "load_spec",
    "registry",
    "reward",
    "score",
    "to_values",
]
