"""`python -m tests.faults [--quick] [--only N …]`: run the fault scenarios and print the table."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.faults.result import ScenarioResult, markdown_table
from tests.faults.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (what the test suite runs)")
    parser.add_argument("--only", nargs="+", metavar="N", help="scenario numbers to run, e.g. --only 1 4")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep each scenario's directory (logs, data)")
    args = parser.parse_args(argv)

    chosen = [s for s in SCENARIOS if not args.only or s.NAME.split()[0] in args.only]
    root = Path(tempfile.mkdtemp(prefix="recvault-faults-"))
    results = []
    for scenario in chosen:
        size = scenario.QUICK if args.quick else scenario.FULL
        workdir = root / scenario.NAME.split()[0]
        print(f"running {scenario.NAME} ({size}) …", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            result = scenario.run(workdir, size, seed=args.seed)
        except Exception as error:
            traceback.print_exc()
            result = ScenarioResult(scenario.NAME, "-", problems=[f"scenario crashed: {error!r}"])
        result.seconds = time.monotonic() - started
        results.append(result)
        print(markdown_table([result]), file=sys.stderr, flush=True)
    print(markdown_table(results))
    if args.keep:
        print(f"\nlogs and data kept in {root}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
