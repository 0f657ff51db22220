"""Reading model responses: the text after the thinking, fenced code blocks and answer tags.

Every built-in reward family reads responses through these functions, so a response cannot
show one reward text that it hides from another. The rules:

**Tags** (``<think>``, ``</think>``, ``<answer>``, ...) are recognised case-insensitively and
with optional spaces inside the brackets: ``</THINK>``, ``</ think >`` and ``</think>`` are the
same closing tag everywhere. Only the tag name given is a tag (the default thinking tag is
``think``; ``<reasoning>`` is ordinary text unless a caller names it).

**The final text** of a response (`after_think`) is what follows its last closing think tag.
An opening think tag that is not closed (``<think>`` after the last ``</think>``, or with no
``</think>`` at all) starts thinking that runs to the end of the response: the final text
stops there. So ``<think>...the answer is 5`` (a response cut off, or one that never closes its
thinking) has an empty final text, as a chat template's reasoning parser would show it, and an
answer written inside unclosed thinking is no answer. Text before a think block that is later
closed is thinking's prelude and not part of the final text. A response with no think tag is
all final text, unless its prompt opened the thinking: a chat template that ends the prompt with
``<think>`` (`prompt_opens_think`: the prompt's text ends with an opening think tag) makes the
response begin inside the think block, so without a closing tag it is all thinking (`opened`).
A prompt given as chat messages holds no template, so it opens nothing.

**Fenced blocks** (`fenced_blocks`) open with three backticks and an info string to the end of
that line (the language is its first word, lowercased) and end at the next three backticks;
an opening without a closing fence is not a block. One linear pass.

**Answer tags** (`tag_content`): the content of the last complete ``<answer>...</answer>``
block (the last closing tag and the last opening tag before it).

Changing a rule here changes what rewards score without changing their code: bump the
``version`` of the affected rewards so cached scores are not reused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

THINK = "think"
ANSWER = "answer"


_TAG_NAME = re.compile(r"[^<>/\s]+")


def check_tag_name(name: str, what: str = "tag") -> str:
    """`name` if it can name a tag (no brackets, slashes or whitespace); else a ValueError."""
    if name is THINK or name is ANSWER:  # the usual names, checked on every response
        return name
    if not isinstance(name, str) or not _TAG_NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a valid tag name")
    return name


@functools.lru_cache(maxsize=64)
def _tag_rx(name: str, kind: str = "/?") -> re.Pattern[str]:
    """Tags called `name`: opening and closing (`kind` ``/?``), closing only (``/``) or opening
    only (empty)."""
    return re.compile(r"<[ \t]*(" + kind + r")[ \t]*" + re.escape(name) + r"[ \t]*>", re.IGNORECASE)


class Tag(NamedTuple):
    """One opening or closing tag found in a text: its span and its exact spelling."""

    start: int
    end: int
    closing: bool
    text: str


def iter_tags(text: str, name: str) -> Iterator[Tag]:
    """The opening and closing tags called `name` in `text`, in order (see the module rules)."""
    rx = _tag_rx(check_tag_name(name))
    if "<" in text:
        for m in rx.finditer(text):
            yield Tag(m.start(), m.end(), bool(m.group(1)), m.group(0))


def find_tags(text: str, name: str) -> list[Tag]:
    """Every opening and closing tag called `name` in `text`, in order (see the module rules)."""
    return list(iter_tags(text, name))


@dataclass(frozen=True)
class ThinkSplit:
    """A response split into its thinking and its final text.

    `final` is the text the rewards grade, ``text[start:stop]``; `closed` says a closing think
    tag was found; `unclosed` says thinking was opened and never closed (the final text stops
    where it opened)."""

    final: str
    start: int
    stop: int
    closed: bool
    unclosed: bool


def split_think(text: str, tag: str = THINK, *, opened: bool = False) -> ThinkSplit:
    """The final text of a response and how its thinking ended (see the module rules).
    `opened`: the response begins inside a think block (its prompt opened it)."""
    check_tag_name(tag)
    last = _last_tag(text, text[::-1], tag, "/", len(text)) if "<" in text else None
    start, closed = (last[1], True) if last is not None else (0, False)
    opening = _tag_rx(tag, "").search(text, start) if "<" in text else None
    if opened and not closed:
        return ThinkSplit("", 0, 0, False, True)
    stop = opening.start() if opening is not None else len(text)
    return ThinkSplit(text[start:stop], start, stop, closed, opening is not None)


@functools.lru_cache(maxsize=64)
def _prefill_rx(name: str) -> re.Pattern[str]:
    return re.compile(r"<[ \t]*" + re.escape(name) + r"[ \t]*>\s*\Z", re.IGNORECASE)


def prompt_opens_think(prompt_text: str, tag: str = THINK) -> bool:
    r"""Whether a prompt ends with an opening think tag (only whitespace after it), as a chat
    template that prefills ``<think>`` renders it: its response begins inside the thinking.

    >>> prompt_opens_think("<|im_start|>assistant\n<think>\n")
    True
    >>> prompt_opens_think("What does <think> mean in a chat template?")
    False
    """
    check_tag_name(tag)
    tail = prompt_text[-256:]
    return "<" in tail and _prefill_rx(tag).search(tail) is not None


def final_text(response_text: str, prompt_text: str = "", tag: str = THINK) -> str:
    r"""The text the rewards grade: the final text of the response (`after_think`), read as
    beginning inside the thinking when its prompt opened it (`prompt_opens_think`).

    >>> final_text("so 2 + 2 = 4</think>The answer is 4.", "Question: 2 + 2?\n<think>\n")
    'The answer is 4.'
    >>> final_text("so the answer is 4", "Question: 2 + 2?\n<think>\n")
    ''
    """
    return split_think(response_text, tag, opened=prompt_opens_think(prompt_text, tag)).final


def after_think(text: str, tag: str = THINK, *, opened: bool = False) -> str:
    """The final text of a response: after its last closing think tag, up to an opening think
    tag that is never closed; the whole text when it has no think tag (nothing when `opened`,
    the response beginning inside a think block, and no tag closes it).

    >>> after_think("<think>2 + 2 is 4</think>The answer is 4.")
    'The answer is 4.'
    >>> after_think("<THINK>hm</THINK> 4")
    ' 4'
    >>> after_think("<think>the answer is 4")
    ''
    """
    return split_think(text, tag, opened=opened).final


def tag_content(text: str, tag: str = ANSWER) -> str | None:
    """The content of the last complete ``<tag>...</tag>`` block, or None when there is none.

    >>> tag_content("<answer>3</answer> then <Answer> 4 </ANSWER>")
    ' 4 '
    >>> tag_content("<answer>unfinished") is None
    True
    """
    check_tag_name(tag)
    if "<" not in text:
        return None
    rev = text[::-1]
    end = _last_tag(text, rev, tag, "/", len(text))
    if end is None:
        return None
    start = _last_tag(text, rev, tag, "", end[0])
    if start is None:
        return None
    return text[start[1] : end[0]]


@functools.lru_cache(maxsize=64)
def _reversed_rx(name: str, kind: str) -> re.Pattern[str]:
    """`_tag_rx` written backwards, to find the last tag as the first one of the reversed text."""
    return re.compile(r">[ \t]*" + re.escape(name[::-1]) + r"[ \t]*(" + kind + r")[ \t]*<",
                      re.IGNORECASE)


def _last_tag(text: str, rev: str, name: str, kind: str, end: int) -> tuple[int, int] | None:
    """The span of the last tag of `kind` (``/`` closing, empty opening) that ends by `end`;
    `rev` is `text` reversed (one C-speed search however many tags come before)."""
    m = _reversed_rx(name, kind).search(rev, len(text) - end)
    return None if m is None else (len(text) - m.end(), len(text) - m.start())


_LANG = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")


class Fence(NamedTuple):
    """One fenced block: its language (the first word of the info string, lowercased; empty
    when untagged), its body, and the span of the whole block (fences included)."""

    lang: str
    body: str
    start: int
    end: int


def fenced_blocks(text: str) -> list[Fence]:
    """The fenced blocks of `text`, in order (see the module rules).

    >>> [(f.lang, f.body) for f in fenced_blocks("Here:\\n```Python\\nprint(1)\\n```\\n")]
    [('python', 'print(1)\\n')]

    One linear pass (a regular expression doing this rescans the rest of the text from every
    unclosed opening, which a response of many openings turns quadratic)."""
    out: list[Fence] = []
    pos = 0
    while (start := text.find("```", pos)) >= 0:
        newline = text.find("\n", start + 3)
        if newline < 0:
            break
        end = text.find("```", newline + 1)
        if end < 0:
            break
        lang = _LANG.match(text, start + 3, newline)
        out.append(Fence((lang.group(1) if lang else "").lower(), text[newline + 1 : end],
                         start, end + 3))
        pos = end + 3
    return out


def last_fence(text: str, langs: frozenset[str] | set[str], *,
               untagged: bool = True) -> Fence | None:
    """The last fenced block tagged with one of `langs` (lowercase); else, with `untagged`,
    the last untagged block; else None."""
    blocks = fenced_blocks(text)
    tagged = [b for b in blocks if b.lang in langs]
    if tagged:
        return tagged[-1]
    if untagged:
        plain = [b for b in blocks if not b.lang]
        if plain:
            return plain[-1]
    return None
