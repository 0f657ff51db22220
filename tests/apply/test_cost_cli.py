"""`rewardlab score` prints the run's summed cost in one line and writes it to --summary-json."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rewardlab.cli import app
from tests.apply.test_cost_summary import SPEC, _expected, _rows
from tests.jsonl import write_jsonl


def test_rewardlab_score_prints_and_writes_the_total_cost(tmp_path: Path) -> None:
    inp, out, spec, js = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "spec.json", tmp_path / "s.json"
    rows = _rows()
    write_jsonl(inp, rows)
    spec.write_text(json.dumps(SPEC))
    res = CliRunner().invoke(app, ["score", str(inp), "-r", str(spec), "-o", str(out), "--no-cache", "-q",
                                   "--summary-json", str(js)])
    assert res.exit_code == 0, res.output
    assert json.loads(js.read_text())["cost"] == _expected(rows)
    cost_lines = [line for line in res.output.splitlines() if line.startswith("cost")]
    assert len(cost_lines) == 1, res.output
    assert "s of reward compute, judge tokens 657 in / 81 out, $0.75" in cost_lines[0]
