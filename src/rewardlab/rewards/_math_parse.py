"""Answer normalisation and parsing for the math verifier (no sympy here).

An answer string (LaTeX or plain text) is normalised (`normalize`) and parsed (`parse_answer`)
into a small immutable tree of tuples:

- scalars: ``("n", Fraction)``, ``("s", name)``, ``("c", "pi"|"e"|"i"|"inf")``, ``("+", terms)``,
  ``("*", factors)``, ``("neg", x)``, ``("/", a, b)``, ``("^", a, b)``, ``("sqrt", x, n|None)``,
  ``("f", name, x)``, ``("log", x, base|None)``, ``("!", x)``, ``("abs", x)``,
  ``("binom", a, b)``, ``("%", x)``, ``("pm", a, b)`` (only before expansion);
- structures: ``("eq", sides)``, ``("rel", sides, ops)``, ``("interval", lo_closed, lo, hi,
  hi_closed)``, ``("tuple", items, brackets)``, ``("set", items)``, ``("list", items)``,
  ``("union", parts)``, ``("matrix", rows)``, ``("text", key)``.

`exact` evaluates a scalar to a `Fraction` when it is rational arithmetic, and `approx` to a
complex float; both are bounded (sizes, exponents, depth) so they are safe to run in-process.
Everything that exceeds a bound raises `MathLimit`.
"""

from __future__ import annotations

import cmath
import math
import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

Node = tuple[Any, ...]

MAX_ANSWER_CHARS = 2000  # longer answers are not parsed
MAX_DEPTH = 60  # nesting depth of groups / operators
MAX_BITS = 20_000  # size of exact integers kept in the fast path
MAX_ITEMS = 64  # elements of a tuple / set / list / matrix


class MathLimit(Exception):
    """An answer exceeds a safety bound (length, nesting, number size)."""


class MathParseError(Exception):
    """An answer is not in a syntax the parser reads."""


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------

_UNICODE = str.maketrans({
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": r"\times ", "\u00f7": r"\div ",
    "\u00b7": r"\cdot ", "\u22c5": r"\cdot ", "\u2264": r"\le ", "\u2265": r"\ge ",
    "\u2260": r"\ne ", "\u221e": r"\infty ", "\u03c0": r"\pi ", "\u221a": r"\sqrt",
    "\u00b0": "", "\u222a": r"\cup ", "\u2208": r"\in ", "\u00b2": "^2", "\u00b3": "^3",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\uff0c": ",",
})

_DELIMS = (("$$", "$$"), ("$", "$"), (r"\(", r"\)"), (r"\[", r"\]"))
_SIZING = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)"
                     r"(?![a-zA-Z])\s*")
_INVISIBLE_DELIM = re.compile(r"\\(?:left|right)\s*\.")
_SPACING = re.compile(r"(?P<br>\\\\)|(?P<thin>\\[!,;:>])|\\ |\\q?quad"
                      r"|\\displaystyle(?![a-zA-Z])|\\(?:no)?limits(?![a-zA-Z])|~")
_RENAMES = (
    (re.compile(r"\\[dtc]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\[dt]binom(?![a-zA-Z])"), r"\\binom"),
    (re.compile(r"\\(?:leqslant|leq|leqq)(?![a-zA-Z])"), r"\\le "),
    (re.compile(r"\\(?:geqslant|geq|geqq)(?![a-zA-Z])"), r"\\ge "),
    (re.compile(r"\\neq(?![a-zA-Z])"), r"\\ne "),
    (re.compile(r"\\lt(?![a-zA-Z])"), "<"),
    (re.compile(r"\\gt(?![a-zA-Z])"), ">"),
    (re.compile(r"\\(?:vert|lvert|rvert|mid)(?![a-zA-Z])"), "|"),
    (re.compile(r"\\(?:ast|star)(?![a-zA-Z])"), "*"),
    (re.compile(r"\\varnothing(?![a-zA-Z])|^\\\{\s*\\\}$"), r"\\emptyset"),
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])"
                      r"|\^\s*\{\s*\}")
_TEXT_CMDS = ("text", "textbf", "textit", "textrm", "textsf", "texttt", "mbox", "hbox", "textnormal")
_UNWRAP_CMDS = ("mathrm", "mathbf", "mathit", "mathsf", "boldsymbol", "bm", "operatorname",
                "mathnormal", "mathbb", "mathcal")
_TEXT_RE = re.compile(r"\\(" + "|".join(_TEXT_CMDS + _UNWRAP_CMDS) + r")\s*\{")
_BOXED_WHOLE = re.compile(r"^\\(?:boxed|fbox)\s*\{")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?$")
_THOUSANDS_BRACED = re.compile(r"(\d)\s*\{\s*,\s*\}\s*(\d{3})(?!\d)")
_THOUSANDS_THIN = re.compile(r"(?<=\d),\\!\s*(?=\d{3}(?!\d))")  # 11,\! 111,\! 100
# a backslash doubled by a raw-string slip ("\\frac"): the command meant, not a line break
_DOUBLED = re.compile(r"(?<!\\)\\\\(?=(?:[dt]?frac|left|right|sqrt|boxed|fbox|leq?|geq?|neq?|lt|gt|text|mathrm|"
                      r"cdot|times|div|pi|infty|in|cup|cap|begin|end|pm|mp|q?quad|approx|circ|"
                      r"sin|cos|tan|log|ln|exp)(?![a-zA-Z]))")
_DIGIT_SPACE = re.compile(r"(?<=\d)[ \t]+(?=\d)")
_NUM_HEAD = r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?%?"
_UNIT_TAIL = re.compile(
    r"^(?P<head>(?:[a-zA-Z]\s*=\s*)?" + _NUM_HEAD + r")\s*(?P<unit>[a-zA-Z]{2,}(?:[\s\-]+[a-zA-Z]+)*)"
    r"\s*(?:\^\s*\{?\d\}?)?\.?$")
_TRAILING_JUNK = re.compile(r"(?:\s|\.|;|\\\.)+$")
_WS = re.compile(r"\s+")


def match_brace(s: str, open_index: int, limit: int | None = None) -> int:
    """Index of the `}` closing the `{` at `open_index`, or -1 (also -1 past `limit` chars)."""
    depth = 0
    end = len(s) if limit is None else min(len(s), open_index + limit)
    i = open_index
    while i < end:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _strip_delims(s: str) -> str:
    changed = True
    while changed:
        changed = False
        s = s.strip()
        for a, b in _DELIMS:
            if len(s) >= len(a) + len(b) and s.startswith(a) and s.endswith(b):
                inner = s[len(a): len(s) - len(b)]
                if a == "$" and "$" in inner:
                    continue
                s, changed = inner, True
                break
        m = _BOXED_WHOLE.match(s)
        if m:
            end = match_brace(s, m.end() - 1)
            if end == len(s) - 1:
                s, changed = s[m.end(): end], True
    return s


def _handle_text(s: str) -> str:
    r"""Unwrap `\text{}`-like groups. Text beside math (units) is dropped; an answer that is only
    text keeps its words; `\text{ and }` / `\text{ or }` become commas."""
    pieces: list[tuple[str, bool]] = []  # (chunk, is_text)
    pos = 0
    for _ in range(200):
        m = _TEXT_RE.search(s, pos)
        if not m:
            break
        end = match_brace(s, m.end() - 1)
        if end < 0:
            break
        pieces.append((s[pos: m.start()], False))
        content = s[m.end(): end]
        if m.group(1) in _UNWRAP_CMDS or content.strip() == "e":  # \text{e}: Euler's number
            pieces.append((content, False))
        else:
            pieces.append((content, True))
        pos = end + 1
    if not pieces:
        return s
    pieces.append((s[pos:], False))
    math_part = "".join(c for c, t in pieces if not t)
    if not re.search(r"[0-9a-zA-Z\\]", math_part):
        words = " ".join(c.strip() for c, t in pieces if t or c.strip())
        return words if re.search(r"\d", words) else r"\text{" + words + "}"
    out = []
    drop_power = False
    for chunk, is_text in pieces:
        if is_text:
            word = chunk.strip().lower()
            if word in {"and", "or", ",", "and,"}:
                out.append(",")
            elif re.fullmatch(r"[a-zA-Z .\-]*", chunk) and chunk.strip():
                drop_power = True  # a unit: drop it, and an exponent right after it
            elif chunk.strip():
                out.append(chunk)
            continue
        if drop_power:
            chunk = re.sub(r"^\s*\^\s*(?:\{\s*\d\s*\}|\d)", "", chunk)
            drop_power = False
        out.append(chunk)
    return "".join(out)


_UNIT_KEEP = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "inf",
              "infty", "infinity", "and", "or"}


@lru_cache(maxsize=8192)
def normalize(answer: str) -> str:
    """Canonical text of an answer: delimiters, sizing and spacing commands, degrees, `\\text`
    units, dollar signs, thousands separators and trailing punctuation removed."""
    if len(answer) > MAX_ANSWER_CHARS:
        raise MathLimit(f"answer longer than {MAX_ANSWER_CHARS} characters")
    s = _DOUBLED.sub(lambda m: "\\", answer.translate(_UNICODE))
    s = _THOUSANDS_THIN.sub("", s)
    s = _strip_delims(s)
    s = _INVISIBLE_DELIM.sub("", s)
    s = _SIZING.sub("", s)
    s = _SPACING.sub(lambda m: m.group("br") or ("" if m.group("thin") else " "), s)
    for pat, rep in _RENAMES:
        s = pat.sub(rep, s)
    s = _DEGREES.sub("", s)
    s = s.replace(r"\%", "%").replace(r"\$", "").replace("$", "")
    s = _THOUSANDS_BRACED.sub(r"\1,\2", s)
    s = _DIGIT_SPACE.sub("", s)  # as in LaTeX math: "1 000" is 1000
    s = _handle_text(s)
    s = _TRAILING_JUNK.sub("", s.strip())
    s = _WS.sub(" ", s).strip()
    m = _UNIT_TAIL.match(s)
    if m and not (set(m.group("unit").lower().split()) & _UNIT_KEEP):
        s = m.group("head").strip()
    core = s.lstrip("+-")
    if _THOUSANDS.match(s) or (core != s and _THOUSANDS.match(core)):
        s = s.replace(",", "")
    s = re.sub(r"^([-+]?\d+)\.$", r"\1", s)
    return _strip_delims(s)


def answer_key(normalized: str) -> str:
    """The normalised answer with all whitespace removed (for string equality)."""
    return _WS.sub("", normalized)


_PLAIN_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,4})?$")


def plain_number(normalized: str) -> Fraction | None:
    """The exact value of an answer that is just a number (integer, decimal, sci notation)."""
    if len(normalized) <= 400 and _PLAIN_NUMBER.match(normalized):
        return Fraction(normalized.rstrip(".") if "e" not in normalized.lower()
                        else normalized)
    return None


# --------------------------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
  (?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d{1,4}(?![\d.]))?|\.\d+(?:[eE][-+]?\d{1,4}(?![\d.]))?)
| (?P<cmd>\\[a-zA-Z]+|\\[{}|%])
| (?P<word>[a-zA-Z]+)
| (?P<op><=|>=|!=|\*\*|[-+*/^_!=<>,()\[\]{}|;:%&'])
| (?P<ws>\s+)
| (?P<other>.)
""", re.X)

FUNCTIONS = {
    "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "arccot",
    "sinh", "cosh", "tanh", "coth", "exp", "ln", "log", "lg", "floor", "ceil",
}
GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma",
    "Phi", "Psi", "Omega",
}
_RELOPS = {"=": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "!=": "!=", r"\approx": "~", r"\le": "<=",
           r"\ge": ">=", r"\ne": "!=", r"\leq": "<=", r"\geq": ">="}
_WORD_CMDS = {"sqrt": r"\sqrt", "pi": r"\pi", "inf": r"\infty", "infty": r"\infty",
              "infinity": r"\infty", "oo": r"\infty"}

Token = tuple[str, str]


def tokenize(s: str) -> list[Token]:
    out: list[Token] = []
    for m in _TOKEN.finditer(s):
        kind = m.lastgroup
        val = m.group()
        if kind == "ws":
            continue
        if kind == "other":
            raise MathParseError(f"unexpected character {val!r}")
        if kind == "word":
            low = val
            if low in FUNCTIONS:
                out.append(("fn", low))
            elif low in _WORD_CMDS:
                out.append(("cmd", _WORD_CMDS[low]))
            elif low in GREEK:
                out.append(("id", low))
            else:
                out.extend(("id", ch) for ch in val)
            continue
        if kind == "cmd":
            name = val[1:]
            if name in FUNCTIONS:
                out.append(("fn", name))
                continue
            if name in GREEK:
                out.append(("id", name))
                continue
        if kind == "op" and val == "**":
            val = "^"
        out.append((kind or "op", val))
    return out


# --------------------------------------------------------------------------------------------
# expression parser
# --------------------------------------------------------------------------------------------

ONE = ("n", Fraction(1))


def _mul(factors: list[Node]) -> Node:
    return factors[0] if len(factors) == 1 else ("*", tuple(factors))


def _is_int_literal(node: Node) -> bool:
    return node[0] == "n" and node[1].denominator == 1


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.t = tokens
        self.i = 0
        self.depth = 0
        self.abs_depth = 0

    # helpers
    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise MathParseError("unexpected end of answer")
        self.i += 1
        return tok

    def expect(self, val: str) -> None:
        tok = self.take()
        if tok[1] != val:
            raise MathParseError(f"expected {val!r}, found {tok[1]!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise MathLimit(f"answer nested deeper than {MAX_DEPTH} levels")

    def at_end(self) -> bool:
        return self.i >= len(self.t)

    # grammar
    def relation(self) -> Node:
        sides = [self.expr()]
        ops: list[str] = []
        while (tok := self.peek()) is not None and tok[1] in _RELOPS:
            self.take()
            ops.append(_RELOPS[tok[1]])
            sides.append(self.expr())
        if not self.at_end():
            raise MathParseError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        if not ops:
            return sides[0]
        if "~" in ops:  # x = 1/3 \approx 0.33: the exact value; x \approx 11: the value given
            k = ops.index("~")
            if k > 0:
                sides, ops = sides[: k + 1], ops[:k]
            else:
                ops = ["=" if o == "~" else o for o in ops]
        if all(o == "=" for o in ops):
            return ("eq", tuple(sides))
        return ("rel", tuple(sides), tuple(ops))

    def expr(self) -> Node:
        self.enter()
        lead = self.peek()
        if lead is not None and lead[1] in (r"\pm", r"\mp"):  # ±3 is the list 3, -3
            self.take()
            terms: list[Node] = [("pm", ("n", Fraction(0)), self.term())]
        else:
            terms = [self.term()]
        while (tok := self.peek()) is not None:
            v = tok[1]
            if v == "+" and tok[0] == "op":
                self.take()
                terms.append(self.term())
            elif v == "-" and tok[0] == "op":
                self.take()
                terms.append(("neg", self.term()))
            elif v in (r"\pm", r"\mp"):
                self.take()
                left = terms[0] if len(terms) == 1 else ("+", tuple(terms))
                right = self.term()
                terms = [("pm", left, right if v == r"\pm" else ("neg", right))]
            else:
                break
        self.depth -= 1
        return terms[0] if len(terms) == 1 else ("+", tuple(terms))

    def term(self) -> Node:
        first = self.unary()
        factors = [first]
        while (tok := self.peek()) is not None:
            v = tok[1]
            if v in ("*", r"\cdot", r"\times") and tok[0] in ("op", "cmd"):
                self.take()
                factors.append(self.unary())
            elif v in ("/", r"\div", ":") and tok[0] in ("op", "cmd"):
                self.take()
                den = self.unary()
                factors = [("/", _mul(factors), den)]
            elif self.starts_atom(tok):
                nxt = self.power()
                if len(factors) == 1 and nxt[0] == "/" and _is_int_literal(nxt[1]) \
                        and _is_int_literal(nxt[2]) and tok[1] == r"\frac":
                    head = factors[0]
                    if _is_int_literal(head):  # a mixed number: 2\frac{1}{2} = 5/2
                        factors = [("+", (head, nxt))]
                        continue
                    if head[0] == "neg" and _is_int_literal(head[1]):
                        factors = [("neg", ("+", (head[1], nxt)))]
                        continue
                factors.append(nxt)
            else:
                break
        return _mul(factors)

    def starts_atom(self, tok: Token) -> bool:
        kind, v = tok
        if kind in ("num", "id", "fn"):
            return True
        if kind == "cmd":
            return v in (r"\frac", r"\sqrt", r"\binom", r"\pi", r"\infty", r"\lfloor", r"\lceil",
                         r"\exp", r"\sum", r"\prod")
        if kind == "op":
            if v == "|":
                return self.abs_depth == 0
            return v in ("(", "[", "{")
        return False

    def unary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in ("-", "+"):
            self.take()
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return ("neg", inner) if tok[1] == "-" else inner
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        tok = self.peek()
        if tok is not None and tok == ("op", "^"):
            self.take()
            self.enter()
            exp = self.exponent()
            self.depth -= 1
            node: Node = ("^", base, exp)
            return self.postfix_ops(node)
        return base

    def exponent(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise MathParseError("missing exponent")
        if tok[0] == "op" and tok[1] in ("-", "+"):
            self.take()
            inner = self.exponent()
            return ("neg", inner) if tok[1] == "-" else inner
        if tok == ("op", "{"):
            return self.group("{", "}")
        return self.power()

    def group(self, open_: str, close: str) -> Node:
        self.expect(open_)
        self.enter()
        inner = self.expr()
        self.depth -= 1
        self.expect(close)
        return inner

    def arg(self) -> Node:
        """A LaTeX macro argument: a braced group or a single token."""
        tok = self.peek()
        if tok is None:
            raise MathParseError("missing argument")
        if tok == ("op", "{"):
            return self.group("{", "}")
        if tok[0] == "num":
            self.take()
            if not tok[1][0].isdigit():
                raise MathParseError(f"bad macro argument {tok[1]!r}")
            if len(tok[1]) > 1:  # \frac12: one digit per argument
                self.t[self.i: self.i] = tokenize(tok[1][1:])
            return ("n", Fraction(int(tok[1][0])))
        if tok[0] == "id":
            self.take()
            return _ident(tok[1])
        return self.atom()

    def postfix(self) -> Node:
        return self.postfix_ops(self.atom())

    def postfix_ops(self, node: Node) -> Node:
        while (tok := self.peek()) is not None and tok[0] == "op":
            v = tok[1]
            if v == "!":
                self.take()
                node = ("!", node)
            elif v == "%":
                self.take()
                node = ("%", node)
            elif v == "_":
                self.take()
                sub = self.subscript_text()
                if node[0] == "s":
                    node = ("s", f"{node[1]}_{sub}")
                elif node[0] == "n" and sub.isdigit():
                    pass  # a base subscript (52_8): the digits are the answer
                else:
                    raise MathParseError("unsupported subscript")
            else:
                break
        return node

    def subscript_text(self) -> str:
        tok = self.take()
        if tok == ("op", "{"):
            parts = []
            depth = 1
            while True:
                t = self.take()
                if t == ("op", "{"):
                    depth += 1
                elif t == ("op", "}"):
                    depth -= 1
                    if depth == 0:
                        break
                parts.append(t[1])
                if len(parts) > 50:
                    raise MathParseError("subscript too long")
            return "".join(parts)
        return tok[1]

    def atom(self) -> Node:
        tok = self.take()
        kind, v = tok
        if kind == "num":
            value = Fraction(v.rstrip(".") if v.endswith(".") else v)
            nxt = self.peek()
            if nxt == ("cmd", r"\overline") and "." in v:
                self.take()
                rep = self.subscript_text()
                if not rep.isdigit():
                    raise MathParseError("unsupported repeating decimal")
                frac_digits = len(v.split(".", 1)[1])
                value += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** frac_digits)
            return ("n", value)
        if kind == "id":
            return _ident(v)
        if kind == "fn":
            return self.function(v)
        if kind == "op":
            if v == "(":
                return self.finish_group(")")
            if v == "[":
                return self.finish_group("]")
            if v == "{":
                return self.finish_group("}")
            if v == "|":
                self.abs_depth += 1
                self.enter()
                inner = self.expr()
                self.depth -= 1
                self.abs_depth -= 1
                self.expect("|")
                return ("abs", inner)
            raise MathParseError(f"unexpected {v!r}")
        if kind == "cmd":
            if v == r"\frac":
                num = self.arg()
                den = self.arg()
                return ("/", num, den)
            if v == r"\sqrt":
                index: Node | None = None
                if self.peek() == ("op", "["):
                    index = self.group("[", "]")
                return ("sqrt", self.arg(), index)
            if v == r"\binom":
                return ("binom", self.arg(), self.arg())
            if v in (r"\sum", r"\prod"):
                return self.big_operator(v[1:])
            if v == r"\pi":
                return ("c", "pi")
            if v == r"\infty":
                return ("c", "inf")
            if v == r"\exp":
                return self.function("exp")
            if v in (r"\lfloor", r"\lceil"):
                self.enter()
                inner = self.expr()
                self.depth -= 1
                self.expect(r"\rfloor" if v == r"\lfloor" else r"\rceil")
                return ("f", "floor" if v == r"\lfloor" else "ceil", inner)
            if v == r"\|":
                raise MathParseError("norms are not supported")
        raise MathParseError(f"unsupported {v!r}")

    def big_operator(self, kind: str) -> Node:
        r"""``\sum_{k=a}^{b} body`` (also ``\prod``): the body is the term that follows."""
        self.expect("_")
        self.expect("{")
        var = self.take()
        if var[0] != "id":
            raise MathParseError(f"{kind} needs an index variable")
        self.expect("=")
        self.enter()
        lo = self.expr()
        self.depth -= 1
        self.expect("}")
        self.expect("^")
        hi = self.arg()
        self.enter()
        body = self.term()
        self.depth -= 1
        return (kind, var[1], lo, hi, body)

    def finish_group(self, close: str) -> Node:
        self.enter()
        inner = self.expr()
        self.depth -= 1
        self.expect(close)
        return inner

    def function(self, name: str) -> Node:
        power: Node | None = None
        base: Node | None = None
        if name == "log" and self.peek() == ("op", "_"):
            self.take()
            base = self.arg()
        if self.peek() == ("op", "^"):
            self.take()
            power = self.exponent()
        tok = self.peek()
        if tok is None:
            raise MathParseError(f"{name} without an argument")
        if tok in (("op", "("), ("op", "{"), ("op", "[")):
            arg = self.atom()
        else:
            factors = [self.power()]
            while (t := self.peek()) is not None and t[0] in ("num", "id"):
                factors.append(self.power())
            arg = _mul(factors)
        if name in ("log", "lg", "ln"):
            if name == "lg":
                base = ("n", Fraction(10))
            node: Node = ("log", arg, None if name == "ln" else base)
        else:
            node = ("f", name, arg)
        if power is not None:
            if power == ("neg", ONE) and name in ("sin", "cos", "tan"):
                node = ("f", "arc" + name, arg)
            else:
                node = ("^", node, power)
        return node


def _ident(name: str) -> Node:
    if name == "e":
        return ("c", "e")
    if name == "i":
        return ("c", "i")
    return ("s", name)


def parse_expression(s: str) -> Node:
    """A scalar, equation or inequality from normalised text."""
    tokens = tokenize(s)
    if not tokens:
        raise MathParseError("empty answer")
    return _Parser(tokens).relation()


# --------------------------------------------------------------------------------------------
# answer structure
# --------------------------------------------------------------------------------------------

_OPEN = {"(": ")", "[": "]", "{": "}"}
_MATRIX = re.compile(r"^\\begin\{([pbBvV]?matrix|array)\}(.*)\\end\{\1\}$", re.S)
_IN_PREFIX = re.compile(r"^[a-zA-Z]\s*\\in\s*")
_CHOICE = re.compile(r"^\(?\s*([A-E])\s*\)?$")
_WORDY = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{3,}")
_MATH_WORDS = FUNCTIONS | set(_WORD_CMDS) | GREEK | {"and", "or"}
_SEPARATOR_WORDS = re.compile(r"\s+(?:and|or)\s+|(?<=[\d}])\s*(?:and|or)\s+|(?<=[)\]}])\s*(?:and|or)\s*(?=[(\[{\\])",
                              re.I)
_LEADING_WORD = re.compile(r"^(?:and|or)\s+", re.I)
_SUB = r"(?:_\{?[A-Za-z0-9]+\}?)?"
_NAME = rf"(?:[A-Za-z]{{1,4}}{_SUB})"
# a named left side whose right side is the answer: (p, q) = ..., AB = ..., |AB| = ..., V_1 : V_2 = ...
_NAMED_LEFT = re.compile(
    rf"^(?:\(\s*[A-Za-z]{_SUB}(?:\s*,\s*[A-Za-z]{_SUB})+\s*\)|\|\s*{_NAME}\s*\||{_NAME}\s*:\s*{_NAME}"
    rf"|\\frac\{{{_NAME}\}}\{{{_NAME}\}}|[A-Z]{{2,3}}|[A-Z]_\{{?[A-Za-z]+\}}?)\s*=(?![=<>])")


def split_top(s: str, sep: str) -> list[str]:
    """Split on `sep` where it is outside every bracket."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(s)
    ls = len(sep)
    while i < n:
        c = s[i]
        if c == "\\":
            if s.startswith(sep, i) and depth == 0:
                parts.append(s[start:i])
                i += ls
                start = i
                continue
            if i + 1 < n and s[i + 1] in "{}":
                depth += 1 if s[i + 1] == "{" else -1
                i += 2
                continue
            i += 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            i += ls
            start = i
            continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _closing_at_end(s: str) -> bool:
    """Whether the bracket opening `s` closes at its last character."""
    depth = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            if i + 1 < n and s[i + 1] in "{}":
                depth += 1 if s[i + 1] == "{" else -1
                if depth == 0:
                    return i + 1 == n - 1
                i += 2
                continue
            i += 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i == n - 1
        i += 1
    return False


def _text_key(s: str) -> str:
    s = s.lower()
    s = re.sub(r"\\text\{|\\mathrm\{|[{}()\s.,:;'\"*]", "", s)
    return s


def parse_answer(s: str, depth: int = 0) -> Node:
    """The structure of a normalised answer (see the module docstring)."""
    return _parse_answer_cached(s, depth)


@lru_cache(maxsize=8192)
def _parse_answer_cached(s: str, depth: int) -> Node:
    if depth > 8:
        raise MathLimit("answer structure nested too deeply")
    s = s.strip()
    if len(s) > MAX_ANSWER_CHARS:
        raise MathLimit(f"answer longer than {MAX_ANSWER_CHARS} characters")
    if not s:
        raise MathParseError("empty answer")
    m = _CHOICE.match(s)
    if m:
        return ("text", m.group(1).lower())
    s = _IN_PREFIX.sub("", s)
    m = _NAMED_LEFT.match(s)
    if m and s[m.end():].strip():
        return parse_answer(s[m.end():], depth + 1)
    if s[0] in "([" and _closing_at_end(s) and _MATRIX.match(s[1:-1].strip()):
        s = s[1:-1].strip()  # a matrix in brackets
    m = _MATRIX.match(s)
    if m:
        body = m.group(2)
        if m.group(1) == "array":
            body = re.sub(r"^\s*\{[^{}]*\}", "", body)
        rows = [r for r in split_top(body, "\\\\") if r]
        if not rows or len(rows) > MAX_ITEMS:
            raise MathParseError("bad matrix")
        cells = tuple(tuple(_scalar(c) for c in split_top(r, "&")) for r in rows)
        if len({len(r) for r in cells}) != 1:
            raise MathParseError("ragged matrix")
        return ("matrix", cells)
    if s.startswith(r"\text{") and s.endswith("}") or _is_text(s):
        return ("text", _text_key(s))
    parts = split_top(s, r"\cup")
    if len(parts) > 1:
        if len(parts) > MAX_ITEMS:
            raise MathLimit("too many parts")
        return ("union", tuple(parse_answer(p, depth + 1) for p in parts))
    if s.startswith(r"\{") and s.endswith(r"\}") and _closing_at_end(s):
        inner = s[2:-2].strip()
        items = [x for x in split_top(inner, ",")] if inner else []
        return ("set", tuple(_flatten(_items(items, depth))))
    if s[0] == "{" and s[-1] == "}" and _closing_at_end(s):  # a brace group: a set if it lists
        items = split_top(s[1:-1], ",")
        if len(items) >= 2:
            return ("set", tuple(_flatten(_items(items, depth))))
        return parse_answer(s[1:-1], depth + 1)
    if s[0] in "([" and s[-1] in ")]" and _closing_at_end(s):
        items = split_top(s[1:-1], ",")
        if len(items) == 1:
            items = split_top(s[1:-1], ";")  # (0; -2; 6)
        if len(items) >= 2:
            return ("tuple", tuple(_items(items, depth)), s[0] + s[-1])
    items = split_top(s, ",")
    if len(items) == 1:
        items = split_top(s, ";")
    if len(items) == 1:
        items = [x for x in _SEPARATOR_WORDS.split(s)]
    if len(items) >= 2:
        return ("list", tuple(_flatten(_items([x for x in items if x], depth))))
    return _expand(_relation(s))


def _items(items: list[str], depth: int) -> list[Node]:
    if len(items) > MAX_ITEMS:
        raise MathLimit(f"more than {MAX_ITEMS} elements")
    return [parse_answer(_LEADING_WORD.sub("", x), depth + 1) for x in items]


def _is_text(s: str) -> bool:
    for m in _WORDY.finditer(s):
        if m.group() not in _MATH_WORDS:
            return True
    return False


def _scalar(s: str) -> Node:
    node = parse_expression(s)
    if node[0] in ("eq", "rel"):
        raise MathParseError("relation inside a matrix")
    return node


_FUNCTION_HEAD = re.compile(r"^\s*([a-zA-Z])\s*\(\s*([a-zA-Z](?:\s*,\s*[a-zA-Z])*)\s*\)\s*=(?![=<>])")


def _relation(s: str) -> Node:
    m = _FUNCTION_HEAD.match(s)
    if m:  # f(x) = ... : the left side names the value
        name = m.group(1) + "(" + _WS.sub("", m.group(2)) + ")"
        rhs = parse_expression(s[m.end():])
        if rhs[0] not in ("eq", "rel"):
            return ("eq", (("s", name), rhs))
    node = parse_expression(s)
    if node[0] == "rel":
        as_int = relation_interval(node)
        if as_int is not None:
            return as_int
    return node


def _children(node: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(head, children): a node keeps its tag as head; a plain tuple of nodes has none."""
    if node and isinstance(node[0], str):
        return node[:1], node[1:]
    return (), node


def _has_pm(node: Any) -> bool:
    if isinstance(node, tuple):
        if node and node[0] == "pm":
            return True
        return any(_has_pm(x) for x in _children(node)[1])
    return False


def _variants(node: Any, budget: list[int]) -> list[Any]:
    """All sign choices of the ± in `node` (each ± chooses independently)."""
    if not isinstance(node, tuple) or not _has_pm(node):
        return [node]
    if node[0] == "pm":
        budget[0] -= 1
        if budget[0] < 0:
            raise MathLimit("too many ± signs")
        out = []
        for a in _variants(node[1], budget):
            for b in _variants(node[2], budget):
                out.append(("+", (a, b)))
                out.append(("+", (a, ("neg", b))))
        return out
    head, children = _children(node)
    results: list[tuple[Any, ...]] = [head]
    for child in children:
        opts = _variants(child, budget)
        results = [r + (o,) for r in results for o in opts]
        if len(results) > 16:
            raise MathLimit("too many ± combinations")
    return results


def _flatten(items: list[Node]) -> list[Node]:
    out: list[Node] = []
    for it in items:
        out.extend(it[1] if it[0] == "list" else [it])
    return out


def _expand(node: Node) -> Node:
    """Replace a ± by the list of its values (`1 \\pm 2` is the list 3, -1)."""
    if not _has_pm(node):
        return node
    if node[0] == "list":
        items: list[Node] = []
        for it in node[1]:
            ex = _expand(it)
            items.extend(ex[1] if ex[0] == "list" else [ex])
        return ("list", tuple(items))
    if node[0] == "eq" and len(node[1]) == 2 and not _has_pm(node[1][0]):
        return ("list", tuple(("eq", (node[1][0], v)) for v in _variants(node[1][1], [3])))
    return ("list", tuple(_variants(node, [3])))


NEG_INF: Node = ("neg", ("c", "inf"))
POS_INF: Node = ("c", "inf")


def _degree(node: Node, name: str) -> int | None:
    """0 when `node` does not involve the symbol, 1 when it is linear in it, else None."""
    tag = node[0]
    if tag == "s":
        return 1 if node[1] == name else 0
    if tag in ("n", "c"):
        return 0
    if tag in ("+", "*"):
        degrees = [_degree(x, name) for x in node[1]]
        if None in degrees:
            return None
        total = max(degrees) if tag == "+" else sum(degrees)  # type: ignore[type-var,arg-type]
        return total if total <= 1 else None
    if tag == "neg":
        return _degree(node[1], name)
    if tag == "/":
        return _degree(node[1], name) if _degree(node[2], name) == 0 else None
    return 0 if name not in symbols(node) else None


def _substitute(node: Any, name: str, value: Node) -> Any:
    if isinstance(node, tuple) and node:
        if node[0] == "s":
            return value if node[1] == name else node
        head, children = _children(node)
        return head + tuple(_substitute(c, name, value) for c in children)
    return node


def _linear(node: Node, name: str) -> tuple[Fraction, Fraction] | None:
    """(a, b) with node = a*name + b and rational a != 0, or None."""
    if _degree(node, name) != 1:
        return None
    try:
        b = exact(_substitute(node, name, ("n", Fraction(0))))
        at_one = exact(_substitute(node, name, ("n", Fraction(1))))
    except MathLimit:
        return None
    if b is None or at_one is None or at_one == b:
        return None
    return at_one - b, b


_FLIP_OP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _solve_side(side: Node, bound: Node) -> tuple[str, Node, bool] | None:
    """For `side op bound` with `side` linear in one symbol: (symbol, the bound for the symbol,
    whether the inequality flips)."""
    names = symbols(side)
    if len(names) != 1 or symbols(bound):
        return None
    name = next(iter(names))
    if side == ("s", name):
        return name, bound, False
    lin = _linear(side, name)
    if lin is None:
        return None
    a, b = lin
    value = exact(bound)
    if value is not None:
        solved: Node = ("n", (value - b) / a)
    else:
        solved = ("/", ("+", (bound, ("n", -b))), ("n", a))
    return name, solved, a < 0


def relation_interval(node: Node) -> Node | None:
    """`x > 3` as (3, oo), `-1 <= x < 2` as [-1, 2), `-x > -1` as (-oo, 1); None when the
    relation is not linear in one variable."""
    sides, ops = node[1], node[2]
    if any(o not in ("<", "<=", ">", ">=") for o in ops):
        return None
    if len(sides) == 2:
        a, b = sides
        op = ops[0]
        left = _solve_side(a, b)
        if left is not None:
            _, other, flip = left
        else:
            right = _solve_side(b, a)
            if right is None:
                return None
            _, other, flip = right
            op = _FLIP_OP[op]  # a op x  ->  x op' a
        if flip:
            op = _FLIP_OP[op]
        if op in ("<", "<="):
            return ("interval", False, NEG_INF, other, op == "<=")
        return ("interval", op == ">=", other, POS_INF, False)
    if len(sides) == 3 and not symbols(sides[0]) and not symbols(sides[2]):
        lo_side = _solve_side(sides[1], sides[0])
        hi_side = _solve_side(sides[1], sides[2])
        if lo_side is None or hi_side is None:
            return None
        _, lo, flip = lo_side
        _, hi, _ = hi_side
        o1, o2 = ops
        if flip:  # -x in the middle: the bounds swap sides
            lo, hi, o1, o2 = hi, lo, o2, o1
        if o1 in ("<", "<=") and o2 in ("<", "<="):
            return ("interval", o1 == "<=", lo, hi, o2 == "<=")
        if o1 in (">", ">=") and o2 in (">", ">="):
            return ("interval", o2 == ">=", hi, lo, o1 == ">=")
    return None


# --------------------------------------------------------------------------------------------
# bounded evaluation
# --------------------------------------------------------------------------------------------


def _check(x: Fraction) -> Fraction:
    if x.numerator.bit_length() > MAX_BITS or x.denominator.bit_length() > MAX_BITS:
        raise MathLimit("number too large for exact arithmetic")
    return x


def _iroot(n: int, k: int) -> int | None:
    """The exact integer k-th root of n >= 0, or None."""
    if n < 2:
        return n
    if k == 2:
        r = math.isqrt(n)
        return r if r * r == n else None
    if n.bit_length() <= 50:
        r = int(round(n ** (1.0 / k)))
    else:  # integer Newton iteration from above
        r = 1 << (-(-n.bit_length() // k))
        while True:
            y = ((k - 1) * r + n // r ** (k - 1)) // k
            if y >= r:
                break
            r = y
    for c in (r - 1, r, r + 1):
        if c >= 0 and c ** k == n:
            return c
    return None


def _root(x: Fraction, k: int) -> Fraction | None:
    if k < 1 or k > 64:
        return None
    if x < 0:
        if k % 2 == 0:
            return None
        r = _root(-x, k)
        return None if r is None else -r
    a = _iroot(x.numerator, k)
    b = _iroot(x.denominator, k)
    if a is None or b is None:
        return None
    return Fraction(a, b)


def _pow(base: Fraction, exp: Fraction) -> Fraction | None:
    if exp.denominator != 1:
        if exp.denominator > 64:
            return None
        r = _root(base, exp.denominator)
        if r is None:
            return None
        return _pow(r, Fraction(exp.numerator))
    e = exp.numerator
    if base == 0:
        return None if e <= 0 else Fraction(0)  # 0^0 is undefined here, not 1
    if base in (1, -1):
        return base ** (e % 2) if base == -1 else Fraction(1)
    size = max(base.numerator.bit_length(), base.denominator.bit_length())
    if abs(e) > MAX_BITS or size * abs(e) > MAX_BITS:
        raise MathLimit("power too large for exact arithmetic")
    return _check(base ** e)


def exact(node: Node) -> Fraction | None:
    """The exact rational value of a scalar, or None if it is not rational arithmetic."""
    tag = node[0]
    if tag == "n":
        return node[1]  # type: ignore[no-any-return]
    if tag == "+":
        total = Fraction(0)
        for t in node[1]:
            v = exact(t)
            if v is None:
                return None
            total = _check(total + v)
        return total
    if tag == "*":
        prod = Fraction(1)
        for f in node[1]:
            v = exact(f)
            if v is None:
                return None
            prod = _check(prod * v)
        return prod
    if tag == "neg":
        v = exact(node[1])
        return None if v is None else -v
    if tag == "/":
        a, b = exact(node[1]), exact(node[2])
        if a is None or b is None or b == 0:
            return None
        return _check(a / b)
    if tag == "^":
        a, b = exact(node[1]), exact(node[2])
        if a is None or b is None:
            return None
        return _pow(a, b)
    if tag == "sqrt":
        v = exact(node[1])
        k = Fraction(2) if node[2] is None else exact(node[2])
        if v is None or k is None or k.denominator != 1:
            return None
        return _root(v, int(k))
    if tag == "%":
        v = exact(node[1])
        return None if v is None else v / 100
    if tag == "abs":
        v = exact(node[1])
        return None if v is None else abs(v)
    if tag == "!":
        v = exact(node[1])
        if v is None or v.denominator != 1 or v < 0:
            return None
        if v > 2000:
            raise MathLimit("factorial too large for exact arithmetic")
        return Fraction(math.factorial(int(v)))
    if tag == "binom":
        n, k = exact(node[1]), exact(node[2])
        if n is None or k is None or n.denominator != 1 or k.denominator != 1 or n < 0:
            return None
        if n > 5000:
            raise MathLimit("binomial too large for exact arithmetic")
        return Fraction(math.comb(int(n), int(k))) if k >= 0 else Fraction(0)
    if tag == "f" and node[1] in ("floor", "ceil"):
        v = exact(node[2])
        if v is None:
            return None
        return Fraction(math.floor(v) if node[1] == "floor" else math.ceil(v))
    return None


_CONSTS = {"pi": math.pi, "e": math.e, "i": 1j}
_CFUNCS: dict[str, Any] = {
    "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "sinh": cmath.sinh,
    "cosh": cmath.cosh, "tanh": cmath.tanh, "arcsin": cmath.asin, "arccos": cmath.acos,
    "arctan": cmath.atan, "exp": cmath.exp,
    "cot": lambda z: 1 / cmath.tan(z), "sec": lambda z: 1 / cmath.cos(z),
    "csc": lambda z: 1 / cmath.sin(z), "coth": lambda z: 1 / cmath.tanh(z),
    "arccot": lambda z: cmath.atan(1 / z),
}


def approx(node: Node, env: dict[str, float]) -> tuple[complex, float]:
    """A float value of a scalar with symbols bound by `env`, and the largest magnitude met on
    the way (to judge cancellation). Raises ArithmeticError / ValueError / KeyError when the
    value cannot be computed in floating point."""
    tag = node[0]
    if tag == "n":
        number = float(node[1])
        return complex(number), abs(number)
    if tag == "s":
        bound = env[node[1]]
        return complex(bound), abs(bound)
    if tag == "c":
        if node[1] == "inf":
            raise ValueError("infinity")
        c = _CONSTS[node[1]]
        return complex(c), abs(c)
    if tag in ("+", "*"):
        acc = complex(0 if tag == "+" else 1)
        scale = 0.0
        for x in node[1]:
            v, s = approx(x, env)
            acc = acc + v if tag == "+" else acc * v
            scale = max(scale, s, abs(acc))
        return _finite(acc), scale
    if tag == "neg":
        v, s = approx(node[1], env)
        return complex(0.0 - v.real, 0.0 - v.imag), s  # no signed zeros (branch cuts)
    if tag == "/":
        a, sa = approx(node[1], env)
        b, sb = approx(node[2], env)
        r = a / b
        return _finite(r), max(sa, sb, abs(r))
    if tag == "^":
        a, sa = approx(node[1], env)
        b, sb = approx(node[2], env)
        if abs(b) > 1e4:
            raise OverflowError("exponent too large")
        if a == 0:
            if b.real <= 0:
                raise ZeroDivisionError("0 to a power that is not positive")
            r = complex(0)
        elif b.imag == 0 and b.real == int(b.real) and a.imag == 0:
            r = complex(a.real ** int(b.real))
        elif b.imag == 0 and a.imag == 0 and a.real < 0 and _odd_root(node[2]):
            r = complex(-((-a.real) ** b.real))
        else:
            r = a ** b
        return _finite(r), max(sa, sb, abs(r))
    if tag == "sqrt":
        x, s = approx(node[1], env)
        k = 2.0 if node[2] is None else approx(node[2], env)[0].real
        if k == 2.0:
            r = cmath.sqrt(x)
        elif x.imag == 0 and x.real < 0 and k == int(k) and int(k) % 2 == 1:
            r = complex(-((-x.real) ** (1 / k)))
        else:
            r = x ** (1 / k)
        return _finite(r), max(s, abs(r))
    if tag == "%":
        v, s = approx(node[1], env)
        return v / 100, s
    if tag == "abs":
        v, s = approx(node[1], env)
        return complex(abs(v)), s
    if tag == "!":
        v, s = approx(node[1], env)
        if v.imag != 0 or v.real > 170:
            raise OverflowError("factorial")
        g = math.gamma(v.real + 1)
        return complex(g), max(s, abs(g))
    if tag == "binom":
        top, sn = approx(node[1], env)
        low, sk = approx(node[2], env)
        if top.imag or low.imag or top.real > 170:
            raise OverflowError("binomial")
        g = math.gamma(top.real + 1) / (math.gamma(low.real + 1)
                                        * math.gamma(top.real - low.real + 1))
        return complex(g), max(sn, sk, abs(g))
    if tag == "log":
        x, s = approx(node[1], env)
        r = cmath.log(x)
        if node[2] is not None:
            b, sb = approx(node[2], env)
            r = r / cmath.log(b)
            s = max(s, sb)
        return _finite(r), max(s, abs(r))
    if tag == "f":
        x, s = approx(node[2], env)
        name = node[1]
        if name in ("floor", "ceil"):
            if x.imag:
                raise ValueError("floor of a complex number")
            r = complex(math.floor(x.real) if name == "floor" else math.ceil(x.real))
        else:
            if abs(x) > 700:
                raise OverflowError("function argument too large")
            r = _CFUNCS[name](x)
        return _finite(r), max(s, abs(r))
    raise ValueError(f"cannot evaluate {tag!r}")


def _odd_root(exp: Node) -> bool:
    v = exact(exp) if exp[0] in ("n", "/", "neg") else None
    return v is not None and v.denominator % 2 == 1 and v.denominator > 1


def _finite(z: complex) -> complex:
    if not (math.isfinite(z.real) and math.isfinite(z.imag)):
        raise OverflowError("non-finite value")
    return complex(z.real + 0.0, z.imag + 0.0)  # -0.0 -> 0.0, so cmath takes principal branches


def symbols(node: Any, out: set[str] | None = None) -> set[str]:
    """The free symbol names in a tree."""
    if out is None:
        out = set()
    if isinstance(node, tuple) and node:
        if node[0] == "s":
            out.add(node[1])
        else:
            for x in _children(node)[1]:
                symbols(x, out)
    return out


def inf_sign(node: Node) -> int:
    """+1 for infinity, -1 for minus infinity, 0 otherwise."""
    if node == POS_INF:
        return 1
    if node == NEG_INF:
        return -1
    return 0


__all__ = [
    "MAX_ANSWER_CHARS", "MathLimit", "MathParseError", "Node", "answer_key", "approx", "exact",
    "inf_sign", "normalize", "parse_answer", "parse_expression", "plain_number",
    "relation_interval", "split_top", "symbols", "tokenize",
]
