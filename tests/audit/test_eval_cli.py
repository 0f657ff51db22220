"""`rewardlab eval`: the tables, --json (the figures of `evaluate`), --report (rendered in headless
Chromium), reward labels and parameters, and usage errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.api import build
from rewardlab.audit.eval import evaluate
from rewardlab.cli import app
from rewardlab.cli.eval import parse_reward
from rewardlab.io.preferences import read_preferences
from tests.audit.chromium import render

HH = "preference/hh_rlhf_harmless_base_test.jsonl.gz"
runner = CliRunner()


@pytest.fixture(scope="module")
def small_hh(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 400 HH-RLHF pairs, as they are on disk."""
    out = tmp_path_factory.mktemp("hh") / "hh400.jsonl.gz"
    with gzip.open(shared_data / HH, "rt") as f:
        lines = [next(f) for _ in range(400)]
    with gzip.open(out, "wt") as g:
        g.writelines(lines)
    return out


def test_parse_reward_labels_and_parameters() -> None:
    label, spec = parse_reward("short=response_length(prefer=shorter)")
    assert label == "short" and spec.fingerprint == build("response_length", prefer="shorter").fingerprint
    label, spec = parse_reward("response_length")
    assert label == "response_length" and spec.fingerprint == build("response_length").fingerprint


def test_eval_json_matches_the_python_api(small_hh: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    res = runner.invoke(app, ["eval", str(small_hh), "-r", "longest=response_length",
                              "-r", "shortest=response_length(prefer=shorter)", "--resamples", "500",
                              "--no-cache", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "longest" in res.stdout and "McNemar" in res.stdout
    doc = json.loads(out.read_text())
    items = read_preferences(small_hh).items
    api = evaluate(items, {"longest": "response_length", "shortest": build("response_length", prefer="shorter")},
                   n_resamples=500).to_json()
    for name in ("longest", "shortest"):
        for key in ("accuracy", "ci", "n", "ties", "unscored", "subsets", "fingerprint"):
            assert doc["rewards"][name][key] == api["rewards"][name][key], (name, key)
    assert doc["comparisons"][0]["mcnemar_p"] == api["comparisons"][0]["mcnemar_p"]
    assert doc["comparisons"][0]["diff_ci"] == api["comparisons"][0]["diff_ci"]
    assert doc["data"]["rows"] == 400


def test_eval_report_opens_in_chromium(small_hh: Path, tmp_path: Path) -> None:
    html = tmp_path / "eval.html"
    res = runner.invoke(app, ["eval", str(small_hh), "-r", "longest=response_length",
                              "-r", "shortest=response_length(prefer=shorter)", "--resamples", "300",
                              "--no-cache", "--report", str(html)])
    assert res.exit_code == 0, res.output
    page = html.read_text()
    assert "longest" in page and "McNemar" in page and "sha256:" in page
    beside = json.loads(html.with_suffix(".json").read_text())
    assert beside["data"]["evaluation"]["rewards"]["longest"]["n"] == 400
    shown = render(html, tmp_path)
    assert shown.ok and shown.images == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--scheme", "rb3"], "--scheme"),
    (["--prior-sets"], "--prior-sets goes with"),
    (["-r", "response_length"], "two rewards are labelled"),
    (["-r", "no_such_reward_here"], "no_such_reward_here"),
    (["--resamples", "5"], "--resamples"),
])
def test_usage_errors(small_hh: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, ["eval", str(small_hh), "-r", "response_length", "--no-cache", *args])
    assert res.exit_code == 2
    assert message in res.output


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["eval", str(tmp_path / "nope.jsonl"), "-r", "response_length", "--no-cache"])
    assert res.exit_code == 2 and "nope.jsonl" in res.output
