"""Code-execution verifier benchmark: the sandbox against a plain subprocess per program.

On the canonical solutions of HumanEval (164) and MBPP sanitized (427), each program with its
tests (MBPP task 123 is left out: its solution computes for about 9 s, which would measure the
solution rather than the overhead):

- baseline: the program and its tests written to a file and run with
  ``subprocess.run([python, file])`` (what most RL code does: a fresh interpreter per program,
  pass = exit code 0), one at a time and with one thread per core;
- sandbox: the same programs as `AssertJob` runs (per-test verdicts, isolation, limits), with one
  worker and with one per core;
- the reward end to end: ``rewardlab.score(samples, code_pass())`` (reference parsing, program
  extraction, the sandbox, details), one per core;
- per-program overhead: the median latency of running an empty program.

    python -m benchmarks.bench_code            # full run
    python -m benchmarks.bench_code --quick    # small smoke run
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import rewardlab as rl
from rewardlab import Sample
from rewardlab.rewards.code import build_program, code_pass, parse_reference
from rewardlab.sandbox import AssertJob, Limits, Sandbox, StdioJob, default_sandbox

DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
SKIP_MBPP = {123}
LIMITS = Limits(timeout=20.0)


def load_tasks(quick: bool) -> list[dict[str, Any]]:
    """HumanEval and MBPP rows, each with its canonical program as `response`."""
    with gzip.open(DATA / "verifiable" / "HumanEval.jsonl.gz", "rt") as fh:
        he = [json.loads(line) for line in fh]
    mb = [json.loads(line) for line in (DATA / "verifiable" / "mbpp_sanitized.jsonl")
          .read_text().splitlines()]
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


def _server_cpu(sandbox: Sandbox) -> float:
    """CPU seconds of a sandbox's server and of every child it reaped (the runs)."""
    proc = sandbox._proc  # noqa: SLF001 - the benchmark reads the server's accounting
    if proc is None:
        return 0.0
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_baseline(tasks: list[dict[str, Any]], threads: int, workdir: Path
                 ) -> tuple[float, int, float]:
    """Seconds, programs passing, and CPU seconds (ours and the interpreters')."""
    paths = []
    for i, task in enumerate(tasks):
        path = workdir / f"prog_{i}.py"
        path.write_text(task["script"])
        paths.append(path)

    def one(path: Path) -> bool:
        proc = subprocess.run([sys.executable, str(path)], capture_output=True, timeout=60)
        return proc.returncode == 0

    cpu0, t0 = _own_cpu(), time.perf_counter()
    if threads == 1:
        ok = [one(p) for p in paths]
    else:
        with ThreadPoolExecutor(threads) as pool:
            ok = list(pool.map(one, paths))
    return time.perf_counter() - t0, sum(ok), _own_cpu() - cpu0


def jobs_for(tasks: list[dict[str, Any]]) -> list[AssertJob]:
    jobs = []
    for task in tasks:
        suite = parse_reference(task["row"])
        jobs.append(AssertJob(build_program(task["response"], suite), suite.tests,
                              setup=suite.setup, entry_point=suite.entry_point,
                              candidate=suite.candidate, expose=suite.expose, limits=LIMITS))
    return jobs


def run_sandbox(sandbox: Sandbox, jobs: list[AssertJob], sequential: bool
                ) -> tuple[float, int, float, float]:
    """Seconds, programs passing, CPU seconds (this process, the server and its children),
    and seconds spent running the programs and their tests (as the harness times them: the
    work itself, without any overhead)."""
    cpu0, server0, t0 = _own_cpu(), _server_cpu(sandbox), time.perf_counter()
    if sequential:
        results = [sandbox.run(job) for job in jobs]
    else:
        results = sandbox.run_many(jobs)
    elapsed = time.perf_counter() - t0
    cpu = _own_cpu() - cpu0 + _server_cpu(sandbox) - server0
    ok = sum(1 for job, r in zip(jobs, results, strict=True)
             if r.completed and all(v.passed for v in r.verdicts(len(job.tests))))
    work = sum((r.load or {}).get("seconds", 0.0) + sum(t.seconds for t in r.tests)
               for r in results)
    return elapsed, ok, cpu, work


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


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a small subset")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    tasks = load_tasks(args.quick)
    n = len(tasks)
    rows: list[tuple[str, float, int, float | None]] = []

    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("subprocess.run per program, sequential",
                     *run_baseline(tasks, 1, Path(tmp))))
        rows.append((f"subprocess.run per program, {cores} threads",
                     *run_baseline(tasks, cores, Path(tmp))))

    jobs = jobs_for(tasks)
    t0 = time.perf_counter()
    with Sandbox(workers=1) as one:
        one.run(StdioJob("pass"))
        start_one = time.perf_counter() - t0
        secs, ok, cpu, work = run_sandbox(one, jobs, True)
        rows.append(("sandbox, 1 worker, one at a time", secs, ok, cpu))
        reps = 10 if args.quick else 40
        sub_lat, our_lat = empty_latency(reps, one)
    with Sandbox(workers=cores) as many:
        many.run(StdioJob("pass"))
        secs, ok, cpu, _ = run_sandbox(many, jobs, False)
        rows.append((f"sandbox, {cores} workers, batch", secs, ok, cpu))

    samples = [Sample(response=t["response"], reference=t["row"]) for t in tasks]
    shared = default_sandbox()
    shared.run(StdioJob("pass"))  # start the shared server outside the timing
    cpu0, server0, t0 = _own_cpu(), _server_cpu(shared), time.perf_counter()
    scores = rl.score(samples, code_pass(timeout=LIMITS.timeout))
    reward_time = time.perf_counter() - t0
    reward_cpu = _own_cpu() - cpu0 + _server_cpu(shared) - server0
    rows.append(("`code_pass` reward via rewardlab.score (end to end)", reward_time,
                 sum(1 for s in scores if s.value == 1.0), reward_cpu))

    base_seq, base_par = rows[0][1], rows[1][1]
    base_cpu = rows[0][3] or 0.0
    over_base = 1000 * (base_seq - work) / n
    over_ours = 1000 * (rows[2][1] - work) / n
    cpu_over_base = 1000 * (base_cpu - work) / n
    cpu_over_ours = 1000 * ((rows[2][3] or 0.0) - work) / n
    lines = [
        f"Code execution: {n} canonical HumanEval + MBPP programs with their tests "
        f"({platform.machine()}, {cores} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end)",
        "",
        "| runner | seconds | programs/s | ms/program | CPU ms/program | passed "
        "| speed-up vs subprocess |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, (name, secs, ok, cpu) in enumerate(rows):
        base = base_seq if i in (0, 2) else base_par
        lines.append(f"| {name} | {secs:.2f} | {n / secs:.1f} | {1000 * secs / n:.1f} | "
                     f"{1000 * (cpu or 0.0) / n:.1f} | {ok}/{n} | {base / secs:.1f}x |")
    lines += [
        "",
        "| per-program overhead (one at a time) | subprocess.run | sandbox | ratio |",
        "|---|---:|---:|---:|",
        f"| real programs, wall: (time - work) / programs, ms | {over_base:.1f} | "
        f"{over_ours:.1f} | {over_base / over_ours:.1f}x |",
        f"| real programs, CPU: (CPU - work) / programs, ms | {cpu_over_base:.1f} | "
        f"{cpu_over_ours:.1f} | {cpu_over_base / cpu_over_ours:.1f}x |",
        f"| empty program, median latency, ms | {1000 * sub_lat:.1f} | {1000 * our_lat:.1f} | "
        f"{sub_lat / our_lat:.1f}x |",
        "",
        f"Work = {work:.2f} s: the programs' own load and test time as the harness measures it "
        "(the same work happens in both runners). CPU counts every process involved (this one, "
        "the interpreters or the sandbox server and all its children), so it does not move "
        "with other load on the machine. Sandbox server start (once per process): "
        f"{1000 * start_one:.0f} ms. Speed-ups compare like with like (sequential with "
        "sequential, parallel with parallel). The subprocess baseline fails MBPP task 246, whose "
        "tests use `math` without importing it (the sandbox binds standard modules the tests "
        "name).",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
