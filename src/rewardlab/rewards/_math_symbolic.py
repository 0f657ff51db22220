"""The symbolic path of the math verifier: sympy, run in isolated worker processes.

Pairs the fast path cannot settle are scored by `symbolic_pair`, a ``kind="cpu"`` reward, on a
process pool owned by this module (`ProcessPool` from the runtime: one process per worker,
hard wall-clock timeout enforced by the parent, worker killed and replaced on a timeout or
crash). sympy is imported inside the worker only.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from rewardlab.core.reward import reward
from rewardlab.core.types import Sample, Score
from rewardlab.rewards._math_compare import FastComparator, Tri, equal
from rewardlab.rewards._math_parse import MathLimit, Node, normalize, parse_answer

if TYPE_CHECKING:
    from rewardlab.runtime.pool import ProcessPool

_BIG_EXPONENT = 10_000
_BIG_BITS = 200_000


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
        if exp.is_number and (_huge_power(base, exp) if base.is_number
                              else exp.is_real and abs(exp.evalf(15)) > _BIG_EXPONENT):
            raise MathLimit("power too large to evaluate")
        return sp.Pow(base, exp)
    if tag == "sqrt":
        x = to_sympy(node[1])
        if node[2] is None:
            return sp.sqrt(x)
        n = to_sympy(node[2])
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


def _finite_number(v: Any) -> bool:
    import sympy as sp

    return bool(v.is_number and v.is_finite is not False and not v.has(sp.nan, sp.zoo))


def sympy_equal(a: Any, b: Any, tolerance: float) -> bool:
    """Equality of two sympy expressions: exact for rationals, relative `tolerance` for other
    numbers, identity testing at several rational points (then `simplify`) with symbols."""
    import sympy as sp

    if a == b:
        return True
    if a.has(sp.oo, -sp.oo, sp.zoo, sp.nan) or b.has(sp.oo, -sp.oo, sp.zoo, sp.nan):
        return False
    names = sorted(a.free_symbols | b.free_symbols, key=str)
    if not names:
        if a.is_Rational and b.is_Rational:
            return False
        rational = _rational_tree(a) and _rational_tree(b)
        va, vb = a.evalf(40), b.evalf(40)
        if not (_finite_number(va) and _finite_number(vb)):
            return bool(sp.simplify(a - b) == 0)
        diff = abs(complex(va - vb)) if (va - vb).is_number else float("inf")
        scale = max(abs(complex(va)), abs(complex(vb)))
        if diff <= 1e-30 * max(scale, 1e-30):
            if rational:  # equal to 30 digits, but exact values need exact equality
                raise MathLimit("numbers too large to compare exactly")
            return True
        return not rational and diff <= tolerance * scale
    checked = 0
    for k in range(4):
        env = {s: sp.Rational(37 + 29 * ((i * 7 + k * 3) % 11) + k, 23 + 2 * i)
               for i, s in enumerate(names)}
        try:
            va = a.evalf(30, subs=env)
            vb = b.evalf(30, subs=env)
        except (ZeroDivisionError, ValueError, TypeError):
            continue
        if not (_finite_number(va) and _finite_number(vb)):
            continue
        scale = max(abs(complex(va)), abs(complex(vb)), 1e-30)
        if abs(complex(va) - complex(vb)) > 1e-12 * scale:
            return False
        checked += 1
    if checked >= 2:
        return True
    return bool(sp.simplify(a - b) == 0)


class SymbolicComparator(FastComparator):
    """The fast comparator first; sympy for what it leaves open. Never returns None."""

    def scalar(self, gold: Node, pred: Node) -> Tri:
        fast = super().scalar(gold, pred)
        if fast is not None:
            return fast
        return sympy_equal(to_sympy(gold), to_sympy(pred), self.tolerance)

    def proportional(self, gold: Node, pred: Node) -> Tri:
        import sympy as sp

        fast = super().proportional(gold, pred)
        if fast is not None:
            return fast
        a, b = to_sympy(gold), to_sympy(pred)
        if b == 0:
            return bool(a == 0)
        ratio = sp.simplify(a / b)
        return bool(ratio.free_symbols == set() and ratio.is_number and ratio != 0
                    and ratio.is_finite)


def symbolic_verdict(gold: str, pred: str, tolerance: float) -> bool:
    """Whether two answer strings are equivalent, using sympy where needed (in-process)."""
    g = parse_answer(normalize(gold))
    p = parse_answer(normalize(pred))
    result = equal(g, p, SymbolicComparator(tolerance))
    if result is None:  # pragma: no cover - the symbolic comparator always decides
        raise RuntimeError("undecided")
    return result


@reward(name="math_symbolic_pair", kind="cpu", register=False, timeout=5.0)
def symbolic_pair(reference: Any, response: str, *, tolerance: float = 1e-9) -> Score:
    """1 if the gold answer (reference) and the predicted answer (response) are equivalent by
    the symbolic check, else 0 (higher is better)."""
    try:
        ok = symbolic_verdict(str(reference), response, tolerance)
    except MathLimit as exc:
        return Score.error(f"limit: {exc}")
    return Score.of(float(ok), details={"path": "symbolic"})


# -- the pool ---------------------------------------------------------------------------------

_pool: ProcessPool | None = None
_pool_workers: int | None = None
_exit_hook: list[bool] = []
_lock = threading.Lock()


def set_workers(workers: int | None) -> None:
    """Size of the symbolic-path process pool (default: the core count); closes the current
    pool so the next hard case starts one of the new size."""
    global _pool_workers
    if workers is not None and workers < 1:
        raise ValueError(f"the symbolic pool needs at least one worker, not {workers}")
    with _lock:
        _pool_workers = workers
    close_pool()


def _get_pool() -> ProcessPool:
    global _pool
    with _lock:
        if _pool is None:
            from rewardlab.runtime.pool import ProcessPool

            _pool = ProcessPool(_pool_workers or os.cpu_count() or 1, memory_mb=4096)
            if not _exit_hook:
                atexit.register(close_pool)
                _exit_hook.append(True)
        return _pool


def close_pool() -> None:
    """Stop the symbolic-path workers (a later hard case starts new ones)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def run_symbolic(pairs: Sequence[tuple[str, str]], *, tolerance: float, timeout: float,
                 isolate: bool = True) -> list[Score]:
    """Score (gold, predicted) answer pairs on the symbolic path, each under a hard timeout.

    With `isolate` false, or inside a daemon worker process (which cannot start children),
    the check runs in this process.
    """
    if not pairs:
        return []
    configured = symbolic_pair(tolerance=tolerance)
    samples = [Sample(reference=g, response=p) for g, p in pairs]
    if not isolate or multiprocessing.current_process().daemon:
        return configured.score_local(samples)
    return _get_pool().map(configured, samples, timeout)
