"""Memory of a process tree: peak resident set of each process and of the tree as a whole."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil

MB = 1_000_000  # reported in decimal megabytes, like the targets


def high_water_mark(pid: int) -> int:
    """The kernel's peak RSS (VmHWM) of one process, in bytes; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeSampler:
    """Samples RSS of a process and its descendants on a thread; keeps per-process and total peaks."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.tree_peak = 0
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        total = 0
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for process in processes:
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.peaks[process.pid] = max(self.peaks.get(process.pid, 0), rss)
        self.tree_peak = max(self.tree_peak, total)

    def children_hwm(self) -> dict[int, int]:
        """VmHWM of every child still running (prefork pool processes)."""
        try:
            return {c.pid: high_water_mark(c.pid) for c in self.root.children(recursive=True)}
        except psutil.Error:
            return {}

    def summary(self) -> dict[str, float]:
        """Peak of the busiest child (VmHWM when readable, else sampled), of the main process, of the tree."""
        hwm = self.children_hwm()
        sampled = {pid: rss for pid, rss in self.peaks.items() if pid != self.root.pid}
        child = max([*hwm.values(), *sampled.values(), 0])
        return {
            "child_peak_mb": round(child / MB, 1),
            "main_peak_mb": round(max(high_water_mark(self.root.pid), self.peaks.get(self.root.pid, 0)) / MB, 1),
            "tree_peak_mb": round(self.tree_peak / MB, 1),
        }
