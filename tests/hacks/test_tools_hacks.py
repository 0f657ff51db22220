"""Reward-hacking attempts on the tool-call rewards, on BFCL v4.

A policy that does not read the question can still read the tool schema: the function name,
every argument key, defaults and enums. It can also drop a sign or a decimal point, hide a broken
call after some prose, or answer with nothing. None of that may earn reward.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rewardlab import Sample
from rewardlab.rewards.tools import calls_from_bfcl, tool_call_format, tool_call_match

SETS = ["simple_python", "multiple", "parallel", "parallel_multiple", "live_simple"]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def bfcl(shared_data: Path) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Per set: (question row with its function specs, answer row)."""
    root = shared_data / "toolcall" / "bfcl"
    out = {}
    for name in SETS:
        questions = {q["id"]: q for q in _jsonl(root / f"BFCL_v4_{name}.json")}
        out[name] = [(questions[a["id"]], a) for a in
                     _jsonl(root / "possible_answer" / f"BFCL_v4_{name}.json")]
    return out


def _blind_calls(question: dict[str, Any], answer: dict[str, Any],
                 fill: Any) -> list[dict[str, Any]]:
    """The right function names (one call per expected call), every schema key, values from
    `fill(property schema)`: what a policy writes without reading the question."""
    specs = {f["name"]: f for f in question["function"]}
    calls = []
    for call in answer["ground_truth"]:
        (name, _), = call.items()
        props = specs[name]["parameters"].get("properties", {})
        calls.append({"name": name, "arguments": {k: fill(v) for k, v in props.items()}})
    return calls


def _garbage(prop: dict[str, Any]) -> Any:
    return {"integer": 987654321, "float": 987654.321, "number": 987654.321,
            "array": ["zqx"], "dict": {"zqx": 1}}.get(prop.get("type", ""), "zqx-garbage")


def _from_schema(prop: dict[str, Any]) -> Any:
    if "default" in prop:
        return prop["default"]
    if prop.get("enum"):
        return prop["enum"][0]
    if prop.get("type") == "boolean":
        return False
    return _garbage(prop)


def _mean_score(bfcl: dict[str, Any], fill: Any) -> float:
    samples = [Sample(response=json.dumps(_blind_calls(q, a, fill)), reference=a["ground_truth"])
               for name in SETS for q, a in bfcl[name]]
    scores = tool_call_match().score_local(samples)
    assert all(s.ok for s in scores)
    return sum(s.value or 0.0 for s in scores) / len(scores)


def test_right_name_every_key_and_garbage_values_earn_nothing(bfcl: dict[str, Any]) -> None:
    """It used to earn 2/3 on every question (0.667 over the 1,258 BFCL questions)."""
    assert _mean_score(bfcl, _garbage) < 0.01


def test_calls_filled_from_the_schema_alone_earn_little(bfcl: dict[str, Any]) -> None:
    """Defaults, first enum values and ``false``: right sometimes by chance, never by reading
    the question (0.698 before; about 0.02 now, from enum and boolean guesses)."""
    assert _mean_score(bfcl, _from_schema) < 0.05


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def test_a_dropped_sign_or_decimal_point_in_a_string_does_not_match(bfcl: dict[str, Any]) -> None:
    """Every BFCL string argument holding a signed number, a decimal or a date, with its ``-``
    or ``.`` dropped (a coordinate loses its sign, 12.5 becomes 125, 2023-04-03 20230403)."""
    samples: list[Sample] = []
    for name in SETS:
        for _, a in bfcl[name]:
            gold = calls_from_bfcl(a["ground_truth"])
            for key, value in gold[0]["arguments"].items():
                if not isinstance(value, str) or not re.search(r"-\d|\d\.\d|\d-", value):
                    continue
                bad = copy.deepcopy(gold)
                bad[0]["arguments"][key] = value.replace("-", "").replace(".", "")
                samples.append(Sample(response=json.dumps(bad), reference=a["ground_truth"]))
    assert len(samples) >= 40
    scores = tool_call_match(exact=True).score_local(samples)
    fooled = [s.details for s in scores if s.value == 1.0]
    assert fooled == []


@pytest.mark.parametrize("value", ["-122.4194", "34.0522, -118.2437", "-9.81", "2023-04-03"])
def test_a_corrupted_coordinate_or_date_earns_no_value_credit(value: str) -> None:
    ref = [{"get_place": {"where": [value]}}]
    for bad in (value.replace("-", ""), value.replace(".", ""), value.replace("-", "").replace(".", "")):
        if bad == value:
            continue
        call = {"name": "get_place", "arguments": {"where": bad}}
        (s,) = tool_call_match().score_local([Sample(response=json.dumps(call), reference=ref)])
        assert s.value == 0.0, bad
    call = {"name": "get_place", "arguments": {"where": value}}
    (s,) = tool_call_match().score_local([Sample(response=json.dumps(call), reference=ref)])
    assert s.value == 1.0


BROKEN_AFTER_PROSE = [
    'Sure, let me look that up. {"name": "get_weather", "arguments": {"city": "Paris"',
    'I will call the tool now:\n```json\n{"name": "get_weather", "arguments": {city: Paris}}\n```',
    'Calling: [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": ]',
    'Here it is: {"function": {"name": "get_weather", "arguments": "{\\"city\\": "}}',
    'Let me check.\n{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
]


@pytest.mark.parametrize("text", BROKEN_AFTER_PROSE)
def test_a_broken_call_after_prose_is_not_a_well_formed_no_call(text: str) -> None:
    (fmt,) = tool_call_format().score_local([Sample(response=text)])
    assert fmt.ok and fmt.value == 0.0 and "format failure" in (fmt.reason or "")
    # nor does it pass as "no call" where no call was expected (BFCL irrelevance)
    (m,) = tool_call_match().score_local([Sample(response=text, reference=[])])
    assert m.value == 0.0


@pytest.mark.parametrize("response", ["", "   \n\t", [{"role": "assistant", "content": ""}],
                                      [{"role": "assistant", "content": None}]])
def test_an_empty_response_is_not_a_well_formed_no_call(response: Any) -> None:
    (fmt,) = tool_call_format().score_local([Sample(response=response)])
    assert fmt.ok and fmt.value == 0.0 and "empty" in (fmt.reason or "")
    (m,) = tool_call_match().score_local([Sample(response=response, reference=[])])
    assert m.ok and m.value == 0.0 and "empty" in (m.reason or "")


def test_a_call_hidden_after_prose_is_a_call(shared_data: Path) -> None:
    """On BFCL irrelevance questions (no call is right) a call written after some prose used to
    count as "no call" (1.0); it is a call, so it scores 0 there, and it counts where a call
    was expected."""
    root = shared_data / "toolcall" / "bfcl"
    rows = _jsonl(root / "BFCL_v4_irrelevance.json")
    samples = [Sample(response="I think this helps. " + json.dumps(
        {"name": q["function"][0]["name"], "arguments": {}}), reference=[]) for q in rows]
    scores = tool_call_match().score_local(samples)
    assert all(s.ok and s.value == 0.0 for s in scores)
    ans = _jsonl(root / "possible_answer" / "BFCL_v4_simple_python.json")[:50]
    right = [Sample(response="Let me call it: " + json.dumps(calls_from_bfcl(a["ground_truth"])),
                    reference=a["ground_truth"]) for a in ans]
    assert [s.value for s in tool_call_match().score_local(right)] == [1.0] * len(right)


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("response", [
    DEEP,
    '{"name": "get_weather", "arguments": {"city": ' + DEEP + "}}",
    'Calling it: {"name": "get_weather", "arguments": {"city": ' + DEEP + "}}",
    "<tool_call>" + DEEP + "</tool_call>",
    [{"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": ' + DEEP + "}"}}]}],
], ids=["bare", "argument", "in-prose", "hermes", "openai"])
def test_a_call_nested_too_deeply_is_a_format_failure_not_an_error(response: Any) -> None:
    """Parsing overflows the recursion limit: an error would drop the sample (a way out of a
    hard prompt); it is the response's failure."""
    ref = [{"get_weather": {"city": ["Paris"]}}]
    for reward in (tool_call_format(), tool_call_match()):
        (s,) = reward.score_local([Sample(response=response, reference=ref)])
        assert s.ok and s.value == 0.0, s.reason
        assert "nested too deeply" in (s.reason or "")


@pytest.mark.parametrize("response", [
    "<tool_call>" * 200_000,                      # openings that never close
    "</think>" + "<think>" * 250_000,             # think openings that never close
], ids=["tool_call", "think"])
def test_many_unclosed_openings_are_read_in_one_pass(response: str) -> None:
    """A pattern that rescans the rest of the text from every unclosed opening takes minutes on
    these 2 MB responses (quadratic): the reward would time out into an error, or stall an
    inline batch. They are read in one pass and scored for what they are."""
    (fmt,) = tool_call_format().score_local([Sample(response=response)])
    (m,) = tool_call_match().score_local([Sample(response=response, reference=[])])
    if "<tool_call>" in response:
        assert fmt.value == 0.0 and "not closed" in (fmt.reason or "")
        assert m.value == 0.0
    else:  # thinking that never closes: the response says nothing (not a well-formed no-call)
        assert fmt.value == 0.0 and "empty" in (fmt.reason or "")
        assert m.value == 0.0
