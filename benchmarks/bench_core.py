"""Core runtime benchmark, one run, side by side with what a user would otherwise write.

1. Overhead on 100k rows, end to end (read JSONL, map rows, score, write JSONL): the cheap
   `exact_match` (in process and through the `rewardlab score` command) and a constant-time
   reward through the command, vs a plain Python loop doing exact match with the same
   reads/writes and no runtime.
2. A CPU-heavy reward through the process pool vs a plain serial loop (speed-up).
3. Warm cache: re-scoring the CPU-heavy run from the SQLite cache vs its first run.
4. Resume: re-running the command on a finished 200k-row output (about 1.3 KB a row) vs scoring
   it fresh, time and peak memory (maximum resident set of the command's process).

    python -m benchmarks.bench_core            # full run
    python -m benchmarks.bench_core --quick    # small smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rewardlab import reward
from rewardlab.apply.scorefile import score_file
from rewardlab.rewards.match import exact_match, normalize_text
from rewardlab.runtime.engine import Runtime


@reward(kind="cpu", register=False, range=(0, 1))
def collatz_heavy(response_text: str, *, rounds: int = 1500) -> float:
    """A CPU-bound stand-in for a verifier: 1 if a Collatz-style walk seeded by the text ends
    even. Costs a few milliseconds per sample."""
    x = sum(map(ord, response_text)) + 7
    for _ in range(rounds):
        n = x
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
        x += 1
    return float(x % 2 == 0)


@reward(register=False, range=(0, 1))
def nonempty(response_text: str) -> float:
    """1 if the response is not empty: a reward that costs nothing, to time the runtime alone."""
    return float(bool(response_text))


def _rows(n: int) -> list[dict[str, str]]:
    return [{"prompt": f"What is {i} + 1?", "completion": f"<think>add</think>{i + 1 - (i % 3 == 0)}",
             "solution": str(i + 1)} for i in range(n)]


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def plain_loop(inp: Path, out: Path, fn) -> float:  # noqa: ANN001
    """What a user writes without rewardlab: read, call, write; no isolation, no cache."""
    t0 = time.perf_counter()
    with inp.open() as f, out.open("w") as g:
        for line in f:
            row = json.loads(line)
            row["reward"] = fn(row["completion"], row["solution"])
            g.write(json.dumps(row) + "\n")
    return time.perf_counter() - t0


def _plain_exact(text: str, ref: str) -> float:
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return float(normalize_text(text) == normalize_text(ref))


def _plain_heavy(text: str, ref: str) -> float:
    return float(collatz_heavy.fn(text))


def _timed_score_file(inp: Path, spec: object, out: Path, rt: Runtime) -> tuple[float, object]:
    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    summary = score_file(inp, spec, out, runtime=rt)
    return time.perf_counter() - t0, summary


def _timed_cli(inp: Path, out: Path, reward_name: str) -> float:
    """The real command, as a user runs it (progress bar off, no cache for a trivial reward)."""
    cmd = [sys.executable, "-m", "rewardlab.cli", "score", str(inp), "-r", reward_name,
           "-o", str(out), "--no-cache", "-q"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
    return time.perf_counter() - t0


def _rusage_cli(args: list[str]) -> tuple[float, float]:
    """Seconds and peak resident memory (MiB) of one `rewardlab score` command."""
    cmd = [sys.executable, "-m", "rewardlab.cli", "score", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def resume_rows(d: Path, n: int) -> list[str]:
    """Table rows: resuming a finished run vs scoring it fresh, through the command."""
    inp, out = d / "resume_in.jsonl", d / "resume_out.jsonl"
    pad = "step by step, " * 80  # about 1.1 KB of reasoning per row, as rollouts have
    with inp.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i}", "prompt": f"What is {i} + 1?",
                                "completion": f"<think>{pad}</think>{i + 1 - (i % 3 == 0)}",
                                "solution": str(i + 1)}) + "\n")
    args = [str(inp), "-r", "exact_match", "-o", str(out), "--no-cache", "-q"]
    fresh, fresh_mem = _rusage_cli([*args, "--overwrite"])
    size_mb = out.stat().st_size / 2**20
    resume, resume_mem = _rusage_cli(args)
    return [
        f"| resume of a finished run ({size_mb:,.0f} MiB output) vs scoring it fresh, `rewardlab score` | "
        f"{n:,} | {fresh:.2f} s (fresh) | {resume:.2f} s | {n / resume:,.0f} | {fresh / resume:.1f} |",
        f"| peak memory (max RSS), same two commands | {n:,} | {fresh_mem:,.0f} MiB (fresh) | "
        f"{resume_mem:,.0f} MiB (resume) | | {fresh_mem / resume_mem:.2f} |",
    ]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only-resume", action="store_true", help="run only the resume comparison")
    args = ap.parse_args(argv)
    n_resume = 20_000 if args.quick else 200_000
    n_trivial = 10_000 if args.quick else 100_000
    n_heavy = 100 if args.quick else 1_000
    workers = os.cpu_count() or 1
    lines = [f"machine: {platform.processor() or platform.machine()}, {workers} cores, "
             f"Python {platform.python_version()}", ""]
    if args.only_resume:
        with tempfile.TemporaryDirectory() as tmp:
            lines += ["| job | rows | baseline | rewardlab | rewardlab rows/s | ratio |", "|---|---|---|---|---|---|",
                      *resume_rows(Path(tmp), n_resume)]
        text = "\n".join(lines)
        print(text)
        return text
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        inp = d / "trivial.jsonl"
        _write(inp, _rows(n_trivial))
        base = plain_loop(inp, d / "plain.jsonl", _plain_exact)
        with Runtime() as rt:
            ours, summary = _timed_score_file(inp, exact_match(), d / "ours.jsonl", rt)
        assert summary.scored == n_trivial  # type: ignore[attr-defined]
        cli = _timed_cli(inp, d / "cli.jsonl", "exact_match")
        cli0 = _timed_cli(inp, d / "cli0.jsonl", "benchmarks.bench_core:nonempty")
        lines += [
            "| job | rows | plain loop | rewardlab | rewardlab rows/s | ratio (plain/ours time) |",
            "|---|---|---|---|---|---|",
            f"| `exact_match`, `score_file` in process (JSONL in/out) | {n_trivial:,} | "
            f"{base:.2f} s | {ours:.2f} s | {n_trivial / ours:,.0f} | {base / ours:.2f} |",
            f"| `exact_match`, `rewardlab score` command incl. start-up | {n_trivial:,} | "
            f"{base:.2f} s | {cli:.2f} s | {n_trivial / cli:,.0f} | {base / cli:.2f} |",
            f"| constant-time reward (`nonempty`), `rewardlab score` command incl. start-up | "
            f"{n_trivial:,} | {base:.2f} s | {cli0:.2f} s | {n_trivial / cli0:,.0f} | "
            f"{base / cli0:.2f} |",
        ]
        heavy_in = d / "heavy.jsonl"
        _write(heavy_in, _rows(n_heavy))
        serial = plain_loop(heavy_in, d / "plain_heavy.jsonl", _plain_heavy)
        with Runtime(workers=workers, cache=d / "cache.db") as rt:
            first, s1 = _timed_score_file(heavy_in, collatz_heavy(), d / "h1.jsonl", rt)
            warm, s2 = _timed_score_file(heavy_in, collatz_heavy(), d / "h2.jsonl", rt)
        assert s1.computed == n_heavy and s2.cache_hits == n_heavy  # type: ignore[attr-defined]
        lines += [
            f"| CPU-heavy reward, process pool ({workers} workers) vs serial loop | {n_heavy:,} | "
            f"{serial:.2f} s | {first:.2f} s | {n_heavy / first:,.0f} | {serial / first:.2f} |",
            f"| CPU-heavy reward, warm-cache re-run vs first run | {n_heavy:,} | {first:.2f} s "
            f"(first run) | {warm:.2f} s | {n_heavy / warm:,.0f} | {first / warm:.1f} |",
        ]
        lines += resume_rows(d, n_resume)
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
