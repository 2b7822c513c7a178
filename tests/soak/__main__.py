"""`python -m tests.soak [--seconds N] [--rate R] [--keep] [--json FILE]`: run the soak and print its figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.soak.soak import DEFAULT_RATE, DEFAULT_SECONDS, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                        help=f"how long callbacks stream in (default {DEFAULT_SECONDS:g}; 60 for a quick check)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help=f"new recordings a second (default {DEFAULT_RATE:g})")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs, data)")
    parser.add_argument("--json", type=Path, help="also write every figure and sample here")
    args = parser.parse_args(argv)
    result = run(args.seconds, args.rate, seed=args.seed, keep=args.keep)
    print(result.summary())
    if args.json:
        args.json.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
