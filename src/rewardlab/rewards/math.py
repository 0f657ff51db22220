r"""Math answer verification: extract the final answer of a response and decide whether it
equals the gold answer.

Two paths:

- the **fast path** runs in the caller's process and never imports sympy: normalisation
  (``$``/``\left``/spacing/``\text`` units/degrees/thousands separators), string equality,
  exact rational arithmetic (integers, decimals, fractions, percentages, scientific notation,
  ``\frac``, integer roots and powers) over the answer's structure (tuples, sets, intervals,
  matrices, equations...), and float refutation of values that are clearly different. Every
  step is bounded (answer length, nesting depth, number sizes), so it is safe in-process.
- the **symbolic path** (sympy) settles what is left — e.g. ``\frac{\sqrt3}{2}`` against
  ``\frac{1}{2}\sqrt{3}`` or two forms of a polynomial — in worker processes, each pair under a
  hard wall-clock timeout enforced by the parent; a pair that times out scores ``error`` and
  the worker is replaced.

`verify` compares two answers; `extract_answer` finds the answer in a response; `math_answer`
is the registered reward doing both over a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from rewardlab.core.reward import reward
from rewardlab.core.text import prompt_opens_think
from rewardlab.core.types import Sample, Score, Status
from rewardlab.rewards._math_compare import FastComparator, Tri, equal, scalars
from rewardlab.rewards._math_extract import (
    DEFAULT_ORDER,
    EXTRACTORS,
    Extraction,
    check_order,
    extract,
    gold_answers,
)
from rewardlab.rewards._math_parse import (
    MathLimit,
    MathParseError,
    Node,
    answer_key,
    exact,
    normalize,
    parse_answer,
    plain_number,
)
from rewardlab.rewards._math_symbolic import close_pool, run_symbolic

__all__ = [
    "BAD_REFERENCE", "DEFAULT_ORDER", "EXTRACTORS", "NO_ANSWER", "Extraction", "Verdict", "close_symbolic_pool",
    "extract_answer", "math_answer", "verify",
]

Path = Literal["fast", "symbolic"]
_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing two answers.

    `equal` is None when no decision could be made (then `reason` says why: the reference
    cannot be used, or the symbolic check timed out or failed). `equal` is False with a
    `reason` when the prediction itself exceeds a limit (size, nesting, list length, a power
    too large): that is the prediction's failure. `path` is the path that decided.
    """

    equal: bool | None
    path: Path
    reason: str | None = None

    @property
    def bad_reference(self) -> bool:
        """Whether the comparison failed because of the reference (a data problem)."""
        return self.equal is None and (self.reason or "").startswith(BAD_REFERENCE)


BAD_REFERENCE = "bad reference: "


def extract_answer(text: str, *, extract_order: Sequence[str] = DEFAULT_ORDER,
                   strip_think: bool = True) -> Extraction | None:
    r"""The final answer of a model response, or None when no extractor finds one.

    `extract_order` lists extractors by precedence (see `EXTRACTORS`): by default an
    ``<answer>`` block, then the last ``\boxed{}`` (unless "the answer is" states a final answer
    after it), then GSM8K's ``####``, then "the answer is", then the final math expression,
    then the last number. `strip_think` reads only the final text (after the last ``</think>``,
    nothing after an unclosed ``<think>``: see `rewardlab.core.text`).
    """
    return extract(text, check_order(extract_order), strip_think=strip_think)


def _structure(normalized: str) -> Node:
    try:
        return parse_answer(normalized)
    except MathParseError:
        key = answer_key(normalized).lower()
        return ("text", key)


def reference_limit(gold: str) -> str | None:
    """Why the gold answer alone exceeds a limit of the fast path (length, nesting, list
    length, number size), or None."""
    try:
        for scalar in scalars(parse_answer(normalize(gold))):
            exact(scalar)
    except MathLimit as exc:
        return str(exc)
    except RecursionError:
        return "answer nested too deeply"
    except MathParseError:
        return None
    return None


def _limit(gold: str, why: str) -> tuple[Tri, str]:
    """A limit met while comparing: the reference's problem when the gold alone meets one,
    else the prediction's failure (not equal, with the reason)."""
    ref = reference_limit(gold)
    if ref is not None:
        return None, f"{BAD_REFERENCE}the reference answer exceeds a limit: {ref}"
    return False, f"limit: {why}"


def fast_check(gold: str, prediction: str, tolerance: float,
               precision: int | None = None) -> tuple[Tri, str | None]:
    """The fast path on two answer strings: (True/False, None) when settled, (None, None)
    when the symbolic path is needed, (False, reason) when the prediction exceeds a limit,
    (None, reason) when the reference cannot be used (the reason starts with
    `BAD_REFERENCE`)."""
    try:
        ng = normalize(gold)
        np_ = normalize(prediction)
        if answer_key(ng) == answer_key(np_):
            return True, None
        a = plain_number(ng)
        if a is not None:
            b = plain_number(np_)
            if b is not None:
                return (a == b if precision is None else round(a, precision) == round(b, precision)), None
        try:
            g = parse_answer(ng)
        except MathParseError as exc:
            return None, f"{BAD_REFERENCE}cannot parse the reference answer: {exc}"
        return equal(g, _structure(np_), FastComparator(tolerance, precision)), None
    except MathLimit as exc:
        return _limit(gold, str(exc))
    except RecursionError:
        return _limit(gold, "answer nested too deeply")


def _from_symbolic(score: Score) -> Verdict:
    if score.status is Status.ok:
        return Verdict(bool(score.value), "symbolic", score.reason)
    return Verdict(None, "symbolic", score.reason)


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """One verdict from the verdicts against each acceptable gold answer: equal to any;
    else undecided if a check failed for a reason other than the reference; else not equal
    (with the prediction's limit reason, if any); else (every gold unusable) the reference's
    problem."""
    for v in verdicts:
        if v.equal:
            return v
    failed = [v for v in verdicts if v.equal is None and not v.bad_reference]
    if failed:
        return failed[0]
    wrong = [v for v in verdicts if v.equal is False]
    if wrong:
        return next((v for v in wrong if v.reason), wrong[0])
    return verdicts[0]


def verify(*, gold: Any, prediction: str | float | Fraction, tolerance: float = 1e-9, timeout: float = 5.0,
           isolate: bool = True, precision: int | None = None) -> Verdict:
    r"""Whether `prediction` (an answer, e.g. ``\frac{1}{2}``, ``x = 3``, ``(1, 2]``) equals
    `gold` (an answer string, a number, a GSM8K solution with ``####``, a solution with a
    ``\boxed{}`` answer, or a list of acceptable answers).

    Exact values compare exactly (with `precision`, numbers that agree when rounded to that
    many decimal places are equal); other numbers within relative `tolerance`; no infinite,
    undefined or unevaluable value equals anything. Pairs the fast path cannot settle go to
    sympy in a worker process limited to `timeout` seconds (in this process when `isolate`
    is false). A prediction past a limit is not equal (with the reason); a gold that cannot
    be parsed or is past a limit leaves the verdict undecided (`bad_reference`).
    """
    check_precision(precision)
    golds = gold_answers(gold)
    if not isinstance(prediction, str):
        if isinstance(prediction, bool) or not isinstance(prediction, int | float | Fraction):
            raise TypeError(f"prediction must be a string or a number, not {prediction!r}")
        prediction = gold_answers(prediction)[0]
    pending: list[str] = []
    verdicts: list[Verdict] = []
    for g in golds:
        result, reason = fast_check(g, prediction, tolerance, precision)
        if result is True:
            return Verdict(True, "fast")
        if result is None and reason is None:
            pending.append(g)
        else:
            verdicts.append(Verdict(result, "fast", reason))
    scores = run_symbolic([(g, prediction) for g in pending], tolerance=tolerance,
                          timeout=timeout, isolate=isolate, precision=precision)
    return combine(verdicts + [_from_symbolic(s) for s in scores])


def check_precision(precision: int | None) -> None:
    """Validate a `precision` (decimal places, or None for exact comparison)."""
    if precision is not None and (isinstance(precision, bool) or not isinstance(precision, int)
                                  or not 0 <= precision <= 15):
        raise ValueError(f"precision must be None or a number of decimal places from 0 to 15, not {precision!r}")


def close_symbolic_pool() -> None:
    """Stop the symbolic-path worker processes: the current Runtime's pool workers (they
    restart on the next hard case). Size the pool with ``Runtime(workers=...)``."""
    close_pool()


@dataclass
class _Item:
    """One sample in flight: its golds, extraction and the verdicts so far."""

    golds: list[str]
    found: Extraction
    verdicts: list[Verdict]


def _details(item: _Item, path: Path) -> dict[str, Any]:
    gold: Any = item.golds[0] if len(item.golds) == 1 else item.golds
    return {"extracted": item.found.answer[:_DETAIL_CHARS], "extractor": item.found.method,
            "gold": gold, "path": path}


def _first_pass(sample: Sample, order: tuple[str, ...], no_answer: str, strip_think: bool,
                tolerance: float, precision: int | None) -> Score | tuple[_Item, list[str]]:
    """Reference, extraction and the fast path for one sample: a final `Score`, or the
    sample's state and the gold answers left to the symbolic path."""
    if sample.reference is None:
        return Score.abstain("no reference answer")
    try:
        golds = gold_answers(sample.reference)
    except (TypeError, ValueError) as exc:
        return Score.error(f"bad reference: {exc}")
    found = extract(sample.response_text, order, strip_think=strip_think,
                    opened=strip_think and prompt_opens_think(sample.prompt_text), prompt=sample.prompt_text)
    if found is None:
        details = {"extracted": None, "gold": golds[0] if len(golds) == 1 else golds}
        if no_answer == "abstain":
            return Score.abstain(NO_ANSWER, details=details)
        return Score.of(0.0, reason=NO_ANSWER, details=details)
    item = _Item(golds, found, [])
    open_golds: list[str] = []
    for g in golds:
        result, reason = fast_check(g, found.answer, tolerance, precision)
        if result is True:
            item.verdicts = [Verdict(True, "fast")]
            return item, []
        if result is None and reason is None:
            open_golds.append(g)
        else:
            item.verdicts.append(Verdict(result, "fast", reason))
    return item, open_golds


NO_ANSWER = "no answer found"


def _final(item: _Item) -> Score:
    verdict = combine(item.verdicts)
    ran = "symbolic" if any(v.path == "symbolic" for v in item.verdicts) else "fast"
    details = _details(item, verdict.path if verdict.equal else ran)
    if verdict.equal is None:
        reason = verdict.reason or "undecided"
        if verdict.bad_reference:
            return Score.abstain(reason, details=details)
        return Score.error(reason, details=details)
    return Score.of(float(verdict.equal), reason=verdict.reason, details=details)


@reward(range=(0, 1), kind="inline", batched=True, version="3")
def math_answer(samples: list[Sample], *, extract_order: Sequence[str] = DEFAULT_ORDER,
                no_answer: Literal["abstain", "wrong"] = "wrong", tolerance: float = 1e-9,
                timeout: float = 5.0, strip_think: bool = True, precision: int | None = None) -> list[Score]:
    r"""1 if the response's final answer equals the reference answer, else 0 (higher is better).

    A response with no extractable answer scores 0 with the reason "no answer found" (abstains
    instead with ``no_answer="abstain"``). An answer past a limit (length, nesting, list
    length, a power too large) scores 0 with the limit as the reason: that is the response's
    failure. A reference that cannot be parsed or is past a limit abstains with a reason
    starting "bad reference" (a data problem). A symbolic check that times out or crashes is
    tried again on a warm worker right after a check of the same reference: if it fails again
    the answer exceeded the limits (0, with the reason), otherwise the error stands (error).

    The reference is a number, a MATH-style answer string, a GSM8K solution (the part after
    ``####``), a solution with a ``\boxed{}`` answer, or a list of acceptable answers. The
    answer is extracted by `extract_order` (default: ``<answer>`` tag, ``\boxed{}`` unless a
    final answer is stated after it, ``####``, "the answer is", the last math expression, last
    number; these last two skip numbers copied from the prompt, so pasting the question back is
    not an answer), in the final text of the response (`strip_think`: after the thinking, read as
    `rewardlab.core.text` says, a prompt ending with ``<think>`` opening it). Numbers compare
    exactly (`precision`: equal when they agree rounded to that many
    decimal places). Extraction and the fast path run in this process; only
    pairs they cannot settle go to sympy in worker processes, each limited to `timeout`
    seconds. No infinite, undefined or overflowing value equals anything. `details` holds the
    extracted answer, the extractor, the gold answer and the path that decided ("fast" or
    "symbolic").

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.math import math_answer
    >>> check = math_answer()
    >>> half = check(Sample(response=r"Half of it is left, so the answer is $\boxed{\frac{1}{2}}$.",
    ...                     reference="0.5"))
    >>> half.value, half.details["extracted"], half.details["path"]
    (1.0, '\\frac{1}{2}', 'fast')
    >>> check(Sample(response="48 + 24 = 70\n#### 70",
    ...              reference="Natalia sold 48/2 = 24 clips in May.\n#### 72")).value
    0.0
    """
    order = check_order(extract_order)
    check_precision(precision)
    if no_answer not in ("abstain", "wrong"):
        raise ValueError(f"no_answer must be 'abstain' or 'wrong', not {no_answer!r}")
    out: list[Score | None] = [None] * len(samples)
    items: dict[int, _Item] = {}
    hard: list[tuple[int, str, str]] = []
    for i, sample in enumerate(samples):
        try:
            first = _first_pass(sample, order, no_answer, strip_think, tolerance, precision)
        except Exception as exc:  # fail closed: this sample errors, the batch goes on
            out[i] = Score.error(f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(first, Score):
            out[i] = first
            continue
        item, open_golds = first
        items[i] = item
        hard.extend((i, g, item.found.answer) for g in open_golds)
    if hard:
        scores = run_symbolic([(g, p) for _, g, p in hard], tolerance=tolerance,
                              timeout=timeout, precision=precision)
        for (i, _, _), score in zip(hard, scores, strict=True):
            items[i].verdicts.append(_from_symbolic(score))
    for i, item in items.items():
        out[i] = _final(item)
    return [s if s is not None else Score.error("internal: unscored sample") for s in out]
