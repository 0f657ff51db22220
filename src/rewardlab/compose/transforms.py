"""Transforms of one reward: clipping, Preference-As-Reward shaping, and per-group
normalisation. Non-`ok` scores pass through unchanged (they carry their own reason).

- `clip`: min(max(r, lo), hi).
- `par`: sigmoid(r - r_ref), in (0, 1); bounded, so gains past the reference saturate
  (Preference As Reward, Fu et al. 2025). `r_ref` is a number or a metadata field.
- `log_sigmoid`: log sigmoid(r - r_ref), in (-inf, 0].
- `group_zscore`: (r - mean_g) / (std_g + eps) within each group of samples sharing a prompt
  (or a metadata key): the GRPO advantage. A group whose values are all equal gets 0.
- `rank`: the rank of r within its group scaled to [0, 1] (ties share their mean rank).
- `advantage`: a named advantage estimator (GRPO, Dr. GRPO, RLOO, REINFORCE++...) over the
  groups of the batch. Estimators are found by name in the ``rewardlab.advantages`` entry-point
  group (rewardlab's own live in `rewardlab.credit.advantages`), so this layer imports none.

The transformed score keeps its child's `cost`, `details` and components (plus the child's
value under its label). Its `steps`, `turns` and `tokens` described the child's value: none of
these transforms maps them to the new value (sigmoids are not linear, and a group's z-score or
rank is relative to the other samples, not credit earned by a unit of this one), so a transform
that changes the value drops them, one line each in ``details["dropped"]`` (a list; a child's
own ``dropped`` entry is kept at its head). `clip` keeps them where it leaves the value as it is.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from rewardlab.compose.granularity import carried, stale
from rewardlab.compose.nodes import Node
from rewardlab.core.reward import fingerprint_of
from rewardlab.core.types import Sample, Score
from rewardlab.runtime.engine import Runtime


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def group_key(sample: Sample, by: str) -> str:
    """The group a sample belongs to: its prompt text, or a metadata field."""
    if by == "prompt":
        return sample.prompt_text
    return str(sample.metadata.get(by))


@dataclass(eq=False)
class Transform(Node):
    child: Node
    label: str = ""
    weight: float = 1.0
    op: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or f"{self.op}({self.child.label})"
        self.direction = self.child.direction
        self.needs_groups = self.child.needs_groups

    def params(self) -> list[object]:
        return []

    @property
    def fingerprint(self) -> str:
        return fingerprint_of([self.op, self.child.fingerprint, self.params()])

    def subnodes(self) -> list[Node]:
        return [self.child]

    def apply(self, samples: Sequence[Sample], scores: list[Score]) -> list[float | Score | None]:
        """New values for the ok scores (None keeps the score; a Score replaces it)."""
        raise NotImplementedError

    def why_stale(self) -> str:
        """Why the child's finer values do not describe the transformed value."""
        return f"{self.op} does not map per-unit values to the new value"

    def keeps_finer(self, old: float, new: float) -> bool:
        """Whether the child's finer values still describe the value `new` (was `old`)."""
        return False

    async def run(self, samples: Sequence[Sample], rt: Runtime) -> list[Score]:
        scores = await self.child.run(samples, rt)
        values = self.apply(samples, scores)
        out = []
        for sc, v in zip(scores, values, strict=True):
            if isinstance(v, Score):
                out.append(v)
            elif not sc.ok or v is None:
                out.append(sc)
            else:
                update: dict[str, object] = {"value": v, "components": {**sc.components, self.child.label: sc.value}}
                assert sc.value is not None
                if not self.keeps_finer(sc.value, v):
                    dropped = stale(sc, self.why_stale()).dropped
                    if dropped:
                        update.update(steps=None, turns=None, tokens=None,
                                      details=_with_dropped(sc.details, dropped))
                out.append(sc.model_copy(update=update))
        return out


def _with_dropped(details: dict[str, object] | None, dropped: list[str]) -> dict[str, object]:
    """`details` with `dropped` added to its ``dropped`` list (an earlier non-list entry heads it)."""
    out = dict(details or {})
    prior = out.get("dropped")
    head = list(prior) if isinstance(prior, list) else ([] if prior is None else [prior])
    out["dropped"] = [*head, *dropped]
    return out


@dataclass(eq=False)
class Clip(Transform):
    lo: float = -math.inf
    hi: float = math.inf
    op: str = "clip"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.range = (max(self.lo, self.child.range[0]), min(self.hi, self.child.range[1]))

    def params(self) -> list[object]:
        return [self.lo, self.hi]

    def apply(self, samples: Sequence[Sample], scores: list[Score]) -> list[float | Score | None]:
        return [min(max(s.value, self.lo), self.hi) if s.ok else None for s in scores]  # type: ignore[type-var]

    def keeps_finer(self, old: float, new: float) -> bool:
        return old == new

    def why_stale(self) -> str:
        return f"{self.label} clipped the value"


@dataclass(eq=False)
class _RefShaped(Transform):
    ref: float = 0.0
    ref_key: str | None = None

    def params(self) -> list[object]:
        return [self.ref, self.ref_key]

    def _ref(self, sample: Sample) -> float:
        return self.ref if self.ref_key is None else float(sample.metadata[self.ref_key])

    def fn(self, x: float) -> float:
        raise NotImplementedError

    def apply(self, samples: Sequence[Sample], scores: list[Score]) -> list[float | Score | None]:
        out: list[float | Score | None] = []
        for sample, s in zip(samples, scores, strict=True):
            if not s.ok:
                out.append(None)
            elif self.ref_key is not None and sample.metadata.get(self.ref_key) is None:
                out.append(Score.error(
                    f"{self.label}: metadata field {self.ref_key!r} (the reference reward) "
                    "is missing", components=s.components, details=s.details, cost=s.cost))
            else:
                out.append(self.fn(s.value - self._ref(sample)))  # type: ignore[operator]
        return out


@dataclass(eq=False)
class PAR(_RefShaped):
    op: str = "par"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.range = (0.0, 1.0)

    def fn(self, x: float) -> float:
        return _sigmoid(x)


@dataclass(eq=False)
class LogSigmoid(_RefShaped):
    op: str = "log_sigmoid"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.range = (-math.inf, 0.0)

    def fn(self, x: float) -> float:
        return _log_sigmoid(x)


@dataclass(eq=False)
class Grouped(Transform):
    """A transform whose value depends on the other samples of the group (`by`)."""

    by: str = "prompt"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.needs_groups = True

    def params(self) -> list[object]:
        return [self.by]

    def why_stale(self) -> str:
        return f"{self.label} makes the value relative to its group ({self.by})"

    def per_group(self, values: list[float]) -> list[float]:
        raise NotImplementedError

    def apply(self, samples: Sequence[Sample], scores: list[Score]) -> list[float | Score | None]:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (sample, s) in enumerate(zip(samples, scores, strict=True)):
            if s.ok:
                groups[group_key(sample, self.by)].append(i)
        out: list[float | Score | None] = [None] * len(scores)
        for idx in groups.values():
            for i, v in zip(idx, self.per_group([scores[i].value for i in idx]), strict=True):  # type: ignore[misc]
                out[i] = v
        return out


@dataclass(eq=False)
class GroupZScore(Grouped):
    eps: float = 1e-6
    op: str = "group_zscore"

    def params(self) -> list[object]:
        return [self.by, self.eps]

    def per_group(self, values: list[float]) -> list[float]:
        mean = statistics.fmean(values)
        std = statistics.pstdev(values) if len(values) > 1 else 0.0
        if std == 0.0:
            return [0.0] * len(values)
        return [(v - mean) / (std + self.eps) for v in values]


@dataclass(eq=False)
class Rank(Grouped):
    op: str = "rank"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.range = (0.0, 1.0)

    def per_group(self, values: list[float]) -> list[float]:
        n = len(values)
        if n == 1:
            return [0.5]
        order = sorted(range(n), key=values.__getitem__)
        ranks = [0.0] * n
        i = 0
        while i < n:
            j = i
            while j + 1 < n and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                ranks[order[k]] = (i + j) / 2 / (n - 1)
            i = j + 1
        return ranks


ADVANTAGE_GROUP = "rewardlab.advantages"
"""The entry-point group of advantage estimators. An entry names a module (or object) with
``ESTIMATORS``, a mapping of name to ``fn(rewards, groups, convention=None)`` returning an
object with ``tolist()`` (one float per reward, None for one without an advantage), and
optionally ``ESTIMATOR_CONVENTIONS``, a mapping of name to the conventions it accepts, and
``UNGROUPED``, the names of estimators that ignore groups (batch-level only)."""


@dataclass(frozen=True)
class Estimator:
    name: str
    fn: Callable[..., Any]
    conventions: tuple[str, ...]
    grouped: bool = True


class _Estimators:
    def __init__(self) -> None:
        self._found: dict[str, Estimator] | None = None
        self.load_errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def all(self) -> dict[str, Estimator]:
        with self._lock:
            if self._found is None:
                found: dict[str, Estimator] = {}
                for ep in sorted(entry_points(group=ADVANTAGE_GROUP), key=lambda e: e.name):
                    try:
                        obj = ep.load()
                        table: Mapping[str, Callable[..., Any]] = obj.ESTIMATORS
                        convs: Mapping[str, tuple[str, ...]] = getattr(obj, "ESTIMATOR_CONVENTIONS", {})
                        ungrouped = set(getattr(obj, "UNGROUPED", ()))
                        for name, fn in table.items():
                            found.setdefault(name, Estimator(name, fn, tuple(convs.get(name, ())),
                                                             name not in ungrouped))
                    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, never hides the rest
                        self.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                self._found = found
            return self._found

    def get(self, name: str) -> Estimator:
        """The estimator `name`; a KeyError lists the known ones (and plugins that failed)."""
        known = self.all()
        if name in known:
            return known[name]
        listed = ", ".join(sorted(known)) or "none installed"
        failed = f"; failed to load: {', '.join(self.load_errors)}" if self.load_errors else ""
        raise KeyError(f"unknown advantage estimator {name!r} (known: {listed}{failed})")


estimators = _Estimators()


@dataclass(eq=False)
class Advantage(Grouped):
    """A named advantage estimator over the groups of a batch (`by`). The batch is what is
    scored together: a file's chunk under `rewardlab score` (groups are kept whole), so a
    batch-level statistic (REINFORCE++'s whitening, GRPO's batch std) is over that batch."""

    estimator: str = "grpo"
    convention: str | None = None
    op: str = "advantage"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.range = (-math.inf, math.inf)
        self._est = estimators.get(self.estimator)
        if self.convention is not None and self._est.conventions and self.convention not in self._est.conventions:
            raise ValueError(f"estimator {self.estimator!r} has no convention {self.convention!r} "
                             f"(known: {', '.join(self._est.conventions)})")
        if self.label == f"{self.op}({self.child.label})":
            self.label = f"{self.estimator}({self.child.label})"

    def params(self) -> list[object]:
        return [self.by, self.estimator, self.convention]

    def apply(self, samples: Sequence[Sample], scores: list[Score]) -> list[float | Score | None]:
        idx = [i for i, s in enumerate(scores) if s.ok]
        out: list[float | Score | None] = [None] * len(scores)
        if not idx:
            return out
        values = [scores[i].value for i in idx]
        keys = [group_key(samples[i], self.by) for i in idx]
        result = self._est.fn(values, keys, convention=self.convention).tolist()
        sizes: dict[str, int] = defaultdict(int)
        for k in keys:
            sizes[k] += 1
        for i, k, v in zip(idx, keys, result, strict=True):
            if v is not None and math.isfinite(v) and sizes[k] == 1 and self._est.grouped:
                out[i] = self._alone(scores[i], float(v))
            elif v is not None and math.isfinite(v):
                out[i] = float(v)
            else:  # never let the raw reward through as if it were an advantage
                sc = scores[i]
                out[i] = Score.error(f"{self.label}: the estimator gave no finite advantage ({v!r})",
                                     components={**sc.components, self.child.label: sc.value},
                                     details=sc.details, cost=sc.cost)
        return out

    def _alone(self, sc: Score, value: float) -> Score:
        """The score of the only scorable rollout of its group, saying so in its details (what it
        gets is the convention's: 0 for trl, its raw reward for verl)."""
        assert sc.value is not None
        details = _with_dropped(sc.details, stale(sc, self.why_stale()).dropped) if carried(sc) else dict(
            sc.details or {})
        details["advantage"] = (f"the only scorable rollout of its group ({self.by}): no baseline; "
                                f"{self.estimator} ({self.convention or 'default'} convention) gives {value:g}")
        return sc.model_copy(update={"value": value, "components": {**sc.components, self.child.label: sc.value},
                                     "steps": None, "turns": None, "tokens": None, "details": details})

