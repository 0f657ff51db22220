"""Rollout groups: the N responses to one prompt, read from a rollout file and scored.

`load_rollouts` reads the same files and layouts as ``rewardlab score`` (`rewardlab.io.rows`)
and groups rows by prompt or by a metadata field (`rewardlab.compose.transforms.group_key`);
rows of a group need not be adjacent. `score_groups` scores every candidate through the
`Runtime` with one spec, or with several specs reduced to one value (`ensemble_score`).
Best-of-N (`rewardlab.apply.bon`), rejection sampling (`rewardlab.apply.rejection`) and
preference pairs (`rewardlab.apply.pairs`) are pure functions over the resulting `Group`s.

Non-``ok`` scores are kept on their candidates (with status and reason): the functions above
never select them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rewardlab.api import SpecLike, build
from rewardlab.compose.nodes import Ensemble, reduce_ensemble
from rewardlab.compose.transforms import group_key
from rewardlab.core.types import Sample, Score, Status
from rewardlab.io.files import read_rows
from rewardlab.io.jsonsafe import dump_json_line, json_safe
from rewardlab.io.rows import to_sample
from rewardlab.runtime.engine import Runtime

Reduce = Literal["mean", "min", "mean_minus_std"]
REDUCERS: tuple[str, ...] = ("mean", "min", "mean_minus_std")


@dataclass
class Candidate:
    """One response of a group: its input row (id, where, data), the sample, and its score.

    `score` is None when no reward was asked (plain majority vote). `members` holds the value of
    each ensemble member (None for a member whose score is not ok), when the score comes from
    an ensemble: several specs, or a spec whose root is an ``ensemble`` node.
    """

    index: int
    sample: Sample
    score: Score | None = None
    row: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    members: tuple[float | None, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the candidate has an ``ok`` score (only those are ever selected)."""
        return self.score is not None and self.score.ok

    @property
    def value(self) -> float:
        """The ok score's value (raises for a candidate that is not ok)."""
        if self.score is None or self.score.value is None:
            raise ValueError(f"candidate {self.index} has no ok score")
        return self.score.value


@dataclass
class Group:
    """The candidates that share a group key (a prompt's text, or a metadata field's value),
    in input order."""

    key: str
    candidates: list[Candidate]

    def ok(self) -> list[Candidate]:
        return [c for c in self.candidates if c.ok]

    def failures(self) -> str:
        """Why no candidate is ok: the statuses and first reasons, e.g. ``4 error (timeout)``."""
        counts: dict[str, tuple[int, str]] = {}
        for c in self.candidates:
            st = "unscored" if c.score is None else c.score.status.value
            why = "" if c.score is None else (c.score.reason or "")
            n, first = counts.get(st, (0, why))
            counts[st] = (n + 1, first)
        return ", ".join(f"{n} {st}" + (f" ({why})" if why else "") for st, (n, why) in counts.items())


@dataclass
class Rollouts:
    """What `load_rollouts` read: the groups (unscored), the rows read and the malformed ones."""

    groups: list[Group]
    rows_in: int = 0
    malformed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def candidates(self) -> int:
        return sum(len(g.candidates) for g in self.groups)


def group_candidates(candidates: Iterable[Candidate], by: str = "prompt") -> list[Group]:
    """Candidates grouped by `group_key(sample, by)`, groups in order of first appearance."""
    groups: dict[str, Group] = {}
    for c in candidates:
        k = group_key(c.sample, by)
        groups.setdefault(k, Group(k, [])).candidates.append(c)
    return list(groups.values())


def load_rollouts(path: str | Path, *, by: str = "prompt", mapping: Mapping[str, str] | None = None,
                  split: str | None = None,
                  on_malformed: Callable[[str, str], None] | None = None) -> Rollouts:
    """Every row of a rollout file (JSONL, Parquet, HF dataset directory) as a candidate, grouped
    `by` the prompt or a metadata field. A row that cannot be read, has no response, or lacks
    the `by` field is reported through `on_malformed(where, why)`, counted and skipped. The
    whole file is held in memory, as a group's rows may be anywhere in it."""
    out = Rollouts([])
    cands: list[Candidate] = []
    for row in read_rows(path, split):
        out.rows_in += 1
        why = row.error
        if why is None:
            try:
                sample = to_sample(row.data or {}, mapping, row_id=str(row.index))
            except ValueError as exc:
                why = str(exc)
            else:
                if by != "prompt" and sample.metadata.get(by) is None:
                    why = f"no field {by!r} to group by"
                else:
                    cands.append(Candidate(row.index, sample, row=row.data or {}, where=row.where))
                    continue
        out.malformed.append((row.where, why or ""))
        if on_malformed:
            on_malformed(row.where, why or "")
    out.groups = group_candidates(cands, by)
    return out


def ensemble_score(members: Sequence[Score], reduce: Reduce = "mean", lam: float = 1.0) -> Score:
    """One score from an ensemble's member scores: ``mean``, ``min`` (worst case) or
    ``mean_minus_std`` (uncertainty-weighted, mean - lam * std with the population std, as the
    spec's ``ensemble`` node; Coste et al. 2023, "Reward Model Ensembles Help Mitigate
    Overoptimization": WCO and UWO). Not ok if any member is not ok (fail closed: an ensemble
    with a missing member is not the ensemble that was asked for). The spread is the ``std``
    component, each member's value a ``member<i>`` component."""
    if reduce not in REDUCERS:
        raise ValueError(f"unknown ensemble reduce {reduce!r} (known: {', '.join(REDUCERS)})")
    bad = [(i, s) for i, s in enumerate(members) if not s.ok]
    if bad:
        i, s = bad[0]
        return Score(status=s.status if len(bad) == len(members) else Status.error,
                     reason=f"ensemble member {i} is {s.status.value}: {s.reason}")
    vals = [s.value for s in members if s.value is not None]
    value, std = reduce_ensemble(vals, reduce, lam)
    comps: dict[str, float | None] = {f"member{i}": v for i, v in enumerate(vals)}
    comps["std"] = std
    return Score.of(value, components=comps)


def _members(root: Any, score: Score) -> tuple[float | None, ...]:
    """The member values of a spec whose root is an ``ensemble`` node (its children's labels
    name them among the components), else ()."""
    if not isinstance(root, Ensemble) or not score.ok:
        return ()
    return tuple(score.components.get(c.label) for c in root.children)


def higher_is_better(specs: Sequence[SpecLike]) -> bool:
    """The direction shared by `specs` (raises when they disagree)."""
    dirs = {build(s).root.direction for s in specs}
    if len(dirs) > 1:
        raise ValueError("the rewards disagree on direction (higher- and lower-is-better)")
    return dirs.pop() != "lower" if dirs else True


def score_groups(groups: Sequence[Group], specs: SpecLike | Sequence[SpecLike], *, runtime: Runtime | None = None,
                 reduce: Reduce = "mean", lam: float = 1.0, chunk_size: int = 2048,
                 on_progress: Callable[[int], None] | None = None) -> list[Group]:
    """Score every candidate of `groups` in place (and return them) through one `Runtime`.

    With one spec the candidate's score is that spec's; when its root is an ``ensemble`` node
    the members' values are kept for pair agreement. With several specs each is scored and
    the scores reduced by `ensemble_score(reduce, lam)`."""
    many = list(specs) if isinstance(specs, list | tuple) else [specs]
    if not many:
        raise ValueError("no reward to score with")
    built = [build(s) for s in many]
    cands = [c for g in groups for c in g.candidates]
    own = runtime is None
    rt = runtime or Runtime()
    try:
        for start in range(0, len(cands), chunk_size):
            chunk = cands[start:start + chunk_size]
            samples = [c.sample for c in chunk]
            per_spec = [rt.score(b, samples).scores for b in built]
            for j, c in enumerate(chunk):
                if len(built) == 1:
                    c.score = per_spec[0][j]
                    c.members = _members(built[0].root, c.score)
                else:
                    scores = [ps[j] for ps in per_spec]
                    c.score = ensemble_score(scores, reduce, lam)
                    c.members = tuple(s.value if s.ok else None for s in scores)
            if on_progress:
                on_progress(len(chunk))
    finally:
        if own:
            rt.close()
    return list(groups)


def response_length(c: Candidate) -> int:
    """A candidate's response length in characters (the length the filters compare)."""
    return len(c.sample.response_text)


def write_rows(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write `rows` to `path`: Parquet when it ends in ``.parquet``, else JSONL (values without a
    JSON form as `rewardlab.io.jsonsafe` says; in Parquet a column holding only empty mappings,
    such as the components of a plain reward, is null). Written to a temporary file and renamed, so a
    failed write leaves no partial output."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        if p.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            data = [json_safe(dict(r)) for r in rows]
            empty = {k for r in data for k, v in r.items() if v == {}}
            empty -= {k for r in data for k, v in r.items() if v != {}}
            data = [{k: (None if k in empty else v) for k, v in r.items()} for r in data]
            try:  # Parquet has no empty struct: a column of only empty mappings is written as nulls
                pq.write_table(pa.Table.from_pylist(data), tmp)
            except (pa.ArrowException, TypeError) as exc:
                raise ValueError(f"cannot write {p} as Parquet (columns of mixed types?): {exc}; "
                                 "write JSONL instead") from None
        else:
            with tmp.open("wb") as f:
                for r in rows:
                    f.write(dump_json_line(r))
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()

