"""Exact match against the reference, after normalisation."""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any

from rewardlab.core.reward import reward
from rewardlab.core.types import Score

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACES = re.compile(r"\s+")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(text: str, *, lowercase: bool = True, punctuation: bool = True,
                   articles: bool = True) -> str:
    """SQuAD-style normalisation: NFKC, lowercase, drop punctuation and articles, squeeze spaces."""
    text = unicodedata.normalize("NFKC", text)
    if lowercase:
        text = text.lower()
    if punctuation:
        text = text.translate(_PUNCT)
    if articles:
        text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _references(reference: Any) -> list[str]:
    if isinstance(reference, list | tuple):
        return [str(r) for r in reference]
    return [str(reference)]


@reward(range=(0, 1))
def exact_match(response_text: str, reference: Any, *, normalize: bool = True,
                strip_think: bool = True, answer_tag: str | None = "answer") -> float | Score:
    """1 if the response equals the reference (any of several) after normalisation, else 0.

    `normalize` applies SQuAD-style normalisation; `strip_think` drops a leading
    `<think>...</think>` block first; with `answer_tag` set, a response holding an
    `<answer>...</answer>` block is compared by the content of its last such block.
    Abstains when the sample has no reference.
    """
    if reference is None:
        return Score.abstain("no reference to compare with")
    text = response_text
    if strip_think and "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if answer_tag:
        end = text.rfind(f"</{answer_tag}>")
        start = text.rfind(f"<{answer_tag}>", 0, max(end, 0))
        if 0 <= start < end:
            text = text[start + len(answer_tag) + 2 : end]
    if normalize:
        text = normalize_text(text)
        refs = [normalize_text(r) for r in _references(reference)]
    else:
        text = text.strip()
        refs = [r.strip() for r in _references(reference)]
    return float(text in refs)
