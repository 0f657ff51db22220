"""The `rewardlab` command end to end, including a run killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from tests.jsonl import read_jsonl as _out
from tests.jsonl import write_jsonl as _write

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_score_reports_malformed_lines_and_goes_on(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, [{"prompt": "q", "completion": "Paris", "solution": "paris"},
                 '{"prompt": "q", "completion": ',
                 {"prompt": "q"},
                 {"prompt": "q", "completion": "Rome", "solution": "paris"},
                 {"prompt": "q", "completion": "x"}])
    res = runner.invoke(app, ["score", str(inp), "-r", "exact_match", "-o", str(out),
                              "--no-cache", "-q", "--summary-json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert "in.jsonl:line 2" in res.output and "invalid JSON" in res.output
    assert "line 3" in res.output and "no response field" in res.output
    rows = _out(out)
    assert [(r["_row"], r["reward"], r["reward_status"]) for r in rows] == [
        (1, 1.0, "ok"), (4, 0.0, "ok"), (5, None, "abstain")]
    assert rows[2]["reward_reason"] == "no reference to compare with"
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["malformed"] == 2 and summary["statuses"] == {"ok": 2, "abstain": 1}


def test_named_reward_with_params_and_unknown_name(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, [{"prompt": "q", "completion": "Paris.", "solution": "Paris"}])
    res = runner.invoke(app, ["score", str(inp), "-r", "exact_match", "-p", "normalize=false",
                              "-o", str(out), "--no-cache", "-q"])
    assert res.exit_code == 0, res.output
    assert _out(out)[0]["reward"] == 0.0
    bad = runner.invoke(app, ["score", str(inp), "-r", "exact_mach", "-o", str(out), "-q"])
    assert bad.exit_code == 2 and "unknown reward 'exact_mach'" in bad.output


def test_list_shows_what_scores_mean() -> None:
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0
    rewards = {d["name"]: d for d in map(json.loads, res.output.splitlines())}
    em = rewards["exact_match"]
    assert em["range"] == [0.0, 1.0] and em["meaning"] == "[0, 1], higher is better, per sequence"
    assert {"normalize": True, "strip_think": True}.items() <= em["parameters"].items()
    table = runner.invoke(app, ["list"], env={"COLUMNS": "250"})
    assert "exact_match" in table.output and "higher is better" in table.output


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_sigkilled_run_resumes_to_exactly_once_output(tmp_path: Path) -> None:
    """Kill -9 at points chosen by observed progress, never by the clock: the reward waits at a
    gate (rows above the number in a file), so each run is still going when it is killed."""
    n, chunk = 3000, 64
    inp, out, cache, gate = (tmp_path / f for f in ("in.jsonl", "out.jsonl", "c.db", "gate"))
    _write(inp, [{"id": f"r{i}", "prompt": f"p{i % 7}", "completion": f"{i + 1}:" + "x" * (i % 50)}
                 for i in range(n)])
    cmd = [sys.executable, "-m", "rewardlab.cli", "score", str(inp), "-o", str(out),
           "-r", "tests.runtime.rewards_for_tests:gated", "-p", f"gate={gate}", "--workers", "2",
           "--chunk-size", str(chunk), "--timeout", "600", "--cache", str(cache), "-q"]
    rng = random.Random(7)
    kills = 0
    for bound in (700, 1500, 2300):
        gate.write_text(str(bound))
        done = _lines(out)
        target = rng.randint(done + 1, max(done + 1, bound - 2 * chunk))
        with (tmp_path / "stderr").open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                                    start_new_session=True)
            try:
                # rows above `bound` cannot finish, so the run is alive until it is killed
                while _lines(out) < target and proc.poll() is None:
                    time.sleep(0.01)
                assert proc.poll() is None, (tmp_path / "stderr").read_text()
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert target <= _lines(out) < n
    assert kills == 3
    gate.write_text(str(n))
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = _out(out)
    ids = Counter(r["_row"] for r in rows)
    assert set(ids) == set(range(1, n + 1))
    assert max(ids.values()) == 1
    assert all(r["reward_status"] == "ok" for r in rows)
    assert len({r["id"] for r in rows}) == n
