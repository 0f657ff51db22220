"""Reference similarity: sentence BLEU and chrF (sacrebleu) and ROUGE-L F1, in [0, 1].

The reference is a text or a list of texts (several references are allowed by all three);
a sample without one abstains. By default only the response's final text is scored (after its
last ``</think>``, nothing after an unclosed ``<think>`` or one its prompt ends with: see
`rewardlab.core.text`).
BLEU as a reward for instruction following is BLEUBERI (Chang et al. 2025, "BLEUBERI: BLEU
is a surprisingly effective reward for instruction following").
"""

from __future__ import annotations

import functools
import re
from typing import Any

from rewardlab.core.reward import reward
from rewardlab.core.text import final_text
from rewardlab.core.types import Score


def references(reference: Any) -> list[str] | Score:
    """The reference texts of a sample, or the non-ok score to return instead."""
    if reference is None:
        return Score.abstain("no reference to compare with")
    refs = list(reference) if isinstance(reference, list | tuple) else [reference]
    if not all(isinstance(r, str) for r in refs):
        kinds = sorted({type(r).__name__ for r in refs if not isinstance(r, str)})
        return Score.error(f"reference must be a text or a list of texts, found {', '.join(kinds)}")
    refs = [r for r in refs if r.strip()]
    if not refs:
        return Score.abstain("the reference is empty")
    return refs


# -- sacrebleu ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _bleu(tokenize: str, smooth_method: str, smooth_value: float | None, lowercase: bool,
          max_ngram_order: int) -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=tokenize, smooth_method=smooth_method, smooth_value=smooth_value,
                lowercase=lowercase, max_ngram_order=max_ngram_order, effective_order=True)


@functools.lru_cache(maxsize=32)
def _chrf(char_order: int, word_order: int, beta: int, lowercase: bool, whitespace: bool) -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase,
                whitespace=whitespace, eps_smoothing=False)


@reward(range=(0, 1))
def bleu(response_text: str, reference: Any, prompt_text: str = "", *, tokenize: str = "13a",
         smooth_method: str = "exp", smooth_value: float | None = None,
         lowercase: bool = False, max_ngram_order: int = 4, strip_think: bool = True) -> Score:
    """Sentence BLEU against the reference(s) (sacrebleu), scaled to [0, 1]; higher is better.

    sacrebleu's sentence-level BLEU (``effective_order=True``; `smooth_method` one of ``exp``
    (default), ``floor``, ``add-k``, ``none``; `tokenize` one of sacrebleu's tokenizers,
    ``13a`` by default) divided by 100. Several references are scored together as BLEU does
    (n-gram counts clipped by the maximum over references, closest reference length).
    ``details`` gives the n-gram precisions (in [0, 1]), brevity penalty and lengths.

    >>> from rewardlab import Sample
    >>> tower = "The Eiffel Tower is in Paris and was completed in 1889."
    >>> close = Sample(response="The Eiffel Tower, completed in 1889, is in Paris.", reference=tower)
    >>> vague = Sample(response="It is a tall building in France.", reference=tower)
    >>> from rewardlab.rewards.similarity import bleu
    >>> [round(bleu()(s).value, 3) for s in (close, vague)]
    [0.295, 0.044]
    """
    refs = references(reference)
    if isinstance(refs, Score):
        return refs
    text = final_text(response_text, prompt_text) if strip_think else response_text
    result = _bleu(tokenize, smooth_method, smooth_value, lowercase,
                   max_ngram_order).sentence_score(text, refs)
    return Score.of(min(1.0, max(0.0, result.score / 100.0)), details={
        "precisions": [p / 100.0 for p in result.precisions], "bp": result.bp,
        "sys_len": result.sys_len, "ref_len": result.ref_len})


@reward(range=(0, 1))
def chrf(response_text: str, reference: Any, prompt_text: str = "", *, char_order: int = 6, word_order: int = 0,
         beta: int = 2, lowercase: bool = False, whitespace: bool = False,
         strip_think: bool = True) -> Score:
    """Sentence chrF against the reference(s) (sacrebleu), scaled to [0, 1]; higher is better.

    Character n-gram F-score (Popović 2015) up to `char_order`, recall weighted by `beta`;
    ``word_order=2`` gives chrF++. With several references, the best-scoring one counts (as in
    sacrebleu). Its floor is high: unrelated text in the reference's language shares many
    character n-grams with it, and so does a fixed list of common words sent for every
    question. Compare chrF within a group of responses to one prompt (e.g. GRPO advantages),
    not against an absolute threshold.

    >>> from rewardlab import Sample
    >>> tower = "The Eiffel Tower is in Paris and was completed in 1889."
    >>> close = Sample(response="The Eiffel Tower, completed in 1889, is in Paris.", reference=tower)
    >>> vague = Sample(response="It is a tall building in France.", reference=tower)
    >>> from rewardlab.rewards.similarity import chrf
    >>> [round(chrf()(s).value, 3) for s in (close, vague)]
    [0.731, 0.11]
    """
    refs = references(reference)
    if isinstance(refs, Score):
        return refs
    text = final_text(response_text, prompt_text) if strip_think else response_text
    result = _chrf(char_order, word_order, beta, lowercase, whitespace).sentence_score(text, refs)
    return Score.of(min(1.0, max(0.0, result.score / 100.0)))


# -- ROUGE-L -----------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def rouge_tokens(text: str, lowercase: bool = True) -> list[str]:
    """ROUGE tokens: maximal runs of Unicode letters and digits, lowercased; everything else
    (whitespace, punctuation, underscores) separates tokens and is dropped. On ASCII text these
    are the tokens of the `rouge-score` package's default tokenizer (without stemming); unlike
    it, non-ASCII letters are kept."""
    return _WORD.findall(text.lower() if lowercase else text)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists.

    Bit-parallel dynamic programming (Allison & Dix 1986; Hyyrö 2004): one machine-word-
    parallel update per token of `b` on an |a|-bit integer, O(|a| * |b| / w) time.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m is None:
            continue
        u = v & m
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_scores(hypothesis: list[str], reference: list[str]) -> tuple[float, float, float]:
    """(precision, recall, F1) of ROUGE-L between two token lists (F1: beta = 1)."""
    lcs = lcs_length(reference, hypothesis)
    if lcs == 0:
        return 0.0, 0.0, 0.0
    p, r = lcs / len(hypothesis), lcs / len(reference)
    return p, r, 2 * p * r / (p + r)


@reward(range=(0, 1))
def rouge_l(response_text: str, reference: Any, prompt_text: str = "", *, lowercase: bool = True,
            strip_think: bool = True) -> Score:
    """ROUGE-L F1 of the response against the reference(s), in [0, 1] (higher is better).

    ROUGE-L (Lin 2004): with LCS the longest common subsequence of tokens, P = LCS / |response|,
    R = LCS / |reference|, F1 = 2PR / (P + R). Tokens are as `rouge_tokens` says (word
    characters, lowercased). With several references, the best F1 counts (``details["best"]``
    is its index).

    >>> from rewardlab import Sample
    >>> tower = "The Eiffel Tower is in Paris and was completed in 1889."
    >>> close = Sample(response="The Eiffel Tower, completed in 1889, is in Paris.", reference=tower)
    >>> vague = Sample(response="It is a tall building in France.", reference=tower)
    >>> from rewardlab.rewards.similarity import rouge_l
    >>> [round(rouge_l()(s).value, 3) for s in (close, vague)]
    [0.6, 0.222]
    """
    refs = references(reference)
    if isinstance(refs, Score):
        return refs
    text = final_text(response_text, prompt_text) if strip_think else response_text
    hyp = rouge_tokens(text, lowercase)
    best = (-1.0, 0.0, 0.0, 0)
    for i, ref in enumerate(refs):
        p, r, f = rouge_l_scores(hyp, rouge_tokens(ref, lowercase))
        if f > best[0]:
            best = (f, p, r, i)
    f, p, r, i = best
    return Score.of(f, details={"precision": p, "recall": r, "best": i})
