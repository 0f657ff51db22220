"""The ``>>>`` examples in `rewardlab.credit` run as doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["rewardlab.credit.advantages", "rewardlab.credit.steps", "rewardlab.credit.turns",
           "rewardlab.credit.tokens"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
