"""Reading rollout files (JSONL, Parquet, an HF dataset saved with `save_to_disk`).

Resumable output is in `rewardlab.io.output`; JSON lines that never fail in `rewardlab.io.jsonsafe`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rewardlab.io.jsonsafe import dump_json_line
from rewardlab.io.output import DoneSet

__all__ = ["Row", "count_rows", "dump_json_line", "parse_json_line", "read_rows"]


def parse_json_line(raw: bytes) -> Any:
    """One JSON value (orjson; the standard parser for what orjson refuses but Python's JSON
    accepts, such as NaN literals and integers beyond 64 bits). Raises JSONDecodeError."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


class InputError(ValueError):
    """An input that cannot be read as the format it claims; the message names the file."""


@dataclass
class Row:
    """One input row: its stable id (`index`), where it came from, and the data or the error.

    A row with `skipped` > 0 stands for that many rows, from `index` on, that were asked to be
    skipped (by id): they carry no data and were not parsed."""

    index: int
    line: int | None
    data: dict[str, Any] | None
    error: str | None = None
    skipped: int = 0

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"row {self.index}"


def _parse_line(n: int, raw: bytes) -> Row | None:
    """Line `n` as a row (None for a blank line)."""
    if not raw.strip():
        return None
    try:
        data = parse_json_line(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Row(n, n, None, f"invalid JSON: {exc}")
    except RecursionError:
        return Row(n, n, None, "invalid JSON: nested too deeply")
    if not isinstance(data, dict):
        return Row(n, n, None, f"expected a JSON object, got {type(data).__name__}")
    return Row(n, n, data)


def _jsonl(path: Path, skip: DoneSet | None) -> Iterator[Row]:
    if skip is not None:
        yield from _jsonl_skipping(path, skip)
        return
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            row = _parse_line(n, raw)
            if row is not None:
                yield row


def _jsonl_skipping(path: Path, skip: DoneSet) -> Iterator[Row]:
    """Like `_jsonl`, a block of lines at a time: a block whose lines are all in `skip` is one
    marker row, neither split into lines nor parsed."""
    n = 0  # lines before this block
    tail = b""
    with path.open("rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            block = tail + block
            end = block.rfind(b"\n") + 1
            if end == 0:
                tail = block
                continue
            tail = block[end:]
            k = block.count(b"\n", 0, end)
            if skip.all_in(n + 1, n + k + 1):
                yield Row(n + 1, n + 1, None, skipped=k)
                n += k
                continue
            for raw in block[:end].split(b"\n")[:-1]:
                n += 1
                if n in skip:
                    yield Row(n, n, None, skipped=1)
                    continue
                row = _parse_line(n, raw)
                if row is not None:
                    yield row
    if tail:
        n += 1
        if n in skip:
            yield Row(n, n, None, skipped=1)
        else:
            row = _parse_line(n, tail)
            if row is not None:
                yield row


def _arrow_batches(batches: Iterator[Any], skip: DoneSet | None) -> Iterator[Row]:
    i = 0
    for batch in batches:
        n = batch.num_rows
        if skip is not None and skip.all_in(i, i + n):  # a batch already done is never converted
            yield Row(i, None, None, skipped=n)
            i += n
            continue
        for data in batch.to_pylist():
            if skip is not None and i in skip:
                yield Row(i, None, None, skipped=1)
            else:
                yield Row(i, None, data)
            i += 1


def _parquet(path: Path, skip: DoneSet | None) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read {path} as Parquet: {exc}") from None

    def batches() -> Iterator[Any]:
        try:
            yield from pf.iter_batches(batch_size=4096)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"cannot read {path} as Parquet: {exc}") from None

    return _arrow_batches(batches(), skip)


def _hf_disk(path: Path, split: str | None, skip: DoneSet | None) -> Iterator[Row]:
    import pyarrow as pa

    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        chosen = split or ("train" if "train" in splits else splits[0])
        if chosen not in splits:
            raise ValueError(f"no split {chosen!r} in {path} (splits: {', '.join(splits)})")
        path = path / chosen
    state = json.loads((path / "state.json").read_text())
    files = [path / f["filename"] for f in state["_data_files"]]

    def batches() -> Iterator[Any]:
        for f in files:
            with pa.memory_map(str(f)) as src:
                reader = pa.ipc.open_stream(src)
                yield from reader

    return _arrow_batches(batches(), skip)


def read_rows(path: str | Path, split: str | None = None,
              skip: DoneSet | None = None) -> Iterator[Row]:
    """Rows of a JSONL file, a Parquet file, or a dataset directory saved by HF `datasets`.

    Rows whose id is in `skip` come back as `skipped` rows, without being parsed."""
    p = Path(path)
    if p.is_dir():
        if not (p / "dataset_dict.json").exists() and not (p / "state.json").exists():
            raise InputError(f"{p} is a directory but not a dataset saved by HF datasets "
                             "(no state.json or dataset_dict.json)")
        return _hf_disk(p, split, skip)
    if not p.exists():
        raise FileNotFoundError(f"no input file {p}")
    if p.suffix == ".parquet":
        return _parquet(p, skip)
    return _jsonl(p, skip)


def count_rows(path: str | Path) -> int | None:
    """The number of rows, cheaply, when it can be known (for the progress bar)."""
    p = Path(path)
    if p.is_dir():
        return None
    if p.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(p).metadata.num_rows)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"cannot read {p} as Parquet: {exc}") from None
    n = 0
    with p.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n
