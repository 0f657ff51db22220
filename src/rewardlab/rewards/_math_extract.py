"""Final-answer extraction from model output, and gold answers from references.

Extractors, tried in the order the caller gives (the first that finds something wins):

- ``answer_tag``: the last ``<answer>...</answer>`` block (a ``\\boxed{}`` or "the answer is"
  inside it is taken in turn);
- ``boxed``: the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces; ``\\boxed 5`` too; of
  nested boxes the innermost);
  boxes separated only by commas, spacing, "and" or "or" are joined into one answer
  (``\\boxed{2}, \\boxed{3}``; boxes given as alternatives match a single gold answer only
  when every one of them equals it);
- ``gsm8k``: the rest of the line after the last ``####``;
- ``answer_is``: after the last "answer is" / "answer:" (also "final answer is"), up to the
  end of the sentence;
- ``last_number``: the last number in the text (integers, decimals, thousands separators,
  fractions ``a/b`` and ``\\frac{a}{b}``, percentages).

Scans are bounded: regular expressions look at the last `WINDOW` characters and a box may not
exceed `MAX_BOX` characters, so extraction costs at most a few milliseconds on any input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rewardlab.rewards._math_parse import match_brace

EXTRACTORS = ("answer_tag", "boxed", "gsm8k", "answer_is", "last_number")
DEFAULT_ORDER: tuple[str, ...] = EXTRACTORS
WINDOW = 20_000
MAX_BOX = 20_000


@dataclass(frozen=True)
class Extraction:
    """An extracted answer and the extractor that found it."""

    answer: str
    method: str


def _box_at(text: str, start: int) -> tuple[str, int] | None:
    r"""The content of the box whose command starts at `start`, and the index after it."""
    i = text.find("{", start, start + 12)
    cmd_end = start + (6 if text.startswith(r"\boxed", start) else 5)
    if i < 0 or text[cmd_end:i].strip():
        m = re.compile(r"\s+([^\s$]+)").match(text, cmd_end)
        if m:
            return m.group(1), m.end()
        return None
    j = match_brace(text, i, MAX_BOX)
    return (text[i + 1: j], j + 1) if j >= 0 else None


_JOINER = re.compile(r"^[\s$,;]*(?:(?:and|or|&|\\text\{\s*(?:and|or|,)\s*\}|\\q?quad|\\[()\[\]])"
                     r"[\s$,;]*)*(?:[a-zA-Z]\s*=\s*)?$")


def _last_box_start(text: str, before: int) -> int:
    a = text.rfind(r"\boxed", 0, before)
    b = text.rfind(r"\fbox", 0, before)
    return max(a, b)


_OR = re.compile(r"(?<![a-zA-Z])or(?![a-zA-Z])")


def boxed_parts(text: str) -> tuple[list[str], bool]:
    """The contents of the last run of adjacent boxes, in order, and whether any two of them
    are separated by "or" (alternatives rather than parts of one answer)."""
    pos = len(text)
    found: list[str] = []
    alternatives = False
    nxt_start = -1
    for _ in range(50):
        start = _last_box_start(text, pos)
        if start < 0:
            break
        box = _box_at(text, start)
        pos = start
        if box is None:
            if found:
                break
            continue
        content, end = box
        if found and end > nxt_start:  # a box around the one found: the innermost answers
            nxt_start = start
            continue
        if found:
            between = text[end:nxt_start]
            if not _JOINER.match(between):
                break
            alternatives = alternatives or bool(_OR.search(between))
        found.append(content.strip())
        nxt_start = start
        if len(found) >= 10:
            break
    return list(reversed(found)), alternatives


def extract_boxed(text: str) -> str | None:
    """The last box's content (adjacent boxes joined by ", ")."""
    found, _ = boxed_parts(text)
    return ", ".join(found) if found else None


def extract_answer_tag(text: str) -> str | None:
    end = text.rfind("</answer>")
    if end < 0:
        return None
    start = text.rfind("<answer>", 0, end)
    if start < 0:
        return None
    inner = text[start + len("<answer>"): end].strip()
    if r"\boxed" in inner or r"\fbox" in inner:
        boxed = extract_boxed(inner)
        if boxed is not None:
            return boxed
    said = extract_answer_is(inner)
    return said if said is not None else inner


_ANSWER_IS = re.compile(r"\banswer\s*(?:\*\*)?\s*(?:is\b\s*:?|:|=)", re.I)
_SENTENCE_END = re.compile(r"\.(?=\s|$)|\n")
_FILLER = re.compile(r"^(?:(?:approximately|approx\.?|about|around|roughly|exactly|precisely|"
                     r"equal\s+to|given\s+by|simply|then|therefore|thus)\s+)+", re.I)


def _unescaped(text: str, token: str, start: int) -> int:
    """Index of the next `token` at or after `start` not escaped by a backslash, or -1."""
    i = text.find(token, start)
    while i > 0 and text[i - 1] == "\\":
        i = text.find(token, i + 1)
    return i


def extract_answer_is(text: str) -> str | None:
    tail = text[-WINDOW:]
    last = None
    for last in _ANSWER_IS.finditer(tail):  # noqa: B007 - we want the last match
        pass
    if last is None:
        return None
    rest = _FILLER.sub("", tail[last.end():].lstrip(" :*\t"))
    if rest.lstrip("$ ").startswith((r"\boxed", r"\fbox")):
        boxed = extract_boxed(rest.split("\n", 1)[0])
        if boxed is not None:
            return boxed
    if rest.startswith("$"):
        if rest.startswith("$$"):
            close = _unescaped(rest, "$$", 2)
            if close > 2:
                return rest[2:close].strip() or None
        else:
            close = _unescaped(rest, "$", 1)
            if close > 1:
                return rest[1:close].strip() or None
    if rest.startswith(r"\(") and r"\)" in rest:
        return rest[2: rest.index(r"\)")].strip() or None
    if rest.startswith(r"\[") and r"\]" in rest:
        return rest[2: rest.index(r"\]")].strip() or None
    m = _SENTENCE_END.search(rest)
    answer = rest[: m.start()] if m else rest
    open_ = _unescaped(answer, "$", 0)
    if open_ >= 0:  # prose around inline math: the math is the answer
        close = _unescaped(answer, "$", open_ + 1)
        if close > open_ + 1:
            return answer[open_ + 1: close].strip() or None
    answer = answer.strip().strip("*").strip()
    return answer or None


def extract_gsm8k(text: str) -> str | None:
    i = text.rfind("####")
    if i < 0:
        return None
    line = text[i + 4:].split("\n", 1)[0].strip()
    return line or None


_NUMBER = re.compile(
    r"(?P<sign>-)?(?:\\frac\{(?P<fn>\d+)\}\{(?P<fd>\d+)\}|"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:\s*/\s*(?P<den>\d+))?(?P<pct>\s*%)?)"
)


def extract_last_number(text: str) -> str | None:
    tail = text[-WINDOW:]
    last = None
    for m in _NUMBER.finditer(tail):
        last = m
    if last is None:
        return None
    sign = last.group("sign") or ""
    if sign and last.start() > 0 and tail[last.start() - 1].isalnum():
        sign = ""
    if last.group("fn") is not None:
        return f"{sign}\\frac{{{last.group('fn')}}}{{{last.group('fd')}}}"
    out = sign + last.group("num")
    if last.group("den"):
        out += "/" + last.group("den")
    if last.group("pct"):
        out += "%"
    return out


_FUNCS = {
    "answer_tag": extract_answer_tag,
    "boxed": extract_boxed,
    "gsm8k": extract_gsm8k,
    "answer_is": extract_answer_is,
    "last_number": extract_last_number,
}


def check_order(order: Sequence[str]) -> tuple[str, ...]:
    """Validate an extractor order."""
    if isinstance(order, str):
        order = [order]
    unknown = [o for o in order if o not in _FUNCS]
    if unknown:
        raise ValueError(f"unknown extractor {unknown[0]!r} (known: {', '.join(EXTRACTORS)})")
    if not order:
        raise ValueError("at least one extractor is needed")
    return tuple(order)


def extract(text: str, order: Sequence[str] = DEFAULT_ORDER, *,
            strip_think: bool = True) -> Extraction | None:
    """The final answer of a response, by the first extractor in `order` that finds one."""
    if strip_think and "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    for name in order:
        found = _FUNCS[name](text)
        if found is not None and found.strip():
            return Extraction(found.strip(), name)
    return None


def gold_answers(reference: Any) -> list[str]:
    """The gold answer(s) of a reference: a number, a MATH answer string, a GSM8K solution
    (the part after ``####``), a solution with a ``\\boxed{}`` answer, or a list of those."""
    if isinstance(reference, bool) or reference is None:
        raise TypeError(f"unsupported reference {reference!r}")
    if isinstance(reference, list | tuple):
        out: list[str] = []
        for r in reference:
            out.extend(gold_answers(r))
        if not out:
            raise ValueError("empty reference list")
        return out
    if isinstance(reference, int):
        return [str(reference)]
    if isinstance(reference, float):
        if reference != reference or reference in (float("inf"), float("-inf")):
            raise ValueError(f"non-finite reference {reference!r}")
        return [str(int(reference)) if reference.is_integer() else repr(reference)]
    if isinstance(reference, Fraction):
        return [str(reference)]
    if isinstance(reference, str):
        if "####" in reference:
            found = extract_gsm8k(reference)
            if found:
                return [found]
        if r"\boxed" in reference or r"\fbox" in reference:
            parts, alternatives = boxed_parts(reference)
            if parts and alternatives:  # a solution giving its answer in several forms
                return parts
            if parts:
                return [", ".join(parts)]
        if not reference.strip():
            raise ValueError("empty reference")
        return [reference.strip()]
    raise TypeError(f"unsupported reference type {type(reference).__name__}")
