"""Format rewards: a user regular expression, the ``<think>...</think><answer>...</answer>``
structure, JSON validity and JSON-schema conformance.

All score 1 for a well-formed response and 0 otherwise (`json_schema` can give partial credit);
a 0 carries the reason in ``details["problem"]``. A reward that cannot be computed (a bad pattern,
an invalid schema, a timeout) is an error score, never a 0.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from rewardlab.core.reward import reward
from rewardlab.core.settings import splice
from rewardlab.core.text import (
    Tag,
    check_tag_name,
    final_text,
    iter_tags,
    last_fence,
    prompt_opens_think,
    split_think,
)
from rewardlab.core.types import Score

# -- helpers shared by the text rewards ------------------------------------------------------
# How responses are read (think tags, answer tags, fences) is `rewardlab.core.text`, the same for
# every family.


def _check_tag(name: str, what: str) -> None:
    check_tag_name(name, what)


# -- regex ------------------------------------------------------------------------------------

_FLAGS = {"a": re.ASCII, "i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: str) -> re.Pattern[str]:
    value = 0
    for letter in flags.lower():
        if letter not in _FLAGS:
            raise ValueError(f"unknown regex flag {letter!r} (use any of {''.join(_FLAGS)})")
        value |= _FLAGS[letter]
    try:
        return re.compile(pattern, value)
    except re.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None


@reward(range=(0, 1), kind="cpu", timeout=5.0)
def regex_match(response_text: str, prompt_text: str = "", *, pattern: str,
                mode: Literal["search", "match", "fullmatch"] = "search", flags: str = "",
                strip_think: bool = False) -> Score:
    r"""1 if the response matches the regular expression `pattern`, else 0 (higher is better).

    `mode` is Python's `re.search` (anywhere), `re.match` (at the start) or `re.fullmatch`
    (the whole text). `flags` is a string of letters: ``a`` ASCII, ``i`` ignore case,
    ``m`` multiline, ``s`` dot matches newline, ``x`` verbose. `strip_think` matches only the
    final text (after the thinking, as every reward reads it: `rewardlab.core.text`). Runs in
    the isolating process pool because a user pattern can backtrack catastrophically: such a
    sample ends as a timeout error.

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.format import regex_match
    >>> has_year = regex_match(pattern=r"\b(1[5-9]|20)\d\d\b")
    >>> has_year(Sample(response="The Peace of Westphalia was signed in 1648.")).value
    1.0
    >>> has_year(Sample(response="It was signed long ago.")).details
    {'problem': 'no search of the pattern'}
    """
    if mode not in ("search", "match", "fullmatch"):
        raise ValueError(f"mode must be search, match or fullmatch, not {mode!r}")
    rx = _compile(pattern, flags)
    text = final_text(response_text, prompt_text) if strip_think else response_text
    m = getattr(rx, mode)(text)
    if m is None:
        return Score.of(0.0, details={"problem": f"no {mode} of the pattern"})
    return Score.of(1.0, details={"span": [m.start(), m.end()]})


# -- <think>...</think><answer>...</answer> -----------------------------------------------------


def _strict_format(text: str, think: str, answer: str) -> str | None:
    """None when `text` is exactly one think block then one answer block; else the problem.
    Tags are found as every reward finds them (`rewardlab.core.text`: any case, spaces inside
    the brackets), so a variant such as ``</THINK>`` counts as a tag, and must be written
    exactly."""
    found: dict[tuple[str, bool], list[Tag]] = {}
    for name in (think, answer):
        for t in iter_tags(text, name):
            seen = found.setdefault((name, t.closing), [])
            seen.append(t)
            if len(seen) > 1:  # the count is enough to fail (and a long response stops here)
                return f"<{'/' if t.closing else ''}{name}> appears more than once (strict mode needs exactly one)"
    tags: list[Tag] = []
    for name, closing in ((think, False), (think, True), (answer, False), (answer, True)):
        spelled = f"<{'/' if closing else ''}{name}>"
        seen = found.get((name, closing), [])
        if len(seen) != 1:
            return f"{spelled} appears {len(seen)} times (strict mode needs exactly one)"
        if seen[0].text != spelled:
            return f"{seen[0].text} is not written {spelled}"
        tags.append(seen[0])
    ot, ct, oa, ca = tags
    if ot.start != 0:
        return f"text before {ot.text}"
    if ca.end != len(text):
        return f"text after {ca.text}"
    if not ct.start < oa.start:
        return f"{ct.text} does not come before {oa.text}"
    if text[ct.end : oa.start].strip():
        return f"text between {ct.text} and {oa.text}"
    if not text[ot.end : ct.start].strip():
        return "the think block is empty"
    if not text[oa.end : ca.start].strip():
        return "the answer block is empty"
    return None


def _lenient_format(text: str, think: str, answer: str) -> str | None:
    """None when a think block is followed (anywhere later) by a non-empty answer block that
    lies in the final text (after the last closing think tag, before any unclosed one)."""
    tags = (f"<{think}>", f"</{think}>", f"<{answer}>", f"</{answer}>")
    pos = 0
    ends = []
    for k, t in enumerate(tags):
        i = text.find(t, pos)
        if i < 0:
            return f"no {t}" + (f" after {tags[k - 1]}" if k else "")
        ends.append(i)
        pos = i + len(t)
    if not text[ends[2] + len(tags[2]) : ends[3]].strip():
        return "the answer block is empty"
    final = split_think(text, think)
    if not final.start <= ends[2] < pos <= final.stop:
        return (f"the answer block is not in the final text (a later {tags[1]} or an unclosed "
                f"{tags[0]} makes it thinking)")
    return None


@reward(range=(0, 1))
def think_answer_format(response_text: str, prompt_text: str = "", *, mode: Literal["strict", "lenient"] = "strict",
                        think_tag: str = "think", answer_tag: str = "answer",
                        prefilled_think: bool = False) -> Score:
    r"""1 if the response has the <think>...</think><answer>...</answer> structure, else 0.

    ``strict``: after trimming surrounding whitespace, the response is exactly one non-empty
    think block followed by one non-empty answer block, with only whitespace between them and
    each tag used once. ``lenient``: somewhere in the response a ``<think>`` is followed by
    ``</think>``, then ``<answer>``, then ``</answer>`` with a non-empty answer; other text is
    allowed, but the answer block must lie in the final text that other rewards grade (not
    followed by another closing think tag nor inside an unclosed think block). The four tags
    must be written exactly (lowercase); `think_tag` / `answer_tag` rename them. Variants that
    every reward reads as tags (``</THINK>``, ``</ think>``: see `rewardlab.core.text`) count as
    tags: strict mode fails on them.
    `prefilled_think` is for chat templates that end the prompt with ``<think>``: the
    response is read as if it began with that tag (also done, without the parameter, when the
    sample's prompt text ends with that tag: `rewardlab.core.text.prompt_opens_think`).

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.format import think_answer_format
    >>> strict = think_answer_format()
    >>> strict(Sample(response="<think>7 x 6 = 42</think>\n<answer>42</answer>")).value
    1.0
    >>> strict(Sample(response="<answer>42</answer>")).details
    {'problem': '<think> appears 0 times (strict mode needs exactly one)'}
    """
    _check_tag(think_tag, "think_tag")
    _check_tag(answer_tag, "answer_tag")
    if think_tag == answer_tag:
        raise ValueError("think_tag and answer_tag must differ")
    text = response_text.strip()
    if prefilled_think or prompt_opens_think(prompt_text, think_tag):
        text = f"<{think_tag}>" + text
    if mode == "strict":
        problem = _strict_format(text, think_tag, answer_tag)
    elif mode == "lenient":
        problem = _lenient_format(text, think_tag, answer_tag)
    else:
        raise ValueError(f"mode must be strict or lenient, not {mode!r}")
    if problem is None:
        return Score.of(1.0)
    return Score.of(0.0, details={"problem": problem})


# -- JSON ---------------------------------------------------------------------------------------

@dataclass
class ParsedJSON:
    """The outcome of looking for a JSON document in a response."""

    ok: bool
    value: Any = None
    source: str = ""  # "fence", "raw" or "embedded"
    problem: str = ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> tuple[bool, Any, str]:
    try:
        return True, json.loads(text, parse_constant=_reject_constant), ""
    except json.JSONDecodeError as exc:
        return False, None, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except ValueError as exc:
        return False, None, f"invalid JSON: {exc}"
    except RecursionError:  # the response's own nesting: its failure, not an error of ours
        return False, None, "invalid JSON: nested too deeply to parse"


def _embedded_span(text: str) -> str | None:
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    end = text.rfind("}" if text[start] == "{" else "]")
    return text[start : end + 1] if end > start else None


Extract = Literal["auto", "fence", "raw", "embedded"]


def extract_json(text: str, extract: Extract = "auto") -> ParsedJSON:
    """Find and parse the JSON document in `text`.

    ``fence``: the last fenced block tagged ``json`` (else the last untagged fenced block).
    ``raw``: the whole text, trimmed. ``auto``: a fenced block when there is one, otherwise the
    whole text. ``embedded``: as ``auto``, then the span from the first ``{`` or ``[`` to the
    last matching closer inside prose (opt-in: any prose with a constant ``{}`` appended would
    otherwise hold a document). NaN and Infinity are rejected (they are not JSON).
    """
    if extract not in ("auto", "fence", "raw", "embedded"):
        raise ValueError(f"extract must be auto, fence, raw or embedded, not {extract!r}")
    if extract in ("auto", "fence", "embedded"):
        fence = last_fence(text, {"json"})
        if fence is not None:
            ok, value, problem = _loads(fence.body)
            return ParsedJSON(ok, value, "fence", problem)
        if extract == "fence":
            return ParsedJSON(False, problem="no ```json fenced block")
    ok, value, problem = _loads(text.strip())
    if ok or extract != "embedded":
        return ParsedJSON(ok, value, "raw", problem)
    span = _embedded_span(text)
    if span is not None:
        ok2, value2, _ = _loads(span)
        if ok2:
            return ParsedJSON(True, value2, "embedded")
    return ParsedJSON(False, problem=problem)


@dataclass(frozen=True)
class JsonSource:
    """Where both JSON rewards look for the document (written flat among their parameters):
    `extract` (see `extract_json`) and `strip_think` (look in the final text first: see
    `rewardlab.core.text`; a whole response that is one JSON document, a think tag inside one
    of its strings, still counts)."""

    extract: Extract = "auto"
    strip_think: bool = True

    def __post_init__(self) -> None:
        if self.extract not in ("auto", "fence", "raw", "embedded"):
            raise ValueError(f"extract must be auto, fence, raw or embedded, not {self.extract!r}")

    def find(self, response_text: str, prompt_text: str = "") -> ParsedJSON:
        final = final_text(response_text, prompt_text) if self.strip_think else response_text
        if final == response_text:
            return extract_json(response_text, self.extract)
        parsed = extract_json(final, self.extract)
        if not parsed.ok and self.extract != "fence":
            # a whole response that is one JSON document (holding a think tag inside a string)
            # is valid JSON whatever the tag suggests
            whole = extract_json(response_text, "raw")
            if whole.ok:
                return whole
        return parsed


with_json_source = splice(JsonSource)


def _trivial(value: Any) -> bool:
    """A document any response could append without doing the task: a scalar, ``{}``, ``[]``."""
    return not isinstance(value, dict | list) or len(value) == 0


@reward(range=(0, 1))
@with_json_source
def json_valid(response_text: str, prompt_text: str = "", *, allow_trivial: bool = False, **settings: Any) -> Score:
    r"""1 if the response is (or fences) a valid JSON document, else 0 (higher is better).

    Where the document is looked for is `JsonSource` (`extract`, see `extract_json`: by
    default a ```json fence or the whole text; ``embedded`` also accepts a document inside
    prose; `strip_think`: in the final text first). A scalar or an empty ``{}`` / ``[]`` scores 0 unless
    `allow_trivial`. ``details["source"]`` says where the document was found.

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.format import json_valid
    >>> valid = json_valid()
    >>> fenced = valid(Sample(response='Here:\n```json\n{"city": "Paris", "pop": 2102650}\n```'))
    >>> fenced.value, fenced.details
    (1.0, {'source': 'fence'})
    >>> valid(Sample(response='{"city": "Paris",}')).details["problem"]
    'invalid JSON: Expecting property name enclosed in double quotes at line 1 column 18'
    """
    parsed = JsonSource(**settings).find(response_text, prompt_text)
    if not parsed.ok:
        return Score.of(0.0, details={"problem": parsed.problem})
    if not allow_trivial and _trivial(parsed.value):
        return Score.of(0.0, details={"problem": "a trivial JSON document (a scalar or an empty "
                                                 "object or array)", "source": parsed.source})
    return Score.of(1.0, details={"source": parsed.source})


@functools.lru_cache(maxsize=64)
def _validator(schema_text: str, check_formats: bool) -> Any:
    from jsonschema import exceptions, validators

    schema = json.loads(schema_text)
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER if check_formats else None)


def _schema_text(schema: Any, what: str) -> str:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} is not a JSON schema: {exc.msg}") from None
    if not isinstance(schema, dict | bool):
        raise ValueError(f"{what} is a {type(schema).__name__}, not a JSON schema")
    return json.dumps(schema, sort_keys=True)


# Root errors that concern which keys exist, not any present property's value.
_KEY_VALIDATORS = frozenset({"required", "additionalProperties", "dependentRequired",
                             "dependencies", "minProperties", "maxProperties", "propertyNames",
                             "unevaluatedProperties", "type"})


def _blamed_properties(errors: Any) -> set[Any] | None:
    """The top-level properties the validation errors point into, or None when an error at the
    root points into none of them (then no property can be credited)."""
    blamed: set[Any] = set()
    for e in errors:
        if e.absolute_path:
            blamed.add(e.absolute_path[0])
        elif e.validator in _KEY_VALIDATORS:
            continue
        elif e.context:
            inner = _blamed_properties(e.context)
            if inner is None or not inner:
                return None
            blamed |= inner
        else:
            return None
    return blamed


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


@reward(range=(0, 1), kind="cpu", timeout=10.0)
@with_json_source
def json_schema(response_text: str, reference: Any, prompt_text: str = "", *, schema: Any = None,
                partial: bool = False, check_formats: bool = False,
                max_errors: int = 20, **settings: Any) -> Score:
    r"""1 if the response's JSON conforms to the schema, else 0 or partial credit (higher is better).

    The schema is the `schema` parameter (a mapping or JSON text) or else the sample's
    reference; with neither the reward abstains. The JSON is found as by `json_valid`.
    ``details["errors"]`` lists up to `max_errors` validation errors (JSON-pointer ``path``,
    ``message``, ``validator``). `partial`: with n top-level ``required`` properties, the score
    is (k + v) / (n + 1), where k counts the required properties present with a value that
    raises no error, and v is 1 when the whole document is valid; so only a valid document
    scores 1. An error raised at the root by a combinator (``anyOf``, ``oneOf``, ``allOf``,
    ``not``, ``if``) counts against each property its sub-errors point into, and against every
    property when it points into none (e.g. a document valid under two ``oneOf`` branches).
    `check_formats` also checks ``format`` keywords. Runs in the process pool because schema
    ``pattern`` keywords can backtrack catastrophically.

    >>> from rewardlab import Sample
    >>> from rewardlab.rewards.format import json_schema
    >>> person = {"type": "object", "required": ["name", "age"],
    ...           "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}
    >>> conforms = json_schema(schema=person, partial=True)
    >>> conforms(Sample(response='{"name": "Ada Lovelace", "age": 36}')).value
    1.0
    >>> wrong_age = conforms(Sample(response='{"name": "Ada Lovelace", "age": -1}'))
    >>> round(wrong_age.value, 3), wrong_age.details["errors"][0]["message"]
    (0.333, '-1 is less than the minimum of 0')
    """
    if schema is not None:
        schema_json = _schema_text(schema, "the schema parameter")
    elif reference is not None:
        schema_json = _schema_text(reference, "the reference")
    else:
        return Score.abstain("no schema: set the schema parameter or give a reference")
    validator = _validator(schema_json, check_formats)
    parsed = JsonSource(**settings).find(response_text, prompt_text)
    if not parsed.ok:
        return Score.of(0.0, details={"problem": parsed.problem, "errors": []})
    instance = parsed.value
    try:
        errors = sorted(validator.iter_errors(instance),
                        key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    except RecursionError:  # the response's own nesting: its failure, not an error of ours
        return Score.of(0.0, details={"problem": "the document is nested too deeply to validate",
                                      "errors": [], "source": parsed.source})
    listed = [{"path": _pointer(e.absolute_path), "message": e.message[:300],
               "validator": str(e.validator)} for e in errors[:max_errors]]
    details: dict[str, Any] = {"errors": listed, "n_errors": len(errors),
                               "source": parsed.source}
    valid = not errors
    if not partial:
        return Score.of(float(valid), details=details)
    schema_obj = json.loads(schema_json)
    required = schema_obj.get("required", []) if isinstance(schema_obj, dict) else []
    required = [r for r in required if isinstance(r, str)]
    blamed = _blamed_properties(errors)
    good = [r for r in required
            if isinstance(instance, dict) and r in instance and blamed is not None
            and r not in blamed]
    value = (len(good) + float(valid)) / (len(required) + 1)
    details["required_ok"] = good
    details["required_total"] = len(required)
    return Score.of(value, details=details)
