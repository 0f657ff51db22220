"""Reward-hacking attempts on the JSON format rewards.

`json_valid` is a format reward: a policy earns it by appending a constant document (``{}``,
``[]``, ``{"a": 1}``) to whatever prose it writes, or by answering with a bare scalar.
`json_schema` with `partial` credits the required properties whose values raise no error; a
policy fills them with garbage that only a root ``anyOf`` / ``oneOf`` rejects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rewardlab import Sample
from rewardlab.rewards.format import json_schema, json_valid


def _one(reward: Any, text: str) -> Any:
    (score,) = reward.score_local([Sample(response=text)])
    return score


@pytest.mark.parametrize("text", [
    "I cannot produce that. {}",
    "Sorry, no data: []",
    "{}",
    "[]",
    "```json\n{}\n```",
    "null", "0", "true", '""', '"just a string"',
    'The weather is nice today. {"a": 1}',
    'Here you go {"answer": "anything"} hope it helps',
    "<think>plan</think> Nothing to report {}",
])
def test_prose_with_a_constant_or_trivial_document_is_not_json(text: str) -> None:
    score = _one(json_valid(), text)
    assert score.ok and score.value == 0.0, score.details


def test_real_prose_answers_with_braces_appended_score_zero(shared_data: Path) -> None:
    """Arena-Hard answers by gpt-3.5-turbo, each with ``{}`` (or a constant object) appended."""
    path = shared_data / "judge" / "arena_hard_v0.1" / "model_answer_gpt-3.5-turbo-0125.jsonl"
    answers = []
    for line in path.read_text().splitlines()[:200]:
        content = json.loads(line)["messages"][-1]["content"]
        answers.append(content["answer"] if isinstance(content, dict) else content)
    # keep prose answers without fenced blocks (a fenced document is a deliberate answer)
    prose = [a for a in answers if "```" not in a]
    assert len(prose) >= 50
    for suffix in (" {}", "\n[]", ' {"ok": true}'):
        scores = json_valid().score_local([Sample(response=a + suffix) for a in prose])
        assert [s.value for s in scores] == [0.0] * len(prose), suffix


def test_a_real_document_still_counts() -> None:
    for text in ('{"a": 1}', '```json\n[1, 2]\n```', 'Here:\n```json\n{"k": [1]}\n```'):
        assert _one(json_valid(), text).value == 1.0
    assert _one(json_valid(extract="embedded"), 'The result is {"a": 1}.').value == 1.0
    assert _one(json_valid(allow_trivial=True), "{}").value == 1.0


# A tagged union: the kind decides the type of the value.
UNION = {
    "type": "object",
    "required": ["kind", "value", "unit"],
    "properties": {"kind": {"type": "string"}, "value": {}, "unit": {"type": "string"}},
    "oneOf": [
        {"properties": {"kind": {"const": "count"}, "value": {"type": "integer", "minimum": 0}}},
        {"properties": {"kind": {"const": "name"}, "value": {"type": "string", "minLength": 1}}},
    ],
}
ANY = {
    "type": "object",
    "required": ["lat", "lon"],
    "anyOf": [
        {"properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                        "lon": {"type": "number", "minimum": -180, "maximum": 180}}},
        {"properties": {"lat": {"type": "string", "pattern": "^-?[0-9.]+$"},
                        "lon": {"type": "string", "pattern": "^-?[0-9.]+$"}}},
    ],
}


@pytest.mark.parametrize(("schema", "doc", "most"), [
    # garbage in the value: only the oneOf says so; "unit" is right
    (UNION, {"kind": "count", "value": "zqx", "unit": "m"}, 1 / 4),
    (UNION, {"kind": "zqx", "value": "zqx", "unit": "m"}, 1 / 4),
    # garbage in every property: nothing is right
    (ANY, {"lat": "zqx", "lon": "zqx"}, 0.0),
    (ANY, {"lat": 999, "lon": -999}, 0.0),
    # valid under two oneOf branches at once: no branch applies, no property can be credited
    ({"type": "object", "required": ["x"], "oneOf": [{"required": ["x"]}, {"required": ["x"]}]},
     {"x": 1}, 0.0),
])
def test_errors_under_a_root_anyof_or_oneof_take_the_credit(schema: dict[str, Any],
                                                            doc: dict[str, Any], most: float) -> None:
    score = _one(json_schema(schema=schema, partial=True), json.dumps(doc))
    assert score.ok and score.value <= most + 1e-12, score.details
    assert score.value < 1.0


def test_root_combinator_partial_credit_still_rewards_right_properties() -> None:
    right = _one(json_schema(schema=UNION, partial=True),
                 json.dumps({"kind": "count", "value": 3, "unit": "m"}))
    assert right.value == 1.0
    ok = _one(json_schema(schema=ANY, partial=True), json.dumps({"lat": 12.5, "lon": -3.25}))
    assert ok.value == 1.0


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text", [DEEP, '{"a": ' + DEEP + "}", "```json\n" + DEEP + "\n```"])
def test_a_document_nested_too_deeply_is_invalid_not_an_error(text: str) -> None:
    """Parsing it overflows the recursion limit: an error would drop the sample, so a policy
    would nest to escape a hard prompt. It is the response's failure: 0 with the reason."""
    for reward in (json_valid(), json_schema(schema={"type": "object"}, partial=True)):
        score = _one(reward, text)
        assert score.ok and score.value == 0.0, score.reason
        assert "nested too deeply" in score.details["problem"]


def test_a_document_too_deep_to_validate_is_invalid_not_an_error() -> None:
    recursive = {"type": "array", "items": {"$ref": "#"}}
    score = _one(json_schema(schema=recursive), "[" * 900 + "]" * 900)
    assert score.ok and score.value == 0.0
    assert "nested too deeply" in score.details["problem"]


@pytest.mark.parametrize("text", ["```a" * 500_000, "```json" * 300_000 + '\n{"a": 1}'],
                         ids=["no-newline", "one-newline"])
def test_many_unclosed_fences_are_read_in_one_pass(text: str) -> None:
    """A fence pattern that rescans the rest of the text from every opening is quadratic: on
    these 2 MB responses it takes minutes (a timeout error in the pool, a stall inline)."""
    assert _one(json_valid(), text).value == 0.0
    score = _one(json_schema(schema={"type": "object"}), text)
    assert score.ok and score.value == 0.0
