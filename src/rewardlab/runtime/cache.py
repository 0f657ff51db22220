"""Embedded SQLite score cache keyed by (reward fingerprint, sample hash).

Only `ok` and `abstain` scores are stored: an `error` (timeout, outage) is retried next time.
The store uses WAL so several readers and one writer (e.g. a server and a batch job) share it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from rewardlab.core.types import Sample, Score, Status
from rewardlab.runtime import forksafe

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    fingerprint TEXT NOT NULL,
    sample_hash TEXT NOT NULL,
    score TEXT NOT NULL,
    PRIMARY KEY (fingerprint, sample_hash)
) WITHOUT ROWID;
"""
_CHUNK = 500  # stay below SQLite's bound-parameter limit


class UnhashableSample(TypeError):
    """A sample holding a value with no canonical encoding (it is scored, never cached)."""


class CacheError(RuntimeError):
    """The cache file cannot be read or written; the message names the file and the cause."""


_MAX_TOKENS = 2_000_000  # a bound on a sample's encoding (also stops self-referencing data)


def sample_hash(sample: Sample) -> str:
    """Content hash of a sample (its `id` excluded: the same content scores the same).

    The encoding is canonical and typed: dict keys are sorted, and values of different types
    never encode alike (``b"1"``, ``"1"``, ``1``, ``1.0``, ``True``, NaN and None all differ),
    so two samples share a hash only when a reward sees the same data. Any depth of nesting is
    fine. A value with no canonical encoding (an arbitrary object) raises `UnhashableSample`.
    """
    out: list[bytes] = []
    app = out.append
    for value in (sample.prompt, sample.response, sample.reference):
        if type(value) is str:
            app(b"s%d:" % len(value))
            app(value.encode("utf-8", "surrogatepass"))
        else:
            _encode(value, out)
    _encode(sample.metadata, out)
    if sample.trajectory is not None:
        _encode(sample.trajectory, out)
    return hashlib.blake2b(b"".join(out), digest_size=16).hexdigest()


def _sorted_items(d: dict[Any, Any]) -> list[tuple[Any, Any]]:
    try:
        return sorted(d.items())
    except TypeError:  # keys of mixed types: order by their own encoding
        return sorted(d.items(), key=lambda kv: b"".join(_encode(kv[0], [])))


def _flat(items: list[tuple[Any, Any]]) -> list[bytes] | None:
    """The encoding of a dict's items when keys are strings and values scalars (the common
    metadata), as `_encode` would write it; None otherwise."""
    parts: list[bytes] = []
    add = parts.append
    for k, x in items:
        if type(k) is not str:
            return None
        add(b"s%d:" % len(k))
        add(k.encode("utf-8", "surrogatepass"))
        tx = type(x)
        if tx is str:
            add(b"s%d:" % len(x))
            add(x.encode("utf-8", "surrogatepass"))
        elif tx is int:
            add(b"i%x;" % x)
        elif x is None:
            add(b"n")
        elif tx is float:
            add(b"f%s;" % x.hex().encode())
        elif tx is bool:
            add(b"T" if x else b"F")
        else:
            return None
    return parts


def _encode(value: Any, out: list[bytes]) -> list[bytes]:
    """Append the canonical encoding of `value` to `out` (iterative: no recursion limit)."""
    app = out.append
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        v = pop()
        t = type(v)
        if t is str:
            app(b"s%d:" % len(v))
            app(v.encode("utf-8", "surrogatepass"))
        elif v is None:
            app(b"n")
        elif t is int:
            app(b"i%x;" % v)
        elif t is float:
            app(b"f%s;" % v.hex().encode())
        elif t is bool:
            app(b"T" if v else b"F")
        elif t is dict:
            app(b"d%d:" % len(v))
            items = _sorted_items(v)
            flat = _flat(items)
            if flat is not None:
                out.extend(flat)
            else:
                for k, x in reversed(items):
                    push(x)
                    push(k)
        elif t is list or t is tuple:
            app((b"l%d:" if t is list else b"t%d:") % len(v))
            stack.extend(reversed(v))
        elif t is bytes:
            app(b"y%d:" % len(v))
            app(v)
        else:
            push(_convert(v))
        if len(out) > _MAX_TOKENS:
            raise UnhashableSample("the sample is too large (or refers to itself) to hash")
    return out


def _convert(v: Any) -> Any:
    """A tagged plain form of a value of another type (a tuple: tuples never come from files)."""
    t = type(v)
    name = f"{t.__module__}.{t.__qualname__}"
    if isinstance(v, BaseModel):  # messages, turns: their fields and any extra keys
        return ("model", name, dict(v), v.__pydantic_extra__ or {})
    if t.__module__ == "numpy":
        if hasattr(v, "dtype") and hasattr(v, "shape"):
            if v.dtype.kind == "O" or v.shape == ():
                return ("numpy", name, str(v.dtype), v.tolist())
            return ("numpy", name, str(v.dtype), tuple(v.shape), v.tobytes())
    if isinstance(v, set | frozenset):
        return ("set", name, tuple(sorted(b"".join(_encode(x, [])) for x in v)))
    if isinstance(v, bytearray | memoryview):
        return ("bytes", name, bytes(v))
    if isinstance(v, dt.datetime | dt.date | dt.time | dt.timedelta | Decimal | UUID | Path):
        return ("value", name, str(v))
    if isinstance(v, int | float | str | bytes | dict | list | tuple):  # subclasses
        base = next(b for b in (bool, int, float, str, bytes, dict, list, tuple) if isinstance(v, b))
        return ("subclass", name, base(v))
    raise UnhashableSample(f"cannot hash a value of type {name}")


def _problem(path: Path, exc: BaseException) -> CacheError:
    why = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in why:
        why += " (the file is corrupt, truncated, or not a rewardlab cache)"
    return CacheError(f"score cache {path}: {why}")


class ScoreCache:
    """Scores by (fingerprint, sample hash) in a SQLite file. Every failure to open, read or
    write the file raises `CacheError` naming the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        forksafe.track(self)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._con()
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            con.execute("SELECT fingerprint, sample_hash, score FROM scores LIMIT 1").fetchall()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise _problem(self.path, exc) from None

    def _after_fork_in_child(self) -> None:
        # SQLite connections must not cross a fork: the child opens its own (the parent's are
        # left alone, not closed, since closing could drop the parent's locks)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all = []

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            # one connection per thread; `close` (from any thread) closes them all
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
            with self._write_lock:
                self._all.append(con)
        return con

    def get_many(self, fingerprint: str, hashes: Sequence[str]) -> dict[str, Score]:
        """Cached scores for those of `hashes` that are present (an unreadable entry is a miss)."""
        found: dict[str, Score] = {}
        unique = list(dict.fromkeys(hashes))
        try:
            con = self._con()
            for i in range(0, len(unique), _CHUNK):
                part = unique[i : i + _CHUNK]
                marks = ",".join("?" * len(part))
                rows = con.execute(
                    f"SELECT sample_hash, score FROM scores WHERE fingerprint=? "
                    f"AND sample_hash IN ({marks})",
                    [fingerprint, *part],
                ).fetchall()
                for h, blob in rows:
                    try:
                        found[h] = Score.model_validate_json(blob)
                    except ValidationError:
                        continue  # recomputed, and replaced when stored
        except (sqlite3.Error, OSError) as exc:
            raise _problem(self.path, exc) from None
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
                try:
                    con = self._con()
                    con.execute("BEGIN")
                    try:
                        con.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?)", rows)
                        con.execute("COMMIT")
                    except BaseException:
                        if con.in_transaction:
                            con.execute("ROLLBACK")
                        raise
                except (sqlite3.Error, OSError) as exc:
                    raise _problem(self.path, exc) from None
        return len(rows)

    def __len__(self) -> int:
        try:
            return int(self._con().execute("SELECT COUNT(*) FROM scores").fetchone()[0])
        except (sqlite3.Error, OSError) as exc:
            raise _problem(self.path, exc) from None

    def close(self) -> None:
        """Close every thread's connection (a thread using the cache afterwards reopens)."""
        with self._write_lock:
            cons, self._all = self._all, []
        self._local = threading.local()
        for con in cons:
            con.close()
