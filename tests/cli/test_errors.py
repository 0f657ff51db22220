"""`rewardlab score` answers bad situations with a one-line message and a non-zero exit, never a
traceback; one bad value costs at most its row; nothing is left behind in the temp directory."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app
from tests.cli.faults import cut_nth_chunk_write
from tests.jsonl import read_jsonl as _out
from tests.jsonl import write_jsonl as _write

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _rows(n: int) -> list[dict]:
    return [{"prompt": f"q{i}", "completion": "Paris", "solution": "Paris"} for i in range(n)]


def _score(*args: str) -> object:
    return runner.invoke(app, ["score", *args, "--no-cache", "-q"])


def _clean_failure(res: object, *needles: str) -> None:
    """Exit non-zero, with a message holding `needles`, and no traceback."""
    assert res.exit_code != 0, res.output  # type: ignore[attr-defined]
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception  # type: ignore[attr-defined]
    assert "Traceback" not in res.output  # type: ignore[attr-defined]
    for n in needles:
        assert n in res.output, res.output  # type: ignore[attr-defined]


def test_read_only_output_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inp, ro = tmp_path / "in.jsonl", tmp_path / "ro"
    _write(inp, _rows(3))
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: answer as the kernel does for a read-only directory
        real_open = os.open

        def denied(path: object, flags: int, *a: object, **kw: object) -> int:
            if str(path).startswith(str(ro)) and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", denied)
    try:
        res = _score(str(inp), "-r", "exact_match", "-o", str(ro / "out.jsonl"))
    finally:
        ro.chmod(0o755)
    _clean_failure(res, "Permission denied", "out.jsonl")


def test_full_disk_is_a_message_and_the_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(100))
    # the third chunk finds the disk full after part of it is written
    restore = cut_nth_chunk_write(monkeypatch, 3, lambda data: data[:50],
                                  OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    res = _score(str(inp), "-r", "exact_match", "-o", str(out), "--chunk-size", "10")
    _clean_failure(res, "No space left on device", str(out), "resume")
    restore()
    again = _score(str(inp), "-r", "exact_match", "-o", str(out), "--chunk-size", "10")
    assert again.exit_code == 0, again.output
    assert Counter(r["_row"] for r in _out(out)) == Counter(range(1, 101))


def test_full_tmpfs_is_a_message(tmp_path: Path) -> None:
    """The same with a real full file system, where one can be mounted (root)."""
    small = tmp_path / "small"
    small.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                                 capture_output=True).returncode == 0
    except OSError:
        mounted = False
    if not mounted:
        pytest.skip("cannot mount a tmpfs here")
    try:
        inp, out = tmp_path / "in.jsonl", small / "out.jsonl"
        _write(inp, _rows(3000))
        res = _score(str(inp), "-r", "exact_match", "-o", str(out), "--chunk-size", "100")
        _clean_failure(res, "No space left on device", str(out))
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_output_is_a_directory(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    _write(inp, _rows(3))
    _clean_failure(_score(str(inp), "-r", "exact_match", "-o", str(tmp_path)), "is a directory")


def test_invalid_parquet(tmp_path: Path) -> None:
    bad = tmp_path / "rollouts.parquet"
    bad.write_bytes(b"this is not parquet at all\n" * 10)
    res = _score(str(bad), "-r", "exact_match", "-o", str(tmp_path / "out.jsonl"))
    _clean_failure(res, "cannot read", "rollouts.parquet")
    assert not (tmp_path / "out.jsonl").exists()


def test_reward_module_that_raises_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "team_rewards_broken.py").write_text("raise RuntimeError('needs a GPU driver')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    inp = tmp_path / "in.jsonl"
    _write(inp, _rows(3))
    res = _score(str(inp), "-r", "team_rewards_broken:score", "-o", str(tmp_path / "out.jsonl"))
    _clean_failure(res, "team_rewards_broken:score", "RuntimeError", "needs a GPU driver")


def test_cyclic_spec(tmp_path: Path) -> None:
    spec = tmp_path / "cyclic.yaml"
    spec.write_text("reward: &loop\n  sum:\n    - *loop\n    - exact_match\n")
    inp = tmp_path / "in.jsonl"
    _write(inp, _rows(3))
    _clean_failure(_score(str(inp), "-r", str(spec), "-o", str(tmp_path / "o.jsonl")),
                   "cyclic.yaml", "contains itself")


@pytest.mark.parametrize("depth", [100, 3000])
def test_very_deep_spec(tmp_path: Path, depth: int) -> None:
    spec = tmp_path / "deep.yaml"
    spec.write_text("reward: " + "{clip: " * depth + "exact_match" + "}" * depth + "\n")
    inp = tmp_path / "in.jsonl"
    _write(inp, _rows(3))
    _clean_failure(_score(str(inp), "-r", str(spec), "-o", str(tmp_path / "o.jsonl")), "deep.yaml", "nested")


def test_unwritable_summary_json_is_refused_before_scoring(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(3))
    res = _score(str(inp), "-r", "exact_match", "-o", str(out), "--summary-json", str(tmp_path))
    _clean_failure(res, "--summary-json")
    res = _score(str(inp), "-r", "exact_match", "-o", str(out), "--summary-json",
                 str(tmp_path / "no" / "such" / "dir" / "s.json"))
    _clean_failure(res, "--summary-json")
    assert not out.exists()


def test_every_row_malformed_exits_non_zero(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    _write(inp, ['{"prompt": ', {"prompt": "q"}, "[1, 2]"])
    res = _score(str(inp), "-r", "exact_match", "-o", str(tmp_path / "out.jsonl"))
    _clean_failure(res, "every row", "malformed")


def test_odd_detail_values_cost_nothing(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(inp, _rows(5))
    res = _score(str(inp), "-r", "tests.cli.rewards_for_cli:odd_details", "-o", str(out))
    assert res.exit_code == 0, res.output
    rows = _out(out)
    assert [r["_row"] for r in rows] == [1, 2, 3, 4, 5]
    d = rows[0]["reward_details"]
    assert d["array"] == [0, 1, 2] and d["raw"] == {"base64": "/wA="} and "Opaque" in d["obj"]
    assert list(d["pair"].values()) == ["tuple key"] and d["big"] == 10**30
    assert all(r["reward"] == 1.0 and r["reward_status"] == "ok" for r in rows)


def test_parquet_binary_column_is_written(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    inp, out = tmp_path / "in.parquet", tmp_path / "out.jsonl"
    pq.write_table(pa.table({"prompt": ["a", "b"], "completion": ["Paris", "Rome"], "solution": ["Paris"] * 2,
                             "blob": [b"\xff\x00", b"ok"]}), inp)
    res = _score(str(inp), "-r", "exact_match", "-o", str(out))
    assert res.exit_code == 0, res.output
    rows = _out(out)
    assert [(r["_row"], r["reward"], r["blob"]) for r in rows] == [
        (0, 1.0, {"base64": "/wA="}), (1, 0.0, {"base64": "b2s="})]


def test_input_nested_beyond_the_parser_limit_is_one_malformed_row(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    deep = '{"prompt": "q", "completion": "Paris", "meta": ' + "[" * 5000 + "]" * 5000 + "}"
    _write(inp, [_rows(1)[0], deep, _rows(1)[0]])
    res = _score(str(inp), "-r", "exact_match", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "line 2" in res.output and "nested too deeply" in res.output
    assert [r["_row"] for r in _out(out)] == [1, 3]


# -- nothing left behind ----------------------------------------------------------------------
def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("pymp-", "rewardlab-mp-")))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp directory with a short path: multiprocessing puts AF_UNIX sockets (at most 107
    bytes of path) under it."""
    d = Path(tempfile.mkdtemp(prefix="rl"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _start_waiting_run(tmp_path: Path, tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    go, started = tmp_path / "go", tmp_path / "started"
    _write(inp, _rows(8))
    cmd = [sys.executable, "-m", "rewardlab.cli", "score", str(inp), "-o", str(out), "--no-cache", "-q",
           "--workers", "1", "--timeout", "600", "-r", "tests.cli.rewards_for_cli:wait_for_file_cpu",
           "-p", f"path={go}", "-p", f"started={started}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)}, start_new_session=True)
    while not started.exists():  # a pool worker is scoring
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.01)
    return proc, go


@pytest.mark.slow
def test_sigterm_exits_with_a_message_and_leaves_no_temp_dirs(tmp_path: Path, short_tmp: Path) -> None:
    tmp = short_tmp
    proc, go = _start_waiting_run(tmp_path, tmp)
    try:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        go.touch()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert _leftovers(tmp) == []


@pytest.mark.slow
def test_temp_dirs_of_a_sigkilled_run_are_removed_at_the_next_start(tmp_path: Path, short_tmp: Path) -> None:
    tmp = short_tmp
    proc, go = _start_waiting_run(tmp_path, tmp)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    go.touch()
    assert _leftovers(tmp)  # what a killed run leaves
    inp = tmp_path / "small.jsonl"
    _write(inp, _rows(2))
    nxt = subprocess.run([sys.executable, "-m", "rewardlab.cli", "score", str(inp), "-o", str(tmp_path / "s.jsonl"),
                          "-r", "exact_match", "--no-cache", "-q"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TMPDIR": str(tmp)}, timeout=120)
    assert nxt.returncode == 0, nxt.stderr
    assert _leftovers(tmp) == []
