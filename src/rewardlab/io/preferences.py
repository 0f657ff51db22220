"""Reading preference data in the layouts users have, as `PreferencePair`s and `PreferenceSet`s.

The layout is recognised per row (files mixing layouts are read):

- **text**: ``prompt`` (or ``question`` / ``problem`` / ``instruction`` / ``input``) with
  ``chosen`` and ``rejected`` texts; when both sides repeat the prompt at their start, it is cut;
- **messages**: ``chosen`` / ``rejected`` as chat message lists (TRL's conversational layout,
  UltraFeedback-binarized, HH-RLHF in messages). Each side's prompt is its messages up to and
  including the last non-assistant turn (user, system...); its response is the turns after it
  (assistant and tool turns). Without such turns the ``prompt`` column gives the prompt;
- **dialogue**: Anthropic HH-RLHF whole dialogues (``\\n\\nHuman: … \\n\\nAssistant: …``) and no
  prompt column: the prompt is the text up to and including the last ``\\n\\nAssistant:``, the
  response the rest (without its leading space). See `split_dialogue`;
- **set**: ``chosen`` and/or ``rejected`` as lists of responses (RewardBench 2: ``chosen`` a list
  of one, or several in its Ties subset, ``rejected`` a list of three) give a `PreferenceSet`.

Optional columns: an id (``id`` / ``uid`` / ...), ``subset``, ``category``, a numeric ``margin``;
the others are kept in ``metadata``. Files: JSONL, gzip-compressed JSONL (``.gz``), JSON (one
array of rows, or JSON lines under a ``.json`` name), Parquet, and datasets saved by HF
`datasets` (through `rewardlab.io.files.read_rows`).

A row that cannot be read is reported with where it is (``line N`` in JSON lines, ``row N`` in
Parquet and JSON arrays, counted from 0 as in `read_rows`) and why, and the rest is read. Rows
that are read but look wrong are kept and flagged (`FLAGS`): an empty response, chosen equal to
rejected, sides that continue different conversations.
"""

from __future__ import annotations

import gzip
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rewardlab.core.types import Message, PreferencePair, PreferenceSet, Response, _same
from rewardlab.io.files import Row, _parse_line, parse_json_line, read_rows
from rewardlab.io.rows import ID_KEYS, PROMPT_KEYS
from rewardlab.io.rows import _is_messages as _is_conversation

__all__ = [
    "FLAGS",
    "Preference",
    "PreferenceData",
    "preference_from_row",
    "preference_rows",
    "read_preferences",
    "split_dialogue",
]

Preference = PreferencePair | PreferenceSet

ASSISTANT = "\n\nAssistant:"
RESPONSE_ROLES = frozenset({"assistant", "tool", "function", "ipython"})
"""Roles of the turns that make up a response in a conversation; any other role ends the prompt."""

FLAGS = {
    "empty_chosen": "a chosen response is empty",
    "empty_rejected": "a rejected response is empty",
    "identical": "chosen equals rejected",
    "different_prompts": "chosen and rejected continue different conversations",
}
"""Why a row that was read may still be wrong, by flag name."""

_LABELS = ("subset", "category")


def split_dialogue(text: str) -> tuple[str, str]:
    """Split an HH-RLHF whole dialogue (``\\n\\nHuman: … \\n\\nAssistant: …``) into the prompt
    (everything up to and including the last ``\\n\\nAssistant:``) and the response (the rest,
    without its leading space).

    >>> split_dialogue("\\n\\nHuman: Hi\\n\\nAssistant: Hello!")
    ('\\n\\nHuman: Hi\\n\\nAssistant:', 'Hello!')
    """
    at = text.rfind(ASSISTANT)
    if at < 0:
        raise ValueError("no '\\n\\nAssistant:' turn in the dialogue")
    cut = at + len(ASSISTANT)
    response = text[cut:]
    return text[:cut], response[1:] if response.startswith(" ") else response


# -- one row --------------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _messages(value: list[Any], what: str) -> list[Message]:
    out = []
    for i, m in enumerate(value):
        try:
            out.append(Message.model_validate(m))
        except ValidationError as exc:
            err = exc.errors()[0]
            field_name = str(err["loc"][0]) if err["loc"] else "value"
            raise ValueError(f"{what} message {i}: invalid {field_name!r} ({err['msg']}, got "
                             f"{_kind(m.get(field_name)) if isinstance(m, Mapping) else _kind(m)})") from None
    return out


def _responses(value: Any, name: str) -> tuple[list[Any], bool]:
    """The responses of one side and whether the side is a list of responses (a set layout)."""
    if value is None:
        raise ValueError(f"'{name}' is null")
    if isinstance(value, str) or _is_conversation(value):
        return [value], False
    if isinstance(value, list):
        if not value:
            raise ValueError(f"'{name}' is an empty list")
        for i, item in enumerate(value):
            if not (isinstance(item, str) or _is_conversation(item)):
                raise ValueError(f"'{name}'[{i}] has type {_kind(item)}, expected text or chat messages")
        return list(value), True
    raise ValueError(f"'{name}' has type {_kind(value)}, expected text, chat messages or a list of "
                     "them")


def _split_conversation(msgs: list[Message], what: str) -> tuple[list[Message] | None, list[Message]]:
    """(prompt turns or None when there are none, response turns) of one conversation."""
    cut = 0
    for i, m in enumerate(msgs):
        if m.role not in RESPONSE_ROLES:
            cut = i + 1
    if cut == len(msgs):
        raise ValueError(f"{what} ends with a {msgs[-1].role!r} message: no response after it")
    return (msgs[:cut] or None), msgs[cut:]


def _empty(response: Response) -> bool:
    if isinstance(response, str):
        return not response.strip()
    return all(not m.text.strip() and not m.tool_calls for m in response)


@dataclass
class _Side:
    name: str  # "chosen", "rejected[2]"...
    prompt: str | list[Message] | None  # its own prompt, when the side carries one
    response: Response


def _prompt_field(row: Mapping[str, Any]) -> tuple[str | None, str | list[Message] | None]:
    for key in PROMPT_KEYS:
        value = row.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            return key, value
        if _is_conversation(value):
            return key, _messages(value, f"'{key}'")
        if isinstance(value, list) and not value:
            return key, ""
        raise ValueError(f"'{key}' has type {_kind(value)}, expected text or chat messages")
    return None, None


def _sides(row: Mapping[str, Any], prompt: str | list[Message] | None
           ) -> tuple[list[_Side], list[_Side], bool, str]:
    """Chosen and rejected sides, whether the row is a set, and the layout's name."""
    chosen, many_c = _responses(row["chosen"], "chosen")
    rejected, many_r = _responses(row["rejected"], "rejected")
    named = [(f"chosen[{i}]" if many_c else "chosen", v) for i, v in enumerate(chosen)] + \
        [(f"rejected[{i}]" if many_r else "rejected", v) for i, v in enumerate(rejected)]
    texts = [v for _, v in named if isinstance(v, str)]
    dialogue = prompt is None and any(ASSISTANT in t for t in texts)
    strip = isinstance(prompt, str) and bool(prompt) and len(texts) == len(named) \
        and all(t.startswith(prompt) for t in texts)
    sides: list[_Side] = []
    for name, value in named:
        if isinstance(value, str):
            if dialogue:
                try:
                    own, response = split_dialogue(value)
                except ValueError:
                    raise ValueError(f"{name} has no '\\n\\nAssistant:' turn, but another side of the "
                                     "row is a whole dialogue") from None
                sides.append(_Side(name, own, response))
            else:
                sides.append(_Side(name, None, value[len(prompt):] if strip else value))  # type: ignore[arg-type]
        else:
            own_msgs, turns = _split_conversation(_messages(value, name), name)
            sides.append(_Side(name, own_msgs, turns))
    n_c = len(chosen)
    many = many_c or many_r
    if dialogue:
        layout = "dialogue"
    elif len(texts) < len(named):
        layout = "messages"
    else:
        layout = "text" if prompt is not None else "text without prompt"
    return sides[:n_c], sides[n_c:], many, ("set of " + layout) if many else layout


def preference_from_row(row: Mapping[str, Any]) -> tuple[Preference, str, list[str]]:
    """One row as a `PreferencePair` or `PreferenceSet`, with its layout's name and its flags
    (see `FLAGS`). Raises `ValueError` saying what is wrong when the row cannot be read."""
    for key in ("chosen", "rejected"):
        if key not in row:
            present = ", ".join(map(repr, list(row)[:8])) or "none"
            raise ValueError(f"no {key!r} column (a preference row needs 'chosen' and 'rejected'; "
                             f"columns: {present})")
    prompt_key, prompt = _prompt_field(row)
    chosen, rejected, many, layout = _sides(row, prompt)
    # the item's prompt: the first chosen side's own, else the prompt column, else none
    base = chosen[0].prompt if chosen[0].prompt is not None else (prompt if prompt is not None else "")
    flags: list[str] = []
    for side in [*chosen, *rejected]:
        if side.prompt is None:
            side.prompt = base
    differ = [s for s in [*chosen, *rejected] if not _same(s.prompt, base)]
    if differ and (many or len(differ) > 1 or differ[0] is not rejected[0]):
        raise ValueError(f"{differ[0].name} continues a different conversation than {chosen[0].name}")
    if differ:
        flags.append("different_prompts")

    margin = row.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float)
                               or not math.isfinite(margin)):
        raise ValueError(f"'margin' must be a finite number, got {margin!r}")
    id_key = next((k for k in ID_KEYS if row.get(k) is not None), None)
    used = {"chosen", "rejected", "margin", prompt_key, id_key, *_LABELS}
    common: dict[str, Any] = {
        "id": None if id_key is None else str(row[id_key]),
        "prompt": base,
        **{k: None if row.get(k) is None else str(row[k]) for k in _LABELS},
        "metadata": {k: v for k, v in row.items() if k not in used},
    }
    if any(_empty(s.response) for s in chosen):
        flags.append("empty_chosen")
    if any(_empty(s.response) for s in rejected):
        flags.append("empty_rejected")
    item: Preference
    if many:
        if margin is not None:
            common["metadata"]["margin"] = margin
        item = PreferenceSet(chosen=[s.response for s in chosen],
                             rejected=[s.response for s in rejected], **common)
    else:
        item = PreferencePair(chosen=chosen[0].response, rejected=rejected[0].response,
                              rejected_prompt=rejected[0].prompt if differ else None,
                              margin=None if margin is None else float(margin), **common)
    if item.identical:
        flags.append("identical")
    return item, layout, flags


# -- files ----------------------------------------------------------------------------------------

def _lines(raw_lines: Iterable[bytes]) -> Iterator[Row]:
    for n, raw in enumerate(raw_lines, start=1):
        row = _parse_line(n, raw)
        if row is not None:
            yield row


def _document(raw: bytes) -> Iterator[Row] | None:
    """Rows of one JSON document (an array of rows, or a single row), or None when the bytes
    are not one JSON value (JSON lines under a ``.json`` name)."""
    try:
        data = parse_json_line(raw)
    except ValueError:
        return None
    if isinstance(data, dict):
        return iter([Row(1, 1, data)])
    if not isinstance(data, list):
        return iter([Row(1, 1, None, f"expected a JSON array of rows or one row, got {_kind(data)}")])
    return iter(Row(i, None, d) if isinstance(d, dict)
                else Row(i, None, None, f"expected a JSON object, got {_kind(d)}")
                for i, d in enumerate(data))


def preference_rows(path: str | os.PathLike[str], split: str | None = None) -> Iterator[Row]:
    """The rows of a preference file: JSONL, ``.gz`` JSONL or JSON, JSON, Parquet, or an HF
    dataset directory (`split` picks its split)."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".parquet":
        return read_rows(p, split)
    if not p.exists():
        raise FileNotFoundError(f"no file {p}")
    inner = Path(p.stem).suffix if p.suffix == ".gz" else p.suffix
    if p.suffix == ".gz":
        if inner == ".json":
            with gzip.open(p, "rb") as f:
                raw = f.read()
            return _document(raw) or _lines(raw.splitlines(keepends=True))

        def lines() -> Iterator[Row]:
            with gzip.open(p, "rb") as f:
                yield from _lines(f)

        return lines()
    if inner == ".json":
        raw = p.read_bytes()
        return _document(raw) or _lines(raw.splitlines(keepends=True))
    return read_rows(p)


@dataclass
class PreferenceData:
    """What `read_preferences` read.

    `items`: the pairs and sets, in file order; `where`: each item's place in the file;
    `problems`: the rows that could not be read, each ``"line N: why"`` (or ``row N``);
    `flagged`: for each flag of `FLAGS`, where the kept rows carrying it are; `layouts`: how many
    rows had each layout."""

    items: list[Preference] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    layouts: Counter[str] = field(default_factory=Counter)

    def pairs(self) -> list[PreferencePair]:
        """Every item as pairs (a set gives one pair per chosen and rejected response)."""
        out: list[PreferencePair] = []
        for item in self.items:
            out.extend(item.pairs() if isinstance(item, PreferenceSet) else [item])
        return out

    def summary(self) -> str:
        """One line per fact: rows read and by layout, unreadable rows, flagged rows."""
        layouts = ", ".join(f"{n} {name}" for name, n in sorted(self.layouts.items()))
        lines = [f"{len(self.items)} rows read ({layouts or 'none'})"]
        if self.problems:
            lines.append(f"{len(self.problems)} unreadable rows, first: {self.problems[0]}")
        for flag, places in self.flagged.items():
            lines.append(f"{len(places)} rows where {FLAGS[flag]} (kept), first: {places[0]}")
        return "\n".join(lines)


def read_preferences(path: str | os.PathLike[str], split: str | None = None) -> PreferenceData:
    """Preference pairs and sets from a file, with the unreadable rows reported (not raised) and
    the doubtful ones flagged. Raises `FileNotFoundError` for a missing file and
    `rewardlab.io.files.InputError` for a file that is not the format it claims."""
    data = PreferenceData()
    for row in preference_rows(path, split):
        if row.data is None:
            data.problems.append(f"{row.where}: {row.error}")
            continue
        try:
            item, layout, flags = preference_from_row(row.data)
        except ValueError as exc:
            data.problems.append(f"{row.where}: {exc}")
            continue
        data.items.append(item)
        data.where.append(row.where)
        data.layouts[layout] += 1
        for flag in flags:
            data.flagged.setdefault(flag, []).append(row.where)
    return data
