"""Rollouts for the best-of-N, rejection-sampling and pair tests: real Qwen2.5-Math best-of-8
samples on MATH problems (one row per response), and rewards reading the reward-model score
each sample carries."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rewardlab import Sample, Score, reward
from rewardlab.apply.groups import Candidate, Group
from rewardlab.io.rows import to_sample

QWEN_BON = Path("bon") / "qwen25math_math_cot_100_rm_maj.jsonl"


def qwen_rows(shared_data: Path, problems: int | None = None) -> list[dict[str, Any]]:
    """One row per sampled response: ``prompt`` (the problem), ``response``, ``answer`` (gold),
    ``rm_score`` (the Qwen reward model's score), ``correct`` (the file's own label) and
    ``qwen_pred`` (the answer the file's evaluation extracted)."""
    out = []
    with (shared_data / QWEN_BON).open() as f:
        for i, line in enumerate(f):
            if problems is not None and i >= problems:
                break
            r = json.loads(line)
            for resp, pred, ok, sc in zip(r["code"], r["pred"], r["score"], r["pred_score"], strict=True):
                out.append({"prompt": r["question"], "response": resp, "answer": r["gt"], "rm_score": sc[0],
                            "correct": ok, "qwen_pred": pred, "problem": i})
    return out


def candidates(rows: list[dict[str, Any]]) -> list[Candidate]:
    """Unscored candidates from rows, as `rewardlab bon` reads them."""
    return [Candidate(i, to_sample(r, row_id=str(i)), row=r, where=f"line {i + 1}") for i, r in enumerate(rows)]


def group_of(responses: list[str], scores: list[Score | float | None] | None = None, *,
             prompt: str = "What is 1/2 of 1?", rows: list[dict[str, Any]] | None = None) -> Group:
    """One group of text responses to `prompt`, with the given scores (a float is an ok score)."""
    cands = []
    for i, resp in enumerate(responses):
        sc = None if scores is None else scores[i]
        cands.append(Candidate(i, Sample(prompt=prompt, response=resp),
                               score=Score.of(sc) if isinstance(sc, int | float) else sc,
                               row=(rows or [{}] * len(responses))[i]))
    return Group(prompt, cands)


@reward(register=False, range=(-math.inf, math.inf))
def rm_score(sample: Sample) -> float:
    """The reward model's score stored in the row (a Bradley-Terry logit), higher is better."""
    return float(sample.metadata["rm_score"])


@reward(register=False, range=(0, 1))
def rm_prob(sample: Sample) -> float:
    """sigmoid(rm_score): the reward model's score as a probability, for weighted votes."""
    return 1 / (1 + math.exp(-float(sample.metadata["rm_score"])))
