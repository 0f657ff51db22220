"""The symbolic path of the math verifier: sympy, run in isolated worker processes.

Pairs the fast path cannot settle are scored by `symbolic_pair`, a ``kind="cpu"`` reward, on a
process pool owned by this module (`ProcessPool` from the runtime: one process per worker,
hard wall-clock timeout enforced by the parent, worker killed and replaced on a timeout or
crash). sympy is imported inside the worker only.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from rewardlab.core.reward import reward
from rewardlab.core.types import Sample, Score, Status
from rewardlab.rewards._math_compare import FastComparator, Tri, equal, scalars
from rewardlab.rewards._math_parse import MathLimit, MathParseError, Node, normalize, parse_answer
from rewardlab.runtime.current import current_runtime

if TYPE_CHECKING:
    from rewardlab.runtime.pool import ProcessPool

_BIG_EXPONENT = 10_000
_BIG_BITS = 200_000
_BIG_ROOT_BITS = 128


def to_sympy(node: Node) -> Any:
    """A sympy expression for a scalar tree; raises `MathLimit` for powers, factorials and
    binomials too large to evaluate."""
    import sympy as sp

    tag = node[0]
    if tag == "n":
        v: Fraction = node[1]
        return sp.Rational(v.numerator, v.denominator)
    if tag == "s":
        return sp.Symbol(node[1])
    if tag == "c":
        return {"pi": sp.pi, "e": sp.E, "i": sp.I, "inf": sp.oo}[node[1]]
    if tag == "+":
        return sp.Add(*[to_sympy(t) for t in node[1]])
    if tag == "*":
        return sp.Mul(*[to_sympy(t) for t in node[1]])
    if tag == "neg":
        return -to_sympy(node[1])
    if tag == "/":
        return to_sympy(node[1]) / to_sympy(node[2])
    if tag == "%":
        return to_sympy(node[1]) / 100
    if tag == "abs":
        return sp.Abs(to_sympy(node[1]))
    if tag == "^":
        base, exp = to_sympy(node[1]), to_sympy(node[2])
        if base == 0 and exp.is_number and exp.is_nonpositive is not False:
            return sp.nan  # 0^0 and 0^-1 are undefined: never equal to anything
        if exp.is_number and (_huge_power(base, exp) if base.is_number
                              else exp.is_real and abs(exp.evalf(15)) > _BIG_EXPONENT):
            raise MathLimit("power too large to evaluate")
        return sp.Pow(base, exp)
    if tag == "sqrt":
        x = to_sympy(node[1])
        n = sp.Integer(2) if node[2] is None else to_sympy(node[2])
        if x.is_Rational and max(int(x.p).bit_length(), int(x.q).bit_length()) > _BIG_ROOT_BITS \
                and n.is_Integer and int(n) > 0:
            # sympy would look for factors of a big radicand (seconds); the fast path already
            # took exact roots, so keep the root unevaluated (evalf still values it exactly)
            return sp.Pow(x, sp.Rational(1, int(n)), evaluate=False)
        if node[2] is None:
            return sp.sqrt(x)
        if n.is_Integer and int(n) % 2 == 1 and x.is_number and x.is_negative:
            return sp.real_root(x, n)
        return sp.root(x, n)
    if tag == "!":
        x = to_sympy(node[1])
        if x.is_Integer and int(x) > 5000:
            raise MathLimit("factorial too large to evaluate")
        return sp.factorial(x)
    if tag == "binom":
        n, k = to_sympy(node[1]), to_sympy(node[2])
        if n.is_Integer and int(n) > 20_000:
            raise MathLimit("binomial too large to evaluate")
        return sp.binomial(n, k)
    if tag == "log":
        x = to_sympy(node[1])
        return sp.log(x) if node[2] is None else sp.log(x, to_sympy(node[2]))
    if tag in ("sum", "prod"):
        bounds = (sp.Symbol(node[1]), to_sympy(node[2]), to_sympy(node[3]))
        return (sp.Sum if tag == "sum" else sp.Product)(to_sympy(node[4]), bounds)
    if tag == "f":
        name = node[1]
        fn = {"arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan, "arccot": sp.acot,
              "ceil": sp.ceiling}.get(name) or getattr(sp, name)
        return fn(to_sympy(node[2]))
    raise ValueError(f"cannot convert {tag!r} to sympy")


def _huge_power(base: Any, exp: Any) -> bool:
    """Whether evaluating base**exp exactly would make a number too large to hold."""
    if exp.is_Integer:
        e = abs(int(exp))
        if e > _BIG_EXPONENT:
            return True
        if base.is_Rational:
            bits = max(int(base.p).bit_length(), int(base.q).bit_length())
            return bits * e > _BIG_BITS
        return False
    if exp.is_real:
        return bool(abs(exp.evalf(15)) > _BIG_EXPONENT)
    return False


def _rational_tree(expr: Any) -> bool:
    """Whether an expression is rational arithmetic (rationals, +, *, integer powers)."""
    import sympy as sp

    if expr.is_Rational:
        return True
    if isinstance(expr, sp.Add | sp.Mul):
        return all(_rational_tree(a) for a in expr.args)
    if isinstance(expr, sp.Pow):
        return bool(expr.exp.is_Integer) and _rational_tree(expr.base)
    return False


_NON_FINITE_PRECISION = 40


def _mp_value(v: Any) -> Any:
    """An evaluated sympy number as an mpmath complex (arbitrary exponent range, so values
    far beyond the float range stay exact in magnitude), or None when it is not a finite
    number (infinity, nan, an unevaluated expression)."""
    import mpmath
    import sympy as sp

    if not v.is_number or v.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
        return None
    parts = []
    for part in v.as_real_imag():
        if not part.is_Number or part.is_finite is not True:
            return None
        parts.append(mpmath.mpf(sp.Float(part, _NON_FINITE_PRECISION)._mpf_))
    value = mpmath.mpc(*parts)
    return value if mpmath.isfinite(value) else None


def _close(va: Any, vb: Any, relative: float) -> bool:
    """Whether two mpmath values differ by at most `relative` times the larger magnitude
    (never for a zero scale unless both are exactly zero)."""
    import mpmath

    with mpmath.workdps(_NON_FINITE_PRECISION):
        diff = abs(va - vb)
        scale = max(abs(va), abs(vb))
        return bool(diff == 0 or diff <= relative * scale)


def _within(va: Any, vb: Any, absolute: float) -> bool:
    import mpmath

    with mpmath.workdps(_NON_FINITE_PRECISION):
        return bool(abs(va - vb) <= absolute)


def _is_nonfinite(expr: Any) -> bool:
    import sympy as sp

    return bool(expr.has(sp.oo, -sp.oo, sp.zoo, sp.nan))


def sympy_equal(a: Any, b: Any, tolerance: float, absolute: float | None = None) -> bool:
    """Equality of two sympy expressions: exact for rationals, relative `tolerance` for other
    numbers, identity testing at several rational points (then `simplify`) with symbols.

    Numbers are compared in mpmath at 40 digits with an unbounded exponent, so a value beyond
    the float range is compared by its real magnitude; an infinite, undefined (nan) or
    unevaluable value is never equal to anything. When the two sides do not have the same
    free symbols, only a symbolic proof (``simplify(a - b) == 0``) makes them equal. With
    `absolute` (a rounding precision), two finite numbers within `absolute` of each other are
    equal."""
    import sympy as sp

    if _is_nonfinite(a) or _is_nonfinite(b):
        return False
    if a == b:
        return True
    names = sorted(a.free_symbols | b.free_symbols, key=str)
    if not names:
        if a.is_Rational and b.is_Rational:
            return False
        rational = _rational_tree(a) and _rational_tree(b)
        va, vb = _mp_value(a.evalf(_NON_FINITE_PRECISION)), _mp_value(b.evalf(_NON_FINITE_PRECISION))
        if va is None or vb is None:
            return _proved_zero(a - b)
        if absolute is not None and _within(va, vb, absolute):
            return True
        if _close(va, vb, 1e-30):
            if rational:  # equal to 30 digits, but exact values need exact equality
                raise MathLimit("numbers too large to compare exactly")
            return True
        return not rational and _close(va, vb, tolerance)
    if a.free_symbols != b.free_symbols:
        return _proved_zero(a - b)
    checked = 0
    for k in range(4):
        env = {s: sp.Rational(37 + 29 * ((i * 7 + k * 3) % 11) + k, 23 + 2 * i)
               for i, s in enumerate(names)}
        try:
            va = _mp_value(a.evalf(30, subs=env))
            vb = _mp_value(b.evalf(30, subs=env))
        except (ZeroDivisionError, ValueError, TypeError):
            continue
        if va is None or vb is None:
            continue
        if not _close(va, vb, 1e-12):
            return False
        checked += 1
    if checked >= 2:
        return True
    return _proved_zero(a - b)


def _proved_zero(diff: Any) -> bool:
    """Whether sympy simplifies `diff` to exactly zero."""
    import sympy as sp

    simplified = sp.simplify(diff)
    return bool(simplified == 0)


class SymbolicComparator(FastComparator):
    """The fast comparator first; sympy for what it leaves open. Never returns None."""

    def scalar(self, gold: Node, pred: Node) -> Tri:
        fast = super().scalar(gold, pred)
        if fast is not None:
            return fast
        absolute = None if self.precision is None else 0.5 * 10.0 ** -self.precision
        return sympy_equal(to_sympy(gold), to_sympy(pred), self.tolerance, absolute)

    def proportional(self, gold: Node, pred: Node) -> Tri:
        import sympy as sp

        fast = super().proportional(gold, pred)
        if fast is not None:
            return fast
        a, b = to_sympy(gold), to_sympy(pred)
        if _is_nonfinite(a) or _is_nonfinite(b):
            return False
        if b == 0:
            return bool(a == 0)
        ratio = sp.simplify(a / b)
        return bool(ratio.free_symbols == set() and ratio.is_number and ratio != 0
                    and ratio.is_finite)


def symbolic_verdict(gold: str, pred: str, tolerance: float, precision: int | None = None) -> bool:
    """Whether two answer strings are equivalent, using sympy where needed (in-process)."""
    g = parse_answer(normalize(gold))
    p = parse_answer(normalize(pred))
    result = equal(g, p, SymbolicComparator(tolerance, precision))
    if result is None:  # pragma: no cover - the symbolic comparator always decides
        raise RuntimeError("undecided")
    return result


@reward(name="math_symbolic_pair", kind="cpu", register=False, timeout=5.0)
def symbolic_pair(reference: Any, response: str, *, tolerance: float = 1e-9,
                  precision: int | None = None) -> Score:
    """1 if the gold answer (reference) and the predicted answer (response) are equivalent by
    the symbolic check, else 0 (higher is better)."""
    gold = str(reference)
    try:
        ok = symbolic_verdict(gold, response, tolerance, precision)
    except MathLimit as exc:
        ref = reference_limit_symbolic(gold)
        if ref is not None:
            return Score.error(f"bad reference: the reference answer exceeds a limit: {ref}")
        return Score.of(0.0, reason=f"limit: {exc}", details={"path": "symbolic"})
    return Score.of(float(ok), details={"path": "symbolic"})


def reference_limit_symbolic(gold: str) -> str | None:
    """Why the gold answer alone exceeds a limit of the symbolic path, or None."""
    try:
        for scalar in scalars(parse_answer(normalize(gold))):
            to_sympy(scalar)
    except MathLimit as exc:
        return str(exc)
    except (MathParseError, ValueError, TypeError, AttributeError):
        return None
    return None


# -- the pool ---------------------------------------------------------------------------------
# The symbolic path runs in the current Runtime's process pool, under its `workers`, `timeout`
# and `memory_mb`: one pool per Runtime, released by `Runtime.close()`.

def _get_pool() -> ProcessPool:
    return current_runtime().pool


def close_pool() -> None:
    """Stop the current Runtime's pool workers (a later hard case starts new ones)."""
    current_runtime().restart_pool()


def run_symbolic(pairs: Sequence[tuple[str, str]], *, tolerance: float, timeout: float,
                 precision: int | None = None,
                 isolate: bool = True) -> list[Score]:
    """Score (gold, predicted) answer pairs on the symbolic path, each under a hard timeout
    (the current Runtime's `timeout` when it sets one), in the current Runtime's pool.

    With `isolate` false, or inside a daemon worker process (which cannot start children),
    the check runs in this process.
    """
    if not pairs:
        return []
    configured = symbolic_pair(tolerance=tolerance, precision=precision)
    samples = [Sample(reference=g, response=p) for g, p in pairs]
    if not isolate or multiprocessing.current_process().daemon:
        return configured.score_local(samples)
    timeout = current_runtime().timeout or timeout
    pool = _get_pool()
    scores = pool.map(configured, samples, timeout)
    return [_attribute(pool, configured, sample, score, timeout) if _lost(score) else score
            for sample, score in zip(samples, scores, strict=True)]


def _lost(score: Score) -> bool:
    return score.status is Status.error and (score.reason or "").startswith(("timeout", "crash"))


def _attribute(pool: ProcessPool, configured: Any, sample: Sample, lost: Score, timeout: float) -> Score:
    """A pair that timed out or crashed, tried once more on one worker right after the same
    gold against ``0`` (which warms the worker up: sympy imported, caches filled). If the
    warm-up passes within the time limit and the pair fails again, the answer itself exceeded
    the limits (time, memory): not equal, with the reason. If the warm-up fails too, nothing
    can be said about the answer and the error stands."""
    warm = Sample(reference=sample.reference, response="0")
    first, again = pool.run(configured, [warm, sample], timeout)
    if not first.ok:
        return lost
    if _lost(again):
        return Score.of(0.0, reason=f"limit: {again.reason}, also on a warm worker right after a check "
                                    f"of the same reference passed", details={"path": "symbolic"})
    return again
