"""Output lines have a JSON form for every value."""

from __future__ import annotations

import json

import numpy as np

from rewardlab.io.jsonsafe import MAX_DEPTH, dump_json_line


def _round(obj: object) -> object:
    line = dump_json_line(obj)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    return json.loads(line)


def test_values_without_a_json_form() -> None:
    out = _round({"a": np.arange(3), "f": np.float32(1.5), "i": np.int64(7), "b": b"\xff\x00",
                  "s": {3, 1}, "t": (1, "x"), "o": object(), "nan": float("nan")})
    assert out["a"] == [0, 1, 2] and out["f"] == 1.5 and out["i"] == 7
    assert out["b"] == {"base64": "/wA="} and out["s"] == [1, 3] and out["t"] == [1, "x"]
    assert out["o"].startswith("<object object") and out["nan"] is None


def test_keys_big_ints_depth_and_cycles() -> None:
    cyc: list[object] = [1]
    cyc.append(cyc)
    deep: object = "leaf"
    for _ in range(2000):
        deep = [deep]
    out = _round({(1, 2): "k", "big": 10**40, "cyc": cyc, "deep": deep, "nested_nan": [float("inf")]})
    assert out["(1, 2)"] == "k" and out["big"] == 10**40 and out["cyc"] == [1, "<cycle>"]
    assert out["nested_nan"] == [None]
    d = out["deep"]
    for _ in range(MAX_DEPTH - 1):
        d = d[0]
    assert d == f"<nested deeper than {MAX_DEPTH} levels>"


def test_plain_rows_are_compact_and_start_with_their_first_key() -> None:
    assert dump_json_line({"_row": 3, "x": "é"}) == '{"_row":3,"x":"é"}\n'.encode()
    assert dump_json_line({"_row": 4, "k": {(1,): 10**30}}).startswith(b'{"_row":4,')
