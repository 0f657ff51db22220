"""Rewards register through the `rewardlab.rewards` entry-point group: third-party ones and the
built-ins alike."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from rewardlab import Sample
from rewardlab.core import registry as registry_module
from rewardlab.core.registry import ENTRY_POINT_GROUP, Registry, UnknownRewardError
from rewardlab.core.reward import RewardDef


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


# --- built-in rewards register through the same entry points ------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _builtin_entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)
            if ep.dist is not None and ep.dist.name == "rewardlab"}


def _public_reward_modules() -> set[str]:
    """Every public module of rewardlab.rewards and rewardlab.models that defines a reward."""
    import rewardlab.models
    import rewardlab.rewards

    found = set()
    for package in (rewardlab.rewards, rewardlab.models):
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            if any(isinstance(v, RewardDef) and v.fn.__module__ == module.__name__ for v in vars(module).values()):
                found.add(module.__name__)
    return found


def test_installed_entry_points_are_the_ones_pyproject_declares() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert _builtin_entry_points() == declared, "installed metadata is stale: run pip install -e ."


def test_every_module_that_defines_rewards_is_an_entry_point() -> None:
    modules = set(_builtin_entry_points().values())
    assert modules == _public_reward_modules()
    assert {"rewardlab.rewards.math", "rewardlab.models.judge"} <= modules


def test_every_listed_reward_comes_from_an_entry_point_module() -> None:
    res = subprocess.run([sys.executable, "-m", "rewardlab.cli", "list", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr
    names = [json.loads(line)["name"] for line in res.stdout.splitlines()]
    assert "plugin" not in res.stderr  # no built-in failed to load
    modules = set(_builtin_entry_points().values())
    reg = Registry()
    assert sorted(names) == [d.info.name for d in reg.all()] and len(names) >= 30
    assert {n: reg.get(n).fn.__module__ for n in names if reg.get(n).fn.__module__ not in modules} == {}
    assert reg.load_errors == {}


@pytest.fixture
def fake_rewardlab_dist(tmp_path: Path):
    """rewardlab's metadata declaring one real built-in module and one that does not exist (a module
    renamed without updating pyproject.toml); it comes first on the path, so it is the one found."""
    dist = tmp_path / "rewardlab-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rewardlab\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rewardlab.rewards]\nrewards.match = rewardlab.rewards.match\nrewards.gone = rewardlab.rewards.gone\n")
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))


def test_builtins_are_found_only_through_entry_points(fake_rewardlab_dist: None) -> None:
    reg = Registry()
    assert "exact_match" in reg
    assert "math_answer" not in reg  # rewardlab.rewards.math is not declared here, so it is not scanned for
    assert "ModuleNotFoundError" in reg.load_errors["rewards.gone"]  # reported, not dropped
    with pytest.raises(UnknownRewardError, match="plugins that failed to load: rewards.gone"):
        reg.get("math_answer")


def test_no_builtin_entry_points_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [])
    reg = Registry()
    assert reg.all() == []
    assert "entry points of rewardlab are not installed" in reg.load_errors["rewardlab"]


def test_a_plugin_cannot_take_a_builtin_name(tmp_path: Path) -> None:
    (tmp_path / "acme_shadow.py").write_text(
        "from rewardlab import reward\n\n"
        "@reward(name='exact_match', register=False)\n"
        "def exact_match(response_text: str) -> float:\n"
        "    '''Always 1.'''\n"
        "    return 1.0\n")
    dist = tmp_path / "acme_shadow-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-shadow\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rewardlab.rewards]\nshadow = acme_shadow:exact_match\n")
    sys.path.insert(0, str(tmp_path))
    try:
        reg = Registry()
        assert reg.get("exact_match").fn.__module__ == "rewardlab.rewards.match"
        assert "is taken by rewardlab.rewards.match" in reg.load_errors["shadow"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_shadow", None)


def test_rewardlab_list_reports_a_broken_plugin(tmp_path: Path) -> None:
    (tmp_path / "acme_raises.py").write_text("raise RuntimeError('acme is misconfigured')\n")
    dist = tmp_path / "acme_raises-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-raises\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rewardlab.rewards]\nacme = acme_raises\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-m", "rewardlab.cli", "list", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr
    assert "plugin acme failed to load: RuntimeError: acme is misconfigured" in " ".join(res.stderr.split())
    assert "exact_match" in {json.loads(line)["name"] for line in res.stdout.splitlines()}
