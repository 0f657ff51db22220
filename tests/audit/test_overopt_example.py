"""examples/audit/overoptimisation.py, tiny: embedding reward models trained on disjoint parts of the real
HH-RLHF pairs, best-of-n curves, the report rendered in headless Chromium, and the printed
`rewardlab audit overopt` command giving the same figures from the files the example wrote."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from tests.audit.chromium import render

pytest.importorskip("sentence_transformers")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audit" / "overoptimisation.py"
HH = Path("preference") / "hh_rlhf_harmless_base_test.jsonl.gz"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("overoptimisation_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module
    spec.loader.exec_module(mod)
    return mod


def test_tiny_overoptimisation_run(shared_data: Path, tmp_path: Path) -> None:
    ex = _example()
    setup = ex.Setup(eval_prompts=10, candidates=8, members=2, epochs=2, train_pairs=40, resamples=200)
    res, facts = ex.run(shared_data / HH, tmp_path / "out", setup, log=lambda *_: None)

    held, proxy, gold = set(facts["held"]), set(facts["proxy_half"]), set(facts["gold_half"])
    assert len(held) == 10 and len(proxy) == len(gold) == 40
    assert not (held & proxy) and not (held & gold) and not (proxy & gold)  # disjoint parts of the data
    assert res.ns == (1, 2, 4, 8) and res.prompts == 10 and res.candidates == 80 and res.dropped == 0
    assert [c.objective for c in res.curves] == ["proxy:proxy0", "proxy:proxy1", "single", "mean", "worst", "uwo"]
    for c in res.curves:  # each objective's own score rises as it selects harder
        gains = [p.proxy_gain.estimate for p in c.points]
        assert gains[0] == 0 and gains[-1] > gains[1] > 0, c.objective
    assert all(0 <= a <= 1 for a in facts["accuracy"].values())

    shown = render(facts["html"], tmp_path)
    assert shown.images == 2 and shown.ok, shown
    from PIL import Image, ImageStat

    with Image.open(facts["png"]) as im:
        assert ImageStat.Stat(im.convert("L")).stddev[0] > 5
    beside = json.loads(facts["json"].read_text())
    assert set(beside["fingerprints"]) == {"proxy0", "proxy1", "gold"}
    assert beside["data_hash"][str(shared_data / HH)].startswith("sha256:")

    # the command it prints audits the files it wrote and measures the same curves
    from rewardlab.cli import app

    args = shlex.split(facts["cli"])[1:]
    args = args[: args.index("--report")] + ["--json", "--no-cache", "--workers", "1", "--resamples", "200"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    cli = {c["objective"]: c["points"] for c in json.loads(out.stdout)["curves"]}
    for c in res.curves:
        assert [p["gold_gain"]["estimate"] for p in cli[c.objective]] == pytest.approx(
            [p.gold_gain.estimate for p in c.points], abs=1e-9), c.objective
