"""JSON lines that never fail: every value gets a JSON form, so one odd value costs nothing.

Conversions (documented for readers of output files):

- numpy arrays and scalars: their Python values (``tolist()`` / ``item()``);
- ``bytes``, ``bytearray``, ``memoryview``: ``{"base64": "<standard base64>"}``;
- tuples and sets: lists (sets sorted by their JSON form); non-string keys: their ``str``;
- floats that are NaN or infinite: ``null`` (JSON has no such numbers);
- integers beyond 64 bits: exact JSON integers;
- containers nested deeper than `MAX_DEPTH`, or holding themselves: the string
  ``"<nested deeper than 200 levels>"`` / ``"<cycle>"`` in their place;
- anything else: its ``str``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

MAX_DEPTH = 200
_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    """orjson's hook for types it does not know."""
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(obj)).decode("ascii")}
    if hasattr(obj, "dtype") and hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    return str(obj)


def json_safe(obj: Any, depth: int = 0, seen: tuple[int, ...] = ()) -> Any:
    """A copy of `obj` made only of JSON types (see the module docstring)."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if depth >= MAX_DEPTH:
        return f"<nested deeper than {MAX_DEPTH} levels>"
    if id(obj) in seen:
        return "<cycle>"
    inner = seen + (id(obj),)
    if isinstance(obj, Mapping):
        return {k if isinstance(k, str) else str(k): json_safe(v, depth + 1, inner) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v, depth + 1, inner) for v in obj]
    converted = _default(obj)
    if isinstance(converted, str):
        return converted
    return json_safe(converted, depth + 1, inner)


def dump_json_line(obj: Any) -> bytes:
    """One JSON line (UTF-8, unescaped) for any value; see the module docstring for how values
    without a JSON form are written."""
    try:
        return orjson.dumps(obj, default=_default, option=_OPTS)
    except (TypeError, ValueError):  # non-string keys orjson refuses, huge ints, deep nesting
        return (json.dumps(json_safe(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode()
