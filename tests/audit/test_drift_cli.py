"""`rewardlab audit drift` on synthetic training logs (tests.audit.test_drift.synthetic_log) written as
JSONL with a step column: the flag, the JSON, the HTML report in headless Chromium, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from tests.audit.chromium import render
from tests.audit.test_drift import synthetic_log
from tests.jsonl import write_jsonl

runner = CliRunner()
TRAIN = "tests.audit.rewards_for_audit:logged_train"
CHECK = "tests.audit.rewards_for_audit:logged_check"
SOLUTION = "tests.audit.rewards_for_audit:says_solution"


def _write(path: Path, onset: int | None, seed: int = 0) -> Path:
    log = synthetic_log(onset, seed=seed)
    rows = [{"step": st, "prompt": s.prompt_text, "response": s.response_text, "train_reward": t.value,
             "check": c.value} for st, s, t, c in zip(log["step"], log["sample"], log["train"], log["check"],
                                                       strict=True)]
    write_jsonl(path, rows)  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="module")
def hacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("drift") / "hacked.jsonl", onset=60)


def _drift(*args: str) -> object:
    return runner.invoke(app, ["audit", "drift", *args, "--no-cache", "--workers", "1"])


def test_logged_columns_flag_the_onset_and_report(hacked: Path, tmp_path: Path) -> None:
    out = tmp_path / "drift.html"
    res = _drift(str(hacked), "--train-col", "train_reward", "--check-col", "check", "--json", "--report", str(out),
                 "--fail-on-flag")
    assert res.exit_code == 1, res.output  # type: ignore[attr-defined]  # flagged, as asked
    data = json.loads(res.stdout)  # type: ignore[attr-defined]
    assert abs(data["flag"]["onset"] - 60) <= 3 and data["flag"]["detected_at"] >= 60
    assert len(data["steps"]) == 100 and data["steps"][0]["rollouts"] == 64
    beside = json.loads(out.with_suffix(".json").read_text())
    assert beside["data"]["drift"]["flag"] == data["flag"]
    assert beside["fingerprints"] == {}  # logged columns: no reward was run
    shown = render(out, tmp_path)
    assert shown.images == 1 and shown.ok, shown


def test_rewards_and_a_probe_reward(hacked: Path) -> None:
    res = _drift(str(hacked), "-r", TRAIN, "--check", CHECK, "--probe", SOLUTION, "--json")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    data = json.loads(res.stdout)  # type: ignore[attr-defined]
    assert abs(data["flag"]["onset"] - 60) <= 3
    first, last = data["steps"][0]["probes"], data["steps"][-1]["probes"]
    assert set(last) == {"content_free", "repetition", "says_solution"}
    assert first["says_solution"][0] == 0.0 and last["says_solution"][0] > 0.1
    assert last["content_free"][0] >= last["says_solution"][0]  # "Solution" is a master key


def test_clean_log_has_no_flag(tmp_path: Path) -> None:
    clean = _write(tmp_path / "clean.jsonl", onset=None, seed=3)
    res = _drift(str(clean), "-r", TRAIN, "--check", CHECK, "--fail-on-flag")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert res.stdout.startswith("no flag")  # type: ignore[attr-defined]


def test_rows_without_a_step_are_skipped_and_said(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_jsonl(path, [{"prompt": "p", "response": "r", "train_reward": 1.0, "check": 1.0}])  # type: ignore[arg-type]
    res = _drift(str(path), "--train-col", "train_reward", "--check-col", "check")
    assert res.exit_code == 1, res.output  # type: ignore[attr-defined]
    assert "no integer step in column 'step'" in res.output  # type: ignore[attr-defined]


@pytest.mark.parametrize(("args", "message"), [
    (["-r", TRAIN, "--train-col", "train_reward", "--check", CHECK], "one of them"),
    (["-r", TRAIN], "--check SPEC or --check-col"),
    (["--train-col", "train_reward", "--check-col", "check", "--window", "200"], "at least window=200"),
])
def test_usage_errors(hacked: Path, args: list[str], message: str) -> None:
    res = _drift(str(hacked), *args)
    assert res.exit_code == 2, res.output  # type: ignore[attr-defined]
    assert message in res.output  # type: ignore[attr-defined]
