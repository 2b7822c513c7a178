"""`python -m bench [--quick] [--only SECTION]`: run the benchmarks, write and print the report."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from bench.plan import PLANS
from bench.report import markdown, write
from bench.runner import SECTIONS, run_benchmarks

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run the chosen plan and sections, write and print the report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny run (about two minutes) to check the harness")
    parser.add_argument("--plan", choices=sorted(PLANS), help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", choices=list(SECTIONS),
                        help="run only this section (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where reports go (default bench/results)")
    parser.add_argument("--runs", type=int, help="measured runs per figure (default: the plan's)")
    args = parser.parse_args(argv)
    plan = PLANS[args.plan or ("quick" if args.quick else "full")]
    if args.runs:
        plan = replace(plan, runs=args.runs)
    results = run_benchmarks(plan, args.only, progress=lambda line: print(line, file=sys.stderr, flush=True))
    md, js = write(results, args.out)
    print(markdown(results))
    print(f"\nwritten: {md} and {js}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
