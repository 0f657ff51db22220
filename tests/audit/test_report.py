"""The audit report: one self-contained HTML file (escaped text, embedded plots, no network
resource) and the strict JSON beside it; rendered in headless Chromium."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from rewardlab.audit.report import Report, ReportUnavailableError, command_line, file_sha256, jsonable, new_figure
from tests.audit.chromium import render

HOSTILE = '<script>alert("x")</script><img src="https://evil.example/p.png">'


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(doc: str) -> _Tags:
    p = _Tags()
    p.feed(doc)
    return p


def _report(tmp_path: Path) -> Report:
    data = tmp_path / "rollouts.jsonl"
    data.write_bytes(b'{"prompt": "p", "response": "r"}\n')
    rep = Report(f"Audit {HOSTILE}", command=f"rewardlab audit overopt {HOSTILE}",
                 fingerprints={"proxy": "abc123", f"gold {HOSTILE}": "def456"},
                 data_hash={str(data): file_sha256(data)})
    rep.heading("Best-of-n")
    rep.text(f"first paragraph {HOSTILE}\n\nsecond paragraph")
    rep.table("KL", ["n", "KL_bon", "note"], [[1, 0.0, HOSTILE], [4, math.log(4) - 0.75, None],
                                              [8, float("nan"), "x & y"]])
    fig = new_figure()
    ax = fig.subplots()
    ax.plot([0.0, 0.1931, 0.6363], [0.2, 0.3, 0.35], label="gold")
    ax.plot([0.0, 0.1931, 0.6363], [0.2, 0.4, 0.6], label="proxy")
    ax.set_xlabel("KL_bon")
    rep.figure("Gold vs proxy", fig, caption="mean over prompts", data={"ci": [[0.1, 0.3]]})
    fig2 = new_figure(4, 3)
    fig2.subplots().bar(["a", "b"], [3.0, np.float64(4.5)], label="hits")
    rep.figure("Bars", fig2)
    rep.add_data("result", {"values": np.array([1.0, np.inf]), "n": np.int64(3)})
    return rep


def test_write_html_and_json_beside(tmp_path: Path) -> None:
    html_path, json_path = _report(tmp_path).write(tmp_path / "out" / "report.html")
    assert html_path == tmp_path / "out" / "report.html" and json_path == tmp_path / "out" / "report.json"
    data = json.loads(json_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert data["command"] == f"rewardlab audit overopt {HOSTILE}"
    assert data["fingerprints"] == {"proxy": "abc123", f"gold {HOSTILE}": "def456"}
    (digest,) = data["data_hash"].values()
    assert digest == "sha256:" + hashlib.sha256(b'{"prompt": "p", "response": "r"}\n').hexdigest()
    (table,) = data["tables"]
    assert table["columns"] == ["n", "KL_bon", "note"]
    assert table["rows"][1][1] == pytest.approx(math.log(4) - 0.75)
    assert table["rows"][2][1] is None  # NaN is null in strict JSON
    gold_vs_proxy, bars = data["figures"]
    lines = {ln["label"]: ln for ln in gold_vs_proxy["series"][0]["lines"]}
    assert lines["proxy"]["y"] == [0.2, 0.4, 0.6] and lines["gold"]["x"] == [0.0, 0.1931, 0.6363]
    assert gold_vs_proxy["series"][0]["xlabel"] == "KL_bon" and gold_vs_proxy["data"] == {"ci": [[0.1, 0.3]]}
    assert bars["series"][0]["bars"][0]["height"] == [3.0, 4.5]
    assert data["data"]["result"] == {"values": [1.0, None], "n": 3}


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    html_path, _ = _report(tmp_path).write(tmp_path / "report.html")
    doc = html_path.read_text()
    parsed = _parse(doc)
    tags = [t for t, _ in parsed.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    imgs = [a for t, a in parsed.tags if t == "img"]
    assert len(imgs) == 2 and all((a["src"] or "").startswith("data:image/png;base64,") for a in imgs)
    for _, attrs in parsed.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "srcset", "action", "poster"):
                assert not (value or "").lower().startswith(("http:", "https:", "//")), (name, value)
    assert "url(" not in doc and "@import" not in doc  # no stylesheet resource either
    text = "".join(parsed.text)
    assert HOSTILE in text  # user text shows as text, every time it was given
    assert text.count(HOSTILE) == 6  # <title>, h1, command, fingerprint, paragraph, cell
    assert "x & y" in text and "second paragraph" in text


def test_table_rows_must_match_columns() -> None:
    rep = Report("t", command="rewardlab x")
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        rep.table("bad", ["a", "b"], [[1, 2], [3]])
    rep.add_data("k", 1)
    with pytest.raises(ValueError, match="already set"):
        rep.add_data("k", 2)


def test_json_path_cannot_overwrite_html(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not end in .json"):
        Report("t", command="c").write(tmp_path / "r.json")


def test_helpers() -> None:
    assert command_line(["audit", "overopt", "a b.jsonl"]) == "rewardlab audit overopt 'a b.jsonl'"
    assert jsonable({1: (np.float32(0.5), float("-inf")), "p": Path("/x")}) == {"1": [0.5, None], "p": "/x"}


def test_missing_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(ReportUnavailableError, match=r"rewardlab\[report\]"):
        new_figure()


def test_renders_in_chromium(tmp_path: Path) -> None:
    html_path, _ = _report(tmp_path).write(tmp_path / "report.html")
    shown = render(html_path, tmp_path)
    assert shown.images == 2 and shown.loaded == 2
    assert shown.ok, shown


def test_render_check_catches_a_broken_plot_and_a_blank_page(tmp_path: Path) -> None:
    """The checker itself: a corrupt embedded PNG is counted as not loaded; a blank page is blank."""
    html_path, _ = _report(tmp_path).write(tmp_path / "report.html")
    broken = tmp_path / "broken.html"
    broken.write_text(html_path.read_text().replace("base64,iVBOR", "base64,AAAA", 1))
    shown = render(broken, tmp_path)
    assert shown.images == 2 and shown.loaded == 1 and not shown.ok
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    shown = render(blank, tmp_path)
    assert shown.images == 0 and shown.pixel_std < 1.0 and not shown.ok
