"""The reward graph: leaves (configured rewards) and combinators.

Every node scores a batch and returns one `Score` per sample. A composite keeps each child's
value in `Score.components` (nested children as ``parent/child``). What a composite does with a
child that is not `ok` is its policy (`on_error` for errors, `on_abstain` for abstentions):

- ``"propagate"`` (default): the composite takes that status, with the child's reason;
- ``"skip"``: the child is left out (sums and means re-weight over the children present; if
  none is present the composite takes the status);
- a number: the child counts as that value (an explicit fallback, recorded in the reason).

There is never an implicit 0.

Cost. A composite's `cost` is the field-by-field sum of its children's costs (seconds, judge
tokens, usd), a child that failed, abstained or was skipped included (its cost was spent), and
for a `Gate` its condition plus its branch where the branch was computed. A failed composite
carries it too.

Finer values. A composite's `steps`, `turns` and `tokens` come from its children's by the
operation that makes its value, where that operation has a per-unit form:

- `WeightedSum` and a ``mean`` `Ensemble` are linear: the composite's finer values are
  ``sum_i c_i * f_i``, where ``c_i`` is child i's coefficient in the value (its weight, re-scaled
  as the value is when children are skipped; ``1/n`` for a mean), aligned unit by unit: steps
  with steps, turns with turns, tokens with tokens of the same tokenizer and character offsets.
  A contributing child without finer values of that kind (a sequence-level reward, or a child
  counted at its fallback value) adds ``c_i * value`` to the *last* unit: a sequence-level
  reward is an outcome reward, credited where the sequence ends (as trainers place a sequence
  reward on the final token). So when every child's finer values add up to its value
  (``implicit_dpo`` tokens, ``implicit_prm`` steps with ``aggregate="sum"``) the composite's add
  up to its value; for finer values that are per-unit means (``simpo_likelihood`` tokens,
  ``tool_call_match`` turns: each turn's mean call score) the result is the same per-unit credit
  in the composite's scale. No child with finer values of a kind: the composite has none.
- `Penalty`: the base's finer values times the factor's value (one number per sample).
- `Gate`: open, the `then` branch's finer values (the value is that branch's); closed, none (the
  value is the constant `otherwise`). The condition's finer values never pass: it opens the gate
  and earns no credit of its own.
- ``min``, ``max``, ``median`` and ``mean_minus_std`` ensembles: none.
- A failed composite: none.

Whatever is not carried (a penalty factor's or a gate condition's finer values, an ensemble
that has no per-unit form, children with different numbers of units, tokenizers or offsets) is
one line in ``details["dropped"]``. A composite's `details` is ``{"children": {label:
child's details}, "dropped": [...]}``, each key present only when non-empty (children without
details are left out; two children with one label are told apart as ``label#2``). Each child's
details appear once, so the size grows with the tree, not faster; JSON nesting past
`rewardlab.core.types.json_safe`'s depth is cut with a marker.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rewardlab.compose import granularity
from rewardlab.compose.granularity import Finer
from rewardlab.core.reward import Direction, Reward, fingerprint_of
from rewardlab.core.types import Cost, Sample, Score, Status, total_cost
from rewardlab.runtime.engine import LeafOptions, Runtime

Policy = Literal["propagate", "skip"] | float


@dataclass
class Policies:
    on_error: Policy = "propagate"
    on_abstain: Policy = "propagate"

    def for_status(self, status: Status) -> Policy:
        return self.on_error if status is Status.error else self.on_abstain


class Node:
    label: str
    weight: float = 1.0
    range: tuple[float, float] = (-math.inf, math.inf)
    direction: Direction = "higher"
    needs_groups: bool = False

    @property
    def fingerprint(self) -> str:
        raise NotImplementedError

    async def run(self, samples: Sequence[Sample], rt: Runtime) -> list[Score]:
        raise NotImplementedError

    def subnodes(self) -> list[Node]:
        return []

    def walk(self) -> Iterator[Node]:
        """This node and every node below it."""
        yield self
        for c in self.subnodes():
            yield from c.walk()

    def leaves(self) -> list[Leaf]:
        return [n for n in self.walk() if isinstance(n, Leaf)]


@dataclass(eq=False)
class Leaf(Node):
    reward: Reward
    label: str
    weight: float = 1.0
    options: LeafOptions = field(default_factory=LeafOptions)

    def __post_init__(self) -> None:
        self.range = self.reward.info.range
        self.direction = self.reward.info.direction

    @property
    def fingerprint(self) -> str:
        return self.reward.fingerprint

    async def run(self, samples: Sequence[Sample], rt: Runtime) -> list[Score]:
        return await rt.score_leaf(self.reward, samples, self.options, self.label)



def _nested(label: str, score: Score) -> dict[str, float | None]:
    out: dict[str, float | None] = {label: score.value}
    for k, v in score.components.items():
        out[f"{label}/{k}"] = v
    return out


def _fail(status: Status, label: str, reason: str | None, comps: dict[str, float | None],
          cost: Cost | None = None, details: dict[str, Any] | None = None) -> Score:
    return Score(status=status, reason=f"{label}: {reason}", components=comps, cost=cost, details=details)


def _details(labels: Sequence[str], scores: Sequence[Score], dropped: Sequence[str] = ()
             ) -> dict[str, Any] | None:
    """A composite's details: each child's under its label, and what was dropped (see the module doc)."""
    children: dict[str, Any] = {}
    for label, sc in zip(labels, scores, strict=True):
        if sc.details:
            key, n = label, 1
            while key in children:
                n += 1
                key = f"{label}#{n}"
            children[key] = sc.details
    out: dict[str, Any] = {}
    if children:
        out["children"] = children
    if dropped:
        out["dropped"] = list(dropped)
    return out or None


def _carrying(failure: Score, labels: Sequence[str], scores: Sequence[Score]) -> Score:
    """A failed composite score with its children's cost and details."""
    return Score(status=failure.status, reason=failure.reason, components=failure.components,
                 cost=total_cost(scores), details=_details(labels, scores))


@dataclass
class _Resolved:
    values: list[float | None]  # None: skipped
    failure: Score | None
    notes: list[str]


def _resolve(
    children: Sequence[Node], scores: Sequence[Score], policies: Policies
) -> _Resolved:
    """Apply the policies to one sample's child scores."""
    values: list[float | None] = []
    notes: list[str] = []
    comps: dict[str, float | None] = {}
    for child, sc in zip(children, scores, strict=True):
        comps.update(_nested(child.label, sc))
    worst: Score | None = None
    worst_child = ""
    for child, sc in zip(children, scores, strict=True):
        if sc.status is Status.ok:
            values.append(sc.value)
            if sc.reason:  # a child's own notes (e.g. a fallback deeper down) stay visible
                notes.append(f"{child.label}: {sc.reason}")
            continue
        policy = policies.for_status(sc.status)
        if policy == "propagate":
            if worst is None or (sc.status is Status.error and worst.status is not Status.error):
                worst, worst_child = sc, child.label
            values.append(None)
        elif policy == "skip":
            notes.append(f"{child.label} skipped ({sc.status.value}: {sc.reason})")
            values.append(None)
        else:
            notes.append(f"{child.label} fell back to {policy:g} ({sc.status.value}: {sc.reason})")
            values.append(float(policy))
    if worst is not None:
        return _Resolved(values, _fail(worst.status, worst_child, worst.reason, comps), notes)
    if all(v is None for v in values):
        first = scores[0]
        return _Resolved(values, _fail(first.status, children[0].label, first.reason, comps), notes)
    return _Resolved(values, None, notes)


def _ok(value: float, children: Sequence[Node], scores: Sequence[Score], notes: list[str],
        extra: dict[str, float | None] | None = None, finer: Finer | None = None) -> Score:
    comps: dict[str, float | None] = {}
    for child, sc in zip(children, scores, strict=True):
        comps.update(_nested(child.label, sc))
    if extra:
        comps.update(extra)
    if finer is None:
        return Score(value=value, components=comps, reason="; ".join(notes) or None,
                     cost=total_cost(scores), details=_details([c.label for c in children], scores))
    return Score(value=value, components=comps, reason="; ".join(notes) or None,
                 cost=total_cost(scores), details=_details([c.label for c in children], scores, finer.dropped),
                 **finer.fields())


async def _run_children(
    children: Sequence[Node], samples: Sequence[Sample], rt: Runtime
) -> list[list[Score]]:
    """Each child's scores on the batch (children run concurrently); per sample, a row."""
    per_child = await asyncio.gather(*(c.run(samples, rt) for c in children))
    return [list(row) for row in zip(*per_child, strict=True)]


class _Combiner(Node):
    """A node that combines its children's values sample by sample, after the policies."""

    policies: Policies

    def kids(self) -> list[Node]:
        raise NotImplementedError

    def coefficients(self, values: list[float | None]) -> list[float | None]:
        """Each child's coefficient in the value, where the value is linear in that child's
        value (None elsewhere: its finer values are dropped, `why_not_finer` says why)."""
        return [None] * len(values)

    def why_not_finer(self) -> str:
        """Why a child without a coefficient has its finer values dropped."""
        return "not combined"

    def combine(self, values: list[float | None]) -> tuple[float | None, dict[str, float | None]]:
        """The value from the children's values (None: skipped), and extra components.
        A None value means the node has no value (its first non-ok child decides why)."""
        raise NotImplementedError

    def subnodes(self) -> list[Node]:
        return self.kids()

    async def run(self, samples: Sequence[Sample], rt: Runtime) -> list[Score]:
        kids = self.kids()
        labels = [k.label for k in kids]
        out = []
        for row in await _run_children(kids, samples, rt):
            r = _resolve(kids, row, self.policies)
            if r.failure:
                out.append(_carrying(r.failure, labels, row))
                continue
            value, extra = self.combine(r.values)
            if value is None:
                i = next(i for i, v in enumerate(r.values) if v is None)
                out.append(_fail(row[i].status, kids[i].label, row[i].reason, {},
                                 total_cost(row), _details(labels, row)))
            else:
                finer = None
                if granularity.any_finer(row):
                    finer = granularity.linear(labels, row, r.values, self.coefficients(r.values),
                                               self.why_not_finer())
                out.append(_ok(value, kids, row, r.notes, extra, finer))
        return out


@dataclass(eq=False)
class WeightedSum(_Combiner):
    """sum_i w_i * r_i. With `skip`, weights re-normalise over the children present."""

    children: list[Node]
    label: str = "sum"
    weight: float = 1.0
    policies: Policies = field(default_factory=Policies)

    def __post_init__(self) -> None:
        lo = sum(min(c.weight * c.range[0], c.weight * c.range[1]) for c in self.children)
        hi = sum(max(c.weight * c.range[0], c.weight * c.range[1]) for c in self.children)
        self.range = (lo, hi)
        self.needs_groups = any(c.needs_groups for c in self.children)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(["sum", [(c.fingerprint, c.weight) for c in self.children]])

    def kids(self) -> list[Node]:
        return list(self.children)

    def combine(self, values: list[float | None]) -> tuple[float | None, dict[str, float | None]]:
        present = [(c.weight, v) for c, v in zip(self.children, values, strict=True) if v is not None]
        value = sum(w * v for w, v in present)
        wsum = sum(w for w, _ in present)
        if len(present) < len(self.children) and wsum:
            value *= sum(c.weight for c in self.children) / wsum
        return value, {}

    def coefficients(self, values: list[float | None]) -> list[float | None]:
        present = [c.weight for c, v in zip(self.children, values, strict=True) if v is not None]
        wsum = sum(present)
        scale = 1.0
        if len(present) < len(self.children) and wsum:
            scale = sum(c.weight for c in self.children) / wsum
        return [None if v is None else c.weight * scale for c, v in zip(self.children, values, strict=True)]


@dataclass(eq=False)
class Gate(Node):
    """`then` counts only where `when` passes (value >= threshold); elsewhere `otherwise`.
    `then` is computed only for the samples that pass."""

    when: Node
    then: Node
    threshold: float = 1.0
    otherwise: float = 0.0
    label: str = "gate"
    weight: float = 1.0
    policies: Policies = field(default_factory=Policies)

    _WHY = "a gate's condition opens it and earns no credit of its own"

    def __post_init__(self) -> None:
        self.range = (min(self.then.range[0], self.otherwise),
                      max(self.then.range[1], self.otherwise))
        self.direction = self.then.direction
        self.needs_groups = self.when.needs_groups or self.then.needs_groups

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(["gate", self.when.fingerprint, self.then.fingerprint,
                               self.threshold, self.otherwise])

    async def run(self, samples: Sequence[Sample], rt: Runtime) -> list[Score]:
        conds = await self.when.run(samples, rt)
        resolved = [_resolve([self.when], [c], self.policies) for c in conds]
        passing = [i for i, r in enumerate(resolved)
                   if r.failure is None and r.values[0] is not None
                   and r.values[0] >= self.threshold]
        then_scores = await self.then.run([samples[i] for i in passing], rt)
        by_index = dict(zip(passing, then_scores, strict=True))
        out = []
        labels = [self.when.label, self.then.label]
        for i, (cond, r) in enumerate(zip(conds, resolved, strict=True)):
            if r.failure:
                out.append(_carrying(r.failure, labels[:1], [cond]))
            elif i not in by_index:
                note = f"gate closed: {self.when.label}={cond.value if cond.ok else 'n/a'}"
                dropped = granularity.linear(labels[:1], [cond], [None], [None], self._WHY).dropped
                out.append(Score(value=self.otherwise, components=_nested(self.when.label, cond),
                                 reason="; ".join([note, *r.notes]), cost=cond.cost,
                                 details=_details(labels[:1], [cond], dropped)))
            else:
                t = by_index[i]
                rt_ = _resolve([self.then], [t], self.policies)
                if rt_.failure:
                    comps = {**_nested(self.when.label, cond), **rt_.failure.components}
                    out.append(_carrying(rt_.failure.model_copy(update={"components": comps}),
                                         labels, [cond, t]))
                    continue
                value = rt_.values[0]
                assert value is not None
                finer = None
                if granularity.any_finer([cond, t]):
                    finer = granularity.linear(labels, [cond, t], [None, value], [None, 1.0], self._WHY)
                out.append(_ok(value, [self.when, self.then], [cond, t], [*r.notes, *rt_.notes],
                               finer=finer))
        return out

    def subnodes(self) -> list[Node]:
        return [self.when, self.then]


@dataclass(eq=False)
class Penalty(_Combiner):
    """base * factor, for a factor in [0, 1] (e.g. a length or repetition penalty).
    A skipped factor leaves the base as it is; a skipped base leaves no value."""

    base: Node
    factor: Node
    label: str = "penalty"
    weight: float = 1.0
    policies: Policies = field(default_factory=Policies)

    def __post_init__(self) -> None:
        lo, hi = self.factor.range
        if lo < 0 or hi > 1:
            raise ValueError(
                f"penalty factor {self.factor.label!r} has range [{lo:g}, {hi:g}]; "
                "a multiplicative penalty needs a factor within [0, 1]"
            )
        self.range = (min(0.0, self.base.range[0]), max(0.0, self.base.range[1]))
        self.direction = self.base.direction
        self.needs_groups = self.base.needs_groups or self.factor.needs_groups

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(["penalty", self.base.fingerprint, self.factor.fingerprint])

    def kids(self) -> list[Node]:
        return [self.base, self.factor]

    def why_not_finer(self) -> str:
        return "a penalty factor scales the whole sample and earns no credit of its own"

    def coefficients(self, values: list[float | None]) -> list[float | None]:
        base, factor = values
        return [None if base is None else (1.0 if factor is None else factor), None]

    def combine(self, values: list[float | None]) -> tuple[float | None, dict[str, float | None]]:
        base, factor = values
        return (None if base is None else base * (1.0 if factor is None else factor)), {}


Reduce = Literal["mean", "min", "max", "median", "mean_minus_std"]
_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean, "min": min, "max": max, "median": statistics.median,
}


def reduce_ensemble(vals: list[float], reduce: str, lam: float = 1.0) -> tuple[float, float]:
    """An ensemble's value from its members' values by `reduce` (see `Ensemble`), and their
    spread (the population std, 0 for one member)."""
    std = statistics.pstdev(vals) if len(vals) > 1 else 0.0
    if reduce == "mean_minus_std":
        return statistics.fmean(vals) - lam * std, std
    return _REDUCERS[reduce](vals), std


@dataclass(eq=False)
class Ensemble(_Combiner):
    """Several rewards for the same thing, reduced: `mean`, `min` (worst case), `max`,
    `median`, or `mean_minus_std` (mean - lambda * std, uncertainty-weighted). The spread
    is kept as the `std` component."""

    children: list[Node]
    reduce: Reduce = "mean"
    lam: float = 1.0
    label: str = "ensemble"
    weight: float = 1.0
    policies: Policies = field(default_factory=Policies)

    def __post_init__(self) -> None:
        directions = {c.direction for c in self.children}
        if len(directions) > 1:
            raise ValueError(f"ensemble {self.label!r} mixes higher- and lower-is-better rewards")
        self.direction = directions.pop()
        lo = min(c.range[0] for c in self.children)
        hi = max(c.range[1] for c in self.children)
        if self.reduce == "mean_minus_std":
            lo -= self.lam * (hi - lo) / 2
        self.range = (lo, hi)
        self.needs_groups = any(c.needs_groups for c in self.children)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(["ensemble", self.reduce, self.lam,
                               [c.fingerprint for c in self.children]])

    def kids(self) -> list[Node]:
        return list(self.children)

    def why_not_finer(self) -> str:
        return f"a {self.reduce} ensemble has no per-unit form"

    def coefficients(self, values: list[float | None]) -> list[float | None]:
        if self.reduce != "mean":
            return [None] * len(values)
        n = sum(v is not None for v in values)
        return [None if v is None else 1.0 / n for v in values]

    def combine(self, values: list[float | None]) -> tuple[float | None, dict[str, float | None]]:
        value, std = reduce_ensemble([v for v in values if v is not None], self.reduce, self.lam)
        return value, {"std": std}
