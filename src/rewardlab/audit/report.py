"""One self-contained HTML report of an audit, and the JSON of every figure beside it.

What ``--report FILE.html`` writes for `rewardlab eval` and `rewardlab audit ...`:

- ``FILE.html``: the title, the exact command, the fingerprint of every reward audited, the hash of
  every input file, then the report's blocks in the order they were added (paragraphs, tables, plots).
  Plots are PNGs embedded as base64 ``data:`` URIs, styles are inline: the file loads no network
  resource, runs no script, and opens the same offline, attached to an issue, or years later.
  All text (titles, cells, the command) is HTML-escaped.
- ``FILE.json`` (same stem, beside it): everything the HTML shows as data — the header, every table's
  rows, the series drawn in every plot, and the free-form results a caller adds with `Report.add_data`.
  Non-finite floats are written as ``null`` so the file is strict JSON.

Usage::

    rep = Report("Over-optimisation", fingerprints={"proxy": spec.fingerprint},
                 data_hash={"rollouts.jsonl": file_sha256("rollouts.jsonl")})
    rep.table("Best-of-n", ["n", "KL_bon", "gold"], [[1, 0.0, 0.41], [4, 0.636, 0.52]])
    fig = new_figure()                      # a matplotlib Figure (the ``report`` extra)
    ax = fig.subplots(); ax.plot([0, 0.636], [0.41, 0.52], label="gold")
    rep.figure("Gold score vs KL", fig)     # its lines, points and bars go to the JSON
    rep.add_data("curves", {...})
    html_path, json_path = rep.write("overopt.html")

matplotlib is imported only by `new_figure` and `Report.figure` (never at import time), with the Agg
backend (no display); without it they raise `ReportUnavailableError` naming the extra.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "Report", "ReportUnavailableError", "command_line", "file_sha256", "jsonable", "new_figure",
]


class ReportUnavailableError(ImportError):
    """matplotlib is missing: install the ``report`` extra."""


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ReportUnavailableError(
            "plots in a report need matplotlib: pip install 'rewardlab[report]'") from exc
    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")  # no display: render to PNG only
    return matplotlib


def new_figure(width: float = 6.4, height: float = 4.0) -> Any:
    """A matplotlib ``Figure`` (not registered with pyplot, so nothing leaks across reports) of the
    given size in inches, with a tight layout."""
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="tight")


def file_sha256(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes: the data hash a report records for an input."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def command_line(argv: Sequence[str] | None = None, prog: str = "rewardlab") -> str:
    """The exact command, shell-quoted so it can be pasted back: ``prog`` and `argv` (default
    ``sys.argv[1:]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join([prog, *args])


def jsonable(obj: Any) -> Any:
    """`obj` as strict-JSON data: non-finite floats become None, NumPy scalars and arrays plain
    numbers and lists, tuples lists, mapping keys strings, dataclasses dicts, paths strings."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        return {k: jsonable(getattr(obj, k)) for k in obj.__dataclass_fields__}
    tolist = getattr(obj, "tolist", None)  # NumPy arrays and scalars
    if callable(tolist):
        return jsonable(tolist())
    if isinstance(obj, Sequence | set | frozenset):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "value") and hasattr(obj, "name"):  # an Enum
        return jsonable(obj.value)
    return str(obj)


def _cell(value: Any) -> str:
    """A table cell as text: floats to 4 decimals (trailing zeros dropped; scientific notation below 1e-3
    and from 1e4), None and NaN as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—" if math.isnan(value) else ("∞" if value > 0 else "−∞")
        if value != 0 and not 1e-3 <= abs(value) < 1e4:
            return f"{value:.3e}"
        text = f"{value:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


@dataclass
class _Block:
    kind: str  # "heading" | "text" | "table" | "figure"
    title: str
    payload: dict[str, Any] = field(default_factory=dict)


def _series(fig: Any) -> list[dict[str, Any]]:
    """The data drawn in a matplotlib figure: per axes, its lines (x, y), point sets and bars."""
    out: list[dict[str, Any]] = []
    for ax in fig.get_axes():
        entry: dict[str, Any] = {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                                 "lines": [], "points": [], "bars": []}
        for line in ax.get_lines():
            label = str(line.get_label())
            if label.startswith("_child") or label.startswith("_nolegend"):
                label = ""
            entry["lines"].append({"label": label, "x": jsonable(list(line.get_xdata())),
                                   "y": jsonable(list(line.get_ydata()))})
        for coll in ax.collections:
            offsets = coll.get_offsets()
            if len(offsets):
                label = str(coll.get_label())
                entry["points"].append({"label": "" if label.startswith("_") else label,
                                        "xy": jsonable(offsets.tolist() if hasattr(offsets, "tolist") else offsets)})
        for container in ax.containers:
            patches = [p for p in container if hasattr(p, "get_height")]
            if patches:
                entry["bars"].append({"label": str(container.get_label()),
                                      "x": [p.get_x() + p.get_width() / 2 for p in patches],
                                      "height": jsonable([p.get_height() for p in patches])})
        out.append(entry)
    return out


class Report:
    """An audit report built block by block, written as one HTML file and its JSON.

    `title`: the report's heading. `command`: the exact command (default: this process's
    ``rewardlab ...`` command line). `fingerprints`: label -> fingerprint of each reward audited
    (e.g. ``{"proxy": spec.fingerprint}``). `data_hash`: input file -> hash (`file_sha256`), or one
    hash string. Blocks appear in the order they are added."""

    def __init__(self, title: str, command: str | None = None, fingerprints: Mapping[str, str] | None = None,
                 data_hash: Mapping[str, str] | str | None = None) -> None:
        self.title = title
        self.command = command_line() if command is None else command
        self.fingerprints: dict[str, str] = dict(fingerprints or {})
        self.data_hash: dict[str, str] = ({"input": data_hash} if isinstance(data_hash, str)
                                          else dict(data_hash or {}))
        self.created = datetime.now(UTC).isoformat(timespec="seconds")
        self.data: dict[str, Any] = {}
        self._blocks: list[_Block] = []

    # -- building ----------------------------------------------------------------------------
    def heading(self, text: str) -> None:
        """A section heading."""
        self._blocks.append(_Block("heading", text))

    def text(self, paragraph: str) -> None:
        """A paragraph of plain text (escaped; blank lines split paragraphs)."""
        self._blocks.append(_Block("text", "", {"text": paragraph}))

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table: `columns` names, `rows` of cells (numbers, text, None). Every row must have one
        cell per column. Floats show 4 decimals; the JSON keeps them whole."""
        cols = [str(c) for c in columns]
        body = [list(r) for r in rows]
        for i, r in enumerate(body):
            if len(r) != len(cols):
                raise ValueError(f"table {title!r}: row {i} has {len(r)} cells for {len(cols)} columns")
        self._blocks.append(_Block("table", title, {"columns": cols, "rows": body}))

    def figure(self, title: str, fig: Any, *, caption: str = "", data: Any = None, dpi: int = 110) -> None:
        """A matplotlib figure, rendered now to a PNG embedded in the HTML. The JSON gets the series
        it draws (lines, points, bars per axes) and `data` when given (e.g. the CIs behind error
        bars)."""
        _matplotlib()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        png = buf.getvalue()
        if not png.startswith(b"\x89PNG"):
            raise ValueError(f"figure {title!r} did not render to PNG")
        payload = {"png": png, "caption": caption, "series": _series(fig)}
        if data is not None:
            payload["data"] = data
        self._blocks.append(_Block("figure", title, payload))

    def add_data(self, key: str, value: Any) -> None:
        """Results for the JSON only (e.g. a full result object); `key` must be new."""
        if key in self.data:
            raise ValueError(f"report data {key!r} is already set")
        self.data[key] = value

    # -- output ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Everything in the report as strict-JSON data (the PNGs excepted)."""
        from rewardlab import __version__

        tables, figures = [], []
        for b in self._blocks:
            if b.kind == "table":
                tables.append({"title": b.title, "columns": b.payload["columns"], "rows": b.payload["rows"]})
            elif b.kind == "figure":
                fig = {"title": b.title, "caption": b.payload["caption"], "series": b.payload["series"]}
                if "data" in b.payload:
                    fig["data"] = b.payload["data"]
                figures.append(fig)
        return jsonable({
            "title": self.title, "command": self.command, "fingerprints": self.fingerprints,
            "data_hash": self.data_hash, "created": self.created, "rewardlab_version": __version__,
            "tables": tables, "figures": figures, "data": self.data,
        })

    def to_html(self) -> str:
        """The report as one self-contained HTML document."""
        from rewardlab import __version__

        e = html.escape
        parts = [
            "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(self.title)}</title>", f"<style>{_CSS}</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
            f'<p class="meta">rewardlab {e(str(__version__))} · {e(self.created)}</p>',
            "<h2>Command</h2>", f"<pre>{e(self.command)}</pre>",
        ]
        if self.fingerprints:
            parts.append(_html_table("Reward fingerprints", ["reward", "fingerprint"],
                                     [[k, v] for k, v in self.fingerprints.items()], level=2))
        if self.data_hash:
            parts.append(_html_table("Data", ["input", "hash"], [[k, v] for k, v in self.data_hash.items()],
                                     level=2))
        for b in self._blocks:
            if b.kind == "heading":
                parts.append(f"<h2>{e(b.title)}</h2>")
            elif b.kind == "text":
                for para in str(b.payload["text"]).split("\n\n"):
                    parts.append(f"<p>{e(para)}</p>")
            elif b.kind == "table":
                parts.append(_html_table(b.title, b.payload["columns"], b.payload["rows"], level=3))
            else:
                src = "data:image/png;base64," + base64.b64encode(b.payload["png"]).decode("ascii")
                caption = b.title + (f" — {b.payload['caption']}" if b.payload["caption"] else "")
                parts.append(f'<figure><img src="{src}" alt="{e(b.title)}">'
                             f"<figcaption>{e(caption)}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``path`` (the HTML) and the JSON beside it (same stem, ``.json``); returns both paths.
        Each file is written to a temporary name and moved into place, so a reader never sees half."""
        html_path = Path(path)
        json_path = html_path.with_suffix(".json")
        if json_path == html_path:
            raise ValueError(f"report path {html_path} must not end in .json (the JSON goes beside it)")
        html_path.parent.mkdir(parents=True, exist_ok=True)
        doc = self.to_html()
        data = json.dumps(self.to_json(), indent=1, allow_nan=False, ensure_ascii=False)
        for target, text in ((html_path, doc), (json_path, data)):
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
        return html_path, json_path


def _html_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, level: int) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in r) + "</tr>" for r in rows)
    return (f'<h{level}>{e(title)}</h{level}><div class="t"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222;"
    "background:#fff}h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    "h3{font-size:1.05em}.meta{color:#666}pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap;"
    "word-break:break-all}table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;"
    "padding:.25em .6em;text-align:left;font-variant-numeric:tabular-nums;white-space:nowrap}th{background:#eee}"
    ".t{overflow-x:auto}figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}"
    "figcaption{color:#444;font-size:.9em}"
)
