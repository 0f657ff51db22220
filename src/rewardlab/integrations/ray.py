"""Scoring a Ray Dataset with a rewardlab spec, on as many machines as the Ray cluster has
(``pip install "rewardlab[ray]"``)::

    import ray
    from rewardlab.integrations.ray import score_dataset

    ds = ray.data.read_parquet("s3://bucket/rollouts/")
    scored = score_dataset(ds, "examples/math_format.yaml", cache="/tmp/rewardlab-scores.db")
    scored.write_parquet("s3://bucket/scored/")

Each actor of a Ray Data actor pool owns one `Runtime` built once from the spec (a registered
reward name, a spec file, YAML text, a dict, or a picklable built spec), and scores batches
with it: its process pool, timeouts, io limits and cache serve every batch the actor gets.
Each row becomes a `Sample` exactly as ``rewardlab score`` reads it (`rewardlab.io.rows.to_sample`,
with the same ``mapping``), so a row scores the same here and in a local run.

Output: the input columns plus the columns ``rewardlab score`` adds, under the same names:
``reward`` (float; null when the status is not ``ok``), ``reward_status`` (``ok`` / ``abstain``
/ ``error``), ``reward_reason`` (text or null) and the nested ones, ``reward_components``,
``reward_details``, ``reward_steps``, ``reward_turns``, ``reward_tokens``, held as JSON text (null
when the reward gives none): a Ray block needs one Arrow type per column, and details differ
from row to row. `decode_row` gives a row as ``rewardlab score`` writes it.

A failure costs only its rows, never the dataset (Ray Data fails the whole job on one raising
batch): a reward that raises, times out or crashes makes its rows ``error`` with the reason; a
row that is not a sample (no response field...) is ``error`` with ``malformed row: ...``; and
should the Runtime itself fail, every row of that batch is ``error`` with the cause.

Resources (see `default_pool`): by default each actor asks Ray for ``num_cpus=1`` and runs a
process pool of as many workers, and the pool has one actor fewer than the cluster's CPUs
(at least one). The CPU left over runs the read and write tasks: an actor pool that takes every
CPU leaves the read task waiting forever (on ``ray.init(num_cpus=2)``, two 1-CPU actors
deadlock the job). Fractional ``num_cpus`` lets more actors share a CPU.

Shutdown: each actor closes its Runtime (its worker processes, event loop, cache) when Ray Data
releases the actor at the end of the job (the scorer's ``__del__``, which Ray Data triggers
when it shuts an actor down), and again at the actor process's exit; `Scorer.close` closes it
explicitly. Pool workers also exit on their own when the actor that owns them dies.

Cache on a cluster: ``cache`` is a path opened by each actor on its own node, so each node
has its own SQLite file; actors on one node share it. Do not point it at one file on NFS
shared by several nodes: SQLite's locking is not safe over network file systems.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import pickle
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from rewardlab.api import SpecLike, build
from rewardlab.apply.scorefile import output_row, run_identity
from rewardlab.apply.summary import Summary
from rewardlab.compose.spec import Spec
from rewardlab.compose.transforms import Grouped
from rewardlab.core.types import Cost, Sample, Score, Status, TokenScores
from rewardlab.io.files import InputError, Row, _parse_line, parse_json_line
from rewardlab.io.jsonsafe import dump_json_line
from rewardlab.io.output import DoneSet, ResumableWriter
from rewardlab.io.rows import to_sample
from rewardlab.runtime import mainmodule
from rewardlab.runtime.engine import Runtime
from rewardlab.runtime.mainmodule import MainRef, load_in_worker

if TYPE_CHECKING:
    import ray.data

__all__ = ["NESTED_COLUMNS", "OUTPUT_COLUMNS", "Scorer", "decode_row", "default_pool", "ray_init", "read_input",
           "row_score", "score_dataset", "score_file_ray"]

NESTED_COLUMNS = ("reward_components", "reward_details", "reward_steps", "reward_turns", "reward_tokens")
OUTPUT_COLUMNS = ("reward", "reward_status", "reward_reason", *NESTED_COLUMNS)
_OPTIONAL = NESTED_COLUMNS[1:]  # rewardlab score writes these only when the reward gives them

# internal columns of the `rewardlab score --ray` path
ROW = "__rewardlab_row"  # the input row id (`_row` of the output)
LINE = "__rewardlab_line"  # one raw JSONL line, parsed in the actor as a local run parses it
OUT = "__rewardlab_out"  # the output line (JSON) as a local run writes it; null for a malformed row
MALFORMED = "__rewardlab_malformed"  # why a row is malformed (skipped and counted, as in a local run)
STATS = "__rewardlab_stats"  # the batch's statistics (JSON), on its first row


def _nested(value: Any) -> str | None:
    return None if value is None else dump_json_line(value)[:-1].decode()


def _columns(scores: Sequence[Score]) -> dict[str, pa.Array]:
    """The output columns of `scores`, typed so that every block has the same schema."""
    return {
        "reward": pa.array([s.value for s in scores], pa.float64()),
        "reward_status": pa.array([s.status.value for s in scores], pa.string()),
        "reward_reason": pa.array([s.reason for s in scores], pa.string()),
        "reward_components": pa.array([_nested(s.components) for s in scores], pa.string()),
        "reward_details": pa.array([_nested(s.details) for s in scores], pa.string()),
        "reward_steps": pa.array([_nested(s.steps) for s in scores], pa.string()),
        "reward_turns": pa.array([_nested(s.turns) for s in scores], pa.string()),
        "reward_tokens": pa.array([_nested(None if s.tokens is None else s.tokens.model_dump())
                                   for s in scores], pa.string()),
    }


def decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A scored row as ``rewardlab score`` writes it: nested columns decoded from JSON, and the
    optional ones (details, steps, turns, tokens) left out when null."""
    out = dict(row)
    for name in NESTED_COLUMNS:
        raw = out.get(name)
        if raw is None:
            if name in _OPTIONAL:
                out.pop(name, None)
            else:
                out[name] = {}
        elif isinstance(raw, str):
            out[name] = json.loads(raw)
    return out


def row_score(row: Mapping[str, Any]) -> Score:
    """The `Score` a scored row holds (from its output columns, JSON or decoded)."""
    d = decode_row({k: row.get(k) for k in OUTPUT_COLUMNS})
    value = d["reward"]
    if value is not None and isinstance(value, float) and math.isnan(value):
        value = None
    tokens = d.get("reward_tokens")
    return Score(value=value, status=Status(d["reward_status"]), reason=d["reward_reason"],
                 components=d.get("reward_components") or {}, details=d.get("reward_details"),
                 steps=d.get("reward_steps"), turns=d.get("reward_turns"),
                 tokens=None if tokens is None else TokenScores.model_validate(tokens))


class Scorer:
    """The Ray Data UDF (a callable class, one instance per actor): a `Runtime` built from the
    options, the spec built once, and `__call__` scoring a ``pyarrow`` batch into the output
    columns (see the module doc). Never raises from `__call__`."""

    def __init__(self, spec: SpecLike | bytes, *, mapping: Mapping[str, str] | None = None,
                 cache: str | None = None, workers: int | None = None, timeout: float | None = None,
                 lines: bool = False, main: MainRef | None = None) -> None:
        # `spec` as bytes: a built spec pickled by the driver; `main`: the driver's main script,
        # imported first when the spec holds a reward defined there (as the pool's workers do)
        self.broken: str | None = None
        self.spec: Spec | None = None
        if main is not None:
            self.broken = load_in_worker(main, "a reward of the spec")
            if self.broken is None:
                _as_main()
        if self.broken is None:
            self.spec = build(pickle.loads(spec) if isinstance(spec, bytes) else spec)
        self.mapping = dict(mapping or {})
        self.lines = lines
        self.runtime = Runtime(workers=workers, cache=cache, timeout=timeout)
        atexit.register(self.runtime.close)  # the actor's process exits: no worker outlives it

    def close(self) -> None:
        """Close the Runtime: its pool's worker processes, event loop and cache (idempotent)."""
        rt = getattr(self, "runtime", None)
        if rt is not None:
            rt.close()

    def __del__(self) -> None:
        self.close()

    def __call__(self, batch: pa.Table) -> pa.Table:
        t0 = time.perf_counter()
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pandas(batch, preserve_index=False)
        try:
            if self.broken is not None:
                return self._failed(table, self.broken)
            return self._score(table, t0)
        except Exception as exc:  # noqa: BLE001 - never fail the dataset: every row of the batch fails, saying why
            return self._failed(table, f"scoring the batch failed: {type(exc).__name__}: {exc}")

    # -- one batch --------------------------------------------------------------------------------
    def _rows(self, table: pa.Table) -> tuple[list[dict[str, Any]], list[int | None], list[str | None]]:
        """Each row's data, its id and, when it cannot be read, why (raw JSONL lines are parsed
        as a local run parses them)."""
        n = table.num_rows
        ids: list[int | None] = table.column(ROW).to_pylist() if ROW in table.column_names else [None] * n
        if LINE in table.column_names:
            rows, errors = [], []
            for i, raw in zip(ids, table.column(LINE).to_pylist(), strict=True):
                parsed = _parse_line(i or 0, raw) or Row(i or 0, i, None, "blank line")
                rows.append(parsed.data or {})
                errors.append(parsed.error)
            return rows, ids, errors
        data = table.drop_columns([c for c in (ROW,) if c in table.column_names]).to_pylist()
        return data, ids, [None] * n

    def _score(self, table: pa.Table, t0: float) -> pa.Table:
        rows, ids, errors = self._rows(table)
        samples: list[Sample] = []
        where: list[int] = []
        for k, (row, i, error) in enumerate(zip(rows, ids, errors, strict=True)):
            if error is None:
                try:
                    samples.append(to_sample(row, self.mapping, row_id=None if i is None else str(i)))
                    where.append(k)
                    continue
                except ValueError as exc:
                    error = str(exc)
            errors[k] = error
        result = self.runtime.score(self.spec, samples) if samples and self.spec is not None else None
        scores: list[Score] = [Score.error(f"malformed row: {e}") for e in errors]
        if result is not None:
            for k, sc in zip(where, result.scores, strict=True):
                scores[k] = sc
        if not self.lines:
            return self._with_columns(table, scores)
        stats: dict[str, Any] = {"seconds": time.perf_counter() - t0, "cache_hits": 0, "computed": 0,
                                 "latencies": [], "cost": None}
        if result is not None:
            stats.update(cache_hits=result.stats.cache_hits, computed=result.stats.computed,
                         latencies=result.stats.latencies, cost=result.stats.cost.model_dump())
        return self._lines(rows, ids, errors, scores, stats)

    def _failed(self, table: pa.Table, reason: str) -> pa.Table:
        scores = [Score.error(reason)] * table.num_rows
        if not self.lines:
            return self._with_columns(table, scores)
        try:
            rows, ids, _ = self._rows(table)
        except Exception:  # noqa: BLE001 - the rows cannot even be read: keep their ids
            ids = table.column(ROW).to_pylist() if ROW in table.column_names else [None] * table.num_rows
            rows = [{} for _ in ids]
        stats = {"seconds": 0.0, "cache_hits": 0, "computed": 0, "latencies": [], "cost": None}
        return self._lines(rows, ids, [None] * len(ids), scores, stats)

    @staticmethod
    def _with_columns(table: pa.Table, scores: Sequence[Score]) -> pa.Table:
        kept = table.drop_columns([c for c in OUTPUT_COLUMNS if c in table.column_names])
        for name, arr in _columns(scores).items():
            kept = kept.append_column(name, arr)
        return kept

    @staticmethod
    def _lines(rows: Sequence[Mapping[str, Any]], ids: Sequence[int | None], errors: Sequence[str | None],
               scores: Sequence[Score], stats: dict[str, Any]) -> pa.Table:
        out = [None if e is not None else dump_json_line(output_row(r, int(i or 0), sc))
               for r, i, e, sc in zip(rows, ids, errors, scores, strict=True)]
        return pa.table({ROW: pa.array(ids, pa.int64()), OUT: pa.array(out, pa.binary()),
                         MALFORMED: pa.array(errors, pa.string()),
                         STATS: pa.array([json.dumps(stats)][:len(ids)] + [None] * (len(ids) - 1), pa.string())})


def default_pool(num_cpus: float | None = None, concurrency: int | None = None,
                 workers: int | None = None, cluster_cpus: float | None = None) -> tuple[float, int, int]:
    """The (num_cpus per actor, actors, pool workers per actor) a job uses.

    Defaults: 1 CPU per actor; as many actors as fit in the cluster's CPUs minus one (at least
    one), so a CPU stays free for the read and write tasks; a pool of ``max(1, round(num_cpus))``
    workers per actor, so the pool's processes use the CPUs the actor reserved."""
    cpus = float(num_cpus) if num_cpus is not None else 1.0
    if not cpus > 0:
        raise ValueError(f"num_cpus must be positive, not {num_cpus!r}")
    if concurrency is None:
        total = cluster_cpus if cluster_cpus is not None else _cluster_cpus()
        concurrency = max(1, int((total - 1) // cpus))
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")
    return cpus, concurrency, workers or max(1, round(cpus))


def _cluster_cpus() -> float:
    import ray

    if not ray.is_initialized():
        ray.init()  # as Ray Data would on first use
    return float(ray.cluster_resources().get("CPU", 1.0))


def _as_main() -> None:
    """The driver's main script, imported in this actor as ``__mp_main__`` (its guarded block not
    run), stands for ``__main__``: its functions and classes say so, so that they go to this
    actor's pool workers as the driver's go to its own (by reference to ``__main__``)."""
    main = sys.modules.get("__main__")
    for obj in list(vars(main).values()) if main is not None else []:
        if isinstance(obj, type | types.FunctionType) and obj.__module__ == "__mp_main__":
            obj.__module__ = "__main__"
        fn = getattr(obj, "fn", None)  # a RewardDef holds its function
        if isinstance(fn, types.FunctionType) and fn.__module__ == "__mp_main__":
            fn.__module__ = "__main__"


def _spec_arg(spec: SpecLike) -> tuple[SpecLike | bytes, MainRef | None]:
    """What travels to the actors: names, paths, YAML text and dicts as they are (each actor
    builds them); else the built spec pickled (rewards go by reference to their module), with
    the main script's reference when a reward is defined there (each actor imports it, as the
    pool's workers do)."""
    if isinstance(spec, Path):
        return str(spec.resolve()), None
    if isinstance(spec, str | Mapping):
        return spec, None
    try:
        blob, uses_main = mainmodule.dumps(build(spec))
    except Exception as exc:  # noqa: BLE001 - say which spec cannot travel, and what to pass instead
        raise ValueError(f"the spec cannot be sent to Ray actors ({type(exc).__name__}: {exc}); "
                         "pass a reward name, a spec file, YAML text or a dict") from None
    if not uses_main:
        return blob, None
    ref = mainmodule.reference()
    if ref is None:
        raise ValueError(mainmodule.not_importable_message("a reward of the spec"))
    return blob, ref


def _map(ds: ray.data.Dataset, spec: SpecLike, *, mapping: Mapping[str, str] | None, batch_size: int,
         num_cpus: float | None, concurrency: int | None, cache: str | Path | None, workers: int | None,
         timeout: float | None, lines: bool) -> ray.data.Dataset:
    import ray.data

    build(spec)  # a spec that cannot be built fails here, in the driver, not in every actor
    cpus, size, pool = default_pool(num_cpus, concurrency, workers)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    arg, main = _spec_arg(spec)
    kwargs = {"spec": arg, "main": main, "mapping": dict(mapping or {}),
              "cache": None if cache is None else str(cache), "workers": pool, "timeout": timeout, "lines": lines}
    return ds.map_batches(Scorer, fn_constructor_kwargs=kwargs, batch_size=batch_size, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=size), num_cpus=cpus)


def score_dataset(ds: ray.data.Dataset, spec: SpecLike, *, mapping: Mapping[str, str] | None = None,
                  prompt: str | None = None, response: str | None = None, reference: str | None = None,
                  id: str | None = None, batch_size: int = 256, num_cpus: float | None = None,
                  concurrency: int | None = None, cache: str | Path | None = None, workers: int | None = None,
                  timeout: float | None = None) -> ray.data.Dataset:
    """`ds` with the reward columns added (lazy, like every Ray Data transform; see the module
    doc for the columns, the failure rule, the resources and the cache).

    `mapping` names the field of ``prompt``, ``response``, ``reference``, ``id`` or
    ``trajectory`` by a dotted path, as ``rewardlab score --map`` does; `prompt`, `response`,
    `reference`, `id` are shorthands for the same. `cache` is a SQLite path opened on each
    actor's node; `workers` the pool size of each actor; `timeout` the per-sample timeout (s)
    of ``cpu`` and ``io`` rewards. Rows without an id field get none (``rewardlab score`` uses
    the row number, which a distributed dataset does not have)."""
    merged = dict(mapping or {})
    for key, field in (("prompt", prompt), ("response", response), ("reference", reference), ("id", id)):
        if field is not None:
            merged[key] = field
    return _map(ds, spec, mapping=merged, batch_size=batch_size, num_cpus=num_cpus, concurrency=concurrency,
                cache=cache, workers=workers, timeout=timeout, lines=False)


# -- `rewardlab score --ray`: the input read in Ray tasks, row ids as a local run gives them -------------------
def _line_ranges(path: Path, rows: int) -> list[dict[str, int]]:
    """Byte ranges of about `rows` lines each, with the number of their first line."""
    ranges: list[dict[str, int]] = []
    start, line, seen = 0, 1, 0
    pos = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            i = 0
            while True:
                j = block.find(b"\n", i)
                if j < 0:
                    break
                seen += 1
                i = j + 1
                if seen == rows:
                    end = pos + i
                    ranges.append({"start": start, "stop": end, "line": line})
                    start, line, seen = end, line + rows, 0
            pos += len(block)
    if pos > start:
        ranges.append({"start": start, "stop": pos, "line": line})
    return ranges


def _read_lines(batch: dict[str, Any], path: str, skip: DoneSet | None) -> pa.Table:
    ids: list[int] = []
    raws: list[bytes] = []
    for start, stop, line in zip(batch["start"], batch["stop"], batch["line"], strict=True):
        with open(path, "rb") as f:
            f.seek(int(start))
            data = f.read(int(stop) - int(start))
        parts = data.split(b"\n")
        if parts and parts[-1] == b"":
            parts.pop()
        for n, raw in enumerate(parts, start=int(line)):
            if raw.strip() and (skip is None or n not in skip):  # a blank line is no row, as in a local run
                ids.append(n)
                raws.append(raw)
    return pa.table({ROW: pa.array(ids, pa.int64()), LINE: pa.array(raws, pa.binary())})


def _read_parquet(batch: dict[str, Any], path: str, skip: DoneSet | None) -> pa.Table:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    tables = []
    for group, first in zip(batch["group"], batch["first"], strict=True):
        t = pf.read_row_group(int(group))
        ids = pa.array(range(int(first), int(first) + t.num_rows), pa.int64())
        t = t.append_column(ROW, ids)
        if skip is not None:
            t = t.filter(pc.invert(pa.array([i in skip for i in ids.to_pylist()], pa.bool_())))
        tables.append(t)
    return pa.concat_tables(tables)


def read_input(path: str | Path, rows_per_task: int = 2048, skip: DoneSet | None = None) -> ray.data.Dataset:
    """A JSONL or Parquet file as a dataset of rows with the ids a local run gives them (line
    numbers; row indices), read in Ray tasks (a range of lines, or one Parquet row group, per
    task); rows whose id is in `skip` are left out. Each JSONL line is kept raw and parsed by the
    scoring actor as a local run parses it. The file must be readable at `path` on the nodes that
    run the read tasks (a shared file system)."""
    import pyarrow.parquet as pq
    import ray.data

    p = Path(path).resolve()
    if not p.is_file():
        raise FileNotFoundError(f"no input file {p} (--ray reads a JSONL or Parquet file)")
    if p.suffix == ".parquet":
        try:
            meta = pq.ParquetFile(p).metadata
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"cannot read {p} as Parquet: {exc}") from None
        items, n = [], 0
        for g in range(meta.num_row_groups):
            items.append({"group": g, "first": n})
            n += meta.row_group(g).num_rows
        fn: Any = _read_parquet
    else:
        items, fn = _line_ranges(p, rows_per_task), _read_lines
    if not items:
        return ray.data.from_items([{ROW: 0, LINE: b""}]).limit(0)
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        fn, fn_args=(str(p), skip), batch_size=1, batch_format="numpy")


def score_file_ray(input_path: str | Path, spec: SpecLike, output_path: str | Path, *,
                   mapping: Mapping[str, str] | None = None, batch_size: int = 256, rows_per_task: int = 2048,
                   num_cpus: float | None = None, concurrency: int | None = None, cache: str | Path | None = None,
                   workers: int | None = None, timeout: float | None = None, overwrite: bool = False,
                   on_progress: Callable[[int], None] | None = None,
                   on_malformed: Callable[[str, str], None] | None = None) -> Summary:
    """`rewardlab.apply.scorefile.score_file` on Ray (``rewardlab score --ray``): the same output
    rows (the same `_row` ids and columns, written by the same writer, so the same resume rules),
    in the order batches finish; the same summary. Ray must be initialised (`ray_init`).

    Refused: a spec that normalises per group (groups are runs of consecutive rows, and a
    distributed job keeps no order), and an HF dataset directory (JSONL and Parquet only)."""
    built = build(spec)
    if any(isinstance(n, Grouped) for n in built.root.walk()):
        raise ValueError("this spec normalises per group of consecutive rows; --ray keeps no row order: "
                         "score it without --ray")
    p = Path(input_path)
    if p.is_dir():
        raise InputError(f"{p} is a directory; --ray reads a JSONL or Parquet file")
    if not p.exists():
        raise FileNotFoundError(f"no input file {p}")
    identity = run_identity(built, p, mapping=mapping, split=None, chunk_size=rows_per_task)
    summary = Summary()
    writer = ResumableWriter(output_path, identity, overwrite=overwrite, input_path=p)
    t0 = time.perf_counter()
    try:
        summary.resumed = len(writer.done)
        summary.rows_in = summary.resumed
        if on_progress and summary.resumed:
            on_progress(summary.resumed)
        ds = read_input(p, rows_per_task, writer.done if len(writer.done) else None)
        scored = _map(ds, built if not isinstance(spec, str | Path | Mapping) else spec, mapping=mapping,
                      batch_size=batch_size, num_cpus=num_cpus, concurrency=concurrency, cache=cache,
                      workers=workers, timeout=timeout, lines=True)
        kind = "row" if p.suffix == ".parquet" else "line"
        for batch in scored.iter_batches(batch_format="pyarrow", batch_size=None):
            rows = []
            for i, out, why, stats in zip(*(batch.column(c).to_pylist() for c in (ROW, OUT, MALFORMED, STATS)),
                                          strict=True):
                summary.rows_in += 1
                if stats is not None:
                    st = json.loads(stats)
                    summary.cache_hits += st["cache_hits"]
                    summary.computed += st["computed"]
                    summary.latencies += st["latencies"]
                    if st["cost"] is not None:
                        summary.spend(Cost(**st["cost"]))
                if out is None:
                    summary.malformed.append((f"{kind} {i}", why or ""))
                    if on_malformed:
                        on_malformed(f"{kind} {i}", why or "")
                    continue
                row = parse_json_line(out)
                rows.append(row)
                summary.add(Score(value=row["reward"], status=Status(row["reward_status"]),
                                  reason=row["reward_reason"], components=row["reward_components"]))
            writer.write(rows)
            summary.scored += len(rows)
            if on_progress:
                on_progress(batch.num_rows)
    finally:
        writer.close()
        summary.seconds = time.perf_counter() - t0
    return summary


def ray_init(address: str | None) -> bool:
    """Connect to Ray: `address` ``None`` starts a local Ray (True: the caller shuts it down);
    ``auto`` or ``ray://host:port`` connects to a running cluster."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:  # a private local Ray: no token file, no dashboard
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(include_dashboard=False, log_to_driver=False)
        return True
    ray.init(address=address, log_to_driver=False)
    return True
