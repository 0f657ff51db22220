r"""Best-of-N selection: one response per prompt group.

Methods (`METHODS`):

- ``reward``: the candidate with the best score (highest, or lowest for a lower-is-better
  reward). With several rewards, or a spec whose root is an ``ensemble`` node, the score is the
  ensemble's (mean, worst case, or mean - lambda * std: `rewardlab.apply.groups.ensemble_score`).
- ``majority``: majority vote over the final answers (maj@k, self-consistency): each candidate
  with an extractable answer casts one vote.
- ``weighted_majority``: each vote weighs the candidate's score (Uesato et al. 2022, Lightman
  et al. 2023): ``score(a) = sum of w_i over the candidates whose answer is a``. Weights must be
  non-negative (use a probability-like reward: a group with a negative weight selects nothing).
- ``self_certainty``: the candidate the policy itself was surest of, read from the per-token
  log-probabilities in the rollout row (`certainty`), no reward needed.

Answers are extracted and compared with rewardlab's math answer rules
(`rewardlab.rewards.math.extract_answer` and its fast exact comparison), so ``\boxed{1/2}``,
``0.5`` and "The answer is \frac12" are one answer; several boxes in one response are one
joined answer (a spray of boxes votes for the tuple it spells, not for each box). Two answers
vote together when the exact comparison proves them equal; what only the symbolic check could
settle counts as different answers.

Fail closed: a candidate whose score is not ``ok`` never wins and never votes (when a reward
is given); a candidate with no answer does not vote; a group with no eligible candidate
selects nothing, with the reason. Ties are broken deterministically: among equal scores the
candidate read first wins; among answers with equal vote totals the one whose best single
score is higher wins, then the one seen first; within the winning answer, the best-scored
candidate (then the first) is returned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardlab.apply.groups import Candidate, Group
from rewardlab.core.text import prompt_opens_think
from rewardlab.rewards._math_extract import extract
from rewardlab.rewards.math import DEFAULT_ORDER, check_order, fast_check

Method = Literal["reward", "majority", "weighted_majority", "self_certainty"]
METHODS: tuple[str, ...] = ("reward", "majority", "weighted_majority", "self_certainty")
NEEDS_REWARD = {"reward", "weighted_majority"}
LOGPROBS_FIELD = "logprobs"


@dataclass
class Selection:
    """What best-of-N chose for one group: the candidate (None when nothing could be chosen,
    with the `reason`), the method, the group's size and eligible count, and for votes the
    chosen answer and each answer's total."""

    group: str
    method: str
    chosen: Candidate | None
    n: int
    eligible: int
    reason: str | None = None
    answer: str | None = None
    votes: dict[str, float] = field(default_factory=dict)
    certainty: float | None = None


def _better(a: float, b: float, higher: bool) -> bool:
    return a > b if higher else a < b


def _best(cands: Sequence[Candidate], higher: bool) -> Candidate:
    """The best-scored candidate; the first in input order among equals."""
    best = cands[0]
    for c in cands[1:]:
        if _better(c.value, best.value, higher):
            best = c
    return best


def answer_of(c: Candidate, order: Sequence[str] = DEFAULT_ORDER) -> str | None:
    """The candidate's final answer, extracted as `math_answer` extracts it (None when there is
    none): in the final text, and the unmarked fallbacks skip numbers copied from the prompt."""
    prompt = c.sample.prompt_text
    found = extract(c.sample.response_text, order, strip_think=True, opened=prompt_opens_think(prompt),
                    prompt=prompt)
    return None if found is None else found.answer


def same_answer(a: str, b: str) -> bool:
    """Whether two answers are proven equal by the exact math comparison (normalised text,
    exact numbers, structure); anything it cannot settle counts as different."""
    if a == b:
        return True
    try:
        eq, _ = fast_check(a, b, 1e-9)
    except (ValueError, TypeError, ArithmeticError, RecursionError):
        return False
    return eq is True


def vote(cands: Sequence[Candidate], *, weighted: bool, higher: bool = True,
         order: Sequence[str] = DEFAULT_ORDER) -> tuple[Candidate | None, str | None, dict[str, float], str | None]:
    """Vote over the candidates' answers: (winner, its answer, totals per answer, reason when
    no winner). Each candidate with an answer votes once (weight: its score when `weighted`,
    else 1); a candidate with a score that is not ok does not vote."""
    clusters: list[tuple[str, list[Candidate]]] = []
    for c in cands:
        if c.score is not None and not c.ok:
            continue
        ans = answer_of(c, order)
        if ans is None:
            continue
        for rep, members in clusters:
            if same_answer(rep, ans):
                members.append(c)
                break
        else:
            clusters.append((ans, [c]))
    if not clusters:
        return None, None, {}, "no candidate with an ok score has an extractable answer"
    scored = all(c.ok for _, ms in clusters for c in ms)
    if weighted:
        neg = [c for _, ms in clusters for c in ms if c.value < 0]
        if neg:
            return None, None, {}, (f"weighted vote needs non-negative weights; row {neg[0].index} scored "
                                    f"{neg[0].value:g} (use a probability-like reward)")
    totals = {rep: math.fsum(c.value for c in ms) if weighted else float(len(ms)) for rep, ms in clusters}

    def key(i: int) -> tuple[float, float, int]:
        rep, ms = clusters[i]
        top = _best(ms, higher).value if scored else 0.0
        return (totals[rep], top if higher else -top, -i)

    win = max(range(len(clusters)), key=key)
    rep, members = clusters[win]
    chosen = _best(members, higher) if scored else members[0]
    return chosen, rep, totals, None


def _logprob_rows(raw: Any) -> list[Any] | None:
    """The per-token entries of a log-probability field: a list, or OpenAI's ``{"content": [...]}``."""
    if isinstance(raw, Mapping) and isinstance(raw.get("content"), list):
        raw = raw["content"]
    return raw if isinstance(raw, list) else None


def _token(entry: Any) -> tuple[float | None, list[float] | None]:
    """One token entry as (sampled log-prob, top-k log-probs); either may be None."""
    if isinstance(entry, Mapping):
        sampled = float(entry["logprob"]) if "logprob" in entry else None
        tops = entry.get("top_logprobs")
        if tops:
            if isinstance(tops, Mapping):
                return sampled, [float(v) for v in tops.values()]
            return sampled, [float(t["logprob"] if isinstance(t, Mapping) else t) for t in tops]
        if sampled is not None:
            return sampled, None
        return None, [float(v) for v in entry.values()]
    if isinstance(entry, list):
        return None, [float(v) for v in entry]
    return float(entry), None


def certainty(row: Mapping[str, Any], field_name: str = LOGPROBS_FIELD) -> tuple[float | None, str]:
    """The policy's certainty about a response, from the per-token log-probabilities in the
    row's `field_name` (higher = surer): (value, kind) or (None, why not).

    - Top-k distributions per token (``[{token: logprob, ...}, ...]``, ``[[logprob, ...], ...]``,
      or OpenAI's ``{"content": [{"logprob": ..., "top_logprobs": [{"logprob": ...}, ...]}, ...]}``): the
      self-certainty of Kang et al. 2025 ("Scalable Best-of-N Selection for Large Language Models
      via Self-Certainty", arXiv 2502.18581), mean over tokens of KL(uniform || p_t), computed over
      the renormalised top-k (the full distribution is not in the row): per token
      ``-log k - (1/k) * sum_j log q_j``, in [0, inf); kind ``"self_certainty_topk"``.
    - Only the sampled tokens' log-probabilities (``[float, ...]``, or OpenAI's entries without
      ``top_logprobs``): their mean (the average log-likelihood, <= 0); kind ``"mean_logprob"``.

    The full-distribution self-certainty from a local model is the ``self_certainty`` reward
    (`rewardlab.models.implicit`), used with method ``reward``.
    """
    entries = _logprob_rows(row.get(field_name))
    if not entries:
        return None, f"no per-token log-probabilities in field {field_name!r}"
    try:
        tokens = [_token(e) for e in entries]
        tops = [t for _, t in tokens]
        if all(t is None for t in tops):
            vals = [float(v) for v, _ in tokens if v is not None]
            if len(vals) != len(tokens):
                return None, f"unreadable log-probabilities in field {field_name!r}"
            value, kind = math.fsum(vals) / len(vals), "mean_logprob"
        elif any(not t for t in tops):
            return None, f"field {field_name!r} mixes top-k and bare log-probabilities"
        else:
            per_token = []
            for t in tops:
                assert t is not None
                m = max(t)
                log_z = m + math.log(math.fsum(math.exp(v - m) for v in t))
                per_token.append(-math.log(len(t)) - math.fsum(v - log_z for v in t) / len(t))
            value, kind = math.fsum(per_token) / len(per_token), "self_certainty_topk"
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        return None, f"unreadable log-probabilities in field {field_name!r}: {exc}"
    if not math.isfinite(value):
        return None, f"non-finite log-probabilities in field {field_name!r}"
    return value, kind


def select(group: Group, method: Method = "reward", *, higher: bool = True,
           extract_order: Sequence[str] = DEFAULT_ORDER, logprobs_field: str = LOGPROBS_FIELD) -> Selection:
    """Best-of-N over one group by `method` (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    cands = group.candidates
    n = len(cands)
    eligible = [c for c in cands if c.ok] if (method in NEEDS_REWARD or any(c.score is not None for c in cands)) \
        else list(cands)
    if method in NEEDS_REWARD and any(c.score is None for c in cands):
        raise ValueError(f"method {method!r} needs scored candidates (give a reward)")
    if method == "weighted_majority" and not higher:
        raise ValueError("a weighted vote needs a higher-is-better reward (its scores are the weights)")
    sel = Selection(group.key, method, None, n, len(eligible))
    if not eligible:
        sel.reason = f"no ok score in the group ({group.failures()})"
        return sel
    if method == "reward":
        sel.chosen = _best(eligible, higher)
    elif method in ("majority", "weighted_majority"):
        chosen, ans, totals, why = vote(cands, weighted=method == "weighted_majority", higher=higher,
                                        order=check_order(extract_order))
        sel.chosen, sel.answer, sel.votes, sel.reason = chosen, ans, totals, why
    else:
        best: tuple[float, Candidate] | None = None
        kinds: set[str] = set()
        whys: list[str] = []
        for c in eligible:
            value, kind = certainty(c.row, logprobs_field)
            if value is None:
                whys.append(kind)
                continue
            kinds.add(kind)
            if best is None or value > best[0]:
                best = (value, c)
        if len(kinds) > 1:
            sel.reason = "candidates carry different kinds of log-probabilities: " + ", ".join(sorted(kinds))
        elif best is None:
            sel.reason = whys[0]
        else:
            sel.certainty, sel.chosen = best
    return sel


def best_of_n(groups: Sequence[Group], method: Method = "reward", *, higher: bool = True,
              extract_order: Sequence[str] = DEFAULT_ORDER,
              logprobs_field: str = LOGPROBS_FIELD) -> list[Selection]:
    """`select` over every group, in order (a group with nothing selectable gives a `Selection`
    with ``chosen=None`` and the reason)."""
    return [select(g, method, higher=higher, extract_order=extract_order, logprobs_field=logprobs_field)
            for g in groups]
