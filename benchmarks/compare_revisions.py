"""A benchmark suite before and after a change, in one run: the suite of an earlier git revision
(exported with ``git archive``) and the suite of the working tree run alternately, each on its
own source tree, and their rewardlab timings set side by side.

    python -m benchmarks.compare_revisions 57df9bb            # core suite, 2 rounds each
    python -m benchmarks.compare_revisions 57df9bb --quick --rounds 1

Each revision runs its own copy of the suite (as it was at that revision), in a subprocess whose
``PYTHONPATH`` points at that revision's sources; rounds alternate (before, after, before, ...)
so a change in machine load hits both sides. The figure compared is the ``rewardlab`` column of
each table row; the best of the rounds is kept per side.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SECONDS = re.compile(r"([\d.,]+) s\b")


def export(revision: str, into: Path) -> Path:
    """The tree of `revision`, extracted under `into`."""
    archive = into / "tree.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "archive", revision], cwd=ROOT, stdout=f, check=True)
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def run_suite(tree: Path, suite: str, quick: bool) -> dict[str, float]:
    """{row name: rewardlab seconds} from one run of `suite` in `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src") + os.pathsep + str(tree)}
    cmd = [sys.executable, "-m", f"benchmarks.bench_{suite}", *(["--quick"] if quick else [])]
    out = subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
    rows: dict[str, float] = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and (m := _SECONDS.match(cells[3])):
            rows[cells[0]] = float(m.group(1).replace(",", ""))
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("base", help="the earlier revision (a commit, tag or branch)")
    ap.add_argument("--suite", default="core")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = export(args.base, Path(tmp))
        before: dict[str, list[float]] = {}
        after: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for side, tree in ((before, before_tree), (after, ROOT)):
                for name, secs in run_suite(tree, args.suite, args.quick).items():
                    side.setdefault(name, []).append(secs)
    lines = [f"{args.suite} suite, {args.base} vs working tree, best of {args.rounds} alternating rounds "
             f"(load average at start {load[0]:.1f})", "",
             "| job | before | after | after/before time |", "|---|---|---|---|"]
    for name in after:
        if name in before:
            b, a = min(before[name]), min(after[name])
            lines.append(f"| {name} | {b:.2f} s | {a:.2f} s | {a / b:.2f} |")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
