"""Read what a worker logged (one JSON object per line): when each recording was archived."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path


class WorkerLog:
    """Follows a worker's log file from a mark, collecting `archived` times per RecordingSid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = b""
        self.archived: dict[str, float] = {}
        self.failures: list[dict] = []

    def poll(self) -> None:
        """Read lines written since the last poll."""
        if not self.path.exists():
            return
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._take(line)

    def _take(self, line: bytes) -> None:
        if not line.startswith(b"{"):
            return
        try:
            entry = json.loads(line)
        except ValueError:
            return
        if entry.get("msg") == "archived" and entry.get("recording_sid"):
            self.archived.setdefault(entry["recording_sid"], _epoch(entry["ts"]))
        elif entry.get("level") in ("warning", "error") and entry.get("recording_sid"):
            self.failures.append(entry)

    def wait(self, sids: list[str], *, timeout: float, interval: float = 0.05) -> dict[str, float]:
        """Archive times of `sids`, waiting until all are logged; raises on timeout or failure."""
        deadline = time.monotonic() + timeout
        wanted = set(sids)
        while True:
            self.poll()
            if self.failures:
                raise RuntimeError(f"worker reported a failure: {self.failures[0]}")
            if wanted <= self.archived.keys():
                return {sid: self.archived[sid] for sid in sids}
            if time.monotonic() > deadline:
                missing = len(wanted - self.archived.keys())
                raise TimeoutError(f"{missing} of {len(wanted)} recordings not archived after {timeout:.0f}s")
            time.sleep(interval)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
