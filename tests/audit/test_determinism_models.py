"""Determinism of a real model reward: a sequence-classifier RM (a tiny randomly initialised Llama
built offline, as in tests/models) keeps its scores on real HH-RLHF dialogues across repeated calls,
orders and batch sizes; the probe runs on the model like on any reward."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rewardlab import Runtime  # noqa: E402
from rewardlab.audit.determinism import determinism_probe  # noqa: E402
from rewardlab.audit.probe import Verdict  # noqa: E402
from rewardlab.models.classifier import classifier_rm  # noqa: E402

from ..models.test_classifier import _build  # noqa: E402
from .probe_data import hh_pairs  # noqa: E402


def test_a_classifier_rm_is_deterministic_across_batches(shared_data: Path, tmp_path: Path) -> None:
    model = _build("llama", tmp_path / "llama")
    samples = [s for p in hh_pairs(shared_data, 30) for s in p.samples()]
    rm = classifier_rm(path=str(model), device="cpu", max_length=256)
    with Runtime() as rt:
        res = {r.name.removeprefix("changed scores: "): r
               for r in determinism_probe(samples, rm, runtime=rt, batch_sizes=(1, 7), atol=1e-4, rtol=1e-4)}
    assert set(res) == {"repeated call", "reversed order", "shuffled order", "batch size 1", "batch size 7"}
    for name, r in res.items():
        assert r.n == 60 and r.estimate == 0, (name, r.details)
        assert r.verdict is not Verdict.effect
