"""Tool-call verifiers on the Berkeley Function-Calling Leaderboard (v4) data."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

import rewardlab as rl
from rewardlab import Sample, Status
from rewardlab.core.types import Turn
from rewardlab.rewards.tools import (
    MatchOptions,
    ToolCall,
    assign,
    call_similarity,
    calls_from_bfcl,
    expected_calls,
    parse_tool_calls,
    tool_call_format,
    tool_call_match,
    values_equal,
)

SETS = ["simple_python", "multiple", "parallel", "live_simple"]


def _rows(root: Path, name: str) -> list[dict[str, Any]]:
    with open(root / f"BFCL_v4_{name}.json") as f:  # JSON Lines despite the name
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def bfcl(shared_data: Path) -> Path:
    return shared_data / "toolcall" / "bfcl"


@pytest.fixture(scope="module")
def answers(bfcl: Path) -> dict[str, list[dict[str, Any]]]:
    return {name: _rows(bfcl / "possible_answer", name) for name in SETS}


def _render(calls: list[dict[str, Any]], style: str) -> Any:
    """A model response carrying `calls` in one of the supported formats."""
    if style == "json":
        return json.dumps(calls)
    if style == "hermes":
        return "Let me call the tools.\n" + "\n".join(
            f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)
    as_string = style == "openai-string"
    return [{"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call_{i}", "type": "function",
         "function": {"name": c["name"],
                      "arguments": json.dumps(c["arguments"]) if as_string else c["arguments"]}}
        for i, c in enumerate(calls)]}]


STYLE = {"simple_python": "json", "multiple": "hermes", "parallel": "openai-string",
         "live_simple": "openai-dict"}


@pytest.mark.parametrize("name", SETS)
def test_gold_calls_score_one(answers: dict[str, list[dict[str, Any]]], name: str) -> None:
    rows = answers[name]
    samples = [Sample(response=_render(calls_from_bfcl(r["ground_truth"]), STYLE[name]),
                      reference=r["ground_truth"]) for r in rows]
    for exact in (False, True):
        scores = tool_call_match(exact=exact).score_local(samples)
        failed = [(r["id"], s.value, s.reason) for r, s in zip(rows, scores, strict=True)
                  if s.value != 1.0]
        assert not failed, failed[:5]
    assert len(rows) == {"simple_python": 400, "multiple": 200, "parallel": 200,
                         "live_simple": 258}[name]


def _required(accepted: dict[str, list[Any]]) -> list[str]:
    return [k for k, v in accepted.items() if v and "" not in v]


def _wrong_value(accepted: list[Any]) -> Any:
    """A value of the same type that none of the accepted values equals, or None."""
    first = accepted[0]
    if isinstance(first, bool):
        return None if (not first) in accepted else (not first)
    if isinstance(first, int | float):
        return sum(abs(v) for v in accepted if isinstance(v, int | float)) + 1000
    if isinstance(first, str):
        return "zqx " + first
    return None


def _perturbations(gold: list[dict[str, Any]], row: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrong versions of the gold calls: wrong name, missing required argument, wrong value,
    extra call."""
    out: dict[str, Any] = {}
    calls = copy.deepcopy(gold)
    calls[0]["name"] += "_v2"
    out["wrong name"] = calls
    (_, accepted), = row[0].items()
    required = _required(accepted)
    if required:
        calls = copy.deepcopy(gold)
        del calls[0]["arguments"][required[0]]
        out["missing required argument"] = calls
    for key in required:
        wrong = _wrong_value(accepted[key])
        if wrong is not None:
            calls = copy.deepcopy(gold)
            calls[0]["arguments"][key] = wrong
            out["wrong value"] = calls
            break
    out["extra call"] = copy.deepcopy(gold) + [copy.deepcopy(gold[0])]
    return out


@pytest.mark.parametrize("name", SETS)
def test_perturbed_calls_score_lower(answers: dict[str, list[dict[str, Any]]], name: str) -> None:
    samples: list[Sample] = []
    kinds: list[str] = []
    n_args: list[int] = []
    for r in answers[name]:
        gold = calls_from_bfcl(r["ground_truth"])
        for kind, calls in _perturbations(gold, r["ground_truth"]).items():
            samples.append(Sample(response=_render(calls, STYLE[name]), reference=r["ground_truth"]))
            kinds.append(kind)
            (_, accepted), = r["ground_truth"][0].items()
            n_args.append(len(_required(accepted)))
    partial = tool_call_match().score_local(samples)
    exact = tool_call_match(exact=True).score_local(samples)
    for kind, p, e, n in zip(kinds, partial, exact, n_args, strict=True):
        assert p.status is Status.ok and p.value is not None and p.value < 1.0, (kind, p.reason)
        assert e.value == 0.0, kind
        if kind == "wrong name" and name != "parallel":
            assert p.value == 0.0
        # the right function with one required argument wrong or missing keeps the credit of
        # the other required ones
        if kind == "extra call" or (kind != "wrong name" and n > 1):
            assert p.value > 0.0, kind
    counts = {k: kinds.count(k) for k in set(kinds)}
    assert counts["wrong name"] == counts["extra call"] == len(answers[name])
    assert counts["missing required argument"] > len(answers[name]) // 2
    assert counts["wrong value"] > len(answers[name]) // 2


def test_parallel_calls_in_any_order_score_one(answers: dict[str, list[dict[str, Any]]]) -> None:
    rows = answers["parallel"]
    samples = [Sample(response=_render(calls_from_bfcl(r["ground_truth"])[::-1], "hermes"),
                      reference=r["ground_truth"]) for r in rows]
    assert all(len(r["ground_truth"]) >= 2 for r in rows)
    assert [s.value for s in tool_call_match(exact=True).score_local(samples)] == [1.0] * len(rows)


def test_partial_credit_counts_missing_and_extra_calls(
        answers: dict[str, list[dict[str, Any]]]) -> None:
    row = next(r for r in answers["parallel"] if len(r["ground_truth"]) == 4)
    gold = calls_from_bfcl(row["ground_truth"])
    r = tool_call_match()
    half = r.score_local([Sample(response=json.dumps(gold[:2]), reference=row["ground_truth"])])[0]
    assert half.value == pytest.approx(0.5)
    assert half.components["precision"] == 1.0 and half.components["recall"] == 0.5
    assert half.details and len(half.details["missing"]) == 2
    extra = r.score_local([Sample(response=json.dumps(gold + gold[:1]),
                                  reference=row["ground_truth"])])[0]
    assert extra.value == pytest.approx(4 / 5)
    assert extra.components["recall"] == 1.0 and extra.components["precision"] == 0.8


def test_assignment_is_optimal(answers: dict[str, list[dict[str, Any]]]) -> None:
    """Against brute force over all pairings, on parallel rows with one value changed."""
    opt = MatchOptions()
    checked = 0
    for r in answers["parallel"]:
        if len(r["ground_truth"]) > 4:
            continue
        expected = expected_calls(r["ground_truth"])
        calls = [ToolCall(c["name"], c["arguments"]) for c in calls_from_bfcl(r["ground_truth"])]
        key = next(iter(calls[0].arguments), None)
        if key is not None and isinstance(calls[0].arguments[key], int | float):
            calls[0].arguments[key] = calls[-1].arguments.get(key, 0)
        sims = [[call_similarity(c, e, opt) for e in expected] for c in calls]
        best = max(sum(sims[i][p[i]] for i in range(len(calls)))
                   for p in itertools.permutations(range(len(expected))))
        assert assign(calls, expected, opt).total == pytest.approx(best)
        checked += 1
    assert checked > 150


def test_assignment_beats_greedy_pairing() -> None:
    """The first call fits both expected calls, the second only the first: pairing the first
    call greedily would lose the exact match."""
    ref = [{"name": "f", "arguments": {"a": 1, "b": 2, "c": 3}},
           {"name": "f", "arguments": {"a": 1, "b": 9, "c": 9}}]
    made = [{"name": "f", "arguments": {"a": 1, "b": 2, "c": 0}},
            {"name": "f", "arguments": {"a": 1, "b": 2, "c": 3}}]
    s = tool_call_match().score_local([Sample(response=json.dumps(made), reference=ref)])[0]
    assert s.details and [c["matched"] for c in s.details["calls"]] == [1, 0]
    assert s.components["precision"] == 0.5
    assert s.value == pytest.approx((1.0 + 1 / 3) / 2)  # one value of three right in the other


def _dummy(spec: dict[str, Any]) -> Any:
    return {"integer": 1, "float": 1.5, "number": 1.5, "boolean": True, "array": [],
            "dict": {}, "object": {}}.get(spec.get("type", "string"), "x")


def test_irrelevance_no_call_is_right(bfcl: Path) -> None:
    rows = _rows(bfcl, "irrelevance")
    assert len(rows) == 240 and not (bfcl / "possible_answer" / "BFCL_v4_irrelevance.json").exists()
    no_call = [Sample(response="None of the available functions can answer this.", reference=[])
               for _ in rows]
    calls = []
    for r in rows:
        fn = r["function"][0]
        params = fn["parameters"]
        args = {k: _dummy(params["properties"][k]) for k in params.get("required", [])}
        calls.append(Sample(response=_render([{"name": fn["name"], "arguments": args}], "hermes"),
                            reference=[]))
    r = tool_call_match()
    assert [s.value for s in r.score_local(no_call)] == [1.0] * 240
    scored = r.score_local(calls)
    assert [s.value for s in scored] == [0.0] * 240
    assert all("no call was expected" in (s.reason or "") for s in scored)


def test_malformed_calls_are_format_failures() -> None:
    ref = [{"name": "f", "arguments": {"x": 1}}]
    cases = {
        "unclosed tag": '<tool_call>{"name": "f", "arguments": {"x": 1}}',
        "invalid json": '<tool_call>{"name": "f", "arguments": {x: 1}}</tool_call>',
        "bare invalid json": '{"name": "f", "arguments": ',
        "no name": '{"arguments": {"x": 1}, "id": 3}',
        "arguments not an object": '{"name": "f", "arguments": [1]}',
        "bad arguments string": [{"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "{'x': 1}"}}]}],
    }
    for what, response in cases.items():
        s = tool_call_match().score_local([Sample(response=response, reference=ref)])[0]
        assert s.status is Status.ok and s.value == 0.0, what
        assert s.reason and s.reason.startswith("format failure"), what
        assert s.components["format"] == 0.0
        f = tool_call_format().score_local([Sample(response=response)])[0]
        assert f.value == 0.0, what
    good = '<think><tool_call>bad</tool_call></think><tool_call>{"name": "f", ' \
           '"parameters": {"x": 1.0}}</tool_call>'
    assert tool_call_match().score_local([Sample(response=good, reference=ref)])[0].value == 1.0
    assert tool_call_format().score_local([Sample(response="plain text")])[0].value == 1.0


def test_reference_forms_and_errors() -> None:
    plain = [{"name": "f", "arguments": {"x": 1}}]
    openai = [{"type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}]
    bfcl_row = {"id": "r", "ground_truth": [{"f": {"x": [1], "y": ["", "a"]}}]}
    for ref in (plain, openai, bfcl_row, json.dumps(plain)):
        s = tool_call_match().score_local([Sample(response='{"name": "f", "arguments": {"x": 1}}',
                                                  reference=ref)])[0]
        assert s.value == 1.0, ref
    bad = tool_call_match().score_local([Sample(response="{}", reference=[{"f": {"x": 1}}])])[0]
    assert bad.status is Status.error and "accepted values" in (bad.reason or "")
    none = tool_call_match().score_local([Sample(response="{}")])[0]
    assert none.status is Status.abstain


def test_values_compare_by_type() -> None:
    opt = MatchOptions()
    assert values_equal(5, 5.0, opt) and values_equal(0.1 + 0.2, 0.3, opt)
    assert not values_equal(5, 5.01, opt) and not values_equal(1, True, opt)
    assert not values_equal("5", 5, opt) and not values_equal(True, 1, opt)
    assert values_equal("New York, NY", "new york ny", opt)
    assert not values_equal("New York", "New Jersey", opt)
    assert not values_equal("A", "a", MatchOptions(normalize_strings=False))
    assert values_equal([1, 2.0, "a b"], [1.0, 2, "A-B"], opt)
    assert not values_equal("-122.4194", "122.4194", opt) and not values_equal("4.2", "42", opt)
    assert not values_equal("1/2", "12", opt) and values_equal("Paris.", "paris", opt)
    assert not values_equal([1, 2], [2, 1], opt)
    assert values_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]}, opt)
    assert not values_equal({"a": 1}, {"a": 1, "b": 2}, opt)


def test_nested_bfcl_objects_with_optional_keys() -> None:
    ref = [{"q": {"body": [{"mode": ["COOL"], "temp": ["", 22], "wind": ["MID", ""]}],
                  "rows": [[{"k": ["a"]}, {"k": ["b", "B2"]}]]}}]
    r = tool_call_match(exact=True)

    def value(args: dict[str, Any]) -> float | None:
        return r.score_local([Sample(response=json.dumps({"name": "q", "arguments": args}),
                                     reference=ref)])[0].value

    rows = [{"k": "a"}, {"k": "b2"}]
    assert value({"body": {"mode": "cool"}, "rows": rows}) == 1.0
    assert value({"body": {"mode": "COOL", "temp": 22.0, "wind": "MID"}, "rows": rows}) == 1.0
    assert value({"body": {"mode": "COOL", "temp": 23}, "rows": rows}) == 0.0
    assert value({"body": {"mode": "COOL", "fan": 1}, "rows": rows}) == 0.0
    assert value({"body": {"mode": "COOL"}, "rows": rows[::-1]}) == 0.0


def test_turn_rewards_from_a_trajectory() -> None:
    trajectory = [
        Turn(role="assistant", tool_calls=[
            {"type": "function", "function": {"name": "search", "arguments": '{"q": "paris"}'}}]),
        Turn(role="tool", tool_result={"hits": 3}),
        Turn(role="assistant", content='<tool_call>{"name": "book", "arguments": '
                                       '{"city": "Paris", "nights": 3}}</tool_call>'),
        Turn(role="tool", tool_result="ok"),
        Turn(role="assistant", content="Booked."),
    ]
    ref = [{"name": "search", "arguments": {"q": "Paris"}},
           {"name": "book", "arguments": {"city": "Paris", "nights": 2}}]
    s = tool_call_match().score_local([Sample(response="Booked.", reference=ref,
                                              trajectory=trajectory)])[0]
    assert s.turns is not None and len(s.turns) == 3
    assert s.turns[0] == 1.0 and 0.0 < s.turns[1] < 1.0 and s.turns[2] == 0.0
    assert s.value == pytest.approx((1.0 + s.turns[1]) / 2)
    assert s.components["precision"] == 0.5 and s.components["recall"] == 0.5
    assert [c["turn"] for c in s.details["calls"]] == [0, 1]  # type: ignore[index]
    parsed = parse_tool_calls("ignored", trajectory)
    assert [c.name for c in parsed.calls] == ["search", "book"] and parsed.turns == 3


def test_scores_through_the_registry(answers: dict[str, list[dict[str, Any]]]) -> None:
    row = answers["simple_python"][0]
    gold = calls_from_bfcl(row["ground_truth"])
    scores = rl.score([{"response": json.dumps(gold), "reference": row["ground_truth"]}],
                      "tool_call_match")
    assert scores[0].value == 1.0
