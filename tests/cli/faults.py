"""Faults injected into the output writer: a chunk's write cut short by a kill or a full disk."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest


class Killed(BaseException):
    """Stands for a SIGKILL that lands between two write calls of one chunk."""


def cut_nth_chunk_write(monkeypatch: pytest.MonkeyPatch, nth: int, keep: Callable[[bytes], bytes],
                        exc: BaseException | None = None) -> Callable[[], None]:
    """Make the `nth` write of output rows put only `keep(data)` on disk and then raise `exc`
    (default `Killed`). Returns a function that restores the real writes."""
    real_write = os.write
    seen = 0

    def write(fd: int, data: bytes) -> int:
        nonlocal seen
        if b'"_row"' in bytes(data[:200]):
            seen += 1
            if seen == nth:
                real_write(fd, keep(bytes(data)))
                raise exc if exc is not None else Killed()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    return lambda: monkeypatch.setattr(os, "write", real_write)
