"""A reward whose module takes longer to import than the reward's timeout (as a module that
loads a large library does): the import must never count against a sample's timeout."""

from __future__ import annotations

import time

from rewardlab.core.reward import reward

time.sleep(2.0)  # import cost, always above the timeout below


@reward(kind="cpu", register=False, timeout=0.5)
def after_slow_import(response_text: str) -> float:
    """1.0 for any response."""
    return 1.0
