"""`rewardlab audit probes`: `math_answer` on real GSM8K pairs (the gold solution chosen, another
question's solution rejected, the gold as ``reference``) through the command, with its JSON and
HTML report; usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli import app

from .probe_data import gsm8k

runner = CliRunner()


@pytest.fixture(scope="module")
def pairs_file(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = gsm8k(shared_data, 31)
    path = tmp_path_factory.mktemp("probes") / "gsm8k_pairs.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "prompt": rows[i]["question"], "chosen": rows[i]["answer"],
                                        "rejected": rows[i + 1]["answer"], "reference": rows[i]["answer"]}) + "\n"
                            for i in range(30)))
    return path


def test_math_answer_through_the_command(pairs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    html = tmp_path / "probes.html"
    res = runner.invoke(app, ["audit", "probes", str(pairs_file), "-r", "math_answer", "--no-cache",
                              "--probe", "length,robustness,gameability,determinism",
                              "--rewrites", "answer_to_boxed,lowercase", "--resamples", "300",
                              "--json", str(out), "--report", str(html)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["ran"] == ["length", "robustness", "gameability", "determinism"]
    assert doc["data"]["audited"] == 30
    rows = {r["name"]: r for r in doc["results"]}
    assert rows["reward accuracy"]["estimate"] == 1.0  # the reference reached the verifier
    for r in doc["results"]:
        assert {"probe", "estimate", "ci_low", "ci_high", "p", "q", "mde", "verdict", "null"} <= set(r)
        if r["verdict"] not in ("baseline", "not computed"):
            assert r["q"] is not None and r["q"] >= r["p"]
        if r["probe"] == "gameability" and r["name"].startswith("false-positive"):
            assert r["estimate"] == 0.0 and r["verdict"] != "effect"  # math_answer stays at 0
    assert rows["accuracy drop: answer_to_boxed"]["estimate"] == 0.0
    page = html.read_text()
    assert "Audit probes" in page and "data:image/png;base64," in page and "false-positive rate" in page
    assert html.with_suffix(".json").exists()
    assert "gameability" in res.output and "verdict" in res.output


def test_usage_errors(pairs_file: Path) -> None:
    res = runner.invoke(app, ["audit", "probes", str(pairs_file), "-r", "math_answer", "--probe", "lenght"])
    assert res.exit_code == 2 and "unknown lenght" in res.output
    res = runner.invoke(app, ["audit", "probes", str(pairs_file), "-r", "math_answer", "--rewrites", "nope"])
    assert res.exit_code == 2 and "--rewrites" in res.output
    res = runner.invoke(app, ["audit", "probes", str(pairs_file), "-r", "no_such_reward"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["audit", "probes", str(pairs_file), "-r", "math_answer", "--resamples", "10"])
    assert res.exit_code == 2 and "--resamples" in res.output
