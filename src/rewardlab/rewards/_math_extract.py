"""Final-answer extraction from model output, and gold answers from references.

Extractors, tried in the order the caller gives (the first that finds something wins; a final
answer stated with "the answer is" after the last box beats the box):

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
- ``last_math``: the final complete math expression of a response without an answer marker
  (its last ``$...$`` / ``\\(...\\)`` / ``\\[...\\]`` block, when it holds a value and no
  number follows it);
- ``last_number``: the last number in the text, never one inside a word such as ``CO2`` (integers,
  decimals, thousands separators,
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

from rewardlab.core.text import ANSWER, after_think, tag_content
from rewardlab.rewards._math_parse import MathLimit, MathParseError, match_brace, normalize, parse_answer

EXTRACTORS = ("answer_tag", "boxed", "gsm8k", "answer_is", "last_math", "last_number")
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
                     r"[\s$,;]*)*(?:[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*)?$")


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
    """The answer in the last ``<answer>...</answer>`` block (`rewardlab.core.text.tag_content`)."""
    inner = tag_content(text, ANSWER)
    if inner is None:
        return None
    inner = inner.strip()
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
    if rest.startswith("$") and not rest.startswith("$$"):
        joined = _joined_math(rest.split("\n", 1)[0])
        if joined:
            return joined
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
    if _PROSE_HEAD.match(answer):  # "Final Answer: The largest $n$ is 34."
        return _from_prose(answer)
    joined = _joined_math(answer)  # prose around inline math: the math is the answer
    if joined:
        return joined
    answer = answer.strip().strip("*").strip()
    return answer or None


_MATH_GAP = re.compile(r"^[\s,;\"'\\]*(?:(?:and|or)[\s,;\"'\\]*)?$")


def _joined_math(text: str) -> str | None:
    """The first inline math block of `text`, with the blocks right after it that only "and",
    "or" or commas separate from it (``$12$ and $13$`` is the answer 12, 13)."""
    blocks = [b for b in _math_blocks(text) if b[2].strip()]
    if not blocks:
        return None
    parts = [blocks[0][2].strip()]
    for prev, nxt in zip(blocks, blocks[1:], strict=False):
        if not _MATH_GAP.match(text[prev[1]: nxt[0]]):
            break
        parts.append(nxt[2].strip())
    return ", ".join(parts)


_PROSE_HEAD = re.compile(r"^[A-Za-z]+[a-z]\s+[A-Za-z]")  # a sentence, not an answer
_IS = re.compile(r"\s(?:is|are|equals|was)\s", re.I)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")


def _from_prose(sentence: str) -> str | None:
    """The answer a prose sentence states: what follows its last "is" (its inline math, or
    its one number when it goes on in words); a sentence naming several numbers states none."""
    tail = sentence
    for m in _IS.finditer(sentence):
        tail = sentence[m.end():]
    open_ = _unescaped(tail, "$", 0)
    if open_ >= 0:
        close = _unescaped(tail, "$", open_ + 1)
        if close > open_ + 1:
            return tail[open_ + 1: close].strip() or None
    if (_WORD.search(tail) or tail is sentence) and len(_NUMBER.findall(tail)) == 1:
        return extract_last_number(tail)  # the one number of the sentence (several: no answer)
    return tail.strip().strip("*").strip() or None


def extract_gsm8k(text: str) -> str | None:
    i = text.rfind("####")
    if i < 0:
        return None
    line = text[i + 4:].split("\n", 1)[0].strip()
    return line or None


_NUMBER = re.compile(
    r"(?<![A-Za-z_\d.])(?P<sign>-)?(?:\\frac\{(?P<fn>\d+)\}\{(?P<fd>\d+)\}|"
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


_MATH_OPEN = re.compile(r"(?<!\\)\$\$|(?<!\\)\$|\\\(|\\\[")
_MATH_CLOSE = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_DIGIT_AFTER = re.compile(r"(?<![A-Za-z_])\d")


def _math_blocks(text: str) -> list[tuple[int, int, str]]:
    """The math blocks of a text ($...$, $$...$$, \\(...\\), \\[...\\]): (start, end, content)."""
    blocks: list[tuple[int, int, str]] = []
    pos = 0
    while len(blocks) < 2000:
        m = _MATH_OPEN.search(text, pos)
        if m is None:
            break
        close = _MATH_CLOSE[m.group()]
        end = _unescaped(text, close, m.end())
        if end < 0:
            break
        blocks.append((m.start(), end + len(close), text[m.end(): end]))
        pos = end + len(close)
    return blocks


def extract_last_math(text: str) -> str | None:
    """The final complete math expression of a response without an answer marker: its last
    math block (with the blocks only commas, "and" or "or" separate from it), when it holds a
    value (a digit, and it reads as math rather than prose) and no number follows it."""
    tail = text[-WINDOW:]
    blocks = _math_blocks(tail)
    if not blocks:
        return None
    _, end, content = blocks[-1]
    parts = [content.strip()]
    for prev, nxt in zip(reversed(blocks[:-1]), reversed(blocks[1:]), strict=True):
        if not _MATH_GAP.match(tail[prev[1]: nxt[0]]):  # "$41$, $42$ and $43$": all of them
            break
        parts.insert(0, prev[2].strip())
    content = ", ".join(p for p in parts if p)
    if _DIGIT_AFTER.search(tail, end) or not _reads_as_math(content, statement=False):
        return None
    return content


_FUNCS = {
    "answer_tag": extract_answer_tag,
    "boxed": extract_boxed,
    "gsm8k": extract_gsm8k,
    "answer_is": extract_answer_is,
    "last_math": extract_last_math,
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


# extractors that read a bare number or expression, with no marker saying it is the answer
UNMARKED = frozenset({"last_math", "last_number"})
_WORD = re.compile(r"\S+")
_EDGE = "\"'`.,;:!?()[]{}$*_"


def _word_key(word: str) -> str:
    return word.strip(_EDGE).lower()


def mask_copied(text: str, prompt: str) -> str:
    """`text` with each word holding a digit blanked out (same length) when a run of three words
    around it, read case- and punctuation-insensitively, is also in `prompt`: a number the response
    copies from the question is not an answer it gives. Only the unmarked extractors read the
    masked text, so a response that pastes the question back cannot earn the question's last
    number as its answer."""
    prompt_words = [_word_key(m.group()) for m in _WORD.finditer(prompt)]
    runs = {tuple(prompt_words[i:i + 3]) for i in range(len(prompt_words) - 2)}
    if not runs:
        return text
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    keys = [_word_key(text[a:b]) for a, b in spans]
    out = list(text)
    for i, (a, b) in enumerate(spans):
        if not any(c.isdigit() for c in keys[i]):
            continue
        if any(tuple(keys[j:j + 3]) in runs for j in range(max(0, i - 2), min(i, len(keys) - 3) + 1)):
            out[a:b] = "_" * (b - a)
    return "".join(out)


def extract(text: str, order: Sequence[str] = DEFAULT_ORDER, *,
            strip_think: bool = True, opened: bool = False, prompt: str | None = None) -> Extraction | None:
    """The final answer of a response, by the first extractor in `order` that finds one; with
    `strip_think`, in its final text (`rewardlab.core.text`; `opened`: the prompt opened the
    thinking). Given the `prompt`, the unmarked extractors (last expression, last number) skip
    numbers copied from it (`mask_copied`)."""
    if strip_think:
        text = after_think(text, opened=opened)
    masked: str | None = None
    for i, name in enumerate(order):
        if name in UNMARKED and prompt:
            masked = mask_copied(text, prompt) if masked is None else masked
            found = _FUNCS[name](masked)
        else:
            found = _FUNCS[name](text)
        if found is not None and found.strip():
            if name == "boxed" and "answer_is" in order[i + 1:]:
                stated = _stated_after_box(text)
                if stated is not None:
                    return Extraction(stated, "answer_is")
            return Extraction(found.strip(), name)
    return None


def _stated_after_box(text: str) -> str | None:
    """A final answer stated ("the final answer is ...") after the last box, which it beats."""
    tail = text[-WINDOW:]
    last = None
    for last in _ANSWER_IS.finditer(tail):  # noqa: B007 - we want the last match
        pass
    if last is None or last.start() < _last_box_start(tail, len(tail)):
        return None
    stated = extract_answer_is(tail)
    return stated.strip() if stated and _reads_as_math(stated) else None


def _reads_as_math(answer: str, *, statement: bool = True) -> bool:
    """Whether an answer holds a value that parses as math (not prose such as "correct"; with
    `statement` false, not a computation either, such as ``2 + 3 = 5``)."""
    if not re.search(r"\d", answer):
        return False
    try:
        node = parse_answer(normalize(answer.strip()))
    except (MathParseError, MathLimit, RecursionError):
        return False
    if node[0] == "eq" and not statement:
        sides = node[1]
        return sides[0][0] == "s" or sides[-1][0] == "s"
    return node[0] != "text"


_SOLUTION_CHARS = 200


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
        if len(reference) > _SOLUTION_CHARS and _ANSWER_IS.search(reference):
            stated = extract_answer_is(reference)  # a worked solution stating its answer
            if stated:
                return [stated]
        if not reference.strip():
            raise ValueError("empty reference")
        return [reference.strip()]
    raise TypeError(f"unsupported reference type {type(reference).__name__}")
