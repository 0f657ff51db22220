"""Real data and planted-bias rewards shared by the probe tests.

Planted rewards have a known bias of a known magnitude; their randomness comes from a hash of the
item and a seed (never from the global RNG), so a seed fixes the data and the verdicts."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from rewardlab import PreferencePair, Sample, Score
from rewardlab.io.preferences import read_preferences

HH = Path("preference") / "hh_rlhf_harmless_base_test.jsonl.gz"


def uniform(*key: Any) -> float:
    """A uniform number in [0, 1) fixed by `key`."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def normal(*key: Any) -> float:
    """A standard normal number fixed by `key` (Box-Muller)."""
    u1, u2 = max(uniform(*key, 1), 1e-300), uniform(*key, 2)
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


def hh_pairs(shared_data: Path, n: int) -> list[PreferencePair]:
    return read_preferences(shared_data / HH).pairs()[:n]


def gsm8k(shared_data: Path, n: int, offset: int = 0) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (shared_data / "verifiable" / "gsm8k_test.jsonl").open()]
    return rows[offset: offset + n]


def gsm8k_samples(shared_data: Path, n: int) -> list[Sample]:
    """GSM8K questions with their gold solutions as the (real, correct) response and reference."""
    return [Sample(id=str(i), prompt=r["question"], response=r["answer"], reference=r["answer"])
            for i, r in enumerate(gsm8k(shared_data, n))]


def gsm8k_pairs(shared_data: Path, n: int) -> list[PreferencePair]:
    """GSM8K pairs: the gold solution chosen, the next question's solution rejected (a wrong answer
    to this question), the gold in ``metadata["reference"]``."""
    rows = gsm8k(shared_data, n + 1)
    return [PreferencePair(id=str(i), prompt=rows[i]["question"], chosen=rows[i]["answer"],
                           rejected=rows[i + 1]["answer"], metadata={"reference": rows[i]["answer"]})
            for i in range(n)]


def synthetic_pairs(n: int, seed: int) -> list[PreferencePair]:
    """Pairs whose chosen response says "good" and rejected says "poor", with lengths drawn at
    random (independent of which side is chosen), so a content reward is length-blind."""
    out = []
    for i in range(n):
        words = [1 + int(40 * uniform(seed, i, side)) for side in ("c", "r")]
        out.append(PreferencePair(
            id=str(i), prompt=f"Question {i}: is it good?",
            chosen="Good. " + " ".join(["Indeed"] * words[0]) + ".",
            rejected="Poor. " + " ".join(["Indeed"] * words[1]) + "."))
    return out


def content(text: str) -> float:
    """1 for a response that says it is good, else 0: the content a clean reward follows."""
    return 1.0 if "good" in text.lower() else 0.0


def values(scores: list[Score]) -> list[float | None]:
    return [s.value for s in scores]
