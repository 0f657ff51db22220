"""One bad value costs one sample, never the run: what a reward returns or raises, and the data a
sample carries, become that sample's error score (with a reason) or a valid score."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rewardlab as rl
from rewardlab import Sample, Score, Status
from rewardlab.core.types import json_safe

ROWS = [Sample(response=t, reference="a") for t in ("ok", "bad", "ok")]


def _by_response(bad: Any, kind: str = "inline") -> rl.Reward:
    def fn(response_text: str) -> Any:
        return bad() if response_text == "bad" else 1.0

    return rl.reward(fn, name=f"bad_{kind}", kind=kind, register=False, retries=0)()


def _statuses(scores: list[Score]) -> list[str]:
    return [s.status.value for s in scores]


def _raise_exit() -> None:
    raise SystemExit(3)


@pytest.mark.parametrize("kind", ["inline", "io"])
def test_system_exit_in_a_reward_is_that_samples_error(kind: str) -> None:
    scores = rl.score(ROWS, _by_response(_raise_exit, kind), cache=None)
    assert _statuses(scores) == ["ok", "error", "ok"]
    assert "SystemExit" in (scores[1].reason or "")


def test_system_exit_in_a_batched_reward_is_the_batchs_error() -> None:
    @rl.reward(batched=True, register=False)
    def exits(samples: list[Sample]) -> list[float]:
        raise SystemExit("no")

    scores = rl.score(ROWS, exits, cache=None)
    assert _statuses(scores) == ["error"] * 3 and "SystemExit" in (scores[0].reason or "")


def test_an_integer_too_large_for_a_float_is_an_error() -> None:
    scores = rl.score(ROWS, _by_response(lambda: 10**400), cache=None)
    assert _statuses(scores) == ["ok", "error", "ok"]
    assert "too large" in (scores[1].reason or "")
    wide = rl.reward(lambda response: 10**400, name="wide", range=(-np.inf, np.inf), register=False)
    assert rl.score(ROWS[:1], wide, cache=None)[0].status is Status.error


@pytest.mark.parametrize("value", [np.float32(0.5), np.float64(0.5), np.float16(0.5), np.array(0.5)])
def test_numpy_floats_are_numbers(value: Any) -> None:
    scores = rl.score(ROWS, _by_response(lambda: value), cache=None)
    assert [s.value for s in scores] == [1.0, 0.5, 1.0]


@pytest.mark.parametrize("value", [np.int64(1), np.int8(0), np.bool_(True), np.uint32(1)])
def test_numpy_integers_and_booleans_are_numbers(value: Any) -> None:
    scores = rl.score(ROWS, _by_response(lambda: value), cache=None)
    assert scores[1].ok and scores[1].value == float(value)


def test_numpy_non_finite_and_non_numbers_stay_errors() -> None:
    for bad in (np.float32("nan"), np.float64("inf"), np.array([0.5]), "0.5"):
        scores = rl.score(ROWS, _by_response(lambda b=bad: b), cache=None)
        assert _statuses(scores) == ["ok", "error", "ok"], bad


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque evidence>"


@pytest.mark.parametrize("details", [
    {"array": np.arange(4), "matrix": np.eye(2)},
    {"blob": b"\x00\xff binary"},
    {"obj": _Opaque(), "set": {3, 1, 2}, 5: "int key", "scalar": np.float32(0.25)},
])
def test_details_with_arrays_bytes_and_objects_are_kept_as_json(details: dict[Any, Any],
                                                              tmp_path: Path) -> None:
    def fn(response_text: str) -> Score:
        return Score.of(1.0, details=details)

    with rl.Runtime(cache=tmp_path / "c.db") as rt:
        first = rl.score(ROWS, fn, runtime=rt)
        again = rl.score(ROWS, fn, runtime=rt)  # through the cache
        assert rt.stats.cache_hits == 3
    for s in first + again:
        assert s.ok
        json.dumps(s.model_dump(mode="json"))  # plain JSON data
    assert first[0].details == again[0].details


def test_json_safe_describes_what_it_converts() -> None:
    out = json_safe({"a": np.arange(2), "b": b"\x01", "c": _Opaque(), 1: (1, 2), "d": {2, 1}})
    assert out == {"a": [0, 1], "b": {"base64": "AQ=="}, "c": "<opaque evidence>", "1": [1, 2],
                   "d": [1, 2]}
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(3000):
        node["k"] = {}
        node = node["k"]
    s = Score.of(1.0, details=deep)
    assert "nested deeper" in json.dumps(s.details)


def test_deeply_nested_metadata_costs_only_the_row_that_breaks_a_reward(tmp_path: Path) -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):  # deeper than the recursion limit
        node["k"] = {}
        node = node["k"]
    rows = [Sample(response="a", reference="a", metadata={"depth": 1}),
            Sample(response="a", reference="a", metadata=deep),
            Sample(response="b", reference="a", metadata={"nested": {"x": [1, 2]}})]

    def dumps_metadata(metadata: dict[str, Any]) -> float:
        return float(len(json.dumps(metadata)) > 0)

    with rl.Runtime(cache=tmp_path / "c.db") as rt:
        plain = rl.score(rows, "exact_match", runtime=rt)
        recursive = rl.score(rows, dumps_metadata, runtime=rt)
    assert [s.value for s in plain] == [1.0, 1.0, 0.0]
    assert _statuses(recursive) == ["ok", "error", "ok"]
    assert "RecursionError" in (recursive[1].reason or "")


def test_binary_reference_row_is_scored_and_cached(tmp_path: Path) -> None:
    rows = [Sample(response="a", reference=b"\xff\xd8 jpeg bytes"), Sample(response="a", reference="a")]
    with rl.Runtime(cache=tmp_path / "c.db") as rt:
        first = rl.score(rows, "exact_match", runtime=rt)
        second = rl.score(rows, "exact_match", runtime=rt)
        assert rt.stats.cache_hits == 2
    assert _statuses(first) == _statuses(second)
    assert first[1].value == 1.0


def test_a_plain_function_is_a_reward() -> None:
    def longer_than_two(response_text: str) -> float:
        return float(len(response_text) > 2)

    assert [s.value for s in rl.score(ROWS, longer_than_two, cache=None)] == [0.0, 1.0, 0.0]
    assert [s.value for s in rl.score(ROWS, lambda response: 0.25, cache=None)] == [0.25] * 3
    with pytest.raises(TypeError, match="neither an injectable field"):
        rl.score(ROWS, lambda x: 1.0, cache=None)

