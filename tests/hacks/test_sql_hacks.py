"""Reward-hacking attempts on the SQL rewards, on the real Spider ``department_store`` database.

A policy that cannot answer a question tries to (a) turn a wrong answer into a dropped sample by
making its query run forever, or (b) collect partial credit with a query that ignores the
question: ``SELECT 1``, one fixed query sent for every question, or the largest table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rewardlab import Sample
from rewardlab.core.types import Status
from rewardlab.rewards.sql import database_schema, sql_execution, sql_partial

RUNAWAYS = [
    # counts to 10^12 one row at a time
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) "
    "SELECT count(*) FROM c",
    # a cross join of every table with itself, several times over
    "SELECT count(*) FROM customers a, customers b, products c, products d, order_items e, "
    "order_items f, staff g",
    # string work that never ends
    "WITH RECURSIVE s(x, n) AS (SELECT 'a', 0 UNION ALL SELECT substr(x || x, 1, 1000), n + 1 "
    "FROM s WHERE n < 100000000) SELECT max(length(x)) FROM s",
]
# A wall-clock budget far beyond the CPU budget: the CPU budget decides, however busy the machine.
WALL = 20.0


def _samples(sql: str, questions: list[dict[str, Any]]) -> list[Sample]:
    return [Sample(response=sql, reference=q["output"], metadata={"db_id": q["db_id"]})
            for q in questions]


@pytest.mark.parametrize("runaway", RUNAWAYS)
@pytest.mark.parametrize("reward_def", [sql_execution, sql_partial])
def test_a_query_that_never_ends_is_a_wrong_answer_not_an_error(
        store: Path, questions: list[dict[str, Any]], runaway: str, reward_def: Any) -> None:
    """An error would drop the sample under the default policies: a policy would learn to
    escape a hard question with a runaway query. It is the response's failure: 0."""
    reward = reward_def(db_dir=str(store), time_budget=WALL, cpu_budget=0.3)
    (score,) = reward.score_local(_samples(runaway, questions[:1]))
    assert score.status is Status.ok and score.value == 0.0, score.reason
    assert "CPU budget" in (score.reason or "")
    assert score.details is not None and score.details["pred_status"] == "cpu_limit"


def test_runaway_query_with_default_budgets_scores_zero(
        store: Path, questions: list[dict[str, Any]]) -> None:
    (score,) = sql_execution(db_dir=str(store), time_budget=WALL).score_local(
        _samples(RUNAWAYS[0], questions[:1]))
    assert score.status is Status.ok and score.value == 0.0
    assert "CPU budget of 1s exceeded" in (score.reason or "")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_select_1_earns_no_partial_credit(store: Path, questions: list[dict[str, Any]]) -> None:
    """``SELECT 1`` runs (syntax 1) on every question: it used to earn 1/6 everywhere."""
    scores = sql_partial(db_dir=str(store)).score_local(_samples("SELECT 1", questions))
    assert all(s.ok for s in scores)
    assert _mean([s.value or 0.0 for s in scores]) < 0.02
    assert max(s.value or 0.0 for s in scores if s.components["execution"] == 0.0) < 0.1


def test_one_fixed_query_for_every_question_earns_almost_nothing(
        store: Path, questions: list[dict[str, Any]]) -> None:
    """Every gold query of the set, ``SELECT *`` of every table and ``SELECT [DISTINCT] c`` of
    every column, each sent as the answer to all 56 questions: on the questions it does not
    answer, none may average more than 0.05 (the best used to average 0.22)."""
    schema = database_schema(store / "department_store.sqlite")
    candidates = sorted({q["output"] for q in questions} | {f"SELECT * FROM {t}" for t in schema}
                        | {f"SELECT {d}{c} FROM {t}" for t, cs in schema.items() for c in cs
                           for d in ("", "DISTINCT ")})
    reward = sql_partial(db_dir=str(store))
    worst = 0.0
    for sql in candidates:
        scores = reward.score_local(_samples(sql, questions))
        assert all(s.ok for s in scores)
        wrong = [s.value or 0.0 for s in scores if s.components["execution"] == 0.0]
        worst = max(worst, _mean(wrong))
    assert worst < 0.05


@pytest.mark.parametrize("broken", [
    "SELECT staff_name FROM staf",                        # right idea, unknown table
    "SELEC staff_name FROM staff",                        # syntax error
    "DELETE FROM staff",                                  # a refused write
])
def test_a_query_that_does_not_run_earns_nothing(store: Path, questions: list[dict[str, Any]],
                                                 broken: str) -> None:
    scores = sql_partial(db_dir=str(store)).score_local(_samples(broken, questions))
    assert all(s.ok and s.value == 0.0 for s in scores)


@pytest.mark.parametrize("response", ["```sql" * 300_000, "</think>" + "<think>" * 250_000],
                         ids=["fences", "think"])
def test_many_unclosed_openings_are_read_in_one_pass(
        store: Path, questions: list[dict[str, Any]], response: str) -> None:
    """A pattern that rescans the rest of the text from every unclosed opening takes minutes on
    these 2 MB responses: the reward would time out into an error. Read in one pass, the
    response is what it is, a query that does not run: 0."""
    for reward_def in (sql_execution, sql_partial):
        (score,) = reward_def(db_dir=str(store)).score_local(_samples(response, questions[:1]))
        assert score.status is Status.ok and score.value == 0.0, score.reason


def test_many_unclosed_brackets_are_tokenised_in_one_pass(
        store: Path, questions: list[dict[str, Any]]) -> None:
    """``[`` opens a quoted name: a tokenizer that scans from every unclosed ``[`` to the end is
    quadratic, and `sql_partial` tokenizes the prediction for its similarity parts (on this
    500,000-character response: minutes, a timeout error in the pool)."""
    (score,) = sql_partial(db_dir=str(store)).score_local(_samples("[" * 500_000, questions[:1]))
    assert score.status is Status.ok and score.value == 0.0, score.reason
