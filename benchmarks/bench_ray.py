"""``rewardlab score`` on one machine against ``rewardlab score --ray`` and `score_dataset`, on the
same 20,000 GSM8K rows (right, wrong, unformatted, hedged and empty answers) in one Parquet
file, in one run, as ratios to the local run.

- local: ``rewardlab score IN -r SPEC -o OUT --no-cache -q`` (a process pool of one worker per core);
- --ray: the same command with ``--ray`` (starts a local Ray; default pool: CPUs - 1 actors of
  1 CPU), and with ``--ray --ray-cpus 0.5`` (twice the actors, half a CPU each);
- score_dataset: the Ray Data pipeline alone in this process (Ray already started, the file read
  with ``ray.data.read_parquet`` and repartitioned into 4 blocks, two half-CPU actors), timed to
  the last row.

Every command's wall time includes its process start (and Ray's start for --ray). Every output
is checked against the local run's (values, statuses, reasons, components by row); a mismatch
fails the benchmark. No cache is used.

    python -m benchmarks.bench_ray
    python -m benchmarks.bench_ray --rows 5000 --spec math_answer
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
COMPOSITE = str(ROOT / "examples" / "math_format.yaml")
COLUMNS = ("reward", "reward_status", "reward_reason", "reward_components")


def rows(n: int) -> list[dict[str, Any]]:
    """`n` rows over GSM8K train+test questions, each with one of six kinds of response."""
    qs = []
    for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
        for line in filter(None, (DATA / "verifiable" / name).read_bytes().split(b"\n")):
            r = json.loads(line)
            qs.append((r["question"], r["answer"].split("####")[-1].strip().replace(",", "")))
    out = []
    for k in range(n):
        q, gold = qs[k % len(qs)]
        wrong = str(int(gold) + 1 + k % 5)
        response = [f"<think>Step by step.</think><answer>{gold}</answer>",
                    f"<think>Step by step.</think><answer>{wrong}</answer>",
                    f"The answer is \\boxed{{{gold}}}.", f"I believe the result is {wrong}.",
                    f"<think>Either.</think><answer>{gold} or {wrong}</answer>", ""][(k // len(qs) + k) % 6]
        out.append({"id": f"g{k}", "question": q, "response": response, "answer": gold})
    return out


def load(path: Path) -> dict[Any, dict[str, Any]]:
    return {r["id"]: {c: r.get(c) for c in COLUMNS}
            for r in (json.loads(x) for x in path.read_bytes().split(b"\n") if x)}


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    took = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stderr[-3000:]}")
    return took


def load_avg() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (1,000 rows)")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--spec", action="append", help="reward name or spec file (repeatable) "
                    "[default: math_answer and examples/math_format.yaml]")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows = 1_000
    specs = args.spec or ["math_answer", COMPOSITE]
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from rewardlab.integrations.ray import decode_row, score_dataset

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"ray {ray.__version__}; load average before: {load_avg()}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        inp = d / "gsm8k.parquet"
        pq.write_table(pa.Table.from_pylist(rows(args.rows)), inp)
        exe = [sys.executable, "-m", "rewardlab.cli"]
        results: list[tuple[str, str, float, float]] = []
        for spec in specs:
            name = Path(spec).name
            base = [*exe, "score", str(inp), "-r", spec, "--no-cache", "-q", "--overwrite"]
            t_local = run([*base, "-o", str(d / "local.jsonl")])
            local = load(d / "local.jsonl")
            assert len(local) == args.rows
            results.append((name, "rewardlab score (local)", t_local, 1.0))
            for label, extra in (("rewardlab score --ray", ["--ray"]),
                                 ("rewardlab score --ray --ray-cpus 0.5", ["--ray", "--ray-cpus", "0.5"])):
                out = d / "ray.jsonl"
                t = run([*base, "-o", str(out), *extra])
                if load(out) != local:
                    sys.exit(f"{label}: the output differs from the local run's")
                results.append((name, label, t, t_local / t))
                print(f"{name}: {label}: {t:.2f} s (local {t_local:.2f} s)", flush=True)
            ray.init(include_dashboard=False, log_to_driver=False)
            ray.data.DataContext.get_current().enable_progress_bars = False
            try:
                t0 = time.perf_counter()
                ds = ray.data.read_parquet(str(inp)).repartition(4)
                got = [decode_row(r) for r in score_dataset(ds, spec, num_cpus=0.5, concurrency=2,
                                                            batch_size=512).take_all()]
                t = time.perf_counter() - t0
            finally:
                ray.shutdown()
            if {r["id"]: {c: r.get(c) for c in COLUMNS} for r in got} != local:
                sys.exit("score_dataset: the scores differ from the local run's")
            results.append((name, "score_dataset (Ray running; 2 actors x 0.5 CPU)", t, t_local / t))
        print(f"{args.rows:,} rows, no cache; every output equal to the local run's; "
              f"load average after: {load_avg()}")
        print("| spec | how | wall s | rows/s | speed vs local |\n|---|---|---:|---:|---:|")
        for name, label, t, ratio in results:
            print(f"| {name} | {label} | {t:.2f} | {args.rows / t:,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
