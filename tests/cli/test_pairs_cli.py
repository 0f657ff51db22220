"""`rewardlab pairs`: a DPO file in TRL's format from a rollout file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from tests.apply.rollouts import qwen_rows
from tests.jsonl import read_jsonl, write_jsonl

runner = CliRunner()
RM = "tests.apply.rollouts:rm_score"


def _pairs(*args: str) -> object:
    return runner.invoke(app, ["pairs", *args, "--no-cache", "-q", "--workers", "1"])


@pytest.fixture(scope="module")
def rollouts(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "qwen_bo8.jsonl"
    write_jsonl(path, qwen_rows(shared_data))  # type: ignore[arg-type]
    return path


def test_dpo_file_from_a_reward_model(rollouts: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    out, summary = tmp_path / "pairs.jsonl", tmp_path / "s.json"
    res = _pairs(str(rollouts), "-r", RM, "-o", str(out), "--min-confidence", "0.9", "--summary-json", str(summary))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    rows = read_jsonl(out)
    lines = rollouts.read_text().splitlines()
    for r in rows:
        chosen, rejected = json.loads(lines[r["chosen_row"] - 1]), json.loads(lines[r["rejected_row"] - 1])
        assert (r["prompt"], r["chosen"], r["rejected"]) == (chosen["prompt"], chosen["response"], rejected["response"])
        assert r["score_chosen"] == chosen["rm_score"] and r["score_rejected"] == rejected["rm_score"]
        assert r["margin"] == pytest.approx(chosen["rm_score"] - rejected["rm_score"]) and r["margin"] >= 2.197
    s = json.loads(summary.read_text())
    assert s["pairs"] == len(rows) > 0 and s["pairs"] + sum(s["dropped"].values()) == 100
    assert "Bradley-Terry confidence below min_confidence" in s["dropped"]
    ds = load_dataset("json", data_files=str(out), split="train")  # how a DPO script loads it
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) == len(rows)


def test_equal_rewards_are_dropped_and_an_ensemble_must_agree(rollouts: Path, tmp_path: Path) -> None:
    out, summary = tmp_path / "pairs.jsonl", tmp_path / "s.json"
    res = _pairs(str(rollouts), "-r", "math_answer", "-o", str(out), "--summary-json", str(summary))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    rows = read_jsonl(out)
    assert rows and all(r["margin"] == 1.0 for r in rows)
    assert json.loads(summary.read_text())["dropped"]["equal rewards"] == 100 - len(rows)
    res = _pairs(str(rollouts), "-r", "math_answer", "-r", RM, "--ensemble-agree", "-o", str(out),
                 "--summary-json", str(summary))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "not every ensemble member prefers chosen" in json.loads(summary.read_text())["dropped"]


def test_best_vs_random_is_reproducible(rollouts: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        res = _pairs(str(rollouts), "-r", RM, "--strategy", "best_vs_random", "--seed", "3", "-o", str(out))
        assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert a.read_bytes() == b.read_bytes()


def test_conversational_rows_give_conversational_pairs(tmp_path: Path) -> None:
    from trl.data_utils import is_conversational

    inp, out = tmp_path / "in.jsonl", tmp_path / "pairs.jsonl"
    q = [{"role": "system", "content": "Answer in a box."}, {"role": "user", "content": "What is 6*7?"}]
    write_jsonl(inp, [{"messages": [*q, {"role": "assistant", "content": r"\boxed{42}"}], "answer": "42"},
                      {"messages": [*q, {"role": "assistant", "content": r"\boxed{41}"}], "answer": "42"},
                      {"messages": [*q, {"role": "assistant", "content": r"\boxed{42}"}], "answer": "42"}])
    res = _pairs(str(inp), "-r", "math_answer", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    (row,) = read_jsonl(out)
    assert row["prompt"] == q
    assert row["chosen"] == [{"role": "assistant", "content": r"\boxed{42}"}]
    assert row["rejected"] == [{"role": "assistant", "content": r"\boxed{41}"}]
    assert is_conversational(row)


def test_no_pair_fails_and_bad_options_are_usage_errors(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "pairs.jsonl"
    write_jsonl(inp, [{"prompt": "p", "response": r"\boxed{1}", "answer": "1"},
                      {"prompt": "p", "response": r"the answer is 1", "answer": "1"},
                      "[1, 2]"])
    res = _pairs(str(inp), "-r", "math_answer", "-o", str(out))
    assert res.exit_code == 1 and "no pair passed" in res.output  # type: ignore[attr-defined]
    assert "1 equal rewards" in res.output and "line 3:" in res.output  # type: ignore[attr-defined]
    res = _pairs(str(inp), "-r", "math_answer", "-o", str(out), "--strategy", "max_min")
    assert res.exit_code == 2 and "--strategy must be one of" in res.output  # type: ignore[attr-defined]
    res = _pairs(str(inp), "-r", "math_answer", "-o", str(out), "--min-confidence", "1.5")
    assert res.exit_code == 2 and "min_confidence" in res.output  # type: ignore[attr-defined]
    res = _pairs(str(inp), "-r", RM, "-o", str(out), "--ensemble-agree")
    assert res.exit_code == 2 and "ensemble agreement needs" in res.output  # type: ignore[attr-defined]
