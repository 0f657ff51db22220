"""`rewardlab score` resumes only the run that wrote an output, never two runs into one file,
never a file that is not its output, and keeps group transforms exact across a resume."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.apply.scorefile import score_file
from rewardlab.cli import app
from tests.cli.faults import Killed, cut_nth_chunk_write
from tests.jsonl import read_jsonl as _out
from tests.jsonl import write_jsonl as _write

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _rows(n: int) -> list[dict]:
    return [{"prompt": f"q{i % 4}", "completion": "Paris." if i % 3 else "Rome", "solution": "Paris"}
            for i in range(n)]


def _score(inp: Path, out: Path, *extra: str) -> object:
    return runner.invoke(app, ["score", str(inp), "-o", str(out), "--no-cache", "-q", *extra])


def test_resume_with_another_reward_refuses_and_names_it(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(30))
    assert _score(inp, out, "-r", "exact_match").exit_code == 0
    before = out.read_bytes()
    res = _score(inp, out, "-r", "rouge_l")
    assert res.exit_code != 0
    assert "written by another run" in res.output and "'exact_match'" in res.output
    assert "'rouge_l'" in res.output and "--overwrite" in res.output
    assert out.read_bytes() == before  # untouched: no row of the second reward


def test_resume_with_other_parameters_refuses(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(30))
    assert _score(inp, out, "-r", "exact_match").exit_code == 0
    res = _score(inp, out, "-r", "exact_match", "-p", "normalize=false")
    assert res.exit_code != 0 and "reward/spec differs" in res.output


def test_resume_with_another_input_refuses(tmp_path: Path) -> None:
    inp, other, out = tmp_path / "in.jsonl", tmp_path / "other.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(30))
    _write(other, [{**r, "completion": "Rome"} for r in _rows(30)])
    assert _score(inp, out, "-r", "exact_match").exit_code == 0
    before = out.read_bytes()
    res = _score(other, out, "-r", "exact_match")
    assert res.exit_code != 0 and "input differs" in res.output and "other.jsonl" in res.output
    assert out.read_bytes() == before


def test_overwrite_starts_over_with_the_new_run(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(30))
    assert _score(inp, out, "-r", "exact_match").exit_code == 0
    res = _score(inp, out, "-r", "exact_match", "-p", "normalize=false", "--overwrite")
    assert res.exit_code == 0, res.output
    rows = _out(out)
    assert sorted(r["_row"] for r in rows) == list(range(1, 31))
    # without normalisation "Paris." is not "Paris": every value is the new reward's
    assert {r["reward"] for r in rows} == {0.0}
    again = _score(inp, out, "-r", "exact_match", "-p", "normalize=false")
    assert again.exit_code == 0 and "30 already done" in again.output


def test_moved_input_with_same_content_resumes(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(30))
    assert _score(inp, out, "-r", "exact_match").exit_code == 0
    moved = tmp_path / "moved.jsonl"
    inp.rename(moved)
    res = _score(moved, out, "-r", "exact_match")
    assert res.exit_code == 0 and "30 already done" in res.output


def test_output_naming_the_input_is_refused_untouched(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    _write(inp, _rows(10))
    before = inp.read_bytes()
    for extra in ((), ("--overwrite",)):
        res = _score(inp, inp, "-r", "exact_match", *extra)
        assert res.exit_code != 0 and "is the input file" in res.output
        assert "Traceback" not in res.output and not isinstance(res.exception, KeyError)
        assert inp.read_bytes() == before


def test_output_that_is_another_file_is_refused_untouched(tmp_path: Path) -> None:
    inp, notes = tmp_path / "in.jsonl", tmp_path / "notes.jsonl"
    _write(inp, _rows(10))
    notes.write_text('{"my": "data"}\n{"partial": ')
    before = notes.read_bytes()
    for extra in ((), ("--overwrite",)):
        res = _score(inp, notes, "-r", "exact_match", *extra)
        assert res.exit_code != 0 and "is not a rewardlab output" in res.output
        assert notes.read_bytes() == before


def test_corrupt_output_line_is_named_with_file_and_line(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(10))
    assert _score(inp, out, "-r", "exact_match").exit_code == 0
    lines = out.read_bytes().split(b"\n")
    lines[2] = b"#" * len(lines[2])  # same length: only the content is damaged
    out.write_bytes(b"\n".join(lines))
    res = _score(inp, out, "-r", "exact_match")
    assert res.exit_code != 0
    assert f"{out} line 3" in res.output and "Traceback" not in res.output


def test_resume_of_a_finished_run_reports_progress_in_batches(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(5000))
    score_file(inp, "exact_match", out)
    calls: list[int] = []
    s = score_file(inp, "exact_match", out, on_progress=calls.append)
    assert s.resumed == 5000 and s.scored == 0
    assert sum(calls) == 5000 and len(calls) <= 3  # not one update per row


@pytest.mark.parametrize("transform", ["group_zscore", "rank"])
def test_group_values_identical_after_a_chunk_write_cut_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            transform: str) -> None:
    inp = tmp_path / "in.jsonl"
    # 20 groups of 6 consecutive rows; values vary inside each group
    _write(inp, [{"prompt": f"group {i // 6}", "completion": "x" * ((i * 7) % 11 + 1)} for i in range(120)])
    spec = {"reward": {transform: {"reward": "tests.cli.rewards_for_cli:length_fraction"}}}
    fresh = tmp_path / "fresh.jsonl"
    score_file(inp, spec, fresh, chunk_size=10)
    expected = {r["_row"]: r["reward"] for r in _out(fresh)}
    assert len(expected) == 120 and len(set(expected.values())) > 2

    out = tmp_path / "out.jsonl"
    # the third chunk: its first 7 lines reach the file, then the kill
    restore = cut_nth_chunk_write(monkeypatch, 3, lambda data: b"\n".join(data.split(b"\n")[:7]) + b"\n")
    with pytest.raises(Killed):
        score_file(inp, spec, out, chunk_size=10)
    restore()
    score_file(inp, spec, out, chunk_size=10)
    rows = _out(out)
    assert Counter(r["_row"] for r in rows) == Counter(range(1, 121))
    assert {r["_row"]: r["reward"] for r in rows} == expected


def test_a_second_run_to_the_same_output_is_refused(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    go, started = tmp_path / "go", tmp_path / "started"
    _write(inp, _rows(40))
    cmd = [sys.executable, "-m", "rewardlab.cli", "score", str(inp), "-o", str(out), "--no-cache", "-q",
           "-r", "tests.cli.rewards_for_cli:wait_for_file", "-p", f"path={go}", "-p", f"started={started}"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while not started.exists():  # the first run is scoring: it holds the output
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(0.01)
        try:
            second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        finally:
            go.touch()
        assert second.returncode != 0
        assert "another rewardlab run is writing" in second.stderr and "Traceback" not in second.stderr
        assert first.wait(timeout=120) == 0
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
        first.wait()
    rows = _out(out)
    assert Counter(r["_row"] for r in rows) == Counter(range(1, 41))


def _killed_then_resumed(inp: Path, out: Path, spec: object, chunk: int, kill_at: int,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    restore = cut_nth_chunk_write(monkeypatch, kill_at, lambda data: data[: len(data) // 2])  # cut mid-line
    with pytest.raises(Killed):
        score_file(inp, spec, out, chunk_size=chunk)
    restore()
    summary = score_file(inp, spec, out, chunk_size=chunk)
    assert summary.resumed == (kill_at - 1) * chunk


@pytest.mark.parametrize("kill_at", [1, 2, 9])
def test_jsonl_resume_equals_a_fresh_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill_at: int) -> None:
    inp = tmp_path / "in.jsonl"
    lines = []
    for i in range(12_000):
        if i % 1000 == 17:
            lines.append("")  # blank lines are not rows
        elif i % 1000 == 40:
            lines.append('{"prompt": "broken",')
        else:
            lines.append(json.dumps({"prompt": f"q{i}", "completion": "Paris" if i % 2 else "Rome",
                                     "solution": "Paris", "pad": "x" * 100}))
    inp.write_text("\n".join(lines))  # and no line end after the last row
    fresh, out = tmp_path / "fresh.jsonl", tmp_path / "out.jsonl"
    score_file(inp, "exact_match", fresh, chunk_size=1000)
    _killed_then_resumed(inp, out, "exact_match", 1000, kill_at, monkeypatch)
    assert out.read_bytes() == fresh.read_bytes()


def test_parquet_resume_equals_a_fresh_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    n = 10_000
    inp = tmp_path / "in.parquet"
    pq.write_table(pa.table({"prompt": [f"q{i}" for i in range(n)],
                             "completion": ["Paris" if i % 3 else "Rome" for i in range(n)],
                             "solution": ["Paris"] * n}), inp)
    fresh, out = tmp_path / "fresh.jsonl", tmp_path / "out.jsonl"
    score_file(inp, "exact_match", fresh, chunk_size=1000)
    _killed_then_resumed(inp, out, "exact_match", 1000, 6, monkeypatch)
    assert out.read_bytes() == fresh.read_bytes()


def test_group_spec_resumed_with_another_chunk_size_refuses(tmp_path: Path) -> None:
    inp, out, spec = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "spec.yaml"
    _write(inp, _rows(30))
    spec.write_text("reward:\n  group_zscore: {reward: exact_match}\n")
    assert _score(inp, out, "-r", str(spec), "--chunk-size", "8").exit_code == 0
    res = _score(inp, out, "-r", str(spec), "--chunk-size", "16")
    assert res.exit_code != 0 and "chunk_size differs" in res.output
    # a spec without group transforms does not depend on chunk boundaries
    plain = tmp_path / "plain.jsonl"
    assert _score(inp, plain, "-r", "exact_match", "--chunk-size", "8").exit_code == 0
    assert _score(inp, plain, "-r", "exact_match", "--chunk-size", "16").exit_code == 0
