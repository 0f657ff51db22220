"""Shared fixtures of the adapter tests: a small Runtime made active for the module, GSM8K rows
with their gold answers, and the specs (a single reward, a composite, one that can crash)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rewardlab import Runtime

ROOT = Path(__file__).resolve().parents[2]
COMPOSITE = str(ROOT / "examples" / "math_format.yaml")
FAULTY = "tests.integrations.rewards_for_integrations:faulty"
# a composite with a reward that can crash: its failure fails the whole score (on_error: propagate)
WITH_FAULTY: dict[str, Any] = {
    "reward": {"sum": [{"reward": FAULTY, "label": "alive"}, {"reward": "math_answer", "label": "correct"}]},
    "on_error": "propagate",
}


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    """One Runtime (two workers, no cache) that the adapters use through `current_runtime()`."""
    with Runtime(workers=2) as rt, rt.active():
        yield rt


@pytest.fixture(scope="module")
def gsm8k(shared_data: Path) -> list[dict[str, Any]]:
    lines = (shared_data / "verifiable" / "gsm8k_test.jsonl").read_text().splitlines()[:8]
    rows = [json.loads(line) for line in lines]
    return [{"question": r["question"], "gold": r["answer"].split("####")[-1].strip().replace(",", "")}
            for r in rows]


def wrong(gold: str) -> str:
    return str(int(gold) + 7)
