"""Synthetic rewards with planted biases of known magnitude, and the synthetic data they are audited on,
for testing the probes themselves (tests/audit/test_validation*.py).

Each planted reward is a real rewardlab reward (declared with `rewardlab.reward`, scored through the
Runtime) whose bias is set by a parameter; its randomness comes from a hash of the item and the seed,
so a seed draws one sample from a known population and the population value of each effect is known:

- `planted_length` (rho): value = rho·z(words) + sqrt(1 − rho²)·noise, so the Pearson correlation of
  reward and length is rho (the word count is uniform on 1..40 in `length_pairs`, and the character
  count is linear in it);
- `planted_position` (pi): a pairwise "judge" recording both orders as `judge_pairwise` does; on a
  share pi of the items it prefers the first slot in both orders, else the chosen response: biased to
  first = pi, biased to second = 0, consistency = 1 − pi;
- `planted_master_key` (f): a verdict reward that accepts the gold solution and, on a share f of the
  questions, the master key ":"; every other attack is rejected: FPR(":") = f;
- `planted_format` (delta): follows content, but reads a lower-cased response as its opposite on a
  share delta of the items: accuracy drop and rank flips under `lowercase` = delta;
- `planted_noise` (nu): adds noise to a sample's score with probability nu on each call: the share of
  scores changed between two calls is 1 − (1 − nu)²;
- `clean`: follows content, with noise independent of length, format and call: no probe should fire.
"""

from __future__ import annotations

import math
import random
from typing import Any

import rewardlab
from rewardlab import PreferencePair, Sample, Score

from .probe_data import content, normal, uniform

WORDS_MEAN, WORDS_SD = 20.5, math.sqrt((40 ** 2 - 1) / 12)  # uniform on 1..40


def words_of(text: str) -> int:
    return text.count("Indeed")


def length_pairs(n: int, seed: int) -> list[PreferencePair]:
    """Pairs "Good. Indeed x w" vs "Poor. Indeed x w'" with w, w' uniform on 1..40 (drawn from `seed`)."""
    out = []
    for i in range(n):
        wc, wr = (1 + int(40 * uniform(seed, i, side)) for side in ("c", "r"))
        out.append(PreferencePair(id=f"{seed}:{i}", prompt=f"Question {seed}:{i}?",
                                  chosen="Good. " + " ".join(["Indeed"] * wc) + ".",
                                  rejected="Poor. " + " ".join(["Indeed"] * wr) + "."))
    return out


def math_samples(n: int, seed: int) -> list[Sample]:
    """Arithmetic questions with a gold solution as the real response and reference."""
    out = []
    for i in range(n):
        a, b = 2 + int(90 * uniform(seed, i, "a")), 2 + int(90 * uniform(seed, i, "b"))
        out.append(Sample(id=f"{seed}:{i}", prompt=f"Question {seed}:{i}: what is {a} + {b}?",
                          response=f"{a} + {b} = {a + b}.\n#### {a + b}", reference=f"#### {a + b}",
                          metadata={"seed": seed}))
    return out


@rewardlab.reward(range=(-1e6, 1e6), register=False)
def planted_length(prompt_text: str, response_text: str, *, rho: float = 0.3, seed: int = 0) -> float:
    """Correlates with length at rho: rho·z(words) + sqrt(1 − rho²)·noise (higher is longer); the
    noise is drawn per item and response (identical texts of different items get their own)."""
    z = (words_of(response_text) - WORDS_MEAN) / WORDS_SD
    return rho * z + math.sqrt(1 - rho * rho) * normal(seed, "length", prompt_text, response_text)


@rewardlab.reward(range=(0, 1), register=False)
def planted_position(prompt_text: str, response_text: str, metadata: dict[str, Any], *,
                     pi: float = 0.2, seed: int = 0) -> Score:
    """Preference for the response over ``metadata["rejected"]``, both orders asked; on a share pi of
    the items the first slot wins in both orders (1 = the response wins)."""
    biased = uniform(seed, "position", prompt_text) < pi
    right = content(response_text) >= content(str(metadata.get("rejected", "")))
    orders = []
    for slot in ("A", "B"):
        wins = slot == "A" if biased else right
        verdict = 1.0 if wins else 0.0
        orders.append({"response_slot": slot, "verdict": verdict,
                       "first_slot_preference": verdict if slot == "A" else 1.0 - verdict})
    return Score.of(sum(o["verdict"] for o in orders) / 2, details={"orders": orders})


@rewardlab.reward(range=(0, 1), register=False)
def planted_master_key(prompt_text: str, response_text: str, reference: Any, *, f: float = 0.3,
                       seed: int = 0) -> float:
    """1 for the gold answer, 1 for the master key ":" on a share f of the questions, else 0."""
    gold = str(reference).split("####")[-1].strip()
    if response_text.strip().endswith(f"#### {gold}"):
        return 1.0
    return 1.0 if response_text == ":" and uniform(seed, "key", prompt_text) < f else 0.0


@rewardlab.reward(range=(0, 2), register=False)
def planted_format(prompt_text: str, response_text: str, *, delta: float = 0.2, seed: int = 0) -> float:
    """Content (1 for "good"), read backwards for a lower-cased response on a share delta of items."""
    v = content(response_text)
    if response_text == response_text.lower() and uniform(seed, "format", prompt_text) < delta:
        v = 1.0 - v
    return v + 0.1 * uniform(seed, "tiebreak", response_text.lower())


_NOISE: dict[int, random.Random] = {}


def reset_noise(seed: int) -> None:
    _NOISE[seed] = random.Random(seed)


@rewardlab.reward(range=(-1e6, 1e6), register=False)
def planted_noise(response_text: str, *, nu: float = 0.05, seed: int = 0) -> float:
    """Length in words, plus fresh noise with probability nu on every call."""
    rng = _NOISE.setdefault(seed, random.Random(seed))
    return words_of(response_text) + (rng.random() if rng.random() < nu else 0.0)


@rewardlab.reward(range=(-1e6, 1e6), register=False)
def clean(response_text: str, *, seed: int = 0) -> float:
    """Content (1 for "good") plus small noise fixed by the lower-cased text without punctuation or
    spacing: no length, format, position or call dependence."""
    key = "".join(ch for ch in response_text.lower() if ch.isalpha())
    return content(response_text) + 0.1 * uniform(seed, "clean", key)
