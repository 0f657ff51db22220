"""Scoring a rollout file: streamed in chunks, cached, resumable, with a summary.

Output rows are the input rows plus these columns:

- ``_row`` (first): the input row id (the line number for JSONL, the row index otherwise);
- ``reward``: the score value, ``null`` when the status is not ``ok``;
- ``reward_status``: ``ok`` / ``abstain`` / ``error``;
- ``reward_reason``: why it is not ``ok`` (or notes such as a fallback), else ``null``;
- ``reward_components``: the named parts of a composite reward;
- ``reward_details``, ``reward_steps``, ``reward_turns``, ``reward_tokens``: present only when
  the reward gives them.

Values without a JSON form (bytes, numpy arrays, other objects) are written as described in
`rewardlab.io.jsonsafe`. The output carries the run's identity in a sidecar
(`rewardlab.io.output`): a resume continues only the run that wrote it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rewardlab.api import SpecLike, build
from rewardlab.apply.summary import Summary
from rewardlab.compose.nodes import Node
from rewardlab.compose.transforms import Grouped, group_key
from rewardlab.core.reward import fingerprint_of
from rewardlab.core.types import Sample, Score
from rewardlab.io.files import Row, read_rows
from rewardlab.io.output import ResumableWriter, input_identity
from rewardlab.io.rows import to_sample
from rewardlab.runtime.engine import Runtime

_PROGRESS_EVERY = 4096


def output_row(row: Mapping[str, Any], index: int, score: Score) -> dict[str, Any]:
    """An input row with the documented reward columns added (`_row` first)."""
    out: dict[str, Any] = {ResumableWriter.ID: index}
    out.update(row)
    out[ResumableWriter.ID] = index
    out["reward"] = score.value
    out["reward_status"] = score.status.value
    out["reward_reason"] = score.reason
    out["reward_components"] = score.components
    for name in ("details", "steps", "turns"):
        val = getattr(score, name)
        if val is not None:
            out[f"reward_{name}"] = val
    if score.tokens is not None:
        out["reward_tokens"] = score.tokens.model_dump()
    return out


def _node_identity(node: Node) -> list[Any]:
    """What, beyond the fingerprints, changes a node's output: labels, weights, policies."""
    return [[type(n).__name__, n.label, n.weight, repr(getattr(n, "policies", None))] for n in node.walk()]


def run_identity(spec: SpecLike, input_path: str | Path, *, mapping: Mapping[str, str] | None = None,
                 split: str | None = None, chunk_size: int | None = None) -> dict[str, Any]:
    """The identity an output records: the spec fingerprint (rewards, parameters, structure,
    labels and policies), the input (`input_identity`), the mapping and split; with a group
    transform also the chunk size, as groups are formed within chunks."""
    built = build(spec)
    ident: dict[str, Any] = {
        "reward": built.root.label,
        "spec": fingerprint_of([built.fingerprint, repr(built.policies), _node_identity(built.root)]),
        "input": input_identity(input_path),
        "mapping": dict(mapping or {}),
        "split": split,
    }
    if any(isinstance(n, Grouped) for n in built.root.walk()):
        ident["chunk_size"] = chunk_size
    return ident


def _chunks(rows: Iterable[tuple[Row, Sample]], size: int,
            key: Callable[[Sample], str] | None) -> Iterator[list[tuple[Row, Sample]]]:
    """Chunks of about `size`; with a `key`, a run of equal keys is never split."""
    chunk: list[tuple[Row, Sample]] = []
    last: str | None = None
    for item in rows:
        k = key(item[1]) if key else None
        if len(chunk) >= size and (key is None or k != last):
            yield chunk
            chunk = []
        chunk.append(item)
        last = k
    if chunk:
        yield chunk


def score_file(
    input_path: str | Path,
    spec: SpecLike,
    output_path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    split: str | None = None,
    runtime: Runtime | None = None,
    chunk_size: int = 2048,
    overwrite: bool = False,
    on_progress: Callable[[int], None] | None = None,
    on_malformed: Callable[[str, str], None] | None = None,
) -> Summary:
    """Score every row of `input_path` into `output_path` (JSONL), resuming if it exists.

    A resume continues only the run that wrote the output (same spec, input, mapping and split;
    `rewardlab.io.output.OutputMismatchError` otherwise); `overwrite` starts it over. Malformed rows
    are reported through `on_malformed(where, why)`, counted and skipped. With a spec that
    normalises per group (e.g. `group_zscore`), a group is the run of consecutive rows sharing
    the key: keep a group's rows together in the file. A group's values are the same whether
    or not the run was interrupted and resumed.
    """
    built = build(spec)
    summary = Summary()
    rows = read_rows(input_path, split)  # fails on a missing or unreadable input before the output is touched
    identity = run_identity(built, input_path, mapping=mapping, split=split, chunk_size=chunk_size)
    writer = ResumableWriter(output_path, identity, overwrite=overwrite, input_path=input_path)
    rows = read_rows(input_path, split, skip=writer.done) if writer.done else rows
    own_runtime = runtime is None
    rt = runtime or Runtime()
    group_by: Callable[[Sample], str] | None = None
    grouped = [n for n in built.root.walk() if isinstance(n, Grouped)]
    if grouped:
        by = grouped[0].by
        group_by = lambda s: group_key(s, by)  # noqa: E731
    t0 = time.perf_counter()

    pending = 0  # progress of skipped rows, reported in batches

    def parsed() -> Iterator[tuple[Row, Sample]]:
        nonlocal pending
        for row in rows:
            if row.skipped:
                summary.rows_in += row.skipped
                summary.resumed += row.skipped
                pending += row.skipped
                if on_progress and pending >= _PROGRESS_EVERY:
                    on_progress(pending)
                    pending = 0
                continue
            summary.rows_in += 1
            if row.error is None:
                try:
                    yield row, to_sample(row.data or {}, mapping, row_id=str(row.index))
                    continue
                except ValueError as exc:
                    row.error = str(exc)
            summary.malformed.append((row.where, row.error or ""))
            if on_malformed:
                on_malformed(row.where, row.error or "")
            pending += 1
        if on_progress and pending:
            on_progress(pending)
            pending = 0

    try:
        for chunk in _chunks(parsed(), chunk_size, group_by):
            if on_progress and pending:
                on_progress(pending)
                pending = 0
            result = rt.score(built, [s for _, s in chunk])  # this call's statistics only
            scores = result.scores
            summary.cache_hits += result.stats.cache_hits
            summary.computed += result.stats.computed
            summary.latencies += result.stats.latencies
            summary.spend(result.stats.cost)
            writer.write([output_row(r.data or {}, r.index, sc)
                          for (r, _), sc in zip(chunk, scores, strict=True)])
            for sc in scores:
                summary.add(sc)
            summary.scored += len(chunk)
            if on_progress:
                on_progress(len(chunk))
    finally:
        writer.close()
        summary.seconds = time.perf_counter() - t0
        if own_runtime:
            rt.close()
    return summary

