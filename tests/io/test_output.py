"""The resumable output: identity sidecar, commit of whole chunks, lock, compact done ids."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rewardlab.io.output import (
    DoneSet,
    OutputError,
    OutputInUseError,
    OutputMismatchError,
    ResumableWriter,
    input_identity,
)

IDENT = {"reward": "r", "spec": "s1", "input": {"size": 1, "digest": "d"}, "mapping": {}, "split": None}


def test_sidecar_is_written_before_the_first_row(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    w = ResumableWriter(out, IDENT)
    meta = json.loads((tmp_path / "o.jsonl.meta.json").read_text())
    assert meta["identity"] == IDENT and meta["committed_bytes"] == 0 and out.read_bytes() == b""
    w.write([{"_row": 1, "v": 1}, {"_row": 2, "v": 2}])
    w.close()
    meta = json.loads((tmp_path / "o.jsonl.meta.json").read_text())
    assert meta["committed_bytes"] == out.stat().st_size and meta["committed_rows"] == 2


def test_uncommitted_tail_is_cut_and_committed_ids_collected(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    w = ResumableWriter(out, IDENT)
    w.write([{"_row": i} for i in range(1, 6)])
    w.close()
    with out.open("ab") as f:  # a chunk written but never committed (killed before its commit)
        f.write(b'{"_row":6}\n{"_row":7}\n{"_ro')
    w = ResumableWriter(out, IDENT)
    assert sorted(i for i in range(10) if i in w.done) == [1, 2, 3, 4, 5] and len(w.done) == 5
    w.close()
    assert out.read_bytes().count(b"\n") == 5


def test_identity_mismatch_and_lock(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    w = ResumableWriter(out, IDENT)
    with pytest.raises(OutputInUseError):
        ResumableWriter(out, IDENT)
    w.write([{"_row": 1}])
    w.close()
    with pytest.raises(OutputMismatchError, match="reward/spec differs"):
        ResumableWriter(out, {**IDENT, "spec": "s2"})
    with pytest.raises(OutputMismatchError, match="split differs"):
        ResumableWriter(out, {**IDENT, "split": "test"})
    ResumableWriter(out, {**IDENT, "spec": "s2"}, overwrite=True).close()
    assert out.read_bytes() == b""


def test_rows_removed_outside_are_detected(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    w = ResumableWriter(out, IDENT)
    w.write([{"_row": i} for i in range(1, 4)])
    w.close()
    out.write_bytes(out.read_bytes()[:-11])
    with pytest.raises(OutputError, match="shorter"):
        ResumableWriter(out, IDENT)


def test_done_set_is_compact() -> None:
    d = DoneSet()
    for i in range(0, 1_000_000, 3):
        d.add(i)
    d.add(3)
    assert len(d) == 333_334 and 999_999 in d and 1 not in d and -1 not in d and 10**9 not in d
    assert d.all_in(0, 1) and not d.all_in(0, 3)
    assert len(d._bits) <= 1_000_000 // 8 * 2 + 1


def test_input_identity_ignores_path_and_time_but_not_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"x" * (9 << 20))
    b.write_bytes(a.read_bytes())
    os.utime(b, (1, 1))
    ia, ib = input_identity(a), input_identity(b)
    assert (ia["size"], ia["digest"]) == (ib["size"], ib["digest"])
    data = bytearray(a.read_bytes())
    data[-10] = ord("y")
    b.write_bytes(bytes(data))
    assert input_identity(b)["digest"] != ia["digest"]


def test_overwrite_replaces_an_output_of_an_earlier_version_only(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier.jsonl"  # no sidecar; `_row` last, as earlier versions wrote it
    earlier.write_text('{"prompt": "p", "reward": 1.0, "reward_status": "ok", "_row": 1}\n')
    with pytest.raises(OutputError, match="not a rewardlab output"):
        ResumableWriter(earlier, IDENT)
    ResumableWriter(earlier, IDENT, overwrite=True).close()
    assert earlier.read_bytes() == b""
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "p", "completion": "c"}\n')
    with pytest.raises(OutputError, match="not a rewardlab output"):
        ResumableWriter(data, IDENT, overwrite=True)
    assert data.read_text() == '{"prompt": "p", "completion": "c"}\n'


def test_ids_record_lost_or_stale(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    w = ResumableWriter(out, IDENT)
    w.write([{"_row": i, "pad": "x" * 200} for i in range(1, 9001)])
    w.close()
    ids = tmp_path / "o.jsonl.ids"
    good = ids.read_bytes()
    assert len(good) == 9000 * 8
    ids.unlink()  # lost: the ids are read from the rows, and the record is rebuilt
    w = ResumableWriter(out, IDENT)
    assert len(w.done) == 9000 and 9000 in w.done and 9001 not in w.done
    w.close()
    assert sorted(ids.read_bytes()[k:k + 8] for k in range(0, len(good), 8)) == \
        sorted(good[k:k + 8] for k in range(0, len(good), 8))
    ids.write_bytes(good[8:] + good[:8])  # stale: shifted by one row
    with pytest.raises(OutputError, match="does not match"):
        ResumableWriter(out, IDENT)
