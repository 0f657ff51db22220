"""Position consistency of pairwise judges: does the verdict follow the response or the slot?

`judge_pairwise` asks each comparison in both orders and records, per sample, whether the two
orders agree (``details["consistent"]``) and each order's preference for the first slot
(``details["orders"][i]["first_slot_preference"]``); `position_report` sums these over a batch,
and `position_probe` runs a judge on preference pairs and reports MT-Bench's position-bias
metrics as probe results (estimates with CIs, p-values, MDEs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rewardlab.audit.probe import ProbeResult, Scorer
from rewardlab.core.types import PreferencePair, PreferenceSet, Score

__all__ = ["PositionReport", "position_probe", "position_report"]


@dataclass(frozen=True)
class PositionReport:
    """Position consistency of pairwise verdicts over a batch.

    `compared`: ok scores judged in both orders; `inconsistent`: those whose two orders prefer
    different responses; `rate`: inconsistent / compared (None when nothing was compared);
    `first_slot_preference`: mean preference for whichever response was shown first, over all
    orders (0.5 means no position bias)."""

    compared: int
    inconsistent: int
    rate: float | None
    first_slot_preference: float | None


def position_report(scores: Sequence[Score]) -> PositionReport:
    """How often `judge_pairwise` changed its mind when the two responses swapped places."""
    compared = inconsistent = 0
    firsts: list[float] = []
    for s in scores:
        if not s.ok or not s.details:
            continue
        for order in s.details.get("orders", []):
            if "first_slot_preference" in order:
                firsts.append(float(order["first_slot_preference"]))
        if "consistent" in s.details:
            compared += 1
            inconsistent += not s.details["consistent"]
    return PositionReport(
        compared=compared,
        inconsistent=inconsistent,
        rate=inconsistent / compared if compared else None,
        first_slot_preference=sum(firsts) / len(firsts) if firsts else None,
    )


# -- the position probe: MT-Bench's position-bias metrics with CIs -------------------------------
def _winner(value: float) -> str:
    """Which response an order preferred, from the response's side: ``"response"``, ``"other"``
    or ``"tie"`` (a value of exactly 0.5)."""
    return "response" if value > 0.5 else "other" if value < 0.5 else "tie"


def position_probe(
    items: Iterable[PreferencePair | PreferenceSet],
    score: Scorer,
    *,
    against: str = "rejected",
    min_bias: float = 0.05,
    level: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    n_resamples: int = 4000,
    seed: int = 0,
    reference_key: str = "reference",
) -> list[ProbeResult]:
    """Position bias of a pairwise judge on preference pairs, both orders asked.

    Each pair is scored once as a sample whose response is the chosen one and whose
    ``metadata[against]`` holds the rejected one; the reward must compare the two and record both
    orders as `judge_pairwise` does (``details["orders"]``, each with ``response_slot`` "A" or "B"
    and the verdict for the response; e.g. ``judge_pairwise(..., against="rejected")``). Per pair,
    the winner of each order (MT-Bench, Zheng et al. 2023, FastChat ``llm_judge``): consistent when
    both orders pick the same response (or both tie), biased to first when the response shown
    first wins in both orders, biased to second when the one shown second does.

    Tests: first − second (the share biased to first minus biased to second; null "no position
    preference", exact sign test over the pairs biased either way), and the mean first-slot
    preference − 0.5 (cluster bootstrap; catches a soft bias in probability verdicts). Baselines:
    consistency, biased-to-first and biased-to-second rates, and the judge's accuracy under the
    conservative rule (a pair counts as a win only when both orders prefer the chosen response, as
    a tie when they disagree: (win + tie/2) / n)."""
    from rewardlab.audit.length import expand
    from rewardlab.audit.probe import mean_result, rate_result
    from rewardlab.audit.stats import mcnemar, paired_bootstrap_diff, wilson_ci

    ex = expand(items, reference_key)
    batch = []
    for (c, r) in ex.pairs:
        chosen, rejected = ex.samples[c], ex.samples[r]
        batch.append(chosen.model_copy(update={"metadata": {**chosen.metadata, against: rejected.response_text}}))
    scores = list(score(batch)) if batch else []
    if len(scores) != len(batch):
        raise ValueError(f"the scorer returned {len(scores)} scores for {len(batch)} samples")
    first: list[bool] = []
    second: list[bool] = []
    consistent: list[bool] = []
    outcome: list[float] = []
    prefs: list[float] = []
    clusters: list[int] = []
    pref_clusters: list[int] = []
    for s, k in zip(scores, ex.clusters, strict=True):
        orders = (s.details or {}).get("orders", []) if s.ok else []
        by_slot = {o.get("response_slot"): o for o in orders if "verdict" in o and "error" not in o}
        if "A" not in by_slot or "B" not in by_slot:
            continue
        va, vb = float(by_slot["A"]["verdict"]), float(by_slot["B"]["verdict"])
        g1, g2 = _winner(va), _winner(vb)  # g1: response shown first; g2: response shown second
        consistent.append(g1 == g2)
        first.append(g1 == "response" and g2 == "other")
        second.append(g1 == "other" and g2 == "response")
        outcome.append(1.0 if g1 == g2 == "response" else 0.0 if g1 == g2 == "other" else 0.5)
        clusters.append(k)
        for o in (by_slot["A"], by_slot["B"]):
            if "first_slot_preference" in o:
                prefs.append(float(o["first_slot_preference"]) - 0.5)
                pref_clusters.append(k)
    n, m = len(first), len(set(clusters))
    common = dict(level=level, alpha=alpha, power=power)
    note = "" if n else "no score holds both orders (is the reward a pairwise judge comparing with " \
                        f"metadata[{against!r}]?)"
    name = "position bias: biased-to-first minus biased-to-second"
    null = "no position preference: as many pairs biased to first as to second"
    if not n:
        return [ProbeResult(probe="position", name=name, estimate=None, low=None, high=None, null=null, p=None,
                            mde=None, n=0, clusters=0, note=note, **common)]  # type: ignore[arg-type]
    b, c = sum(first), sum(second)
    from rewardlab.audit.robustness import mde_drop

    if b + c == 0:
        upper = wilson_ci(0, m, level)[1]
        low, high, method, p_boot = -upper, upper, "wilson bound on the inconsistent share", 1.0
    else:
        ci = paired_bootstrap_diff([float(x) for x in first], [float(x) for x in second], clusters=clusters,
                                   n_resamples=n_resamples, level=level, seed=seed)
        low, high, method, p_boot = ci.low, ci.high, ci.method, ci.p_value
    results = [ProbeResult(
        probe="position", name=name, estimate=(b - c) / n, low=low, high=high, null=null,
        p=mcnemar(b, c).p_exact if m == n else p_boot, mde=mde_drop(m, (b + c) / n, alpha=alpha, power=power),
        n=n, clusters=m, unit="share of pairs", min_effect=min_bias, ci_method=method,
        details={"biased_to_first": b, "biased_to_second": c, "unscored": len(scores) - n},
        **common)]  # type: ignore[arg-type]
    results.append(mean_result(
        "position", "first-slot preference minus 0.5", prefs, clusters=pref_clusters,
        null_text="the slot shown first is preferred half the time", min_effect=min_bias, unit="preference",
        n_resamples=n_resamples, seed=seed, **common))  # type: ignore[arg-type]
    for label, flags in (("consistency", consistent), ("biased to first", first), ("biased to second", second)):
        results.append(rate_result("position", label, flags, clusters=clusters, baseline=True, what=label,
                                   unit="share of pairs", n_resamples=n_resamples, seed=seed,
                                   **common))  # type: ignore[arg-type]
    results.append(mean_result(
        "position", "accuracy under the conservative tie rule", outcome, clusters=clusters, baseline=True,
        null_text="-", unit="accuracy", n_resamples=n_resamples, seed=seed, **common))  # type: ignore[arg-type]
    return results
