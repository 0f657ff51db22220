"""SQL and tool-call verifier benchmark, one run, beside the baselines people use today.

SQL, on the real Spider ``department_store`` database (56 questions with gold SQL):

- gold-vs-gold (every gold query as the prediction) and wrong predictions (another question's
  gold query, a syntax error, a refused write) with `sql_execution`, in this process and through
  the process pool, vs the plain reward most text-to-SQL RL code writes (``sqlite3.connect``,
  ``fetchall`` both queries, compare as sets; no read-only guard, no time budget);
- how far past a 1 s budget a runaway recursive query is stopped.

Tool calls, on BFCL v4 (simple_python, multiple, parallel, live_simple, irrelevance): the gold
calls (first accepted value of each argument) and perturbed ones (wrong name, missing required
argument, wrong value, extra call, reversed parallel order) with `tool_call_match`, vs the
official BFCL AST checker (`bfcl-eval`) when it can be imported, with the agreement of our
``exact`` mode with its verdicts.

Question-blind baselines (what a policy earns without reading the question): `sql_partial` for
one fixed query used for every question (the best of: each gold query, ``SELECT 1``, ``SELECT *``
from each table, ``SELECT [DISTINCT] column`` for each column) and for ``SELECT 1``, on the 56
Spider questions; `tool_call_match` for calls
with the right function names and every schema key but garbage values, and for calls filled from
the schema alone (each key's default, else its first enum value, else ``false`` / garbage), on
BFCL simple_python, multiple, parallel, parallel_multiple and live_simple.

    python -m benchmarks.bench_sql_tools                       # full run
    python -m benchmarks.bench_sql_tools --baselines           # only the question-blind baselines
    python -m benchmarks.bench_sql_tools --pathological        # only the many-unclosed-openings timing
    python -m benchmarks.bench_sql_tools --quick               # small smoke run
    python -m benchmarks.bench_sql_tools --bfcl-path DIR       # where bfcl_eval is installed
        (pip install --no-deps --target DIR bfcl-eval; its model handlers are not needed)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rewardlab as rl
from rewardlab import Sample
from rewardlab.rewards.sql import database_schema, run_query, sql_execution, sql_partial
from rewardlab.rewards.tools import calls_from_bfcl, tool_call_match
from rewardlab.runtime.engine import Runtime

DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA",
                           Path(__file__).resolve().parents[2] / "shared" / "data"))
BFCL_SETS = ["simple_python", "multiple", "parallel", "live_simple"]


# -- SQL -----------------------------------------------------------------------------------------


def _sql_items(store: Path) -> tuple[list[Sample], list[Sample]]:
    qs = json.loads((store / "questions.json").read_text())
    gold = [Sample(response=q["output"], reference=q["output"], metadata={"db_id": q["db_id"]})
            for q in qs]
    wrong: list[Sample] = []
    for i, q in enumerate(qs):
        other = qs[(i + 2) % len(qs)]["output"]  # questions come in pairs: +2 is another one
        meta = {"db_id": q["db_id"]}
        wrong += [
            Sample(response=other, reference=q["output"], metadata=meta),
            Sample(response=q["output"].replace("SELECT", "SELEC", 1), reference=q["output"],
                   metadata=meta),
            Sample(response="DELETE FROM staff", reference=q["output"], metadata=meta),
        ]
    return gold, wrong


def plain_sql_reward(db_path: Path, pred: str, gold: str) -> float:
    """The execution reward as commonly written: no read-only guard, no time budget, sets."""
    conn = sqlite3.connect(db_path)
    try:
        try:
            p = conn.execute(pred).fetchall()
        except Exception:  # noqa: BLE001 - the baseline as people write it
            return 0.0
        g = conn.execute(gold).fetchall()
        return float(set(p) == set(g))
    finally:
        conn.close()


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_sql(reps: int, tmp: Path) -> list[str]:
    store = DATA / "sql" / "spider_department_store"
    db = store / "department_store.sqlite"
    scratch = tmp / "department_store.sqlite"  # the plain reward writes: give it a copy
    shutil.copy(db, scratch)
    scratch.chmod(0o644)
    gold, wrong = _sql_items(store)
    reward = sql_execution(db_dir=str(store))
    rows = ["| SQL job | items | plain sqlite3 reward | rewardlab (in process) | "
            "rewardlab (process pool) | items/s (in process) | ratio plain/ours |",
            "|---|---|---|---|---|---|---|"]
    reward.score_local(gold[:4])  # warm up (imports, first connection)
    for label, base in (("gold vs gold", gold), ("wrong predictions", wrong)):
        items = base * reps
        plain_t, plain_v = _timed(lambda items=items: [
            plain_sql_reward(scratch, s.response, s.reference) for s in items])  # type: ignore[arg-type]
        local_t, local_s = _timed(lambda items=items: reward.score_local(items))
        with Runtime() as rt:
            rl.score(items[:8], reward, runtime=rt)  # start the workers
            pool_t, pool_s = _timed(lambda items=items, rt=rt: rl.score(items, reward, runtime=rt))
        assert [s.value for s in local_s] == [s.value for s in pool_s]
        expect = 1.0 if label == "gold vs gold" else 0.0
        assert all(s.value == expect for s in local_s), label
        agree = sum(p == s.value for p, s in zip(plain_v, local_s, strict=True))
        rows.append(f"| {label} | {len(items):,} | {plain_t:.2f} s | {local_t:.2f} s | "
                    f"{pool_t:.2f} s | {len(items) / local_t:,.0f} | {plain_t / local_t:.2f} |")
        hacked = sum(p == 1.0 and s.response.startswith("DELETE")  # type: ignore[union-attr]
                     for p, s in zip(plain_v, items, strict=True))
        note = f"; it gives 1.0 to `DELETE FROM staff` on {hacked} items" if hacked else ""
        rows.append(f"| (agreement with the plain reward: {agree}/{len(items)}{note}) | | | | | | |")
    runaway = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
               "WHERE x < 1000000000000) SELECT count(*) FROM c")
    stops = [run_query(db, runaway, time_budget=10.0, cpu_budget=1.0) for _ in range(3)]
    assert all(r.kind == "cpu_limit" for r in stops), [r.kind for r in stops]
    worst_cpu = max(r.cpu_seconds for r in stops)
    worst_wall = max(r.seconds for r in stops)
    rows += ["", f"Runaway recursive query with a 1 s CPU budget (the `sql_execution` default): "
             f"stopped after at most {worst_cpu:.3f} s of CPU, {worst_wall:.3f} s wall (3 runs), "
             "scored 0; the plain reward has no budget and runs until the caller kills it."]
    return rows


# -- tool calls ----------------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def _variants(gt: list[dict[str, Any]], category: str) -> list[tuple[str, list[dict[str, Any]]]]:
    gold = calls_from_bfcl(gt)
    out = [("gold", gold)]
    bad = copy.deepcopy(gold)
    bad[0]["name"] += "_v2"
    out.append(("wrong name", bad))
    (_, accepted), = gt[0].items()
    required = [k for k, v in accepted.items() if v and "" not in v]
    if required:
        bad = copy.deepcopy(gold)
        del bad[0]["arguments"][required[0]]
        out.append(("missing argument", bad))
        first = accepted[required[0]][0]
        if isinstance(first, str) or (isinstance(first, int | float)
                                      and not isinstance(first, bool)):
            bad = copy.deepcopy(gold)
            bad[0]["arguments"][required[0]] = "zqx" + first if isinstance(first, str) else \
                sum(abs(v) for v in accepted[required[0]] if isinstance(v, int | float)) + 1000
            out.append(("wrong value", bad))
    out.append(("extra call", gold + [copy.deepcopy(gold[0])]))
    if category == "parallel":
        out.append(("reversed order", gold[::-1]))
    return out


def _bfcl_checker(path: str | None) -> Callable[..., dict[str, Any]] | None:
    if path:
        sys.path.insert(0, path)
    try:
        # The checker imports every model handler only for a name table; stand it in.
        stub = types.ModuleType("bfcl_eval.constants.model_config")
        stub.MODEL_CONFIG_MAPPING = {  # type: ignore[attr-defined]
            "bench": types.SimpleNamespace(underscore_to_dot=False)}
        sys.modules.setdefault("bfcl_eval.constants.model_config", stub)
        from bfcl_eval.constants.enums import Language  # type: ignore[import-not-found]
        from bfcl_eval.eval_checker.ast_eval.ast_checker import (  # type: ignore[import-not-found]
            ast_checker,
        )
    except ImportError:
        return None

    def check(functions: list[dict[str, Any]], calls: list[dict[str, Any]],
              gt: list[dict[str, Any]], category: str) -> dict[str, Any]:
        output = [{c["name"]: c["arguments"]} for c in calls]
        return ast_checker(functions, output, gt, Language.PYTHON, category, "bench")

    return check


def bench_tools(reps: int, bfcl_path: str | None) -> list[str]:
    root = DATA / "toolcall" / "bfcl"
    checker = _bfcl_checker(bfcl_path)
    match, exact = tool_call_match(), tool_call_match(exact=True)
    rows = ["| tool-call set | items | BFCL AST checker | rewardlab (parse + match) | "
            "items/s (ours) | ratio BFCL/ours | exact-mode agreement with BFCL |",
            "|---|---|---|---|---|---|---|"]
    total_items, total_ours = 0, 0.0
    for category in BFCL_SETS:
        questions = {q["id"]: q for q in _jsonl(root / f"BFCL_v4_{category}.json")}
        cases = []
        for a in _jsonl(root / "possible_answer" / f"BFCL_v4_{category}.json"):
            for kind, calls in _variants(a["ground_truth"], category):
                cases.append((questions[a["id"]]["function"], calls, a["ground_truth"], kind))
        cases = cases * reps
        samples = [Sample(response=json.dumps(c), reference=gt) for _, c, gt, _ in cases]
        match.score_local(samples[:50])  # warm up
        ours_t, ours = _timed(lambda samples=samples: match.score_local(samples))
        ex = exact.score_local(samples)
        for (_, _, _, kind), s in zip(cases, ours, strict=True):
            assert (s.value == 1.0) == (kind in ("gold", "reversed order")), (kind, s.reason)
        total_items += len(samples)
        total_ours += ours_t
        if checker is None:
            base, ratio, agree = "not installed", "n/a", "n/a"
        else:
            for fn, calls, gt, _ in cases[:50]:  # warm up
                checker(fn, calls, gt, category)
            base_t, verdicts = _timed(lambda cases=cases, category=category: [
                checker(fn, calls, gt, category)["valid"] for fn, calls, gt, _ in cases])
            n_agree = sum(v == (s.value == 1.0) for v, s in zip(verdicts, ex, strict=True))
            base, ratio = f"{base_t:.2f} s", f"{base_t / ours_t:.2f}"
            agree = f"{n_agree}/{len(cases)}"
        rows.append(f"| {category} (gold + perturbed) | {len(samples):,} | {base} | "
                    f"{ours_t:.2f} s | {len(samples) / ours_t:,.0f} | {ratio} | {agree} |")
    irr = _jsonl(root / "BFCL_v4_irrelevance.json") * reps
    samples = [Sample(response="None of these functions applies.", reference=[]) for _ in irr]
    samples += [Sample(response=json.dumps({"name": q["function"][0]["name"], "arguments": {}}),
                       reference=[]) for q in irr]
    irr_t, irr_s = _timed(lambda: match.score_local(samples))
    assert [s.value for s in irr_s] == [1.0] * len(irr) + [0.0] * len(irr)
    rows.append(f"| irrelevance (no call / a call) | {len(samples):,} | n/a | {irr_t:.2f} s | "
                f"{len(samples) / irr_t:,.0f} | n/a | n/a |")
    total_items += len(samples)
    total_ours += irr_t
    conv = [Sample(response=[{"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
        for c in calls_from_bfcl(a["ground_truth"])]}], reference=a["ground_truth"])
        for a in _jsonl(root / "possible_answer" / "BFCL_v4_parallel.json")] * reps
    with Runtime() as rt:
        e2e_t, e2e = _timed(lambda: rl.score(conv, match, runtime=rt))
    assert all(s.value == 1.0 for s in e2e)
    rows += ["", f"All tool-call sets: {total_items:,} items in {total_ours:.2f} s "
             f"({total_items / total_ours:,.0f} items/s, in process). Through `rewardlab.score` "
             f"(engine, OpenAI messages with per-turn rewards): {len(conv):,} parallel items in "
             f"{e2e_t:.2f} s ({len(conv) / e2e_t:,.0f} items/s)."]
    return rows


# -- question-blind baselines --------------------------------------------------------------------


def bench_sql_blind() -> list[str]:
    store = DATA / "sql" / "spider_department_store"
    qs = json.loads((store / "questions.json").read_text())
    reward = sql_partial(db_dir=str(store))
    schema = database_schema(store / "department_store.sqlite")
    columns = [f"SELECT {d}{c} FROM {t}" for t, cs in sorted(schema.items()) for c in cs
               for d in ("", "DISTINCT ")]
    candidates = list(dict.fromkeys([q["output"] for q in qs] + ["SELECT 1"]
                                    + [f"SELECT * FROM {t}" for t in sorted(schema)] + columns))
    results: list[tuple[float, float, str]] = []
    for sql in candidates:
        scores = reward.score_local([Sample(response=sql, reference=q["output"],
                                            metadata={"db_id": q["db_id"]}) for q in qs])
        assert all(s.ok for s in scores), [s.reason for s in scores if not s.ok][:3]
        values = [s.value or 0.0 for s in scores]
        wrong = [s.value or 0.0 for s in scores if s.components.get("execution") != 1.0]
        results.append((sum(values) / len(values), sum(wrong) / max(1, len(wrong)), sql))
    best = max(results)
    best_wrong = max(results, key=lambda r: r[1])
    select1 = next(r for r in results if r[2] == "SELECT 1")
    return [f"sql_partial, question-blind, {len(qs)} Spider department_store questions, "
            f"{len(candidates)} candidate fixed queries:",
            f"- best fixed query: mean {best[0]:.3f} (mean {best[1]:.3f} on the questions it "
            f"answers wrongly): {best[2]}",
            f"- best fixed query on the questions it answers wrongly: mean {best_wrong[1]:.3f}: "
            f"{best_wrong[2]}",
            f"- SELECT 1: mean {select1[0]:.3f}"]


def _garbage(prop: dict[str, Any], from_schema: bool) -> Any:
    kind = prop.get("type", "string")
    if from_schema:
        if "default" in prop:
            return prop["default"]
        if prop.get("enum"):
            return prop["enum"][0]
        if kind == "boolean":
            return False
    return {"integer": 987654321, "float": 987654.321, "number": 987654.321, "boolean": "zqx",
            "array": ["zqx"], "tuple": ["zqx"], "dict": {"zqx": 1}, "object": {"zqx": 1},
            "any": "zqx"}.get(kind, "zqx-garbage")


def bench_tools_blind() -> list[str]:
    root = DATA / "toolcall" / "bfcl"
    match = tool_call_match()
    rows = ["| BFCL set | questions | right names, every schema key, garbage values | "
            "right names, values from the schema alone |", "|---|---|---|---|"]
    totals = {False: [0.0, 0], True: [0.0, 0]}
    for category in ["simple_python", "multiple", "parallel", "parallel_multiple", "live_simple"]:
        questions = {q["id"]: q for q in _jsonl(root / f"BFCL_v4_{category}.json")}
        means = []
        for from_schema in (False, True):
            samples = []
            for a in _jsonl(root / "possible_answer" / f"BFCL_v4_{category}.json"):
                specs = {f["name"]: f for f in questions[a["id"]]["function"]}
                calls = []
                for call in a["ground_truth"]:
                    (name, _), = call.items()
                    props = specs[name]["parameters"].get("properties", {})
                    calls.append({"name": name, "arguments": {
                        k: _garbage(v, from_schema) for k, v in props.items()}})
                samples.append(Sample(response=json.dumps(calls), reference=a["ground_truth"]))
            scores = match.score_local(samples)
            assert all(s.ok for s in scores)
            values = [s.value or 0.0 for s in scores]
            means.append(sum(values) / len(values))
            totals[from_schema][0] += sum(values)
            totals[from_schema][1] += len(values)
        rows.append(f"| {category} | {len(samples)} | {means[0]:.3f} | {means[1]:.3f} |")
    g, s = (totals[k][0] / totals[k][1] for k in (False, True))
    rows.append(f"| all | {totals[False][1]} | {g:.3f} | {s:.3f} |")
    return rows


# -- pathological responses ----------------------------------------------------------------------


PATHOLOGICAL = {
    "`<tool_call>` x N (never closed)": ("<tool_call>", "tools"),
    "`</think>` + `<think>` x N": ("<think>", "tools"),
    "```` ```sql ```` x N (no newline)": ("```sql", "sql"),
    "```` ```a ```` x N (no newline)": ("```a", "json"),
}


def bench_pathological(sizes: tuple[int, ...] = (16_000, 64_000)) -> list[str]:
    """Seconds to read one response made of many unclosed openings (the extraction step of
    `tool_call_format`, `sql_execution`, `json_valid`)."""
    from rewardlab.rewards.format import extract_json
    from rewardlab.rewards.sql import extract_sql
    from rewardlab.rewards.tools import parse_tool_calls

    readers: dict[str, Callable[[str], Any]] = {"tools": parse_tool_calls, "sql": extract_sql,
                                                "json": extract_json}
    rows = ["| response | " + " | ".join(f"{n:,} chars" for n in sizes) + " |",
            "|---|" + "---|" * len(sizes)]
    for label, (unit, kind) in PATHOLOGICAL.items():
        cells = []
        for n in sizes:
            text = ("</think>" if unit == "<think>" else "") + unit * (n // len(unit))
            seconds, _ = _timed(lambda text=text, kind=kind: readers[kind](text))
            cells.append(f"{seconds * 1000:,.1f} ms")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bfcl-path", default=None, help="a folder holding the bfcl_eval package")
    ap.add_argument("--baselines", action="store_true", help="only the question-blind baselines")
    ap.add_argument("--pathological", action="store_true",
                    help="only the timing of responses made of many unclosed openings")
    args = ap.parse_args(argv)
    if args.pathological:
        text = "\n".join(bench_pathological())
        print(text)
        return text
    if args.baselines:
        text = "\n".join(bench_sql_blind() + [""] + bench_tools_blind())
        print(text)
        return text
    sql_reps, tool_reps = (2, 1) if args.quick else (20, 3)
    lines = [f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        lines += bench_sql(sql_reps, Path(tmp))
    lines += [""]
    lines += bench_tools(tool_reps, args.bfcl_path)
    lines += ["", "Question-blind baselines:"] + bench_sql_blind() + [""] + bench_tools_blind()
    lines += ["", "Responses made of many unclosed openings:"] + bench_pathological()
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
