"""Majority vote over MATH-500's real answers: the forms a policy writes one answer in vote together."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

from rewardlab.apply.bon import select
from tests.apply.rollouts import group_of

_FRAC = re.compile(r"^\\frac\{(\d+)\}\{(\d+)\}$")


def _decimal(answer: str) -> str | None:
    """A fraction answer as a terminating decimal, when it has one."""
    m = _FRAC.match(answer)
    if not m:
        return None
    q = Fraction(int(m.group(1)), int(m.group(2)))
    d = q.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return None if d != 1 else str(float(q))


def test_every_form_of_a_math500_answer_is_one_vote(shared_data: Path) -> None:
    rows = [json.loads(line) for line in (shared_data / "verifiable" / "math500_test.jsonl").open()]
    split, decimals = [], 0
    for r in rows:
        forms = [r["solution"], f"The final answer is ${r['answer']}$.", f"\\boxed{{{r['answer']}}}"]
        dec = _decimal(r["answer"])
        if dec is not None:
            forms.append(f"So the result is {dec}")
            decimals += 1
        s = select(group_of(forms, prompt=r["problem"]), "majority")
        if len(s.votes) != 1:
            split.append((r["answer"], s.votes))
    assert decimals >= 10
    # the one exception: a solution that boxes two forms of its answer ("15\frac{39}{40}, \frac{639}{40}")
    assert len(split) <= 1, split[:5]


def test_a_wrong_answer_never_joins_the_right_one(shared_data: Path) -> None:
    rows = [json.loads(line) for line in (shared_data / "verifiable" / "math500_test.jsonl").open()][:200]
    for r in rows:
        s = select(group_of([r["solution"], r"\boxed{" + r["answer"] + "+1}", r"\boxed{" + r["answer"] + "+1}"],
                            prompt=r["problem"]), "majority")
        assert s.answer is not None and "+1" in s.answer, r["answer"]
        assert s.votes[s.answer] == 2
