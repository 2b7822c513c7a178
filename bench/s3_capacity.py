"""How many PUTs a second the local SeaweedFS takes, for the sizes one archive writes.

`python -m bench.s3_capacity [--runs N]`: a private SeaweedFS with an Object Lock bucket;
recvault's own S3Store writes create-only, GOVERNANCE-locked objects from threads, as a
worker does: a metadata document or audit entry (300 bytes), an index row (empty), the
media of a one-minute dual recording (1.92 MB). Prints the median of the runs for each.
This is what the archive benchmarks share with the worker on the same cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from bench.stats import median
from recvault.launch.services import SeaweedFS
from recvault.storage.base import Retention
from recvault.storage.s3 import S3Store

# (what, bytes, threads, PUTs per run): the writes of one archive, at the worker's concurrency.
WRITES = (("document or entry", 300, 32, 400), ("index row", 0, 32, 400), ("media, 1-minute dual", 1_920_000, 16, 96))


def measure(store: S3Store, label: str, size: int, threads: int, count: int, run: int) -> float:
    """PUTs per second for `count` create-only, locked writes of `size` bytes from `threads` threads."""
    body = os.urandom(size)
    lock = Retention(mode="GOVERNANCE", until=datetime.now(UTC) + timedelta(days=1))

    def put(index: int) -> None:
        store.put_bytes(f"capacity/{label}/{run}/{index}", body, content_type="application/octet-stream",
                        retention=lock)

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(count)))
    return count / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each write (default 3; the median is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recvault-s3-capacity-") as directory:
        server = SeaweedFS(directory).start()
        try:
            store = S3Store("capacity", endpoint_url=server.s3_url)
            store.ensure_bucket(create=True)
            measure(store, "warm-up", 300, 8, 40, 0)  # the bucket's first volume is made here
            print("| write | bytes | threads | PUTs/s (median) | runs |")
            print("|---|---|---|---|---|")
            for label, size, threads, count in WRITES:
                rates = [measure(store, label, size, threads, count, run) for run in range(args.runs)]
                print(f"| {label} | {size:,} | {threads} | {median(rates):,.0f} | "
                      f"{', '.join(f'{rate:,.0f}' for rate in rates)} |", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
