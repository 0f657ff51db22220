"""Run every benchmark (or the named ones) in one command and print their tables.

    python -m benchmarks.run                 # all: core, math, code, sql_tools, models, judge
    python -m benchmarks.run core math       # some
    python -m benchmarks.run --quick         # small smoke runs
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path


def suites() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", help=f"suites to run (default: all of {suites()})")
    ap.add_argument("--quick", action="store_true", help="small smoke runs")
    args = ap.parse_args(argv)
    failed = []
    for name in args.names or suites():
        print(f"\n## {name}\n", flush=True)
        t0 = time.perf_counter()
        module = importlib.import_module(f"benchmarks.bench_{name}")
        try:
            module.main(["--quick"] if args.quick else [])
        except ModuleNotFoundError as exc:  # an extra that is not installed
            print(f"skipped: {exc} (install the extra it needs)")
            failed.append(name)
        print(f"\n({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
