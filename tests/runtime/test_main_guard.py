"""Pool workers import only the modules that define the rewards they run: a plain script (no
``if __name__ == "__main__":`` guard) runs once, and only a reward defined in the main script
needs the script in the workers (then an unguarded script gets one clear error)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Every script appends a line to COUNT_FILE when its top level runs.
_PROLOGUE = """\
import os
with open(os.environ["COUNT_FILE"], "a") as _f:
    _f.write(f"{os.getpid()}\\n")
"""


def _pythonpath(*extra: str) -> str:
    return os.pathsep.join([*filter(None, [os.environ.get("PYTHONPATH")]), str(ROOT), *extra])


def _run(tmp_path: Path, body: str, *args: str, name: str = "script.py",
         module: bool = False) -> tuple[subprocess.CompletedProcess[str], int]:
    script = tmp_path / name
    script.write_text(_PROLOGUE + textwrap.dedent(body))
    count = tmp_path / "count.txt"
    env = {**os.environ, "COUNT_FILE": str(count), "PYTHONPATH": _pythonpath(str(tmp_path))}
    cmd = [sys.executable, "-m", script.stem] if module else [sys.executable, str(script)]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=240,
                          cwd=tmp_path)
    runs = len(count.read_text().splitlines()) if count.exists() else 0
    return proc, runs


def test_unguarded_script_calling_math_verify_runs_once(tmp_path: Path) -> None:
    proc, runs = _run(tmp_path, """
        from rewardlab.rewards.math import verify
        pairs = [("x^2+2x+1", "(x+1)^2"), ("\\\\sin^2 x + \\\\cos^2 x", "1"), ("2x+2", "2(x+1)")]
        for gold, pred in pairs:
            v = verify(gold=gold, prediction=pred)
            print("RESULT", v.equal, v.path, v.reason)
    """)
    assert proc.returncode == 0, proc.stderr
    results = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert [r[:2] for r in results] == [["True", "symbolic"]] * 3, proc.stdout
    assert runs == 1
    assert "bootstrapping" not in proc.stderr


def test_unguarded_script_scoring_math_answer_runs_once(tmp_path: Path) -> None:
    proc, runs = _run(tmp_path, """
        import rewardlab as rl
        rows = [{"prompt": "p", "response": "so \\\\boxed{(x+1)^2}", "reference": "x^2+2x+1"},
                {"prompt": "p", "response": "so \\\\boxed{(x+2)^2}", "reference": "x^2+2x+1"}]
        for s in rl.score(rows, "math_answer", cache=None):
            print("RESULT", s.status.value, s.value, (s.details or {}).get("path"))
    """)
    assert proc.returncode == 0, proc.stderr
    results = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert results[0] == ["ok", "1.0", "symbolic"], proc.stdout  # decided by the workers
    assert results[1][:2] == ["ok", "0.0"], proc.stdout
    assert runs == 1


def test_unguarded_script_with_a_module_cpu_reward_runs_once(tmp_path: Path) -> None:
    proc, runs = _run(tmp_path, """
        import os
        import rewardlab as rl
        from tests.runtime.rewards_for_tests import pid_of_worker
        scores = rl.score([{"response": str(i)} for i in range(8)], pid_of_worker(), workers=2,
                          cache=None)
        pids = {s.value for s in scores}
        print("RESULT", all(s.ok for s in scores), os.getpid() not in pids, len(pids) >= 1)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "RESULT True True True" in proc.stdout
    assert runs == 1


_MAIN_REWARD = """
    import rewardlab as rl

    @rl.reward(kind="cpu", register=False)
    def longer_than_three(response_text: str) -> float:
        \"\"\"1 when the response has more than three characters.\"\"\"
        return float(len(response_text) > 3)

    def main():
        scores = rl.score([{"response": r} for r in ["abcd", "ab", "abcdef"]],
                          longer_than_three, workers=2, cache=None)
        print("RESULT", [s.value for s in scores])
"""


def test_guarded_script_runs_a_reward_defined_in_main(tmp_path: Path) -> None:
    proc, runs = _run(tmp_path, _MAIN_REWARD + """
    if __name__ == "__main__":
        main()
    """)
    assert proc.returncode == 0, proc.stderr
    assert "RESULT [1.0, 0.0, 1.0]" in proc.stdout
    assert proc.stdout.count("RESULT") == 1
    assert 2 <= runs <= 3  # the script, plus each worker that imported it to find the reward


def test_guarded_module_run_with_dash_m_runs_a_reward_defined_in_main(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, _MAIN_REWARD + """
    if __name__ == "__main__":
        main()
    """, name="scoremod.py", module=True)
    assert proc.returncode == 0, proc.stderr
    assert "RESULT [1.0, 0.0, 1.0]" in proc.stdout


def test_unguarded_script_with_a_reward_in_main_gets_one_clear_error(tmp_path: Path) -> None:
    proc, runs = _run(tmp_path, _MAIN_REWARD + """
    main()
    """)
    assert proc.returncode != 0
    assert "MainModuleError" in proc.stderr, proc.stderr
    assert 'if __name__ == "__main__":' in proc.stderr
    assert "longer_than_three" in proc.stderr and "script.py" in proc.stderr
    assert "bootstrapping" not in proc.stderr
    assert proc.stderr.count("Traceback") == 1, proc.stderr
    assert "RESULT" not in proc.stdout
    assert runs <= 3, (runs, proc.stderr)


def test_reward_defined_in_python_c_gets_a_clear_error(tmp_path: Path) -> None:
    code = textwrap.dedent(_MAIN_REWARD) + "\nmain()\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "PYTHONPATH": _pythonpath()})
    assert proc.returncode != 0
    assert "MainModuleError" in proc.stderr and "move it into a module" in proc.stderr
    assert proc.stderr.count("Traceback") == 1
