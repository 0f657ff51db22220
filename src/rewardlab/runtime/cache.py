"""Embedded SQLite score cache keyed by (reward fingerprint, sample hash).

Only `ok` and `abstain` scores are stored: an `error` (timeout, outage) is retried next time.
The store uses WAL so several readers and one writer (e.g. a server and a batch job) share it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from rewardlab.core.types import Sample, Score, Status

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    fingerprint TEXT NOT NULL,
    sample_hash TEXT NOT NULL,
    score TEXT NOT NULL,
    PRIMARY KEY (fingerprint, sample_hash)
) WITHOUT ROWID;
"""
_CHUNK = 500  # stay below SQLite's bound-parameter limit


def sample_hash(sample: Sample) -> str:
    """Content hash of a sample (its `id` excluded: the same content scores the same)."""
    data = sample.model_dump_json(exclude={"id"}).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class ScoreCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        con = self._con()
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(_SCHEMA)

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def get_many(self, fingerprint: str, hashes: Sequence[str]) -> dict[str, Score]:
        """Cached scores for those of `hashes` that are present."""
        found: dict[str, Score] = {}
        con = self._con()
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), _CHUNK):
            part = unique[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            rows = con.execute(
                f"SELECT sample_hash, score FROM scores WHERE fingerprint=? "
                f"AND sample_hash IN ({marks})",
                [fingerprint, *part],
            )
            for h, blob in rows:
                found[h] = Score.model_validate_json(blob)
        return found

    def put_many(self, fingerprint: str, items: Iterable[tuple[str, Score]]) -> int:
        """Store the cacheable scores among `items`; returns how many were stored."""
        rows = [
            (fingerprint, h, s.model_dump_json(exclude_none=True))
            for h, s in items
            if s.status is not Status.error
        ]
        if rows:
            with self._write_lock:
                con = self._con()
                con.execute("BEGIN")
                con.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?)", rows)
                con.execute("COMMIT")
        return len(rows)

    def __len__(self) -> int:
        return int(self._con().execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
