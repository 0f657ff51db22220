"""The `rewardlab` console script and ``python -m rewardlab.cli`` run the same command, with one
module per verb."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import rewardlab.cli


def test_console_script_is_the_cli_main() -> None:
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "rewardlab"]
    assert script.value == "rewardlab.cli:main"
    assert script.load() is rewardlab.cli.main


def test_python_m_runs_every_verb() -> None:
    helps = {"list": "Every registered reward", "score": "Score a rollout file", "train": "Train a learned reward",
             "serve": "Serve a reward spec over HTTP", "eval": "Accuracy of rewards on preference pairs",
             "audit": "Audit a reward", "bon": "Best-of-N per prompt group", "pairs": "Preference pairs for DPO"}
    for verb, first_line in helps.items():
        res = subprocess.run([sys.executable, "-m", "rewardlab.cli", verb, "--help"], capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert first_line in " ".join(res.stdout.split()), res.stdout
