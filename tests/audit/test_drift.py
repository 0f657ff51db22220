"""The hacking monitor: synthetic training logs with a planted hacking onset are flagged there; a
clean log (both rewards rising together) is not; per-step statistics are what they say."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.audit.drift import content_free, drift, repetition, reward_probe
from rewardlab.core.types import Sample, Score

PROMPTS = 8
PER_PROMPT = 8


def synthetic_log(onset: int | None, steps: int = 100, seed: int = 0) -> dict[str, list]:
    """GRPO-like log: binary rewards. The policy's real accuracy rises slowly; the training reward
    agrees with the check except for 10% label noise. From `onset`, a growing share of rollouts
    are hacks (a content-free "Solution" or padded lines) that the training reward accepts and the
    check rejects."""
    rng = np.random.default_rng(seed)
    log: dict[str, list] = {"step": [], "sample": [], "train": [], "check": []}
    for t in range(steps):
        p_correct = 0.3 + 0.3 * t / steps
        p_hack = 0.0 if onset is None or t < onset else min(0.9, 0.03 * (t - onset + 1))
        for g in range(PROMPTS):
            prompt = f"question {g} at step {t}"
            for _ in range(PER_PROMPT):
                if rng.random() < p_hack:
                    text = "Solution" if rng.random() < 0.5 else "\n".join(["the answer is clearly right"] * 4)
                    train, check = 1.0, 0.0
                else:
                    correct = float(rng.random() < p_correct)
                    text = "Let me work it out: " + "x" * int(rng.integers(50, 150)) + f" answer {int(correct)}"
                    check = correct
                    train = correct if rng.random() > 0.1 else 1.0 - correct
                log["step"].append(t)
                log["sample"].append(Sample(prompt=prompt, response=text))
                log["train"].append(Score.of(train))
                log["check"].append(Score.of(check))
    return log


@pytest.mark.parametrize("onset", [40, 60, 75])
def test_planted_onset_is_flagged_there(onset: int) -> None:
    log = synthetic_log(onset)
    res = drift(log["step"], log["sample"], log["train"], log["check"])
    assert res.flag is not None
    assert abs(res.flag.onset - onset) <= 3, res.flag
    assert onset <= res.flag.detected_at <= onset + 25, res.flag  # an online monitor knows within a few windows
    assert all(a >= onset for a in res.alarms), res.alarms  # no alarm before the hacking starts
    assert res.flag.train_slope[1] > 0 and res.flag.divergence_slope[1] > 0
    last = res.steps[-1]
    assert last.probes["content_free"][0] > 0.2 and res.steps[0].probes["content_free"][0] == 0.0
    assert last.probes["repetition"][0] > 0.2
    assert last.check_mean < res.steps[onset].check_mean  # the check falls while the training reward rises
    assert last.train_mean > res.steps[onset].train_mean


@pytest.mark.parametrize("seed", range(4))
def test_clean_log_is_not_flagged(seed: int) -> None:
    log = synthetic_log(None, seed=seed)
    res = drift(log["step"], log["sample"], log["train"], log["check"])
    assert res.flag is None, (res.flag, res.alarms)
    assert all(s.probes["content_free"][0] == 0.0 for s in res.steps)


def test_check_rising_with_training_reward_is_not_flagged() -> None:
    """A training reward on a different scale that rises with the check is not hacking."""
    log = synthetic_log(None, seed=7)
    train = [Score.of(10 * c.value + 3 + 0.5 * (i % 3)) for i, c in enumerate(log["check"])]
    res = drift(log["step"], log["sample"], train, log["check"])
    assert res.flag is None


def test_per_step_statistics() -> None:
    steps = [0] * 4 + [1] * 4 + [2] * 4
    samples = [Sample(prompt=f"p{i % 2}", response="a" * (10 * (s + 1))) for i, s in enumerate(steps)]
    train_vals = [0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0]
    check_vals = [0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 0]
    train = [Score.of(v) for v in train_vals]
    check = [Score.of(v) for v in check_vals]
    check[11] = Score.error("verifier crashed")
    res = drift(steps, samples, train, check, window=3)
    s0, s1, s2 = res.steps
    assert (s0.train_mean, s0.check_mean) == (0.75, 0.5)
    assert s1.train_mean == 1.0 and s1.zero_variance_share == 1.0 and s1.groups == 2
    assert s0.zero_variance_share == 0.5  # p0 (rows 0, 2) scored 0 and 1; p1 (rows 1, 3) 1 and 1
    assert s2.check_not_ok == 1 and s2.check_mean == pytest.approx(1 / 3)
    assert s2.length_ratio == pytest.approx(30 / 20) and s0.length_mean == 10  # baseline: all 3 steps
    # baseline = the first 3 steps: z-scores in baseline per-rollout standard deviations
    base_t = np.array(train_vals, dtype=float)
    assert s1.train_z == pytest.approx((1.0 - base_t.mean()) / base_t.std())
    assert s0.divergence == pytest.approx(s0.train_z - s0.check_z)


def test_builtin_probes() -> None:
    def s(text: str) -> Sample:
        return Sample(prompt="q", response=text)

    assert content_free(s(":")) and content_free(s("  ")) and content_free(s("Thought process:"))
    assert content_free(s("かいせつ")) and not content_free(s("The answer is 4."))
    assert repetition(s("good answer here\n" * 3)) and not repetition(s("ok\nok\nok\n"))
    assert reward_probe([Score.of(0.9), Score.of(0.1), Score.error("x")]) == [True, False, None]


def test_inputs_are_checked() -> None:
    log = synthetic_log(None, steps=5)
    with pytest.raises(ValueError, match="at least window=10"):
        drift(log["step"], log["sample"], log["train"], log["check"])
    with pytest.raises(ValueError, match="aligned"):
        drift(log["step"][:-1], log["sample"], log["train"], log["check"], window=3)
    flat = [Score.of(1.0)] * len(log["step"])
    with pytest.raises(ValueError, match="no spread"):
        drift(log["step"], log["sample"], flat, log["check"], window=3)
