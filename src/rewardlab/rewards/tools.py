"""Tool-call verifiers: parse the calls a model made and compare them with the expected ones.

Calls are read from OpenAI-style ``tool_calls`` on assistant messages (``arguments`` as a JSON
string or an object), from Hermes-style ``<tool_call>{...}</tool_call>`` blocks in text, or
from bare JSON (one call object or a list of them, optionally in a fenced block), or from
call objects written inside prose (one that does not parse is a format error). A call
object is ``{"name": ..., "arguments": {...}}`` (``parameters`` is accepted for
``arguments``; an OpenAI ``{"type": "function", "function": {...}}`` wrapper is unwrapped) or
``{"name": {...arguments}}``.

Expected calls (the reference) come in two forms:

- plain: ``[{"name": "f", "arguments": {"x": 1}}]``; every argument is required and its value
  is the one accepted value;
- BFCL (``possible_answer``): ``[{"f": {"x": [1, 1.0], "unit": ["cm", ""]}}]``; each argument
  lists its accepted values and ``""`` among them marks the argument optional; nested objects
  follow the same form; an empty list of accepted values accepts the empty list. A row
  ``{"ground_truth": [...]}`` is read as its list.

An empty list means the right answer is no call. Calls are matched one-to-one by an optimal
(Hungarian) assignment, so the order of parallel calls does not matter.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.core.reward import reward
from rewardlab.core.text import after_think, fenced_blocks, prompt_opens_think
from rewardlab.core.types import Message, Score, Turn

# -- parsing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """One call a model made: the function name, its arguments and the turn it was made in."""

    name: str
    arguments: dict[str, Any]
    turn: int = 0


@dataclass
class Parsed:
    """The calls found in a response, the format errors met, and the number of turns read."""

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    turns: int = 0
    content: bool = False  # whether any assistant turn said anything (text or calls)


_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_FENCE_LANGS = frozenset({"", "json", "tool_call", "tool_calls"})
# Where a call object (or a list of them) starts inside prose.
_CALL_START = re.compile(r"(?:\[\s*)?\{\s*\"(?:name|function)\"\s*:")
_DECODER = json.JSONDecoder()


def _brief(obj: Any) -> str:
    """The start of an object's JSON text, for a message (its type when it cannot be shown)."""
    try:
        return json.dumps(obj, default=str)[:80]
    except (RecursionError, ValueError):
        return f"a {type(obj).__name__} nested too deeply to show"


def _call_from_obj(obj: Any, turn: int) -> ToolCall | str:
    """A `ToolCall` from one call object, or a sentence saying why it is not one."""
    if not isinstance(obj, Mapping):
        return f"a tool call must be a JSON object, got {type(obj).__name__}"
    if isinstance(obj.get("function"), Mapping):
        obj = obj["function"]
    if "name" in obj:
        name = obj["name"]
        if not isinstance(name, str) or not name.strip():
            return f"tool call name must be a non-empty string, got {name!r}"
        args: Any = obj.get("arguments", obj.get("parameters"))
        if args is None or args == "":
            args = {}
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError as exc:
                return f"arguments of {name!r} are not valid JSON: {exc}"
            except RecursionError:
                return f"arguments of {name!r} are nested too deeply to parse"
        if not isinstance(args, Mapping):
            return f"arguments of {name!r} must be a JSON object, got {type(args).__name__}"
        return ToolCall(name.strip(), dict(args), turn)
    if len(obj) == 1:
        (name, args), = obj.items()
        if isinstance(args, Mapping) and name.strip():
            return ToolCall(name.strip(), dict(args), turn)
    return f"not a tool call object (no 'name'): {_brief(obj)}"


def _calls_from_json(payload: Any, turn: int, out: Parsed) -> None:
    items = payload if isinstance(payload, list) else [payload]
    for item in items:
        call = _call_from_obj(item, turn)
        if isinstance(call, str):
            out.errors.append(call)
        else:
            out.calls.append(call)


def _load_json(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at char {exc.pos}): {text[:80]!r}"
    except RecursionError:  # the response's own nesting: a format failure, not an error
        return None, f"JSON nested too deeply to parse: {text[:80]!r}"


def _calls_in_prose(text: str, turn: int, out: Parsed) -> None:
    """Calls written inside prose: each JSON object starting ``{"name":`` or
    ``{"function":`` (or a list of them); one that is not valid JSON is a format error."""
    pos = 0
    while (m := _CALL_START.search(text, pos)) is not None:
        try:
            payload, end = _DECODER.raw_decode(text, m.start())
        except json.JSONDecodeError as exc:
            out.errors.append(f"a tool call in the text is not valid JSON ({exc.msg} at char "
                              f"{exc.pos}): {text[m.start():m.start() + 80]!r}")
            return
        except RecursionError:
            out.errors.append(f"a tool call in the text is nested too deeply to parse: "
                              f"{text[m.start():m.start() + 80]!r}")
            return
        _calls_from_json(payload, turn, out)
        pos = end


def _tag_bodies(text: str) -> list[str]:
    """The contents of the ``<tool_call>...</tool_call>`` blocks, in one linear pass."""
    bodies: list[str] = []
    pos = 0
    while (start := text.find(_OPEN, pos)) >= 0:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            break
        bodies.append(text[start + len(_OPEN) : end])
        pos = end + len(_CLOSE)
    return bodies


def _unfenced(text: str) -> str:
    """The body of `text` (trimmed) when all of it is one fenced block, untagged or tagged
    json / tool_call / tool_calls (fences as `rewardlab.core.text` reads them); else `text`."""
    text = text.strip()
    if text.startswith("```"):
        blocks = fenced_blocks(text)
        if len(blocks) == 1 and blocks[0].end == len(text) and blocks[0].lang in _FENCE_LANGS:
            return blocks[0].body.strip()
    return text


def parse_text(text: str, turn: int = 0, out: Parsed | None = None, *,
               opened: bool = False) -> Parsed:
    """Calls in one assistant text: ``<tool_call>`` blocks, else a bare (or fenced) JSON call
    or list of calls making up the whole text, else call objects (``{"name": ...}``) written
    inside prose. Prose without one holds no call; a call that does not parse, or a stray
    ``</tool_call>``, is a format error. Only the final text is read (after the thinking: see
    `rewardlab.core.text`; `opened`: the prompt opened the thinking); a text that is all
    thinking says nothing."""
    out = out if out is not None else Parsed()
    text = after_think(text, opened=opened)
    if text.strip():
        out.content = True
    if _CLOSE in text and _OPEN not in text:
        out.errors.append("a </tool_call> without its <tool_call>")
        return out
    if _OPEN in text:
        bodies = _tag_bodies(text)
        if text.count(_OPEN) != len(bodies):
            out.errors.append("a <tool_call> block is not closed")
        for body in bodies:
            payload, err = _load_json(_unfenced(body))
            if err:
                out.errors.append(f"<tool_call> block: {err}")
            else:
                _calls_from_json(payload, turn, out)
        return out
    stripped = _unfenced(text)
    if stripped.startswith(("{", "[")):
        payload, err = _load_json(stripped)
        if err:
            out.errors.append(err)
        else:
            _calls_from_json(payload, turn, out)
        return out
    _calls_in_prose(text, turn, out)
    return out


def parse_openai(tool_calls: Sequence[Any], turn: int = 0, out: Parsed | None = None) -> Parsed:
    """Calls from an OpenAI-style ``tool_calls`` list."""
    out = out if out is not None else Parsed()
    _calls_from_json(list(tool_calls), turn, out)
    return out


def _as_dict(m: Any) -> dict[str, Any]:
    if isinstance(m, Message | Turn):
        return m.model_dump()
    if isinstance(m, Mapping):
        return dict(m)
    raise TypeError(f"expected a message, got {type(m).__name__}")


def parse_tool_calls(response: Any, trajectory: Sequence[Any] | None = None,
                     prompt_text: str = "") -> Parsed:
    """All calls in a response (text, or messages) or, when given, a trajectory; each
    assistant message or turn is one turn (its ``tool_calls``, else its text). A text response
    whose prompt text ends with ``<think>`` begins inside the thinking
    (`rewardlab.core.text.prompt_opens_think`)."""
    out = Parsed()
    turns: list[dict[str, Any]] | None = None
    if trajectory:
        turns = [_as_dict(t) for t in trajectory]
    elif isinstance(response, list):
        turns = [_as_dict(m) for m in response]
    if turns is None:
        out.turns = 1
        return parse_text(response if isinstance(response, str) else str(response), 0, out,
                          opened=prompt_opens_think(prompt_text))
    for t in turns:
        if t.get("role", "assistant") != "assistant":
            continue
        turn = out.turns
        out.turns += 1
        if t.get("tool_calls"):
            out.content = True
            parse_openai(t["tool_calls"], turn, out)
        else:
            content = t.get("content")
            if isinstance(content, list):
                content = "".join(
                    str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content
                )
            parse_text(content or "", turn, out)
    return out


# -- expected calls ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    """One accepted value, compared type-aware."""

    value: Any


@dataclass(frozen=True)
class OneOf:
    """Any of several accepted patterns; `optional` means the argument may be left out."""

    options: tuple[Any, ...]
    optional: bool = False


@dataclass(frozen=True)
class DictPat:
    """An object whose keys each follow a `OneOf`; no other keys are accepted."""

    fields: dict[str, OneOf]


@dataclass(frozen=True)
class ListPat:
    """A list whose items follow these patterns, in order."""

    items: tuple[Any, ...]


@dataclass(frozen=True)
class Expected:
    """One expected call: the function name and a pattern per argument."""

    name: str
    args: dict[str, OneOf]


def _bfcl_pattern(value: Any) -> Any:
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        return DictPat({str(k): _bfcl_alternatives(v) for k, v in value.items()})
    if isinstance(value, list):
        return ListPat(tuple(_bfcl_pattern(v) for v in value))
    return Lit(value)


def _bfcl_alternatives(accepted: list[Any]) -> OneOf:
    if not accepted:  # no accepted value listed: read as "the empty list" (BFCL data has this)
        return OneOf((Lit([]),))
    options = tuple(_bfcl_pattern(v) for v in accepted if not (isinstance(v, str) and v == ""))
    return OneOf(options, optional=len(options) < len(accepted))


def expected_calls(reference: Any) -> list[Expected]:
    """The expected calls of a reference in the plain or the BFCL form (see the module
    docstring); raises `ValueError` saying what is wrong with a malformed one."""
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the reference is not JSON: {exc}") from None
    if isinstance(reference, Mapping):
        reference = reference["ground_truth"] if "ground_truth" in reference else [reference]
    if not isinstance(reference, list):
        raise ValueError(f"expected calls must be a list, got {type(reference).__name__}")
    out: list[Expected] = []
    for item in reference:
        if not isinstance(item, Mapping):
            raise ValueError(f"an expected call must be an object, got {item!r}")
        if isinstance(item.get("function"), Mapping):
            item = item["function"]
        if "name" in item:
            call = _call_from_obj(item, 0)
            if isinstance(call, str):
                raise ValueError(f"bad expected call: {call}")
            out.append(Expected(call.name, {k: OneOf((Lit(v),)) for k, v in
                                            call.arguments.items()}))
        elif len(item) == 1:
            (name, args), = item.items()
            if not isinstance(args, Mapping) or not all(isinstance(v, list)
                                                        for v in args.values()):
                raise ValueError(f"BFCL-form call {name!r} must map each argument to a list of "
                                 "accepted values")
            out.append(Expected(str(name), {str(k): _bfcl_alternatives(v)
                                            for k, v in args.items()}))
        else:
            raise ValueError(f"unrecognised expected call {json.dumps(item, default=str)[:80]}")
    return out


def calls_from_bfcl(ground_truth: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Concrete calls ``{"name", "arguments"}`` from a BFCL answer, taking each argument's
    first accepted value (an argument whose first accepted value is ``""`` is left out)."""

    def first(value: Any) -> Any:
        if isinstance(value, Mapping) and all(isinstance(v, list) for v in value.values()):
            return pick(value)
        if isinstance(value, list):
            return [first(v) for v in value]
        return value

    def pick(args: Mapping[str, Any]) -> dict[str, Any]:
        # an empty accepted list stands for the empty list (see `_bfcl_alternatives`)
        return {k: first(v[0]) if v else [] for k, v in args.items() if not v or v[0] != ""}

    calls = []
    for item in ground_truth:
        (name, args), = item.items()
        calls.append({"name": name, "arguments": pick(args)})
    return calls


# -- comparison ----------------------------------------------------------------------------------

_DASHES = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-",
                         "\u2013": "-", "\u2014": "-", "\uff0d": "-"})
_QUOTE_CHARS = re.compile(r"['\"\u2018\u2019\u201c\u201d`]")
_WORD_HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")
_SEPARATORS = re.compile(r"[\s,_;]+")
_FINAL_STOP = re.compile(r"(?<=[^\W\d_])\.$")


def normalize_string(s: str) -> str:
    """NFKC, case-folded; quotes dropped; whitespace, commas, semicolons, underscores and a
    hyphen between two letters read as one space; a full stop after a final word dropped.
    Signs, decimal points and operators stay: ``-122.4`` is not ``122.4``, ``1/2`` not ``12``."""
    s = unicodedata.normalize("NFKC", s).translate(_DASHES).casefold()
    s = _QUOTE_CHARS.sub("", s)
    s = _WORD_HYPHEN.sub(" ", s)
    s = _SEPARATORS.sub(" ", s).strip()
    return _FINAL_STOP.sub("", s)


@dataclass(frozen=True)
class MatchOptions:
    """How values compare: number tolerances and string normalisation."""

    rel_tol: float = 1e-6
    abs_tol: float = 1e-9
    normalize_strings: bool = True


def values_equal(gold: Any, pred: Any, opt: MatchOptions) -> bool:
    """Type-aware equality: numbers within tolerance (an int equals the same float, a bool is
    not a number), strings after normalisation, lists item by item, objects key by key."""
    if isinstance(gold, bool) or isinstance(pred, bool):
        return isinstance(gold, bool) and isinstance(pred, bool) and gold == pred
    if isinstance(gold, (int, float)):
        if not isinstance(pred, (int, float)):
            return False
        if isinstance(gold, float) and math.isnan(gold):
            return isinstance(pred, float) and math.isnan(pred)
        return math.isclose(float(gold), float(pred), rel_tol=opt.rel_tol, abs_tol=opt.abs_tol)
    if isinstance(gold, str):
        if not isinstance(pred, str):
            return False
        if opt.normalize_strings:
            return normalize_string(gold) == normalize_string(pred)
        return gold == pred
    if gold is None:
        return pred is None
    if isinstance(gold, (list, tuple)):
        return (isinstance(pred, (list, tuple)) and len(gold) == len(pred)
                and all(values_equal(g, p, opt) for g, p in zip(gold, pred, strict=True)))
    if isinstance(gold, dict):
        return (isinstance(pred, dict) and set(gold) == set(pred)
                and all(values_equal(gold[k], pred[k], opt) for k in gold))
    return bool(gold == pred)


def matches(pattern: Any, value: Any, opt: MatchOptions) -> bool:
    """Whether a value fits a pattern (`Lit`, `OneOf`, `DictPat`, `ListPat`)."""
    if isinstance(pattern, Lit):
        return values_equal(pattern.value, value, opt)
    if isinstance(pattern, OneOf):
        return any(matches(p, value, opt) for p in pattern.options)
    if isinstance(pattern, DictPat):
        if not isinstance(value, dict) or not set(value) <= set(pattern.fields):
            return False
        for key, alt in pattern.fields.items():
            if key not in value:
                if not alt.optional:
                    return False
            elif not matches(alt, value[key], opt):
                return False
        return True
    if isinstance(pattern, ListPat):
        return (isinstance(value, (list, tuple)) and len(value) == len(pattern.items)
                and all(matches(p, v, opt) for p, v in zip(pattern.items, value, strict=True)))
    raise TypeError(f"unknown pattern {pattern!r}")


def _same_name(a: str, b: str, strict: bool) -> bool:
    if strict:
        return a == b
    return a.replace(".", "_") == b.replace(".", "_")


def call_similarity(call: ToolCall, exp: Expected, opt: MatchOptions,
                    strict_names: bool = False) -> float:
    """How well one call fits one expected call, in [0, 1]; 1 exactly when it is fully correct.

    0 for another function. Otherwise the number of required arguments given with an accepted
    value, over the arguments that count: the required ones, unknown ones given, and optional
    ones given with a value that is not accepted (an optional argument given right is neutral).
    So a missing, extra or wrong argument each costs, and a call with no arguments fits a
    function that requires none.

    The function name, the argument keys and the schema's defaults earn nothing by themselves:
    all can be read off the tool schema without reading the question (the right name with
    every key and garbage values used to score 2/3).
    """
    if not _same_name(call.name, exp.name, strict_names):
        return 0.0
    given = set(call.arguments)
    required = {k for k, a in exp.args.items() if not a.optional}
    optional_given = (given & set(exp.args)) - required
    wrong_optional = {k for k in optional_given if not matches(exp.args[k], call.arguments[k], opt)}
    counted = required | (given - set(exp.args)) | wrong_optional
    if not counted:
        return 1.0
    right = sum(matches(exp.args[k], call.arguments[k], opt) for k in required & given)
    return right / len(counted)


@dataclass
class Assignment:
    """An optimal one-to-one matching of predicted to expected calls."""

    pairs: list[tuple[int, int, float]]  # (predicted index, expected index, similarity)
    n_pred: int
    n_gold: int

    @property
    def total(self) -> float:
        return sum(s for _, _, s in self.pairs)


def assign(calls: Sequence[ToolCall], expected: Sequence[Expected], opt: MatchOptions,
           strict_names: bool = False) -> Assignment:
    """Match calls to expected calls one-to-one, maximising total similarity (Hungarian)."""
    n, m = len(calls), len(expected)
    if n == 0 or m == 0:
        return Assignment([], n, m)
    sims = [[call_similarity(c, e, opt, strict_names) for e in expected] for c in calls]
    if n == 1 and m == 1:
        return Assignment([(0, 0, sims[0][0])] if sims[0][0] > 0 else [], n, m)
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(np.asarray(sims, dtype=float), maximize=True)
    pairs = [(int(i), int(j), sims[i][j]) for i, j in zip(rows, cols, strict=True)
             if sims[i][j] > 0]
    return Assignment(pairs, n, m)


# -- rewards -------------------------------------------------------------------------------------


def _format_failure(parsed: Parsed) -> Score:
    if not parsed.content:
        return Score.of(0.0, reason="format failure: the response is empty",
                        components={"format": 0.0}, details={"format_errors": ["empty response"],
                                                             "calls_parsed": 0})
    return Score.of(0.0, reason="format failure: " + "; ".join(parsed.errors[:3]),
                    components={"format": 0.0},
                    details={"format_errors": parsed.errors, "calls_parsed": len(parsed.calls)})


@reward(range=(0, 1), granularity="turn")
def tool_call_match(response: Any, reference: Any, trajectory: list[Turn] | None,
                    prompt_text: str = "", *,
                    exact: bool = False, rel_tol: float = 1e-6, abs_tol: float = 1e-9,
                    normalize_strings: bool = True, strict_names: bool = False) -> Score:
    """Agreement in [0, 1] of the model's tool calls with the expected calls; higher is better.

    Each call scores the share of its argument values that match (see `call_similarity`; 0
    for another function, 1 only when fully correct); calls pair with expected calls by optimal
    assignment and the value is the sum of the paired scores over max(#made, #expected), so
    missing and extra calls cost. No call expected and none made scores 1. Malformed calls,
    a call inside prose that does not parse, and an empty response score 0 (a format failure,
    with the reason). With `exact`, the value is 1 only when every
    call is fully correct and none is missing or extra. `turns` holds, per assistant turn, the
    mean score of the calls made in it (0 for a turn without calls); components hold the
    precision, recall and F1 of fully correct calls.

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.tools import tool_call_match
    >>> both = [{"name": "get_weather", "arguments": {"city": "Paris"}},
    ...         {"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    >>> one = tool_call_match()(Sample(
    ...     response='<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
    ...     reference=both))
    >>> one.value, one.reason
    (0.5, '1 of 2 expected calls made correctly, 1 made')
    >>> bfcl = [{"get_weather": {"city": ["Paris", "paris"], "unit": ["celsius", ""]}}]
    >>> tool_call_match()(Sample(response='{"name": "get_weather", "arguments": {"city": "paris"}}',
    ...                          reference=bfcl)).value
    1.0
    """
    if reference is None:
        return Score.abstain("no expected calls in the reference")
    try:
        expected = expected_calls(reference)
    except (ValueError, KeyError) as exc:
        return Score.error(f"bad reference: {exc}")
    parsed = parse_tool_calls(response, trajectory, prompt_text)
    if parsed.errors or not parsed.content:
        return _format_failure(parsed)
    opt = MatchOptions(rel_tol, abs_tol, normalize_strings)
    calls = parsed.calls
    a = assign(calls, expected, opt, strict_names)
    n_pred, n_gold = len(calls), len(expected)
    per_call = [0.0] * n_pred
    matched: list[int | None] = [None] * n_pred
    for i, j, s in a.pairs:
        per_call[i], matched[i] = s, j
    n_exact = sum(1 for _, _, s in a.pairs if s >= 1.0 - 1e-12)
    precision = n_exact / n_pred if n_pred else 1.0
    recall = n_exact / n_gold if n_gold else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    if exact:
        value = 1.0 if n_exact == n_pred == n_gold else 0.0
    else:
        value = 1.0 if n_pred == n_gold == 0 else a.total / max(n_pred, n_gold)
    turns: list[float] | None = None
    if trajectory or isinstance(response, list):
        turns = []
        for t in range(parsed.turns):
            scores = [per_call[i] for i, c in enumerate(calls) if c.turn == t]
            turns.append(sum(scores) / len(scores) if scores else 0.0)
    taken = {j for _, j, _ in a.pairs}
    reason = None
    if value < 1.0:
        if n_gold == 0:
            reason = f"no call was expected, {n_pred} made"
        elif n_pred == 0:
            reason = f"no call made, {n_gold} expected"
        else:
            reason = f"{n_exact} of {n_gold} expected calls made correctly, {n_pred} made"
    return Score.of(
        min(1.0, value),
        reason=reason,
        turns=turns,
        components={"format": 1.0, "precision": precision, "recall": recall, "f1": f1},
        details={
            "calls": [{"name": c.name, "turn": c.turn, "score": per_call[i],
                       "matched": matched[i]} for i, c in enumerate(calls)],
            "missing": [exp.name for j, exp in enumerate(expected) if j not in taken],
        },
    )


@reward(range=(0, 1))
def tool_call_format(response: Any, trajectory: list[Turn] | None, prompt_text: str = "") -> Score:
    """1 if every tool call in the response (or trajectory) parses, else 0 with the reason.

    A call parses when it has a name and a JSON object of arguments, wherever it is written
    (``<tool_call>`` blocks, the whole text, or inside prose: see `parse_text`). A response
    that says something and makes no call scores 1; an empty response scores 0.

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.tools import tool_call_format
    >>> well_formed = tool_call_format()
    >>> well_formed(Sample(response='<tool_call>{"name": "get_weather", "arguments": '
    ...                             '{"city": "Paris"}}</tool_call>')).value
    1.0
    >>> broken = well_formed(Sample(response='<tool_call>{"name": "get_weather", "arguments": '
    ...                                      '{city: Paris}}</tool_call>'))
    >>> broken.value, broken.reason[:60]
    (0.0, 'format failure: <tool_call> block: invalid JSON (Expecting p')
    """
    parsed = parse_tool_calls(response, trajectory, prompt_text)
    if parsed.errors or not parsed.content:
        return _format_failure(parsed)
    return Score.of(1.0, details={"calls_parsed": len(parsed.calls)})
