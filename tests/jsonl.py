"""Writing and reading the JSONL files the CLI tests score."""

from __future__ import annotations

import json
from pathlib import Path


def write_jsonl(path: Path, rows: list[object]) -> None:
    """One line per row: a string as it is (to write malformed lines), anything else as JSON."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
