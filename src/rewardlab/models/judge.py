"""LLM judges over any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp server,
Ollama, OpenAI), as `io` rewards: the runtime runs them concurrently under its caps, rate
limits, timeouts and retries, and caches their scores.

Modes, each a registered reward with a value in [0, 1], higher is better:

- `judge_score`: pointwise rating on a scale, normalised (raw rating in ``details``);
- `judge_pairwise`: preference of the response over a second one, asked in both orders
  (position swap); disagreement between the orders is reported per sample and over a batch
  by `rewardlab.audit.position.position_report`;
- `judge_rubric`: weighted checklist, one verdict per item in ``Score.components``;
- `judge_principles`: how well the response follows user-given principles.

Every mode reads its verdict either from text (``verdict="text"``: strict ``[[...]]``
format; an unparseable answer is an error keeping the raw text, never a default score) or from
verdict-token probabilities (``verdict="logprobs"``: P("YES"), P("A"), or the expected rating
from the top log-probs; an error when the endpoint gives no log-probs). ``votes=k`` samples k
verdicts and combines them by ``vote="mean"`` or ``"majority"`` (inference-time scaling).

The settings every mode shares are declared once, in
`rewardlab.models._judge_settings.JudgeSettings`, and written flat among a judge's parameters.
Configuration: ``base_url``, ``model`` and ``api_key`` params, else the environment
(``REWARDLAB_JUDGE_BASE_URL`` or ``OPENAI_BASE_URL``; ``REWARDLAB_JUDGE_MODEL``;
``REWARDLAB_JUDGE_API_KEY`` or ``OPENAI_API_KEY``). The endpoint and model are fixed when the
reward is configured and enter its fingerprint together with the template's content; the key
and ``tpm`` do not, and the key is never shown. ``template`` takes a path to a prompt file
replacing the packaged default (see `rewardlab.models._judge_prompt` for the format).
Token use and cost (``price_input_per_m`` / ``price_output_per_m``, per million tokens) are
reported in ``Score.cost``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardlab.core.reward import Reward, RewardDef, fingerprint_of, reward
from rewardlab.core.types import Cost, Score
from rewardlab.models._judge_client import (
    DEFAULT_BASE_URL,
    ENV_BASE_URL,
    ENV_MODEL,
    Endpoint,
    JudgeRequestError,
    chat,
    from_env,
)
from rewardlab.models._judge_prompt import Template, TemplateError, load_template
from rewardlab.models._judge_settings import NOT_FINGERPRINTED, SECRET, JudgeSettings, with_settings
from rewardlab.models._judge_verdict import YES_NO, Unparseable, VerdictFormat, bracketed
from rewardlab.models._judge_verdict import vote as combine_votes

__all__ = [
    "JudgeRequestError",
    "JudgeSettings",
    "TemplateError",
    "Unparseable",
    "judge_pairwise",
    "judge_principles",
    "judge_rubric",
    "judge_score",
]

_TEXT_MAX_TOKENS = {"score": 512, "pairwise": 512, "rubric": 256, "principles": 256}
_LOGPROB_MAX_TOKENS = 4


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Mode:
    name: str
    allowed: frozenset[str]
    required: frozenset[str]
    check: Callable[[dict[str, Any]], None] | None = None


def _check_score(p: dict[str, Any]) -> None:
    lo, hi = p["min_score"], p["max_score"]
    if not (isinstance(lo, int) and isinstance(hi, int) and lo < hi):
        raise ValueError(f"the scale needs integers min_score < max_score, got {lo!r}, {hi!r}")
    if p["verdict"] == "logprobs" and not (0 <= lo and hi <= 9):
        raise ValueError("log-prob ratings read one digit: the scale must lie within 0..9")


def _check_principles(p: dict[str, Any]) -> None:
    if p["aggregate"] not in ("mean", "min"):
        raise ValueError(f"aggregate must be 'mean' or 'min', got {p['aggregate']!r}")
    if p["principles"] is not None:
        _principle_list(p["principles"])


def _check_rubric(p: dict[str, Any]) -> None:
    if p["rubric"] is not None:
        _rubric_items(p["rubric"])


_CONTEXT = frozenset({"prompt", "reference"})
MODES = {
    "score": _Mode("score", _CONTEXT | {"response", "principles", "min_score", "max_score"},
                   frozenset({"response"}), _check_score),
    "pairwise": _Mode("pairwise", _CONTEXT | {"response_a", "response_b", "principles"},
                      frozenset({"response_a", "response_b"})),
    "rubric": _Mode("rubric", _CONTEXT | {"response", "criterion"},
                    frozenset({"response", "criterion"}), _check_rubric),
    "principles": _Mode("principles", _CONTEXT | {"response", "principle"},
                        frozenset({"response", "principle"}), _check_principles),
}


def _template(mode: str, path: str | None, verdict: str) -> Template:
    default = f"{mode}.txt" if verdict == "text" else f"{mode}_logprobs.txt"
    tpl = load_template(path, default)
    m = MODES[mode]
    tpl.check(set(m.allowed), set(m.required))
    return tpl


class JudgeReward(Reward):
    """A configured judge. The endpoint and model are resolved (from the environment when not
    given) at configuration; the fingerprint covers them and the template's content, not the
    API key or the token budget."""

    def __init__(self, definition: RewardDef, params: dict[str, Any] | None = None) -> None:
        super().__init__(definition, params)
        p = self.params
        p["base_url"] = str(p["base_url"] or from_env(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
        p["model"] = p["model"] or from_env(ENV_MODEL)
        if not p["model"]:
            raise ValueError(f"reward {self.name!r} needs a judge model: pass model=... or set "
                             f"{ENV_MODEL[0]}")
        mode = _MODE_OF[definition.info.name]
        JudgeSettings.of(p)  # validates the shared settings
        check = MODES[mode].check
        if check is not None:
            check(p)
        tpl = _template(mode, p["template"], p["verdict"])
        public = {k: v for k, v in p.items() if k not in NOT_FINGERPRINTED}
        public["template"] = tpl.sha256
        self.fingerprint = fingerprint_of(
            {"name": self.info.name, "version": self.info.version, "params": public}
        )

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={'***' if k in SECRET and v else repr(v)}" for k, v in self.params.items()
        )
        return f"{self.info.name}({args})"

    def read_verdict(self, text: str) -> float:
        """The value that one judge answer `text`, read as a text verdict under this
        configuration, stands for: the rating mapped to [0, 1] (`judge_score`), the preference
        for the response shown first (`judge_pairwise`: 1, 0, or 0.5 for a tie), or 1 / 0 for
        yes / no (`judge_rubric`, `judge_principles`). Raises `Unparseable` (a `ValueError`)
        when the answer holds no verdict, or conflicting ones; the reward then scores an error,
        never a default value. No request is sent."""
        s = JudgeSettings.of(self.params)
        mode = _MODE_OF[self.info.name]
        if mode == "score":
            lo, hi = self.params["min_score"], self.params["max_score"]
            return _normalised(_rating_format(s, lo, hi).parse_text(text), lo, hi)
        if mode == "pairwise":
            return _preference_format(s, "A").parse_text(text)
        return _yes_no(s).parse_text(text)


class _JudgeDef(RewardDef):
    def __call__(self, **params: Any) -> JudgeReward:
        return JudgeReward(self, params)


_MODE_OF: dict[str, str] = {}


def _endpoint_resource(params: dict[str, Any]) -> str:
    """What a judge's limits belong to: its endpoint and model (every judge reward on the same
    endpoint and model shares one concurrency and rate limit in a Runtime)."""
    return f"judge:{params['base_url']}#{params['model']}"


def _judge(mode: str, name: str) -> Callable[[Callable[..., Any]], _JudgeDef]:
    def wrap(fn: Callable[..., Any]) -> _JudgeDef:
        fn = with_settings(fn)
        plain = reward(fn, name=name, kind="io", range=(0, 1), timeout=180.0, retries=3,
                       max_concurrency=8, resource=_endpoint_resource, register=False)
        definition = _JudgeDef(plain.fn, plain.info, batched=False)
        _MODE_OF[name] = mode
        from rewardlab.core.registry import registry

        registry.add(definition)
        return definition

    return wrap


# -- asking ------------------------------------------------------------------------------------
class _Failed(Exception):
    def __init__(self, reason: str, texts: list[str]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.texts = texts


@dataclass
class _Asked:
    value: float
    verdicts: list[float]
    texts: list[str]
    probs: dict[str, float] | None = None
    mass: float | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.value, "verdicts": self.verdicts,
                               "texts": self.texts}
        if self.probs is not None:
            out["probs"] = self.probs
            out["mass"] = self.mass
        return out


@dataclass
class _Session:
    """One sample's requests under one configuration, with its token accounting."""

    endpoint: Endpoint
    s: JudgeSettings
    mode: str
    started: float = field(default_factory=time.perf_counter)
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    @classmethod
    def of(cls, mode: str, s: JudgeSettings) -> _Session:
        base_url = str(s.base_url or from_env(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
        model = s.model or from_env(ENV_MODEL)
        if not model:
            raise JudgeRequestError("no judge model configured", retryable=False)
        return cls(Endpoint(base_url, model, s.api_key, s.tpm), s, mode)

    def template(self) -> Template:
        try:
            return _template(self.mode, self.s.template, self.s.verdict)
        except TemplateError as exc:
            raise JudgeRequestError(str(exc), retryable=False) from None

    async def _request(self, messages: list[dict[str, str]], index: int) -> Any:
        s = self.s
        logprobs = s.verdict == "logprobs"
        if s.max_tokens is not None:
            max_tokens = s.max_tokens
        else:
            max_tokens = _LOGPROB_MAX_TOKENS if logprobs else _TEXT_MAX_TOKENS[self.mode]
        reply = await chat(
            self.endpoint,
            messages,
            max_tokens=max_tokens,
            temperature=float(s.temperature),
            seed=None if s.seed is None else int(s.seed) + index,
            top_logprobs=s.top_logprobs if logprobs else None,
            extra_body=s.request_options,
        )
        self.requests += 1
        self.input_tokens += reply.input_tokens
        self.output_tokens += reply.output_tokens
        return reply

    async def ask(self, messages: list[dict[str, str]], fmt: VerdictFormat) -> _Asked:
        """A verdict, voted over `votes` samples; raises `_Failed` when too few parse."""
        s = self.s
        texts: list[str] = []
        values: list[float] = []
        last = ""
        attempt = 0
        for _ in range(s.votes):
            for _ in range(s.parse_retries + 1):
                reply = await self._request(messages, attempt)
                attempt += 1
                texts.append(reply.text)
                try:
                    if s.verdict == "logprobs":
                        if reply.top_logprobs is None:
                            raise _Failed(
                                "the judge endpoint returned no log-probs (it may not support "
                                "them; use verdict='text')", texts)
                        value, probs, mass = fmt.from_logprobs(reply.top_logprobs)
                        return _Asked(value, [value], texts, probs, mass)
                    values.append(fmt.parse_text(reply.text))
                    break
                except Unparseable as exc:
                    last = str(exc)
        need = s.min_votes or s.votes
        if len(values) < need:
            failed = s.votes - len(values)
            raise _Failed(f"unparseable judge verdict ({failed} of {s.votes} sample(s), "
                          f"after {s.parse_retries} re-ask(s) each): {last}", texts)
        return _Asked(combine_votes(values, s.vote), values, texts)

    def cost(self) -> Cost:
        s = self.s
        usd = (self.input_tokens * s.price_input_per_m
               + self.output_tokens * s.price_output_per_m) / 1e6
        return Cost(seconds=time.perf_counter() - self.started, input_tokens=self.input_tokens,
                    output_tokens=self.output_tokens, usd=usd)

    def details(self, **extra: Any) -> dict[str, Any]:
        return {"judge": self.endpoint.model, "requests": self.requests, **extra}

    def error(self, reason: str, **extra: Any) -> Score:
        return Score.error(reason, details=self.details(**extra), cost=self.cost())


def _pattern(s: JudgeSettings, default: str) -> Any:
    import re

    if s.verdict_pattern is not None:
        return re.compile(s.verdict_pattern, re.IGNORECASE)
    return bracketed(default)


def _context(prompt_text: str, reference: Any, use_reference: bool) -> dict[str, str]:
    ref = reference if use_reference and isinstance(reference, str) else ""
    return {"prompt": prompt_text, "reference": ref}


def _principles_text(principles: Any) -> str:
    if principles is None:
        return ""
    return "\n".join(f"- {x}" for x in _principle_list(principles))


def _principle_list(principles: Any) -> list[str]:
    if isinstance(principles, str):
        principles = [principles]
    if not isinstance(principles, list | tuple) or not all(
        isinstance(x, str) and x.strip() for x in principles
    ):
        raise ValueError("principles must be a list of non-empty strings")
    return [x.strip() for x in principles]


def _rubric_items(rubric: Any) -> list[tuple[str, str, float]]:
    """(name, criterion, weight) per item; items are strings or mappings with `criterion`
    (or `description` / `text`), optional `weight` (> 0, default 1) and `name` (or `title`)."""
    if not isinstance(rubric, list | tuple) or not rubric:
        raise ValueError("a rubric must be a non-empty list of items")
    items: list[tuple[str, str, float]] = []
    for i, item in enumerate(rubric, 1):
        if isinstance(item, str):
            name, text, weight = f"item_{i}", item, 1.0
        elif isinstance(item, dict):
            text = item.get("criterion", item.get("description", item.get("text")))
            name = str(item.get("name", item.get("title", f"item_{i}")))
            weight = item.get("weight", 1.0)
        else:
            raise ValueError(f"rubric item {i} must be a string or a mapping")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"rubric item {i} has no criterion text")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
            math.isfinite(weight) and weight > 0
        ):
            raise ValueError(f"rubric item {i} needs a positive finite weight, got {weight!r}")
        items.append((name, text.strip(), float(weight)))
    names = [n for n, _, _ in items]
    if len(set(names)) != len(names):
        raise ValueError("rubric item names must be unique")
    return items


def _yes_no(s: JudgeSettings) -> VerdictFormat:
    if s.verdict == "logprobs":
        return VerdictFormat(YES_NO.pattern, {"YES": 1.0, "NO": 0.0})
    if s.verdict_pattern is not None:
        return VerdictFormat(_pattern(s, ""), YES_NO.labels)
    return YES_NO


async def _checklist(
    session: _Session,
    checks: Sequence[tuple[str, str, float]],
    slot: str,
    values: dict[str, str],
) -> tuple[dict[str, float | None], list[dict[str, Any]], list[str]]:
    """Ask one yes/no question per check, in order; returns components, records, failures."""
    tpl = session.template()
    fmt = _yes_no(session.s)
    components: dict[str, float | None] = {}
    records: list[dict[str, Any]] = []
    failures: list[str] = []
    for name, text, weight in checks:
        rec: dict[str, Any] = {"name": name, slot: text, "weight": weight}
        try:
            asked = await session.ask(tpl.render({**values, slot: text}), fmt)
        except _Failed as exc:
            components[name] = None
            rec.update(error=exc.reason, texts=exc.texts)
            failures.append(f"{name}: {exc.reason}")
        else:
            components[name] = asked.value
            rec.update(asked.record())
        records.append(rec)
    return components, records, failures


# -- rewards -----------------------------------------------------------------------------------
def _rating_format(s: JudgeSettings, min_score: int, max_score: int) -> VerdictFormat:
    """How a rating on the scale is read: a bracketed number within it, or (log-probs) one of
    its digits."""
    if s.verdict == "logprobs":
        return VerdictFormat(bracketed(r"\d"), {str(d): float(d)
                                                for d in range(min_score, max_score + 1)})
    return VerdictFormat(_pattern(s, r"[-+]?\d+(?:\.\d+)?"), {},
                         numeric=(float(min_score), float(max_score)))


def _normalised(raw: float, min_score: int, max_score: int) -> float:
    return (raw - min_score) / (max_score - min_score)


@_judge("score", "judge_score")
async def judge_score(
    prompt_text: str,
    response_text: str,
    reference: Any,
    *,
    min_score: int = 1,
    max_score: int = 10,
    principles: list[str] | None = None,
    **settings: Any,
) -> Score:
    """LLM judge rating of the response, scale mapped to [0, 1]; higher is better.

    The raw rating (text ``[[N]]``, or the probability-weighted digit with
    ``verdict="logprobs"``) is in ``details["raw_score"]``. A string `reference` is shown to
    the judge as a reference answer when `use_reference`; `principles` are added to the prompt.
    The other parameters are the `JudgeSettings` every judge shares.

    Configured here without a request (scoring asks the endpoint); the key stays out of the
    fingerprint and is never shown, and `read_verdict` shows what an answer counts for:

    >>> from rewardlab.models.judge import judge_score
    >>> judge = judge_score(model="qwen2.5-7b-instruct", base_url="http://localhost:8000/v1",
    ...                     api_key="sk-example", min_score=1, max_score=5)
    >>> judge.info.describe()
    '[0, 1], higher is better, per sequence'
    >>> "sk-example" in repr(judge)
    False
    >>> same = judge_score(model="qwen2.5-7b-instruct", base_url="http://localhost:8000/v1",
    ...                    api_key="sk-another", min_score=1, max_score=5)
    >>> same.fingerprint == judge.fingerprint
    True
    >>> judge.read_verdict("Correct and clear, one step unexplained. [[4]]")
    0.75
    >>> judge.read_verdict("I would give it 4 out of 5.")
    Traceback (most recent call last):
    ...
    rewardlab.models._judge_verdict.Unparseable: no verdict matching ... in the judge output
    """
    s = JudgeSettings(**settings)
    session = _Session.of("score", s)
    tpl = session.template()
    fmt = _rating_format(s, min_score, max_score)
    values = {
        **_context(prompt_text, reference, s.use_reference),
        "response": response_text,
        "principles": _principles_text(principles),
        "min_score": str(min_score),
        "max_score": str(max_score),
    }
    try:
        asked = await session.ask(tpl.render(values), fmt)
    except _Failed as exc:
        return session.error(exc.reason, texts=exc.texts)
    raw = asked.value
    return Score.of(
        _normalised(raw, min_score, max_score),
        details=session.details(raw_score=raw, scale=[min_score, max_score], **asked.record()),
        cost=session.cost(),
    )


def _preference_format(s: JudgeSettings, response_slot: str) -> VerdictFormat:
    """Verdict values from the response's side: 1 when its slot wins, 0 when the other does."""
    other = "B" if response_slot == "A" else "A"
    labels = {response_slot: 1.0, other: 0.0}
    if s.verdict == "logprobs":
        return VerdictFormat(bracketed("a|b"), labels)
    return VerdictFormat(_pattern(s, "a|b|tie"), {**labels, "TIE": 0.5})


@_judge("pairwise", "judge_pairwise")
async def judge_pairwise(
    prompt_text: str,
    response_text: str,
    reference: Any,
    metadata: dict[str, Any],
    *,
    against: str = "reference",
    swap: bool = True,
    principles: list[str] | None = None,
    **settings: Any,
) -> Score:
    """LLM judge preference for the response over a second one, in [0, 1]; higher is better.

    The mean over the orders asked of 1 (the response wins), 0 (it loses) or 0.5 (tie), or
    with ``verdict="logprobs"`` of P(response): 0.5 when the orders disagree. The second
    response is the sample's `reference` (``against="reference"``) or ``metadata[against]``;
    with `swap` the judge sees both orders, and ``details["consistent"]`` says whether they
    agree (see `rewardlab.audit.position.position_report`). Abstains when there is no second
    response. The other parameters are the `JudgeSettings` every judge shares.

    Configured without a request; a verdict names the response shown first (A) or second (B):

    >>> from rewardlab.models.judge import judge_pairwise
    >>> judge = judge_pairwise(model="qwen2.5-7b-instruct", base_url="http://localhost:8000/v1",
    ...                        against="baseline")
    >>> judge.params["swap"], judge.info.describe()
    (True, '[0, 1], higher is better, per sequence')
    >>> [judge.read_verdict(t) for t in ("[[A]]", "Both equal: [[tie]]", "B is better. [[B]]")]
    [1.0, 0.5, 0.0]
    """
    s = JudgeSettings(**settings)
    other = reference if against == "reference" else metadata.get(against)
    if not isinstance(other, str):
        return Score.abstain(f"no second response to compare with (looked in {against!r})")
    session = _Session.of("pairwise", s)
    tpl = session.template()
    ref = reference if against != "reference" else None
    base = {**_context(prompt_text, ref, s.use_reference),
            "principles": _principles_text(principles)}
    orders = [("A", response_text, other)] + ([("B", other, response_text)] if swap else [])
    records: list[dict[str, Any]] = []
    values: list[float] = []
    for slot, first, second in orders:
        messages = tpl.render({**base, "response_a": first, "response_b": second})
        try:
            asked = await session.ask(messages, _preference_format(s, slot))
        except _Failed as exc:
            records.append({"response_slot": slot, "error": exc.reason, "texts": exc.texts})
            return session.error(exc.reason, orders=records)
        values.append(asked.value)
        first_pref = asked.value if slot == "A" else 1.0 - asked.value
        records.append({"response_slot": slot, "first_slot_preference": first_pref,
                        **asked.record()})
    extra: dict[str, Any] = {"orders": records}
    if len(values) == 2:
        signs = {math.copysign(1, v - 0.5) if v != 0.5 else 0 for v in values}
        extra["consistent"] = len(signs) == 1
        extra["position_gap"] = abs(values[0] - values[1])
    return Score.of(sum(values) / len(values), details=session.details(**extra),
                    cost=session.cost())


@_judge("rubric", "judge_rubric")
async def judge_rubric(
    prompt_text: str,
    response_text: str,
    reference: Any,
    metadata: dict[str, Any],
    *,
    rubric: list[Any] | None = None,
    rubric_key: str = "rubric",
    **settings: Any,
) -> Score:
    """LLM judge checklist: weighted share of rubric items met, in [0, 1]; higher is better.

    Items come from `rubric` or ``metadata[rubric_key]``: strings, or mappings with
    ``criterion``, ``weight`` (> 0) and ``name``. One yes/no question per item; each item's
    verdict (0/1, or P(yes) with ``verdict="logprobs"``) is in ``Score.components``. Any item
    without a verdict makes the score an error. Abstains when the sample has no rubric. The
    other parameters are the `JudgeSettings` every judge shares.

    Configured without a request; a malformed rubric fails at configuration, and each item's
    answer is a strict yes or no:

    >>> from rewardlab.models.judge import judge_rubric
    >>> judge = judge_rubric(model="qwen2.5-7b-instruct", base_url="http://localhost:8000/v1",
    ...                      rubric=["States the final answer", {"criterion": "Shows the work",
    ...                                                           "weight": 2}])
    >>> [judge.read_verdict(t) for t in ("[[YES]]", "Not shown. [[no]]")]
    [1.0, 0.0]
    >>> judge_rubric(model="qwen2.5-7b-instruct", rubric=[{"criterion": "Cites", "weight": 0}])
    Traceback (most recent call last):
    ...
    ValueError: rubric item 1 needs a positive finite weight, got 0
    """
    s = JudgeSettings(**settings)
    raw_items = rubric if rubric is not None else metadata.get(rubric_key)
    if raw_items is None:
        return Score.abstain(f"no rubric (pass rubric=... or set metadata[{rubric_key!r}])")
    try:
        items = _rubric_items(raw_items)
    except ValueError as exc:
        return Score.error(f"invalid rubric: {exc}")
    session = _Session.of("rubric", s)
    values = {**_context(prompt_text, reference, s.use_reference), "response": response_text}
    components, records, failures = await _checklist(session, items, "criterion", values)
    if failures:
        return Score.error(f"{len(failures)} of {len(items)} rubric item(s) without a verdict; "
                           f"{failures[0]}", components=components,
                           details=session.details(items=records), cost=session.cost())
    total = sum(w for _, _, w in items)
    value = sum(w * (components[n] or 0.0) for n, _, w in items) / total
    return Score.of(value, components=components, details=session.details(items=records),
                    cost=session.cost())


@_judge("principles", "judge_principles")
async def judge_principles(
    prompt_text: str,
    response_text: str,
    reference: Any,
    metadata: dict[str, Any],
    *,
    principles: list[str] | None = None,
    principles_key: str = "principles",
    aggregate: Literal["mean", "min"] = "mean",
    **settings: Any,
) -> Score:
    """LLM judge of how well the response follows user principles, in [0, 1]; higher is better.

    Principles come from `principles` or ``metadata[principles_key]``; each gets a yes/no
    verdict (P(yes) with ``verdict="logprobs"``) in ``components`` as ``principle_<i>``; the
    value is their mean, or with ``aggregate="min"`` the worst one. Abstains without principles.
    The other parameters are the `JudgeSettings` every judge shares.

    Configured without a request; answers that say both yes and no count for neither:

    >>> from rewardlab.models.judge import judge_principles
    >>> judge = judge_principles(model="qwen2.5-7b-instruct", base_url="http://localhost:8000/v1",
    ...                          principles=["Do not reveal personal data"], aggregate="min")
    >>> judge.read_verdict("It complies. [[YES]]")
    1.0
    >>> judge.read_verdict("[[YES]] for the first part, [[NO]] for the second")
    Traceback (most recent call last):
    ...
    rewardlab.models._judge_verdict.Unparseable: conflicting verdicts in the judge output: ['NO', 'YES']
    """
    s = JudgeSettings(**settings)
    raw = principles if principles is not None else metadata.get(principles_key)
    if raw is None:
        return Score.abstain(
            f"no principles (pass principles=... or set metadata[{principles_key!r}])")
    try:
        listed = _principle_list(raw)
    except ValueError as exc:
        return Score.error(f"invalid principles: {exc}")
    session = _Session.of("principles", s)
    checks = [(f"principle_{i}", text, 1.0) for i, text in enumerate(listed, 1)]
    values = {**_context(prompt_text, reference, s.use_reference), "response": response_text}
    components, records, failures = await _checklist(session, checks, "principle", values)
    if failures:
        return Score.error(f"{len(failures)} of {len(checks)} principle(s) without a verdict; "
                           f"{failures[0]}", components=components,
                           details=session.details(principles=records), cost=session.cost())
    got = [components[n] or 0.0 for n, _, _ in checks]
    value = min(got) if aggregate == "min" else sum(got) / len(got)
    return Score.of(value, components=components, details=session.details(principles=records),
                    cost=session.cost())
