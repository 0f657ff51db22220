"""Reading rollout files (JSONL, Parquet, an HF dataset saved with `save_to_disk`) and
writing resumable JSONL output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


def parse_json_line(raw: bytes) -> Any:
    """One JSON value (orjson; the standard parser for what orjson refuses but Python's JSON
    accepts, such as NaN literals and integers beyond 64 bits). Raises JSONDecodeError."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dump_json_line(obj: Any) -> bytes:
    """One JSON line (UTF-8, unescaped; unknown types as their str)."""
    try:
        return orjson.dumps(obj, default=str, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # e.g. integers beyond 64 bits
        return (json.dumps(obj, ensure_ascii=False, default=str) + "\n").encode()


@dataclass
class Row:
    """One input row: its stable id (`index`), where it came from, and the data or the error."""

    index: int
    line: int | None
    data: dict[str, Any] | None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"row {self.index}"


def _jsonl(path: Path) -> Iterator[Row]:
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                data = parse_json_line(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield Row(n, n, None, f"invalid JSON: {exc}")
                continue
            if not isinstance(data, dict):
                yield Row(n, n, None, f"expected a JSON object, got {type(data).__name__}")
                continue
            yield Row(n, n, data)


def _arrow_batches(batches: Iterator[Any]) -> Iterator[Row]:
    i = 0
    for batch in batches:
        for data in batch.to_pylist():
            yield Row(i, None, data)
            i += 1


def _parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    return _arrow_batches(pq.ParquetFile(path).iter_batches(batch_size=4096))


def _hf_disk(path: Path, split: str | None) -> Iterator[Row]:
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

    return _arrow_batches(batches())


def read_rows(path: str | Path, split: str | None = None) -> Iterator[Row]:
    """Rows of a JSONL file, a Parquet file, or a dataset directory saved by HF `datasets`."""
    p = Path(path)
    if p.is_dir():
        return _hf_disk(p, split)
    if p.suffix == ".parquet":
        return _parquet(p)
    if not p.exists():
        raise FileNotFoundError(f"no input file {p}")
    return _jsonl(p)


def count_rows(path: str | Path) -> int | None:
    """The number of rows, cheaply, when it can be known (for the progress bar)."""
    p = Path(path)
    if p.is_dir():
        return None
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(p).metadata.num_rows)
    n = 0
    with p.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


class ResumableWriter:
    """Appends JSONL rows, each carrying its input row id in `_row`.

    On open, a partly written last line (from a killed run) is cut off and the ids already
    written are collected, so the caller skips them: every row ends up exactly once.
    """

    ID = "_row"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: set[int] = set()
        if self.path.exists():
            self._recover()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _recover(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with self.path.open("r+b") as f:
                f.truncate(end)
        for raw in data[:end].splitlines():
            if raw.strip():
                self.done.add(int(json.loads(raw)[self.ID]))

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Write rows in one call and make them durable before returning."""
        if not rows:
            return
        buf = memoryview(b"".join(dump_json_line(r) for r in rows))
        while buf:
            buf = buf[os.write(self._fd, buf):]
        os.fsync(self._fd)
        self.done.update(int(r[self.ID]) for r in rows)

    def close(self) -> None:
        os.close(self._fd)
