"""CPU time spent by named process trees over a stretch of work."""

from __future__ import annotations

import psutil


def _tree_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (prefork pools included)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class CpuMeter:
    """`with CpuMeter({"worker": pid, …}) as meter:` then `meter.seconds` per name."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.seconds: dict[str, float] = {}
        self._start: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._start = {name: _tree_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.seconds = {name: _tree_seconds(pid) - self._start[name] for name, pid in self.pids.items()}
