"""`rewardlab.client.RewardClient` and the ``remote`` reward against `rewardlab serve`, side by side.

Two ``rewardlab serve math_answer --no-cache --workers 1`` processes on 127.0.0.1 score the 24
rollouts of ``examples/rollouts.jsonl``, repeated to ``--samples``. Per row: the samples/s of one
call (after one warm-up call), for the client (one request per server: the batch cut into
contiguous slices) and for the ``remote`` reward through ``rewardlab.score`` (one request per
sample, up to the leaf's concurrency at once, batched by the server's micro-batcher), on one
server and sharded over both; every score is checked against ``math_answer`` scored in process.
Figures are comparable only within one run (the servers share the machine's cores).

    python -m benchmarks.bench_client
    python -m benchmarks.bench_client --samples 2400 --repeats 5
    python -m benchmarks.bench_client --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import rewardlab
from rewardlab import Score
from rewardlab.client import RewardClient
from rewardlab.models.remote import remote

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per row (the median is shown)")
    ap.add_argument("--quick", action="store_true", help="a small smoke run (48 samples, 1 repeat)")
    args = ap.parse_args(argv)
    if args.quick:
        args.samples, args.repeats = 48, 1
    from tests.serve.server import Server  # the test suite's process helper: start, wait ready, stop

    base = [json.loads(line) for line in (ROOT / "examples" / "rollouts.jsonl").read_text().splitlines()]
    rows = (base * (args.samples // len(base) + 1))[: args.samples]
    expected = [(s.status, s.value) for s in rewardlab.score(rows, "math_answer", workers=1)]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    servers = [Server(["math_answer", "--no-cache", "--workers", "1"]) for _ in range(2)]
    try:
        for s in servers:
            s.wait_ready()
        a, b = (s.url for s in servers)
        cases: list[tuple[str, Callable[[], list[Score]]]] = [
            ("client, 1 server", lambda: RewardClient(a).score(rows)),
            ("client, 2 servers", lambda: RewardClient([a, b]).score(rows)),
            ("remote reward, 1 server", lambda: rewardlab.score(rows, remote(url=a, range=[0, 1]), workers=1)),
            ("remote reward, 2 servers",
             lambda: rewardlab.score(rows, remote(url=[a, b], range=[0, 1]), workers=1)),
        ]
        print(f"{'':<26}{'samples/s':>12}{'wrong':>8}")
        for label, call in cases:
            call()
            rates, wrong = [], 0
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = call()
                rates.append(len(rows) / (time.perf_counter() - t0))
                wrong += sum((s.status, s.value) != e for s, e in zip(out, expected, strict=True))
            print(f"{label:<26}{statistics.median(rates):>12.0f}{wrong:>8}")
    finally:
        for s in servers:
            s.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
