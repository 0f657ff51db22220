"""What a served spec is, for `GET /v1/spec`, and the component names its scores can carry
(the keys of `Score.components`), read from the spec's graph without scoring anything."""

from __future__ import annotations

import math
from typing import Any

from rewardlab.compose.nodes import Ensemble, Leaf, Node
from rewardlab.compose.spec import Spec
from rewardlab.compose.transforms import Transform


def _bound(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no infinity: an open bound is null


def _describe(node: Node | None) -> dict[str, Any]:
    if node is None:  # an ensemble's spread
        return {"node": "std", "reward": None, "range": [0.0, None], "direction": None}
    return {"node": type(node).__name__.lower(), "reward": node.reward.name if isinstance(node, Leaf) else None,
            "range": [_bound(node.range[0]), _bound(node.range[1])], "direction": node.direction}


def _components(node: Node, prefix: str = "") -> list[tuple[str, Node | None]]:
    """(component key, node) for every component a score of `node` can carry, named as the
    composition layer names them: a child's value under its label, its own components under
    ``label/...``; a transform keeps its child's components and adds the child's value."""
    if isinstance(node, Leaf):
        return []
    if isinstance(node, Transform):
        return [*_components(node.child, prefix), (prefix + node.child.label, node.child)]
    out: list[tuple[str, Node | None]] = []
    for kid in node.subnodes():
        key = prefix + kid.label
        out.append((key, kid))
        out.extend(_components(kid, key + "/"))
    if isinstance(node, Ensemble):
        out.append((prefix + "std", None))
    return out


def component_keys(spec: Spec) -> list[str]:
    """Every component key a score of `spec` can carry, in graph order, each once."""
    return list(dict.fromkeys(k for k, _ in _components(spec.root)))


def describe(spec: Spec) -> dict[str, Any]:
    """The spec as `GET /v1/spec` shows it: fingerprint, description, the root's range and
    direction, and each component's reward, range and direction."""
    seen: dict[str, dict[str, Any]] = {}
    for key, node in _components(spec.root):
        seen.setdefault(key, {"name": key, **_describe(node)})
    root = spec.root
    return {"fingerprint": spec.fingerprint, "description": spec.description, "label": root.label,
            **_describe(root), "components": list(seen.values())}
