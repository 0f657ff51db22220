"""Reward specs: a YAML or TOML file (or a dict) that builds a reward graph by name.

```yaml
reward:
  sum:
    - {reward: think_answer_format, weight: 0.2}
    - gate:
        when: {reward: think_answer_format}
        then: {reward: exact_match, params: {normalize: true}}
      weight: 1.0
on_error: propagate        # or skip, or a number (an explicit fallback value)
on_abstain: 0.0
```

A node is a registered reward name, or a mapping with exactly one of these keys:

| key | value | other keys |
|---|---|---|
| `reward` | a name or `module:fn` | `params`, `label`, `weight`, `timeout`, `max_concurrency`, `rpm`, `retries` |
| `sum` | list of nodes (each may carry `weight`) | `label`, `weight` |
| `gate` | `{when: node, then: node, threshold: 1.0, otherwise: 0.0}` | `label`, `weight` |
| `penalty` | `{base: node, factor: node}` (factor in [0, 1]) | `label`, `weight` |
| `ensemble` | list of nodes | `reduce` (mean/min/max/median/mean_minus_std), `lambda` |
| `clip` | node | `min`, `max` |
| `par`, `log_sigmoid` | node | `ref` (number) or `ref_key` (metadata field) |
| `group_zscore` | node | `by` (`prompt` or a metadata field), `eps` |
| `rank` | node | `by` |
| `advantage` | node | `estimator` (default grpo), `convention` (trl, verl, openrlhf), `by` |

`advantage` turns the rewards of a group of rollouts (the samples sharing `by`) into the
estimator's advantages (`rewardlab.credit.advantages`): grpo, grpo_batch, dr_grpo, rloo
(convention trl or verl; trl by default), reinforce_pp, reinforce_pp_baseline (verl or openrlhf;
verl by default), or a plugin's (the ``rewardlab.advantages`` entry points). The raw reward stays
in the components; an unknown estimator or convention is an error that lists the known ones.
Composites also accept `on_error` / `on_abstain`, overriding the spec's. Every error names the
offending key and, for files, its line. Numbers must be finite (a `clip` bound may be infinite);
nodes nest at most `MAX_DEPTH` deep, and a node that contains itself (a YAML alias cycle) is
refused.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rewardlab.compose import transforms as tf
from rewardlab.compose.nodes import (
    Ensemble,
    Gate,
    Leaf,
    Node,
    Penalty,
    Policies,
    Policy,
    WeightedSum,
)
from rewardlab.core.registry import UnknownRewardError, registry
from rewardlab.runtime.engine import LeafOptions

PathT = tuple[str | int, ...]
MAX_DEPTH = 64


class SpecError(ValueError):
    """An invalid spec, with the path of the bad key and its line when known."""

    def __init__(self, path: PathT, message: str, lines: dict[PathT, int] | None = None,
                 source: str | None = None) -> None:
        self.path = path
        self.message = message
        self.lines = lines or {}
        self.source = source
        super().__init__(self._format())

    def _format(self) -> str:
        where = _dotted(self.path) or "spec"
        line = None
        p = self.path
        while p and line is None:
            line = self.lines.get(p)
            p = p[:-1]
        loc = f"{self.source}: " if self.source else ""
        if line is not None:
            loc += f"line {line}: "
        return f"{loc}{where}: {self.message}"


def _dotted(path: PathT) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _check_policy(v: Any) -> Policy:
    if v in ("propagate", "skip"):
        return v  # type: ignore[no-any-return]
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    raise ValueError("must be 'propagate', 'skip' or a finite number (an explicit fallback)")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class _PolicyOpts(_Base):
    label: str | None = None
    weight: float = 1.0
    on_error: Any = None
    on_abstain: Any = None

    @field_validator("on_error", "on_abstain")
    @classmethod
    def _policy(cls, v: Any) -> Any:
        return None if v is None else _check_policy(v)


class _LeafOpts(_Base):
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    weight: float = 1.0
    timeout: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    rpm: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)
    batch_size: int | None = Field(default=None, ge=1)


class _GateBody(_Base):
    when: Any
    then: Any
    threshold: float = 1.0
    otherwise: float = 0.0


class _PenaltyBody(_Base):
    base: Any
    factor: Any


class _EnsembleOpts(_PolicyOpts):
    reduce: Literal["mean", "min", "max", "median", "mean_minus_std"] = "mean"
    lam: float = Field(default=1.0, alias="lambda", ge=0)


class _ClipOpts(_Base):
    label: str | None = None
    weight: float = Field(default=1.0, allow_inf_nan=False)
    min: float = Field(default=-math.inf, allow_inf_nan=True)
    max: float = Field(default=math.inf, allow_inf_nan=True)

    @field_validator("min", "max")
    @classmethod
    def _not_nan(cls, v: float) -> float:
        if math.isnan(v):
            raise ValueError("must be a number, not NaN")
        return v


class _RefOpts(_Base):
    label: str | None = None
    weight: float = 1.0
    ref: float = 0.0
    ref_key: str | None = None


class _GroupOpts(_Base):
    label: str | None = None
    weight: float = 1.0
    by: str = "prompt"
    eps: float = Field(default=1e-6, gt=0)


class _AdvantageOpts(_Base):
    label: str | None = None
    weight: float = 1.0
    by: str = "prompt"
    estimator: str = "grpo"
    convention: str | None = None


class _SpecFile(_Base):
    reward: Any
    on_error: Any = "propagate"
    on_abstain: Any = "propagate"
    description: str | None = None

    @field_validator("on_error", "on_abstain")
    @classmethod
    def _policy(cls, v: Any) -> Any:
        return _check_policy(v)


OPS = ("reward", "sum", "gate", "penalty", "ensemble", "clip", "par", "log_sigmoid",
       "group_zscore", "rank", "advantage")


class _Builder:
    def __init__(self, lines: dict[PathT, int], source: str | None) -> None:
        self.lines = lines
        self.source = source
        self._open: list[int] = []  # ids of the nodes being built, outermost first

    def error(self, path: PathT, message: str) -> SpecError:
        return SpecError(path, message, self.lines, self.source)

    def opts(self, model: type[_Base], data: dict[str, Any], path: PathT) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = tuple(err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(
                    f.alias or k for k, f in model.model_fields.items()))
                msg = f"unknown key (allowed here: {allowed})"
            elif err["type"] == "missing":
                msg = "missing required key"
            raise self.error(path + loc, msg) from None

    def policies(self, opts: Any, inherited: Policies) -> Policies:
        return Policies(
            on_error=inherited.on_error if opts.on_error is None else opts.on_error,
            on_abstain=inherited.on_abstain if opts.on_abstain is None else opts.on_abstain,
        )

    def node(self, raw: Any, path: PathT, pol: Policies) -> Node:
        if id(raw) in self._open:
            raise self.error(path, "this node contains itself (a YAML alias cycle)")
        if len(self._open) >= MAX_DEPTH:
            raise self.error(path, f"nodes nested deeper than {MAX_DEPTH} levels")
        self._open.append(id(raw))
        try:
            return self._node(raw, path, pol)
        finally:
            self._open.pop()

    def _node(self, raw: Any, path: PathT, pol: Policies) -> Node:
        if isinstance(raw, str):
            raw = {"reward": raw}
        if not isinstance(raw, dict):
            raise self.error(path, f"expected a reward name or a mapping, got {type(raw).__name__}")
        ops = [k for k in raw if k in OPS]
        if len(ops) != 1:
            what = "none" if not ops else ", ".join(ops)
            raise self.error(path, f"a node needs exactly one of {', '.join(OPS)} (found {what})")
        op = ops[0]
        body = raw[op]
        rest = {k: v for k, v in raw.items() if k != op}
        return getattr(self, f"op_{op}")(body, rest, path, pol)

    def children(self, body: Any, path: PathT, pol: Policies) -> list[Node]:
        if not isinstance(body, list) or not body:
            raise self.error(path, "expected a non-empty list of nodes")
        kids = [self.node(item, path + (i,), pol) for i, item in enumerate(body)]
        seen: dict[str, int] = {}
        for k in kids:  # sibling labels name components: keep them distinct
            n = seen.get(k.label, 0)
            seen[k.label] = n + 1
            if n:
                k.label = f"{k.label}#{n + 1}"
        return kids

    def op_reward(self, name: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        if not isinstance(name, str):
            raise self.error(path + ("reward",), "expected a registered reward name")
        o = self.opts(_LeafOpts, rest, path)
        try:
            definition = registry.get(name)
        except UnknownRewardError as exc:
            raise self.error(path + ("reward",), str(exc)) from None
        try:
            configured = definition(**o.params)
        except (ValueError, TypeError) as exc:
            raise self.error(path + ("params",), str(exc)) from None
        options = LeafOptions(timeout=o.timeout, max_concurrency=o.max_concurrency, rpm=o.rpm,
                              retries=o.retries, batch_size=o.batch_size)
        try:
            options.check(configured)  # e.g. a timeout on a reward that cannot be timed out
        except ValueError as exc:
            raise self.error(path + ("timeout",), str(exc)) from None
        return Leaf(configured, label=o.label or name, weight=o.weight, options=options)

    def op_sum(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        o = self.opts(_PolicyOpts, rest, path)
        p = self.policies(o, pol)
        kids = self.children(body, path + ("sum",), p)
        return WeightedSum(kids, label=o.label or "sum", weight=o.weight, policies=p)

    def op_gate(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        o = self.opts(_PolicyOpts, rest, path)
        p = self.policies(o, pol)
        if not isinstance(body, dict):
            raise self.error(path + ("gate",), "expected {when: node, then: node}")
        b = self.opts(_GateBody, body, path + ("gate",))
        when = self.node(b.when, path + ("gate", "when"), p)
        then = self.node(b.then, path + ("gate", "then"), p)
        return Gate(when, then, b.threshold, b.otherwise, label=o.label or "gate",
                    weight=o.weight, policies=p)

    def op_penalty(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        o = self.opts(_PolicyOpts, rest, path)
        p = self.policies(o, pol)
        if not isinstance(body, dict):
            raise self.error(path + ("penalty",), "expected {base: node, factor: node}")
        b = self.opts(_PenaltyBody, body, path + ("penalty",))
        base = self.node(b.base, path + ("penalty", "base"), p)
        factor = self.node(b.factor, path + ("penalty", "factor"), p)
        try:
            return Penalty(base, factor, label=o.label or "penalty", weight=o.weight, policies=p)
        except ValueError as exc:
            raise self.error(path + ("penalty", "factor"), str(exc)) from None

    def op_ensemble(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        o = self.opts(_EnsembleOpts, rest, path)
        p = self.policies(o, pol)
        kids = self.children(body, path + ("ensemble",), p)
        try:
            return Ensemble(kids, o.reduce, o.lam, label=o.label or "ensemble",
                            weight=o.weight, policies=p)
        except ValueError as exc:
            raise self.error(path + ("ensemble",), str(exc)) from None

    def op_clip(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        o = self.opts(_ClipOpts, rest, path)
        if o.min > o.max:
            raise self.error(path + ("min",), f"min {o.min:g} is above max {o.max:g}")
        child = self.node(body, path + ("clip",), pol)
        return tf.Clip(child, label=o.label or "", weight=o.weight, lo=o.min, hi=o.max)

    def _ref(self, cls: type[tf._RefShaped], op: str, body: Any, rest: dict[str, Any],
             path: PathT, pol: Policies) -> Node:
        o = self.opts(_RefOpts, rest, path)
        child = self.node(body, path + (op,), pol)
        return cls(child, label=o.label or "", weight=o.weight, ref=o.ref, ref_key=o.ref_key)

    def op_par(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        return self._ref(tf.PAR, "par", body, rest, path, pol)

    def op_log_sigmoid(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        return self._ref(tf.LogSigmoid, "log_sigmoid", body, rest, path, pol)

    def op_group_zscore(self, body: Any, rest: dict[str, Any], path: PathT,
                        pol: Policies) -> Node:
        o = self.opts(_GroupOpts, rest, path)
        child = self.node(body, path + ("group_zscore",), pol)
        return tf.GroupZScore(child, label=o.label or "", weight=o.weight, by=o.by, eps=o.eps)

    def op_rank(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        o = self.opts(_GroupOpts, rest, path)
        child = self.node(body, path + ("rank",), pol)
        return tf.Rank(child, label=o.label or "", weight=o.weight, by=o.by)

    def op_advantage(self, body: Any, rest: dict[str, Any], path: PathT, pol: Policies) -> Node:
        o = self.opts(_AdvantageOpts, rest, path)
        try:
            tf.estimators.get(o.estimator)
        except KeyError as exc:
            raise self.error(path + ("estimator",), str(exc.args[0])) from None
        child = self.node(body, path + ("advantage",), pol)
        try:
            return tf.Advantage(child, label=o.label or "", weight=o.weight, by=o.by,
                                estimator=o.estimator, convention=o.convention)
        except ValueError as exc:
            raise self.error(path + ("convention",), str(exc)) from None


class Spec:
    """A loaded spec: the reward graph and its policies."""

    def __init__(self, root: Node, policies: Policies, description: str | None = None) -> None:
        self.root = root
        self.policies = policies
        self.description = description

    @property
    def fingerprint(self) -> str:
        return self.root.fingerprint


def _yaml_lines(text: str) -> dict[PathT, int]:
    """Line (1-based) of every key and list item in a YAML document."""
    lines: dict[PathT, int] = {}

    seen: set[int] = set()

    def walk(node: yaml.Node, path: PathT) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:  # an alias: its lines are those of its anchor, and it may be a cycle
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (path + (k.value,))
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


def _toml_lines(text: str) -> dict[PathT, int]:
    """Lines of TOML keys: table headers (arrays of tables counted) and `key = value` lines.
    Keys inside inline tables take the line of the key that holds them."""
    lines: dict[PathT, int] = {}
    counts: dict[PathT, int] = {}
    table: PathT = ()
    key_re = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_.-]+)\s*=')
    for n, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("[["):
            base = tuple(k.strip().strip('"') for k in stripped.strip("[] ").split("."))
            idx = counts.get(base, -1) + 1
            counts[base] = idx
            table = base + (idx,)
            for i in range(1, len(base) + 1):
                lines.setdefault(base[:i], n)
            lines[table] = n
        elif stripped.startswith("["):
            table = tuple(k.strip().strip('"') for k in stripped.strip("[] ").split("."))
            for i in range(1, len(table) + 1):
                lines.setdefault(table[:i], n)
        else:
            m = key_re.match(raw)
            if m:
                key = tuple(k.strip().strip('"') for k in m.group(1).split("."))
                lines[table + key] = n
    return lines


def load_spec(source: str | Path | dict[str, Any]) -> Spec:
    """Build a spec from a YAML/TOML file path, a YAML string, or a dict."""
    lines: dict[PathT, int] = {}
    name: str | None = None
    if isinstance(source, dict):
        data: Any = source
    else:
        text: str
        path = Path(source) if not (isinstance(source, str) and "\n" in source) else None
        if path is not None and path.exists():
            name = str(path)
            text = path.read_text()
        elif isinstance(source, str) and ("\n" in source or ":" in source):
            text = source
        else:
            raise SpecError((), f"no spec file at {source!r}")
        try:
            if name and name.endswith(".toml"):
                data = tomllib.loads(text)
                lines = _toml_lines(text)
            else:
                data = yaml.safe_load(text)
                lines = _yaml_lines(text)
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise SpecError((), f"cannot parse: {exc}", source=name) from None
        except RecursionError:
            raise SpecError((), "cannot parse: nested too deeply", source=name) from None
    b = _Builder(lines, name)
    if not isinstance(data, dict):
        raise b.error((), "a spec is a mapping with a 'reward' key")
    top = b.opts(_SpecFile, data, ())
    policies = Policies(top.on_error, top.on_abstain)
    root = b.node(top.reward, ("reward",), policies)
    return Spec(root, policies, top.description)
