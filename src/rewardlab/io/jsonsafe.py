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

import json
from typing import Any

import orjson

from rewardlab.core.types import json_safe as _json_safe

MAX_DEPTH = 200
_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def json_safe(obj: Any) -> Any:
    """A copy of `obj` made only of JSON types (see the module docstring)."""
    return _json_safe(obj, max_depth=MAX_DEPTH, text=str, finite=True)


def dump_json_line(obj: Any) -> bytes:
    """One JSON line (UTF-8, unescaped) for any value; see the module docstring for how values
    without a JSON form are written."""
    try:
        return orjson.dumps(obj, default=json_safe, option=_OPTS)  # json_safe: orjson's hook for odd types
    except (TypeError, ValueError):  # non-string keys orjson refuses, huge ints, deep nesting
        return (json.dumps(json_safe(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n").encode()
