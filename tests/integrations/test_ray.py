"""rewardlab on Ray Data: `score_dataset` and ``rewardlab score --ray`` give what a local
``rewardlab score`` gives (same values, statuses, reasons, components, same output columns),
a reward that raises costs only its rows, and a malformed row costs only itself. One Ray
(2 CPUs, no dashboard) for the module; every Ray test runs under a timeout."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("pandas")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from rewardlab import Runtime, reward  # noqa: E402
from rewardlab.apply.scorefile import score_file  # noqa: E402
from rewardlab.cli import app  # noqa: E402
from rewardlab.integrations.ray import (  # noqa: E402
    OUTPUT_COLUMNS,
    Scorer,
    decode_row,
    default_pool,
    row_score,
    score_dataset,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSITE = str(ROOT / "examples" / "math_format.yaml")  # a gate on the format, math_answer, a format bonus
FLAKY_INLINE = "tests.integrations.test_ray:flaky_inline"
FLAKY_CPU = "tests.integrations.test_ray:flaky_cpu"
RAY_TIMEOUT = 240  # seconds, per Ray test (a deadlocked pool never finishes)


@reward(kind="inline", register=False, range=(0, 1))
def flaky_inline(response_text: str) -> float:
    """1 for a response that mentions a number; raises (in the actor's own process) when the
    response says "implode"."""
    if "implode" in response_text:
        raise RuntimeError("the reward imploded")
    return float(any(ch.isdigit() for ch in response_text))


@reward(kind="cpu", register=False, range=(0, 1), timeout=30.0)
def flaky_cpu(response_text: str) -> float:
    """Like `flaky_inline`, but in the Runtime's worker processes."""
    if "explode" in response_text:
        raise ValueError("the cpu reward exploded")
    return float(any(ch.isdigit() for ch in response_text))


def gsm8k_rows(shared_data: Path, n: int, *, explode_every: int = 0) -> list[dict[str, Any]]:
    """`n` rows over GSM8K questions (train then test) with the gold answer, each with one of
    the responses a policy gives: correct and formatted, wrong and formatted, correct but
    unformatted (boxed), wrong prose, two answers (a hedge), empty. With `explode_every`, every
    such row's response also says "explode"."""
    qs: list[dict[str, str]] = []
    for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
        for line in filter(None, (shared_data / "verifiable" / name).read_bytes().split(b"\n")):
            r = json.loads(line)
            qs.append({"question": r["question"], "gold": r["answer"].split("####")[-1].strip().replace(",", "")})
    rows = []
    for k in range(n):
        q = qs[k % len(qs)]
        gold = q["gold"]
        wrong = str(int(gold) + 1 + k % 5)
        variant = (k // len(qs) + k) % 6
        response = [
            f"<think>Work it out step by step.</think><answer>{gold}</answer>",
            f"<think>Work it out step by step.</think><answer>{wrong}</answer>",
            f"The answer is \\boxed{{{gold}}}.",
            f"I believe the result is {wrong}.",
            f"<think>Either.</think><answer>{gold} or {wrong}</answer>",
            "",
        ][variant]
        if explode_every and k % explode_every == 0:
            response += " explode"
        rows.append({"id": f"g{k}", "question": q["question"], "response": response, "answer": gold})
    return rows


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=max(1, len(rows) // 4))
    return path


def local_scores(path: Path, spec: Any, out: Path) -> dict[str, dict[str, Any]]:
    """What ``rewardlab score`` writes for `path`, by id (the same `score_file` it runs)."""
    with Runtime(workers=2) as rt:
        score_file(path, spec, out, runtime=rt)
    return {r["id"]: r for r in read_out(out)}


def read_out(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL output (split on newlines only: text may hold U+2028 and the like)."""
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line]


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: decode_row(r) for r in rows}


def reward_part(row: dict[str, Any]) -> dict[str, Any]:
    """The columns rewardlab adds, as `rewardlab score` writes them (optional ones only when set)."""
    return {k: row[k] for k in OUTPUT_COLUMNS if k in row}


def descendants() -> set[int]:
    """The ids of the live processes below this one (zombies count as gone)."""
    psutil = pytest.importorskip("psutil")
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.add(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def alive(pids: set[int]) -> set[int]:
    psutil = pytest.importorskip("psutil")
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.add(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_gone(pids: set[int], bound: float = 60.0) -> set[int]:
    """Wait until none of `pids` is alive (checking every 0.1 s, at most `bound` s); the ones left."""
    deadline = time.monotonic() + bound
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[set[int]]:
    """One local Ray for the module; yields the processes below the driver before it started."""
    before = descendants() if importlib.util.find_spec("psutil") else set()  # only the process test needs it
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield before
    ray.shutdown()


@pytest.fixture(scope="module")
def rows200(shared_data: Path) -> list[dict[str, Any]]:
    return gsm8k_rows(shared_data, 200)


# -- without Ray: the scorer and the resource defaults -------------------------------------------------------
def test_default_pool_leaves_a_cpu_for_the_read_task() -> None:
    assert default_pool(cluster_cpus=2) == (1.0, 1, 1)  # not 2 actors on 2 CPUs: that deadlocks
    assert default_pool(cluster_cpus=1) == (1.0, 1, 1)
    assert default_pool(cluster_cpus=16) == (1.0, 15, 1)
    assert default_pool(num_cpus=4, cluster_cpus=16) == (4.0, 3, 4)
    assert default_pool(num_cpus=0.5, cluster_cpus=2) == (0.5, 2, 1)
    assert default_pool(concurrency=3, workers=2, cluster_cpus=2) == (1.0, 3, 2)
    for bad in ({"num_cpus": 0}, {"concurrency": 0}, {"concurrency": True}):
        with pytest.raises(ValueError):
            default_pool(cluster_cpus=2, **bad)


def test_scorer_never_raises_and_keeps_input_columns(rows200: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows200[:12] + [{"id": "bad", "question": "q", "response": None, "answer": "1"}])
    scorer = Scorer(COMPOSITE, workers=1)
    try:
        out = scorer(table)
        assert out.column_names == table.column_names + list(OUTPUT_COLUMNS)
        rows = out.to_pylist()
        assert [r["id"] for r in rows] == [r["id"] for r in table.to_pylist()]
        bad = rows[-1]
        assert bad["reward_status"] == "error" and bad["reward_reason"].startswith("malformed row: ")
        assert bad["reward"] is None
        assert {r["reward_status"] for r in rows[:-1]} == {"ok"}
    finally:
        scorer.close()
    # a Runtime that fails (here: closed) fails the batch's rows, each with the cause, not the job
    out = scorer(table).to_pylist()
    assert {r["reward_status"] for r in out} == {"error"}
    assert all("scoring the batch failed: RuntimeError" in r["reward_reason"] for r in out)


def test_a_scorer_collected_closes_its_runtime(rows200: list[dict[str, Any]]) -> None:
    """What Ray Data does when it releases an actor (the UDF's ``__del__``): the pool's workers go."""
    scorer = Scorer({"reward": {"sum": [{"reward": "tests.integrations.test_ray:worker_pid", "label": "w"}]}},
                    workers=1)
    out = scorer(pa.Table.from_pylist(rows200[:4])).to_pylist()
    pids = {int(decode_row(r)["reward_components"]["w"]) for r in out}
    assert len(pids) == 1 and alive(pids) == pids
    del scorer
    gc.collect()
    assert wait_gone(pids) == set()


def test_row_score_round_trips() -> None:
    table = pa.Table.from_pylist([{"response": "<think>a</think><answer>4</answer>", "answer": "4"}])
    scorer = Scorer(COMPOSITE, workers=1)
    try:
        row = scorer(table).to_pylist()[0]
    finally:
        scorer.close()
    sc = row_score(row)
    assert sc.ok and sc.value == pytest.approx(1.1)
    assert sc.components == {"correct": 1.0, "correct/think_answer_format": 1.0, "correct/math_answer": 1.0,
                             "format_bonus": 1.0}
    assert decode_row(row)["reward_components"] == sc.components


def test_cli_ray_refuses_what_it_cannot_do_before_starting_ray(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"response": "4", "answer": "4"}) + "\n")
    runner = CliRunner()
    base = ["score", str(inp), "-r", "math_answer", "-o", str(tmp_path / "out.jsonl"), "-q"]
    res = runner.invoke(app, [*base, "--ray-address", "in.jsonl"])
    assert res.exit_code == 2 and "is not a Ray address" in res.output
    res = runner.invoke(app, [*base, "--ray", "--split", "train"])
    assert res.exit_code == 2 and "--split" in res.output
    assert not (tmp_path / "out.jsonl").exists()
    assert not ray.is_initialized()


# -- on Ray --------------------------------------------------------------------------------------------------
@pytest.mark.timeout(RAY_TIMEOUT)
@pytest.mark.parametrize("spec", ["math_answer", COMPOSITE], ids=["math_answer", "composite"])
def test_score_dataset_equals_rewardlab_score(ray_cluster: set[int], rows200: list[dict[str, Any]], tmp_path: Path,
                                              spec: str) -> None:
    path = write_parquet(rows200, tmp_path / "in.parquet")
    local = local_scores(path, spec, tmp_path / "local.jsonl")
    got = by_id(score_dataset(ray.data.read_parquet(str(path)), spec, batch_size=50).take_all())
    assert got.keys() == local.keys()
    for key, row in local.items():
        assert reward_part(got[key]) == reward_part(row), key
    statuses = {r["reward_status"] for r in got.values()}
    values = {r["reward"] for r in got.values()}
    assert statuses == {"ok"} and len(values) > 1  # a mix of right and wrong answers, all scored


@pytest.mark.timeout(RAY_TIMEOUT)
def test_a_raising_reward_costs_only_its_rows(ray_cluster: set[int], shared_data: Path) -> None:
    """One part raises in the Runtime's worker process (on "explode"), another in the actor's own
    process (on "implode"): those rows are errors saying why, every other row is scored."""
    spec = {"reward": {"sum": [{"reward": FLAKY_CPU, "label": "cpu"}, {"reward": FLAKY_INLINE, "label": "inline"},
                               {"reward": "math_answer", "label": "correct"}]},
            "on_error": "propagate"}
    rows = gsm8k_rows(shared_data, 120, explode_every=7)
    for k in range(3, 120, 11):
        rows[k]["response"] += " implode"
    got = by_id(score_dataset(ray.data.from_items(rows, override_num_blocks=3), spec, batch_size=16).take_all())
    assert len(got) == 120
    for k, r in enumerate(rows):
        out = got[r["id"]]
        if k % 7 == 0 or k % 11 == 3:
            assert out["reward_status"] == "error" and out["reward"] is None, out
            why = "the cpu reward exploded" if k % 7 == 0 else "the reward imploded"
            assert why in out["reward_reason"], out["reward_reason"]
        else:
            assert out["reward_status"] == "ok", out
            assert out["reward_components"]["cpu"] == float(any(ch.isdigit() for ch in r["response"]))


@pytest.mark.timeout(RAY_TIMEOUT)
def test_field_names_as_rewardlab_score_maps_them(ray_cluster: set[int], rows200: list[dict[str, Any]],
                                                  tmp_path: Path) -> None:
    renamed = [{"uid": r["id"], "q": r["question"], "out": {"text": r["response"]}, "gold": r["answer"]}
               for r in rows200[:60]]
    ds = ray.data.from_items(renamed)
    got = {r["uid"]: decode_row(r) for r in score_dataset(ds, "math_answer", prompt="q", response="out.text",
                                                           reference="gold", id="uid").take_all()}
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in renamed))
    with Runtime(workers=1) as rt:
        score_file(inp, "math_answer", tmp_path / "out.jsonl", runtime=rt,
                   mapping={"prompt": "q", "response": "out.text", "reference": "gold", "id": "uid"})
    local = {r["uid"]: r for r in read_out(tmp_path / "out.jsonl")}
    assert {k: reward_part(v) for k, v in got.items()} == {k: reward_part(v) for k, v in local.items()}
    assert {v["reward"] for v in got.values()} == {0.0, 1.0}


@pytest.mark.timeout(RAY_TIMEOUT)
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_cli_ray_writes_what_a_local_run_writes(ray_cluster: set[int], rows200: list[dict[str, Any]], tmp_path: Path,
                                                fmt: str) -> None:
    if fmt == "parquet":
        inp = write_parquet(rows200, tmp_path / "in.parquet")
    else:
        inp = tmp_path / "in.jsonl"
        lines = [json.dumps(r) for r in rows200]
        lines[3:3] = ["", "{not json", "[1, 2]"]  # a blank line, two malformed rows: skipped by both
        inp.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    outs, summaries = {}, {}
    for name, extra in (("local", []), ("ray", ["--ray"])):
        out, summary = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.summary.json"
        res = runner.invoke(app, ["score", str(inp), "-r", COMPOSITE, "-o", str(out), "--no-cache", "-q",
                                  "--workers", "1", "--summary-json", str(summary), *extra])
        assert res.exit_code == 0, res.output
        outs[name] = read_out(out)
        summaries[name] = json.loads(summary.read_text())
    local, on_ray = outs["local"], outs["ray"]
    assert sorted(on_ray, key=lambda r: r["_row"]) == local  # every column, every row, same `_row` ids
    assert [list(r) for r in on_ray] == [list(r) for r in local]  # the same columns, in the same order
    for key in ("rows_in", "scored", "resumed", "malformed", "statuses", "components", "computed"):
        assert summaries["ray"][key] == summaries["local"][key], key
    assert summaries["local"]["malformed"] == (2 if fmt == "jsonl" else 0)


@pytest.mark.timeout(RAY_TIMEOUT)
def test_cli_ray_cache_serves_a_rerun(ray_cluster: set[int], rows200: list[dict[str, Any]], tmp_path: Path) -> None:
    """Two actors (half a CPU each) share one node's SQLite cache file: a rerun computes nothing."""
    inp = write_parquet(rows200[:60], tmp_path / "in.parquet")
    cache = tmp_path / "scores.db"
    runner = CliRunner()
    summaries, outs = [], []
    for k in range(2):
        out, summary = tmp_path / f"out{k}.jsonl", tmp_path / f"summary{k}.json"
        res = runner.invoke(app, ["score", str(inp), "-r", COMPOSITE, "-o", str(out), "--cache", str(cache), "-q",
                                  "--ray", "--ray-cpus", "0.5", "--ray-actors", "2", "--summary-json", str(summary)])
        assert res.exit_code == 0, res.output
        summaries.append(json.loads(summary.read_text()))
        outs.append(sorted(read_out(out), key=lambda r: r["_row"]))
    assert summaries[0]["computed"] > 0 and summaries[0]["cache_hits"] == 0
    assert summaries[1]["computed"] == 0 and summaries[1]["cache_hits"] > 0
    assert outs[0] == outs[1]


class _Cut(Exception):
    pass


@pytest.mark.timeout(RAY_TIMEOUT)
def test_cli_ray_resumes_a_cut_run_and_refuses_group_specs(ray_cluster: set[int], rows200: list[dict[str, Any]],
                                                           tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows200[:80]))

    def cut(n: int) -> None:
        raise _Cut

    with Runtime(workers=1) as rt, pytest.raises(_Cut):  # a local run stopped after its first chunk
        score_file(inp, "math_answer", out, runtime=rt, chunk_size=32, on_progress=cut)
    first = read_out(out)
    assert [r["_row"] for r in first] == list(range(1, 33))
    runner = CliRunner()
    args = ["score", str(inp), "-r", "math_answer", "-o", str(out), "--no-cache", "-q", "--ray"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = read_out(out)
    assert rows[:32] == first
    assert sorted(r["_row"] for r in rows) == list(range(1, 81))  # each row exactly once
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in rows200[80:120]))
    res = runner.invoke(app, ["score", str(other), "-r", "math_answer", "-o", str(out), "--no-cache", "-q",
                              "--ray"])
    assert res.exit_code != 0 and "input differs" in res.output  # never two runs in one output
    grouped = tmp_path / "grouped.yaml"
    grouped.write_text("reward:\n  group_zscore: {reward: math_answer}\n")
    res = runner.invoke(app, ["score", str(inp), "-r", str(grouped), "-o", str(tmp_path / "g.jsonl"), "-q",
                              "--ray"])
    assert res.exit_code != 0 and "per group" in res.output


@pytest.mark.timeout(RAY_TIMEOUT)
def test_no_process_outlives_the_job(ray_cluster: set[int]) -> None:
    """Runs last in the module: each actor's pool workers are gone once the job is done (before
    Ray shuts down), and after `ray.shutdown()` nothing started by the module is left."""
    spec = {"reward": {"sum": [{"reward": "tests.integrations.test_ray:worker_pid", "label": "worker"},
                               {"reward": "tests.integrations.test_ray:actor_pid", "label": "actor"}]}}
    rows = [{"id": str(i), "response": "x"} for i in range(100)]
    out = [decode_row(r) for r in score_dataset(ray.data.from_items(rows), spec, batch_size=20).take_all()]
    workers = {int(r["reward_components"]["worker"]) for r in out}
    actors = {int(r["reward_components"]["actor"]) for r in out}
    started = descendants() - ray_cluster
    assert workers and actors and not workers & actors
    assert wait_gone(workers) == set()
    assert wait_gone(actors) == set()
    ray.shutdown()
    assert wait_gone(started | workers | actors) == set()
    assert descendants() - ray_cluster == set()


@reward(kind="cpu", register=False, timeout=30.0, range=(0, 2**31))
def worker_pid(response_text: str) -> float:
    """The id of the pool worker process that scores the sample."""
    return float(os.getpid())


@reward(kind="inline", register=False, range=(0, 2**31))
def actor_pid(response_text: str) -> float:
    """The id of the process that owns the Runtime (the Ray actor)."""
    return float(os.getpid())
