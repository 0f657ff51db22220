"""The judge settings declared once (`JudgeSettings`) and spliced into every judge's keyword
parameters: same spelling for users, one validator, fingerprints unchanged by the move, the key
never shown; and what a single verdict text reads as (`read_verdict`)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from rewardlab.compose.spec import load_spec
from rewardlab.models._judge_settings import NOT_FINGERPRINTED, SECRET, JudgeSettings, with_settings
from rewardlab.models._judge_verdict import Unparseable
from rewardlab.models.judge import judge_pairwise, judge_principles, judge_rubric, judge_score

JUDGES = (judge_score, judge_pairwise, judge_rubric, judge_principles)
ENDPOINT = {"model": "m", "base_url": "http://x/v1"}


@pytest.mark.parametrize("judge", JUDGES, ids=lambda d: d.info.name)
def test_every_setting_is_a_keyword_parameter_of_every_judge(judge: Any) -> None:
    sig = inspect.signature(judge.fn)
    for f in dataclasses.fields(JudgeSettings):
        param = sig.parameters[f.name]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY
        assert judge.params[f.name] == f.default
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def test_splicing_refuses_a_function_that_redeclares_or_cannot_receive_settings() -> None:
    async def no_kwargs(response_text: str, *, model: str = "x") -> None: ...

    async def redeclares(response_text: str, *, votes: int = 2, **settings: Any) -> None: ...

    with pytest.raises(TypeError, match="must take"):
        with_settings(no_kwargs)
    with pytest.raises(TypeError, match="redeclares"):
        with_settings(redeclares)


# Fingerprints computed by the judges before their settings moved into JudgeSettings: cached
# scores keyed by them stay valid.
PINNED = [
    (judge_score, {}, "a03ddc2df744c6d24078609e"),
    (judge_score, {"api_key": "k", "tpm": 5, "max_score": 5, "votes": 3, "temperature": 0.7,
                   "seed": 1}, "c852f8d9db2ec19248a6f19d"),
    (judge_pairwise, {"swap": False, "against": "alt"}, "db171993884023b22df97ea1"),
    (judge_rubric, {"rubric": ["a", {"criterion": "b", "weight": 2}]}, "2ae90f68c36a8feb702449bc"),
    (judge_principles, {"principles": ["p"], "aggregate": "min", "verdict_pattern": r"V: (\w+)"},
     "797116729246ca561d33ba9f"),
]


def test_fingerprints_did_not_change_with_the_settings_object() -> None:
    for judge, params, expected in PINNED:
        assert judge(**ENDPOINT, **params).fingerprint == expected


def test_key_and_token_budget_stay_out_of_fingerprint_and_key_out_of_repr() -> None:
    assert {"api_key", "tpm"} == NOT_FINGERPRINTED and SECRET == {"api_key"}
    for judge in JUDGES:
        a = judge(**ENDPOINT, api_key="sk-live-123", tpm=1000)
        b = judge(**ENDPOINT, api_key="sk-other", tpm=None)
        assert a.fingerprint == b.fingerprint
        assert "sk-live-123" not in repr(a) and "api_key=***" in repr(a)
        assert judge(**ENDPOINT, votes=3, temperature=0.7).fingerprint != a.fingerprint


def test_spec_spelling_is_the_flat_keyword_spelling() -> None:
    spec = load_spec({"reward": {"reward": "judge_score", "params": {
        **ENDPOINT, "votes": 3, "temperature": 0.5, "max_score": 5}}})
    direct = judge_score(**ENDPOINT, votes=3, temperature=0.5, max_score=5)
    leaves = [n for n in _walk(spec.root) if hasattr(n, "reward")]
    assert [leaf.reward.fingerprint for leaf in leaves] == [direct.fingerprint]


def _walk(node: Any) -> list[Any]:
    out = [node]
    for child in getattr(node, "children", []) or []:
        out += _walk(child)
    return out


@pytest.mark.parametrize("bad, message", [
    ({"verdict": "json"}, "verdict must be"),
    ({"votes": 0}, "votes must be a positive integer"),
    ({"votes": True}, "votes must be a positive integer"),
    ({"votes": 3}, "needs temperature > 0"),
    ({"votes": 3, "temperature": 0.5, "min_votes": 4}, "min_votes must be between"),
    ({"verdict": "logprobs", "votes": 2, "temperature": 0.5}, "log-prob verdicts"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"price_input_per_m": -1.0}, "price_input_per_m"),
    ({"tpm": 0}, "tpm must be"),
    ({"verdict_pattern": "no group"}, "exactly one capture group"),
    ({"verdict_pattern": "(unclosed"}, "not a regular expression"),
    ({"parse_retries": -1}, "parse_retries"),
])
def test_one_validator_rejects_bad_settings_for_every_judge(bad: dict[str, Any],
                                                            message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JudgeSettings(**bad)
    for judge in JUDGES:
        with pytest.raises(ValueError, match=message):
            judge(**ENDPOINT, **bad)


def test_settings_of_a_reward_ignore_the_modes_own_parameters() -> None:
    r = judge_rubric(**ENDPOINT, rubric=["x"], votes=3, temperature=0.2)
    s = JudgeSettings.of(r.params)
    assert s.votes == 3 and s.model == "m" and not hasattr(s, "rubric")
    assert "api_key" not in repr(JudgeSettings(api_key="sk-1"))


# -- read_verdict: what one answer counts for -----------------------------------------------------
def test_rating_is_read_strictly_on_the_configured_scale() -> None:
    judge = judge_score(**ENDPOINT, min_score=1, max_score=5)
    assert judge.read_verdict("Fine. [[4]]") == pytest.approx(0.75)
    assert judge.read_verdict("[[1]]") == 0.0 and judge.read_verdict("[[5]]") == 1.0
    # answers a policy could provoke by writing its own verdict into the response
    for text in ("[[6]]", "[[4]] ... actually [[5]]", "Score: 5/5", "[[five]]", ""):
        with pytest.raises(Unparseable):
            judge.read_verdict(text)


def test_custom_pattern_and_pairwise_and_yes_no_readings() -> None:
    judge = judge_score(**ENDPOINT, verdict_pattern=r"Rating:\s*(\d+)")
    assert judge.read_verdict("Rating: 10") == 1.0
    with pytest.raises(Unparseable):
        judge.read_verdict("[[10]]")
    pair = judge_pairwise(**ENDPOINT)
    assert [pair.read_verdict(t) for t in ("[[A]]", "[[b]]", "[[TIE]]")] == [1.0, 0.0, 0.5]
    with pytest.raises(Unparseable):
        pair.read_verdict("[[A]] or maybe [[B]]")
    yes_no = judge_principles(**ENDPOINT, principles=["be kind"])
    assert yes_no.read_verdict("[[yes]]") == 1.0 and yes_no.read_verdict("[[NO]]") == 0.0
    with pytest.raises(Unparseable):
        yes_no.read_verdict("[[maybe]]")
