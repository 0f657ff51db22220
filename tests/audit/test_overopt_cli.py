"""`rewardlab audit overopt` on real best-of-8 rollouts (Qwen2.5-Math on MATH, with the file's own
reward-model score and correctness label): the curves, the JSON, the HTML report rendered in
headless Chromium, and the usage errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.audit.overopt import kl_bon
from rewardlab.cli import app
from tests.apply.rollouts import qwen_rows
from tests.audit.chromium import render
from tests.jsonl import write_jsonl

runner = CliRunner()
RM = "tests.apply.rollouts:rm_score"
LENGTH = "tests.audit.rewards_for_audit:response_chars"
GOLD = "tests.audit.rewards_for_audit:correct_label"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rollouts(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("overopt") / "qwen_bo8.jsonl"
    write_jsonl(path, qwen_rows(shared_data))  # type: ignore[arg-type]
    return path


def _overopt(*args: str) -> object:
    return runner.invoke(app, ["audit", "overopt", *args, "--no-cache", "--workers", "1", "--resamples", "300"])


def test_json_curves(rollouts: Path) -> None:
    res = _overopt(str(rollouts), "--proxy", RM, "--proxy", LENGTH, "--gold", GOLD, "--json")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    data = json.loads(res.stdout)  # type: ignore[attr-defined]
    assert data["prompts"] == 100 and data["candidates"] == 800 and data["dropped"] == 0
    assert data["ns"] == [1, 2, 4, 8] and data["kl_bon"] == pytest.approx([kl_bon(n) for n in (1, 2, 4, 8)])
    curves = {c["objective"]: c["points"] for c in data["curves"]}
    assert set(curves) == {"proxy:rm_score", "proxy:response_chars", "single", "mean", "worst", "uwo"}
    rm, length = curves["proxy:rm_score"], curves["proxy:response_chars"]
    # the reward model helps by the correctness label; picking the longest response does not
    assert rm[-1]["gold_gain"]["ci"][0] > 0
    assert length[-1]["gold_gain"]["estimate"] < 0 < length[-1]["proxy_gain"]["estimate"]
    assert length[-1]["gap"]["estimate"] > rm[-1]["gap"]["estimate"] > 0


def test_report_from_the_command_line(rollouts: Path, tmp_path: Path) -> None:
    out = tmp_path / "overopt.html"
    cmd = [sys.executable, "-m", "rewardlab.cli", "audit", "overopt", str(rollouts), "--proxy", RM, "--gold", GOLD,
           "--ensemble", "none", "--n", "1,2,8", "--no-cache", "--workers", "1", "--resamples", "300",
           "--report", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["command"].startswith("rewardlab audit overopt ") and data["command"].endswith(f"--report {out}")
    assert set(data["fingerprints"]) == {"proxy rm_score", "gold"}
    assert data["data_hash"] == {str(rollouts): "sha256:" + hashlib.sha256(rollouts.read_bytes()).hexdigest()}
    assert [p["n"] for p in data["data"]["overopt"]["curves"][0]["points"]] == [1, 2, 8]
    kl_table = next(t for t in data["tables"] if t["title"].startswith("KL_bon"))
    assert kl_table["rows"] == [[1, 0.0], [2, 0.1931], [8, 1.2044]]
    html = out.read_text()
    assert "<td>0.1931</td>" in html and "<td>1.2044</td>" in html  # shown to the stated decimals
    shown = render(out, tmp_path)
    assert shown.images == 2 and shown.ok, shown


@pytest.mark.parametrize(("args", "message"), [
    (["--proxy", RM, "--gold", GOLD], "an ensemble needs two or more --proxy"),
    (["--proxy", RM, "--proxy", LENGTH, "--gold", GOLD, "--ensemble", "mean,best"], "not best"),
    (["--proxy", RM, "--gold", GOLD, "--ensemble", "none", "--n", "2,x"], "comma-separated integers"),
    (["--proxy", RM, "--gold", GOLD, "--ensemble", "none", "--n", "16"], "best-of-16 needs 16"),
    (["--proxy", "no_such_reward", "--gold", GOLD, "--ensemble", "none"], "no_such_reward"),
])
def test_usage_errors(rollouts: Path, args: list[str], message: str) -> None:
    res = _overopt(str(rollouts), *args)
    assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
    assert message in res.output  # type: ignore[attr-defined]
