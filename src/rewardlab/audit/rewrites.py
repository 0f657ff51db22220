r"""Meaning-preserving rewrites of responses, for robustness probes (reWordBench-style: Wu et al.,
EMNLP 2025, arXiv 2503.11751, transforms that keep what a response says, or applied to both sides
of a pair keep which one is better).

The set is open: a registry like the rewards'. A rewrite is a pure function ``(text, rng) -> text``
declared with `@rewrite`; `apply_rewrite` runs it deterministically (its random choices depend
only on the seed, the rewrite's name and the text). A robustness probe applies each rewrite to
the chosen and the rejected response alike; a reward that ranks by content keeps its ranking.

Built-in rewrites (each leaves a text it does not apply to unchanged; math, code and LaTeX
spans are never touched by the prose rewrites):

- ``double_newlines`` (whitespace): every line break doubled;
- ``trailing_whitespace`` (whitespace): spaces at the end of each line and a final newline;
- ``plain_text`` (markdown vs plain): markdown headings, emphasis and bullets dropped;
- ``markdown_bold_lead`` (markdown): the first line set in bold;
- ``space_before_punctuation`` (punctuation): ``word ,`` instead of ``word,`` (never inside numbers);
- ``lowercase`` (casing): prose lower-cased outside math, code and LaTeX;
- ``quoted`` (quoting): the response set as a markdown block quote;
- ``boxed_to_answer_is`` (answer format): the last ``\boxed{X}`` written "The answer is X.";
- ``answer_to_boxed`` (answer format): a final "The answer is X" / ``#### X`` written ``\boxed{X}``;
- ``shuffle_bullets`` (list order): the items of each unordered bullet list reordered
  (numbered lists, whose order may matter, are left alone);
- ``append_irrelevant`` (appended text): a neutral sentence that answers nothing appended.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["REWRITES", "Rewrite", "UnknownRewriteError", "apply_rewrite", "get_rewrite", "rewrite",
           "rewrite_names"]

RewriteFn = Callable[[str, random.Random], str]


class UnknownRewriteError(KeyError):
    """No rewrite is registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown rewrite"


@dataclass(frozen=True)
class Rewrite:
    """A registered rewrite: `name`, `family` (what it changes, e.g. ``whitespace``), a one-line
    `description`, and the function."""

    name: str
    family: str
    description: str
    fn: RewriteFn

    def __call__(self, text: str, seed: int = 0) -> str:
        return apply_rewrite(self, text, seed)


REWRITES: dict[str, Rewrite] = {}
"""Every registered rewrite by name, in registration order."""


def rewrite(name: str | None = None, *, family: str, description: str | None = None,
            replace: bool = False) -> Callable[[RewriteFn], RewriteFn]:
    """Register ``fn(text, rng) -> text`` as a rewrite (name: the function's, unless given).
    The description is the docstring's first line unless given. Registering a taken name
    raises unless `replace`."""

    def wrap(fn: RewriteFn) -> RewriteFn:
        key = name or fn.__name__
        if key in REWRITES and not replace:
            raise ValueError(f"a rewrite named {key!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        REWRITES[key] = Rewrite(key, family, description or (doc[0] if doc else ""), fn)
        return fn

    return wrap


def rewrite_names() -> list[str]:
    """The registered rewrites' names, in registration order."""
    return list(REWRITES)


def get_rewrite(name: str | Rewrite) -> Rewrite:
    """The rewrite registered as `name`."""
    if isinstance(name, Rewrite):
        return name
    try:
        return REWRITES[name]
    except KeyError:
        raise UnknownRewriteError(f"unknown rewrite {name!r}; registered: {', '.join(REWRITES)}") from None


def apply_rewrite(which: str | Rewrite, text: str, seed: int = 0) -> str:
    """`text` rewritten by `which`; the same seed, rewrite and text give the same output in any
    process."""
    rw = get_rewrite(which)
    digest = hashlib.sha256(f"{seed}\0{rw.name}\0{text}".encode()).digest()
    return rw.fn(text, random.Random(int.from_bytes(digest[:8], "big")))


# -- protected spans: math, code and LaTeX commands are never rewritten by prose rewrites -------
_PROTECTED = re.compile(
    r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\\\(.*?\\\)|\\\[.*?\\\]"
    r"|\\[A-Za-z]+(?:\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\})*",
    re.S,
)


def _outside_protected(text: str, fn: Callable[[str], str]) -> str:
    """`fn` applied to the prose between protected spans only."""
    out: list[str] = []
    last = 0
    for m in _PROTECTED.finditer(text):
        out.append(fn(text[last:m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(fn(text[last:]))
    return "".join(out)


# -- whitespace ------------------------------------------------------------------------------------
@rewrite(family="whitespace")
def double_newlines(text: str, rng: random.Random) -> str:
    """Every line break doubled."""
    return text.replace("\n", "\n\n")


@rewrite(family="whitespace")
def trailing_whitespace(text: str, rng: random.Random) -> str:
    """Two spaces at the end of every line, and a final newline."""
    return "\n".join(line + "  " for line in text.split("\n")) + "\n"


# -- markdown vs plain -----------------------------------------------------------------------------
_HEADING = re.compile(r"^#{1,6}\s+", re.M)
_BULLET = re.compile(r"^(\s*)[*+-]\s+", re.M)
_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")


@rewrite(family="markdown")
def plain_text(text: str, rng: random.Random) -> str:
    """Markdown headings, bold and bullet markers dropped (bullets become plain lines)."""
    def prose(s: str) -> str:
        s = _HEADING.sub("", s)
        s = _EMPHASIS.sub(r"\2", s)
        return _BULLET.sub(r"\1", s)
    return _outside_protected(text, prose)


@rewrite(family="markdown")
def markdown_bold_lead(text: str, rng: random.Random) -> str:
    """The first non-empty line set in bold (``**...**``), unless it holds math or code or is
    also the last line (where a final answer is read)."""
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i in range(len(lines)):
        if lines[i].strip():
            if (i == last or _PROTECTED.search(lines[i]) or "$" in lines[i]
                    or lines[i].lstrip().startswith("#")):
                return text
            body = lines[i].strip()
            if not (body.startswith("**") and body.endswith("**")):
                lines[i] = lines[i].replace(body, f"**{body}**", 1)
            return "\n".join(lines)
    return text


# -- punctuation and casing ------------------------------------------------------------------------
_PUNCT = re.compile(r"(?<=\S)([,;:!?]|\.(?!\.))(?=\s|$)")


@rewrite(family="punctuation")
def space_before_punctuation(text: str, rng: random.Random) -> str:
    """A space before each comma, semicolon, colon, full stop, ! and ? that ends a word
    (``word ,``); never inside numbers, math or code."""
    return _outside_protected(text, lambda s: _PUNCT.sub(r" \1", s))


@rewrite(family="casing")
def lowercase(text: str, rng: random.Random) -> str:
    """Prose lower-cased; math, code and LaTeX kept as they are."""
    return _outside_protected(text, str.lower)


# -- quoting ---------------------------------------------------------------------------------------
@rewrite(family="quoting")
def quoted(text: str, rng: random.Random) -> str:
    """The whole response set as a markdown block quote (``> `` before every line)."""
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


# -- answer format ---------------------------------------------------------------------------------
def _last_box(text: str) -> tuple[int, int, str] | None:
    """(start, end, content) of the last ``\\boxed{...}``."""
    from rewardlab.rewards._math_parse import match_brace

    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    close = match_brace(text, start + len("\\boxed"))
    if close < 0:
        return None
    return start, close + 1, text[start + len("\\boxed{"):close]


@rewrite(family="answer format")
def boxed_to_answer_is(text: str, rng: random.Random) -> str:
    r"""The last ``\boxed{X}`` (and a ``$...$`` around it) written as "The answer is X."."""
    box = _last_box(text)
    if box is None:
        return text
    start, end, content = box
    # take a math delimiter hugging the box along with it
    left, right = text[:start], text[end:]
    for open_, close in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if left.rstrip().endswith(open_) and right.lstrip().startswith(close):
            left = left.rstrip()[: -len(open_)]
            right = right.lstrip()[len(close):]
            break
    sep = "" if not left or left.endswith(("\n", " ")) else " "
    value = content.strip()
    math = f"${value}$" if re.search(r"\\|\^|_|\{", value) else value
    tail = right.lstrip(" .")
    return f"{left}{sep}The answer is {math}." + (f" {tail}" if tail and not tail.startswith("\n") else tail)


_STATED = re.compile(r"(?:(?:the\s+)?(?:final\s+)?answer\s+is:?|####)\s*\$?([^\n$]+?)\$?\s*\.?\s*$",
                     re.I)


@rewrite(family="answer format")
def answer_to_boxed(text: str, rng: random.Random) -> str:
    r"""A final "The answer is X" (or GSM8K's ``#### X``) on the last line written ``\boxed{X}``."""
    if "\\boxed" in text:
        return text
    lines = text.rstrip().split("\n")
    m = _STATED.search(lines[-1])
    if m is None:
        return text
    lines[-1] = lines[-1][: m.start()] + f"The answer is $\\boxed{{{m.group(1).strip()}}}$."
    return "\n".join(lines)


# -- list order ------------------------------------------------------------------------------------
_ITEM = re.compile(r"^[ \t]*[*+-][ \t]+\S")


@rewrite(family="list order")
def shuffle_bullets(text: str, rng: random.Random) -> str:
    """The items of each unordered (``-``, ``*``, ``+``) list of two or more single-line items
    reordered at random (a different order whenever the items differ); numbered lists stay."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if not _ITEM.match(lines[i]):
            i += 1
            continue
        j = i
        while j < len(lines) and _ITEM.match(lines[j]):
            j += 1
        block = lines[i:j]
        if len(set(block)) > 1:
            order = block[:]
            while order == block:
                rng.shuffle(order)
            lines[i:j] = order
        i = j
    return "\n".join(lines)


# -- appended irrelevant text ----------------------------------------------------------------------
IRRELEVANT = (
    "The sky appears blue because air scatters short wavelengths of sunlight more than long ones.",
    "Honey stored in a sealed jar can keep for a very long time.",
    "A standard chessboard has sixty-four squares.",
    "Octopuses have three hearts.",
)


@rewrite(family="appended text")
def append_irrelevant(text: str, rng: random.Random) -> str:
    """A neutral sentence that answers nothing appended in a new paragraph (ranking-preserving
    when both sides get it: the content that decides the preference is unchanged)."""
    return f"{text.rstrip()}\n\n{rng.choice(IRRELEVANT)}"
