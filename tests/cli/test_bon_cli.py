"""`rewardlab bon`: best-of-N and rejection sampling from a rollout file."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from tests.apply.rollouts import qwen_rows
from tests.jsonl import read_jsonl, write_jsonl

runner = CliRunner()
RM_PROB = "tests.apply.rollouts:rm_prob"


def _bon(*args: str) -> object:
    return runner.invoke(app, ["bon", *args, "--no-cache", "-q", "--workers", "1"])


@pytest.fixture(scope="module")
def rollouts(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bon") / "qwen_bo8.jsonl"
    write_jsonl(path, qwen_rows(shared_data))  # type: ignore[arg-type]
    return path


def test_weighted_majority_vote(rollouts: Path, tmp_path: Path) -> None:
    out, summary = tmp_path / "best.jsonl", tmp_path / "summary.json"
    res = _bon(str(rollouts), "-r", RM_PROB, "--select", "weighted_majority", "-o", str(out),
               "--summary-json", str(summary))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    rows = read_jsonl(out)
    assert len(rows) == 100 and len({r["problem"] for r in rows}) == 100
    for r in rows:
        assert r["bon_method"] == "weighted_majority" and r["reward_status"] == "ok"
        assert r["bon_group_size"] == 8 and 0 < r["bon_vote_share"] <= 1
        assert r["bon_votes"] >= r["reward"]
    s = json.loads(summary.read_text())
    assert (s["groups"], s["candidates"], s["selected"], s["groups_without_selection"]) == (100, 800, 100, 0)
    assert s["mean_reward_selected"] > s["mean_reward_all"]
    assert "bon weighted_majority: 100 rows from 100 groups" in res.output  # type: ignore[attr-defined]


def test_selection_methods_agree_with_the_python_api(rollouts: Path, tmp_path: Path) -> None:
    from rewardlab import Runtime
    from rewardlab.apply.bon import best_of_n
    from rewardlab.apply.groups import load_rollouts, score_groups
    from tests.apply.rollouts import rm_prob

    groups = load_rollouts(rollouts).groups
    with Runtime(workers=1) as rt:
        score_groups(groups, rm_prob(), runtime=rt)
    for method in ("reward", "majority"):
        out = tmp_path / f"{method}.jsonl"
        res = _bon(str(rollouts), "-r", RM_PROB, "--select", method, "-o", str(out))
        assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
        expected = [s.chosen.index for s in best_of_n(groups, method)]  # type: ignore[union-attr]
        assert [r["_row"] for r in read_jsonl(out)] == expected


def test_majority_needs_no_reward_and_reward_does(rollouts: Path, tmp_path: Path) -> None:
    out = tmp_path / "maj.jsonl"
    res = _bon(str(rollouts), "--select", "majority", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    rows = read_jsonl(out)
    assert len(rows) == 100 and "reward" not in rows[0] and rows[0]["bon_answer"]
    res = _bon(str(rollouts), "--select", "weighted_majority", "-o", str(out))
    assert res.exit_code == 2 and "needs a reward" in res.output  # type: ignore[attr-defined]
    res = _bon(str(rollouts), "--select", "best", "-o", str(out))
    assert res.exit_code == 2 and "--select must be one of" in res.output  # type: ignore[attr-defined]


def test_rejection_sampling_to_parquet(rollouts: Path, tmp_path: Path) -> None:
    out = tmp_path / "raft.parquet"
    res = _bon(str(rollouts), "-r", "math_answer", "--top-k", "2", "--threshold", "1", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    rows = pq.read_table(out).to_pylist()
    assert rows and all(r["reward"] == 1.0 for r in rows)
    # the file's own label disagrees once: it marks "10000" wrong against the gold "10{,}000"
    assert [(r["answer"], r["qwen_pred"]) for r in rows if not r["correct"]] == [("10{,}000", "10000")]
    per_problem: dict[int, list[int]] = {}
    for r in rows:
        per_problem.setdefault(r["problem"], []).append(r["bon_rank"])
    assert all(ranks in ([1], [1, 2]) for ranks in per_problem.values())
    assert len(per_problem) < 100  # problems never solved keep nothing, and are reported
    assert "groups without a selection" in res.output  # type: ignore[attr-defined]
    assert "no ok score >= threshold 1" in res.output  # type: ignore[attr-defined]


def test_bad_rows_are_reported_by_line_and_the_run_goes_on(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(inp, [{"prompt": "2+2?", "response": r"\boxed{4}", "answer": "4"},
                      "{not json",
                      {"prompt": "2+2?", "response": r"\boxed{5}", "answer": "4"},
                      {"prompt": "2+2?", "answer": "4"}])
    res = _bon(str(inp), "-r", "math_answer", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "line 2:" in res.output and "line 4:" in res.output  # type: ignore[attr-defined]
    (row,) = read_jsonl(out)
    assert row["response"] == r"\boxed{4}" and row["_row"] == 1


def test_non_ok_never_selected_and_empty_groups_reported(tmp_path: Path) -> None:
    inp, out, summary = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "s.json"
    write_jsonl(inp, [{"prompt": "a", "response": "", "answer": "4"},
                      {"prompt": "a", "response": "no idea", "answer": "4"},
                      {"prompt": "b", "response": "", "answer": "4"},
                      {"prompt": "b", "response": r"\boxed{3}", "answer": "4"}])
    res = _bon(str(inp), "-r", "math_answer", "-p", "no_answer=abstain", "-o", str(out),
               "--summary-json", str(summary))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    (row,) = read_jsonl(out)
    assert row["prompt"] == "b" and row["response"] == r"\boxed{3}" and row["reward"] == 0.0
    assert "group at line 1: no ok score in the group (2 abstain (no answer found))" in res.output  # type: ignore[attr-defined]
    assert json.loads(summary.read_text())["reasons"] == {"no ok score in the group": 1}
    write_jsonl(inp, [{"prompt": "a", "response": "", "answer": "4"}])
    res = _bon(str(inp), "-r", "math_answer", "-p", "no_answer=abstain", "-o", str(out))
    assert res.exit_code == 1 and "no group gave a selection" in res.output  # type: ignore[attr-defined]


def test_group_by_a_field(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    # the same prompt text under two task ids: grouped by id, each id gets its own best
    write_jsonl(inp, [{"prompt": "p", "response": r"\boxed{1}", "answer": "1", "task": "x"},
                      {"prompt": "p", "response": r"\boxed{2}", "answer": "1", "task": "x"},
                      {"prompt": "p", "response": r"\boxed{2}", "answer": "2", "task": "y"},
                      {"prompt": "p", "response": r"\boxed{1}", "answer": "1"}])
    res = _bon(str(inp), "-r", "math_answer", "--group-by", "task", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert [r["_row"] for r in read_jsonl(out)] == [1, 3]
    assert "line 4:" in res.output and "no field 'task' to group by" in res.output  # type: ignore[attr-defined]
    res = _bon(str(inp), "-r", "math_answer", "-o", str(out))
    assert [r["_row"] for r in read_jsonl(out)] == [1]


def test_chat_rows(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    q = {"role": "user", "content": "What is 6*7?"}
    write_jsonl(inp, [{"messages": [q, {"role": "assistant", "content": r"\boxed{42}"}], "answer": "42"},
                      {"messages": [q, {"role": "assistant", "content": r"\boxed{41}"}], "answer": "42"},
                      {"messages": [q, {"role": "assistant", "content": "It is 42."}], "answer": "42"}])
    res = _bon(str(inp), "--select", "majority", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    (row,) = read_jsonl(out)
    assert row["_row"] == 1 and row["bon_answer"] == "42" and row["bon_votes"] == 2


def test_parquet_rollouts(shared_data: Path, tmp_path: Path) -> None:
    import pyarrow as pa

    inp, out = tmp_path / "in.parquet", tmp_path / "out.jsonl"
    rows = qwen_rows(shared_data, problems=5)
    pq.write_table(pa.Table.from_pylist(rows), inp)
    res = _bon(str(inp), "-r", RM_PROB, "--select", "reward", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    got = read_jsonl(out)
    assert [r["problem"] for r in got] == [0, 1, 2, 3, 4]
    for r in got:
        group = [x for x in rows if x["problem"] == r["problem"]]
        assert r["rm_score"] == max(x["rm_score"] for x in group)
        assert rows[r["_row"]]["response"] == r["response"]  # Parquet rows are numbered from 0


def test_self_certainty_from_logprobs_in_the_rows(tmp_path: Path) -> None:
    import math

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    sure = [{"a": math.log(0.95), "b": math.log(0.05)}] * 4
    unsure = [{"a": math.log(0.6), "b": math.log(0.4)}] * 4
    write_jsonl(inp, [{"prompt": "p", "response": "hedged", "logprobs": unsure},
                      {"prompt": "p", "response": "sure", "logprobs": sure},
                      {"prompt": "q", "response": "no log-probs here"}])
    res = _bon(str(inp), "--select", "self_certainty", "-o", str(out))
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    (row,) = read_jsonl(out)
    assert row["response"] == "sure"
    assert row["bon_certainty"] == pytest.approx(0.5 * math.log(0.5 / 0.95) + 0.5 * math.log(0.5 / 0.05))
    assert "no per-token log-probabilities in field 'logprobs'" in res.output  # type: ignore[attr-defined]
