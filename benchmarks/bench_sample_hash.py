"""Cost of the cache key: the typed, total `sample_hash` against the JSON encoding it replaced
(pydantic's ``model_dump_json`` then BLAKE2b, which failed on binary values and let ``b"1"``
and ``"1"``, or NaN and None, share a key), on real GSM8K rows, in one run.

    python -m benchmarks.bench_sample_hash            # all 7,473 GSM8K train rows, 5 rounds
    python -m benchmarks.bench_sample_hash --quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from rewardlab.core.types import Sample
from rewardlab.runtime.cache import sample_hash

DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))


def json_hash(sample: Sample) -> str:
    """The former cache key."""
    data = sample.model_dump_json(exclude={"id"}).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def load(limit: int | None) -> list[Sample]:
    rows = []
    with open(DATA / "verifiable" / "gsm8k_train.jsonl") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            row = json.loads(line)
            rows.append(Sample(prompt=row["question"], response=row["answer"],
                               reference=row["answer"].rsplit("####", 1)[-1].strip(),
                               metadata={"data_source": "gsm8k", "index": i, "split": "train"}))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    samples = load(1000 if args.quick else None)
    rounds = 2 if args.quick else 5
    best: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, so load hits both sides alike
        for name, fn in (("json (before)", json_hash), ("typed (now)", sample_hash)):
            t0 = time.perf_counter()
            for s in samples:
                fn(s)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    print(f"rows {len(samples)}, best of {rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for name, seconds in best.items():
        print(f"{name:14s} {seconds / len(samples) * 1e6:7.2f} us/row")
    print(f"ratio typed/json {best['typed (now)'] / best['json (before)']:.2f}")


if __name__ == "__main__":
    main()
