"""One audit run: the chosen probes of a reward on preference data, with one Benjamini-Hochberg
correction across all their tests (what ``rewardlab audit probes`` runs).

Probes: ``length`` (`rewardlab.audit.length`), ``robustness`` (`rewardlab.audit.robustness`),
``gameability`` (`rewardlab.audit.gameability`: the attacks replace the chosen response), ``position``
(`rewardlab.audit.position`: only for a pairwise judge, run by default when the spec holds a
``judge_pairwise`` leaf) and ``determinism`` (`rewardlab.audit.determinism`, on every response of
the pairs, on a Runtime without a score cache). An item's ``metadata[reference_key]`` (e.g. the
gold answer a verifier needs) is the reference of every sample made from it. Each probe scores its
samples in one batch of the Runtime (determinism: one batch per variant).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.api import build
from rewardlab.audit.probe import ProbeResult, adjust, scorer
from rewardlab.compose.nodes import Leaf
from rewardlab.core.types import PreferencePair, PreferenceSet, Sample

__all__ = ["PROBES", "ProbeRun", "run_probes"]

PROBES = ("length", "robustness", "gameability", "position", "determinism")


@dataclass(frozen=True)
class ProbeRun:
    """The results of one run (q-values filled across all of them), the probes that ran and
    those skipped with why, and the run's settings."""

    results: list[ProbeResult]
    ran: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """Every result as a flat row (probe, name, estimate, CI, p, q, MDE, verdict, ...)."""
        return [r.row() for r in self.results]

    def to_json(self) -> dict[str, Any]:
        """The run as a JSON-ready dict."""
        return {"settings": self.settings, "ran": self.ran, "skipped": self.skipped, "results": self.rows()}


def _is_pairwise_judge(spec: Any) -> bool:
    return any(isinstance(n, Leaf) and n.reward.info.name == "judge_pairwise" for n in spec.root.walk())


def run_probes(
    items: Iterable[PreferencePair | PreferenceSet],
    spec: Any,
    *,
    probes: Sequence[str] | None = None,
    runtime: Any = None,
    seed: int = 0,
    n_resamples: int = 4000,
    level: float = 0.95,
    alpha: float = 0.05,
    rewrites: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    verdict: bool | None = None,
    threshold: float = 0.5,
    reference_key: str = "reference",
    against: str = "rejected",
) -> ProbeRun:
    """Run `probes` (default: all that apply) of `spec` on `items`, then correct once.

    `spec`: anything `rewardlab.build` takes. `runtime`: the Runtime to score on (the current
    one when None; determinism needs one without a score cache). `rewrites`, `families`: the
    robustness rewrites and gameability attack families (all when None). `verdict`, `threshold`:
    how gameability reads the reward (see `gameability_probe`)."""
    from rewardlab.audit.gameability import gameability_probe
    from rewardlab.audit.length import expand, length_probe
    from rewardlab.audit.position import position_probe
    from rewardlab.audit.robustness import robustness_probe

    built = build(spec)
    data = list(items)
    asked = list(probes) if probes is not None else list(PROBES)
    unknown = set(asked) - set(PROBES)
    if unknown:
        raise ValueError(f"unknown probes {sorted(unknown)}; known: {', '.join(PROBES)}")
    skipped: dict[str, str] = {}
    if probes is None and not _is_pairwise_judge(built):
        asked.remove("position")
        skipped["position"] = "the reward is not a pairwise judge (judge_pairwise); ask for it with --probe"
    run = scorer(built, runtime)
    common: dict[str, Any] = dict(seed=seed, n_resamples=n_resamples, level=level)
    results: list[ProbeResult] = []
    for probe in asked:
        if probe == "length":
            results += length_probe(data, run, alpha=alpha, reference_key=reference_key, **common)
        elif probe == "robustness":
            results += robustness_probe(data, run, rewrites=rewrites, alpha=alpha, reference_key=reference_key,
                                        **common)
        elif probe == "gameability":
            firsts = _chosen_samples(data, reference_key)
            results += gameability_probe(firsts, run, reward_range=built.root.range, verdict=verdict,
                                         threshold=threshold, families=families, **common)
        elif probe == "position":
            results += position_probe(data, run, against=against, alpha=alpha, reference_key=reference_key,
                                      **common)
        elif probe == "determinism":
            results += _determinism(expand(data, reference_key).samples, built, runtime, seed=seed, level=level,
                                    alpha=alpha)
    settings = {"reward": built.fingerprint, "items": len(data), "seed": seed, "n_resamples": n_resamples,
                "level": level, "alpha": alpha, "probes": asked}
    return ProbeRun(adjust(results), asked, skipped, settings)


def _determinism(samples: list[Sample], spec: Any, runtime: Any, **options: Any) -> list[ProbeResult]:
    """The determinism probe on a Runtime without a score cache (a cached repeat proves nothing):
    `runtime` when it has none, else a fresh one with its settings, closed after."""
    from rewardlab.audit.determinism import determinism_probe
    from rewardlab.runtime.engine import Runtime

    if runtime is None or runtime.cache is None:
        return determinism_probe(samples, spec, runtime=runtime, **options)
    with Runtime(workers=runtime.workers, timeout=runtime.timeout, memory_mb=runtime.memory_mb) as fresh:
        return determinism_probe(samples, spec, runtime=fresh, **options)


def _chosen_samples(items: Sequence[PreferencePair | PreferenceSet], reference_key: str) -> list[Sample]:
    """One real sample per item: its prompt, its (first) chosen response, and its reference from
    ``metadata[reference_key]``."""
    out = []
    for item in items:
        response = item.chosen[0] if isinstance(item, PreferenceSet) else item.chosen
        out.append(Sample(id=item.id, prompt=item.prompt, response=response,
                          reference=item.metadata.get(reference_key), metadata=dict(item.metadata)))
    return out
