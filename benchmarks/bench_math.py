"""Math answer verification: rewardlab's `math_answer` against Math-Verify on the same pairs.

The pairs are built from the real GSM8K test set and MATH-500 (see `build_pairs`): each gold
answer is paired with responses that carry it in various surface forms (re-rendered in a
``\\boxed{}`` of a short solution, after "the answer is", rewritten as an equivalent expression,
with units, thousands separators, decimals...) and with wrong answers (off by one, another
problem's answer). Every pair has a known expected verdict.

Both verifiers run on ONE core: the process (and the symbolic-path worker it starts, which
inherits the affinity) is pinned to a single CPU. rewardlab is measured as `math_answer` over
the whole batch in-process (extraction + fast path here, sympy pairs in one worker process on
the same core), and also end to end through `rewardlab.score` with one worker. Math-Verify is
`verify(parse(gold), parse(response))` in the main thread (its timeouts use signals), parsing
each distinct gold once. Both are warmed up on pairs outside the measured set; rewardlab's
parse caches are cleared before timing.

Every disagreement is written, classified against the expected verdict, to
`benchmarks/math_disagreements.md`.

`--probes` runs both verifiers on the reward-hacking probes of `rewardlab.rewards._math_probes`
(answers a policy could write instead of solving the problem) and counts how many fool each.

    python -m benchmarks.bench_math            # full run (about 6,000 pairs)
    python -m benchmarks.bench_math --quick    # small smoke run
    python -m benchmarks.bench_math --probes   # the reward-hacking probes through both verifiers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REWARDLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = Path(__file__).resolve().parent / "math_disagreements.md"


@dataclass
class Pair:
    source: str  # gsm8k / math500
    row: int
    kind: str
    gold: str
    response: str
    expected: bool | None  # None: equivalence is a matter of grading policy
    desc: str


# -- pair construction --------------------------------------------------------------------------

_FRAC = re.compile(r"^(-?)\\d?frac\{(\d+)\}\{(\d+)\}$")


def _terminating(f: Fraction) -> str | None:
    d = f.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return None
    digits = 0
    while (f * 10**digits).denominator != 1:
        digits += 1
    s = f"{float(f):.{digits}f}"
    return s


def _split_terms(s: str) -> list[str] | None:
    """Top-level + / - terms (each with its sign), or None."""
    terms: list[str] = []
    depth = 0
    cur = ""
    for i, c in enumerate(s):
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        if depth == 0 and c in "+-" and i > 0 and s[i - 1] not in "^_{(,":
            terms.append(cur.strip())
            cur = c
            continue
        cur += c
    terms.append(cur.strip())
    terms = [t for t in terms if t]
    return terms if len(terms) >= 2 else None


def _rewrites(ans: str, problem: str) -> list[tuple[str, str, str]]:
    """Equivalent rewritings of a MATH answer: (kind, text, description)."""
    out: list[tuple[str, str, str]] = []
    m = _FRAC.match(ans)
    if m:
        sign, a, b = m.groups()
        out.append(("slash", f"{sign}{a}/{b}", r"\frac{a}{b} written as a/b"))
        dec = _terminating(Fraction(int(a), int(b)))
        if dec is not None:
            out.append(("decimal", f"{sign}{dec}", "a terminating fraction written as a decimal"))
    if r"\frac" in ans and r"\dfrac" not in ans:
        out.append(("dfrac", ans.replace(r"\frac", r"\dfrac"), r"\frac written as \dfrac"))
    if r"\dfrac" in ans:
        out.append(("dfrac", ans.replace(r"\dfrac", r"\frac"), r"\dfrac written as \frac"))
    if re.fullmatch(r"-?\d+", ans):
        n = int(ans)
        out.append(("int_decimal", f"{n}.0", "an integer written with .0"))
        if abs(n) >= 1000:
            out.append(("thousands", f"{n:,}", "an integer with thousands separators"))
    if "=" not in ans and "," not in ans and r"\pm" not in ans and "matrix" not in ans:
        terms = _split_terms(ans)
        if terms:
            rev = [t if t[0] in "+-" else "+" + t for t in reversed(terms)]
            text = " ".join(rev).lstrip("+").strip()
            out.append(("reorder", text, "the terms of a sum in reverse order"))
    m2 = re.fullmatch(r"(\d+)\s*\\sqrt\{(\d+)\}", ans)
    if m2:
        out.append(("coef_after", rf"\sqrt{{{m2.group(2)}}} \cdot {m2.group(1)}",
                    r"a\sqrt{b} written as \sqrt{b}\cdot a"))
    m3 = re.fullmatch(r"\\frac\{\\sqrt\{(\d+)\}\}\{(\d+)\}", ans)
    if m3:
        b, c = int(m3.group(1)), int(m3.group(2))
        if c * c % b == 0:  # sqrt(b)/c == 1/(c/sqrt(b)) = 1/sqrt(c^2/b)
            out.append(("rationalised", rf"\frac{{1}}{{\sqrt{{{c * c // b}}}}}",
                        r"\frac{\sqrt b}{c} written as 1/\sqrt{c^2/b}"))
    if re.search(r"\\sqrt\{\d\}", ans):
        out.append(("sqrt_nobrace", re.sub(r"\\sqrt\{(\d)\}", r"\\sqrt \1", ans),
                    r"\sqrt{d} written as \sqrt d"))
    thousands = re.search(r"\d,(?:\\!)?\s*\d{3}(?!\d)", ans)
    if re.fullmatch(r"[^(\[{]+(?:,[^,]+)+", ans) and "=" not in ans and not thousands:
        items = [x.strip() for x in ans.split(",")]
        out.append(("list_reversed", ", ".join(reversed(items)),
                    "an unordered list of answers in reverse order"))
    if re.fullmatch(r"\(.*\)", ans) and ans.count(",") >= 1 and r"\cup" not in ans:
        out.append(("left_right", r"\left(" + ans[1:-1].replace(",", " , ") + r"\right)",
                    r"a tuple written with \left( \right) and spaces"))
    m4 = re.fullmatch(r"([(\[])\s*(-?\d+)\s*,\s*(-?\d+)\s*([)\]])", ans)
    if m4 and "interval" in problem and int(m4.group(2)) < int(m4.group(3)):
        lo_op = "<" if m4.group(1) == "(" else r"\le"
        hi_op = "<" if m4.group(4) == ")" else r"\le"
        out.append(("inequality", f"{m4.group(2)} {lo_op} x {hi_op} {m4.group(3)}",
                    "an interval written as an inequality in x"))
    m5 = re.fullmatch(r"\(\s*(-?\d+)\s*,\s*\\infty\s*\)", ans)
    if m5 and "interval" in problem:
        out.append(("inequality", f"x > {m5.group(1)}", "an interval written as an inequality"))
    if re.fullmatch(r"\d+\^\\circ", ans):
        out.append(("degrees", ans.replace(r"^\circ", ""), "an angle without the degree sign"))
    if re.search(r"\\(?:text|mbox)\{\s*[a-z ]+\}", ans) and re.search(r"\d", ans):
        out.append(("units", re.sub(r"\s*\\(?:text|mbox)\{\s*[a-z ]+\}(\^\d)?", "", ans),
                    "the answer without its unit"))
    if re.fullmatch(r"[^=,(\[{]*(?:\\frac\{[^{}]*\}\{[^{}]*\})?[^=,]*", ans) \
            and "text" not in ans and "pm" not in ans and "infty" not in ans:
        out.append(("eq_form", f"x = {ans}", "v written as the equation x = v"))
    m6 = re.fullmatch(r"[a-z]\s*=\s*(.+)", ans)
    if m6:
        out.append(("eq_value", m6.group(1), "x = v written as v"))
    if "pmatrix" in ans:
        out.append(("bmatrix", ans.replace("pmatrix", "bmatrix"), "pmatrix written as bmatrix"))
    m7 = re.fullmatch(r"(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}", ans)
    if m7:
        w, a, b = (int(x) for x in m7.groups())
        out.append(("improper", rf"\frac{{{w * b + a}}}{{{b}}}",
                    "a mixed number written as an improper fraction"))
    m9 = re.fullmatch(r"(-?\d+)\s*\\pm\s*(.+)", ans)
    if m9:
        a, b = m9.groups()
        out.append(("pm_expanded", f"{a} + {b}, {a} - {b}", r"a \pm b written as a + b, a - b"))
    m10 = re.fullmatch(r"([1-9])(\d*?)(0{3,})", ans)
    if m10:
        digits = m10.group(1) + m10.group(2)
        exp = len(m10.group(2)) + len(m10.group(3))
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        out.append(("scientific", rf"{mant} \times 10^{{{exp}}}",
                    "an integer in scientific notation"))
    m8 = re.fullmatch(r"\\text\{\s*([A-Za-z ()]+)\s*\}", ans)
    if m8:
        out.append(("text_plain", m8.group(1), r"a \text{} answer without \text"))
    return out


def _off_by_one(ans: str) -> str | None:
    m = re.search(r"\d+", ans)
    if not m:
        return None
    return ans[: m.start()] + str(int(m.group()) + 1) + ans[m.end():]


def _wrongs(ans: str, problem: str) -> list[tuple[str, str, str]]:
    """Wrong answers made from a MATH answer: (kind, text, description)."""
    out: list[tuple[str, str, str]] = []
    off = _off_by_one(ans)
    if off is not None:
        out.append(("off_by_one", off, "the gold answer with its first integer increased by one"))
    if re.fullmatch(r"-?(?:\d+|\\frac\{\d+\}\{\d+\}|\d*\\sqrt\{\d+\})", ans) and ans not in ("0",):
        flipped = ans[1:] if ans.startswith("-") else "-" + ans
        out.append(("sign_flip", flipped, "the gold answer with its sign flipped"))
    m = re.fullmatch(r"\(([^,()]+),([^,()]+)\)", ans)
    if m and "interval" not in problem and m.group(1).strip() != m.group(2).strip():
        out.append(("tuple_swap", f"({m.group(2).strip()}, {m.group(1).strip()})",
                    "an ordered pair with its elements swapped"))
    if "interval" in problem and ans[:1] in "([" and ans[-1:] in ")]" and "infty" not in ans[:8]:
        flipped = ("[" if ans[0] == "(" else "(") + ans[1:]
        out.append(("bracket_flip", flipped, "an interval with its left end's bracket flipped"))
    return out


def _approximation(ans: str) -> str | None:
    """A 6-decimal approximation of an answer that is an irrational constant, or None."""
    from rewardlab.rewards._math_parse import approx, exact, normalize, parse_answer, symbols

    if not re.search(r"\\sqrt|\\pi", ans):
        return None
    try:
        node = parse_answer(normalize(ans))
        if node[0] in ("list", "set", "tuple", "eq", "rel", "interval", "union", "matrix",
                       "text") or symbols(node) or exact(node) is not None:
            return None
        value = approx(node, {})[0]
    except Exception:  # noqa: BLE001 - not a plain constant: no approximation variant
        return None
    if value.imag:
        return None
    return f"{value.real:.6f}"


_THINK = "<think>\nLet me work it out: 12 + 30 = 42, then check 42 / 6 = 7.\n</think>\n"


_FORMATS = [
    ("answer_tag", "<think>\nWe combine the two cases.\n</think>\n<answer>$ANS$</answer>",
     "the gold answer in <answer> tags after a <think> block"),
    ("fbox", "Hence the result is $\\fbox{ANS}$.", r"the gold answer in \fbox{}"),
    ("markdown", "**Final Answer:** $ANS$", "the gold answer after a markdown **Final Answer:**"),
    ("boxed_then_text", "The final answer is $\\boxed{ANS}$. I hope it is correct.",
     r"the gold answer boxed, followed by more text"),
]


def _math_pairs(rows: list[dict[str, Any]], rng: random.Random) -> list[Pair]:
    pairs: list[Pair] = []
    answers = [r["answer"] for r in rows]
    for i, r in enumerate(rows):
        ans = r["answer"]
        pairs.append(Pair("math500", i, "boxed", ans,
                          f"We simplify step by step.\nThus the final answer is "
                          f"$\\boxed{{{ans}}}$.", True,
                          r"the gold answer re-rendered in \boxed{} at the end of a short solution"))
        pairs.append(Pair("math500", i, "answer_is", ans,
                          f"Putting it together, the answer is ${ans}$.", True,
                          "the gold answer after 'the answer is', in $...$"))
        kind, text, desc = rng.choice(_FORMATS)
        pairs.append(Pair("math500", i, f"format:{kind}", ans, text.replace("ANS", ans), True, desc))
        rewrites = _rewrites(ans, r["problem"])
        if rewrites:
            kind, text, desc = rng.choice(rewrites)
            pairs.append(Pair("math500", i, f"rewrite:{kind}", ans,
                              f"So we get $\\boxed{{{text}}}$.", True, desc))
        approx_text = _approximation(ans)
        if approx_text is not None:
            pairs.append(Pair("math500", i, "policy:decimal_approximation", ans,
                              f"Numerically, the answer is approximately ${approx_text}$.", None,
                              "an irrational answer given as a 6-decimal approximation "
                              "(equal only under a loose numeric tolerance)"))
        wrongs = _wrongs(ans, r["problem"])
        if wrongs:
            kind, text, desc = rng.choice(wrongs)
            pairs.append(Pair("math500", i, f"wrong:{kind}", ans,
                              f"Therefore the answer is $\\boxed{{{text}}}$.", False, desc))
        else:
            other = rng.choice([a for a in answers if a != ans])
            pairs.append(Pair("math500", i, "wrong:other", ans,
                              f"Therefore the answer is $\\boxed{{{other}}}$.", False,
                              "another problem's answer"))
    return pairs


_UNITS = ["dollars", "minutes", "apples", "miles", "cookies"]


def _gsm_pairs(rows: list[dict[str, Any]], rng: random.Random) -> list[Pair]:
    pairs: list[Pair] = []
    for i, r in enumerate(rows):
        gold = r["answer"].split("####")[-1].strip()
        v = int(gold.replace(",", ""))
        unit = _UNITS[i % len(_UNITS)]
        correct = [
            ("boxed", f"Adding everything up gives $\\boxed{{{v}}}$.", r"the number in \boxed{}"),
            ("dollar_text", f"So the total comes to ${v} in the end.",
             "the number after a dollar sign in a sentence (last number)"),
            ("answer_is_units", f"The answer is {v} {unit}.",
             "the number followed by a unit word after 'the answer is'"),
            ("decimal", f"The answer is {v}.00", "the number written with .00"),
            ("hash", f"We get {v}.\n#### {v}", "the number after ####"),
            ("answer_tag", f"<answer>{v}</answer>", "the number in <answer> tags"),
            ("last_number", f"First 3 + 4 = 7, and in total we have {v}",
             "the last number of the text"),
        ]
        if "%" in r["question"] or "percent" in r["question"]:
            correct.append(("percent", f"The answer is {v}%.",
                            "the number with a percent sign (the question asks for a percentage)"))
        if abs(v) >= 1000:
            correct.append(("thousands", f"The total is $\\boxed{{{v:,}}}$.",
                            "the number with thousands separators in a box"))
        for kind, text, desc in rng.sample(correct, 2):
            if rng.random() < 0.3:
                text, kind, desc = _THINK + text, kind + "+think", desc + " after a <think> block"
            pairs.append(Pair("gsm8k", i, kind, gold, text, True, desc))
        if rng.random() < 0.5:
            pairs.append(Pair("gsm8k", i, "wrong:boxed_plus_one", gold,
                              f"The total is $\\boxed{{{v + 1}}}$.", False,
                              r"the gold number plus one, in \boxed{}"))
        else:
            pairs.append(Pair("gsm8k", i, "wrong:answer_is_minus_one", gold,
                              f"The answer is {v - 1}.", False,
                              "the gold number minus one after 'the answer is'"))
    return pairs


def build_pairs(limit: int | None = None, seed: int = 0) -> list[Pair]:
    """The benchmark pairs from GSM8K test and MATH-500 (the first `limit` rows of each)."""
    rng = random.Random(seed)
    vdir = DATA / "verifiable"
    with (vdir / "math500_test.jsonl").open() as f:
        math_rows = [json.loads(line) for line in f][:limit]
    with (vdir / "gsm8k_test.jsonl").open() as f:
        gsm_rows = [json.loads(line) for line in f][:limit]
    return _math_pairs(math_rows, rng) + _gsm_pairs(gsm_rows, rng)


# -- the two verifiers ------------------------------------------------------------------------

_WARMUP = [
    (r"\frac{\sqrt{2}}{2}", r"The answer is $\boxed{\frac{1}{\sqrt{2}}}$."),
    ("x^2-1", r"$\boxed{(x-1)(x+1)}$"),
    ("7", "so 3 + 4 = 7"),
    (r"\left(1, \frac{1}{3}\right)", r"\boxed{(1, 1/3)}"),
]


def _clear_caches() -> None:
    from rewardlab.rewards import _math_parse

    _math_parse.normalize.cache_clear()
    _math_parse._parse_answer_cached.cache_clear()


def run_ours(pairs: list[Pair]) -> tuple[list[Any], float, float]:
    """Scores of `math_answer` (one symbolic worker) and seconds: in-process batch call, and
    end to end through `rewardlab.score` with one worker."""
    import rewardlab
    from rewardlab.core.types import Sample
    from rewardlab.rewards.math import math_answer

    reward = math_answer()
    samples = [Sample(response=p.response, reference=p.gold) for p in pairs]
    with rewardlab.Runtime(workers=1) as rt, rt.active():
        reward.score_local([Sample(response=r, reference=g) for g, r in _WARMUP])
        _clear_caches()
        t0 = time.perf_counter()
        scores = reward.score_local(samples)
        local = time.perf_counter() - t0
    _clear_caches()
    t0 = time.perf_counter()
    rewardlab.score(samples, reward, workers=1)
    engine = time.perf_counter() - t0
    return scores, local, engine


def run_theirs(pairs: list[Pair]) -> tuple[list[bool], list[tuple[str, str]], float]:
    """Math-Verify's verdicts, what it parsed (gold, prediction), and seconds."""
    from math_verify import parse, verify

    for wg, wr in _WARMUP:
        verify(parse(f"${wg}$"), parse(wr))
    gold_cache: dict[str, Any] = {}
    verdicts: list[bool] = []
    parsed: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    for p in pairs:
        g = gold_cache.get(p.gold)
        if g is None:
            g = gold_cache[p.gold] = parse(f"${p.gold}$")
        pred = parse(p.response)
        verdicts.append(bool(verify(g, pred)))
        parsed.append((str(g), str(pred)))
    return verdicts, parsed, time.perf_counter() - t0


# -- reward-hacking probes ----------------------------------------------------------------------


@dataclass
class ProbeResult:
    verifier: str
    probes: int
    fooled: list[str]  # ids of the probes judged equal to some gold
    pairs: int
    paid: int  # (probe, gold, form) pairs judged equal
    not_ok: int  # pairs that scored error/abstain instead of a plain 0 (ours only)
    seconds: float


def _probe_cases() -> list[tuple[str, str, str, str]]:
    """(probe id, gold, form, text): each probe against each gold, as a boxed full response
    and as a bare answer; plus the several-boxes responses against the golds they list."""
    from rewardlab.rewards._math_probes import GOLDS, PROBES, SEVERAL_BOXES

    cases = []
    for name, answer in PROBES:
        for gold in GOLDS:
            cases.append((name, gold, "response", f"The final answer is $\\boxed{{{answer}}}$."))
            cases.append((name, gold, "answer", answer))
    for k, response in enumerate(SEVERAL_BOXES):
        for gold in ("41", "42", "43"):
            cases.append((f"several_boxes_{k}", gold, "response", response))
    return cases


def run_probe_ours(cases: list[tuple[str, str, str, str]]) -> ProbeResult:
    from rewardlab.core.types import Sample
    from rewardlab.rewards.math import math_answer, verify

    t0 = time.perf_counter()
    resp = [c for c in cases if c[2] == "response"]
    scores = math_answer().score_local([Sample(response=c[3], reference=c[1]) for c in resp])
    fooled: set[str] = set()
    paid = not_ok = 0
    for c, sc in zip(resp, scores, strict=True):
        if sc.status.value != "ok":
            not_ok += 1
        elif sc.value == 1.0:
            paid += 1
            fooled.add(c[0])
    for c in cases:
        if c[2] != "answer":
            continue
        v = verify(gold=c[1], prediction=c[3])
        if v.equal is None:
            not_ok += 1
        elif v.equal:
            paid += 1
            fooled.add(c[0])
    return ProbeResult("rewardlab", len({c[0] for c in cases}), sorted(fooled), len(cases), paid,
                       not_ok, time.perf_counter() - t0)


def run_probe_theirs(cases: list[tuple[str, str, str, str]]) -> ProbeResult:
    from math_verify import parse, verify

    t0 = time.perf_counter()
    golds: dict[str, Any] = {}
    fooled: set[str] = set()
    paid = 0
    for name, gold, form, text in cases:
        g = golds.get(gold)
        if g is None:
            g = golds[gold] = parse(f"${gold}$")
        pred = parse(text if form == "response" else f"${text}$")
        if verify(g, pred):
            paid += 1
            fooled.add(name)
    return ProbeResult("Math-Verify", len({c[0] for c in cases}), sorted(fooled), len(cases), paid,
                       0, time.perf_counter() - t0)


def probe_report() -> str:
    """Both verifiers on the reward-hacking probes: how many probes fool each."""
    cases = _probe_cases()
    ours = run_probe_ours(cases)
    theirs = run_probe_theirs(cases)
    lines = [
        f"Reward-hacking probes: {ours.probes} probes (answers that are not answers), each against "
        f"the golds as a boxed response and as a bare answer: {ours.pairs} pairs.",
        "",
        "| verifier | probes that fool it | pairs judged equal | pairs not scored ok | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in (ours, theirs):
        not_ok = str(r.not_ok) if r.verifier == "rewardlab" else "n/a"
        lines.append(f"| {r.verifier} | {len(r.fooled)} / {r.probes} | {r.paid} / {r.pairs} | {not_ok} | "
                     f"{r.seconds:.1f} |")
    lines += ["", f"- probes that fool Math-Verify: {', '.join(theirs.fooled) or 'none'}",
              f"- probes that fool rewardlab: {', '.join(ours.fooled) or 'none'}"]
    return "\n".join(lines)


# -- report -----------------------------------------------------------------------------------


def _ours_label(score: Any) -> str:
    if score.status.value != "ok":
        return score.status.value
    return "equal" if score.value == 1.0 else "not equal"


def _md(s: str) -> str:
    return s.replace("|", r"\|").replace("\n", "\\n")


def classify(pair: Pair, score: Any, theirs: bool) -> tuple[str, str]:
    """(class, why) for a disagreement, judged against the pair's expected verdict."""
    ours_ok = score.status.value == "ok"
    ours = ours_ok and score.value == 1.0
    if pair.expected is None:
        return "ambiguous", (f"{pair.desc}: rewardlab compares irrational values within a "
                             f"relative 1e-9 (default tolerance), Math-Verify rounds to 6 "
                             f"decimals; rewardlab says {_ours_label(score)}, Math-Verify "
                             f"{'equal' if theirs else 'not equal'}")
    expected = "equal" if pair.expected else "not equal"
    if ours == pair.expected and theirs != pair.expected:
        why = (f"{pair.desc}: expected {expected}; Math-Verify says "
               f"{'equal' if theirs else 'not equal'}")
        if pair.kind.startswith("answer_tag"):
            why += " (it has no <answer>-tag extraction; a bare number inside tags parses to nothing)"
        return "ours right", why
    if theirs == pair.expected and ours != pair.expected:
        detail = score.reason if not ours_ok else f"via the {(score.details or {}).get('path')} path"
        why = f"{pair.desc}: expected {expected}; rewardlab says {_ours_label(score)} ({detail})"
        return "theirs right", why
    return "ambiguous", f"{pair.desc}: both differ from the expected verdict in different ways"


def write_disagreements(pairs: list[Pair], scores: list[Any], theirs: list[bool],
                        parsed: list[tuple[str, str]], path: Path) -> Counter[str]:
    rows: list[str] = []
    counts: Counter[str] = Counter()
    for p, s, t, (_, pp) in zip(pairs, scores, theirs, parsed, strict=True):
        ours = s.status.value == "ok" and s.value == 1.0
        if ours == t:
            continue
        cls, why = classify(p, s, t)
        counts[cls] += 1
        extracted = (s.details or {}).get("extracted")
        rows.append(
            f"| {cls} | {p.source}#{p.row} | {p.kind} | `{_md(p.gold)}` | `{_md(p.response)}` | "
            f"{_ours_label(s)} (`{_md(str(extracted))}`) | "
            f"{'equal' if t else 'not equal'} (`{_md(pp)}`) | {_md(why)} |"
        )
    head = [
        "# Math verifier disagreements: rewardlab `math_answer` vs Math-Verify",
        "",
        "Generated by `python -m benchmarks.bench_math`; do not edit by hand. Each row is a pair",
        "on which the two verifiers disagree, classified against the verdict the pair was",
        "built to have (an equivalent rewriting of the gold answer, or a wrong answer).",
        "",
        f"Disagreements: {sum(counts.values())} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items())) or 'none'}) "
        f"of {len(pairs)} pairs.",
        "",
        "| class | row | kind | gold | response | rewardlab (extracted) | "
        "Math-Verify (parsed) | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    kept = ""
    if path.exists():  # the hand-written section on Math-Verify's own suite stays
        old = path.read_text()
        if CONFORMANCE_SECTION in old:
            kept = "\n" + old[old.index(CONFORMANCE_SECTION):]
    path.write_text("\n".join(head + rows) + "\n" + kept)
    return counts


CONFORMANCE_SECTION = "## Math-Verify's own test suite"


def _pin_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (40 rows per set)")
    ap.add_argument("--probes", action="store_true",
                    help="run only the reward-hacking probes through both verifiers")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"where to write the disagreements (default: {OUT.name}; a temporary "
                         f"file with --quick)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "math_disagreements.quick.md" if args.quick \
            else OUT
    core = _pin_one_core()  # before any worker starts: the workers inherit it
    if args.probes:
        text = probe_report()
        print(text)
        return text
    pairs = build_pairs(limit=40 if args.quick else None)
    scores, ours_s, engine_s = run_ours(pairs)
    theirs, parsed, theirs_s = run_theirs(pairs)
    n = len(pairs)
    expected = [p.expected for p in pairs]
    ours_bool = [s.status.value == "ok" and s.value == 1.0 for s in scores]
    agree = sum(a == b for a, b in zip(ours_bool, theirs, strict=True))
    untagged = [i for i, p in enumerate(pairs) if not p.kind.startswith("answer_tag")]
    agree_untagged = sum(ours_bool[i] == theirs[i] for i in untagged)
    judged = sum(e is not None for e in expected)
    ours_acc = sum(a == e for a, e in zip(ours_bool, expected, strict=True)) / judged
    theirs_acc = sum(a == e for a, e in zip(theirs, expected, strict=True)) / judged
    paths = Counter((s.details or {}).get("path", s.status.value) for s in scores)
    statuses = Counter(s.status.value for s in scores)
    counts = write_disagreements(pairs, scores, theirs, parsed, args.out)
    lines = [
        f"Math answer verification, {n} pairs from GSM8K test + MATH-500 "
        f"({sum(p.expected is True for p in pairs)} equivalent, "
        f"{sum(p.expected is False for p in pairs)} wrong, "
        f"{sum(p.expected is None for p in pairs)} policy-dependent); "
        f"one core (CPU {core}), {platform.python_version()}.",
        "",
        "| verifier | what is timed | seconds | pairs/s | accuracy vs expected (policy pairs excluded) |",
        "|---|---|---|---|---|",
        f"| rewardlab `math_answer` | batch in-process (fast path here, sympy in 1 worker, "
        f"same core) | {ours_s:.2f} | {n / ours_s:,.0f} | {ours_acc:.2%} |",
        f"| rewardlab `math_answer` | end to end via `rewardlab.score(workers=1)` | "
        f"{engine_s:.2f} | {n / engine_s:,.0f} | same scores |",
        f"| Math-Verify 0.9 | `verify(parse(gold), parse(response))`, gold parsed once | "
        f"{theirs_s:.2f} | {n / theirs_s:,.0f} | {theirs_acc:.2%} |",
        "",
        f"- speed-up (in-process batch): **{theirs_s / ours_s:.1f}x**; end to end: "
        f"**{theirs_s / engine_s:.1f}x**",
        f"- agreement: {agree / n:.2%} ({n - agree} disagreements: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'}; "
        f"listed in `{args.out.name}`)",
        f"- agreement without the {n - len(untagged)} GSM8K `<answer>`-tag pairs (a format "
        f"Math-Verify does not extract): {agree_untagged / len(untagged):.2%}",
        f"- rewardlab paths: fast {paths.get('fast', 0)}, symbolic {paths.get('symbolic', 0)}; "
        f"statuses: {dict(statuses)}",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
