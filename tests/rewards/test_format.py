"""Format rewards: regex, think/answer structure, JSON validity, JSON-schema conformance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rewardlab
from rewardlab.core.registry import registry
from rewardlab.core.text import after_think, tag_content
from rewardlab.core.types import Sample, Status
from rewardlab.io.rows import to_sample
from rewardlab.rewards.format import (
    extract_json,
    json_schema,
    json_valid,
    regex_match,
    think_answer_format,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def one(reward, response: str, reference=None, **meta):
    return reward.score_local([Sample(response=response, reference=reference, metadata=meta)])[0]


# -- helpers ---------------------------------------------------------------------------------


def test_after_think_and_tag_content():
    text = "<think>a</think>mid<think>b</think> tail <answer>1</answer><answer> 2 </answer>"
    assert after_think(text) == " tail <answer>1</answer><answer> 2 </answer>"
    assert after_think("no tags") == "no tags"
    assert tag_content(text, "answer") == " 2 "
    assert tag_content("<answer>unclosed", "answer") is None
    assert tag_content("</answer> before <answer>", "answer") is None


# -- think/answer ----------------------------------------------------------------------------

CASES = [
    # response, strict, lenient
    ("<think>\n2+2=4\n</think>\n<answer>4</answer>", 1.0, 1.0),
    ("  <think>x</think><answer>4</answer>\n", 1.0, 1.0),
    ("Sure. <think>x</think> <answer>4</answer>", 0.0, 1.0),
    ("<think>x</think> so <answer>4</answer>", 0.0, 1.0),
    ("<think>x</think><answer>4</answer> done", 0.0, 1.0),
    ("<think>x</think><answer>4</answer><answer>4</answer>", 0.0, 1.0),
    ("<think> </think><answer>4</answer>", 0.0, 1.0),
    ("<think>x</think><answer>  </answer>", 0.0, 0.0),
    ("<answer>4</answer>", 0.0, 0.0),
    ("<think>x</think>", 0.0, 0.0),
    ("<answer>4</answer><think>x</think>", 0.0, 0.0),
    ("<THINK>x</THINK><ANSWER>4</ANSWER>", 0.0, 0.0),
    ("The answer is 4.", 0.0, 0.0),
    ("", 0.0, 0.0),
]


@pytest.mark.parametrize(("response", "strict", "lenient"), CASES)
def test_think_answer_modes(response, strict, lenient):
    s = one(think_answer_format(mode="strict"), response)
    le = one(think_answer_format(mode="lenient"), response)
    assert (s.value, le.value) == (strict, lenient)
    for sc in (s, le):
        assert sc.ok
        if sc.value == 0.0:
            assert sc.details and sc.details["problem"]


def test_think_answer_custom_tags_and_prefill():
    r = think_answer_format(think_tag="reasoning", answer_tag="solution")
    assert one(r, "<reasoning>r</reasoning>\n<solution>7</solution>").value == 1.0
    assert one(r, "<think>r</think><answer>7</answer>").value == 0.0
    # chat templates that end the prompt with <think>: the response starts inside the block
    assert one(think_answer_format(), "r</think><answer>7</answer>").value == 0.0
    prefilled = think_answer_format(prefilled_think=True)
    assert one(prefilled, "r</think><answer>7</answer>").value == 1.0


@pytest.mark.parametrize("params", [{"think_tag": "a b"}, {"answer_tag": ""},
                                    {"think_tag": "x", "answer_tag": "x"}, {"mode": "loose"}])
def test_think_answer_bad_params_fail_closed(params):
    sc = one(think_answer_format(**params), "<think>x</think><answer>4</answer>")
    assert sc.status is Status.error and sc.reason


# -- regex -----------------------------------------------------------------------------------


def test_regex_modes_and_flags():
    text = "Final answer: 42"
    assert one(regex_match(pattern=r"\d+"), text).value == 1.0
    assert one(regex_match(pattern=r"\d+", mode="match"), text).value == 0.0
    assert one(regex_match(pattern=r"final answer: \d+", mode="fullmatch"), text).value == 0.0
    assert one(regex_match(pattern=r"final answer: \d+", mode="fullmatch", flags="i"),
               text).value == 1.0
    sc = one(regex_match(pattern=r"(\d+)$"), text)
    assert sc.details == {"span": [14, 16]}
    # strip_think looks only after the reasoning
    assert one(regex_match(pattern="42", strip_think=True), "<think>42</think>no").value == 0.0


@pytest.mark.parametrize("params", [{"pattern": "(unclosed"}, {"pattern": "a", "flags": "q"},
                                    {"pattern": "a", "mode": "scan"}])
def test_regex_bad_pattern_is_an_error(params):
    sc = one(regex_match(**params), "abc")
    assert sc.status is Status.error and sc.reason


def test_regex_needs_a_pattern():
    with pytest.raises(ValueError, match="pattern"):
        regex_match()


def test_catastrophic_regex_times_out_through_the_pool():
    spec = {"reward": {"reward": "regex_match", "timeout": 3,
                       "params": {"pattern": r"^(a+)+$", "mode": "fullmatch"}}}
    samples = [Sample(response="a" * 40 + "b"), Sample(response="aaaa"), Sample(response="ab")]
    scores = rewardlab.score(samples, spec, workers=1)
    assert scores[0].status is Status.error and "timeout" in (scores[0].reason or "")
    # the pool replaced the killed worker and went on with the rest of the batch
    assert [s.value for s in scores[1:]] == [1.0, 0.0]


# -- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "extract", "value", "source"), [
    ('```json\n{"a": 1}\n```', "auto", {"a": 1}, "fence"),
    ('Here:\n```\n[1, 2]\n```\nand ```json\n{"b": 2}\n```', "auto", {"b": 2}, "fence"),
    ('```python\nx = 1\n```\n{"c": 3}', "embedded", {"c": 3}, "embedded"),
    ('```python\nx = 1\n```\n{"c": 3}', "auto", None, None),
    ('  {"a": [1, 2.5, null, true]}  ', "auto", {"a": [1, 2.5, None, True]}, "raw"),
    ('The result is {"a": 1} as asked.', "embedded", {"a": 1}, "embedded"),
    ('The result is {"a": 1} as asked.', "auto", None, None),
    ('{"a": 1}', "embedded", {"a": 1}, "raw"),
    ('The result is {"a": 1} as asked.', "raw", None, None),
    ('{"a": 1}', "fence", None, None),
    ('"just a string"', "auto", "just a string", "raw"),
    ("NaN", "auto", None, None),
    ('{"a": Infinity}', "auto", None, None),
    ("{'a': 1}", "auto", None, None),
    ('{"a": 1,}', "auto", None, None),
])
def test_extract_json(text, extract, value, source):
    parsed = extract_json(text, extract)
    assert parsed.ok is (source is not None)
    if parsed.ok:
        assert parsed.value == value and parsed.source == source
    else:
        assert parsed.problem


def test_json_valid_reward():
    assert one(json_valid(), '<think>{ not json</think>\n```json\n{"k": [1]}\n```').value == 1.0
    sc = one(json_valid(strip_think=False, extract="raw"), '<think>x</think>{"k": 1}')
    assert sc.value == 0.0 and "invalid JSON" in sc.details["problem"]
    # a response that is one JSON document is valid even when a string in it holds </think>
    line = (EXAMPLES / "rollouts.jsonl").read_text().splitlines()[0]
    assert "</think>" in line
    for extract in ("auto", "raw"):
        assert one(json_valid(extract=extract), line).value == 1.0
    assert one(json_valid(extract="fence"), line).value == 0.0
    # but JSON found only inside the reasoning does not count
    assert one(json_valid(), '<think>{"a": 1}</think> no idea').value == 0.0


SCHEMA = {
    "type": "object",
    "required": ["name", "age", "tags"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "email": {"type": "string", "format": "email"},
    },
    "additionalProperties": False,
}


def test_json_schema_conformance_and_errors():
    r = json_schema(schema=SCHEMA)
    ok = one(r, '{"name": "Ada", "age": 36, "tags": ["math"]}')
    assert ok.value == 1.0 and ok.details["errors"] == []
    bad = one(r, '```json\n{"name": "", "age": -1, "tags": ["x", 3], "extra": 1}\n```')
    assert bad.value == 0.0
    paths = {e["path"] for e in bad.details["errors"]}
    assert paths == {"/", "/name", "/age", "/tags/1"}
    assert bad.details["n_errors"] == 4
    validators = {e["validator"] for e in bad.details["errors"]}
    assert validators == {"additionalProperties", "minLength", "minimum", "type"}
    not_json = one(r, "name: Ada")
    assert not_json.value == 0.0 and "invalid JSON" in not_json.details["problem"]


def test_json_schema_partial_credit():
    r = json_schema(schema=SCHEMA, partial=True)
    # n = 3 required fields, plus one check for the whole document: score (k + v) / 4
    assert one(r, '{"name": "Ada", "age": 36, "tags": []}').value == 1.0
    assert one(r, '{"name": "Ada", "age": 36, "tags": [], "x": 0}').value == 3 / 4
    assert one(r, '{"name": "Ada", "age": "36"}').value == 1 / 4
    assert one(r, '{"name": "Ada"}').value == 1 / 4
    assert one(r, "[]").value == 0.0
    sc = one(r, '{"age": 1, "tags": [2]}')
    assert sc.value == 1 / 4 and sc.details["required_ok"] == ["age"]


def test_json_schema_from_reference_and_failures():
    r = json_schema()
    assert one(r, '{"name": "A", "age": 1, "tags": []}', reference=SCHEMA).value == 1.0
    assert one(r, '{"name": "A"}', reference=json.dumps(SCHEMA)).value == 0.0
    assert one(r, "{}").status is Status.abstain
    broken = one(json_schema(schema={"type": "no-such-type"}), "{}")
    assert broken.status is Status.error and "invalid JSON schema" in broken.reason
    assert one(r, "{}", reference="not a schema").status is Status.error


def test_json_schema_formats_only_when_asked():
    doc = '{"name": "A", "age": 1, "tags": [], "email": "not-an-email"}'
    assert one(json_schema(schema=SCHEMA), doc).value == 1.0
    assert one(json_schema(schema=SCHEMA, check_formats=True), doc).value == 0.0


def test_json_schema_runs_in_the_pool():
    samples = [Sample(response='{"name": "A", "age": 1, "tags": []}', reference=SCHEMA),
               Sample(response='{"name": "A"}', reference=SCHEMA),
               Sample(response="{}")]
    scores = rewardlab.score(samples, json_schema(partial=True), workers=1)
    assert [s.value for s in scores[:2]] == [1.0, 1 / 4]
    assert scores[2].status is Status.abstain


def test_format_rewards_are_registered_with_meaning():
    for name in ("regex_match", "think_answer_format", "json_valid", "json_schema"):
        d = registry.get(name)
        assert d.info.range == (0.0, 1.0) and d.info.description
    assert registry.get("regex_match").info.kind == "cpu"


# -- the example specs -----------------------------------------------------------------------


def _example_rows() -> list[dict]:
    return [json.loads(line) for line in (EXAMPLES / "rollouts.jsonl").read_text().splitlines()]


def test_math_format_example_spec():
    rows = _example_rows()
    scores = rewardlab.score([to_sample(r) for r in rows], EXAMPLES / "math_format.yaml")
    by_id = {r["id"]: s for r, s in zip(rows, scores, strict=True)}
    assert all(s.ok for s in scores)
    assert by_id["p1-0"].value == pytest.approx(1.1)   # right, strict format
    assert by_id["p1-2"].value == pytest.approx(0.1)   # wrong, strict format
    assert by_id["p1-3"].value == 0.0                  # right number, no tags: gate closed
    assert by_id["p2-2"].value == pytest.approx(1.0)   # right, lenient format only
    assert by_id["p2-3"].value == 0.0                  # answer without think
    assert by_id["p3-3"].value == 0.0                  # empty answer block
    assert by_id["p4-2"].value == pytest.approx(1.0)   # two answer blocks: not strict
    comps = by_id["p1-3"].components
    assert comps["correct/think_answer_format"] == 0.0 and "correct/exact_match" not in comps
    # the value is the weighted sum of its parts, for every row
    for s in scores:
        assert s.value == pytest.approx(s.components["correct"]
                                        + 0.1 * s.components["format_bonus"])


def test_grpo_example_spec_normalises_per_prompt():
    rows = _example_rows()
    samples = [to_sample(r) for r in rows]
    raw = rewardlab.score(samples, EXAMPLES / "math_format.yaml")
    adv = rewardlab.score(samples, EXAMPLES / "grpo.yaml")
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r["prompt"], []).append(i)
    assert len(groups) == 6
    for idx in groups.values():
        assert sum(adv[i].value for i in idx) == pytest.approx(0.0, abs=1e-9)
        for i in idx:
            for j in idx:
                if raw[i].value > raw[j].value:
                    assert adv[i].value > adv[j].value
