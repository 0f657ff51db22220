"""The options a family's rewards share are declared once (a settings dataclass spliced into each
reward's keyword parameters): the spelling users write is unchanged, every reward of the family
takes every shared option, and a bad value is refused by one validator."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import rewardlab as rl
from rewardlab import Sample, Status
from rewardlab.compose.spec import load_spec
from rewardlab.rewards.code import (
    CodeSettings,
    code_efficiency,
    code_pass,
    code_pass_fraction,
    code_pass_weighted,
)
from rewardlab.rewards.format import JsonSource, json_schema, json_valid
from rewardlab.rewards.length import LengthSettings, cosine_length, overlong_penalty
from rewardlab.rewards.sql import (
    SqlDatabase,
    SqlRun,
    sql_execution,
    sql_partial,
    sql_schema_linking,
    sql_syntax,
)

# The parameters each reward had, by name and default, before its shared options became one
# object: a configured reward's parameters (and so this part of its fingerprint) are unchanged.
CODE = {"extract": "auto", "strip_think": True, "prepend": "auto", "timeout": 5.0,
        "memory_mb": 1024, "strict": True, "compare": "lines", "float_tol": None}
BEFORE: dict[Any, dict[str, Any]] = {
    code_pass: {**CODE, "stop_on_fail": True},
    code_pass_fraction: CODE,
    code_pass_weighted: {**CODE, "partial": 0.5, "floor": 0.1},
    code_efficiency: {**CODE, "bonus": 0.2, "max_speedup": 4.0, "min_seconds": 1e-3},
    overlong_penalty: {"max_length": 20480, "cache_length": 4096, "unit": "auto",
                       "tokenizer": None, "length_key": None},
    cosine_length: {"max_length": 4096, "r0_correct": 0.2, "rL_correct": 0.1,
                    "r0_wrong": -1.0, "rL_wrong": 0.0, "exceed": -1.0, "correct_key": "correct",
                    "check_answer": True, "unit": "auto", "tokenizer": None, "length_key": None},
    sql_execution: {"db_path": None, "db_dir": None, "time_budget": 5.0, "max_rows": 10_000,
                    "cpu_budget": 1.0, "timeout_value": 0.0},
    sql_syntax: {"db_path": None, "db_dir": None},
    json_valid: {"extract": "auto", "strip_think": True, "allow_trivial": False},
    json_schema: {"schema": None, "partial": False, "extract": "auto", "strip_think": True,
                  "check_formats": False, "max_errors": 20},
    sql_schema_linking: {"db_path": None, "db_dir": None},
    sql_partial: {"db_path": None, "db_dir": None, "time_budget": 5.0, "max_rows": 10_000,
                  "cpu_budget": 1.0, "n": 2, "weights": None, "full_credit_on_match": True,
                  "timeout_value": 0.0},
}
FAMILIES = {
    CodeSettings: (code_pass, code_pass_fraction, code_pass_weighted, code_efficiency),
    LengthSettings: (overlong_penalty, cosine_length),
    SqlDatabase: (sql_execution, sql_syntax, sql_schema_linking, sql_partial),
    SqlRun: (sql_execution, sql_partial),
    JsonSource: (json_valid, json_schema),
}


@pytest.mark.parametrize("definition", list(BEFORE), ids=lambda d: d.info.name)
def test_parameters_are_spelled_as_before(definition: Any) -> None:
    assert definition.params == BEFORE[definition]
    assert definition().params == BEFORE[definition]


@pytest.mark.parametrize("settings", list(FAMILIES), ids=lambda s: s.__name__)
def test_every_reward_of_a_family_takes_every_shared_option(settings: type) -> None:
    for f in dataclasses.fields(settings):
        for definition in FAMILIES[settings]:
            assert definition.params[f.name] == f.default, (definition.info.name, f.name)


def test_the_flat_spelling_configures_and_fingerprints_as_one_would_expect() -> None:
    a = code_pass(timeout=10, memory_mb=2048)
    assert a.params["timeout"] == 10 and a.params["memory_mb"] == 2048
    assert a.fingerprint == code_pass(memory_mb=2048, timeout=10).fingerprint
    assert a.fingerprint != code_pass(timeout=10).fingerprint
    with pytest.raises(ValueError, match="no parameter 'timout'"):
        code_pass(timout=10)
    # the same keys under ``params:`` in a spec
    spec = load_spec({"reward": {"reward": "code_pass_fraction",
                                 "params": {"timeout": 2, "compare": "tokens"}}})
    (leaf,) = spec.root.leaves()
    assert leaf.reward.params == {**CODE, "timeout": 2, "compare": "tokens"}
    assert leaf.reward.fingerprint == code_pass_fraction(timeout=2, compare="tokens").fingerprint


@pytest.mark.parametrize(("definition", "params", "sample", "message"), [
    (code_pass, {"compare": "fuzzy"}, Sample(response="x = 1", reference=["assert x == 1"]),
     "compare must be one of"),
    (code_pass_fraction, {"memory_mb": 0}, Sample(response="x = 1", reference=["assert x == 1"]),
     "memory_mb"),
    (code_pass, {"timeout": -1}, Sample(response="x = 1", reference=["assert x == 1"]), "timeout"),
    (overlong_penalty, {"unit": "bytes"}, Sample(response="abc"), "unit must be"),
    (sql_execution, {"timeout_value": 2.0}, Sample(response="SELECT 1", reference="SELECT 1"),
     "timeout_value"),
    (sql_partial, {"max_rows": 0}, Sample(response="SELECT 1", reference="SELECT 1"), "max_rows"),
    (json_valid, {"extract": "anywhere"}, Sample(response="{}"), "extract must be"),
])
def test_a_bad_shared_option_is_an_error_score_never_a_zero(definition: Any, params: dict[str, Any],
                                                            sample: Sample, message: str) -> None:
    (score,) = rl.score([sample], definition(**params))
    assert score.status is Status.error and message in (score.reason or ""), score
