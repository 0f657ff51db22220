"""Exact match against the reference, after a normalisation that keeps what answers mean."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from rewardlab.core.reward import reward
from rewardlab.core.text import check_tag_name, final_text, tag_content
from rewardlab.core.types import Score

# Dashes and minus signs that NFKC leaves alone: all read as "-" (a sign must survive).
_DASHES = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-",
                         "\u2013": "-", "\u2014": "-", "\ufe63": "-", "\uff0d": "-"})
# An article is dropped only before a word (``the cat``), never when it is the answer (``A``)
# or a name in a formula (``(a, b)``).
_ARTICLES = re.compile(r"\b(?:a|an|the)\s+(?=[^\W\d_])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# Prose and markup punctuation: each becomes a space. A "." followed by a digit is a decimal
# point and stays; everything else (signs, brackets, / ^ % = < > + \ | & ...) stays too.
_PROSE = re.compile(r"\.(?!\d)|[,;:!?\"`*_~#$]")
_APOSTROPHE = re.compile(r"(?<=\w)['\u2019](?=\w)")
_ABBREVIATION = re.compile(r"(?<=[^\W\d_])\.(?=[^\W\d_]\.?)")  # U.S.A. reads as USA
_QUOTES = re.compile(r"['\u2018\u2019\u201c\u201d]")
_OPEN = re.compile(r"([(\[{])\s+")
_CLOSE = re.compile(r"\s+([)\]}])")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str, *, lowercase: bool = True, punctuation: bool = True,
                   articles: bool = True) -> str:
    """Normalise an answer for comparison without changing what it means.

    NFKC, dashes read as ``-``, lowercase; `articles` drops "a/an/the" before a word; with
    `punctuation`, prose and markup marks (``. , ; : ! ? " ' * _ ~ # $`` and backquotes) become
    spaces and thousands separators go, while signs, decimal points, exponents, brackets and
    operators stay: ``-42`` is not ``42``, ``4.2`` is not ``42``, ``(1, 3]`` is not ``[1, 3)``,
    ``1e-5`` is not ``1e5``. Whitespace is squeezed and trimmed (none is kept inside brackets).
    """
    text = unicodedata.normalize("NFKC", text).translate(_DASHES)
    if lowercase:
        text = text.lower()
    if articles:
        text = _ARTICLES.sub(" ", text)
    if punctuation:
        text = _THOUSANDS.sub("", text)
        text = _APOSTROPHE.sub("", text)
        text = _ABBREVIATION.sub("", text)
        text = _QUOTES.sub(" ", text)
        text = _PROSE.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    return _CLOSE.sub(r"\1", _OPEN.sub(r"\1", text))


def _references(reference: Any) -> list[str]:
    if isinstance(reference, list | tuple):
        return [str(r) for r in reference]
    return [str(reference)]


@reward(range=(0, 1))
def exact_match(response_text: str, reference: Any, prompt_text: str = "", *, normalize: bool = True,
                strip_think: bool = True, answer_tag: str | None = "answer") -> float | Score:
    r"""1 if the response equals the reference (any of several) after normalisation, else 0.

    `normalize` applies `normalize_text` (case, spacing, prose punctuation and articles; signs,
    decimal points, exponents and brackets are kept); without it only surrounding whitespace is
    trimmed. `strip_think` compares only the final text (after the last ``</think>``; nothing
    after an unclosed ``<think>``, or one the prompt ends with: see `rewardlab.core.text`);
    with `answer_tag` set, a response whose final text holds an ``<answer>...</answer>`` block
    is compared by the content of its last such block. Abstains when the sample has no
    reference; a reference that is empty after normalisation is a data problem, scored ``error`` (never a match).
    For math answers use `math_answer`, which compares values (``0.5`` equals ``1/2``).

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.match import exact_match
    >>> match = exact_match()
    >>> match(Sample(response="<think>Lyon? No, the capital.</think><answer>Paris.</answer>",
    ...              reference=["Paris", "Paris, France"])).value
    1.0
    >>> match(Sample(response="<answer>-42</answer>", reference="42")).value
    0.0
    """
    if reference is None:
        return Score.abstain("no reference to compare with")
    text = final_text(response_text, prompt_text) if strip_think else response_text
    if answer_tag:
        tagged = tag_content(text, check_tag_name(answer_tag, "answer_tag"))
        if tagged is not None:
            text = tagged
    if normalize:
        text = normalize_text(text)
        refs = [normalize_text(r) for r in _references(reference)]
    else:
        text = text.strip()
        refs = [r.strip() for r in _references(reference)]
    refs = [r for r in refs if r]
    if not refs:
        return Score.error(f"the reference {reference!r:.80} is empty after normalisation "
                           "(a data problem, not a match)")
    return float(text in refs)
