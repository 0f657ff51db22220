"""The summary of a scoring run adds up what scoring spent: seconds of reward compute, judge
tokens and money, failed rows included; what the cache serves spends nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewardlab.apply.scorefile import score_file
from rewardlab.apply.summary import Summary
from rewardlab.core.types import Cost, Score
from rewardlab.runtime.engine import Runtime
from tests.jsonl import write_jsonl

PRICED = "tests.compose.rewards_for_composites:priced"
SPEC = {"reward": {"sum": [{"reward": PRICED, "label": "judge_a"},
                           {"reward": PRICED, "params": {"key": "q"}, "label": "judge_b"}],
                   "on_error": "skip"}}


def _judged(v: float | None, seconds: float, tokens_in: int, tokens_out: int, usd: float) -> dict[str, Any]:
    return {"v": v, "seconds": seconds, "input_tokens": tokens_in, "output_tokens": tokens_out, "usd": usd}


def _rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(6):
        p = _judged(0.5 if i != 3 else None, 0.25 * (i + 1), 100 + i, 10 + i, 0.125)  # row 3: judge a is down
        q = _judged(1.0, 0.5, 7, 1, 0.0)
        rows.append({"prompt": f"q{i}", "completion": "a", "p": p, "q": q})
    return rows


def _expected(rows: list[dict[str, Any]]) -> dict[str, float | int]:
    parts = [r[k] for r in rows for k in ("p", "q")]
    return {"seconds": sum(p["seconds"] for p in parts), "input_tokens": sum(p["input_tokens"] for p in parts),
            "output_tokens": sum(p["output_tokens"] for p in parts), "usd": sum(p["usd"] for p in parts)}


def test_summary_adds_costs_of_every_status_and_describes_them() -> None:
    s = Summary()
    s.spend(Cost(seconds=1.5, input_tokens=1200, output_tokens=340, usd=0.5))
    s.spend(Cost(seconds=0.25, input_tokens=10, usd=0.25))
    s.add(Score.abstain("no answer"))
    assert s.to_dict()["cost"] == {"seconds": 1.75, "input_tokens": 1210, "output_tokens": 340, "usd": 0.75}
    assert s.describe_cost() == "1.75 s of reward compute, judge tokens 1,210 in / 340 out, $0.75"
    plain = Summary()
    plain.spend(Cost(seconds=0.5))
    assert plain.describe_cost() == "0.5 s of reward compute"


def test_score_file_summary_totals_the_composite_costs(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = _rows()
    write_jsonl(inp, rows)
    summary = score_file(inp, SPEC, out)
    assert summary.scored == 6 and summary.statuses == {"ok": 6}
    expected = _expected(rows)
    got = summary.to_dict()["cost"]
    assert got["input_tokens"] == expected["input_tokens"] == 6 * 107 + 15
    assert got["output_tokens"] == expected["output_tokens"] == 6 * 11 + 15
    assert got["seconds"] == expected["seconds"] and got["usd"] == expected["usd"] == 0.75
    assert "judge tokens 657 in / 81 out, $0.75" in summary.describe_cost()
    again = score_file(inp, SPEC, out)  # a resume scores nothing, so it spends nothing
    assert again.scored == 0 and again.resumed == 6
    assert again.to_dict()["cost"] == {"seconds": 0.0, "input_tokens": 0, "output_tokens": 0, "usd": 0.0}


def test_scores_from_the_cache_and_a_leaf_used_twice_spend_nothing_again(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    rows = _rows()
    write_jsonl(inp, rows)
    expected = _expected(rows)
    with Runtime(cache=tmp_path / "cache.db") as rt:
        first = score_file(inp, SPEC, tmp_path / "first.jsonl", runtime=rt)
        warm = score_file(inp, SPEC, tmp_path / "warm.jsonl", runtime=rt)
    assert first.to_dict()["cost"]["input_tokens"] == expected["input_tokens"]
    # row 3's failed judge is not cached, so only its call is spent again
    assert warm.cache_hits == 11 and warm.computed == 1
    assert warm.to_dict()["cost"]["input_tokens"] == rows[3]["p"]["input_tokens"]
    twice = {"reward": {"sum": [{"reward": PRICED, "label": "a"}, {"reward": PRICED, "label": "b"}]}}
    doubled = score_file(inp, twice, tmp_path / "twice.jsonl")
    assert doubled.to_dict()["cost"]["input_tokens"] == sum(r["p"]["input_tokens"] for r in rows)
