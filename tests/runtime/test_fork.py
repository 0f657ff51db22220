"""Fork safety: a child forked after the parent used the pool, the symbolic math workers or the
cache gets fresh resources (it neither hangs nor fails), and leaves the parent's alone."""

from __future__ import annotations

import json
import os
import select
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rewardlab as rl
from rewardlab import Sample
from rewardlab.rewards.math import verify
from tests.runtime.rewards_for_tests import pid_of_worker

_BOUND = 120.0  # seconds: a generous bound that only proves "did not hang"


def _in_child(work: Callable[[], Any]) -> Any:
    """Run `work` in a forked child; its JSON result, or an AssertionError when the child
    fails, raises or does not answer within the bound (then it is killed)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's exit handlers
        code = 1
        try:
            os.close(r)
            data = json.dumps({"ok": work()}).encode()
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            data = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
        try:
            os.write(w, data)
        finally:
            os._exit(code)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], _BOUND)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the forked child did not answer within {_BOUND:g}s (hung)")
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    reply = json.loads(b"".join(chunks) or b"{}")
    assert "error" not in reply, reply.get("error")
    assert os.waitstatus_to_exitcode(status) == 0
    return reply["ok"]


def _pids(scores: list[rl.Score]) -> set[float]:
    assert all(s.ok for s in scores), [s.reason for s in scores]
    return {s.value for s in scores}  # type: ignore[misc]


def test_child_gets_fresh_pool_after_parent_ran_a_cpu_reward(tmp_path: Path) -> None:
    samples = [Sample(response=str(i)) for i in range(6)]
    with rl.Runtime(workers=2, cache=None) as rt:
        parent_workers = _pids(rl.score(samples, pid_of_worker(), runtime=rt))

        def child() -> list[list[float]]:
            inherited = _pids(rl.score(samples, pid_of_worker(), runtime=rt))
            fresh = _pids(rl.score(samples, pid_of_worker(), workers=1, cache=None))
            return [sorted(inherited), sorted(fresh)]

        inherited, fresh = _in_child(child)
        assert not set(inherited) & parent_workers  # the child started its own workers
        assert not set(fresh) & parent_workers
        # the parent's workers were left alone: the same processes still serve the parent
        assert _pids(rl.score(samples, pid_of_worker(), runtime=rt)) <= parent_workers


def test_child_runs_symbolic_math_after_parent_did() -> None:
    first = verify(gold="x^2+2x+1", prediction="(x+1)^2")
    assert first.equal is True and first.path == "symbolic"

    def child() -> list[Any]:
        v = verify(gold="\\sin^2 x + \\cos^2 x", prediction="1")
        return [v.equal, v.path, v.reason]

    assert _in_child(child) == [True, "symbolic", None]
    again = verify(gold="2x+2", prediction="2(x+1)")
    assert again.equal is True


def test_child_uses_the_inherited_cache(tmp_path: Path) -> None:
    samples = [Sample(response=str(i)) for i in range(4)]
    with rl.Runtime(workers=1, cache=tmp_path / "scores.db") as rt:
        rl.score(samples, "exact_match", runtime=rt)

        def child() -> list[int]:
            more = [Sample(response=f"child {i}") for i in range(3)]
            scores = rl.score(samples + more, "exact_match", runtime=rt)
            assert all(s.status.value in ("ok", "abstain") for s in scores)
            return [rt.stats.cache_hits, len(rt.cache or [])]

        hits, stored = _in_child(child)
        assert hits >= 4
        assert stored >= 4


def test_child_runs_code_in_the_sandbox_after_parent_did() -> None:
    row = {"prompt": "p", "response": "```python\ndef add(a, b):\n    return a + b\n```",
           "reference": {"tests": ["assert add(1, 2) == 3"], "entry_point": "add"}}
    assert rl.score([row], "code_pass", cache=None)[0].value == 1.0

    def child() -> list[Any]:
        s = rl.score([row], "code_pass", cache=None)[0]
        return [s.status.value, s.value]

    assert _in_child(child) == ["ok", 1.0]
    assert rl.score([row], "code_pass", cache=None)[0].value == 1.0
