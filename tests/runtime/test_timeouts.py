"""Timeouts hold for every kind that can have one, and are refused where they cannot apply.

A blocking `io` call that hangs costs its sample: the run and the process's exit go on without
it. `inline` and `model` rewards run in the caller's process and cannot be interrupted, so a
timeout on them is refused with a message that says what to do."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rewardlab as rl
from rewardlab import Sample, SpecError, Status
from rewardlab.cli import app
from rewardlab.compose.nodes import Leaf
from rewardlab.runtime.engine import LeafOptions
from tests.runtime.rewards_kinds import batch_model, blocking_io, cpu_one

ROOT = Path(__file__).resolve().parents[2]
_BOUND = 60.0  # seconds; the stuck call blocks for 300 s: finishing within this proves no hang


def test_hung_blocking_io_call_costs_its_sample_not_the_run() -> None:
    box: dict[str, list[rl.Score]] = {}
    samples = [Sample(response=t) for t in ("ok", "stuck", "ok")]
    t = threading.Thread(target=lambda: box.setdefault(
        "scores", rl.score(samples, blocking_io(), cache=None)), daemon=True)
    t.start()
    t.join(_BOUND)
    assert not t.is_alive(), "the run waited for the hung call"
    scores = box["scores"]
    assert [s.status for s in scores] == [Status.ok, Status.error, Status.ok]
    assert "timeout" in (scores[1].reason or "")


def test_process_exits_while_a_blocking_io_call_is_still_stuck(tmp_path: Path) -> None:
    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent("""
        import rewardlab as rl
        from tests.runtime.rewards_kinds import blocking_io

        if __name__ == "__main__":
            scores = rl.score([{"response": "stuck"}, {"response": "ok"}], blocking_io(),
                              cache=None)
            print("RESULT", [s.status.value for s in scores], flush=True)
    """))
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=_BOUND, env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr
    assert "RESULT ['error', 'ok']" in proc.stdout


@pytest.mark.parametrize("bad", [0, -1, -0.5, math.nan, math.inf, "1", True])
def test_bad_timeouts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="positive, finite number of seconds"):
        rl.Runtime(timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive, finite number of seconds"):
        LeafOptions(timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive, finite number of seconds"):
        rl.reward(lambda response: 1.0, name="t", register=False, timeout=bad)  # type: ignore[arg-type]


def test_spec_timeout_on_inline_and_model_rewards_is_refused_at_load() -> None:
    for name in ("exact_match", "tests.runtime.rewards_kinds:batch_model"):
        with pytest.raises(SpecError) as err:
            rl.load_spec({"reward": {"reward": name, "timeout": 2}})
        message = str(err.value)
        assert "timeout" in message and "kind='cpu'" in message
    for name in ("tests.runtime.rewards_kinds:cpu_one", "tests.runtime.rewards_kinds:blocking_io"):
        spec = rl.load_spec({"reward": {"reward": name, "timeout": 2}})
        assert spec.root.leaves()[0].options.timeout == 2.0


def test_leaf_timeout_on_an_untimed_kind_is_refused_when_scored() -> None:
    for reward in (rl.registry.get("exact_match")(), batch_model()):
        leaf = Leaf(reward, label="r", options=LeafOptions(timeout=2.0))
        with pytest.raises(ValueError, match="cannot have a timeout"):
            rl.score([Sample(response="a", reference="a")], leaf, cache=None)


def test_runtime_timeout_applies_to_timed_kinds_and_leaves_inline_rewards_running() -> None:
    samples = [Sample(response="a", reference="a"), Sample(response="b", reference="a")]
    with rl.Runtime(timeout=5.0, cache=None, workers=1) as rt:
        inline = rl.score(samples, "exact_match", runtime=rt)
        model = rl.score(samples, batch_model(), runtime=rt)
        cpu = rl.score(samples, cpu_one(), runtime=rt)
    assert [s.value for s in inline] == [1.0, 0.0]
    assert [s.value for s in model] == [1.0, 1.0]
    assert [s.value for s in cpu] == [1.0, 1.0]


def test_cli_refuses_bad_timeouts_and_runs_inline_rewards_with_one(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "p", "response": "a", "reference": "a"}\n')
    runner = CliRunner()
    for bad in ("0", "-1", "nan"):
        out = tmp_path / f"bad{bad}.jsonl"
        result = runner.invoke(app, ["score", str(rows), "-r", "exact_match", "-o", str(out),
                                     "--no-cache", "--timeout", bad, "-q"])
        assert result.exit_code != 0
        assert "positive, finite number of seconds" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    out = tmp_path / "ok.jsonl"
    result = runner.invoke(app, ["score", str(rows), "-r", "exact_match", "-o", str(out),
                                 "--no-cache", "--timeout", "5", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["reward"] == 1.0
