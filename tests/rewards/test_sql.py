"""SQL verifiers on a real Spider database (department_store) and the Spider dev schemas."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

import rewardlab as rl
from rewardlab import Sample, Status
from rewardlab.rewards.sql import (
    database_schema,
    extract_sql,
    has_top_level_order_by,
    ngram_similarity,
    run_query,
    schema_from_spider,
    schema_items,
    sql_execution,
    sql_ngram,
    sql_partial,
    sql_schema_linking,
    sql_syntax,
)


@pytest.fixture()
def db_copy(store: Path, tmp_path: Path) -> Path:
    """A writable copy, so that a refused write is refused by the verifier, not the file mode."""
    dst = tmp_path / "department_store.sqlite"
    shutil.copy(store / "department_store.sqlite", dst)
    dst.chmod(0o644)
    return dst


def _sample(pred: str, gold: str, **meta: Any) -> Sample:
    return Sample(response=pred, reference=gold, metadata=meta)


def _one(reward: Any, sample: Sample) -> rl.Score:
    return reward.score_local([sample])[0]


def test_every_gold_query_matches_itself(store: Path, questions: list[dict[str, Any]]) -> None:
    samples = [_sample(f"```sql\n{q['output']}\n```", q["output"], db_id=q["db_id"])
               for q in questions]
    scores = sql_execution(db_dir=str(store)).score_local(samples)
    assert len(scores) == 56
    assert [(s.status, s.value) for s in scores] == [(Status.ok, 1.0)] * 56
    assert all(s.details and s.details["gold_rows"] == s.details["pred_rows"] for s in scores)


def test_runs_in_the_process_pool(store: Path, questions: list[dict[str, Any]]) -> None:
    gold = questions[0]["output"]
    samples = [_sample(gold, gold, db_id="department_store"),
               _sample("SELECT address_details FROM addresses", gold, db_id="department_store")]
    scores = rl.score(samples, sql_execution(db_dir=str(store)), workers=1)
    assert [s.value for s in scores] == [1.0, 0.0]


def _gold(questions: list[dict[str, Any]], startswith: str) -> str:
    return next(q["output"] for q in questions if q["output"].startswith(startswith))


WRONG = [
    # (start of a gold query, a wrong prediction, what is wrong)
    ("SELECT product_name ,  product_id FROM products WHERE product_price BETWEEN",
     "SELECT product_name, product_type_code FROM products WHERE product_price BETWEEN 600 AND 700",
     "wrong column"),
    ("SELECT count(*) FROM department_stores AS T1 JOIN department_store_chain",
     "SELECT count(*) FROM department_stores AS T1 JOIN department_store_chain AS T2 "
     "ON T1.dept_store_chain_id = T2.dept_store_chain_id", "missing WHERE"),
    ("SELECT avg(total_amount_purchased)",
     "SELECT max(total_amount_purchased), avg(total_value_purchased) FROM Product_Suppliers "
     "WHERE supplier_id = (SELECT supplier_id FROM Product_Suppliers GROUP BY supplier_id "
     "ORDER BY count(*) DESC LIMIT 1)", "wrong aggregate"),
    ("SELECT order_id ,  customer_id FROM customer_orders",
     "SELECT order_id, customer_id FROM customer_orders WHERE order_status_code = 'Cancelled' "
     "ORDER BY order_date DESC", "reversed order where the gold orders"),
    ("SELECT T1.staff_name ,  T1.staff_gender FROM staff AS T1 JOIN staff_department_assignments",
     "SELECT T1.staff_name, T1.staff_gender FROM staff AS T1 JOIN staff_department_assignments "
     "AS T2 ON T1.staff_id = T2.staff_id WHERE T2.date_assigned_from LIKE '2017%'", "wrong value"),
]


@pytest.mark.parametrize(("gold_start", "pred", "what"), WRONG, ids=[w[2] for w in WRONG])
def test_wrong_queries_score_zero(store: Path, questions: list[dict[str, Any]], gold_start: str,
                                  pred: str, what: str) -> None:
    gold = _gold(questions, gold_start)
    s = _one(sql_execution(db_dir=str(store)), _sample(pred, gold, db_id="department_store"))
    assert s.status is Status.ok and s.value == 0.0, what
    assert s.reason and s.reason.startswith("results differ")
    assert s.details and s.details["pred_status"] == "ok"


def test_order_matters_only_when_the_gold_orders(store: Path,
                                                 questions: list[dict[str, Any]]) -> None:
    ordered_gold = _gold(questions, "SELECT order_id ,  customer_id FROM customer_orders")
    same_rows_other_order = ordered_gold.replace("ORDER BY order_date", "ORDER BY order_id DESC")
    unordered_gold = _gold(questions, "SELECT customer_phone FROM customers UNION")
    reordered = ("SELECT * FROM (SELECT customer_phone FROM customers UNION "
                 "SELECT supplier_phone FROM suppliers) ORDER BY customer_phone DESC")
    r = sql_execution(db_dir=str(store))
    pred_rows = run_query(store / "department_store.sqlite", same_rows_other_order).rows
    gold_rows = run_query(store / "department_store.sqlite", ordered_gold).rows
    assert sorted(pred_rows) == sorted(gold_rows) and pred_rows != gold_rows
    assert _one(r, _sample(same_rows_other_order, ordered_gold, db_id="department_store")).value == 0
    assert _one(r, _sample(reordered, unordered_gold, db_id="department_store")).value == 1


def test_syntax_error_is_a_zero_with_the_reason(store: Path,
                                                questions: list[dict[str, Any]]) -> None:
    s = _one(sql_execution(db_dir=str(store)),
             _sample("SELEC customer_name FROM customers", questions[0]["output"],
                     db_id="department_store"))
    assert s.status is Status.ok and s.value == 0.0
    assert "syntax error" in (s.reason or "") and s.details and s.details["pred_status"] == "error"


WRITES = [
    "DELETE FROM staff",
    "DROP TABLE staff",
    "UPDATE staff SET staff_name = 'x'",
    "INSERT INTO staff VALUES (99, 'm', 'x')",
    "CREATE TABLE t (x)",
    "CREATE TEMP TABLE t (x)",
    "ATTACH DATABASE ':memory:' AS other",
    "PRAGMA journal_mode = WAL",
    "PRAGMA user_version = 7",
    "SELECT 1; DELETE FROM staff",
    "VACUUM",
    "SELECT load_extension('x')",
]


def _fingerprint(path: Path) -> tuple[str, list[Any]]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest, run_query(path, "SELECT count(*), group_concat(staff_name) FROM staff").rows


@pytest.mark.parametrize("attack", WRITES)
def test_writes_are_refused_and_the_database_is_unchanged(db_copy: Path, attack: str) -> None:
    before = _fingerprint(db_copy)
    s = _one(sql_execution(db_path=str(db_copy)), _sample(attack, "SELECT count(*) FROM staff"))
    assert s.status is Status.ok and s.value == 0.0
    assert s.details and s.details["pred_status"] in ("refused", "error")
    assert _fingerprint(db_copy) == before
    assert not list(db_copy.parent.glob("*-journal")) and not list(db_copy.parent.glob("*-wal"))


def test_runaway_query_stops_at_the_time_budget(store: Path) -> None:
    runaway = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
               "WHERE x < 1000000000000) SELECT count(*) FROM c")
    sample = _sample(runaway, "SELECT count(*) FROM staff", db_id="department_store")
    # the runaway query is the response's failure: 0 with the reason, by default
    s = _one(sql_execution(db_dir=str(store), time_budget=60.0, cpu_budget=0.2), sample)
    assert s.status is Status.ok and s.value == 0.0 and "CPU budget" in (s.reason or "")
    assert s.details and s.details["pred_status"] == "cpu_limit"
    # timeout_value=None keeps the old behaviour: an error
    s = _one(sql_execution(db_dir=str(store), time_budget=60.0, cpu_budget=0.2,
                           timeout_value=None), sample)
    assert s.status is Status.error and "CPU budget" in (s.reason or "")


def test_row_cap(store: Path) -> None:
    r = sql_execution(db_dir=str(store), max_rows=5)
    too_many = _one(r, _sample("SELECT * FROM customers", "SELECT count(*) FROM customers",
                               db_id="department_store"))
    assert too_many.value == 0.0 and "more than 5 rows" in (too_many.reason or "")
    gold_too_big = _one(r, _sample("SELECT 1", "SELECT * FROM customers", db_id="department_store"))
    assert gold_too_big.status is Status.error and "gold query failed" in (gold_too_big.reason or "")


def test_database_location_and_reference(store: Path) -> None:
    db = str(store / "department_store.sqlite")
    q = "SELECT count(*) FROM staff"
    assert _one(sql_execution(db_path=db), _sample(q, q)).value == 1.0
    assert _one(sql_execution(), _sample(q, q, db_path=db)).value == 1.0
    missing = _one(sql_execution(db_dir=str(store)), _sample(q, q, db_id="no_such_db"))
    assert missing.status is Status.error and "not found" in (missing.reason or "")
    assert _one(sql_execution(), _sample(q, q)).status is Status.error
    assert _one(sql_execution(db_path=db), _sample(q, None)).status is Status.abstain  # type: ignore[arg-type]
    bad_gold = _one(sql_execution(db_path=db), _sample(q, "SELECT nope FROM staff"))
    assert bad_gold.status is Status.error


def test_extract_sql() -> None:
    assert extract_sql("Here:\n```sql\nSELECT 1\n```\nand\n```SQL\nSELECT 2;\n```") == "SELECT 2;"
    assert extract_sql("<think>```sql\nSELECT 0\n```</think>\n```\nSELECT 3\n```") == "SELECT 3"
    assert extract_sql("  SELECT 4  ") == "SELECT 4"
    assert extract_sql("<think>hmm</think>   ") is None


def test_top_level_order_by(questions: list[dict[str, Any]]) -> None:
    nested = _gold(questions, "SELECT avg(total_amount_purchased)")
    assert "ORDER BY" in nested and not has_top_level_order_by(nested)
    assert has_top_level_order_by(_gold(questions, "SELECT order_id ,  customer_id"))
    assert not has_top_level_order_by("SELECT 'ORDER BY x' FROM t -- ORDER BY y")
    assert has_top_level_order_by("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1")


def test_syntax_reward(store: Path, questions: list[dict[str, Any]]) -> None:
    r = sql_syntax(db_dir=str(store))
    ok = [_one(r, _sample(q["output"], "", db_id="department_store")).value for q in questions]
    assert ok == [1.0] * 56
    for bad in ("SELECT nope FROM staff", "SELEC 1", "DELETE FROM staff", "SELECT * FROM nowhere"):
        s = _one(r, _sample(bad, "", db_id="department_store"))
        assert s.value == 0.0 and s.reason, bad


def _spider_tables_and_columns(node: Any, tables: set[int], cols: set[int]) -> None:
    """Table and column indices in Spider's parsed `sql` field."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "table_units":
                for kind, ref in v:
                    if kind == "table_unit":
                        tables.add(ref)
                    else:
                        _spider_tables_and_columns(ref, tables, cols)
            else:
                _spider_tables_and_columns(v, tables, cols)
    elif isinstance(node, list):
        if len(node) == 3 and type(node[0]) is int and type(node[1]) is int \
                and type(node[2]) is bool:  # a col_unit: (aggregate, column, distinct)
            if node[1] != 0:
                cols.add(node[1])
            return
        for x in node:
            _spider_tables_and_columns(x, tables, cols)


_OR_IN_JOIN = re.compile(r"\bON\b(?:(?!\bWHERE\b|\bGROUP\b).)*\bOR\b", re.S)


def test_schema_items_agree_with_spiders_parse(shared_data: Path) -> None:
    dev = json.loads((shared_data / "sql" / "spider_dev" / "dev.json").read_text())
    schemas = {t["db_id"]: t for t in
               json.loads((shared_data / "sql" / "spider_dev" / "tables.json").read_text())}
    assert len(dev) == 1034
    for e in dev:
        entry = schemas[e["db_id"]]
        names = [n.lower() for n in entry["table_names_original"]]
        cols = entry["column_names_original"]
        t_idx: set[int] = set()
        c_idx: set[int] = set()
        _spider_tables_and_columns(e["sql"], t_idx, c_idx)
        want = {names[i] for i in t_idx} | {f"{names[cols[c][0]]}.{cols[c][1].lower()}"
                                            for c in c_idx}
        got = schema_items(e["query"], schema_from_spider(entry))
        if _OR_IN_JOIN.search(e["query"]):
            assert want <= got, e["query"]  # Spider's parse keeps one side of an OR join
        else:
            assert got == want, e["query"]


def test_schema_linking_reward(store: Path, questions: list[dict[str, Any]]) -> None:
    gold = _gold(questions, "SELECT T1.staff_name ,  T1.staff_gender FROM staff AS T1 JOIN")
    r = sql_schema_linking(db_dir=str(store))
    same = _one(r, _sample("SELECT s.staff_name, s.staff_gender FROM Staff s JOIN "
                           "Staff_Department_Assignments a ON s.staff_id = a.staff_id WHERE "
                           "a.date_assigned_from LIKE '2016%'", gold, db_id="department_store"))
    assert same.value == 1.0
    partial = _one(r, _sample("SELECT staff_name FROM staff", gold, db_id="department_store"))
    assert partial.value is not None and 0.0 < partial.value < 1.0
    assert partial.details and partial.details["pred"] == ["staff", "staff.staff_name"]
    other = _one(r, _sample("SELECT product_name FROM products", gold, db_id="department_store"))
    assert other.value == 0.0
    schema = database_schema(store / "department_store.sqlite")
    via_meta = _one(sql_schema_linking(), _sample("SELECT staff_name FROM staff", gold,
                                                  schema=schema))
    assert via_meta.value == partial.value


def test_ngram_similarity() -> None:
    q = "SELECT name FROM staff WHERE id = 3"
    assert ngram_similarity(q, "select  NAME from STAFF where id=3;") == 1.0
    near = ngram_similarity(q, "SELECT name FROM staff WHERE id = 4")
    far = ngram_similarity(q, "SELECT name FROM products")
    assert 0.0 < far < near < 1.0
    assert ngram_similarity(q, q, n=3) == 1.0
    s = _one(sql_ngram(), _sample("SELECT name FROM staff WHERE id = 4", q))
    assert s.value == pytest.approx(near)


def test_partial_reward_orders_better_queries_higher(store: Path,
                                                     questions: list[dict[str, Any]]) -> None:
    gold = _gold(questions, "SELECT product_name ,  product_id FROM products WHERE")
    r = sql_partial(db_dir=str(store))

    def score(pred: str) -> rl.Score:
        return _one(r, _sample(pred, gold, db_id="department_store"))

    right, wrong_col, broken = (
        score(gold),
        score("SELECT product_name, product_type_code FROM products WHERE product_price "
              "BETWEEN 600 AND 700"),
        score("SELECT product_name, product_id FROM product WHERE price BETWEEN 600 AND 700"),
    )
    assert right.value == 1.0 and right.components["execution"] == 1.0
    assert wrong_col.components["execution"] == 0.0 and wrong_col.components["syntax"] == 1.0
    assert broken.components["syntax"] == 0.0
    # one of the two columns is right: half the gold result is there
    assert wrong_col.components["result_overlap"] == pytest.approx(0.5)
    assert right.value > wrong_col.value > broken.value == 0.0  # type: ignore[operator]
    mean = 0.5 * (wrong_col.components["syntax"] + wrong_col.components["schema_linking"]  # type: ignore[operator]
                  + wrong_col.components["ngram"]) / 6  # type: ignore[operator]
    assert wrong_col.value == pytest.approx(mean)
    bad_weights = _one(sql_partial(db_dir=str(store), weights={"speed": 1.0}),
                       _sample(gold, gold, db_id="department_store"))
    assert bad_weights.status is Status.error
