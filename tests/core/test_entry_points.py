"""Third-party rewards register through the `rewardlab.rewards` entry-point group."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rewardlab import Sample
from rewardlab.core.registry import Registry


@pytest.fixture
def plugin_on_path(tmp_path: Path):
    pkg = tmp_path / "acme_rewards.py"
    pkg.write_text(
        "from rewardlab import reward\n\n"
        "@reward(name='acme_shout', register=False)\n"
        "def shout(response_text: str) -> float:\n"
        "    '''1 if the response is all upper case, else 0.'''\n"
        "    return float(response_text.isupper())\n"
    )
    dist = tmp_path / "acme_rewards-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-rewards\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rewardlab.rewards]\nshout = acme_rewards:shout\nbroken = acme_missing_module:thing\n")
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))
    sys.modules.pop("acme_rewards", None)


def test_entry_point_reward_is_found_and_a_broken_plugin_is_reported(plugin_on_path: None) -> None:
    reg = Registry()
    shout = reg.get("acme_shout")
    assert shout.info.description == "1 if the response is all upper case, else 0."
    assert shout().score_local([Sample(response="HEY")])[0].value == 1.0
    assert "exact_match" in reg  # built-ins are still there
    assert "broken" in reg.load_errors and "ModuleNotFoundError" in reg.load_errors["broken"]
