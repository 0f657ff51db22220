"""Spec numbers must be finite, and a spec must be a tree of bounded depth: each refused at load
with the key and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardlab.compose.spec import SpecError, load_spec


@pytest.mark.parametrize("bad", [".inf", "-.inf", ".nan", "1e999"])
def test_non_finite_weight_is_refused_with_its_line(tmp_path: Path, bad: str) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"reward:\n  sum:\n    - reward: exact_match\n      weight: {bad}\n    - think_answer_format\n")
    with pytest.raises(SpecError) as exc:
        load_spec(spec)
    msg = str(exc.value)
    assert "line 4" in msg and "reward.sum[0].weight" in msg and "finite" in msg


def test_non_finite_gate_threshold_and_ref_are_refused() -> None:
    with pytest.raises(SpecError, match=r"threshold.*finite"):
        load_spec({"reward": {"gate": {"when": "exact_match", "then": "exact_match", "threshold": float("nan")}}})
    with pytest.raises(SpecError, match=r"ref.*finite"):
        load_spec({"reward": {"par": "exact_match", "ref": float("inf")}})


def test_clip_bounds_may_be_infinite_but_not_nan() -> None:
    assert load_spec({"reward": {"clip": "exact_match", "min": float("-inf"), "max": 1.0}})
    with pytest.raises(SpecError, match="NaN"):
        load_spec({"reward": {"clip": "exact_match", "max": float("nan")}})


def test_alias_cycle_is_refused() -> None:
    with pytest.raises(SpecError, match="contains itself"):
        load_spec("reward: &r\n  gate:\n    when: exact_match\n    then: *r\n")


def test_depth_is_bounded_and_a_deep_document_is_an_error() -> None:
    assert load_spec("reward: " + "{clip: " * 60 + "exact_match" + "}" * 60 + "\n")
    with pytest.raises(SpecError, match="nested deeper than 64"):
        load_spec("reward: " + "{clip: " * 80 + "exact_match" + "}" * 80 + "\n")
    with pytest.raises(SpecError, match="nested too deeply"):
        load_spec("reward: " + "[" * 5000 + "]" * 5000 + "\n")
