"""A stand-in for `recvault worker` processes, to drive launch.worker_group's policy with real processes.

`python fake_worker.py group DIR COUNT FIRST LONGEST STABLE` runs a WorkerGroup of COUNT
processes of `python fake_worker.py worker DIR INDEX --ready-fd N` with that restart policy.
Each process appends `INDEX TIME` to DIR/starts and follows DIR/plan.json: for its index, the
step of its incarnation (the last step once they run out), `[when, seconds, code]`:

* `when` "ready": say ready on the pipe, run `seconds` (null: until SIGTERM), exit `code`;
* `when` "before": exit `code` after `seconds` without ever saying ready (a failed start).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path


def worker(directory: Path, index: int, ready_fd: int) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    starts = directory / "starts"
    with starts.open("a") as log:
        log.write(f"{index} {time.time():.3f}\n")
    incarnation = sum(1 for line in starts.read_text().splitlines() if line.split()[0] == str(index)) - 1
    steps = json.loads((directory / "plan.json").read_text())[str(index)]
    when, seconds, code = steps[min(incarnation, len(steps) - 1)]
    if when == "ready":
        os.write(ready_fd, b"1")
    os.close(ready_fd)
    if seconds is None:
        while True:
            time.sleep(1)
    time.sleep(seconds)
    return int(code)


def group(directory: Path, count: int, first: float, longest: float, stable: float) -> int:
    from recvault.launch.worker_group import RestartPolicy, WorkerGroup
    from recvault.logs import configure_logging

    configure_logging("INFO", "text")
    program = [sys.executable, str(Path(__file__).resolve()), "worker"]
    policy = RestartPolicy(first_pause=first, longest_pause=longest, stable_after=stable)
    return WorkerGroup(count, lambda index: [str(directory), str(index)], policy=policy, program=program).run()


if __name__ == "__main__":
    logging.basicConfig()
    mode, directory, *rest = sys.argv[1:]
    if mode == "worker":
        sys.exit(worker(Path(directory), int(rest[0]), int(rest[rest.index("--ready-fd") + 1])))
    sys.exit(group(Path(directory), int(rest[0]), *(float(value) for value in rest[1:4])))
