"""Specs build reward graphs by name; composites keep components and follow their policies."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import rewardlab as rl
from rewardlab import Sample, Score, Status, reward
from rewardlab.compose.spec import SpecError, load_spec

CALLS: list[str] = []


@reward(name="t_value", range=(-10, 10))
def t_value(metadata: dict, *, key: str = "v") -> float | Score:
    """The number in metadata[key]; abstains when it is absent, errors when it is "bad"."""
    CALLS.append(key)
    v = metadata.get(key)
    if v is None:
        return Score.abstain(f"no {key}")
    if v == "bad":
        raise ValueError("bad value")
    return float(v)


@reward(name="t_unit", range=(0, 1))
def t_unit(metadata: dict, *, key: str = "u") -> float:
    """metadata[key], within [0, 1]."""
    return float(metadata[key])


def S(**meta: object) -> Sample:
    return Sample(prompt=str(meta.pop("prompt", "p")), response="r", metadata=meta)


def test_weighted_sum_keeps_components() -> None:
    spec = {"reward": {"sum": [{"reward": "t_value", "weight": 2.0},
                               {"reward": "t_value", "params": {"key": "w"}, "label": "w"}]}}
    [s] = rl.score([S(v=1.5, w=-1)], spec)
    assert s.value == pytest.approx(2.0)
    assert s.components == {"t_value": 1.5, "w": -1.0}


def test_policies_propagate_skip_and_fallback() -> None:
    kids = [{"reward": "t_value"}, {"reward": "t_value", "params": {"key": "w"}, "label": "w"}]
    rows = [S(v=1.0, w="bad"), S(v=1.0)]  # an error, an abstention
    prop = rl.score(rows, {"reward": {"sum": kids}})
    assert [s.status for s in prop] == [Status.error, Status.abstain]
    assert prop[0].reason.startswith("w: ValueError") and prop[0].value is None
    skip = rl.score(rows, {"reward": {"sum": kids}, "on_error": "skip", "on_abstain": "skip"})
    assert [s.value for s in skip] == [2.0, 2.0]  # weights re-normalised over present parts
    assert "skipped" in skip[0].reason
    fb = rl.score(rows, {"reward": {"sum": kids}, "on_error": -1.0, "on_abstain": 0.25})
    assert [s.value for s in fb] == [0.0, 1.25]
    assert fb[0].components["w"] is None and "fell back to -1" in fb[0].reason


def test_gate_computes_then_only_where_the_condition_passes() -> None:
    CALLS.clear()
    spec = {"reward": {"gate": {"when": {"reward": "t_unit"},
                                "then": {"reward": "t_value", "params": {"key": "g"}},
                                "threshold": 1.0, "otherwise": -1.0}}}
    out = rl.score([S(u=1, g=3), S(u=0, g=3), S(u=1, g=5)], spec)
    assert [s.value for s in out] == [3.0, -1.0, 5.0]
    assert CALLS == ["g", "g"]
    assert "gate closed" in out[1].reason


def test_penalty_multiplies_and_checks_factor_range_at_load() -> None:
    out = rl.score([S(v=4, u=0.25)], {"reward": {"penalty": {"base": "t_value", "factor": "t_unit"}}})
    assert out[0].value == 1.0
    with pytest.raises(SpecError, match=r"within \[0, 1\]"):
        load_spec({"reward": {"penalty": {"base": "t_unit", "factor": "t_value"}}})


@pytest.mark.parametrize(("reduce", "expected"), [
    ("mean", 2.0), ("min", 1.0), ("max", 3.0), ("median", 2.0),
    ("mean_minus_std", 2.0 - 0.5 * math.sqrt(2 / 3)),
])
def test_ensemble_reductions(reduce: str, expected: float) -> None:
    kids = [{"reward": "t_value", "params": {"key": k}, "label": k} for k in "abc"]
    spec = {"reward": {"ensemble": kids, "reduce": reduce, "lambda": 0.5}}
    [s] = rl.score([S(a=1, b=2, c=3)], spec)
    assert s.value == pytest.approx(expected)
    assert s.components["std"] == pytest.approx(math.sqrt(2 / 3))


def test_transforms_clip_par_log_sigmoid() -> None:
    rows = [S(v=5, ref=5), S(v=-3, ref=1)]
    clip = rl.score(rows, {"reward": {"clip": "t_value", "min": -1, "max": 1}})
    assert [s.value for s in clip] == [1.0, -1.0]
    par = rl.score(rows, {"reward": {"par": "t_value", "ref_key": "ref"}})
    assert par[0].value == pytest.approx(0.5)
    assert par[1].value == pytest.approx(1 / (1 + math.exp(4)))
    ls = rl.score(rows, {"reward": {"log_sigmoid": "t_value", "ref": 5}})
    assert ls[0].value == pytest.approx(math.log(0.5))
    assert ls[1].value == pytest.approx(math.log(1 / (1 + math.exp(8))))
    missing = rl.score([S(v=1)], {"reward": {"par": "t_value", "ref_key": "ref"}})
    assert missing[0].status is Status.error and "'ref'" in missing[0].reason


def test_group_zscore_and_rank_per_prompt() -> None:
    rows = [S(prompt="a", v=1), S(prompt="a", v=3), S(prompt="b", v=7), S(prompt="b", v=7),
            S(prompt="c", v=2)]
    z = rl.score(rows, {"reward": {"group_zscore": "t_value"}})
    assert [round(s.value, 4) for s in z] == [-1.0, 1.0, 0.0, 0.0, 0.0]
    r = rl.score(rows + [S(prompt="a", v=3)], {"reward": {"rank": "t_value"}})
    assert [s.value for s in r] == [0.0, 0.75, 0.5, 0.5, 0.5, 0.75]


def test_unknown_reward_name_fails_at_load_with_line() -> None:
    text = "reward:\n  sum:\n    - reward: t_value\n    - reward: exact_mach\n      weight: 2\n"
    with pytest.raises(SpecError) as exc:
        load_spec(text)
    msg = str(exc.value)
    assert "line 4" in msg and "unknown reward 'exact_mach'" in msg
    assert "did you mean 'exact_match'" in msg


def test_bad_keys_and_values_name_the_key_and_line(tmp_path: Path) -> None:
    f = tmp_path / "spec.yaml"
    f.write_text("reward:\n  ensemble:\n    - t_value\n  reduce: average\non_error: zero\n")
    with pytest.raises(SpecError, match=r"line 5: on_error: .*'propagate', 'skip' or a finite"):
        load_spec(f)
    f.write_text("reward:\n  ensemble:\n    - t_value\n  reduce: average\n")
    with pytest.raises(SpecError, match=r"spec.yaml: line 4: reward.reduce"):
        load_spec(f)
    f.write_text("reward:\n  sum:\n    - {reward: t_value, params: {kye: v}}\n")
    with pytest.raises(SpecError, match=r"line 3: reward.sum\[0\].params: .*no parameter 'kye'"):
        load_spec(f)


def test_toml_spec(tmp_path: Path) -> None:
    f = tmp_path / "spec.toml"
    f.write_text('on_abstain = 0.0\n\n[[reward.sum]]\nreward = "t_value"\nweight = 2.0\n\n'
                 '[[reward.sum]]\nreward = "t_unit"\n')
    out = rl.score([S(v=1, u=0.5), S(u=1)], load_spec(f))
    assert [s.value for s in out] == [2.5, 1.0]
    f.write_text('[[reward.sum]]\nreward = "t_valu"\n')
    with pytest.raises(SpecError, match=r"line 2: .*unknown reward 't_valu'"):
        load_spec(f)
