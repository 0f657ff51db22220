"""Resumable JSONL output that knows which run wrote it.

An output ``out.jsonl`` has a sidecar ``out.jsonl.meta.json`` written (atomically, by rename)
before its first row. The sidecar holds

- the run's identity: the spec fingerprint, the input's identity, the field mapping and split;
  a resume with a different identity is refused, so one file never mixes two runs;
- the committed length: rows are appended a chunk at a time, made durable (with their ids,
  8 bytes each, in ``out.jsonl.ids``, so a resume reads the ids without parsing rows), and only
  then is the sidecar's ``committed_bytes`` moved past them. On resume everything beyond it (a chunk
  whose write was cut short) is cut off and scored again as a whole, so each row ends up
  exactly once and a chunk's rows (a group, for group transforms) are never split by a resume.

While a run writes, it holds an exclusive ``flock`` on the output file: a second run to the same
output is refused. The lock belongs to the open file, so it goes away with the process, even
after ``kill -9``; no stale lock is ever left.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from rewardlab.io.jsonsafe import dump_json_line

FORMAT = "rewardlab-score-output"
VERSION = 1
_ID_PREFIX = re.compile(rb'\{"_row":(\d+)[,}]')
_MAX_ID = 1 << 36


class OutputError(Exception):
    """The output cannot be used as asked; the message says why and what to do."""


class OutputInUseError(OutputError):
    """Another run holds the output's lock."""


class OutputMismatchError(OutputError):
    """The output was written by a run with another identity."""


class OutputWriteError(OutputError):
    """Writing the output failed (disk full, permissions); committed rows are kept."""


class DoneSet:
    """The ids of rows already in the output, one bit per id (ids are dense row numbers), so
    memory is an eighth of a byte per input row whatever the size of the rows."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count = 0

    def add(self, i: int) -> None:
        byte, bit = i >> 3, 1 << (i & 7)
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        if not self._bits[byte] & bit:
            self._bits[byte] |= bit
            self.count += 1

    def update(self, ids: Iterable[int]) -> None:
        bits, added = self._bits, 0
        for i in ids:
            byte, bit = i >> 3, 1 << (i & 7)
            if byte >= len(bits):
                bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))
            if not bits[byte] & bit:
                bits[byte] |= bit
                added += 1
        self.count += added

    def __contains__(self, i: object) -> bool:
        if not isinstance(i, int) or i < 0:
            return False
        byte = i >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (i & 7)))

    def all_in(self, start: int, stop: int) -> bool:
        """True when every id in ``range(start, stop)`` is present."""
        if start >= stop:
            return True
        if start < 0 or (stop - 1) >> 3 >= len(self._bits):
            return False
        b0, b1 = (start + 7) >> 3, stop >> 3  # whole bytes inside the range
        if b0 >= b1:
            return all(i in self for i in range(start, stop))
        return (self._bits.count(255, b0, b1) == b1 - b0
                and all(i in self for i in range(start, b0 << 3))
                and all(i in self for i in range(b1 << 3, stop)))

    def __len__(self) -> int:
        return self.count


def _sample_digest(path: Path, h: Any) -> int:
    """Feed `h` the first and last MiB of a file and 16 blocks of 64 KiB spread between them;
    returns the size. Constant cost whatever the file's size."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= 4 << 20:
            h.update(f.read())
            return size
        h.update(f.read(1 << 20))
        for k in range(1, 17):
            f.seek(k * (size - (2 << 20)) // 17 + (1 << 20))
            h.update(f.read(1 << 16))
        f.seek(size - (1 << 20))
        h.update(f.read())
    return size


def input_identity(path: str | Path) -> dict[str, Any]:
    """What identifies an input on resume: its size and a digest of sampled content.

    The modification time is left out on purpose: copying, moving or checking out a file
    changes it without changing a row, and would refuse an honest resume. Sampling (first and
    last MiB, 16 blocks between) keeps the check a few milliseconds for any size; a different
    file is caught by its size or its first rows, an edit that keeps the size only when it falls
    in a sampled block. A dataset directory is identified by its files' names, sizes and samples.
    """
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        size = 0
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(str(f.relative_to(p)).encode() + b"\0")
            size += _sample_digest(f, h)
    else:
        size = _sample_digest(p, h)
    return {"path": str(p.resolve()), "size": size, "digest": h.hexdigest()[:32]}


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two run identities, in words (empty when they match)."""
    out = []
    if old.get("spec") != new.get("spec"):
        out.append(f"reward/spec differs (output: {old.get('reward')!r}, fingerprint {old.get('spec')}; "
                   f"this run: {new.get('reward')!r}, fingerprint {new.get('spec')})")
    oi, ni = old.get("input") or {}, new.get("input") or {}
    if (oi.get("size"), oi.get("digest")) != (ni.get("size"), ni.get("digest")):
        out.append(f"input differs (output: {oi.get('path')}, {oi.get('size')} bytes; "
                   f"this run: {ni.get('path')}, {ni.get('size')} bytes)")
    for key in ("mapping", "split", "chunk_size"):
        if old.get(key) != new.get(key):
            out.append(f"{key} differs (output: {old.get(key)!r}; this run: {new.get(key)!r})")
    return out


def _looks_like_output(path: Path) -> bool:
    """True when the file's first line is a scored row (this version's or an earlier one's)."""
    with path.open("rb") as f:
        first = f.readline(1 << 24)
    try:
        row = orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return isinstance(row, dict) and "_row" in row and "reward_status" in row


class ResumableWriter:
    """Appends rows (each with its input row id in `_row`) to a JSONL output, resuming it.

    `identity` describes the run (see `describe_differences`). Opening checks, before anything
    is written: that the path is not a directory, not the input, and either absent, empty or
    an output of this module; then takes the lock, compares identities (a mismatch raises
    `OutputMismatchError` unless `overwrite`) and collects the ids already committed in `done`.
    """

    ID = "_row"

    def __init__(self, path: str | Path, identity: Mapping[str, Any], *, overwrite: bool = False,
                 input_path: str | Path | None = None) -> None:
        self.path = Path(path)
        if self.path.is_dir() or not self.path.name:
            raise OutputError(f"output {self.path} is a directory; name the output JSONL file")
        self.meta_path = self.path.with_name(self.path.name + ".meta.json")
        self.ids_path = self.path.with_name(self.path.name + ".ids")
        self.identity = dict(identity)
        self.done = DoneSet()
        self.committed = 0
        self.rows = 0
        self._fd = self._ids_fd = -1
        self._spot: dict[int, int] = {}  # line index -> row id, sampled from the rows
        try:
            self._check_path(input_path, overwrite)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputInUseError(
                    f"another rewardlab run is writing {self.path} (it holds the file's lock); "
                    "wait for it to finish or choose another output") from None
            self._open_locked(overwrite)
        except OSError as exc:
            self.close()
            raise OutputWriteError(f"cannot open output {self.path}: {_why(exc)}") from exc
        except BaseException:
            self.close()
            raise

    # -- opening --------------------------------------------------------------------------------
    def _check_path(self, input_path: str | Path | None, overwrite: bool) -> None:
        p = self.path
        if p.is_dir():
            raise OutputError(f"output {p} is a directory; name the output JSONL file")
        if not p.exists():
            return
        if not p.is_file():
            raise OutputError(f"output {p} is not a regular file")
        if input_path is not None and Path(input_path).exists() and p.samefile(input_path):
            raise OutputError(f"output {p} is the input file; choose another output path")
        if p.stat().st_size == 0 or self.meta_path.exists():
            return
        if overwrite and _looks_like_output(p):
            return
        raise OutputError(
            f"{p} exists and is not a rewardlab output (no {self.meta_path.name} beside it); "
            "refusing to write to it: choose another output path or remove the file")

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            raw = self.meta_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            meta = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise OutputError(f"{self.meta_path} is not valid JSON ({exc}); use --overwrite to "
                              "start the output over") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise OutputError(f"{self.meta_path} is not a rewardlab output record; use --overwrite "
                              "to start the output over")
        return meta

    def _open_locked(self, overwrite: bool) -> None:
        size = os.fstat(self._fd).st_size
        try:
            meta = self._read_meta()
        except OutputError:
            if not overwrite:
                raise
            meta = None
        self._ids_fd = os.open(self.ids_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if meta is not None and size and not overwrite:
            diffs = describe_differences(meta.get("identity") or {}, self.identity)
            if diffs:
                raise OutputMismatchError(
                    f"{self.path} was written by another run: " + "; ".join(diffs)
                    + ". Resuming would mix the two; use --overwrite to start over, or another output")
            committed = int(meta.get("committed_bytes", 0))
            rows = int(meta.get("committed_rows", 0))
            if size < committed:
                raise OutputError(
                    f"{self.path} is shorter ({size} bytes) than its committed rows ({committed} bytes): "
                    "it was changed outside rewardlab; use --overwrite to start over")
            if size > committed:  # a chunk whose write was cut short: scored again as a whole
                os.ftruncate(self._fd, committed)
            self.committed = committed
            if os.fstat(self._ids_fd).st_size >= rows * 8:
                self._check_lines(rows)
                self._load_ids(rows)
            else:  # the ids record is missing or short: read the ids from the rows themselves
                self._scan()
                if self.rows != rows:
                    raise OutputError(
                        f"{self.path} holds {self.rows} rows where {rows} were committed: "
                        "it was changed outside rewardlab; use --overwrite to start over")
                self._rewrite_ids()
            os.ftruncate(self._ids_fd, self.rows * 8)
            return
        if size:
            os.ftruncate(self._fd, 0)
        os.ftruncate(self._ids_fd, 0)
        self._write_meta(sync_dir=True)

    def _blocks(self) -> Iterator[bytes]:
        """The committed bytes as complete lines, 1 MiB at a time (memory does not grow with
        the file)."""
        pos, tail = 0, b""
        while pos < self.committed:
            block = os.pread(self._fd, min(1 << 20, self.committed - pos), pos)
            if not block:
                break
            pos += len(block)
            block = tail + block
            end = block.rfind(b"\n") + 1
            tail = block[end:]
            if end:
                yield block[:end]
        if tail.strip():
            raise OutputError(f"{self.path}: the last committed row has no line end; the file was "
                              "changed outside rewardlab: use --overwrite to start over")

    def _check_lines(self, rows: int) -> None:
        """Check, at the speed of a byte search, that the committed bytes are `rows` lines each
        starting as a row of this module does; otherwise find and name the damaged line."""
        lines = 0
        for block in self._blocks():
            m = _ID_PREFIX.match(block)
            if m is None:
                lines = -1
                break
            self._spot[lines] = int(m.group(1))  # the first id of each block, to check the ids record
            lines += block.count(b'\n{"_row":') + 1  # no JSON line holds a raw line end: one per row
        if lines != rows:
            self._scan()  # names the damaged line, if one is
            raise OutputError(f"{self.path} holds {self.rows} rows where {rows} were committed: "
                              "it was changed outside rewardlab; use --overwrite to start over")

    def _load_ids(self, rows: int) -> None:
        pos, want = 0, rows * 8
        while pos < want:
            ids = array("q")
            ids.frombytes(os.pread(self._ids_fd, min(1 << 20, want - pos), pos))
            if not ids:
                break
            first = pos // 8
            for k, expect in self._spot.items():
                if first <= k < first + len(ids) and ids[k - first] != expect:
                    raise OutputError(
                        f"{self.ids_path} does not match {self.path} (line {k + 1} holds row {expect}, "
                        f"the record says {ids[k - first]}); remove {self.ids_path.name} to rebuild it")
            if min(ids) < 0 or max(ids) >= _MAX_ID:
                raise OutputError(f"{self.ids_path} holds an implausible row number; remove it to rebuild it")
            self.done.update(ids)
            pos += len(ids) * 8
        self.rows = rows

    def _rewrite_ids(self) -> None:
        os.ftruncate(self._ids_fd, 0)
        pos = 0
        for i in range(0, len(self.done._bits) * 8, 1 << 16):
            ids = array("q", (j for j in range(i, i + (1 << 16)) if j in self.done))
            os.pwrite(self._ids_fd, ids.tobytes(), pos)
            pos += len(ids) * 8

    def _scan(self) -> None:
        """Collect the committed ids from the rows themselves."""
        line_no = 0
        for block in self._blocks():
            for raw in block.split(b"\n")[:-1]:
                line_no += 1
                self._note(raw, line_no)

    def _add(self, i: int, line_no: int) -> None:
        if not 0 <= i < _MAX_ID:
            where = f"line {line_no}" if line_no else f"its ids record {self.ids_path.name}"
            raise OutputError(f"{self.path} {where}: {self.ID!r} {i} is not a plausible row number")
        self.done.add(i)

    def _note(self, raw: bytes, line_no: int) -> None:
        m = _ID_PREFIX.match(raw)
        if m is not None:
            i = int(m.group(1))
        else:
            if not raw.strip():
                return
            try:
                row = orjson.loads(raw)
                i = row[self.ID]
            except orjson.JSONDecodeError as exc:
                raise OutputError(f"{self.path} line {line_no}: not a JSON row ({exc}); repair or "
                                  "remove the line, or use --overwrite to start over") from None
            except (TypeError, KeyError):
                raise OutputError(f"{self.path} line {line_no}: a row without {self.ID!r}; repair or "
                                  "remove the line, or use --overwrite to start over") from None
            if not isinstance(i, int) or isinstance(i, bool):
                raise OutputError(f"{self.path} line {line_no}: {self.ID!r} is not a row number")
        self._add(i, line_no)
        self.rows += 1

    def _write_meta(self, sync_dir: bool = False) -> None:
        meta = {"format": FORMAT, "version": VERSION, "identity": self.identity,
                "committed_bytes": self.committed, "committed_rows": self.rows}
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.meta_path)
        if sync_dir:
            dfd = os.open(self.meta_path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    # -- writing --------------------------------------------------------------------------------
    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows as one chunk, make them durable, then commit them; a chunk cut short
        (killed, disk full) is not committed and is scored again on resume."""
        if not rows:
            return
        buf = b"".join(_dump_row(r) for r in rows)
        ids = array("q", (int(r[self.ID]) for r in rows))
        try:
            _write_all(self._fd, buf)
            os.fsync(self._fd)
            raw_ids = ids.tobytes()
            if os.pwrite(self._ids_fd, raw_ids, self.rows * 8) != len(raw_ids):
                raise OSError(errno.ENOSPC, "short write of the ids record")
            os.fsync(self._ids_fd)
            self.committed += len(buf)
            self.rows += len(rows)
            self._write_meta()
        except OSError as exc:
            raise OutputWriteError(
                f"cannot write {self.path}: {_why(exc)}; the {self.rows} rows committed before are kept: "
                "fix the cause and rerun the same command to resume") from exc
        self.done.update(ids)

    def close(self) -> None:
        """Release the lock and the files (idempotent)."""
        if self._ids_fd >= 0:
            os.close(self._ids_fd)
            self._ids_fd = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _dump_row(row: dict[str, Any]) -> bytes:
    """A row's JSON line; should it still fail, an error row in its place (one bad value costs
    at most its row, never the run)."""
    try:
        return dump_json_line(row)
    except Exception as exc:  # noqa: BLE001 - the row is kept, marked as an error
        return dump_json_line({ResumableWriter.ID: row.get(ResumableWriter.ID), "reward": None,
                               "reward_status": "error",
                               "reward_reason": f"output row could not be written: {type(exc).__name__}: {exc}"})


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n == 0:
            raise OSError(errno.EIO, "write returned 0 bytes")
        view = view[n:]
