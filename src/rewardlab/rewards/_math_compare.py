"""Structural equivalence of parsed math answers, and the fast (sympy-free) scalar check.

`equal(gold, pred, cmp)` walks the two answer trees (tuples, sets, lists, intervals, unions,
matrices, equations, inequalities, text) and asks the comparator `cmp` only about scalars. It
returns True, False, or None when some scalar question could not be settled by `cmp` (the
fast comparator then hands the pair to the symbolic path).

Rules (symmetric in the two arguments):

- exact values (integers, terminating decimals, fractions, rational arithmetic) compare exactly;
  a value that is not rational matches within a relative `tolerance`;
- ``x = 3`` matches ``3`` (an equation whose left side is one variable stands for its value);
  two equations match when their sides agree for the same variable, or when ``lhs - rhs`` of
  one is a non-zero constant multiple of the other's;
- a percentage ``p%`` matches ``p`` and ``p/100``;
- sets, and bare comma-separated answers, are unordered sets (a repeated element counts once);
  tuples are ordered; a tuple matches
  the same elements written without brackets; a 2-element tuple is also an interval;
- inequalities in one variable are intervals (``x > 3`` is ``(3, oo)``);
- a one-element set or list matches its element; several answers (a list) match one gold
  answer only when every one of them equals it, so listing candidates never pays;
- no infinite, undefined (``0/0``, ``0^0``) or overflowing value equals anything but the same
  text; text answers match case- and space-blind.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any, Protocol

from rewardlab.rewards._math_parse import (
    MathLimit,
    Node,
    approx,
    exact,
    inf_sign,
    symbols,
)

Tri = bool | None
_EVAL_ERRORS = (ArithmeticError, ValueError, KeyError, TypeError)
HUNDRED: Node = ("n", Fraction(100))


class Comparator(Protocol):
    def scalar(self, gold: Node, pred: Node) -> Tri: ...

    def proportional(self, gold: Node, pred: Node) -> Tri: ...


def sample_points(names: set[str], count: int) -> list[dict[str, float]]:
    """Deterministic, generic positive values for the symbols (for identity testing)."""
    ordered = sorted(names)
    return [
        {n: 0.6 + 0.37 * ((i * 7 + k * 3) % 11) + 0.0137 * (k + 1) + 0.001 * i
         for i, n in enumerate(ordered)}
        for k in range(count)
    ]


class FastComparator:
    """Exact rational arithmetic and float refutation; never imports sympy.

    Returns True/False only when sure (exact values, or values clearly apart in floating
    point), None otherwise.
    """

    def __init__(self, tolerance: float = 1e-9, precision: int | None = None) -> None:
        self.tolerance = tolerance
        self.precision = precision
        self.refute_at = max(1e-6, 10 * tolerance)
        if precision is not None:
            self.refute_at = max(self.refute_at, 10.0 ** -precision)

    def scalar(self, gold: Node, pred: Node) -> Tri:
        if gold == pred:
            return True
        try:
            eg = exact(gold)
            ep = exact(pred) if eg is not None else None
        except MathLimit:
            return None
        if self.precision is not None:
            rounded = self.rounded_equal(gold, pred, eg, ep)
            if rounded is not None:
                return rounded
        if eg is not None and ep is not None:
            return eg == ep
        return False if self.refuted(gold, pred) else None

    def rounded_equal(self, gold: Node, pred: Node, eg: Fraction | None, ep: Fraction | None) -> Tri:
        """With a `precision`: whether two constant values agree when rounded to that many
        decimal places (None when a value is not a finite constant small enough to round)."""
        p = self.precision
        assert p is not None
        if eg is not None and ep is not None:
            return round(eg, p) == round(ep, p)
        if symbols(gold) or symbols(pred):
            return None
        try:
            a, _ = approx(gold, {})
            b, _ = approx(pred, {})
        except _EVAL_ERRORS:
            return None
        if max(abs(a), abs(b)) * 10.0 ** p >= 1e13:  # beyond what a float rounds reliably
            return None
        return round(a.real, p) == round(b.real, p) and round(a.imag, p) == round(b.imag, p)

    def refuted(self, gold: Node, pred: Node) -> bool:
        """Whether the two values are clearly different at some sample point."""
        names = symbols(gold) | symbols(pred)
        for env in sample_points(names, 2 if names else 1):
            try:
                a, sa = approx(gold, env)
                b, sb = approx(pred, env)
            except _EVAL_ERRORS:
                return False
            if abs(a - b) > self.refute_at * max(sa, sb, 1e-300):
                return True
        return False

    def proportional(self, gold: Node, pred: Node) -> Tri:
        if gold == pred:
            return True
        names = symbols(gold) | symbols(pred)
        ratios: list[complex] = []
        for env in sample_points(names, 3):
            try:
                a, sa = approx(gold, env)
                b, sb = approx(pred, env)
            except _EVAL_ERRORS:
                return None
            tiny_a = abs(a) <= 1e-9 * max(sa, 1e-300)
            tiny_b = abs(b) <= 1e-9 * max(sb, 1e-300)
            if tiny_a != tiny_b:
                return False
            if tiny_a:
                continue
            ratios.append(a / b)
        for r in ratios[1:]:
            if abs(r - ratios[0]) > self.refute_at * max(abs(r), abs(ratios[0])):
                return False
        return None


def _div100(node: Node) -> Node:
    return ("/", node, HUNDRED)


def scalar_equal(gold: Node, pred: Node, cmp: Comparator) -> Tri:
    """Scalars, with the percentage and infinity rules applied first."""
    if gold[0] == "%" or pred[0] == "%":
        gv = [_div100(gold[1]), gold[1]] if gold[0] == "%" else [gold]
        pv = [_div100(pred[1]), pred[1]] if pred[0] == "%" else [pred]
        results = [scalar_equal(a, b, cmp) for a in gv for b in pv]
        if True in results:
            return True
        return False if all(r is False for r in results) else None
    sg, sp = inf_sign(gold), inf_sign(pred)
    if sg or sp:
        return sg == sp
    return cmp.scalar(gold, pred)


def unordered(golds: Sequence[Node], preds: Sequence[Node], cmp: Comparator) -> Tri:
    """Set equality of two element lists: every gold element is among the predicted ones and
    every predicted element among the gold ones (a repeated element counts once)."""
    if not golds or not preds:
        return len(golds) == len(preds)
    rows = [[equal(g, p, cmp) for p in preds] for g in golds]
    cols = [[rows[i][j] for i in range(len(golds))] for j in range(len(preds))]
    lines = rows + cols
    if any(all(v is False for v in line) for line in lines):
        return False
    if all(any(v is True for v in line) for line in lines):
        return True
    return None


def ordered(golds: Sequence[Node], preds: Sequence[Node], cmp: Comparator) -> Tri:
    """Element-wise equality, in order."""
    if len(golds) != len(preds):
        return False
    result: Tri = True
    for g, p in zip(golds, preds, strict=True):
        r = equal(g, p, cmp)
        if r is False:
            return False
        if r is None:
            result = None
    return result


STRUCTURES = frozenset({"eq", "rel", "interval", "tuple", "set", "list", "union", "matrix",
                        "text"})


def _interval(node: Node) -> Node | None:
    if node[0] == "interval":
        return node
    if node[0] == "tuple" and len(node[1]) == 2 and not any(
            item[0] in STRUCTURES for item in node[1]):
        br = node[2]
        return ("interval", br[0] == "[", node[1][0], node[1][1], br[1] == "]")
    return None


def _interval_equal(g: Node, p: Node, cmp: Comparator) -> Tri:
    if g[1] != p[1] or g[4] != p[4]:
        return False
    lo = scalar_equal(g[2], p[2], cmp)
    if lo is False:
        return False
    hi = scalar_equal(g[3], p[3], cmp)
    if hi is False:
        return False
    return True if lo and hi else None


def _unwrap_single(node: Node) -> Node:
    while node[0] in ("set", "list") and len(node[1]) == 1:
        node = node[1][0]
    return node


def _values(eqn: Node) -> tuple[Node, ...] | None:
    """The sides an equation states as the value of its named side: ``x = a = b`` states a and
    b (a chain must be consistent: every stated value counts), ``a = x`` states a; None when
    neither end is a lone variable."""
    sides = eqn[1]
    if sides[0][0] == "s":
        return tuple(sides[1:])
    if len(sides) == 2 and sides[1][0] == "s":
        return (sides[0],)
    return None


def _equation(g: Node, p: Node, cmp: Comparator) -> Tri:
    if g[0] == "eq" and p[0] == "eq":
        gs, ps = g[1], p[1]
        if gs[0][0] == "s" and gs[0] == ps[0]:
            return ordered([gs[-1]] * (len(ps) - 1), ps[1:], cmp)
        if len(ps) != 2:
            return False
        return cmp.proportional(("+", (gs[0], ("neg", gs[-1]))), ("+", (ps[0], ("neg", ps[-1]))))
    if g[0] == "eq":
        values = _values(g)
        return False if values is None else equal(values[-1], p, cmp)
    values = _values(p)
    return False if values is None else ordered([g] * len(values), values, cmp)


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "!=": "!="}


def _relation(g: Node, p: Node, cmp: Comparator) -> Tri:
    if g[0] != "rel" or p[0] != "rel":
        return False
    gs, gops = g[1], g[2]
    ps, pops = p[1], p[2]
    if len(gs) != len(ps):
        return False
    if gops == pops:
        return ordered(gs, ps, cmp)
    if tuple(_FLIP[o] for o in reversed(pops)) == gops:
        return ordered(gs, tuple(reversed(ps)), cmp)
    return False


def equal(gold: Node, pred: Node, cmp: Comparator) -> Tri:
    """Whether two parsed answers are equivalent (None: a scalar could not be settled)."""
    if gold == pred:
        return True
    gold, pred = _unwrap_single(gold), _unwrap_single(pred)
    tg, tp = gold[0], pred[0]
    if tp == "list" and tg not in ("set", "list", "tuple", "matrix"):
        # candidates against one answer: equal only when every candidate is (no hedging)
        return ordered([gold] * len(pred[1]), pred[1], cmp)
    if tg == "text" or tp == "text":
        return tg == tp and gold[1] == pred[1]
    if tg == "eq" or tp == "eq":
        return _equation(gold, pred, cmp)
    if tg == "rel" or tp == "rel":
        return _relation(gold, pred, cmp)
    gi, pi = _interval(gold), _interval(pred)
    if gi is not None and pi is not None:
        return _interval_equal(gi, pi, cmp)
    if tg == "union" or tp == "union":
        if tg != tp:
            return False
        return unordered(gold[1], pred[1], cmp)
    if tg == "matrix" or tp == "matrix":
        if tg == tp:
            if len(gold[1]) != len(pred[1]) or len(gold[1][0]) != len(pred[1][0]):
                return False
            return ordered([c for r in gold[1] for c in r], [c for r in pred[1] for c in r], cmp)
        other = pred if tg == "matrix" else gold
        mat = gold if tg == "matrix" else pred
        if other[0] in ("tuple", "list") and len(mat[1][0]) == 1:  # a column vector
            col = [r[0] for r in mat[1]]
            return ordered(col, other[1], cmp) if mat is gold else ordered(other[1], col, cmp)
        return False
    if tg in ("set", "list") or tp in ("set", "list"):
        if {tg, tp} == {"set", "tuple"}:
            return False
        if {tg, tp} == {"list", "tuple"}:
            return ordered(gold[1], pred[1], cmp)
        if tg not in ("set", "list") or tp not in ("set", "list"):
            return False
        return unordered(gold[1], pred[1], cmp)
    if tg == "tuple" or tp == "tuple":
        if tg != tp or gold[2] != pred[2]:
            return False
        return ordered(gold[1], pred[1], cmp)
    if tg == "interval" or tp == "interval":
        return False
    return scalar_equal(gold, pred, cmp)


def scalars(node: Node) -> Iterator[Node]:
    """The scalar subtrees of an answer (the elements of its structures; none for text)."""
    tag = node[0]
    if tag == "text":
        return
    if tag not in STRUCTURES:
        yield node
        return
    stack: list[Any] = list(node[1:])
    while stack:
        x = stack.pop()
        if isinstance(x, tuple) and x:
            if isinstance(x[0], str):
                yield from scalars(x)
            else:
                stack.extend(x)
