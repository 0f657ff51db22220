"""Length rewards: DAPO's soft overlong penalty, the cosine length scaling of Yeo et al., and the length
itself (`response_length`, the longest-wins / shortest-wins baseline of preference audits).

Length unit (every length reward, in this order of precedence):

1. ``length_key``: a metadata field holding the length the trainer counted (e.g. the number
   of generated tokens); the most faithful, since it uses the policy's own tokenizer;
2. ``tokenizer``: a local tokenizer (a ``tokenizer.json`` file or a directory with one, loaded
   with the `tokenizers` package, or a Hugging Face tokenizer directory loaded with
   `transformers` without network access; or a loaded tokenizer object with an ``encode``
   method); never downloaded; the count excludes special tokens;
3. otherwise characters (Unicode code points) of the response text: the default unit without
   a tokenizer, since nothing can make a text shorter in characters than it is.
   ``unit="words"`` counts whitespace-separated words, which a policy evades (3,000 CJK
   characters, or 2,000 words joined by zero-width spaces, are one "word"): use it only for
   text you trust.

The lengths are in that unit: with the defaults and no tokenizer, ``max_length`` counts
characters (an English token is about 4 characters, a CJK one 1 to 2), so give a tokenizer or
``length_key`` to count the tokens a paper's setting means. ``details`` always says which unit
was used. The response text is measured whole (the think block included), as a trainer's
generation limit counts it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rewardlab.core.reward import reward
from rewardlab.core.settings import splice
from rewardlab.core.types import Score

Unit = Literal["auto", "tokens", "words", "chars"]


@functools.lru_cache(maxsize=8)
def load_tokenizer(path: str) -> Any:
    """A tokenizer with an ``encode`` method, loaded from a local path (never from a hub)."""
    p = Path(path).expanduser()
    file = p if p.is_file() else p / "tokenizer.json"
    if file.is_file():
        try:
            from tokenizers import Tokenizer
        except ImportError:
            pass
        else:
            tok = Tokenizer.from_file(str(file))
            # a tokenizer.json saved for a model often truncates (e.g. to 128 or 512 tokens) and
            # pads: a length measured through it would be capped, so both are switched off
            tok.no_truncation()
            tok.no_padding()
            return tok
    if p.is_dir():
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ValueError(
                f"cannot load the tokenizer at {path}: install `tokenizers` (for tokenizer.json) "
                "or `transformers`") from None
        return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    raise ValueError(f"no tokenizer at {path} (give a tokenizer.json file or a directory)")


def count_tokens(text: str, tokenizer: Any) -> int:
    """Tokens in `text` without special tokens, for a `tokenizers` or `transformers` tokenizer.

    With a `tokenizers` tokenizer, an unknown token counts one per character it covers (a
    WordPiece vocabulary turns a "word" of over 100 characters, e.g. 2,000 words joined by
    zero-width spaces, into one unknown token). A `tokenizers` object that truncates or pads
    is refused: its counts would be capped."""
    if getattr(tokenizer, "truncation", None) is not None or \
            getattr(tokenizer, "padding", None) is not None:
        raise ValueError("the tokenizer truncates or pads, so lengths would be capped: call "
                         "no_truncation() and no_padding() on it, or give its path")
    enc = tokenizer.encode(text, add_special_tokens=False)
    if not hasattr(enc, "ids"):
        return len(enc)
    model = getattr(tokenizer, "model", None)
    unk = getattr(model, "unk_token", None)
    if unk is None:
        return len(enc.ids)
    return sum(max(1, end - start) if token == unk else 1
               for token, (start, end) in zip(enc.tokens, enc.offsets, strict=True))


def measure(text: str, metadata: dict[str, Any], *, unit: Unit = "auto",
            tokenizer: str | Any | None = None, length_key: str | None = None) -> tuple[int, str]:
    """The length of `text` and its unit (see the module docstring for the precedence)."""
    if length_key is not None:
        if length_key not in metadata:
            raise ValueError(f"metadata field {length_key!r} (the length) is missing")
        raw = metadata[length_key]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0 \
                or not math.isfinite(raw) or raw != int(raw):
            raise ValueError(f"metadata field {length_key!r} is {raw!r}, not a length")
        return int(raw), f"metadata:{length_key}"
    if unit not in ("auto", "tokens", "words", "chars"):
        raise ValueError(f"unit must be auto, tokens, words or chars, not {unit!r}")
    if unit == "auto":
        unit = "tokens" if tokenizer is not None else "chars"
    if unit == "tokens":
        if tokenizer is None or tokenizer == "":
            raise ValueError("unit 'tokens' needs a tokenizer (or use length_key)")
        if isinstance(tokenizer, str | Path):
            return count_tokens(text, load_tokenizer(str(tokenizer))), f"tokens:{tokenizer}"
        if not callable(getattr(tokenizer, "encode", None)):
            raise ValueError(f"tokenizer must be a local path or have an encode method, not "
                             f"{type(tokenizer).__name__}")
        return count_tokens(text, tokenizer), f"tokens:{type(tokenizer).__name__}"
    if unit == "words":
        return len(text.split()), "words"
    return len(text), "chars"


@dataclass(frozen=True)
class LengthSettings:
    """How both length rewards count a response, declared once and written flat among their
    parameters: `length_key` (a metadata field holding the trainer's count), else `tokenizer` (a
    local path or an object with ``encode``), else `unit` (``auto``: tokens with a tokenizer,
    else characters; ``words`` and ``chars`` on request). See the module docstring."""

    unit: Unit = "auto"
    tokenizer: str | Any | None = None
    length_key: str | None = None

    def __post_init__(self) -> None:
        if self.unit not in ("auto", "tokens", "words", "chars"):
            raise ValueError(f"unit must be auto, tokens, words or chars, not {self.unit!r}")

    def measure(self, text: str, metadata: dict[str, Any]) -> tuple[int, str]:
        """The length of `text` and its unit."""
        return measure(text, metadata, unit=self.unit, tokenizer=self.tokenizer,
                       length_key=self.length_key)


with_length_settings = splice(LengthSettings)


# -- DAPO overlong penalty -------------------------------------------------------------------


def overlong_value(length: float, max_length: float, cache_length: float) -> float:
    """DAPO's soft overlong punishment (Yu et al. 2025, eq. 13):

    0 when length <= max_length - cache_length; ((max_length - cache_length) - length) /
    cache_length in between (linear from 0 down to -1); -1 when length > max_length.
    """
    if not 0 < cache_length <= max_length:
        raise ValueError(
            f"need 0 < cache_length <= max_length, got {cache_length:g} and {max_length:g}")
    start = max_length - cache_length
    if length <= start:
        return 0.0
    if length <= max_length:
        return (start - length) / cache_length
    return -1.0


@reward(range=(-1, 0))
@with_length_settings
def overlong_penalty(response_text: str, metadata: dict[str, Any], *, max_length: int = 20480,
                     cache_length: int = 4096, **settings: Any) -> Score:
    """DAPO overlong penalty in [-1, 0] on the length in tokens (tokenizer) or else characters.

    0 until max_length - cache_length, -1 from max_length; between the two it falls linearly.
    Higher is better.

    From DAPO (Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at
    Scale"), whose setting was max_length=20480, cache_length=4096 tokens (the defaults). The
    length is counted as the module docstring says: tokens with `length_key` or `tokenizer`,
    else characters (then the defaults count characters, a stricter limit than the paper's
    tokens). It is added to a task reward in a weighted sum; a multiplicative `penalty` node
    needs a factor in [0, 1], which this is not. `unit`, `tokenizer`, `length_key`: see
    `LengthSettings`.

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.length import overlong_penalty
    >>> penalty = overlong_penalty(max_length=1000, cache_length=200, length_key="n_tokens")
    >>> [penalty(Sample(response="...", metadata={"n_tokens": n})).value for n in (700, 900, 1200)]
    [0.0, -0.5, -1.0]
    >>> overlong_penalty(max_length=100, cache_length=20)(Sample(response="x" * 90)).details
    {'length': 90, 'unit': 'chars'}
    """
    n, used = LengthSettings(**settings).measure(response_text, metadata)
    return Score.of(overlong_value(n, max_length, cache_length),
                    details={"length": n, "unit": used})


# -- cosine length scaling -------------------------------------------------------------------


def cosine_value(length: float, correct: bool, *, max_length: float, r0_correct: float,
                 rL_correct: float, r0_wrong: float, rL_wrong: float, exceed: float) -> float:
    """Cosine length-scaled reward (Yeo et al. 2025, "Demystifying Long Chain-of-Thought
    Reasoning in LLMs"), for a length t and L = max_length:

        r(t) = r_L + (r_0 - r_L) * (1 + cos(pi * t / L)) / 2      for t < L
        r(t) = exceed                                             for t >= L

    with (r_0, r_L) = (r0_correct, rL_correct) for a correct answer and (r0_wrong, rL_wrong)
    for a wrong one: r(0) = r_0, r(L/2) = (r_0 + r_L) / 2, and r tends to r_L at L.
    """
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length:g}")
    if length >= max_length:
        return exceed
    r0, rl = (r0_correct, rL_correct) if correct else (r0_wrong, rL_wrong)
    return rl + (r0 - rl) * (1.0 + math.cos(math.pi * length / max_length)) / 2.0


def _correctness(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise ValueError(f"metadata field {key!r} is {value!r}; expected true/false or 1/0")


def _cosine_range(p: dict[str, Any]) -> tuple[float, float]:
    """The values the cosine schedule can take with these parameters."""
    values = [p["r0_correct"], p["rL_correct"], p["r0_wrong"], p["rL_wrong"], p["exceed"]]
    if p["max_length"] <= 0:
        raise ValueError(f"max_length must be positive, got {p['max_length']}")
    return min(values), max(values)


@reward(range=_cosine_range)
@with_length_settings
def cosine_length(response_text: str, reference: Any, metadata: dict[str, Any],
                  prompt_text: str = "", *,
                  max_length: int = 4096, r0_correct: float = 0.2, rL_correct: float = 0.1,
                  r0_wrong: float = -1.0, rL_wrong: float = 0.0, exceed: float = -1.0,
                  correct_key: str = "correct", check_answer: bool = True,
                  **settings: Any) -> Score:
    """Cosine length-scaled correctness in [-1, 1] by default; higher is better (Yeo et al. 2025).

    Within [min, max] of its r values; length in tokens (tokenizer) or characters.

    Short correct answers earn most, short wrong answers lose most.

    The value is `cosine_value` (r_0 at length 0 easing to r_L at `max_length` along a half
    cosine; `exceed` at or past `max_length`). Correctness is the metadata field
    `correct_key` (true/false or 1/0) when present; otherwise, with `check_answer`, whether
    `exact_match` accepts the response against the reference (the content of its last
    ``<answer>`` block when it has one); with neither the reward abstains. The defaults are the
    paper's setting (r_0^c=2, r_L^c=1, r_0^w=-10, r_L^w=0, r_e=-10) divided by 10, so that the
    reward stays in [-1, 1]; give it weight 10 in a spec (or pass the paper's values: the
    declared range follows the parameters) to recover the paper's scale. The length unit is as
    in the module docstring: tokens with `length_key` or `tokenizer`, else characters (then
    `max_length` counts characters). For math answers, give correctness from `math_answer`
    through `correct_key` (exact_match compares strings: it keeps signs, decimal points and
    brackets, but ``0.5`` is not ``1/2`` to it).

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.length import cosine_length
    >>> scaled = cosine_length(max_length=1000)
    >>> right = scaled(Sample(response="<answer>Paris</answer>", reference="Paris"))
    >>> round(right.value, 3), right.details
    (0.2, {'length': 22, 'unit': 'chars', 'correct': True, 'correct_from': 'exact_match'})
    >>> round(scaled(Sample(response="<answer>Lyon</answer>", reference="Paris")).value, 3)
    -0.999
    """
    values = {"r0_correct": r0_correct, "rL_correct": rL_correct, "r0_wrong": r0_wrong,
              "rL_wrong": rL_wrong, "exceed": exceed}
    if correct_key in metadata and metadata[correct_key] is not None:
        correct = _correctness(metadata[correct_key], correct_key)
        source = f"metadata:{correct_key}"
    elif check_answer and reference is not None:
        from rewardlab.rewards.match import exact_match

        verdict = exact_match.fn(response_text, reference, prompt_text)
        if isinstance(verdict, Score):
            if not verdict.ok:
                return verdict
            verdict = verdict.value
        correct = bool(verdict)
        source = "exact_match"
    else:
        why = "the sample has no reference" if check_answer else "check_answer is off"
        return Score.abstain(f"no correctness: metadata field {correct_key!r} is missing "
                             f"and {why}")
    n, used = LengthSettings(**settings).measure(response_text, metadata)
    value = cosine_value(n, correct, max_length=max_length, **values)
    return Score.of(value, details={"length": n, "unit": used, "correct": correct,
                                    "correct_from": source})


# -- the length itself, as a baseline --------------------------------------------------------


def _length_range(p: dict[str, Any]) -> tuple[float, float]:
    if p["prefer"] not in ("longer", "shorter"):
        raise ValueError(f"prefer must be 'longer' or 'shorter', not {p['prefer']!r}")
    return (0.0, math.inf) if p["prefer"] == "longer" else (-math.inf, 0.0)


@reward(range=_length_range)
@with_length_settings
def response_length(response_text: str, metadata: dict[str, Any], *, prefer: str = "longer",
                    **settings: Any) -> Score:
    """Length in [0, inf) (longer wins), or its negation (shorter wins); higher is better.

    ``prefer="longer"`` scores the response's length, ``"shorter"`` its negation: the
    content-blind longest-wins / shortest-wins baseline that any reward's preference accuracy
    should be compared with.

    An audit baseline, not a training reward: a policy maximises it by padding (or, with
    ``"shorter"``, by answering nothing). The length is counted as the module docstring says
    (characters by default).

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.length import response_length
    >>> longer, shorter = response_length(), response_length(prefer="shorter")
    >>> longer(Sample(response="four")).value, shorter(Sample(response="four")).value
    (4.0, -4.0)
    """
    if prefer not in ("longer", "shorter"):
        raise ValueError(f"prefer must be 'longer' or 'shorter', not {prefer!r}")
    n, used = LengthSettings(**settings).measure(response_text, metadata)
    return Score.of(float(n) if prefer == "longer" else -float(n), details={"length": n, "unit": used})
